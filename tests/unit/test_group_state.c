/* Unit tests for group_state.c: the obligation state machine, cursors, membership, strict seq
 * order, serialisation, and a randomized run checked against a brute-force reference model and
 * against a rebuild from the whole event list. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "group_state.h"
#include "macro.h"
#include "proto.h"

#define TS "2026-11-22T14:36:41.123Z"
#define TS_MS UINT64_C(1795358201123)

/* A deterministic 26-character event id per seq, in a buffer of its own per seq (the tests
 * stay far below 1024 events), so a returned id stays valid through later applies. */
static const char *eid(uint64_t seq) {
        static char buf[1024][27];
        char *b = buf[seq % ELEMENTSOF(buf)];

        snprintf(b, 27, "01JD%022" PRIu64, seq);
        return b;
}

/* data_json may be NULL (no "data"); by may be NULL (no "by"). */
static struct json_object *event_new(uint64_t seq, const char *kind, const char *by, const char *data_json) {
        struct json_object *e = json_object_new_object();

        assert_non_null(e);
        json_object_object_add(e, "v", json_object_new_int(1));
        json_object_object_add(e, "id", json_object_new_string(eid(seq)));
        json_object_object_add(e, "seq", json_object_new_int64((int64_t) seq));
        json_object_object_add(e, "ts", json_object_new_string(TS));
        json_object_object_add(e, "kind", json_object_new_string(kind));
        json_object_object_add(e, "group_id", json_object_new_string("g1"));
        if (by)
                json_object_object_add(e, "by", json_object_new_string(by));
        if (data_json) {
                struct json_object *d = json_tokener_parse(data_json);

                assert_non_null(d);
                json_object_object_add(e, "data", d);
        }
        return e;
}

struct fixture {
        struct group_state *gs;
        uint64_t seq; /* last applied */
};

static int fixture_setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);

        if (!f || group_state_new(&f->gs) < 0) {
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int fixture_teardown(void **state) {
        struct fixture *f = *state;

        group_state_free(f->gs);
        free(f);
        return 0;
}

/* Applies the next event; returns its id. data is printf-formatted JSON (NULL: none). */
_printf_(4, 5) static const char *apply_ok(struct fixture *f, const char *kind, const char *by, const char *fmt, ...) {
        _cleanup_json_ struct json_object *e = NULL;
        char data[2048];

        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                assert_true(vsnprintf(data, sizeof data, fmt, ap) < (int) sizeof data);
                va_end(ap);
        }
        e = event_new(f->seq + 1, kind, by, fmt ? data : NULL);
        assert_int_equal(group_state_apply(f->gs, e), 0);
        f->seq++;
        assert_int_equal(group_state_last_seq(f->gs), f->seq);
        return eid(f->seq);
}

static void add_members(struct fixture *f, const char *const *ids) {
        for (; *ids; ids++)
                apply_ok(f, "actor.added", "system", "{\"actor_id\":\"%s\",\"kind\":\"agent\"}", *ids);
}

static void add_abcd(struct fixture *f) {
        add_members(f, (const char *const[]) { "a", "b", "c", "d", NULL });
}

static int count_obligations(struct fixture *f, const char *actor) {
        struct obligation *o = NULL;
        int n = group_state_obligations(f->gs, actor, &o);

        assert_true(n >= 0);
        free(o);
        return n;
}

/* The open obligations as "kind:actor:seq" words, oldest first, e.g. "r:b:5 a:b:5". */
static const char *describe(struct fixture *f) {
        static char buf[4096];
        struct obligation *o = NULL;
        size_t len = 0;
        int n = group_state_obligations(f->gs, NULL, &o);

        assert_true(n >= 0);
        buf[0] = '\0';
        for (int i = 0; i < n; i++)
                len += (size_t) snprintf(buf + len, sizeof buf - len, "%s%s:%s:%" PRIu64, i ? " " : "",
                                         o[i].kind == OBLIGATION_REPLY ? "r" : "a", o[i].actor_id, o[i].seq);
        free(o);
        return buf;
}

static char *state_string(struct group_state *gs) {
        _cleanup_json_ struct json_object *j = group_state_to_json(gs);
        char *s;

        assert_non_null(j);
        s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        assert_non_null(s);
        return s;
}

static struct group_state *roundtrip(struct group_state *gs) {
        _cleanup_json_ struct json_object *j = group_state_to_json(gs), *parsed = NULL;
        struct group_state *copy = NULL;

        assert_non_null(j);
        parsed = json_tokener_parse(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        assert_non_null(parsed);
        assert_int_equal(group_state_from_json(parsed, &copy), 0);
        assert_true(group_state_equal(gs, copy));
        return copy;
}

static void test_reply_required_to_one(void **state) {
        struct fixture *f = *state;
        const char *e;
        struct obligation *o = NULL;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"text\":\"hi\",\"to\":[\"b\"],\"reply_required\":true}");
        assert_true(group_state_owes(f->gs, "b", e, OBLIGATION_REPLY));
        assert_false(group_state_owes(f->gs, "b", e, OBLIGATION_ACK));
        assert_false(group_state_owes(f->gs, "c", e, OBLIGATION_REPLY));
        assert_false(group_state_owes(f->gs, "a", e, OBLIGATION_REPLY));

        assert_int_equal(group_state_obligations(f->gs, NULL, &o), 1);
        assert_int_equal(o[0].kind, OBLIGATION_REPLY);
        assert_string_equal(o[0].actor_id, "b");
        assert_string_equal(o[0].event_id, e);
        assert_int_equal(o[0].seq, 5);
        assert_string_equal(o[0].from, "a");
        assert_int_equal(o[0].created_ms, TS_MS);
        free(o);

        /* reply_required must be a JSON true; "true" or 1 are not. */
        apply_ok(f, "chat.message", "a", "{\"to\":[\"c\"],\"reply_required\":\"true\"}");
        apply_ok(f, "chat.message", "a", "{\"to\":[\"c\"],\"reply_required\":1}");
        apply_ok(f, "chat.message", "a", "{\"to\":[\"c\"],\"reply_required\":false}");
        assert_string_equal(describe(f), "r:b:5");
}

static void test_reply_required_to_several(void **state) {
        struct fixture *f = *state;

        add_abcd(f);
        /* Listed order, each once, non-ids skipped. */
        apply_ok(f, "chat.message", "a", "{\"to\":[\"c\",\"b\",\"c\",42,\"\"],\"reply_required\":true}");
        assert_string_equal(describe(f), "r:c:5 r:b:5");
}

static void test_reply_required_all(void **state) {
        struct fixture *f = *state;

        add_abcd(f);
        apply_ok(f, "chat.message", "b", "{\"to\":[\"@all\"],\"reply_required\":true}");
        assert_string_equal(describe(f), "r:a:5 r:c:5 r:d:5");
        /* "@all" among ids still means everyone, in member order. */
        apply_ok(f, "chat.message", "a", "{\"to\":[\"d\",\"@all\"],\"reply_required\":true}");
        assert_string_equal(describe(f), "r:a:5 r:c:5 r:d:5 r:b:6 r:c:6 r:d:6");
        /* A single string is a one-element list. */
        apply_ok(f, "chat.message", "a", "{\"to\":\"@all\",\"reply_required\":true}");
        apply_ok(f, "chat.message", "a", "{\"to\":\"c\",\"reply_required\":true}");
        assert_int_equal(count_obligations(f, NULL), 10);
        assert_int_equal(count_obligations(f, "c"), 4);
}

static void test_reply_required_missing_to(void **state) {
        struct fixture *f = *state;

        add_abcd(f);
        apply_ok(f, "chat.message", "c", "{\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"to\":[],\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"to\":null,\"reply_required\":true}");
        assert_string_equal(describe(f), "r:a:5 r:b:5 r:d:5 r:a:6 r:b:6 r:d:6 r:a:7 r:b:7 r:d:7");
        /* A "to" of another type addresses nobody rather than everybody. */
        apply_ok(f, "chat.message", "c", "{\"to\":{\"x\":1},\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"to\":7,\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"to\":[7],\"reply_required\":true}");
        assert_int_equal(count_obligations(f, NULL), 9);
}

static void test_attention_ack(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\",\"c\"],\"priority\":\"attention\"}");
        assert_string_equal(describe(f), "a:b:5 a:c:5");
        assert_true(group_state_owes(f->gs, "b", e, OBLIGATION_ACK));
        assert_false(group_state_owes(f->gs, "b", e, OBLIGATION_REPLY));
        apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"normal\"}");
        apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"]}");
        apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"ATTENTION\"}");
        assert_string_equal(describe(f), "a:b:5 a:c:5");

        apply_ok(f, "chat.ack", "b", "{\"event_id\":\"%s\"}", e);
        assert_string_equal(describe(f), "a:c:5");
        apply_ok(f, "chat.ack", "c", "{\"event_id\":\"%s\"}", e);
        assert_string_equal(describe(f), "");
}

static void test_reply_and_ack(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a",
                     "{\"to\":[\"b\",\"c\"],\"priority\":\"attention\",\"reply_required\":true}");
        assert_string_equal(describe(f), "r:b:5 a:b:5 r:c:5 a:c:5");
        /* A reply closes the reply only; an ack the ack only. */
        apply_ok(f, "chat.message", "b", "{\"to\":[\"a\"],\"reply_to\":\"%s\"}", e);
        assert_string_equal(describe(f), "a:b:5 r:c:5 a:c:5");
        apply_ok(f, "chat.ack", "c", "{\"event_id\":\"%s\"}", e);
        assert_string_equal(describe(f), "a:b:5 r:c:5");
        assert_int_equal(count_obligations(f, "b"), 1);
        assert_int_equal(count_obligations(f, "c"), 1);
        assert_int_equal(count_obligations(f, "a"), 0);
        assert_int_equal(count_obligations(f, "nobody"), 0);
}

static void test_reply_closes_only_repliers(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"@all\"],\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"text\":\"done\",\"reply_to\":\"%s\"}", e);
        assert_string_equal(describe(f), "r:b:5 r:d:5");
        assert_false(group_state_owes(f->gs, "c", e, OBLIGATION_REPLY));
        /* A second reply by c changes nothing. */
        apply_ok(f, "chat.message", "c", "{\"reply_to\":\"%s\"}", e);
        assert_string_equal(describe(f), "r:b:5 r:d:5");
        /* A reply that itself requires replies opens new obligations for its recipients. */
        apply_ok(f, "chat.message", "b", "{\"to\":[\"a\"],\"reply_to\":\"%s\",\"reply_required\":true}", e);
        assert_string_equal(describe(f), "r:d:5 r:a:8");
}

static void test_reply_to_unknown_id(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *before = NULL, *after = NULL;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"reply_required\":true}");
        before = state_string(f->gs);
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"01JD0000000000000000009999\"}");
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"%s-and-more-to-make-it-long\"}", e);
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"\"}");
        apply_ok(f, "chat.message", "b", "{\"reply_to\":5}");
        apply_ok(f, "chat.message", "b", "{\"reply_to\":null}");
        apply_ok(f, "chat.ack", "b", "{\"event_id\":\"nope\"}");
        apply_ok(f, "chat.ack", "b", "{}");
        apply_ok(f, "chat.ack", "b", NULL);
        after = state_string(f->gs);
        assert_string_equal(describe(f), "r:b:5");
        assert_true(group_state_owes(f->gs, "b", e, OBLIGATION_REPLY));
        assert_string_not_equal(before, after); /* only last_seq moved */
}

static void test_reply_by_someone_not_owing(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"reply_required\":true}");
        apply_ok(f, "chat.message", "c", "{\"reply_to\":\"%s\"}", e);     /* member, not addressed */
        apply_ok(f, "chat.message", "a", "{\"reply_to\":\"%s\"}", e);     /* the sender itself */
        apply_ok(f, "chat.message", "zed", "{\"reply_to\":\"%s\"}", e);   /* not a member */
        apply_ok(f, "chat.ack", "b", "{\"event_id\":\"%s\"}", e);         /* b owes a reply, not an ack */
        assert_string_equal(describe(f), "r:b:5");
}

static void test_ack_by_wrong_actor(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"attention\"}");
        apply_ok(f, "chat.ack", "c", "{\"event_id\":\"%s\"}", e);
        apply_ok(f, "chat.ack", "a", "{\"event_id\":\"%s\"}", e);
        apply_ok(f, "chat.ack", "zed", "{\"event_id\":\"%s\"}", e);
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"%s\"}", e); /* a reply is not an ack */
        assert_string_equal(describe(f), "a:b:5");
        assert_true(group_state_owes(f->gs, "b", e, OBLIGATION_ACK));
}

static void test_duplicate_ack(void **state) {
        struct fixture *f = *state;
        const char *e1, *e2;

        add_abcd(f);
        e1 = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"attention\"}");
        e2 = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"attention\"}");
        apply_ok(f, "chat.ack", "b", "{\"event_id\":\"%s\"}", e1);
        apply_ok(f, "chat.ack", "b", "{\"event_id\":\"%s\"}", e1);
        assert_string_equal(describe(f), "a:b:6");
        assert_true(group_state_owes(f->gs, "b", e2, OBLIGATION_ACK));
        assert_int_equal(group_state_last_seq(f->gs), 8);
}

static void test_message_to_non_member(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        e = apply_ok(f, "chat.message", "a", "{\"to\":[\"zed\"],\"reply_required\":true,\"priority\":\"attention\"}");
        assert_string_equal(describe(f), "");
        /* Joining later does not make zed owe an earlier message. */
        add_members(f, (const char *const[]) { "zed", NULL });
        assert_false(group_state_owes(f->gs, "zed", e, OBLIGATION_REPLY));
        apply_ok(f, "chat.message", "a", "{\"to\":[\"ghost\",\"b\"],\"reply_required\":true}");
        assert_string_equal(describe(f), "r:b:7");
        /* An over-long id or "@all" cannot be added as an actor. */
        apply_ok(f, "actor.added", "system",
                 "{\"actor_id\":\"x1234567890123456789012345678901234567890123456789012345678901234\"}");
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"@all\"}");
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"\"}");
        apply_ok(f, "actor.added", "system", "{\"actor_id\":3}");
        assert_int_equal(group_state_members(f->gs, NULL), 5);
}

static void test_sender_never_owes_itself(void **state) {
        struct fixture *f = *state;
        const char *e;

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"to\":[\"a\"],\"reply_required\":true,\"priority\":\"attention\"}");
        assert_string_equal(describe(f), "");
        apply_ok(f, "chat.message", "a", "{\"to\":[\"a\",\"b\"],\"reply_required\":true}");
        assert_string_equal(describe(f), "r:b:6");
        apply_ok(f, "chat.message", "a", "{\"reply_required\":true}");
        assert_int_equal(count_obligations(f, "a"), 0);
        /* A sender that is not a member (the operator): every member owes. */
        e = apply_ok(f, "chat.message", "user", "{\"reply_required\":true}");
        assert_int_equal(count_obligations(f, NULL), 8);
        assert_true(group_state_owes(f->gs, "a", e, OBLIGATION_REPLY));
}

static void test_cursor_forward_only(void **state) {
        struct fixture *f = *state;

        add_abcd(f);
        assert_int_equal(group_state_cursor(f->gs, "b"), 0);
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":3}"); /* seq 5 */
        assert_int_equal(group_state_cursor(f->gs, "b"), 3);
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":2}");
        assert_int_equal(group_state_cursor(f->gs, "b"), 3);
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":6}");
        assert_int_equal(group_state_cursor(f->gs, "b"), 6);
        /* Never past the chat.read itself (seq 8). */
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":1000}");
        assert_int_equal(group_state_cursor(f->gs, "b"), 8);
        /* Bad values are ignored. */
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":-1}");
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":\"9\"}");
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":9.5}");
        apply_ok(f, "chat.read", "b", "{}");
        assert_int_equal(group_state_cursor(f->gs, "b"), 8);
        assert_int_equal(group_state_cursor(f->gs, "c"), 0);
        /* Non-members have no cursor. */
        apply_ok(f, "chat.read", "zed", "{\"up_to_seq\":3}");
        assert_int_equal(group_state_cursor(f->gs, "zed"), 0);
        assert_int_equal(group_state_cursor(f->gs, NULL), 0);
}

static void test_actor_removed(void **state) {
        struct fixture *f = *state;
        const char *const *members;
        const char *e1, *e2;

        add_abcd(f);
        e1 = apply_ok(f, "chat.message", "a", "{\"reply_required\":true,\"priority\":\"attention\"}");
        e2 = apply_ok(f, "chat.message", "b", "{\"to\":[\"c\"],\"reply_required\":true}");
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":6}");
        assert_string_equal(describe(f), "r:b:5 a:b:5 r:c:5 a:c:5 r:d:5 a:d:5 r:c:6");

        apply_ok(f, "actor.removed", "system", "{\"actor_id\":\"b\"}");
        assert_false(group_state_is_member(f->gs, "b"));
        assert_int_equal(group_state_cursor(f->gs, "b"), 0);
        /* What b owed is gone; what c owes to b's message stays. */
        assert_string_equal(describe(f), "r:c:5 a:c:5 r:d:5 a:d:5 r:c:6");
        assert_true(group_state_owes(f->gs, "c", e2, OBLIGATION_REPLY));
        assert_int_equal(group_state_members(f->gs, &members), 3);
        assert_string_equal(members[0], "a");
        assert_string_equal(members[1], "c");
        assert_string_equal(members[2], "d");

        /* Removing a non-member is harmless; adding twice keeps the place. */
        apply_ok(f, "actor.removed", "system", "{\"actor_id\":\"b\"}");
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"c\"}");
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"b\"}");
        assert_int_equal(group_state_members(f->gs, &members), 4);
        assert_string_equal(members[1], "c");
        assert_string_equal(members[3], "b");
        /* Back, b starts afresh. */
        assert_false(group_state_owes(f->gs, "b", e1, OBLIGATION_REPLY));
        assert_int_equal(group_state_cursor(f->gs, "b"), 0);

        apply_ok(f, "actor.removed", "system", "{\"actor_id\":\"c\"}");
        apply_ok(f, "actor.removed", "system", "{\"actor_id\":\"d\"}");
        assert_string_equal(describe(f), "");
}

static void expect_rejected(struct fixture *f, struct json_object *e) {
        _cleanup_free_ char *before = state_string(f->gs), *after = NULL;

        assert_int_equal(group_state_apply(f->gs, e), -EINVAL);
        after = state_string(f->gs);
        assert_string_equal(before, after);
        json_object_put(e);
}

static void test_out_of_order_rejected(void **state) {
        struct fixture *f = *state;
        struct json_object *e;

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"reply_required\":true}");
        apply_ok(f, "chat.read", "b", "{\"up_to_seq\":5}");
        /* last_seq is 6 */
        expect_rejected(f, event_new(8, "chat.message", "a", "{\"reply_required\":true}"));
        expect_rejected(f, event_new(6, "chat.read", "c", "{\"up_to_seq\":6}"));
        expect_rejected(f, event_new(1, "actor.removed", "system", "{\"actor_id\":\"b\"}"));
        expect_rejected(f, event_new(0, "actor.added", "system", "{\"actor_id\":\"e\"}"));
        e = event_new(7, "actor.added", "system", "{\"actor_id\":\"e\"}");
        json_object_object_add(e, "seq", json_object_new_string("7"));
        expect_rejected(f, e);
        e = event_new(7, "actor.added", "system", "{\"actor_id\":\"e\"}");
        json_object_object_del(e, "seq");
        expect_rejected(f, e);
        e = event_new(7, "actor.added", "system", "{\"actor_id\":\"e\"}");
        json_object_object_del(e, "kind");
        expect_rejected(f, e);
        expect_rejected(f, json_tokener_parse("[1,2]"));
        assert_int_equal(group_state_apply(f->gs, NULL), -EINVAL);
        assert_int_equal(group_state_last_seq(f->gs), 6);
        /* And the right one still goes in. */
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"e\"}");
        assert_true(group_state_is_member(f->gs, "e"));
}

static void test_malformed_chat_rejected(void **state) {
        struct fixture *f = *state;
        struct json_object *e;

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"priority\":\"attention\"}");
        expect_rejected(f, event_new(6, "chat.message", NULL, "{\"reply_required\":true}"));
        expect_rejected(f, event_new(6, "chat.ack", NULL, "{\"event_id\":\"x\"}"));
        expect_rejected(f, event_new(6, "chat.read", NULL, "{\"up_to_seq\":5}"));
        expect_rejected(f, event_new(6, "chat.message",
                                     "x1234567890123456789012345678901234567890123456789012345678901234",
                                     "{\"reply_required\":true}"));
        expect_rejected(f, event_new(6, "chat.message", "", "{}"));
        e = event_new(6, "chat.ack", NULL, "{\"event_id\":\"x\"}");
        json_object_object_add(e, "by", json_object_new_int(3));
        expect_rejected(f, e);
        e = event_new(6, "chat.message", "a", "{\"reply_required\":true}");
        json_object_object_del(e, "id");
        expect_rejected(f, e);
        e = event_new(6, "chat.message", "a", "{\"reply_required\":true}");
        json_object_object_add(e, "id", json_object_new_string("01JD00000000000000000000000")); /* 27 */
        expect_rejected(f, e);
        /* Events outside chat.* do not need "by". */
        apply_ok(f, "actor.added", NULL, "{\"actor_id\":\"e\"}");
        /* A message without data is a message to everybody that asks for nothing. */
        apply_ok(f, "chat.message", "a", NULL);
        assert_string_equal(describe(f), "a:b:5");
}

static void test_unknown_kind_advances(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *before = NULL, *after = NULL;

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"reply_required\":true}");
        before = state_string(f->gs);
        apply_ok(f, "group.started", "system", NULL);
        apply_ok(f, "system.notify", NULL, "{\"to\":[\"b\"],\"reply_required\":true}");
        apply_ok(f, "chat.typing", NULL, "{}"); /* unknown, even if chat.* */
        apply_ok(f, "actor.restarted", "system", "{\"actor_id\":\"b\"}");
        apply_ok(f, "", "system", NULL);
        assert_int_equal(group_state_last_seq(f->gs), 10);
        after = state_string(f->gs);
        assert_string_equal(describe(f), "r:b:5 r:c:5 r:d:5");
        assert_true(group_state_is_member(f->gs, "b"));
        assert_string_not_equal(before, after);
}

static void test_addressed_to(void **state) {
        struct fixture *f = *state;
        _cleanup_json_ struct json_object *to_b = NULL, *to_all = NULL, *no_to = NULL, *empty = NULL,
                                          *to_str = NULL, *to_bad = NULL, *to_zed = NULL, *read = NULL,
                                          *no_by = NULL;

        add_abcd(f);
        to_b = event_new(100, "chat.message", "a", "{\"to\":[\"b\",\"a\"]}");
        to_all = event_new(101, "chat.message", "a", "{\"to\":[\"@all\"]}");
        no_to = event_new(102, "chat.message", "a", "{\"text\":\"x\"}");
        empty = event_new(103, "chat.message", "a", "{\"to\":[]}");
        to_str = event_new(104, "chat.message", "a", "{\"to\":\"c\"}");
        to_bad = event_new(105, "chat.message", "a", "{\"to\":5}");
        to_zed = event_new(106, "chat.message", "a", "{\"to\":[\"zed\"]}");
        read = event_new(107, "chat.read", "a", "{\"to\":[\"b\"]}");
        no_by = event_new(108, "chat.message", NULL, "{\"to\":[\"b\"]}");

        assert_true(group_state_addressed_to(f->gs, to_b, "b"));
        assert_false(group_state_addressed_to(f->gs, to_b, "c"));
        assert_false(group_state_addressed_to(f->gs, to_b, "a")); /* the sender */
        for (const char *const *x = (const char *const[]) { "b", "c", "d", NULL }; *x; x++) {
                assert_true(group_state_addressed_to(f->gs, to_all, *x));
                assert_true(group_state_addressed_to(f->gs, no_to, *x));
                assert_true(group_state_addressed_to(f->gs, empty, *x));
        }
        assert_false(group_state_addressed_to(f->gs, to_all, "a"));
        assert_false(group_state_addressed_to(f->gs, to_all, "zed"));
        assert_true(group_state_addressed_to(f->gs, to_str, "c"));
        assert_false(group_state_addressed_to(f->gs, to_str, "b"));
        assert_false(group_state_addressed_to(f->gs, to_bad, "b"));
        assert_false(group_state_addressed_to(f->gs, read, "b"));
        assert_false(group_state_addressed_to(f->gs, no_by, "b"));
        assert_false(group_state_addressed_to(f->gs, to_b, NULL));
        assert_false(group_state_addressed_to(f->gs, NULL, "b"));
        /* Members as they are now: zed is addressed once it joined, b no more once removed. */
        assert_false(group_state_addressed_to(f->gs, to_zed, "zed"));
        apply_ok(f, "actor.added", "system", "{\"actor_id\":\"zed\"}");
        apply_ok(f, "actor.removed", "system", "{\"actor_id\":\"b\"}");
        assert_true(group_state_addressed_to(f->gs, to_zed, "zed"));
        assert_true(group_state_addressed_to(f->gs, to_all, "zed"));
        assert_false(group_state_addressed_to(f->gs, to_all, "b"));
        assert_false(group_state_addressed_to(f->gs, to_b, "b"));
}

static uint64_t created_ms_for_ts(const char *ts) {
        _cleanup_json_ struct json_object *e = NULL;
        struct group_state *gs = NULL;
        struct obligation *o = NULL;
        uint64_t ms;

        assert_int_equal(group_state_new(&gs), 0);
        e = event_new(1, "actor.added", NULL, "{\"actor_id\":\"b\"}");
        assert_int_equal(group_state_apply(gs, e), 0);
        json_object_put(e);
        e = event_new(2, "chat.message", "a", "{\"reply_required\":true}");
        if (ts)
                json_object_object_add(e, "ts", json_object_new_string(ts));
        else
                json_object_object_add(e, "ts", json_object_new_int(5));
        assert_int_equal(group_state_apply(gs, e), 0);
        assert_int_equal(group_state_obligations(gs, NULL, &o), 1);
        ms = o[0].created_ms;
        free(o);
        group_state_free(gs);
        return ms;
}

static void test_created_ms(void **state) {
        assert_int_equal(created_ms_for_ts(TS), TS_MS);
        assert_int_equal(created_ms_for_ts("2026-11-22T14:36:41Z"), TS_MS - 123);
        assert_int_equal(created_ms_for_ts("2026-11-22T14:36:41.1Z"), TS_MS - 23);
        assert_int_equal(created_ms_for_ts("2026-11-22T14:36:41.123456789Z"), TS_MS);
        assert_int_equal(created_ms_for_ts("2024-02-29T23:59:59.999Z"), UINT64_C(1709251199999));
        assert_int_equal(created_ms_for_ts("1970-01-01T00:00:00.000Z"), 0);
        static const char *const bad[] = {
                "", "garbage", "2026-11-22 14:36:41.123Z", "2026-11-22T14:36:41.123", "2026-11-22T14:36:41.123+01:00",
                "2026-13-22T14:36:41.123Z", "2026-11-31T14:36:41.123Z", "2025-02-29T14:36:41.123Z",
                "2026-11-22T24:36:41.123Z", "2026-11-22T14:60:41.123Z", "2026-11-22T14:36:61.123Z",
                "2026-11-22T14:36:41.Z", "2026-11-22T14:36:41.1234567890Z", "2026-11-22T14:36:41.12aZ",
                "1969-12-31T23:59:59.999Z", "2026-1a-22T14:36:41.123Z", "2026-11-22T14:36:41.123Zjunk",
                "-026-11-22T14:36:41.123Z", "2026-11-00T14:36:41.123Z",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(created_ms_for_ts(bad[i]), 0);
        assert_int_equal(created_ms_for_ts(NULL), 0); /* not a string */
}

static void test_obligations_filter_and_order(void **state) {
        struct fixture *f = *state;
        struct obligation *o = NULL;
        const char *e1, *e2, *e3;

        add_abcd(f);
        e1 = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\",\"c\"],\"reply_required\":true}");
        e2 = apply_ok(f, "chat.message", "c", "{\"to\":[\"b\"],\"priority\":\"attention\"}");
        e3 = apply_ok(f, "chat.message", "d", "{\"to\":[\"b\"],\"reply_required\":true}");
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"%s\"}", e1);
        assert_int_equal(group_state_obligations(f->gs, "b", &o), 2);
        assert_string_equal(o[0].event_id, e2);
        assert_int_equal(o[0].kind, OBLIGATION_ACK);
        assert_string_equal(o[1].event_id, e3);
        free(o);
        o = NULL;
        assert_int_equal(group_state_obligations(f->gs, "zed", &o), 0);
        assert_null(o);
        assert_int_equal(group_state_obligations(f->gs, NULL, NULL), -EINVAL);
        assert_string_equal(describe(f), "r:c:5 a:b:6 r:b:7");
}

static void test_reused_event_id(void **state) {
        struct fixture *f = *state;
        struct group_state *copy;
        struct json_object *e;

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"to\":[\"b\"],\"reply_required\":true}");
        /* A (corrupt) ledger repeating an id does not create a duplicate obligation. */
        e = event_new(6, "chat.message", "c", "{\"to\":[\"b\",\"d\"],\"reply_required\":true}");
        json_object_object_add(e, "id", json_object_new_string(eid(5)));
        assert_int_equal(group_state_apply(f->gs, e), 0);
        json_object_put(e);
        assert_string_equal(describe(f), "r:b:5 r:d:6");
        copy = roundtrip(f->gs);
        group_state_free(copy);
}

static void test_json_roundtrip_and_equal(void **state) {
        struct fixture *f = *state;
        struct group_state *copy, *empty = NULL, *empty_copy;
        _cleanup_free_ char *s1 = NULL, *s2 = NULL;

        assert_int_equal(group_state_new(&empty), 0);
        empty_copy = roundtrip(empty);
        group_state_free(empty_copy);

        add_abcd(f);
        apply_ok(f, "chat.message", "a", "{\"reply_required\":true,\"priority\":\"attention\"}");
        apply_ok(f, "chat.read", "c", "{\"up_to_seq\":4}");
        apply_ok(f, "chat.ack", "d", "{\"event_id\":\"%s\"}", eid(5));
        assert_false(group_state_equal(f->gs, empty));
        assert_true(group_state_equal(f->gs, f->gs));
        assert_true(group_state_equal(NULL, NULL));
        assert_false(group_state_equal(f->gs, NULL));
        group_state_free(empty);

        copy = roundtrip(f->gs);
        s1 = state_string(f->gs);
        s2 = state_string(copy);
        assert_string_equal(s1, s2);
        assert_int_equal(group_state_cursor(copy, "c"), 4);
        assert_true(group_state_owes(copy, "b", eid(5), OBLIGATION_ACK));
        assert_false(group_state_owes(copy, "d", eid(5), OBLIGATION_ACK));

        /* Both continue identically; and each difference is seen. */
        {
                _cleanup_json_ struct json_object *e = event_new(f->seq + 1, "chat.read", "b", "{\"up_to_seq\":2}");
                assert_int_equal(group_state_apply(copy, e), 0);
                assert_false(group_state_equal(f->gs, copy));
                apply_ok(f, "chat.read", "b", "{\"up_to_seq\":2}");
                assert_true(group_state_equal(f->gs, copy));
        }
        {
                _cleanup_json_ struct json_object *e = event_new(f->seq + 1, "chat.ack", "b", "{}");
                json_object_object_add(json_object_object_get(e, "data"), "event_id", json_object_new_string(eid(5)));
                assert_int_equal(group_state_apply(copy, e), 0);
                apply_ok(f, "chat.ack", "c", "{\"event_id\":\"%s\"}", eid(5));
                assert_false(group_state_equal(f->gs, copy)); /* same counts, different obligations */
        }
        group_state_free(copy);
}

static void test_equal_sees_member_order_and_cursors(void **state) {
        struct group_state *x = NULL, *y = NULL;
        _cleanup_json_ struct json_object *jx = json_tokener_parse(
                "{\"format_version\":1,\"last_seq\":2,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[]}");
        _cleanup_json_ struct json_object *jy = json_tokener_parse(
                "{\"format_version\":1,\"last_seq\":2,\"members\":[\"b\",\"a\"],\"cursors\":{\"a\":0},\"obligations\":[]}");

        assert_int_equal(group_state_from_json(jx, &x), 0);
        assert_int_equal(group_state_from_json(jy, &y), 0);
        assert_false(group_state_equal(x, y));
        group_state_free(x);
        group_state_free(y);

        /* Only a cursor differs. */
        json_object_put(jx);
        json_object_put(jy);
        jx = json_tokener_parse(
                "{\"format_version\":1,\"last_seq\":2,\"members\":[\"a\",\"b\"],\"cursors\":{\"b\":1},\"obligations\":[]}");
        jy = json_tokener_parse(
                "{\"format_version\":1,\"last_seq\":2,\"members\":[\"a\",\"b\"],\"cursors\":{\"b\":2},\"obligations\":[]}");
        assert_int_equal(group_state_from_json(jx, &x), 0);
        assert_int_equal(group_state_from_json(jy, &y), 0);
        assert_false(group_state_equal(x, y));
        assert_int_equal(group_state_cursor(y, "b"), 2);
        group_state_free(x);
        group_state_free(y);
}

static void test_from_json_rejects(void **state) {
        static const char *const bad[] = {
                "[]",
                "{}",
                "{\"format_version\":0,\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":\"1\",\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1.0,\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":-1,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":\"3\",\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":18446744073709551615,\"members\":[],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":{},\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[],\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[],\"cursors\":{}}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[],\"cursors\":[],\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":{}}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":[],\"x\":1}",
                /* members */
                "{\"format_version\":1,\"last_seq\":0,\"members\":[1],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[\"\"],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[\"@all\"],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[\"a\",\"a\"],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":[\"a\\u0000b\"],\"cursors\":{},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":0,\"members\":"
                "[\"x1234567890123456789012345678901234567890123456789012345678901234\"],\"cursors\":{},"
                "\"obligations\":[]}",
                /* cursors */
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\"],\"cursors\":{\"b\":1},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\"],\"cursors\":{\"a\":6},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\"],\"cursors\":{\"a\":-1},\"obligations\":[]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\"],\"cursors\":{\"a\":\"1\"},\"obligations\":[]}",
                /* obligations */
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[7]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"nag\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":1,\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"c\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"01JD00000000000000000000001\",\"seq\":3,"
                "\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":6,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":0,\"from\":\"a\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"b\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"\",\"created_ms\":0}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":-1}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\"}]}",
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0,"
                "\"extra\":true}]}",
                /* duplicate */
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0},{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e1\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                /* not oldest first */
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e4\",\"seq\":4,\"from\":\"a\",\"created_ms\":0},{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e3\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
                /* one seq, two different messages */
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e3\",\"seq\":3,\"from\":\"a\",\"created_ms\":0},{"
                "\"kind\":\"ack\",\"actor_id\":\"b\",\"event_id\":\"e9\",\"seq\":3,\"from\":\"a\",\"created_ms\":0}]}",
        };
        static const char *const good =
                "{\"format_version\":1,\"last_seq\":5,\"members\":[\"a\",\"b\"],\"cursors\":{\"b\":5},\"obligations\":[{"
                "\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"e3\",\"seq\":3,\"from\":\"a\",\"created_ms\":7},{"
                "\"kind\":\"ack\",\"actor_id\":\"b\",\"event_id\":\"e3\",\"seq\":3,\"from\":\"a\",\"created_ms\":7},{"
                "\"kind\":\"ack\",\"actor_id\":\"a\",\"event_id\":\"e4\",\"seq\":4,\"from\":\"b\",\"created_ms\":0}]}";
        struct group_state *gs = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(bad[i]);

                if (!o)
                        fail_msg("test input %zu does not parse", i);
                gs = NULL;
                if (group_state_from_json(o, &gs) != -EBADMSG)
                        fail_msg("accepted or wrong error for input %zu: %s", i, bad[i]);
                assert_null(gs);
        }

        {
                _cleanup_json_ struct json_object *o = json_tokener_parse(
                        "{\"format_version\":2,\"last_seq\":0,\"members\":[],\"cursors\":{},\"obligations\":[],"
                        "\"new\":1}");
                assert_int_equal(group_state_from_json(o, &gs), -EPROTONOSUPPORT);
                assert_int_equal(group_state_from_json(NULL, &gs), -EBADMSG);
        }
        {
                _cleanup_json_ struct json_object *o = json_tokener_parse(good);
                assert_int_equal(group_state_from_json(o, &gs), 0);
                assert_int_equal(group_state_last_seq(gs), 5);
                assert_int_equal(group_state_cursor(gs, "b"), 5);
                assert_true(group_state_owes(gs, "b", "e3", OBLIGATION_ACK));
                assert_true(group_state_owes(gs, "a", "e4", OBLIGATION_ACK));
                assert_false(group_state_owes(gs, "a", "e4", OBLIGATION_REPLY));
                group_state_free(gs);
        }
}

/* ---- randomized: incremental vs. rebuild vs. a brute-force reference model ---------------- */

#define RANDOM_EVENTS 20000
#define N_POOL 8

static uint64_t random_seed;
static uint64_t random_state;
static size_t random_step;

#define rcheck(cond)                                                                                   \
        do {                                                                                           \
                if (!(cond)) {                                                                         \
                        print_error("randomized test failed at event %zu, seed %" PRIu64                \
                                    " (rerun: GROUP_STATE_TEST_SEED=%" PRIu64 "): %s\n",               \
                                    random_step, random_seed, random_seed, #cond);                     \
                        fail();                                                                        \
                }                                                                                      \
        } while (0)

static uint64_t rnd(void) {
        /* splitmix64 */
        uint64_t z = (random_state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n) {
        return (unsigned) (rnd() % n);
}

static const char *const pool[N_POOL] = { "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7" };

struct ref_obligation {
        enum obligation_kind kind;
        const char *actor; /* from pool[] */
        char event_id[27];
        uint64_t seq;
        const char *from;
        uint64_t created_ms;
};

/* O(n) everything: an ordered member list, a cursor per pool actor, open obligations in the
 * order they were created. */
struct reference {
        const char *members[N_POOL];
        size_t n_members;
        uint64_t cursor[N_POOL];
        struct ref_obligation *open;
        size_t n_open, n_allocated;
        char (*message_ids)[27];
        size_t n_messages;
};

static int pool_index(const char *id) {
        for (int i = 0; i < N_POOL; i++)
                if (streq(pool[i], id))
                        return i;
        return -1;
}

static bool ref_is_member(const struct reference *r, const char *id) {
        for (size_t i = 0; i < r->n_members; i++)
                if (streq(r->members[i], id))
                        return true;
        return false;
}

static void ref_close(struct reference *r, enum obligation_kind kind, const char *actor, const char *event_id) {
        for (size_t i = 0; i < r->n_open; i++)
                if (r->open[i].kind == kind && streq(r->open[i].actor, actor) && streq(r->open[i].event_id, event_id)) {
                        memmove(r->open + i, r->open + i + 1, (r->n_open - i - 1) * sizeof *r->open);
                        r->n_open--;
                        return;
                }
}

static void ref_open(struct reference *r, enum obligation_kind kind, const char *actor, const char *event_id,
                     uint64_t seq, const char *from, uint64_t created_ms) {
        if (r->n_open == r->n_allocated) {
                r->n_allocated = r->n_allocated ? r->n_allocated * 2 : 64;
                r->open = realloc(r->open, r->n_allocated * sizeof *r->open);
                assert_non_null(r->open);
        }
        r->open[r->n_open] = (struct ref_obligation) { .kind = kind, .actor = actor, .seq = seq, .from = from,
                                                        .created_ms = created_ms };
        snprintf(r->open[r->n_open].event_id, sizeof r->open[r->n_open].event_id, "%s", event_id);
        r->n_open++;
}

enum to_mode { TO_MISSING, TO_EMPTY, TO_LIST, TO_STRING, TO_NUMBER };

/* One generated event, applied to the reference from these fields and to the implementation
 * as JSON. */
struct gen_event {
        uint64_t seq;
        char id[27];
        char ts[40];
        uint64_t ts_ms; /* what created_ms should be: 0 for a bad ts */
        const char *kind;
        const char *by; /* NULL: none */
        const char *actor_id; /* actor.* */
        enum to_mode to_mode;
        const char *to[6]; /* ids, "@all", "nobody", or NULL for a non-string entry */
        size_t n_to;
        bool reply_required, attention;
        const char *reply_to; /* NULL: none; else reply_to_buf */
        char reply_to_buf[27];
        uint64_t up_to_seq;
        bool up_to_bad;
};

static void ref_apply(struct reference *r, const struct gen_event *g) {
        if (streq(g->kind, "actor.added")) {
                if (!ref_is_member(r, g->actor_id))
                        r->members[r->n_members++] = g->actor_id;
        } else if (streq(g->kind, "actor.removed")) {
                for (size_t i = 0; i < r->n_members; i++)
                        if (streq(r->members[i], g->actor_id)) {
                                memmove(r->members + i, r->members + i + 1, (r->n_members - i - 1) * sizeof(char *));
                                r->n_members--;
                                r->cursor[pool_index(g->actor_id)] = 0;
                                for (size_t j = 0; j < r->n_open;)
                                        if (streq(r->open[j].actor, g->actor_id)) {
                                                memmove(r->open + j, r->open + j + 1,
                                                        (r->n_open - j - 1) * sizeof *r->open);
                                                r->n_open--;
                                        } else
                                                j++;
                                break;
                        }
        } else if (streq(g->kind, "chat.message")) {
                const char *recipients[N_POOL];
                size_t n = 0;
                bool everyone = g->to_mode == TO_MISSING || g->to_mode == TO_EMPTY;

                if (g->reply_to)
                        ref_close(r, OBLIGATION_REPLY, g->by, g->reply_to);
                for (size_t i = 0; i < g->n_to; i++)
                        if (streq(g->to[i], "@all"))
                                everyone = true;
                if (g->to_mode == TO_NUMBER)
                        everyone = false;
                for (size_t i = 0; i < r->n_members && everyone; i++)
                        if (!streq(r->members[i], g->by))
                                recipients[n++] = r->members[i];
                if (!everyone && (g->to_mode == TO_LIST || g->to_mode == TO_STRING))
                        for (size_t i = 0; i < g->n_to; i++) {
                                bool dup = false;

                                if (!g->to[i] || !ref_is_member(r, g->to[i]) || streq(g->to[i], g->by))
                                        continue;
                                for (size_t j = 0; j < n; j++)
                                        dup = dup || streq(recipients[j], g->to[i]);
                                if (!dup)
                                        recipients[n++] = pool[pool_index(g->to[i])];
                        }
                for (size_t i = 0; i < n; i++) {
                        if (g->reply_required)
                                ref_open(r, OBLIGATION_REPLY, recipients[i], g->id, g->seq, g->by, g->ts_ms);
                        if (g->attention)
                                ref_open(r, OBLIGATION_ACK, recipients[i], g->id, g->seq, g->by, g->ts_ms);
                }
        } else if (streq(g->kind, "chat.ack")) {
                if (g->reply_to)
                        ref_close(r, OBLIGATION_ACK, g->by, g->reply_to);
        } else if (streq(g->kind, "chat.read")) {
                int i = pool_index(g->by);
                uint64_t up = g->up_to_seq < g->seq ? g->up_to_seq : g->seq;

                if (i >= 0 && ref_is_member(r, g->by) && !g->up_to_bad && up > r->cursor[i])
                        r->cursor[i] = up;
        }
}

static struct json_object *gen_to_json(const struct gen_event *g) {
        struct json_object *e = json_object_new_object(), *data = json_object_new_object();

        assert_non_null(e);
        assert_non_null(data);
        json_object_object_add(e, "v", json_object_new_int(1));
        json_object_object_add(e, "id", json_object_new_string(g->id));
        json_object_object_add(e, "seq", json_object_new_int64((int64_t) g->seq));
        json_object_object_add(e, "ts", json_object_new_string(g->ts));
        json_object_object_add(e, "kind", json_object_new_string(g->kind));
        json_object_object_add(e, "group_id", json_object_new_string("g1"));
        if (g->by)
                json_object_object_add(e, "by", json_object_new_string(g->by));
        if (g->actor_id)
                json_object_object_add(data, "actor_id", json_object_new_string(g->actor_id));
        if (streq(g->kind, "chat.message")) {
                struct json_object *to = NULL;

                json_object_object_add(data, "text", json_object_new_string("hello"));
                switch (g->to_mode) {
                case TO_MISSING:
                        break;
                case TO_EMPTY:
                case TO_LIST:
                        to = json_object_new_array();
                        for (size_t i = 0; i < g->n_to; i++)
                                json_object_array_add(to, g->to[i] ? json_object_new_string(g->to[i]) :
                                                                     json_object_new_int(9));
                        break;
                case TO_STRING:
                        to = json_object_new_string(g->to[0]);
                        break;
                case TO_NUMBER:
                        to = json_object_new_int(3);
                        break;
                }
                if (to)
                        json_object_object_add(data, "to", to);
                if (g->reply_required || rnd_below(4) == 0)
                        json_object_object_add(data, "reply_required", json_object_new_boolean(g->reply_required));
                if (g->attention || rnd_below(3) == 0)
                        json_object_object_add(data, "priority",
                                               json_object_new_string(g->attention ? "attention" : "normal"));
                if (g->reply_to)
                        json_object_object_add(data, "reply_to", json_object_new_string(g->reply_to));
        } else if (streq(g->kind, "chat.ack")) {
                if (g->reply_to)
                        json_object_object_add(data, "event_id", json_object_new_string(g->reply_to));
        } else if (streq(g->kind, "chat.read")) {
                json_object_object_add(data, "up_to_seq", g->up_to_bad ? json_object_new_string("x") :
                                                                         json_object_new_int64((int64_t) g->up_to_seq));
        }
        json_object_object_add(e, "data", data);
        return e;
}

/* A copy: the reference's arrays move under the pointers it was picked from. */
static void set_reply_to(struct gen_event *g, const char *id) {
        snprintf(g->reply_to_buf, sizeof g->reply_to_buf, "%s", id);
        g->reply_to = g->reply_to_buf;
}

static const char *random_actor(void) {
        /* Mostly pool actors, sometimes an outsider (the operator, an unknown id). */
        unsigned x = rnd_below(20);

        return x < 18 ? pool[x % N_POOL] : x == 18 ? "user" : "nobody";
}

static void gen_random(struct reference *r, uint64_t seq, struct gen_event *g) {
        unsigned roll = rnd_below(100);
        uint64_t base_s = UINT64_C(1795358201) + seq * 7;
        time_t t = (time_t) base_s;
        struct tm tm;

        *g = (struct gen_event) { .seq = seq };
        snprintf(g->id, sizeof g->id, "01JE%022" PRIu64, seq);
        assert_non_null(gmtime_r(&t, &tm));
        assert_true(strftime(g->ts, sizeof g->ts, "%Y-%m-%dT%H:%M:%S", &tm) > 0);
        snprintf(g->ts + strlen(g->ts), sizeof g->ts - strlen(g->ts), ".%03uZ", (unsigned) (seq % 1000));
        g->ts_ms = base_s * 1000 + seq % 1000;

        if (roll < 9) {
                g->kind = "actor.added";
                g->by = rnd_below(2) ? "system" : NULL;
                g->actor_id = pool[rnd_below(N_POOL)];
        } else if (roll < 13) {
                g->kind = "actor.removed";
                g->by = "system";
                g->actor_id = pool[rnd_below(N_POOL)];
        } else if (roll < 50) {
                unsigned to_roll = rnd_below(100);

                g->kind = "chat.message";
                if (r->n_open > 0 && rnd_below(5) < 2) {
                        /* Reply to something owed (only a reply obligation closes). */
                        const struct ref_obligation *o = &r->open[rnd_below((unsigned) r->n_open)];
                        g->by = o->actor;
                        set_reply_to(g, o->event_id);
                } else {
                        g->by = random_actor();
                        if (r->n_messages > 0 && rnd_below(4) == 0)
                                set_reply_to(g, r->message_ids[rnd_below((unsigned) r->n_messages)]);
                        else if (rnd_below(20) == 0)
                                set_reply_to(g, "01JD0000000000000000000000");
                }
                if (to_roll < 12)
                        g->to_mode = TO_MISSING;
                else if (to_roll < 17)
                        g->to_mode = TO_EMPTY;
                else if (to_roll < 30) {
                        g->to_mode = TO_LIST;
                        g->to[g->n_to++] = "@all";
                } else if (to_roll < 36) {
                        g->to_mode = TO_STRING;
                        g->to[g->n_to++] = rnd_below(3) ? random_actor() : "@all";
                } else if (to_roll < 38)
                        g->to_mode = TO_NUMBER;
                else {
                        g->to_mode = TO_LIST;
                        g->n_to = 1 + rnd_below(5);
                        for (size_t i = 0; i < g->n_to; i++) {
                                unsigned x = rnd_below(30);
                                g->to[i] = x == 0 ? NULL : x == 1 ? "@all" : random_actor();
                        }
                }
                g->reply_required = rnd_below(2);
                g->attention = rnd_below(3) == 0;
                if (rnd_below(40) == 0) {
                        snprintf(g->ts, sizeof g->ts, "%s", rnd_below(2) ? "yesterday" : "2026-02-30T10:00:00.000Z");
                        g->ts_ms = 0;
                }
        } else if (roll < 70) {
                g->kind = "chat.ack";
                if (r->n_open > 0 && rnd_below(10) < 7) {
                        const struct ref_obligation *o = &r->open[rnd_below((unsigned) r->n_open)];
                        g->by = rnd_below(6) ? o->actor : random_actor();
                        set_reply_to(g, o->event_id);
                } else {
                        g->by = random_actor();
                        if (r->n_messages > 0 && rnd_below(2))
                                set_reply_to(g, r->message_ids[rnd_below((unsigned) r->n_messages)]);
                }
        } else if (roll < 90) {
                g->kind = "chat.read";
                g->by = random_actor();
                g->up_to_seq = rnd_below((unsigned) seq + 10);
                g->up_to_bad = rnd_below(30) == 0;
        } else {
                static const char *const others[] = { "group.paused", "system.notify", "actor.started", "chat.typing" };
                g->kind = others[rnd_below(ELEMENTSOF(others))];
                g->by = rnd_below(2) ? random_actor() : NULL;
        }
}

static void compare_with_reference(struct group_state *gs, const struct reference *r) {
        const char *const *members;
        struct obligation *o = NULL;
        int n;

        rcheck(group_state_members(gs, &members) == r->n_members);
        for (size_t i = 0; i < r->n_members; i++)
                rcheck(streq(members[i], r->members[i]));
        for (int i = 0; i < N_POOL; i++) {
                rcheck(group_state_cursor(gs, pool[i]) == r->cursor[i]);
                rcheck(group_state_is_member(gs, pool[i]) == ref_is_member(r, pool[i]));
        }
        n = group_state_obligations(gs, NULL, &o);
        rcheck(n >= 0 && (size_t) n == r->n_open);
        for (size_t i = 0; i < r->n_open; i++) {
                rcheck(o[i].kind == r->open[i].kind);
                rcheck(streq(o[i].actor_id, r->open[i].actor));
                rcheck(streq(o[i].event_id, r->open[i].event_id));
                rcheck(o[i].seq == r->open[i].seq);
                rcheck(streq(o[i].from, r->open[i].from));
                rcheck(o[i].created_ms == r->open[i].created_ms);
                rcheck(group_state_owes(gs, r->open[i].actor, r->open[i].event_id, r->open[i].kind));
        }
        free(o);
        for (int i = 0; i < N_POOL; i++) {
                size_t expected = 0;

                for (size_t j = 0; j < r->n_open; j++)
                        expected += streq(r->open[j].actor, pool[i]);
                o = NULL;
                n = group_state_obligations(gs, pool[i], &o);
                rcheck(n >= 0 && (size_t) n == expected);
                free(o);
        }
}

static void test_randomized_against_reference(void **state) {
        struct json_object **events = calloc(RANDOM_EVENTS, sizeof *events);
        struct reference r = {};
        struct group_state *gs = NULL, *rebuilt = NULL;
        const char *env = getenv("GROUP_STATE_TEST_SEED");
        size_t roundtrips = 0, rejections = 0, max_open = 0;

        assert_non_null(events);
        r.message_ids = calloc(RANDOM_EVENTS, sizeof *r.message_ids);
        assert_non_null(r.message_ids);
        random_seed = env ? strtoull(env, NULL, 0) : ((uint64_t) time(NULL) << 20) ^ (uint64_t) getpid();
        random_state = random_seed;
        assert_int_equal(group_state_new(&gs), 0);

        for (random_step = 0; random_step < RANDOM_EVENTS; random_step++) {
                uint64_t seq = random_step + 1;
                struct gen_event g;

                gen_random(&r, seq, &g);
                events[random_step] = gen_to_json(&g);
                rcheck(group_state_apply(gs, events[random_step]) == 0);
                ref_apply(&r, &g);
                if (streq(g.kind, "chat.message"))
                        memcpy(r.message_ids[r.n_messages++], g.id, sizeof g.id);
                if (r.n_open > max_open)
                        max_open = r.n_open;

                if (rnd_below(300) == 0) {
                        /* Out of order: refused, state unchanged. */
                        _cleanup_free_ char *before = state_string(gs), *after = NULL;
                        struct json_object *e = json_object_get(events[rnd_below((unsigned) seq)]);
                        struct gen_event later;

                        rcheck(group_state_apply(gs, e) == -EINVAL);
                        json_object_put(e);
                        gen_random(&r, seq + 2, &later);
                        e = gen_to_json(&later);
                        rcheck(group_state_apply(gs, e) == -EINVAL);
                        json_object_put(e);
                        after = state_string(gs);
                        rcheck(streq(before, after));
                        rejections++;
                }
                if (rnd_below(400) == 0) {
                        _cleanup_json_ struct json_object *j = group_state_to_json(gs), *parsed = NULL;
                        struct group_state *copy = NULL;

                        rcheck(j);
                        parsed = json_tokener_parse(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
                        rcheck(parsed);
                        rcheck(group_state_from_json(parsed, &copy) == 0);
                        rcheck(group_state_equal(gs, copy));
                        group_state_free(gs);
                        gs = copy;
                        roundtrips++;
                }
                /* Every open obligation is found by its key (exercises the hash table's
                 * probing and deletion); the full comparison is costlier, so less often. */
                for (size_t i = 0; i < r.n_open; i++)
                        rcheck(group_state_owes(gs, r.open[i].actor, r.open[i].event_id, r.open[i].kind));
                if (random_step % 500 == 499)
                        compare_with_reference(gs, &r);
        }
        random_step = RANDOM_EVENTS;
        compare_with_reference(gs, &r);

        assert_int_equal(group_state_new(&rebuilt), 0);
        for (size_t i = 0; i < RANDOM_EVENTS; i++)
                rcheck(group_state_apply(rebuilt, events[i]) == 0);
        rcheck(group_state_equal(gs, rebuilt));
        compare_with_reference(rebuilt, &r);
        /* The run exercised what it should. */
        rcheck(roundtrips > 10 && rejections > 10 && max_open > 20);
        if (getenv("GROUP_STATE_TEST_VERBOSE"))
                print_message("seed %" PRIu64 ": %zu round trips, %zu rejections, at most %zu open, %zu open at the end\n",
                              random_seed, roundtrips, rejections, max_open, r.n_open);

        for (size_t i = 0; i < RANDOM_EVENTS; i++)
                json_object_put(events[i]);
        free(events);
        free(r.open);
        free(r.message_ids);
        group_state_free(gs);
        group_state_free(rebuilt);
}

/* --- reminders and schedules ------------------------------------------------------------------ */

static struct obligation find_obligation(struct fixture *f, const char *actor, uint64_t seq, enum obligation_kind kind) {
        struct obligation *o = NULL, found = {};
        int n = group_state_obligations(f->gs, actor, &o);
        bool ok = false;

        for (int i = 0; i < n; i++)
                if (o[i].seq == seq && o[i].kind == kind) {
                        found = o[i];
                        ok = true;
                }
        free(o);
        if (!ok)
                fail_msg("no %s obligation of %s for #%" PRIu64, kind == OBLIGATION_REPLY ? "reply" : "ack", actor, seq);
        return found;
}

#define REMINDER(kind, actor, id, n)                                                                           \
        "{\"to\":[\"" actor "\"],\"reason\":\"reminder\",\"reminder\":" #n ",\"reminder_max\":3,"             \
        "\"obligation\":{\"kind\":\"" kind "\",\"actor\":\"" actor "\",\"event_id\":\"%s\",\"seq\":5}}"

static void test_reminders_recorded(void **state) {
        struct fixture *f = *state;
        struct obligation o;
        const char *m;

        add_abcd(f);
        m = apply_ok(f, "chat.message", "a", "{\"to\":[\"b\",\"c\"],\"reply_required\":true,\"priority\":\"attention\"}");
        o = find_obligation(f, "b", 5, OBLIGATION_REPLY);
        assert_int_equal(o.reminders, 0);
        assert_int_equal(o.reminded_ms, 0);

        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 1), m);
        o = find_obligation(f, "b", 5, OBLIGATION_REPLY);
        assert_int_equal(o.reminders, 1);
        assert_int_equal(o.reminded_ms, TS_MS);
        /* Only that obligation: not b's ack, not c's reply. */
        assert_int_equal(find_obligation(f, "b", 5, OBLIGATION_ACK).reminders, 0);
        assert_int_equal(find_obligation(f, "c", 5, OBLIGATION_REPLY).reminders, 0);

        /* The same reminder again, or an older number, changes nothing; a later one counts. */
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 1), m);
        assert_int_equal(find_obligation(f, "b", 5, OBLIGATION_REPLY).reminders, 1);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 3), m);
        assert_int_equal(find_obligation(f, "b", 5, OBLIGATION_REPLY).reminders, 3);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 2), m);
        assert_int_equal(find_obligation(f, "b", 5, OBLIGATION_REPLY).reminders, 3);
        apply_ok(f, "system.notify", "conclave", REMINDER("ack", "c", m, 1), m);
        assert_int_equal(find_obligation(f, "c", 5, OBLIGATION_ACK).reminders, 1);

        /* Not a reminder, malformed, or for nothing open: ignored, and the seq still advances. */
        apply_ok(f, "system.notify", "conclave", "{\"to\":[\"b\"],\"reason\":\"other\",\"reminder\":9,"
                 "\"obligation\":{\"kind\":\"reply\",\"actor\":\"b\",\"event_id\":\"%s\"}}", m);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "d", m, 1), m);
        apply_ok(f, "system.notify", "conclave", REMINDER("nag", "b", m, 5), m);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 0), m);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, -4), m);
        apply_ok(f, "system.notify", "conclave", "{\"reason\":\"reminder\",\"reminder\":7}");
        apply_ok(f, "system.notify", NULL, NULL);
        assert_int_equal(find_obligation(f, "b", 5, OBLIGATION_REPLY).reminders, 3);
        assert_string_equal(describe(f), "r:b:5 a:b:5 r:c:5 a:c:5");

        /* Closing the obligation ends it; a late reminder for it is ignored. */
        apply_ok(f, "chat.message", "b", "{\"reply_to\":\"%s\"}", m);
        apply_ok(f, "system.notify", "conclave", REMINDER("reply", "b", m, 4), m);
        assert_string_equal(describe(f), "a:b:5 r:c:5 a:c:5");

        /* They survive a snapshot, and a snapshot without them reads as before. */
        group_state_free(roundtrip(f->gs));
}

static void test_notify_addressed_to(void **state) {
        struct fixture *f = *state;
        _cleanup_json_ struct json_object *e = NULL, *other = NULL;

        add_abcd(f);
        e = event_new(f->seq + 1, "system.notify", "conclave", "{\"to\":[\"b\"],\"text\":\"Reminder\"}");
        assert_true(group_state_addressed_to(f->gs, e, "b"));
        assert_false(group_state_addressed_to(f->gs, e, "a"));
        assert_false(group_state_addressed_to(f->gs, e, "conclave"));
        other = event_new(f->seq + 1, "system.other", "conclave", "{\"to\":[\"b\"]}");
        assert_false(group_state_addressed_to(f->gs, other, "b"));
}

static int n_schedules(struct fixture *f) {
        struct schedule_entry *list = NULL;
        int n = group_state_schedules(f->gs, &list);

        assert_true(n >= 0);
        free(list);
        return n;
}

static void test_schedules(void **state) {
        struct fixture *f = *state;
        const struct schedule_entry *e;
        const char *every, *at, *cron;
        struct schedule_entry *list = NULL;

        add_abcd(f);
        every = apply_ok(f, "schedule.added", "operator", "{\"kind\":\"every\",\"every\":\"1h\",\"every_usec\":3600000000,"
                         "\"text\":\"standup\",\"to\":[\"@all\"]}");
        at = apply_ok(f, "schedule.added", "operator", "{\"kind\":\"at\",\"at\":\"2026-11-23T09:00:00.000Z\",\"text\":\"once\"}");
        cron = apply_ok(f, "schedule.added", "operator", "{\"kind\":\"cron\",\"cron\":\"0 9 * * mon-fri\",\"text\":\"x\"}");
        assert_int_equal(n_schedules(f), 3);
        e = group_state_schedule(f->gs, every);
        assert_non_null(e);
        assert_int_equal(e->kind, SCHEDULE_EVERY);
        assert_int_equal(e->every_usec, UINT64_C(3600000000));
        assert_int_equal(e->seq, 5);
        assert_int_equal(e->created_ms, TS_MS);
        assert_int_equal(e->runs, 0);
        assert_int_equal(e->last_due_ms, 0);
        e = group_state_schedule(f->gs, at);
        assert_int_equal(e->kind, SCHEDULE_AT);
        assert_int_equal(e->at_ms, UINT64_C(1795424400000));
        e = group_state_schedule(f->gs, cron);
        assert_int_equal(e->kind, SCHEDULE_CRON);
        assert_string_equal(e->cron, "0 9 * * mon-fri");

        /* Bad timing data: ignored, the seq advances. */
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"weekly\"}");
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"every\",\"every_usec\":0}");
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"every\",\"every_usec\":\"60\"}");
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"at\",\"at\":\"tomorrow\"}");
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"cron\",\"cron\":\"\"}");
        apply_ok(f, "schedule.added", "operator", "{\"kind\":\"cron\",\"cron\":\"%0129d\"}", 0);
        apply_ok(f, "schedule.added", "operator", NULL);
        assert_int_equal(n_schedules(f), 3);

        /* Runs: the due time they were for is recorded; an older one does not move it back. */
        apply_ok(f, "chat.message", "operator", "{\"text\":\"standup\",\"schedule_id\":\"%s\","
                 "\"due\":\"2026-11-22T15:36:41.123Z\",\"missed\":0}", every);
        e = group_state_schedule(f->gs, every);
        assert_int_equal(e->runs, 1);
        assert_int_equal(e->last_due_ms, TS_MS + 3600000);
        apply_ok(f, "chat.message", "operator", "{\"schedule_id\":\"%s\",\"due\":\"2026-11-22T14:36:41.123Z\"}", every);
        e = group_state_schedule(f->gs, every);
        assert_int_equal(e->runs, 2);
        assert_int_equal(e->last_due_ms, TS_MS + 3600000);
        /* No "due": the event's time. */
        apply_ok(f, "chat.message", "operator", "{\"schedule_id\":\"%s\"}", cron);
        assert_int_equal(group_state_schedule(f->gs, cron)->last_due_ms, TS_MS);
        /* Unknown schedule ids are ordinary messages. */
        apply_ok(f, "chat.message", "operator", "{\"schedule_id\":\"01XXXXXXXXXXXXXXXXXXXXXXXX\"}");
        apply_ok(f, "chat.message", "operator", "{\"schedule_id\":42}");

        /* Snapshot with schedules. */
        group_state_free(roundtrip(f->gs));

        /* An "at" schedule ends with its run; schedule.removed ends any. */
        apply_ok(f, "chat.message", "operator", "{\"schedule_id\":\"%s\",\"due\":\"2026-11-23T09:00:00.000Z\"}", at);
        assert_null(group_state_schedule(f->gs, at));
        apply_ok(f, "schedule.removed", "operator", "{\"schedule_id\":\"%s\"}", every);
        apply_ok(f, "schedule.removed", "operator", "{\"schedule_id\":\"%s\"}", every); /* twice: no effect */
        assert_null(group_state_schedule(f->gs, every));
        assert_int_equal(group_state_schedules(f->gs, &list), 1);
        assert_string_equal(list[0].id, cron);
        free(list);
        apply_ok(f, "schedule.removed", "operator", "{\"schedule_id\":\"%s\"}", cron);
        assert_int_equal(group_state_schedules(f->gs, &list), 0);
        assert_null(list);
        group_state_free(roundtrip(f->gs));
}

/* Incremental application equals a rebuild from the events, with reminders and schedules. */
static void test_rebuild_with_automation(void **state) {
        struct fixture *f = *state;
        struct group_state *rebuilt = NULL;
        struct json_object *events[64];
        size_t n = 0;
        const char *m, *sch;

        (void) state;
#define KEEP(kind, by, ...)                                                                    \
        do {                                                                                   \
                char data[1024];                                                               \
                snprintf(data, sizeof data, __VA_ARGS__);                                      \
                events[n] = event_new(f->seq + 1, kind, by, data);                             \
                assert_int_equal(group_state_apply(f->gs, events[n]), 0);                      \
                f->seq++;                                                                      \
                n++;                                                                           \
        } while (0)
        KEEP("actor.added", "operator", "{\"actor_id\":\"a\"}");
        KEEP("actor.added", "operator", "{\"actor_id\":\"b\"}");
        KEEP("chat.message", "a", "{\"to\":[\"b\"],\"reply_required\":true}");
        m = eid(f->seq);
        KEEP("system.notify", "conclave", REMINDER("reply", "b", m, 1), m);
        KEEP("schedule.added", "operator", "{\"kind\":\"every\",\"every_usec\":60000000}");
        sch = eid(f->seq);
        KEEP("chat.message", "operator", "{\"schedule_id\":\"%s\",\"due\":\"2026-11-22T14:37:41.123Z\",\"missed\":0}", sch);
        KEEP("system.notify", "conclave", REMINDER("reply", "b", m, 2), m);
        KEEP("schedule.added", "operator", "{\"kind\":\"at\",\"at\":\"2026-11-22T18:00:00Z\"}");

        assert_int_equal(group_state_new(&rebuilt), 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(group_state_apply(rebuilt, events[i]), 0);
                json_object_put(events[i]);
        }
        assert_true(group_state_equal(f->gs, rebuilt));
        /* Each difference is seen. */
        {
                _cleanup_json_ struct json_object *e = event_new(f->seq + 1, "chat.message", "operator", NULL);
                json_object_object_add(e, "data", json_tokener_parse("{}"));
                json_object_object_add(json_object_object_get(e, "data"), "schedule_id", json_object_new_string(sch));
                assert_int_equal(group_state_apply(rebuilt, e), 0);
                assert_false(group_state_equal(f->gs, rebuilt));
        }
        group_state_free(rebuilt);
#undef KEEP
}

static void test_from_json_rejects_automation(void **state) {
#define HEAD "{\"format_version\":1,\"last_seq\":9,\"members\":[\"a\",\"b\"],\"cursors\":{},"
#define OBL(extra) "\"obligations\":[{\"kind\":\"reply\",\"actor_id\":\"b\",\"event_id\":\"01JD0000000000000000000005\"," \
                   "\"seq\":5,\"from\":\"a\",\"created_ms\":1" extra "}]"
#define SCH(x) "\"obligations\":[],\"schedules\":[" x "]}"
#define E1 "\"id\":\"01JD0000000000000000000003\",\"seq\":3,\"created_ms\":1,\"last_due_ms\":0,\"runs\":0"
#define E2 "\"id\":\"01JD0000000000000000000004\",\"seq\":4,\"created_ms\":1,\"last_due_ms\":0,\"runs\":0"
        static const char *const good[] = {
                HEAD OBL(",\"reminders\":2,\"reminded_ms\":5") "}",
                HEAD SCH("{" E1 ",\"kind\":\"every\",\"every_usec\":1000000},{" E2 ",\"kind\":\"cron\",\"cron\":\"@daily\"}"),
                HEAD SCH("{" E1 ",\"kind\":\"at\",\"at_ms\":77}"),
                HEAD SCH(""),
        };
        static const char *const bad[] = {
                HEAD OBL(",\"reminders\":0,\"reminded_ms\":5") "}",
                HEAD OBL(",\"reminders\":2") "}",
                HEAD OBL(",\"reminded_ms\":5") "}",
                HEAD OBL(",\"reminders\":\"2\",\"reminded_ms\":5") "}",
                HEAD OBL(",\"reminders\":4294967296,\"reminded_ms\":5") "}",
                HEAD "\"obligations\":[],\"schedules\":{}}",
                HEAD SCH("{" E1 ",\"kind\":\"every\"}"),
                HEAD SCH("{" E1 ",\"kind\":\"every\",\"every_usec\":0}"),
                HEAD SCH("{" E1 ",\"kind\":\"at\",\"at\":\"2026-11-22T18:00:00Z\"}"),
                HEAD SCH("{" E1 ",\"kind\":\"cron\",\"cron\":\"\"}"),
                HEAD SCH("{" E1 ",\"kind\":\"weekly\"}"),
                HEAD SCH("{" E1 ",\"kind\":\"every\",\"every_usec\":1,\"x\":1}"),
                HEAD SCH("{\"id\":\"01JD0000000000000000000003\",\"seq\":3,\"kind\":\"every\",\"every_usec\":1}"),
                HEAD SCH("{\"id\":\"\",\"seq\":3,\"created_ms\":1,\"last_due_ms\":0,\"runs\":0,\"kind\":\"every\",\"every_usec\":1}"),
                HEAD SCH("{\"id\":\"01JD0000000000000000000003\",\"seq\":10,\"created_ms\":1,\"last_due_ms\":0,\"runs\":0,"
                         "\"kind\":\"every\",\"every_usec\":1}"), /* beyond last_seq */
                HEAD SCH("{" E2 ",\"kind\":\"every\",\"every_usec\":1},{" E1 ",\"kind\":\"every\",\"every_usec\":1}"),
                HEAD SCH("{" E1 ",\"kind\":\"every\",\"every_usec\":1},{" E1 ",\"kind\":\"every\",\"every_usec\":1}"),
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(good[i]);
                struct group_state *gs = NULL;

                assert_non_null(o);
                if (group_state_from_json(o, &gs) != 0)
                        fail_msg("refused: %s", good[i]);
                group_state_free(roundtrip(gs));
                group_state_free(gs);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(bad[i]);
                struct group_state *gs = NULL;

                assert_non_null(o);
                if (group_state_from_json(o, &gs) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        }
#undef HEAD
#undef OBL
#undef SCH
#undef E1
#undef E2
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_reply_required_to_one, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_required_to_several, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_required_all, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_required_missing_to, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_attention_ack, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_and_ack, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_closes_only_repliers, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_to_unknown_id, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reply_by_someone_not_owing, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_ack_by_wrong_actor, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_duplicate_ack, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_message_to_non_member, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_sender_never_owes_itself, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_cursor_forward_only, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_actor_removed, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_out_of_order_rejected, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_malformed_chat_rejected, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_unknown_kind_advances, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_addressed_to, fixture_setup, fixture_teardown),
                cmocka_unit_test(test_created_ms),
                cmocka_unit_test_setup_teardown(test_obligations_filter_and_order, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reused_event_id, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_json_roundtrip_and_equal, fixture_setup, fixture_teardown),
                cmocka_unit_test(test_equal_sees_member_order_and_cursors),
                cmocka_unit_test(test_from_json_rejects),
                cmocka_unit_test(test_randomized_against_reference),
                cmocka_unit_test_setup_teardown(test_reminders_recorded, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_notify_addressed_to, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_schedules, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_rebuild_with_automation, fixture_setup, fixture_teardown),
                cmocka_unit_test(test_from_json_rejects_automation),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

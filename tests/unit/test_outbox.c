/* Unit tests for outbox.c: bindings, deliveries owed by chat.message, settled by chat.delivery,
 * the rules (author on the same channel, @all, bound later, addressed messages), and the JSON
 * round trip. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "outbox.h"

static uint64_t seq;

static int apply(struct outbox *o, const char *kind, const char *by, const char *id, const char *data) {
        char text[1024];
        struct json_object *e;
        int r;

        snprintf(text, sizeof text, "{\"seq\":%llu,\"id\":\"%s\",\"kind\":\"%s\",\"by\":\"%s\",\"data\":%s}",
                 (unsigned long long) ++seq, id, kind, by, data);
        e = json_tokener_parse(text);
        assert_non_null(e);
        r = outbox_apply(o, e);
        json_object_put(e);
        return r;
}

static void test_rules(void **state) {
        struct outbox *o = NULL, *copy = NULL;
        struct json_object *j;

        (void) state;
        seq = 0;
        assert_int_equal(outbox_new(&o), 0);
        /* Nobody bound yet: nothing owed. */
        assert_int_equal(apply(o, "chat.message", "operator", "E1", "{\"to\":[\"@all\"],\"text\":\"x\"}"), 0);
        assert_int_equal(apply(o, "actor.added", "conclave", "E2",
                               "{\"actor_id\":\"irc-alice\",\"kind\":\"human\",\"channel\":\"irc\",\"external_user\":\"alice\"}"), 0);
        assert_int_equal(apply(o, "actor.added", "conclave", "E3",
                               "{\"actor_id\":\"irc-bob\",\"kind\":\"human\",\"channel\":\"irc\",\"external_user\":\"bob\"}"), 0);
        assert_int_equal(apply(o, "actor.added", "operator", "E4", "{\"actor_id\":\"echo\",\"kind\":\"command\"}"), 0);
        assert_non_null(outbox_binding_by_user(o, "irc", "ALICE"));
        assert_null(outbox_binding_by_user(o, "tg", "alice"));
        assert_string_equal(outbox_binding_by_actor(o, "irc-bob")->user, "bob");

        /* alice talks on IRC: bob saw it there, so nothing is owed to anyone. */
        assert_int_equal(apply(o, "chat.message", "irc-alice", "E5", "{\"to\":[\"@all\"],\"text\":\"hi\"}"), 0);
        /* echo answers alice: owed to alice only. */
        assert_int_equal(apply(o, "chat.message", "echo", "E6", "{\"to\":[\"irc-alice\"],\"text\":\"echo: hi\"}"), 1);
        /* The operator to everybody: owed to both. */
        assert_int_equal(apply(o, "chat.message", "operator", "E7", "{\"to\":[\"@all\"],\"text\":\"all\"}"), 2);
        assert_int_equal(o->n_pending, 3);

        assert_int_equal(apply(o, "chat.delivery", "conclave", "E8",
                               "{\"event_id\":\"E6\",\"actor\":\"irc-alice\",\"status\":\"attempted\"}"), 0);
        assert_true(outbox_find(o, "E6", "irc-alice")->in_doubt);
        assert_int_equal(outbox_find(o, "E6", "irc-alice")->attempts, 1);
        assert_int_equal(apply(o, "chat.delivery", "conclave", "E9",
                               "{\"event_id\":\"E6\",\"actor\":\"irc-alice\",\"status\":\"deferred\"}"), 0);
        assert_false(outbox_find(o, "E6", "irc-alice")->in_doubt);
        assert_int_equal(apply(o, "chat.delivery", "conclave", "E10",
                               "{\"event_id\":\"E6\",\"actor\":\"irc-alice\",\"status\":\"succeeded\"}"), 0);
        assert_null(outbox_find(o, "E6", "irc-alice"));
        assert_int_equal(apply(o, "chat.delivery", "conclave", "E11",
                               "{\"event_id\":\"E7\",\"actor\":\"irc-bob\",\"status\":\"attempted\"}"), 0);

        /* Out of order is refused, and changes nothing. */
        {
                struct json_object *e = json_tokener_parse("{\"seq\":99,\"id\":\"X\",\"kind\":\"chat.message\",\"by\":\"a\",\"data\":{}}");
                assert_int_equal(outbox_apply(o, e), -EINVAL);
                json_object_put(e);
        }

        /* Saved and loaded: the same state. */
        j = outbox_to_json(o);
        assert_non_null(j);
        assert_int_equal(outbox_from_json(j, &copy), 0);
        json_object_put(j);
        assert_int_equal(copy->last_seq, o->last_seq);
        assert_int_equal(copy->n_pending, 2);
        assert_int_equal(copy->n_bindings, 2);
        assert_true(outbox_find(copy, "E7", "irc-bob")->in_doubt);
        assert_false(outbox_find(copy, "E7", "irc-alice")->in_doubt);

        /* bob leaves: what he was owed goes with him. */
        assert_int_equal(apply(o, "actor.removed", "operator", "E12", "{\"actor_id\":\"irc-bob\"}"), 0);
        assert_null(outbox_find(o, "E7", "irc-bob"));
        assert_int_equal(o->n_pending, 1);
        assert_int_equal(apply(o, "chat.delivery", "conclave", "E13",
                               "{\"event_id\":\"E7\",\"actor\":\"irc-alice\",\"status\":\"unconfirmed\"}"), 0);
        assert_int_equal(o->n_pending, 0);
        outbox_free(copy);
        outbox_free(o);
}

static void test_bounds(void **state) {
        struct outbox *o = NULL;
        char id[32];

        (void) state;
        seq = 0;
        assert_int_equal(outbox_new(&o), 0);
        assert_int_equal(apply(o, "actor.added", "conclave", "A",
                               "{\"actor_id\":\"h\",\"kind\":\"human\",\"channel\":\"c\",\"external_user\":\"u\"}"), 0);
        for (unsigned i = 0; i < OUTBOX_PENDING_MAX + 5; i++) {
                snprintf(id, sizeof id, "M%u", i);
                assert_true(apply(o, "chat.message", "operator", id, "{\"to\":[\"h\"],\"text\":\"x\"}") >= 0);
        }
        assert_int_equal(o->n_pending, OUTBOX_PENDING_MAX);
        assert_int_equal(o->refused, 5);
        assert_int_equal(outbox_from_json(NULL, &o), -EINVAL);
        outbox_free(o);
}

static void test_addressed(void **state) {
        struct outbox *o = NULL;

        (void) state;
        seq = 0;
        assert_int_equal(outbox_new(&o), 0);
        assert_int_equal(apply(o, "actor.added", "conclave", "E1",
                               "{\"actor_id\":\"irc-alice\",\"kind\":\"human\",\"channel\":\"irc\",\"external_user\":\"alice\"}"), 0);
        assert_int_equal(apply(o, "actor.added", "conclave", "E2",
                               "{\"actor_id\":\"tg-carol\",\"kind\":\"human\",\"channel\":\"tg\",\"external_user\":\"7\"}"), 0);
        /* "gpt: …" from alice on IRC is to gpt: carol on Telegram gets no copy. */
        assert_int_equal(apply(o, "chat.message", "irc-alice", "E3",
                               "{\"to\":[\"gpt\"],\"reply_required\":true,\"text\":\"gpt: hi\"}"), 0);
        /* A remark to @all reaches her; one addressed to her does too. */
        assert_int_equal(apply(o, "chat.message", "irc-alice", "E4", "{\"to\":[\"@all\"],\"text\":\"ask @gpt\"}"), 1);
        assert_int_equal(apply(o, "chat.message", "irc-alice", "E5",
                               "{\"to\":[\"tg-carol\"],\"reply_required\":true,\"text\":\"tg-carol: hi\"}"), 1);
        /* gpt's answer to alice goes to alice only. */
        assert_int_equal(apply(o, "chat.message", "gpt", "E6", "{\"to\":[\"irc-alice\"],\"reply_to\":\"E3\",\"text\":\"4\"}"), 1);
        assert_non_null(outbox_find(o, "E4", "tg-carol"));
        assert_non_null(outbox_find(o, "E5", "tg-carol"));
        assert_non_null(outbox_find(o, "E6", "irc-alice"));
        assert_null(outbox_find(o, "E3", "tg-carol"));
        assert_int_equal(o->n_pending, 3);
        outbox_free(o);
}

int main(void) {
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_rules), cmocka_unit_test(test_bounds),
                                            cmocka_unit_test(test_addressed) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

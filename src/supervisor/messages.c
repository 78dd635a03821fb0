/* Messages, replies, acks and read marks (see messages.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dedupe.h"
#include "group_state.h"
#include "groups.h"
#include "macro.h"
#include "messages.h"
#include "proto.h"

static int fail(struct message_error *err, int r, const char *code, const char *fmt, ...) _printf_(4, 5);
static int fail(struct message_error *err, int r, const char *code, const char *fmt, ...) {
        va_list ap;

        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        return r;
}

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

bool message_sender_valid(struct group *g, const char *by) {
        return group_state_is_member(g->gs, by); /* the operator is a member of every group */
}

static int check_group(struct group *g, const char *by, struct message_error *err) {
        if (g->broken)
                return fail(err, -EBADMSG, "broken", "group %s is broken: %s", g->id, g->broken);
        if (g->state == GROUP_STOPPED)
                return fail(err, -EPERM, "invalid_state", "group %s is stopped; start it with `conclave group start %s`",
                            g->id, g->id);
        if (!by || !valid_id(by))
                return fail(err, -EINVAL, "bad_request", "invalid actor id \"%s\"", by ? by : "");
        if (!message_sender_valid(g, by))
                return fail(err, -ENOENT, "not_found", "no actor \"%s\" in group %s", by, g->id);
        return 0;
}

static int find_message(struct group *g, const char *name, struct json_object **ret, struct message_error *err) {
        int r = group_find_event(g, name, ret);

        if (r == -EINVAL)
                return fail(err, r, "bad_request", "\"%s\" is neither an event id nor a seq number", name);
        if (r < 0)
                return fail(err, -ENOENT, "not_found", "no event %s in group %s", name, g->id);
        if (!streq(jstr(*ret, "kind"), "chat.message")) {
                r = fail(err, -EINVAL, "bad_request", "event %s is of kind %s, not a chat.message", name,
                         jstr(*ret, "kind") ?: "?");
                json_object_put(*ret);
                *ret = NULL;
                return r;
        }
        return 0;
}

/* Valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) and no control
 * characters but tab, newline and carriage return: what every channel can show. */
static bool text_is_clean(const char *text) {
        const unsigned char *p = (const unsigned char *) text;

        while (*p) {
                unsigned c = *p, need, cp;
                if (c < 0x80) {
                        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                                return false;
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        need = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        need = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        need = 3, cp = c & 0x07;
                else
                        return false;
                for (unsigned i = 1; i <= need; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp <= 0x9f))
                        return false;
                p += need + 1;
        }
        return true;
}

static void dedupe_key(char *buf, size_t size, const struct message_args *m) {
        snprintf(buf, size, "%s:%s", m->channel ?: "api", m->external_id);
}

static bool valid_external(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("_.:@-", *s)))
                        return false;
        return true;
}

int message_post(struct group *g, const struct message_args *m, struct control_request *req, struct message_error *err) {
        _cleanup_json_ struct json_object *data = json_object_new_object(), *original = NULL, *to = NULL;
        struct json_object *event = NULL; /* borrowed from the pending list */
        char dkey[DEDUPE_KEY_MAX + 1];
        uint64_t original_seq = 0;
        int r;

        if (!data)
                return -ENOMEM;
        r = check_group(g, m->by, err);
        if (r < 0)
                return r;
        if (!m->text || !*m->text)
                return fail(err, -EINVAL, "bad_request", "empty message text");
        if (strlen(m->text) > MESSAGE_TEXT_MAX)
                return fail(err, -EINVAL, "bad_request", "message text longer than %u bytes", MESSAGE_TEXT_MAX);
        if (!text_is_clean(m->text))
                return fail(err, -EINVAL, "bad_request",
                            "message text must be UTF-8 without control characters other than tab and newline");
        if (m->reply_to) {
                struct json_object *seq;
                r = find_message(g, m->reply_to, &original, err);
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(original, "seq", &seq))
                        original_seq = json_object_get_uint64(seq);
        }

        if (m->to) {
                if (!json_object_is_type(m->to, json_type_array) || json_object_array_length(m->to) == 0)
                        return fail(err, -EINVAL, "bad_request", "\"to\" must be a non-empty list of actor ids or [\"@all\"]");
                to = json_object_new_array();
                for (size_t i = 0; i < json_object_array_length(m->to); i++) {
                        struct json_object *item = json_object_array_get_idx(m->to, i);
                        const char *id = json_object_is_type(item, json_type_string) ? json_object_get_string(item) : NULL;
                        if (streq(id, "@all") && json_object_array_length(m->to) == 1) {
                                json_object_array_add(to, json_object_new_string("@all"));
                                break;
                        }
                        if (!id || !valid_id(id))
                                return fail(err, -EINVAL, "bad_request", "invalid recipient \"%s\"", id ? id : "");
                        if (!group_state_is_member(g->gs, id))
                                return fail(err, -ENOENT, "not_found", "no actor \"%s\" in group %s", id, g->id);
                        json_object_array_add(to, json_object_new_string(id));
                }
        } else if (original && jstr(original, "by") && group_state_is_member(g->gs, jstr(original, "by"))) {
                to = json_object_new_array();
                json_object_array_add(to, json_object_new_string(jstr(original, "by")));
        } else {
                to = json_object_new_array();
                json_object_array_add(to, json_object_new_string("@all"));
        }

        if (m->external_id) {
                const char *event_id;
                uint64_t seq;
                if (!valid_external(m->external_id, 128) || (m->channel && !valid_id(m->channel)) ||
                    (m->external_from && !valid_external(m->external_from, 64)))
                        return fail(err, -EINVAL, "bad_request",
                                    "external_id (1-128), external_from (1-64) must be of [A-Za-z0-9_.:@-]; channel an id");
                dedupe_key(dkey, sizeof dkey, m);
                if (dedupe_find(g->dedupe, dkey, &event_id, &seq)) {
                        /* A retried delivery: the same answer, once the original is durable. */
                        _cleanup_json_ struct json_object *res = json_object_new_object();
                        json_object_object_add(res, "event_id", json_object_new_string(event_id));
                        json_object_object_add(res, "seq", json_object_new_uint64(seq));
                        json_object_object_add(res, "group", json_object_new_string(g->id));
                        json_object_object_add(res, "duplicate", json_object_new_boolean(1));
                        return req ? group_reply_when_durable(g, req, res) : 0;
                }
                json_object_object_add(data, "external_id", json_object_new_string(m->external_id));
                if (m->external_from)
                        json_object_object_add(data, "external_from", json_object_new_string(m->external_from));
        }
        if (m->thread && (!m->channel || !valid_external(m->thread, 128)))
                return fail(err, -EINVAL, "bad_request", "thread (1-128 of [A-Za-z0-9_.:@-]) needs a channel");
        if (m->channel)
                json_object_object_add(data, "channel", json_object_new_string(m->channel));
        if (m->thread)
                json_object_object_add(data, "thread", json_object_new_string(m->thread));
        json_object_object_add(data, "text", json_object_new_string(m->text));
        json_object_object_add(data, "to", json_object_get(to));
        if (original)
                json_object_object_add(data, "reply_to", json_object_new_string(jstr(original, "id") ?: ""));
        json_object_object_add(data, "priority", json_object_new_string(m->attention ? "attention" : "normal"));
        json_object_object_add(data, "reply_required", json_object_new_boolean(m->reply_required));
        r = group_append(g, "chat.message", m->by, data, req, &event);
        if (r < 0)
                return fail(err, r, "internal", "cannot append to the ledger: %s", strerror(-r));
        if (m->external_id)
                group_dedupe_remember(g, event);

        /* Answering a message means it was handled: the replier's cursor moves up to it. */
        /* Not for the operator: replying from the CLI does not say the rest was read (its
         * inbox is marked read explicitly with --mark-read). */
        if (original_seq > group_state_cursor(g->gs, m->by) && !streq(m->by, "operator") && !m->keep_cursor)
                (void) message_mark_read(g, m->by, original_seq, NULL, err);
        return 0;
}

int message_ack(struct group *g, const char *by, const char *event, struct control_request *req, struct message_error *err) {
        _cleanup_json_ struct json_object *original = NULL, *data = json_object_new_object();
        const char *id;
        int r;

        if (!data)
                return -ENOMEM;
        r = check_group(g, by, err);
        if (r < 0)
                return r;
        r = find_message(g, event, &original, err);
        if (r < 0)
                return r;
        id = jstr(original, "id");
        if (!group_state_owes(g->gs, by, id, OBLIGATION_ACK))
                return fail(err, -EALREADY, "not_owed", "%s owes no acknowledgement for %s (not an attention message "
                            "to it, or already acked)", by, id);
        json_object_object_add(data, "event_id", json_object_new_string(id));
        r = group_append(g, "chat.ack", by, data, req, NULL);
        if (r < 0)
                return fail(err, r, "internal", "cannot append to the ledger: %s", strerror(-r));
        return 0;
}

int message_mark_read(struct group *g, const char *by, uint64_t up_to_seq, struct control_request *req,
                      struct message_error *err) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        int r;

        if (!data)
                return -ENOMEM;
        r = check_group(g, by, err);
        if (r < 0)
                return r;
        if (up_to_seq > ledger_last_seq(g->ledger))
                up_to_seq = ledger_last_seq(g->ledger);
        json_object_object_add(data, "up_to_seq", json_object_new_uint64(up_to_seq));
        r = group_append(g, "chat.read", by, data, req, NULL);
        if (r < 0)
                return fail(err, r, "internal", "cannot append to the ledger: %s", strerror(-r));
        return 0;
}

/* Matrix client-server API codec (matrix_codec.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "matrix_codec.h"
#include "proto.h"

/* One timeline event: 1 and *m for a message for us, 0 to skip, -EBADMSG, -ENOMEM. */
static int parse_event(struct json_object *ev, const char *room, const char *own, struct platform_message *m) {
        struct json_object *content;
        const char *type, *sender, *event_id, *msgtype, *body;

        if (!json_object_is_type(ev, json_type_object))
                return -EBADMSG;
        type = platform_json_string(ev, "type");
        sender = platform_json_string(ev, "sender");
        event_id = platform_json_string(ev, "event_id");
        if (!type || !sender || !event_id || event_id[0] != '$' || sender[0] != '@' ||
            strlen(event_id) > PLATFORM_FIELD_MAX || strlen(sender) > PLATFORM_FIELD_MAX)
                return -EBADMSG;
        if (!streq(type, "m.room.message") || (own && streq(sender, own)))
                return 0;
        content = platform_json_object(ev, "content");
        if (!content)
                return -EBADMSG;
        msgtype = platform_json_string(content, "msgtype");
        body = platform_json_string(content, "body");
        if (!msgtype && !body)
                return 0; /* redacted */
        if (!msgtype || !body || strlen(body) > PLATFORM_TEXT_MAX)
                return -EBADMSG;
        /* m.notice is what bots send: answering it invites loops. Images, files: not text. */
        if ((!streq(msgtype, "m.text") && !streq(msgtype, "m.emote")) || !*body)
                return 0;
        if (platform_strdup_field(event_id, PLATFORM_FIELD_MAX, &m->id) < 0 ||
            platform_strdup_field(sender, PLATFORM_FIELD_MAX, &m->sender) < 0 ||
            platform_strdup_field(room, PLATFORM_FIELD_MAX, &m->conversation) < 0) {
                platform_message_done(m);
                return -EBADMSG;
        }
        m->thread = strdup(event_id);
        m->text = strdup(body);
        {
                struct json_object *rel = platform_json_object(content, "m.relates_to");
                struct json_object *irt = rel ? platform_json_object(rel, "m.in_reply_to") : NULL;
                const char *target = irt ? platform_json_string(irt, "event_id") : NULL;
                if (target && target[0] == '$' && strlen(target) <= PLATFORM_FIELD_MAX && !(m->reply_to = strdup(target))) {
                        platform_message_done(m);
                        return -ENOMEM;
                }
        }
        if (!m->thread || !m->text) {
                platform_message_done(m);
                return -ENOMEM;
        }
        return 1;
}

int matrix_parse_sync(const char *body, size_t len, const char *own_user_id, char **ret_next_batch,
                      struct platform_message **ret, size_t *ret_n, size_t *ret_malformed) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *rooms, *join;
        struct platform_message *v = NULL;
        size_t n = 0, bad = 0;
        char *next = NULL;
        int r;

        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        r = platform_strdup_field(platform_json_string(o, "next_batch"), PLATFORM_FIELD_MAX, &next);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        rooms = platform_json_object(o, "rooms");
        join = rooms ? platform_json_object(rooms, "join") : NULL;
        if (join) {
                json_object_object_foreach(join, room, data) {
                        struct json_object *timeline = platform_json_object(data, "timeline");
                        struct json_object *events = timeline ? platform_json_array(timeline, "events") : NULL;
                        size_t count = events ? json_object_array_length(events) : 0;

                        if (room[0] != '!') {
                                bad++;
                                continue;
                        }
                        for (size_t i = 0; i < count; i++) {
                                struct platform_message m = {};
                                r = parse_event(json_object_array_get_idx(events, i), room, own_user_id, &m);
                                if (r == -ENOMEM || (r > 0 && platform_messages_push(&v, &n, &m) < 0)) {
                                        platform_message_done(&m);
                                        platform_messages_free(v, n);
                                        free(next);
                                        return -ENOMEM;
                                }
                                if (r < 0)
                                        bad++;
                        }
                }
        }
        *ret_next_batch = next;
        *ret = v;
        *ret_n = n;
        *ret_malformed = bad;
        return 0;
}

char *matrix_build_message(const char *text, size_t len, const char *in_reply_to) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "msgtype", json_object_new_string("m.text"));
        json_object_object_add(o, "body", json_object_new_string_len(text, (int) len));
        if (in_reply_to && *in_reply_to) {
                struct json_object *rel = json_object_new_object(), *irt = json_object_new_object();
                if (!rel || !irt) {
                        json_object_put(rel);
                        json_object_put(irt);
                        return NULL;
                }
                json_object_object_add(irt, "event_id", json_object_new_string(in_reply_to));
                json_object_object_add(rel, "m.in_reply_to", irt);
                json_object_object_add(o, "m.relates_to", rel);
        }
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

void matrix_parse_error(long status, const char *body, size_t len, uint64_t retry_after_usec,
                        struct platform_error *err) {
        _cleanup_json_ struct json_object *o = NULL;
        const char *code, *msg;
        int64_t ms;

        platform_error_from_status(err, status);
        err->retry_after_usec = retry_after_usec;
        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object)) {
                snprintf(err->description, sizeof err->description, "HTTP %ld without a Matrix error body", status);
                return;
        }
        code = platform_json_string(o, "errcode");
        msg = platform_json_string(o, "error");
        if (code)
                snprintf(err->code, sizeof err->code, "%s", code);
        snprintf(err->description, sizeof err->description, "%s", msg ? msg : "(no error given)");
        if (platform_json_int(o, "retry_after_ms", &ms) && ms > 0 && ms < 86400000)
                err->retry_after_usec = (uint64_t) ms * USEC_PER_MSEC;
        if (streq(code, "M_LIMIT_EXCEEDED"))
                err->retryable = true;
}

static int parse_string_field(const char *body, size_t len, const char *key, char **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        int r;

        if (platform_json_parse(body, len, &o) < 0)
                return -EBADMSG;
        r = platform_strdup_field(platform_json_string(o, key), PLATFORM_FIELD_MAX, ret);
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

int matrix_parse_event_id(const char *body, size_t len, char **ret) {
        return parse_string_field(body, len, "event_id", ret);
}

int matrix_parse_whoami(const char *body, size_t len, char **ret_user_id) {
        return parse_string_field(body, len, "user_id", ret_user_id);
}

char *matrix_path_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s), len = 0;
        char *out;

        if (n > 1024)
                return NULL;
        out = malloc(3 * n + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                /* RFC 3986 unreserved characters stay; everything else is percent-encoded. */
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
                        out[len++] = (char) c;
                else {
                        out[len++] = '%';
                        out[len++] = hex[c >> 4];
                        out[len++] = hex[c & 15];
                }
        }
        out[len] = '\0';
        return out;
}

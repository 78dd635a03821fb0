/* Discord codec (discord_codec.h). */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discord_codec.h"
#include "macro.h"
#include "proto.h"

bool discord_snowflake_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 20)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

int discord_parse_frame(const char *text, size_t len, struct json_object **ret_obj, struct discord_frame *f) {
        struct json_object *o = NULL, *v;
        int64_t op;
        const char *t;

        *ret_obj = NULL;
        *f = (struct discord_frame){ .seq = -1 };
        if (platform_json_parse(text, len, &o) < 0 || !json_object_is_type(o, json_type_object) ||
            !platform_json_int(o, "op", &op) || op < 0 || op > 64) {
                json_object_put(o);
                return -EBADMSG;
        }
        f->op = (int) op;
        if (json_object_object_get_ex(o, "s", &v) && json_object_is_type(v, json_type_int))
                f->seq = json_object_get_int64(v);
        t = platform_json_string(o, "t");
        if (t)
                snprintf(f->event, sizeof f->event, "%s", t);
        if (json_object_object_get_ex(o, "d", &v))
                f->data = v;
        if (f->op == DISCORD_OP_DISPATCH && (!t || f->seq < 0)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret_obj = o;
        return 0;
}

int discord_parse_hello(const struct discord_frame *f, uint64_t *ret_interval_usec) {
        int64_t ms;

        if (f->op != DISCORD_OP_HELLO || !platform_json_int(f->data, "heartbeat_interval", &ms) || ms < 100 ||
            ms > 3600 * 1000)
                return -EBADMSG;
        *ret_interval_usec = (uint64_t) ms * USEC_PER_MSEC;
        return 0;
}

int discord_parse_ready(const struct discord_frame *f, char **ret_session, char **ret_resume_url, char **ret_user_id) {
        struct json_object *user = platform_json_object(f->data, "user");
        const char *url = platform_json_string(f->data, "resume_gateway_url");
        _cleanup_free_ char *session = NULL, *resume = NULL, *uid = NULL;

        if (!streq(f->event, "READY") || !user ||
            platform_strdup_field(platform_json_string(f->data, "session_id"), PLATFORM_FIELD_MAX, &session) < 0 ||
            platform_strdup_field(platform_json_string(user, "id"), 20, &uid) < 0 || !discord_snowflake_valid(uid))
                return -EBADMSG;
        if (url && (strncmp(url, "wss://", 6) == 0 || strncmp(url, "ws://", 5) == 0) &&
            platform_strdup_field(url, PLATFORM_FIELD_MAX, &resume) < 0)
                return -EBADMSG;
        *ret_session = session;
        *ret_resume_url = resume;
        *ret_user_id = uid;
        session = resume = uid = NULL;
        return 0;
}

int discord_parse_message(const struct discord_frame *f, const char *own_user_id, struct platform_message *ret) {
        struct json_object *author, *bot, *ref, *d = f->data;
        const char *id, *channel, *author_id, *content, *name, *ref_id;
        struct platform_message m = {};

        if (!streq(f->event, "MESSAGE_CREATE") || !json_object_is_type(d, json_type_object))
                return -EBADMSG;
        author = platform_json_object(d, "author");
        id = platform_json_string(d, "id");
        channel = platform_json_string(d, "channel_id");
        author_id = author ? platform_json_string(author, "id") : NULL;
        content = platform_json_string(d, "content");
        if (!discord_snowflake_valid(id) || !discord_snowflake_valid(channel) || !discord_snowflake_valid(author_id) ||
            !content || strlen(content) > PLATFORM_TEXT_MAX)
                return -EBADMSG;
        if ((json_object_object_get_ex(author, "bot", &bot) && json_object_get_boolean(bot)) ||
            (own_user_id && streq(author_id, own_user_id)) || !*content)
                return 0;
        name = platform_json_string(author, "username");
        m.id = strdup(id);
        m.sender = strdup(author_id);
        m.conversation = strdup(channel);
        m.thread = strdup(id);
        m.text = strdup(content);
        if (name && platform_strdup_field(name, PLATFORM_FIELD_MAX, &m.sender_name) == -ENOMEM)
                m.sender_name = NULL;
        ref = platform_json_object(d, "message_reference");
        ref_id = ref ? platform_json_string(ref, "message_id") : NULL;
        if (discord_snowflake_valid(ref_id) && !(m.reply_to = strdup(ref_id)))
                m.text = mfree(m.text);
        if (!m.id || !m.sender || !m.conversation || !m.thread || !m.text) {
                platform_message_done(&m);
                return -ENOMEM;
        }
        *ret = m;
        return 1;
}

static char *to_string(struct json_object *o) {
        char *s = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) : NULL;
        json_object_put(o);
        return s;
}

static struct json_object *frame(int op, struct json_object *d) {
        struct json_object *o = json_object_new_object();

        if (!o) {
                json_object_put(d);
                return NULL;
        }
        json_object_object_add(o, "op", json_object_new_int(op));
        json_object_object_add(o, "d", d);
        return o;
}

char *discord_build_identify(const char *token, unsigned intents) {
        struct json_object *d = json_object_new_object(), *props = json_object_new_object();

        if (!d || !props) {
                json_object_put(d);
                json_object_put(props);
                return NULL;
        }
        json_object_object_add(props, "os", json_object_new_string("linux"));
        json_object_object_add(props, "browser", json_object_new_string("conclave"));
        json_object_object_add(props, "device", json_object_new_string("conclave"));
        json_object_object_add(d, "token", json_object_new_string(token));
        json_object_object_add(d, "intents", json_object_new_int64(intents));
        json_object_object_add(d, "properties", props);
        return to_string(frame(DISCORD_OP_IDENTIFY, d));
}

char *discord_build_heartbeat(int64_t seq) {
        return to_string(frame(DISCORD_OP_HEARTBEAT, seq >= 0 ? json_object_new_int64(seq) : NULL));
}

char *discord_build_resume(const char *token, const char *session, int64_t seq) {
        struct json_object *d = json_object_new_object();

        if (!d)
                return NULL;
        json_object_object_add(d, "token", json_object_new_string(token));
        json_object_object_add(d, "session_id", json_object_new_string(session));
        json_object_object_add(d, "seq", json_object_new_int64(seq));
        return to_string(frame(DISCORD_OP_RESUME, d));
}

char *discord_build_message(const char *text, size_t len, const char *reply_to, const char *nonce) {
        struct json_object *o = json_object_new_object(), *ref, *mentions;

        if (!o)
                return NULL;
        json_object_object_add(o, "content", json_object_new_string_len(text, (int) len));
        /* What an actor writes pings nobody: no @everyone, roles or users. */
        mentions = json_object_new_object();
        if (mentions) {
                json_object_object_add(mentions, "parse", json_object_new_array());
                json_object_object_add(o, "allowed_mentions", mentions);
        }
        if (reply_to && *reply_to) {
                if (!discord_snowflake_valid(reply_to) || !(ref = json_object_new_object())) {
                        json_object_put(o);
                        return NULL;
                }
                json_object_object_add(ref, "message_id", json_object_new_string(reply_to));
                json_object_object_add(ref, "fail_if_not_exists", json_object_new_boolean(0));
                json_object_object_add(o, "message_reference", ref);
        }
        if (nonce && *nonce) {
                if (strlen(nonce) > DISCORD_NONCE_MAX) {
                        json_object_put(o);
                        return NULL;
                }
                /* Discord returns the first message for a repeated nonce instead of a second one. */
                json_object_object_add(o, "nonce", json_object_new_string(nonce));
                json_object_object_add(o, "enforce_nonce", json_object_new_boolean(1));
        }
        return to_string(o);
}

int discord_parse_message_id(const char *body, size_t len, char **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        const char *id;

        if (platform_json_parse(body, len, &o) < 0)
                return -EBADMSG;
        id = platform_json_string(o, "id");
        if (!discord_snowflake_valid(id))
                return -EBADMSG;
        *ret = strdup(id);
        return *ret ? 0 : -ENOMEM;
}

void discord_parse_error(long status, const char *body, size_t len, uint64_t retry_after_usec,
                         struct platform_error *err) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v;
        const char *msg;
        int64_t code;

        platform_error_from_status(err, status);
        err->retry_after_usec = retry_after_usec;
        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object)) {
                snprintf(err->description, sizeof err->description, "HTTP %ld without a Discord error body", status);
                return;
        }
        msg = platform_json_string(o, "message");
        snprintf(err->description, sizeof err->description, "%s", msg ? msg : "(no message given)");
        if (platform_json_int(o, "code", &code))
                snprintf(err->code, sizeof err->code, "%" PRId64, code);
        if (json_object_object_get_ex(o, "retry_after", &v) &&
            (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
                double s = json_object_get_double(v);
                if (isfinite(s) && s > 0 && s < 86400)
                        err->retry_after_usec = (uint64_t) ceil(s * 1e6);
        }
}

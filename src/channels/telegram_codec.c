/* Telegram Bot API codec (telegram_codec.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "proto.h"
#include "telegram_codec.h"

int telegram_parse_response(long status, const char *body, size_t len, struct json_object **ret_result,
                            struct platform_error *err) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *ok, *result, *params;
        int64_t code, retry;
        const char *desc;

        *ret_result = NULL;
        platform_error_from_status(err, status);
        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
                return -EBADMSG;
        if (json_object_get_boolean(ok)) {
                if (!json_object_object_get_ex(o, "result", &result))
                        return -EBADMSG;
                *ret_result = json_object_get(result);
                return 0;
        }
        if (platform_json_int(o, "error_code", &code))
                snprintf(err->code, sizeof err->code, "%" PRId64, code);
        desc = platform_json_string(o, "description");
        snprintf(err->description, sizeof err->description, "%s", desc ? desc : "(no description)");
        params = platform_json_object(o, "parameters");
        if (platform_json_int(params, "retry_after", &retry) && retry > 0 && retry < 86400)
                err->retry_after_usec = (uint64_t) retry * USEC_PER_SEC;
        err->retryable = err->retry_after_usec > 0 || status == 429 || status >= 500;
        return -EREMOTEIO;
}

static int id_string(struct json_object *obj, const char *key, char *buf, size_t size) {
        int64_t v;

        if (!platform_json_int(obj, key, &v))
                return -EBADMSG;
        snprintf(buf, size, "%" PRId64, v);
        return 0;
}

int telegram_parse_update(struct json_object *update, int64_t *ret_update_id, struct platform_message *ret) {
        struct json_object *msg, *from, *chat, *is_bot, *reply;
        char chat_id[24], message_id[24], user_id[24], id[64];
        const char *text, *name;
        struct platform_message m = {};
        int64_t uid;

        if (!json_object_is_type(update, json_type_object) || !platform_json_int(update, "update_id", &uid) || uid < 0)
                return -EBADMSG;
        *ret_update_id = uid;
        msg = platform_json_object(update, "message");
        if (!msg)
                return 0; /* edited_message, channel_post, callback_query …: not chat for us */
        from = platform_json_object(msg, "from");
        chat = platform_json_object(msg, "chat");
        if (!from || !chat || id_string(chat, "id", chat_id, sizeof chat_id) < 0 ||
            id_string(msg, "message_id", message_id, sizeof message_id) < 0 ||
            id_string(from, "id", user_id, sizeof user_id) < 0)
                return -EBADMSG;
        if (json_object_object_get_ex(from, "is_bot", &is_bot) && json_object_get_boolean(is_bot))
                return 0;
        text = platform_json_string(msg, "text");
        if (!text || !*text)
                return 0; /* photos, stickers, joins */
        if (strlen(text) > PLATFORM_TEXT_MAX)
                return -EBADMSG;
        snprintf(id, sizeof id, "%s:%s", chat_id, message_id);
        name = platform_json_string(from, "username");
        if (!name)
                name = platform_json_string(from, "first_name");
        m.id = strdup(id);
        m.sender = strdup(user_id);
        m.conversation = strdup(chat_id);
        m.thread = strdup(message_id);
        m.text = strdup(text);
        /* An odd name is dropped, not the message. */
        if (name && platform_strdup_field(name, PLATFORM_FIELD_MAX, &m.sender_name) == -ENOMEM)
                m.sender_name = NULL;
        reply = platform_json_object(msg, "reply_to_message");
        if (reply && id_string(reply, "message_id", message_id, sizeof message_id) >= 0) {
                snprintf(id, sizeof id, "%s:%s", chat_id, message_id);
                m.reply_to = strdup(id);
                if (!m.reply_to)
                        m.text = mfree(m.text);
        }
        if (!m.id || !m.sender || !m.conversation || !m.thread || !m.text) {
                platform_message_done(&m);
                return -ENOMEM;
        }
        *ret = m;
        return 1;
}

int telegram_parse_updates(struct json_object *result, int64_t *ret_next_offset, struct platform_message **ret,
                           size_t *ret_n, size_t *ret_malformed) {
        struct platform_message *v = NULL;
        size_t n = 0, bad = 0, count;
        int64_t next = *ret_next_offset;

        if (!json_object_is_type(result, json_type_array))
                return -EBADMSG;
        count = json_object_array_length(result);
        for (size_t i = 0; i < count; i++) {
                struct platform_message m = {};
                int64_t uid = -1;
                int r = telegram_parse_update(json_object_array_get_idx(result, i), &uid, &m);

                if (uid >= 0 && uid + 1 > next)
                        next = uid + 1;
                if (r == -ENOMEM) {
                        platform_messages_free(v, n);
                        return r;
                }
                if (r < 0) {
                        bad++;
                        continue;
                }
                if (r > 0 && platform_messages_push(&v, &n, &m) < 0) {
                        platform_message_done(&m);
                        platform_messages_free(v, n);
                        return -ENOMEM;
                }
        }
        *ret_next_offset = next;
        *ret = v;
        *ret_n = n;
        *ret_malformed = bad;
        return 0;
}

/* chat_id: an integer id or "@channelusername". */
static struct json_object *chat_id_json(const char *chat_id) {
        char *end;
        long long v;

        if (!chat_id || !*chat_id)
                return NULL;
        if (chat_id[0] == '@')
                return strlen(chat_id) <= 64 ? json_object_new_string(chat_id) : NULL;
        errno = 0;
        v = strtoll(chat_id, &end, 10);
        if (errno || *end)
                return NULL;
        return json_object_new_int64(v);
}

char *telegram_build_send(const char *chat_id, const char *text, size_t len, const char *reply_to) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *id = chat_id_json(chat_id), *rp;
        char *end;
        long long mid;

        if (!o || !id) {
                json_object_put(id);
                return NULL;
        }
        json_object_object_add(o, "chat_id", id);
        json_object_object_add(o, "text", json_object_new_string_len(text, (int) len));
        if (reply_to && *reply_to) {
                errno = 0;
                mid = strtoll(reply_to, &end, 10);
                if (errno || *end || mid <= 0)
                        return NULL;
                rp = json_object_new_object();
                if (!rp)
                        return NULL;
                json_object_object_add(rp, "message_id", json_object_new_int64(mid));
                /* The message may be gone; the answer still goes out. */
                json_object_object_add(rp, "allow_sending_without_reply", json_object_new_boolean(1));
                json_object_object_add(o, "reply_parameters", rp);
        }
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int telegram_updates_query(int64_t offset, unsigned timeout_sec, char *buf, size_t size) {
        int n = snprintf(buf, size, "offset=%" PRId64 "&timeout=%u&limit=%d&allowed_updates=%%5B%%22message%%22%%5D",
                         offset, timeout_sec, TELEGRAM_UPDATES_LIMIT);

        return n < 0 || (size_t) n >= size ? -ENOBUFS : 0;
}

int telegram_parse_sent(struct json_object *result, char **ret_message_id) {
        char id[24];

        if (!json_object_is_type(result, json_type_object) || id_string(result, "message_id", id, sizeof id) < 0)
                return -EBADMSG;
        *ret_message_id = strdup(id);
        return *ret_message_id ? 0 : -ENOMEM;
}

int telegram_parse_me(struct json_object *result, char **ret_username) {
        return platform_strdup_field(platform_json_string(result, "username"), PLATFORM_FIELD_MAX, ret_username);
}

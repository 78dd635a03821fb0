/* Slack codec (slack_codec.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "proto.h"
#include "slack_codec.h"

/* Slack ts: "1355517523.000005". */
static bool ts_valid(const char *ts) {
        size_t n = ts ? strlen(ts) : 0, dot = 0;

        if (n == 0 || n > 32)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (ts[i] == '.')
                        dot++;
                else if (ts[i] < '0' || ts[i] > '9')
                        return false;
        }
        return dot == 1;
}

/* Slack ids: U…, C…, D…, G…, W…, B…: upper-case letters and digits. */
static bool slack_id_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int slack_parse_event(const char *body, size_t len, const char *bot_user_id, struct platform_message *ret,
                      char **ret_challenge) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *ev;
        const char *type, *user, *channel, *ts, *thread, *text;
        struct platform_message m = {};
        char id[80];

        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        type = platform_json_string(o, "type");
        if (!type)
                return -EBADMSG;
        if (streq(type, "url_verification")) {
                const char *c = platform_json_string(o, "challenge");
                if (!c || platform_strdup_field(c, PLATFORM_FIELD_MAX, ret_challenge) < 0)
                        return -EBADMSG;
                return SLACK_URL_VERIFICATION;
        }
        if (!streq(type, "event_callback"))
                return SLACK_IGNORED;
        ev = platform_json_object(o, "event");
        if (!ev || !platform_json_string(ev, "type"))
                return -EBADMSG;
        if (!streq(platform_json_string(ev, "type"), "message"))
                return SLACK_IGNORED;
        /* message_changed, bot_message, channel_join …: only plain messages of humans. */
        if (platform_json_string(ev, "subtype") || platform_json_string(ev, "bot_id"))
                return SLACK_IGNORED;
        user = platform_json_string(ev, "user");
        channel = platform_json_string(ev, "channel");
        ts = platform_json_string(ev, "ts");
        thread = platform_json_string(ev, "thread_ts");
        text = platform_json_string(ev, "text");
        if (!slack_id_valid(user) || !slack_id_valid(channel) || !ts_valid(ts) || (thread && !ts_valid(thread)) ||
            !text || strlen(text) > PLATFORM_TEXT_MAX)
                return -EBADMSG;
        if (bot_user_id && streq(user, bot_user_id))
                return SLACK_IGNORED;
        if (!*text)
                return SLACK_IGNORED;
        snprintf(id, sizeof id, "%s:%s", channel, ts);
        m.id = strdup(id);
        m.sender = strdup(user);
        m.conversation = strdup(channel);
        m.thread = strdup(thread ? thread : ts);
        m.text = strdup(text);
        if (!m.id || !m.sender || !m.conversation || !m.thread || !m.text) {
                platform_message_done(&m);
                return -ENOMEM;
        }
        *ret = m;
        return SLACK_MESSAGE;
}

int slack_parse_response(long status, const char *body, size_t len, uint64_t retry_after_usec,
                         struct json_object **ret, struct platform_error *err) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *ok;
        const char *e;

        *ret = NULL;
        platform_error_from_status(err, status);
        err->retry_after_usec = retry_after_usec;
        if (platform_json_parse(body, len, &o) < 0 || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
                return -EBADMSG;
        if (json_object_get_boolean(ok) && status >= 200 && status < 300) {
                *ret = json_object_get(o);
                return 0;
        }
        e = platform_json_string(o, "error");
        snprintf(err->code, sizeof err->code, "%s", e ? e : "unknown_error");
        snprintf(err->description, sizeof err->description, "%s", e ? e : "(no error given)");
        err->retryable = status == 429 || status >= 500 || streq(e, "ratelimited") || streq(e, "internal_error") ||
                         streq(e, "fatal_error") || streq(e, "service_unavailable") || streq(e, "request_timeout");
        return -EREMOTEIO;
}

char *slack_build_post(const char *channel, const char *text, size_t len, const char *thread_ts) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || !channel)
                return NULL;
        json_object_object_add(o, "channel", json_object_new_string(channel));
        json_object_object_add(o, "text", json_object_new_string_len(text, (int) len));
        if (thread_ts && *thread_ts)
                json_object_object_add(o, "thread_ts", json_object_new_string(thread_ts));
        /* Plain text: no @channel pings or links unfurled from what an actor wrote. */
        json_object_object_add(o, "unfurl_links", json_object_new_boolean(0));
        json_object_object_add(o, "unfurl_media", json_object_new_boolean(0));
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

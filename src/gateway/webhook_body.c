/* Parsing a generic webhook's body (webhook_body.h). */

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "webhook_body.h"

int webhook_message_parse(const void *body, size_t len, struct webhook_message *ret, const char **reason) {
        struct webhook_message m = {};
        struct json_tokener *tok;
        struct json_object *from = NULL;

        *ret = (struct webhook_message){};
        /* json-c takes an int length; a body this large was refused long before. */
        if (len > INT_MAX) {
                *reason = "the body is too large";
                return -EBADMSG;
        }
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        m.body = json_tokener_parse_ex(tok, len ? body : "", (int) len);
        /* Exactly one value: trailing bytes (a second object, garbage) are refused. */
        if (m.body && json_tokener_get_parse_end(tok) != len)
                m.body = (json_object_put(m.body), NULL);
        json_tokener_free(tok);
        if (!m.body || !json_object_is_type(m.body, json_type_object) ||
            !json_object_object_get_ex(m.body, "text", &m.text) || !json_object_is_type(m.text, json_type_string)) {
                webhook_message_done(&m);
                *reason = "expected a JSON object with \"text\" and \"from\"";
                return -EBADMSG;
        }
        if (!json_object_object_get_ex(m.body, "from", &from) || !json_object_is_type(from, json_type_string) ||
            json_object_get_string_len(from) == 0 || json_object_get_string_len(from) > WEBHOOK_FROM_MAX ||
            strlen(json_object_get_string(from)) != (size_t) json_object_get_string_len(from)) {
                webhook_message_done(&m);
                *reason = "\"from\" (the sender, 1-64 characters) is required";
                return -EBADMSG;
        }
        m.from = json_object_get_string(from);
        if (json_object_object_get_ex(m.body, "name", &m.name) && !json_object_is_type(m.name, json_type_string))
                m.name = NULL;
        if (json_object_object_get_ex(m.body, "reply_to", &m.reply_to) && !json_object_is_type(m.reply_to, json_type_string))
                m.reply_to = NULL;
        json_object_object_get_ex(m.body, "to", &m.to);
        json_object_object_get_ex(m.body, "reply_required", &m.reply_required);
        json_object_object_get_ex(m.body, "attention", &m.attention);
        *ret = m;
        return 0;
}

void webhook_message_done(struct webhook_message *m) {
        json_object_put(m->body);
        *m = (struct webhook_message){};
}

/* Inbound webhooks of `webhook` channels (webhooks.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "proto.h"
#include "webhook_body.h"
#include "webhook_verify.h"
#include "webhooks.h"
#include "platform_webhooks.h"


struct webhook_channel {
        char *name;
        char *group;
        char **allowed;       /* NULL-terminated; "*" allows everyone */
        char *secret;
        size_t secret_len;
};

struct webhooks {
        struct webhook_channel *channels;
        size_t n_channels;
};

static void channels_free(struct webhook_channel *ch, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(ch[i].name);
                free(ch[i].group);
                for (char **a = ch[i].allowed; a && *a; a++)
                        free(*a);
                free(ch[i].allowed);
                if (ch[i].secret)
                        explicit_bzero(ch[i].secret, ch[i].secret_len);
                free(ch[i].secret);
        }
        free(ch);
}

int webhooks_new(struct webhooks **ret) {
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

struct webhooks *webhooks_free(struct webhooks *w) {
        if (w)
                channels_free(w->channels, w->n_channels);
        free(w);
        return NULL;
}

int webhooks_apply_config(struct webhooks *w, const struct config *c) {
        struct webhook_channel *list = NULL;
        size_t n = 0;
        int r = 0;

        for (size_t i = 0; i < c->n_channels && r >= 0; i++) {
                const struct config_channel *ch = &c->channels[i];
                struct webhook_channel *e, *grown;

                if (!ch->kind || !streq(ch->kind, "webhook"))
                        continue;
                grown = reallocarray(list, n + 1, sizeof *list);
                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                list = grown;
                e = &list[n++];
                *e = (struct webhook_channel){ .name = strdup(ch->name), .group = ch->group ? strdup(ch->group) : NULL };
                e->allowed = calloc(ch->n_allowed_users + 1, sizeof *e->allowed);
                if (!e->name || !e->allowed) {
                        r = -ENOMEM;
                        break;
                }
                for (size_t j = 0; j < ch->n_allowed_users; j++)
                        if (!(e->allowed[j] = strdup(ch->allowed_users[j])))
                                r = -ENOMEM;
                if (r < 0)
                        break;
                r = gateway_channel_secret(ch, "secret_file", &e->secret, &e->secret_len);
                if (r == -ENOKEY) {
                        log_warning("[channels.%s] has no secret_file: its webhook refuses every request", ch->name);
                        r = 0;
                } else if (r >= 0 && e->secret_len < 16)
                        r = log_error_errno(EINVAL, "[channels.%s] the secret is shorter than 16 characters", ch->name);
        }
        if (r < 0) {
                channels_free(list, n);
                return r;
        }
        channels_free(w->channels, w->n_channels);
        w->channels = list;
        w->n_channels = n;
        return 0;
}

static bool allowed(const struct webhook_channel *ch, const char *who) {
        for (char **a = ch->allowed; *a; a++)
                if (streq(*a, "*") || streq(*a, who))
                        return true;
        return false;
}

static struct webhook_header header(struct http_request *req, const char *name) {
        const char *v = http_request_header(req, name);
        return (struct webhook_header){ .value = v, .len = v ? strlen(v) : 0 };
}

struct json_object *webhooks_verify(struct webhooks *w, struct http_request *req, const char *channel) {
        const struct webhook_channel *ch = NULL;
        struct webhook_request wr;
        enum webhook_verdict v;
        _cleanup_(webhook_message_done) struct webhook_message msg = {};
        struct json_object *args;
        const char *reason = NULL;
        int r;
        char fields[128];

        snprintf(fields, sizeof fields, "CONCLAVE_CHANNEL=%s", channel);
        for (size_t i = 0; i < w->n_channels; i++)
                if (streq(w->channels[i].name, channel))
                        ch = &w->channels[i];
        if (!ch) {
                http_request_respond_error(req, 404, "not_found", "no webhook channel \"%s\" (a [channels.NAME] with kind = \"webhook\")",
                                           channel);
                return NULL;
        }
        wr = (struct webhook_request){
                .signature = header(req, "X-Conclave-Signature"),
                .timestamp = header(req, "X-Conclave-Timestamp"),
                .delivery = header(req, "X-Conclave-Delivery"),
                .body = req->body ? req->body : "",
                .body_len = req->body_len,
                .now = (int64_t) time(NULL),
        };
        v = webhook_verify_generic(ch->secret, ch->secret ? ch->secret_len : 0, &wr, 0);
        if (v != WEBHOOK_VALID) {
                log_fields_errno(LOG_WARNING, 0, fields, "webhook of channel %s refused from %s: %s", channel,
                                 req->client, webhook_verdict_to_string(v));
                if (v == WEBHOOK_INTERNAL_ERROR)
                        http_request_respond_error(req, 500, "internal", "cannot verify the signature");
                else
                        http_request_respond_error(req, 401, "bad_signature", "webhook refused: %s",
                                                   webhook_verdict_to_string(v));
                return NULL;
        }
        r = webhook_message_parse(wr.body, wr.body_len, &msg, &reason);
        if (r < 0) {
                if (r == -ENOMEM)
                        http_request_respond_error(req, 500, "internal", "out of memory");
                else
                        http_request_respond_error(req, 400, "bad_request", "%s", reason);
                return NULL;
        }
        if (!allowed(ch, msg.from)) {
                /* Who and where, never what they wrote. */
                log_fields_errno(LOG_WARNING, 0, fields, "channel %s: sender \"%s\" is not in allowed_users; message dropped",
                                 channel, msg.from);
                http_request_respond_error(req, 403, "forbidden", "sender is not allowed on this channel");
                return NULL;
        }
        if (!ch->group) {
                http_request_respond_error(req, 503, "unavailable", "channel %s has no group", channel);
                return NULL;
        }
        /* The sender becomes (or is) the human actor bound to it on this channel, like every
         * channel's users (channel.inbound in the supervisor). */
        args = json_object_new_object();
        if (!args) {
                http_request_respond_error(req, 500, "internal", "out of memory");
                return NULL;
        }
        json_object_object_add(args, "channel", json_object_new_string(channel));
        json_object_object_add(args, "user", json_object_new_string(msg.from));
        json_object_object_add(args, "text", json_object_get(msg.text));
        json_object_object_add(args, "message_id", json_object_new_string_len(wr.delivery.value, (int) wr.delivery.len));
        if (msg.name)
                json_object_object_add(args, "display_name", json_object_get(msg.name));
        if (msg.reply_to)
                json_object_object_add(args, "reply_to", json_object_get(msg.reply_to));
        if (msg.to)
                json_object_object_add(args, "to", json_object_get(msg.to));
        if (msg.reply_required)
                json_object_object_add(args, "reply_required", json_object_get(msg.reply_required));
        if (msg.attention)
                json_object_object_add(args, "attention", json_object_get(msg.attention));
        return args;
}

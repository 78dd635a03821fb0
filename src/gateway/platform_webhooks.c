/* Telegram and Slack webhooks into channel.inbound (platform_webhooks.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "platform.h"
#include "platform_webhooks.h"
#include "proto.h"
#include "slack_codec.h"
#include "telegram_codec.h"
#include "text_clean.h"
#include "webhook_verify.h"

#define SECRET_MAX 4096

enum platform_kind { KIND_TELEGRAM, KIND_SLACK };

struct platform_channel {
        char *name;
        enum platform_kind kind;
        char *secret; /* NULL: refuse everything */
        size_t secret_len;
};

struct platform_webhooks {
        struct platform_channel *channels;
        size_t n_channels;
};

static void channels_free(struct platform_channel *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].name);
                if (v[i].secret)
                        explicit_bzero(v[i].secret, v[i].secret_len);
                free(v[i].secret);
        }
        free(v);
}

int platform_webhooks_new(struct platform_webhooks **ret) {
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

struct platform_webhooks *platform_webhooks_free(struct platform_webhooks *p) {
        if (p)
                channels_free(p->channels, p->n_channels);
        free(p);
        return NULL;
}

int gateway_channel_secret(const struct config_channel *ch, const char *key, char **ret, size_t *ret_len) {
        _cleanup_free_ char *home = paths_home(), *path = NULL;
        const char *file = config_channel_setting(ch, key), *creds = getenv("CREDENTIALS_DIRECTORY");
        struct stat st;
        size_t len;
        int r;

        if (file)
                path = file[0] == '/' ? strdup(file) : (home ? path_join(home, file) : NULL);
        else if (creds && *creds) {
                if (asprintf(&path, "%s/%s.%.*s", creds, ch->name, (int) (strlen(key) - 5), key) < 0)
                        path = NULL;
                if (path && access(path, F_OK) < 0)
                        return -ENOKEY;
        } else
                return -ENOKEY;
        if (!path)
                return -ENOMEM;
        if (stat(path, &st) < 0)
                return log_error_errno(errno, "[channels.%s] %s %s cannot be read", ch->name, key, path);
        if (file && (st.st_mode & 077))
                return log_error_errno(EPERM, "[channels.%s] %s %s is readable by others; run chmod 600 %s", ch->name, key,
                                       path, path);
        r = read_file_bounded(path, SECRET_MAX, ret, &len);
        if (r < 0)
                return log_error_errno(r, "[channels.%s] cannot read %s %s", ch->name, key, path);
        while (len > 0 && ((*ret)[len - 1] == '\n' || (*ret)[len - 1] == '\r'))
                (*ret)[--len] = 0;
        *ret_len = len;
        return 0;
}

int platform_webhooks_apply_config(struct platform_webhooks *p, const struct config *c) {
        struct platform_channel *list = NULL;
        size_t n = 0;
        int r = 0;

        for (size_t i = 0; i < c->n_channels && r >= 0; i++) {
                const struct config_channel *ch = &c->channels[i];
                struct platform_channel *grown, *e;
                const char *key;

                if (streq(ch->kind, "slack"))
                        key = "signing_secret_file";
                else if (streq(ch->kind, "telegram") && streq(config_channel_setting(ch, "mode"), "webhook"))
                        key = "secret_file";
                else
                        continue;
                grown = reallocarray(list, n + 1, sizeof *list);
                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                list = grown;
                e = &list[n++];
                *e = (struct platform_channel){ .name = strdup(ch->name), .kind = streq(ch->kind, "slack") ? KIND_SLACK : KIND_TELEGRAM };
                if (!e->name) {
                        r = -ENOMEM;
                        break;
                }
                r = gateway_channel_secret(ch, key, &e->secret, &e->secret_len);
                if (r == -ENOKEY) {
                        log_warning("[channels.%s] has no %s: its webhook refuses every request", ch->name, key);
                        r = 0;
                }
        }
        if (r < 0) {
                channels_free(list, n);
                return r;
        }
        channels_free(p->channels, p->n_channels);
        p->channels = list;
        p->n_channels = n;
        return 0;
}

/* --- the supervisor's answer --------------------------------------------------------------- */

struct pending {
        struct http_request *req;
        char channel[64];
};

static void on_inbound(struct json_object *reply, int error, bool more, void *userdata) {
        struct pending *p = userdata;
        struct json_object *ok, *err, *code;
        const char *c = NULL;

        (void) more;
        p->req->call = NULL;
        if (!reply) {
                /* Not stored: a 5xx makes the platform retry later. */
                http_request_respond_error(p->req, 503, "unavailable", "the supervisor is not available (%s)", strerror(-error));
                free(p);
                return;
        }
        if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok)) {
                _cleanup_json_ struct json_object *body = json_object_new_object();
                if (body)
                        json_object_object_add(body, "ok", json_object_new_boolean(1));
                http_request_respond_json(p->req, 200, body);
                free(p);
                return;
        }
        if (json_object_object_get_ex(reply, "error", &err) && json_object_object_get_ex(err, "code", &code))
                c = json_object_get_string(code);
        if (streq(c, "forbidden") || streq(c, "bad_request")) {
                /* Logged by the supervisor (who, which channel); retrying cannot change it. */
                _cleanup_json_ struct json_object *body = json_object_new_object();
                if (body)
                        json_object_object_add(body, "ok", json_object_new_boolean(0));
                http_request_respond_json(p->req, 200, body);
        } else
                http_request_respond_error(p->req, 503, "unavailable", "channel %s: the message was not stored (%s)",
                                           p->channel, c ? c : "error");
        free(p);
}

static void inbound(struct upstream *u, struct http_request *req, const char *channel, const struct platform_message *m,
                    const char *thread) {
        _cleanup_json_ struct json_object *args = json_object_new_object();
        struct pending *p = calloc(1, sizeof *p);
        _cleanup_free_ char *text = NULL;
        int r;

        /* Cleaned as conclave-channels cleans what its drivers report (channel.h). */
        if (!args || !p || text_clean(m->text, strlen(m->text), PLATFORM_TEXT_MAX, &text) < 0) {
                free(p);
                return http_request_respond_error(req, 500, "internal", "out of memory");
        }
        p->req = req;
        snprintf(p->channel, sizeof p->channel, "%s", channel);
        json_object_object_add(args, "channel", json_object_new_string(channel));
        json_object_object_add(args, "message_id", json_object_new_string(m->id));
        if (thread)
                json_object_object_add(args, "thread", json_object_new_string(thread));
        if (m->reply_to)
                json_object_object_add(args, "reply_to", json_object_new_string(m->reply_to));
        json_object_object_add(args, "user", json_object_new_string(m->sender));
        if (m->sender_name)
                json_object_object_add(args, "display_name", json_object_new_string(m->sender_name));
        json_object_object_add(args, "text", json_object_new_string(text));
        r = upstream_call(u, "channel.inbound", args, on_inbound, p, &req->call);
        if (r < 0) {
                free(p);
                http_request_respond_error(req, 503, "unavailable", "the supervisor is not available");
        }
}

static struct webhook_header header(struct http_request *req, const char *name) {
        const char *v = http_request_header(req, name);
        return (struct webhook_header){ .value = v, .len = v ? strlen(v) : 0 };
}

static void refuse(struct http_request *req, const char *channel, enum webhook_verdict v) {
        log_fields_errno(LOG_WARNING, 0, NULL, "webhook of channel %s refused from %s: %s", channel, req->client,
                         webhook_verdict_to_string(v));
        if (v == WEBHOOK_INTERNAL_ERROR)
                http_request_respond_error(req, 500, "internal", "cannot verify the request");
        else
                http_request_respond_error(req, 401, "bad_signature", "webhook refused: %s", webhook_verdict_to_string(v));
}

static void ack(struct http_request *req) {
        _cleanup_json_ struct json_object *body = json_object_new_object();
        if (body)
                json_object_object_add(body, "ok", json_object_new_boolean(1));
        http_request_respond_json(req, 200, body);
}

static void handle_slack(const struct platform_channel *pc, struct upstream *u, struct http_request *req) {
        struct webhook_request wr = {
                .signature = header(req, "X-Slack-Signature"),
                .timestamp = header(req, "X-Slack-Request-Timestamp"),
                .body = req->body ? req->body : "",
                .body_len = req->body_len,
                .now = (int64_t) time(NULL),
        };
        enum webhook_verdict v = webhook_verify_slack(pc->secret, pc->secret ? pc->secret_len : 0, &wr);
        struct platform_message m = {};
        _cleanup_free_ char *challenge = NULL;
        int r;

        if (v != WEBHOOK_VALID)
                return refuse(req, pc->name, v);
        r = slack_parse_event(req->body, req->body_len, NULL, &m, &challenge);
        if (r == -EBADMSG) {
                log_warning("webhook of channel %s: malformed Slack event (%zu bytes) from %s", pc->name, req->body_len,
                            req->client);
                return http_request_respond_error(req, 400, "bad_request", "not a Slack Events API request");
        }
        if (r < 0)
                return http_request_respond_error(req, 500, "internal", "out of memory");
        if (r == SLACK_URL_VERIFICATION) {
                _cleanup_json_ struct json_object *body = json_object_new_object();
                if (body)
                        json_object_object_add(body, "challenge", json_object_new_string(challenge));
                log_info("channel %s: Slack verified the request URL", pc->name);
                return http_request_respond_json(req, 200, body);
        }
        if (r == SLACK_IGNORED)
                return ack(req);
        /* A retry (X-Slack-Retry-Num) carries the same channel and ts: the same message id. */
        inbound(u, req, pc->name, &m, m.thread);
        platform_message_done(&m);
}

static void handle_telegram(const struct platform_channel *pc, struct upstream *u, struct http_request *req) {
        enum webhook_verdict v = webhook_verify_telegram(pc->secret, pc->secret ? pc->secret_len : 0,
                                                         header(req, "X-Telegram-Bot-Api-Secret-Token"));
        _cleanup_json_ struct json_object *update = NULL;
        struct platform_message m = {};
        int64_t update_id = -1;
        int r;

        if (v != WEBHOOK_VALID)
                return refuse(req, pc->name, v);
        r = platform_json_parse(req->body, req->body_len, &update);
        if (r >= 0)
                r = telegram_parse_update(update, &update_id, &m);
        if (r == -EBADMSG) {
                log_warning("webhook of channel %s: malformed Telegram update (%zu bytes)", pc->name, req->body_len);
                return http_request_respond_error(req, 400, "bad_request", "not a Telegram Update");
        }
        if (r < 0)
                return http_request_respond_error(req, 500, "internal", "out of memory");
        if (r == 0)
                return ack(req);
        inbound(u, req, pc->name, &m, NULL);
        platform_message_done(&m);
}

bool platform_webhooks_handle(struct platform_webhooks *p, struct upstream *u, struct http_request *req,
                              const char *channel) {
        for (size_t i = 0; i < p->n_channels; i++) {
                const struct platform_channel *pc = &p->channels[i];
                if (!streq(pc->name, channel))
                        continue;
                if (pc->kind == KIND_SLACK)
                        handle_slack(pc, u, req);
                else
                        handle_telegram(pc, u, req);
                return true;
        }
        return false;
}

/* The telegram channel kind: Bot API long polling (getUpdates, the offset persisted once the
 * batch is durable, so a restart neither loses nor repeats an update) or webhook mode
 * (setWebhook to the gateway's /webhook/NAME with a secret token; updates then arrive through
 * conclave-gateway), sendMessage split at 4096 UTF-16 units and threaded with
 * reply_parameters. Wire format: telegram_codec.h. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "platform_driver.h"
#include "proto.h"
#include "telegram_codec.h"

#define TELEGRAM_API "https://api.telegram.org"

struct telegram {
        struct channel *ch;
        char *token;
        char *api_base;
        char *ca_file;
        bool webhook;
        char *webhook_url;
        char *secret; /* webhook secret token */
        uint64_t poll_timeout_usec;

        struct http_call *call; /* getMe, setWebhook or getUpdates in flight */
        sd_event_source *timer;
        int64_t offset;   /* next getUpdates offset (persisted as "offset") */
        int64_t pending_offset;
        size_t batch_left; /* inbound messages of the batch not yet durable */
        bool batch_failed;
        unsigned failures;
        struct platform_parts parts;
};

static const char *const telegram_settings[] = {
        "token_file", "api_base", "ca_file", "mode", "webhook_url", "secret_file", "poll_timeout", NULL,
};

static char *method_url(struct telegram *t, const char *method, const char *query) {
        char *url;

        if (asprintf(&url, "%s/bot%s/%s%s%s", t->api_base, t->token, method, query ? "?" : "", query ? query : "") < 0)
                return NULL;
        return url;
}

static int call_method(struct telegram *t, const char *method, const char *query, const char *body,
                       uint64_t timeout_usec, http_done_fn done, void *userdata, struct http_call **ret) {
        static const char *const json_headers[] = { "Content-Type: application/json", NULL };
        _cleanup_free_ char *url = method_url(t, method, query);
        struct http_request req = {
                .method = body ? "POST" : "GET",
                .url = url,
                .headers = body ? json_headers : NULL,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .timeout_usec = timeout_usec,
                .ca_file = t->ca_file,
        };

        if (!url)
                return -ENOMEM;
        return http_call_start(channel_http(t->ch), &req, NULL, done, userdata, ret);
}

/* --- configuration ---------------------------------------------------------------------- */

static int telegram_configure(struct channel *ch, struct channel_check *chk) {
        struct telegram *t = channel_driver_data(ch);
        const char *mode, *base, *ca, *url;
        int r, ret = 0;

        t->ch = ch;
        r = channel_credential(ch, chk, "token_file", &t->token);
        if (r == -ENOKEY) {
                channel_check_error(chk, "token_file", "the bot token is required: ask @BotFather for one, store it in a "
                                    "file readable only by you and set token_file (or the credential %s.token)", channel_name(ch));
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        else if (strlen(t->token) > 128 || strchr(t->token, '/') || strchr(t->token, '?') || !strchr(t->token, ':')) {
                channel_check_error(chk, "token_file", "this is not a bot token (expected \"123456:ABC…\" from @BotFather)");
                ret = -EINVAL;
        }
        base = channel_check_string(chk, "api_base", false);
        if (base && platform_check_base_url(chk, "api_base", base) < 0)
                ret = -EINVAL;
        t->api_base = strdup(base ? base : TELEGRAM_API);
        if (t->api_base && t->api_base[0] && t->api_base[strlen(t->api_base) - 1] == '/')
                t->api_base[strlen(t->api_base) - 1] = 0;
        ca = channel_check_string(chk, "ca_file", false);
        if (ca && !(t->ca_file = strdup(ca)))
                return -ENOMEM;
        mode = channel_check_string(chk, "mode", false);
        if (mode && !streq(mode, "poll") && !streq(mode, "webhook")) {
                channel_check_error(chk, "mode", "expected \"poll\" (getUpdates) or \"webhook\" (through the gateway)");
                ret = -EINVAL;
        }
        t->webhook = streq(mode, "webhook");
        url = channel_check_string(chk, "webhook_url", t->webhook);
        if (t->webhook && url) {
                if (strncmp(url, "https://", 8) != 0 && !platform_url_is_loopback(url)) {
                        channel_check_error(chk, "webhook_url", "Telegram only calls https:// webhooks: give the public "
                                            "https URL that reaches the gateway's /webhook/%s", channel_name(ch));
                        ret = -EINVAL;
                }
                t->webhook_url = strdup(url);
                r = channel_credential(ch, chk, "secret_file", &t->secret);
                if (r == -ENOKEY) {
                        channel_check_error(chk, "secret_file", "webhook mode needs a secret token (1-256 of A-Z a-z 0-9 _ -) "
                                            "in a private file: the gateway refuses updates without it");
                        ret = -EINVAL;
                } else if (r < 0)
                        ret = -EINVAL;
                else if (strlen(t->secret) > 256 || strspn(t->secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
                                                            strlen(t->secret)) {
                        channel_check_error(chk, "secret_file", "Telegram allows only A-Z a-z 0-9 _ - (1-256 characters) "
                                            "in a secret token");
                        ret = -EINVAL;
                }
        }
        r = channel_check_duration(chk, "poll_timeout", 30 * USEC_PER_SEC, USEC_PER_SEC, 50 * USEC_PER_SEC,
                                   &t->poll_timeout_usec);
        if (r < 0)
                ret = r;
        if (!t->api_base)
                return -ENOMEM;
        return ret;
}

/* --- polling ------------------------------------------------------------------------------ */

static void poll_now(struct telegram *t);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        poll_now(userdata);
        return 0;
}

static void poll_later(struct telegram *t, uint64_t delay) {
        int r;

        t->timer = sd_event_source_disable_unref(t->timer);
        r = sd_event_add_time_relative(channel_event(t->ch), &t->timer, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                       on_timer, t);
        if (r < 0)
                channel_set_state(t->ch, CHANNEL_DOWN, "cannot arm a timer: %s", strerror(-r));
}

/* A call failed: degrade (down when the token is refused) and try again later. */
static void call_failed(struct telegram *t, const char *what, int error, const struct platform_error *err) {
        t->failures++;
        if (error == -EREMOTEIO && (streq(err->code, "401") || streq(err->code, "404"))) {
                /* 404 is what the Bot API answers for a malformed token. */
                channel_set_state(t->ch, CHANNEL_DOWN, "%s: the bot token was refused (%s): get a valid one from "
                                  "@BotFather", what, err->description);
                poll_later(t, 60 * USEC_PER_SEC);
                return;
        }
        if (error == -EREMOTEIO && streq(err->code, "409"))
                channel_set_state(t->ch, CHANNEL_DEGRADED, "%s: %s (a webhook is set for this bot: use mode = \"webhook\" "
                                  "or call deleteWebhook)", what, err->description);
        else if (error == -EREMOTEIO)
                channel_set_state(t->ch, CHANNEL_DEGRADED, "%s: %s %s", what, err->code, err->description);
        else if (error == -EBADMSG)
                channel_set_state(t->ch, CHANNEL_DEGRADED, "%s: malformed answer (HTTP %ld)", what, err->status);
        else
                channel_set_state(t->ch, CHANNEL_DEGRADED, "%s: %s", what, strerror(-error));
        poll_later(t, platform_backoff_usec(t->failures, err ? err->retry_after_usec : 0));
}

static void batch_settled(struct telegram *t) {
        char v[24];

        if (t->batch_failed) {
                /* Not all durable: ask for the same updates again (de-duplicated by message id). */
                t->batch_failed = false;
                poll_later(t, platform_backoff_usec(++t->failures, 0));
                return;
        }
        if (t->pending_offset > t->offset) {
                t->offset = t->pending_offset;
                snprintf(v, sizeof v, "%" PRId64, t->offset);
                (void) channel_store_set(t->ch, "offset", v);
        }
        poll_now(t);
}

static void on_inbound_done(struct channel *ch, int error, void *userdata) {
        struct telegram *t = channel_driver_data(ch);

        (void) userdata;
        if (error < 0 && error != -ENOENT && error != -EPERM) {
                channel_log(ch, LOG_WARNING, error, "an update was not stored; fetching it again");
                t->batch_failed = true;
        } else if (error < 0)
                channel_log(ch, LOG_WARNING, error, "the channel's group does not take messages; update dropped");
        if (--t->batch_left == 0)
                batch_settled(t);
}

static void on_updates(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct telegram *t = userdata;
        _cleanup_json_ struct json_object *result = NULL;
        struct platform_message *msgs = NULL;
        struct platform_error err = {};
        size_t n = 0, bad = 0;
        int64_t next = t->offset;
        int r;

        (void) call;
        t->call = NULL;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                /* A long poll the server closed without an answer: try again soon. */
                return call_failed(t, "getUpdates", resp->error, &err);
        }
        r = telegram_parse_response(resp->status, resp->body, resp->body_len, &result, &err);
        if (r >= 0)
                r = telegram_parse_updates(result, &next, &msgs, &n, &bad);
        if (r < 0) {
                if (r == -EBADMSG)
                        channel_log(t->ch, LOG_WARNING, r, "getUpdates: malformed answer (HTTP %ld, %zu bytes); retrying",
                                    resp->status, resp->body_len);
                return call_failed(t, "getUpdates", r, &err);
        }
        t->failures = 0;
        if (channel_get_state(t->ch) != CHANNEL_UP)
                channel_set_state(t->ch, CHANNEL_UP, NULL);
        if (bad > 0)
                channel_log(t->ch, LOG_WARNING, 0, "getUpdates: %zu malformed update(s) skipped", bad);
        t->pending_offset = next;
        t->batch_left = 1; /* held until every report is made */
        for (size_t i = 0; i < n; i++) {
                struct platform_message *m = &msgs[i];
                struct channel_inbound in = {
                        .message_id = m->id,
                        .user = m->sender,
                        .display_name = m->sender_name,
                        .text = m->text,
                        .reply_to = m->reply_to,
                };
                t->batch_left++;
                r = channel_report_inbound(t->ch, &in, on_inbound_done, NULL);
                if (r < 0) {
                        t->batch_left--;
                        if (r == -ENOTCONN)
                                t->batch_failed = true;
                        /* -EACCES (not allowed, logged by the framework), -EINVAL: handled. */
                }
        }
        platform_messages_free(msgs, n);
        if (--t->batch_left == 0)
                batch_settled(t);
}

static void poll_now(struct telegram *t) {
        char query[160];
        int r;

        if (t->call || t->batch_left > 0)
                return;
        r = telegram_updates_query(t->offset, (unsigned) (t->poll_timeout_usec / USEC_PER_SEC), query, sizeof query);
        if (r >= 0)
                r = call_method(t, "getUpdates", query, NULL, t->poll_timeout_usec + 15 * USEC_PER_SEC, on_updates, t, &t->call);
        if (r < 0)
                call_failed(t, "getUpdates", r, NULL);
}

static void on_set_webhook(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct telegram *t = userdata;
        _cleanup_json_ struct json_object *result = NULL;
        struct platform_error err = {};
        int r;

        (void) call;
        t->call = NULL;
        r = resp->error < 0 ? resp->error : telegram_parse_response(resp->status, resp->body, resp->body_len, &result, &err);
        if (r < 0) {
                if (resp->error < 0)
                        platform_error_from_status(&err, 0);
                t->failures++;
                channel_set_state(t->ch, CHANNEL_DOWN, "setWebhook: %s", r == -EREMOTEIO ? err.description : strerror(-r));
                t->timer = sd_event_source_disable_unref(t->timer);
                (void) sd_event_add_time_relative(channel_event(t->ch), &t->timer, CLOCK_MONOTONIC,
                                                  platform_backoff_usec(t->failures, err.retry_after_usec), TIMER_ACCURACY_USEC,
                                                  on_timer, t);
                return;
        }
        t->failures = 0;
        channel_set_state(t->ch, CHANNEL_UP, NULL);
}

static void register_webhook(struct telegram *t) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *allowed = json_object_new_array();
        int r;

        if (!o || !allowed) {
                json_object_put(allowed);
                return channel_set_state(t->ch, CHANNEL_DOWN, "out of memory");
        }
        json_object_object_add(o, "url", json_object_new_string(t->webhook_url));
        json_object_object_add(o, "secret_token", json_object_new_string(t->secret));
        json_object_array_add(allowed, json_object_new_string("message"));
        json_object_object_add(o, "allowed_updates", allowed);
        r = call_method(t, "setWebhook", NULL, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0, on_set_webhook,
                        t, &t->call);
        if (r < 0)
                channel_set_state(t->ch, CHANNEL_DOWN, "setWebhook: %s", strerror(-r));
}

static void poll_or_register(struct telegram *t) {
        if (t->webhook)
                register_webhook(t);
        else
                poll_now(t);
}

static int telegram_start(struct channel *ch) {
        struct telegram *t = channel_driver_data(ch);
        const char *v = channel_store_get(ch, "offset");
        char *end;

        t->offset = 0;
        if (v) {
                errno = 0;
                t->offset = strtoll(v, &end, 10);
                if (errno || *end || t->offset < 0) {
                        channel_log(ch, LOG_WARNING, 0, "stored offset \"%s\" is not a number; starting from the oldest "
                                    "unconfirmed update", v);
                        t->offset = 0;
                }
        }
        channel_set_state(ch, CHANNEL_CONNECTING, NULL);
        poll_or_register(t);
        return 0;
}

static void telegram_stop(struct channel *ch) {
        struct telegram *t = channel_driver_data(ch);

        if (t->call)
                http_call_cancel(t->call);
        t->call = NULL;
        t->timer = sd_event_source_disable_unref(t->timer);
        channel_secret_free(t->token);
        channel_secret_free(t->secret);
        free(t->api_base);
        free(t->ca_file);
        free(t->webhook_url);
        platform_parts_clear(&t->parts);
}

/* --- delivery ----------------------------------------------------------------------------- */

struct send_state {
        struct telegram *t;
        struct channel_delivery *d;
        char chat[32];
        char reply_msg[24];
        size_t *lengths; /* parts of the text */
        size_t n_parts, part, offset;
        char *first_id;
};

static void send_state_free(struct send_state *s) {
        free(s->lengths);
        free(s->first_id);
        free(s);
}

static int send_part(struct send_state *s);

static void on_sent(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct send_state *s = userdata;
        _cleanup_json_ struct json_object *result = NULL;
        struct platform_error err = {};
        const struct channel_outbound *m = channel_delivery_message(s->d);
        char *id = NULL;
        int r;

        (void) call;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                platform_delivery_failed(s->d, resp->error, &err);
                return send_state_free(s);
        }
        r = telegram_parse_response(resp->status, resp->body, resp->body_len, &result, &err);
        if (r >= 0)
                r = telegram_parse_sent(result, &id);
        if (r < 0) {
                if (r == -EBADMSG) {
                        /* We cannot tell whether it was sent; a retry might duplicate it. */
                        channel_log(s->t->ch, LOG_WARNING, r, "sendMessage: malformed answer (HTTP %ld)", resp->status);
                        err.retryable = true;
                        snprintf(err.description, sizeof err.description, "malformed answer");
                }
                platform_delivery_failed(s->d, r == -EBADMSG ? -EBADMSG : r, &err);
                return send_state_free(s);
        }
        if (!s->first_id) {
                char full[64];
                snprintf(full, sizeof full, "%s:%s", s->chat, id);
                s->first_id = strdup(full);
        }
        free(id);
        s->offset += s->lengths[s->part++];
        if (s->part < s->n_parts) {
                platform_parts_set(&s->t->parts, m->delivery_id, (unsigned) s->part, s->first_id);
                r = send_part(s);
                if (r < 0) {
                        platform_delivery_failed(s->d, r, &err);
                        send_state_free(s);
                }
                return;
        }
        platform_parts_forget(&s->t->parts, m->delivery_id);
        channel_delivery_done(s->d, &(struct channel_delivery_result){ .platform_id = s->first_id });
        send_state_free(s);
}

static int send_part(struct send_state *s) {
        const struct channel_outbound *m = channel_delivery_message(s->d);
        _cleanup_free_ char *body = telegram_build_send(s->chat, m->text + s->offset, s->lengths[s->part],
                                                        s->part == 0 && s->reply_msg[0] ? s->reply_msg : NULL);

        if (!body)
                return -ENOMEM;
        return call_method(s->t, "sendMessage", NULL, body, 0, on_sent, s, NULL);
}

static int telegram_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct telegram *t = channel_driver_data(ch);
        struct send_state *s = calloc(1, sizeof *s);
        const char *first;
        int n, r;

        if (!s)
                return -ENOMEM;
        s->t = t;
        s->d = d;
        /* Replies go to the chat of the message answered; others to the user's private chat. */
        snprintf(s->chat, sizeof s->chat, "%s", m->user);
        if (m->reply_to) {
                const char *colon = strrchr(m->reply_to, ':');
                if (colon && (size_t) (colon - m->reply_to) < sizeof s->chat && strlen(colon + 1) < sizeof s->reply_msg) {
                        snprintf(s->chat, sizeof s->chat, "%.*s", (int) (colon - m->reply_to), m->reply_to);
                        snprintf(s->reply_msg, sizeof s->reply_msg, "%s", colon + 1);
                }
        }
        n = platform_chunk_text(m->text, strlen(m->text), TELEGRAM_TEXT_MAX, true, &s->lengths);
        if (n < 0) {
                send_state_free(s);
                return n;
        }
        s->n_parts = (size_t) n;
        /* A retry after part k failed goes on from part k. */
        s->part = platform_parts_done(&t->parts, m->delivery_id, &first);
        if (s->part >= s->n_parts)
                s->part = 0;
        for (size_t i = 0; i < s->part; i++)
                s->offset += s->lengths[i];
        if (first && !(s->first_id = strdup(first))) {
                send_state_free(s);
                return -ENOMEM;
        }
        r = send_part(s);
        if (r < 0)
                send_state_free(s);
        return r;
}

/* --- doctor ------------------------------------------------------------------------------- */

struct doctor_state {
        struct telegram *t;
        struct channel_doctor *doc;
        char *username;
};

static void on_doctor_webhook(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct doctor_state *s = userdata;
        _cleanup_json_ struct json_object *result = NULL;
        struct platform_error err = {};
        char detail[512], fix[512];
        const char *url, *last;
        int r;

        (void) call;
        r = resp->error < 0 ? resp->error : telegram_parse_response(resp->status, resp->body, resp->body_len, &result, &err);
        url = platform_json_string(result, "url");
        last = platform_json_string(result, "last_error_message");
        if (r < 0)
                channel_doctor_done(s->doc, false, "getWebhookInfo failed", "check the network path to the Bot API", NULL);
        else if (!streq(url, s->t->webhook_url)) {
                snprintf(fix, sizeof fix, "restart conclave-channels (it calls setWebhook), or check webhook_url; Telegram "
                         "has \"%s\"", url ? url : "");
                channel_doctor_done(s->doc, false, "the webhook is not registered", fix, NULL);
        } else if (last) {
                snprintf(fix, sizeof fix, "make %s reach the gateway's /webhook/%s (Telegram said: %.200s)", url,
                         channel_name(s->t->ch), last);
                channel_doctor_done(s->doc, false, "Telegram cannot deliver to the webhook", fix, NULL);
        } else {
                snprintf(detail, sizeof detail, "bot @%s, webhook %s", s->username, url);
                channel_doctor_done(s->doc, true, NULL, NULL, detail);
        }
        free(s->username);
        free(s);
}

static void on_doctor_me(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct doctor_state *s = userdata;
        _cleanup_json_ struct json_object *result = NULL;
        struct platform_error err = {};
        char problem[512], detail[512];
        int r;

        (void) call;
        r = resp->error < 0 ? resp->error : telegram_parse_response(resp->status, resp->body, resp->body_len, &result, &err);
        if (r >= 0)
                r = telegram_parse_me(result, &s->username);
        if (r == -EREMOTEIO && (streq(err.code, "401") || streq(err.code, "404"))) {
                channel_doctor_done(s->doc, false, "getMe: the bot token was refused",
                                    "get the token from @BotFather (/token) and put it in token_file", NULL);
        } else if (r < 0) {
                snprintf(problem, sizeof problem, "getMe failed: %s", r == -EREMOTEIO ? err.description :
                         resp->error_detail ? resp->error_detail : strerror(-r));
                channel_doctor_done(s->doc, false, problem, "check that api_base is reachable from this host (proxy, "
                                    "firewall, DNS) and ca_file if set", NULL);
        } else if (s->t->webhook) {
                if (call_method(s->t, "getWebhookInfo", NULL, NULL, 0, on_doctor_webhook, s, NULL) >= 0)
                        return;
                channel_doctor_done(s->doc, false, "cannot call getWebhookInfo", "see the journal", NULL);
        } else {
                snprintf(detail, sizeof detail, "bot @%s, long polling from offset %" PRId64, s->username, s->t->offset);
                channel_doctor_done(s->doc, true, NULL, NULL, detail);
        }
        free(s->username);
        free(s);
}

static void telegram_doctor(struct channel *ch, struct channel_doctor *doc) {
        struct telegram *t = channel_driver_data(ch);
        struct doctor_state *s = calloc(1, sizeof *s);

        if (!s)
                return channel_doctor_done(doc, false, "out of memory", "see the journal", NULL);
        s->t = t;
        s->doc = doc;
        if (call_method(t, "getMe", NULL, NULL, 15 * USEC_PER_SEC, on_doctor_me, s, NULL) < 0) {
                free(s);
                channel_doctor_done(doc, false, "cannot start getMe", "see the journal", NULL);
        }
}

const struct channel_kind channel_kind_telegram = {
        .name = "telegram",
        .size = sizeof(struct telegram),
        .settings = telegram_settings,
        .max_in_flight = 1, /* in order, and Telegram allows about one message per second per chat */
        .resend_in_doubt = true,
        .configure = telegram_configure,
        .start = telegram_start,
        .stop = telegram_stop,
        .deliver = telegram_deliver,
        .doctor = telegram_doctor,
};

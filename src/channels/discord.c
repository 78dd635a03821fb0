/* The discord channel kind. Outbound: the bot REST API (POST /channels/{id}/messages, split at
 * 2000 characters, replies with message_reference, and a nonce derived from the delivery id
 * with enforce_nonce so Discord itself drops a repeated send). Inbound: the Gateway WebSocket
 * (discord_gateway.c), whose URL comes from GET /gateway/bot. Wire format: discord_codec.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "discord_codec.h"
#include "discord_gateway.h"
#include "platform_driver.h"
#include "proto.h"

#define DISCORD_API "https://discord.com/api/v10"

struct discord {
        struct channel *ch;
        char *token;
        char *auth_header;
        char *api_base;
        char *ca_file;
        char *channel; /* default channel id for messages that answer nothing */
        struct http_call *call;
        sd_event_source *timer;
        unsigned failures;
        struct platform_parts parts;
        struct discord_gateway *gw;
};

static const char *const discord_settings[] = { "token_file", "api_base", "ca_file", "channel", NULL };

static int discord_call(struct discord *dc, const char *method, const char *path, const char *body, http_done_fn done,
                        void *userdata, struct http_call **ret) {
        const char *headers[] = { dc->auth_header, body ? "Content-Type: application/json" : NULL, NULL };
        _cleanup_free_ char *url = NULL;
        struct http_request req = {
                .method = method,
                .headers = headers,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .timeout_usec = 30 * USEC_PER_SEC,
                .ca_file = dc->ca_file,
        };

        if (asprintf(&url, "%s/%s", dc->api_base, path) < 0)
                return -ENOMEM;
        req.url = url;
        return http_call_start(channel_http(dc->ch), &req, NULL, done, userdata, ret);
}

static int discord_configure(struct channel *ch, struct channel_check *chk) {
        struct discord *dc = channel_driver_data(ch);
        const char *base, *ca, *chan;
        int r, ret = 0;

        dc->ch = ch;
        r = channel_credential(ch, chk, "token_file", &dc->token);
        if (r == -ENOKEY) {
                channel_check_error(chk, "token_file", "the bot token (Developer Portal → your application → Bot → "
                                    "Reset Token) is required in a private file");
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        else if (strlen(dc->token) > 256 || strpbrk(dc->token, " \t\r\n")) {
                channel_check_error(chk, "token_file", "this is not a bot token");
                ret = -EINVAL;
        } else if (asprintf(&dc->auth_header, "Authorization: Bot %s", dc->token) < 0)
                return -ENOMEM;
        base = channel_check_string(chk, "api_base", false);
        if (base && platform_check_base_url(chk, "api_base", base) < 0)
                ret = -EINVAL;
        dc->api_base = strdup(base ? base : DISCORD_API);
        if (!dc->api_base)
                return -ENOMEM;
        if (dc->api_base[0] && dc->api_base[strlen(dc->api_base) - 1] == '/')
                dc->api_base[strlen(dc->api_base) - 1] = 0;
        ca = channel_check_string(chk, "ca_file", false);
        if (ca && !(dc->ca_file = strdup(ca)))
                return -ENOMEM;
        chan = channel_check_string(chk, "channel", false);
        if (chan && !discord_snowflake_valid(chan)) {
                channel_check_error(chk, "channel", "expected a channel id (digits; Developer Mode → right-click the "
                                    "channel → Copy Channel ID)");
                ret = -EINVAL;
        } else if (chan && !(dc->channel = strdup(chan)))
                return -ENOMEM;
        return ret;
}

static void check_token(struct discord *dc);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        check_token(userdata);
        return 0;
}

static void retry_later(struct discord *dc, const struct platform_error *err) {
        dc->timer = sd_event_source_disable_unref(dc->timer);
        (void) sd_event_add_time_relative(channel_event(dc->ch), &dc->timer, CLOCK_MONOTONIC,
                                          platform_backoff_usec(dc->failures, err->retry_after_usec), TIMER_ACCURACY_USEC,
                                          on_timer, dc);
}

/* An answer that is not 200: degraded (down for a refused token) and retried. */
static void rest_failed(struct discord *dc, const char *what, const struct http_response *resp) {
        struct platform_error err = {};

        dc->failures++;
        if (resp->error < 0)
                channel_set_state(dc->ch, CHANNEL_DEGRADED, "%s: %s", what, strerror(-resp->error));
        else {
                discord_parse_error(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &err);
                channel_set_state(dc->ch, resp->status == 401 ? CHANNEL_DOWN : CHANNEL_DEGRADED, "%s: %s%s", what,
                                  err.description, resp->status == 401 ? " (check token_file)" : "");
        }
        retry_later(dc, &err);
}

static void on_gateway_bot(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct discord *dc = userdata;
        _cleanup_json_ struct json_object *o = NULL;
        const char *url;
        int r;

        (void) call;
        dc->call = NULL;
        if (resp->error < 0 || resp->status != 200)
                return rest_failed(dc, "gateway/bot", resp);
        (void) platform_json_parse(resp->body, resp->body_len, &o);
        url = platform_json_string(o, "url");
        if (!url || (strncmp(url, "wss://", 6) != 0 && strncmp(url, "ws://", 5) != 0) || strlen(url) > 256) {
                struct platform_error err = {};
                dc->failures++;
                channel_set_state(dc->ch, CHANNEL_DEGRADED, "gateway/bot: malformed answer");
                return retry_later(dc, &err);
        }
        r = discord_gateway_connect(dc->gw, url);
        if (r < 0)
                channel_set_state(dc->ch, CHANNEL_DEGRADED, "cannot connect to the gateway %s: %s", url, strerror(-r));
}

static void on_me(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct discord *dc = userdata;
        int r;

        (void) call;
        dc->call = NULL;
        if (resp->error < 0 || resp->status != 200)
                return rest_failed(dc, "users/@me", resp);
        dc->failures = 0;
        r = discord_call(dc, "GET", "gateway/bot", NULL, on_gateway_bot, dc, &dc->call);
        if (r < 0)
                channel_set_state(dc->ch, CHANNEL_DOWN, "gateway/bot: %s", strerror(-r));
}

static void check_token(struct discord *dc) {
        int r = discord_call(dc, "GET", "users/@me", NULL, on_me, dc, &dc->call);

        if (r < 0)
                channel_set_state(dc->ch, CHANNEL_DOWN, "users/@me: %s", strerror(-r));
}

static int discord_start(struct channel *ch) {
        struct discord *dc = channel_driver_data(ch);
        int r;

        channel_set_state(ch, CHANNEL_CONNECTING, NULL);
        r = discord_gateway_new(ch, dc->token, dc->ca_file, &dc->gw);
        if (r < 0)
                return r;
        check_token(dc);
        return 0;
}

static void discord_stop(struct channel *ch) {
        struct discord *dc = channel_driver_data(ch);

        if (dc->call)
                http_call_cancel(dc->call);
        dc->timer = sd_event_source_disable_unref(dc->timer);
        dc->gw = discord_gateway_free(dc->gw);
        channel_secret_free(dc->token);
        channel_secret_free(dc->auth_header);
        free(dc->api_base);
        free(dc->ca_file);
        free(dc->channel);
        platform_parts_clear(&dc->parts);
}

/* --- delivery ----------------------------------------------------------------------------- */

struct send_state {
        struct discord *dc;
        struct channel_delivery *d;
        char channel[24];
        char reply_to[24];
        size_t *lengths;
        size_t n_parts, part, offset;
        char *first_id;
};

static void send_state_free(struct send_state *st) {
        free(st->lengths);
        free(st->first_id);
        free(st);
}

static int send_part(struct send_state *st);

static void on_created(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct send_state *st = userdata;
        const struct channel_outbound *m = channel_delivery_message(st->d);
        struct platform_error err = {};
        _cleanup_free_ char *id = NULL;
        int r;

        (void) call;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                platform_delivery_failed(st->d, resp->error, &err);
                return send_state_free(st);
        }
        if (resp->status < 200 || resp->status >= 300) {
                discord_parse_error(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &err);
                platform_delivery_failed(st->d, -EREMOTEIO, &err);
                return send_state_free(st);
        }
        if (discord_parse_message_id(resp->body, resp->body_len, &id) < 0) {
                /* The retry carries the same nonce: Discord returns the message made the first time. */
                platform_error_from_status(&err, 503);
                snprintf(err.description, sizeof err.description, "malformed answer");
                platform_delivery_failed(st->d, -EREMOTEIO, &err);
                return send_state_free(st);
        }
        if (!st->first_id && asprintf(&st->first_id, "%s:%s", st->channel, id) < 0)
                st->first_id = NULL;
        st->offset += st->lengths[st->part++];
        if (st->part < st->n_parts) {
                platform_parts_set(&st->dc->parts, m->delivery_id, (unsigned) st->part, st->first_id);
                r = send_part(st);
                if (r < 0) {
                        platform_delivery_failed(st->d, r, &err);
                        send_state_free(st);
                }
                return;
        }
        platform_parts_forget(&st->dc->parts, m->delivery_id);
        channel_delivery_done(st->d, &(struct channel_delivery_result){ .platform_id = st->first_id });
        send_state_free(st);
}

/* A nonce of at most 25 characters that is the same for a delivery part on every attempt:
 * FNV-1a 64 of the delivery id, in hex, and the part number. */
static void make_nonce(const char *delivery_id, size_t part, char out[DISCORD_NONCE_MAX + 1]) {
        uint64_t h = 0xcbf29ce484222325ull;

        for (const unsigned char *p = (const unsigned char *) delivery_id; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3ull;
        }
        snprintf(out, DISCORD_NONCE_MAX + 1, "c%016llx.%zu", (unsigned long long) h, part % 100000);
}

static int send_part(struct send_state *st) {
        const struct channel_outbound *m = channel_delivery_message(st->d);
        char nonce[DISCORD_NONCE_MAX + 1], path[64];
        _cleanup_free_ char *body = NULL;

        make_nonce(m->delivery_id, st->part, nonce);
        body = discord_build_message(m->text + st->offset, st->lengths[st->part],
                                     st->part == 0 && st->reply_to[0] ? st->reply_to : NULL, nonce);
        if (!body)
                return -ENOMEM;
        snprintf(path, sizeof path, "channels/%s/messages", st->channel);
        return discord_call(st->dc, "POST", path, body, on_created, st, NULL);
}

static int discord_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct discord *dc = channel_driver_data(ch);
        struct send_state *st = calloc(1, sizeof *st);
        const char *first, *colon = m->reply_to ? strchr(m->reply_to, ':') : NULL;
        int n, r;

        if (!st)
                return -ENOMEM;
        st->dc = dc;
        st->d = d;
        if (colon && (size_t) (colon - m->reply_to) < sizeof st->channel && strlen(colon + 1) < sizeof st->reply_to) {
                snprintf(st->channel, sizeof st->channel, "%.*s", (int) (colon - m->reply_to), m->reply_to);
                snprintf(st->reply_to, sizeof st->reply_to, "%s", colon + 1);
        } else if (dc->channel)
                snprintf(st->channel, sizeof st->channel, "%s", dc->channel);
        if (!discord_snowflake_valid(st->channel) || (st->reply_to[0] && !discord_snowflake_valid(st->reply_to))) {
                send_state_free(st);
                channel_delivery_done(d, &(struct channel_delivery_result){
                        .error = -EDESTADDRREQ, .permanent = true,
                        .detail = "not a reply and no channel configured: set channel = \"CHANNEL_ID\"" });
                return 0;
        }
        n = platform_chunk_text(m->text, strlen(m->text), DISCORD_TEXT_MAX, false, &st->lengths);
        if (n < 0) {
                send_state_free(st);
                return n;
        }
        st->n_parts = (size_t) n;
        st->part = platform_parts_done(&dc->parts, m->delivery_id, &first);
        if (st->part >= st->n_parts)
                st->part = 0;
        for (size_t i = 0; i < st->part; i++)
                st->offset += st->lengths[i];
        if (first)
                st->first_id = strdup(first);
        r = send_part(st);
        if (r < 0)
                send_state_free(st);
        return r;
}

static void on_doctor(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct channel_doctor *doc = userdata;
        struct platform_error err = {};
        _cleanup_json_ struct json_object *o = NULL;
        char problem[512], detail[256];

        (void) call;
        if (resp->error < 0) {
                snprintf(problem, sizeof problem, "users/@me: %s", resp->error_detail ? resp->error_detail : strerror(-resp->error));
                return channel_doctor_done(doc, false, problem, "check that api_base (https://discord.com/api/v10) is "
                                           "reachable from this host", NULL);
        }
        if (resp->status != 200) {
                discord_parse_error(resp->status, resp->body, resp->body_len, 0, &err);
                snprintf(problem, sizeof problem, "users/@me: %s", err.description);
                return channel_doctor_done(doc, false, problem,
                                           resp->status == 401 ? "reset the bot token in the Developer Portal (Bot → Reset "
                                                                 "Token) and put it in token_file"
                                                               : "see the journal", NULL);
        }
        (void) platform_json_parse(resp->body, resp->body_len, &o);
        snprintf(detail, sizeof detail, "bot %s", platform_json_string(o, "username") ?: "?");
        channel_doctor_done(doc, true, NULL, NULL, detail);
}

static void discord_doctor(struct channel *ch, struct channel_doctor *doc) {
        if (discord_call(channel_driver_data(ch), "GET", "users/@me", NULL, on_doctor, doc, NULL) < 0)
                channel_doctor_done(doc, false, "cannot start users/@me", "see the journal", NULL);
}

const struct channel_kind channel_kind_discord = {
        .name = "discord",
        .size = sizeof(struct discord),
        .settings = discord_settings,
        .max_in_flight = 1,
        .resend_in_doubt = true, /* the nonce de-duplicates */
        .configure = discord_configure,
        .start = discord_start,
        .stop = discord_stop,
        .deliver = discord_deliver,
        .doctor = discord_doctor,
};

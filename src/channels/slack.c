/* The slack channel kind: inbound through the Events API (Slack POSTs to the gateway's
 * /webhook/NAME, signed with the app's signing secret; see slack_webhook.c), outbound with
 * chat.postMessage (bot token), threaded with thread_ts under the message answered. Slack has
 * no idempotency key for chat.postMessage: a crash between Slack taking a message and us
 * recording it can send that one message twice (docs/channels.md). Wire format: slack_codec.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "platform_driver.h"
#include "proto.h"
#include "slack_codec.h"

#define SLACK_API "https://slack.com/api"

struct slack {
        struct channel *ch;
        char *token;
        char *auth_header;
        char *api_base;
        char *ca_file;
        char *channel; /* default conversation for messages that answer nothing */
        struct http_call *call;
        sd_event_source *timer;
        unsigned failures;
        struct platform_parts parts;
};

static const char *const slack_settings[] = {
        "token_file", "signing_secret_file", "api_base", "ca_file", "channel", NULL,
};

static int slack_call(struct slack *s, const char *method, const char *body, http_done_fn done, void *userdata,
                      struct http_call **ret) {
        const char *headers[] = { s->auth_header, "Content-Type: application/json; charset=utf-8", NULL };
        _cleanup_free_ char *url = NULL;
        struct http_request req = {
                .method = "POST",
                .headers = headers,
                .body = body ? body : "{}",
                .body_len = body ? strlen(body) : 2,
                .timeout_usec = 30 * USEC_PER_SEC,
                .ca_file = s->ca_file,
        };

        if (asprintf(&url, "%s/%s", s->api_base, method) < 0)
                return -ENOMEM;
        req.url = url;
        return http_call_start(channel_http(s->ch), &req, NULL, done, userdata, ret);
}

static int slack_configure(struct channel *ch, struct channel_check *chk) {
        struct slack *s = channel_driver_data(ch);
        const char *base, *ca, *chan;
        char *secret = NULL;
        int r, ret = 0;

        s->ch = ch;
        r = channel_credential(ch, chk, "token_file", &s->token);
        if (r == -ENOKEY) {
                channel_check_error(chk, "token_file", "the bot token (xoxb-…, OAuth & Permissions of your Slack app) "
                                    "is required in a private file");
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        else if (strncmp(s->token, "xox", 3) != 0 || strlen(s->token) > 256 || strpbrk(s->token, " \t\r\n")) {
                channel_check_error(chk, "token_file", "this is not a Slack token (expected xoxb-…)");
                ret = -EINVAL;
        } else if (asprintf(&s->auth_header, "Authorization: Bearer %s", s->token) < 0)
                return -ENOMEM;
        /* Read here only to report a missing one early; the gateway verifies with it. */
        r = channel_credential(ch, chk, "signing_secret_file", &secret);
        if (r == -ENOKEY) {
                channel_check_error(chk, "signing_secret_file", "the signing secret (Basic Information of your Slack app) "
                                    "is required: without it the gateway refuses every event");
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        channel_secret_free(secret);
        base = channel_check_string(chk, "api_base", false);
        if (base && platform_check_base_url(chk, "api_base", base) < 0)
                ret = -EINVAL;
        s->api_base = strdup(base ? base : SLACK_API);
        if (!s->api_base)
                return -ENOMEM;
        if (s->api_base[0] && s->api_base[strlen(s->api_base) - 1] == '/')
                s->api_base[strlen(s->api_base) - 1] = 0;
        ca = channel_check_string(chk, "ca_file", false);
        if (ca && !(s->ca_file = strdup(ca)))
                return -ENOMEM;
        chan = channel_check_string(chk, "channel", false);
        if (chan && !(s->channel = strdup(chan)))
                return -ENOMEM;
        return ret;
}

/* --- auth.test at start: the channel is up once Slack accepts the token ------------------- */

static void check_token(struct slack *s);

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) src;
        (void) usec;
        check_token(userdata);
        return 0;
}

static void on_auth_test(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct slack *s = userdata;
        _cleanup_json_ struct json_object *o = NULL;
        struct platform_error err = {};
        int r;

        (void) call;
        s->call = NULL;
        r = resp->error < 0 ? resp->error
                            : slack_parse_response(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &o, &err);
        if (r >= 0) {
                s->failures = 0;
                return channel_set_state(s->ch, CHANNEL_UP, NULL);
        }
        s->failures++;
        if (r == -EREMOTEIO && !err.retryable)
                channel_set_state(s->ch, CHANNEL_DOWN, "auth.test: %s (check token_file: the app's Bot User OAuth Token)",
                                  err.code);
        else
                channel_set_state(s->ch, CHANNEL_DEGRADED, "auth.test: %s",
                                  r == -EBADMSG ? "malformed answer" : r == -EREMOTEIO ? err.code : strerror(-r));
        s->timer = sd_event_source_disable_unref(s->timer);
        (void) sd_event_add_time_relative(channel_event(s->ch), &s->timer, CLOCK_MONOTONIC,
                                          platform_backoff_usec(s->failures, err.retry_after_usec), TIMER_ACCURACY_USEC,
                                          on_timer, s);
}

static void check_token(struct slack *s) {
        int r = slack_call(s, "auth.test", NULL, on_auth_test, s, &s->call);

        if (r < 0)
                channel_set_state(s->ch, CHANNEL_DOWN, "auth.test: %s", strerror(-r));
}

static int slack_start(struct channel *ch) {
        channel_set_state(ch, CHANNEL_CONNECTING, NULL);
        check_token(channel_driver_data(ch));
        return 0;
}

static void slack_stop(struct channel *ch) {
        struct slack *s = channel_driver_data(ch);

        if (s->call)
                http_call_cancel(s->call);
        s->timer = sd_event_source_disable_unref(s->timer);
        channel_secret_free(s->token);
        channel_secret_free(s->auth_header);
        free(s->api_base);
        free(s->ca_file);
        free(s->channel);
        platform_parts_clear(&s->parts);
}

/* --- delivery ----------------------------------------------------------------------------- */

struct send_state {
        struct slack *s;
        struct channel_delivery *d;
        char *conversation;
        char *thread_ts;
        size_t *lengths;
        size_t n_parts, part, offset;
        char *first_id;
};

static void send_state_free(struct send_state *st) {
        free(st->conversation);
        free(st->thread_ts);
        free(st->lengths);
        free(st->first_id);
        free(st);
}

static int send_part(struct send_state *st);

static void on_posted(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct send_state *st = userdata;
        const struct channel_outbound *m = channel_delivery_message(st->d);
        _cleanup_json_ struct json_object *o = NULL;
        struct platform_error err = {};
        const char *ts, *chan;
        int r;

        (void) call;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                platform_delivery_failed(st->d, resp->error, &err);
                return send_state_free(st);
        }
        r = slack_parse_response(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &o, &err);
        ts = platform_json_string(o, "ts");
        chan = platform_json_string(o, "channel");
        if (r == -EBADMSG || (r >= 0 && (!ts || !chan))) {
                channel_log(st->s->ch, LOG_WARNING, 0, "chat.postMessage: malformed answer (HTTP %ld)", resp->status);
                err.retryable = true;
                snprintf(err.code, sizeof err.code, "malformed");
                snprintf(err.description, sizeof err.description, "malformed answer");
                r = -EREMOTEIO;
        }
        if (r < 0) {
                platform_delivery_failed(st->d, r, &err);
                return send_state_free(st);
        }
        if (!st->first_id) {
                char full[96];
                snprintf(full, sizeof full, "%s:%s", chan, ts);
                st->first_id = platform_id_encode(full, CHANNEL_MESSAGE_ID_MAX);
        }
        st->offset += st->lengths[st->part++];
        if (st->part < st->n_parts) {
                platform_parts_set(&st->s->parts, m->delivery_id, (unsigned) st->part, st->first_id);
                r = send_part(st);
                if (r < 0) {
                        platform_delivery_failed(st->d, r, &err);
                        send_state_free(st);
                }
                return;
        }
        platform_parts_forget(&st->s->parts, m->delivery_id);
        channel_delivery_done(st->d, &(struct channel_delivery_result){ .platform_id = st->first_id });
        send_state_free(st);
}

static int send_part(struct send_state *st) {
        const struct channel_outbound *m = channel_delivery_message(st->d);
        _cleanup_free_ char *body = slack_build_post(st->conversation, m->text + st->offset, st->lengths[st->part],
                                                     st->thread_ts);

        if (!body)
                return -ENOMEM;
        return slack_call(st->s, "chat.postMessage", body, on_posted, st, NULL);
}

/* "CHANNEL:TS" → channel and ts. */
static void split_ref(const char *ref, char **ret_channel, char **ret_ts) {
        const char *colon = ref ? strchr(ref, ':') : NULL;

        if (!colon)
                return;
        *ret_channel = strndup(ref, (size_t) (colon - ref));
        *ret_ts = strdup(colon + 1);
}

static int slack_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct slack *s = channel_driver_data(ch);
        struct send_state *st = calloc(1, sizeof *st);
        const char *first;
        int n, r;

        if (!st)
                return -ENOMEM;
        st->s = s;
        st->d = d;
        /* A reply goes to the channel of the message answered, in its thread (the thread's
         * parent when it was in one, else the message itself opens the thread). */
        split_ref(m->reply_to, &st->conversation, &st->thread_ts);
        if (m->thread && st->conversation) {
                free(st->thread_ts);
                st->thread_ts = strdup(m->thread);
        }
        if (!st->conversation)
                /* Posting to a user id opens the app's direct message with them. */
                st->conversation = strdup(s->channel ? s->channel : m->user);
        if (!st->conversation) {
                send_state_free(st);
                return -ENOMEM;
        }
        n = platform_chunk_text(m->text, strlen(m->text), SLACK_TEXT_MAX, false, &st->lengths);
        if (n < 0) {
                send_state_free(st);
                return n;
        }
        st->n_parts = (size_t) n;
        st->part = platform_parts_done(&s->parts, m->delivery_id, &first);
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

/* --- doctor ------------------------------------------------------------------------------- */

static void on_doctor(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct channel_doctor *doc = userdata;
        _cleanup_json_ struct json_object *o = NULL;
        struct platform_error err = {};
        char problem[512], detail[512];
        int r;

        (void) call;
        r = resp->error < 0 ? resp->error : slack_parse_response(resp->status, resp->body, resp->body_len, 0, &o, &err);
        if (r == -EREMOTEIO && !err.retryable) {
                snprintf(problem, sizeof problem, "auth.test: %s", err.code);
                return channel_doctor_done(doc, false, problem, "put the app's Bot User OAuth Token (xoxb-…, OAuth & "
                                           "Permissions) in token_file and reinstall the app if it was revoked", NULL);
        }
        if (r < 0) {
                snprintf(problem, sizeof problem, "auth.test failed: %s",
                         r == -EREMOTEIO ? err.code : resp->error_detail ? resp->error_detail : strerror(-r));
                return channel_doctor_done(doc, false, problem, "check that api_base (https://slack.com/api) is reachable "
                                           "from this host", NULL);
        }
        snprintf(detail, sizeof detail, "bot %s in team %s", platform_json_string(o, "user") ?: "?",
                 platform_json_string(o, "team") ?: "?");
        channel_doctor_done(doc, true, NULL, NULL, detail);
}

static void slack_doctor(struct channel *ch, struct channel_doctor *doc) {
        if (slack_call(channel_driver_data(ch), "auth.test", NULL, on_doctor, doc, NULL) < 0)
                channel_doctor_done(doc, false, "cannot start auth.test", "see the journal", NULL);
}

const struct channel_kind channel_kind_slack = {
        .name = "slack",
        .size = sizeof(struct slack),
        .settings = slack_settings,
        .max_in_flight = 1,
        .resend_in_doubt = true,
        .configure = slack_configure,
        .start = slack_start,
        .stop = slack_stop,
        .deliver = slack_deliver,
        .doctor = slack_doctor,
};

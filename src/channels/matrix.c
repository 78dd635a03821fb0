/* The matrix channel kind: client-server API /sync long polling with the since token
 * persisted once a batch is durable (the first sync only takes the token: history from before
 * the channel existed is not imported), m.room.message text events of every joined room, and
 * sends with PUT /rooms/{room}/send/m.room.message/{txnId} where the txnId is derived from the
 * delivery id, so a retry (also after a crash) is de-duplicated by the homeserver. Wire format:
 * matrix_codec.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "matrix_codec.h"
#include "platform_driver.h"
#include "proto.h"

struct matrix {
        struct channel *ch;
        char *homeserver;
        char *token;
        char *auth_header;
        char *ca_file;
        char *room; /* default room for messages that answer nothing */
        char *user_id; /* ours, from whoami */
        uint64_t poll_timeout_usec;

        struct http_call *call;
        sd_event_source *timer;
        char *since;
        char *pending_since;
        size_t batch_left;
        bool batch_failed;
        unsigned failures;
        struct platform_parts parts;
};

static const char *const matrix_settings[] = {
        "homeserver", "token_file", "room", "ca_file", "poll_timeout", NULL,
};

static int matrix_call(struct matrix *m, const char *method, const char *path, const char *body, uint64_t timeout_usec,
                       http_done_fn done, void *userdata) {
        const char *headers[] = { m->auth_header, body ? "Content-Type: application/json" : NULL, NULL };
        _cleanup_free_ char *url = NULL;
        struct http_request req = {
                .method = method,
                .headers = headers,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .timeout_usec = timeout_usec,
                .ca_file = m->ca_file,
        };
        struct http_call **ret = streq(path, "whoami") || strncmp(path, "sync", 4) == 0 ? &m->call : NULL;

        if (asprintf(&url, "%s/_matrix/client/v3/%s", m->homeserver, streq(path, "whoami") ? "account/whoami" : path) < 0)
                return -ENOMEM;
        req.url = url;
        return http_call_start(channel_http(m->ch), &req, NULL, done, userdata, ret);
}

static int matrix_configure(struct channel *ch, struct channel_check *chk) {
        struct matrix *m = channel_driver_data(ch);
        const char *hs, *room, *ca;
        int r, ret = 0;

        m->ch = ch;
        hs = channel_check_string(chk, "homeserver", true);
        if (!hs)
                ret = -EINVAL;
        else if (platform_check_base_url(chk, "homeserver", hs) < 0)
                ret = -EINVAL;
        else {
                m->homeserver = strdup(hs);
                if (!m->homeserver)
                        return -ENOMEM;
                if (m->homeserver[strlen(m->homeserver) - 1] == '/')
                        m->homeserver[strlen(m->homeserver) - 1] = 0;
        }
        r = channel_credential(ch, chk, "token_file", &m->token);
        if (r == -ENOKEY) {
                channel_check_error(chk, "token_file", "an access token is required: log the bot user in (POST "
                                    "/_matrix/client/v3/login) and store access_token in a private file");
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        else if (strlen(m->token) > 1024 || strpbrk(m->token, " \t\r\n")) {
                channel_check_error(chk, "token_file", "this is not an access token");
                ret = -EINVAL;
        } else if (asprintf(&m->auth_header, "Authorization: Bearer %s", m->token) < 0)
                return -ENOMEM;
        room = channel_check_string(chk, "room", false);
        if (room && (room[0] != '!' || !strchr(room, ':'))) {
                channel_check_error(chk, "room", "expected a room id like \"!abc:example.org\" (Room settings → Advanced)");
                ret = -EINVAL;
        } else if (room && !(m->room = strdup(room)))
                return -ENOMEM;
        ca = channel_check_string(chk, "ca_file", false);
        if (ca && !(m->ca_file = strdup(ca)))
                return -ENOMEM;
        r = channel_check_duration(chk, "poll_timeout", 30 * USEC_PER_SEC, USEC_PER_SEC, 120 * USEC_PER_SEC,
                                   &m->poll_timeout_usec);
        return r < 0 ? r : ret;
}

/* --- /sync ------------------------------------------------------------------------------- */

static void sync_now(struct matrix *m);
static void whoami_now(struct matrix *m);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct matrix *m = userdata;

        (void) s;
        (void) usec;
        if (m->user_id)
                sync_now(m);
        else
                whoami_now(m);
        return 0;
}

static void later(struct matrix *m, uint64_t delay) {
        m->timer = sd_event_source_disable_unref(m->timer);
        if (sd_event_add_time_relative(channel_event(m->ch), &m->timer, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                       on_timer, m) < 0)
                channel_set_state(m->ch, CHANNEL_DOWN, "cannot arm a timer");
}

static void failed(struct matrix *m, const char *what, int error, const struct platform_error *err) {
        m->failures++;
        if (error == -EREMOTEIO && (streq(err->code, "M_UNKNOWN_TOKEN") || streq(err->code, "M_MISSING_TOKEN"))) {
                channel_set_state(m->ch, CHANNEL_DOWN, "%s: the access token was refused (%s): log in again and update "
                                  "token_file", what, err->description);
                return later(m, 60 * USEC_PER_SEC);
        }
        if (error == -EREMOTEIO)
                channel_set_state(m->ch, CHANNEL_DEGRADED, "%s: %s %s", what, err->code, err->description);
        else if (error == -EBADMSG)
                channel_set_state(m->ch, CHANNEL_DEGRADED, "%s: malformed answer (HTTP %ld)", what, err->status);
        else
                channel_set_state(m->ch, CHANNEL_DEGRADED, "%s: %s", what, strerror(-error));
        later(m, platform_backoff_usec(m->failures, err->retry_after_usec));
}

static void batch_settled(struct matrix *m) {
        if (m->batch_failed) {
                m->batch_failed = false;
                m->pending_since = mfree(m->pending_since);
                return later(m, platform_backoff_usec(++m->failures, 0));
        }
        if (m->pending_since) {
                free(m->since);
                m->since = m->pending_since;
                m->pending_since = NULL;
                (void) channel_store_set(m->ch, "since", m->since);
        }
        sync_now(m);
}

static void on_inbound_done(struct channel *ch, int error, void *userdata) {
        struct matrix *m = channel_driver_data(ch);

        (void) userdata;
        if (error < 0 && error != -ENOENT && error != -EPERM) {
                channel_log(ch, LOG_WARNING, error, "a message was not stored; syncing it again");
                m->batch_failed = true;
        }
        if (--m->batch_left == 0)
                batch_settled(m);
}

static void on_sync(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct matrix *m = userdata;
        struct platform_message *msgs = NULL;
        struct platform_error err = {};
        char *next = NULL;
        size_t n = 0, bad = 0;
        int r;

        (void) call;
        m->call = NULL;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                return failed(m, "sync", resp->error, &err);
        }
        if (resp->status != 200) {
                matrix_parse_error(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &err);
                return failed(m, "sync", -EREMOTEIO, &err);
        }
        r = matrix_parse_sync(resp->body, resp->body_len, m->user_id, &next, &msgs, &n, &bad);
        if (r < 0) {
                platform_error_from_status(&err, resp->status);
                channel_log(m->ch, LOG_WARNING, r, "sync: malformed answer (%zu bytes); retrying", resp->body_len);
                return failed(m, "sync", r, &err);
        }
        m->failures = 0;
        if (channel_get_state(m->ch) != CHANNEL_UP)
                channel_set_state(m->ch, CHANNEL_UP, NULL);
        if (bad > 0)
                channel_log(m->ch, LOG_WARNING, 0, "sync: %zu malformed event(s) skipped", bad);
        m->pending_since = next;
        m->batch_left = 1;
        /* The first sync only gives the position: earlier history is not imported. */
        for (size_t i = 0; m->since && i < n; i++) {
                _cleanup_free_ char *id = NULL, *reply = NULL;
                char *full;
                /* "ROOM|EVENT", so a reply finds its room. */
                if (asprintf(&full, "%s|%s", msgs[i].conversation, msgs[i].id) < 0)
                        break;
                id = platform_id_encode(full, CHANNEL_MESSAGE_ID_MAX);
                free(full);
                if (!id) {
                        channel_log(m->ch, LOG_WARNING, 0, "an event id too long to keep was skipped");
                        continue;
                }
                if (msgs[i].reply_to && asprintf(&full, "%s|%s", msgs[i].conversation, msgs[i].reply_to) >= 0) {
                        reply = platform_id_encode(full, CHANNEL_MESSAGE_ID_MAX);
                        free(full);
                }
                struct channel_inbound in = {
                        .message_id = id,
                        .user = msgs[i].sender,
                        .text = msgs[i].text,
                        .reply_to = reply,
                };
                m->batch_left++;
                r = channel_report_inbound(m->ch, &in, on_inbound_done, NULL);
                if (r < 0) {
                        m->batch_left--;
                        if (r == -ENOTCONN)
                                m->batch_failed = true;
                }
        }
        platform_messages_free(msgs, n);
        if (--m->batch_left == 0)
                batch_settled(m);
}

static void sync_now(struct matrix *m) {
        _cleanup_free_ char *path = NULL, *since = NULL;
        struct platform_error err = {};
        int r;

        if (m->call || m->batch_left > 0)
                return;
        if (m->since && !(since = matrix_path_escape(m->since)))
                return failed(m, "sync", -ENOMEM, &err);
        if (asprintf(&path, "sync?timeout=%llu%s%s", (unsigned long long) (m->poll_timeout_usec / USEC_PER_MSEC),
                     since ? "&since=" : "", since ? since : "") < 0)
                return failed(m, "sync", -ENOMEM, &err);
        r = matrix_call(m, "GET", path, NULL, m->poll_timeout_usec + 15 * USEC_PER_SEC, on_sync, m);
        if (r < 0)
                failed(m, "sync", r, &err);
}

static void on_whoami(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct matrix *m = userdata;
        struct platform_error err = {};
        int r;

        (void) call;
        m->call = NULL;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                return failed(m, "whoami", resp->error, &err);
        }
        if (resp->status != 200) {
                matrix_parse_error(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &err);
                return failed(m, "whoami", -EREMOTEIO, &err);
        }
        r = matrix_parse_whoami(resp->body, resp->body_len, &m->user_id);
        if (r < 0) {
                platform_error_from_status(&err, resp->status);
                return failed(m, "whoami", r, &err);
        }
        sync_now(m);
}

static void whoami_now(struct matrix *m) {
        struct platform_error err = {};
        int r = matrix_call(m, "GET", "whoami", NULL, 30 * USEC_PER_SEC, on_whoami, m);

        if (r < 0)
                failed(m, "whoami", r, &err);
}

static int matrix_start(struct channel *ch) {
        struct matrix *m = channel_driver_data(ch);
        const char *since = channel_store_get(ch, "since");

        if (since && !(m->since = strdup(since)))
                return -ENOMEM;
        channel_set_state(ch, CHANNEL_CONNECTING, NULL);
        whoami_now(m);
        return 0;
}

static void matrix_stop(struct channel *ch) {
        struct matrix *m = channel_driver_data(ch);

        if (m->call)
                http_call_cancel(m->call);
        m->timer = sd_event_source_disable_unref(m->timer);
        channel_secret_free(m->token);
        channel_secret_free(m->auth_header);
        free(m->homeserver);
        free(m->ca_file);
        free(m->room);
        free(m->user_id);
        free(m->since);
        free(m->pending_since);
        platform_parts_clear(&m->parts);
}

/* --- delivery ----------------------------------------------------------------------------- */

struct send_state {
        struct matrix *m;
        struct channel_delivery *d;
        char *room;
        char *reply_event;
        size_t *lengths;
        size_t n_parts, part, offset;
        char *first_id;
};

static void send_state_free(struct send_state *s) {
        free(s->room);
        free(s->reply_event);
        free(s->lengths);
        free(s->first_id);
        free(s);
}

static int send_part(struct send_state *s);

static void on_sent(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct send_state *s = userdata;
        const struct channel_outbound *o = channel_delivery_message(s->d);
        struct platform_error err = {};
        _cleanup_free_ char *event_id = NULL;
        int r;

        (void) call;
        if (resp->error < 0) {
                platform_error_from_status(&err, 0);
                platform_delivery_failed(s->d, resp->error, &err);
                return send_state_free(s);
        }
        if (resp->status != 200) {
                matrix_parse_error(resp->status, resp->body, resp->body_len, resp->retry_after_usec, &err);
                platform_delivery_failed(s->d, -EREMOTEIO, &err);
                return send_state_free(s);
        }
        r = matrix_parse_event_id(resp->body, resp->body_len, &event_id);
        if (r < 0) {
                /* Sent or not, the retry uses the same txnId: the homeserver de-duplicates. */
                platform_error_from_status(&err, 503);
                snprintf(err.description, sizeof err.description, "malformed answer to send");
                platform_delivery_failed(s->d, -EREMOTEIO, &err);
                return send_state_free(s);
        }
        if (!s->first_id) {
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s|%s", s->room, event_id) >= 0)
                        s->first_id = platform_id_encode(full, CHANNEL_MESSAGE_ID_MAX);
        }
        s->offset += s->lengths[s->part++];
        if (s->part < s->n_parts) {
                platform_parts_set(&s->m->parts, o->delivery_id, (unsigned) s->part, s->first_id);
                r = send_part(s);
                if (r < 0) {
                        platform_delivery_failed(s->d, r, &err);
                        send_state_free(s);
                }
                return;
        }
        platform_parts_forget(&s->m->parts, o->delivery_id);
        channel_delivery_done(s->d, &(struct channel_delivery_result){ .platform_id = s->first_id });
        send_state_free(s);
}

static int send_part(struct send_state *s) {
        const struct channel_outbound *o = channel_delivery_message(s->d);
        _cleanup_free_ char *body = NULL, *room = NULL, *txn = NULL, *path = NULL, *raw_txn = NULL;

        body = matrix_build_message(o->text + s->offset, s->lengths[s->part], s->part == 0 ? s->reply_event : NULL);
        room = matrix_path_escape(s->room);
        /* The same delivery and part always get the same txnId. */
        if (asprintf(&raw_txn, "conclave.%s.%zu", o->delivery_id, s->part) < 0)
                return -ENOMEM;
        txn = matrix_path_escape(raw_txn);
        if (!body || !room || !txn || asprintf(&path, "rooms/%s/send/m.room.message/%s", room, txn) < 0)
                return -ENOMEM;
        return matrix_call(s->m, "PUT", path, body, 0, on_sent, s);
}

static int matrix_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *o) {
        struct matrix *m = channel_driver_data(ch);
        struct send_state *s = calloc(1, sizeof *s);
        const char *first;
        int n, r;

        if (!s)
                return -ENOMEM;
        s->m = m;
        s->d = d;
        if (o->reply_to) {
                _cleanup_free_ char *decoded = platform_id_decode(o->reply_to);
                char *bar = decoded ? strchr(decoded, '|') : NULL;
                if (bar) {
                        *bar = 0;
                        s->room = strdup(decoded);
                        s->reply_event = strdup(bar + 1);
                }
        }
        if (!s->room && m->room)
                s->room = strdup(m->room);
        if (!s->room) {
                send_state_free(s);
                channel_delivery_done(d, &(struct channel_delivery_result){
                        .error = -EDESTADDRREQ, .permanent = true,
                        .detail = "not a reply and no room configured: set room = \"!…:server\"" });
                return 0;
        }
        n = platform_chunk_text(o->text, strlen(o->text), MATRIX_TEXT_MAX, false, &s->lengths);
        if (n < 0) {
                send_state_free(s);
                return n;
        }
        s->n_parts = (size_t) n;
        s->part = platform_parts_done(&m->parts, o->delivery_id, &first);
        if (s->part >= s->n_parts)
                s->part = 0;
        for (size_t i = 0; i < s->part; i++)
                s->offset += s->lengths[i];
        if (first)
                s->first_id = strdup(first);
        r = send_part(s);
        if (r < 0)
                send_state_free(s);
        return r;
}

/* --- doctor ------------------------------------------------------------------------------- */

static void on_doctor(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct channel_doctor *doc = userdata;
        struct platform_error err = {};
        _cleanup_free_ char *user = NULL;
        char problem[512], detail[512];

        (void) call;
        if (resp->error < 0) {
                snprintf(problem, sizeof problem, "whoami: %s", resp->error_detail ? resp->error_detail : strerror(-resp->error));
                return channel_doctor_done(doc, false, problem, "check homeserver (its client API base URL, e.g. "
                                           "https://matrix.example.org) and the network path; ca_file if set", NULL);
        }
        if (resp->status != 200) {
                matrix_parse_error(resp->status, resp->body, resp->body_len, 0, &err);
                snprintf(problem, sizeof problem, "whoami: %s %s", err.code, err.description);
                return channel_doctor_done(doc, false, problem,
                                           resp->status == 401 ? "log the bot in again and put the new access_token in token_file"
                                                               : "check homeserver: it must be the client-server API base URL",
                                           NULL);
        }
        if (matrix_parse_whoami(resp->body, resp->body_len, &user) < 0)
                return channel_doctor_done(doc, false, "whoami: malformed answer", "check homeserver", NULL);
        snprintf(detail, sizeof detail, "logged in as %s", user);
        channel_doctor_done(doc, true, NULL, NULL, detail);
}

static void matrix_doctor(struct channel *ch, struct channel_doctor *doc) {
        struct matrix *m = channel_driver_data(ch);
        const char *headers[] = { m->auth_header, NULL };
        _cleanup_free_ char *url = NULL;
        struct http_request req = { .headers = headers, .timeout_usec = 15 * USEC_PER_SEC, .ca_file = m->ca_file };

        if (asprintf(&url, "%s/_matrix/client/v3/account/whoami", m->homeserver) < 0)
                return channel_doctor_done(doc, false, "out of memory", "see the journal", NULL);
        req.url = url;
        if (http_call_start(channel_http(ch), &req, NULL, on_doctor, doc, NULL) < 0)
                channel_doctor_done(doc, false, "cannot start whoami", "see the journal", NULL);
}

const struct channel_kind channel_kind_matrix = {
        .name = "matrix",
        .size = sizeof(struct matrix),
        .settings = matrix_settings,
        .max_in_flight = 1,
        .resend_in_doubt = true, /* txnId de-duplicates */
        .configure = matrix_configure,
        .start = matrix_start,
        .stop = matrix_stop,
        .deliver = matrix_deliver,
        .doctor = matrix_doctor,
};

/* The `webhook` channel kind, outbound side: each delivery is POSTed as JSON to the channel's
 * url, signed like inbound webhooks (docs/api.md, "Generic"): X-Conclave-Timestamp,
 * X-Conclave-Delivery (the delivery id, the same on every retry, so the receiver de-duplicates)
 * and X-Conclave-Signature = "sha256=" HEX(HMAC-SHA256(secret, TIMESTAMP "." DELIVERY "." BODY)).
 * 2xx is delivered; 408, 425, 429 and 5xx are retried (after Retry-After when given); other
 * statuses fail the delivery. The inbound side is the gateway's (src/gateway/webhooks.c). */

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "http_engine.h"
#include "proto.h"

#define WEBHOOK_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define WEBHOOK_MAX_RESPONSE (64u * 1024u)
#define WEBHOOK_SECRET_MIN 16

struct webhook_call {
        struct webhook_call *next, *prev;
        struct webhook *owner;
        struct channel_delivery *delivery;
        struct http_call *call;
};

struct webhook {
        struct channel *channel;
        const char *url, *ca_file;
        char *secret;
        struct webhook_call *calls;
        struct http_call *probe_call; /* a live check in progress */
        struct probe *probe;
};

struct probe {
        struct channel_doctor *doc;
        struct webhook *w;
};

static const char *const webhook_settings[] = { "url", "secret_file", "ca_file", NULL };

static void hex(const unsigned char *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
}

static int webhook_configure(struct channel *ch, struct channel_check *chk) {
        struct webhook *w = channel_driver_data(ch);
        int r;

        w->channel = ch;
        w->url = channel_check_string(chk, "url", true);
        w->ca_file = channel_check_string(chk, "ca_file", false);
        if (w->url && strncmp(w->url, "https://", 8) != 0 && strncmp(w->url, "http://", 7) != 0)
                channel_check_error(chk, "url", "\"%s\" is not an http:// or https:// URL", w->url);
        r = channel_credential(ch, chk, "secret_file", &w->secret);
        if (r == -ENOKEY)
                channel_check_error(chk, "secret_file", "missing: outbound deliveries are signed with the channel's "
                                    "secret (at least %d characters, mode 600), as inbound ones are checked",
                                    WEBHOOK_SECRET_MIN);
        else if (r >= 0 && strlen(w->secret) < WEBHOOK_SECRET_MIN)
                channel_check_error(chk, "secret_file", "the secret is shorter than %d characters", WEBHOOK_SECRET_MIN);
        return r < 0 && r != -ENOKEY ? r : 0;
}

static int webhook_start(struct channel *ch) {
        /* Nothing to connect: each delivery is one request. */
        channel_set_state(ch, CHANNEL_UP, NULL);
        return 0;
}

static void call_unlink(struct webhook_call *c) {
        struct webhook *w = c->owner;

        if (c->prev)
                c->prev->next = c->next;
        else
                w->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
}

static void webhook_stop(struct channel *ch) {
        struct webhook *w = channel_driver_data(ch);

        while (w->calls) {
                struct webhook_call *c = w->calls;
                call_unlink(c);
                http_call_cancel(c->call);
                free(c);
        }
        if (w->probe_call) {
                http_call_cancel(w->probe_call);
                free(w->probe);
                w->probe_call = NULL;
                w->probe = NULL;
        }
        channel_secret_free(w->secret);
        w->secret = NULL;
}

static bool retryable(long status) {
        return status == 408 || status == 425 || status == 429 || status >= 500;
}

static void on_done(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct webhook_call *c = userdata;
        struct webhook *w = c->owner;
        struct channel_delivery_result r = {};
        _cleanup_json_ struct json_object *body = NULL;
        struct json_object *id;
        char detail[256];

        call_unlink(c);
        if (resp->error < 0) {
                snprintf(detail, sizeof detail, "%s: %s", w->url, resp->error_detail ?: strerror(-resp->error));
                r = (struct channel_delivery_result){ .error = resp->error, .detail = detail };
        } else if (resp->status >= 200 && resp->status < 300) {
                /* The receiver may name what it made of it: {"id": "…"}. */
                if (resp->body_len > 0 && (body = json_tokener_parse(resp->body)) &&
                    json_object_object_get_ex(body, "id", &id) && json_object_is_type(id, json_type_string) &&
                    json_object_get_string_len(id) <= 128)
                        r.platform_id = json_object_get_string(id);
        } else {
                snprintf(detail, sizeof detail, "%s answered HTTP %ld", w->url, resp->status);
                r = (struct channel_delivery_result){ .error = retryable(resp->status) ? -EAGAIN : -EPROTO,
                                                      .permanent = !retryable(resp->status),
                                                      .retry_after_usec = resp->retry_after_usec, .detail = detail };
        }
        /* One failing receiver shows in the channel's state; the next success clears it. */
        if (r.error < 0 && !r.permanent)
                channel_set_state(w->channel, CHANNEL_DEGRADED, "%s", detail);
        else if (r.error >= 0)
                channel_set_state(w->channel, CHANNEL_UP, NULL);
        channel_delivery_done(c->delivery, &r);
        free(c);
}

static int webhook_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct webhook *w = channel_driver_data(ch);
        _cleanup_json_ struct json_object *o = json_object_new_object();
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        char ts[32], sig[2 * EVP_MAX_MD_SIZE + 8], h_ts[64], h_delivery[200], h_sig[sizeof sig + 32];
        _cleanup_free_ char *signed_text = NULL;
        const char *headers[] = { "Content-Type: application/json", h_ts, h_delivery, h_sig, NULL };
        const char *body;
        struct webhook_call *c;
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "delivery_id", json_object_new_string(m->delivery_id));
        json_object_object_add(o, "group", json_object_new_string(m->group));
        json_object_object_add(o, "event_id", json_object_new_string(m->event_id));
        json_object_object_add(o, "from", json_object_new_string(m->from ? m->from : ""));
        json_object_object_add(o, "to", json_object_new_string(m->user));
        json_object_object_add(o, "text", json_object_new_string(m->text));
        if (m->reply_to)
                json_object_object_add(o, "reply_to", json_object_new_string(m->reply_to));
        if (m->thread)
                json_object_object_add(o, "thread", json_object_new_string(m->thread));
        json_object_object_add(o, "attempt", json_object_new_int64(m->attempt));
        body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        snprintf(ts, sizeof ts, "%" PRId64, (int64_t) time(NULL));
        if (asprintf(&signed_text, "%s.%s.%s", ts, m->delivery_id, body) < 0)
                return -ENOMEM;
        if (!HMAC(EVP_sha256(), w->secret, (int) strlen(w->secret), (const unsigned char *) signed_text,
                  strlen(signed_text), mac, &mac_len))
                return -ENOMEM;
        hex(mac, mac_len, sig);
        snprintf(h_ts, sizeof h_ts, "X-Conclave-Timestamp: %s", ts);
        snprintf(h_delivery, sizeof h_delivery, "X-Conclave-Delivery: %s", m->delivery_id);
        snprintf(h_sig, sizeof h_sig, "X-Conclave-Signature: sha256=%s", sig);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->owner = w;
        c->delivery = d;
        r = http_call_start(channel_http(ch),
                            &(struct http_request){ .method = "POST", .url = w->url, .headers = headers, .body = body,
                                                    .body_len = strlen(body), .timeout_usec = WEBHOOK_TIMEOUT_USEC,
                                                    .ca_file = w->ca_file, .max_response = WEBHOOK_MAX_RESPONSE },
                            NULL, on_done, c, &c->call);
        if (r < 0) {
                free(c);
                return r;
        }
        c->next = w->calls;
        if (c->next)
                c->next->prev = c;
        w->calls = c;
        return 0;
}

static void on_probe(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct probe *p = userdata;
        char problem[320], detail[320];

        p->w->probe_call = NULL;
        p->w->probe = NULL;
        if (resp->error < 0 && resp->error != -EMSGSIZE) {
                snprintf(problem, sizeof problem, "%s is not reachable: %s", p->w->url,
                         resp->error_detail ?: strerror(-resp->error));
                channel_doctor_done(p->doc, false, problem,
                                    resp->error == -EPROTO ? "check the receiver's TLS certificate, or set ca_file = to "
                                                             "the CA that signed it"
                                                           : "check url = and that the receiver runs and is reachable "
                                                             "from this host",
                                    NULL);
        } else if (resp->status >= 500) {
                snprintf(problem, sizeof problem, "%s answers HTTP %ld", p->w->url, resp->status);
                channel_doctor_done(p->doc, false, problem, "look at the receiver's logs: it fails", NULL);
        } else {
                /* Any answer below 500 (405 for a GET, 401 for an unsigned probe) means it listens. */
                snprintf(detail, sizeof detail, "%s is reachable (HTTP %ld to an unsigned GET)", p->w->url, resp->status);
                channel_doctor_done(p->doc, true, NULL, NULL, detail);
        }
        free(p);
}

static void webhook_doctor(struct channel *ch, struct channel_doctor *doc) {
        struct webhook *w = channel_driver_data(ch);
        struct probe *p = calloc(1, sizeof *p);
        int r;

        if (!p || w->probe_call) {
                free(p);
                channel_doctor_done(doc, false, "a live check of this channel is already running", "try again", NULL);
                return;
        }
        *p = (struct probe){ .doc = doc, .w = w };
        r = http_call_start(channel_http(ch),
                            &(struct http_request){ .method = "GET", .url = w->url, .timeout_usec = 10 * USEC_PER_SEC,
                                                    .ca_file = w->ca_file, .max_response = 4096 },
                            NULL, on_probe, p, &w->probe_call);
        if (r >= 0)
                w->probe = p;
        else {
                free(p);
                channel_doctor_done(doc, false, "cannot start the probe request", "see the journal", NULL);
        }
}

const struct channel_kind channel_kind_webhook = {
        .name = "webhook",
        .size = sizeof(struct webhook),
        .settings = webhook_settings,
        .max_in_flight = 8,
        .resend_in_doubt = true, /* the receiver de-duplicates on X-Conclave-Delivery */
        .configure = webhook_configure,
        .start = webhook_start,
        .stop = webhook_stop,
        .deliver = webhook_deliver,
        .doctor = webhook_doctor,
};

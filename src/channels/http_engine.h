/* Outbound network calls for conclave-channels: libcurl's multi-socket interface driven by the
 * process's sd-event loop, so chat platforms and LLM providers share one engine, no call blocks
 * and no thread is started. HTTP(S) mostly; IMAP and SMTP too, for the e-mail channel. TLS peer
 * and host verification are always on; a call may name its own CA file. Responses are buffered
 * up to a bound, or handed over piece by piece as they arrive, for streams (SSE, NDJSON).
 *
 * Callbacks run from the event loop. In them a caller may start and cancel calls (also the
 * one being called back: from on_data return a negative value instead), but must not free the
 * engine. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct http_engine;
struct http_call;

struct http_request {
        /* HTTP: NULL means GET, or POST when body is set. IMAP: a custom command (e.g.
         * "UID SEARCH UNSEEN"), NULL to fetch what the URL names. Unused for SMTP. */
        const char *method;
        const char *url;            /* http, https, imap, imaps, smtp, smtps */
        const char *const *headers; /* HTTP "Name: value" strings, NULL-terminated; may be NULL */
        const char *body;           /* HTTP request body, or the SMTP message; may be NULL */
        size_t body_len;
        uint64_t timeout_usec;         /* whole call; 0: HTTP_DEFAULT_TIMEOUT_USEC */
        uint64_t connect_timeout_usec; /* 0: HTTP_DEFAULT_CONNECT_TIMEOUT_USEC */
        uint64_t idle_timeout_usec;    /* no byte received for this long (whole seconds) aborts */
        const char *ca_file;           /* NULL: the system's CAs */
        size_t max_response;           /* bytes buffered for on_done; 0: HTTP_DEFAULT_MAX_RESPONSE */
        const char *user_pass;         /* "user:password" (IMAP, SMTP, basic auth); may be NULL */
        bool require_tls;              /* imap://, smtp://: STARTTLS or fail */
        const char *mail_from;         /* SMTP envelope sender */
        const char *const *mail_rcpt;  /* SMTP envelope recipients, NULL-terminated */
};

#define HTTP_DEFAULT_TIMEOUT_USEC (60ull * 1000000ull)
#define HTTP_DEFAULT_CONNECT_TIMEOUT_USEC (10ull * 1000000ull)
#define HTTP_DEFAULT_MAX_RESPONSE (1024u * 1024u)

struct http_response {
        /* 0 when a response arrived (whatever its status), else -errno: -ETIMEDOUT (timeout,
         * idle timeout), -ECONNREFUSED, -EHOSTUNREACH (name did not resolve, or no route),
         * -EMSGSIZE (response over max_response), -ECONNRESET (connection lost or nothing
         * received), -EPROTO (TLS or protocol error), -EACCES (login refused: IMAP, SMTP),
         * -ENOMEM, -EIO (anything else), or what on_data returned. */
        int error;
        const char *error_detail; /* curl's text for the error; NULL when error == 0 */
        long status;              /* HTTP status (IMAP/SMTP: last response code); 0: none */
        /* The buffered body, NUL-terminated (empty when on_data took the data). */
        const char *body;
        size_t body_len;
        const char *content_type;  /* NULL when absent */
        uint64_t retry_after_usec; /* from Retry-After (delta seconds or HTTP date); 0: absent */
        uint64_t elapsed_usec;
};

/* Streaming: called with each piece of the body as it arrives, for 2xx responses only (other
 * statuses are buffered so on_done can read the error body). A negative return aborts the call;
 * on_done then gets that value as error. */
typedef int (*http_data_fn)(struct http_call *call, const char *data, size_t len, void *userdata);
/* Called exactly once per call that was not cancelled; the call is freed when it returns. */
typedef void (*http_done_fn)(struct http_call *call, const struct http_response *r, void *userdata);

int http_engine_new(sd_event *event, struct http_engine **ret);
/* Cancels every call still running without calling back. Returns NULL. */
struct http_engine *http_engine_free(struct http_engine *e);

/* Starts a call; the request is copied. on_data may be NULL (buffer everything). *ret
 * (optional) is valid until on_done returns or http_call_cancel(). */
int http_call_start(struct http_engine *e, const struct http_request *req, http_data_fn on_data,
                    http_done_fn on_done, void *userdata, struct http_call **ret);
/* Aborts a call; neither callback is called afterwards. */
void http_call_cancel(struct http_call *call);

/* Calls running now. */
size_t http_engine_active(const struct http_engine *e);

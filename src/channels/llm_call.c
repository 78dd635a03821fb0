/* One LLM turn with bounded retries (see llm_call.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm_call.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

/* Error bodies are short JSON; anything longer is cut (the status still classifies it). */
#define LLM_ERROR_BODY_MAX (64u * 1024u)
/* One SSE line or NDJSON line: a streamed piece of text is small, but a usage or error object
 * may be larger. */
#define LLM_STREAM_LINE_MAX (256u * 1024u)

struct llm_call {
        sd_event *event;
        struct http_engine *engine;
        struct http_call *http_call;
        sd_event_source *retry_timer;
        struct llm_call_params p;
        char *log_fields;
        char *what;
        llm_call_done_fn done;
        void *userdata;

        struct stream_parser parser;
        struct llm_reply reply;
        struct llm_result result;
        int abort; /* why on_data stopped the transfer */
        char bad[256]; /* what was wrong with the stream data (abort -EBADMSG) */
};

uint64_t llm_retry_delay(unsigned attempt, uint64_t retry_after_usec, double jitter) {
        uint64_t d;

        if (retry_after_usec > 0)
                return retry_after_usec > LLM_RETRY_AFTER_MAX_USEC ? UINT64_MAX : retry_after_usec;
        d = LLM_BACKOFF_MIN_USEC;
        for (unsigned i = 2; i < attempt && d < LLM_BACKOFF_MAX_USEC; i++)
                d *= 2;
        /* ±20 %: several actors hitting the same limit do not come back in step. */
        d = (uint64_t) ((double) d * (0.8 + 0.4 * jitter));
        return MIN(d, LLM_BACKOFF_MAX_USEC);
}

static void call_free(struct llm_call *c) {
        if (c->http_call)
                http_call_cancel(c->http_call);
        sd_event_source_disable_unref(c->retry_timer);
        stream_parser_done(&c->parser);
        llm_reply_done(&c->reply);
        llm_http_done(&c->p.http);
        free(c->log_fields);
        free(c->what);
        sd_event_unref(c->event);
        free(c);
}

void llm_call_cancel(struct llm_call *c) {
        if (c)
                call_free(c);
}

static void finish(struct llm_call *c) {
        c->result.reply = &c->reply;
        c->done(c, &c->result, c->userdata);
        call_free(c);
}

static int on_event(const char *event, const char *data, size_t len, void *userdata) {
        struct llm_call *c = userdata;
        int r = c->p.wire->event(&c->reply, event, data, len);

        if (r == -EBADMSG)
                snprintf(c->bad, sizeof c->bad, "not valid %s stream data: %.120s", c->p.wire->kind, data);
        if (r >= 0 && c->reply.failed)
                return -ECANCELED; /* an error event: nothing useful follows */
        return r;
}

static int on_data(struct http_call *hc, const char *data, size_t len, void *userdata) {
        struct llm_call *c = userdata;
        int r;

        if (c->result.first_byte_usec == 0)
                c->result.first_byte_usec = now_usec(CLOCK_MONOTONIC);
        r = stream_parser_feed(&c->parser, data, len);
        if (r < 0)
                c->abort = r;
        return r;
}

static int start_attempt(struct llm_call *c);

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct llm_call *c = userdata;
        int r;

        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        r = start_attempt(c);
        if (r < 0) {
                c->result.code = LLM_ERR_INTERNAL;
                snprintf(c->result.failure.message, sizeof c->result.failure.message, "cannot start a request: %s",
                         strerror(-r));
                finish(c);
        }
        return 0;
}

/* What a finished attempt means: fills c->result.code and failure. */
static void classify(struct llm_call *c, const struct http_response *r) {
        struct llm_result *res = &c->result;
        bool ok_status = r->status >= 200 && r->status < 300;

        res->retry_after_usec = r->retry_after_usec;
        if (c->reply.failed) {
                res->code = c->reply.failure.code;
                res->failure = c->reply.failure;
                res->failure.status = r->status;
                return;
        }
        if (c->abort == -EBADMSG) {
                res->code = LLM_ERR_BAD_RESPONSE;
                snprintf(res->failure.message, sizeof res->failure.message, "%s", c->bad);
                return;
        }
        if (c->abort == -EMSGSIZE || c->abort == -EPROTO) {
                res->code = LLM_ERR_BAD_RESPONSE;
                snprintf(res->failure.message, sizeof res->failure.message,
                         "a line of the stream is longer than %u bytes or contains a NUL byte", LLM_STREAM_LINE_MAX);
                return;
        }
        if (c->abort < 0) {
                res->code = LLM_ERR_INTERNAL;
                snprintf(res->failure.message, sizeof res->failure.message, "%s", strerror(-c->abort));
                return;
        }
        if (r->error == -ETIMEDOUT) {
                char span[32];
                res->code = LLM_ERR_TIMEOUT;
                snprintf(res->failure.message, sizeof res->failure.message, "no complete answer within %s%s",
                         format_timespan(span, sizeof span, c->p.timeout_usec),
                         c->result.first_byte_usec ? " (the stream had started)" : " (nothing received)");
                return;
        }
        if (r->error < 0) {
                bool streamed = ok_status && c->result.first_byte_usec > 0;
                res->code = streamed ? LLM_ERR_STREAM_CUT : LLM_ERR_UNREACHABLE;
                snprintf(res->failure.message, sizeof res->failure.message, "%s%s",
                         streamed ? "the stream broke off: " : "", r->error_detail ? r->error_detail : strerror(-r->error));
                return;
        }
        if (!ok_status) {
                c->p.wire->error(r->status, r->body, r->body_len, &res->failure);
                res->code = res->failure.code;
                if (!*res->failure.message)
                        snprintf(res->failure.message, sizeof res->failure.message, "HTTP status %ld", r->status);
                return;
        }
        c->abort = stream_parser_finish(&c->parser);
        if (c->abort < 0 && !c->reply.failed) {
                res->code = LLM_ERR_BAD_RESPONSE;
                snprintf(res->failure.message, sizeof res->failure.message, "%s",
                         c->abort == -EBADMSG ? c->bad : "the stream's last line is not valid");
                return;
        }
        if (c->reply.failed) {
                res->code = c->reply.failure.code;
                res->failure = c->reply.failure;
                return;
        }
        if (!c->reply.done) {
                bool json = r->content_type && strstr(r->content_type, "application/json") && c->parser.events == 0;
                res->code = json ? LLM_ERR_BAD_RESPONSE : LLM_ERR_STREAM_CUT;
                snprintf(res->failure.message, sizeof res->failure.message, "%s",
                         json ? "the server answered without streaming (Content-Type application/json)"
                              : c->p.wire->format == STREAM_SSE ? "the stream ended before its end event"
                                                                : "the stream ended before \"done\": true");
                return;
        }
        if (!llm_reply_text(&c->reply)) {
                res->code = LLM_ERR_INTERNAL;
                snprintf(res->failure.message, sizeof res->failure.message, "out of memory");
                return;
        }
        if (c->reply.text_len == 0) {
                res->code = LLM_ERR_BAD_RESPONSE;
                snprintf(res->failure.message, sizeof res->failure.message, "the reply was empty (finish reason %s)",
                         *c->reply.finish_reason ? c->reply.finish_reason : "none");
                return;
        }
        res->code = LLM_OK;
}

static void on_done(struct http_call *hc, const struct http_response *r, void *userdata) {
        struct llm_call *c = userdata;
        uint64_t delay;

        c->http_call = NULL;
        c->result.last_byte_usec = now_usec(CLOCK_MONOTONIC);
        c->result.failure = (struct llm_failure){ .status = r->status };
        classify(c, r);
        if (c->result.code == LLM_OK || !llm_error_retryable(c->result.code) || c->result.attempts > c->p.retries) {
                finish(c);
                return;
        }
        delay = llm_retry_delay(c->result.attempts + 1, r->retry_after_usec, (double) random() / ((double) RAND_MAX + 1));
        if (delay == UINT64_MAX) {
                char span[32];
                size_t n = strlen(c->result.failure.message);
                snprintf(c->result.failure.message + n, sizeof c->result.failure.message - n,
                         "%sthe provider asks to wait %s before retrying; not waiting that long", n ? "; " : "",
                         format_timespan(span, sizeof span, r->retry_after_usec));
                finish(c);
                return;
        }
        {
                char span[32];
                log_fields_errno(LOG_WARNING, 0, c->log_fields, "%s: attempt %u of %u failed (%s: %s); retrying in %s%s",
                                 c->what, c->result.attempts, c->p.retries + 1, llm_error_code_to_string(c->result.code),
                                 c->result.failure.message, format_timespan(span, sizeof span, delay),
                                 r->retry_after_usec ? " as Retry-After asks" : "");
        }
        if (sd_event_add_time_relative(c->event, &c->retry_timer, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                       on_retry_timer, c) < 0)
                finish(c);
}

static int start_attempt(struct llm_call *c) {
        struct http_request req = {
                .method = "POST",
                .url = c->p.http.url,
                .headers = (const char *const *) c->p.http.headers,
                .body = c->p.http.body,
                .body_len = c->p.http.body_len,
                .timeout_usec = c->p.timeout_usec,
                .max_response = LLM_ERROR_BODY_MAX,
        };

        stream_parser_done(&c->parser);
        stream_parser_init(&c->parser, c->p.wire->format, LLM_STREAM_LINE_MAX, LLM_STREAM_LINE_MAX, on_event, c);
        llm_reply_done(&c->reply);
        c->abort = 0;
        c->bad[0] = 0;
        c->result.attempts++;
        c->result.first_byte_usec = c->result.last_byte_usec = 0;
        c->result.sent_usec = now_usec(CLOCK_MONOTONIC);
        return http_call_start(c->engine, &req, on_data, on_done, c, &c->http_call);
}

int llm_call_start(sd_event *event, struct http_engine *engine, struct llm_call_params *p, llm_call_done_fn done,
                   void *userdata, struct llm_call **ret) {
        struct llm_call *c = calloc(1, sizeof *c);
        int r;

        if (!c) {
                llm_http_done(&p->http);
                return -ENOMEM;
        }
        c->event = sd_event_ref(event);
        c->engine = engine;
        c->p = *p;
        p->http = (struct llm_http){};
        c->log_fields = p->log_fields ? strdup(p->log_fields) : NULL;
        c->what = strdup(p->what ? p->what : "provider");
        c->p.log_fields = NULL;
        c->p.what = NULL;
        c->done = done;
        c->userdata = userdata;
        c->result.started_usec = now_usec(CLOCK_MONOTONIC);
        /* curl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to a second for
         * the 100 that many servers never send; an empty Expect: header turns that off. */
        if (!c->what || (p->log_fields && !c->log_fields) || llm_header(&c->p.http, "Expect:") < 0) {
                call_free(c);
                return -ENOMEM;
        }
        r = start_attempt(c);
        if (r < 0) {
                call_free(c);
                return r;
        }
        if (ret)
                *ret = c;
        return 0;
}

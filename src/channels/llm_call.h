/* One LLM turn over the HTTP engine: the request of llm_wire.h streamed, parsed as it arrives,
 * retried a bounded number of times (429, 5xx, connection failures, a cut stream) with
 * exponential backoff or the provider's Retry-After, and one outcome at the end. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "http_engine.h"
#include "llm_wire.h"

/* A Retry-After beyond this is not waited for: the turn fails as rate_limited. */
#define LLM_RETRY_AFTER_MAX_USEC (120ull * 1000000ull)
#define LLM_BACKOFF_MIN_USEC (1000000ull)
#define LLM_BACKOFF_MAX_USEC (30ull * 1000000ull)
#define LLM_RETRIES_MAX 10u

struct llm_call;

struct llm_call_params {
        const struct llm_wire *wire;
        struct llm_http http;  /* taken over by llm_call_start(), even when it fails */
        uint64_t timeout_usec; /* per attempt */
        unsigned retries;      /* attempts after the first */
        const char *log_fields; /* journal fields for the retry lines; may be NULL */
        const char *what;       /* "provider NAME (model M)" for messages */
};

struct llm_result {
        enum llm_error_code code; /* LLM_OK or why it failed */
        struct llm_failure failure;
        struct llm_reply *reply;  /* text (llm_reply_text() applied), usage, model */
        unsigned attempts;
        uint64_t retry_after_usec; /* the last Retry-After seen (0: none) */
        /* CLOCK_MONOTONIC of the last attempt: request handed to curl, first body byte, end. */
        uint64_t sent_usec, first_byte_usec, last_byte_usec;
        uint64_t started_usec;
};

typedef void (*llm_call_done_fn)(struct llm_call *c, const struct llm_result *r, void *userdata);

/* The call is freed after done returns. */
int llm_call_start(sd_event *event, struct http_engine *engine, struct llm_call_params *p, llm_call_done_fn done,
                   void *userdata, struct llm_call **ret);
/* No callback afterwards. */
void llm_call_cancel(struct llm_call *c);

/* Pure policy, for tests: the delay before attempt `attempt` (2, 3, …) after an outcome with
 * this Retry-After (0: none); UINT64_MAX: do not retry. jitter is in [0, 1). */
uint64_t llm_retry_delay(unsigned attempt, uint64_t retry_after_usec, double jitter);

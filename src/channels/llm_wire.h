/* The wire formats of the LLM providers Conclave speaks: how a chat request is written for each
 * kind (URL, headers, JSON body), how each streamed event is read into a reply, and how an error
 * response is classified. One file per kind (provider_openai.c, provider_anthropic.c,
 * provider_ollama.c); the shared parts live in llm_wire.c. No I/O here: llm_call.c drives it. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream_parser.h"

struct config_provider;

/* A reply is posted as one chat.message: at most this much text (MESSAGE_TEXT_MAX). */
#define LLM_REPLY_MAX (64u * 1024u)
#define LLM_HEADERS_MAX 8
#define LLM_KEY_MAX 4096
#define ANTHROPIC_VERSION "2023-06-01"

struct llm_message {
        const char *role; /* "user" or "assistant" */
        const char *content;
};

struct llm_request {
        const struct config_provider *provider;
        const char *model;  /* the provider's model unless the actor overrides it */
        const char *system; /* may be NULL */
        const struct llm_message *messages;
        size_t n_messages;
        unsigned max_tokens;
        double temperature;
        const char *api_key; /* NULL: send none */
};

/* What to send. headers are "Name: value" strings, NULL-terminated. */
struct llm_http {
        char *url;
        char *body;
        size_t body_len;
        char *headers[LLM_HEADERS_MAX + 1];
};
void llm_http_done(struct llm_http *h);

/* Why a call failed: what the operator sees in system.notify and the journal. */
enum llm_error_code {
        LLM_OK,
        LLM_ERR_AUTH,         /* 401/403: the key is missing, wrong or lacks rights */
        LLM_ERR_NOT_FOUND,    /* 404, unknown model */
        LLM_ERR_CONTEXT,      /* the prompt does not fit the model's context window */
        LLM_ERR_BAD_REQUEST,  /* other 4xx */
        LLM_ERR_RATE_LIMITED, /* 429 */
        LLM_ERR_SERVER,       /* 5xx, 529, "overloaded" and "api_error" stream events */
        LLM_ERR_TIMEOUT,      /* no complete answer within [providers.NAME] timeout */
        LLM_ERR_UNREACHABLE,  /* connection refused, name not resolved */
        LLM_ERR_STREAM_CUT,   /* the stream ended before its end marker */
        LLM_ERR_BAD_RESPONSE, /* not the documented format: invalid JSON, an empty reply */
        LLM_ERR_CONFIG,       /* no such provider, unreadable key file */
        LLM_ERR_CANCELLED,
        LLM_ERR_INTERNAL,
        _LLM_ERR_MAX,
};
const char *llm_error_code_to_string(enum llm_error_code c);
/* Worth another attempt (after a backoff)? */
bool llm_error_retryable(enum llm_error_code c);

struct llm_failure {
        enum llm_error_code code;
        long status;        /* HTTP status; 0: none */
        char message[512];  /* the provider's message when it sent one */
};

/* What a streamed reply has produced so far. */
struct llm_reply {
        char *text;
        size_t text_len, text_cap;
        bool truncated; /* more than LLM_REPLY_MAX arrived; the rest was dropped */
        uint64_t input_tokens, output_tokens;
        bool has_usage;
        char model[128];        /* as the provider reports it */
        char finish_reason[32]; /* stop, length, end_turn, max_tokens, … */
        bool done;              /* the format's end marker arrived */
        bool failed;            /* an error event arrived: see failure */
        struct llm_failure failure;
};
void llm_reply_done(struct llm_reply *r);
/* Appends streamed text, keeping it valid UTF-8 without control characters (other than tab
 * and newline) and within LLM_REPLY_MAX. */
int llm_reply_append(struct llm_reply *r, const char *s, size_t len);
/* The text as posted: invalid UTF-8 replaced, cut at a character boundary. NUL-terminated. */
const char *llm_reply_text(struct llm_reply *r);

struct llm_wire {
        const char *kind;
        enum stream_format format;
        int (*build)(const struct llm_request *req, struct llm_http *ret);
        /* One SSE event or NDJSON line. -EBADMSG: not the documented format. */
        int (*event)(struct llm_reply *r, const char *event, const char *data, size_t len);
        /* Classifies a non-2xx response from its status and body. */
        void (*error)(long status, const char *body, size_t len, struct llm_failure *ret);
        /* Doctor: a request that needs a valid key and says whether `model` exists, and its
         * answer read for a 2xx or 404 status: 1 the model exists, 0 it does not, -EBADMSG the
         * body is unreadable. */
        int (*models_request)(const struct config_provider *p, const char *api_key, const char *model,
                              struct llm_http *ret);
        int (*models_result)(long status, const char *body, size_t len, const char *model);
};

extern const struct llm_wire llm_wire_openai;
extern const struct llm_wire llm_wire_anthropic;
extern const struct llm_wire llm_wire_ollama;
const struct llm_wire *llm_wire_for_kind(const char *kind);

/* The provider's base URL, or the kind's public default. */
const char *llm_base_url(const struct config_provider *p);
/* base_url + path, without a doubled '/'. */
char *llm_url(const struct config_provider *p, const char *path);

/* Shared helpers for the per-kind files. */
struct json_object *llm_json_parse(const char *data, size_t len);
const char *llm_json_str(struct json_object *o, const char *key);
int llm_json_body(struct json_object *body, struct llm_http *ret);
/* The chat messages as OpenAI and Ollama take them: the system prompt (if any) as the first
 * {"role":"system"}, then each {"role","content"}. NULL when out of memory. */
struct json_object *llm_chat_messages(const struct llm_request *req);
int llm_header(struct llm_http *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Generic classification by status alone, message from a JSON {"error":…} body if any. */
void llm_error_generic(long status, const char *body, size_t len, struct llm_failure *ret);
/* Does the text say the prompt is too long for the model? */
bool llm_message_is_context_error(const char *message);

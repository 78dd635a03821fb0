/* Unit tests for the provider wire formats (llm_wire.c, provider_*.c): requests as each API
 * documents them, streamed answers read through the stream parser (split at every byte), error
 * classification, the clean-up of reply text, model lists and the retry policy (llm_call.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "llm_call.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"

#define S(x) (x), strlen(x)

static struct config_provider provider(const char *kind, const char *base_url) {
        return (struct config_provider){ .name = (char *) "p", .kind = (char *) kind, .base_url = (char *) base_url,
                                         .model = (char *) "m", .timeout_usec = 1000000, .max_tokens = 100,
                                         .temperature = -1 };
}

static const struct llm_message conversation[] = {
        { "user", "alice: hi" },
        { "assistant", "hello" },
        { "user", "alice: and now?" },
};

static struct json_object *body_of(const struct llm_http *h) {
        struct json_object *o = json_tokener_parse(h->body);
        assert_non_null(o);
        assert_int_equal(strlen(h->body), h->body_len);
        return o;
}

static bool has_header(const struct llm_http *h, const char *line) {
        for (size_t i = 0; h->headers[i]; i++)
                if (streq(h->headers[i], line))
                        return true;
        return false;
}

static const char *path_str(struct json_object *o, const char *a, const char *b) {
        struct json_object *v = json_object_object_get(o, a);
        if (b)
                v = json_object_object_get(v, b);
        return v ? json_object_get_string(v) : NULL;
}

static void test_build_openai(void **state) {
        struct config_provider p = provider("openai", "http://127.0.0.1:8000/v1/");
        struct llm_request req = { .provider = &p, .model = "m", .system = "be nice", .messages = conversation,
                                   .n_messages = 3, .max_tokens = 42, .temperature = -1, .api_key = "sk-1" };
        struct llm_http h = {};
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *msgs;

        (void) state;
        assert_int_equal(llm_wire_openai.build(&req, &h), 0);
        assert_string_equal(h.url, "http://127.0.0.1:8000/v1/chat/completions");
        assert_true(has_header(&h, "Authorization: Bearer sk-1"));
        assert_true(has_header(&h, "Content-Type: application/json"));
        o = body_of(&h);
        assert_string_equal(path_str(o, "model", NULL), "m");
        assert_string_equal(path_str(o, "stream", NULL), "true");
        assert_string_equal(path_str(o, "stream_options", "include_usage"), "true");
        assert_int_equal(json_object_get_int(json_object_object_get(o, "max_tokens")), 42);
        assert_null(json_object_object_get(o, "max_completion_tokens"));
        assert_null(json_object_object_get(o, "temperature")); /* unset: the model's default */
        msgs = json_object_object_get(o, "messages");
        assert_int_equal(json_object_array_length(msgs), 4);
        assert_string_equal(path_str(json_object_array_get_idx(msgs, 0), "role", NULL), "system");
        assert_string_equal(path_str(json_object_array_get_idx(msgs, 0), "content", NULL), "be nice");
        assert_string_equal(path_str(json_object_array_get_idx(msgs, 2), "role", NULL), "assistant");
        llm_http_done(&h);
        json_object_put(o);

        /* api.openai.com itself (the default base_url): max_completion_tokens; no key, no header. */
        p = provider("openai", NULL);
        req.api_key = NULL;
        req.temperature = 0.5;
        assert_int_equal(llm_wire_openai.build(&req, &h), 0);
        assert_string_equal(h.url, "https://api.openai.com/v1/chat/completions");
        for (size_t i = 0; h.headers[i]; i++)
                assert_null(strstr(h.headers[i], "Authorization"));
        o = body_of(&h);
        assert_int_equal(json_object_get_int(json_object_object_get(o, "max_completion_tokens")), 42);
        assert_true(json_object_get_double(json_object_object_get(o, "temperature")) == 0.5);
        llm_http_done(&h);
}

static void test_build_anthropic(void **state) {
        struct config_provider p = provider("anthropic", NULL);
        struct llm_request req = { .provider = &p, .model = "claude", .system = "sys", .messages = conversation,
                                   .n_messages = 3, .max_tokens = 7, .temperature = 1.5, .api_key = "k" };
        struct llm_http h = {};
        _cleanup_json_ struct json_object *o = NULL;

        (void) state;
        assert_int_equal(llm_wire_anthropic.build(&req, &h), 0);
        assert_string_equal(h.url, "https://api.anthropic.com/v1/messages");
        assert_true(has_header(&h, "x-api-key: k"));
        assert_true(has_header(&h, "anthropic-version: 2023-06-01"));
        o = body_of(&h);
        assert_string_equal(path_str(o, "system", NULL), "sys"); /* top level, not a message */
        assert_int_equal(json_object_array_length(json_object_object_get(o, "messages")), 3);
        assert_int_equal(json_object_get_int(json_object_object_get(o, "max_tokens")), 7);
        assert_true(json_object_get_double(json_object_object_get(o, "temperature")) == 1.0); /* 0..1 */
        llm_http_done(&h);
}

static void test_build_ollama(void **state) {
        struct config_provider p = provider("ollama", "http://localhost:11434");
        struct llm_request req = { .provider = &p, .model = "llama3", .messages = conversation, .n_messages = 3,
                                   .max_tokens = 9, .temperature = 0.25 };
        struct llm_http h = {};
        _cleanup_json_ struct json_object *o = NULL;

        (void) state;
        assert_int_equal(llm_wire_ollama.build(&req, &h), 0);
        assert_string_equal(h.url, "http://localhost:11434/api/chat");
        o = body_of(&h);
        assert_string_equal(path_str(o, "stream", NULL), "true");
        assert_int_equal(json_object_get_int(json_object_object_get(json_object_object_get(o, "options"), "num_predict")), 9);
        assert_int_equal(json_object_array_length(json_object_object_get(o, "messages")), 3); /* no system: none sent */
        llm_http_done(&h);
}

/* Feeds a whole stream through the parser and the wire, split in two at `split`. */
struct run {
        const struct llm_wire *wire;
        struct llm_reply reply;
        int error;
};

static int on_event(const char *event, const char *data, size_t len, void *userdata) {
        struct run *r = userdata;
        return r->wire->event(&r->reply, event, data, len);
}

static int run_stream(const struct llm_wire *w, const char *stream, size_t split, struct llm_reply *ret) {
        struct run r = { .wire = w };
        struct stream_parser p;
        size_t len = strlen(stream);
        int k;

        stream_parser_init(&p, w->format, 0, 0, on_event, &r);
        k = stream_parser_feed(&p, stream, MIN(split, len));
        if (k >= 0)
                k = stream_parser_feed(&p, stream + MIN(split, len), len - MIN(split, len));
        if (k >= 0)
                k = stream_parser_finish(&p);
        stream_parser_done(&p);
        *ret = r.reply;
        return k;
}

static const char openai_stream[] =
        ": keep-alive\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null},\"finish_reason\":\"stop\"}]}\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14}}\n\n"
        "data: [DONE]\n\n";

static void test_openai_stream(void **state) {
        (void) state;
        for (size_t split = 0; split <= strlen(openai_stream); split++) {
                struct llm_reply r;
                assert_int_equal(run_stream(&llm_wire_openai, openai_stream, split, &r), 0);
                assert_true(r.done);
                assert_false(r.failed);
                assert_string_equal(llm_reply_text(&r), "Hello \xc3\xa9");
                assert_true(r.has_usage);
                assert_int_equal(r.input_tokens, 11);
                assert_int_equal(r.output_tokens, 3);
                assert_string_equal(r.model, "gpt-x");
                assert_string_equal(r.finish_reason, "stop");
                llm_reply_done(&r);
        }
}

static void test_openai_stream_errors(void **state) {
        struct llm_reply r;

        (void) state;
        /* No [DONE]: not done (llm_call reports a cut stream). */
        assert_int_equal(run_stream(&llm_wire_openai, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 0, &r), 0);
        assert_false(r.done);
        llm_reply_done(&r);
        /* Not JSON. */
        assert_int_equal(run_stream(&llm_wire_openai, "data: {\"choices\":[\n\n", 0, &r), -EBADMSG);
        llm_reply_done(&r);
        /* content of the wrong type */
        assert_int_equal(run_stream(&llm_wire_openai, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":5}}]}\n\n", 0, &r), -EBADMSG);
        llm_reply_done(&r);
        /* An error object inside the stream. */
        assert_int_equal(run_stream(&llm_wire_openai,
                                    "data: {\"error\":{\"message\":\"This model's maximum context length is 4096 tokens\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}\n\n",
                                    0, &r), 0);
        assert_true(r.failed);
        assert_int_equal(r.failure.code, LLM_ERR_CONTEXT);
        llm_reply_done(&r);
        assert_int_equal(run_stream(&llm_wire_openai, "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n", 0, &r), 0);
        assert_int_equal(r.failure.code, LLM_ERR_SERVER);
        assert_string_equal(r.failure.message, "overloaded");
        llm_reply_done(&r);
}

static const char anthropic_stream[] =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n"
        "event: ping\n"
        "data: {\"type\": \"ping\"}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n"
        "event: some_future_event\n"
        "data: {\"type\":\"some_future_event\"}\n\n"
        "event: content_block_stop\n"
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
        "event: message_stop\n"
        "data: {\"type\":\"message_stop\"}\n\n";

static void test_anthropic_stream(void **state) {
        (void) state;
        for (size_t split = 0; split <= strlen(anthropic_stream); split += 7) {
                struct llm_reply r;
                assert_int_equal(run_stream(&llm_wire_anthropic, anthropic_stream, split, &r), 0);
                assert_true(r.done);
                assert_string_equal(llm_reply_text(&r), "Hi there"); /* no thinking text */
                assert_int_equal(r.input_tokens, 25);
                assert_int_equal(r.output_tokens, 15); /* cumulative, not summed */
                assert_string_equal(r.model, "claude-x");
                assert_string_equal(r.finish_reason, "end_turn");
                llm_reply_done(&r);
        }
}

static void test_anthropic_error_event(void **state) {
        struct llm_reply r;

        (void) state;
        assert_int_equal(run_stream(&llm_wire_anthropic,
                                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n"
                                    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                                    0, &r), 0);
        assert_true(r.failed);
        assert_false(r.done);
        assert_int_equal(r.failure.code, LLM_ERR_SERVER);
        assert_string_equal(r.failure.message, "overloaded_error: Overloaded");
        llm_reply_done(&r);
        assert_int_equal(run_stream(&llm_wire_anthropic,
                                    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n",
                                    0, &r), 0);
        assert_int_equal(r.failure.code, LLM_ERR_RATE_LIMITED);
        llm_reply_done(&r);
        assert_int_equal(run_stream(&llm_wire_anthropic, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n", 0, &r),
                         -EBADMSG);
        llm_reply_done(&r);
}

static const char ollama_stream[] =
        "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"The \"},\"done\":false}\n"
        "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"sky\"},\"done\":false}\n"
        "{\"model\":\"llama3\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
        "\"done_reason\":\"stop\",\"total_duration\":5,\"prompt_eval_count\":26,\"eval_count\":2}\n";

static void test_ollama_stream(void **state) {
        struct llm_reply r;

        (void) state;
        for (size_t split = 0; split <= strlen(ollama_stream); split++) {
                assert_int_equal(run_stream(&llm_wire_ollama, ollama_stream, split, &r), 0);
                assert_true(r.done);
                assert_string_equal(llm_reply_text(&r), "The sky");
                assert_int_equal(r.input_tokens, 26);
                assert_int_equal(r.output_tokens, 2);
                assert_string_equal(r.finish_reason, "stop");
                llm_reply_done(&r);
        }
        assert_int_equal(run_stream(&llm_wire_ollama, "{\"error\":\"model 'x' not found\"}\n", 0, &r), 0);
        assert_true(r.failed);
        llm_reply_done(&r);
        assert_int_equal(run_stream(&llm_wire_ollama, "{\"message\":{\"content\":\"a\"}}\n", 0, &r), -EBADMSG); /* no "done" */
        llm_reply_done(&r);
        assert_int_equal(run_stream(&llm_wire_ollama, "[1,2]\n", 0, &r), -EBADMSG);
        llm_reply_done(&r);
}

static void test_error_bodies(void **state) {
        struct llm_failure f;
        const char *b;

        (void) state;
        b = "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens.\",\"type\":\"invalid_request_error\","
            "\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}";
        llm_wire_openai.error(400, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_CONTEXT);
        b = "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";
        llm_wire_openai.error(401, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_AUTH);
        assert_string_equal(f.message, "Incorrect API key provided");
        llm_wire_openai.error(429, S("{}"), &f);
        assert_int_equal(f.code, LLM_ERR_RATE_LIMITED);
        llm_wire_openai.error(503, S("<html>\n<h1>Bad gateway</h1>"), &f);
        assert_int_equal(f.code, LLM_ERR_SERVER);
        assert_string_equal(f.message, "<html> <h1>Bad gateway</h1>"); /* the start of it, one line */
        llm_wire_openai.error(400, S("{\"error\":{\"message\":\"bad temperature\"}}"), &f);
        assert_int_equal(f.code, LLM_ERR_BAD_REQUEST);

        b = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
        llm_wire_anthropic.error(529, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_SERVER);
        assert_true(llm_error_retryable(f.code));
        b = "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long: 210000 tokens > 200000 maximum\"}}";
        llm_wire_anthropic.error(400, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_CONTEXT);
        assert_false(llm_error_retryable(f.code));
        b = "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: x\"}}";
        llm_wire_anthropic.error(404, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_NOT_FOUND);
        b = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}";
        llm_wire_anthropic.error(401, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_AUTH);

        b = "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}";
        llm_wire_ollama.error(404, b, strlen(b), &f);
        assert_int_equal(f.code, LLM_ERR_NOT_FOUND);
        assert_string_equal(f.message, "model \"llama9\" not found, try pulling it first");
}

static int append(struct llm_reply *r, const char *s) {
        return llm_reply_append(r, s, strlen(s));
}

static void test_reply_text(void **state) {
        struct llm_reply r = {};
        char *big;

        (void) state;
        /* Control characters go, tab and newline stay; invalid UTF-8 becomes U+FFFD; surrounding
         * blank lines are trimmed; a character split across pieces survives. */
        assert_int_equal(append(&r, "\n\n a\tb\x01\x1b[31m \xc3"), 0);
        assert_int_equal(append(&r, "\xa9 \xff\xc0\xaf \xed\xa0\x80 \xc2\x85 x\n"), 0);
        assert_string_equal(llm_reply_text(&r),
                            "a\tb[31m \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd  x");
        assert_false(r.truncated);
        llm_reply_done(&r);

        /* Past the limit: cut at a character boundary, marked, within LLM_REPLY_MAX. */
        big = malloc(LLM_REPLY_MAX + 100);
        assert_non_null(big);
        for (size_t i = 0; i + 2 <= LLM_REPLY_MAX + 100; i += 2)
                memcpy(big + i, "\xc3\xa9", 2);
        for (size_t off = 0; off < LLM_REPLY_MAX + 100; off += 1000)
                assert_int_equal(llm_reply_append(&r, big + off, MIN((size_t) 1000, LLM_REPLY_MAX + 100 - off)), 0);
        assert_true(r.truncated);
        llm_reply_text(&r);
        assert_true(r.text_len <= LLM_REPLY_MAX);
        assert_non_null(strstr(r.text, "\n[reply truncated]"));
        assert_int_equal((unsigned char) r.text[r.text_len - strlen("\n[reply truncated]") - 1], 0xa9);
        llm_reply_done(&r);
        free(big);

        /* Only blanks: empty (the caller reports an empty reply). */
        assert_int_equal(append(&r, " \n\t "), 0);
        assert_string_equal(llm_reply_text(&r), "");
        llm_reply_done(&r);
}

static void test_models(void **state) {
        const char *list = "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o\",\"object\":\"model\"},{\"id\":\"gpt-4o-mini\"}]}";
        const char *tags = "{\"models\":[{\"name\":\"llama3:latest\",\"model\":\"llama3:latest\"},{\"name\":\"qwen2:7b\"}]}";
        struct config_provider p = provider("anthropic", "http://h:1/");
        struct llm_http h = {};

        (void) state;
        assert_int_equal(llm_wire_openai.models_result(200, list, strlen(list), "gpt-4o-mini"), 1);
        assert_int_equal(llm_wire_openai.models_result(200, list, strlen(list), "gpt-5"), 0);
        assert_int_equal(llm_wire_openai.models_result(404, S("nope"), "gpt-4o"), -EBADMSG);
        assert_int_equal(llm_wire_openai.models_result(200, S("<html>"), "gpt-4o"), -EBADMSG);
        assert_int_equal(llm_wire_ollama.models_result(200, tags, strlen(tags), "llama3"), 1);
        assert_int_equal(llm_wire_ollama.models_result(200, tags, strlen(tags), "qwen2:7b"), 1);
        assert_int_equal(llm_wire_ollama.models_result(200, tags, strlen(tags), "qwen2"), 0);
        assert_int_equal(llm_wire_anthropic.models_result(200, S("{\"type\":\"model\",\"id\":\"claude-x\"}"), "claude-x"), 1);
        assert_int_equal(llm_wire_anthropic.models_result(404, S("{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: claude-y\"}}"), "claude-y"), 0);
        /* A 404 that is not Anthropic's: the endpoint is missing (a wrong base_url). */
        assert_int_equal(llm_wire_anthropic.models_result(404, S("{\"error\":{\"message\":\"Not found\"}}"), "claude-y"), -EBADMSG);
        assert_int_equal(llm_wire_anthropic.models_request(&p, "k", "claude 3/x", &h), 0);
        assert_string_equal(h.url, "http://h:1/v1/models/claude%203%2Fx");
        assert_true(has_header(&h, "x-api-key: k"));
        llm_http_done(&h);
}

static void test_retry_policy(void **state) {
        (void) state;
        /* Retry-After wins, up to the bound; past it, no retry. */
        assert_int_equal(llm_retry_delay(2, 2 * USEC_PER_SEC, 0.5), 2 * USEC_PER_SEC);
        assert_int_equal(llm_retry_delay(2, LLM_RETRY_AFTER_MAX_USEC, 0.5), LLM_RETRY_AFTER_MAX_USEC);
        assert_true(llm_retry_delay(2, LLM_RETRY_AFTER_MAX_USEC + 1, 0.5) == UINT64_MAX);
        /* Otherwise 1 s, 2 s, 4 s … ±20 %, at most 30 s. */
        assert_int_equal(llm_retry_delay(2, 0, 0.5), USEC_PER_SEC);
        assert_int_equal(llm_retry_delay(3, 0, 0.5), 2 * USEC_PER_SEC);
        assert_int_equal(llm_retry_delay(4, 0, 0.5), 4 * USEC_PER_SEC);
        assert_int_equal(llm_retry_delay(2, 0, 0.0), 800 * USEC_PER_MSEC);
        assert_true(llm_retry_delay(2, 0, 0.999) < 1200 * USEC_PER_MSEC);
        assert_int_equal(llm_retry_delay(11, 0, 0.999), LLM_BACKOFF_MAX_USEC);
        assert_true(llm_error_retryable(LLM_ERR_STREAM_CUT));
        assert_false(llm_error_retryable(LLM_ERR_TIMEOUT));
        assert_false(llm_error_retryable(LLM_ERR_AUTH));
        assert_false(llm_error_retryable(LLM_ERR_BAD_RESPONSE));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_openai),
                cmocka_unit_test(test_build_anthropic),
                cmocka_unit_test(test_build_ollama),
                cmocka_unit_test(test_openai_stream),
                cmocka_unit_test(test_openai_stream_errors),
                cmocka_unit_test(test_anthropic_stream),
                cmocka_unit_test(test_anthropic_error_event),
                cmocka_unit_test(test_ollama_stream),
                cmocka_unit_test(test_error_bodies),
                cmocka_unit_test(test_reply_text),
                cmocka_unit_test(test_models),
                cmocka_unit_test(test_retry_policy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* OpenAI Chat Completions, streamed, and every server that copies it (vLLM, llama.cpp server,
 * LM Studio, OpenRouter, …): POST {base_url}/chat/completions with "stream": true and
 * "stream_options": {"include_usage": true}; the answer is SSE "data:" lines of
 * chat.completion.chunk objects, then a chunk with "usage" and empty "choices", then
 * "data: [DONE]". */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"

/* api.openai.com wants max_completion_tokens (its reasoning models refuse max_tokens); the
 * servers that copy the API know max_tokens. */
static bool is_openai_itself(const struct config_provider *p) {
        return !p->base_url || strstr(p->base_url, "://api.openai.com");
}

static int openai_build(const struct llm_request *req, struct llm_http *ret) {
        _cleanup_json_ struct json_object *body = json_object_new_object(), *messages = llm_chat_messages(req),
                                          *options = json_object_new_object();
        int r;

        if (!body || !messages || !options)
                return -ENOMEM;
        json_object_object_add(body, "model", json_object_new_string(req->model));
        json_object_object_add(body, "messages", json_object_get(messages));
        json_object_object_add(body, "stream", json_object_new_boolean(true));
        json_object_object_add(options, "include_usage", json_object_new_boolean(true));
        json_object_object_add(body, "stream_options", json_object_get(options));
        json_object_object_add(body, is_openai_itself(req->provider) ? "max_completion_tokens" : "max_tokens",
                               json_object_new_int64(req->max_tokens));
        if (req->temperature >= 0)
                json_object_object_add(body, "temperature", json_object_new_double(req->temperature));

        ret->url = llm_url(req->provider, "/chat/completions");
        if (!ret->url)
                return -ENOMEM;
        r = llm_json_body(body, ret);
        if (r >= 0)
                r = llm_header(ret, "Content-Type: application/json");
        if (r >= 0)
                r = llm_header(ret, "Accept: text/event-stream");
        if (r >= 0 && req->api_key)
                r = llm_header(ret, "Authorization: Bearer %s", req->api_key);
        return r;
}

static void copy(char *buf, size_t size, const char *s) {
        if (s)
                snprintf(buf, size, "%s", s);
}

/* {"error":{"message":…,"type":…,"code":…}} inside the stream (vLLM and OpenRouter send these). */
static void stream_error(struct llm_reply *r, struct json_object *err) {
        const char *message = json_object_is_type(err, json_type_string) ? json_object_get_string(err)
                                                                          : llm_json_str(err, "message");
        const char *code = llm_json_str(err, "code"), *type = llm_json_str(err, "type");

        r->failed = true;
        r->failure = (struct llm_failure){ .code = LLM_ERR_SERVER };
        copy(r->failure.message, sizeof r->failure.message, message ? message : "error in the stream");
        if (streq(code, "context_length_exceeded") || llm_message_is_context_error(message))
                r->failure.code = LLM_ERR_CONTEXT;
        else if (streq(code, "rate_limit_exceeded") || streq(type, "rate_limit_error"))
                r->failure.code = LLM_ERR_RATE_LIMITED;
        else if (streq(type, "invalid_request_error"))
                r->failure.code = LLM_ERR_BAD_REQUEST;
}

static int openai_event(struct llm_reply *r, const char *event, const char *data, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *choices, *usage, *err;

        if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
                r->done = true;
                return 0;
        }
        o = llm_json_parse(data, len);
        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "error", &err) && !json_object_is_type(err, json_type_null)) {
                stream_error(r, err);
                return 0;
        }
        copy(r->model, sizeof r->model, llm_json_str(o, "model"));
        if (json_object_object_get_ex(o, "choices", &choices)) {
                if (!json_object_is_type(choices, json_type_array))
                        return -EBADMSG;
                for (size_t i = 0; i < json_object_array_length(choices); i++) {
                        struct json_object *c = json_object_array_get_idx(choices, i), *delta, *content, *index;
                        int rr;

                        /* n = 1 is what we ask for; a server that sends more gets its first. */
                        if (json_object_object_get_ex(c, "index", &index) && json_object_get_int(index) != 0)
                                continue;
                        copy(r->finish_reason, sizeof r->finish_reason, llm_json_str(c, "finish_reason"));
                        if (!json_object_object_get_ex(c, "delta", &delta) || !json_object_object_get_ex(delta, "content", &content) ||
                            json_object_is_type(content, json_type_null))
                                continue;
                        if (!json_object_is_type(content, json_type_string))
                                return -EBADMSG;
                        rr = llm_reply_append(r, json_object_get_string(content), (size_t) json_object_get_string_len(content));
                        if (rr < 0)
                                return rr;
                }
        }
        if (json_object_object_get_ex(o, "usage", &usage) && json_object_is_type(usage, json_type_object)) {
                struct json_object *v;
                if (json_object_object_get_ex(usage, "prompt_tokens", &v))
                        r->input_tokens = json_object_get_uint64(v);
                if (json_object_object_get_ex(usage, "completion_tokens", &v))
                        r->output_tokens = json_object_get_uint64(v);
                r->has_usage = true;
        }
        return 0;
}

static void openai_error(long status, const char *body, size_t len, struct llm_failure *ret) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *err = NULL;

        llm_error_generic(status, body, len, ret);
        if (o && json_object_object_get_ex(o, "error", &err) && streq(llm_json_str(err, "code"), "context_length_exceeded"))
                ret->code = LLM_ERR_CONTEXT;
}

static int openai_models_request(const struct config_provider *p, const char *api_key, const char *model,
                                 struct llm_http *ret) {
        /* The list, not /models/{id}: the servers that copy the API have the list. */
        ret->url = llm_url(p, "/models");
        if (!ret->url)
                return -ENOMEM;
        return api_key ? llm_header(ret, "Authorization: Bearer %s", api_key) : 0;
}

static int openai_models_result(long status, const char *body, size_t len, const char *model) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *data;

        if (status == 404)
                return -EBADMSG; /* no model list there: a wrong base_url */
        if (!o || !json_object_object_get_ex(o, "data", &data) || !json_object_is_type(data, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(data); i++)
                if (streq(llm_json_str(json_object_array_get_idx(data, i), "id"), model))
                        return 1;
        return 0;
}

const struct llm_wire llm_wire_openai = {
        .kind = "openai",
        .format = STREAM_SSE,
        .build = openai_build,
        .event = openai_event,
        .error = openai_error,
        .models_request = openai_models_request,
        .models_result = openai_models_result,
};

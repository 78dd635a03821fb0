/* Anthropic Messages, streamed: POST {base_url}/v1/messages with x-api-key and
 * anthropic-version headers and "stream": true. The answer is SSE with named events:
 * message_start (model, input token count), content_block_start/delta/stop (text_delta pieces),
 * message_delta (stop_reason, cumulative output tokens), message_stop (the end), ping, and
 * error ({"type":"error","error":{"type":…,"message":…}}). Unknown events are ignored, as
 * Anthropic asks of clients. */

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"

static int anthropic_build(const struct llm_request *req, struct llm_http *ret) {
        _cleanup_json_ struct json_object *body = json_object_new_object(), *messages = json_object_new_array();
        int r;

        if (!body || !messages)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_messages; i++) {
                struct json_object *m = json_object_new_object();
                json_object_object_add(m, "role", json_object_new_string(req->messages[i].role));
                json_object_object_add(m, "content", json_object_new_string(req->messages[i].content));
                json_object_array_add(messages, m);
        }
        json_object_object_add(body, "model", json_object_new_string(req->model));
        json_object_object_add(body, "max_tokens", json_object_new_int64(req->max_tokens));
        if (req->system && *req->system)
                json_object_object_add(body, "system", json_object_new_string(req->system));
        json_object_object_add(body, "messages", json_object_get(messages));
        json_object_object_add(body, "stream", json_object_new_boolean(true));
        if (req->temperature >= 0)
                json_object_object_add(body, "temperature", json_object_new_double(req->temperature > 1 ? 1 : req->temperature));

        ret->url = llm_url(req->provider, "/v1/messages");
        if (!ret->url)
                return -ENOMEM;
        r = llm_json_body(body, ret);
        if (r >= 0)
                r = llm_header(ret, "Content-Type: application/json");
        if (r >= 0)
                r = llm_header(ret, "Accept: text/event-stream");
        if (r >= 0)
                r = llm_header(ret, "anthropic-version: " ANTHROPIC_VERSION);
        if (r >= 0 && req->api_key)
                r = llm_header(ret, "x-api-key: %s", req->api_key);
        return r;
}

static enum llm_error_code code_for_type(const char *type, const char *message) {
        if (llm_message_is_context_error(message) || streq(type, "request_too_large"))
                return LLM_ERR_CONTEXT;
        if (streq(type, "authentication_error") || streq(type, "permission_error"))
                return LLM_ERR_AUTH;
        if (streq(type, "not_found_error"))
                return LLM_ERR_NOT_FOUND;
        if (streq(type, "rate_limit_error"))
                return LLM_ERR_RATE_LIMITED;
        if (streq(type, "invalid_request_error"))
                return LLM_ERR_BAD_REQUEST;
        return LLM_ERR_SERVER; /* api_error, overloaded_error, and what is new */
}

static void read_usage(struct llm_reply *r, struct json_object *usage) {
        struct json_object *v;

        if (!usage || !json_object_is_type(usage, json_type_object))
                return;
        /* input_tokens comes with message_start (and again in message_delta on newer models);
         * output_tokens in message_delta is the running total, not an increment. */
        if (json_object_object_get_ex(usage, "input_tokens", &v) && json_object_get_uint64(v) > 0)
                r->input_tokens = json_object_get_uint64(v);
        if (json_object_object_get_ex(usage, "output_tokens", &v))
                r->output_tokens = json_object_get_uint64(v);
        r->has_usage = true;
}

static int anthropic_event(struct llm_reply *r, const char *event, const char *data, size_t len) {
        _cleanup_json_ struct json_object *o = llm_json_parse(data, len);
        struct json_object *v, *w;
        const char *type;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        /* The data's "type" is authoritative; the SSE event name repeats it. */
        type = llm_json_str(o, "type");
        if (!type)
                type = event;
        if (streq(type, "message_start")) {
                if (!json_object_object_get_ex(o, "message", &v) || !json_object_is_type(v, json_type_object))
                        return -EBADMSG;
                if (llm_json_str(v, "model"))
                        snprintf(r->model, sizeof r->model, "%s", llm_json_str(v, "model"));
                if (json_object_object_get_ex(v, "usage", &w))
                        read_usage(r, w);
        } else if (streq(type, "content_block_delta")) {
                if (!json_object_object_get_ex(o, "delta", &v) || !json_object_is_type(v, json_type_object))
                        return -EBADMSG;
                /* thinking_delta, signature_delta and input_json_delta are not chat text. */
                if (streq(llm_json_str(v, "type"), "text_delta")) {
                        const char *text = llm_json_str(v, "text");
                        if (!text)
                                return -EBADMSG;
                        return llm_reply_append(r, text, strlen(text));
                }
        } else if (streq(type, "message_delta")) {
                if (json_object_object_get_ex(o, "delta", &v) && llm_json_str(v, "stop_reason"))
                        snprintf(r->finish_reason, sizeof r->finish_reason, "%s", llm_json_str(v, "stop_reason"));
                if (json_object_object_get_ex(o, "usage", &w))
                        read_usage(r, w);
        } else if (streq(type, "message_stop"))
                r->done = true;
        else if (streq(type, "error")) {
                const char *etype = NULL, *message = NULL;
                if (json_object_object_get_ex(o, "error", &v)) {
                        etype = llm_json_str(v, "type");
                        message = llm_json_str(v, "message");
                }
                r->failed = true;
                r->failure = (struct llm_failure){ .code = code_for_type(etype, message) };
                snprintf(r->failure.message, sizeof r->failure.message, "%s%s%s", etype ? etype : "error",
                         message ? ": " : "", message ? message : "");
        }
        /* ping, content_block_start/stop and unknown events: nothing to do. */
        return 0;
}

static void anthropic_error(long status, const char *body, size_t len, struct llm_failure *ret) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *err;

        llm_error_generic(status, body, len, ret);
        if (o && json_object_object_get_ex(o, "error", &err) && llm_json_str(err, "type")) {
                enum llm_error_code c = code_for_type(llm_json_str(err, "type"), llm_json_str(err, "message"));
                /* The status decides retrying (529 overloaded, 5xx); the type refines 4xx. */
                if (status >= 400 && status < 500 && status != 429)
                        ret->code = c;
        }
}

static int anthropic_models_request(const struct config_provider *p, const char *api_key, const char *model,
                                    struct llm_http *ret) {
        /* GET /v1/models/{id} needs a valid key, and resolves aliases ("…-latest") too. */
        _cleanup_free_ char *path = NULL;
        char *escaped = curl_easy_escape(NULL, model, 0);
        int r;

        if (!escaped)
                return -ENOMEM;
        r = asprintf(&path, "/v1/models/%s", escaped);
        curl_free(escaped);
        if (r < 0)
                return -ENOMEM;
        ret->url = llm_url(p, path);
        if (!ret->url)
                return -ENOMEM;
        r = llm_header(ret, "anthropic-version: " ANTHROPIC_VERSION);
        if (r >= 0 && api_key)
                r = llm_header(ret, "x-api-key: %s", api_key);
        return r;
}

static int anthropic_models_result(long status, const char *body, size_t len, const char *model) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *err;

        /* Anthropic's own 404 ({"type":"error","error":{"type":"not_found_error"}}) says the
         * model is unknown; any other 404 is a server without this endpoint. */
        if (status == 404)
                return o && streq(llm_json_str(o, "type"), "error") && json_object_object_get_ex(o, "error", &err) &&
                                       streq(llm_json_str(err, "type"), "not_found_error")
                               ? 0
                               : -EBADMSG;
        return o && llm_json_str(o, "id") ? 1 : -EBADMSG;
}

const struct llm_wire llm_wire_anthropic = {
        .kind = "anthropic",
        .format = STREAM_SSE,
        .build = anthropic_build,
        .event = anthropic_event,
        .error = anthropic_error,
        .models_request = anthropic_models_request,
        .models_result = anthropic_models_result,
};

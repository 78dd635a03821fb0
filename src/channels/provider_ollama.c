/* Ollama's chat API, streamed: POST {base_url}/api/chat with "stream": true; the answer is
 * newline-delimited JSON, one {"message":{"role":"assistant","content":…},"done":false} per
 * piece, and a last line with "done": true, "done_reason" and the token counts
 * (prompt_eval_count, eval_count). Errors come as {"error":"…"}, also in the middle of a stream. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"

static int ollama_build(const struct llm_request *req, struct llm_http *ret) {
        _cleanup_json_ struct json_object *body = json_object_new_object(), *messages = llm_chat_messages(req),
                                          *options = json_object_new_object();
        int r;

        if (!body || !messages || !options)
                return -ENOMEM;
        json_object_object_add(body, "model", json_object_new_string(req->model));
        json_object_object_add(body, "messages", json_object_get(messages));
        json_object_object_add(body, "stream", json_object_new_boolean(true));
        json_object_object_add(options, "num_predict", json_object_new_int64(req->max_tokens));
        if (req->temperature >= 0)
                json_object_object_add(options, "temperature", json_object_new_double(req->temperature));
        json_object_object_add(body, "options", json_object_get(options));

        ret->url = llm_url(req->provider, "/api/chat");
        if (!ret->url)
                return -ENOMEM;
        r = llm_json_body(body, ret);
        if (r >= 0)
                r = llm_header(ret, "Content-Type: application/json");
        /* A plain Ollama needs no key; one behind a proxy or Ollama's cloud takes a bearer token. */
        if (r >= 0 && req->api_key)
                r = llm_header(ret, "Authorization: Bearer %s", req->api_key);
        return r;
}

static int ollama_event(struct llm_reply *r, const char *event, const char *data, size_t len) {
        _cleanup_json_ struct json_object *o = llm_json_parse(data, len);
        struct json_object *v, *message, *content;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "error", &v)) {
                const char *m = json_object_get_string(v);
                r->failed = true;
                r->failure = (struct llm_failure){ .code = llm_message_is_context_error(m) ? LLM_ERR_CONTEXT : LLM_ERR_SERVER };
                snprintf(r->failure.message, sizeof r->failure.message, "%s", m ? m : "error");
                return 0;
        }
        if (llm_json_str(o, "model"))
                snprintf(r->model, sizeof r->model, "%s", llm_json_str(o, "model"));
        if (json_object_object_get_ex(o, "message", &message)) {
                if (!json_object_is_type(message, json_type_object))
                        return -EBADMSG;
                if (json_object_object_get_ex(message, "content", &content)) {
                        int q;
                        if (!json_object_is_type(content, json_type_string))
                                return -EBADMSG;
                        q = llm_reply_append(r, json_object_get_string(content), (size_t) json_object_get_string_len(content));
                        if (q < 0)
                                return q;
                }
        }
        if (!json_object_object_get_ex(o, "done", &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        if (json_object_get_boolean(v)) {
                r->done = true;
                if (llm_json_str(o, "done_reason"))
                        snprintf(r->finish_reason, sizeof r->finish_reason, "%s", llm_json_str(o, "done_reason"));
                if (json_object_object_get_ex(o, "prompt_eval_count", &v))
                        r->input_tokens = json_object_get_uint64(v);
                if (json_object_object_get_ex(o, "eval_count", &v))
                        r->output_tokens = json_object_get_uint64(v);
                r->has_usage = true;
        }
        return 0;
}

static void ollama_error(long status, const char *body, size_t len, struct llm_failure *ret) {
        llm_error_generic(status, body, len, ret);
        /* "model \"x\" not found, try pulling it first" comes with 404; keep that code. */
}

static int ollama_models_request(const struct config_provider *p, const char *api_key, const char *model,
                                 struct llm_http *ret) {
        ret->url = llm_url(p, "/api/tags");
        if (!ret->url)
                return -ENOMEM;
        return api_key ? llm_header(ret, "Authorization: Bearer %s", api_key) : 0;
}

/* "llama3" names "llama3:latest". */
static bool same_model(const char *name, const char *model) {
        size_t n = strlen(model);

        if (!name)
                return false;
        if (streq(name, model))
                return true;
        return !strchr(model, ':') && strncmp(name, model, n) == 0 && streq(name + n, ":latest");
}

static int ollama_models_result(long status, const char *body, size_t len, const char *model) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *models;

        if (status == 404 || !o || !json_object_object_get_ex(o, "models", &models) ||
            !json_object_is_type(models, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(models); i++) {
                struct json_object *m = json_object_array_get_idx(models, i);
                if (same_model(llm_json_str(m, "name"), model) || same_model(llm_json_str(m, "model"), model))
                        return 1;
        }
        return 0;
}

const struct llm_wire llm_wire_ollama = {
        .kind = "ollama",
        .format = STREAM_NDJSON,
        .build = ollama_build,
        .event = ollama_event,
        .error = ollama_error,
        .models_request = ollama_models_request,
        .models_result = ollama_models_result,
};

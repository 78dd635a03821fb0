/* LLM requests from the supervisor (see llm_service.h). */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "llm_call.h"
#include "llm_key.h"
#include "llm_service.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "provider_check.h"

#define LLM_MESSAGES_MAX 512
#define LLM_MODEL_MAX 256

struct turn {
        struct llm_service *service;
        struct turn *next;
        uint64_t id; /* the request's id on the channel */
        struct llm_call *call;
        char provider[65];
        char model[LLM_MODEL_MAX + 1];
};

struct check_request {
        struct llm_service *service;
        struct check_request *next;
        uint64_t id;
        struct provider_checks *checks;
};

struct llm_service {
        struct worker *worker;
        struct http_engine *engine;
        bool own_engine;
        struct turn *turns;
        struct check_request *checks;
        size_t n_turns;
};

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void send_error(struct llm_service *s, uint64_t id, const char *code, const char *fmt, ...) _printf_(4, 5);
static void send_error(struct llm_service *s, uint64_t id, const char *code, const char *fmt, ...) {
        _cleanup_json_ struct json_object *reply = json_object_new_object(), *err = json_object_new_object();
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (!reply || !err)
                return;
        json_object_object_add(err, "code", json_object_new_string(code));
        json_object_object_add(err, "message", json_object_new_string(msg));
        json_object_object_add(reply, "ok", json_object_new_boolean(false));
        json_object_object_add(reply, "error", json_object_get(err));
        (void) worker_send(s->worker, "reply", id, reply);
}

static void turn_unlink(struct turn *t) {
        struct llm_service *s = t->service;

        for (struct turn **p = &s->turns; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        s->n_turns--;
                        return;
                }
}

static struct json_object *result_json(struct turn *t, const struct llm_result *r) {
        struct json_object *o = json_object_new_object(), *usage = NULL, *timing = json_object_new_object();
        const struct llm_reply *rep = r->reply;

        if (!o || !timing) {
                json_object_put(o);
                json_object_put(timing);
                return NULL;
        }
        if (rep->has_usage) {
                usage = json_object_new_object();
                json_object_object_add(usage, "input_tokens", json_object_new_uint64(rep->input_tokens));
                json_object_object_add(usage, "output_tokens", json_object_new_uint64(rep->output_tokens));
        }
        json_object_object_add(timing, "started_usec", json_object_new_uint64(r->started_usec));
        json_object_object_add(timing, "sent_usec", json_object_new_uint64(r->sent_usec));
        json_object_object_add(timing, "first_byte_usec", json_object_new_uint64(r->first_byte_usec));
        json_object_object_add(timing, "last_byte_usec", json_object_new_uint64(r->last_byte_usec));
        json_object_object_add(o, "text", json_object_new_string_len(rep->text ? rep->text : "", (int) rep->text_len));
        json_object_object_add(o, "truncated", json_object_new_boolean(rep->truncated));
        json_object_object_add(o, "provider", json_object_new_string(t->provider));
        json_object_object_add(o, "model", json_object_new_string(*rep->model ? rep->model : t->model));
        json_object_object_add(o, "finish_reason", *rep->finish_reason ? json_object_new_string(rep->finish_reason) : NULL);
        json_object_object_add(o, "usage", usage);
        json_object_object_add(o, "attempts", json_object_new_uint64(r->attempts));
        json_object_object_add(o, "timing", timing);
        return o;
}

static void on_turn_done(struct llm_call *call, const struct llm_result *r, void *userdata) {
        struct turn *t = userdata;
        struct llm_service *s = t->service;
        _cleanup_json_ struct json_object *reply = json_object_new_object();

        turn_unlink(t);
        if (reply && r->code == LLM_OK) {
                struct json_object *res = result_json(t, r);
                json_object_object_add(reply, "ok", json_object_new_boolean(res != NULL));
                json_object_object_add(reply, "result", res);
        } else if (reply) {
                struct json_object *err = json_object_new_object();
                json_object_object_add(err, "code", json_object_new_string(llm_error_code_to_string(r->code)));
                json_object_object_add(err, "message", json_object_new_string(r->failure.message));
                json_object_object_add(err, "status", r->failure.status ? json_object_new_int64(r->failure.status) : NULL);
                json_object_object_add(err, "attempts", json_object_new_uint64(r->attempts));
                json_object_object_add(err, "retry_after_ms",
                                       r->retry_after_usec ? json_object_new_uint64(r->retry_after_usec / 1000) : NULL);
                json_object_object_add(reply, "ok", json_object_new_boolean(false));
                json_object_object_add(reply, "error", err);
        }
        if (reply) {
                int q = worker_send(s->worker, "reply", t->id, reply);
                if (q < 0)
                        log_error_errno(q, "cannot send the outcome of an LLM turn to the supervisor");
        }
        free(t);
}

/* The messages of the request, checked: roles user/assistant, text strings. */
static int read_messages(struct json_object *list, struct llm_message **ret, size_t *ret_n) {
        size_t n;
        struct llm_message *m;

        if (!list || !json_object_is_type(list, json_type_array))
                return -EINVAL;
        n = json_object_array_length(list);
        if (n == 0 || n > LLM_MESSAGES_MAX)
                return -EINVAL;
        m = calloc(n, sizeof *m);
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(list, i);
                const char *role = jstr(o, "role"), *content = jstr(o, "content");
                if (!(streq(role, "user") || streq(role, "assistant")) || !content || !*content) {
                        free(m);
                        return -EINVAL;
                }
                m[i] = (struct llm_message){ .role = role, .content = content };
        }
        *ret = m;
        *ret_n = n;
        return 0;
}

static void handle_complete(struct llm_service *s, uint64_t id, struct json_object *args) {
        const struct config *c = s->worker->config;
        const char *name = jstr(args, "provider"), *model = jstr(args, "model"), *group = jstr(args, "group"),
                   *actor = jstr(args, "actor");
        const struct config_provider *p = c ? (name ? config_find_provider(c, name) : config_default_provider(c)) : NULL;
        _cleanup_free_ struct llm_message *messages = NULL;
        _cleanup_free_ char *key = NULL, *where = NULL, *fields = NULL, *what = NULL;
        struct llm_call_params params = {};
        struct llm_request req;
        struct json_object *v;
        size_t n_messages = 0;
        struct turn *t;
        int r;

        if (!p) {
                send_error(s, id, "config", name ? "no provider \"%s\" in the configuration" : "no provider given and no default",
                           name ? name : "");
                return;
        }
        params.wire = llm_wire_for_kind(p->kind);
        if (!params.wire) {
                send_error(s, id, "config", "provider %s has no valid kind", p->name);
                return;
        }
        if (!model || !*model)
                model = p->model;
        if (strlen(model) > LLM_MODEL_MAX) {
                send_error(s, id, "bad_request", "model name longer than %d bytes", LLM_MODEL_MAX);
                return;
        }
        json_object_object_get_ex(args, "messages", &v);
        r = read_messages(v, &messages, &n_messages);
        if (r < 0) {
                send_error(s, id, r == -ENOMEM ? "internal" : "bad_request",
                           "messages must be 1-%d objects with role user or assistant and non-empty content", LLM_MESSAGES_MAX);
                return;
        }
        r = llm_api_key_read(p, &key, &where);
        if (r < 0) {
                send_error(s, id, "config", "provider %s: cannot read its API key%s%s: %s", p->name, where ? " from " : "",
                           where ? where : "", r == -EBADMSG ? "not one line of printable characters"
                                                 : r == -ENODATA ? "the file is empty" : strerror(-r));
                return;
        }
        req = (struct llm_request){
                .provider = p, .model = model, .system = jstr(args, "system"), .messages = messages,
                .n_messages = n_messages, .max_tokens = p->max_tokens, .temperature = p->temperature, .api_key = key,
        };
        if (json_object_object_get_ex(args, "max_tokens", &v) && json_object_is_type(v, json_type_int) &&
            json_object_get_int64(v) > 0 && json_object_get_int64(v) <= 10000000)
                req.max_tokens = (unsigned) json_object_get_int64(v);
        r = params.wire->build(&req, &params.http);
        if (r < 0) {
                llm_http_done(&params.http);
                send_error(s, id, "internal", "cannot build the request: %s", strerror(-r));
                return;
        }
        t = calloc(1, sizeof *t);
        if (!t || asprintf(&fields, "CONCLAVE_PROVIDER=%s%s%s%s%s", p->name, group ? "\nCONCLAVE_GROUP=" : "", group ? group : "",
                           actor ? "\nCONCLAVE_ACTOR=" : "", actor ? actor : "") < 0 ||
            asprintf(&what, "provider %s (model %s)%s%s%s%s", p->name, model, actor ? " for " : "", actor ? actor : "",
                     group ? " in " : "", group ? group : "") < 0) {
                free(t);
                llm_http_done(&params.http);
                send_error(s, id, "internal", "out of memory");
                return;
        }
        t->service = s;
        t->id = id;
        snprintf(t->provider, sizeof t->provider, "%s", p->name);
        snprintf(t->model, sizeof t->model, "%s", model);
        params.timeout_usec = p->timeout_usec;
        params.retries = MIN(p->retries, LLM_RETRIES_MAX);
        params.log_fields = fields;
        params.what = what;
        r = llm_call_start(s->worker->event, s->engine, &params, on_turn_done, t, &t->call);
        if (r < 0) {
                free(t);
                send_error(s, id, "internal", "cannot start the request: %s", strerror(-r));
                return;
        }
        t->next = s->turns;
        s->turns = t;
        s->n_turns++;
}

static void check_unlink(struct check_request *cr) {
        for (struct check_request **p = &cr->service->checks; *p; p = &(*p)->next)
                if (*p == cr) {
                        *p = cr->next;
                        return;
                }
}

static void on_checks_done(struct json_object *results, void *userdata) {
        struct check_request *cr = userdata;
        _cleanup_json_ struct json_object *reply = json_object_new_object();

        if (reply) {
                json_object_object_add(reply, "ok", json_object_new_boolean(true));
                json_object_object_add(reply, "result", json_object_get(results));
                (void) worker_send(cr->service->worker, "reply", cr->id, reply);
        }
        check_unlink(cr);
        provider_checks_cancel(cr->checks);
        free(cr);
}

static void handle_check(struct llm_service *s, uint64_t id, struct json_object *args) {
        const char *only = jstr(args, "provider");
        struct check_request *cr;
        int r;

        if (!s->worker->config) {
                send_error(s, id, "internal", "no configuration yet");
                return;
        }
        cr = calloc(1, sizeof *cr);
        if (!cr) {
                send_error(s, id, "internal", "out of memory");
                return;
        }
        cr->service = s;
        cr->id = id;
        r = provider_checks_start(s->worker->event, s->engine, s->worker->config, only, 0, on_checks_done, cr, &cr->checks);
        if (r < 0) {
                free(cr);
                if (r == -ENOENT)
                        send_error(s, id, "not_found", "no provider \"%s\" in the configuration", only);
                else
                        send_error(s, id, "internal", "cannot start the checks: %s", strerror(-r));
                return;
        }
        cr->next = s->checks;
        s->checks = cr;
}

static int on_message(struct worker *w, struct json_object *msg, void *userdata) {
        struct llm_service *s = userdata;
        const char *type = proto_type(msg), *op;
        struct json_object *data = proto_data(msg), *args = NULL;
        uint64_t id = proto_id(msg);

        if (streq(type, "cancel")) {
                for (struct turn *t = s->turns; t; t = t->next)
                        if (t->id == id) {
                                turn_unlink(t);
                                llm_call_cancel(t->call);
                                free(t);
                                return 1;
                        }
                return 0;
        }
        if (!streq(type, "request"))
                return 0;
        op = jstr(data, "op");
        if (data)
                json_object_object_get_ex(data, "args", &args);
        if (streq(op, "llm.complete"))
                handle_complete(s, id, args);
        else if (streq(op, "provider.check"))
                handle_check(s, id, args);
        else
                return 0;
        return 1;
}

int llm_service_new(struct worker *w, struct http_engine *engine, struct llm_service **ret) {
        struct llm_service *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->worker = w;
        s->engine = engine;
        if (!engine) {
                r = http_engine_new(w->event, &s->engine);
                if (r < 0) {
                        free(s);
                        return log_error_errno(r, "cannot create the HTTP engine");
                }
                s->own_engine = true;
        }
        r = worker_add_handler(w, on_message, s);
        if (r < 0) {
                llm_service_free(s);
                return log_error_errno(r, "cannot register the LLM request handler");
        }
        *ret = s;
        return 0;
}

struct llm_service *llm_service_free(struct llm_service *s) {
        if (!s)
                return NULL;
        worker_remove_handler(s->worker, on_message, s);
        while (s->turns) {
                struct turn *t = s->turns;
                s->turns = t->next;
                llm_call_cancel(t->call);
                free(t);
        }
        while (s->checks) {
                struct check_request *cr = s->checks;
                s->checks = cr->next;
                provider_checks_cancel(cr->checks);
                free(cr);
        }
        if (s->own_engine)
                http_engine_free(s->engine);
        free(s);
        return NULL;
}

size_t llm_service_active(const struct llm_service *s) {
        return s ? s->n_turns : 0;
}

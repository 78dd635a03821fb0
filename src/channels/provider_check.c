/* Live provider checks (see provider_check.h). */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "llm_key.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"
#include "provider_check.h"

/* The model list of a server with many models (OpenRouter lists hundreds) fits in this. */
#define MODEL_LIST_MAX (4u * 1024u * 1024u)

struct check {
        struct provider_checks *owner;
        struct http_call *call;
        const struct llm_wire *wire;
        bool has_key; /* a key was sent: a 2xx means it was accepted */
        char *model;
        struct json_object *result; /* owned by owner->results */
};

struct provider_checks {
        sd_event *event;
        sd_event_source *defer;
        struct check *checks;
        size_t n_checks, pending;
        struct json_object *results;
        provider_checks_done_fn done;
        void *userdata;
};

static void set_outcome(struct json_object *o, bool ok, const char *auth, int model_found, const char *fmt, ...)
        _printf_(5, 6);
static void set_outcome(struct json_object *o, bool ok, const char *auth, int model_found, const char *fmt, ...) {
        char msg[768];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        for (char *c = msg; *c; c++)
                if ((unsigned char) *c < 0x20)
                        *c = ' ';
        json_object_object_add(o, "ok", json_object_new_boolean(ok));
        json_object_object_add(o, "auth", json_object_new_string(auth));
        json_object_object_add(o, "model_found", model_found < 0 ? NULL : json_object_new_boolean(model_found));
        json_object_object_add(o, "message", json_object_new_string(msg));
}

static void check_finished(struct check *c) {
        struct provider_checks *pc = c->owner;

        c->call = NULL;
        if (pc->pending > 0 && --pc->pending == 0)
                (void) sd_event_source_set_enabled(pc->defer, SD_EVENT_ONESHOT);
}

static void on_done(struct http_call *call, const struct http_response *r, void *userdata) {
        struct check *c = userdata;
        struct json_object *o = c->result;
        bool key_sent = c->has_key;
        const char *url = json_object_get_string(json_object_object_get(o, "url"));
        struct llm_failure f;
        int found;

        json_object_object_add(o, "elapsed_ms", json_object_new_uint64(r->elapsed_usec / 1000));
        json_object_object_add(o, "status", r->status ? json_object_new_int64(r->status) : NULL);
        if (r->error < 0)
                set_outcome(o, false, "not_checked", -1, "cannot reach %s: %s", url, r->error_detail ? r->error_detail : strerror(-r->error));
        else if (r->status == 401 || r->status == 403) {
                c->wire->error(r->status, r->body, r->body_len, &f);
                set_outcome(o, false, "refused", -1, "the API key was refused (HTTP %ld%s%s); check api_key_file", r->status,
                            *f.message ? ": " : "", f.message);
        } else if ((r->status >= 200 && r->status < 300) || r->status == 404) {
                found = c->wire->models_result(r->status, r->body, r->body_len, c->model);
                if (found > 0)
                        set_outcome(o, true, key_sent ? "ok" : "not_checked", 1, "reachable%s, model %s is available",
                                    key_sent ? ", key accepted" : " (no key configured)", c->model);
                else if (found == 0)
                        set_outcome(o, false, key_sent ? "ok" : "not_checked", 0, "reachable%s, but model %s %s",
                                    key_sent ? ", key accepted" : " (no key configured)", c->model,
                                    streq(c->wire->kind, "ollama") ? "is not pulled (ollama pull it)"
                                                                    : "is not offered by this server");
                else
                        set_outcome(o, false, "not_checked", -1, "%s answered HTTP %ld with something that is not a %s "
                                    "model list; is base_url right%s?", url, r->status, c->wire->kind,
                                    streq(c->wire->kind, "openai") ? " (OpenAI-compatible servers usually end in /v1)" : "");
        } else {
                c->wire->error(r->status, r->body, r->body_len, &f);
                set_outcome(o, false, "not_checked", -1, "%s answered HTTP %ld%s%s", url, r->status, *f.message ? ": " : "",
                            f.message);
        }
        check_finished(c);
}

static int on_defer(sd_event_source *s, void *userdata) {
        struct provider_checks *pc = userdata;
        struct json_object *results = json_object_get(pc->results);
        provider_checks_done_fn done = pc->done;
        void *ud = pc->userdata;

        /* The caller may free pc from done. */
        pc->done = NULL;
        done(results, ud);
        json_object_put(results);
        return 0;
}

static void check_start(struct provider_checks *pc, struct check *c, struct http_engine *engine,
                        const struct config_provider *p, uint64_t timeout_usec) {
        _cleanup_free_ char *key = NULL, *where = NULL;
        struct llm_http h = {};
        struct json_object *o = c->result;
        int r;

        json_object_object_add(o, "provider", json_object_new_string(p->name));
        json_object_object_add(o, "kind", p->kind ? json_object_new_string(p->kind) : NULL);
        json_object_object_add(o, "model", p->model ? json_object_new_string(p->model) : NULL);
        json_object_object_add(o, "url", json_object_new_string(p->kind ? llm_base_url(p) : ""));
        c->wire = llm_wire_for_kind(p->kind);
        c->model = strdup(p->model ? p->model : "");
        if (!c->wire || !c->model) {
                set_outcome(o, false, "not_checked", -1, "no kind or model configured");
                return;
        }
        r = llm_api_key_read(p, &key, &where);
        if (r < 0) {
                set_outcome(o, false, "not_checked", -1, "cannot read the API key%s%s: %s", where ? " from " : "",
                            where ? where : (p->api_key_file ? p->api_key_file : ""),
                            r == -EBADMSG ? "not one line of printable characters" : r == -ENODATA ? "the file is empty" : strerror(-r));
                return;
        }
        c->has_key = key != NULL;
        r = c->wire->models_request(p, key, c->model, &h);
        if (r >= 0) {
                struct http_request req = {
                        .url = h.url,
                        .headers = (const char *const *) h.headers,
                        .timeout_usec = timeout_usec,
                        .max_response = MODEL_LIST_MAX,
                };
                json_object_object_add(o, "url", json_object_new_string(h.url));
                r = http_call_start(engine, &req, NULL, on_done, c, &c->call);
        }
        llm_http_done(&h);
        if (r < 0) {
                set_outcome(o, false, "not_checked", -1, "cannot start the check: %s", strerror(-r));
                return;
        }
        pc->pending++;
}

int provider_checks_start(sd_event *event, struct http_engine *engine, const struct config *cfg, const char *only,
                          uint64_t timeout_usec, provider_checks_done_fn done, void *userdata,
                          struct provider_checks **ret) {
        struct provider_checks *pc;
        size_t n = 0;
        int r;

        if (only && !config_find_provider(cfg, only))
                return -ENOENT;
        pc = calloc(1, sizeof *pc);
        if (!pc)
                return -ENOMEM;
        pc->event = sd_event_ref(event);
        pc->done = done;
        pc->userdata = userdata;
        pc->results = json_object_new_array();
        pc->checks = calloc(cfg->n_providers + 1, sizeof *pc->checks);
        r = pc->results && pc->checks ? sd_event_add_defer(event, &pc->defer, on_defer, pc) : -ENOMEM;
        if (r >= 0)
                r = sd_event_source_set_enabled(pc->defer, SD_EVENT_OFF);
        if (r < 0) {
                provider_checks_cancel(pc);
                return r;
        }
        for (size_t i = 0; i < cfg->n_providers; i++) {
                struct check *c;
                if (only && !streq(cfg->providers[i].name, only))
                        continue;
                c = &pc->checks[n++];
                c->owner = pc;
                c->result = json_object_new_object();
                if (!c->result || json_object_array_add(pc->results, c->result) < 0) {
                        json_object_put(c->result);
                        c->result = NULL;
                        pc->n_checks = n - 1;
                        provider_checks_cancel(pc);
                        return -ENOMEM;
                }
                pc->n_checks = n;
                check_start(pc, c, engine, &cfg->providers[i], timeout_usec ? timeout_usec : PROVIDER_CHECK_TIMEOUT_USEC);
        }
        if (pc->pending == 0)
                (void) sd_event_source_set_enabled(pc->defer, SD_EVENT_ONESHOT);
        if (ret)
                *ret = pc;
        return 0;
}

void provider_checks_cancel(struct provider_checks *pc) {
        if (!pc)
                return;
        for (size_t i = 0; i < pc->n_checks; i++) {
                if (pc->checks[i].call)
                        http_call_cancel(pc->checks[i].call);
                free(pc->checks[i].model);
        }
        free(pc->checks);
        sd_event_source_disable_unref(pc->defer);
        json_object_put(pc->results);
        sd_event_unref(pc->event);
        free(pc);
}

/* The gateway's endpoints (api.h): auth and limits first, then each route becomes one control
 * operation of the supervisor over the worker channel; the HTTP answer waits for its reply,
 * which for anything that appends to a ledger means the event is durable. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "ratelimit.h"
#include "router.h"
#include "sse.h"
#include "timeutil.h"
#include "upstream.h"
#include "webhooks.h"
#include "platform_webhooks.h"
#include "webui.h"
#include "worker.h"

struct gateway_api {
        sd_event *event;
        struct worker *worker;
        struct upstream *upstream;
        struct sse_hub *hub;
        struct gateway_auth auth;
        bool auth_loaded;
        struct auth_limiter failures;
        struct ratelimit *rate;
        unsigned rate_per_minute;
        struct webhooks *webhooks;
        struct platform_webhooks *platform_webhooks;
        size_t max_body;
        bool web_ui;
};

/* What an upstream call needs to answer its request. */
struct pending {
        struct gateway_api *api;
        struct http_request *req;
        unsigned ok_status;         /* 200, or 201 for what creates an event */
};

/* ---- answers from the supervisor -------------------------------------------------------- */

static unsigned status_for_code(const char *code) {
        static const struct {
                const char *code;
                unsigned status;
        } map[] = {
                { "bad_request", 400 }, { "not_found", 404 }, { "exists", 409 }, { "invalid_state", 409 },
                { "not_owed", 409 },    { "broken", 409 },    { "too_large", 413 }, { "unknown_op", 500 },
                { "forbidden", 403 },   { "internal", 500 },
        };
        for (size_t i = 0; code && i < ELEMENTSOF(map); i++)
                if (streq(map[i].code, code))
                        return map[i].status;
        return 500;
}

/* Answers req with the supervisor's reply: its result, or its error with a fitting status. */
static void answer_reply(struct http_request *req, struct json_object *reply, int error, unsigned ok_status) {
        struct json_object *ok = NULL, *result = NULL, *err = NULL, *code = NULL;

        if (!reply) {
                http_request_respond_error(req, 503, "unavailable",
                                           error == -ETIMEDOUT ? "the supervisor did not answer in time; the request may "
                                                                 "or may not have been applied (retry with the same "
                                                                 "delivery id to be safe)"
                                                               : "the supervisor is not available (%s)", strerror(-error));
                return;
        }
        if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok)) {
                _cleanup_json_ struct json_object *empty = NULL;
                json_object_object_get_ex(reply, "result", &result);
                if (!result)
                        result = empty = json_object_new_object();
                http_request_respond_json(req, ok_status, result);
                return;
        }
        json_object_object_get_ex(reply, "error", &err);
        json_object_object_get_ex(err, "code", &code);
        if (code && streq(json_object_get_string(code), "internal"))
                log_warning("supervisor error for %s %s: %s", req->method, req->path,
                            json_object_to_json_string_ext(err, JSON_C_TO_STRING_PLAIN));
        {
                /* The API's error shape: {"error":{"code","message"}}, without the channel's "ok". */
                _cleanup_json_ struct json_object *body = json_object_new_object();
                if (body && err)
                        json_object_object_add(body, "error", json_object_get(err));
                http_request_respond_json(req, status_for_code(code ? json_object_get_string(code) : NULL), body);
        }
}

static void on_reply(struct json_object *reply, int error, bool more, void *userdata) {
        struct pending *p = userdata;

        p->req->call = NULL;
        answer_reply(p->req, reply, error, p->ok_status);
        free(p);
}

/* Runs op for req; args is consumed. */
static void call(struct gateway_api *api, struct http_request *req, const char *op, struct json_object *args,
                 unsigned ok_status) {
        struct pending *p = calloc(1, sizeof *p);
        int r;

        if (!p || !args) {
                free(p);
                json_object_put(args);
                http_request_respond_error(req, 500, "internal", "out of memory");
                return;
        }
        *p = (struct pending){ .api = api, .req = req, .ok_status = ok_status };
        r = upstream_call(api->upstream, op, args, on_reply, p, &req->call);
        json_object_put(args);
        if (r == -EMSGSIZE) {
                /* Not a passing condition: a retry would fail the same way. */
                free(p);
                http_request_respond_error(req, 413, "too_large", "the request is larger than the %u KiB the supervisor "
                                           "takes in one call", PROTO_PACKET_MAX / 1024);
        } else if (r < 0) {
                free(p);
                http_request_respond_error(req, 503, "unavailable", "the supervisor is not available%s",
                                           r == -ENOTCONN ? " (is this a standalone gateway?)" : "");
        }
}

/* ---- request bodies and parameters ------------------------------------------------------ */

/* The body as a JSON object, or answers 400 and returns NULL. An empty body is {}. */
static struct json_object *body_object(struct http_request *req) {
        struct json_tokener *tok;
        struct json_object *o;

        if (req->body_len == 0)
                return json_object_new_object();
        tok = json_tokener_new();
        if (!tok) {
                http_request_respond_error(req, 500, "internal", "out of memory");
                return NULL;
        }
        o = json_tokener_parse_ex(tok, req->body, (int) req->body_len);
        if (o && json_tokener_get_parse_end(tok) != req->body_len)
                o = (json_object_put(o), NULL);
        json_tokener_free(tok);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                http_request_respond_error(req, 400, "bad_request", "the body must be one JSON object");
                return NULL;
        }
        return o;
}

/* Copies the listed keys of body into args when present (the supervisor validates them). */
static void copy_keys(struct json_object *args, struct json_object *body, const char *const *keys) {
        struct json_object *v;

        for (; *keys; keys++)
                if (json_object_object_get_ex(body, *keys, &v))
                        json_object_object_add(args, *keys, json_object_get(v));
}

/* A non-negative decimal query argument; def when absent; -1 (and 400 answered) when invalid. */
static int64_t query_uint(struct http_request *req, const char *name, int64_t def, int64_t max) {
        const char *s = http_request_query(req, name);
        char *end;
        long long v;

        if (!s)
                return def;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > max) {
                http_request_respond_error(req, 400, "bad_request", "?%s must be a whole number from 0 to %" PRId64,
                                           name, max);
                return -1;
        }
        return v;
}

static struct json_object *args_group(const struct route_match *m) {
        struct json_object *args = json_object_new_object();
        if (args)
                json_object_object_add(args, "group", json_object_new_string(m->group));
        return args;
}

static struct json_object *args_actor(const struct route_match *m) {
        struct json_object *args = args_group(m);
        if (args)
                json_object_object_add(args, "actor", json_object_new_string(m->actor));
        return args;
}

/* ---- routes ------------------------------------------------------------------------------ */

static void respond_readyz(struct gateway_api *api, struct http_request *req, bool ready) {
        _cleanup_json_ struct json_object *body = json_object_new_object();

        if (!body) {
                http_request_respond_error(req, 500, "internal", "out of memory");
                return;
        }
        json_object_object_add(body, "status", json_object_new_string(ready ? "ready" : "not ready"));
        json_object_object_add(body, "supervisor", json_object_new_boolean(ready));
        json_object_object_add(body, "event_streams", json_object_new_int((int) sse_hub_clients(api->hub)));
        http_request_respond_json(req, ready ? 200 : 503, body);
}

static void on_ping(struct json_object *reply, int error, bool more, void *userdata) {
        struct pending *p = userdata;
        struct json_object *ok = NULL;

        p->req->call = NULL;
        respond_readyz(p->api, p->req, reply && json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok));
        free(p);
}

/* Ready when the supervisor answers now (a ping: a stopped or stuck supervisor keeps its socket
 * open) and the live event stream runs. */
static void handle_readyz(struct gateway_api *api, struct http_request *req) {
        struct pending *p;

        if (!upstream_ready(api->upstream) || !(p = calloc(1, sizeof *p))) {
                respond_readyz(api, req, false);
                return;
        }
        *p = (struct pending){ .api = api, .req = req, .ok_status = 200 };
        if (upstream_call_timeout(api->upstream, "ping", NULL, UPSTREAM_PING_TIMEOUT_USEC, on_ping, p, &req->call) < 0) {
                free(p);
                respond_readyz(api, req, false);
        }
}

static void handle_ui(struct gateway_api *api, struct http_request *req, const struct route_match *m) {
        const unsigned char *data;
        const char *type;
        struct MHD_Response *response;
        size_t len;

        if (!api->web_ui) {
                http_request_respond_error(req, 404, "not_found", "the web UI is disabled ([gateway] web_ui = false)");
                return;
        }
        if (!webui_lookup(m->file, &data, &len, &type)) {
                http_request_respond_error(req, 404, "not_found", "no such file");
                return;
        }
        response = MHD_create_response_from_buffer(len, (void *) data, MHD_RESPMEM_PERSISTENT);
        if (!response || http_response_add_common_headers(response, type) < 0 ||
            MHD_add_response_header(response, "Content-Security-Policy",
                                    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
                                    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'") == MHD_NO ||
            MHD_add_response_header(response, "Referrer-Policy", "no-referrer") == MHD_NO ||
            MHD_add_response_header(response, "X-Frame-Options", "DENY") == MHD_NO) {
                if (response)
                        MHD_destroy_response(response);
                http_request_respond_error(req, 500, "internal", "out of memory");
                return;
        }
        http_request_respond(req, 200, response);
}

static void handle_events(struct gateway_api *api, struct http_request *req, const struct route_match *m) {
        int64_t after = query_uint(req, "after", 0, INT64_MAX), limit;
        struct json_object *args;

        if (after < 0)
                return;
        limit = query_uint(req, "limit", 100, 1000);
        if (limit < 0)
                return;
        if (limit == 0) {
                http_request_respond_error(req, 400, "bad_request", "?limit must be 1 to 1000");
                return;
        }
        args = args_group(m);
        if (args) {
                json_object_object_add(args, "after_seq", json_object_new_int64(after));
                json_object_object_add(args, "limit", json_object_new_int64(limit));
        }
        call(api, req, "events.range", args, 200);
}

static void handle_stream(struct gateway_api *api, struct http_request *req, const struct route_match *m) {
        const char *last = http_request_header(req, "Last-Event-ID");
        int64_t after;

        if (last && *last) {
                char *end;
                long long v;
                errno = 0;
                v = strtoll(last, &end, 10);
                if (errno || *end || v < 0) {
                        http_request_respond_error(req, 400, "bad_request", "Last-Event-ID must be an event seq");
                        return;
                }
                after = v;
        } else {
                /* A new client with no ?after= starts from now: the last seq, read first. */
                after = query_uint(req, "after", -2, INT64_MAX);
                if (after == -1)
                        return;
        }
        sse_start(api->hub, req, m->group, after < 0 ? SSE_FROM_NOW : (uint64_t) after);
}

static void handle_message(struct gateway_api *api, struct http_request *req, const struct route_match *m) {
        static const char *const keys[] = { "text", "by", "to", "reply_required", "attention", NULL };
        _cleanup_json_ struct json_object *body = body_object(req);
        struct json_object *args;

        if (!body)
                return;
        args = args_group(m);
        if (args) {
                copy_keys(args, body, keys);
                if (m->route == ROUTE_REPLY)
                        json_object_object_add(args, "event", json_object_new_string(m->event));
        }
        call(api, req, m->route == ROUTE_REPLY ? "message.reply" : "message.send", args, 201);
}

static void dispatch_route(struct gateway_api *api, struct http_request *req, const struct route_match *m) {
        _cleanup_json_ struct json_object *body = NULL;
        struct json_object *args;
        char op[32];

        switch (m->route) {
        case ROUTE_READYZ:
                return handle_readyz(api, req);
        case ROUTE_UI:
                return handle_ui(api, req, m);
        case ROUTE_STATUS:
                return call(api, req, "status", json_object_new_object(), 200);
        case ROUTE_GROUPS:
                if (streq(req->method, "POST")) {
                        static const char *const keys[] = { "title", NULL };
                        struct json_object *id;
                        if (!(body = body_object(req)))
                                return;
                        if (!json_object_object_get_ex(body, "id", &id) || !json_object_is_type(id, json_type_string)) {
                                http_request_respond_error(req, 400, "bad_request", "\"id\" (the group id) is required");
                                return;
                        }
                        args = json_object_new_object();
                        if (args) {
                                json_object_object_add(args, "group", json_object_get(id));
                                copy_keys(args, body, keys);
                        }
                        return call(api, req, "group.create", args, 201);
                }
                return call(api, req, "group.list", json_object_new_object(), 200);
        case ROUTE_GROUP:
                return call(api, req, "group.show", args_group(m), 200);
        case ROUTE_GROUP_ACTION:
                snprintf(op, sizeof op, "group.%s", m->action);
                return call(api, req, op, args_group(m), 200);
        case ROUTE_ACTORS:
                return call(api, req, "actor.list", args_group(m), 200);
        case ROUTE_ACTOR:
                return call(api, req, "actor.show", args_actor(m), 200);
        case ROUTE_ACTOR_RESTART:
                return call(api, req, "actor.restart", args_actor(m), 200);
        case ROUTE_INBOX:
        case ROUTE_INBOX_READ: {
                int64_t limit = query_uint(req, "limit", 100, 1000);
                if (limit < 0)
                        return;
                args = args_actor(m);
                if (args) {
                        json_object_object_add(args, "limit", json_object_new_int64(limit ? limit : 1));
                        json_object_object_add(args, "mark_read", json_object_new_boolean(m->route == ROUTE_INBOX_READ));
                }
                return call(api, req, "inbox.list", args, 200);
        }
        case ROUTE_ACK: {
                static const char *const keys[] = { "event", NULL };
                if (!(body = body_object(req)))
                        return;
                args = args_group(m);
                if (args) {
                        copy_keys(args, body, keys);
                        json_object_object_add(args, "by", json_object_new_string(m->actor));
                }
                return call(api, req, "message.ack", args, 201);
        }
        case ROUTE_MESSAGES:
        case ROUTE_REPLY:
                return handle_message(api, req, m);
        case ROUTE_EVENTS:
                return handle_events(api, req, m);
        case ROUTE_EVENTS_STREAM:
                return handle_stream(api, req, m);
        case ROUTE_WEBHOOK:
                if (platform_webhooks_handle(api->platform_webhooks, api->upstream, req, m->channel))
                        return;
                args = webhooks_verify(api->webhooks, req, m->channel);
                /* 202: accepted and durable, to be delivered to the group's actors. */
                if (args)
                        call(api, req, "channel.inbound", args, 202);
                return;
        case ROUTE_NONE:
                break;
        }
        http_request_respond_error(req, 404, "not_found", "no such endpoint");
}

/* ---- the gateway_api object ------------------------------------------------------------- */

/* Answers 401/429 and returns true when the request may not go on. */
static bool check_auth(struct gateway_api *api, struct http_request *req) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        enum auth_result result;
        unsigned wait;
        char value[16];

        if (api->auth.source == GATEWAY_TOKEN_NONE)
                return false;
        wait = auth_limiter_check(&api->failures, req->client_key, now);
        if (wait > 0) {
                http_request_respond_error(req, 429, "rate_limited", "too many failed authentications from %s; retry in %u s",
                                           req->client_key, wait);
                snprintf(value, sizeof value, "%u", wait);
                if (req->response)
                        (void) MHD_add_response_header(req->response, "Retry-After", value);
                return true;
        }
        result = auth_check(&api->auth, http_request_header(req, MHD_HTTP_HEADER_AUTHORIZATION));
        if (result == AUTH_OK)
                return false;
        if (result == AUTH_INVALID) {
                auth_limiter_failed(&api->failures, req->client_key, now);
                /* Never the token: who, what, and that it was wrong. */
                log_fields_errno(LOG_WARNING, 0, "CONCLAVE_HTTP_AUTH=invalid", "authentication failed: wrong token from %s for %s %s",
                                 req->client, req->method, req->path);
        }
        http_request_respond_error(req, 401, "unauthorized", "%s",
                                   result == AUTH_MISSING ? "send Authorization: Bearer <token> (see conclave-gateway in conclave(1))"
                                                          : "the token is not valid");
        if (req->response)
                (void) MHD_add_response_header(req->response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                               result == AUTH_MISSING ? "Bearer realm=\"conclave\""
                                                                      : "Bearer realm=\"conclave\", error=\"invalid_token\"");
        return true;
}

bool gateway_api_check_headers(struct gateway_api *api, struct http_request *req) {
        struct route_match m;
        unsigned wait;

        route_match(req->method, req->path, &m);
        if (m.route == ROUTE_NONE) {
                http_request_respond_error(req, 404, "not_found", "no such endpoint");
                return true;
        }
        if (!m.method_ok) {
                http_request_respond_error(req, 405, "method_not_allowed", "%s supports %s", req->path, m.allow);
                if (req->response)
                        (void) MHD_add_response_header(req->response, MHD_HTTP_HEADER_ALLOW, m.allow);
                return true;
        }
        if (m.route == ROUTE_READYZ || m.route == ROUTE_UI)
                return false;
        /* Before the body is read: a client over its rate costs us no more than this. */
        wait = api->rate_per_minute ? ratelimit_take(api->rate, req->client_key, now_usec(CLOCK_MONOTONIC)) : 0;
        if (wait > 0) {
                char value[16];
                http_request_respond_error(req, 429, "rate_limited",
                                           "more than %u requests per minute from %s; retry in %u s",
                                           api->rate_per_minute, req->client_key, wait);
                snprintf(value, sizeof value, "%u", wait);
                if (req->response)
                        (void) MHD_add_response_header(req->response, "Retry-After", value);
                return true;
        }
        if (m.route == ROUTE_WEBHOOK)
                return false; /* signed per channel, checked with the body */
        return check_auth(api, req);
}

void gateway_api_handle(struct gateway_api *api, struct http_request *req) {
        struct route_match m;

        route_match(req->method, req->path, &m);
        dispatch_route(api, req, &m);
}

void gateway_api_request_done(struct gateway_api *api, struct http_request *req) {
        if (req->call) {
                /* The client went away (or the listener stopped) while the supervisor works:
                 * what it does still happens; only the answer has nobody to go to. */
                free(proto_call_cancel(req->call));
                req->call = NULL;
        }
        sse_request_done(req);
}

size_t gateway_api_max_body(const struct gateway_api *api) {
        return api->max_body;
}

int gateway_api_new(sd_event *event, struct worker *worker, struct gateway_api **ret) {
        struct gateway_api *api = calloc(1, sizeof *api);
        int r;

        if (!api)
                return -ENOMEM;
        api->event = sd_event_ref(event);
        api->worker = worker;
        r = auth_limiter_init(&api->failures);
        if (r >= 0)
                r = sse_hub_new(event, &api->hub);
        if (r >= 0)
                r = upstream_new(event, worker->link, api->hub, &api->upstream);
        if (r >= 0) {
                sse_hub_set_upstream(api->hub, api->upstream);
                r = webhooks_new(&api->webhooks);
        }
        if (r >= 0)
                r = platform_webhooks_new(&api->platform_webhooks);
        if (r < 0) {
                gateway_api_free(api);
                return r;
        }
        *ret = api;
        return 0;
}

struct gateway_api *gateway_api_free(struct gateway_api *api) {
        if (!api)
                return NULL;
        webhooks_free(api->webhooks);
        platform_webhooks_free(api->platform_webhooks);
        upstream_free(api->upstream);
        sse_hub_free(api->hub);
        if (api->auth_loaded)
                gateway_auth_done(&api->auth);
        auth_limiter_done(&api->failures);
        ratelimit_free(api->rate);
        sd_event_unref(api->event);
        free(api);
        return NULL;
}

int gateway_api_apply_config(struct gateway_api *api, const struct config *c, bool loopback) {
        struct gateway_auth auth = {};
        struct ratelimit *rate = NULL;
        char error[512] = "", what[512];
        int r;

        r = gateway_auth_load(c, loopback, &auth, error, sizeof error);
        if (r < 0)
                return log_error_errno(r, "%s", *error ? error : "cannot load the gateway token");
        if (!api->rate || api->rate_per_minute != c->gateway_rate_limit) {
                r = ratelimit_new(c->gateway_rate_limit, ratelimit_default_burst(c->gateway_rate_limit),
                                  RATELIMIT_CAPACITY_DEFAULT, &rate);
                if (r < 0) {
                        gateway_auth_done(&auth);
                        return log_error_errno(r, "cannot set up the rate limiter");
                }
        }
        r = webhooks_apply_config(api->webhooks, c);
        if (r >= 0)
                r = platform_webhooks_apply_config(api->platform_webhooks, c);
        if (r < 0) {
                gateway_auth_done(&auth);
                ratelimit_free(rate);
                return r;
        }
        if (api->auth_loaded)
                gateway_auth_done(&api->auth);
        api->auth = auth;
        api->auth_loaded = true;
        gateway_auth_describe(&api->auth, what, sizeof what);
        log_info("API authentication: %s", what);
        if (rate) {
                ratelimit_free(api->rate);
                api->rate = rate;
        }
        api->rate_per_minute = c->gateway_rate_limit;
        api->max_body = (size_t) c->gateway_max_body;
        api->web_ui = c->gateway_web_ui;
        return 0;
}

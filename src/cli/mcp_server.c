/* JSON-RPC 2.0 over newline-delimited stdio for `conclave mcp` (see mcp_server.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mcp_server.h"
#include "proto.h"

#define JSON_DEPTH_MAX 64
#define READ_CHUNK (64u * 1024u)
/* 2025-03-26 is the one revision with JSON-RPC batches: accepted then, refused otherwise. */
#define BATCH_REVISION "2025-03-26"

const char *const mcp_protocol_revisions[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL };

enum server_state {
        SERVER_NEW,         /* waiting for initialize */
        SERVER_INITIALIZED, /* initialize answered (notifications/initialized may follow) */
};

struct mcp_server {
        const struct mcp_identity *id;
        const struct mcp_backend *backend;
        enum server_state state;
        const char *revision; /* one of mcp_protocol_revisions */
};

int mcp_server_new(const struct mcp_identity *id, const struct mcp_backend *backend, struct mcp_server **ret) {
        struct mcp_server *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        s->id = id;
        s->backend = backend;
        *ret = s;
        return 0;
}

struct mcp_server *mcp_server_free(struct mcp_server *s) {
        free(s);
        return NULL;
}

const char *mcp_server_revision(const struct mcp_server *s) {
        return s->state == SERVER_NEW ? NULL : s->revision;
}

static struct json_object *get(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* --- replies ----------------------------------------------------------------------------- */

static int response_new(struct json_object *id, const char *key, struct json_object *value, struct json_object **ret) {
        struct json_object *o = json_object_new_object();

        if (!o || !value) {
                json_object_put(o);
                json_object_put(value);
                return -ENOMEM;
        }
        if (json_object_object_add(o, "jsonrpc", json_object_new_string("2.0")) < 0 ||
            json_object_object_add(o, "id", json_object_get(id)) < 0 || json_object_object_add(o, key, value) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

static int result_reply(struct json_object *id, struct json_object *result, struct json_object **ret) {
        return response_new(id, "result", result, ret);
}

/* An error response; id NULL is sent as null (the request's id could not be read). */
static int error_reply(struct json_object *id, int code, struct json_object **ret, const char *fmt, ...) _printf_(4, 5);
static int error_reply(struct json_object *id, int code, struct json_object **ret, const char *fmt, ...) {
        struct json_object *e = json_object_new_object();
        char message[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (e && (json_object_object_add(e, "code", json_object_new_int(code)) < 0 ||
                  json_object_object_add(e, "message", json_object_new_string(message)) < 0)) {
                json_object_put(e);
                e = NULL;
        }
        return response_new(id, "error", e, ret);
}

/* --- methods ----------------------------------------------------------------------------- */

static const char *negotiate(const char *requested) {
        for (size_t i = 0; mcp_protocol_revisions[i]; i++)
                if (streq(requested, mcp_protocol_revisions[i]))
                        return mcp_protocol_revisions[i];
        return mcp_protocol_revisions[0];
}

static int add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int method_initialize(struct mcp_server *s, struct json_object *id, struct json_object *params, struct json_object **ret) {
        _cleanup_json_ struct json_object *result = json_object_new_object(), *caps = json_object_new_object(),
                                          *tools = json_object_new_object(), *info = json_object_new_object();
        struct json_object *requested = get(params, "protocolVersion");
        char instructions[1024];

        if (s->state != SERVER_NEW)
                return error_reply(id, JSONRPC_INVALID_REQUEST, ret, "already initialized");
        if (!json_object_is_type(requested, json_type_string))
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "initialize needs params.protocolVersion (a string)");
        s->revision = negotiate(json_object_get_string(requested));
        if (!streq(s->revision, json_object_get_string(requested)))
                log_info("mcp: the client asked for protocol %.32s; offering %s", json_object_get_string(requested), s->revision);

        snprintf(instructions, sizeof instructions,
                 "You act as actor \"%s\" in the Conclave group \"%s\": everything you do is recorded under that name. "
                 "read_inbox shows the messages addressed to you and what you owe: answer messages marked reply_required "
                 "with reply_to_message and acknowledge those marked attention with ack_message. send_message talks to "
                 "the group, list_actors names its members, recent_events shows what happened lately.",
                 s->id->actor, s->id->group);
        if (!result || !caps || !tools || !info || add(result, "protocolVersion", json_object_new_string(s->revision)) < 0 ||
            add(tools, "listChanged", json_object_new_boolean(false)) < 0 || add(caps, "tools", json_object_get(tools)) < 0 ||
            add(result, "capabilities", json_object_get(caps)) < 0 || add(info, "name", json_object_new_string("conclave")) < 0 ||
            (strcmp(s->revision, MCP_REVISION_STRUCTURED) >= 0 && add(info, "title", json_object_new_string("Conclave")) < 0) ||
            add(info, "version", json_object_new_string(PACKAGE_VERSION)) < 0 ||
            add(result, "serverInfo", json_object_get(info)) < 0 ||
            add(result, "instructions", json_object_new_string(instructions)) < 0)
                return -ENOMEM;
        s->state = SERVER_INITIALIZED;
        return result_reply(id, json_object_get(result), ret);
}

static int method_tools_list(struct mcp_server *s, struct json_object *id, struct json_object *params, struct json_object **ret) {
        struct json_object *list = NULL;
        int r;

        /* Every tool fits on one page, so no cursor we could receive is one we gave out. */
        if (get(params, "cursor"))
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "invalid cursor");
        r = mcp_tools_list(s->revision, &list);
        if (r < 0)
                return r;
        return result_reply(id, list, ret);
}

static int method_tools_call(struct mcp_server *s, struct json_object *id, struct json_object *params, struct json_object **ret) {
        struct json_object *name = get(params, "name"), *arguments = get(params, "arguments"), *result = NULL;
        int r;

        if (!json_object_is_type(name, json_type_string))
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "tools/call needs params.name (a string)");
        if (arguments && !json_object_is_type(arguments, json_type_object))
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "params.arguments must be an object");
        r = mcp_tools_call(json_object_get_string(name), arguments, s->id, s->backend, s->revision, &result);
        if (r == -ENOENT)
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "unknown tool: %.64s", json_object_get_string(name));
        if (r < 0)
                return r;
        return result_reply(id, result, ret);
}

static int handle_request(struct mcp_server *s, struct json_object *id, const char *method, struct json_object *params,
                          struct json_object **ret) {
        if (streq(method, "initialize"))
                return method_initialize(s, id, params, ret);
        if (streq(method, "ping"))
                return result_reply(id, json_object_new_object(), ret);
        if (s->state == SERVER_NEW)
                return error_reply(id, JSONRPC_INVALID_REQUEST, ret, "not initialized: send initialize first");
        if (streq(method, "tools/list"))
                return method_tools_list(s, id, params, ret);
        if (streq(method, "tools/call"))
                return method_tools_call(s, id, params, ret);
        return error_reply(id, JSONRPC_METHOD_NOT_FOUND, ret, "method not found: %.64s", method);
}

static void handle_notification(const char *method) {
        /* notifications/initialized needs nothing from us; calls run one at a time and are
         * answered before the next line is read, so notifications/cancelled always comes too
         * late to stop one. */
        log_debug("mcp: notification %.64s", method);
}

/* A JSON-RPC id: a string or a number (MCP: never null). */
static bool id_valid(struct json_object *id) {
        switch (json_object_get_type(id)) {
        case json_type_string:
        case json_type_int:
                return true;
        case json_type_double:
                return isfinite(json_object_get_double(id));
        default:
                return false;
        }
}

static int handle_message(struct mcp_server *s, struct json_object *m, struct json_object **ret) {
        struct json_object *id = NULL, *method = get(m, "method"), *params = get(m, "params");
        bool has_id = json_object_object_get_ex(m, "id", &id);

        *ret = NULL;
        if (!json_object_is_type(m, json_type_object))
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret, "a message must be a JSON object");
        if (has_id && !id_valid(id))
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret, "\"id\" must be a string or a number");
        if (!json_object_is_type(get(m, "jsonrpc"), json_type_string) || !streq(json_object_get_string(get(m, "jsonrpc")), "2.0"))
                return error_reply(id, JSONRPC_INVALID_REQUEST, ret, "\"jsonrpc\" must be \"2.0\"");
        if (!method) {
                if (has_id && (json_object_object_get_ex(m, "result", NULL) || json_object_object_get_ex(m, "error", NULL))) {
                        log_debug("mcp: ignoring a response; this server sends no requests");
                        return 0;
                }
                return error_reply(id, JSONRPC_INVALID_REQUEST, ret, "\"method\" is missing");
        }
        if (!json_object_is_type(method, json_type_string))
                return error_reply(id, JSONRPC_INVALID_REQUEST, ret, "\"method\" must be a string");
        if (!has_id) {
                handle_notification(json_object_get_string(method));
                return 0;
        }
        if (params && !json_object_is_type(params, json_type_object))
                return error_reply(id, JSONRPC_INVALID_PARAMS, ret, "\"params\" must be an object");
        return handle_request(s, id, json_object_get_string(method), params, ret);
}

static int handle_batch(struct mcp_server *s, struct json_object *batch, struct json_object **ret) {
        _cleanup_json_ struct json_object *replies = NULL;
        size_t n = json_object_array_length(batch);

        *ret = NULL;
        if (n == 0)
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret, "empty batch");
        if (s->state == SERVER_NEW)
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret, "batches are not accepted before initialize");
        if (!streq(s->revision, BATCH_REVISION))
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret, "batches are not part of protocol revision %s",
                                   s->revision);
        if (!(replies = json_object_new_array()))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *m = json_object_array_get_idx(batch, i), *reply = NULL;
                int r;

                if (streq(json_object_get_string(get(m, "method")), "initialize"))
                        r = error_reply(get(m, "id"), JSONRPC_INVALID_REQUEST, &reply, "initialize must not be batched");
                else
                        r = handle_message(s, m, &reply);
                if (r < 0)
                        return r;
                if (reply && json_object_array_add(replies, reply) < 0) {
                        json_object_put(reply);
                        return -ENOMEM;
                }
        }
        if (json_object_array_length(replies) > 0)
                *ret = json_object_get(replies);
        return 0;
}

int mcp_server_handle_line(struct mcp_server *s, const char *line, size_t len, struct json_object **ret_reply) {
        _cleanup_json_ struct json_object *m = NULL;
        struct json_tokener *tok;
        size_t end = 0;
        bool ok;

        *ret_reply = NULL;
        if (strspn(line, " \t\r") == len)
                return 0; /* blank lines between messages are harmless */
        if (len > MCP_LINE_MAX)
                return error_reply(NULL, JSONRPC_INVALID_REQUEST, ret_reply, "message longer than %u bytes", MCP_LINE_MAX);
        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        /* Parsing the terminating NUL too ends a top-level number; a NUL inside the line stops
         * the parser early, which the end check below refuses. */
        m = json_tokener_parse_ex(tok, line, (int) len + 1);
        ok = json_tokener_get_error(tok) == json_tokener_success;
        if (ok)
                end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (ok)
                for (; end < len && line[end] && strchr(" \t\r", line[end]); end++)
                        ;
        if (!ok || end != len)
                return error_reply(NULL, JSONRPC_PARSE_ERROR, ret_reply, "parse error: not one JSON value");
        if (json_object_is_type(m, json_type_array))
                return handle_batch(s, m, ret_reply);
        return handle_message(s, m, ret_reply);
}

/* --- the stdio loop ---------------------------------------------------------------------- */

static int send_reply(int fd, struct json_object *reply) {
        _cleanup_free_ char *line = NULL;
        const char *s;
        size_t len;

        if (!reply)
                return 0;
        /* Plain output escapes control characters, so a message is always exactly one line. */
        s = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        line = malloc(len + 1);
        if (!line)
                return -ENOMEM;
        memcpy(line, s, len);
        line[len] = '\n';
        return write_all(fd, line, len + 1);
}

static int handle_and_send(struct mcp_server *s, const char *line, size_t len, int out_fd) {
        _cleanup_json_ struct json_object *reply = NULL;
        int r = mcp_server_handle_line(s, line, len, &reply);

        if (r == -ENOMEM) /* one message failed; the next may not */
                r = error_reply(NULL, JSONRPC_INTERNAL_ERROR, &reply, "out of memory");
        if (r < 0)
                return r;
        return send_reply(out_fd, reply);
}

int mcp_server_run(struct mcp_server *s, int in_fd, int out_fd) {
        _cleanup_free_ char *chunk = malloc(READ_CHUNK), *buf = NULL;
        size_t len = 0, size = 0;
        bool skipping = false; /* inside a line that was too long: drop it up to its newline */
        int r;

        if (!chunk)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(in_fd, chunk, READ_CHUNK);
                const char *p = chunk, *nl;
                size_t left;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0) {
                        /* A last message without its newline is still a message. */
                        if (len > 0 && !skipping) {
                                buf[len] = 0;
                                r = handle_and_send(s, buf, len, out_fd);
                                if (r < 0)
                                        return r;
                        }
                        return 0;
                }
                for (left = (size_t) n; left > 0; left -= (size_t) (nl - p) + 1, p = nl + 1) {
                        size_t seg;

                        nl = memchr(p, '\n', left);
                        seg = nl ? (size_t) (nl - p) : left;
                        if (!skipping && len + seg > MCP_LINE_MAX) {
                                _cleanup_json_ struct json_object *reply = NULL;

                                log_warning("mcp: refusing a message longer than %u bytes", MCP_LINE_MAX);
                                r = error_reply(NULL, JSONRPC_INVALID_REQUEST, &reply, "message longer than %u bytes",
                                                MCP_LINE_MAX);
                                if (r >= 0)
                                        r = send_reply(out_fd, reply);
                                if (r < 0)
                                        return r;
                                skipping = true;
                                len = 0;
                        }
                        if (!skipping && seg > 0) {
                                if (len + seg + 1 > size) {
                                        size_t nsize = size ? size : 4096;
                                        char *nbuf;

                                        while (nsize < len + seg + 1)
                                                nsize *= 2;
                                        if (nsize > MCP_LINE_MAX + 1)
                                                nsize = MCP_LINE_MAX + 1;
                                        nbuf = realloc(buf, nsize);
                                        if (!nbuf)
                                                return -ENOMEM;
                                        buf = nbuf;
                                        size = nsize;
                                }
                                memcpy(buf + len, p, seg);
                                len += seg;
                        }
                        if (!nl)
                                break;
                        if (!skipping) {
                                if (!buf && !(buf = malloc(size = 1)))
                                        return -ENOMEM;
                                buf[len] = 0;
                                r = handle_and_send(s, buf, len, out_fd);
                                if (r < 0)
                                        return r;
                        }
                        skipping = false;
                        len = 0;
                }
        }
}

/* Unit tests for `conclave mcp` without a daemon: the JSON-RPC dispatch and handshake
 * (mcp_server.c), the tools against a fake backend that records what would reach the control
 * socket (mcp_tools.c), the schema subset (mcp_schema.c), and the stdio loop over real pipes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "mcp_schema.h"
#include "mcp_server.h"
#include "mcp_tools.h"
#include "proto.h"

/* --- a fake daemon ------------------------------------------------------------------------ */

struct fake {
        unsigned calls;
        char op[64];
        struct json_object *args;   /* the last call's, kept */
        const char *result;         /* JSON text to answer with, or NULL to refuse */
        const char *error_code, *error_message;
};

static int fake_call(void *userdata, const char *op, struct json_object *args, struct json_object **ret_result,
                     struct json_object **ret_error) {
        struct fake *f = userdata;

        f->calls++;
        snprintf(f->op, sizeof f->op, "%s", op);
        json_object_put(f->args);
        f->args = json_object_get(args);
        if (!f->result) {
                struct json_object *e = json_object_new_object();
                json_object_object_add(e, "code", json_object_new_string(f->error_code));
                json_object_object_add(e, "message", json_object_new_string(f->error_message));
                *ret_error = e;
                return -EREMOTEIO;
        }
        *ret_result = json_tokener_parse(f->result);
        assert_non_null(*ret_result);
        return 0;
}

struct ctx {
        struct fake fake;
        struct mcp_backend backend;
        struct mcp_identity id;
        struct mcp_server *server;
};

static int setup(void **state) {
        struct ctx *c = calloc(1, sizeof *c);

        if (!c)
                return -1;
        c->backend = (struct mcp_backend){ .call = fake_call, .userdata = &c->fake };
        c->id = (struct mcp_identity){ .group = "g1", .actor = "alice" };
        if (mcp_server_new(&c->id, &c->backend, &c->server) < 0) {
                free(c);
                return -1;
        }
        *state = c;
        return 0;
}

static int teardown(void **state) {
        struct ctx *c = *state;

        mcp_server_free(c->server);
        json_object_put(c->fake.args);
        free(c);
        return 0;
}

/* --- helpers ------------------------------------------------------------------------------ */

static struct json_object *get(struct json_object *o, const char *path) {
        char key[64];

        /* "a.b.c" */
        while (o && *path) {
                size_t n = strcspn(path, ".");
                assert_true(n < sizeof key);
                memcpy(key, path, n);
                key[n] = 0;
                if (json_object_is_type(o, json_type_array))
                        o = json_object_array_get_idx(o, (size_t) atoi(key));
                else if (!json_object_object_get_ex(o, key, &o))
                        return NULL;
                path += n + (path[n] == '.');
        }
        return o;
}

static const char *str(struct json_object *o, const char *path) {
        struct json_object *v = get(o, path);
        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Sends one line; returns the reply (NULL when none). */
static struct json_object *send_line(struct ctx *c, const char *line) {
        struct json_object *reply = NULL;
        assert_int_equal(mcp_server_handle_line(c->server, line, strlen(line), &reply), 0);
        return reply;
}

static void assert_error(struct json_object *reply, int code, const char *id_json) {
        assert_non_null(reply);
        assert_string_equal(str(reply, "jsonrpc"), "2.0");
        assert_null(get(reply, "result"));
        assert_int_equal(json_object_get_int(get(reply, "error.code")), code);
        assert_non_null(str(reply, "error.message"));
        assert_string_equal(json_object_to_json_string_ext(get(reply, "id"), JSON_C_TO_STRING_PLAIN), id_json);
}

static void expect_error(struct ctx *c, const char *line, int code, const char *id_json) {
        _cleanup_json_ struct json_object *reply = send_line(c, line);
        assert_error(reply, code, id_json);
}

static void initialize(struct ctx *c, const char *revision) {
        char line[256];
        _cleanup_json_ struct json_object *reply = NULL;

        snprintf(line, sizeof line,
                 "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\","
                 "\"capabilities\":{},\"clientInfo\":{\"name\":\"test\",\"version\":\"1\"}}}",
                 revision);
        reply = send_line(c, line);
        assert_non_null(get(reply, "result"));
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
}

/* tools/call name with arguments (JSON text, or NULL for none); returns the result object. */
static struct json_object *call_tool(struct ctx *c, const char *name, const char *arguments) {
        char line[4096];
        struct json_object *reply, *result;

        snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":\"call\",\"method\":\"tools/call\",\"params\":{\"name\":\"%s\"%s%s}}",
                 name, arguments ? ",\"arguments\":" : "", arguments ?: "");
        reply = send_line(c, line);
        assert_non_null(reply);
        assert_string_equal(str(reply, "id"), "call");
        result = json_object_get(get(reply, "result"));
        json_object_put(reply);
        assert_non_null(result);
        assert_non_null(str(result, "content.0.text"));
        assert_string_equal(str(result, "content.0.type"), "text");
        return result;
}

static bool is_error(struct json_object *result) {
        return json_object_get_boolean(get(result, "isError"));
}

/* --- handshake ---------------------------------------------------------------------------- */

static void test_initialize_latest(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *reply = send_line(
                c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                   "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");

        assert_int_equal(json_object_get_int(get(reply, "id")), 1);
        assert_string_equal(str(reply, "result.protocolVersion"), "2025-11-25");
        assert_string_equal(str(reply, "result.serverInfo.name"), "conclave");
        assert_string_equal(str(reply, "result.serverInfo.version"), PACKAGE_VERSION);
        assert_non_null(get(reply, "result.capabilities.tools"));
        assert_non_null(strstr(str(reply, "result.instructions"), "\"alice\""));
        assert_non_null(strstr(str(reply, "result.instructions"), "\"g1\""));
        assert_string_equal(mcp_server_revision(c->server), "2025-11-25");
        /* once only */
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}",
                     JSONRPC_INVALID_REQUEST, "2");
}

static void test_initialize_negotiates(void **state) {
        struct ctx *c = *state;
        static const struct {
                const char *asked, *agreed;
        } cases[] = {
                { "2025-06-18", "2025-06-18" }, { "2025-03-26", "2025-03-26" }, { "2024-11-05", "2024-11-05" },
                { "2099-01-01", "2025-11-25" }, { "1999-01-01", "2025-11-25" }, { "", "2025-11-25" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct mcp_server *s;
                struct json_object *reply = NULL;
                char line[256];

                snprintf(line, sizeof line,
                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\"}}",
                         cases[i].asked);
                assert_int_equal(mcp_server_new(&c->id, &c->backend, &s), 0);
                assert_int_equal(mcp_server_handle_line(s, line, strlen(line), &reply), 0);
                assert_string_equal(str(reply, "result.protocolVersion"), cases[i].agreed);
                assert_string_equal(mcp_server_revision(s), cases[i].agreed);
                json_object_put(reply);
                mcp_server_free(s);
        }
        /* protocolVersion is required */
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", JSONRPC_INVALID_PARAMS, "1");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", JSONRPC_INVALID_PARAMS, "1");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":20251125}}",
                     JSONRPC_INVALID_PARAMS, "1");
        assert_null(mcp_server_revision(c->server));
}

static void test_before_initialize(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *pong = send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");

        /* ping is allowed at any time; tools are not */
        assert_non_null(get(pong, "result"));
        assert_int_equal(json_object_object_length(get(pong, "result")), 0);
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}", JSONRPC_INVALID_REQUEST, "3");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"list_actors\"}}",
                     JSONRPC_INVALID_REQUEST, "4");
        assert_int_equal(c->fake.calls, 0);
}

/* --- malformed input ---------------------------------------------------------------------- */

static void test_malformed(void **state) {
        struct ctx *c = *state;
        static const char *const parse_errors[] = {
                "garbage", "{", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing",
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}{}", "[1,]", "{\"a\":\"\xff\"}",
        };
        char deep[300];

        initialize(c, "2025-11-25");
        for (size_t i = 0; i < ELEMENTSOF(parse_errors); i++)
                expect_error(c, parse_errors[i], JSONRPC_PARSE_ERROR, "null");
        /* a NUL inside the line ends the parse early: not one JSON value */
        {
                const char line[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\0{}";
                struct json_object *reply = NULL;
                assert_int_equal(mcp_server_handle_line(c->server, line, sizeof line - 1, &reply), 0);
                assert_error(reply, JSONRPC_PARSE_ERROR, "null");
                json_object_put(reply);
        }
        /* nesting deeper than the parser allows */
        memset(deep, '[', 200);
        memset(deep + 200, ']', 99); /* unbalanced anyway */
        deep[299] = 0;
        expect_error(c, deep, JSONRPC_PARSE_ERROR, "null");

        expect_error(c, "123", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "\"ping\"", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "null", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "{\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "5");
        expect_error(c, "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "5");
        expect_error(c, "{\"jsonrpc\":2.0,\"id\":5,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "5");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":NaN,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":6}", JSONRPC_INVALID_REQUEST, "6");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":7}", JSONRPC_INVALID_REQUEST, "6");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":[]}", JSONRPC_INVALID_PARAMS, "7");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/list\"}", JSONRPC_METHOD_NOT_FOUND, "8");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"logging/setLevel\",\"params\":{\"level\":\"info\"}}",
                     JSONRPC_METHOD_NOT_FOUND, "\"x\"");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\",\"params\":{\"cursor\":\"abc\"}}",
                     JSONRPC_INVALID_PARAMS, "9");
        /* ids are echoed as they came */
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":-12345678901,\"method\":\"nope\"}", JSONRPC_METHOD_NOT_FOUND, "-12345678901");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\nb\",\"method\":\"nope\"}", JSONRPC_METHOD_NOT_FOUND, "\"a\\nb\"");
}

static void test_silent(void **state) {
        struct ctx *c = *state;

        initialize(c, "2025-11-25");
        /* notifications (known or not), responses and blank lines get no reply */
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}"));
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}"));
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"send_message\"}}"));
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}"));
        assert_null(send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1,\"message\":\"x\"}}"));
        assert_null(send_line(c, ""));
        assert_null(send_line(c, "  \t\r"));
        assert_int_equal(c->fake.calls, 0); /* a tools/call notification runs nothing */
}

static void test_batches(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *reply = NULL;
        struct mcp_server *s;

        expect_error(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", JSONRPC_INVALID_REQUEST, "null");
        expect_error(c, "[]", JSONRPC_INVALID_REQUEST, "null");
        initialize(c, "2025-11-25");
        expect_error(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", JSONRPC_INVALID_REQUEST, "null");

        /* 2025-03-26 has batches: one reply per request, none for notifications */
        assert_int_equal(mcp_server_new(&c->id, &c->backend, &s), 0);
        {
                const char *init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-03-26\"}}";
                const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                                    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"},5,"
                                    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-03-26\"}}]";
                struct json_object *r = NULL;

                assert_int_equal(mcp_server_handle_line(s, init, strlen(init), &r), 0);
                json_object_put(r);
                assert_int_equal(mcp_server_handle_line(s, batch, strlen(batch), &reply), 0);
        }
        mcp_server_free(s);
        assert_true(json_object_is_type(reply, json_type_array));
        assert_int_equal(json_object_array_length(reply), 4);
        assert_int_equal(json_object_get_int(get(reply, "0.id")), 1);
        assert_non_null(get(reply, "0.result"));
        assert_int_equal(json_object_get_int(get(reply, "1.error.code")), JSONRPC_METHOD_NOT_FOUND);
        assert_int_equal(json_object_get_int(get(reply, "2.error.code")), JSONRPC_INVALID_REQUEST);
        assert_int_equal(json_object_get_int(get(reply, "3.id")), 3);
        assert_int_equal(json_object_get_int(get(reply, "3.error.code")), JSONRPC_INVALID_REQUEST);
}

/* --- tools/list ---------------------------------------------------------------------------- */

static void test_tools_list(void **state) {
        struct ctx *c = *state;
        static const char *const names[] = { "read_inbox", "send_message", "reply_to_message", "ack_message", "recent_events", "list_actors" };
        _cleanup_json_ struct json_object *reply = NULL;
        struct json_object *tools;
        char err[256];

        initialize(c, "2025-11-25");
        reply = send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
        tools = get(reply, "result.tools");
        assert_int_equal(json_object_array_length(tools), ELEMENTSOF(names));
        assert_int_equal(mcp_tools_count(), ELEMENTSOF(names));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                struct json_object *t = json_object_array_get_idx(tools, i);
                assert_string_equal(str(t, "name"), names[i]);
                assert_non_null(str(t, "title"));
                assert_true(strlen(str(t, "description")) > 20);
                assert_string_equal(str(t, "inputSchema.type"), "object");
                assert_false(json_object_get_boolean(get(t, "inputSchema.additionalProperties")));
                assert_string_equal(str(t, "outputSchema.type"), "object");
                assert_true(json_object_is_type(get(t, "annotations.readOnlyHint"), json_type_boolean));
                /* every keyword is one the validator enforces */
                if (mcp_schema_check(get(t, "inputSchema"), err, sizeof err) < 0 ||
                    mcp_schema_check(get(t, "outputSchema"), err, sizeof err) < 0)
                        fail_msg("%s: %s", names[i], err);
        }
}

static void test_tools_list_older_revisions(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *reply = NULL;
        struct json_object *t;

        /* 2024-11-05 knows neither titles, outputSchema nor annotations */
        initialize(c, "2024-11-05");
        reply = send_line(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        t = get(reply, "result.tools.0");
        assert_non_null(get(t, "inputSchema"));
        assert_null(get(t, "outputSchema"));
        assert_null(get(t, "title"));
        assert_null(get(t, "annotations"));
}

/* --- tools/call ---------------------------------------------------------------------------- */

#define POSTED "{\"event_id\":\"01M843XYVHNH3YK85KDSN64H01\",\"seq\":9,\"group\":\"g1\"}"

static void test_send_message(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *result = NULL;
        _cleanup_json_ struct json_object *text = NULL;

        initialize(c, "2025-11-25");
        c->fake.result = POSTED;
        result = call_tool(c, "send_message", "{\"text\":\"hello\\nthere\",\"to\":[\"bob\",\"operator\"],\"attention\":true}");
        assert_false(is_error(result));
        assert_int_equal(c->fake.calls, 1);
        assert_string_equal(c->fake.op, "message.send");
        /* the identity comes from the command line, never from the agent */
        assert_string_equal(str(c->fake.args, "group"), "g1");
        assert_string_equal(str(c->fake.args, "by"), "alice");
        assert_string_equal(str(c->fake.args, "text"), "hello\nthere");
        assert_string_equal(str(c->fake.args, "to.1"), "operator");
        assert_true(json_object_get_boolean(get(c->fake.args, "attention")));
        assert_null(get(c->fake.args, "reply_required"));
        assert_string_equal(str(result, "structuredContent.event_id"), "01M843XYVHNH3YK85KDSN64H01");
        assert_int_equal(json_object_get_int(get(result, "structuredContent.seq")), 9);
        /* the text block is the same JSON */
        text = json_tokener_parse(str(result, "content.0.text"));
        assert_true(json_object_equal(text, get(result, "structuredContent")));
}

static void test_identity_cannot_be_overridden(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *result = NULL;

        initialize(c, "2025-11-25");
        c->fake.result = POSTED;
        result = call_tool(c, "send_message", "{\"text\":\"hi\",\"by\":\"operator\"}");
        assert_true(is_error(result));
        assert_non_null(strstr(str(result, "content.0.text"), "unknown property \"by\""));
        json_object_put(result);
        result = call_tool(c, "read_inbox", "{\"actor\":\"operator\"}");
        assert_true(is_error(result));
        assert_int_equal(c->fake.calls, 0);
}

static void test_reply_and_ack(void **state) {
        struct ctx *c = *state;
        struct json_object *result;

        initialize(c, "2025-11-25");
        c->fake.result = POSTED;
        result = call_tool(c, "reply_to_message", "{\"event\":\"01M843XYA9TW0ZMY0T7TMDM3VB\",\"text\":\"ok\",\"reply_required\":false}");
        assert_false(is_error(result));
        json_object_put(result);
        assert_string_equal(c->fake.op, "message.reply");
        assert_string_equal(str(c->fake.args, "event"), "01M843XYA9TW0ZMY0T7TMDM3VB");
        assert_string_equal(str(c->fake.args, "by"), "alice");
        assert_false(json_object_get_boolean(get(c->fake.args, "reply_required")));

        result = call_tool(c, "ack_message", "{\"event\":\"42\"}");
        assert_false(is_error(result));
        json_object_put(result);
        assert_string_equal(c->fake.op, "message.ack");
        assert_string_equal(str(c->fake.args, "event"), "42");
        assert_string_equal(str(c->fake.args, "by"), "alice");
        assert_string_equal(str(c->fake.args, "group"), "g1");
}

static void test_read_inbox(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *result = NULL;
        struct json_object *m;

        initialize(c, "2025-11-25");
        c->fake.result =
                "{\"group\":\"g1\",\"actor\":\"alice\",\"cursor\":3,\"unread\":["
                "{\"v\":1,\"id\":\"01A\",\"seq\":4,\"ts\":\"2026-01-01T00:00:00.000Z\",\"kind\":\"chat.message\",\"group_id\":\"g1\","
                "\"by\":\"operator\",\"data\":{\"text\":\"q?\",\"to\":[\"alice\"],\"priority\":\"attention\",\"reply_required\":true}},"
                "{\"v\":1,\"id\":\"01B\",\"seq\":5,\"ts\":\"2026-01-01T00:00:01.000Z\",\"kind\":\"chat.message\",\"group_id\":\"g1\","
                "\"by\":\"bob\",\"data\":{\"text\":\"re\",\"to\":\"alice\",\"reply_to\":\"01Z\",\"priority\":\"normal\",\"reply_required\":false}}],"
                "\"unread_more\":true,\"obligations\":[{\"kind\":\"reply\",\"actor\":\"alice\",\"event_id\":\"01A\",\"seq\":4,"
                "\"from\":\"operator\",\"since\":\"2026-01-01T00:00:00.000Z\"}],\"marked_read_up_to\":null}";
        result = call_tool(c, "read_inbox", NULL);
        assert_false(is_error(result));
        assert_string_equal(c->fake.op, "inbox.list");
        assert_string_equal(str(c->fake.args, "actor"), "alice");
        assert_null(get(c->fake.args, "by"));
        assert_int_equal(json_object_get_int(get(c->fake.args, "limit")), 20);
        assert_false(json_object_get_boolean(get(c->fake.args, "mark_read")));

        m = get(result, "structuredContent.messages.0");
        assert_string_equal(str(m, "event_id"), "01A");
        assert_string_equal(str(m, "from"), "operator");
        assert_string_equal(str(m, "time"), "2026-01-01T00:00:00.000Z");
        assert_true(json_object_get_boolean(get(m, "attention")));
        assert_true(json_object_get_boolean(get(m, "reply_required")));
        assert_true(json_object_is_type(get(m, "reply_to"), json_type_null));
        m = get(result, "structuredContent.messages.1");
        assert_string_equal(str(m, "to.0"), "alice"); /* a single recipient becomes a list */
        assert_string_equal(str(m, "reply_to"), "01Z");
        assert_false(json_object_get_boolean(get(m, "attention")));
        assert_true(json_object_get_boolean(get(result, "structuredContent.more")));
        assert_string_equal(str(result, "structuredContent.obligations.0.kind"), "reply");
        assert_null(get(result, "structuredContent.obligations.0.actor"));

        json_object_put(result);
        result = call_tool(c, "read_inbox", "{\"limit\":5.0,\"mark_read\":true}");
        assert_false(is_error(result));
        assert_int_equal(json_object_get_int(get(c->fake.args, "limit")), 5);
        assert_true(json_object_get_boolean(get(c->fake.args, "mark_read")));
}

static void test_events_and_actors(void **state) {
        struct ctx *c = *state;
        struct json_object *result;

        initialize(c, "2025-11-25");
        c->fake.result = "[{\"v\":1,\"id\":\"01A\",\"seq\":1,\"ts\":\"t\",\"kind\":\"group.created\",\"by\":\"operator\",\"data\":{}},"
                         "{\"v\":1,\"id\":\"01B\",\"seq\":2,\"ts\":\"t\",\"kind\":\"chat.read\",\"by\":\"alice\",\"data\":{\"up_to\":1}}]";
        result = call_tool(c, "recent_events", "{\"n\":2}");
        assert_false(is_error(result));
        assert_string_equal(c->fake.op, "events.tail");
        assert_string_equal(str(c->fake.args, "group"), "g1");
        assert_int_equal(json_object_get_int(get(c->fake.args, "n")), 2);
        assert_string_equal(str(result, "structuredContent.events.1.kind"), "chat.read");
        assert_int_equal(json_object_get_int(get(result, "structuredContent.events.1.data.up_to")), 1);
        json_object_put(result);

        c->fake.result = "{\"id\":\"g1\",\"title\":\"\",\"state\":\"active\",\"actors\":["
                         "{\"id\":\"operator\",\"kind\":\"human\",\"title\":\"\",\"runtime\":\"n/a\",\"command\":null},"
                         "{\"id\":\"echo\",\"kind\":\"command\",\"title\":\"Echo\",\"runtime\":\"running\",\"command\":[\"/bin/echo\"]}]}";
        result = call_tool(c, "list_actors", "{}");
        assert_false(is_error(result));
        assert_string_equal(c->fake.op, "group.show");
        assert_string_equal(str(result, "structuredContent.you"), "alice");
        assert_string_equal(str(result, "structuredContent.group.state"), "active");
        assert_string_equal(str(result, "structuredContent.actors.1.runtime"), "running");
        assert_null(get(result, "structuredContent.actors.1.command")); /* not the agent's business */
        json_object_put(result);
}

static void test_tool_errors(void **state) {
        struct ctx *c = *state;
        struct json_object *result;

        initialize(c, "2025-11-25");
        /* refused by the daemon: a result the model reads, not a protocol error */
        c->fake.error_code = "not_found";
        c->fake.error_message = "no group \"g1\" (see `conclave groups`)";
        result = call_tool(c, "list_actors", NULL);
        assert_true(is_error(result));
        assert_non_null(strstr(str(result, "content.0.text"), "no group \"g1\""));
        assert_null(get(result, "structuredContent"));
        json_object_put(result);

        /* arguments outside the schema never reach the daemon */
        c->fake.calls = 0;
        result = call_tool(c, "send_message", "{\"text\":\"\"}");
        assert_true(is_error(result));
        assert_string_equal(str(result, "content.0.text"), "invalid arguments: text: must not be empty");
        json_object_put(result);
        result = call_tool(c, "reply_to_message", "{\"event\":\"x\",\"text\":\"t\"}");
        assert_true(is_error(result));
        assert_non_null(strstr(str(result, "content.0.text"), "event: \"x\" does not match"));
        json_object_put(result);
        result = call_tool(c, "recent_events", "{\"n\":1000}");
        assert_true(is_error(result));
        assert_string_equal(str(result, "content.0.text"), "invalid arguments: n: must be at most 200");
        json_object_put(result);
        assert_int_equal(c->fake.calls, 0);

        /* an answer that does not fit the outputSchema is not passed on as a success */
        c->fake.result = "{\"event_id\":\"01A\",\"group\":\"g1\"}";
        result = call_tool(c, "ack_message", "{\"event\":\"3\"}");
        assert_true(is_error(result));
        assert_non_null(strstr(str(result, "content.0.text"), "not understood"));
        json_object_put(result);

        /* protocol errors */
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"rm_rf\"}}", JSONRPC_INVALID_PARAMS, "1");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", JSONRPC_INVALID_PARAMS, "1");
        expect_error(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"read_inbox\",\"arguments\":[]}}",
                     JSONRPC_INVALID_PARAMS, "1");
}

static void test_older_revision_results(void **state) {
        struct ctx *c = *state;
        _cleanup_json_ struct json_object *result = NULL;

        initialize(c, "2025-03-26");
        c->fake.result = POSTED;
        result = call_tool(c, "ack_message", "{\"event\":\"3\"}");
        assert_false(is_error(result));
        assert_null(get(result, "structuredContent")); /* 2025-06-18 and later */
        assert_non_null(strstr(str(result, "content.0.text"), "\"seq\":9"));
}

/* --- the schema subset ---------------------------------------------------------------------- */

static int validate(const char *schema, const char *value) {
        _cleanup_json_ struct json_object *s = json_tokener_parse(schema), *v = json_tokener_parse(value);
        char err[256];

        assert_non_null(s);
        assert_int_equal(mcp_schema_check(s, err, sizeof err), 0);
        return mcp_schema_validate(s, v, err, sizeof err);
}

static void test_schema(void **state) {
        char err[256];
        _cleanup_json_ struct json_object *bad = json_tokener_parse("{\"type\":\"object\",\"properties\":{\"a\":{\"format\":\"uri\"}}}");
        _cleanup_json_ struct json_object *bad_re = json_tokener_parse("{\"pattern\":\"([a-z\"}");

        (void) state;
        assert_int_equal(validate("{\"type\":\"integer\"}", "5"), 0);
        assert_int_equal(validate("{\"type\":\"integer\"}", "5.0"), 0);
        assert_int_equal(validate("{\"type\":\"integer\"}", "5.5"), -EINVAL);
        assert_int_equal(validate("{\"type\":\"integer\"}", "\"5\""), -EINVAL);
        assert_int_equal(validate("{\"type\":\"number\"}", "5.5"), 0);
        assert_int_equal(validate("{\"type\":[\"string\",\"null\"]}", "null"), 0);
        assert_int_equal(validate("{\"type\":[\"string\",\"null\"]}", "1"), -EINVAL);
        assert_int_equal(validate("{\"type\":\"boolean\"}", "0"), -EINVAL);
        /* lengths count characters, not bytes */
        assert_int_equal(validate("{\"type\":\"string\",\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\""), 0);
        assert_int_equal(validate("{\"type\":\"string\",\"maxLength\":3}", "\"abcd\""), -EINVAL);
        assert_int_equal(validate("{\"type\":\"string\"}", "\"a\\u0000b\""), -EINVAL);
        assert_int_equal(validate("{\"type\":\"string\",\"pattern\":\"^[a-c]+$\"}", "\"abc\""), 0);
        assert_int_equal(validate("{\"type\":\"string\",\"pattern\":\"^[a-c]+$\"}", "\"abd\""), -EINVAL);
        assert_int_equal(validate("{\"enum\":[\"x\",\"y\"]}", "\"y\""), 0);
        assert_int_equal(validate("{\"enum\":[\"x\",\"y\"]}", "\"z\""), -EINVAL);
        assert_int_equal(validate("{\"minimum\":1,\"maximum\":3}", "0"), -EINVAL);
        assert_int_equal(validate("{\"minimum\":1,\"maximum\":3}", "3"), 0);
        assert_int_equal(validate("{\"type\":\"array\",\"maxItems\":1,\"items\":{\"type\":\"string\"}}", "[\"a\"]"), 0);
        assert_int_equal(validate("{\"type\":\"array\",\"maxItems\":1}", "[1,2]"), -EINVAL);
        assert_int_equal(validate("{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "[\"a\",2]"), -EINVAL);
        /* a required property may be null; it must be there */
        assert_int_equal(validate("{\"required\":[\"a\"]}", "{\"a\":null}"), 0);
        assert_int_equal(validate("{\"required\":[\"a\"]}", "{\"b\":1}"), -EINVAL);
        assert_int_equal(validate("{\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{\"b\":1}"), -EINVAL);
        assert_int_equal(validate("{\"properties\":{\"a\":{}}}", "{\"b\":1}"), 0);

        /* messages name the place */
        {
                _cleanup_json_ struct json_object *s = json_tokener_parse(
                        "{\"type\":\"object\",\"properties\":{\"to\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}");
                _cleanup_json_ struct json_object *v = json_tokener_parse("{\"to\":[\"a\",7]}");
                assert_int_equal(mcp_schema_validate(s, v, err, sizeof err), -EINVAL);
                assert_string_equal(err, "to[1]: must be of type string, not an integer");
        }
        /* keywords it cannot enforce are refused, so no schema promises what is not checked */
        assert_int_equal(mcp_schema_check(bad, err, sizeof err), -EINVAL);
        assert_string_equal(err, "properties.a.format: keyword not supported");
        assert_int_equal(mcp_schema_check(bad_re, err, sizeof err), -EINVAL);
}

/* --- the stdio loop --------------------------------------------------------------------------- */

/* Runs the server on `input` (written by a child process, so it may exceed a pipe's buffer) and
 * returns everything it wrote. */
static char *run_server(struct ctx *c, const char *input, size_t len, int *ret) {
        int in[2], status;
        FILE *out = tmpfile();
        char *text;
        long size;
        pid_t pid;

        assert_non_null(out);
        assert_int_equal(pipe(in), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(in[0]);
                while (len > 0) {
                        ssize_t n = write(in[1], input, len);
                        if (n <= 0)
                                _exit(1);
                        input += n;
                        len -= (size_t) n;
                }
                _exit(0);
        }
        close(in[1]);
        *ret = mcp_server_run(c->server, in[0], fileno(out));
        close(in[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        size = ftell(out);
        assert_true(size >= 0);
        rewind(out);
        text = calloc(1, (size_t) size + 1);
        assert_non_null(text);
        assert_int_equal(fread(text, 1, (size_t) size, out), (size_t) size);
        fclose(out);
        return text;
}

static void test_run_lines(void **state) {
        struct ctx *c = *state;
        const char *input = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}\r\n"
                            "\n"
                            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
                            "not json\n"
                            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"; /* the last line may lack its newline */
        _cleanup_free_ char *out = NULL;
        char *nl;
        int r;

        out = run_server(c, input, strlen(input), &r);
        assert_int_equal(r, 0);
        /* three replies, one per line, in order */
        nl = strchr(out, '\n');
        assert_non_null(nl);
        assert_non_null(strstr(out, "\"id\":1,\"result\""));
        assert_non_null(strstr(nl + 1, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700"));
        nl = strchr(nl + 1, '\n');
        assert_non_null(nl);
        assert_string_equal(nl + 1, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n");
}

static void test_run_oversized(void **state) {
        struct ctx *c = *state;
        const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n";
        size_t big = MCP_LINE_MAX + 100, len = big + 1 + strlen(ping);
        _cleanup_free_ char *input = malloc(len + 1), *out = NULL;
        int r;

        assert_non_null(input);
        /* a huge string value, then a newline, then a ping that must still be answered */
        const char *head = "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"x\":\"";

        memset(input, 'a', big);
        memcpy(input, head, strlen(head));
        input[big] = '\n';
        memcpy(input + big + 1, ping, strlen(ping) + 1);
        out = run_server(c, input, len, &r);
        assert_int_equal(r, 0);
        assert_string_equal(out, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"message longer than 4194304 bytes\"}}\n"
                                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n");

        /* exactly at the limit is fine (a parse error here, as the line is not JSON) */
        free(out);
        memset(input, ' ', MCP_LINE_MAX);
        input[0] = 'x';
        input[MCP_LINE_MAX] = '\n';
        out = run_server(c, input, MCP_LINE_MAX + 1, &r);
        assert_int_equal(r, 0);
        assert_non_null(strstr(out, "-32700"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_initialize_latest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_initialize_negotiates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_before_initialize, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_silent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tools_list_older_revisions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_identity_cannot_be_overridden, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reply_and_ack, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_inbox, setup, teardown),
                cmocka_unit_test_setup_teardown(test_events_and_actors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tool_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_older_revision_results, setup, teardown),
                cmocka_unit_test(test_schema),
                cmocka_unit_test_setup_teardown(test_run_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_run_oversized, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

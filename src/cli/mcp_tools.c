/* The tools of `conclave mcp` (see mcp_tools.h and docs/mcp.md). Each tool's schemas are JSON
 * text checked by mcp_schema.c: arguments are validated against the inputSchema the client
 * was shown, and answers against the outputSchema before they are sent. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "mcp_schema.h"
#include "mcp_tools.h"
#include "proto.h"

/* JSON text from tokens: the preprocessor quotes them, so schemas read as JSON. */
#define J(...) #__VA_ARGS__

#define ERROR_TEXT_MAX 1024
#define INBOX_LIMIT_DEFAULT 20
#define EVENTS_DEFAULT 20

struct tool_call {
        const struct mcp_identity *id;
        const struct mcp_backend *backend;
        struct json_object *args; /* valid under the tool's inputSchema */
        char error[ERROR_TEXT_MAX];
};

struct tool {
        const char *name;
        const char *title;
        const char *description;
        const char *input_schema;
        const char *output_schema; /* NULL: the result is not structured */
        bool read_only, idempotent;
        /* 0 with *ret the structured result, or -errno with call->error saying why. */
        int (*run)(struct tool_call *call, struct json_object **ret);
};

/* --- schemas ----------------------------------------------------------------------------- */

static const char read_inbox_input[] = J({
        "type": "object",
        "properties": {
                "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20,
                           "description": "At most this many messages, oldest first." },
                "mark_read": { "type": "boolean", "default": false,
                               "description": "Mark the returned messages read, so the next call starts after them. Replying to a message also marks it and everything before it read." }
        },
        "additionalProperties": false
});

static const char read_inbox_output[] = J({
        "type": "object",
        "properties": {
                "group": { "type": "string" },
                "actor": { "type": "string" },
                "messages": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                                "event_id": { "type": "string", "description": "Pass it to reply_to_message or ack_message." },
                                "seq": { "type": "integer" },
                                "time": { "type": "string", "description": "ISO-8601, UTC." },
                                "from": { "type": "string" },
                                "to": { "type": "array", "items": { "type": "string" } },
                                "text": { "type": "string" },
                                "reply_to": { "type": ["string", "null"], "description": "The event id this message answers." },
                                "reply_required": { "type": "boolean", "description": "You owe a reply." },
                                "attention": { "type": "boolean", "description": "You owe an ack." }
                        },
                        "required": ["event_id", "seq", "time", "from", "to", "text", "reply_to", "reply_required", "attention"]
                } },
                "more": { "type": "boolean", "description": "More unread messages follow the ones returned." },
                "obligations": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                                "kind": { "type": "string", "enum": ["reply", "ack"] },
                                "event_id": { "type": "string" },
                                "seq": { "type": "integer" },
                                "from": { "type": "string" },
                                "since": { "type": "string" }
                        },
                        "required": ["kind", "event_id", "seq", "from", "since"]
                }, "description": "Replies and acks you owe, read or not." },
                "marked_read_up_to": { "type": ["integer", "null"] }
        },
        "required": ["group", "actor", "messages", "more", "obligations", "marked_read_up_to"]
});

static const char send_message_input[] = J({
        "type": "object",
        "properties": {
                "text": { "type": "string", "minLength": 1, "maxLength": 65536,
                          "description": "The message (at most 64 KiB of UTF-8)." },
                "to": { "type": "array", "minItems": 1, "maxItems": 256,
                        "items": { "type": "string", "pattern": "^(@all|[A-Za-z0-9_-]{1,64})$" },
                        "description": "Recipients: actor ids of the group (see list_actors), or [\"@all\"] for every member but you. Default: @all." },
                "reply_required": { "type": "boolean", "default": false, "description": "Each recipient owes a reply." },
                "attention": { "type": "boolean", "default": false, "description": "Each recipient owes an ack." }
        },
        "required": ["text"],
        "additionalProperties": false
});

static const char reply_input[] = J({
        "type": "object",
        "properties": {
                "event": { "type": "string", "pattern": "^([0-9A-Z]{26}|[0-9]{1,19})$",
                           "description": "The message to answer: its event_id, or its seq as a decimal string." },
                "text": { "type": "string", "minLength": 1, "maxLength": 65536,
                          "description": "The reply (at most 64 KiB of UTF-8)." },
                "reply_required": { "type": "boolean", "default": false, "description": "The original sender owes a reply in turn." },
                "attention": { "type": "boolean", "default": false, "description": "The original sender owes an ack." }
        },
        "required": ["event", "text"],
        "additionalProperties": false
});

static const char ack_input[] = J({
        "type": "object",
        "properties": {
                "event": { "type": "string", "pattern": "^([0-9A-Z]{26}|[0-9]{1,19})$",
                           "description": "The message to acknowledge: its event_id, or its seq as a decimal string." }
        },
        "required": ["event"],
        "additionalProperties": false
});

static const char posted_output[] = J({
        "type": "object",
        "properties": {
                "group": { "type": "string" },
                "event_id": { "type": "string", "description": "The new event." },
                "seq": { "type": "integer" }
        },
        "required": ["group", "event_id", "seq"]
});

static const char recent_events_input[] = J({
        "type": "object",
        "properties": {
                "n": { "type": "integer", "minimum": 1, "maximum": 200, "default": 20,
                       "description": "How many of the group's latest events." }
        },
        "additionalProperties": false
});

static const char recent_events_output[] = J({
        "type": "object",
        "properties": {
                "group": { "type": "string" },
                "events": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                                "id": { "type": "string" },
                                "seq": { "type": "integer" },
                                "time": { "type": "string" },
                                "kind": { "type": "string", "description": "chat.message, chat.ack, chat.read, group.*, actor.*" },
                                "by": { "type": "string" },
                                "data": { "type": "object" }
                        },
                        "required": ["id", "seq", "time", "kind", "by"]
                }, "description": "Oldest first." }
        },
        "required": ["group", "events"]
});

static const char list_actors_input[] = J({
        "type": "object",
        "properties": {},
        "additionalProperties": false
});

static const char list_actors_output[] = J({
        "type": "object",
        "properties": {
                "group": { "type": "object", "properties": {
                        "id": { "type": "string" },
                        "title": { "type": "string" },
                        "state": { "type": "string", "description": "idle, active, paused, stopped or broken" }
                }, "required": ["id", "title", "state"] },
                "you": { "type": "string", "description": "Your actor id." },
                "actors": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                                "id": { "type": "string" },
                                "kind": { "type": "string", "description": "command, human or llm" },
                                "title": { "type": "string" },
                                "runtime": { "type": "string", "description": "running, stopped, restarting, failed, or n/a for actors Conclave does not run" }
                        },
                        "required": ["id", "kind", "title", "runtime"]
                } }
        },
        "required": ["group", "you", "actors"]
});

/* --- helpers ----------------------------------------------------------------------------- */

static struct json_object *get(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(struct json_object *o, const char *key) {
        struct json_object *v = get(o, key);
        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Copies o[key] into out[as] (a new reference; a missing value is copied as null, which the
 * outputSchema then refuses where a value is required). */
static int copy(struct json_object *out, const char *as, struct json_object *o, const char *key) {
        return json_object_object_add(out, as, json_object_get(get(o, key))) < 0 ? -ENOMEM : 0;
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

static int oom(struct tool_call *call) {
        snprintf(call->error, sizeof call->error, "out of memory");
        return -ENOMEM;
}

/* The control arguments every tool starts from: the group, and with by the acting actor. */
static struct json_object *args_new(const struct tool_call *call, bool by) {
        struct json_object *a = json_object_new_object();

        if (a && (add(a, "group", json_object_new_string(call->id->group)) < 0 ||
                  (by && add(a, "by", json_object_new_string(call->id->actor)) < 0))) {
                json_object_put(a);
                return NULL;
        }
        return a;
}

/* Copies the tool arguments named in keys (those present) into the control arguments. */
static int args_copy(struct json_object *a, const struct tool_call *call, const char *const *keys) {
        for (; *keys; keys++) {
                struct json_object *v = get(call->args, *keys);
                if (v && add(a, *keys, json_object_get(v)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int daemon_call(struct tool_call *call, const char *op, struct json_object *args, struct json_object **ret) {
        _cleanup_json_ struct json_object *error = NULL;
        const char *message;
        int r;

        *ret = NULL;
        r = call->backend->call(call->backend->userdata, op, args, ret, &error);
        if (r >= 0)
                return 0;
        message = get_str(error, "message");
        if (message)
                snprintf(call->error, sizeof call->error, "%s", message);
        else
                snprintf(call->error, sizeof call->error, "%s failed: %s", op, strerror(-r));
        return r;
}

static int64_t arg_int(const struct tool_call *call, const char *key, int64_t dflt) {
        struct json_object *v = get(call->args, key);
        return v ? json_object_get_int64(v) : dflt; /* an integral double converts exactly */
}

/* --- tools ------------------------------------------------------------------------------- */

static struct json_object *message_new(struct json_object *event) {
        _cleanup_json_ struct json_object *m = json_object_new_object();
        struct json_object *data = get(event, "data"), *to = get(data, "to");

        if (!m || copy(m, "event_id", event, "id") < 0 || copy(m, "seq", event, "seq") < 0 ||
            copy(m, "time", event, "ts") < 0 || copy(m, "from", event, "by") < 0)
                return NULL;
        if (json_object_is_type(to, json_type_array)) {
                if (copy(m, "to", data, "to") < 0)
                        return NULL;
        } else {
                /* Older events may name one recipient or none (everyone). */
                struct json_object *a = json_object_new_array();
                if (add(m, "to", a) < 0 ||
                    json_object_array_add(a, json_object_new_string(json_object_is_type(to, json_type_string)
                                                                            ? json_object_get_string(to) : "@all")) < 0)
                        return NULL;
        }
        if (copy(m, "text", data, "text") < 0 || copy(m, "reply_to", data, "reply_to") < 0 ||
            add(m, "reply_required", json_object_new_boolean(json_object_get_boolean(get(data, "reply_required")))) < 0 ||
            add(m, "attention", json_object_new_boolean(streq(get_str(data, "priority"), "attention"))) < 0)
                return NULL;
        return json_object_get(m);
}

static struct json_object *obligation_new(struct json_object *o) {
        _cleanup_json_ struct json_object *out = json_object_new_object();
        static const char *const keys[] = { "kind", "event_id", "seq", "from", "since" };

        if (!out)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (copy(out, keys[i], o, keys[i]) < 0)
                        return NULL;
        return json_object_get(out);
}

/* A new array of f(item) for each item of the array in (none when in is not an array). */
static struct json_object *map_array(struct json_object *in, struct json_object *(*f)(struct json_object *)) {
        _cleanup_json_ struct json_object *out = json_object_new_array();
        size_t n = json_object_is_type(in, json_type_array) ? json_object_array_length(in) : 0;

        for (size_t i = 0; out && i < n; i++) {
                struct json_object *item = f(json_object_array_get_idx(in, i));
                if (!item || json_object_array_add(out, item) < 0) {
                        json_object_put(item);
                        return NULL;
                }
        }
        return json_object_get(out);
}

static int run_read_inbox(struct tool_call *call, struct json_object **ret) {
        _cleanup_json_ struct json_object *a = args_new(call, false), *result = NULL, *out = json_object_new_object();
        struct json_object *mark = get(call->args, "mark_read");
        int r;

        if (!a || !out || add(a, "actor", json_object_new_string(call->id->actor)) < 0 ||
            add(a, "limit", json_object_new_int64(arg_int(call, "limit", INBOX_LIMIT_DEFAULT))) < 0 ||
            add(a, "mark_read", json_object_new_boolean(mark && json_object_get_boolean(mark))) < 0)
                return oom(call);
        r = daemon_call(call, "inbox.list", a, &result);
        if (r < 0)
                return r;
        if (copy(out, "group", result, "group") < 0 || copy(out, "actor", result, "actor") < 0 ||
            add(out, "messages", map_array(get(result, "unread"), message_new)) < 0 ||
            copy(out, "more", result, "unread_more") < 0 ||
            add(out, "obligations", map_array(get(result, "obligations"), obligation_new)) < 0 ||
            copy(out, "marked_read_up_to", result, "marked_read_up_to") < 0)
                return oom(call);
        *ret = json_object_get(out);
        return 0;
}

static int posted(struct tool_call *call, const char *op, const char *const *keys, struct json_object **ret) {
        _cleanup_json_ struct json_object *a = args_new(call, true), *result = NULL, *out = json_object_new_object();
        int r;

        if (!a || !out || args_copy(a, call, keys) < 0)
                return oom(call);
        r = daemon_call(call, op, a, &result);
        if (r < 0)
                return r;
        if (copy(out, "group", result, "group") < 0 || copy(out, "event_id", result, "event_id") < 0 ||
            copy(out, "seq", result, "seq") < 0)
                return oom(call);
        *ret = json_object_get(out);
        return 0;
}

static int run_send_message(struct tool_call *call, struct json_object **ret) {
        static const char *const keys[] = { "text", "to", "reply_required", "attention", NULL };
        return posted(call, "message.send", keys, ret);
}

static int run_reply(struct tool_call *call, struct json_object **ret) {
        static const char *const keys[] = { "event", "text", "reply_required", "attention", NULL };
        return posted(call, "message.reply", keys, ret);
}

static int run_ack(struct tool_call *call, struct json_object **ret) {
        static const char *const keys[] = { "event", NULL };
        return posted(call, "message.ack", keys, ret);
}

static struct json_object *event_new(struct json_object *event) {
        _cleanup_json_ struct json_object *e = json_object_new_object();

        if (!e || copy(e, "id", event, "id") < 0 || copy(e, "seq", event, "seq") < 0 || copy(e, "time", event, "ts") < 0 ||
            copy(e, "kind", event, "kind") < 0 || copy(e, "by", event, "by") < 0 ||
            (get(event, "data") && copy(e, "data", event, "data") < 0))
                return NULL;
        return json_object_get(e);
}

static int run_recent_events(struct tool_call *call, struct json_object **ret) {
        _cleanup_json_ struct json_object *a = args_new(call, false), *result = NULL, *out = json_object_new_object();
        int r;

        if (!a || !out || add(a, "n", json_object_new_int64(arg_int(call, "n", EVENTS_DEFAULT))) < 0)
                return oom(call);
        r = daemon_call(call, "events.tail", a, &result);
        if (r < 0)
                return r;
        if (add(out, "group", json_object_new_string(call->id->group)) < 0 ||
            add(out, "events", map_array(result, event_new)) < 0)
                return oom(call);
        *ret = json_object_get(out);
        return 0;
}

static struct json_object *actor_new(struct json_object *actor) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || copy(o, "id", actor, "id") < 0 || copy(o, "kind", actor, "kind") < 0 ||
            copy(o, "title", actor, "title") < 0 || copy(o, "runtime", actor, "runtime") < 0)
                return NULL;
        return json_object_get(o);
}

static int run_list_actors(struct tool_call *call, struct json_object **ret) {
        _cleanup_json_ struct json_object *a = args_new(call, false), *result = NULL, *out = json_object_new_object(),
                                          *group = json_object_new_object();
        int r;

        if (!a || !out || !group)
                return oom(call);
        r = daemon_call(call, "group.show", a, &result);
        if (r < 0)
                return r;
        if (copy(group, "id", result, "id") < 0 || copy(group, "title", result, "title") < 0 ||
            copy(group, "state", result, "state") < 0 || add(out, "group", json_object_get(group)) < 0 ||
            add(out, "you", json_object_new_string(call->id->actor)) < 0 ||
            add(out, "actors", map_array(get(result, "actors"), actor_new)) < 0)
                return oom(call);
        *ret = json_object_get(out);
        return 0;
}

static const struct tool tools[] = {
        {
                .name = "read_inbox",
                .title = "Read inbox",
                .description = "Your unread messages in the group, oldest first, and the replies and acks you owe. "
                               "Messages with reply_required want reply_to_message; messages with attention want ack_message.",
                .input_schema = read_inbox_input,
                .output_schema = read_inbox_output,
                .run = run_read_inbox,
        },
        {
                .name = "send_message",
                .title = "Send a message",
                .description = "Send a message to the group as you, to everyone (the default) or to some members. "
                               "reply_required makes each recipient owe a reply, attention an ack.",
                .input_schema = send_message_input,
                .output_schema = posted_output,
                .run = run_send_message,
        },
        {
                .name = "reply_to_message",
                .title = "Reply to a message",
                .description = "Reply to a message (by its event_id or seq). The reply goes to the message's sender and "
                               "settles the reply you owe for it; it also marks your inbox read up to that message.",
                .input_schema = reply_input,
                .output_schema = posted_output,
                .run = run_reply,
        },
        {
                .name = "ack_message",
                .title = "Acknowledge a message",
                .description = "Acknowledge a message sent with attention (by its event_id or seq), settling the ack you "
                               "owe for it. Fails if you owe no ack for it.",
                .input_schema = ack_input,
                .output_schema = posted_output,
                .run = run_ack,
        },
        {
                .name = "recent_events",
                .title = "Recent events",
                .description = "The group's latest events from its ledger, oldest first: messages, acks, read marks, "
                               "and group and actor changes, each with who did it.",
                .input_schema = recent_events_input,
                .output_schema = recent_events_output,
                .read_only = true,
                .idempotent = true,
                .run = run_recent_events,
        },
        {
                .name = "list_actors",
                .title = "List actors",
                .description = "The group (its state) and its members: their ids (for send_message's to), kinds and "
                               "whether they are running.",
                .input_schema = list_actors_input,
                .output_schema = list_actors_output,
                .read_only = true,
                .idempotent = true,
                .run = run_list_actors,
        },
};

/* --- the MCP side ------------------------------------------------------------------------ */

static struct json_object *parse(const char *text) {
        struct json_object *o = json_tokener_parse(text);
        if (!o)
                log_error("mcp: a built-in schema does not parse"); /* caught by the unit tests */
        return o;
}

unsigned mcp_tools_count(void) {
        return ELEMENTSOF(tools);
}

static bool at_least(const char *revision, const char *since) {
        return strcmp(revision, since) >= 0; /* YYYY-MM-DD strings sort by date */
}

static struct json_object *tool_definition(const struct tool *t, const char *revision) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        bool structured = at_least(revision, MCP_REVISION_STRUCTURED);

        if (!o || add(o, "name", json_object_new_string(t->name)) < 0 ||
            (structured && add(o, "title", json_object_new_string(t->title)) < 0) ||
            add(o, "description", json_object_new_string(t->description)) < 0 ||
            add(o, "inputSchema", parse(t->input_schema)) < 0 ||
            (structured && t->output_schema && add(o, "outputSchema", parse(t->output_schema)) < 0))
                return NULL;
        if (at_least(revision, MCP_REVISION_ANNOTATIONS)) {
                struct json_object *an = json_object_new_object();
                if (add(o, "annotations", an) < 0 || add(an, "title", json_object_new_string(t->title)) < 0 ||
                    add(an, "readOnlyHint", json_object_new_boolean(t->read_only)) < 0 ||
                    add(an, "destructiveHint", json_object_new_boolean(false)) < 0 ||
                    add(an, "idempotentHint", json_object_new_boolean(t->idempotent)) < 0 ||
                    add(an, "openWorldHint", json_object_new_boolean(false)) < 0)
                        return NULL;
        }
        return json_object_get(o);
}

int mcp_tools_list(const char *revision, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *list = json_object_new_array();

        if (!o || !list)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(tools); i++) {
                struct json_object *t = tool_definition(&tools[i], revision);
                if (!t || json_object_array_add(list, t) < 0) {
                        json_object_put(t);
                        return -ENOMEM;
                }
        }
        if (add(o, "tools", json_object_get(list)) < 0)
                return -ENOMEM;
        *ret = json_object_get(o);
        return 0;
}

/* {"content":[{"type":"text","text":text}],"isError":is_error} plus structuredContent. */
static int result_new(const char *text, struct json_object *structured, bool is_error, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *content = json_object_new_array(),
                                          *item = json_object_new_object();

        if (!o || !content || !item || add(item, "type", json_object_new_string("text")) < 0 ||
            add(item, "text", json_object_new_string(text)) < 0 || json_object_array_add(content, json_object_get(item)) < 0 ||
            add(o, "content", json_object_get(content)) < 0 ||
            (structured && add(o, "structuredContent", json_object_get(structured)) < 0) ||
            add(o, "isError", json_object_new_boolean(is_error)) < 0)
                return -ENOMEM;
        *ret = json_object_get(o);
        return 0;
}

static int error_result(const char *what, const char *message, struct json_object **ret) {
        char text[ERROR_TEXT_MAX + 128];
        snprintf(text, sizeof text, "%s: %s", what, message);
        return result_new(text, NULL, true, ret);
}

int mcp_tools_call(const char *name, struct json_object *arguments, const struct mcp_identity *id,
                   const struct mcp_backend *backend, const char *revision, struct json_object **ret) {
        _cleanup_json_ struct json_object *input = NULL, *output_schema = NULL, *output = NULL, *empty = NULL;
        struct tool_call call = { .id = id, .backend = backend, .args = arguments };
        const struct tool *t = NULL;
        char err[512];
        int r;

        for (size_t i = 0; i < ELEMENTSOF(tools); i++)
                if (streq(tools[i].name, name))
                        t = &tools[i];
        if (!t)
                return -ENOENT;
        if (!call.args && !(call.args = empty = json_object_new_object()))
                return -ENOMEM;
        input = parse(t->input_schema);
        output_schema = t->output_schema ? parse(t->output_schema) : NULL;
        if (!input || (t->output_schema && !output_schema))
                return -ENOMEM;
        r = mcp_schema_validate(input, call.args, err, sizeof err);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_result("invalid arguments", err, ret);

        r = t->run(&call, &output);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_result(t->name, call.error, ret);
        /* What the outputSchema promises is checked, not assumed: a daemon of another version
         * could answer differently, and the client rejects a result that does not match. */
        r = output_schema ? mcp_schema_validate(output_schema, output, err, sizeof err) : 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error("mcp: %s: the daemon's answer does not match the tool's outputSchema: %s", t->name, err);
                return error_result(t->name, "the daemon's answer was not understood (is conclave the same version as the running daemon?)",
                                    ret);
        }
        return result_new(json_object_to_json_string_ext(output, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                          output_schema && at_least(revision, MCP_REVISION_STRUCTURED) ? output : NULL, false, ret);
}

/* The tools of `conclave mcp`: their definitions (tools/list) and their calls (tools/call),
 * each one control socket operation done as one actor of one group. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

/* How tools reach the daemon: one control operation. 0 with *ret_result set (a new
 * reference, may be NULL), or a negative errno with *ret_error set to a new
 * {"code":…,"message":…} object saying why (the daemon's refusal, or "not_running"). */
struct mcp_backend {
        int (*call)(void *userdata, const char *op, struct json_object *args, struct json_object **ret_result,
                    struct json_object **ret_error);
        void *userdata;
};

/* Who the agent is: every action is done in `group` with by = `actor`. */
struct mcp_identity {
        const char *group;
        const char *actor;
};

/* The protocol revisions that added fields to tool definitions and results. */
#define MCP_REVISION_ANNOTATIONS "2025-03-26" /* annotations */
#define MCP_REVISION_STRUCTURED "2025-06-18"  /* title, outputSchema, structuredContent */

/* {"tools":[Tool…]} for the negotiated protocol revision (a "YYYY-MM-DD" string). */
int mcp_tools_list(const char *revision, struct json_object **ret);

/* Runs tool `name` with `arguments` (an object, or NULL for none). -ENOENT: no such tool;
 * -ENOMEM. Otherwise 0 with *ret a CallToolResult; arguments that do not satisfy the tool's
 * inputSchema and refusals by the daemon are results with isError true, so the model sees
 * them. */
int mcp_tools_call(const char *name, struct json_object *arguments, const struct mcp_identity *id,
                   const struct mcp_backend *backend, const char *revision, struct json_object **ret);

/* The number of tools. */
unsigned mcp_tools_count(void);

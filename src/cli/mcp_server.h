/* The protocol side of `conclave mcp`: JSON-RPC 2.0 messages one per line (the MCP stdio
 * transport), the initialize handshake with protocol revision negotiation, ping, and
 * tools/list and tools/call handed to mcp_tools.c. No daemon in here: the tools reach it
 * through the backend, so all of this is testable on its own. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "mcp_tools.h"

/* A received line longer than this is refused (answered with an error and skipped). */
#define MCP_LINE_MAX (4u * 1024u * 1024u)

/* JSON-RPC 2.0 error codes. */
enum {
        JSONRPC_PARSE_ERROR = -32700,
        JSONRPC_INVALID_REQUEST = -32600,
        JSONRPC_METHOD_NOT_FOUND = -32601,
        JSONRPC_INVALID_PARAMS = -32602,
        JSONRPC_INTERNAL_ERROR = -32603,
};

/* Protocol revisions we speak, newest first (the first is what we offer to a client asking
 * for one we do not know). */
extern const char *const mcp_protocol_revisions[];

struct mcp_server;

/* id and backend are borrowed and must outlive the server. */
int mcp_server_new(const struct mcp_identity *id, const struct mcp_backend *backend, struct mcp_server **ret);
struct mcp_server *mcp_server_free(struct mcp_server *s);

/* The revision agreed in initialize; NULL before. */
const char *mcp_server_revision(const struct mcp_server *s);

/* Handles one received line (without its newline; line[len] must be 0). 0 with *ret_reply
 * the message to send back (a new reference), or NULL when nothing is due (notifications,
 * responses, blank lines); -ENOMEM. */
int mcp_server_handle_line(struct mcp_server *s, const char *line, size_t len, struct json_object **ret_reply);

/* Serves in_fd/out_fd until EOF on in_fd: 0 then; -errno when reading or writing fails
 * (-EPIPE: the client went away). */
int mcp_server_run(struct mcp_server *s, int in_fd, int out_fd);

/* Control socket protocol ($XDG_RUNTIME_DIR/conclave/control.sock): newline-delimited JSON.
 *   request:  {"op":"status","args":{…}}
 *   reply:    {"ok":true,"result":…}  or  {"ok":false,"error":{"code":"…","message":"…"}}
 * Client side helpers used by the CLI; the server lives in the supervisor. */
#pragma once

#include <json-c/json.h>

#define CONTROL_LINE_MAX (4u * 1024u * 1024u)

/* Connects to the daemon's control socket. -ENOENT / -ECONNREFUSED: daemon not running. */
int control_connect(const char *path);

/* Sends one request and waits for its reply. On {"ok":false} returns -EREMOTEIO with
 * *ret_error (optional) set to the error object; on success *ret_result gets the result. */
int control_call(int fd, const char *op, struct json_object *args, struct json_object **ret_result,
                 struct json_object **ret_error);

/* Reads one '\n'-terminated line of at most `max` bytes (blocking). -ECONNRESET on EOF. */
int control_read_line(int fd, char **ret, size_t max);

/* Builds {"ok":false,"error":{"code":code,"message":message}}. */
struct json_object *control_error_new(const char *code, const char *message);

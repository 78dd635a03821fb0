/* The control socket the CLI talks to: $XDG_RUNTIME_DIR/conclave/control.sock, mode 0600,
 * only peers with our uid (SO_PEERCRED). Newline-delimited JSON requests and replies.
 *
 * Operations are handled by functions that get a request object; they answer it at once or
 * later (e.g. after the ledger is durable), or keep it open as a stream (tail -f). A request
 * whose connection went away is still answered safely: the reply is dropped. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "macro.h"

struct supervisor;
struct control_server;
struct control_request;

typedef int (*control_op_handler)(struct supervisor *s, struct control_request *req,
                                  struct json_object *args);
struct control_op {
        const char *name;
        control_op_handler handler;
};
/* Defined in ops_*.c; NULL-terminated by a { NULL } entry. */
extern const struct control_op control_ops_core[];
extern const struct control_op control_ops_groups[];
extern const struct control_op control_ops_backup[];
extern const struct control_op control_ops_automation[];
extern const struct control_op control_ops_llm[];
extern const struct control_op control_ops_channels[];

/* Requests from a worker over its channel (proto_link.h): answered with "reply" packets, streams
 * with "stream" packets. A worker that goes away (detach) gets no answers; its streams end. */
struct worker_proc;
void control_request_from_worker(struct supervisor *s, struct worker_proc *w, uint64_t id, struct json_object *data);
void control_request_cancel_from_worker(struct worker_proc *w, uint64_t id);
void control_requests_detach_worker(struct worker_proc *w);

int control_server_new(struct supervisor *s, const char *path, struct control_server **ret);
struct control_server *control_server_free(struct control_server *c);

/* Each of these answers and frees the request (not for streams). result is borrowed. */
void control_request_reply(struct control_request *req, struct json_object *result);
void control_request_error(struct control_request *req, const char *code, const char *fmt, ...) _printf_(3, 4);

/* Streams: the request stays open; each line is {"ok":true,"event":…} style objects the op
 * builds. on_close runs (once) when the client goes away or the server shuts down, and must
 * release what points at the request; the request is freed after it returns. */
int control_request_stream_begin(struct control_request *req, void (*on_close)(struct control_request *req, void *userdata),
                                 void *userdata);
/* Queues one line; -ENOBUFS when the client reads too slowly (the stream is then closed). */
int control_request_stream_send(struct control_request *req, struct json_object *line);


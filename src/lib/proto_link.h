/* One end of the supervisor <-> worker channel (proto.h framing) on an sd-event loop: packets
 * are queued when the socket is full instead of being lost, and a worker can call the
 * supervisor's control operations over it and wait for the answer without blocking:
 *
 *   worker → supervisor  {"type":"request","id":N,"data":{"op":"message.send","args":{…}}}
 *   supervisor → worker  {"type":"reply","id":N,"data":{"ok":true,"result":…}}
 *                        {"type":"stream","id":N,"data":{…}}     (streaming ops, one per line)
 *                        {"type":"stream.end","id":N}
 *
 * The reply objects are the control socket's (docs/control-protocol.md), so both transports
 * share one set of operations in the supervisor. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Beyond this much queued output the peer is not reading: sends fail with -ENOBUFS. */
#define PROTO_LINK_QUEUE_MAX (64u * 1024u * 1024u)

struct proto_link;
struct proto_call;

/* Every packet that is not a reply to one of our calls. msg is borrowed. */
typedef void (*proto_link_message_cb)(struct proto_link *l, struct json_object *msg, void *userdata);
/* The peer closed the channel (or it failed). Pending calls have been failed already. */
typedef void (*proto_link_closed_cb)(struct proto_link *l, void *userdata);

/* Takes ownership of fd (made non-blocking). */
int proto_link_new(sd_event *event, int fd, proto_link_message_cb on_message, proto_link_closed_cb on_closed,
                   void *userdata, struct proto_link **ret);
/* Fails every pending call with -ECONNABORTED, closes the fd. */
struct proto_link *proto_link_free(struct proto_link *l);
static inline void proto_link_freep(struct proto_link **l) {
        if (*l)
                *l = proto_link_free(*l);
}
bool proto_link_is_open(const struct proto_link *l);
int proto_link_fd(const struct proto_link *l);

/* Sends at once, or queues and sends when the socket has room. -EMSGSIZE: packet over
 * PROTO_PACKET_MAX; -ENOBUFS: queue full; -ENOTCONN: closed. data is borrowed. */
int proto_link_send(struct proto_link *l, const char *type, uint64_t id, struct json_object *data);
size_t proto_link_queued_bytes(const struct proto_link *l);

/* A call's outcome. reply is the {"ok":…} object (borrowed), or NULL with error < 0:
 * -ETIMEDOUT, -ECONNABORTED (link closed), -ENOBUFS/-EMSGSIZE (could not send).
 * For a streaming call the callback runs once per stream line (more = true), then once with
 * reply NULL and error 0 when the stream ends normally (or error < 0 when it breaks). */
typedef void (*proto_call_cb)(struct json_object *reply, int error, bool more, void *userdata);

/* Calls op with args (borrowed, may be NULL). timeout_usec 0: no timeout (streams). The
 * callback is never run from inside proto_link_call(). *ret (optional) can cancel the call. */
int proto_link_call(struct proto_link *l, const char *op, struct json_object *args, uint64_t timeout_usec,
                    bool streaming, proto_call_cb cb, void *userdata, struct proto_call **ret);
/* The callback will not run any more. Returns the call's userdata (for the caller to free). */
void *proto_call_cancel(struct proto_call *c);

/* Supervisor <-> worker channel: a SOCK_SEQPACKET socketpair, one JSON object per packet:
 *   {"v":1,"type":"config","id":7,"data":{…}}
 * "v" is the protocol version (a receiver refuses other versions), "type" says what "data"
 * holds, "id" (optional) pairs a reply with its request. See docs/architecture.md. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_PACKET_MAX (256u * 1024u)
#define PROTO_CHANNEL_FD_ENV "CONCLAVE_CHANNEL_FD"

/* Sends {"v":1,"type":type,"id":id,"data":data}. data is borrowed (may be NULL); id 0 = none.
 * -EMSGSIZE when the encoded packet exceeds PROTO_PACKET_MAX. */
int proto_send(int fd, const char *type, uint64_t id, struct json_object *data);

/* The packet proto_send() would send, newly allocated (not NUL-counted in *ret_len). */
int proto_encode(const char *type, uint64_t id, struct json_object *data, char **ret, size_t *ret_len);

/* Receives one packet. 0 with *ret set; -EAGAIN when nothing is queued; -ECONNRESET on EOF;
 * -EPROTO for a packet that is not a valid message of our version (the packet is consumed). */
int proto_recv(int fd, struct json_object **ret);

/* Parses one packet's bytes; used by proto_recv and the fuzzer. */
int proto_decode(const char *buf, size_t len, struct json_object **ret);

const char *proto_type(struct json_object *msg);
uint64_t proto_id(struct json_object *msg);
struct json_object *proto_data(struct json_object *msg); /* borrowed, may be NULL */

/* The channel fd a worker inherited (from $CONCLAVE_CHANNEL_FD), or -ENOENT when standalone. */
int proto_channel_fd_from_env(void);

static inline void json_object_putp(struct json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(json_object_putp)))

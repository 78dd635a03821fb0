/* The gateway's link to the supervisor: control operations as calls over the worker channel
 * (proto_link.h), and one live stream of every durable event, fanned out to the event-stream
 * clients (sse.h). Standalone (`conclave gateway`) there is no supervisor: calls fail with
 * -ENOTCONN and the API answers 503. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "proto_link.h"

/* How long a request waits for the supervisor before the client gets 503. */
#define UPSTREAM_CALL_TIMEOUT_USEC (15 * USEC_PER_SEC)
/* How long /readyz waits for the supervisor's answer to a ping. */
#define UPSTREAM_PING_TIMEOUT_USEC (2 * USEC_PER_SEC)

struct upstream;
struct sse_hub;

int upstream_new(sd_event *event, struct proto_link *link, struct sse_hub *hub, struct upstream **ret);
struct upstream *upstream_free(struct upstream *u);
/* True while the supervisor answers and the live event stream runs. */
bool upstream_ready(const struct upstream *u);
int upstream_call(struct upstream *u, const char *op, struct json_object *args, proto_call_cb cb, void *userdata,
                  struct proto_call **ret);
/* The same with its own timeout. */
int upstream_call_timeout(struct upstream *u, const char *op, struct json_object *args, uint64_t timeout_usec,
                          proto_call_cb cb, void *userdata, struct proto_call **ret);

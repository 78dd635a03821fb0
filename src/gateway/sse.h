/* Server-Sent Events: GET /api/v1/groups/{g}/events/stream. Each client first catches up from
 * the ledger (events.range after its Last-Event-ID), then gets live events from the one stream
 * the gateway holds from the supervisor; the event's seq is its SSE id, so a client that
 * reconnects resumes exactly where it left off. Slow clients are cut off, not buffered forever. */
#pragma once

#include <stdint.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "request.h"

#define SSE_HEARTBEAT_USEC (15 * USEC_PER_SEC)
#define SSE_CLIENT_BUFFER_MAX (4u * 1024u * 1024u)

struct sse_hub;
struct upstream;

int sse_hub_new(sd_event *event, struct sse_hub **ret);
struct sse_hub *sse_hub_free(struct sse_hub *hub);
void sse_hub_set_upstream(struct sse_hub *hub, struct upstream *up);
unsigned sse_hub_clients(const struct sse_hub *hub);

/* A live event from the supervisor (borrowed). */
void sse_hub_publish(struct sse_hub *hub, struct json_object *event);
/* The live stream was interrupted: every client catches up from the ledger again. */
void sse_hub_resync(struct sse_hub *hub);

/* after_seq for a client that wants only events from now on. */
#define SSE_FROM_NOW UINT64_MAX

/* Starts a stream for req (answered with 200 once the group is known, or an error). */
void sse_start(struct sse_hub *hub, struct http_request *req, const char *group, uint64_t after_seq);
/* MHD is done with req. */
void sse_request_done(struct http_request *req);

/* Server-Sent Events for the ledger of a group (sse.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "proto.h"
#include "sse.h"
#include "upstream.h"

#define SSE_PAGE 500

/* Text to send, shared by every client it is queued for: a live event is formatted once and
 * queued by reference, so fanning it out to a thousand clients costs a thousand small queue
 * entries, not a thousand copies. */
struct sse_chunk {
        unsigned refs;
        size_t len;
        char data[];
};

struct sse_item {
        struct sse_item *next;
        struct sse_chunk *chunk;
};

static struct sse_chunk *chunk_new(const char *text, size_t len) {
        struct sse_chunk *ch = malloc(sizeof *ch + len);

        if (!ch)
                return NULL;
        ch->refs = 1;
        ch->len = len;
        memcpy(ch->data, text, len);
        return ch;
}

static void chunk_unref(struct sse_chunk *ch) {
        if (ch && --ch->refs == 0)
                free(ch);
}

struct sse_client {
        struct sse_hub *hub;
        struct sse_client *next, *prev;
        struct http_request *req; /* NULL once MHD is done with it */
        unsigned refs;            /* the request, and the response's reader */
        char group[65];
        uint64_t last_sent;       /* seq of the last event written (or the client's Last-Event-ID) */
        bool catching_up;         /* reading the ledger; live events are skipped meanwhile */
        bool started;             /* the 200 answer exists */
        bool closing;             /* end the stream once the buffer is written */
        struct proto_call *call;
        struct sse_item *head, *tail; /* what is still to be sent, oldest first */
        size_t head_pos;              /* bytes of head's chunk already sent */
        size_t queued;                /* bytes still to be sent */
};

struct sse_hub {
        sd_event *event;
        struct upstream *upstream;
        struct sse_client *clients;
        unsigned n_clients;
        sd_event_source *heartbeat;
        struct sse_chunk *ping;
};

static void client_drop_queue(struct sse_client *c) {
        while (c->head) {
                struct sse_item *next = c->head->next;
                chunk_unref(c->head->chunk);
                free(c->head);
                c->head = next;
        }
        c->tail = NULL;
        c->head_pos = c->queued = 0;
}

static void client_unref(struct sse_client *c) {
        if (--c->refs > 0)
                return;
        proto_call_cancel(c->call);
        if (c->hub) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        c->hub->clients = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                c->hub->n_clients--;
        }
        client_drop_queue(c);
        free(c);
}

static void client_wake(struct sse_client *c) {
        if (c->req && c->started)
                http_request_wake(c->req);
}

static void client_close(struct sse_client *c) {
        c->closing = true;
        client_wake(c);
}

/* Queues a reference to ch. */
static int client_queue(struct sse_client *c, struct sse_chunk *ch) {
        struct sse_item *item;

        if (c->closing)
                return -EPIPE;
        if (c->queued + ch->len > SSE_CLIENT_BUFFER_MAX) {
                /* Too slow to keep up: it reconnects with Last-Event-ID and catches up. */
                log_notice("event stream of group %s to %s is %u bytes behind; closing it", c->group,
                           c->req ? c->req->client : "?", SSE_CLIENT_BUFFER_MAX);
                client_close(c);
                return -ENOBUFS;
        }
        item = malloc(sizeof *item);
        if (!item)
                return -ENOMEM;
        ch->refs++;
        *item = (struct sse_item){ .chunk = ch };
        if (c->tail)
                c->tail->next = item;
        else
                c->head = item;
        c->tail = item;
        c->queued += ch->len;
        return 0;
}

static int client_append(struct sse_client *c, const char *text, size_t len) {
        struct sse_chunk *ch = chunk_new(text, len);
        int r;

        if (!ch)
                return -ENOMEM;
        r = client_queue(c, ch);
        chunk_unref(ch);
        return r;
}

/* "id: SEQ\ndata: JSON\n\n"; JSON without pretty-printing has no newlines, so one data: line
 * holds it. */
static struct sse_chunk *event_chunk(struct json_object *event, uint64_t seq) {
        const char *json = json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *text = NULL;
        int n;

        n = asprintf(&text, "id: %" PRIu64 "\ndata: %s\n\n", seq, json);
        return n < 0 ? NULL : chunk_new(text, (size_t) n);
}

static int client_send_chunk(struct sse_client *c, struct sse_chunk *ch, uint64_t seq) {
        int r = client_queue(c, ch);

        if (r >= 0)
                c->last_sent = seq;
        return r;
}

static int client_send_event(struct sse_client *c, struct json_object *event, uint64_t seq) {
        struct sse_chunk *ch = event_chunk(event, seq);
        int r;

        if (!ch)
                return -ENOMEM;
        r = client_send_chunk(c, ch, seq);
        chunk_unref(ch);
        return r;
}

static uint64_t event_seq(struct json_object *event) {
        struct json_object *v;
        return json_object_object_get_ex(event, "seq", &v) ? json_object_get_uint64(v) : 0;
}

static const char *event_group(struct json_object *event) {
        struct json_object *v;
        return json_object_object_get_ex(event, "group_id", &v) ? json_object_get_string(v) : NULL;
}

static void client_catch_up(struct sse_client *c);

static ssize_t on_read(void *userdata, uint64_t pos, char *buf, size_t max) {
        struct sse_client *c = userdata;
        size_t n = 0;

        if (!c->head) {
                if (c->closing || !c->req)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                /* Nothing to send: park the connection until an event or heartbeat wakes it. */
                http_request_suspend(c->req);
                return 0;
        }
        while (c->head && n < max) {
                struct sse_item *item = c->head;
                size_t k = item->chunk->len - c->head_pos;

                if (k > max - n)
                        k = max - n;
                memcpy(buf + n, item->chunk->data + c->head_pos, k);
                n += k;
                c->head_pos += k;
                c->queued -= k;
                if (c->head_pos == item->chunk->len) {
                        c->head = item->next;
                        if (!c->head)
                                c->tail = NULL;
                        c->head_pos = 0;
                        chunk_unref(item->chunk);
                        free(item);
                }
        }
        return (ssize_t) n;
}

static void on_response_freed(void *userdata) {
        client_unref(userdata);
}

static void client_begin_response(struct sse_client *c) {
        struct MHD_Response *response;

        /* The block size is a buffer MHD allocates per response but, for a chunked stream,
         * does not use (on_read writes into the connection's own buffer): keep it small. */
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, on_read, c, on_response_freed);
        if (!response) {
                http_request_respond_error(c->req, 500, "internal", "cannot create the event stream");
                return;
        }
        c->refs++;
        if (http_response_add_common_headers(response, "text/event-stream") < 0 ||
            MHD_add_response_header(response, "X-Accel-Buffering", "no") == MHD_NO) {
                MHD_destroy_response(response);
                http_request_respond_error(c->req, 500, "internal", "cannot create the event stream");
                return;
        }
        c->started = true;
        /* A comment first: proxies and browsers see the stream open at once. */
        (void) client_append(c, ": conclave event stream\n\n", 25);
        http_request_respond(c->req, 200, response);
}

static void on_range(struct json_object *reply, int error, bool more, void *userdata) {
        struct sse_client *c = userdata;
        struct json_object *result = NULL, *events = NULL, *v, *ok = NULL;

        c->call = NULL;
        if (!c->req) {
                client_unref(c); /* the reference the call held */
                return;
        }
        if (!reply || !json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
                struct json_object *err = NULL, *code = NULL, *message = NULL;
                if (reply && json_object_object_get_ex(reply, "error", &err)) {
                        json_object_object_get_ex(err, "code", &code);
                        json_object_object_get_ex(err, "message", &message);
                }
                if (!c->started)
                        http_request_respond_error(c->req, code && streq(json_object_get_string(code), "not_found") ? 404 : 503,
                                                   code ? json_object_get_string(code) : "unavailable", "%s",
                                                   message ? json_object_get_string(message)
                                                           : "the supervisor did not answer; try again");
                else
                        client_close(c); /* the client reconnects and resumes */
                client_unref(c);
                return;
        }
        json_object_object_get_ex(reply, "result", &result);
        if (!c->started)
                client_begin_response(c);
        if (c->last_sent == SSE_FROM_NOW) {
                c->last_sent = json_object_object_get_ex(result, "last_seq", &v) ? json_object_get_uint64(v) : 0;
                c->catching_up = false;
                client_wake(c);
                client_unref(c);
                return;
        }
        if (json_object_object_get_ex(result, "events", &events))
                for (size_t i = 0; i < json_object_array_length(events); i++) {
                        struct json_object *ev = json_object_array_get_idx(events, i);
                        uint64_t seq = event_seq(ev);
                        if (seq > c->last_sent && client_send_event(c, ev, seq) < 0)
                                break;
                }
        if (json_object_object_get_ex(result, "next_after_seq", &v) && json_object_get_uint64(v) > c->last_sent)
                c->last_sent = json_object_get_uint64(v);
        v = NULL;
        if (json_object_object_get_ex(result, "more", &v) && json_object_get_boolean(v) && !c->closing) {
                client_unref(c);
                client_catch_up(c);
                return;
        }
        /* Everything durable up to this answer is written; later events arrive live, after it. */
        c->catching_up = false;
        client_wake(c);
        client_unref(c);
}

static void client_catch_up(struct sse_client *c) {
        _cleanup_json_ struct json_object *args = json_object_new_object();
        int r;

        c->catching_up = true;
        if (c->call || !c->req)
                return;
        if (!c->hub) {
                client_close(c);
                return;
        }
        if (!args) {
                client_close(c);
                return;
        }
        json_object_object_add(args, "group", json_object_new_string(c->group));
        /* From now: past the end, so the answer has no events, only the last seq. */
        json_object_object_add(args, "after_seq", json_object_new_int64(c->last_sent == SSE_FROM_NOW ? INT64_MAX
                                                                                                   : (int64_t) c->last_sent));
        json_object_object_add(args, "limit", json_object_new_int(SSE_PAGE));
        c->refs++;
        r = upstream_call(c->hub->upstream, "events.range", args, on_range, c, &c->call);
        if (r < 0) {
                c->refs--;
                if (!c->started)
                        http_request_respond_error(c->req, 503, "unavailable", "the supervisor is not available%s",
                                                   r == -ENOTCONN ? " (standalone gateway?)" : "");
                else
                        client_close(c);
        }
}

void sse_start(struct sse_hub *hub, struct http_request *req, const char *group, uint64_t after_seq) {
        struct sse_client *c = calloc(1, sizeof *c);

        if (!c) {
                http_request_respond_error(req, 500, "internal", "out of memory");
                return;
        }
        c->hub = hub;
        c->req = req;
        c->refs = 1;
        snprintf(c->group, sizeof c->group, "%s", group);
        c->last_sent = after_seq;
        c->next = hub->clients;
        if (hub->clients)
                hub->clients->prev = c;
        hub->clients = c;
        hub->n_clients++;
        req->sse = c;
        client_catch_up(c);
}

void sse_request_done(struct http_request *req) {
        struct sse_client *c = req->sse;

        if (!c)
                return;
        req->sse = NULL;
        c->req = NULL;
        if (c->call) {
                proto_call_cancel(c->call);
                c->call = NULL;
                c->refs--; /* the call's reference: its callback will not run */
        }
        client_unref(c);
}

void sse_hub_publish(struct sse_hub *hub, struct json_object *event) {
        const char *group = event_group(event);
        uint64_t seq = event_seq(event);
        struct sse_chunk *ch = NULL;

        if (!group || seq == 0)
                return;
        for (struct sse_client *c = hub->clients; c; c = c->next) {
                if (c->catching_up || !c->started || c->closing || !streq(c->group, group) || seq <= c->last_sent)
                        continue;
                if (seq != c->last_sent + 1) {
                        /* A gap (cannot happen on one ordered channel, but never skip): read it. */
                        client_catch_up(c);
                        continue;
                }
                /* Formatted once, for the first client that wants it. */
                if (!ch && !(ch = event_chunk(event, seq))) {
                        /* Out of memory: this client catches up from the ledger later. */
                        client_close(c);
                        continue;
                }
                if (client_send_chunk(c, ch, seq) >= 0)
                        client_wake(c);
        }
        chunk_unref(ch);
}

void sse_hub_resync(struct sse_hub *hub) {
        for (struct sse_client *c = hub->clients; c; c = c->next)
                if (c->started && !c->closing)
                        client_catch_up(c);
}

static int on_heartbeat(sd_event_source *src, uint64_t usec, void *userdata) {
        struct sse_hub *hub = userdata;

        /* A comment line keeps proxies from timing the stream out and lets a client notice a
         * dead connection. */
        for (struct sse_client *c = hub->clients; c; c = c->next)
                if (c->started && !c->closing && !c->head && client_queue(c, hub->ping) >= 0)
                        client_wake(c);
        (void) sd_event_source_set_time(src, usec + SSE_HEARTBEAT_USEC);
        return 0;
}

int sse_hub_new(sd_event *event, struct sse_hub **ret) {
        struct sse_hub *hub = calloc(1, sizeof *hub);
        uint64_t now;
        int r;

        if (!hub)
                return -ENOMEM;
        hub->event = sd_event_ref(event);
        hub->ping = chunk_new(": ping\n\n", 8);
        if (!hub->ping) {
                sse_hub_free(hub);
                return -ENOMEM;
        }
        r = sd_event_now(event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_add_time(event, &hub->heartbeat, CLOCK_MONOTONIC, now + SSE_HEARTBEAT_USEC,
                                      USEC_PER_SEC, on_heartbeat, hub);
        if (r >= 0)
                r = sd_event_source_set_enabled(hub->heartbeat, SD_EVENT_ON);
        if (r < 0) {
                sse_hub_free(hub);
                return r;
        }
        *ret = hub;
        return 0;
}

struct sse_hub *sse_hub_free(struct sse_hub *hub) {
        if (!hub)
                return NULL;
        /* Clients still referenced by MHD responses outlive the hub, unlinked. */
        for (struct sse_client *c = hub->clients, *next; c; c = next) {
                next = c->next;
                c->hub = NULL;
                c->next = c->prev = NULL;
                c->closing = true;
        }
        sd_event_source_disable_unref(hub->heartbeat);
        sd_event_unref(hub->event);
        chunk_unref(hub->ping); /* clients that queued it hold their own references */
        free(hub);
        return NULL;
}

void sse_hub_set_upstream(struct sse_hub *hub, struct upstream *up) {
        hub->upstream = up;
}

unsigned sse_hub_clients(const struct sse_hub *hub) {
        return hub ? hub->n_clients : 0;
}

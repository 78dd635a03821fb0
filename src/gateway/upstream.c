/* The gateway's link to the supervisor (upstream.h). */

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "sse.h"
#include "upstream.h"

#define FOLLOW_RETRY_USEC (1 * USEC_PER_SEC)

struct upstream {
        sd_event *event;
        struct proto_link *link; /* borrowed from the worker; NULL standalone */
        struct sse_hub *hub;
        struct proto_call *follow;
        bool following;          /* the supervisor confirmed the stream */
        sd_event_source *retry;
};

static void follow_start(struct upstream *u);

static int on_retry(sd_event_source *src, uint64_t usec, void *userdata) {
        struct upstream *u = userdata;

        u->retry = sd_event_source_disable_unref(u->retry);
        follow_start(u);
        return 0;
}

static void follow_retry_later(struct upstream *u) {
        uint64_t now;

        if (u->retry || !proto_link_is_open(u->link))
                return;
        if (sd_event_now(u->event, CLOCK_MONOTONIC, &now) < 0 ||
            sd_event_add_time(u->event, &u->retry, CLOCK_MONOTONIC, now + FOLLOW_RETRY_USEC, TIMER_ACCURACY_USEC,
                              on_retry, u) < 0)
                log_error("cannot schedule re-subscribing to the event stream; live updates stop");
}

static void on_follow(struct json_object *line, int error, bool more, void *userdata) {
        struct upstream *u = userdata;
        struct json_object *event, *ok;

        if (!more) {
                /* The stream ended: clients catch up from their last event once it is back. */
                u->follow = NULL;
                u->following = false;
                if (error != -ECONNABORTED)
                        log_warning_errno(error, "the supervisor's event stream ended; subscribing again");
                sse_hub_resync(u->hub);
                follow_retry_later(u);
                return;
        }
        if (json_object_object_get_ex(line, "event", &event)) {
                sse_hub_publish(u->hub, event);
                return;
        }
        if (json_object_object_get_ex(line, "ok", &ok)) {
                if (json_object_get_boolean(ok)) {
                        u->following = true;
                        /* Anything between the last stream and this one comes from the ledger. */
                        sse_hub_resync(u->hub);
                } else
                        log_error("the supervisor refused the event stream: %s",
                                  json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN));
        }
}

static void follow_start(struct upstream *u) {
        int r;

        if (u->follow || !proto_link_is_open(u->link))
                return;
        r = proto_link_call(u->link, "events.follow", NULL, 0, true, on_follow, u, &u->follow);
        if (r < 0) {
                log_warning_errno(r, "cannot subscribe to the supervisor's event stream");
                follow_retry_later(u);
        }
}

int upstream_new(sd_event *event, struct proto_link *link, struct sse_hub *hub, struct upstream **ret) {
        struct upstream *u = calloc(1, sizeof *u);

        if (!u)
                return -ENOMEM;
        u->event = sd_event_ref(event);
        u->link = link;
        u->hub = hub;
        follow_start(u);
        *ret = u;
        return 0;
}

struct upstream *upstream_free(struct upstream *u) {
        if (!u)
                return NULL;
        proto_call_cancel(u->follow);
        sd_event_source_disable_unref(u->retry);
        sd_event_unref(u->event);
        free(u);
        return NULL;
}

bool upstream_ready(const struct upstream *u) {
        return u && proto_link_is_open(u->link) && u->following;
}

int upstream_call_timeout(struct upstream *u, const char *op, struct json_object *args, uint64_t timeout_usec,
                          proto_call_cb cb, void *userdata, struct proto_call **ret) {
        if (!u || !proto_link_is_open(u->link))
                return -ENOTCONN;
        return proto_link_call(u->link, op, args, timeout_usec, false, cb, userdata, ret);
}

int upstream_call(struct upstream *u, const char *op, struct json_object *args, proto_call_cb cb, void *userdata,
                  struct proto_call **ret) {
        return upstream_call_timeout(u, op, args, UPSTREAM_CALL_TIMEOUT_USEC, cb, userdata, ret);
}

/* Open connections of a listener, their count and deadlines (connections.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "connections.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

/* How often deadlines are checked: a slow client is cut off at most this late. */
#define SWEEP_USEC (USEC_PER_SEC / 2)

struct conn_table {
        sd_event *event;
        sd_event_source *sweep;
        struct http_connection *list;
        unsigned n_open;
        unsigned soft_limit;
        uint64_t n_over_limit; /* connections opened over the soft limit, so far */
        uint64_t n_timed_out;  /* connections shut down for missing a deadline, so far */
        char address[80];      /* the listener's, for messages */
};

unsigned conn_table_hard_limit(unsigned soft_limit) {
        unsigned slack = soft_limit / 4;

        return soft_limit + (slack < 16 ? 16 : slack);
}

static int on_sweep(sd_event_source *source, uint64_t usec, void *userdata) {
        struct conn_table *t = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        unsigned n = 0;

        for (struct http_connection *c = t->list; c; c = c->next) {
                if (c->shut_down || c->deadline_usec == 0 || c->deadline_usec > now)
                        continue;
                /* libmicrohttpd sees the end of the stream and closes the connection itself. */
                if (c->fd >= 0)
                        (void) shutdown(c->fd, SHUT_RDWR);
                c->shut_down = true;
                n++;
        }
        if (n > 0) {
                t->n_timed_out += n;
                log_notice("%s: closed %u connection(s) that did not send a complete request in time "
                           "(%u s for the head, %u s for the body)",
                           t->address, n, HTTP_HEADERS_TIMEOUT_SEC, HTTP_BODY_TIMEOUT_SEC);
        }
        (void) sd_event_source_set_time(source, now + SWEEP_USEC);
        return 0;
}

int conn_table_new(sd_event *event, const char *address, struct conn_table **ret) {
        struct conn_table *t = calloc(1, sizeof *t);
        int r;

        if (!t)
                return -ENOMEM;
        t->event = sd_event_ref(event);
        snprintf(t->address, sizeof t->address, "%s", address);
        r = sd_event_add_time_relative(event, &t->sweep, CLOCK_MONOTONIC, SWEEP_USEC, USEC_PER_MSEC * 100,
                                       on_sweep, t);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->sweep, SD_EVENT_OFF);
        if (r < 0) {
                conn_table_free(t);
                return r;
        }
        (void) sd_event_source_set_description(t->sweep, "http-deadlines");
        *ret = t;
        return 0;
}

struct conn_table *conn_table_free(struct conn_table *t) {
        if (!t)
                return NULL;
        /* MHD_stop_daemon() closed every connection before: the list is empty. */
        sd_event_source_disable_unref(t->sweep);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}

void conn_table_set_soft_limit(struct conn_table *t, unsigned soft_limit) {
        t->soft_limit = soft_limit;
}

unsigned conn_table_open(const struct conn_table *t) {
        return t->n_open;
}

static void conn_opened(struct conn_table *t, struct MHD_Connection *con, void **socket_context) {
        struct http_connection *c = calloc(1, sizeof *c);
        const union MHD_ConnectionInfo *info;

        /* Counted even when it cannot be tracked, so the count stays right. */
        t->n_open++;
        if (!c)
                return;
        info = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        *c = (struct http_connection){
                .con = con,
                .fd = info ? info->connect_fd : -1,
                .deadline_usec = now_usec(CLOCK_MONOTONIC) + HTTP_HEADERS_TIMEOUT_SEC * USEC_PER_SEC,
                .over_limit = t->n_open > t->soft_limit,
        };
        if (c->over_limit)
                t->n_over_limit++;
        c->next = t->list;
        if (t->list)
                t->list->prev = c;
        t->list = c;
        *socket_context = c;
        if (t->n_open == 1)
                (void) sd_event_source_set_enabled(t->sweep, SD_EVENT_ON);
}

static void conn_closed(struct conn_table *t, struct http_connection *c) {
        if (t->n_open > 0)
                t->n_open--;
        if (t->n_open == 0)
                (void) sd_event_source_set_enabled(t->sweep, SD_EVENT_OFF);
        if (!c)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                t->list = c->next;
        if (c->next)
                c->next->prev = c->prev;
        free(c);
}

void conn_table_notify(void *userdata, struct MHD_Connection *con, void **socket_context,
                       enum MHD_ConnectionNotificationCode code) {
        struct http_connection *c = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_STARTED)
                conn_opened(userdata, con, socket_context);
        else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conn_closed(userdata, c);
                *socket_context = NULL;
        }
}

struct http_connection *http_connection_of(struct MHD_Connection *con) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return info ? info->socket_context : NULL;
}

void http_connection_headers_received(struct http_connection *c) {
        if (c)
                c->deadline_usec = now_usec(CLOCK_MONOTONIC) + HTTP_BODY_TIMEOUT_SEC * USEC_PER_SEC;
}

void http_connection_answering(struct http_connection *c) {
        if (c)
                c->deadline_usec = 0;
}

void http_connection_request_done(struct http_connection *c) {
        if (c)
                c->deadline_usec = now_usec(CLOCK_MONOTONIC) + HTTP_HEADERS_TIMEOUT_SEC * USEC_PER_SEC;
}

/* The open connections of one HTTP listener: how many there are (above the soft limit a
 * connection's requests are answered 503, below libmicrohttpd's hard limit, which refuses
 * silently), and the deadlines that keep slow clients from holding a slot: a connection must
 * send a complete request head within HTTP_HEADERS_TIMEOUT_SEC of opening or of its previous
 * answer, and the body within HTTP_BODY_TIMEOUT_SEC of the head; otherwise it is shut down. */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define HTTP_HEADERS_TIMEOUT_SEC 10u
#define HTTP_BODY_TIMEOUT_SEC 30u

struct conn_table;

struct http_connection {
        struct http_connection *next, *prev;
        struct MHD_Connection *con;
        int fd;
        uint64_t deadline_usec; /* CLOCK_MONOTONIC; 0: none (being answered) */
        bool over_limit;        /* opened while the soft limit was reached: answer 503 */
        bool shut_down;         /* its deadline passed; libmicrohttpd closes it next */
};

/* MHD's hard limit for a soft limit: somewhat higher, so that clients over the soft limit are
 * still told why (503) instead of being refused without a word. */
unsigned conn_table_hard_limit(unsigned soft_limit);

int conn_table_new(sd_event *event, const char *address, struct conn_table **ret);
/* After MHD_stop_daemon(): MHD reports every connection closed before it returns. */
struct conn_table *conn_table_free(struct conn_table *t);
void conn_table_set_soft_limit(struct conn_table *t, unsigned soft_limit);
unsigned conn_table_open(const struct conn_table *t);

/* MHD_OPTION_NOTIFY_CONNECTION: keeps *socket_context pointing at the connection's entry. */
void conn_table_notify(void *userdata, struct MHD_Connection *con, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* The entry of a connection (NULL if it could not be tracked: out of memory). */
struct http_connection *http_connection_of(struct MHD_Connection *con);
/* The request head arrived: the body must follow in time. */
void http_connection_headers_received(struct http_connection *c);
/* The request is complete and being answered: no deadline until the answer is sent. */
void http_connection_answering(struct http_connection *c);
/* The answer was sent (or the request ended): the next head must come in time. */
void http_connection_request_done(struct http_connection *c);

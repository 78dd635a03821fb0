/* A line-oriented TCP connection, plain or TLS (OpenSSL, peer and host verification always on),
 * on the sd-event loop: name resolution without blocking the loop (getaddrinfo_a; numeric
 * addresses directly), non-blocking connect with a timeout, buffered output, input split into
 * lines. For line protocols such as IRC.
 *
 * Callbacks run from the loop; from any of them the caller may send or free the connection.
 * closed() is called once, after which only line_conn_free() may be called. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct line_conn;

struct line_conn_options {
        const char *host;
        uint16_t port;
        bool tls;
        const char *ca_file;           /* NULL: the system's CAs */
        uint64_t connect_timeout_usec; /* resolve + connect + TLS handshake; 0: 30 s */
        size_t max_line;               /* longer input lines are cut to this; 0: 8192 */
        size_t max_output;             /* queued output beyond this fails sends; 0: 1 MiB */
};

struct line_conn_ops {
        void (*connected)(struct line_conn *c, void *userdata);
        /* One line without its CR LF, NUL-terminated (it may hold other NULs: len counts). */
        void (*line)(struct line_conn *c, const char *line, size_t len, void *userdata);
        /* error: -ECONNRESET (peer closed), -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH (no such
         * name), -EPROTO (TLS: detail names the verification failure), … */
        void (*closed)(struct line_conn *c, int error, const char *detail, void *userdata);
};

int line_conn_new(sd_event *event, const struct line_conn_options *o, const struct line_conn_ops *ops, void *userdata,
                  struct line_conn **ret);
struct line_conn *line_conn_free(struct line_conn *c);
/* Queues bytes (a whole line with its CR LF, usually) and writes what the socket takes now.
 * -ENOBUFS beyond max_output, -ENOTCONN before connected() or after closed(). */
int line_conn_send(struct line_conn *c, const char *data, size_t len);
size_t line_conn_queued(const struct line_conn *c);
bool line_conn_is_connected(const struct line_conn *c);

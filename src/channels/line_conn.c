/* Line-oriented TCP/TLS connections on sd-event (line_conn.h). */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "line_conn.h"
#include "macro.h"

#define RESOLVE_POLL_USEC (20 * USEC_PER_MSEC)

enum conn_phase { PHASE_RESOLVING, PHASE_CONNECTING, PHASE_HANDSHAKE, PHASE_CONNECTED, PHASE_CLOSED };

struct line_conn {
        sd_event *event;
        struct line_conn_options o;
        char *host;
        char *ca_file;
        struct line_conn_ops ops;
        void *userdata;
        enum conn_phase phase;

        struct gaicb *gai;            /* name resolution in progress */
        struct addrinfo gai_hints;
        char service[8];
        struct addrinfo *addrs, *next_addr;
        bool addrs_from_gai;          /* freed with freeaddrinfo() either way */
        int last_connect_error;

        int fd;
        sd_event_source *io, *timer, *poll, *start;
        SSL_CTX *ctx;
        SSL *ssl;

        char *in;
        size_t in_len;
        bool discarding;              /* the current input line was over max_line */
        char *out;
        size_t out_len;

        unsigned dispatching;         /* callbacks running: free is deferred */
        bool free_requested;
};

static void conn_really_free(struct line_conn *c);

static void conn_close(struct line_conn *c, int error, const char *detail) {
        if (c->phase == PHASE_CLOSED)
                return;
        c->phase = PHASE_CLOSED;
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->poll = sd_event_source_disable_unref(c->poll);
        if (c->ops.closed) {
                c->dispatching++;
                c->ops.closed(c, error, detail, c->userdata);
                c->dispatching--;
        }
}

static bool host_is_ip(const char *host) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* --- TLS --------------------------------------------------------------------------------- */

static int tls_setup(struct line_conn *c) {
        c->ctx = SSL_CTX_new(TLS_client_method());
        if (!c->ctx)
                return -ENOMEM;
        SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (c->ca_file ? SSL_CTX_load_verify_locations(c->ctx, c->ca_file, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(c->ctx) != 1)
                return -EPROTO;
        c->ssl = SSL_new(c->ctx);
        if (!c->ssl)
                return -ENOMEM;
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (host_is_ip(c->host)) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host) != 1)
                        return -EPROTO;
        } else if (SSL_set_tlsext_host_name(c->ssl, c->host) != 1 || SSL_set1_host(c->ssl, c->host) != 1)
                return -EPROTO;
        if (SSL_set_fd(c->ssl, c->fd) != 1)
                return -EPROTO;
        return 0;
}

static const char *tls_error_detail(struct line_conn *c, char *buf, size_t size) {
        long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
        unsigned long e = ERR_peek_last_error();

        if (v != X509_V_OK)
                snprintf(buf, size, "TLS certificate verification failed: %s", X509_verify_cert_error_string(v));
        else if (e)
                snprintf(buf, size, "TLS error: %s", ERR_reason_error_string(e) ?: "unknown");
        else
                snprintf(buf, size, "TLS handshake failed");
        ERR_clear_error();
        return buf;
}

/* --- I/O ----------------------------------------------------------------------------------- */

static int update_events(struct line_conn *c, bool want_write) {
        return sd_event_source_set_io_events(c->io, EPOLLIN | (want_write ? EPOLLOUT : 0));
}

/* 1: progress, 0: would block (events set), <0: error. */
static ssize_t conn_write(struct line_conn *c, const char *data, size_t len) {
        if (c->ssl) {
                size_t n = 0;
                int r;
                ERR_clear_error();
                r = SSL_write_ex(c->ssl, data, len, &n);
                if (r == 1)
                        return (ssize_t) n;
                switch (SSL_get_error(c->ssl, r)) {
                case SSL_ERROR_WANT_READ:
                case SSL_ERROR_WANT_WRITE:
                        return -EAGAIN;
                case SSL_ERROR_ZERO_RETURN:
                        return -ECONNRESET;
                default:
                        return -EPROTO;
                }
        }
        for (;;) {
                ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EAGAIN ? -EAGAIN : negative_errno();
        }
}

static ssize_t conn_read(struct line_conn *c, char *buf, size_t size) {
        if (c->ssl) {
                size_t n = 0;
                int r;
                ERR_clear_error();
                r = SSL_read_ex(c->ssl, buf, size, &n);
                if (r == 1)
                        return (ssize_t) n;
                switch (SSL_get_error(c->ssl, r)) {
                case SSL_ERROR_WANT_READ:
                case SSL_ERROR_WANT_WRITE:
                        return -EAGAIN;
                case SSL_ERROR_ZERO_RETURN:
                        return 0;
                case SSL_ERROR_SYSCALL:
                        return errno ? -errno : 0; /* EOF without close_notify counts as EOF */
                default:
                        return -EPROTO;
                }
        }
        for (;;) {
                ssize_t n = recv(c->fd, buf, size, MSG_DONTWAIT);
                if (n >= 0)
                        return n;
                if (errno == EINTR)
                        continue;
                return errno == EAGAIN ? -EAGAIN : negative_errno();
        }
}

static int flush_output(struct line_conn *c) {
        while (c->out_len > 0) {
                ssize_t n = conn_write(c, c->out, c->out_len);
                if (n == -EAGAIN)
                        return update_events(c, true);
                if (n < 0)
                        return (int) n;
                memmove(c->out, c->out + n, c->out_len - (size_t) n);
                c->out_len -= (size_t) n;
        }
        return update_events(c, false);
}

static void deliver_lines(struct line_conn *c) {
        size_t start = 0, max = c->o.max_line;

        for (size_t i = 0; i < c->in_len && c->phase == PHASE_CONNECTED && !c->free_requested; i++) {
                size_t len;
                if (c->in[i] != '\n')
                        continue;
                len = i - start;
                if (len > 0 && c->in[start + len - 1] == '\r')
                        len--;
                c->in[start + len] = 0;
                if (c->discarding)
                        c->discarding = false;
                else if (c->ops.line)
                        c->ops.line(c, c->in + start, MIN(len, max), c->userdata);
                start = i + 1;
        }
        if (start > 0) {
                memmove(c->in, c->in + start, c->in_len - start);
                c->in_len -= start;
        }
        if (c->in_len > max) {
                /* An endless line: deliver its start once, drop the rest up to its end. */
                if (!c->discarding && c->ops.line && c->phase == PHASE_CONNECTED) {
                        c->in[max] = 0;
                        c->ops.line(c, c->in, max, c->userdata);
                }
                c->discarding = true;
                c->in_len = 0;
        }
}

static int read_input(struct line_conn *c) {
        /* A bounded amount per wake-up so one chatty server cannot starve the loop. */
        for (int i = 0; i < 16 && c->phase == PHASE_CONNECTED && !c->free_requested; i++) {
                ssize_t n = conn_read(c, c->in + c->in_len, c->o.max_line + 1 - c->in_len);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
                /* ACK at once: a server that writes with Nagle on (ngircd does) would otherwise hold
                 * its next line until our delayed ACK, 40 ms later, when we have nothing to send
                 * back (Linux drops out of quick-ACK mode by itself, hence after every read). */
                {
                        int one = 1;
                        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
                }
                c->in_len += (size_t) n;
                deliver_lines(c);
        }
        return 0;
}

static void connected(struct line_conn *c) {
        c->phase = PHASE_CONNECTED;
        c->timer = sd_event_source_disable_unref(c->timer);
        (void) update_events(c, c->out_len > 0);
        if (c->ops.connected)
                c->ops.connected(c, c->userdata);
}

static int handshake(struct line_conn *c) {
        char detail[256];
        int r;

        ERR_clear_error();
        r = SSL_connect(c->ssl);
        if (r == 1) {
                connected(c);
                return 0;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                return update_events(c, false);
        case SSL_ERROR_WANT_WRITE:
                return update_events(c, true);
        default:
                conn_close(c, -EPROTO, tls_error_detail(c, detail, sizeof detail));
                return -EPROTO;
        }
}

static void try_next_address(struct line_conn *c);

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct line_conn *c = userdata;
        int r = 0;

        c->dispatching++;
        if (c->phase == PHASE_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error) {
                        c->last_connect_error = -error;
                        try_next_address(c);
                } else if (c->o.tls) {
                        c->phase = PHASE_HANDSHAKE;
                        r = tls_setup(c);
                        if (r < 0) {
                                char detail[256];
                                conn_close(c, r, tls_error_detail(c, detail, sizeof detail));
                        } else
                                (void) handshake(c);
                } else
                        connected(c);
        } else if (c->phase == PHASE_HANDSHAKE)
                (void) handshake(c);
        else if (c->phase == PHASE_CONNECTED) {
                if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                        r = read_input(c);
                /* TLS may need a read to finish a write, or the other way round: try both. */
                if (r >= 0 && c->phase == PHASE_CONNECTED && !c->free_requested && (c->out_len > 0 || (revents & EPOLLOUT)))
                        r = flush_output(c);
                if (r < 0 && c->phase == PHASE_CONNECTED) {
                        char detail[256];
                        conn_close(c, r, r == -EPROTO ? tls_error_detail(c, detail, sizeof detail) : NULL);
                }
        }
        c->dispatching--;
        if (c->free_requested && c->dispatching == 0)
                conn_really_free(c);
        return 0;
}

static void try_next_address(struct line_conn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        if (c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
        }
        while (c->next_addr) {
                struct addrinfo *a = c->next_addr;
                int one = 1;

                c->next_addr = a->ai_next;
                c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (c->fd < 0) {
                        c->last_connect_error = negative_errno();
                        continue;
                }
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (connect(c->fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        c->last_connect_error = negative_errno();
                        close(c->fd);
                        c->fd = -1;
                        continue;
                }
                c->phase = PHASE_CONNECTING;
                if (sd_event_add_io(c->event, &c->io, c->fd, EPOLLOUT, on_io, c) < 0) {
                        conn_close(c, -ENOMEM, NULL);
                        return;
                }
                return;
        }
        conn_close(c, c->last_connect_error ? c->last_connect_error : -EHOSTUNREACH, NULL);
}

static int on_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct line_conn *c = userdata;

        c->timer = sd_event_source_disable_unref(c->timer);
        c->dispatching++;
        conn_close(c, -ETIMEDOUT, c->phase == PHASE_RESOLVING ? "name resolution timed out" : "connect timed out");
        c->dispatching--;
        if (c->free_requested && c->dispatching == 0)
                conn_really_free(c);
        return 0;
}

static int on_resolve_poll(sd_event_source *src, uint64_t usec, void *userdata) {
        struct line_conn *c = userdata;
        int r = gai_error(c->gai);

        if (r == EAI_INPROGRESS) {
                (void) sd_event_source_set_time(src, usec + RESOLVE_POLL_USEC);
                return 0;
        }
        c->poll = sd_event_source_disable_unref(c->poll);
        c->dispatching++;
        if (r != 0) {
                char detail[256];
                snprintf(detail, sizeof detail, "cannot resolve %s: %s", c->host, gai_strerror(r));
                conn_close(c, -EHOSTUNREACH, detail);
        } else {
                c->addrs = c->gai->ar_result;
                c->gai->ar_result = NULL;
                c->next_addr = c->addrs;
                try_next_address(c);
        }
        c->dispatching--;
        if (c->free_requested && c->dispatching == 0)
                conn_really_free(c);
        return 0;
}

static int on_start(sd_event_source *src, void *userdata);

int line_conn_new(sd_event *event, const struct line_conn_options *o, const struct line_conn_ops *ops, void *userdata,
                  struct line_conn **ret) {
        struct line_conn *c = calloc(1, sizeof *c);
        int r;

        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->o = *o;
        c->o.max_line = o->max_line ? o->max_line : 8192;
        c->o.max_output = o->max_output ? o->max_output : 1024 * 1024;
        c->o.connect_timeout_usec = o->connect_timeout_usec ? o->connect_timeout_usec : 30 * USEC_PER_SEC;
        c->host = strdup(o->host);
        c->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
        c->ops = *ops;
        c->userdata = userdata;
        c->fd = -1;
        c->in = malloc(c->o.max_line + 2);
        if (!c->host || !c->in || (o->ca_file && !c->ca_file)) {
                conn_really_free(c);
                return -ENOMEM;
        }
        c->o.host = c->host;
        c->o.ca_file = c->ca_file;
        snprintf(c->service, sizeof c->service, "%u", o->port);
        r = sd_event_add_time_relative(event, &c->timer, CLOCK_MONOTONIC, c->o.connect_timeout_usec, TIMER_ACCURACY_USEC,
                                       on_timeout, c);
        /* Start from the loop, so connected()/closed() never run inside this call. */
        if (r >= 0)
                r = sd_event_add_defer(event, &c->start, on_start, c);
        if (r < 0) {
                conn_really_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static int on_start(sd_event_source *src, void *userdata) {
        struct line_conn *c = userdata;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
        int r;

        c->start = sd_event_source_disable_unref(c->start);
        if (c->phase != PHASE_RESOLVING || c->free_requested)
                return 0;
        c->dispatching++;
        if (getaddrinfo(c->host, c->service, &hints, &c->addrs) == 0) {
                c->next_addr = c->addrs;
                try_next_address(c);
        } else {
                /* A name: resolve it without blocking the loop (glibc's own helper thread). */
                c->gai = calloc(1, sizeof *c->gai);
                c->gai_hints = (struct addrinfo){ .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG };
                if (c->gai) {
                        c->gai->ar_name = c->host;
                        c->gai->ar_service = c->service;
                        c->gai->ar_request = &c->gai_hints;
                }
                r = c->gai ? getaddrinfo_a(GAI_NOWAIT, &c->gai, 1, NULL) : EAI_MEMORY;
                if (r != 0) {
                        free(c->gai);
                        c->gai = NULL;
                        conn_close(c, -EHOSTUNREACH, gai_strerror(r));
                } else if (sd_event_add_time_relative(c->event, &c->poll, CLOCK_MONOTONIC, RESOLVE_POLL_USEC,
                                                      TIMER_ACCURACY_USEC, on_resolve_poll, c) < 0)
                        conn_close(c, -ENOMEM, NULL);
        }
        c->dispatching--;
        if (c->free_requested && c->dispatching == 0)
                conn_really_free(c);
        return 0;
}

static void conn_really_free(struct line_conn *c) {
        if (c->gai) {
                /* A lookup still running owns the request: wait for it (rare, and short). */
                if (gai_cancel(c->gai) == EAI_NOTCANCELED) {
                        const struct gaicb *list[1] = { c->gai };
                        while (gai_error(c->gai) == EAI_INPROGRESS)
                                (void) gai_suspend(list, 1, NULL);
                }
                if (c->gai->ar_result)
                        freeaddrinfo(c->gai->ar_result);
                free(c->gai);
        }
        if (c->addrs)
                freeaddrinfo(c->addrs);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->poll);
        sd_event_source_disable_unref(c->start);
        if (c->ssl)
                SSL_free(c->ssl);
        if (c->ctx)
                SSL_CTX_free(c->ctx);
        if (c->fd >= 0)
                close(c->fd);
        sd_event_unref(c->event);
        free(c->host);
        free(c->ca_file);
        free(c->in);
        free(c->out);
        free(c);
}

struct line_conn *line_conn_free(struct line_conn *c) {
        if (!c)
                return NULL;
        c->ops = (struct line_conn_ops){};
        if (c->dispatching > 0) {
                c->free_requested = true;
                c->io = sd_event_source_disable_unref(c->io);
                c->timer = sd_event_source_disable_unref(c->timer);
                c->poll = sd_event_source_disable_unref(c->poll);
                c->phase = PHASE_CLOSED;
                return NULL;
        }
        conn_really_free(c);
        return NULL;
}

int line_conn_send(struct line_conn *c, const char *data, size_t len) {
        char *n;

        if (!c || c->phase != PHASE_CONNECTED || c->free_requested)
                return -ENOTCONN;
        if (c->out_len + len > c->o.max_output)
                return -ENOBUFS;
        n = realloc(c->out, c->out_len + len);
        if (!n)
                return -ENOMEM;
        c->out = n;
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
        if (c->dispatching > 0)
                return update_events(c, true); /* written when the callback returns to the loop */
        {
                int r = flush_output(c);
                if (r < 0) {
                        /* Reported from the loop, never from inside this call. */
                        (void) update_events(c, true);
                        return 0;
                }
        }
        return 0;
}

size_t line_conn_queued(const struct line_conn *c) {
        return c ? c->out_len : 0;
}

bool line_conn_is_connected(const struct line_conn *c) {
        return c && c->phase == PHASE_CONNECTED && !c->free_requested;
}

/* Control socket server (see control_server.h): accepts CLI connections, reads one JSON request
 * per line, dispatches it by "op", writes replies without blocking the loop. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "control_server.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "proto_link.h"
#include "supervisor.h"
#include "workers.h"

#define CONTROL_CONNECTIONS_MAX 64
#define CONTROL_REQUEST_MAX (1024u * 1024u)
#define CONTROL_OUTPUT_MAX (16u * 1024u * 1024u) /* a stream reader further behind is dropped */

struct control_conn {
        struct control_server *server;
        struct control_conn *next;
        int fd;
        sd_event_source *source;
        char *in;
        size_t in_len;
        char *out;
        size_t out_len, out_pos;
        bool closing; /* close once the output is flushed */
        struct control_request *requests; /* answered later, or streams */
};

struct control_request {
        struct control_conn *conn;   /* a CLI client; NULL once it went away */
        struct worker_proc *worker;  /* or a worker over its channel; NULL once it went away */
        uint64_t worker_call_id;
        struct control_request *next; /* in conn->requests or worker->requests */
        bool streaming;
        sd_event_source *end_source; /* ends a worker stream that overflowed */
        void (*on_close)(struct control_request *req, void *userdata);
        void *userdata;
};

struct control_server {
        struct supervisor *supervisor;
        int fd;
        char *path;
        sd_event_source *source;
        struct control_conn *conns;
        unsigned n_conns;
};

static const struct control_op *const op_tables[] = { control_ops_core, control_ops_groups, control_ops_backup,
                                                      control_ops_automation, control_ops_llm, control_ops_channels };

static void request_close_stream(struct control_request *req);

static void conn_unlink_request(struct control_conn *c, struct control_request *req) {
        for (struct control_request **p = &c->requests; *p; p = &(*p)->next)
                if (*p == req) {
                        *p = req->next;
                        return;
                }
}

static void conn_free(struct control_conn *c) {
        struct control_server *srv = c->server;

        for (struct control_conn **p = &srv->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        srv->n_conns--;
        /* Pending requests outlive us (their answer is dropped); streams end now. */
        while (c->requests) {
                struct control_request *req = c->requests;
                c->requests = req->next;
                req->conn = NULL;
                req->next = NULL;
                if (req->streaming)
                        request_close_stream(req);
        }
        sd_event_source_disable_unref(c->source);
        close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
}

static int conn_queue_text(struct control_conn *c, const char *s) {
        size_t len = strlen(s);
        char *n;

        if (c->out_pos == c->out_len)
                c->out_pos = c->out_len = 0;
        if (c->out_len - c->out_pos + len + 1 > CONTROL_OUTPUT_MAX)
                return -ENOBUFS;
        if (c->out_pos > 0 && c->out_pos >= c->out_len / 2) {
                memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
                c->out_len -= c->out_pos;
                c->out_pos = 0;
        }
        n = realloc(c->out, c->out_len + len + 1);
        if (!n)
                return -ENOMEM;
        c->out = n;
        memcpy(c->out + c->out_len, s, len);
        c->out[c->out_len + len] = '\n';
        c->out_len += len + 1;
        if (c->out_len - c->out_pos == len + 1) {
                /* Nothing was waiting: try to send at once, and only ask for EPOLLOUT when the
                 * socket is full (two epoll_ctl calls per reply otherwise). */
                ssize_t k = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0)
                        c->out_pos += (size_t) k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                        c->closing = true;
                        return 0;
                }
                if (c->out_pos == c->out_len) {
                        c->out_pos = c->out_len = 0;
                        return 0;
                }
        }
        return sd_event_source_set_io_events(c->source, EPOLLIN | EPOLLOUT);
}

static int conn_queue(struct control_conn *c, struct json_object *reply) {
        return conn_queue_text(c, json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
}

static void worker_unlink_request(struct worker_proc *w, struct control_request *req) {
        for (struct control_request **p = &w->requests; *p; p = &(*p)->next)
                if (*p == req) {
                        *p = req->next;
                        return;
                }
}

static void request_finish(struct control_request *req, struct json_object *reply) {
        if (req->conn) {
                conn_unlink_request(req->conn, req);
                if (reply && conn_queue(req->conn, reply) < 0)
                        req->conn->closing = true;
        } else if (req->worker) {
                int r;
                worker_unlink_request(req->worker, req);
                r = reply ? proto_link_send(req->worker->link, "reply", req->worker_call_id, reply) : 0;
                if (r < 0)
                        log_warning_errno(r, "cannot answer a request of worker %s", req->worker->name);
        }
        free(req);
}

/* A stream ends: on_close releases what points at it. */
static void request_close_stream(struct control_request *req) {
        if (req->on_close)
                req->on_close(req, req->userdata);
        sd_event_source_disable_unref(req->end_source);
        free(req);
}

static int on_stream_overflow(sd_event_source *src, void *userdata) {
        struct control_request *req = userdata;
        struct worker_proc *w = req->worker;

        if (w) {
                worker_unlink_request(w, req);
                req->worker = NULL;
                /* Queued behind everything else; if even this does not fit, the worker learns
                 * from the call's absence of lines and its own timeout. */
                (void) proto_link_send(w->link, "stream.end", req->worker_call_id, NULL);
        }
        request_close_stream(req);
        return 0;
}

void control_request_reply(struct control_request *req, struct json_object *result) {
        _cleanup_json_ struct json_object *reply = json_object_new_object();

        if (reply) {
                json_object_object_add(reply, "ok", json_object_new_boolean(1));
                json_object_object_add(reply, "result", json_object_get(result));
        }
        request_finish(req, reply);
}

void control_request_error(struct control_request *req, const char *code, const char *fmt, ...) {
        _cleanup_json_ struct json_object *reply = NULL;
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        reply = control_error_new(code, msg);
        request_finish(req, reply);
}

int control_request_stream_begin(struct control_request *req,
                                 void (*on_close)(struct control_request *req, void *userdata), void *userdata) {
        if (!req->conn && !req->worker)
                return -ENOTCONN;
        req->streaming = true;
        req->on_close = on_close;
        req->userdata = userdata;
        return 0;
}

int control_request_stream_send(struct control_request *req, struct json_object *line) {
        int r;

        if (req->worker) {
                struct worker_proc *w = req->worker;
                r = proto_link_send(w->link, "stream", req->worker_call_id, line);
                if (r == -ENOBUFS && !req->end_source) {
                        /* The worker is far behind: end the stream (it re-subscribes from its last
                         * seq), but not from inside the caller, which may be walking its list. */
                        log_warning("ending a stream to worker %s, which is more than 64 MiB behind", w->name);
                        if (sd_event_add_defer(w->supervisor->event, &req->end_source, on_stream_overflow, req) >= 0)
                                (void) sd_event_source_set_enabled(req->end_source, SD_EVENT_ONESHOT);
                }
                return r;
        }
        if (!req->conn)
                return -ENOTCONN;
        r = conn_queue(req->conn, line);
        if (r == -ENOBUFS) {
                log_warning("dropping a control stream whose reader is more than 16 MiB behind");
                req->conn->closing = true;
                req->conn->in_len = 0;
        }
        return r;
}

static const struct control_op *find_op(const char *name) {
        for (size_t t = 0; t < ELEMENTSOF(op_tables); t++)
                for (const struct control_op *op = op_tables[t]; op->name; op++)
                        if (streq(op->name, name))
                                return op;
        return NULL;
}

/* Runs an operation for req (from either transport); the handler answers it. */
static void dispatch(struct supervisor *s, struct control_request *req, struct json_object *request) {
        _cleanup_json_ struct json_object *empty = NULL;
        struct json_object *op = NULL, *args = NULL;
        const struct control_op *handler;
        int r;

        if (!request || !json_object_is_type(request, json_type_object) ||
            !json_object_object_get_ex(request, "op", &op) || !json_object_is_type(op, json_type_string)) {
                control_request_error(req, "bad_request", "expected {\"op\":\"…\",\"args\":{…}}");
                return;
        }
        if (json_object_object_get_ex(request, "args", &args) && !json_object_is_type(args, json_type_object)) {
                control_request_error(req, "bad_request", "\"args\" must be an object");
                return;
        }
        if (!args) {
                empty = json_object_new_object();
                if (!empty) {
                        control_request_error(req, "internal", "out of memory");
                        return;
                }
                args = empty;
        }
        handler = find_op(json_object_get_string(op));
        if (!handler) {
                control_request_error(req, "unknown_op", "unknown operation \"%.64s\"", json_object_get_string(op));
                return;
        }
        r = handler->handler(s, req, args);
        if (r < 0) {
                /* The handler did not answer: report the failure for it. */
                log_error_errno(r, "control operation %s failed", handler->name);
                control_request_error(req, "internal", "%s", strerror(-r));
        }
}

static int conn_handle_line(struct control_conn *c, const char *line, size_t len) {
        _cleanup_json_ struct json_object *req_json = NULL;
        struct json_tokener *tok = json_tokener_new();
        struct control_request *req;

        if (!tok)
                return -ENOMEM;
        req_json = json_tokener_parse_ex(tok, line, (int) len);
        if (req_json && json_tokener_get_parse_end(tok) != len)
                req_json = (json_object_put(req_json), NULL);
        json_tokener_free(tok);

        req = calloc(1, sizeof *req);
        if (!req)
                return -ENOMEM;
        req->conn = c;
        req->next = c->requests;
        c->requests = req;
        dispatch(c->server->supervisor, req, req_json);
        return 0;
}

void control_request_from_worker(struct supervisor *s, struct worker_proc *w, uint64_t id, struct json_object *data) {
        struct control_request *req;

        if (id == 0) {
                log_warning("request without id from worker %s ignored", w->name);
                return;
        }
        req = calloc(1, sizeof *req);
        if (!req) {
                _cleanup_json_ struct json_object *reply = control_error_new("internal", "out of memory");
                (void) proto_link_send(w->link, "reply", id, reply);
                return;
        }
        req->worker = w;
        req->worker_call_id = id;
        req->next = w->requests;
        w->requests = req;
        dispatch(s, req, data);
}

void control_request_cancel_from_worker(struct worker_proc *w, uint64_t id) {
        for (struct control_request *req = w->requests; req; req = req->next)
                if (req->worker_call_id == id && req->streaming) {
                        worker_unlink_request(w, req);
                        req->worker = NULL;
                        request_close_stream(req);
                        return;
                }
}

void control_requests_detach_worker(struct worker_proc *w) {
        while (w->requests) {
                struct control_request *req = w->requests;
                w->requests = req->next;
                req->next = NULL;
                req->worker = NULL;
                if (req->streaming)
                        request_close_stream(req);
        }
}

static int conn_read(struct control_conn *c) {
        char buf[8192];
        ssize_t n = read(c->fd, buf, sizeof buf);
        char *nl, *in;

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
        if (n == 0) {
                c->closing = true;
                return 0;
        }
        if (c->closing)
                return 0; /* no more requests once we decided to close */
        if (c->in_len + (size_t) n > CONTROL_REQUEST_MAX) {
                _cleanup_json_ struct json_object *reply =
                        control_error_new("too_large", "request line exceeds 1 MiB");
                c->closing = true;
                c->in_len = 0;
                return reply ? conn_queue(c, reply) : -ENOMEM;
        }
        in = realloc(c->in, c->in_len + (size_t) n);
        if (!in)
                return -ENOMEM;
        c->in = in;
        memcpy(c->in + c->in_len, buf, (size_t) n);
        c->in_len += (size_t) n;

        while (!c->closing && (nl = memchr(c->in, '\n', c->in_len))) {
                size_t len = (size_t) (nl - c->in);
                _cleanup_free_ char *line = strndup(c->in, len);
                int r;

                memmove(c->in, nl + 1, c->in_len - len - 1);
                c->in_len -= len + 1;
                if (!line)
                        return -ENOMEM;
                r = conn_handle_line(c, line, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int conn_write(struct control_conn *c) {
        while (c->out_pos < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
                c->out_pos += (size_t) n;
        }
        return sd_event_source_set_io_events(c->source, EPOLLIN);
}

static int on_conn(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct control_conn *c = userdata;
        int r = 0;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                r = conn_read(c);
        if (r >= 0 && (revents & EPOLLOUT))
                r = conn_write(c);
        /* A client that closed its end but still waits for answers keeps the connection until
         * they are written; one that is gone entirely (EPOLLHUP/ERR) is dropped. */
        if (r < 0 || (revents & (EPOLLHUP | EPOLLERR)) ||
            (c->closing && c->out_pos >= c->out_len && !c->requests))
                conn_free(c);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct control_server *srv = userdata;
        struct ucred cred;
        socklen_t len = sizeof cred;
        struct control_conn *c;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return 0;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
                log_warning("refusing control connection from uid %d", len == sizeof cred ? (int) cred.uid : -1);
                close(cfd);
                return 0;
        }
        if (srv->n_conns >= CONTROL_CONNECTIONS_MAX) {
                log_warning("too many control connections, refusing one from pid %d", (int) cred.pid);
                close(cfd);
                return 0;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
                close(cfd);
                return 0;
        }
        c->server = srv;
        c->fd = cfd;
        r = sd_event_add_io(srv->supervisor->event, &c->source, cfd, EPOLLIN, on_conn, c);
        if (r < 0) {
                close(cfd);
                free(c);
                return 0;
        }
        c->next = srv->conns;
        srv->conns = c;
        srv->n_conns++;
        return 0;
}

int control_server_new(struct supervisor *s, const char *path, struct control_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct control_server *srv;
        mode_t old_umask;
        int fd, r;

        if (strlen(path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "control socket path too long: %s", path);
        strcpy(sa.sun_path, path); /* length checked above */

        /* A live daemon answers on the socket; a stale file from a crash does not. */
        fd = control_connect(path);
        if (fd >= 0) {
                close(fd);
                return log_error_errno(EADDRINUSE, "another Conclave daemon is running (it answers on %s)", path);
        }
        (void) unlink(path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "cannot create control socket");
        old_umask = umask(0077);
        r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old_umask);
        if (r < 0 || listen(fd, 128) < 0) {
                r = log_error_errno(errno, "cannot listen on %s", path);
                close(fd);
                return r;
        }
        srv = calloc(1, sizeof *srv);
        if (!srv) {
                close(fd);
                return -ENOMEM;
        }
        srv->supervisor = s;
        srv->fd = fd;
        srv->path = strdup(path);
        r = sd_event_add_io(s->event, &srv->source, fd, EPOLLIN, on_accept, srv);
        if (r < 0 || !srv->path) {
                control_server_free(srv);
                return log_error_errno(r < 0 ? r : -ENOMEM, "cannot watch control socket");
        }
        *ret = srv;
        return 0;
}

struct control_server *control_server_free(struct control_server *srv) {
        if (!srv)
                return NULL;
        while (srv->conns)
                conn_free(srv->conns);
        sd_event_source_disable_unref(srv->source);
        close(srv->fd);
        if (srv->path)
                (void) unlink(srv->path);
        free(srv->path);
        free(srv);
        return NULL;
}

/* Control socket server (see control_server.h): accepts CLI connections, reads one JSON request
 * per line, dispatches it by "op", writes one JSON reply per line without blocking the loop. */

#include <errno.h>
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
#include "supervisor.h"

#define CONTROL_CONNECTIONS_MAX 64
#define CONTROL_REQUEST_MAX (1024u * 1024u)

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
};

struct control_server {
        struct supervisor *supervisor;
        int fd;
        char *path;
        sd_event_source *source;
        struct control_conn *conns;
        unsigned n_conns;
};

typedef int (*control_op_t)(struct supervisor *s, struct json_object *args,
                            struct json_object **result, struct json_object **error);

static int op_ping(struct supervisor *s, struct json_object *args, struct json_object **result,
                   struct json_object **error) {
        *result = json_object_new_string("pong");
        return 0;
}

static int op_status(struct supervisor *s, struct json_object *args, struct json_object **result,
                     struct json_object **error) {
        *result = supervisor_status_json(s);
        return *result ? 0 : -ENOMEM;
}

static int op_reload(struct supervisor *s, struct json_object *args, struct json_object **result,
                     struct json_object **error) {
        int r = supervisor_reload(s);
        if (r == -EINVAL) {
                *error = control_error_new("invalid_config",
                                           "the configuration has errors; the running one was kept "
                                           "(see `conclave doctor` or the journal)");
                return 0;
        }
        if (r == -EBUSY) {
                *error = control_error_new("busy", "a reload or stop is already in progress");
                return 0;
        }
        if (r < 0)
                return r;
        *result = json_object_new_string("reloading");
        return 0;
}

static const struct {
        const char *name;
        control_op_t handler;
} ops[] = {
        { "ping", op_ping },
        { "status", op_status },
        { "reload", op_reload },
};

static void conn_free(struct control_conn *c) {
        struct control_server *srv = c->server;

        for (struct control_conn **p = &srv->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        srv->n_conns--;
        sd_event_source_disable_unref(c->source);
        close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
}

static int conn_queue(struct control_conn *c, struct json_object *reply) {
        const char *s = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
        size_t len = strlen(s);
        char *n;

        if (c->out_pos == c->out_len)
                c->out_pos = c->out_len = 0;
        n = realloc(c->out, c->out_len + len + 1);
        if (!n)
                return -ENOMEM;
        c->out = n;
        memcpy(c->out + c->out_len, s, len);
        c->out[c->out_len + len] = '\n';
        c->out_len += len + 1;
        return sd_event_source_set_io_events(c->source, EPOLLIN | EPOLLOUT);
}

static int conn_handle_line(struct control_conn *c, const char *line, size_t len) {
        struct supervisor *s = c->server->supervisor;
        _cleanup_json_ struct json_object *req = NULL, *result = NULL, *error = NULL, *reply = NULL;
        struct json_tokener *tok = json_tokener_new();
        struct json_object *op = NULL, *args = NULL;
        const char *name;
        int r = -ENOENT;

        if (!tok)
                return -ENOMEM;
        req = json_tokener_parse_ex(tok, line, (int) len);
        if (req && json_tokener_get_parse_end(tok) != len)
                req = (json_object_put(req), NULL);
        json_tokener_free(tok);

        if (!req || !json_object_is_type(req, json_type_object) ||
            !json_object_object_get_ex(req, "op", &op) || !json_object_is_type(op, json_type_string)) {
                reply = control_error_new("bad_request", "expected {\"op\":\"…\",\"args\":{…}}");
                return reply ? conn_queue(c, reply) : -ENOMEM;
        }
        if (json_object_object_get_ex(req, "args", &args) && !json_object_is_type(args, json_type_object)) {
                reply = control_error_new("bad_request", "\"args\" must be an object");
                return reply ? conn_queue(c, reply) : -ENOMEM;
        }
        name = json_object_get_string(op);
        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                if (streq(ops[i].name, name)) {
                        r = ops[i].handler(s, args, &result, &error);
                        break;
                }
        if (r == -ENOENT) {
                char msg[160];
                snprintf(msg, sizeof msg, "unknown operation \"%.64s\"", name);
                reply = control_error_new("unknown_op", msg);
        } else if (r < 0) {
                reply = control_error_new("internal", strerror(-r));
                log_error_errno(r, "control operation %s failed", name);
        } else if (error) {
                reply = json_object_get(error);
        } else {
                reply = json_object_new_object();
                if (reply) {
                        json_object_object_add(reply, "ok", json_object_new_boolean(1));
                        json_object_object_add(reply, "result", json_object_get(result));
                }
        }
        return reply ? conn_queue(c, reply) : -ENOMEM;
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

        while ((nl = memchr(c->in, '\n', c->in_len))) {
                size_t len = (size_t) (nl - c->in);
                int r = conn_handle_line(c, c->in, len);
                memmove(c->in, nl + 1, c->in_len - len - 1);
                c->in_len -= len + 1;
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
        if (r < 0 || (c->closing && c->out_pos >= c->out_len))
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
        if (r < 0 || listen(fd, 64) < 0) {
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

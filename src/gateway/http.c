/* The gateway's HTTP server: libmicrohttpd in external epoll mode under sd-event (its epoll fd
 * is one I/O source, MHD_get_timeout() re-arms one timer), the listener lifecycle, and routing. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "api.h"
#include "connections.h"
#include "http.h"
#include "request.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "ratelimit.h"
#include "timeutil.h"

/* Bounds on what clients can make us hold: idle time, per-connection memory; the number of
 * connections and the time to send a request are in connections.h. libmicrohttpd gives each
 * connection this much (the request head must fit, about 7 KiB, with room to answer); it is
 * touched, so it is most of what an idle event stream costs (1,000 take about 11 MB). */
#define HTTP_CONNECTION_TIMEOUT_SEC 30u
/* File descriptors the gateway needs besides its connections. */
#define HTTP_FDS_RESERVED 64u
#define HTTP_CONNECTION_MEMORY_LIMIT ((size_t) 8 * 1024)


struct http_listener {
        struct http_server *server;
        struct MHD_Daemon *daemon;
        struct conn_table *connections;
        unsigned hard_limit; /* MHD's connection limit, fixed while the listener lives */
        sd_event_source *io_source;
        sd_event_source *timer_source;
        bool activated; /* serves a copy of the socket systemd passed us */
        char *bind;     /* the [gateway] bind/port it was made from; NULL when activated */
        uint16_t port;
        char address[HTTP_ADDRESS_MAX]; /* what it really listens on, e.g. "[::1]:7777" */
};

struct http_server {
        sd_event *event;
        struct gateway_api *api;        /* what requests mean; NULL: only /healthz */
        sd_event_source *run_defer;     /* runs MHD after a suspended connection was resumed */
        struct http_listener *listener; /* NULL when not listening */
        int activated_fd;               /* from sd_listen_fds(), -1 without socket activation */
        bool disabled;                  /* [gateway] enabled = false */
        bool loopback;                  /* the listener accepts loopback connections only */
        unsigned max_connections;       /* [gateway] max_connections: the soft limit */
        uint64_t start_usec;            /* CLOCK_MONOTONIC, for /healthz uptime */
};

/* ---- addresses --------------------------------------------------------------------------- */

static void format_sockaddr(const struct sockaddr_storage *sa, socklen_t len, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN] = "";

        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(buf, size, "%s:%u", host, (unsigned) ntohs(in->sin_port));
        } else if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                if (in6->sin6_scope_id != 0)
                        snprintf(buf, size, "[%s%%%u]:%u", host, (unsigned) in6->sin6_scope_id,
                                 (unsigned) ntohs(in6->sin6_port));
                else
                        snprintf(buf, size, "[%s]:%u", host, (unsigned) ntohs(in6->sin6_port));
        } else if (sa->ss_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) sa;
                size_t n = (size_t) len - offsetof(struct sockaddr_un, sun_path);
                /* An abstract socket name starts with NUL; show it the way ss(8) does. */
                if (un->sun_path[0] == 0)
                        snprintf(buf, size, "@%.*s", (int) (n > 0 ? n - 1 : 0), un->sun_path + 1);
                else
                        snprintf(buf, size, "%.*s", (int) strnlen(un->sun_path, n), un->sun_path);
        } else
                snprintf(buf, size, "(address family %d)", (int) sa->ss_family);
}

static bool sockaddr_is_loopback(const struct sockaddr_storage *sa) {
        if (sa->ss_family == AF_UNIX)
                return true;
        if (sa->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) sa)->sin6_addr);
        return false;
}

/* "127.0.0.1:7777" / "[::1]:7777" from the configuration, for messages before a socket exists. */
static void format_bind(const char *bind, uint16_t port, char *buf, size_t size) {
        snprintf(buf, size, strchr(bind, ':') ? "[%s]:%u" : "%s:%u", bind, (unsigned) port);
}

/* Only numeric addresses (and "localhost") are accepted: resolving a name would block the loop
 * and could silently move the listener to whatever the resolver answers. */
static int parse_bind(const char *bind, uint16_t port, struct sockaddr_storage *ret, socklen_t *ret_len) {
        const struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
        };
        struct addrinfo *ai = NULL;
        char service[8];

        snprintf(service, sizeof service, "%u", (unsigned) port);
        if (getaddrinfo(streq(bind, "localhost") ? "127.0.0.1" : bind, service, &hints, &ai) != 0)
                return -EINVAL;
        if (ai->ai_addrlen > sizeof *ret) {
                freeaddrinfo(ai);
                return -EAFNOSUPPORT;
        }
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

static int socket_listen(const struct sockaddr *sa, socklen_t len) {
        _cleanup_close_ int fd = -1;
        int one = 1, r;

        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
        if (fd < 0)
                return negative_errno();
        /* Lets a restarted gateway bind while old connections sit in TIME_WAIT. Not SO_REUSEPORT:
         * a second gateway on the same port must fail, not silently share the traffic. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                return negative_errno();
        if (bind(fd, sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return negative_errno();
        r = fd;
        fd = -1;
        return r;
}

static const char *listen_error_hint(int error) {
        switch (error) {
        case -EADDRINUSE:
                return " (another program, perhaps another conclave-gateway, uses this port: stop "
                       "it or choose another [gateway] port)";
        case -EADDRNOTAVAIL:
                return " (this machine has no such address: check [gateway] bind)";
        case -EACCES:
                return " (ports below 1024 need privileges: choose another [gateway] port)";
        case -EAFNOSUPPORT:
                return " (this machine does not support that address family: is IPv6 disabled?)";
        default:
                return "";
        }
}

/* ---- responses --------------------------------------------------------------------------- */

static int json_add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int http_response_add_common_headers(struct MHD_Response *response, const char *content_type) {
        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_NO ||
            MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_NO ||
            MHD_add_response_header(response, "X-Content-Type-Options", "nosniff") == MHD_NO)
                return -ENOMEM;
        return 0;
}

static void server_schedule_run(struct http_server *s);

void http_request_respond(struct http_request *req, unsigned status, struct MHD_Response *response) {
        if (req->response || req->response_status || req->status) {
                /* Answered already (e.g. a timeout raced the reply): keep the first answer. */
                if (response)
                        MHD_destroy_response(response);
                return;
        }
        req->response = response;
        req->response_status = status;
        if (req->suspended) {
                req->suspended = false;
                MHD_resume_connection(req->con);
                server_schedule_run(req->server);
        }
}

void http_request_respond_json(struct http_request *req, unsigned status, struct json_object *body) {
        struct MHD_Response *response = NULL;
        _cleanup_free_ char *text = NULL;
        const char *s;

        s = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
        if (s && asprintf(&text, "%s\n", s) >= 0)
                response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
        if (response && http_response_add_common_headers(response, "application/json") < 0) {
                MHD_destroy_response(response);
                response = NULL;
        }
        /* NULL: the connection is closed, and logged as a 500. */
        http_request_respond(req, response ? status : MHD_HTTP_INTERNAL_SERVER_ERROR, response);
}

void http_request_respond_error(struct http_request *req, unsigned status, const char *code, const char *fmt, ...) {
        _cleanup_json_ struct json_object *body = json_object_new_object();
        struct json_object *error = json_object_new_object();
        char message[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (!body || json_add(body, "error", error) < 0 ||
            json_add(error, "code", json_object_new_string(code)) < 0 ||
            json_add(error, "message", json_object_new_string(message)) < 0) {
                if (!body)
                        json_object_put(error);
                http_request_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
                return;
        }
        http_request_respond_json(req, status, body);
}

const char *http_request_header(struct http_request *req, const char *name) {
        return MHD_lookup_connection_value(req->con, MHD_HEADER_KIND, name);
}

const char *http_request_query(struct http_request *req, const char *name) {
        return MHD_lookup_connection_value(req->con, MHD_GET_ARGUMENT_KIND, name);
}

void http_request_wake(struct http_request *req) {
        if (req->suspended && !req->done) {
                req->suspended = false;
                MHD_resume_connection(req->con);
                server_schedule_run(req->server);
        }
}

void http_request_suspend(struct http_request *req) {
        if (!req->suspended && !req->done) {
                req->suspended = true;
                MHD_suspend_connection(req->con);
        }
}

static void respond_healthz(struct http_server *s, struct http_request *req) {
        _cleanup_json_ struct json_object *body = json_object_new_object();
        uint64_t uptime = now_usec(CLOCK_MONOTONIC) - s->start_usec;

        if (!body || json_add(body, "status", json_object_new_string("ok")) < 0 ||
            json_add(body, "program", json_object_new_string("conclave-gateway")) < 0 ||
            json_add(body, "version", json_object_new_string(PACKAGE_VERSION)) < 0 ||
            json_add(body, "pid", json_object_new_int64((int64_t) getpid())) < 0 ||
            json_add(body, "uptime_usec", json_object_new_uint64(uptime)) < 0) {
                http_request_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
                return;
        }
        http_request_respond_json(req, MHD_HTTP_OK, body);
}

/* ---- request handling -------------------------------------------------------------------- */

/* Copies client text for logs: bounded, and without bytes that could forge journal fields
 * (the path arrives URL-decoded, so "%0A" would otherwise become a newline). */
static void copy_printable(char *dst, size_t size, const char *src) {
        size_t i = 0;

        for (; src && src[i] && i + 1 < size; i++)
                dst[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '?';
        dst[i] = 0;
}

static void client_address(struct http_request *req) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(req->con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct sockaddr_storage sa = {};
        socklen_t len;
        char *colon;

        snprintf(req->client, sizeof req->client, "local");
        snprintf(req->client_key, sizeof req->client_key, "local");
        if (!info || !info->client_addr)
                return;
        switch (info->client_addr->sa_family) {
        case AF_INET: len = sizeof(struct sockaddr_in); break;
        case AF_INET6: len = sizeof(struct sockaddr_in6); break;
        default: req->client_loopback = true; return;
        }
        memcpy(&sa, info->client_addr, len);
        req->client_loopback = sockaddr_is_loopback(&sa);
        format_sockaddr(&sa, len, req->client, sizeof req->client);
        /* Logs name the host, not the ephemeral port: "1.2.3.4", "[::1]". */
        colon = strrchr(req->client, ':');
        if (colon)
                *colon = 0;
        /* Limits count an IPv6 client by its /64: one host usually holds all of it. */
        if (ratelimit_client_key((const struct sockaddr *) &sa, len, req->client_key, sizeof req->client_key) < 0)
                snprintf(req->client_key, sizeof req->client_key, "%.63s", req->client);
}

static void *on_request_line(void *userdata, const char *uri, struct MHD_Connection *con) {
        struct http_listener *l = userdata;
        struct http_request *req = calloc(1, sizeof *req);

        /* The full URI may carry secrets in its query string: it is never stored or logged. */
        if (!req)
                return NULL;
        req->server = l->server;
        req->con = con;
        req->start_usec = now_usec(CLOCK_MONOTONIC);
        client_address(req);
        return req;
}

static enum MHD_Result queue_pending(struct http_request *req) {
        enum MHD_Result ret;

        if (!req->response) {
                /* Nothing to send (allocation failure): close the connection. */
                req->status = req->response_status ? req->response_status : MHD_HTTP_INTERNAL_SERVER_ERROR;
                return MHD_NO;
        }
        ret = MHD_queue_response(req->con, req->response_status, req->response);
        MHD_destroy_response(req->response);
        req->response = NULL;
        if (ret == MHD_YES)
                req->status = req->response_status;
        return ret;
}

static bool request_has_body(struct http_request *req) {
        const char *length = http_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);

        return (length && !streq(length, "0")) || http_request_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* A Content-Length above max: refused before the body is sent (no 100 Continue). */
static bool declared_too_large(struct http_request *req, size_t max) {
        const char *length = http_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long v;
        char *end;

        if (!length)
                return false;
        errno = 0;
        v = strtoull(length, &end, 10);
        /* MHD has refused a malformed length already; anything odd left counts as too large. */
        return errno != 0 || end == length || v > max;
}

static void respond_too_large(struct http_request *req, size_t max) {
        http_request_respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                   "request body exceeds %zu bytes ([gateway] max_body)", max);
}

/* Over the soft connection limit: say so, and close the connection after the answer. */
static void respond_over_limit(struct http_server *s, struct http_request *req) {
        http_request_respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                   "too many connections (more than %u, [gateway] max_connections); retry later",
                                   s->max_connections);
        if (req->response &&
            (MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_NO ||
             MHD_add_response_header(req->response, MHD_HTTP_HEADER_RETRY_AFTER, "1") == MHD_NO)) {
                MHD_destroy_response(req->response);
                req->response = NULL; /* closed without an answer, logged as 503 */
        }
}

/* The first call for a request: its head is complete. Answers at once what can be answered
 * without the body. */
static void on_request_head(struct http_server *s, struct http_request *req, const char *url, const char *method) {
        struct http_connection *c = http_connection_of(req->con);

        http_connection_headers_received(c);
        copy_printable(req->method, sizeof req->method, method);
        copy_printable(req->path, sizeof req->path, url);
        if (c && c->over_limit)
                respond_over_limit(s, req);
        else if (streq(url, "/healthz")) {
                if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD)) {
                        http_request_respond_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                                   "/healthz supports GET and HEAD");
                        if (req->response)
                                (void) MHD_add_response_header(req->response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
                } else
                        respond_healthz(s, req);
        } else if (!s->api)
                http_request_respond_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
        else if (!gateway_api_check_headers(s->api, req) &&
                 declared_too_large(req, gateway_api_max_body(s->api)))
                respond_too_large(req, gateway_api_max_body(s->api));
}

static enum MHD_Result on_request(void *userdata, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_userdata) {
        struct http_listener *l = userdata;
        struct http_server *s = l->server;
        struct http_request *req = *req_userdata;

        if (!req)
                return MHD_NO;
        if (req->status != 0) {
                /* Answered already; drop whatever body is still arriving. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (!req->headers_seen) {
                req->headers_seen = true;
                on_request_head(s, req, url, method);
                /* An answer queued before the whole request is read makes MHD close the
                 * connection: right for a refused body; a bodiless request is answered on the
                 * next call, which keeps the connection. */
                if (req->response_status && request_has_body(req))
                        return queue_pending(req);
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                size_t max = s->api ? gateway_api_max_body(s->api) : 0;
                char *n;

                /* MHD cannot answer in the middle of a body: read the rest and drop it (the
                 * body deadline bounds how long), then answer. */
                if (req->response_status || req->body_too_large) {
                        *upload_data_size = 0;
                        return MHD_YES;
                }
                if (req->body_len + *upload_data_size > max) {
                        *upload_data_size = 0;
                        req->body_too_large = true;
                        free(req->body);
                        req->body = NULL;
                        req->body_len = req->body_size = 0;
                        return MHD_YES;
                }
                if (req->body_len + *upload_data_size + 1 > req->body_size) {
                        /* Doubling: the body arrives a few KiB at a time; growing by each piece
                         * would copy a 1 MiB body hundreds of times. Bounded by max + 1. */
                        size_t size = req->body_size ? req->body_size : 4096;
                        while (size < req->body_len + *upload_data_size + 1)
                                size *= 2;
                        if (size > max + 1)
                                size = max + 1;
                        n = realloc(req->body, size);
                        if (!n)
                                return MHD_NO;
                        req->body = n;
                        req->body_size = size;
                }
                memcpy(req->body + req->body_len, upload_data, *upload_data_size);
                req->body_len += *upload_data_size;
                req->body[req->body_len] = 0;
                *upload_data_size = 0;
                return MHD_YES;
        }
        http_connection_answering(http_connection_of(con));
        if (req->body_too_large)
                respond_too_large(req, s->api ? gateway_api_max_body(s->api) : 0);
        if (req->response_status)
                return queue_pending(req);
        if (!req->dispatched) {
                req->dispatched = true;
                gateway_api_handle(s->api, req);
        }
        if (req->response_status)
                return queue_pending(req);
        if (req->sse)
                return MHD_YES; /* its response is queued already */
        /* The answer comes later: park the connection until then. */
        http_request_suspend(req);
        return MHD_YES;
}

static const char *termination_to_string(enum MHD_RequestTerminationCode how) {
        switch (how) {
        case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "";
        case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timed out";
        case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "listener stopped";
        case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        case MHD_REQUEST_TERMINATED_READ_ERROR: return "client went away";
        default: return "aborted";
        }
}

static void on_request_done(void *userdata, struct MHD_Connection *con, void **req_userdata,
                            enum MHD_RequestTerminationCode how) {
        struct http_listener *l = userdata;
        struct http_request *req = *req_userdata;
        char fields[HTTP_LOG_PATH_MAX + HTTP_ADDRESS_MAX + 200];
        uint64_t latency;
        int level;

        http_connection_request_done(http_connection_of(con));
        if (!req)
                return;
        *req_userdata = NULL;
        req->done = true;
        latency = now_usec(CLOCK_MONOTONIC) - req->start_usec;
        /* Every API request is worth a line; health probes only when debugging. */
        level = streq(req->path, "/healthz") || streq(req->path, "/readyz") ? LOG_DEBUG : LOG_INFO;
        if (log_get_max_level() >= level) {
                snprintf(fields, sizeof fields,
                         "CONCLAVE_HTTP_STATUS=%u\nCONCLAVE_HTTP_METHOD=%s\nCONCLAVE_HTTP_PATH=%s\n"
                         "CONCLAVE_HTTP_CLIENT=%s\nCONCLAVE_HTTP_LATENCY_USEC=%" PRIu64,
                         req->status, req->method, req->path, req->client, latency);
                log_fields_errno(level, 0, fields, "%s %s %u %" PRIu64 ".%03" PRIu64 "ms %s%s%s",
                                 *req->method ? req->method : "-", *req->path ? req->path : "-",
                                 req->status, latency / USEC_PER_MSEC, latency % USEC_PER_MSEC, req->client,
                                 how == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : ", ",
                                 termination_to_string(how));
        }
        if (l->server->api)
                gateway_api_request_done(l->server->api, req);
        if (req->response)
                MHD_destroy_response(req->response);
        free(req->body);
        free(req);
}

static void on_mhd_log(void *userdata, const char *format, va_list ap) _printf_(2, 0);
static void on_mhd_log(void *userdata, const char *format, va_list ap) {
        char message[512];
        size_t n;

        vsnprintf(message, sizeof message, format, ap);
        n = strlen(message);
        while (n > 0 && message[n - 1] == '\n')
                message[--n] = 0;
        /* Mostly clients misbehaving or limits reached: worth seeing, not an error of ours. */
        log_fields_errno(LOG_NOTICE, 0, "CONCLAVE_HTTP_LIBRARY=libmicrohttpd", "libmicrohttpd: %s", message);
}

/* ---- event loop integration -------------------------------------------------------------- */

/* Runs MHD, then arms the timer for MHD's next deadline (connection timeouts, or 0 when it has
 * buffered work it did not finish this round). */
static int listener_run(struct http_listener *l) {
        MHD_UNSIGNED_LONG_LONG timeout_msec;
        uint64_t now;
        int r;

        if (MHD_run(l->daemon) == MHD_NO) {
                log_error("libmicrohttpd failed to process connections on %s; exiting", l->address);
                return sd_event_exit(l->server->event, EXIT_FAILURE);
        }
        if (MHD_get_timeout(l->daemon, &timeout_msec) == MHD_NO)
                return sd_event_source_set_enabled(l->timer_source, SD_EVENT_OFF);
        r = sd_event_now(l->server->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return log_error_errno(r, "cannot read the loop's clock");
        if (timeout_msec >= (UINT64_MAX - now) / USEC_PER_MSEC)
                return sd_event_source_set_enabled(l->timer_source, SD_EVENT_OFF);
        /* 0: work is left over (a resumed connection to answer); no slack for that. Not a defer
         * source: one that re-arms itself would keep sd-event from polling for I/O at all. */
        r = sd_event_source_set_time_accuracy(l->timer_source, timeout_msec == 0 ? 1 : USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_time(l->timer_source, now + (uint64_t) timeout_msec * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->timer_source, SD_EVENT_ONESHOT);
        if (r < 0)
                return log_error_errno(r, "cannot arm the HTTP timer; connections may stall");
        return 0;
}

static int on_epoll(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        return listener_run(userdata);
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        return listener_run(userdata);
}

static int on_run_defer(sd_event_source *source, void *userdata) {
        struct http_server *s = userdata;

        return s->listener ? listener_run(s->listener) : 0;
}

/* A connection resumed outside MHD_run() is processed only by the next run: do it at the end of
 * this loop iteration, once for however many were resumed. */
static void server_schedule_run(struct http_server *s) {
        int r = 0;

        if (!s->run_defer)
                r = sd_event_add_defer(s->event, &s->run_defer, on_run_defer, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->run_defer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "cannot schedule HTTP processing; a request may stall until the next timeout");
}

/* ---- listeners --------------------------------------------------------------------------- */

static struct http_listener *listener_free(struct http_listener *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->io_source);
        sd_event_source_disable_unref(l->timer_source);
        /* In external polling mode this closes every connection and the listening socket. */
        if (l->daemon)
                MHD_stop_daemon(l->daemon);
        conn_table_free(l->connections);
        free(l->bind);
        free(l);
        return NULL;
}

/* MHD's hard connection limit for the soft one, within what RLIMIT_NOFILE allows: the soft
 * file limit is raised to the hard one when needed (systemd's default soft limit of 1024 is for
 * programs using select(); MHD uses epoll here). */
static unsigned connection_hard_limit(unsigned soft_limit) {
        unsigned want = conn_table_hard_limit(soft_limit);
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return want;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t) want + HTTP_FDS_RESERVED) {
                struct rlimit raised = rl;
                raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t) want + HTTP_FDS_RESERVED
                                          ? (rlim_t) want + HTTP_FDS_RESERVED
                                          : rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
                        rl = raised;
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t) want + HTTP_FDS_RESERVED) {
                unsigned fit = rl.rlim_cur > HTTP_FDS_RESERVED + 1 ? (unsigned) rl.rlim_cur - HTTP_FDS_RESERVED : 1;
                log_warning("the file limit (%llu, LimitNOFILE=) allows %u connections, fewer than the %u that "
                            "[gateway] max_connections = %u asks for; raise LimitNOFILE= or lower max_connections",
                            (unsigned long long) rl.rlim_cur, fit, want, soft_limit);
                return fit;
        }
        return want;
}

/* Serves HTTP on the listening socket fd, which it takes over (closed on failure, too). Errors
 * are returned, not logged: the caller knows what the socket was meant to be. */
static int listener_new(struct http_server *s, int fd, unsigned max_connections, struct http_listener **ret) {
        struct http_listener *l = calloc(1, sizeof *l);
        const union MHD_DaemonInfo *info;
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int r;

        if (!l) {
                close(fd);
                return -ENOMEM;
        }
        l->server = s;
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0) {
                r = negative_errno();
                close(fd);
                listener_free(l);
                return r;
        }
        format_sockaddr(&sa, len, l->address, sizeof l->address);
        r = conn_table_new(s->event, l->address, &l->connections);
        if (r < 0) {
                close(fd);
                listener_free(l);
                return r;
        }
        conn_table_set_soft_limit(l->connections, max_connections);
        l->hard_limit = connection_hard_limit(max_connections);

        l->daemon = MHD_start_daemon(
                MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, l,
                /* First, so that every message of MHD's goes through it. */
                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, l,
                MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                MHD_OPTION_CONNECTION_LIMIT, l->hard_limit,
                MHD_OPTION_NOTIFY_CONNECTION, conn_table_notify, l->connections,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) HTTP_CONNECTION_TIMEOUT_SEC,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) HTTP_CONNECTION_MEMORY_LIMIT,
                MHD_OPTION_URI_LOG_CALLBACK, on_request_line, l,
                MHD_OPTION_NOTIFY_COMPLETED, on_request_done, l,
                MHD_OPTION_END);
        if (!l->daemon) {
                /* MHD has logged why. Whether it closed fd varies; a second close is harmless
                 * here (single thread, nothing opened in between). */
                close(fd);
                listener_free(l);
                return -EIO;
        }
        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        r = info && info->epoll_fd >= 0 ? 0 : -EIO;
        if (r >= 0)
                r = sd_event_add_io(s->event, &l->io_source, info->epoll_fd, EPOLLIN, on_epoll, l);
        if (r >= 0)
                r = sd_event_add_time(s->event, &l->timer_source, CLOCK_MONOTONIC, UINT64_MAX,
                                      USEC_PER_MSEC, on_timer, l);
        if (r >= 0)
                r = sd_event_source_set_enabled(l->timer_source, SD_EVENT_OFF);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        (void) sd_event_source_set_description(l->io_source, "http-epoll");
        (void) sd_event_source_set_description(l->timer_source, "http-timer");
        *ret = l;
        return 0;
}

static int listener_new_bound(struct http_server *s, const char *bind, uint16_t port, unsigned max_connections,
                              struct http_listener **ret) {
        struct sockaddr_storage sa;
        struct http_listener *l;
        socklen_t len;
        int fd, r;

        r = parse_bind(bind, port, &sa, &len);
        if (r < 0)
                return r;
        fd = socket_listen((struct sockaddr *) &sa, len);
        if (fd < 0)
                return fd;
        r = listener_new(s, fd, max_connections, &l);
        if (r < 0)
                return r;
        l->port = port;
        l->bind = strdup(bind);
        if (!l->bind) {
                listener_free(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

static int listener_new_activated(struct http_server *s, unsigned max_connections, struct http_listener **ret) {
        int fd, r;

        /* MHD closes the socket it serves; give it a copy so disabling and re-enabling the
         * gateway does not lose the socket systemd handed over. */
        fd = fcntl(s->activated_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        r = listener_new(s, fd, max_connections, ret);
        if (r < 0)
                return r;
        (*ret)->activated = true;
        return 0;
}

/* ---- server ------------------------------------------------------------------------------ */

/* Refuses a listener reachable beyond this machine unless the operator asked for it and set a
 * token. Configuration validation checks the same, but this is the last line of defence. */
static int check_exposure(const struct http_server *s, const struct config *c) {
        bool auth = config_gateway_has_auth(c), loopback;
        char where[HTTP_ADDRESS_MAX + 64];

        if (s->activated_fd >= 0) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof sa;
                char address[HTTP_ADDRESS_MAX];

                if (getsockname(s->activated_fd, (struct sockaddr *) &sa, &len) < 0)
                        return log_error_errno(errno, "cannot read the socket-activated address");
                loopback = sockaddr_is_loopback(&sa);
                format_sockaddr(&sa, len, address, sizeof address);
                snprintf(where, sizeof where, "the socket-activated address %s", address);
        } else {
                loopback = address_is_loopback(c->gateway_bind);
                snprintf(where, sizeof where, "[gateway] bind = \"%s\"", c->gateway_bind);
        }
        if (loopback || (auth && c->gateway_allow_public_bind))
                return loopback ? 1 : 0;
        return log_error_errno(EPERM, "refusing to listen: %s is not a loopback address and %s%s%s; "
                               "bind to 127.0.0.1 or ::1, or set [gateway] token_file (or "
                               "CONCLAVE_WEB_TOKEN) and allow_public_bind = true",
                               where, auth ? "" : "no token is configured",
                               !auth && !c->gateway_allow_public_bind ? " and " : "",
                               c->gateway_allow_public_bind ? "" : "allow_public_bind is not set");
}

int http_server_new(sd_event *event, struct http_server **ret) {
        struct http_server *s;
        int n;

        n = sd_listen_fds(1);
        if (n < 0)
                return log_error_errno(n, "cannot read the sockets passed by systemd");
        if (n > 1)
                return log_error_errno(EINVAL, "systemd passed %d sockets; conclave-gateway takes "
                                       "exactly one (check ListenStream= in the .socket unit)", n);
        if (n == 1) {
                int fd = SD_LISTEN_FDS_START, flags;

                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
                        return log_error_errno(ENOTSOCK, "the socket passed by systemd is not a "
                                               "listening stream socket");
                /* MHD in epoll mode needs a non-blocking listening socket. */
                flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return log_error_errno(errno, "cannot make the socket-activated fd non-blocking");
        }

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->activated_fd = n == 1 ? SD_LISTEN_FDS_START : -1;
        s->start_usec = now_usec(CLOCK_MONOTONIC);
        *ret = s;
        return 0;
}

struct http_server *http_server_free(struct http_server *s) {
        if (!s)
                return NULL;
        listener_free(s->listener);
        sd_event_source_disable_unref(s->run_defer);
        if (s->activated_fd >= 0)
                close(s->activated_fd);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

static bool listener_matches(const struct http_listener *l, const struct config *c) {
        /* A socket from systemd is fixed; [gateway] bind and port do not apply to it. */
        return l->activated || (streq(l->bind, c->gateway_bind) && l->port == c->gateway_port);
}

/* Listeners on overlapping addresses cannot coexist (127.0.0.1:7777 then 0.0.0.0:7777), so the
 * old one has to go first; if the new one still cannot listen, the old one is brought back. */
static int replace_listener_on_same_port(struct http_server *s, const struct config *c,
                                         struct http_listener **ret) {
        _cleanup_free_ char *old_bind = strdup(s->listener->bind);
        uint16_t old_port = s->listener->port;
        int r, q;

        if (!old_bind)
                return -ENOMEM;
        log_debug("port %u is held by our own listener on %s; handing it over",
                  (unsigned) old_port, s->listener->address);
        s->listener = listener_free(s->listener);
        r = listener_new_bound(s, c->gateway_bind, c->gateway_port, c->gateway_max_connections, ret);
        if (r >= 0)
                /* cppcheck does not know __attribute__((cleanup)): old_bind is freed. */
                /* cppcheck-suppress memleak */
                return r;
        q = listener_new_bound(s, old_bind, old_port, s->max_connections, &s->listener);
        if (q < 0)
                log_error_errno(q, "cannot listen on the previous address again; the gateway is "
                                "not listening");
        return r;
}

/* A reload changes the soft limit at once; MHD's hard limit stays until the listener is made
 * again (a restart of the gateway, or a new bind or port). */
static void set_max_connections(struct http_server *s, unsigned max_connections) {
        unsigned hard = s->listener->hard_limit;

        if (max_connections == s->max_connections)
                return;
        s->max_connections = max_connections;
        conn_table_set_soft_limit(s->listener->connections, max_connections);
        if (max_connections >= hard)
                log_notice("[gateway] max_connections = %u: this listener still accepts at most %u "
                           "connections; restart the gateway for the new limit to apply fully",
                           max_connections, hard);
}

int http_server_apply_config(struct http_server *s, const struct config *c) {
        struct http_listener *l = NULL;
        struct sockaddr_storage sa;
        char where[HTTP_ADDRESS_MAX];
        socklen_t len;
        int r;

        if (!c->gateway_enabled) {
                if (s->listener)
                        log_info("[gateway] enabled = false: no longer listening on %s",
                                 s->listener->address);
                else
                        log_info("[gateway] enabled = false: not listening");
                s->listener = listener_free(s->listener);
                s->disabled = true;
                return 0;
        }
        if (s->activated_fd < 0 && parse_bind(c->gateway_bind, c->gateway_port, &sa, &len) < 0)
                return log_error_errno(EINVAL, "[gateway] bind = \"%s\" is not an IP address; use a "
                                       "numeric address such as \"127.0.0.1\" or \"::1\"",
                                       c->gateway_bind);
        r = check_exposure(s, c);
        if (r < 0)
                return r;
        s->loopback = r > 0;
        if (s->listener && listener_matches(s->listener, c)) {
                set_max_connections(s, c->gateway_max_connections);
                s->disabled = false;
                return 0;
        }

        if (s->activated_fd >= 0) {
                r = listener_new_activated(s, c->gateway_max_connections, &l);
                if (r < 0)
                        return log_error_errno(r, "cannot serve the socket passed by systemd");
                log_info("listening on %s (socket activation; [gateway] bind and port are not used)",
                         l->address);
        } else {
                r = listener_new_bound(s, c->gateway_bind, c->gateway_port, c->gateway_max_connections, &l);
                if (r == -EADDRINUSE && s->listener && s->listener->port == c->gateway_port)
                        r = replace_listener_on_same_port(s, c, &l);
                if (r < 0) {
                        format_bind(c->gateway_bind, c->gateway_port, where, sizeof where);
                        return log_error_errno(r, "cannot listen on %s%s", where, listen_error_hint(r));
                }
                log_info("listening on %s", l->address);
        }
        /* Only now that the new listener accepts connections does the old one go away. */
        listener_free(s->listener);
        s->listener = l;
        s->max_connections = c->gateway_max_connections;
        s->disabled = false;
        return 0;
}

bool http_server_loopback_only(const struct http_server *s) {
        return s->loopback;
}

void http_server_set_api(struct http_server *s, struct gateway_api *api) {
        s->api = api;
}

void http_server_status(const struct http_server *s, char *buf, size_t size) {
        if (s->disabled)
                snprintf(buf, size, "disabled");
        else if (s->listener)
                snprintf(buf, size, "listening on %s", s->listener->address);
        else
                snprintf(buf, size, "not listening");
}

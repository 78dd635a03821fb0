/* libcurl's multi-socket interface on sd-event: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it up (CURLMOPT_TIMERFUNCTION); we turn those into
 * sd-event io and time sources and hand their events back with curl_multi_socket_action().
 *
 * curl forbids calling into the multi handle from its own callbacks, and on_data runs inside
 * one (the write callback). So while curl runs (engine->in_curl), starting a call only queues it
 * and cancelling one only marks it; both are carried out as soon as curl returns. */

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "http_engine.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

struct http_socket {
        struct http_engine *engine;
        sd_event_source *source;
        struct http_socket *prev, *next;
};

struct http_call {
        struct http_engine *engine;
        struct http_call *prev, *next;
        CURL *easy;
        struct curl_slist *headers, *rcpt;
        char *upload; /* SMTP message, read by read_cb */
        size_t upload_len, upload_pos;
        http_data_fn on_data;
        http_done_fn on_done;
        void *userdata;
        bool streaming_ok; /* http(s): 2xx bodies go to on_data */
        bool added;        /* known to the multi handle */
        bool cancelled;
        int error;         /* set by a callback that aborted the transfer */
        char *buf;
        size_t len, cap, max;
        char *content_type;
        uint64_t retry_after_usec;
        uint64_t started;
        char errbuf[CURL_ERROR_SIZE];
};

struct http_engine {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        struct http_call *calls;
        struct http_socket *sockets;
        size_t n_calls;
        unsigned in_curl;
        bool pending; /* calls to add or to reap once curl returns */
};

#define LIST_PREPEND(head, item)                 \
        do {                                     \
                (item)->prev = NULL;             \
                (item)->next = (head);           \
                if (head)                        \
                        (head)->prev = (item);   \
                (head) = (item);                 \
        } while (0)
#define LIST_REMOVE(head, item)                           \
        do {                                              \
                if ((item)->prev)                         \
                        (item)->prev->next = (item)->next; \
                else                                      \
                        (head) = (item)->next;            \
                if ((item)->next)                         \
                        (item)->next->prev = (item)->prev; \
                (item)->prev = (item)->next = NULL;       \
        } while (0)

static void call_free(struct http_call *c) {
        struct http_engine *e = c->engine;

        if (c->added)
                (void) curl_multi_remove_handle(e->multi, c->easy);
        LIST_REMOVE(e->calls, c);
        e->n_calls--;
        curl_easy_cleanup(c->easy);
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->rcpt);
        free(c->upload);
        free(c->buf);
        free(c->content_type);
        free(c);
}

static int errno_from_curl(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_USE_SSL_FAILED:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return -EPROTO;
        case CURLE_LOGIN_DENIED:
                return -EACCES;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* Called by curl (and only while it runs) with each piece of a response body. */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        struct http_call *c = userdata;
        size_t n = size * nmemb;
        long status = 0;

        if (c->cancelled)
                return CURL_WRITEFUNC_ERROR;
        (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (c->on_data && c->streaming_ok && status >= 200 && status < 300) {
                int r = c->on_data(c, data, n, c->userdata);
                if (r < 0) {
                        c->error = r;
                        return CURL_WRITEFUNC_ERROR;
                }
                return n;
        }
        if (n > c->max - c->len) {
                c->error = -EMSGSIZE;
                return CURL_WRITEFUNC_ERROR;
        }
        if (c->len + n + 1 > c->cap) {
                size_t cap = MAX(c->cap * 2, c->len + n + 1);
                char *p = realloc(c->buf, cap);
                if (!p) {
                        c->error = -ENOMEM;
                        return CURL_WRITEFUNC_ERROR;
                }
                c->buf = p;
                c->cap = cap;
        }
        memcpy(c->buf + c->len, data, n);
        c->len += n;
        c->buf[c->len] = 0;
        return n;
}

static bool header_is(const char *line, size_t n, const char *name, const char **ret_value,
                      size_t *ret_len) {
        size_t k = strlen(name);

        if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
                return false;
        line += k + 1;
        n -= k + 1;
        while (n > 0 && (*line == ' ' || *line == '\t'))
                line++, n--;
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
                n--;
        *ret_value = line;
        *ret_len = n;
        return true;
}

/* Retry-After is delta-seconds or an HTTP date. */
static uint64_t parse_retry_after(const char *v, size_t n) {
        char s[64];
        time_t t, now;

        if (n == 0 || n >= sizeof s)
                return 0;
        memcpy(s, v, n);
        s[n] = 0;
        if (strspn(s, "0123456789") == n) {
                unsigned long long secs = strtoull(s, NULL, 10);
                return secs > 86400 ? 86400 * USEC_PER_SEC : secs * USEC_PER_SEC;
        }
        t = curl_getdate(s, NULL);
        now = time(NULL);
        if (t == (time_t) -1 || t <= now)
                return t == (time_t) -1 ? 0 : 1;
        return (uint64_t) MIN((time_t) 86400, t - now) * USEC_PER_SEC;
}

static size_t header_cb(char *line, size_t size, size_t nmemb, void *userdata) {
        struct http_call *c = userdata;
        size_t n = size * nmemb, vlen;
        const char *v;

        if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
                /* A new response (after 100 Continue, say): forget the last one's headers. */
                c->retry_after_usec = 0;
                c->content_type = mfree(c->content_type);
        } else if (header_is(line, n, "retry-after", &v, &vlen))
                c->retry_after_usec = parse_retry_after(v, vlen);
        else if (header_is(line, n, "content-type", &v, &vlen)) {
                free(c->content_type);
                c->content_type = strndup(v, vlen);
        }
        return n;
}

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *userdata) {
        struct http_call *c = userdata;
        size_t n = MIN(size * nmemb, c->upload_len - c->upload_pos);

        memcpy(buf, c->upload + c->upload_pos, n);
        c->upload_pos += n;
        return n;
}

static void finish(struct http_call *c, CURLcode code) {
        struct http_response r = {};
        long status = 0;

        (void) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        r.error = c->error < 0 ? c->error : errno_from_curl(code);
        if (r.error < 0)
                r.error_detail = *c->errbuf ? c->errbuf : curl_easy_strerror(code);
        r.status = status;
        r.body = c->buf ? c->buf : "";
        r.body_len = c->len;
        r.content_type = c->content_type;
        r.retry_after_usec = c->retry_after_usec;
        r.elapsed_usec = now_usec(CLOCK_MONOTONIC) - c->started;

        (void) curl_multi_remove_handle(c->engine->multi, c->easy);
        c->added = false;
        c->cancelled = true; /* a cancel in on_done is a no-op: the call is freed below */
        c->on_done(c, &r, c->userdata);
        call_free(c);
}

/* After curl returned: carry out what was asked while it ran, then report finished calls. */
static void after_curl(struct http_engine *e) {
        CURLMsg *msg;
        int left;

        while (e->pending) {
                e->pending = false;
                for (struct http_call *c = e->calls, *next; c; c = next) {
                        next = c->next;
                        if (c->cancelled)
                                call_free(c);
                        else if (!c->added) {
                                CURLMcode m = curl_multi_add_handle(e->multi, c->easy);
                                if (m != CURLM_OK) {
                                        c->error = -ENOMEM;
                                        snprintf(c->errbuf, sizeof c->errbuf, "%s",
                                                 curl_multi_strerror(m));
                                        c->cancelled = true; /* a cancel in on_done is a no-op */
                                        c->on_done(c, &(struct http_response){
                                                .error = -ENOMEM, .error_detail = c->errbuf,
                                                .body = "" }, c->userdata);
                                        call_free(c);
                                        /* on_done may have cancelled `next`: walk again. */
                                        e->pending = true;
                                        break;
                                } else
                                        c->added = true;
                        }
                }
        }

        while ((msg = curl_multi_info_read(e->multi, &left))) {
                struct http_call *c = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
                if (!c)
                        continue;
                if (c->cancelled)
                        call_free(c);
                else
                        finish(c, msg->data.result);
        }
}

static void socket_action(struct http_engine *e, curl_socket_t fd, int action) {
        int running;
        CURLMcode m;

        e->in_curl++;
        m = curl_multi_socket_action(e->multi, fd, action, &running);
        e->in_curl--;
        if (m != CURLM_OK)
                log_error("curl: %s", curl_multi_strerror(m));
        after_curl(e);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct http_engine *e = userdata;
        int action = 0;

        if (revents & (EPOLLIN | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        socket_action(e, fd, action);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        struct http_engine *e = userdata;
        struct http_socket *hs = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (hs) {
                        sd_event_source_disable_unref(hs->source);
                        LIST_REMOVE(e->sockets, hs);
                        free(hs);
                        (void) curl_multi_assign(e->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (hs) {
                r = sd_event_source_set_io_events(hs->source, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(hs->source, SD_EVENT_ON);
        } else {
                hs = calloc(1, sizeof *hs);
                if (!hs)
                        return -1;
                hs->engine = e;
                r = sd_event_add_io(e->event, &hs->source, fd, events, on_io, e);
                if (r < 0) {
                        free(hs);
                        log_error_errno(r, "cannot watch curl's socket %d: %m", fd);
                        return -1;
                }
                (void) sd_event_source_set_description(hs->source, "curl-io");
                LIST_PREPEND(e->sockets, hs);
                (void) curl_multi_assign(e->multi, fd, hs);
        }
        return r < 0 ? -1 : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userdata) {
        struct http_engine *e = userdata;
        int r;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(e->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        r = sd_event_source_set_time_relative(e->timer, (uint64_t) timeout_ms * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
        return r < 0 ? -1 : 0;
}

int http_engine_new(sd_event *event, struct http_engine **ret) {
        static bool curl_ready;
        struct http_engine *e;
        int r;

        if (!curl_ready) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return log_error_errno(EIO, "curl_global_init() failed");
                curl_ready = true;
        }
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->event = sd_event_ref(event);
        e->multi = curl_multi_init();
        if (!e->multi) {
                http_engine_free(e);
                return -ENOMEM;
        }
        r = sd_event_add_time_relative(event, &e->timer, CLOCK_MONOTONIC, UINT64_MAX / 2, 1000,
                                       on_timer, e);
        if (r < 0) {
                http_engine_free(e);
                return log_error_errno(r, "cannot add curl's timer: %m");
        }
        (void) sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(e->timer, "curl-timer");
        if (curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e) != CURLM_OK) {
                http_engine_free(e);
                return -EIO;
        }
        *ret = e;
        return 0;
}

struct http_engine *http_engine_free(struct http_engine *e) {
        if (!e)
                return NULL;
        while (e->calls)
                call_free(e->calls);
        if (e->multi)
                curl_multi_cleanup(e->multi);
        while (e->sockets) {
                struct http_socket *hs = e->sockets;
                sd_event_source_disable_unref(hs->source);
                LIST_REMOVE(e->sockets, hs);
                free(hs);
        }
        sd_event_source_disable_unref(e->timer);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

static bool scheme_is(const char *url, const char *scheme) {
        size_t n = strlen(scheme);
        return strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

static int setup_easy(struct http_call *c, const struct http_request *req) {
        CURL *h = c->easy;
        bool http = scheme_is(req->url, "http") || scheme_is(req->url, "https");
        bool smtp = scheme_is(req->url, "smtp") || scheme_is(req->url, "smtps");
        uint64_t timeout = req->timeout_usec ?: HTTP_DEFAULT_TIMEOUT_USEC;
        uint64_t connect = req->connect_timeout_usec ?: HTTP_DEFAULT_CONNECT_TIMEOUT_USEC;
        CURLcode r = CURLE_OK;

        if (!http && !smtp && !scheme_is(req->url, "imap") && !scheme_is(req->url, "imaps"))
                return -EPROTONOSUPPORT;
        c->streaming_ok = http;

#define SET(opt, val)                                         \
        do {                                                  \
                if (r == CURLE_OK)                            \
                        r = curl_easy_setopt(h, opt, val);    \
        } while (0)
        SET(CURLOPT_URL, req->url);
        SET(CURLOPT_PROTOCOLS_STR, "http,https,imap,imaps,smtp,smtps");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PRIVATE, c);
        SET(CURLOPT_ERRORBUFFER, c->errbuf);
        SET(CURLOPT_WRITEFUNCTION, write_cb);
        SET(CURLOPT_WRITEDATA, c);
        SET(CURLOPT_HEADERFUNCTION, header_cb);
        SET(CURLOPT_HEADERDATA, c);
        SET(CURLOPT_TIMEOUT_MS, (long) MIN(timeout / USEC_PER_MSEC, (uint64_t) LONG_MAX));
        SET(CURLOPT_CONNECTTIMEOUT_MS, (long) MIN(connect / USEC_PER_MSEC, (uint64_t) LONG_MAX));
        if (req->idle_timeout_usec) {
                SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
                SET(CURLOPT_LOW_SPEED_TIME,
                    (long) MAX((uint64_t) 1, req->idle_timeout_usec / USEC_PER_SEC));
        }
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        if (req->ca_file)
                SET(CURLOPT_CAINFO, req->ca_file);
        if (req->user_pass)
                SET(CURLOPT_USERPWD, req->user_pass);
        if (req->require_tls)
                SET(CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
        SET(CURLOPT_USERAGENT, "conclave/" PACKAGE_VERSION);

        if (http) {
                for (const char *const *p = req->headers; p && *p; p++) {
                        struct curl_slist *l = curl_slist_append(c->headers, *p);
                        if (!l)
                                return -ENOMEM;
                        c->headers = l;
                }
                if (c->headers)
                        SET(CURLOPT_HTTPHEADER, c->headers);
                if (req->body) {
                        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
                        SET(CURLOPT_COPYPOSTFIELDS, req->body);
                }
                if (req->method && !(req->body && streq(req->method, "POST")))
                        SET(CURLOPT_CUSTOMREQUEST, req->method);
        } else if (smtp) {
                if (!req->mail_from || !req->mail_rcpt || !*req->mail_rcpt || !req->body)
                        return -EINVAL;
                for (const char *const *p = req->mail_rcpt; *p; p++) {
                        struct curl_slist *l = curl_slist_append(c->rcpt, *p);
                        if (!l)
                                return -ENOMEM;
                        c->rcpt = l;
                }
                c->upload = malloc(req->body_len ?: 1);
                if (!c->upload)
                        return -ENOMEM;
                memcpy(c->upload, req->body, req->body_len);
                c->upload_len = req->body_len;
                SET(CURLOPT_MAIL_FROM, req->mail_from);
                SET(CURLOPT_MAIL_RCPT, c->rcpt);
                SET(CURLOPT_UPLOAD, 1L);
                SET(CURLOPT_READFUNCTION, read_cb);
                SET(CURLOPT_READDATA, c);
                SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len);
        } else if (req->method)
                SET(CURLOPT_CUSTOMREQUEST, req->method);
#undef SET
        if (r != CURLE_OK) {
                log_error("curl option for %s: %s", req->url, curl_easy_strerror(r));
                return r == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
        }
        return 0;
}

int http_call_start(struct http_engine *e, const struct http_request *req, http_data_fn on_data,
                    http_done_fn on_done, void *userdata, struct http_call **ret) {
        struct http_call *c;
        int r;

        if (!e || !req || !req->url || !on_done)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->engine = e;
        c->on_data = on_data;
        c->on_done = on_done;
        c->userdata = userdata;
        c->max = req->max_response ?: HTTP_DEFAULT_MAX_RESPONSE;
        c->started = now_usec(CLOCK_MONOTONIC);
        c->easy = curl_easy_init();
        LIST_PREPEND(e->calls, c);
        e->n_calls++;
        if (!c->easy) {
                call_free(c);
                return -ENOMEM;
        }
        r = setup_easy(c, req);
        if (r < 0) {
                call_free(c);
                return r;
        }
        if (e->in_curl)
                e->pending = true; /* added once curl returns */
        else {
                CURLMcode m = curl_multi_add_handle(e->multi, c->easy);
                if (m != CURLM_OK) {
                        call_free(c);
                        return log_error_errno(ENOMEM, "curl: %s", curl_multi_strerror(m));
                }
                c->added = true;
        }
        if (ret)
                *ret = c;
        return 0;
}

void http_call_cancel(struct http_call *c) {
        if (!c || c->cancelled)
                return;
        if (c->engine->in_curl) {
                c->cancelled = true;
                c->engine->pending = true;
        } else
                call_free(c);
}

size_t http_engine_active(const struct http_engine *e) {
        size_t n = 0;

        for (const struct http_call *c = e->calls; c; c = c->next)
                n += !c->cancelled;
        return n;
}

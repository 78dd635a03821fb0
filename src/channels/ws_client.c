/* WebSocket client in a libwebsockets thread, events handed to sd-event (ws_client.h). */

#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "ws_client.h"

struct item {
        struct item *next;
        enum ws_event ev;
        int code;
        size_t len;
        char data[]; /* NUL-terminated */
};

struct ws_client {
        sd_event_source *source;
        int efd;
        ws_event_fn cb;
        void *userdata;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        /* Shared, under lock. */
        struct item *in_head, *in_tail;   /* lws thread → loop */
        struct item *out_head, *out_tail; /* loop → lws thread */
        char *connect_url;                /* a connection to make */
        int close_request;                /* a close asked for by the loop; 0: none */
        bool quit;
        bool connected;

        /* lws thread only. */
        struct lws_context *ctx;
        struct lws *wsi;
        char *rx;
        size_t rx_len;
        bool rx_too_big;
        int peer_close_code;
        char *ca_file;
};

static struct item *item_new(enum ws_event ev, int code, const char *data, size_t len) {
        struct item *it = malloc(sizeof *it + len + 1);

        if (!it)
                return NULL;
        *it = (struct item){ .ev = ev, .code = code, .len = len };
        if (len)
                memcpy(it->data, data, len);
        it->data[len] = 0;
        return it;
}

static void queue_push(struct item **head, struct item **tail, struct item *it) {
        if (*tail)
                (*tail)->next = it;
        else
                *head = it;
        *tail = it;
}

static void items_free(struct item *it) {
        while (it) {
                struct item *next = it->next;
                free(it);
                it = next;
        }
}

/* lws thread: hands an event to the loop. */
static void post_event(struct ws_client *c, enum ws_event ev, int code, const char *data, size_t len) {
        struct item *it = item_new(ev, code, data, len);
        uint64_t one = 1;

        if (!it)
                return; /* out of memory: the event is lost, the connection state catches up */
        pthread_mutex_lock(&c->lock);
        if (ev == WS_CONNECTED)
                c->connected = true;
        else if (ev == WS_CLOSED) {
                c->connected = false;
                items_free(c->out_head);
                c->out_head = c->out_tail = NULL;
        }
        queue_push(&c->in_head, &c->in_tail, it);
        pthread_mutex_unlock(&c->lock);
        (void) !write(c->efd, &one, sizeof one);
}

static int lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        struct ws_client *c = lws_context_user(lws_get_context(wsi));
        struct item *it;
        int code;

        (void) user;
        switch (reason) {
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
                c->rx_len = 0;
                c->rx_too_big = false;
                post_event(c, WS_CONNECTED, 0, NULL, 0);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE:
                if (!c->rx_too_big && c->rx_len + len <= WS_MESSAGE_MAX) {
                        char *grown = realloc(c->rx, c->rx_len + len + 1);
                        if (!grown)
                                c->rx_too_big = true;
                        else {
                                c->rx = grown;
                                memcpy(c->rx + c->rx_len, in, len);
                                c->rx_len += len;
                        }
                } else
                        c->rx_too_big = true;
                if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
                        if (c->rx_too_big) {
                                lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
                                return -1;
                        }
                        post_event(c, WS_MESSAGE, 0, c->rx ? c->rx : "", c->rx_len);
                        c->rx_len = 0;
                }
                break;
        case LWS_CALLBACK_CLIENT_WRITEABLE:
                pthread_mutex_lock(&c->lock);
                code = c->close_request;
                it = c->out_head;
                if (!code && it) {
                        c->out_head = it->next;
                        if (!c->out_head)
                                c->out_tail = NULL;
                }
                pthread_mutex_unlock(&c->lock);
                if (code) {
                        lws_close_reason(wsi, (enum lws_close_status) code, NULL, 0);
                        return -1;
                }
                if (it) {
                        unsigned char *buf = malloc(LWS_PRE + it->len);
                        int n = -1;
                        if (buf) {
                                memcpy(buf + LWS_PRE, it->data, it->len);
                                n = lws_write(wsi, buf + LWS_PRE, it->len, LWS_WRITE_TEXT);
                        }
                        free(buf);
                        free(it);
                        if (n < 0)
                                return -1;
                        pthread_mutex_lock(&c->lock);
                        bool more = c->out_head != NULL;
                        pthread_mutex_unlock(&c->lock);
                        if (more)
                                lws_callback_on_writable(wsi);
                }
                break;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
                /* The peer's close code: the first two bytes, network order. */
                if (len >= 2)
                        c->peer_close_code = ((const unsigned char *) in)[0] << 8 | ((const unsigned char *) in)[1];
                break;
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                c->wsi = NULL;
                c->peer_close_code = 0;
                post_event(c, WS_CLOSED, 0, in ? (const char *) in : "connection failed", in ? strnlen(in, 256) : 17);
                break;
        case LWS_CALLBACK_CLIENT_CLOSED:
                c->wsi = NULL;
                code = c->peer_close_code;
                c->peer_close_code = 0;
                pthread_mutex_lock(&c->lock);
                c->close_request = 0;
                pthread_mutex_unlock(&c->lock);
                post_event(c, WS_CLOSED, code, NULL, 0);
                break;
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
                /* Woken by the loop: a connection to make, or something to send or close. */
                pthread_mutex_lock(&c->lock);
                char *url = c->connect_url;
                c->connect_url = NULL;
                bool pending = c->out_head || c->close_request > 0;
                pthread_mutex_unlock(&c->lock);
                if (url) {
                        const char *prot, *addr, *path;
                        int port;
                        /* lws_parse_uri() cuts url in place; path comes without its '/'. */
                        if (lws_parse_uri(url, &prot, &addr, &port, &path) == 0) {
                                char full_path[512];
                                struct lws_client_connect_info ci = {
                                        .context = c->ctx,
                                        .address = addr,
                                        .port = port,
                                        .path = full_path,
                                        .host = addr,
                                        .origin = addr,
                                        .ssl_connection = strcmp(prot, "wss") == 0 ? LCCSCF_USE_SSL : 0,
                                        .pwsi = &c->wsi,
                                };
                                snprintf(full_path, sizeof full_path, "/%s", path);
                                if (!lws_client_connect_via_info(&ci))
                                        post_event(c, WS_CLOSED, 0, "cannot start the connection", 27);
                        } else
                                post_event(c, WS_CLOSED, 0, "bad URL", 7);
                        free(url);
                }
                if (pending && c->wsi)
                        lws_callback_on_writable(c->wsi);
                break;
        default:
                break;
        }
        return 0;
}

static const struct lws_protocols protocols[] = {
        { "conclave-ws", lws_callback, 0, 0, 0, NULL, 0 },
        { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void *thread_main(void *userdata) {
        struct ws_client *c = userdata;

        for (;;) {
                pthread_mutex_lock(&c->lock);
                bool quit = c->quit;
                pthread_mutex_unlock(&c->lock);
                if (quit)
                        break;
                if (lws_service(c->ctx, 0) < 0)
                        break;
        }
        return NULL;
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct ws_client *c = userdata;
        struct item *list, *it;
        uint64_t n;

        (void) s;
        (void) revents;
        (void) !read(fd, &n, sizeof n);
        pthread_mutex_lock(&c->lock);
        list = c->in_head;
        c->in_head = c->in_tail = NULL;
        pthread_mutex_unlock(&c->lock);
        /* Callbacks must not free the client (ws_client.h). */
        while ((it = list)) {
                list = it->next;
                c->cb(c, it->ev, it->data, it->len, it->code, c->userdata);
                free(it);
        }
        return 0;
}

static void lws_log(int level, const char *line) {
        size_t n = strlen(line);

        while (n > 0 && line[n - 1] == '\n')
                n--;
        log_full_errno(level == LLL_ERR ? LOG_WARNING : LOG_DEBUG, 0, "libwebsockets: %.*s", (int) n, line);
}

int ws_client_new(sd_event *event, const char *ca_file, ws_event_fn cb, void *userdata, struct ws_client **ret) {
        struct ws_client *c = calloc(1, sizeof *c);
        struct lws_context_creation_info info = {};
        int r;

        if (!c)
                return -ENOMEM;
        c->cb = cb;
        c->userdata = userdata;
        c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_mutex_init(&c->lock, NULL);
        if (c->efd < 0) {
                r = -errno;
                goto fail;
        }
        if (ca_file && !(c->ca_file = strdup(ca_file))) {
                r = -ENOMEM;
                goto fail;
        }
        r = sd_event_add_io(event, &c->source, c->efd, EPOLLIN, on_eventfd, c);
        if (r < 0)
                goto fail;
        lws_set_log_level(LLL_ERR, lws_log);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protocols;
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = c->ca_file;
        info.user = c;
        info.gid = (gid_t) -1;
        info.uid = (uid_t) -1;
        c->ctx = lws_create_context(&info);
        if (!c->ctx) {
                r = -EIO;
                goto fail;
        }
        r = -pthread_create(&c->thread, NULL, thread_main, c);
        if (r < 0)
                goto fail;
        c->thread_started = true;
        *ret = c;
        return 0;
fail:
        ws_client_free(c);
        return r;
}

struct ws_client *ws_client_free(struct ws_client *c) {
        if (!c)
                return NULL;
        if (c->thread_started) {
                pthread_mutex_lock(&c->lock);
                c->quit = true;
                pthread_mutex_unlock(&c->lock);
                lws_cancel_service(c->ctx);
                pthread_join(c->thread, NULL);
        }
        if (c->ctx)
                lws_context_destroy(c->ctx);
        sd_event_source_disable_unref(c->source);
        if (c->efd >= 0)
                close(c->efd);
        items_free(c->in_head);
        items_free(c->out_head);
        pthread_mutex_destroy(&c->lock);
        free(c->connect_url);
        free(c->rx);
        free(c->ca_file);
        free(c);
        return NULL;
}

static bool url_allowed(const char *url) {
        if (strncmp(url, "wss://", 6) == 0)
                return url[6] != 0;
        if (strncmp(url, "ws://", 5) == 0)
                return strncmp(url + 5, "127.", 4) == 0 || strncmp(url + 5, "localhost", 9) == 0 ||
                       strncmp(url + 5, "[::1]", 5) == 0;
        return false;
}

int ws_client_connect(struct ws_client *c, const char *url) {
        char *copy;

        if (!url_allowed(url) || strlen(url) > 400)
                return -EINVAL;
        copy = strdup(url);
        if (!copy)
                return -ENOMEM;
        pthread_mutex_lock(&c->lock);
        free(c->connect_url);
        c->connect_url = copy;
        pthread_mutex_unlock(&c->lock);
        lws_cancel_service(c->ctx);
        return 0;
}

int ws_client_send(struct ws_client *c, const char *text, size_t len) {
        struct item *it;
        int r = 0;

        it = item_new(WS_MESSAGE, 0, text, len);
        if (!it)
                return -ENOMEM;
        pthread_mutex_lock(&c->lock);
        if (!c->connected)
                r = -ENOTCONN;
        else
                queue_push(&c->out_head, &c->out_tail, it);
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                free(it);
        else
                lws_cancel_service(c->ctx);
        return r;
}

void ws_client_close(struct ws_client *c, int code) {
        pthread_mutex_lock(&c->lock);
        if (c->connected)
                c->close_request = code > 0 ? code : 1000;
        pthread_mutex_unlock(&c->lock);
        lws_cancel_service(c->ctx);
}

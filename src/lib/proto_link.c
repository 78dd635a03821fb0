/* The supervisor <-> worker channel on sd-event, with queued output and calls (proto_link.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "proto.h"
#include "proto_link.h"

struct packet {
        struct packet *next;
        size_t len;
        char data[];
};

struct proto_call {
        struct proto_link *link;
        struct proto_call *next, *prev;
        uint64_t id;
        bool streaming;
        proto_call_cb cb;
        void *userdata;
        sd_event_source *timer;
};

struct proto_link {
        sd_event *event;
        int fd;
        sd_event_source *io;
        sd_event_source *fail_defer; /* fails calls that could not be sent, outside the caller */
        struct packet *out_head, **out_tail;
        size_t out_bytes;
        struct proto_call *calls;
        uint64_t next_id;
        proto_link_message_cb on_message;
        proto_link_closed_cb on_closed;
        void *userdata;
        bool closed;
};

static void call_unlink(struct proto_call *c) {
        struct proto_link *l = c->link;

        if (!l)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                l->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->next = c->prev = NULL;
        c->link = NULL;
}

static void call_free(struct proto_call *c) {
        call_unlink(c);
        sd_event_source_disable_unref(c->timer);
        free(c);
}

/* Runs the callback for a final outcome and frees the call. */
static void call_finish(struct proto_call *c, struct json_object *reply, int error) {
        proto_call_cb cb = c->cb;
        void *userdata = c->userdata;
        bool streaming = c->streaming;

        call_free(c);
        if (cb)
                cb(reply, error, streaming && reply, userdata);
}

static struct proto_call *call_find(struct proto_link *l, uint64_t id) {
        for (struct proto_call *c = l->calls; c; c = c->next)
                if (c->id == id)
                        return c;
        return NULL;
}

static void fail_all_calls(struct proto_link *l, int error) {
        while (l->calls)
                call_finish(l->calls, NULL, error);
}

static void link_close(struct proto_link *l) {
        if (l->closed)
                return;
        l->closed = true;
        l->io = sd_event_source_disable_unref(l->io);
        fail_all_calls(l, -ECONNABORTED);
        if (l->on_closed)
                l->on_closed(l, l->userdata);
}

static int flush_queue(struct proto_link *l) {
        struct packet *p;

        while ((p = l->out_head)) {
                ssize_t n = send(l->fd, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return sd_event_source_set_io_events(l->io, EPOLLIN | EPOLLOUT);
                        return negative_errno();
                }
                l->out_head = p->next;
                if (!l->out_head)
                        l->out_tail = &l->out_head;
                l->out_bytes -= p->len;
                free(p);
        }
        return sd_event_source_set_io_events(l->io, EPOLLIN);
}

static void handle_packet(struct proto_link *l, struct json_object *msg) {
        const char *type = proto_type(msg);
        bool reply = streq(type, "reply"), stream = streq(type, "stream"), end = streq(type, "stream.end");
        struct proto_call *c;

        if (!reply && !stream && !end) {
                if (l->on_message)
                        l->on_message(l, msg, l->userdata);
                return;
        }
        c = call_find(l, proto_id(msg));
        if (!c)
                return; /* cancelled or timed out: the late answer is dropped */
        if (end)
                call_finish(c, NULL, 0);
        else if (stream && c->streaming) {
                if (c->cb)
                        c->cb(proto_data(msg), 0, true, c->userdata);
        } else if (c->streaming) {
                /* A streaming op that answered with a plain reply: an error, or no stream. */
                struct json_object *data = proto_data(msg);
                proto_call_cb cb = c->cb;
                void *userdata = c->userdata;
                call_free(c);
                if (cb) {
                        cb(data, 0, true, userdata);
                        cb(NULL, 0, false, userdata);
                }
        } else
                call_finish(c, proto_data(msg), 0);
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct proto_link *l = userdata;
        int r;

        if (revents & EPOLLOUT) {
                r = flush_queue(l);
                if (r < 0) {
                        log_full_errno(LOG_DEBUG, r, "channel write failed");
                        link_close(l);
                        return 0;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        /* A bounded number of packets per wake-up, so one busy peer cannot starve the loop. */
        for (unsigned i = 0; i < 64 && !l->closed; i++) {
                _cleanup_json_ struct json_object *msg = NULL;

                r = proto_recv(fd, &msg);
                if (r == -EAGAIN)
                        return 0;
                if (r == -EPROTO) {
                        log_warning("ignoring a malformed packet on the supervisor channel");
                        continue;
                }
                if (r < 0) {
                        link_close(l);
                        return 0;
                }
                handle_packet(l, msg);
        }
        return 0;
}

int proto_link_new(sd_event *event, int fd, proto_link_message_cb on_message, proto_link_closed_cb on_closed,
                   void *userdata, struct proto_link **ret) {
        struct proto_link *l;
        int flags, r;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->fd = fd;
        l->out_tail = &l->out_head;
        l->next_id = 1;
        l->on_message = on_message;
        l->on_closed = on_closed;
        l->userdata = userdata;
        r = sd_event_add_io(event, &l->io, fd, EPOLLIN, on_io, l);
        if (r < 0) {
                l->fd = -1;
                proto_link_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

struct proto_link *proto_link_free(struct proto_link *l) {
        struct packet *p;

        if (!l)
                return NULL;
        l->on_closed = NULL;
        link_close(l);
        while ((p = l->out_head)) {
                l->out_head = p->next;
                free(p);
        }
        sd_event_source_disable_unref(l->fail_defer);
        if (l->fd >= 0)
                close(l->fd);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}

bool proto_link_is_open(const struct proto_link *l) {
        return l && !l->closed;
}

int proto_link_fd(const struct proto_link *l) {
        return l ? l->fd : -1;
}

size_t proto_link_queued_bytes(const struct proto_link *l) {
        return l ? l->out_bytes : 0;
}

int proto_link_send(struct proto_link *l, const char *type, uint64_t id, struct json_object *data) {
        _cleanup_free_ char *text = NULL;
        struct packet *p;
        size_t len;
        int r;

        if (!l || l->closed)
                return -ENOTCONN;
        r = proto_encode(type, id, data, &text, &len);
        if (r < 0)
                return r;
        if (!l->out_head) {
                ssize_t n;
                do
                        n = send(l->fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                while (n < 0 && errno == EINTR);
                if (n >= 0)
                        return 0;
                if (errno == EMSGSIZE) {
                        /* See proto_send(): the default send buffer is below PROTO_PACKET_MAX. */
                        int size = (int) (2 * PROTO_PACKET_MAX);
                        if (setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0 &&
                            send(l->fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                                return 0;
                }
                if (errno != EAGAIN && errno != EMSGSIZE)
                        return negative_errno();
        }
        if (l->out_bytes + len > PROTO_LINK_QUEUE_MAX)
                return -ENOBUFS;
        p = malloc(sizeof *p + len);
        if (!p)
                return -ENOMEM;
        p->next = NULL;
        p->len = len;
        memcpy(p->data, text, len);
        *l->out_tail = p;
        l->out_tail = &p->next;
        l->out_bytes += len;
        return sd_event_source_set_io_events(l->io, EPOLLIN | EPOLLOUT);
}

static int on_call_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct proto_call *c = userdata;
        struct proto_link *l = c->link;

        /* Tell the supervisor we stopped waiting, so a stream does not run on for nobody. */
        if (l && c->streaming)
                (void) proto_link_send(l, "cancel", c->id, NULL);
        call_finish(c, NULL, -ETIMEDOUT);
        return 0;
}

static int on_fail_defer(sd_event_source *src, void *userdata) {
        struct proto_link *l = userdata;

        /* Calls whose request could not be sent are marked with a zero id. */
        for (struct proto_call *c = l->calls, *next; c; c = next) {
                next = c->next;
                if (c->id == 0)
                        call_finish(c, NULL, -ENOBUFS);
        }
        return 0;
}

int proto_link_call(struct proto_link *l, const char *op, struct json_object *args, uint64_t timeout_usec,
                    bool streaming, proto_call_cb cb, void *userdata, struct proto_call **ret) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct proto_call *c;
        int r;

        if (!l || l->closed)
                return -ENOTCONN;
        if (!data)
                return -ENOMEM;
        json_object_object_add(data, "op", json_object_new_string(op));
        if (args)
                json_object_object_add(data, "args", json_object_get(args));
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->link = l;
        c->id = l->next_id++;
        c->streaming = streaming;
        c->cb = cb;
        c->userdata = userdata;
        if (timeout_usec > 0) {
                uint64_t now;
                r = sd_event_now(l->event, CLOCK_MONOTONIC, &now);
                if (r >= 0)
                        r = sd_event_add_time(l->event, &c->timer, CLOCK_MONOTONIC, now + timeout_usec,
                                              TIMER_ACCURACY_USEC, on_call_timeout, c);
                if (r < 0) {
                        free(c);
                        return r;
                }
        }
        r = proto_link_send(l, "request", c->id, data);
        if (r == -EMSGSIZE) {
                sd_event_source_disable_unref(c->timer);
                free(c);
                return r;
        }
        c->next = l->calls;
        if (l->calls)
                l->calls->prev = c;
        l->calls = c;
        if (r < 0) {
                /* Answered "could not send" from the loop, never from inside this call. */
                c->id = 0;
                if (!l->fail_defer && sd_event_add_defer(l->event, &l->fail_defer, on_fail_defer, l) >= 0)
                        (void) sd_event_source_set_enabled(l->fail_defer, SD_EVENT_ONESHOT);
                else if (l->fail_defer)
                        (void) sd_event_source_set_enabled(l->fail_defer, SD_EVENT_ONESHOT);
        }
        if (ret)
                *ret = c;
        return 0;
}

void *proto_call_cancel(struct proto_call *c) {
        void *userdata;

        if (!c)
                return NULL;
        userdata = c->userdata;
        if (c->link && c->streaming && c->id)
                (void) proto_link_send(c->link, "cancel", c->id, NULL);
        call_free(c);
        return userdata;
}

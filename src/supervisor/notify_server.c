/* Private sd_notify endpoint for the workers (see notify_server.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "notify.h"
#include "notify_server.h"
#include "supervisor.h"
#include "timeutil.h"
#include "workers.h"

struct notify_server {
        struct supervisor *supervisor;
        int fd;
        char *path;
        sd_event_source *source;
        uint64_t last_stranger_log_usec;
};

static void close_passed_fds(struct msghdr *mh) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < n; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
                                close(fd);
                        }
                }
}

static int on_datagram(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct notify_server *n = userdata;
        char buf[NOTIFY_DATAGRAM_MAX + 1];
        union {
                struct cmsghdr cmsghdr;
                uint8_t buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
        } control;

        for (;;) {
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof control };
                struct ucred creds, *cred = NULL;
                struct notify_message m;
                struct worker_proc *w;
                ssize_t len;

                len = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
                if (len < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return log_warning_errno(errno, "notify socket receive failed");
                }
                close_passed_fds(&mh);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                            c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
                                memcpy(&creds, CMSG_DATA(c), sizeof creds);
                                cred = &creds;
                        }

                w = cred ? worker_by_pid(n->supervisor, cred->pid) : NULL;
                if (!w && cred && worker_recently_exited(n->supervisor, cred->pid))
                        continue;
                if (!w || cred->uid != getuid()) {
                        /* Only our own children may speak here; log strangers at most once a minute. */
                        uint64_t now = now_usec(CLOCK_MONOTONIC);
                        if (now - n->last_stranger_log_usec > 60 * USEC_PER_SEC) {
                                log_warning("ignoring notify message from unknown sender (pid %d)",
                                            cred ? (int) cred->pid : -1);
                                n->last_stranger_log_usec = now;
                        }
                        continue;
                }
                if ((size_t) len > NOTIFY_DATAGRAM_MAX || (mh.msg_flags & MSG_TRUNC) ||
                    notify_parse(buf, (size_t) len, &m) < 0) {
                        log_warning("ignoring malformed notify message from worker %s", w->name);
                        continue;
                }
                worker_handle_notify(w, &m);
        }
}

int notify_server_new(struct supervisor *s, const char *path, struct notify_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct notify_server *n;
        int one = 1, r;

        if (strlen(path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "notify socket path too long: %s", path);
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->supervisor = s;
        n->fd = -1;
        n->path = strdup(path);
        if (!n->path) {
                r = -ENOMEM;
                goto fail;
        }
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0) {
                r = log_error_errno(errno, "cannot create notify socket");
                goto fail;
        }
        strcpy(sa.sun_path, path); /* length checked above */
        (void) unlink(path);
        if (bind(n->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                r = log_error_errno(errno, "cannot bind notify socket %s", path);
                goto fail;
        }
        (void) chmod(path, 0600);
        if (setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
                r = log_error_errno(errno, "cannot enable SO_PASSCRED on notify socket");
                goto fail;
        }
        r = sd_event_add_io(s->event, &n->source, n->fd, EPOLLIN, on_datagram, n);
        if (r < 0) {
                log_error_errno(r, "cannot watch notify socket");
                goto fail;
        }
        *ret = n;
        return 0;
fail:
        notify_server_free(n);
        return r;
}

struct notify_server *notify_server_free(struct notify_server *n) {
        if (!n)
                return NULL;
        sd_event_source_disable_unref(n->source);
        if (n->fd >= 0) {
                close(n->fd);
                (void) unlink(n->path);
        }
        free(n->path);
        free(n);
        return NULL;
}

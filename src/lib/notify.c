/* sd_notify datagrams: the supervisor's parser and the workers' non-blocking sender (notify.h). */

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "notify.h"

static bool key_is(const char *line, size_t keylen, const char *key) {
        return strlen(key) == keylen && memcmp(line, key, keylen) == 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        if (len == 0 || len > 20)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char) s[i]))
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

int notify_parse(const char *data, size_t len, struct notify_message *ret) {
        struct notify_message m = {};
        size_t pos = 0;

        if (len == 0 || len > NOTIFY_DATAGRAM_MAX || memchr(data, 0, len))
                return -EBADMSG;

        while (pos < len) {
                const char *line = data + pos, *nl, *eq, *value;
                size_t linelen, keylen, valuelen;

                nl = memchr(line, '\n', len - pos);
                linelen = nl ? (size_t) (nl - line) : len - pos;
                pos += linelen + (nl ? 1 : 0);
                if (linelen == 0)
                        continue;
                eq = memchr(line, '=', linelen);
                if (!eq || eq == line)
                        return -EBADMSG;
                keylen = (size_t) (eq - line);
                for (size_t i = 0; i < keylen; i++)
                        if (!isupper((unsigned char) line[i]) && !isdigit((unsigned char) line[i]) &&
                            line[i] != '_')
                                return -EBADMSG;
                value = eq + 1;
                valuelen = linelen - keylen - 1;

#define VALUE_IS(s) (valuelen == strlen(s) && memcmp(value, s, valuelen) == 0)
                if (key_is(line, keylen, "READY"))
                        m.ready = VALUE_IS("1");
                else if (key_is(line, keylen, "WATCHDOG")) {
                        m.watchdog = VALUE_IS("1");
                        m.watchdog_trigger = VALUE_IS("trigger");
                } else if (key_is(line, keylen, "STOPPING"))
                        m.stopping = VALUE_IS("1");
                else if (key_is(line, keylen, "RELOADING"))
                        m.reloading = VALUE_IS("1");
                else if (key_is(line, keylen, "STATUS")) {
                        size_t n = valuelen < sizeof m.status - 1 ? valuelen : sizeof m.status - 1;
                        memcpy(m.status, value, n);
                        m.status[n] = 0;
                        /* Control characters would corrupt our own STATUS= line. */
                        for (size_t i = 0; i < n; i++)
                                if ((unsigned char) m.status[i] < 0x20)
                                        m.status[i] = ' ';
                        m.has_status = true;
                } else if (key_is(line, keylen, "EXTEND_TIMEOUT_USEC")) {
                        if (parse_u64(value, valuelen, &m.extend_timeout_usec) < 0)
                                return -EBADMSG;
                } else if (key_is(line, keylen, "ERRNO")) {
                        uint64_t e;
                        if (parse_u64(value, valuelen, &e) < 0 || e > 4095)
                                return -EBADMSG;
                        m.error = (int) e;
                } else
                        m.n_unknown++;
#undef VALUE_IS
        }
        *ret = m;
        return 0;
}

int notify_open(int *ret_fd) {
        const char *e = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len;
        socklen_t salen;
        int fd;

        *ret_fd = -1;
        if (!e || !*e)
                return 0;
        len = strlen(e);
        if ((e[0] != '/' && e[0] != '@') || len >= sizeof sa.sun_path)
                return -EINVAL;
        memcpy(sa.sun_path, e, len);
        if (e[0] == '@')
                sa.sun_path[0] = '\0';
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (e[0] == '/'));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, salen) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int notify_send(int fd, const char *message) {
        if (send(fd, message, strlen(message), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return 0;
}

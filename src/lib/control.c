/* Client side of the control socket protocol (see control.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "macro.h"
#include "proto.h"

int control_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path); /* length checked above */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int control_read_line(int fd, char **ret, size_t max) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0;

        /* Byte-wise reads keep whatever follows the line in the socket for the next call
         * (tail -f streams many lines); replies are small, so this costs little. */
        for (;;) {
                char c;
                ssize_t n = read(fd, &c, 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -ECONNRESET;
                if (c == '\n')
                        break;
                if (len + 2 > size) {
                        size_t nsize = size ? size * 2 : 256;
                        char *nbuf;
                        if (nsize > max + 1)
                                nsize = max + 1;
                        if (len + 2 > nsize)
                                return -EMSGSIZE;
                        nbuf = realloc(buf, nsize);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                        size = nsize;
                }
                buf[len++] = c;
        }
        if (!buf)
                buf = strdup("");
        else
                buf[len] = 0;
        if (!buf)
                return -ENOMEM;
        *ret = buf;
        buf = NULL;
        return 0;
}

int control_call(int fd, const char *op, struct json_object *args, struct json_object **ret_result,
                 struct json_object **ret_error) {
        _cleanup_json_ struct json_object *req = json_object_new_object(), *reply = NULL;
        _cleanup_free_ char *line = NULL;
        struct json_object *ok, *v;
        const char *s;
        int r;

        if (!req)
                return -ENOMEM;
        json_object_object_add(req, "op", json_object_new_string(op));
        json_object_object_add(req, "args", args ? json_object_get(args) : json_object_new_object());
        s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        r = write_all(fd, s, strlen(s));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r < 0)
                return r;
        r = control_read_line(fd, &line, CONTROL_LINE_MAX);
        if (r < 0)
                return r;
        reply = json_tokener_parse(line);
        if (!reply || !json_object_object_get_ex(reply, "ok", &ok))
                return -EPROTO;
        if (!json_object_get_boolean(ok)) {
                if (ret_error && json_object_object_get_ex(reply, "error", &v))
                        *ret_error = json_object_get(v);
                return -EREMOTEIO;
        }
        if (ret_result)
                *ret_result = json_object_object_get_ex(reply, "result", &v) ? json_object_get(v) : NULL;
        return 0;
}

struct json_object *control_error_new(const char *code, const char *message) {
        struct json_object *o = json_object_new_object(), *e = json_object_new_object();
        if (!o || !e) {
                json_object_put(o);
                json_object_put(e);
                return NULL;
        }
        json_object_object_add(e, "code", json_object_new_string(code));
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(o, "ok", json_object_new_boolean(0));
        json_object_object_add(o, "error", e);
        return o;
}

/* Framing of the supervisor <-> worker channel (see proto.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "proto.h"

int proto_encode(const char *type, uint64_t id, struct json_object *data, char **ret, size_t *ret_len) {
        _cleanup_json_ struct json_object *msg = json_object_new_object();
        const char *s;
        size_t len;

        if (!msg)
                return -ENOMEM;
        json_object_object_add(msg, "v", json_object_new_int(PROTO_VERSION));
        json_object_object_add(msg, "type", json_object_new_string(type));
        if (id)
                json_object_object_add(msg, "id", json_object_new_uint64(id));
        if (data)
                json_object_object_add(msg, "data", json_object_get(data));
        s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        if (len > PROTO_PACKET_MAX)
                return -EMSGSIZE;
        *ret = strndup(s, len);
        if (!*ret)
                return -ENOMEM;
        *ret_len = len;
        return 0;
}

int proto_send(int fd, const char *type, uint64_t id, struct json_object *data) {
        _cleanup_free_ char *s = NULL;
        size_t len;
        int r;

        r = proto_encode(type, id, data, &s, &len);
        if (r < 0)
                return r;
        for (bool raised = false;;) {
                ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
                if (n >= 0)
                        return 0;
                if (errno == EMSGSIZE && !raised) {
                        /* A packet must fit the socket's send buffer, and the default
                         * (net.core.wmem_default, 208 KiB) is below PROTO_PACKET_MAX. */
                        int size = (int) (2 * PROTO_PACKET_MAX);
                        raised = true;
                        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0)
                                continue;
                        errno = EMSGSIZE;
                }
                if (errno != EINTR)
                        return negative_errno();
        }
}

int proto_decode(const char *buf, size_t len, struct json_object **ret) {
        _cleanup_json_ struct json_object *msg = NULL;
        struct json_tokener *tok;
        struct json_object *v, *t, *id;

        if (len == 0 || len > PROTO_PACKET_MAX)
                return -EPROTO;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        msg = json_tokener_parse_ex(tok, buf, (int) len);
        if (msg && json_tokener_get_parse_end(tok) != len)
                json_object_put(msg), msg = NULL; /* trailing bytes after the object */
        json_tokener_free(tok);
        if (!msg || !json_object_is_type(msg, json_type_object))
                return -EPROTO;
        if (!json_object_object_get_ex(msg, "v", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) != PROTO_VERSION)
                return -EPROTO;
        if (!json_object_object_get_ex(msg, "type", &t) || !json_object_is_type(t, json_type_string) ||
            json_object_get_string_len(t) == 0)
                return -EPROTO;
        if (json_object_object_get_ex(msg, "id", &id) && !json_object_is_type(id, json_type_int))
                return -EPROTO;
        *ret = msg;
        msg = NULL;
        return 0;
}

int proto_recv(int fd, struct json_object **ret) {
        _cleanup_free_ char *buf = malloc(PROTO_PACKET_MAX + 1);
        ssize_t n;

        if (!buf)
                return -ENOMEM;
        do
                n = recv(fd, buf, PROTO_PACKET_MAX + 1, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : negative_errno();
        if (n == 0)
                return -ECONNRESET;
        return proto_decode(buf, (size_t) n, ret);
}

const char *proto_type(struct json_object *msg) {
        struct json_object *t;
        return json_object_object_get_ex(msg, "type", &t) ? json_object_get_string(t) : "";
}

uint64_t proto_id(struct json_object *msg) {
        struct json_object *t;
        return json_object_object_get_ex(msg, "id", &t) ? json_object_get_uint64(t) : 0;
}

struct json_object *proto_data(struct json_object *msg) {
        struct json_object *t;
        return json_object_object_get_ex(msg, "data", &t) ? t : NULL;
}

int proto_channel_fd_from_env(void) {
        const char *e = getenv(PROTO_CHANNEL_FD_ENV);
        char *end;
        long fd;

        if (!e)
                return -ENOENT;
        errno = 0;
        fd = strtol(e, &end, 10);
        if (errno || *end || fd < 3 || fd > 1024)
                return -EINVAL;
        if (fcntl((int) fd, F_GETFD) < 0)
                return -EBADF;
        return (int) fd;
}

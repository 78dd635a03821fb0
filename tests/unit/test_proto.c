/* Unit tests for proto.c (supervisor <-> worker packets) and the client helpers of control.c
 * (newline-delimited JSON on the control socket), over real socketpairs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "macro.h"
#include "proto.h"

struct pair {
        int fd[2];
};

static int pair_setup_type(void **state, int type) {
        struct pair *p = calloc(1, sizeof *p);

        if (!p)
                return -1;
        if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, p->fd) < 0) {
                free(p);
                return -1;
        }
        *state = p;
        return 0;
}

static int seqpacket_setup(void **state) {
        return pair_setup_type(state, SOCK_SEQPACKET);
}

static int stream_setup(void **state) {
        return pair_setup_type(state, SOCK_STREAM);
}

static int pair_teardown(void **state) {
        struct pair *p = *state;

        for (int i = 0; i < 2; i++)
                if (p->fd[i] >= 0)
                        close(p->fd[i]);
        free(p);
        return 0;
}

static void pair_close(struct pair *p, int i) {
        assert_int_equal(close(p->fd[i]), 0);
        p->fd[i] = -1;
}

static void send_raw(int fd, const void *data, size_t len) {
        assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), (ssize_t) len);
}

static void send_str(int fd, const char *s) {
        send_raw(fd, s, strlen(s));
}

/* Replaces both ends with a fresh connected pair of the same type. */
static void pair_renew(struct pair *p, int type) {
        for (int i = 0; i < 2; i++)
                if (p->fd[i] >= 0)
                        close(p->fd[i]);
        assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, p->fd), 0);
}

/* --- proto: send and receive ------------------------------------------------------------- */

static void test_round_trip(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *data = json_tokener_parse("{\"a\":1,\"s\":\"x\\ny\",\"l\":[true,null]}");
        _cleanup_json_ struct json_object *msg = NULL;

        assert_non_null(data);
        assert_int_equal(proto_send(p->fd[0], "config", 7, data), 0);
        assert_int_equal(proto_recv(p->fd[1], &msg), 0);
        assert_string_equal(proto_type(msg), "config");
        assert_true(proto_id(msg) == 7);
        assert_non_null(proto_data(msg));
        assert_true(json_object_equal(proto_data(msg), data));
        /* The data is borrowed: still ours, with one reference. */
        assert_int_equal(json_object_get_int(json_object_object_get(data, "a")), 1);
}

static void test_round_trip_without_id_and_data(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *msg = NULL;
        struct json_object *o;

        assert_int_equal(proto_send(p->fd[1], "ping", 0, NULL), 0);
        assert_int_equal(proto_recv(p->fd[0], &msg), 0);
        assert_string_equal(proto_type(msg), "ping");
        assert_true(proto_id(msg) == 0);
        assert_null(proto_data(msg));
        /* id 0 means "no id": the key is left out. And the version is on the wire. */
        assert_false(json_object_object_get_ex(msg, "id", NULL));
        assert_true(json_object_object_get_ex(msg, "v", &o));
        assert_int_equal(json_object_get_int(o), PROTO_VERSION);
}

static void test_round_trip_largest_id(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *msg = NULL;

        assert_int_equal(proto_send(p->fd[0], "reply", UINT64_MAX, NULL), 0);
        assert_int_equal(proto_recv(p->fd[1], &msg), 0);
        assert_true(proto_id(msg) == UINT64_MAX);
}

static void test_packets_keep_boundaries(void **state) {
        struct pair *p = *state;

        for (uint64_t i = 1; i <= 3; i++)
                assert_int_equal(proto_send(p->fd[0], "n", i, NULL), 0);
        for (uint64_t i = 1; i <= 3; i++) {
                _cleanup_json_ struct json_object *msg = NULL;
                assert_int_equal(proto_recv(p->fd[1], &msg), 0);
                assert_true(proto_id(msg) == i);
        }
        assert_int_equal(proto_recv(p->fd[1], &(struct json_object *){ NULL }), -EAGAIN);
}

static void test_recv_empty(void **state) {
        struct pair *p = *state;
        struct json_object *msg = NULL;

        /* The socket is blocking; proto_recv must not block. */
        assert_int_equal(proto_recv(p->fd[1], &msg), -EAGAIN);
        assert_null(msg);
}

static void test_recv_after_peer_closed(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *msg = NULL;
        struct json_object *none = NULL;

        /* What was queued before the close is still delivered, then EOF. */
        assert_int_equal(proto_send(p->fd[0], "bye", 0, NULL), 0);
        pair_close(p, 0);
        assert_int_equal(proto_recv(p->fd[1], &msg), 0);
        assert_string_equal(proto_type(msg), "bye");
        assert_int_equal(proto_recv(p->fd[1], &none), -ECONNRESET);
        assert_null(none);
        assert_int_equal(proto_send(p->fd[1], "x", 0, NULL), -EPIPE);
}

static void test_recv_bad_packet_is_consumed(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *msg = NULL;
        struct json_object *bad = NULL;

        send_raw(p->fd[0], "not json", 8);
        send_raw(p->fd[0], "{\"v\":2,\"type\":\"x\"}", 18);
        assert_int_equal(proto_send(p->fd[0], "good", 1, NULL), 0);
        assert_int_equal(proto_recv(p->fd[1], &bad), -EPROTO);
        assert_int_equal(proto_recv(p->fd[1], &bad), -EPROTO);
        assert_null(bad);
        assert_int_equal(proto_recv(p->fd[1], &msg), 0);
        assert_string_equal(proto_type(msg), "good");
}

static char *big_string(size_t n) {
        char *s = malloc(n + 1);

        assert_non_null(s);
        memset(s, 'x', n);
        s[n] = 0;
        return s;
}

static void test_send_oversize(void **state) {
        struct pair *p = *state;
        _cleanup_free_ char *s = big_string(PROTO_PACKET_MAX);
        _cleanup_json_ struct json_object *data = json_object_new_string(s);
        struct json_object *msg = NULL;

        assert_int_equal(proto_send(p->fd[0], "big", 0, data), -EMSGSIZE);
        /* Nothing was sent. */
        assert_int_equal(proto_recv(p->fd[1], &msg), -EAGAIN);
}

/* Everything up to PROTO_PACKET_MAX must get through, whatever the socket's default buffer
 * size (net.core.wmem_default is about 208 KiB). */
static void test_send_largest_packet(void **state) {
        struct pair *p = *state;
        /* {"v":1,"type":"big","data":"xxx…"} */
        const size_t overhead = strlen("{\"v\":1,\"type\":\"big\",\"data\":\"\"}");
        _cleanup_free_ char *s = big_string(PROTO_PACKET_MAX - overhead);
        _cleanup_json_ struct json_object *data = json_object_new_string(s), *msg = NULL;

        assert_int_equal(proto_send(p->fd[0], "big", 0, data), 0);
        assert_int_equal(proto_recv(p->fd[1], &msg), 0);
        assert_string_equal(proto_type(msg), "big");
        assert_int_equal(json_object_get_string_len(proto_data(msg)), PROTO_PACKET_MAX - overhead);

        /* One byte more is refused before it reaches the socket. */
        free(s);
        s = big_string(PROTO_PACKET_MAX - overhead + 1);
        json_object_put(data);
        data = json_object_new_string(s);
        assert_int_equal(proto_send(p->fd[0], "big", 0, data), -EMSGSIZE);
}

/* A packet larger than PROTO_PACKET_MAX from a peer that does not use proto_send. */
static void test_recv_oversize(void **state) {
        struct pair *p = *state;
        const size_t n = PROTO_PACKET_MAX + 10;
        _cleanup_free_ char *s = big_string(n);
        int size = (int) (2 * n);
        struct json_object *msg = NULL;

        memcpy(s, "{\"v\":1,\"type\":\"x\",\"data\":\"", 26);
        memcpy(s + n - 2, "\"}", 2);
        assert_int_equal(setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
        send_raw(p->fd[0], s, n);
        assert_int_equal(proto_recv(p->fd[1], &msg), -EPROTO);
        assert_null(msg);
        assert_int_equal(proto_recv(p->fd[1], &msg), -EAGAIN);
}

/* --- proto_decode ------------------------------------------------------------------------ */

static void test_decode_valid(void **state) {
        static const char packet[] = "{\"v\":1,\"type\":\"status\",\"id\":42,\"data\":{\"k\":[1]}}";
        _cleanup_json_ struct json_object *msg = NULL, *minimal = NULL, *prefix = NULL;

        (void) state;
        assert_int_equal(proto_decode(packet, strlen(packet), &msg), 0);
        assert_string_equal(proto_type(msg), "status");
        assert_true(proto_id(msg) == 42);
        assert_true(json_object_is_type(proto_data(msg), json_type_object));

        assert_int_equal(proto_decode("{\"type\":\"t\",\"v\":1}", 18, &minimal), 0);
        assert_string_equal(proto_type(minimal), "t");
        assert_true(proto_id(minimal) == 0);
        assert_null(proto_data(minimal));

        /* Only `len` bytes are looked at; the buffer need not be NUL-terminated. */
        assert_int_equal(proto_decode("{\"v\":1,\"type\":\"t\"}GARBAGE", 18, &prefix), 0);
        assert_string_equal(proto_type(prefix), "t");
}

static void test_decode_rejects(void **state) {
        static const struct {
                const char *what;
                const char *data;
                size_t len; /* 0: strlen */
        } bad[] = {
                { "not JSON", "hello", 0 },
                { "JSON array", "[{\"v\":1,\"type\":\"x\"}]", 0 },
                { "JSON string", "\"{}\"", 0 },
                { "JSON number", "1 ", 0 },
                { "JSON null", "null", 0 },
                { "empty object", "{}", 0 },
                { "missing v", "{\"type\":\"x\"}", 0 },
                { "v=2", "{\"v\":2,\"type\":\"x\"}", 0 },
                { "v=0", "{\"v\":0,\"type\":\"x\"}", 0 },
                { "v as string", "{\"v\":\"1\",\"type\":\"x\"}", 0 },
                { "v as double", "{\"v\":1.0,\"type\":\"x\"}", 0 },
                { "v as boolean", "{\"v\":true,\"type\":\"x\"}", 0 },
                { "v null", "{\"v\":null,\"type\":\"x\"}", 0 },
                { "missing type", "{\"v\":1}", 0 },
                { "empty type", "{\"v\":1,\"type\":\"\"}", 0 },
                { "type as number", "{\"v\":1,\"type\":5}", 0 },
                { "type null", "{\"v\":1,\"type\":null}", 0 },
                { "id as string", "{\"v\":1,\"type\":\"x\",\"id\":\"7\"}", 0 },
                { "id as double", "{\"v\":1,\"type\":\"x\",\"id\":7.5}", 0 },
                { "id as object", "{\"v\":1,\"type\":\"x\",\"id\":{}}", 0 },
                { "trailing garbage", "{\"v\":1,\"type\":\"x\"}garbage", 0 },
                { "two objects", "{\"v\":1,\"type\":\"x\"}{\"v\":1,\"type\":\"y\"}", 0 },
                { "trailing NUL", "{\"v\":1,\"type\":\"x\"}\0", 19 },
                { "truncated", "{\"v\":1,\"type\":\"x\"", 0 },
                { "unterminated string", "{\"v\":1,\"type\":\"x", 0 },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct json_object *msg = NULL;
                size_t len = bad[i].len ? bad[i].len : strlen(bad[i].data);
                int r = proto_decode(bad[i].data, len, &msg);
                if (r != -EPROTO || msg)
                        fail_msg("%s: got %d, expected -EPROTO", bad[i].what, r);
        }
}

static void test_decode_length_limits(void **state) {
        _cleanup_free_ char *s = big_string(PROTO_PACKET_MAX + 1);
        struct json_object *msg = NULL;

        (void) state;
        assert_int_equal(proto_decode("", 0, &msg), -EPROTO);
        assert_int_equal(proto_decode("{\"v\":1,\"type\":\"x\"}", 0, &msg), -EPROTO);
        memcpy(s, "{\"v\":1,\"type\":\"x\",\"data\":\"", 26);
        memcpy(s + PROTO_PACKET_MAX - 1, "\"}", 2);
        assert_int_equal(proto_decode(s, PROTO_PACKET_MAX + 1, &msg), -EPROTO);
        assert_null(msg);
}

/* --- proto_channel_fd_from_env ----------------------------------------------------------- */

static void test_channel_fd_from_env(void **state) {
        static const char *const bad[] = { "", "abc", "5x", "-5", "0", "2", "1025", "99999999999999999999" };
        char buf[32];
        int fd, closed;

        (void) state;
        unsetenv(PROTO_CHANNEL_FD_ENV);
        assert_int_equal(proto_channel_fd_from_env(), -ENOENT);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                assert_int_equal(setenv(PROTO_CHANNEL_FD_ENV, bad[i], 1), 0);
                r = proto_channel_fd_from_env();
                if (r != -EINVAL)
                        fail_msg("%s=\"%s\" gave %d, expected -EINVAL", PROTO_CHANNEL_FD_ENV, bad[i], r);
        }

        closed = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(closed >= 3);
        assert_int_equal(close(closed), 0);
        snprintf(buf, sizeof buf, "%d", closed);
        assert_int_equal(setenv(PROTO_CHANNEL_FD_ENV, buf, 1), 0);
        assert_int_equal(proto_channel_fd_from_env(), -EBADF);

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 3);
        snprintf(buf, sizeof buf, "%d", fd);
        assert_int_equal(setenv(PROTO_CHANNEL_FD_ENV, buf, 1), 0);
        assert_int_equal(proto_channel_fd_from_env(), fd);
        close(fd);
        unsetenv(PROTO_CHANNEL_FD_ENV);
}

/* --- control.c --------------------------------------------------------------------------- */

static void test_read_line(void **state) {
        struct pair *p = *state;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        send_str(p->fd[0], "hello\n\nworld {\"x\":1}\n");
        assert_int_equal(control_read_line(p->fd[1], &a, 100), 0);
        assert_string_equal(a, "hello");
        /* What follows the line stays in the socket for the next call. */
        assert_int_equal(control_read_line(p->fd[1], &b, 100), 0);
        assert_string_equal(b, "");
        assert_int_equal(control_read_line(p->fd[1], &c, 100), 0);
        assert_string_equal(c, "world {\"x\":1}");
}

static void test_read_line_long(void **state) {
        struct pair *p = *state;
        _cleanup_free_ char *s = big_string(5000), *got = NULL;

        /* Longer than the initial buffer: it grows. */
        s[4999] = '\n';
        send_raw(p->fd[0], s, 5000);
        assert_int_equal(control_read_line(p->fd[1], &got, 4999), 0);
        assert_int_equal(strlen(got), 4999);
        assert_memory_equal(got, s, 4999);
}

static void test_read_line_eof(void **state) {
        struct pair *p = *state;
        char *got = NULL;

        send_raw(p->fd[0], "no newline", 10);
        pair_close(p, 0);
        assert_int_equal(control_read_line(p->fd[1], &got, 100), -ECONNRESET);
        assert_null(got);
        assert_int_equal(control_read_line(p->fd[1], &got, 100), -ECONNRESET);
        assert_null(got);
}

static void test_read_line_oversize(void **state) {
        struct pair *p = *state;
        _cleanup_free_ char *exact = NULL, *s = big_string(600);
        char *got = NULL;

        /* Exactly `max` bytes is fine, `max + 1` is not. */
        send_raw(p->fd[0], "12345678\n", 9);
        assert_int_equal(control_read_line(p->fd[1], &exact, 8), 0);
        assert_string_equal(exact, "12345678");
        send_raw(p->fd[0], "123456789\n", 10);
        assert_int_equal(control_read_line(p->fd[1], &got, 8), -EMSGSIZE);
        assert_null(got);

        /* Also past the initial allocation. */
        s[599] = '\n';
        pair_renew(p, SOCK_STREAM);
        send_raw(p->fd[0], s, 600);
        assert_int_equal(control_read_line(p->fd[1], &got, 598), -EMSGSIZE);
        assert_null(got);
        /* max 0 admits only empty lines. */
        pair_renew(p, SOCK_STREAM);
        send_raw(p->fd[0], "\nx\n", 3);
        assert_int_equal(control_read_line(p->fd[1], &got, 0), 0);
        assert_string_equal(got, "");
        free(got);
        got = NULL;
        assert_int_equal(control_read_line(p->fd[1], &got, 0), -EMSGSIZE);
        assert_null(got);
}

static void test_error_new(void **state) {
        _cleanup_json_ struct json_object *o = control_error_new("no-such-group", "group \"x\" does not exist");
        struct json_object *ok, *e, *code, *message;

        (void) state;
        assert_non_null(o);
        assert_true(json_object_is_type(o, json_type_object));
        assert_int_equal(json_object_object_length(o), 2);
        assert_true(json_object_object_get_ex(o, "ok", &ok));
        assert_true(json_object_is_type(ok, json_type_boolean));
        assert_false(json_object_get_boolean(ok));
        assert_true(json_object_object_get_ex(o, "error", &e));
        assert_true(json_object_is_type(e, json_type_object));
        assert_int_equal(json_object_object_length(e), 2);
        assert_true(json_object_object_get_ex(e, "code", &code));
        assert_true(json_object_is_type(code, json_type_string));
        assert_string_equal(json_object_get_string(code), "no-such-group");
        assert_true(json_object_object_get_ex(e, "message", &message));
        assert_string_equal(json_object_get_string(message), "group \"x\" does not exist");
        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                            "{\"ok\":false,\"error\":{\"code\":\"no-such-group\","
                            "\"message\":\"group \\\"x\\\" does not exist\"}}");
}

/* control_call over a socketpair: the reply is queued before the call, so no server thread is
 * needed; the request is read back afterwards. */
static void test_call_ok(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *result = NULL, *args = json_object_new_object(), *req = NULL;
        _cleanup_free_ char *line = NULL;
        struct json_object *v;

        json_object_object_add(args, "group", json_object_new_string("ops"));
        send_str(p->fd[1], "{\"ok\":true,\"result\":{\"n\":3}}\n");
        assert_int_equal(control_call(p->fd[0], "status", args, &result, NULL), 0);
        assert_non_null(result);
        assert_true(json_object_object_get_ex(result, "n", &v));
        assert_int_equal(json_object_get_int(v), 3);

        assert_int_equal(control_read_line(p->fd[1], &line, 1000), 0);
        req = json_tokener_parse(line);
        assert_non_null(req);
        assert_true(json_object_object_get_ex(req, "op", &v));
        assert_string_equal(json_object_get_string(v), "status");
        assert_true(json_object_object_get_ex(req, "args", &v));
        assert_true(json_object_equal(v, args));
}

static void test_call_error_and_bad_replies(void **state) {
        struct pair *p = *state;
        _cleanup_json_ struct json_object *error = NULL, *result = NULL;
        _cleanup_free_ char *line = NULL;
        struct json_object *v;
        int r;

        send_str(p->fd[1], "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"m\"}}\n");
        assert_int_equal(control_call(p->fd[0], "stop", NULL, &result, &error), -EREMOTEIO);
        assert_null(result);
        assert_non_null(error);
        assert_true(json_object_object_get_ex(error, "code", &v));
        assert_string_equal(json_object_get_string(v), "busy");
        /* Without args, an empty object is sent. */
        assert_int_equal(control_read_line(p->fd[1], &line, 1000), 0);
        assert_string_equal(line, "{\"op\":\"stop\",\"args\":{}}");

        send_str(p->fd[1], "not json\n");
        assert_int_equal(control_call(p->fd[0], "x", NULL, &result, NULL), -EPROTO);
        send_str(p->fd[1], "{\"result\":1}\n");
        assert_int_equal(control_call(p->fd[0], "x", NULL, &result, NULL), -EPROTO);
        assert_null(result);

        /* The daemon went away before answering (with our unread requests: ECONNRESET). */
        pair_close(p, 1);
        r = control_call(p->fd[0], "x", NULL, &result, NULL);
        assert_true(r == -EPIPE || r == -ECONNRESET);
        assert_null(result);
}

static void test_connect_missing_socket(void **state) {
        char longpath[200];

        (void) state;
        assert_int_equal(control_connect("/nonexistent/conclave/control.sock"), -ENOENT);
        memset(longpath, 'a', sizeof longpath - 1);
        longpath[0] = '/';
        longpath[sizeof longpath - 1] = 0;
        assert_int_equal(control_connect(longpath), -ENAMETOOLONG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_round_trip_without_id_and_data, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_round_trip_largest_id, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_packets_keep_boundaries, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_recv_empty, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_recv_after_peer_closed, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_recv_bad_packet_is_consumed, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_send_oversize, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_send_largest_packet, seqpacket_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_recv_oversize, seqpacket_setup, pair_teardown),
                cmocka_unit_test(test_decode_valid),
                cmocka_unit_test(test_decode_rejects),
                cmocka_unit_test(test_decode_length_limits),
                cmocka_unit_test(test_channel_fd_from_env),
                cmocka_unit_test_setup_teardown(test_read_line, stream_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_read_line_long, stream_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_read_line_eof, stream_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_read_line_oversize, stream_setup, pair_teardown),
                cmocka_unit_test(test_error_new),
                cmocka_unit_test_setup_teardown(test_call_ok, stream_setup, pair_teardown),
                cmocka_unit_test_setup_teardown(test_call_error_and_bad_replies, stream_setup, pair_teardown),
                cmocka_unit_test(test_connect_missing_socket),
        };

        return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}

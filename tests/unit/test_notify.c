/* Unit tests for notify.c: parsing sd_notify datagrams as the supervisor receives them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "notify.h"

/* Parses a NUL-terminated datagram (without its NUL). */
static int parse(const char *s, struct notify_message *m) {
        return notify_parse(s, strlen(s), m);
}

static void test_ready(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("READY=1", &m), 0);
        assert_true(m.ready);
        assert_false(m.watchdog);
        assert_false(m.watchdog_trigger);
        assert_false(m.stopping);
        assert_false(m.reloading);
        assert_false(m.has_status);
        assert_string_equal(m.status, "");
        assert_true(m.extend_timeout_usec == 0);
        assert_int_equal(m.error, 0);
        assert_int_equal(m.n_unknown, 0);
}

static void test_ready_not_one(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("READY=0", &m), 0);
        assert_false(m.ready);
        assert_int_equal(parse("READY=", &m), 0);
        assert_false(m.ready);
        assert_int_equal(parse("READY=11", &m), 0);
        assert_false(m.ready);
        assert_int_equal(parse("READY=yes", &m), 0);
        assert_false(m.ready);
}

static void test_multi_line(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("READY=1\nSTATUS=Serving 3 channels\nSTOPPING=1\nRELOADING=1\n"
                               "EXTEND_TIMEOUT_USEC=5000000\nERRNO=5",
                               &m),
                         0);
        assert_true(m.ready);
        assert_true(m.stopping);
        assert_true(m.reloading);
        assert_true(m.has_status);
        assert_string_equal(m.status, "Serving 3 channels");
        assert_true(m.extend_timeout_usec == 5000000);
        assert_int_equal(m.error, 5);
        assert_int_equal(m.n_unknown, 0);
        assert_false(m.watchdog);
}

static void test_trailing_and_blank_lines(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("READY=1\n", &m), 0);
        assert_true(m.ready);
        assert_int_equal(parse("\n\nWATCHDOG=1\n\n", &m), 0);
        assert_true(m.watchdog);
        /* Only newlines: a valid, empty message. */
        assert_int_equal(parse("\n", &m), 0);
        assert_false(m.ready);
        assert_int_equal(m.n_unknown, 0);
}

static void test_later_assignment_wins(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("READY=1\nREADY=0", &m), 0);
        assert_false(m.ready);
        assert_int_equal(parse("STATUS=first\nSTATUS=second", &m), 0);
        assert_string_equal(m.status, "second");
}

static void test_status_sanitised(void **state) {
        static const char d[] = "STATUS=a\tb\rc\x01" "d\x1f" "e\x7f" "f\xc3\xa9";
        struct notify_message m;

        (void) state;
        assert_int_equal(notify_parse(d, sizeof d - 1, &m), 0);
        assert_true(m.has_status);
        /* Control characters become spaces; DEL and UTF-8 are kept as they are. */
        assert_string_equal(m.status, "a b c d e\x7f" "f\xc3\xa9");

        assert_int_equal(parse("STATUS=", &m), 0);
        assert_true(m.has_status);
        assert_string_equal(m.status, "");

        /* '=' in the value is part of the value. */
        assert_int_equal(parse("STATUS=a=b", &m), 0);
        assert_string_equal(m.status, "a=b");
}

static void test_status_truncated(void **state) {
        char d[7 + NOTIFY_STATUS_MAX + 10 + 1];
        struct notify_message m;
        size_t len;

        (void) state;
        memcpy(d, "STATUS=", 7);
        for (size_t i = 0; i < NOTIFY_STATUS_MAX + 10; i++)
                d[7 + i] = (char) ('a' + i % 26);
        len = 7 + NOTIFY_STATUS_MAX + 10;
        d[len] = 0;

        assert_int_equal(notify_parse(d, len, &m), 0);
        assert_int_equal(strlen(m.status), NOTIFY_STATUS_MAX - 1);
        assert_memory_equal(m.status, d + 7, NOTIFY_STATUS_MAX - 1);

        /* Exactly NOTIFY_STATUS_MAX - 1 bytes fit untouched. */
        len = 7 + NOTIFY_STATUS_MAX - 1;
        d[len] = 0;
        assert_int_equal(notify_parse(d, len, &m), 0);
        assert_string_equal(m.status, d + 7);

        /* The truncated status ends the line; what follows is still parsed. */
        d[len] = 'x';
        len = 7 + NOTIFY_STATUS_MAX + 10;
        memcpy(d + len - 8, "\nREADY=1", 8);
        assert_int_equal(notify_parse(d, len, &m), 0);
        assert_true(m.ready);
        assert_int_equal(strlen(m.status), NOTIFY_STATUS_MAX - 1);
}

static void test_watchdog(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("WATCHDOG=1", &m), 0);
        assert_true(m.watchdog);
        assert_false(m.watchdog_trigger);

        assert_int_equal(parse("WATCHDOG=trigger", &m), 0);
        assert_false(m.watchdog);
        assert_true(m.watchdog_trigger);

        assert_int_equal(parse("WATCHDOG=0", &m), 0);
        assert_false(m.watchdog);
        assert_false(m.watchdog_trigger);

        assert_int_equal(parse("WATCHDOG=TRIGGER", &m), 0);
        assert_false(m.watchdog_trigger);
}

static void test_extend_timeout(void **state) {
        static const char *const bad[] = {
                "EXTEND_TIMEOUT_USEC=",
                "EXTEND_TIMEOUT_USEC=abc",
                "EXTEND_TIMEOUT_USEC=-1",
                "EXTEND_TIMEOUT_USEC=+5",
                "EXTEND_TIMEOUT_USEC= 5",
                "EXTEND_TIMEOUT_USEC=5 ",
                "EXTEND_TIMEOUT_USEC=1.5",
                "EXTEND_TIMEOUT_USEC=0x10",
                "EXTEND_TIMEOUT_USEC=18446744073709551616",  /* UINT64_MAX + 1 */
                "EXTEND_TIMEOUT_USEC=99999999999999999999",  /* 20 digits, too big */
                "EXTEND_TIMEOUT_USEC=000000000000000000001", /* 21 digits */
                "READY=1\nEXTEND_TIMEOUT_USEC=x",            /* one bad line spoils the datagram */
        };
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("EXTEND_TIMEOUT_USEC=30000000", &m), 0);
        assert_true(m.extend_timeout_usec == 30000000);
        assert_int_equal(parse("EXTEND_TIMEOUT_USEC=0", &m), 0);
        assert_true(m.extend_timeout_usec == 0);
        assert_int_equal(parse("EXTEND_TIMEOUT_USEC=18446744073709551615", &m), 0);
        assert_true(m.extend_timeout_usec == UINT64_MAX);
        assert_int_equal(parse("EXTEND_TIMEOUT_USEC=00000000000000000001", &m), 0);
        assert_true(m.extend_timeout_usec == 1);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                memset(&m, 0x5a, sizeof m);
                r = parse(bad[i], &m);
                if (r != -EBADMSG)
                        fail_msg("\"%s\" gave %d, expected -EBADMSG", bad[i], r);
                /* On error the output is not touched. */
                assert_true(m.extend_timeout_usec == 0x5a5a5a5a5a5a5a5aULL);
        }
}

static void test_errno(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("ERRNO=2", &m), 0);
        assert_int_equal(m.error, ENOENT);
        assert_int_equal(parse("ERRNO=0", &m), 0);
        assert_int_equal(m.error, 0);
        assert_int_equal(parse("ERRNO=4095", &m), 0);
        assert_int_equal(m.error, 4095);
        assert_int_equal(parse("ERRNO=4096", &m), -EBADMSG);
        assert_int_equal(parse("ERRNO=-1", &m), -EBADMSG);
        assert_int_equal(parse("ERRNO=", &m), -EBADMSG);
        assert_int_equal(parse("ERRNO=EIO", &m), -EBADMSG);
}

static void test_unknown_keys_counted(void **state) {
        struct notify_message m;

        (void) state;
        assert_int_equal(parse("MAINPID=42\nREADY=1\nX_CONCLAVE_1=a\nFDSTORE=1\nBUSERROR=x", &m), 0);
        assert_true(m.ready);
        assert_int_equal(m.n_unknown, 4);
        /* Known keys with values other than "1" are not unknown. */
        assert_int_equal(parse("STOPPING=0\nRELOADING=2", &m), 0);
        assert_int_equal(m.n_unknown, 0);
        assert_false(m.stopping);
        assert_false(m.reloading);
}

static void test_malformed(void **state) {
        static const struct {
                const char *what;
                const char *data;
                size_t len;
        } bad[] = {
                { "empty", "", 0 },
                { "missing '='", "READY", 5 },
                { "missing '=' on a later line", "READY=1\nSTATUS", 14 },
                { "empty key", "=1", 2 },
                { "lowercase key", "ready=1", 7 },
                { "mixed-case key", "Ready=1", 7 },
                { "space in key", "READY =1", 8 },
                { "dash in key", "X-Y=1", 5 },
                { "embedded NUL", "READY=1\0STATUS=x", 16 },
                { "NUL at the end", "READY=1\0", 8 },
                { "NUL in the key", "RE\0DY=1", 7 },
        };
        struct notify_message m;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                memset(&m, 0x5a, sizeof m);
                r = notify_parse(bad[i].data, bad[i].len, &m);
                if (r != -EBADMSG)
                        fail_msg("%s: got %d, expected -EBADMSG", bad[i].what, r);
                assert_int_equal(m.n_unknown, 0x5a5a5a5a);
        }
}

static void test_not_nul_terminated(void **state) {
        /* notify_parse must stop at len: "READY=1" followed by bytes that would be an error. */
        static const char d[] = "READY=1garbage";
        struct notify_message m;

        (void) state;
        assert_int_equal(notify_parse(d, 7, &m), 0);
        assert_true(m.ready);
        assert_int_equal(notify_parse("STATUS=abcdef", 9, &m), 0);
        assert_string_equal(m.status, "ab");
}

static void test_datagram_size_limit(void **state) {
        _cleanup_free_ char *d = malloc(NOTIFY_DATAGRAM_MAX + 1);
        struct notify_message m;

        (void) state;
        assert_non_null(d);
        /* STATUS=xxxx… filling exactly NOTIFY_DATAGRAM_MAX bytes, then one byte more. */
        memcpy(d, "STATUS=", 7);
        memset(d + 7, 'x', NOTIFY_DATAGRAM_MAX + 1 - 7);
        assert_int_equal(notify_parse(d, NOTIFY_DATAGRAM_MAX, &m), 0);
        assert_true(m.has_status);
        assert_int_equal(strlen(m.status), NOTIFY_STATUS_MAX - 1);
        assert_int_equal(notify_parse(d, NOTIFY_DATAGRAM_MAX + 1, &m), -EBADMSG);
}

/* The sender never blocks: a receiver that does not read (a stopped supervisor) fills up, and
 * then each send is -EAGAIN at once; what was queued arrives intact, with the credentials. */
static void test_send_never_blocks(void **state) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char path[] = "/tmp/test-notify-XXXXXX", buf[64];
        int receiver, fd, on = 1, sent = 0, r;
        struct notify_message m;

        (void) state;
        assert_non_null(mkdtemp(path));
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", path);
        receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(receiver >= 0);
        assert_int_equal(bind(receiver, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(setsockopt(receiver, SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);

        assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
        assert_int_equal(notify_open(&fd), 0);
        assert_int_equal(fd, -1);
        assert_int_equal(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
        assert_int_equal(notify_open(&fd), -EINVAL);
        assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
        assert_int_equal(notify_open(&fd), 0);
        assert_true(fd >= 0);

        while ((r = notify_send(fd, "WATCHDOG=1")) == 0)
                assert_true(++sent < 100000);
        assert_int_equal(r, -EAGAIN);
        assert_true(sent > 0);
        assert_int_equal(notify_send(fd, "READY=1"), -EAGAIN);

        ssize_t n = recv(receiver, buf, sizeof buf, 0);
        assert_int_equal(n, 10);
        assert_int_equal(notify_parse(buf, (size_t) n, &m), 0);
        assert_true(m.watchdog);
        /* One slot free again. */
        assert_int_equal(notify_send(fd, "READY=1"), 0);

        close(fd);
        close(receiver);
        unlink(sa.sun_path);
        rmdir(path);
        unsetenv("NOTIFY_SOCKET");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ready),
                cmocka_unit_test(test_ready_not_one),
                cmocka_unit_test(test_multi_line),
                cmocka_unit_test(test_trailing_and_blank_lines),
                cmocka_unit_test(test_later_assignment_wins),
                cmocka_unit_test(test_status_sanitised),
                cmocka_unit_test(test_status_truncated),
                cmocka_unit_test(test_watchdog),
                cmocka_unit_test(test_extend_timeout),
                cmocka_unit_test(test_errno),
                cmocka_unit_test(test_unknown_keys_counted),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_datagram_size_limit),
                cmocka_unit_test(test_send_never_blocks),
        };

        return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}

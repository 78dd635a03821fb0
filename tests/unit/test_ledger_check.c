/* Unit tests for ledger_check.c: a ledger verified as a stream of bytes, fed whole, byte by
 * byte and in odd chunks, and each way a ledger can be wrong, with the byte offset reported. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger.h"
#include "ledger_check.h"
#include "macro.h"

/* A valid event line (with '\n') for seq. */
static char *line(uint64_t seq, const char *text) {
        char *s;
        assert_true(asprintf(&s,
                             "{\"v\":1,\"id\":\"01JD00000000000000000000%02u\",\"seq\":%llu,\"ts\":\"2026-11-22T14:36:41.123Z\","
                             "\"kind\":\"chat.message\",\"group_id\":\"g1\",\"by\":\"alice\",\"data\":{\"text\":\"%s\"}}\n",
                             (unsigned) (seq % 100), (unsigned long long) seq, text) > 0);
        return s;
}

static char *ledger_text(unsigned n) {
        char *all = strdup("");
        for (unsigned i = 1; i <= n; i++) {
                _cleanup_free_ char *l = line(i, "hello"), *prev = all;
                assert_true(asprintf(&all, "%s%s", prev, l) > 0);
        }
        return all;
}

static struct ledger_check *check_new(void) {
        struct ledger_check *c = NULL;
        assert_int_equal(ledger_check_new(&c), 0);
        return c;
}

static void test_whole_and_chunked(void **state) {
        _cleanup_free_ char *text = ledger_text(20);
        size_t len = strlen(text);
        static const size_t chunks[] = { 1, 2, 7, 64, 1000, 1u << 20 };

        for (size_t k = 0; k < ELEMENTSOF(chunks); k++) {
                _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();
                for (size_t off = 0; off < len; off += chunks[k]) {
                        size_t n = len - off < chunks[k] ? len - off : chunks[k];
                        assert_int_equal(ledger_check_feed(c, text + off, n), 0);
                }
                assert_int_equal(ledger_check_finish(c), 0);
                assert_int_equal(ledger_check_last_seq(c), 20);
                assert_int_equal(ledger_check_bytes(c), len);
                assert_null(ledger_check_error(c, NULL));
        }
}

static void test_empty(void **state) {
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();
        assert_int_equal(ledger_check_finish(c), 0);
        assert_int_equal(ledger_check_last_seq(c), 0);
}

static void test_torn_tail(void **state) {
        _cleanup_free_ char *text = ledger_text(3);
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();
        size_t len = strlen(text);
        uint64_t offset = 0;

        assert_int_equal(ledger_check_feed(c, text, len - 10), 0);
        assert_int_equal(ledger_check_finish(c), -EBADMSG);
        assert_string_equal(ledger_check_error(c, &offset), "no trailing newline");
        assert_int_equal(offset, len / 3 * 2); /* the start of line 3 (lines have equal lengths) */
        assert_int_equal(ledger_check_last_seq(c), 2);
}

static void test_seq_gap(void **state) {
        _cleanup_free_ char *a = line(1, "a"), *b = line(3, "b");
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();
        uint64_t offset = 0;

        assert_int_equal(ledger_check_feed(c, a, strlen(a)), 0);
        assert_int_equal(ledger_check_feed(c, b, strlen(b)), -EBADMSG);
        assert_string_equal(ledger_check_error(c, &offset), "seq 3 after 1");
        assert_int_equal(offset, strlen(a));
        /* The error sticks. */
        assert_int_equal(ledger_check_feed(c, a, strlen(a)), -EBADMSG);
        assert_int_equal(ledger_check_finish(c), -EBADMSG);
}

static void test_corrupt_middle_line(void **state) {
        _cleanup_free_ char *text = ledger_text(5);
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();
        char *second = strchr(text, '\n') + 1, *kind = strstr(second, "\"kind\"");
        uint64_t offset = 0;

        kind[2] = '!'; /* "k!nd": same length */
        /* Fed in two pieces that split the bad line. */
        assert_int_equal(ledger_check_feed(c, text, (size_t) (kind - text)), 0);
        assert_int_equal(ledger_check_feed(c, kind, strlen(kind)), -EBADMSG);
        assert_non_null(strstr(ledger_check_error(c, &offset), "kind"));
        assert_int_equal(offset, (uint64_t) (second - text));
}

static void test_newer_format(void **state) {
        static const char l[] = "{\"v\":2,\"whatever\":true}\n";
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new();

        assert_int_equal(ledger_check_feed(c, l, strlen(l)), -EPROTONOSUPPORT);
        assert_non_null(strstr(ledger_check_error(c, NULL), "newer"));
}

static void test_empty_line_and_overlong(void **state) {
        _cleanup_(ledger_check_freep) struct ledger_check *c = check_new(), *d = check_new();
        _cleanup_free_ char *big = malloc(LEDGER_LINE_MAX + 2);

        assert_int_equal(ledger_check_feed(c, "\n", 1), -EBADMSG);
        assert_string_equal(ledger_check_error(c, NULL), "empty line");

        assert_non_null(big);
        memset(big, 'x', LEDGER_LINE_MAX + 2);
        assert_int_equal(ledger_check_feed(d, big, 100), 0);
        assert_int_equal(ledger_check_feed(d, big, LEDGER_LINE_MAX + 2), -EBADMSG);
        assert_string_equal(ledger_check_error(d, NULL), "line longer than 1 MiB");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_whole_and_chunked),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_torn_tail),
                cmocka_unit_test(test_seq_gap),
                cmocka_unit_test(test_corrupt_middle_line),
                cmocka_unit_test(test_newer_format),
                cmocka_unit_test(test_empty_line_and_overlong),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

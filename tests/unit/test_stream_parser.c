/* Unit tests for stream_parser.c: SSE and NDJSON, split at every byte boundary, malformed input
 * and over-long lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "stream_parser.h"

/* The events seen, as "event|data\n" lines (data's newlines shown as "\\n"). */
struct seen {
        char buf[8192];
        size_t len;
        int stop_after; /* return -ECANCELED after this many events; 0: never */
        int n;
};

static int record(const char *event, const char *data, size_t len, void *userdata) {
        struct seen *s = userdata;

        assert_int_equal(data[len], 0); /* NUL-terminated, as promised */
        assert_int_equal(strlen(data), len);
        s->len += (size_t) snprintf(s->buf + s->len, sizeof s->buf - s->len, "%s|", event ? event : "-");
        for (size_t i = 0; i < len; i++)
                s->len += (size_t) snprintf(s->buf + s->len, sizeof s->buf - s->len, "%s",
                                            data[i] == '\n' ? "\\n" : (char[]){ data[i], 0 });
        s->len += (size_t) snprintf(s->buf + s->len, sizeof s->buf - s->len, "\n");
        s->n++;
        return s->stop_after && s->n >= s->stop_after ? -ECANCELED : 0;
}

/* Parses input fed in the given pieces (sizes; 0-terminated list, remainder at the end). */
static int parse_pieces(enum stream_format f, const char *input, size_t len, const size_t *pieces, struct seen *s,
                        size_t max_line) {
        struct stream_parser p;
        size_t pos = 0;
        int r = 0;

        stream_parser_init(&p, f, max_line, 0, record, s);
        for (size_t i = 0; pieces && pieces[i] && r >= 0; i++) {
                size_t n = MIN(pieces[i], len - pos);
                r = stream_parser_feed(&p, input + pos, n);
                pos += n;
        }
        if (r >= 0 && pos < len)
                r = stream_parser_feed(&p, input + pos, len - pos);
        if (r >= 0)
                r = stream_parser_finish(&p);
        stream_parser_done(&p);
        return r;
}

static const char sse_input[] =
        "\xEF\xBB\xBF: a comment, and a BOM before it\r\n"
        "event: message_start\r\n"
        "data: {\"type\":\"message_start\"}\r\n"
        "\r\n"
        "data:no space\n"
        "\n"
        "id: 7\n"
        "retry: 1000\n"
        "data: line one\n"
        "data: line two\n"
        "data\n"
        "unknown: field\n"
        "\n"
        "event: only an event name, no data: dispatches nothing\n"
        "\n"
        "event: ping\r"
        "data: {}\r"
        "\r"
        "data: [DONE]\n"
        "\n"
        "data: an event that never ends is dropped\n";

static const char sse_expected[] =
        "message_start|{\"type\":\"message_start\"}\n"
        "message|no space\n"
        "message|line one\\nline two\\n\n"
        "ping|{}\n"
        "message|[DONE]\n";

static void test_sse_whole(void **state) {
        struct seen s = {};

        (void) state;
        assert_int_equal(parse_pieces(STREAM_SSE, sse_input, strlen(sse_input), NULL, &s, 0), 0);
        assert_string_equal(s.buf, sse_expected);
}

/* The same events, whatever the network does to the bytes: two pieces split at every position,
 * and one byte at a time. */
static void test_sse_every_split(void **state) {
        size_t len = strlen(sse_input);

        (void) state;
        for (size_t i = 1; i < len; i++) {
                struct seen s = {};
                size_t pieces[] = { i, 0 };
                assert_int_equal(parse_pieces(STREAM_SSE, sse_input, len, pieces, &s, 0), 0);
                if (!streq(s.buf, sse_expected))
                        fail_msg("split at %zu gave:\n%s", i, s.buf);
        }
        {
                struct seen s = {};
                size_t *ones = calloc(len + 1, sizeof *ones);
                assert_non_null(ones);
                for (size_t i = 0; i < len; i++)
                        ones[i] = 1;
                assert_int_equal(parse_pieces(STREAM_SSE, sse_input, len, ones, &s, 0), 0);
                assert_string_equal(s.buf, sse_expected);
                free(ones);
        }
}

/* "\r" at the end of one piece and "\n" at the start of the next are one line end. */
static void test_sse_crlf_across_pieces(void **state) {
        static const char in[] = "data: a\r\n\r\ndata: b\r\n\r\n";
        struct seen s = {};
        size_t pieces[] = { 8, 1, 1, 1, 0 };

        (void) state;
        assert_int_equal(parse_pieces(STREAM_SSE, in, strlen(in), pieces, &s, 0), 0);
        assert_string_equal(s.buf, "message|a\nmessage|b\n");
}

static void test_sse_limits(void **state) {
        struct stream_parser p;
        struct seen s = {};
        char line[300];
        int r = 0;

        (void) state;
        /* A line over the limit, even without its end: an error, no matter how it comes. */
        memset(line, 'x', sizeof line);
        stream_parser_init(&p, STREAM_SSE, 256, 0, record, &s);
        assert_int_equal(stream_parser_feed(&p, "data: ", 6), 0);
        for (size_t i = 0; i < sizeof line && r == 0; i += 10)
                r = stream_parser_feed(&p, line, 10);
        assert_int_equal(r, -EMSGSIZE);
        assert_int_equal(stream_parser_feed(&p, "\n\n", 2), -EPROTO); /* stays failed */
        assert_int_equal(stream_parser_finish(&p), -EPROTO);
        stream_parser_done(&p);
        assert_int_equal(s.n, 0);

        /* Many short data lines adding up past the event bound. */
        stream_parser_init(&p, STREAM_SSE, 256, 100, record, &s);
        r = 0;
        for (int i = 0; i < 20 && r == 0; i++)
                r = stream_parser_feed(&p, "data: 0123456789\n", 17);
        assert_int_equal(r, -EMSGSIZE);
        stream_parser_done(&p);

        /* An event name longer than any real one. */
        stream_parser_init(&p, STREAM_SSE, 256, 0, record, &s);
        memset(line, 'e', 100);
        assert_int_equal(stream_parser_feed(&p, "event: ", 7), 0);
        assert_int_equal(stream_parser_feed(&p, line, 100), 0);
        assert_int_equal(stream_parser_feed(&p, "\n", 1), -EMSGSIZE);
        stream_parser_done(&p);

        /* A NUL byte is not text. */
        stream_parser_init(&p, STREAM_SSE, 256, 0, record, &s);
        assert_int_equal(stream_parser_feed(&p, "data: a\0b\n\n", 11), -EBADMSG);
        stream_parser_done(&p);
        assert_int_equal(s.n, 0);
}

static void test_callback_stops(void **state) {
        struct seen s = { .stop_after = 2 };

        (void) state;
        assert_int_equal(parse_pieces(STREAM_SSE, sse_input, strlen(sse_input), NULL, &s, 0), -ECANCELED);
        assert_int_equal(s.n, 2);
}

static void test_pending(void **state) {
        struct stream_parser p;
        struct seen s = {};

        (void) state;
        stream_parser_init(&p, STREAM_SSE, 0, 0, record, &s);
        assert_false(stream_parser_pending(&p));
        assert_int_equal(stream_parser_feed(&p, "data: x\n", 8), 0);
        assert_true(stream_parser_pending(&p)); /* data waiting for its blank line */
        assert_int_equal(stream_parser_feed(&p, "\n", 1), 0);
        assert_false(stream_parser_pending(&p));
        assert_int_equal(stream_parser_feed(&p, "dat", 3), 0);
        assert_true(stream_parser_pending(&p));
        stream_parser_done(&p);
}

static const char ndjson_input[] =
        "{\"message\":{\"content\":\"Hel\"},\"done\":false}\n"
        "\n"
        "   \n"
        "  {\"message\":{\"content\":\"lo\"},\"done\":false}\r\n"
        "{\"done\":true,\"eval_count\":2}";

static const char ndjson_expected[] =
        "-|{\"message\":{\"content\":\"Hel\"},\"done\":false}\n"
        "-|{\"message\":{\"content\":\"lo\"},\"done\":false}\n"
        "-|{\"done\":true,\"eval_count\":2}\n";

static void test_ndjson_every_split(void **state) {
        size_t len = strlen(ndjson_input);

        (void) state;
        for (size_t i = 0; i <= len; i++) {
                struct seen s = {};
                size_t pieces[] = { i, 0 };
                assert_int_equal(parse_pieces(STREAM_NDJSON, ndjson_input, len, i ? pieces : NULL, &s, 0), 0);
                if (!streq(s.buf, ndjson_expected))
                        fail_msg("split at %zu gave:\n%s", i, s.buf);
        }
}

static void test_ndjson_limits(void **state) {
        struct seen s = {};
        char big[600];

        (void) state;
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(parse_pieces(STREAM_NDJSON, big, strlen(big), NULL, &s, 512), -EMSGSIZE);
        assert_int_equal(parse_pieces(STREAM_NDJSON, big, 500, NULL, &s, 512), 0); /* fits, ends at finish */
        assert_int_equal(s.n, 1);
        assert_int_equal(parse_pieces(STREAM_NDJSON, "{}\n{\0}\n", 7, NULL, &s, 512), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sse_whole),
                cmocka_unit_test(test_sse_every_split),
                cmocka_unit_test(test_sse_crlf_across_pieces),
                cmocka_unit_test(test_sse_limits),
                cmocka_unit_test(test_callback_stops),
                cmocka_unit_test(test_pending),
                cmocka_unit_test(test_ndjson_every_split),
                cmocka_unit_test(test_ndjson_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

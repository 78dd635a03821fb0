/* Unit tests for platform.c: bounded JSON parsing, field checks, and splitting long texts by
 * code points or UTF-16 units without cutting UTF-8 sequences. */
#include "pf_test.h"

#include "macro.h"
#include "platform.h"
#include "proto.h"

static void test_json_parse(void **state) {
        struct json_object *o;
        size_t n;
        char *b;

        (void) state;
        b = exact("{\"a\":1}  \n", &n);
        assert_int_equal(platform_json_parse(b, n, &o), 0);
        json_object_put(o);
        free(b);
        const char *bad[] = { "{\"a\":1} x", "{\"a\":", "", "[1,2", "{\"ok\":true,\"result\":[{\"update_id\":", "nul\0" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                b = exact(bad[i], &n);
                assert_int_equal(platform_json_parse(b, n, &o), -EBADMSG);
                assert_null(o);
                free(b);
        }
        assert_int_equal(platform_json_parse("{\"a\"\0:1}", 8, &o), -EBADMSG);
}

static void test_fields(void **state) {
        char *s;

        (void) state;
        assert_int_equal(platform_strdup_field("abc", 3, &s), 0);
        assert_string_equal(s, "abc");
        free(s);
        assert_int_equal(platform_strdup_field("abcd", 3, &s), -EBADMSG);
        assert_int_equal(platform_strdup_field("", 3, &s), -EBADMSG);
        assert_int_equal(platform_strdup_field("a\nb", 8, &s), -EBADMSG);
        assert_int_equal(platform_strdup_field(NULL, 8, &s), -EBADMSG);
}

static void check_chunks(const char *text, size_t limit, bool utf16, size_t want_n) {
        size_t *lens, len = strlen(text), sum = 0;
        int n = platform_chunk_text(text, len, limit, utf16, &lens);

        assert_int_equal(n, (int) want_n);
        for (int i = 0; i < n; i++) {
                assert_true(platform_text_units(text + sum, lens[i], utf16) <= limit);
                /* Never inside a UTF-8 sequence: a piece does not start with a continuation byte. */
                if (lens[i])
                        assert_true(((unsigned char) text[sum] & 0xC0) != 0x80);
                sum += lens[i];
        }
        assert_int_equal(sum, len);
        free(lens);
}

static void test_chunk(void **state) {
        size_t *lens;
        char big[10000];

        (void) state;
        check_chunks("", 10, false, 1);
        check_chunks("short", 10, false, 1);
        check_chunks("0123456789", 10, false, 1);
        check_chunks("01234567890", 10, false, 2);
        /* Breaks after the space in the second half. */
        assert_int_equal(platform_chunk_text("hello world again", 17, 12, false, &lens), 2);
        assert_int_equal(lens[0], 12); /* "hello world " */
        free(lens);
        assert_int_equal(platform_chunk_text("line one\nline two\n", 18, 12, false, &lens), 2);
        assert_int_equal(lens[0], 9); /* "line one\n" */
        free(lens);
        /* 4-byte characters: 1 code point, 2 UTF-16 units. */
        check_chunks("\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 2, false, 2);
        check_chunks("\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 2, true, 3);
        check_chunks("\xC3\xA9\xC3\xA9\xC3\xA9", 2, true, 2);
        /* Stray bytes count as one unit each and never hang the loop. */
        assert_int_equal(platform_chunk_text("\xFF\xFE\x80" "abc", 6, 2, false, &lens), 3);
        free(lens);
        /* Telegram's limit over a long text of mixed widths. */
        for (size_t i = 0; i + 4 < sizeof big; i += 4)
                memcpy(big + i, i % 40 == 0 ? "\xF0\x9F\x98\x80" : i % 12 == 0 ? "\xC3\xA9 \n" : "abcd", 4);
        big[sizeof big - 4] = 0;
        check_chunks(big, 4096, true, 3);
        assert_int_equal(platform_chunk_text("x", 1, 1, false, &lens), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_parse),
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_chunk),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for webhook_body.c: what a generic webhook's body must be, and what is refused
 * (not an object, trailing bytes, text or from missing or of the wrong type, from too long or
 * with a NUL in it), with bodies in exact-size buffers so ASan sees any overread. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "webhook_body.h"

/* Parses s from a heap copy without its NUL. */
static int parse(const char *s, struct webhook_message *m, const char **reason) {
        size_t len = strlen(s);
        char *copy = malloc(len ? len : 1);
        int r;

        assert_non_null(copy);
        memcpy(copy, s, len);
        r = webhook_message_parse(copy, len, m, reason);
        free(copy);
        return r;
}

static void test_valid(void **state) {
        struct webhook_message m;
        const char *reason = NULL;

        (void) state;
        assert_int_equal(parse("{\"text\":\"build green\",\"from\":\"ci-bot\",\"to\":[\"alice\"],\"attention\":true}", &m, &reason), 0);
        assert_string_equal(m.from, "ci-bot");
        assert_string_equal(json_object_get_string(m.text), "build green");
        assert_non_null(m.to);
        assert_true(json_object_is_type(m.to, json_type_array));
        assert_null(m.reply_required);
        assert_true(json_object_get_boolean(m.attention));
        assert_null(m.name);
        assert_null(m.reply_to);
        webhook_message_done(&m);
        assert_null(m.body);

        /* A display name and the message answered are taken when they are strings, else ignored. */
        assert_int_equal(parse("{\"text\":\"ok\",\"from\":\"u1\",\"name\":\"Ann\",\"reply_to\":\"01J\"}", &m, &reason), 0);
        assert_string_equal(json_object_get_string(m.name), "Ann");
        assert_string_equal(json_object_get_string(m.reply_to), "01J");
        webhook_message_done(&m);
        assert_int_equal(parse("{\"text\":\"ok\",\"from\":\"u1\",\"name\":7,\"reply_to\":[]}", &m, &reason), 0);
        assert_null(m.name);
        assert_null(m.reply_to);
        webhook_message_done(&m);

        /* 64 characters of from are fine, whitespace around the object too. */
        assert_int_equal(parse(" {\"from\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"text\":\"\"}\n", &m, &reason), 0);
        assert_int_equal(strlen(m.from), 64);
        webhook_message_done(&m);
}

static void test_refused(void **state) {
        static const char *const bad[] = {
                "",
                "not json",
                "[]",
                "\"text\"",
                "null",
                "{}",
                "{\"text\":\"x\"}",
                "{\"from\":\"a\"}",
                "{\"text\":1,\"from\":\"a\"}",
                "{\"text\":\"x\",\"from\":2}",
                "{\"text\":\"x\",\"from\":\"\"}",
                "{\"text\":\"x\",\"from\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                "{\"text\":\"x\",\"from\":\"ci-bot\\u0000evil\"}",
                "{\"text\":\"x\",\"from\":\"a\"} {}",
                "{\"text\":\"x\",\"from\":\"a\"}x",
                "{\"text\":\"x\",\"from\":\"a\"",
        };
        struct webhook_message m;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *reason = NULL;
                assert_int_equal(parse(bad[i], &m, &reason), -EBADMSG);
                assert_non_null(reason);
                assert_null(m.body);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

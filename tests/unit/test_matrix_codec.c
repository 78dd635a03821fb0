/* Unit tests for matrix_codec.c: /sync responses (own and non-text events skipped, malformed
 * events counted), rich replies, M_LIMIT_EXCEEDED, path escaping. */
#include "pf_test.h"

#include "macro.h"
#include "matrix_codec.h"
#include "proto.h"

static void test_sync(void **state) {
        struct platform_message *m;
        size_t n, bad, len;
        char *next, *b;

        (void) state;
        b = exact("{\"next_batch\":\"s72595_4483\",\"rooms\":{\"join\":{\"!room:localhost\":{\"timeline\":{\"events\":["
                  "{\"type\":\"m.room.message\",\"event_id\":\"$a:localhost\",\"sender\":\"@alice:localhost\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}},"
                  "{\"type\":\"m.room.message\",\"event_id\":\"$b:localhost\",\"sender\":\"@bot:localhost\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"me\"}},"
                  "{\"type\":\"m.room.message\",\"event_id\":\"$c:localhost\",\"sender\":\"@alice:localhost\",\"content\":{\"msgtype\":\"m.notice\",\"body\":\"n\"}},"
                  "{\"type\":\"m.room.member\",\"event_id\":\"$d:localhost\",\"sender\":\"@alice:localhost\",\"content\":{}},"
                  "{\"type\":\"m.room.message\",\"event_id\":\"$e:localhost\",\"sender\":\"@alice:localhost\",\"content\":{}},"
                  "{\"type\":\"m.room.message\",\"event_id\":\"nodollar\",\"sender\":\"@alice:localhost\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"x\"}},"
                  "{\"type\":\"m.room.message\",\"event_id\":\"$g:localhost\",\"sender\":\"@alice:localhost\",\"content\":{\"msgtype\":\"m.text\",\"body\":7}},"
                  "\"junk\","
                  "{\"type\":\"m.room.message\",\"event_id\":\"$h:localhost\",\"sender\":\"@carol:localhost\",\"content\":{\"msgtype\":\"m.emote\",\"body\":\"waves\","
                  "\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$a:localhost\"}}}}"
                  "]}}},\"leave\":{}}}", &len);
        assert_int_equal(matrix_parse_sync(b, len, "@bot:localhost", &next, &m, &n, &bad), 0);
        free(b);
        assert_string_equal(next, "s72595_4483");
        free(next);
        assert_int_equal(n, 2);
        assert_int_equal(bad, 3);
        assert_string_equal(m[0].id, "$a:localhost");
        assert_string_equal(m[0].sender, "@alice:localhost");
        assert_string_equal(m[0].conversation, "!room:localhost");
        assert_string_equal(m[0].text, "hi");
        assert_string_equal(m[1].text, "waves");
        assert_string_equal(m[1].reply_to, "$a:localhost");
        assert_null(m[0].reply_to);
        platform_messages_free(m, n);

        b = exact("{\"next_batch\":\"s1\"}", &len);
        assert_int_equal(matrix_parse_sync(b, len, NULL, &next, &m, &n, &bad), 0);
        assert_int_equal(n, 0);
        free(next);
        free(b);
        const char *badv[] = { "{\"rooms\":{}}", "{\"next_batch\":5}", "{\"next_batch\":\"s", "[]" };
        for (size_t i = 0; i < ELEMENTSOF(badv); i++) {
                b = exact(badv[i], &len);
                assert_int_equal(matrix_parse_sync(b, len, NULL, &next, &m, &n, &bad), -EBADMSG);
                free(b);
        }
}

static void test_message_and_errors(void **state) {
        struct platform_error err;
        size_t len;
        char *s, *b, *id;

        (void) state;
        s = matrix_build_message("hi", 2, "$a:localhost");
        assert_string_equal(s, "{\"msgtype\":\"m.text\",\"body\":\"hi\",\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$a:localhost\"}}}");
        free(s);
        s = matrix_build_message("hi", 2, NULL);
        assert_string_equal(s, "{\"msgtype\":\"m.text\",\"body\":\"hi\"}");
        free(s);
        b = exact("{\"errcode\":\"M_LIMIT_EXCEEDED\",\"error\":\"Too many requests\",\"retry_after_ms\":2000}", &len);
        matrix_parse_error(429, b, len, 0, &err);
        assert_string_equal(err.code, "M_LIMIT_EXCEEDED");
        assert_int_equal(err.retry_after_usec, 2 * USEC_PER_SEC);
        assert_true(err.retryable);
        free(b);
        b = exact("{\"errcode\":\"M_UNKNOWN_TOKEN\",\"error\":\"Invalid access token passed.\"}", &len);
        matrix_parse_error(401, b, len, 0, &err);
        assert_string_equal(err.code, "M_UNKNOWN_TOKEN");
        assert_false(err.retryable);
        free(b);
        b = exact("<html>", &len);
        matrix_parse_error(502, b, len, 3, &err);
        assert_true(err.retryable);
        assert_int_equal(err.retry_after_usec, 3);
        free(b);
        b = exact("{\"event_id\":\"$x:y\"}", &len);
        assert_int_equal(matrix_parse_event_id(b, len, &id), 0);
        assert_string_equal(id, "$x:y");
        free(id);
        free(b);
        b = exact("{\"user_id\":\"@bot:localhost\"}", &len);
        assert_int_equal(matrix_parse_whoami(b, len, &id), 0);
        assert_string_equal(id, "@bot:localhost");
        free(id);
        free(b);
        s = matrix_path_escape("!room:local host/x");
        assert_string_equal(s, "%21room%3Alocal%20host%2Fx");
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sync),
                cmocka_unit_test(test_message_and_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

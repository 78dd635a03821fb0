/* Unit tests for slack_codec.c: Events API bodies (url_verification, messages, thread
 * replies, bot and edited messages, malformed ids), Web API answers, chat.postMessage. */
#include "pf_test.h"

#include "macro.h"
#include "proto.h"
#include "slack_codec.h"

static int event(const char *s, struct platform_message *m, char **challenge) {
        size_t n;
        char *b = exact(s, &n);
        int r = slack_parse_event(b, n, "U0BOT", m, challenge);
        free(b);
        return r;
}

#define CB(ev) "{\"type\":\"event_callback\",\"event_id\":\"Ev1\",\"event\":" ev "}"

static void test_events(void **state) {
        struct platform_message m = {};
        char *c = NULL;

        (void) state;
        assert_int_equal(event("{\"token\":\"x\",\"challenge\":\"3eZbrw1aB\",\"type\":\"url_verification\"}", &m, &c),
                         SLACK_URL_VERIFICATION);
        assert_string_equal(c, "3eZbrw1aB");
        free(c);
        assert_int_equal(event(CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U0ALICE\",\"text\":\"hi\","
                                  "\"ts\":\"1355517523.000005\"}"), &m, &c), SLACK_MESSAGE);
        assert_string_equal(m.id, "C01:1355517523.000005");
        assert_string_equal(m.sender, "U0ALICE");
        assert_string_equal(m.conversation, "C01");
        assert_string_equal(m.thread, "1355517523.000005");
        assert_string_equal(m.text, "hi");
        platform_message_done(&m);
        assert_int_equal(event(CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U0ALICE\",\"text\":\"in thread\","
                                  "\"ts\":\"2.000001\",\"thread_ts\":\"1.000001\"}"), &m, &c), SLACK_MESSAGE);
        assert_string_equal(m.thread, "1.000001");
        platform_message_done(&m);

        /* Not for us: bots, ourselves, edits, other events, other types. */
        assert_int_equal(event(CB("{\"type\":\"message\",\"subtype\":\"bot_message\",\"bot_id\":\"B1\",\"channel\":\"C01\","
                                  "\"text\":\"x\",\"ts\":\"1.1\"}"), &m, &c), SLACK_IGNORED);
        assert_int_equal(event(CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U0BOT\",\"text\":\"me\",\"ts\":\"1.1\"}"), &m, &c),
                         SLACK_IGNORED);
        assert_int_equal(event(CB("{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":\"C01\",\"ts\":\"1.1\"}"), &m, &c),
                         SLACK_IGNORED);
        assert_int_equal(event(CB("{\"type\":\"reaction_added\",\"user\":\"U1\"}"), &m, &c), SLACK_IGNORED);
        assert_int_equal(event("{\"type\":\"app_rate_limited\"}", &m, &c), SLACK_IGNORED);

        /* Malformed. */
        const char *bad[] = {
                CB("{\"type\":\"message\",\"channel\":\"c01\",\"user\":\"U1\",\"text\":\"x\",\"ts\":\"1.1\"}"),
                CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U1\",\"text\":\"x\",\"ts\":\"1\"}"),
                CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U1\",\"ts\":\"1.1\"}"),
                CB("{\"type\":\"message\",\"channel\":\"C01\",\"user\":\"U1\",\"text\":\"x\",\"ts\":\"1.1\",\"thread_ts\":\"a.b\"}"),
                "{\"type\":\"event_callback\"}",
                "{\"type\":\"url_verification\"}",
                "{\"type\":\"event_callback\",\"event\":{\"type\":\"message\",",
                "{}",
                "[1]",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(event(bad[i], &m, &c), -EBADMSG);
}

static void test_responses(void **state) {
        struct json_object *o;
        struct platform_error err;
        size_t n;
        char *b;

        (void) state;
        b = exact("{\"ok\":true,\"channel\":\"C1\",\"ts\":\"5.5\"}", &n);
        assert_int_equal(slack_parse_response(200, b, n, 0, &o, &err), 0);
        assert_string_equal(platform_json_string(o, "ts"), "5.5");
        json_object_put(o);
        free(b);
        b = exact("{\"ok\":false,\"error\":\"invalid_auth\"}", &n);
        assert_int_equal(slack_parse_response(200, b, n, 0, &o, &err), -EREMOTEIO);
        assert_string_equal(err.code, "invalid_auth");
        assert_false(err.retryable);
        free(b);
        b = exact("{\"ok\":false,\"error\":\"ratelimited\"}", &n);
        assert_int_equal(slack_parse_response(429, b, n, 30 * USEC_PER_SEC, &o, &err), -EREMOTEIO);
        assert_true(err.retryable);
        assert_int_equal(err.retry_after_usec, 30 * USEC_PER_SEC);
        free(b);
        b = exact("<html>502</html>", &n);
        assert_int_equal(slack_parse_response(502, b, n, 0, &o, &err), -EBADMSG);
        assert_true(err.retryable);
        free(b);
}

static void test_post(void **state) {
        char *s;

        (void) state;
        s = slack_build_post("C1", "a/b \"q\"", 7, "1.2");
        assert_string_equal(s, "{\"channel\":\"C1\",\"text\":\"a/b \\\"q\\\"\",\"thread_ts\":\"1.2\",\"unfurl_links\":false,"
                               "\"unfurl_media\":false}");
        free(s);
        s = slack_build_post("C1", "x", 1, NULL);
        assert_null(strstr(s, "thread_ts"));
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_events),
                cmocka_unit_test(test_responses),
                cmocka_unit_test(test_post),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

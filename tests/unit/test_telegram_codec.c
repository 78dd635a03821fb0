/* Unit tests for telegram_codec.c: the Bot API envelope and its errors (429 retry_after),
 * getUpdates results with the offset, skipped and malformed updates, sendMessage bodies. */
#include "pf_test.h"

#include "macro.h"
#include "proto.h"
#include "telegram_codec.h"

static int parse(long status, const char *s, struct json_object **res, struct platform_error *err) {
        size_t n;
        char *b = exact(s, &n);
        int r = telegram_parse_response(status, b, n, res, err);
        free(b);
        return r;
}

static void test_envelope(void **state) {
        struct json_object *res;
        struct platform_error err;
        char *name;

        (void) state;
        assert_int_equal(parse(200, "{\"ok\":true,\"result\":{\"id\":1,\"is_bot\":true,\"username\":\"bot\"}}", &res, &err), 0);
        assert_int_equal(telegram_parse_me(res, &name), 0);
        assert_string_equal(name, "bot");
        free(name);
        json_object_put(res);

        assert_int_equal(parse(429, "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry after 3\","
                                    "\"parameters\":{\"retry_after\":3}}", &res, &err), -EREMOTEIO);
        assert_null(res);
        assert_string_equal(err.code, "429");
        assert_int_equal(err.retry_after_usec, 3 * USEC_PER_SEC);
        assert_true(err.retryable);

        assert_int_equal(parse(401, "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}", &res, &err), -EREMOTEIO);
        assert_string_equal(err.description, "Unauthorized");
        assert_false(err.retryable);

        const char *bad[] = { "{\"ok\":true,\"result\":[{\"update_id\":", "[]", "{\"ok\":\"yes\"}", "{\"ok\":true}", "<html>" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse(200, bad[i], &res, &err), -EBADMSG);
}

static void test_updates(void **state) {
        struct json_object *res;
        struct platform_error err;
        struct platform_message *m;
        size_t n, bad;
        int64_t offset = 7;

        (void) state;
        assert_int_equal(parse(200, "{\"ok\":true,\"result\":["
                "{\"update_id\":100,\"message\":{\"message_id\":5,\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"A\",\"username\":\"alice\"},"
                        "\"chat\":{\"id\":42,\"type\":\"private\"},\"date\":1,\"text\":\"hello\"}},"
                "{\"update_id\":101,\"edited_message\":{\"message_id\":5}},"
                "{\"update_id\":102,\"message\":{\"message_id\":6,\"from\":{\"id\":9,\"is_bot\":true},\"chat\":{\"id\":-100},\"text\":\"bot\"}},"
                "{\"update_id\":103,\"message\":{\"message_id\":\"x\",\"chat\":{\"id\":1}}},"
                "{\"update_id\":104,\"message\":{\"message_id\":7,\"from\":{\"id\":43},\"chat\":{\"id\":-1001},\"photo\":[]}},"
                "{\"no_update_id\":1},"
                "{\"update_id\":105,\"message\":{\"message_id\":8,\"from\":{\"id\":44,\"first_name\":\"B\\nx\"},\"chat\":{\"id\":-1001},\"text\":\"group hi\","
                        "\"reply_to_message\":{\"message_id\":3}}}"
                "]}", &res, &err), 0);
        assert_int_equal(telegram_parse_updates(res, &offset, &m, &n, &bad), 0);
        json_object_put(res);
        assert_int_equal(offset, 106);
        assert_int_equal(n, 2);
        assert_int_equal(bad, 2);
        assert_string_equal(m[0].id, "42:5");
        assert_string_equal(m[0].sender, "42");
        assert_string_equal(m[0].sender_name, "alice");
        assert_string_equal(m[0].conversation, "42");
        assert_string_equal(m[0].thread, "5");
        assert_string_equal(m[0].text, "hello");
        assert_string_equal(m[1].id, "-1001:8");
        assert_null(m[1].sender_name); /* a name with a newline is dropped, not the message */
        assert_null(m[0].reply_to);
        assert_string_equal(m[1].reply_to, "-1001:3");
        platform_messages_free(m, n);

        /* An empty batch leaves the offset alone. */
        res = json_object_new_array();
        assert_int_equal(telegram_parse_updates(res, &offset, &m, &n, &bad), 0);
        assert_int_equal(offset, 106);
        assert_int_equal(n, 0);
        json_object_put(res);
        res = json_object_new_object();
        assert_int_equal(telegram_parse_updates(res, &offset, &m, &n, &bad), -EBADMSG);
        json_object_put(res);
}

static void test_send(void **state) {
        char *s, q[128], *mid;
        struct json_object *res;
        struct platform_error err;

        (void) state;
        s = telegram_build_send("42", "hi \"there\"", 10, "5");
        assert_string_equal(s, "{\"chat_id\":42,\"text\":\"hi \\\"there\\\"\",\"reply_parameters\":"
                               "{\"message_id\":5,\"allow_sending_without_reply\":true}}");
        free(s);
        s = telegram_build_send("@channel", "x", 1, NULL);
        assert_string_equal(s, "{\"chat_id\":\"@channel\",\"text\":\"x\"}");
        free(s);
        assert_null(telegram_build_send("42x", "x", 1, NULL));
        assert_null(telegram_build_send("42", "x", 1, "5; drop"));
        assert_int_equal(telegram_updates_query(106, 30, q, sizeof q), 0);
        assert_string_equal(q, "offset=106&timeout=30&limit=100&allowed_updates=%5B%22message%22%5D");
        assert_int_equal(telegram_updates_query(106, 30, q, 10), -ENOBUFS);
        assert_int_equal(parse(200, "{\"ok\":true,\"result\":{\"message_id\":77,\"chat\":{\"id\":42}}}", &res, &err), 0);
        assert_int_equal(telegram_parse_sent(res, &mid), 0);
        assert_string_equal(mid, "77");
        free(mid);
        json_object_put(res);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_envelope),
                cmocka_unit_test(test_updates),
                cmocka_unit_test(test_send),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

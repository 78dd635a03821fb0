/* Unit tests for discord_codec.c: Gateway payloads (HELLO, READY, MESSAGE_CREATE, malformed),
 * the frames we send, REST message bodies with nonce and reply, 429 bodies. */
#include "pf_test.h"

#include "discord_codec.h"
#include "macro.h"
#include "proto.h"

static int frame(const char *s, struct json_object **o, struct discord_frame *f) {
        size_t n;
        char *b = exact(s, &n);
        int r = discord_parse_frame(b, n, o, f);
        free(b);
        return r;
}

static void test_gateway(void **state) {
        struct json_object *o;
        struct discord_frame f;
        struct platform_message m = {};
        uint64_t interval;
        char *sid, *url, *uid;

        (void) state;
        assert_int_equal(frame("{\"op\":10,\"d\":{\"heartbeat_interval\":41250},\"s\":null,\"t\":null}", &o, &f), 0);
        assert_int_equal(f.op, DISCORD_OP_HELLO);
        assert_int_equal(f.seq, -1);
        assert_int_equal(discord_parse_hello(&f, &interval), 0);
        assert_int_equal(interval, 41250 * USEC_PER_MSEC);
        json_object_put(o);

        assert_int_equal(frame("{\"op\":0,\"t\":\"READY\",\"s\":1,\"d\":{\"v\":10,\"user\":{\"id\":\"7001\",\"bot\":true},"
                               "\"session_id\":\"abc\",\"resume_gateway_url\":\"wss://gateway-us-east1-b.discord.gg\"}}", &o, &f), 0);
        assert_int_equal(f.seq, 1);
        assert_int_equal(discord_parse_ready(&f, &sid, &url, &uid), 0);
        assert_string_equal(sid, "abc");
        assert_string_equal(url, "wss://gateway-us-east1-b.discord.gg");
        assert_string_equal(uid, "7001");
        free(sid), free(url), free(uid);
        json_object_put(o);

        assert_int_equal(frame("{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":5,\"d\":{\"id\":\"800\",\"channel_id\":\"900\","
                               "\"author\":{\"id\":\"4242\",\"username\":\"alice\"},\"content\":\"hi\","
                               "\"message_reference\":{\"message_id\":\"777\"}}}", &o, &f), 0);
        assert_int_equal(discord_parse_message(&f, "7001", &m), 1);
        assert_string_equal(m.id, "800");
        assert_string_equal(m.sender, "4242");
        assert_string_equal(m.sender_name, "alice");
        assert_string_equal(m.conversation, "900");
        assert_string_equal(m.thread, "800");
        assert_string_equal(m.reply_to, "777");
        platform_message_done(&m);
        assert_int_equal(discord_parse_message(&f, "4242", &m), 0); /* ourselves */
        json_object_put(o);
        /* Without the MESSAGE_CONTENT intent the content is empty: nothing to pass on. */
        assert_int_equal(frame("{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":6,\"d\":{\"id\":\"801\",\"channel_id\":\"900\","
                               "\"author\":{\"id\":\"4242\"},\"content\":\"\"}}", &o, &f), 0);
        assert_int_equal(discord_parse_message(&f, NULL, &m), 0);
        json_object_put(o);
        assert_int_equal(frame("{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":7,\"d\":{\"id\":\"8x\",\"channel_id\":\"900\","
                               "\"author\":{\"id\":\"4242\"},\"content\":\"x\"}}", &o, &f), 0);
        assert_int_equal(discord_parse_message(&f, NULL, &m), -EBADMSG);
        json_object_put(o);

        const char *bad[] = { "{\"op\":0,\"d\":{}}", "{\"op\":\"0\"}", "{\"d\":1}", "{\"op\":10,", "[]", "{\"op\":0,\"t\":\"X\"}" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(frame(bad[i], &o, &f), -EBADMSG);
        assert_int_equal(frame("{\"op\":10,\"d\":{\"heartbeat_interval\":\"x\"}}", &o, &f), 0);
        assert_int_equal(discord_parse_hello(&f, &interval), -EBADMSG);
        json_object_put(o);
}

static void test_build(void **state) {
        char *s;

        (void) state;
        s = discord_build_identify("T", DISCORD_INTENTS);
        assert_string_equal(s, "{\"op\":2,\"d\":{\"token\":\"T\",\"intents\":37376,\"properties\":{\"os\":\"linux\","
                               "\"browser\":\"conclave\",\"device\":\"conclave\"}}}");
        free(s);
        s = discord_build_heartbeat(-1);
        assert_string_equal(s, "{\"op\":1,\"d\":null}");
        free(s);
        s = discord_build_heartbeat(42);
        assert_string_equal(s, "{\"op\":1,\"d\":42}");
        free(s);
        s = discord_build_resume("T", "sess", 9);
        assert_string_equal(s, "{\"op\":6,\"d\":{\"token\":\"T\",\"session_id\":\"sess\",\"seq\":9}}");
        free(s);
        s = discord_build_message("hi", 2, "800", "n1");
        assert_string_equal(s, "{\"content\":\"hi\",\"allowed_mentions\":{\"parse\":[]},\"message_reference\":"
                               "{\"message_id\":\"800\",\"fail_if_not_exists\":false},\"nonce\":\"n1\",\"enforce_nonce\":true}");
        free(s);
        assert_null(discord_build_message("hi", 2, "80x", NULL));
        assert_null(discord_build_message("hi", 2, NULL, "01234567890123456789012345"));
}

static void test_errors(void **state) {
        struct platform_error err;
        size_t n;
        char *b, *id;

        (void) state;
        b = exact("{\"message\":\"You are being rate limited.\",\"retry_after\":1.5,\"global\":false}", &n);
        discord_parse_error(429, b, n, 2 * USEC_PER_SEC, &err);
        assert_int_equal(err.retry_after_usec, 1500000);
        assert_true(err.retryable);
        free(b);
        b = exact("{\"message\":\"401: Unauthorized\",\"code\":0}", &n);
        discord_parse_error(401, b, n, 0, &err);
        assert_string_equal(err.description, "401: Unauthorized");
        assert_false(err.retryable);
        free(b);
        b = exact("{\"message\":\"x\",\"retry_after\":-5}", &n);
        discord_parse_error(429, b, n, 0, &err);
        assert_int_equal(err.retry_after_usec, 0);
        free(b);
        b = exact("{\"id\":\"12345\",\"content\":\"x\"}", &n);
        assert_int_equal(discord_parse_message_id(b, n, &id), 0);
        assert_string_equal(id, "12345");
        free(id);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gateway),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for llm_context.c (the conversation shown to the model) and llm_settings.c (an llm
 * actor's settings). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "llm_context.h"
#include "llm_settings.h"
#include "macro.h"
#include "proto.h"

/* "role:content|role:content|…" */
static void render(struct json_object *list, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = 0;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *m = json_object_array_get_idx(list, i);
                len += (size_t) snprintf(buf + len, size - len, "%s%s:%s", i ? "|" : "",
                                         json_object_get_string(json_object_object_get(m, "role")),
                                         json_object_get_string(json_object_object_get(m, "content")));
        }
}

/* Newest first, as the ledger is read. */
static const struct llm_context_item history[] = {
        { "bot", "four" },            /* the bot's last answer */
        { "alice", "two plus two?" },
        { "bob", "hi bot" },
        { "bot", "an old answer" },   /* the oldest: would lead, so dropped */
};
static const struct llm_context_item current = { "alice", "times three?" };

static void test_roles_and_order(void **state) {
        _cleanup_json_ struct json_object *list = NULL;
        char buf[1024];
        size_t used;

        (void) state;
        assert_int_equal(llm_context_build("bot", history, 4, &current, 20, 10000, &list, &used), 0);
        assert_int_equal(used, 4);
        render(list, buf, sizeof buf);
        /* Others' messages carry their names; consecutive user turns are joined; the conversation
         * begins with the user and ends with the question. */
        assert_string_equal(buf, "user:bob: hi bot\n\nalice: two plus two?|assistant:four|user:alice: times three?");
}

static void test_budgets(void **state) {
        _cleanup_json_ struct json_object *a = NULL, *b = NULL, *c = NULL;
        char buf[1024];
        size_t used;

        (void) state;
        /* At most one earlier message: the newest. */
        assert_int_equal(llm_context_build("bot", history, 4, &current, 1, 10000, &a, &used), 0);
        assert_int_equal(used, 1);
        render(a, buf, sizeof buf);
        assert_string_equal(buf, "user:alice: times three?"); /* the lone assistant turn cannot lead */

        /* A character budget: "alice: times three?" (19) + "four" (4) + "alice: two plus two?" (20). */
        assert_int_equal(llm_context_build("bot", history, 4, &current, 20, 43, &b, &used), 0);
        assert_int_equal(used, 2);
        render(b, buf, sizeof buf);
        assert_string_equal(buf, "user:alice: two plus two?|assistant:four|user:alice: times three?");

        /* The question goes in even when it alone is over the budget. */
        assert_int_equal(llm_context_build("bot", history, 4, &current, 20, 5, &c, &used), 0);
        assert_int_equal(used, 0);
        render(c, buf, sizeof buf);
        assert_string_equal(buf, "user:alice: times three?");
}

static void test_default_prompt(void **state) {
        _cleanup_free_ char *p = llm_default_system_prompt("bot", "Helper", "g1", "Release"), *q = NULL;

        (void) state;
        assert_non_null(strstr(p, "You are bot (Helper), a participant in the group \"g1\" (Release)"));
        q = llm_default_system_prompt("bot", "", "g1", NULL);
        assert_non_null(strstr(q, "You are bot, a participant in the group \"g1\", a conversation"));
}

static void test_settings(void **state) {
        struct llm_settings s;
        char err[256];
        _cleanup_json_ struct json_object *o = NULL, *back = NULL;

        (void) state;
        assert_int_equal(llm_settings_from_json(NULL, &s, err, sizeof err), 0);
        assert_int_equal(s.context_messages, LLM_CONTEXT_MESSAGES_DEFAULT);
        assert_int_equal(s.concurrency, 1);
        assert_null(s.provider);
        back = llm_settings_to_json(&s);
        assert_string_equal(json_object_to_json_string_ext(back, JSON_C_TO_STRING_PLAIN), "{}");
        json_object_put(back);
        llm_settings_done(&s);

        o = json_tokener_parse("{\"provider\":\"oa\",\"model\":\"gpt-4o\",\"system_prompt\":\"line 1\\nline 2\","
                               "\"context_messages\":0,\"context_chars\":500,\"concurrency\":16,\"daily_tokens\":100000,"
                               "\"max_tokens\":0}");
        assert_int_equal(llm_settings_from_json(o, &s, err, sizeof err), 0);
        assert_string_equal(s.provider, "oa");
        assert_int_equal(s.context_messages, 0);
        assert_int_equal(s.concurrency, 16);
        assert_int_equal(s.daily_tokens, 100000);
        back = llm_settings_to_json(&s);
        assert_string_equal(json_object_to_json_string_ext(back, JSON_C_TO_STRING_PLAIN),
                            "{\"provider\":\"oa\",\"model\":\"gpt-4o\",\"system_prompt\":\"line 1\\nline 2\",\"context_messages\":0,"
                            "\"context_chars\":500,\"concurrency\":16,\"daily_tokens\":100000}");
        llm_settings_done(&s);

        static const char *const bad[] = {
                "{\"provider\":\"a b\"}",       "{\"provider\":\"\"}",           "{\"model\":\"x\\ny\"}",
                "{\"concurrency\":0}",          "{\"concurrency\":17}",          "{\"context_chars\":10}",
                "{\"context_messages\":201}",   "{\"daily_tokens\":-1}",         "{\"daily_tokens\":\"5\"}",
                "{\"temperature\":1}",          "[1]",                          "{\"system_prompt\":\"a\\u0001\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ struct json_object *b = json_tokener_parse(bad[i]);
                assert_non_null(b);
                err[0] = 0;
                if (llm_settings_from_json(b, &s, err, sizeof err) != -EINVAL)
                        fail_msg("accepted %s", bad[i]);
                assert_true(err[0] != 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roles_and_order),
                cmocka_unit_test(test_budgets),
                cmocka_unit_test(test_default_prompt),
                cmocka_unit_test(test_settings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

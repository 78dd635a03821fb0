/* Unit tests for channel_policy.c: allowed_users, the actor ids of platform users, and how chat
 * users address an actor in the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "channel_policy.h"

static void test_allowed(void **state) {
        char alice[] = "alice", u123[] = "U123", any[] = "*", name[] = "irc";
        char *users[] = { alice, u123 };
        char *star[] = { any };
        struct config_channel ch = { .name = name, .allowed_users = users, .n_allowed_users = 2 };
        struct config_channel all = { .name = name, .allowed_users = star, .n_allowed_users = 1 };
        struct config_channel none = { .name = name };

        (void) state;
        assert_true(channel_policy_allowed(&ch, "alice"));
        assert_true(channel_policy_allowed(&ch, "Alice"));
        assert_true(channel_policy_allowed(&ch, "u123"));
        assert_false(channel_policy_allowed(&ch, "mallory"));
        assert_false(channel_policy_allowed(&ch, "alice2"));
        assert_false(channel_policy_allowed(&ch, ""));
        assert_true(channel_policy_allowed(&all, "anyone"));
        assert_false(channel_policy_allowed(&none, "alice")); /* deny by default */
        assert_false(channel_policy_allowed(NULL, "alice"));
}

static void test_actor_id(void **state) {
        char id[CHANNEL_ACTOR_ID_MAX + 1], other[CHANNEL_ACTOR_ID_MAX + 1];
        char long_user[200];

        (void) state;
        channel_policy_actor_id("irc", "alice", 0, id, sizeof id);
        assert_string_equal(id, "irc-alice");
        /* Anything changed: a hash of the exact user id keeps them apart. */
        channel_policy_actor_id("irc", "Alice", 0, id, sizeof id);
        assert_int_equal(strncmp(id, "irc-alice-", 10), 0);
        assert_int_equal(strlen(id), 18);
        channel_policy_actor_id("mx", "@bob:example.org", 0, id, sizeof id);
        assert_int_equal(strncmp(id, "mx-_bob_example_org-", 20), 0);
        channel_policy_actor_id("mx", "@bob:example_org", 0, other, sizeof other);
        assert_string_not_equal(id, other);
        /* Another salt, another candidate. */
        channel_policy_actor_id("irc", "alice", 1, other, sizeof other);
        assert_string_not_equal(other, "irc-alice");
        /* Long ids are cut to 64 with the hash kept. */
        memset(long_user, 'u', sizeof long_user - 1);
        long_user[sizeof long_user - 1] = 0;
        channel_policy_actor_id("email", long_user, 0, id, sizeof id);
        assert_int_equal(strlen(id), CHANNEL_ACTOR_ID_MAX);
        for (const char *p = id; *p; p++)
                assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_');
}

static void test_addresses(void **state) {
        (void) state;
        /* The ways chat users address someone at the start of a message. */
        assert_true(channel_policy_addresses("gpt: what is two plus two?", "gpt"));
        assert_true(channel_policy_addresses("gpt, what is two plus two?", "gpt"));
        assert_true(channel_policy_addresses("@gpt what is two plus two?", "gpt"));
        assert_true(channel_policy_addresses("@gpt: hi", "gpt"));
        assert_true(channel_policy_addresses("@gpt", "gpt"));
        assert_true(channel_policy_addresses("gpt:", "gpt"));
        assert_true(channel_policy_addresses("  gpt: leading blanks", "gpt"));
        assert_true(channel_policy_addresses("\t@gpt tab", "gpt"));
        /* Case-insensitive, both ways. */
        assert_true(channel_policy_addresses("GPT: hi", "gpt"));
        assert_true(channel_policy_addresses("@Gpt hi", "gpt"));
        assert_true(channel_policy_addresses("gpt: hi", "GPT"));
        assert_true(channel_policy_addresses("review-bot_2: go", "review-bot_2"));
        /* Only the whole id: not a longer one, not a prefix. */
        assert_false(channel_policy_addresses("gpt-4: hi", "gpt"));
        assert_false(channel_policy_addresses("gpt_bot, hi", "gpt"));
        assert_false(channel_policy_addresses("@gpt4 hi", "gpt"));
        assert_false(channel_policy_addresses("gp: hi", "gpt"));
        assert_false(channel_policy_addresses("@gp hi", "gpt"));
        /* No separator, or the name is not first: not addressed. */
        assert_false(channel_policy_addresses("gpt what is it", "gpt"));
        assert_false(channel_policy_addresses("gpt : hi", "gpt"));
        assert_false(channel_policy_addresses("gpt", "gpt"));
        assert_false(channel_policy_addresses("ask gpt: later", "gpt"));
        assert_false(channel_policy_addresses("what does @gpt think?", "gpt"));
        assert_false(channel_policy_addresses("x@gpt hi", "gpt"));
        assert_false(channel_policy_addresses("", "gpt"));
        assert_false(channel_policy_addresses(NULL, "gpt"));
        assert_false(channel_policy_addresses("gpt: hi", ""));
        assert_false(channel_policy_addresses(": hi", ""));
        assert_false(channel_policy_addresses("@ hi", ""));
        assert_false(channel_policy_addresses("gpt: hi", NULL));
}

static void test_mentions(void **state) {
        (void) state;
        /* Everything that addresses, and "@id" anywhere. */
        assert_true(channel_policy_mentions("gpt: hi", "gpt"));
        assert_true(channel_policy_mentions("gpt, hi", "gpt"));
        assert_true(channel_policy_mentions("@gpt hi", "gpt"));
        assert_true(channel_policy_mentions("what does @gpt think?", "gpt"));
        assert_true(channel_policy_mentions("cc @GPT", "gpt"));
        assert_true(channel_policy_mentions("(@gpt)", "gpt"));
        assert_true(channel_policy_mentions("x@y and @gpt, too", "gpt"));
        /* Not an e-mail address, not a longer id, not a bare name later on. */
        assert_false(channel_policy_mentions("mail me at me@gpt.example", "gpt"));
        assert_false(channel_policy_mentions("ask @gpt-4 instead", "gpt"));
        assert_false(channel_policy_mentions("ask gpt: later", "gpt"));
        assert_false(channel_policy_mentions("just chatting, nobody in particular", "gpt"));
        assert_false(channel_policy_mentions("@", "gpt"));
        assert_false(channel_policy_mentions("text @", ""));
        assert_false(channel_policy_mentions(NULL, "gpt"));
}

int main(void) {
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_allowed), cmocka_unit_test(test_actor_id),
                                            cmocka_unit_test(test_addresses), cmocka_unit_test(test_mentions) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for channel_policy.c: allowed_users and the actor ids of platform users. */
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

int main(void) {
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_allowed), cmocka_unit_test(test_actor_id) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for dedupe.c: lookups, updates, eviction of the oldest, bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dedupe.h"

static void test_find_and_evict(void **state) {
        struct dedupe *d = NULL;
        const char *id;
        uint64_t seq;
        char key[32], ev[32];

        (void) state;
        assert_int_equal(dedupe_new(100, &d), 0);
        for (unsigned i = 0; i < 250; i++) {
                snprintf(key, sizeof key, "tg:%u", i);
                snprintf(ev, sizeof ev, "EV%u", i);
                assert_int_equal(dedupe_add(d, key, ev, i + 1), 0);
        }
        assert_int_equal(dedupe_size(d), 100);
        /* The oldest 150 are gone, the last 100 are there with their events. */
        assert_int_equal(dedupe_find(d, "tg:0", NULL, NULL), 0);
        assert_int_equal(dedupe_find(d, "tg:149", NULL, NULL), 0);
        for (unsigned i = 150; i < 250; i++) {
                snprintf(key, sizeof key, "tg:%u", i);
                snprintf(ev, sizeof ev, "EV%u", i);
                assert_int_equal(dedupe_find(d, key, &id, &seq), 1);
                assert_string_equal(id, ev);
                assert_int_equal(seq, i + 1);
        }
        /* Re-adding a present key updates it without evicting anything. */
        assert_int_equal(dedupe_add(d, "tg:200", "NEW", 999), 0);
        assert_int_equal(dedupe_size(d), 100);
        assert_int_equal(dedupe_find(d, "tg:150", NULL, NULL), 1);
        assert_int_equal(dedupe_find(d, "tg:200", &id, &seq), 1);
        assert_string_equal(id, "NEW");
        dedupe_free(d);
}

static void test_bounds(void **state) {
        struct dedupe *d = NULL;
        char big[DEDUPE_KEY_MAX + 2];

        (void) state;
        assert_int_equal(dedupe_new(0, &d), -EINVAL);
        assert_int_equal(dedupe_new(1, &d), 0);
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(dedupe_add(d, big, "E", 1), -EINVAL);
        assert_int_equal(dedupe_add(d, "", "E", 1), -EINVAL);
        assert_int_equal(dedupe_add(d, "a", "E", 1), 0);
        assert_int_equal(dedupe_add(d, "b", "F", 2), 0);
        assert_int_equal(dedupe_find(d, "a", NULL, NULL), 0);
        assert_int_equal(dedupe_find(d, "b", NULL, NULL), 1);
        assert_int_equal(dedupe_find(NULL, "b", NULL, NULL), 0);
        dedupe_free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find_and_evict),
                cmocka_unit_test(test_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for backoff.c: exponential restart delays and the burst limit. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "macro.h"

#define MSEC(x) ((uint64_t) (x) * USEC_PER_MSEC)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

static void test_delay_doubles_and_caps(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = MSEC(100),
                .delay_max_usec = SEC(3),
                .burst = 20,
                .interval_usec = SEC(600),
        };
        static const uint64_t expected[] = {
                MSEC(100), MSEC(200), MSEC(400), MSEC(800), MSEC(1600), SEC(3), SEC(3), SEC(3),
        };
        struct restart_history h = {};

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                uint64_t d = restart_delay(&h, &p);
                if (d != expected[i])
                        fail_msg("after %zu restarts: delay %" PRIu64 " µs, expected %" PRIu64, i, d,
                                 expected[i]);
                assert_true(restart_history_admit(&h, &p, SEC(i)));
        }
}

static void test_delay_depends_on_window_only(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = SEC(1),
                .delay_max_usec = SEC(60),
                .burst = 5,
                .interval_usec = SEC(10),
        };
        struct restart_history h = {};

        (void) state;
        assert_true(restart_history_admit(&h, &p, SEC(0)));
        assert_true(restart_history_admit(&h, &p, SEC(1)));
        assert_true(restart_delay(&h, &p) == SEC(4));
        /* Once the old restarts leave the window the delay falls back to the minimum. */
        restart_history_prune(&h, &p, SEC(11));
        assert_int_equal(h.n, 0);
        assert_true(restart_delay(&h, &p) == SEC(1));
}

static void test_delay_edge_policies(void **state) {
        const struct restart_policy min_above_max = {
                .delay_min_usec = SEC(10), .delay_max_usec = SEC(5), .burst = 5, .interval_usec = SEC(10),
        };
        const struct restart_policy zero = {
                .delay_min_usec = 0, .delay_max_usec = SEC(5), .burst = 5, .interval_usec = SEC(10),
        };
        const struct restart_policy huge = {
                .delay_min_usec = (UINT64_MAX / 2) + 1, .delay_max_usec = UINT64_MAX, .burst = 5,
                .interval_usec = SEC(10),
        };
        struct restart_history h = { .times = { 1 }, .n = 1 };

        (void) state;
        assert_true(restart_delay(&h, &min_above_max) == SEC(5));
        assert_true(restart_delay(&h, &zero) == 0);
        /* Doubling saturates instead of wrapping to a tiny delay. */
        assert_true(restart_delay(&h, &huge) == UINT64_MAX);
}

static void test_burst_limit(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = MSEC(100),
                .delay_max_usec = SEC(30),
                .burst = 3,
                .interval_usec = SEC(10),
        };
        struct restart_history h = {};

        (void) state;
        assert_true(restart_history_admit(&h, &p, SEC(100)));
        assert_true(restart_history_admit(&h, &p, SEC(101)));
        assert_true(restart_history_admit(&h, &p, SEC(102)));
        assert_int_equal(h.n, 3);
        /* The fourth within the interval is refused, and refusals are not recorded. */
        assert_false(restart_history_admit(&h, &p, SEC(103)));
        assert_false(restart_history_admit(&h, &p, SEC(110) - 1));
        assert_int_equal(h.n, 3);
        assert_true(h.times[0] == SEC(100));
        assert_true(h.times[2] == SEC(102));
}

static void test_pruning_admits_again(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = MSEC(100),
                .delay_max_usec = SEC(30),
                .burst = 3,
                .interval_usec = SEC(10),
        };
        struct restart_history h = {};

        (void) state;
        assert_true(restart_history_admit(&h, &p, SEC(0)));
        assert_true(restart_history_admit(&h, &p, SEC(1)));
        assert_true(restart_history_admit(&h, &p, SEC(2)));
        /* Exactly one interval after the first restart, that restart has left the window. */
        assert_false(restart_history_admit(&h, &p, SEC(10) - 1));
        assert_true(restart_history_admit(&h, &p, SEC(10)));
        assert_int_equal(h.n, 3);
        assert_true(h.times[0] == SEC(1));
        assert_true(h.times[1] == SEC(2));
        assert_true(h.times[2] == SEC(10));
        assert_false(restart_history_admit(&h, &p, SEC(10)));

        /* Long after, everything is forgotten. */
        restart_history_prune(&h, &p, SEC(1000));
        assert_int_equal(h.n, 0);
        for (unsigned i = 0; i < 3; i++)
                assert_true(restart_history_admit(&h, &p, SEC(1000) + i));
        assert_false(restart_history_admit(&h, &p, SEC(1003)));
}

static void test_prune_keeps_order(void **state) {
        const struct restart_policy p = { .burst = 10, .interval_usec = SEC(5) };
        struct restart_history h = { .times = { SEC(1), SEC(7), SEC(2), SEC(9), SEC(3) }, .n = 5 };

        (void) state;
        restart_history_prune(&h, &p, SEC(8));
        /* At t=8 s with a 5 s window: 7 is recent, 9 (ahead of the clock) counts as recent,
         * 1, 2 and 3 (exactly 5 s old) are dropped. */
        assert_int_equal(h.n, 2);
        assert_true(h.times[0] == SEC(7));
        assert_true(h.times[1] == SEC(9));
}

static void test_clock_going_backwards(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = SEC(1),
                .delay_max_usec = SEC(60),
                .burst = 2,
                .interval_usec = SEC(10),
        };
        struct restart_history h = {};

        (void) state;
        assert_true(restart_history_admit(&h, &p, SEC(100)));
        assert_true(restart_history_admit(&h, &p, SEC(101)));
        /* "now" before the recorded starts: `now - t` must not wrap around to a huge age that
         * would forget them; they still count against the burst. */
        restart_history_prune(&h, &p, SEC(50));
        assert_int_equal(h.n, 2);
        assert_false(restart_history_admit(&h, &p, SEC(50)));
        assert_true(restart_delay(&h, &p) == SEC(4));
        /* Once the clock passes them by an interval they are forgotten as usual. */
        assert_false(restart_history_admit(&h, &p, SEC(110) - 1));
        assert_true(restart_history_admit(&h, &p, SEC(111)));
        assert_int_equal(h.n, 1);
}

static void test_burst_beyond_history(void **state) {
        const struct restart_policy p = {
                .delay_min_usec = 1,
                .delay_max_usec = UINT64_MAX,
                .burst = RESTART_HISTORY_MAX + 100,
                .interval_usec = SEC(3600),
        };
        struct {
                struct restart_history h;
                uint64_t canary[4];
        } s;

        (void) state;
        memset(&s, 0, sizeof s);
        for (unsigned i = 0; i < 4; i++)
                s.canary[i] = 0xC0FFEE;
        /* The history holds RESTART_HISTORY_MAX starts: the limit is clamped to that, and
         * nothing is written past the array. */
        for (unsigned i = 0; i < RESTART_HISTORY_MAX; i++)
                assert_true(restart_history_admit(&s.h, &p, SEC(1) + i));
        assert_int_equal(s.h.n, RESTART_HISTORY_MAX);
        for (unsigned i = 0; i < 10; i++)
                assert_false(restart_history_admit(&s.h, &p, SEC(2) + i));
        assert_int_equal(s.h.n, RESTART_HISTORY_MAX);
        for (unsigned i = 0; i < 4; i++)
                assert_true(s.canary[i] == 0xC0FFEE);
        /* 1 µs doubled 64 times saturates rather than overflowing. */
        assert_true(restart_delay(&s.h, &p) == UINT64_MAX);
}

static void test_burst_zero_and_one(void **state) {
        const struct restart_policy none = { .burst = 0, .interval_usec = SEC(10) };
        const struct restart_policy one = { .burst = 1, .interval_usec = SEC(10) };
        struct restart_history h = {};

        (void) state;
        assert_false(restart_history_admit(&h, &none, SEC(1)));
        assert_int_equal(h.n, 0);
        assert_true(restart_history_admit(&h, &one, SEC(1)));
        assert_false(restart_history_admit(&h, &one, SEC(2)));
        assert_true(restart_history_admit(&h, &one, SEC(11)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_delay_doubles_and_caps),
                cmocka_unit_test(test_delay_depends_on_window_only),
                cmocka_unit_test(test_delay_edge_policies),
                cmocka_unit_test(test_burst_limit),
                cmocka_unit_test(test_pruning_admits_again),
                cmocka_unit_test(test_prune_keeps_order),
                cmocka_unit_test(test_clock_going_backwards),
                cmocka_unit_test(test_burst_beyond_history),
                cmocka_unit_test(test_burst_zero_and_one),
        };

        return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}

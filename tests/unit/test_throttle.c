/* Unit tests for throttle.c: the token bucket behind delivery throttling. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "throttle.h"

#define MSEC(x) ((uint64_t) (x) * USEC_PER_MSEC)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define T0 SEC(1000)

static void test_off(void **state) {
        const struct throttle_policy p = { .interval_usec = 0, .burst = 1 };
        struct throttle t = {};

        (void) state;
        for (int i = 0; i < 100; i++) {
                assert_int_equal(throttle_wait(&t, &p, T0), 0);
                throttle_take(&t, &p, T0);
        }
}

static void test_burst_then_interval(void **state) {
        const struct throttle_policy p = { .interval_usec = SEC(2), .burst = 3 };
        struct throttle t = {};

        (void) state;
        /* A fresh bucket is full: three deliveries back to back. */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(throttle_wait(&t, &p, T0), 0);
                throttle_take(&t, &p, T0);
        }
        assert_int_equal(throttle_wait(&t, &p, T0), SEC(2));
        assert_int_equal(throttle_wait(&t, &p, T0 + MSEC(500)), MSEC(1500));
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(2)), 0);
        throttle_take(&t, &p, T0 + SEC(2));
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(2)), SEC(2));
        /* Steady state: one per interval. */
        for (int i = 2; i < 10; i++) {
                assert_int_equal(throttle_wait(&t, &p, T0 + SEC(2 * i)), 0);
                throttle_take(&t, &p, T0 + SEC(2 * i));
                assert_int_equal(throttle_wait(&t, &p, T0 + SEC(2 * i) + 1), SEC(2) - 1);
        }
}

static void test_refill_is_capped(void **state) {
        const struct throttle_policy p = { .interval_usec = SEC(1), .burst = 2 };
        struct throttle t = {};

        (void) state;
        throttle_take(&t, &p, T0);
        throttle_take(&t, &p, T0);
        /* An hour of quiet gives back the burst, not 3600 deliveries. */
        for (int i = 0; i < 2; i++) {
                assert_int_equal(throttle_wait(&t, &p, T0 + SEC(3600)), 0);
                throttle_take(&t, &p, T0 + SEC(3600));
        }
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(3600)), SEC(1));
        /* A clock that goes back adds nothing. */
        assert_int_equal(throttle_wait(&t, &p, T0), SEC(1));
}

static void test_burst_one(void **state) {
        const struct throttle_policy p = { .interval_usec = SEC(5), .burst = 1 };
        struct throttle t = {};

        (void) state;
        assert_int_equal(throttle_wait(&t, &p, T0), 0);
        throttle_take(&t, &p, T0);
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(4)), SEC(1));
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(60)), 0);
        throttle_take(&t, &p, T0 + SEC(60));
        assert_int_equal(throttle_wait(&t, &p, T0 + SEC(60)), SEC(5));
        /* A policy change (reload) applies at once: burst 0 behaves as 1. */
        const struct throttle_policy q = { .interval_usec = SEC(1), .burst = 0 };
        assert_int_equal(throttle_wait(&t, &q, T0 + SEC(60)), SEC(1));
        assert_int_equal(throttle_wait(&t, &q, T0 + SEC(61)), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_off),
                cmocka_unit_test(test_burst_then_interval),
                cmocka_unit_test(test_refill_is_capped),
                cmocka_unit_test(test_burst_one),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

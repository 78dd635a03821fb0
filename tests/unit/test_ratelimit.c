/* Unit tests for ratelimit.c: bursts and refill with injected time, Retry-After rounding,
 * bounded memory with LRU eviction (checked against a naive model), and client keys. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "macro.h"
#include "ratelimit.h"

#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define MSEC(x) ((uint64_t) (x) * USEC_PER_MSEC)
#define T0 SEC(1000) /* an arbitrary monotonic start */

static void test_burst_then_refill(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;

        (void) state;
        /* 60 per minute: one per second, 5 at once. */
        assert_int_equal(ratelimit_new(60, 5, 16, &rl), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0), 0);
        assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0), 1);
        assert_int_equal(ratelimit_peek(rl, "192.0.2.1", T0), 1);
        /* Refused requests use up nothing: still one second to wait. */
        for (int i = 0; i < 100; i++)
                assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0 + MSEC(1)), 1);
        /* Other clients are not affected. */
        assert_int_equal(ratelimit_take(rl, "192.0.2.2", T0), 0);
        /* One request's worth of time later, exactly one more. */
        assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0 + SEC(1)), 0);
        assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0 + SEC(1)), 1);
        /* Idle for long: the full burst again, not more. */
        for (int i = 0; i < 5; i++)
                assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0 + SEC(3600)), 0);
        assert_int_equal(ratelimit_take(rl, "192.0.2.1", T0 + SEC(3600)), 1);
        assert_int_equal(ratelimit_size(rl), 2);
}

static void test_sustained_rate(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;
        unsigned allowed = 0;

        (void) state;
        assert_int_equal(ratelimit_new(600, 100, 16, &rl), 0);
        /* A client hammering every millisecond for ten minutes gets the burst plus 600/min. */
        for (uint64_t t = 0; t < SEC(600); t += MSEC(1))
                allowed += ratelimit_take(rl, "c", T0 + t) == 0;
        assert_in_range(allowed, 100 + 6000 - 1, 100 + 6000 + 1);
}

static void test_retry_after_rounds_up(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;

        (void) state;
        assert_int_equal(ratelimit_new(1, 1, 4, &rl), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 60);
        assert_int_equal(ratelimit_take(rl, "a", T0 + MSEC(59500)), 1);
        assert_int_equal(ratelimit_take(rl, "a", T0 + MSEC(59999)), 1);
        assert_int_equal(ratelimit_take(rl, "a", T0 + SEC(60)), 0);
        /* A clock that went backwards (it does not, but tat > now must be safe). */
        assert_int_equal(ratelimit_take(rl, "a", 0), 1120);
}

static void test_off_and_bad_arguments(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;
        struct ratelimit *bad = NULL;

        (void) state;
        assert_int_equal(ratelimit_new(0, 0, 4, &rl), 0);
        for (int i = 0; i < 10000; i++)
                assert_int_equal(ratelimit_take(rl, "a", T0), 0);
        assert_int_equal(ratelimit_size(rl), 0);
        assert_int_equal(ratelimit_new(10, 10, 0, &bad), -EINVAL);
        assert_null(bad);
        /* burst 0 is taken as 1 */
        rl = ratelimit_free(rl);
        assert_int_equal(ratelimit_new(60, 0, 4, &rl), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 1);
}

static void test_peek_tracks_nothing(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;

        (void) state;
        assert_int_equal(ratelimit_new(60, 2, 4, &rl), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(ratelimit_peek(rl, "a", T0), 0);
        assert_int_equal(ratelimit_size(rl), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 0);
        assert_int_equal(ratelimit_peek(rl, "a", T0), 0);
        assert_int_equal(ratelimit_take(rl, "a", T0), 0);
        assert_int_equal(ratelimit_peek(rl, "a", T0), 1);
        assert_int_equal(ratelimit_size(rl), 1);
}

static void test_memory_is_bounded(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;
        char key[32];

        (void) state;
        assert_int_equal(ratelimit_new(60, 3, 64, &rl), 0);
        /* The attacker's own address is used up ... */
        for (int i = 0; i < 3; i++)
                assert_int_equal(ratelimit_take(rl, "198.51.100.7", T0), 0);
        /* ... and while it keeps trying, a flood of other addresses does not evict it. */
        for (unsigned i = 0; i < 100000; i++) {
                snprintf(key, sizeof key, "10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
                assert_int_equal(ratelimit_take(rl, key, T0), 0);
                if (i % 32 == 0)
                        assert_int_not_equal(ratelimit_take(rl, "198.51.100.7", T0), 0);
        }
        assert_int_equal(ratelimit_size(rl), 64);
        assert_true(ratelimit_evictions(rl) == 100000 + 1 - 64);
}

static void test_long_keys_share_prefix_bucket(void **state) {
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;
        char a[200], b[200];

        (void) state;
        memset(a, 'x', sizeof a - 1);
        a[sizeof a - 1] = 0;
        memcpy(b, a, sizeof b);
        b[150] = 'y';
        assert_int_equal(ratelimit_new(60, 1, 4, &rl), 0);
        assert_int_equal(ratelimit_take(rl, a, T0), 0);
        assert_int_equal(ratelimit_take(rl, b, T0), 1);
        assert_int_equal(ratelimit_size(rl), 1);
}

/* A naive model: linear search, eviction of the least recently used by a counter. */
struct model_entry {
        char key[16];
        uint64_t tat, used;
};

static unsigned model_take(struct model_entry *m, size_t cap, size_t *n, uint64_t *clock, uint64_t interval,
                           uint64_t tolerance, const char *key, uint64_t now) {
        size_t i;
        uint64_t tat, wait;

        for (i = 0; i < *n && strcmp(m[i].key, key) != 0; i++)
                ;
        if (i == *n) {
                if (*n < cap)
                        (*n)++;
                else {
                        i = 0;
                        for (size_t j = 1; j < cap; j++)
                                if (m[j].used < m[i].used)
                                        i = j;
                }
                snprintf(m[i].key, sizeof m[i].key, "%s", key);
                m[i].tat = now;
        }
        m[i].used = ++*clock;
        tat = m[i].tat > now ? m[i].tat : now;
        if (tat - now <= tolerance) {
                m[i].tat = tat + interval;
                return 0;
        }
        wait = tat - now - tolerance;
        return (unsigned) ((wait + USEC_PER_SEC - 1) / USEC_PER_SEC);
}

static void test_matches_model(void **state) {
        enum { CAP = 8, KEYS = 20 };
        _cleanup_(ratelimit_freep) struct ratelimit *rl = NULL;
        struct model_entry m[CAP] = {};
        size_t n = 0;
        uint64_t clock = 0, now = T0;
        unsigned seed = 12345;

        (void) state;
        /* 120/min: 0.5 s per request, burst 4 (tolerance 1.5 s). */
        assert_int_equal(ratelimit_new(120, 4, CAP, &rl), 0);
        for (int step = 0; step < 200000; step++) {
                char key[16];
                unsigned got, want;

                seed = seed * 1103515245u + 12345u;
                snprintf(key, sizeof key, "k%u", (seed >> 16) % KEYS);
                now += (seed >> 8) % MSEC(300);
                if ((seed >> 4) % 5 == 0) {
                        /* peek agrees with the model's state without changing either */
                        size_t i;
                        for (i = 0; i < n && strcmp(m[i].key, key) != 0; i++)
                                ;
                        want = 0;
                        if (i < n && m[i].tat > now && m[i].tat - now > MSEC(1500))
                                want = (unsigned) ((m[i].tat - now - MSEC(1500) + USEC_PER_SEC - 1) / USEC_PER_SEC);
                        got = ratelimit_peek(rl, key, now);
                } else {
                        want = model_take(m, CAP, &n, &clock, MSEC(500), MSEC(1500), key, now);
                        got = ratelimit_take(rl, key, now);
                }
                if (got != want)
                        fail_msg("step %d key %s: got %u, model %u", step, key, got, want);
        }
        assert_int_equal(ratelimit_size(rl), n);
}

static void test_default_burst(void **state) {
        (void) state;
        assert_int_equal(ratelimit_default_burst(0), 1);
        assert_int_equal(ratelimit_default_burst(1), 1);
        assert_int_equal(ratelimit_default_burst(6), 6);
        assert_int_equal(ratelimit_default_burst(60), 10);
        assert_int_equal(ratelimit_default_burst(600), 100);
        assert_int_equal(ratelimit_default_burst(1000000), 166666);
}

static void test_client_key(void **state) {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_scope_id = 3 };
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        struct sockaddr_storage other = { .ss_family = AF_PACKET };
        char buf[RATELIMIT_CLIENT_KEY_SIZE];

        (void) state;
        assert_int_equal(inet_pton(AF_INET, "192.0.2.33", &in.sin_addr), 1);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in, sizeof in, buf, sizeof buf), 0);
        assert_string_equal(buf, "192.0.2.33");

        assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &in6.sin6_addr), 1);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in6, sizeof in6, buf, sizeof buf), 0);
        assert_string_equal(buf, "2001:db8:1:2::/64");
        /* Every address of the /64 shares the key. */
        assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:ffff:ffff:ffff:ffff", &in6.sin6_addr), 1);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in6, sizeof in6, buf, sizeof buf), 0);
        assert_string_equal(buf, "2001:db8:1:2::/64");
        assert_int_equal(inet_pton(AF_INET6, "::1", &in6.sin6_addr), 1);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in6, sizeof in6, buf, sizeof buf), 0);
        assert_string_equal(buf, "::/64");
        assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.4", &in6.sin6_addr), 1);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in6, sizeof in6, buf, sizeof buf), 0);
        assert_string_equal(buf, "198.51.100.4");

        assert_int_equal(ratelimit_client_key((struct sockaddr *) &un, sizeof un, buf, sizeof buf), 0);
        assert_string_equal(buf, "local");
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &other, sizeof other, buf, sizeof buf),
                         -EAFNOSUPPORT);
        /* Truncated addresses and short buffers are refused, not read past. */
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in6, sizeof in, buf, sizeof buf), -EINVAL);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in, sizeof in - 1, buf, sizeof buf), -EINVAL);
        assert_int_equal(ratelimit_client_key((struct sockaddr *) &in, sizeof in, buf, 8), -EINVAL);
        assert_int_equal(ratelimit_client_key(NULL, 0, buf, sizeof buf), -EINVAL);
}

int main(void) {
        static const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_refill),
                cmocka_unit_test(test_sustained_rate),
                cmocka_unit_test(test_retry_after_rounds_up),
                cmocka_unit_test(test_off_and_bad_arguments),
                cmocka_unit_test(test_peek_tracks_nothing),
                cmocka_unit_test(test_memory_is_bounded),
                cmocka_unit_test(test_long_keys_share_prefix_bucket),
                cmocka_unit_test(test_matches_model),
                cmocka_unit_test(test_default_burst),
                cmocka_unit_test(test_client_key),
        };
        return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}

/* Unit tests for cron.c: the five-field syntax (lists, ranges, steps, names, macros), its
 * errors, and the next match across month, year, leap-day and DST boundaries. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"
#include "macro.h"

static void set_tz(const char *tz) {
        setenv("TZ", tz, 1);
        tzset();
}

/* "2026-03-08T07:00:00Z" as µs. */
static uint64_t utc(const char *s) {
        struct tm tm = {};
        const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

        assert_non_null(end);
        assert_int_equal(*end, 0);
        return (uint64_t) timegm(&tm) * USEC_PER_SEC;
}

static struct cron_spec parse_ok(const char *expr) {
        struct cron_spec c;
        char why[256] = "";

        if (cron_parse(expr, &c, why, sizeof why) < 0)
                fail_msg("\"%s\" refused: %s", expr, why);
        return c;
}

static uint64_t bits(const unsigned *v, size_t n) {
        uint64_t b = 0;
        for (size_t i = 0; i < n; i++)
                b |= UINT64_C(1) << v[i];
        return b;
}
#define BITS(...) bits((const unsigned[]){ __VA_ARGS__ }, sizeof((const unsigned[]){ __VA_ARGS__ }) / sizeof(unsigned))

static void test_parse_fields(void **state) {
        struct cron_spec c;

        (void) state;
        c = parse_ok("* * * * *");
        assert_true(c.minutes == (UINT64_C(1) << 60) - 1);
        assert_int_equal(c.hours, (1u << 24) - 1);
        assert_int_equal(c.days, 0xfffffffeu);
        assert_int_equal(c.months, 0x1ffe);
        assert_int_equal(c.weekdays, 0x7f);
        assert_true(c.days_star && c.weekdays_star);

        c = parse_ok("0 9 * * 1-5");
        assert_true(c.minutes == 1);
        assert_int_equal(c.hours, 1u << 9);
        assert_int_equal(c.weekdays, BITS(1, 2, 3, 4, 5));
        assert_false(c.weekdays_star);

        c = parse_ok("1,15,30 0-3,22 1,31 * *");
        assert_true(c.minutes == BITS(1, 15, 30));
        assert_int_equal(c.hours, BITS(0, 1, 2, 3, 22));
        assert_int_equal(c.days, BITS(1, 31));

        assert_true(parse_ok("*/15 * * * *").minutes == BITS(0, 15, 30, 45));
        assert_true(parse_ok("10-20/5 * * * *").minutes == BITS(10, 15, 20));
        assert_true(parse_ok("5/20 * * * *").minutes == BITS(5, 25, 45)); /* 5-59/20 */
        assert_int_equal(parse_ok("0 */6 * * *").hours, BITS(0, 6, 12, 18));
        assert_int_equal(parse_ok("0 0 */10 * *").days, BITS(1, 11, 21, 31));
        assert_true(parse_ok("0 0 */10 * *").days_star);
        assert_int_equal(parse_ok("\t0  0 1 *   *  ").days, BITS(1)); /* any blanks between and around */
}

static void test_parse_names(void **state) {
        (void) state;
        assert_int_equal(parse_ok("0 0 1 jan-mar *").months, BITS(1, 2, 3));
        assert_int_equal(parse_ok("0 0 1 JAN,Jul,dec *").months, BITS(1, 7, 12));
        assert_int_equal(parse_ok("0 0 * * MON-fri").weekdays, BITS(1, 2, 3, 4, 5));
        assert_int_equal(parse_ok("0 0 * * sun").weekdays, BITS(0));
        assert_int_equal(parse_ok("0 0 * * 7").weekdays, BITS(0)); /* 7 is Sunday too */
        assert_int_equal(parse_ok("0 0 * * 5-7").weekdays, BITS(0, 5, 6));
        assert_int_equal(parse_ok("0 0 * * fri-sun").weekdays, BITS(0, 5, 6));
        assert_int_equal(parse_ok("0 0 * * 5-0").weekdays, BITS(0, 5, 6));
        assert_int_equal(parse_ok("0 0 * * */2").weekdays, BITS(0, 2, 4, 6));
}

/* Field by field: the struct has padding. */
static void assert_same(const struct cron_spec *a, const struct cron_spec *b) {
        assert_true(a->minutes == b->minutes);
        assert_int_equal(a->hours, b->hours);
        assert_int_equal(a->days, b->days);
        assert_int_equal(a->months, b->months);
        assert_int_equal(a->weekdays, b->weekdays);
        assert_int_equal(a->days_star, b->days_star);
        assert_int_equal(a->weekdays_star, b->weekdays_star);
}

static void test_parse_macros(void **state) {
        struct cron_spec a, b;

        (void) state;
        a = parse_ok("@daily");
        b = parse_ok("0 0 * * *");
        assert_same(&a, &b);
        a = parse_ok("@HOURLY");
        b = parse_ok("0 * * * *");
        assert_same(&a, &b);
        a = parse_ok("@weekly");
        b = parse_ok("0 0 * * 0");
        assert_same(&a, &b);
        a = parse_ok(" @annually ");
        b = parse_ok("0 0 1 1 *");
        assert_same(&a, &b);
        a = parse_ok("@monthly");
        b = parse_ok("0 0 1 * *");
        assert_same(&a, &b);
        a = parse_ok("@midnight");
        b = parse_ok("@yearly");
        assert_int_equal(a.days, 0xfffffffeu);
        assert_int_equal(b.months, BITS(1));
}

static void test_parse_errors(void **state) {
        static const struct {
                const char *expr;
                const char *why; /* a part of the message */
        } bad[] = {
                { "", "five fields" },
                { "* * * *", "five fields" },
                { "* * * * * *", "more than five" },
                { "60 * * * *", "minute field \"60\": value out of range" },
                { "* 24 * * *", "hour field" },
                { "* * 0 * *", "day-of-month field" },
                { "* * 32 * *", "day-of-month field" },
                { "* * * 13 *", "month field" },
                { "* * * 0 *", "month field" },
                { "* * * * 8", "day-of-week field" },
                { "5-1 * * * *", "low to high" },
                { "*/0 * * * *", "step" },
                { "*/ * * * *", "step must be a number" },
                { "*/61 * * * *", "step" },
                { "1, * * * *", "must not end with ','" },
                { ",1 * * * *", "expected a number" },
                { "1-/2 * * * *", "expected a number" },
                { "a * * * *", "expected a number" },
                { "* * * * monday", "expected a number or a name" },
                { "* * * foo *", "expected a number or a name" },
                { "* * * * -1", "expected a number" },
                { "1x * * * *", "unexpected character" },
                { "* jan * * *", "hour field" }, /* names only where they belong */
                { "@reboot", "unknown macro" },
                { "@daily 1", "unknown macro" },
                { "99999999999 * * * *", "minute field" },
        };
        struct cron_spec c;
        char why[256], longer[200];

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why[0] = 0;
                if (cron_parse(bad[i].expr, &c, why, sizeof why) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i].expr);
                if (!strstr(why, bad[i].why))
                        fail_msg("\"%s\": message \"%s\" does not say \"%s\"", bad[i].expr, why, bad[i].why);
        }
        memset(longer, '1', sizeof longer - 1);
        longer[sizeof longer - 1] = 0;
        assert_int_equal(cron_parse(longer, &c, why, sizeof why), -EINVAL);
        assert_non_null(strstr(why, "longer than"));
        assert_int_equal(cron_parse(NULL, &c, why, sizeof why), -EINVAL);
}

static void expect_next(const char *expr, const char *after, const char *want) {
        struct cron_spec c = parse_ok(expr);
        uint64_t next = 0;
        char got[64];
        time_t t;

        if (cron_next(&c, utc(after), &next) < 0)
                fail_msg("\"%s\" after %s: no match", expr, after);
        t = (time_t) (next / USEC_PER_SEC);
        strftime(got, sizeof got, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        if (next != utc(want))
                fail_msg("\"%s\" after %s: %s, expected %s", expr, after, got, want);
}

static void test_next_utc(void **state) {
        (void) state;
        set_tz("UTC");
        expect_next("*/15 * * * *", "2026-01-01T00:00:30Z", "2026-01-01T00:15:00Z");
        expect_next("* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"); /* strictly after */
        expect_next("0 9 * * *", "2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z");
        expect_next("0 9 * * *", "2026-01-01T08:59:59Z", "2026-01-01T09:00:00Z");
        expect_next("30 23 31 12 *", "2026-06-01T00:00:00Z", "2026-12-31T23:30:00Z");
        expect_next("0 0 1 * *", "2026-12-15T10:00:00Z", "2027-01-01T00:00:00Z");
        expect_next("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
        expect_next("0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"); /* April has 30 */
        expect_next("0 9 * * mon-fri", "2026-01-02T10:00:00Z", "2026-01-05T09:00:00Z"); /* Fri → Mon */
        expect_next("59 23 * * *", "2026-01-01T23:59:00Z", "2026-01-02T23:59:00Z");
        expect_next("0 0,12 * * *", "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z");
        /* Both day fields restricted: either matches. 2026-02-13 is a Friday; 2026-02-06 too. */
        expect_next("0 12 13 * 5", "2026-02-01T00:00:00Z", "2026-02-06T12:00:00Z");
        expect_next("0 12 13 * 5", "2026-02-10T00:00:00Z", "2026-02-13T12:00:00Z");
        expect_next("0 12 13 * 3", "2026-02-12T00:00:00Z", "2026-02-13T12:00:00Z"); /* the 13th, a Friday */
        /* A day field starting with '*' makes it AND: odd days that are Fridays. */
        expect_next("0 12 */2 * 5", "2026-02-01T00:00:00Z", "2026-02-13T12:00:00Z");
}

static void test_next_never(void **state) {
        struct cron_spec c = parse_ok("0 0 31 2 *");
        uint64_t next;

        (void) state;
        set_tz("UTC");
        assert_int_equal(cron_next(&c, utc("2026-01-01T00:00:00Z"), &next), -ERANGE);
        c = parse_ok("0 0 30 2 *");
        assert_int_equal(cron_next(&c, utc("2026-01-01T00:00:00Z"), &next), -ERANGE);
}

/* US Eastern rules as a POSIX TZ string (no tzdata needed): DST from the second Sunday of March
 * 02:00 to the first Sunday of November 02:00. In 2026: 8 March and 1 November. */
static void test_next_dst(void **state) {
        (void) state;
        set_tz("EST5EDT,M3.2.0,M11.1.0");
        /* 09:00 local on both sides of the change: 14:00Z in winter, 13:00Z in summer. */
        expect_next("0 9 * * *", "2026-03-07T15:00:00Z", "2026-03-08T13:00:00Z");
        expect_next("0 9 * * *", "2026-03-06T15:00:00Z", "2026-03-07T14:00:00Z");
        /* 02:30 does not exist on 8 March: the next one is on the 9th (EDT, 06:30Z). */
        expect_next("30 2 * * *", "2026-03-08T05:00:00Z", "2026-03-09T06:30:00Z");
        /* Hourly goes on through the skipped hour: 01:00 EST, then 03:00 EDT. */
        expect_next("0 * * * *", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z");
        expect_next("0 9 * * *", "2026-10-31T14:00:00Z", "2026-11-01T14:00:00Z");
        set_tz("UTC");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_fields),
                cmocka_unit_test(test_parse_names),
                cmocka_unit_test(test_parse_macros),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_next_utc),
                cmocka_unit_test(test_next_never),
                cmocka_unit_test(test_next_dst),
        };
        set_tz("UTC");
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for schedule.c: which run of a scheduled message is due and how many were missed
 * (every, at, cron), the `--at` time forms, and the reminder backoff. */
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

#include "macro.h"
#include "schedule.h"

#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define MINUTES(x) SEC((uint64_t) (x) * 60)
#define HOUR(x) MINUTES((uint64_t) (x) * 60)
#define BASE SEC(1795000000) /* 2026-11-18T10:13:20Z */

static uint64_t utc(const char *s) {
        struct tm tm = {};
        const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

        assert_non_null(end);
        assert_int_equal(*end, 0);
        return (uint64_t) timegm(&tm) * USEC_PER_SEC;
}

static void test_every(void **state) {
        struct schedule_timing t = { .kind = SCHEDULE_EVERY, .created_usec = BASE, .every_usec = SEC(10) };
        struct schedule_run run;
        uint64_t next;

        (void) state;
        /* Not yet: the first run is one interval after the schedule was added. */
        assert_int_equal(schedule_due(&t, 0, BASE + SEC(5), &run, &next), 0);
        assert_int_equal(next, BASE + SEC(10));
        assert_int_equal(schedule_due(&t, 0, BASE + SEC(10), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + SEC(10));
        assert_int_equal(run.missed, 0);
        /* After that run: the next one, counted from the schedule's start, not from the run. */
        assert_int_equal(schedule_due(&t, BASE + SEC(10), BASE + SEC(13), &run, &next), 0);
        assert_int_equal(next, BASE + SEC(20));
        /* A late run does not shift the ones after it. */
        assert_int_equal(schedule_due(&t, BASE + SEC(10), BASE + SEC(21), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + SEC(20));
        assert_int_equal(schedule_due(&t, BASE + SEC(20), BASE + SEC(21), &run, &next), 0);
        assert_int_equal(next, BASE + SEC(30));
        /* Down from 20 to 47: one run for 40; 30 was missed. */
        assert_int_equal(schedule_due(&t, BASE + SEC(20), BASE + SEC(47), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + SEC(40));
        assert_int_equal(run.missed, 1);
        /* Never ran and a day passed: one run, 8639 missed. */
        assert_int_equal(schedule_due(&t, 0, BASE + HOUR(24) + SEC(3), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + HOUR(24));
        assert_int_equal(run.missed, 8639);
        assert_false(run.missed_capped);
        /* The clock went back before the last run: nothing, and the next after the last run. */
        assert_int_equal(schedule_due(&t, BASE + SEC(40), BASE + SEC(15), &run, &next), 0);
        assert_int_equal(next, BASE + SEC(50));
        t.every_usec = 0;
        assert_int_equal(schedule_due(&t, 0, BASE + HOUR(1), &run, &next), 0);
        assert_int_equal(next, UINT64_MAX);
}

static void test_at(void **state) {
        struct schedule_timing t = { .kind = SCHEDULE_AT, .created_usec = BASE, .at_usec = BASE + MINUTES(5) };
        struct schedule_run run;
        uint64_t next;

        (void) state;
        assert_int_equal(schedule_due(&t, 0, BASE + MINUTES(1), &run, &next), 0);
        assert_int_equal(next, BASE + MINUTES(5));
        assert_int_equal(schedule_due(&t, 0, BASE + MINUTES(5), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + MINUTES(5));
        assert_int_equal(run.missed, 0);
        /* Late (the daemon was down): it still runs, once. */
        assert_int_equal(schedule_due(&t, 0, BASE + HOUR(5), &run, &next), 1);
        assert_int_equal(run.due_usec, BASE + MINUTES(5));
        assert_int_equal(schedule_due(&t, BASE + MINUTES(5), BASE + HOUR(5), &run, &next), 0);
        assert_int_equal(next, UINT64_MAX);
}

static void test_cron(void **state) {
        struct schedule_timing t = { .kind = SCHEDULE_CRON, .created_usec = utc("2026-01-01T10:00:20Z") };
        struct schedule_run run;
        char why[128];
        uint64_t next;

        (void) state;
        assert_int_equal(cron_parse("*/5 * * * *", &t.cron, why, sizeof why), 0);
        assert_int_equal(schedule_due(&t, 0, utc("2026-01-01T10:04:59Z"), &run, &next), 0);
        assert_int_equal(next, utc("2026-01-01T10:05:00Z"));
        assert_int_equal(schedule_due(&t, 0, utc("2026-01-01T10:05:00Z"), &run, &next), 1);
        assert_int_equal(run.due_usec, utc("2026-01-01T10:05:00Z"));
        assert_int_equal(run.missed, 0);
        /* Down until 10:27: one run for 10:25; 10:10, 10:15, 10:20 missed. */
        assert_int_equal(schedule_due(&t, utc("2026-01-01T10:05:00Z"), utc("2026-01-01T10:27:00Z"), &run, &next), 1);
        assert_int_equal(run.due_usec, utc("2026-01-01T10:25:00Z"));
        assert_int_equal(run.missed, 3);
        assert_int_equal(schedule_due(&t, run.due_usec, utc("2026-01-01T10:27:00Z"), &run, &next), 0);
        assert_int_equal(next, utc("2026-01-01T10:30:00Z"));
        /* A day down with an hourly schedule: one run, 23 missed. */
        assert_int_equal(cron_parse("@hourly", &t.cron, why, sizeof why), 0);
        assert_int_equal(schedule_due(&t, utc("2026-01-01T11:00:00Z"), utc("2026-01-02T11:30:00Z"), &run, &next), 1);
        assert_int_equal(run.due_usec, utc("2026-01-02T11:00:00Z"));
        assert_int_equal(run.missed, 23);
        /* Never again. */
        assert_int_equal(cron_parse("0 0 31 2 *", &t.cron, why, sizeof why), 0);
        assert_int_equal(schedule_due(&t, 0, utc("2026-06-01T00:00:00Z"), &run, &next), 0);
        assert_int_equal(next, UINT64_MAX);
}

static void test_parse_time(void **state) {
        uint64_t now = utc("2026-11-22T14:00:00Z"), v;

        (void) state;
        assert_int_equal(schedule_parse_time("+10m", now, &v), 0);
        assert_int_equal(v, now + MINUTES(10));
        assert_int_equal(schedule_parse_time("+10", now, &v), 0); /* seconds, as in config.toml */
        assert_int_equal(v, now + SEC(10));
        assert_int_equal(schedule_parse_time("+90s", now, &v), 0);
        assert_int_equal(v, now + SEC(90));
        assert_int_equal(schedule_parse_time("+1.5h", now, &v), 0);
        assert_int_equal(v, now + MINUTES(90));
        assert_int_equal(schedule_parse_time("2026-11-22T14:30:00Z", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T14:30:00Z"));
        assert_int_equal(schedule_parse_time("2026-11-22T14:30Z", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T14:30:00Z"));
        assert_int_equal(schedule_parse_time("2026-11-22T14:30:00.250Z", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T14:30:00Z") + 250 * USEC_PER_MSEC);
        assert_int_equal(schedule_parse_time("2026-11-22T14:30:00.5Z", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T14:30:00Z") + 500 * USEC_PER_MSEC);
        /* Local times; the test runs in UTC, then in UTC+2 without DST. */
        assert_int_equal(schedule_parse_time("2026-11-22 15:30", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T15:30:00Z"));
        assert_int_equal(schedule_parse_time("2026-11-22T15:30:10", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T15:30:10Z"));
        assert_int_equal(schedule_parse_time("15:30", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T15:30:00Z"));
        assert_int_equal(schedule_parse_time("13:59:59", now, &v), 0); /* passed: tomorrow */
        assert_int_equal(v, utc("2026-11-23T13:59:59Z"));
        assert_int_equal(schedule_parse_time("14:00", now, &v), 0); /* now is not the future */
        assert_int_equal(v, utc("2026-11-23T14:00:00Z"));
        setenv("TZ", "XXX-2", 1);
        tzset();
        assert_int_equal(schedule_parse_time("2026-11-22 15:30", now, &v), 0);
        assert_int_equal(v, utc("2026-11-22T13:30:00Z"));
        assert_int_equal(schedule_parse_time("2026-11-22T15:30Z", now, &v), 0); /* Z is UTC anywhere */
        assert_int_equal(v, utc("2026-11-22T15:30:00Z"));
        assert_int_equal(schedule_parse_time("17:00", now, &v), 0); /* 16:00 local now */
        assert_int_equal(v, utc("2026-11-22T15:00:00Z"));
        setenv("TZ", "UTC", 1);
        tzset();

        static const char *const bad[] = {
                "", "+", "+x", "+-5m", "tomorrow", "25:00", "12:60", "1:30", "12:30:61", "2026-02-31 10:00",
                "2026-13-01 10:00", "2026-11-22", "2026-11-22 15", "2026-11-22X15:30", "2026-11-22T15:30:00.Z",
                "2026-11-22T15:30.5Z", "2026-11-22T15:30:00.1234567890Z", "1969-12-31T23:59:59Z", "2026-11-22T15:30:00ZZ",
                "a026-11-22T15:30:00Z",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (schedule_parse_time(bad[i], now, &v) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(schedule_parse_time(NULL, now, &v), -EINVAL);
}

static void test_reminder_backoff(void **state) {
        struct reminder_policy p = { .after_usec = SEC(2), .interval_max_usec = HOUR(24), .max = 3 };

        (void) state;
        assert_int_equal(reminder_interval(&p, 1), SEC(2));
        assert_int_equal(reminder_interval(&p, 2), SEC(4));
        assert_int_equal(reminder_interval(&p, 3), SEC(8));
        /* Reminder 1 after `after`, then each one twice as far from the one before. */
        assert_int_equal(reminder_due(&p, BASE, 0, 0), BASE + SEC(2));
        assert_int_equal(reminder_due(&p, BASE, 1, BASE + SEC(2)), BASE + SEC(6));
        assert_int_equal(reminder_due(&p, BASE, 2, BASE + SEC(6)), BASE + SEC(14));
        assert_int_equal(reminder_due(&p, BASE, 3, BASE + SEC(14)), UINT64_MAX);
        /* Counted from the reminder actually sent: one that went out late pushes the next. */
        assert_int_equal(reminder_due(&p, BASE, 1, BASE + SEC(100)), BASE + SEC(104));

        /* The cap. */
        p = (struct reminder_policy){ .after_usec = HOUR(1), .interval_max_usec = HOUR(3), .max = 6 };
        static const uint64_t expected[] = { HOUR(1), HOUR(2), HOUR(3), HOUR(3), HOUR(3), HOUR(3) };
        for (unsigned n = 1; n <= ELEMENTSOF(expected); n++)
                assert_int_equal(reminder_interval(&p, n), expected[n - 1]);
        assert_int_equal(reminder_interval(&p, 1000), HOUR(3)); /* no overflow */
        /* A cap below `after` does not shorten the first wait, and nothing grows past it. */
        p.interval_max_usec = MINUTES(10);
        assert_int_equal(reminder_interval(&p, 1), HOUR(1));
        assert_int_equal(reminder_interval(&p, 4), HOUR(1));

        /* Off: no first wait, or no reminders at all. */
        p = (struct reminder_policy){ .after_usec = 0, .interval_max_usec = HOUR(3), .max = 3 };
        assert_int_equal(reminder_due(&p, BASE, 0, 0), UINT64_MAX);
        p = (struct reminder_policy){ .after_usec = HOUR(1), .interval_max_usec = HOUR(3), .max = 0 };
        assert_int_equal(reminder_due(&p, BASE, 0, 0), UINT64_MAX);
        /* An obligation opened at time 0 (unparsable ts): due after the first wait from 0, i.e. now. */
        p.max = 1;
        assert_int_equal(reminder_due(&p, 0, 0, 0), HOUR(1));
        /* Far in the future does not wrap. */
        assert_true(reminder_due(&p, UINT64_MAX - 5, 0, 0) > UINT64_MAX - 10);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every),
                cmocka_unit_test(test_at),
                cmocka_unit_test(test_cron),
                cmocka_unit_test(test_parse_time),
                cmocka_unit_test(test_reminder_backoff),
        };
        setenv("TZ", "UTC", 1);
        tzset();
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Cron expressions for scheduled messages: the standard five fields
 *   minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12 or jan-dec)  day-of-week (0-7 or sun-sat)
 * with `*`, lists (`1,15`), ranges (`9-17`), steps (`9-17/2`; `5/10` is `5-59/10`; a star with
 * a step of 15 is every 15 minutes), names in any case, 7 as another Sunday (so a day-of-week
 * range may end on Sunday: `fri-sun`), and the macros @yearly @annually @monthly @weekly @daily
 * @midnight @hourly. As in Vixie cron, when both day fields are restricted (neither starts with
 * `*`) a day matches if either does. Times are the local time of the process (TZ). Debian
 * packages no C cron library worth depending on (the cron daemons do not export their parsers),
 * so this small one is ours, unit tested in tests/unit/test_cron.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_EXPR_MAX 128

struct cron_spec {
        uint64_t minutes; /* bit m: minute m */
        uint32_t hours;   /* bit h: hour h */
        uint32_t days;    /* bit d: day of month d (1-31) */
        uint16_t months;  /* bit m: month m (1-12) */
        uint8_t weekdays; /* bit w: weekday w (0 = Sunday … 6) */
        bool days_star;   /* the day-of-month field starts with '*' */
        bool weekdays_star;
};

/* Parses expr. Returns 0, or -EINVAL with the problem written to why (naming the field). */
int cron_parse(const char *expr, struct cron_spec *ret, char *why, size_t why_size);

/* The first matching minute strictly after after_usec (CLOCK_REALTIME µs), in local time.
 * -ERANGE when nothing matches within the next eight years (e.g. "0 0 31 2 *"). */
int cron_next(const struct cron_spec *c, uint64_t after_usec, uint64_t *ret_usec);

/* Timing for automation, as pure functions of the ledger's times and the clock (the supervisor's
 * automation.c acts on them, tests/unit/test_schedule.c checks them):
 *   - scheduled messages: `every` an interval (due at created + k·interval), once `at` a time,
 *     or on a cron expression; which run is due now, and how many due times were missed;
 *   - reminders for open obligations: exponential backoff from the obligation's opening;
 *   - the times an operator may write for `--at`.
 * All times are CLOCK_REALTIME microseconds. */
#pragma once

#include <stdint.h>

#include "cron.h"
#include "macro.h"

enum schedule_kind {
        SCHEDULE_EVERY,
        SCHEDULE_AT,
        SCHEDULE_CRON,
};

#define SCHEDULE_EVERY_MIN_USEC (USEC_PER_SEC)
/* Due times of a cron schedule counted one by one at most this often; beyond it, "missed" is
 * a lower bound (a minutely schedule down for about two years). */
#define SCHEDULE_MISSED_COUNT_MAX 1000000u

struct schedule_timing {
        enum schedule_kind kind;
        uint64_t created_usec; /* when the schedule was added: every counts from here */
        uint64_t every_usec;
        uint64_t at_usec;
        struct cron_spec cron;
};

struct schedule_run {
        uint64_t due_usec;    /* the due time this run is for: the latest one not after now */
        uint64_t missed;      /* earlier due times since the last run that get no run of their own */
        int missed_capped;    /* missed is a lower bound (see SCHEDULE_MISSED_COUNT_MAX) */
};

/* For a schedule whose last run was for last_due_usec (0: never ran), at now_usec: returns 1
 * and fills *run when a run is due; 0 when not, with *ret_next the next due time (UINT64_MAX:
 * never again, e.g. an `at` schedule that ran). Several due times that passed (the daemon was
 * down, or the group inactive) give one run with run->missed counting the others. */
int schedule_due(const struct schedule_timing *t, uint64_t last_due_usec, uint64_t now_usec, struct schedule_run *run,
                 uint64_t *ret_next);

/* Parses a time for `--at`: "+DURATION" (from now), "YYYY-MM-DDTHH:MM[:SS[.fff]]Z" (UTC), or local
 * time "YYYY-MM-DD HH:MM[:SS]" ('T' also allowed) or "HH:MM[:SS]" (today, or tomorrow if that
 * has passed). -EINVAL otherwise. */
int schedule_parse_time(const char *s, uint64_t now_usec, uint64_t *ret_usec);

struct reminder_policy {
        uint64_t after_usec;        /* first reminder this long after the obligation opened; 0: none */
        uint64_t interval_max_usec; /* the backoff stops growing here (never below after_usec) */
        unsigned max;               /* reminders per obligation; 0: none */
};

/* Time between reminder n-1 (or the opening, for n = 1) and reminder n: after·2^(n-1), capped. */
uint64_t reminder_interval(const struct reminder_policy *p, unsigned n);
/* When reminder number sent+1 is due for an obligation opened at opened_usec whose last reminder
 * went out at last_usec (ignored when sent is 0); UINT64_MAX when no more are due. Counting from
 * the last reminder actually sent means a daemon that was down sends one late reminder, not a
 * burst of the ones it slept through. */
uint64_t reminder_due(const struct reminder_policy *p, uint64_t opened_usec, unsigned sent, uint64_t last_usec);

/* Timing of scheduled messages and reminders, and `--at` times (see schedule.h). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "schedule.h"

static int every_due(const struct schedule_timing *t, uint64_t last_due, uint64_t now, struct schedule_run *run,
                     uint64_t *ret_next) {
        uint64_t k_last, k_now;

        if (t->every_usec == 0) {
                *ret_next = UINT64_MAX;
                return 0;
        }
        /* Due times are created + k·every for k >= 1: a late run does not shift the ones after. */
        k_last = last_due > t->created_usec ? (last_due - t->created_usec) / t->every_usec : 0;
        k_now = now > t->created_usec ? (now - t->created_usec) / t->every_usec : 0;
        if (k_now <= k_last) {
                *ret_next = t->created_usec + (k_last + 1) * t->every_usec;
                return 0;
        }
        *run = (struct schedule_run){ .due_usec = t->created_usec + k_now * t->every_usec,
                                      .missed = k_now - k_last - 1 };
        return 1;
}

static int cron_due(const struct schedule_timing *t, uint64_t last_due, uint64_t now, struct schedule_run *run,
                    uint64_t *ret_next) {
        uint64_t due, next, missed = 0;

        if (cron_next(&t->cron, last_due ? last_due : t->created_usec, &due) < 0) {
                *ret_next = UINT64_MAX;
                return 0;
        }
        if (due > now) {
                *ret_next = due;
                return 0;
        }
        *run = (struct schedule_run){};
        while (cron_next(&t->cron, due, &next) >= 0 && next <= now) {
                due = next;
                if (++missed < SCHEDULE_MISSED_COUNT_MAX)
                        continue;
                /* Far behind: stop counting, find the latest due time from a month back. */
                run->missed_capped = 1;
                if (now - due > 32 * 86400 * USEC_PER_SEC) {
                        uint64_t from = now - 32 * 86400 * USEC_PER_SEC;
                        while (cron_next(&t->cron, from, &next) >= 0 && next <= now)
                                from = due = next;
                } else
                        while (cron_next(&t->cron, due, &next) >= 0 && next <= now)
                                due = next;
                break;
        }
        run->due_usec = due;
        run->missed = missed;
        return 1;
}

int schedule_due(const struct schedule_timing *t, uint64_t last_due_usec, uint64_t now_usec, struct schedule_run *run,
                 uint64_t *ret_next) {
        *ret_next = UINT64_MAX;
        switch (t->kind) {
        case SCHEDULE_EVERY:
                return every_due(t, last_due_usec, now_usec, run, ret_next);
        case SCHEDULE_CRON:
                return cron_due(t, last_due_usec, now_usec, run, ret_next);
        case SCHEDULE_AT:
                if (last_due_usec != 0)
                        return 0; /* it ran */
                if (t->at_usec > now_usec) {
                        *ret_next = t->at_usec;
                        return 0;
                }
                *run = (struct schedule_run){ .due_usec = t->at_usec };
                return 1;
        }
        return -EINVAL;
}

/* n decimal digits at s. */
static bool digits(const char *s, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return true;
}

/* "HH:MM" or "HH:MM:SS" at s, exactly len bytes. */
static bool clock_time(const char *s, size_t len, struct tm *tm) {
        if ((len != 5 && len != 8) || s[2] != ':' || !digits(s, 2, &tm->tm_hour) || !digits(s + 3, 2, &tm->tm_min))
                return false;
        tm->tm_sec = 0;
        if (len == 8 && (s[5] != ':' || !digits(s + 6, 2, &tm->tm_sec)))
                return false;
        return tm->tm_hour <= 23 && tm->tm_min <= 59 && tm->tm_sec <= 59;
}

int schedule_parse_time(const char *s, uint64_t now_usec, uint64_t *ret_usec) {
        struct tm tm = {}, check;
        size_t len = s ? strnlen(s, 64) : 0;
        unsigned ms = 0;
        bool utc = false;
        time_t t;

        if (len == 0 || len >= 64)
                return -EINVAL;
        if (s[0] == '+') {
                uint64_t d;
                if (parse_duration_usec(s + 1, &d) < 0 || d > UINT64_MAX - now_usec)
                        return -EINVAL;
                *ret_usec = now_usec + d;
                return 0;
        }
        if (len <= 8) {
                /* Today at that time, or tomorrow when it has passed. */
                time_t now = (time_t) (now_usec / USEC_PER_SEC);
                struct tm clock = {};

                if (!clock_time(s, len, &clock) || !localtime_r(&now, &tm))
                        return -EINVAL;
                tm.tm_hour = clock.tm_hour;
                tm.tm_min = clock.tm_min;
                tm.tm_sec = clock.tm_sec;
                tm.tm_isdst = -1;
                t = mktime(&tm);
                if (t == (time_t) -1)
                        return -EINVAL;
                if ((uint64_t) t * USEC_PER_SEC <= now_usec) {
                        tm.tm_mday++;
                        tm.tm_hour = clock.tm_hour;
                        tm.tm_min = clock.tm_min;
                        tm.tm_sec = clock.tm_sec;
                        tm.tm_isdst = -1;
                        t = mktime(&tm);
                        if (t == (time_t) -1)
                                return -EINVAL;
                }
                *ret_usec = (uint64_t) t * USEC_PER_SEC;
                return 0;
        }

        /* YYYY-MM-DD[T ]HH:MM[:SS[.fff…]][Z] */
        if (len < 16 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || !digits(s, 4, &tm.tm_year) ||
            !digits(s + 5, 2, &tm.tm_mon) || !digits(s + 8, 2, &tm.tm_mday))
                return -EINVAL;
        if (s[len - 1] == 'Z') {
                utc = true;
                len--;
        }
        {
                const char *dot = memchr(s + 11, '.', len - 11);
                size_t clock_len = dot ? (size_t) (dot - (s + 11)) : len - 11;

                if (!clock_time(s + 11, clock_len, &tm))
                        return -EINVAL;
                if (dot) {
                        size_t frac = len - (size_t) (dot + 1 - s);
                        if (clock_len != 8 || frac < 1 || frac > 9)
                                return -EINVAL;
                        for (size_t i = 0; i < frac; i++) {
                                int d;
                                if (!digits(dot + 1 + i, 1, &d))
                                        return -EINVAL;
                                if (i < 3)
                                        ms = ms * 10 + (unsigned) d;
                        }
                        for (size_t i = frac; i < 3; i++)
                                ms *= 10;
                }
        }
        if (tm.tm_year < 1970 || tm.tm_year > 9999 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        tm.tm_isdst = -1;
        check = tm;
        t = utc ? timegm(&tm) : mktime(&tm);
        /* mktime() would take 31 February as 3 March. */
        if (t == (time_t) -1 || t < 0 || tm.tm_mday != check.tm_mday || tm.tm_mon != check.tm_mon)
                return -EINVAL;
        *ret_usec = (uint64_t) t * USEC_PER_SEC + ms * USEC_PER_MSEC;
        return 0;
}

uint64_t reminder_interval(const struct reminder_policy *p, unsigned n) {
        uint64_t cap = p->interval_max_usec > p->after_usec ? p->interval_max_usec : p->after_usec;
        uint64_t d = p->after_usec;

        for (unsigned i = 1; i < n && d < cap; i++)
                d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        return d < cap ? d : cap;
}

uint64_t reminder_due(const struct reminder_policy *p, uint64_t opened_usec, unsigned sent, uint64_t last_usec) {
        uint64_t base = sent == 0 ? opened_usec : last_usec, d;

        if (p->after_usec == 0 || sent >= p->max)
                return UINT64_MAX;
        d = reminder_interval(p, sent + 1);
        return base > UINT64_MAX - d ? UINT64_MAX - 1 : base + d;
}

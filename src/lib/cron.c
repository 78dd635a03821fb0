/* Cron expression parsing and next-match search (see cron.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cron.h"
#include "macro.h"

#define CRON_FIELDS 5
#define CRON_SEARCH_YEARS 8
#define CRON_SEARCH_STEPS 100000 /* each step moves to the next candidate month, day, hour or minute */

struct field_desc {
        const char *name;
        unsigned min, max;
        const char *const *names; /* names[i] is value min + i; NULL: numbers only */
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const weekday_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL };

static const struct field_desc fields[CRON_FIELDS] = {
        { "minute", 0, 59, NULL },
        { "hour", 0, 23, NULL },
        { "day of month", 1, 31, NULL },
        { "month", 1, 12, month_names },
        { "day of week", 0, 7, weekday_names }, /* 7 is Sunday again */
};

static const struct {
        const char *name;
        const char *expr;
} macros[] = {
        { "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
        { "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
        { "@hourly", "0 * * * *" },
};

/* A number or (for fields that have them) a three-letter name at *s; advances *s. */
static int parse_value(const char **s, const struct field_desc *f, unsigned *ret) {
        const char *p = *s;
        unsigned v = 0;

        if (*p >= '0' && *p <= '9') {
                for (; *p >= '0' && *p <= '9'; p++) {
                        v = v * 10 + (unsigned) (*p - '0');
                        if (v > 1000)
                                return -EINVAL;
                }
        } else if (f->names) {
                size_t i;
                for (i = 0; f->names[i]; i++)
                        if (strncasecmp(p, f->names[i], 3) == 0)
                                break;
                if (!f->names[i])
                        return -EINVAL;
                v = f->min + (unsigned) i;
                p += 3;
                /* "mon" but not "monday": a name is followed by a separator or the end. */
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
                        return -EINVAL;
        } else
                return -EINVAL;
        if (v < f->min || v > f->max)
                return -ERANGE;
        *s = p;
        *ret = v;
        return 0;
}

/* One field, from s to end (exclusive), into a bit set over min..max. */
static int parse_field(const char *s, const char *end, const struct field_desc *f, uint64_t *ret, const char **why) {
        uint64_t bits = 0;

        for (;;) {
                unsigned lo, hi, step = 1;
                const char *item = s;
                int r;

                if (s < end && *s == '*') {
                        lo = f->min;
                        hi = f->max;
                        s++;
                } else {
                        r = parse_value(&s, f, &lo);
                        if (r < 0)
                                goto bad_value;
                        hi = lo;
                        if (s < end && *s == '-') {
                                s++;
                                r = parse_value(&s, f, &hi);
                                if (r < 0)
                                        goto bad_value;
                                /* "fri-sun": a day-of-week range may end on Sunday as 0. */
                                if (f->max == 7 && hi == 0 && lo > 0)
                                        hi = 7;
                                if (hi < lo) {
                                        *why = "a range must go from low to high";
                                        return -EINVAL;
                                }
                        }
                }
                if (s < end && *s == '/') {
                        unsigned v = 0;

                        s++;
                        if (s >= end || *s < '0' || *s > '9') {
                                *why = "a step must be a number";
                                return -EINVAL;
                        }
                        for (; s < end && *s >= '0' && *s <= '9'; s++) {
                                v = v * 10 + (unsigned) (*s - '0');
                                if (v > 1000)
                                        break;
                        }
                        if (v == 0 || v > f->max) {
                                *why = "a step must be from 1 to the field's largest value";
                                return -EINVAL;
                        }
                        step = v;
                        /* "5/10" is "5-max/10" (Vixie cron, cronie). */
                        if (hi == lo && *item != '*')
                                hi = f->max;
                }
                for (unsigned v = lo; v <= hi; v += step)
                        bits |= UINT64_C(1) << v;
                if (s == end)
                        break;
                if (*s != ',') {
                        *why = "unexpected character; expected a number, name, '*', '-', '/' or ','";
                        return -EINVAL;
                }
                s++;
                if (s == end) {
                        *why = "a list must not end with ','";
                        return -EINVAL;
                }
                continue;
        bad_value:
                *why = r == -ERANGE ? "value out of range" : "expected a number or a name";
                return -EINVAL;
        }
        *ret = bits;
        return 0;
}

int cron_parse(const char *expr, struct cron_spec *ret, char *why, size_t why_size) {
        static const char *const field_names[CRON_FIELDS] = {
                "minute", "hour", "day-of-month", "month", "day-of-week",
        };
        const char *starts[CRON_FIELDS], *ends[CRON_FIELDS], *p, *reason = NULL;
        struct cron_spec c = {};
        size_t n = 0;

        if (!expr || strnlen(expr, CRON_EXPR_MAX + 1) > CRON_EXPR_MAX) {
                snprintf(why, why_size, "longer than %d characters", CRON_EXPR_MAX);
                return -EINVAL;
        }
        p = expr;
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p == '@') {
                size_t len = strcspn(p, " \t");
                const char *rest = p + len;

                while (*rest == ' ' || *rest == '\t')
                        rest++;
                for (size_t i = 0; i < ELEMENTSOF(macros); i++)
                        if (strlen(macros[i].name) == len && strncasecmp(p, macros[i].name, len) == 0 && !*rest)
                                return cron_parse(macros[i].expr, ret, why, why_size);
                snprintf(why, why_size, "unknown macro; expected @yearly, @annually, @monthly, @weekly, @daily, "
                         "@midnight or @hourly");
                return -EINVAL;
        }
        while (*p) {
                if (n == CRON_FIELDS) {
                        snprintf(why, why_size, "more than five fields (minute hour day-of-month month day-of-week)");
                        return -EINVAL;
                }
                starts[n] = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                ends[n++] = p;
                while (*p == ' ' || *p == '\t')
                        p++;
        }
        if (n != CRON_FIELDS) {
                snprintf(why, why_size, "expected five fields: minute hour day-of-month month day-of-week");
                return -EINVAL;
        }
        for (size_t i = 0; i < CRON_FIELDS; i++) {
                uint64_t bits;

                if (parse_field(starts[i], ends[i], &fields[i], &bits, &reason) < 0) {
                        snprintf(why, why_size, "%s field \"%.*s\": %s", field_names[i], (int) (ends[i] - starts[i]),
                                 starts[i], reason);
                        return -EINVAL;
                }
                switch (i) {
                case 0: c.minutes = bits; break;
                case 1: c.hours = (uint32_t) bits; break;
                case 2: c.days = (uint32_t) bits; break;
                case 3: c.months = (uint16_t) bits; break;
                default: c.weekdays = (uint8_t) ((bits | (bits >> 7)) & 0x7f); break; /* 7 is Sunday */
                }
        }
        c.days_star = *starts[2] == '*';
        c.weekdays_star = *starts[4] == '*';
        *ret = c;
        return 0;
}

static bool day_matches(const struct cron_spec *c, const struct tm *tm) {
        bool dom = c->days & (UINT32_C(1) << tm->tm_mday);
        bool dow = c->weekdays & (1u << tm->tm_wday);

        if (c->days_star || c->weekdays_star)
                return dom && dow;
        return dom || dow;
}

/* The lowest set bit of bits at or above from, or -1. */
static int next_bit(uint64_t bits, int from, int max) {
        for (int i = from; i <= max; i++)
                if (bits & (UINT64_C(1) << i))
                        return i;
        return -1;
}

/* mktime() of tm with the DST flag left to the library; never earlier than floor + 60 s, so a
 * time that does not exist (skipped by a DST change) cannot send the search backwards. */
static time_t advance(struct tm *tm, time_t floor) {
        time_t t;

        tm->tm_sec = 0;
        tm->tm_isdst = -1;
        t = mktime(tm);
        return t == (time_t) -1 || t <= floor ? floor + 60 : t;
}

int cron_next(const struct cron_spec *c, uint64_t after_usec, uint64_t *ret_usec) {
        time_t t = (time_t) (after_usec / USEC_PER_SEC);
        struct tm tm;
        int limit_year;

        t = t - t % 60 + 60;
        if (!localtime_r(&t, &tm))
                return -ERANGE;
        limit_year = tm.tm_year + CRON_SEARCH_YEARS;

        for (unsigned step = 0; step < CRON_SEARCH_STEPS; step++) {
                int v;

                if (!localtime_r(&t, &tm) || tm.tm_year > limit_year)
                        return -ERANGE;
                if (!(c->months & (1u << (tm.tm_mon + 1)))) {
                        tm.tm_mon++;
                        tm.tm_mday = 1;
                        tm.tm_hour = tm.tm_min = 0;
                        t = advance(&tm, t);
                        continue;
                }
                if (!day_matches(c, &tm)) {
                        tm.tm_mday++;
                        tm.tm_hour = tm.tm_min = 0;
                        t = advance(&tm, t);
                        continue;
                }
                if (!(c->hours & (UINT32_C(1) << tm.tm_hour))) {
                        v = next_bit(c->hours, tm.tm_hour + 1, 23);
                        if (v < 0) {
                                tm.tm_mday++;
                                tm.tm_hour = 0;
                        } else
                                tm.tm_hour = v;
                        tm.tm_min = 0;
                        t = advance(&tm, t);
                        continue;
                }
                if (!(c->minutes & (UINT64_C(1) << tm.tm_min))) {
                        v = next_bit(c->minutes, tm.tm_min + 1, 59);
                        if (v < 0) {
                                tm.tm_hour++;
                                tm.tm_min = 0;
                        } else
                                tm.tm_min = v;
                        t = advance(&tm, t);
                        continue;
                }
                *ret_usec = (uint64_t) t * USEC_PER_SEC;
                return 0;
        }
        return -ERANGE;
}

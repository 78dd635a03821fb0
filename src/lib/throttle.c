/* Token bucket for delivery throttling (see throttle.h). */
#include "throttle.h"

static uint64_t capacity(const struct throttle_policy *p) {
        unsigned burst = p->burst ? p->burst : 1;

        return p->interval_usec > UINT64_MAX / burst ? UINT64_MAX : p->interval_usec * burst;
}

/* The credit at now: what was left plus the time since, up to a full bucket. A clock that
 * went backwards (it cannot, on CLOCK_MONOTONIC, but tests pass any value) adds nothing. */
static uint64_t credit_at(const struct throttle *t, const struct throttle_policy *p, uint64_t now) {
        uint64_t cap = capacity(p), c;

        if (!t->started)
                return cap;
        c = t->credit_usec;
        if (now > t->updated_usec)
                c = now - t->updated_usec > cap - (c < cap ? c : cap) ? cap : c + (now - t->updated_usec);
        return c < cap ? c : cap;
}

uint64_t throttle_wait(const struct throttle *t, const struct throttle_policy *p, uint64_t now) {
        uint64_t c;

        if (p->interval_usec == 0)
                return 0;
        c = credit_at(t, p, now);
        return c >= p->interval_usec ? 0 : p->interval_usec - c;
}

void throttle_take(struct throttle *t, const struct throttle_policy *p, uint64_t now) {
        uint64_t c;

        if (p->interval_usec == 0)
                return;
        c = credit_at(t, p, now);
        t->credit_usec = c >= p->interval_usec ? c - p->interval_usec : 0;
        t->updated_usec = now;
        t->started = true;
}

/* Restart policy for supervised processes: exponential backoff between restarts and a burst
 * limit (at most `burst` starts within `interval`), after which the caller gives up. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define RESTART_HISTORY_MAX 64

struct restart_policy {
        uint64_t delay_min_usec;
        uint64_t delay_max_usec;
        unsigned burst;
        uint64_t interval_usec;
};

struct restart_history {
        uint64_t times[RESTART_HISTORY_MAX]; /* monotonic start times within the interval */
        unsigned n;
};

/* Forgets restarts older than the policy's interval, as seen at `now`. */
void restart_history_prune(struct restart_history *h, const struct restart_policy *p, uint64_t now);

/* True if one more restart at `now` stays within the burst limit; records it if so. */
bool restart_history_admit(struct restart_history *h, const struct restart_policy *p, uint64_t now);

/* Delay before the next restart: delay_min * 2^(restarts in the window), capped at delay_max. */
uint64_t restart_delay(const struct restart_history *h, const struct restart_policy *p);

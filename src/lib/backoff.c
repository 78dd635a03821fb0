/* Exponential backoff with a burst limit (see backoff.h). */

#include <string.h>

#include "backoff.h"

void restart_history_prune(struct restart_history *h, const struct restart_policy *p, uint64_t now) {
        unsigned keep = 0;

        for (unsigned i = 0; i < h->n; i++)
                if (now < h->times[i] || now - h->times[i] < p->interval_usec)
                        h->times[keep++] = h->times[i];
        h->n = keep;
}

bool restart_history_admit(struct restart_history *h, const struct restart_policy *p, uint64_t now) {
        unsigned burst = p->burst < RESTART_HISTORY_MAX ? p->burst : RESTART_HISTORY_MAX;

        restart_history_prune(h, p, now);
        if (h->n >= burst)
                return false;
        h->times[h->n++] = now;
        return true;
}

uint64_t restart_delay(const struct restart_history *h, const struct restart_policy *p) {
        uint64_t d = p->delay_min_usec;

        for (unsigned i = 0; i < h->n && d < p->delay_max_usec; i++)
                d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        return d < p->delay_max_usec ? d : p->delay_max_usec;
}

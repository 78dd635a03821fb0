/* Delivery throttling: a token bucket per receiver. Each delivery (one write of everything
 * waiting, however many messages) takes a token; tokens come back one per interval, up to
 * burst. The supervisor keeps one per command actor (actors.c), on CLOCK_MONOTONIC. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct throttle_policy {
        uint64_t interval_usec; /* 0: no throttling */
        unsigned burst;         /* deliveries allowed back to back after a quiet period (>= 1) */
};

struct throttle {
        uint64_t credit_usec;  /* tokens, in units of time: interval_usec is one token */
        uint64_t updated_usec; /* when credit_usec was last brought up to date */
        bool started;          /* false: a full bucket */
};

/* How long a delivery at now must wait: 0 when it may happen now. */
uint64_t throttle_wait(const struct throttle *t, const struct throttle_policy *p, uint64_t now);
/* Records a delivery at now (after throttle_wait() said 0). */
void throttle_take(struct throttle *t, const struct throttle_policy *p, uint64_t now);

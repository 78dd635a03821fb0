/* Per-client request rate limiting: one token bucket per client key (GCRA), in a fixed-size
 * table with least-recently-used eviction, so a flood of distinct addresses costs no memory. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Table size the gateway uses; a table of this size takes about 430 KiB. */
#define RATELIMIT_CAPACITY_DEFAULT 4096u
/* Keys are compared on their first RATELIMIT_KEY_MAX bytes (an IPv6 address with a zone id
 * fits); longer keys share the bucket of that prefix. */
#define RATELIMIT_KEY_MAX 64u
/* Longest text ratelimit_client_key() writes, NUL included. */
#define RATELIMIT_CLIENT_KEY_SIZE 64u

struct ratelimit;

/* per_minute: sustained requests per minute per key; 0 turns the limit off (every take is
 * allowed). burst: requests a key may make at once after being idle (0 is taken as 1).
 * capacity: keys tracked at once (at least 1). */
int ratelimit_new(unsigned per_minute, unsigned burst, size_t capacity, struct ratelimit **ret);
struct ratelimit *ratelimit_free(struct ratelimit *rl);
static inline void ratelimit_freep(struct ratelimit **rl) {
        if (*rl)
                *rl = ratelimit_free(*rl);
}

/* The burst the gateway uses for [gateway] rate_limit: ten seconds' worth of requests, but at
 * least 10 (a page load fetches several things at once) and never more than the minute's. */
unsigned ratelimit_default_burst(unsigned per_minute);

/* Counts one request of `key` at `now_usec` (CLOCK_MONOTONIC). Returns 0 when it is allowed,
 * else the seconds until the key may make a request again (for Retry-After, at least 1); a
 * refused request uses up nothing. */
unsigned ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_usec);

/* Like ratelimit_take() but counts nothing and tracks no new key. */
unsigned ratelimit_peek(const struct ratelimit *rl, const char *key, uint64_t now_usec);

/* Keys currently tracked, and keys dropped so far to make room for others. */
size_t ratelimit_size(const struct ratelimit *rl);
uint64_t ratelimit_evictions(const struct ratelimit *rl);

/* The key for a client address: an IPv4 address as text ("192.0.2.1", also for IPv4-mapped IPv6),
 * an IPv6 address as its /64 ("2001:db8:1:2::/64": one host usually holds a whole /64, so
 * per-address keys would let it rotate addresses past the limit), "local" for AF_UNIX.
 * buf needs RATELIMIT_CLIENT_KEY_SIZE bytes. 0, -EAFNOSUPPORT or -EINVAL (short sockaddr). */
int ratelimit_client_key(const struct sockaddr *sa, socklen_t sa_len, char *buf, size_t size);

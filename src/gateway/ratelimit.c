/* Per-client rate limiting (see ratelimit.h). Each key holds one number, its theoretical
 * arrival time (GCRA: the bucket is full when it lies in the past); entries live in a fixed
 * array, found through a seeded hash with chaining and ordered by last use for eviction. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>
#include <time.h>

#include "macro.h"
#include "ratelimit.h"

#define NIL UINT32_MAX
#define CAPACITY_MAX (1u << 22)
#define USEC_PER_MINUTE (60u * USEC_PER_SEC)

struct entry {
        uint64_t tat_usec; /* the bucket is full at and after this time */
        uint32_t hash;
        uint32_t chain_next; /* next entry in the same hash slot */
        uint32_t lru_prev, lru_next;
        uint8_t key_len;
        char key[RATELIMIT_KEY_MAX];
};

struct ratelimit {
        uint64_t interval_usec;  /* one request's worth of time: a minute / per_minute */
        uint64_t tolerance_usec; /* how far ahead of now the arrival time may run: burst - 1 */
        uint64_t seed;
        uint64_t evictions;
        uint32_t capacity, used, slot_mask;
        uint32_t lru_first, lru_last; /* most and least recently used */
        uint32_t *slots;
        struct entry *entries;
        bool off;
};

unsigned ratelimit_default_burst(unsigned per_minute) {
        unsigned burst = per_minute / 6;

        if (burst < 10)
                burst = 10;
        if (burst > per_minute)
                burst = per_minute;
        return burst ? burst : 1;
}

int ratelimit_new(unsigned per_minute, unsigned burst, size_t capacity, struct ratelimit **ret) {
        struct ratelimit *rl;
        size_t n_slots = 1;

        if (capacity == 0 || capacity > CAPACITY_MAX)
                return -EINVAL;
        rl = calloc(1, sizeof *rl);
        if (!rl)
                return -ENOMEM;
        rl->off = per_minute == 0;
        if (!rl->off) {
                rl->interval_usec = (USEC_PER_MINUTE + per_minute / 2) / per_minute;
                if (rl->interval_usec == 0)
                        rl->interval_usec = 1;
                rl->tolerance_usec = rl->interval_usec * ((burst ? burst : 1) - 1);
        }
        while (n_slots < capacity * 2)
                n_slots <<= 1;
        rl->capacity = (uint32_t) capacity;
        rl->slot_mask = (uint32_t) (n_slots - 1);
        rl->lru_first = rl->lru_last = NIL;
        rl->slots = malloc(n_slots * sizeof *rl->slots);
        rl->entries = calloc(capacity, sizeof *rl->entries);
        if (!rl->slots || !rl->entries) {
                ratelimit_free(rl);
                return -ENOMEM;
        }
        memset(rl->slots, 0xff, n_slots * sizeof *rl->slots);
        /* A per-table seed keeps clients from choosing keys that share a slot. Placement is all
         * it affects, so a weak fallback is harmless. */
        if (getrandom(&rl->seed, sizeof rl->seed, GRND_NONBLOCK) != (ssize_t) sizeof rl->seed)
                rl->seed = (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) rl;
        *ret = rl;
        return 0;
}

struct ratelimit *ratelimit_free(struct ratelimit *rl) {
        if (rl) {
                free(rl->slots);
                free(rl->entries);
                free(rl);
        }
        return NULL;
}

size_t ratelimit_size(const struct ratelimit *rl) {
        return rl->used;
}

uint64_t ratelimit_evictions(const struct ratelimit *rl) {
        return rl->evictions;
}

static uint32_t key_hash(const struct ratelimit *rl, const char *key, size_t len) {
        uint64_t h = 0xcbf29ce484222325ULL ^ rl->seed;

        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char) key[i];
                h *= 0x100000001b3ULL;
        }
        /* FNV's low bits mix poorly; finish with splitmix64's. */
        h ^= h >> 30;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 27;
        h *= 0x94d049bb133111ebULL;
        h ^= h >> 31;
        return (uint32_t) h;
}

static size_t key_length(const char *key) {
        return strnlen(key, RATELIMIT_KEY_MAX);
}

static uint32_t lookup(const struct ratelimit *rl, const char *key, size_t len, uint32_t hash) {
        for (uint32_t i = rl->slots[hash & rl->slot_mask]; i != NIL; i = rl->entries[i].chain_next) {
                const struct entry *e = &rl->entries[i];
                if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0)
                        return i;
        }
        return NIL;
}

static void lru_unlink(struct ratelimit *rl, uint32_t i) {
        struct entry *e = &rl->entries[i];

        if (e->lru_prev != NIL)
                rl->entries[e->lru_prev].lru_next = e->lru_next;
        else
                rl->lru_first = e->lru_next;
        if (e->lru_next != NIL)
                rl->entries[e->lru_next].lru_prev = e->lru_prev;
        else
                rl->lru_last = e->lru_prev;
}

static void lru_push_first(struct ratelimit *rl, uint32_t i) {
        struct entry *e = &rl->entries[i];

        e->lru_prev = NIL;
        e->lru_next = rl->lru_first;
        if (rl->lru_first != NIL)
                rl->entries[rl->lru_first].lru_prev = i;
        rl->lru_first = i;
        if (rl->lru_last == NIL)
                rl->lru_last = i;
}

static void chain_unlink(struct ratelimit *rl, uint32_t i) {
        uint32_t *link = &rl->slots[rl->entries[i].hash & rl->slot_mask];

        while (*link != i)
                link = &rl->entries[*link].chain_next;
        *link = rl->entries[i].chain_next;
}

/* A slot for a new key: an unused one, else the least recently used key's. */
static uint32_t entry_new(struct ratelimit *rl, const char *key, size_t len, uint32_t hash) {
        uint32_t i, *slot;
        struct entry *e;

        if (rl->used < rl->capacity)
                i = rl->used++;
        else {
                i = rl->lru_last;
                lru_unlink(rl, i);
                chain_unlink(rl, i);
                rl->evictions++;
        }
        e = &rl->entries[i];
        slot = &rl->slots[hash & rl->slot_mask];
        e->hash = hash;
        e->key_len = (uint8_t) len;
        memcpy(e->key, key, len);
        e->chain_next = *slot;
        *slot = i;
        lru_push_first(rl, i);
        return i;
}

/* Seconds, rounded up, until a key whose arrival time is tat may make a request; 0 now. */
static unsigned wait_seconds(const struct ratelimit *rl, uint64_t tat, uint64_t now) {
        uint64_t wait;

        if (tat <= now || tat - now <= rl->tolerance_usec)
                return 0;
        wait = tat - now - rl->tolerance_usec;
        wait = (wait + USEC_PER_SEC - 1) / USEC_PER_SEC;
        return wait > 0xffffffu ? 0xffffffu : (unsigned) wait;
}

unsigned ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_usec) {
        size_t len;
        uint32_t hash, i;
        unsigned wait;
        uint64_t tat;

        if (rl->off)
                return 0;
        len = key_length(key);
        hash = key_hash(rl, key, len);
        i = lookup(rl, key, len, hash);
        if (i == NIL) {
                i = entry_new(rl, key, len, hash);
                rl->entries[i].tat_usec = now_usec;
        } else {
                lru_unlink(rl, i);
                lru_push_first(rl, i);
        }
        tat = rl->entries[i].tat_usec > now_usec ? rl->entries[i].tat_usec : now_usec;
        wait = wait_seconds(rl, tat, now_usec);
        if (wait == 0)
                rl->entries[i].tat_usec = tat > UINT64_MAX - rl->interval_usec ? UINT64_MAX : tat + rl->interval_usec;
        return wait;
}

unsigned ratelimit_peek(const struct ratelimit *rl, const char *key, uint64_t now_usec) {
        size_t len;
        uint32_t hash, i;

        if (rl->off)
                return 0;
        len = key_length(key);
        hash = key_hash(rl, key, len);
        i = lookup(rl, key, len, hash);
        return i == NIL ? 0 : wait_seconds(rl, rl->entries[i].tat_usec, now_usec);
}

int ratelimit_client_key(const struct sockaddr *sa, socklen_t sa_len, char *buf, size_t size) {
        if (!sa || sa_len < (socklen_t) sizeof(sa_family_t) || size < RATELIMIT_CLIENT_KEY_SIZE)
                return -EINVAL;
        switch (sa->sa_family) {
        case AF_INET: {
                struct sockaddr_in in;
                if (sa_len < (socklen_t) sizeof in)
                        return -EINVAL;
                memcpy(&in, sa, sizeof in);
                return inet_ntop(AF_INET, &in.sin_addr, buf, (socklen_t) size) ? 0 : -EINVAL;
        }
        case AF_INET6: {
                struct sockaddr_in6 in6;
                size_t n;
                if (sa_len < (socklen_t) sizeof in6)
                        return -EINVAL;
                memcpy(&in6, sa, sizeof in6);
                if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
                        return inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], buf, (socklen_t) size) ? 0 : -EINVAL;
                memset(&in6.sin6_addr.s6_addr[8], 0, 8);
                if (!inet_ntop(AF_INET6, &in6.sin6_addr, buf, (socklen_t) size))
                        return -EINVAL;
                n = strlen(buf);
                if (n + 4 > size)
                        return -EINVAL;
                memcpy(buf + n, "/64", 4);
                return 0;
        }
        case AF_UNIX:
                memcpy(buf, "local", 6);
                return 0;
        default:
                return -EAFNOSUPPORT;
        }
}

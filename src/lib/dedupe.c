/* Recent external ids (dedupe.h): a ring of entries in insertion order plus a chained hash index
 * over it, so lookups and inserts are O(1) and the oldest entry is the one evicted. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "macro.h"

#define NONE SIZE_MAX

struct entry {
        char *key;
        char event_id[32];
        uint64_t seq;
        uint64_t hash;
        size_t next; /* in its bucket's chain */
};

struct dedupe {
        struct entry *ring;
        size_t capacity, head, size; /* head: the oldest entry */
        size_t *buckets;
        size_t n_buckets;
};

static uint64_t hash_key(const char *s) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 1099511628211ULL;
        }
        return h;
}

int dedupe_new(size_t capacity, struct dedupe **ret) {
        struct dedupe *d;

        if (capacity == 0)
                return -EINVAL;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->capacity = capacity;
        d->n_buckets = 1;
        while (d->n_buckets < capacity * 2)
                d->n_buckets <<= 1;
        d->ring = calloc(capacity, sizeof *d->ring);
        d->buckets = malloc(d->n_buckets * sizeof *d->buckets);
        if (!d->ring || !d->buckets) {
                dedupe_free(d);
                return -ENOMEM;
        }
        for (size_t i = 0; i < d->n_buckets; i++)
                d->buckets[i] = NONE;
        *ret = d;
        return 0;
}

void dedupe_free(struct dedupe *d) {
        if (!d)
                return;
        for (size_t i = 0; d->ring && i < d->capacity; i++)
                free(d->ring[i].key);
        free(d->ring);
        free(d->buckets);
        free(d);
}

static size_t find_index(const struct dedupe *d, const char *key, uint64_t h) {
        for (size_t i = d->buckets[h & (d->n_buckets - 1)]; i != NONE; i = d->ring[i].next)
                if (d->ring[i].hash == h && streq(d->ring[i].key, key))
                        return i;
        return NONE;
}

static void unlink_index(struct dedupe *d, size_t index) {
        size_t *p = &d->buckets[d->ring[index].hash & (d->n_buckets - 1)];

        while (*p != NONE) {
                if (*p == index) {
                        *p = d->ring[index].next;
                        return;
                }
                p = &d->ring[*p].next;
        }
}

int dedupe_add(struct dedupe *d, const char *key, const char *event_id, uint64_t seq) {
        uint64_t h;
        size_t i;
        struct entry *e;
        char *copy;

        if (!key || !*key || strlen(key) > DEDUPE_KEY_MAX || !event_id || strlen(event_id) >= sizeof e->event_id)
                return -EINVAL;
        h = hash_key(key);
        i = find_index(d, key, h);
        if (i != NONE) {
                snprintf(d->ring[i].event_id, sizeof d->ring[i].event_id, "%s", event_id);
                d->ring[i].seq = seq;
                return 0;
        }
        copy = strdup(key);
        if (!copy)
                return -ENOMEM;
        if (d->size == d->capacity) {
                /* Full: the oldest makes room. */
                i = d->head;
                unlink_index(d, i);
                free(d->ring[i].key);
                d->head = (d->head + 1) % d->capacity;
        } else {
                i = (d->head + d->size) % d->capacity;
                d->size++;
        }
        e = &d->ring[i];
        e->key = copy;
        e->hash = h;
        e->seq = seq;
        snprintf(e->event_id, sizeof e->event_id, "%s", event_id);
        e->next = d->buckets[h & (d->n_buckets - 1)];
        d->buckets[h & (d->n_buckets - 1)] = i;
        return 0;
}

int dedupe_find(const struct dedupe *d, const char *key, const char **ret_event_id, uint64_t *ret_seq) {
        size_t i;

        if (!d || !key)
                return 0;
        i = find_index(d, key, hash_key(key));
        if (i == NONE)
                return 0;
        if (ret_event_id)
                *ret_event_id = d->ring[i].event_id;
        if (ret_seq)
                *ret_seq = d->ring[i].seq;
        return 1;
}

size_t dedupe_size(const struct dedupe *d) {
        return d ? d->size : 0;
}

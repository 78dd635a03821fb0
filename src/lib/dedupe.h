/* The external ids (a channel's message id, a webhook's delivery id) of a group's most recent
 * messages, so a delivery retried by a platform is stored once. Bounded: the last `capacity`
 * ids are remembered (the window is documented; platforms retry within minutes). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define DEDUPE_KEY_MAX 200

struct dedupe;

int dedupe_new(size_t capacity, struct dedupe **ret);
void dedupe_free(struct dedupe *d);
/* Remembers key → (event id, seq); the oldest entry goes when full. A key already present is
 * updated. */
int dedupe_add(struct dedupe *d, const char *key, const char *event_id, uint64_t seq);
/* The event stored for key: 1 with *ret_event_id (borrowed) and *ret_seq, or 0. */
int dedupe_find(const struct dedupe *d, const char *key, const char **ret_event_id, uint64_t *ret_seq);
size_t dedupe_size(const struct dedupe *d);

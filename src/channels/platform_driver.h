/* Helpers shared by the platform drivers (telegram.c, slack.c, discord.c, matrix.c, email.c):
 * turning a platform's error into a delivery result, reversible encoding of platform ids into
 * the characters channel.h allows, a poll backoff, and remembering which parts of a split
 * message already went out so a retry does not send them twice. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "channel.h"
#include "platform.h"

/* Completes d from a failed call: transient when the platform said so (429, 5xx, network),
 * with its retry_after; permanent otherwise. error: the call's -errno (0: the platform
 * answered with an error). */
void platform_delivery_failed(struct channel_delivery *d, int error, const struct platform_error *err);

/* Encodes an id for channel.h ([A-Za-z0-9.:@-]; everything else, and '_', as "_XX").
 * Returns NULL when the result would exceed max bytes, or on ENOMEM. */
char *platform_id_encode(const char *id, size_t max);
/* The reverse; NULL for a malformed encoding. */
char *platform_id_decode(const char *id);

/* Poll/reconnect backoff: 1 s doubling to 60 s; a platform's retry_after wins. */
uint64_t platform_backoff_usec(unsigned failures, uint64_t retry_after_usec);

/* Parts of split messages already sent, by delivery id (in memory, bounded: the oldest entry
 * is forgotten first). */
#define PLATFORM_PARTS_MAX 64
struct platform_parts {
        struct {
                char *delivery_id;
                unsigned done;
                char *first_id;
        } e[PLATFORM_PARTS_MAX];
        unsigned next;
};
/* Parts of delivery_id known to be sent (0 when unknown) and the first part's id (may be NULL). */
unsigned platform_parts_done(const struct platform_parts *p, const char *delivery_id, const char **ret_first_id);
/* Records that `done` parts are sent; first_id is the platform id of part 1. */
void platform_parts_set(struct platform_parts *p, const char *delivery_id, unsigned done, const char *first_id);
void platform_parts_forget(struct platform_parts *p, const char *delivery_id);
void platform_parts_clear(struct platform_parts *p);

/* Is the host of an http(s)/imap/smtp URL a loopback address ("localhost", 127.x, [::1])? */
bool platform_url_is_loopback(const char *url);
/* Checks a base URL setting: http(s) only, http only to loopback. Returns 0 or reports via chk. */
int platform_check_base_url(struct channel_check *chk, const char *key, const char *url);

/* Rules about channel users that conclave-channels and the supervisor both apply: who may talk
 * through a channel (allowed_users) and which actor id stands for a platform user. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define CHANNEL_ACTOR_ID_MAX 64

/* allowed_users lists platform user ids; "*" allows everyone; an empty list allows nobody.
 * ASCII case-insensitive (IRC nicks, e-mail addresses, Slack ids are not case-sensitive). */
bool channel_policy_allowed(const struct config_channel *ch, const char *user);

/* The id of the human actor for user on channel: "CHANNEL-USER", lower-cased, every character
 * that is not a letter, digit, '-' or '_' replaced by '_', and when that changed anything or
 * had to be shortened, "-" and 8 hex digits of a hash of the exact user id appended, so two
 * users never share an actor. salt > 0 makes another candidate for the (rare) clash with an
 * existing actor of that id. buf must hold CHANNEL_ACTOR_ID_MAX + 1 bytes. */
void channel_policy_actor_id(const char *channel, const char *user, unsigned salt, char *buf, size_t size);

/* How chat users address someone in a message, as one rule for the supervisor's channels and
 * its llm actors. ASCII case-insensitive; an id is letters, digits, '-' and '_', so "gpt" is not
 * addressed by "gpt-4: …" nor by "@gpt_bot".
 *
 * channel_policy_addresses: text starts (after blanks) by addressing id: "id: …", "id, …" or
 * "@id …" — the message is for id. */
bool channel_policy_addresses(const char *text, const char *id);
/* channel_policy_mentions: text addresses id as above, or names "@id" anywhere. */
bool channel_policy_mentions(const char *text, const char *id);

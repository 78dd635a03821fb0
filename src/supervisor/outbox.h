/* A group's channel outbox: which human actors are bound to a channel user, and which messages
 * to them still owe a delivery through their channel. Derived from the ledger alone, like
 * group_state.h, so it can be rebuilt and is saved to groups/<id>/state/outbox.json:
 *
 *   actor.added {actor_id, channel, external_user}  binds the actor to that platform user (the
 *                                                   binding starts at that event's seq)
 *   actor.removed {actor_id}                        unbinds it and drops what it was owed
 *   chat.message {to, …} by B                       owes a delivery to every bound actor A it is
 *                                                   addressed to (A listed, or "@all" and A ≠ B),
 *                                                   unless B is bound to A's channel too (the
 *                                                   platform already showed it to A)
 *   chat.delivery {event_id, actor, status}         "attempted": one more attempt, in doubt until
 *                                                   its outcome is recorded; "deferred": that
 *                                                   attempt failed, another follows; "succeeded",
 *                                                   "failed", "unconfirmed": settled, no longer owed
 * Events must be applied in seq order; unknown kinds are ignored. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats.h" /* OUTBOX_FORMAT_VERSION */
/* Deliveries a group may owe at once; past this, new ones are refused (and logged by the caller). */
#define OUTBOX_PENDING_MAX 10000
#define OUTBOX_BINDINGS_MAX 10000

struct outbox_binding {
        char *actor;
        char *channel;
        char *user;   /* the platform user id */
        uint64_t seq; /* of the actor.added event */
};

struct outbox_entry {
        uint64_t seq;      /* of the chat.message */
        char event_id[27];
        char *actor;       /* recipient */
        unsigned attempts; /* "attempted" events recorded */
        bool in_doubt;     /* the last attempt has no recorded outcome */
};

struct outbox {
        uint64_t last_seq;
        struct outbox_binding *bindings;
        size_t n_bindings;
        struct outbox_entry *pending; /* in seq order */
        size_t n_pending;
        size_t refused;               /* deliveries not owed because the outbox was full */
};

int outbox_new(struct outbox **ret);
void outbox_free(struct outbox *o);

/* Applies one event (seq must be last_seq + 1, else -EINVAL and nothing changes). Returns the
 * number of deliveries it added (0 or more), or -errno. */
int outbox_apply(struct outbox *o, struct json_object *event);

const struct outbox_binding *outbox_binding_by_actor(const struct outbox *o, const char *actor);
/* Platform user ids compare ASCII case-insensitively (as allowed_users does). */
const struct outbox_binding *outbox_binding_by_user(const struct outbox *o, const char *channel, const char *user);
struct outbox_entry *outbox_find(const struct outbox *o, const char *event_id, const char *actor);

/* {"format_version":1,"last_seq":N,"bindings":[…],"pending":[…]} */
struct json_object *outbox_to_json(const struct outbox *o);
int outbox_from_json(struct json_object *j, struct outbox **ret);

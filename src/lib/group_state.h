/* Derived state of a group, computed from its ledger events alone: members, read cursors, open
 * obligations (with the reminders sent for them) and scheduled messages. Applying the events
 * one by one (incrementally, as they are appended) and rebuilding from the whole ledger give
 * identical state. Saved to groups/<id>/state/state.json
 * with the seq it reflects, so a restart only applies what came after.
 *
 * Rules (the ledger event kinds that matter here):
 *   actor.added {actor_id, kind}            member joins; actor.removed {actor_id} leaves
 *   chat.message {text, to:[ids]|["@all"], reply_to: event id, priority: "normal"|"attention",
 *                 reply_required: bool}
 *     - recipients: the listed ids, or every member except the sender for "@all" or no "to"
 *     - reply_required: each recipient owes a reply (obligation kind "reply")
 *     - priority "attention": each recipient owes an ack (obligation kind "ack")
 *     - a chat.message by X with reply_to = E closes X's "reply" obligation for E
 *   chat.ack {event_id}                     closes the sender's "ack" obligation for event_id
 *   chat.read {up_to_seq}                   moves the sender's read cursor forward (never back)
 *   system.notify {to:[id], reason:"reminder", reminder:N, obligation:{kind, actor, event_id}}
 *     - records reminder N (and its time) on that obligation, if it is still open
 *   schedule.added {kind:"every"|"at"|"cron", every_usec|at|cron, …}   a schedule, named by
 *     the event's id; schedule.removed {schedule_id} ends it
 *     - a chat.message with data.schedule_id is a run of it: records data.due (or the event's
 *       ts) as its last due time; an "at" schedule ends with its run
 * Unknown kinds are ignored (forward compatibility). Events must be applied in seq order. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "schedule.h"

#define GROUP_STATE_FORMAT_VERSION 1

enum obligation_kind {
        OBLIGATION_REPLY,
        OBLIGATION_ACK,
};

struct obligation {
        enum obligation_kind kind;
        char actor_id[65];    /* who owes it */
        char event_id[27];    /* the message that created it */
        uint64_t seq;         /* its seq */
        char from[65];        /* who sent the message */
        uint64_t created_ms;  /* the message's ts, ms since the epoch (for reminders) */
        unsigned reminders;   /* reminders sent for it (system.notify) */
        uint64_t reminded_ms; /* when the last one was sent; 0: none */
};

struct schedule_entry {
        char id[27];          /* the schedule.added event's id */
        uint64_t seq;         /* its seq */
        enum schedule_kind kind;
        uint64_t every_usec;  /* SCHEDULE_EVERY */
        uint64_t at_ms;       /* SCHEDULE_AT */
        char cron[CRON_EXPR_MAX + 1]; /* SCHEDULE_CRON, as written */
        uint64_t created_ms;  /* the schedule.added event's ts */
        uint64_t last_due_ms; /* the due time of its last run; 0: it never ran */
        uint64_t runs;
};

struct group_state;

int group_state_new(struct group_state **ret);
void group_state_free(struct group_state *gs);

/* Applies one event. -EINVAL if its seq is not last_seq+1 (out of order) or it is malformed
 * in a way that matters (e.g. chat.message without "by"); the state is unchanged then. */
int group_state_apply(struct group_state *gs, struct json_object *event);
uint64_t group_state_last_seq(const struct group_state *gs);

bool group_state_is_member(const struct group_state *gs, const char *actor_id);
/* Members in the order they were added; valid until the next apply. */
size_t group_state_members(const struct group_state *gs, const char *const **ret);
uint64_t group_state_cursor(const struct group_state *gs, const char *actor_id);

/* Open obligations, oldest first. actor_id NULL: everybody's. Returns the count and a newly
 * allocated array in *ret (free()). */
int group_state_obligations(const struct group_state *gs, const char *actor_id, struct obligation **ret);
/* Is this message (by event id) an open obligation for actor_id of that kind? */
bool group_state_owes(const struct group_state *gs, const char *actor_id, const char *event_id,
                      enum obligation_kind kind);

/* Schedules in the order added. Returns the count and a newly allocated array in *ret (free()),
 * NULL when there are none. */
int group_state_schedules(const struct group_state *gs, struct schedule_entry **ret);
/* The schedule with this id (the schedule.added event's id), or NULL; valid until the next apply. */
const struct schedule_entry *group_state_schedule(const struct group_state *gs, const char *id);

/* Is the chat.message or system.notify `event` addressed to actor_id (and not sent by it)? Uses
 * the members as they are now for "@all"; meant for inbox listings and delivery. */
bool group_state_addressed_to(const struct group_state *gs, struct json_object *event, const char *actor_id);

/* Serialisation for state/state.json: {"format_version":1,"last_seq":N,...}. */
struct json_object *group_state_to_json(const struct group_state *gs);
int group_state_from_json(struct json_object *o, struct group_state **ret);
/* Equal state (for rebuild == incremental tests). */
bool group_state_equal(const struct group_state *a, const struct group_state *b);

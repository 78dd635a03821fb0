/* Groups: registry.json, groups/<id>/group.json, the ledger and the derived state of each group,
 * and the one path every event takes: append → durable (per [runtime] ledger_sync, with group
 * commit for "batch") → answer the caller, stream to followers, deliver to command actors. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "formats.h"
#include "group_state.h"
#include "ledger.h"

#define ID_MAX 64
#define MESSAGE_TEXT_MAX (64u * 1024u)

struct supervisor;
struct control_request;
struct actor;
struct outbox;

enum group_run_state {
        GROUP_IDLE,
        GROUP_ACTIVE,
        GROUP_PAUSED,
        GROUP_STOPPED,
};

struct pending_event {
        struct json_object *event;   /* NULL: only an answer waiting for the events before it */
        struct control_request *req; /* answered with {event_id, seq} once durable; may be NULL */
        struct json_object *result;  /* answer instead of {event_id, seq}; may be NULL */
        struct pending_event *next;
};

struct group {
        struct supervisor *supervisor;
        char *id;
        char *title;
        char *dir;
        char created[40];
        enum group_run_state state;
        char *broken; /* why the ledger cannot be used; NULL when fine */

        struct ledger *ledger;
        struct group_state *gs;
        uint64_t config_seq;      /* last seq reflected in group.json */
        uint64_t state_saved_seq; /* last seq saved to state/state.json */
        uint64_t last_event_ms;

        struct actor **actors;
        size_t n_actors;

        struct pending_event *pending, **pending_tail;
        struct dedupe *dedupe; /* external ids of recent messages (channel retries) */
        struct outbox *outbox; /* deliveries owed through channels (channel_hub.h) */
        uint64_t outbox_saved_seq;

        struct ledger_verify *verify; /* full check of the ledger running in the background */
        sd_event_source *verify_source;
};

/* The last seq that is durable under [runtime] ledger_sync (later ones wait for the group commit
 * and reach followers when it is done). */
uint64_t group_durable_seq(const struct group *g);
/* How many recent external ids a group remembers (dedupe.h). */
#define GROUP_DEDUPE_WINDOW 10000
/* Remembers the external id of a chat.message event, if it has one. */
void group_dedupe_remember(struct group *g, struct json_object *event);

struct follower {
        struct control_request *req;
        char *group_id; /* NULL: every group */
        struct follower *next;
};

/* Loads registry.json and every group in it (recovering ledgers; a corrupt one marks its group
 * broken and leaves the others running). Starts the command actors of active groups. */
int groups_load(struct supervisor *s);
void groups_free(struct supervisor *s);
/* Makes pending events durable now (stop, batch timer). */
void groups_flush(struct supervisor *s);
/* Stops every actor (daemon shutdown); done when groups_actors_stopped(). */
void groups_stop_actors(struct supervisor *s);
bool groups_actors_stopped(struct supervisor *s);

struct group *group_find(struct supervisor *s, const char *id);
int group_create(struct supervisor *s, const char *id, const char *title, struct control_request *req);
int group_set_state(struct group *g, enum group_run_state st, struct control_request *req);
int group_delete(struct group *g, char **ret_moved_to);
const char *group_run_state_to_string(enum group_run_state st);
struct json_object *group_to_json(struct group *g);

/* Appends an event; once durable answers req (if any) with {"event_id","seq","group"}, streams
 * it to followers and delivers it to command actors. data is borrowed. *ret_event (optional)
 * receives the appended event (borrowed; valid until the next append). */
int group_append(struct group *g, const char *kind, const char *by, struct json_object *data,
                 struct control_request *req, struct json_object **ret_event);

/* Answers req with result (borrowed) once every event appended so far is durable. */
int group_reply_when_durable(struct group *g, struct control_request *req, struct json_object *result);

/* Resolves an event named by id (26-char ULID) or seq (decimal) to its event. */
int group_find_event(struct group *g, const char *name, struct json_object **ret);

int follower_add(struct supervisor *s, struct control_request *req, const char *group_id);

bool valid_id(const char *s);

/* Actors of a group. Command actors are programs Conclave runs and supervises: messages in as
 * JSON lines on stdin, their answers as JSON lines on stdout, stderr to the journal with
 * CONCLAVE_GROUP=/CONCLAVE_ACTOR=, restarted with backoff when they exit. human and llm actors
 * are delivered by channels and providers; here they only have inboxes. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "throttle.h"

struct group;
struct llm_actor;

enum actor_runtime {
        ACTOR_STOPPED,
        ACTOR_RUNNING,
        ACTOR_STOPPING,
        ACTOR_BACKOFF,
        ACTOR_FAILED,
};

struct actor {
        struct group *group;
        char *id;
        char *kind; /* command | human | llm */
        char *title;
        char **command; /* argv, NULL-terminated; command actors only */
        struct llm_actor *llm; /* llm actors only (llm.h) */
        bool enabled;   /* meant to run while the group is active */

        enum actor_runtime runtime;
        pid_t pid;
        int stdin_fd, stdout_fd, stderr_fd;
        sd_event_source *stdin_source, *stdout_source, *stderr_source, *child_source, *timer;
        char *out;                /* pending stdin bytes */
        size_t out_len, out_pos;
        char *line;               /* partial stdout line */
        size_t line_len;
        char *errline;            /* partial stderr line */
        size_t errline_len;
        uint64_t delivered_seq;   /* highest seq considered for delivery to stdin */
        struct throttle throttle; /* [automation] throttle_min_interval, throttle_burst */
        sd_event_source *throttle_timer; /* armed while a delivery waits for the throttle */
        uint64_t throttled_until; /* CLOCK_MONOTONIC; meaningful while throttle_timer is armed */
        uint64_t deliveries;      /* writes of one or more messages to stdin */
        uint64_t batches;         /* of those, the ones with several messages */
        bool restart_requested;   /* `actor restart`: start again once it exited */
        bool term_sent;           /* stopping: SIGTERM already sent */

        unsigned restarts;
        struct restart_history history;
        char last_exit[64];
        uint64_t last_exit_realtime_usec;
};

bool actor_is_command(const struct actor *a);
struct actor *actor_new(struct group *g, const char *id, const char *kind, const char *title,
                        struct json_object *command);
void actor_free(struct actor *a);
/* Makes a an llm actor with these stored settings (llm_settings.h; may be NULL). */
int actor_set_llm(struct actor *a, struct json_object *settings);

/* Runs the actor if it should (command kind, enabled, group active). */
int actor_sync_runtime(struct actor *a);
int actor_spawn(struct actor *a);
void actor_stop(struct actor *a);
void actor_restart(struct actor *a);
/* New durable events exist: write what is addressed to it to its stdin (now, or once the
 * throttle allows: then everything waiting goes in one write, a batch). */
void actor_pump(struct actor *a);
/* Is a delivery to it waiting for the throttle? *ret_next_realtime_usec: when it will happen. */
bool actor_throttled(const struct actor *a, uint64_t *ret_next_realtime_usec);

const char *actor_runtime_to_string(const struct actor *a);
struct json_object *actor_to_json(struct actor *a);

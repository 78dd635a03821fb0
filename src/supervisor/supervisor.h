/* conclave-supervisor: the main process of conclave.service. It owns the configuration and all
 * state, starts and watches conclave-gateway and conclave-channels, and speaks sd_notify to
 * systemd on behalf of the whole suite. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "config.h"
#include "workers.h"

enum supervisor_state {
        SUPERVISOR_STARTING,
        SUPERVISOR_READY,
        SUPERVISOR_RELOADING,
        SUPERVISOR_STOPPING,
};

struct automation;
struct control_server;
struct follower;
struct group;
struct notify_server;

struct supervisor {
        sd_event *event;
        enum supervisor_state state;
        int exit_code;

        char *config_path;
        struct config *config;
        char *config_text; /* NULL: no file, defaults */

        char *home;
        char *runtime_dir;
        char *state_path;
        char *libexec_dir;
        int gateway_listen_fd; /* from conclave.socket (sd_listen_fds), for conclave-gateway; -1: none */

        struct notify_server *notify;
        struct control_server *control;
        struct worker_proc workers[WORKER_MAX];

        uint64_t start_realtime_usec;
        uint64_t start_monotonic_usec;
        uint64_t systemd_watchdog_usec; /* 0: systemd does not watch us */
        sd_event_source *watchdog_timer;
        sd_event_source *state_timer;
        sd_event_source *state_flush; /* coalesces state-file writes after changes */

        struct group **groups;
        size_t n_groups;
        struct follower *followers;
        sd_event_source *flush_timer; /* group commit for ledger_sync = batch */
        sd_event_source *flush_defer; /* end-of-iteration flush for always/none */
        struct automation *automation; /* reminders and scheduled messages */
        struct channel_hub *channel_hub; /* chat channels: outbox, inbound, states (channel_hub.h) */

        uint64_t reload_id;
        unsigned reload_pending; /* workers yet to acknowledge the new config */
        sd_event_source *reload_timer;
        char last_status[1024];
};

void supervisor_update_status(struct supervisor *s);
/* Something in daemon_state.json changed: schedule a (coalesced) rewrite. */
void supervisor_state_changed(struct supervisor *s);
/* Worker state changed: recompute readiness, STATUS= and the state file. */
void supervisor_worker_changed(struct supervisor *s, struct worker_proc *w);
/* A worker gave up after its burst limit: stop everything and exit non-zero. */
void supervisor_fail(struct supervisor *s, const char *reason);
int supervisor_reload(struct supervisor *s);
void supervisor_stop(struct supervisor *s);
const char *supervisor_state_to_string(enum supervisor_state st);
/* Status as JSON (for the control socket and daemon_state.json). */
struct json_object *supervisor_status_json(struct supervisor *s);

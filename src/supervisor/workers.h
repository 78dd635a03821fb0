/* Worker processes (gateway, channels): spawn with a private NOTIFY_SOCKET and channel,
 * watch readiness and watchdog pings, restart with backoff, stop in order. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "backoff.h"
#include "notify.h"
#include "proto_link.h"

enum worker_kind {
        WORKER_GATEWAY,
        WORKER_CHANNELS,
        WORKER_MAX,
};

enum worker_state {
        WORKER_STOPPED,   /* not running, nothing scheduled */
        WORKER_STARTING,  /* running, READY=1 not yet received */
        WORKER_RUNNING,   /* READY=1 received */
        WORKER_STOPPING,  /* asked to stop (SIGTERM), or killed for a missed watchdog */
        WORKER_BACKOFF,   /* exited; restart scheduled */
        WORKER_FAILED,    /* gave up after the burst limit */
};

struct supervisor;

struct worker_proc {
        struct supervisor *supervisor;
        enum worker_kind kind;
        const char *name;    /* "gateway" */
        const char *program; /* "conclave-gateway" */
        char *path;
        int exe_fd; /* O_PATH of the program as it was at start: restarts run that same file
                     * even after a package upgrade replaced it (until the service restarts) */

        enum worker_state state;
        pid_t pid;
        pid_t last_pid; /* after exit: late datagrams from it are expected, not suspicious */
        struct proto_link *link; /* the worker's channel; NULL when not running */
        struct control_request *requests; /* calls it made that are not answered yet, and streams */
        sd_event_source *child_source;
        sd_event_source *timer; /* restart delay, start timeout or kill escalation */

        uint64_t started_usec;       /* monotonic */
        uint64_t last_watchdog_usec; /* monotonic, last WATCHDOG=1 */
        uint64_t watchdog_usec;      /* WATCHDOG_USEC this process was started with */
        bool hung;                   /* killed for a missed watchdog */
        char status[NOTIFY_STATUS_MAX];

        unsigned restarts;
        struct restart_history history;
        char last_exit[64];
        uint64_t last_exit_realtime_usec;
};

void workers_init(struct supervisor *s);
int worker_start(struct worker_proc *w);
/* Ask to stop (SIGTERM, SIGKILL after a grace period). */
void worker_stop(struct worker_proc *w);
/* Called for every datagram the notify server attributes to this worker. */
void worker_handle_notify(struct worker_proc *w, const struct notify_message *m);
/* Periodic check: kills workers whose watchdog or start timeout expired. */
void workers_check_watchdog(struct supervisor *s, uint64_t now);
/* True while every worker is either healthy or being dealt with (restart scheduled). */
bool workers_supervised(struct supervisor *s, uint64_t now);
bool workers_all_ready(struct supervisor *s);
bool workers_all_stopped(struct supervisor *s);
struct worker_proc *worker_by_pid(struct supervisor *s, pid_t pid);
/* A worker that just exited may still have datagrams queued (STOPPING=1). */
bool worker_recently_exited(struct supervisor *s, pid_t pid);
int worker_send_config(struct worker_proc *w, uint64_t id);
void workers_free(struct supervisor *s);

const char *worker_state_to_string(enum worker_state st);
struct json_object *worker_status_json(struct worker_proc *w, uint64_t now);

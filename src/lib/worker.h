/* What conclave-gateway and conclave-channels share: one sd-event loop, SIGTERM/SIGINT handling,
 * the sd_notify watchdog, and the channel to the supervisor over which the configuration
 * arrives (or, run standalone, the configuration file read directly). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "proto_link.h"

struct worker;

struct worker_ops {
        /* Applies a configuration. initial: first one, before READY=1. A negative return on the
         * initial configuration exits the worker; on a reload the old configuration stays. */
        int (*apply_config)(struct worker *w, const struct config *c, bool initial);
        /* A message from the supervisor other than "config". May be NULL. */
        int (*message)(struct worker *w, struct json_object *msg);
        /* Text for STATUS= after READY and after each reload. */
        void (*status)(struct worker *w, char *buf, size_t size);
};

/* Extra handlers for messages from the supervisor (other than "config"), tried in the order
 * added before ops->message: 1 handled, 0 not theirs, negative an error (logged). */
typedef int (*worker_handler_fn)(struct worker *w, struct json_object *msg, void *userdata);
#define WORKER_HANDLERS_MAX 4

struct worker {
        const char *program;
        sd_event *event;
        struct proto_link *link; /* to the supervisor; NULL when standalone */
        struct config *config;
        const struct worker_ops *ops;
        void *userdata;
        bool ready;
        bool ready_unsent;     /* READY=1 found the supervisor's queue full: retried */
        int notify_fd;         /* to $NOTIFY_SOCKET, non-blocking (notify.h); -1 if none */
        uint64_t watchdog_usec; /* 0: no watchdog */
        sd_event_source *notify_timer; /* watchdog pings and READY=1 retries */
        struct {
                worker_handler_fn fn;
                void *userdata;
        } handlers[WORKER_HANDLERS_MAX];
};

/* Command line shared by the workers: -c/--config FILE, -h/--help (prints `description`),
 * --version. Returns 1 to run with *ret_config_path set, 0 to exit successfully (help,
 * version), -EINVAL on a usage error (already reported). */
int worker_parse_argv(const char *program, const char *description, int argc, char *argv[],
                      char **ret_config_path);

/* Sets up logging, the loop, signals and the watchdog. config_path is used only standalone. */
int worker_init(struct worker *w, const char *program, const struct worker_ops *ops,
                const char *config_path, void *userdata);
/* Runs the loop until SIGTERM/SIGINT or the supervisor goes away; returns the exit code. */
int worker_run(struct worker *w);
void worker_done(struct worker *w);

/* -ENOSPC when WORKER_HANDLERS_MAX are registered. */
int worker_add_handler(struct worker *w, worker_handler_fn fn, void *userdata);
void worker_remove_handler(struct worker *w, worker_handler_fn fn, void *userdata);

/* Sends a message to the supervisor (no-op standalone). */
int worker_send(struct worker *w, const char *type, uint64_t id, struct json_object *data);
/* Re-sends STATUS= from ops->status. */
void worker_update_status(struct worker *w);

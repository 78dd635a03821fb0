/* Common main loop of the two worker programs (see worker.h). */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "notify.h"
#include "paths.h"
#include "proto.h"
#include "proto_link.h"
#include "worker.h"

static void worker_help(const char *program, const char *description) {
        printf("%s [OPTIONS]\n\n%s\n\n"
               "  -c --config FILE  configuration file (default: $CONCLAVE_HOME/config.toml)\n"
               "  -h --help         show this help\n"
               "     --version      show the version\n",
               program, description);
}

int worker_parse_argv(const char *program, const char *description, int argc, char *argv[],
                      char **ret_config_path) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        free(*ret_config_path);
                        *ret_config_path = strdup(optarg);
                        if (!*ret_config_path)
                                return log_error_errno(ENOMEM, "out of memory");
                        break;
                case 'h':
                        worker_help(program, description);
                        return 0;
                case ARG_VERSION:
                        printf("%s %s\n", program, PACKAGE_VERSION);
                        return 0;
                default:
                        /* getopt_long already said what was wrong. */
                        fprintf(stderr, "Try '%s --help'.\n", program);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'; try '%s --help'.\n", program, argv[optind], program);
                return -EINVAL;
        }
        if (!*ret_config_path) {
                *ret_config_path = paths_config_file();
                if (!*ret_config_path)
                        return log_error_errno(errno, "cannot find the configuration file (HOME unset?); "
                                               "use --config FILE");
        }
        return 1;
}

/* Notifications never block (notify.h); a STATUS= or WATCHDOG=1 that finds the queue full is
 * dropped (the next one says the same), READY=1 is retried by the notify timer. */
static int worker_notify(struct worker *w, const char *message) {
        int r;

        if (w->notify_fd < 0)
                return 0;
        r = notify_send(w->notify_fd, message);
        if (r < 0 && r != -EAGAIN)
                log_full_errno(LOG_DEBUG, r, "cannot send \"%s\" to $NOTIFY_SOCKET", message);
        return r;
}

static void send_ready(struct worker *w) {
        w->ready_unsent = worker_notify(w, "READY=1") == -EAGAIN;
        if (w->ready_unsent && w->notify_timer) {
                (void) sd_event_source_set_time_relative(w->notify_timer, 100 * USEC_PER_MSEC);
                (void) sd_event_source_set_enabled(w->notify_timer, SD_EVENT_ONESHOT);
        }
}

/* Every quarter of the watchdog interval (or 100 ms while READY=1 waits): the loop is alive. */
static int on_notify_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct worker *w = userdata;
        uint64_t next = w->watchdog_usec ? w->watchdog_usec / 4 : 0;

        if (w->watchdog_usec)
                (void) worker_notify(w, "WATCHDOG=1");
        if (w->ready_unsent) {
                send_ready(w);
                if (w->ready_unsent)
                        next = 100 * USEC_PER_MSEC;
        }
        if (!next)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(s, next);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int setup_notify(struct worker *w) {
        uint64_t usec = 0;
        int r;

        r = notify_open(&w->notify_fd);
        if (r < 0)
                return log_warning_errno(r, "cannot use $NOTIFY_SOCKET; no readiness or watchdog notifications");
        if (w->notify_fd < 0)
                return 0;
        /* WATCHDOG_USEC (and WATCHDOG_PID naming this process) as sd_event_set_watchdog reads them. */
        if (sd_watchdog_enabled(false, &usec) > 0)
                w->watchdog_usec = usec;
        r = sd_event_add_time_relative(w->event, &w->notify_timer, CLOCK_MONOTONIC,
                                       w->watchdog_usec ? w->watchdog_usec / 4 : USEC_PER_SEC, 0,
                                       on_notify_timer, w);
        if (r < 0)
                return log_warning_errno(r, "cannot set up the watchdog timer");
        if (!w->watchdog_usec)
                (void) sd_event_source_set_enabled(w->notify_timer, SD_EVENT_OFF);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct worker *w = userdata;

        log_info("received %s, stopping", strsignal((int) si->ssi_signo));
        (void) worker_notify(w, "STOPPING=1");
        return sd_event_exit(w->event, 0);
}

void worker_update_status(struct worker *w) {
        char status[256] = "";

        if (w->ops->status)
                w->ops->status(w, status, sizeof status);
        if (*status) {
                char message[sizeof status + 8];

                snprintf(message, sizeof message, "STATUS=%s", status);
                (void) worker_notify(w, message);
        }
}

static int apply(struct worker *w, struct config *c, bool initial) {
        int r;

        log_set_max_level(c->log_level);
        r = w->ops->apply_config(w, c, initial);
        if (r < 0) {
                config_free(c);
                return r;
        }
        config_free(w->config);
        w->config = c;
        if (initial) {
                w->ready = true;
                worker_update_status(w);
                send_ready(w);
        } else
                worker_update_status(w);
        return 0;
}

static int handle_config_message(struct worker *w, struct json_object *msg) {
        _cleanup_json_ struct json_object *reply = json_object_new_object();
        struct json_object *data = proto_data(msg), *text = NULL, *path = NULL;
        struct config *c = NULL;
        bool initial = !w->ready;
        int r;

        if (!reply)
                return -ENOMEM;
        if (!data || !json_object_object_get_ex(data, "path", &path))
                return log_error_errno(EPROTO, "config message without path");
        json_object_object_get_ex(data, "text", &text);
        r = config_parse_text(json_object_get_string(path),
                              text && !json_object_is_type(text, json_type_null)
                                      ? json_object_get_string(text) : NULL, &c);
        if (r < 0)
                return log_error_errno(r, "cannot parse configuration");
        if (c->n_errors > 0) {
                /* The supervisor validates before sending, so this means a version skew. */
                config_log_diagnostics(c);
                config_free(c);
                r = -EINVAL;
        } else
                r = apply(w, c, initial);

        json_object_object_add(reply, "ok", json_object_new_boolean(r >= 0));
        if (r < 0)
                json_object_object_add(reply, "error", json_object_new_string(strerror(-r)));
        (void) worker_send(w, "config.applied", proto_id(msg), reply);
        if (r < 0 && initial) {
                log_error_errno(r, "cannot start with this configuration");
                return sd_event_exit(w->event, 1);
        }
        return 0;
}

int worker_add_handler(struct worker *w, worker_handler_fn fn, void *userdata) {
        for (size_t i = 0; i < WORKER_HANDLERS_MAX; i++)
                if (!w->handlers[i].fn) {
                        w->handlers[i].fn = fn;
                        w->handlers[i].userdata = userdata;
                        return 0;
                }
        return -ENOSPC;
}

void worker_remove_handler(struct worker *w, worker_handler_fn fn, void *userdata) {
        for (size_t i = 0; i < WORKER_HANDLERS_MAX; i++)
                if (w->handlers[i].fn == fn && w->handlers[i].userdata == userdata)
                        w->handlers[i].fn = NULL;
}

static int run_handlers(struct worker *w, struct json_object *msg) {
        for (size_t i = 0; i < WORKER_HANDLERS_MAX; i++)
                if (w->handlers[i].fn) {
                        int r = w->handlers[i].fn(w, msg, w->handlers[i].userdata);
                        if (r != 0)
                                return r;
                }
        return 0;
}

static void on_channel_message(struct proto_link *l, struct json_object *msg, void *userdata) {
        struct worker *w = userdata;
        int r;

        if (streq(proto_type(msg), "config"))
                r = handle_config_message(w, msg);
        else if ((r = run_handlers(w, msg)) != 0)
                ;
        else if (w->ops->message)
                r = w->ops->message(w, msg);
        else {
                log_debug("ignoring message of type %s", proto_type(msg));
                r = 0;
        }
        if (r < 0)
                log_warning_errno(r, "handling %s message failed", proto_type(msg));
}

static void on_channel_closed(struct proto_link *l, void *userdata) {
        struct worker *w = userdata;

        /* Without a supervisor there is nobody to serve: stop cleanly. */
        log_notice("supervisor channel closed, exiting");
        (void) sd_event_exit(w->event, 0);
}

int worker_send(struct worker *w, const char *type, uint64_t id, struct json_object *data) {
        if (!w->link)
                return 0;
        return proto_link_send(w->link, type, id, data);
}

int worker_init(struct worker *w, const char *program, const struct worker_ops *ops,
                const char *config_path, void *userdata) {
        sigset_t mask;
        int r;

        *w = (struct worker){ .program = program, .ops = ops, .userdata = userdata, .notify_fd = -1 };
        log_setup(program, LOG_TARGET_AUTO);

        r = sd_event_default(&w->event);
        if (r < 0)
                return log_error_errno(r, "cannot create event loop");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        (void) sd_event_add_signal(w->event, NULL, SIGTERM, on_signal, w);
        (void) sd_event_add_signal(w->event, NULL, SIGINT, on_signal, w);
        /* Standalone, SIGHUP is ignored; under the supervisor, config comes over the channel. */
        (void) setup_notify(w);

        r = proto_channel_fd_from_env();
        if (r >= 0) {
                int fd = r;
                r = proto_link_new(w->event, fd, on_channel_message, on_channel_closed, w, &w->link);
                if (r < 0) {
                        close(fd);
                        return log_error_errno(r, "cannot watch supervisor channel");
                }
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "invalid $%s", PROTO_CHANNEL_FD_ENV);

        /* Standalone (e.g. `conclave gateway`): read the configuration ourselves. */
        {
                struct config *c = NULL;
                r = config_load(config_path, true, &c, NULL);
                if (r < 0)
                        return log_error_errno(r, "cannot read %s", config_path);
                config_log_diagnostics(c);
                if (c->n_errors > 0) {
                        log_error("%s has %zu error(s); not starting", config_path, c->n_errors);
                        config_free(c);
                        return -EINVAL;
                }
                r = apply(w, c, true);
                if (r < 0)
                        return r;
        }
        return 0;
}

int worker_run(struct worker *w) {
        int r = sd_event_loop(w->event);
        if (r < 0) {
                log_error_errno(r, "event loop failed");
                return 1;
        }
        return r;
}

void worker_done(struct worker *w) {
        w->notify_timer = sd_event_source_unref(w->notify_timer);
        if (w->notify_fd >= 0)
                close(w->notify_fd);
        w->notify_fd = -1;
        proto_link_freep(&w->link);
        config_free(w->config);
        sd_event_unref(w->event);
}

/* conclave-supervisor: sets up the loop, the sockets and the workers, and carries the suite's
 * life cycle: start → READY=1, SIGHUP → reload, SIGTERM → ordered stop (see supervisor.h). */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "control_server.h"
#include "actors.h"
#include "automation.h"
#include "channel_hub.h"
#include "groups.h"
#include "llm.h"
#include "log.h"
#include "macro.h"
#include "notify_server.h"
#include "paths.h"
#include "proto.h"
#include "state.h"
#include "upgrade.h"
#include "supervisor.h"
#include "timeutil.h"

#define RELOAD_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define STATE_FLUSH_DELAY_USEC (200 * USEC_PER_MSEC)

static const char *const state_names[] = {
        [SUPERVISOR_STARTING] = "starting",
        [SUPERVISOR_READY] = "ready",
        [SUPERVISOR_RELOADING] = "reloading",
        [SUPERVISOR_STOPPING] = "stopping",
};

const char *supervisor_state_to_string(enum supervisor_state st) {
        return (size_t) st < ELEMENTSOF(state_names) ? state_names[st] : "unknown";
}

static void worker_summary(const struct worker_proc *w, char *buf, size_t size) {
        if (w->state == WORKER_RUNNING && *w->status)
                snprintf(buf, size, "%s %s", w->name, w->status);
        else
                snprintf(buf, size, "%s %s", w->name, worker_state_to_string(w->state));
}

void supervisor_update_status(struct supervisor *s) {
        char gw[NOTIFY_STATUS_MAX + 16], ch[NOTIFY_STATUS_MAX + 16], status[sizeof gw + sizeof ch + 32];

        worker_summary(&s->workers[WORKER_GATEWAY], gw, sizeof gw);
        worker_summary(&s->workers[WORKER_CHANNELS], ch, sizeof ch);
        snprintf(status, sizeof status, "%s; %s; %s", supervisor_state_to_string(s->state), gw, ch);
        if (streq(status, s->last_status))
                return;
        snprintf(s->last_status, sizeof s->last_status, "%s", status);
        (void) sd_notifyf(false, "STATUS=%s", status);
}

static void supervisor_become_ready(struct supervisor *s, const char *what) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        char timespan[32];

        s->state = SUPERVISOR_READY;
        supervisor_update_status(s);
        (void) sd_notify(false, "READY=1");
        log_fields_errno(LOG_NOTICE, 0, "MESSAGE_ID=4d1c0e1a8b6f4b0e9a3c2f5d7e6b1a01",
                         "%s in %s: %s", what, format_timespan(timespan, sizeof timespan, now - s->start_monotonic_usec),
                         s->last_status);
}

void supervisor_worker_changed(struct supervisor *s, struct worker_proc *w) {
        switch (s->state) {
        case SUPERVISOR_STARTING:
                if (workers_all_ready(s))
                        supervisor_become_ready(s, "Conclave is ready");
                break;
        case SUPERVISOR_RELOADING:
                if (s->reload_pending == 0) {
                        s->reload_timer = sd_event_source_disable_unref(s->reload_timer);
                        s->state = SUPERVISOR_READY;
                        supervisor_update_status(s);
                        (void) sd_notify(false, "READY=1");
                        log_notice("configuration reloaded from %s", s->config_path);
                }
                break;
        case SUPERVISOR_STOPPING:
                /* Order: the gateway stops taking requests first, then channels go. */
                if (s->workers[WORKER_GATEWAY].pid <= 0)
                        worker_stop(&s->workers[WORKER_CHANNELS]);
                if (workers_all_stopped(s) && groups_actors_stopped(s)) {
                        log_info("all workers stopped, exiting");
                        (void) sd_event_exit(s->event, s->exit_code);
                }
                break;
        case SUPERVISOR_READY:
                break;
        }
        supervisor_update_status(s);
        supervisor_state_changed(s);
        /* conclave-channels may have become ready: llm actors can answer what waited. */
        if (s->state != SUPERVISOR_STOPPING)
                llm_actors_pump_all(s);
}

static int on_state_flush(sd_event_source *src, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;

        s->state_flush = sd_event_source_disable_unref(s->state_flush);
        (void) state_write(s);
        return 0;
}

/* State-file writes fsync; several changes in a burst (start-up, a restart) share one write,
 * a little later, so the loop never stalls on the disk while workers wait for it. */
void supervisor_state_changed(struct supervisor *s) {
        if (s->state_flush || !s->event)
                return;
        if (sd_event_add_time_relative(s->event, &s->state_flush, CLOCK_MONOTONIC, STATE_FLUSH_DELAY_USEC,
                                       0, on_state_flush, s) < 0)
                (void) state_write(s);
}

void supervisor_stop(struct supervisor *s) {
        if (s->state == SUPERVISOR_STOPPING)
                return;
        s->state = SUPERVISOR_STOPPING;
        (void) sd_notify(false, "STOPPING=1");
        supervisor_update_status(s);
        s->reload_timer = sd_event_source_disable_unref(s->reload_timer);
        worker_stop(&s->workers[WORKER_GATEWAY]);
        groups_stop_actors(s);
        supervisor_worker_changed(s, &s->workers[WORKER_GATEWAY]);
}

void supervisor_fail(struct supervisor *s, const char *reason) {
        log_error("giving up: %s", reason);
        (void) sd_notifyf(false, "STATUS=failed: %s", reason);
        s->exit_code = EXIT_FAILURE;
        supervisor_stop(s);
}

static int on_reload_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;

        log_warning("%u worker(s) did not confirm the new configuration in time", s->reload_pending);
        s->reload_pending = 0;
        supervisor_worker_changed(s, NULL);
        return 0;
}

int supervisor_reload(struct supervisor *s) {
        _cleanup_free_ char *text = NULL;
        struct config *c = NULL;
        uint64_t now;
        int r;

        if (s->state != SUPERVISOR_READY)
                return -EBUSY;
        s->state = SUPERVISOR_RELOADING;
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
        supervisor_update_status(s);
        log_info("reloading configuration from %s", s->config_path);

        r = config_load(s->config_path, true, &c, &text);
        if (r < 0)
                log_error_errno(r, "cannot read %s; keeping the running configuration", s->config_path);
        else if (c->n_errors > 0) {
                config_log_diagnostics(c);
                log_fields_errno(LOG_ERR, 0, "MESSAGE_ID=9b2f3c4d5e6f47a8b9c0d1e2f3a4b5c6",
                                 "%s has %zu error(s); reload refused, the running configuration stays in effect",
                                 s->config_path, c->n_errors);
                config_free(c);
                r = -EINVAL;
        }
        if (r < 0) {
                s->state = SUPERVISOR_READY;
                supervisor_update_status(s);
                (void) sd_notify(false, "READY=1");
                return r == -EINVAL ? r : -EINVAL;
        }

        config_log_diagnostics(c);
        config_free(s->config);
        s->config = c;
        free(s->config_text);
        s->config_text = text;
        text = NULL;
        log_set_max_level(c->log_level);
        automation_run_soon(s->automation); /* reminder intervals may have changed */

        s->reload_id++;
        s->reload_pending = 0;
        for (int i = 0; i < WORKER_MAX; i++) {
                struct worker_proc *w = &s->workers[i];
                if (w->pid > 0 && proto_link_is_open(w->link) && worker_send_config(w, s->reload_id) >= 0)
                        s->reload_pending++;
        }
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        s->reload_timer = sd_event_source_disable_unref(s->reload_timer);
        if (s->reload_pending > 0)
                (void) sd_event_add_time(s->event, &s->reload_timer, CLOCK_MONOTONIC,
                                         now + RELOAD_TIMEOUT_USEC, 0, on_reload_timeout, s);
        supervisor_worker_changed(s, NULL);
        return 0;
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;

        if (si->ssi_signo == SIGHUP) {
                int r = supervisor_reload(s);
                if (r == -EBUSY)
                        log_warning("SIGHUP ignored: the daemon is %s", supervisor_state_to_string(s->state));
                return 0;
        }
        log_info("received %s, stopping", strsignal((int) si->ssi_signo));
        supervisor_stop(s);
        return 0;
}

static int on_watchdog_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), interval;
        static bool withheld = false;

        /* Running this late means this process was stopped (SIGSTOP) or starved: the workers'
         * pings of that time are queued, unread, and would look missed. Read them first. */
        if (now > usec + 2 * USEC_PER_SEC) {
                log_notice("the supervisor was not running for %" PRIu64 " ms; checking workers once their "
                           "pings are read", (now - usec) / USEC_PER_MSEC);
                (void) sd_event_source_set_time(src, now + 100 * USEC_PER_MSEC);
                return 0;
        }
        workers_check_watchdog(s, now);
        if (s->systemd_watchdog_usec > 0) {
                if (workers_supervised(s, now)) {
                        (void) sd_notify(false, "WATCHDOG=1");
                        withheld = false;
                } else if (!withheld) {
                        log_error("a worker is unhealthy and could not be recovered; withholding the "
                                  "watchdog ping so systemd restarts the service");
                        withheld = true;
                }
        }
        /* Check workers at least every second, and ping systemd at half its interval. */
        interval = USEC_PER_SEC;
        if (s->systemd_watchdog_usec > 0 && s->systemd_watchdog_usec / 2 < interval)
                interval = s->systemd_watchdog_usec / 2;
        (void) sd_event_source_set_time(src, usec + interval);
        return 0;
}

static int on_state_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct supervisor *s = userdata;

        (void) state_write(s);
        (void) sd_event_source_set_time(src, usec + s->config->state_interval_usec);
        return 0;
}

/* A package upgrade replaced the program file this process runs (its old inode lives on). */
static bool executable_replaced(void) {
        static const char suffix[] = " (deleted)";
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

        return n > (ssize_t) strlen(suffix) && memcmp(exe + n - strlen(suffix), suffix, strlen(suffix)) == 0;
}

struct json_object *supervisor_status_json(struct supervisor *s) {
        struct json_object *o = json_object_new_object(), *workers, *providers, *channels, *gw, *groups;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        char ts[40];

        if (!o)
                return NULL;
        json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(o, "executable_replaced", json_object_new_boolean(executable_replaced()));
        json_object_object_add(o, "pid", json_object_new_int((int) getpid()));
        json_object_object_add(o, "state", json_object_new_string(supervisor_state_to_string(s->state)));
        json_object_object_add(o, "status", json_object_new_string(s->last_status));
        json_object_object_add(o, "start_time",
                               json_object_new_string(format_timestamp_iso(ts, sizeof ts, s->start_realtime_usec)));
        json_object_object_add(o, "uptime_usec", json_object_new_int64((int64_t) (now - s->start_monotonic_usec)));
        json_object_object_add(o, "home", json_object_new_string(s->home));
        json_object_object_add(o, "config_path", json_object_new_string(s->config_path));
        json_object_object_add(o, "config_file_present", json_object_new_boolean(s->config_text != NULL));
        json_object_object_add(o, "systemd_watchdog_usec", json_object_new_int64((int64_t) s->systemd_watchdog_usec));

        workers = json_object_new_array();
        for (int i = 0; i < WORKER_MAX; i++)
                json_object_array_add(workers, worker_status_json(&s->workers[i], now));
        json_object_object_add(o, "workers", workers);

        gw = json_object_new_object();
        json_object_object_add(gw, "enabled", json_object_new_boolean(s->config->gateway_enabled));
        json_object_object_add(gw, "bind", json_object_new_string(s->config->gateway_bind));
        json_object_object_add(gw, "port", json_object_new_int(s->config->gateway_port));
        json_object_object_add(o, "gateway", gw);

        json_object_object_add(o, "provider_default",
                               s->config->provider_default ? json_object_new_string(s->config->provider_default) : NULL);
        providers = json_object_new_array();
        for (size_t i = 0; i < s->config->n_providers; i++) {
                const struct config_provider *p = &s->config->providers[i];
                struct json_object *po = json_object_new_object();
                json_object_object_add(po, "name", json_object_new_string(p->name));
                json_object_object_add(po, "kind", p->kind ? json_object_new_string(p->kind) : NULL);
                json_object_object_add(po, "model", p->model ? json_object_new_string(p->model) : NULL);
                json_object_object_add(po, "base_url", p->base_url ? json_object_new_string(p->base_url) : NULL);
                json_object_array_add(providers, po);
        }
        json_object_object_add(o, "providers", providers);
        channels = json_object_new_array();
        for (size_t i = 0; i < s->config->n_channels; i++) {
                const struct config_channel *ch = &s->config->channels[i];
                struct json_object *co = json_object_new_object();
                json_object_object_add(co, "name", json_object_new_string(ch->name));
                json_object_object_add(co, "kind", ch->kind ? json_object_new_string(ch->kind) : NULL);
                json_object_object_add(co, "group", ch->group ? json_object_new_string(ch->group) : NULL);
                channel_hub_annotate(s->channel_hub, ch->name, co);
                json_object_array_add(channels, co);
        }
        json_object_object_add(o, "channels", channels);
        groups = json_object_new_array();
        for (size_t i = 0; i < s->n_groups; i++) {
                struct json_object *go = group_to_json(s->groups[i]), *actors = json_object_new_array();
                for (size_t j = 0; j < s->groups[i]->n_actors; j++)
                        json_object_array_add(actors, actor_to_json(s->groups[i]->actors[j]));
                json_object_object_add(go, "actors", actors);
                json_object_array_add(groups, go);
        }
        json_object_object_add(o, "groups", groups);
        json_object_object_add(o, "automation", automation_status_json(s->automation));
        return o;
}

static char *find_libexec_dir(void) {
        const char *e = getenv("CONCLAVE_LIBEXECDIR");
        char exe[4096];
        ssize_t n;

        if (e && *e)
                return strdup(e);
        /* Workers live next to us: in pkglibexecdir once installed, in the build tree otherwise. */
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
                return strdup(PKGLIBEXECDIR);
        exe[n] = 0;
        return strdup(dirname(exe));
}

static void help(void) {
        printf("Usage: conclave-supervisor [--config FILE]\n\n"
               "Main process of conclave.service: starts and supervises conclave-gateway and\n"
               "conclave-channels, serves the control socket, talks to systemd.\n"
               "Operators run it through `systemctl --user start conclave.service` or\n"
               "`conclave daemon`. See conclave-supervisor(8).\n\n"
               "  -c, --config FILE  configuration file (default: $CONCLAVE_HOME/config.toml)\n"
               "  -h, --help         show this help\n"
               "      --version      show the version\n");
}

/* Socket activation (conclave.socket): the socket is conclave-gateway's. The supervisor keeps it
 * and hands it to each gateway it starts, so a restarted gateway serves the same socket and
 * connections made meanwhile wait in its backlog. */
static int take_listen_socket(struct supervisor *s) {
        int n = sd_listen_fds(1);

        if (n < 0)
                return log_error_errno(n, "cannot read the sockets passed by systemd");
        if (n > 1)
                return log_error_errno(EINVAL, "systemd passed %d sockets; conclave.socket must have exactly one "
                                       "ListenStream=", n);
        if (n == 1) {
                s->gateway_listen_fd = SD_LISTEN_FDS_START;
                if (fcntl(s->gateway_listen_fd, F_SETFD, FD_CLOEXEC) < 0)
                        return log_error_errno(errno, "cannot set FD_CLOEXEC on the socket passed by systemd");
                log_info("socket activation: the listening socket passed by systemd goes to conclave-gateway");
        }
        return 0;
}

static int setup(struct supervisor *s, const char *config_arg) {
        _cleanup_free_ char *notify_path = NULL, *control_path = NULL;
        sigset_t mask;
        int r;

        s->start_realtime_usec = now_usec(CLOCK_REALTIME);
        s->start_monotonic_usec = now_usec(CLOCK_MONOTONIC);
        r = take_listen_socket(s);
        if (r < 0)
                return r;
        s->home = paths_home();
        s->runtime_dir = paths_runtime_dir();
        s->state_path = paths_state_file();
        s->config_path = config_arg ? strdup(config_arg) : paths_config_file();
        s->libexec_dir = find_libexec_dir();
        notify_path = paths_notify_socket();
        control_path = paths_control_socket();
        if (!s->home || !s->runtime_dir || !s->state_path || !s->config_path || !s->libexec_dir ||
            !notify_path || !control_path)
                return log_error_errno(errno ? errno : ENOMEM, "cannot determine Conclave's directories (is $HOME set?)");

        r = mkdir_parents(s->home, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create %s", s->home);
        r = mkdir_parents(s->runtime_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create runtime directory %s", s->runtime_dir);

        r = config_load(s->config_path, true, &s->config, &s->config_text);
        if (r < 0)
                return log_error_errno(r, "cannot read configuration %s", s->config_path);
        config_log_diagnostics(s->config);
        if (s->config->n_errors > 0) {
                (void) sd_notifyf(false, "STATUS=%s has %zu error(s); see `conclave doctor`",
                                  s->config_path, s->config->n_errors);
                log_error("%s has %zu error(s); not starting (see `conclave doctor`)", s->config_path,
                          s->config->n_errors);
                return -EINVAL;
        }
        log_set_max_level(s->config->log_level);

        r = sd_event_default(&s->event);
        if (r < 0)
                return log_error_errno(r, "cannot create event loop");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        (void) sd_event_add_signal(s->event, NULL, SIGTERM, on_signal, s);
        (void) sd_event_add_signal(s->event, NULL, SIGINT, on_signal, s);
        (void) sd_event_add_signal(s->event, NULL, SIGHUP, on_signal, s);

        r = sd_watchdog_enabled(false, &s->systemd_watchdog_usec);
        if (r <= 0)
                s->systemd_watchdog_usec = 0;

        r = control_server_new(s, control_path, &s->control);
        if (r < 0)
                return r;
        r = notify_server_new(s, notify_path, &s->notify);
        if (r < 0)
                return r;

        r = sd_event_add_time_relative(s->event, &s->watchdog_timer, CLOCK_MONOTONIC, 0, 0,
                                       on_watchdog_timer, s);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &s->state_timer, CLOCK_MONOTONIC,
                                               s->config->state_interval_usec, 0, on_state_timer, s);
        if (r < 0)
                return log_error_errno(r, "cannot arm timers");
        (void) sd_event_source_set_enabled(s->watchdog_timer, SD_EVENT_ON);
        (void) sd_event_source_set_enabled(s->state_timer, SD_EVENT_ON);

        log_info("Conclave %s starting (home %s, config %s%s)", PACKAGE_VERSION, s->home, s->config_path,
                 s->config_text ? "" : ", not present: using defaults");
        r = automation_new(s, &s->automation);
        if (r < 0)
                return log_error_errno(r, "cannot set up automation");
        r = upgrade_home_formats(s);
        if (r == -EPROTONOSUPPORT)
                s->exit_code = EXIT_FORMAT_NEWER;
        if (r < 0)
                return r;
        r = channel_hub_new(s, &s->channel_hub);
        if (r < 0)
                return log_error_errno(r, "cannot set up channels");
        r = groups_load(s);
        if (r < 0)
                return r;
        automation_run_soon(s->automation);
        workers_init(s);
        for (int i = 0; i < WORKER_MAX; i++) {
                r = worker_start(&s->workers[i]);
                if (r < 0)
                        return r;
        }
        supervisor_state_changed(s);
        return 0;
}

static void cleanup(struct supervisor *s) {
        /* Workers still alive here (setup failed half-way) must not outlive us. */
        for (int i = 0; i < WORKER_MAX; i++)
                if (s->workers[i].pid > 0)
                        (void) kill(s->workers[i].pid, SIGTERM);
        workers_free(s);
        groups_free(s);
        s->automation = automation_free(s->automation);
        s->control = control_server_free(s->control);
        s->channel_hub = channel_hub_free(s->channel_hub);
        s->notify = notify_server_free(s->notify);
        sd_event_source_disable_unref(s->watchdog_timer);
        sd_event_source_disable_unref(s->state_timer);
        sd_event_source_disable_unref(s->state_flush);
        sd_event_source_disable_unref(s->reload_timer);
        sd_event_unref(s->event);
        config_free(s->config);
        free(s->config_text);
        free(s->config_path);
        free(s->home);
        free(s->runtime_dir);
        free(s->state_path);
        free(s->libexec_dir);
        if (s->gateway_listen_fd >= 0)
                (void) close(s->gateway_listen_fd);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        struct supervisor s = { .state = SUPERVISOR_STARTING, .gateway_listen_fd = -1 };
        const char *config_arg = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_arg = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("conclave-supervisor %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                default:
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "conclave-supervisor: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }

        log_setup("conclave-supervisor", LOG_TARGET_AUTO);
        r = setup(&s, config_arg);
        if (r >= 0) {
                r = sd_event_loop(s.event);
                if (r < 0)
                        log_error_errno(r, "event loop failed");
        }
        if (r == 0 && s.exit_code == 0) {
                (void) state_write(&s);
                log_info("Conclave stopped");
        }
        cleanup(&s);
        if (r < 0)
                return s.exit_code ? s.exit_code : EXIT_FAILURE;
        return s.exit_code ? s.exit_code : r;
}

/* Spawning, watching and restarting the worker processes (see workers.h). */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "paths.h"
#include "channel_hub.h"
#include "control_server.h"
#include "proto.h"
#include "spawn.h"
#include "supervisor.h"
#include "timeutil.h"
#include "workers.h"

#define WORKER_START_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define WORKER_STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define WORKER_RESTART_DELAY_MIN_USEC (100 * USEC_PER_MSEC)

static const char *const state_names[] = {
        [WORKER_STOPPED] = "stopped",   [WORKER_STARTING] = "starting",
        [WORKER_RUNNING] = "running",   [WORKER_STOPPING] = "stopping",
        [WORKER_BACKOFF] = "restarting", [WORKER_FAILED] = "failed",
};

const char *worker_state_to_string(enum worker_state st) {
        return (size_t) st < ELEMENTSOF(state_names) ? state_names[st] : "unknown";
}

static char *worker_fields(const struct worker_proc *w, char *buf, size_t size) {
        snprintf(buf, size, "CONCLAVE_WORKER=%s\nCONCLAVE_WORKER_PID=%d", w->name, (int) w->pid);
        return buf;
}

#define log_worker(w, level, error, ...)                                                       \
        ({                                                                                     \
                char _f[128];                                                                  \
                log_fields_errno(level, error, worker_fields(w, _f, sizeof _f), __VA_ARGS__); \
        })

static struct restart_policy worker_policy(const struct worker_proc *w) {
        const struct config *c = w->supervisor->config;
        return (struct restart_policy){
                .delay_min_usec = WORKER_RESTART_DELAY_MIN_USEC,
                .delay_max_usec = c->restart_delay_max_usec,
                .burst = c->restart_burst,
                .interval_usec = c->restart_interval_usec,
        };
}

void workers_init(struct supervisor *s) {
        static const char *const names[WORKER_MAX] = { "gateway", "channels" };
        static const char *const programs[WORKER_MAX] = { "conclave-gateway", "conclave-channels" };

        for (int i = 0; i < WORKER_MAX; i++) {
                struct worker_proc *w = &s->workers[i];
                *w = (struct worker_proc){
                        .supervisor = s, .kind = (enum worker_kind) i, .name = names[i],
                        .program = programs[i], .path = path_join(s->libexec_dir, programs[i]), .exe_fd = -EBADF,
                };
                if (w->path)
                        w->exe_fd = open(w->path, O_PATH | O_CLOEXEC);
        }
}

static void worker_close_channel(struct worker_proc *w) {
        /* Requests it made are answered into the void; its streams end. */
        control_requests_detach_worker(w);
        if (w->kind == WORKER_CHANNELS)
                channel_hub_worker_gone(w->supervisor->channel_hub);
        proto_link_freep(&w->link);
}

static void worker_clear_timer(struct worker_proc *w) {
        w->timer = sd_event_source_disable_unref(w->timer);
}

static int worker_set_timer(struct worker_proc *w, uint64_t delay,
                            sd_event_time_handler_t handler) {
        uint64_t now;
        int r;

        worker_clear_timer(w);
        (void) sd_event_now(w->supervisor->event, CLOCK_MONOTONIC, &now);
        r = sd_event_add_time(w->supervisor->event, &w->timer, CLOCK_MONOTONIC, now + delay, TIMER_ACCURACY_USEC,
                              handler, w);
        if (r < 0)
                log_worker(w, LOG_ERR, r, "cannot arm timer for worker %s", w->name);
        return r;
}

static int on_kill_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct worker_proc *w = userdata;

        worker_clear_timer(w);
        if (w->pid > 0) {
                log_worker(w, LOG_WARNING, 0, "worker %s (pid %d) did not exit in time, sending SIGKILL",
                           w->name, (int) w->pid);
                (void) kill(w->pid, SIGKILL);
        }
        return 0;
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct worker_proc *w = userdata;

        worker_clear_timer(w);
        if (w->supervisor->state == SUPERVISOR_STOPPING)
                return 0;
        w->restarts++;
        log_worker(w, LOG_NOTICE, 0, "restarting worker %s (restart #%u)", w->name, w->restarts);
        if (worker_start(w) < 0) {
                /* Treat a failed spawn like a crash so the burst limit still applies. */
                w->state = WORKER_BACKOFF;
                struct restart_policy p = worker_policy(w);
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (!restart_history_admit(&w->history, &p, now)) {
                        supervisor_fail(w->supervisor, "a worker could not be started");
                        return 0;
                }
                (void) worker_set_timer(w, restart_delay(&w->history, &p), on_restart_timer);
        }
        return 0;
}

static void describe_exit(const siginfo_t *si, char *buf, size_t size) {
        if (si->si_code == CLD_EXITED)
                snprintf(buf, size, "exited with status %d", si->si_status);
        else
                snprintf(buf, size, "killed by SIG%s%s", sigabbrev_np(si->si_status) ?: "?",
                         si->si_code == CLD_DUMPED ? " (core dumped)" : "");
}

static int on_child(sd_event_source *src, const siginfo_t *si, void *userdata) {
        struct worker_proc *w = userdata;
        struct supervisor *s = w->supervisor;
        bool clean = si->si_code == CLD_EXITED && si->si_status == 0;
        bool expected = w->state == WORKER_STOPPING && !w->hung;
        struct restart_policy p = worker_policy(w);
        uint64_t now = now_usec(CLOCK_MONOTONIC), delay;

        describe_exit(si, w->last_exit, sizeof w->last_exit);
        w->last_pid = w->pid;
        w->last_exit_realtime_usec = now_usec(CLOCK_REALTIME);
        w->child_source = sd_event_source_unref(w->child_source);
        worker_clear_timer(w);
        worker_close_channel(w);

        if (s->state == SUPERVISOR_STOPPING || (expected && clean)) {
                log_worker(w, clean ? LOG_INFO : LOG_WARNING, 0, "worker %s (pid %d) %s", w->name,
                           (int) w->pid, w->last_exit);
                w->pid = 0;
                w->state = WORKER_STOPPED;
                supervisor_worker_changed(s, w);
                return 0;
        }

        log_worker(w, LOG_ERR, 0, "worker %s (pid %d) %s%s", w->name, (int) w->pid, w->last_exit,
                   w->hung ? " after missing its watchdog" : "");
        w->pid = 0;
        w->hung = false;
        w->status[0] = 0;

        if (!restart_history_admit(&w->history, &p, now)) {
                char timespan[32];
                w->state = WORKER_FAILED;
                log_worker(w, LOG_CRIT, 0,
                           "worker %s failed %u times within %s, giving up; exiting so systemd "
                           "restarts the service",
                           w->name, p.burst, format_timespan(timespan, sizeof timespan, p.interval_usec));
                supervisor_worker_changed(s, w);
                supervisor_fail(s, "worker restart limit reached");
                return 0;
        }
        delay = restart_delay(&w->history, &p);
        {
                char timespan[32];
                log_worker(w, LOG_NOTICE, 0, "restarting worker %s in %s", w->name,
                           format_timespan(timespan, sizeof timespan, delay));
        }
        w->state = WORKER_BACKOFF;
        if (s->state == SUPERVISOR_STARTING)
                /* Still starting: tell systemd the restart may take longer than planned. */
                (void) sd_notifyf(false, "EXTEND_TIMEOUT_USEC=%" PRIu64,
                                  delay + WORKER_START_TIMEOUT_USEC);
        (void) worker_set_timer(w, delay, on_restart_timer);
        supervisor_worker_changed(s, w);
        return 0;
}

static void on_channel_message(struct proto_link *l, struct json_object *msg, void *userdata) {
        struct worker_proc *w = userdata;
        struct supervisor *s = w->supervisor;
        const char *type = proto_type(msg);

        if (streq(type, "request"))
                control_request_from_worker(s, w, proto_id(msg), proto_data(msg));
        else if (streq(type, "cancel"))
                control_request_cancel_from_worker(w, proto_id(msg));
        else if (streq(type, "config.applied")) {
                struct json_object *data = proto_data(msg), *ok = NULL, *err = NULL;
                bool good = data && json_object_object_get_ex(data, "ok", &ok) && json_object_get_boolean(ok);
                if (data)
                        json_object_object_get_ex(data, "error", &err);
                if (!good)
                        log_worker(w, LOG_ERR, 0,
                                   "worker %s could not apply the configuration (%s); it keeps its previous one",
                                   w->name, err ? json_object_get_string(err) : "no reason given");
                if (proto_id(msg) == s->reload_id && s->reload_pending > 0) {
                        s->reload_pending--;
                        if (s->reload_pending == 0)
                                supervisor_worker_changed(s, w);
                }
        } else if (streq(type, "channels.state") && w->kind == WORKER_CHANNELS)
                channel_hub_report(s->channel_hub, proto_data(msg));
        else
                log_worker(w, LOG_DEBUG, 0, "message %s from worker %s", type, w->name);
}

static void on_channel_closed(struct proto_link *l, void *userdata) {
        /* EOF: the worker is exiting; its SIGCHLD does the rest. Its requests are void now. */
        control_requests_detach_worker(userdata);
}

int worker_send_config(struct worker_proc *w, uint64_t id) {
        struct supervisor *s = w->supervisor;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        int r;

        if (!data)
                return -ENOMEM;
        json_object_object_add(data, "path", json_object_new_string(s->config_path));
        json_object_object_add(data, "text", s->config_text ? json_object_new_string(s->config_text) : NULL);
        r = proto_link_send(w->link, "config", id, data);
        if (r < 0)
                log_worker(w, LOG_ERR, r, "cannot send configuration to worker %s", w->name);
        return r;
}

static void child_exec(struct worker_proc *w, int channel, const char *notify_path) {
        int listen_fd = w->kind == WORKER_GATEWAY ? w->supervisor->gateway_listen_fd : -1;
        char fdbuf[16], usec[32], pid[16], *argv[] = { (char *) w->program, NULL };
        int next = 3, exe = -1;

        spawn_child_reset();
        snprintf(pid, sizeof pid, "%d", (int) getpid());
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");

        /* The child gets, from fd 3: the listening socket (gateway under socket activation:
         * sd_listen_fds() wants it at 3), the worker channel, and the program it runs (for
         * fexecve). Each is first copied above 10, since any may sit where another must go. */
        channel = fcntl(channel, F_DUPFD, 10);
        if (channel < 0)
                _exit(EXIT_FAILURE);
        if (w->exe_fd >= 0)
                exe = fcntl(w->exe_fd, F_DUPFD_CLOEXEC, 10);
        if (listen_fd >= 0) {
                if (dup2(listen_fd, SD_LISTEN_FDS_START) < 0 || fcntl(SD_LISTEN_FDS_START, F_SETFD, 0) < 0)
                        _exit(EXIT_FAILURE);
                setenv("LISTEN_FDS", "1", 1);
                setenv("LISTEN_PID", pid, 1);
                next = SD_LISTEN_FDS_START + 1;
        }
        if (dup2(channel, next) < 0)
                _exit(EXIT_FAILURE);
        snprintf(fdbuf, sizeof fdbuf, "%d", next++);
        if (exe >= 0)
                exe = dup3(exe, next, O_CLOEXEC) < 0 ? -1 : next++;
        (void) close_range((unsigned) next, ~0U, 0);

        snprintf(usec, sizeof usec, "%" PRIu64, w->watchdog_usec);
        setenv(PROTO_CHANNEL_FD_ENV, fdbuf, 1);
        setenv("NOTIFY_SOCKET", notify_path, 1);
        setenv("WATCHDOG_USEC", usec, 1);
        setenv("WATCHDOG_PID", pid, 1);

        if (exe >= 0)
                (void) fexecve(exe, argv, environ);
        execv(w->path, argv);
        fprintf(stderr, "conclave-supervisor: cannot execute %s: %s\n", w->path, strerror(errno));
        _exit(127);
}

int worker_start(struct worker_proc *w) {
        struct supervisor *s = w->supervisor;
        _cleanup_free_ char *notify_path = paths_notify_socket();
        int pair[2], r;
        pid_t pid;

        if (!notify_path)
                return -ENOMEM;
        if (access(w->path, X_OK) < 0)
                return log_worker(w, LOG_ERR, errno, "cannot execute %s", w->path);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return log_worker(w, LOG_ERR, errno, "socketpair() for worker %s failed", w->name);

        /* A reload may change the interval; this process keeps the one it was started with. */
        w->watchdog_usec = s->config->worker_watchdog_usec;
        pid = fork();
        if (pid < 0) {
                r = log_worker(w, LOG_ERR, errno, "fork() for worker %s failed", w->name);
                close(pair[0]);
                close(pair[1]);
                return r;
        }
        if (pid == 0) {
                close(pair[0]);
                child_exec(w, pair[1], notify_path);
        }
        close(pair[1]);
        w->pid = pid;
        w->state = WORKER_STARTING;
        w->hung = false;
        w->status[0] = 0;
        w->started_usec = now_usec(CLOCK_MONOTONIC);
        w->last_watchdog_usec = w->started_usec;

        r = proto_link_new(s->event, pair[0], on_channel_message, on_channel_closed, w, &w->link);
        if (r < 0)
                close(pair[0]);
        else
                r = sd_event_add_child(s->event, &w->child_source, pid, WEXITED, on_child, w);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                worker_close_channel(w);
                w->pid = 0;
                w->state = WORKER_STOPPED;
                return log_worker(w, LOG_ERR, r, "cannot watch worker %s", w->name);
        }
        log_worker(w, LOG_INFO, 0, "started worker %s (pid %d)", w->name, (int) pid);
        /* The first message a worker gets is its configuration. */
        (void) worker_send_config(w, 0);
        supervisor_worker_changed(s, w);
        return 0;
}

void worker_stop(struct worker_proc *w) {
        if (w->state == WORKER_BACKOFF) {
                worker_clear_timer(w);
                w->state = WORKER_STOPPED;
                supervisor_worker_changed(w->supervisor, w);
                return;
        }
        if (w->pid <= 0 || w->state == WORKER_STOPPING)
                return;
        log_worker(w, LOG_INFO, 0, "stopping worker %s (pid %d)", w->name, (int) w->pid);
        w->state = WORKER_STOPPING;
        (void) kill(w->pid, SIGTERM);
        (void) kill(w->pid, SIGCONT); /* a stopped process must run to handle SIGTERM */
        (void) worker_set_timer(w, WORKER_STOP_TIMEOUT_USEC, on_kill_timeout);
        supervisor_worker_changed(w->supervisor, w);
}

static void worker_kill_hung(struct worker_proc *w, const char *why) {
        log_worker(w, LOG_ERR, 0, "worker %s (pid %d) %s; sending SIGABRT", w->name, (int) w->pid, why);
        w->hung = true;
        w->state = WORKER_STOPPING;
        /* SIGABRT leaves a core and a journal entry to debug the hang; SIGCONT lets a stopped
         * process act on it; SIGKILL follows if it still does not exit. */
        (void) kill(w->pid, SIGABRT);
        (void) kill(w->pid, SIGCONT);
        (void) worker_set_timer(w, WORKER_STOP_TIMEOUT_USEC, on_kill_timeout);
}

void workers_check_watchdog(struct supervisor *s, uint64_t now) {
        for (int i = 0; i < WORKER_MAX; i++) {
                struct worker_proc *w = &s->workers[i];
                uint64_t limit = w->watchdog_usec;
                char timespan[32];

                if (w->state == WORKER_RUNNING && limit > 0 && now > w->last_watchdog_usec + limit) {
                        char why[96];
                        snprintf(why, sizeof why, "sent no watchdog ping for %s",
                                 format_timespan(timespan, sizeof timespan, now - w->last_watchdog_usec));
                        worker_kill_hung(w, why);
                        supervisor_worker_changed(s, w);
                } else if (w->state == WORKER_STARTING && now > w->started_usec + WORKER_START_TIMEOUT_USEC) {
                        worker_kill_hung(w, "did not report READY=1 in time");
                        supervisor_worker_changed(s, w);
                }
        }
}

bool workers_supervised(struct supervisor *s, uint64_t now) {
        for (int i = 0; i < WORKER_MAX; i++) {
                struct worker_proc *w = &s->workers[i];
                uint64_t limit = w->watchdog_usec;
                switch (w->state) {
                case WORKER_RUNNING:
                        if (limit > 0 && now > w->last_watchdog_usec + 2 * limit)
                                return false;
                        break;
                case WORKER_STOPPING:
                        /* Killing it should have worked long ago. */
                        if (w->timer == NULL && w->pid > 0)
                                return false;
                        break;
                case WORKER_FAILED:
                        return false;
                default:
                        break;
                }
        }
        return true;
}

void worker_handle_notify(struct worker_proc *w, const struct notify_message *m) {
        struct supervisor *s = w->supervisor;
        bool changed = false;

        if (m->watchdog)
                w->last_watchdog_usec = now_usec(CLOCK_MONOTONIC);
        if (m->has_status && !streq(w->status, m->status)) {
                memcpy(w->status, m->status, sizeof w->status);
                changed = true;
        }
        if (m->ready && w->state == WORKER_STARTING) {
                char timespan[32];
                w->state = WORKER_RUNNING;
                w->last_watchdog_usec = now_usec(CLOCK_MONOTONIC);
                log_worker(w, LOG_INFO, 0, "worker %s (pid %d) is ready after %s", w->name, (int) w->pid,
                           format_timespan(timespan, sizeof timespan, w->last_watchdog_usec - w->started_usec));
                changed = true;
        }
        if (m->extend_timeout_usec > 0 && s->state == SUPERVISOR_STARTING)
                (void) sd_notifyf(false, "EXTEND_TIMEOUT_USEC=%" PRIu64, m->extend_timeout_usec);
        if (m->watchdog_trigger && w->pid > 0 && w->state != WORKER_STOPPING) {
                worker_kill_hung(w, "asked for a watchdog restart (WATCHDOG=trigger)");
                changed = true;
        }
        if (m->stopping && w->state != WORKER_STOPPING)
                log_worker(w, LOG_INFO, 0, "worker %s reports it is stopping", w->name);
        if (changed)
                supervisor_worker_changed(s, w);
}

bool workers_all_ready(struct supervisor *s) {
        for (int i = 0; i < WORKER_MAX; i++)
                if (s->workers[i].state != WORKER_RUNNING)
                        return false;
        return true;
}

bool workers_all_stopped(struct supervisor *s) {
        for (int i = 0; i < WORKER_MAX; i++)
                if (s->workers[i].pid > 0)
                        return false;
        return true;
}

bool worker_recently_exited(struct supervisor *s, pid_t pid) {
        for (int i = 0; i < WORKER_MAX; i++)
                if (pid > 0 && s->workers[i].last_pid == pid)
                        return true;
        return false;
}

struct worker_proc *worker_by_pid(struct supervisor *s, pid_t pid) {
        for (int i = 0; i < WORKER_MAX; i++)
                if (pid > 0 && s->workers[i].pid == pid)
                        return &s->workers[i];
        return NULL;
}

void workers_free(struct supervisor *s) {
        for (int i = 0; i < WORKER_MAX; i++) {
                struct worker_proc *w = &s->workers[i];
                worker_clear_timer(w);
                worker_close_channel(w);
                w->child_source = sd_event_source_disable_unref(w->child_source);
                if (w->path && w->exe_fd >= 0)
                        close(w->exe_fd);
                w->exe_fd = -EBADF;
                free(w->path);
                w->path = NULL;
        }
}

struct json_object *worker_status_json(struct worker_proc *w, uint64_t now) {
        struct json_object *o = json_object_new_object();
        char ts[40];

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(w->name));
        json_object_object_add(o, "program", json_object_new_string(w->program));
        json_object_object_add(o, "state", json_object_new_string(worker_state_to_string(w->state)));
        json_object_object_add(o, "pid", w->pid > 0 ? json_object_new_int(w->pid) : NULL);
        json_object_object_add(o, "status", json_object_new_string(w->status));
        json_object_object_add(o, "restarts", json_object_new_int64(w->restarts));
        json_object_object_add(o, "last_exit", *w->last_exit ? json_object_new_string(w->last_exit) : NULL);
        json_object_object_add(o, "last_exit_time",
                               w->last_exit_realtime_usec
                                       ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, w->last_exit_realtime_usec))
                                       : NULL);
        if (w->pid > 0) {
                json_object_object_add(o, "uptime_usec", json_object_new_int64((int64_t) (now - w->started_usec)));
                json_object_object_add(o, "watchdog_age_usec",
                                       json_object_new_int64((int64_t) (now - w->last_watchdog_usec)));
        }
        return o;
}

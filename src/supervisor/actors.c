/* Actors and the supervision of command actors (see actors.h).
 *
 * Command actor protocol (JSON lines; docs/actors.md):
 *   stdin:  {"type":"message","seq":N,"event":{…}}   each chat.message addressed to the actor
 *           {"type":"notify","seq":N,"event":{…}}    each system.notify (reminders) addressed to it
 *           + "batch":{"index":I,"count":N} on each line of a write of several (throttling)
 *   stdout: {"type":"reply","reply_to":ID|SEQ,"text":…}   (+ "reply_required","attention","to")
 *           {"type":"send","text":…,"to":[…]}             (+ "reply_required","attention")
 *           {"type":"ack","event_id":ID}
 *           {"type":"done","seq":N}                        handled everything up to N
 * Delivery is at least once: after a restart, messages after the actor's read cursor are sent
 * again. A reply (or "done") moves the cursor, so handled messages are not redelivered. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors.h"
#include "groups.h"
#include "llm.h"
#include "log.h"
#include "macro.h"
#include "messages.h"
#include "paths.h"
#include "proto.h"
#include "spawn.h"
#include "supervisor.h"
#include "timeutil.h"

#define ACTOR_LINE_MAX (1024u * 1024u)
#define ACTOR_STDERR_LINE_MAX 4096u
#define ACTOR_STDIN_HIGH_WATER (64u * 1024u) /* stop reading the ledger for it beyond this */
#define ACTOR_STOP_GRACE_USEC (500 * USEC_PER_MSEC) /* after closing stdin, before SIGTERM */
#define ACTOR_STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)   /* after SIGTERM, before SIGKILL */
#define ACTOR_RESTART_DELAY_MIN_USEC (200 * USEC_PER_MSEC)

static const char *const runtime_names[] = {
        [ACTOR_STOPPED] = "stopped", [ACTOR_RUNNING] = "running", [ACTOR_STOPPING] = "stopping",
        [ACTOR_BACKOFF] = "restarting", [ACTOR_FAILED] = "failed",
};

bool actor_is_command(const struct actor *a) {
        return streq(a->kind, "command") && a->command && a->command[0];
}

const char *actor_runtime_to_string(const struct actor *a) {
        if (a->llm)
                return llm_actor_state(a->llm);
        if (!actor_is_command(a))
                return "n/a";
        return (size_t) a->runtime < ELEMENTSOF(runtime_names) ? runtime_names[a->runtime] : "unknown";
}

static char *actor_fields(const struct actor *a, char *buf, size_t size) {
        snprintf(buf, size, "CONCLAVE_GROUP=%s\nCONCLAVE_ACTOR=%s", a->group->id, a->id);
        return buf;
}
#define log_actor(a, level, error, ...)                                                      \
        ({                                                                                   \
                char _f[192];                                                                \
                log_fields_errno(level, error, actor_fields(a, _f, sizeof _f), __VA_ARGS__); \
        })

struct actor *actor_new(struct group *g, const char *id, const char *kind, const char *title,
                        struct json_object *command) {
        struct actor *a = calloc(1, sizeof *a);

        if (!a)
                return NULL;
        a->group = g;
        a->stdin_fd = a->stdout_fd = a->stderr_fd = -1;
        a->id = strdup(id);
        a->kind = strdup(kind);
        a->title = strdup(title ? title : "");
        if (!a->id || !a->kind || !a->title)
                goto fail;
        if (command && json_object_is_type(command, json_type_array) && json_object_array_length(command) > 0) {
                size_t n = json_object_array_length(command);
                a->command = calloc(n + 1, sizeof *a->command);
                if (!a->command)
                        goto fail;
                for (size_t i = 0; i < n; i++) {
                        a->command[i] = strdup(json_object_get_string(json_object_array_get_idx(command, i)) ?: "");
                        if (!a->command[i])
                                goto fail;
                }
        }
        return a;
fail:
        actor_free(a);
        return NULL;
}

int actor_set_llm(struct actor *a, struct json_object *settings) {
        struct llm_actor *l;
        int r = llm_actor_new(a, settings, &l);

        if (r < 0)
                return r;
        llm_actor_free(a->llm);
        a->llm = l;
        return 0;
}

static void actor_close_io(struct actor *a) {
        a->stdin_source = sd_event_source_disable_unref(a->stdin_source);
        a->stdout_source = sd_event_source_disable_unref(a->stdout_source);
        a->stderr_source = sd_event_source_disable_unref(a->stderr_source);
        a->throttle_timer = sd_event_source_disable_unref(a->throttle_timer);
        if (a->stdin_fd >= 0)
                close(a->stdin_fd);
        if (a->stdout_fd >= 0)
                close(a->stdout_fd);
        if (a->stderr_fd >= 0)
                close(a->stderr_fd);
        a->stdin_fd = a->stdout_fd = a->stderr_fd = -1;
        free(a->out);
        a->out = NULL;
        a->out_len = a->out_pos = 0;
        a->line_len = a->errline_len = 0;
}

void actor_free(struct actor *a) {
        if (!a)
                return;
        if (a->pid > 0) {
                /* Removed while running (its child source goes with it): reap it here. */
                (void) kill(a->pid, SIGKILL);
                (void) waitpid(a->pid, NULL, 0);
        }
        actor_close_io(a);
        llm_actor_free(a->llm);
        a->child_source = sd_event_source_disable_unref(a->child_source);
        a->timer = sd_event_source_disable_unref(a->timer);
        free(a->line);
        free(a->errline);
        if (a->command)
                for (char **c = a->command; *c; c++)
                        free(*c);
        free(a->command);
        free(a->id);
        free(a->kind);
        free(a->title);
        free(a);
}

static bool actor_should_run(const struct actor *a) {
        const struct group *g = a->group;
        return actor_is_command(a) && a->enabled && !g->broken &&
               (g->state == GROUP_ACTIVE || g->state == GROUP_PAUSED);
}

static void actor_event(struct actor *a, const char *kind, struct json_object *extra) {
        _cleanup_json_ struct json_object *data = extra ? json_object_get(extra) : json_object_new_object();

        if (!data)
                return;
        json_object_object_add(data, "actor_id", json_object_new_string(a->id));
        (void) group_append(a->group, kind, "conclave", data, NULL, NULL);
}

/* --- stdout: the actor's answers -------------------------------------------------------- */

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

static bool jbool(struct json_object *o, const char *key) {
        struct json_object *v;
        return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static void actor_handle_line(struct actor *a, const char *line, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_tokener *tok = json_tokener_new();
        struct message_error err = {};
        const char *type;
        struct json_object *to = NULL;
        int r = 0;

        if (!tok)
                return;
        o = json_tokener_parse_ex(tok, line, (int) len);
        if (o && json_tokener_get_parse_end(tok) != len)
                o = (json_object_put(o), NULL);
        json_tokener_free(tok);
        if (!o || !json_object_is_type(o, json_type_object) || !(type = jstr(o, "type"))) {
                log_actor(a, LOG_WARNING, 0, "actor %s wrote a line that is not a protocol message (ignored): %.120s",
                          a->id, line);
                return;
        }
        json_object_object_get_ex(o, "to", &to);
        if (streq(type, "reply") || streq(type, "send")) {
                struct message_args m = {
                        .by = a->id, .text = jstr(o, "text"), .to = to,
                        .reply_to = streq(type, "reply") ? jstr(o, "reply_to") : NULL,
                        .reply_required = jbool(o, "reply_required"), .attention = jbool(o, "attention"),
                };
                if (streq(type, "reply") && !m.reply_to)
                        r = -EINVAL, err.code = "bad_request", snprintf(err.message, sizeof err.message, "reply without reply_to");
                else
                        r = message_post(a->group, &m, NULL, &err);
        } else if (streq(type, "ack"))
                r = message_ack(a->group, a->id, jstr(o, "event_id") ?: "", NULL, &err);
        else if (streq(type, "done")) {
                struct json_object *seq;
                if (json_object_object_get_ex(o, "seq", &seq) && json_object_is_type(seq, json_type_int) &&
                    json_object_get_uint64(seq) > group_state_cursor(a->group->gs, a->id))
                        r = message_mark_read(a->group, a->id, json_object_get_uint64(seq), NULL, &err);
        } else {
                log_actor(a, LOG_WARNING, 0, "actor %s sent unknown message type \"%.40s\" (ignored)", a->id, type);
                return;
        }
        if (r < 0)
                log_actor(a, LOG_WARNING, 0, "actor %s: %s refused: %s", a->id, type, err.message);
}

static int read_lines(int fd, char **buf, size_t *len, size_t max, struct actor *a,
                      void (*handle)(struct actor *a, const char *line, size_t len)) {
        char chunk[16384];

        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
                if (n == 0)
                        return -EPIPE;
                for (ssize_t i = 0; i < n; i++) {
                        if (chunk[i] == '\n') {
                                char *line = *buf ? *buf : (char *) "";
                                if (*buf)
                                        (*buf)[*len] = 0;
                                handle(a, line, *len);
                                *len = 0;
                                continue;
                        }
                        if (*len >= max)
                                continue; /* an over-long line is cut; the rest of it is dropped */
                        if (!*buf) {
                                *buf = malloc(max + 1);
                                if (!*buf)
                                        return -ENOMEM;
                        }
                        (*buf)[(*len)++] = chunk[i];
                }
        }
}

static void actor_handle_stderr(struct actor *a, const char *line, size_t len) {
        log_actor(a, LOG_INFO, 0, "%s: %.*s", a->id, (int) len, line);
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct actor *a = userdata;
        if (read_lines(fd, &a->line, &a->line_len, ACTOR_LINE_MAX, a, actor_handle_line) < 0)
                a->stdout_source = sd_event_source_disable_unref(a->stdout_source);
        return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct actor *a = userdata;
        if (read_lines(fd, &a->errline, &a->errline_len, ACTOR_STDERR_LINE_MAX, a, actor_handle_stderr) < 0)
                a->stderr_source = sd_event_source_disable_unref(a->stderr_source);
        return 0;
}

/* --- stdin: delivery ------------------------------------------------------------------------- */

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct actor *a = userdata;

        while (a->out_pos < a->out_len) {
                ssize_t n = write(fd, a->out + a->out_pos, a->out_len - a->out_pos);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        /* EPIPE: it closed stdin or died; the exit handler takes over. */
                        a->stdin_source = sd_event_source_disable_unref(a->stdin_source);
                        return 0;
                }
                a->out_pos += (size_t) n;
        }
        a->out_pos = a->out_len = 0;
        (void) sd_event_source_set_enabled(a->stdin_source, SD_EVENT_OFF);
        actor_pump(a);
        return 0;
}

/* What one delivery collects: the events addressed to the actor, up to the high-water mark. */
struct delivery {
        struct actor *actor;
        struct json_object *events; /* NULL: only find out whether one is waiting */
        size_t bytes;
        bool found;
};

static int delivery_collect(struct json_object *event, void *userdata) {
        struct delivery *d = userdata;
        struct actor *a = d->actor;
        struct json_object *seq;
        uint64_t n = json_object_object_get_ex(event, "seq", &seq) ? json_object_get_uint64(seq) : a->delivered_seq + 1;

        if (!group_state_addressed_to(a->group->gs, event, a->id)) {
                a->delivered_seq = n;
                return 0;
        }
        d->found = true;
        if (!d->events)
                return -ECANCELED; /* throttled: it stays waiting, delivered_seq just before it */
        if (json_object_array_add(d->events, json_object_get(event)) < 0) {
                json_object_put(event);
                return -ENOMEM;
        }
        a->delivered_seq = n;
        d->bytes += strlen(json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN)) + 64;
        return d->bytes >= ACTOR_STDIN_HIGH_WATER ? -ECANCELED : 0;
}

/* Reads forward from delivered_seq, 64 events per ledger read. */
static int delivery_scan(struct actor *a, struct delivery *d) {
        struct group *g = a->group;

        while (a->delivered_seq < ledger_last_seq(g->ledger)) {
                int r = ledger_read_range(g->ledger, a->delivered_seq, 64, delivery_collect, d);
                if (r == -ECANCELED)
                        return 0;
                if (r <= 0)
                        return r;
        }
        return 0;
}

/* The lines of one delivery, written in one go: several messages in a write are a batch, and
 * each line says so, so an actor may act once per batch (docs/actors.md). */
static int delivery_queue(struct actor *a, struct json_object *events, size_t *ret_queued) {
        size_t count = json_object_array_length(events);

        for (size_t i = 0; i < count; *ret_queued = ++i) {
                struct json_object *event = json_object_array_get_idx(events, i), *seq = NULL;
                _cleanup_json_ struct json_object *line = json_object_new_object();
                const char *kind, *text;
                size_t len;
                char *n;

                if (!line)
                        return -ENOMEM;
                json_object_object_get_ex(event, "seq", &seq);
                kind = jstr(event, "kind");
                json_object_object_add(line, "type", json_object_new_string(streq(kind, "system.notify") ? "notify" : "message"));
                json_object_object_add(line, "seq", json_object_get(seq));
                json_object_object_add(line, "event", json_object_get(event));
                if (count > 1) {
                        struct json_object *batch = json_object_new_object();
                        json_object_object_add(batch, "index", json_object_new_uint64(i + 1));
                        json_object_object_add(batch, "count", json_object_new_uint64(count));
                        json_object_object_add(line, "batch", batch);
                }
                text = json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN);
                len = strlen(text);
                n = realloc(a->out, a->out_len + len + 1);
                if (!n)
                        return -ENOMEM;
                a->out = n;
                memcpy(a->out + a->out_len, text, len);
                a->out[a->out_len + len] = '\n';
                a->out_len += len + 1;
        }
        return 0;
}

static struct throttle_policy actor_throttle_policy(const struct actor *a) {
        const struct config *c = a->group->supervisor->config;
        return (struct throttle_policy){ .interval_usec = c->throttle_min_interval_usec, .burst = c->throttle_burst };
}

static int on_throttle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct actor *a = userdata;

        a->throttle_timer = sd_event_source_disable_unref(a->throttle_timer);
        actor_pump(a);
        return 0;
}

bool actor_throttled(const struct actor *a, uint64_t *ret_next_realtime_usec) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!a->throttle_timer)
                return false;
        if (ret_next_realtime_usec)
                *ret_next_realtime_usec = now_usec(CLOCK_REALTIME) + (a->throttled_until > now ? a->throttled_until - now : 0);
        return true;
}

void actor_pump(struct actor *a) {
        struct group *g = a->group;
        struct throttle_policy policy = actor_throttle_policy(a);
        _cleanup_json_ struct json_object *events = NULL;
        struct delivery d = { .actor = a };
        size_t queued = 0;
        uint64_t now, wait;

        if (a->llm) {
                llm_actor_pump(a->llm);
                return;
        }
        if (a->runtime != ACTOR_RUNNING || !a->stdin_source || g->state != GROUP_ACTIVE || g->broken)
                return;
        /* One delivery at a time: the next is collected once this one is written (on_stdin). At
         * most a high-water mark of bytes is held for a slow actor; the rest stays in the ledger. */
        if (a->out_pos < a->out_len || a->throttle_timer || a->delivered_seq >= ledger_last_seq(g->ledger))
                return;
        now = now_usec(CLOCK_MONOTONIC);
        wait = throttle_wait(&a->throttle, &policy, now);
        if (wait > 0) {
                /* Wait only if something addressed to it is there: others' traffic does not count. */
                if (delivery_scan(a, &d) < 0 || !d.found)
                        return;
                a->throttled_until = now + wait;
                if (sd_event_add_time(g->supervisor->event, &a->throttle_timer, CLOCK_MONOTONIC, a->throttled_until,
                                      TIMER_ACCURACY_USEC, on_throttle_timer, a) < 0)
                        log_actor(a, LOG_ERR, 0, "actor %s: cannot arm the throttle timer; delivery waits for the next message",
                                  a->id);
                return;
        }
        events = d.events = json_object_new_array();
        if (!events || delivery_scan(a, &d) < 0 || json_object_array_length(events) == 0)
                return;
        if (delivery_queue(a, events, &queued) < 0) {
                /* What made it into the buffer goes; the rest is read from the ledger again. */
                struct json_object *seq;
                log_actor(a, LOG_ERR, ENOMEM, "actor %s: cannot queue messages", a->id);
                if (json_object_object_get_ex(json_object_array_get_idx(events, queued), "seq", &seq))
                        a->delivered_seq = json_object_get_uint64(seq) - 1;
                if (queued == 0)
                        return;
        }
        throttle_take(&a->throttle, &policy, now);
        a->deliveries++;
        a->batches += json_object_array_length(events) > 1;
        (void) sd_event_source_set_enabled(a->stdin_source, SD_EVENT_ON);
}

/* --- process life cycle ------------------------------------------------------------------ */

static struct restart_policy actor_policy(const struct actor *a) {
        const struct config *c = a->group->supervisor->config;
        return (struct restart_policy){
                .delay_min_usec = ACTOR_RESTART_DELAY_MIN_USEC,
                .delay_max_usec = c->restart_delay_max_usec,
                .burst = c->restart_burst,
                .interval_usec = c->restart_interval_usec,
        };
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct actor *a = userdata;

        a->timer = sd_event_source_disable_unref(a->timer);
        if (a->runtime != ACTOR_BACKOFF)
                return 0;
        a->runtime = ACTOR_STOPPED;
        if (actor_should_run(a)) {
                a->restarts++;
                (void) actor_spawn(a);
        }
        return 0;
}

static int on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct actor *a = userdata;

        a->timer = sd_event_source_disable_unref(a->timer);
        if (a->pid > 0 && !a->term_sent) {
                a->term_sent = true;
                (void) kill(a->pid, SIGTERM);
                (void) kill(a->pid, SIGCONT);
                (void) sd_event_add_time_relative(a->group->supervisor->event, &a->timer, CLOCK_MONOTONIC,
                                                  ACTOR_STOP_TIMEOUT_USEC, TIMER_ACCURACY_USEC, on_kill_timer, a);
                return 0;
        }
        if (a->pid > 0) {
                log_actor(a, LOG_WARNING, 0, "actor %s (pid %d) did not exit in time, sending SIGKILL", a->id, (int) a->pid);
                (void) kill(a->pid, SIGKILL);
        }
        return 0;
}

static int on_child(sd_event_source *src, const siginfo_t *si, void *userdata) {
        struct actor *a = userdata;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct restart_policy p = actor_policy(a);
        bool requested = a->runtime == ACTOR_STOPPING;
        pid_t pid = a->pid;

        /* Whatever it wrote before exiting still counts. */
        if (a->stdout_source)
                (void) read_lines(a->stdout_fd, &a->line, &a->line_len, ACTOR_LINE_MAX, a, actor_handle_line);
        if (a->stderr_source)
                (void) read_lines(a->stderr_fd, &a->errline, &a->errline_len, ACTOR_STDERR_LINE_MAX, a,
                                  actor_handle_stderr);
        actor_close_io(a);
        a->child_source = sd_event_source_unref(a->child_source);
        a->timer = sd_event_source_disable_unref(a->timer);
        a->pid = 0;
        if (si->si_code == CLD_EXITED)
                snprintf(a->last_exit, sizeof a->last_exit, "exited with status %d", si->si_status);
        else
                snprintf(a->last_exit, sizeof a->last_exit, "killed by SIG%s", sigabbrev_np(si->si_status) ?: "?");
        a->last_exit_realtime_usec = now_usec(CLOCK_REALTIME);
        json_object_object_add(data, "pid", json_object_new_int((int) pid));
        json_object_object_add(data, "exit", json_object_new_string(a->last_exit));

        if (a->group->supervisor->state == SUPERVISOR_STOPPING) {
                a->runtime = ACTOR_STOPPED;
                log_actor(a, LOG_INFO, 0, "actor %s (pid %d) %s", a->id, (int) pid, a->last_exit);
                actor_event(a, "actor.exited", data);
                supervisor_worker_changed(a->group->supervisor, NULL);
                return 0;
        }
        if (requested || !actor_should_run(a)) {
                log_actor(a, LOG_INFO, 0, "actor %s (pid %d) %s", a->id, (int) pid, a->last_exit);
                a->runtime = ACTOR_STOPPED;
                actor_event(a, "actor.exited", data);
                if (a->restart_requested) {
                        a->restart_requested = false;
                        if (actor_should_run(a))
                                (void) actor_spawn(a);
                }
                return 0;
        }

        log_actor(a, LOG_WARNING, 0, "actor %s (pid %d) %s unexpectedly", a->id, (int) pid, a->last_exit);
        if (!restart_history_admit(&a->history, &p, now_usec(CLOCK_MONOTONIC))) {
                a->runtime = ACTOR_FAILED;
                log_actor(a, LOG_ERR, 0, "actor %s failed %u times in a row; not restarting it (`conclave actor "
                          "restart -g %s %s` tries again)", a->id, p.burst, a->group->id, a->id);
                json_object_object_add(data, "gave_up", json_object_new_boolean(1));
                actor_event(a, "actor.exited", data);
                return 0;
        }
        {
                uint64_t delay = restart_delay(&a->history, &p);
                json_object_object_add(data, "restart_in_ms", json_object_new_uint64(delay / USEC_PER_MSEC));
                actor_event(a, "actor.exited", data);
                a->runtime = ACTOR_BACKOFF;
                if (sd_event_add_time_relative(a->group->supervisor->event, &a->timer, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                               on_restart_timer, a) < 0)
                        a->runtime = ACTOR_FAILED;
        }
        return 0;
}

static void child_exec(struct actor *a, int in, int out, int err, const char *workdir) {
        spawn_child_reset();
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
                _exit(126);
        (void) close_range(3, ~0U, 0);
        if (chdir(workdir) < 0)
                _exit(126);
        setenv("CONCLAVE_GROUP", a->group->id, 1);
        setenv("CONCLAVE_ACTOR", a->id, 1);
        setenv("CONCLAVE_ACTOR_PROTOCOL", "1", 1);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        unsetenv(PROTO_CHANNEL_FD_ENV);
        execvp(a->command[0], a->command);
        fprintf(stderr, "cannot execute %s: %s\n", a->command[0], strerror(errno));
        _exit(127);
}

int actor_spawn(struct actor *a) {
        struct supervisor *s = a->group->supervisor;
        _cleanup_free_ char *workdir = NULL;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, r;
        pid_t pid;

        if (!actor_is_command(a) || a->pid > 0 || !data)
                return -EINVAL;
        if (asprintf(&workdir, "%s/actors/%s", a->group->dir, a->id) < 0)
                return -ENOMEM;
        r = mkdir_parents(workdir, 0700);
        if (r < 0)
                return log_actor(a, LOG_ERR, r, "cannot create %s", workdir);
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
                r = log_actor(a, LOG_ERR, errno, "cannot create pipes for actor %s", a->id);
                goto fail;
        }
        pid = fork();
        if (pid < 0) {
                r = log_actor(a, LOG_ERR, errno, "cannot fork actor %s", a->id);
                goto fail;
        }
        if (pid == 0)
                child_exec(a, in[0], out[1], err[1], workdir);
        close(in[0]);
        close(out[1]);
        close(err[1]);
        a->pid = pid;
        a->stdin_fd = in[1];
        a->stdout_fd = out[0];
        a->stderr_fd = err[0];
        (void) fcntl(a->stdin_fd, F_SETFL, O_NONBLOCK);
        (void) fcntl(a->stdout_fd, F_SETFL, O_NONBLOCK);
        (void) fcntl(a->stderr_fd, F_SETFL, O_NONBLOCK);
        r = sd_event_add_child(s->event, &a->child_source, pid, WEXITED, on_child, a);
        if (r >= 0)
                r = sd_event_add_io(s->event, &a->stdout_source, a->stdout_fd, EPOLLIN, on_stdout, a);
        if (r >= 0)
                r = sd_event_add_io(s->event, &a->stderr_source, a->stderr_fd, EPOLLIN, on_stderr, a);
        if (r >= 0)
                r = sd_event_add_io(s->event, &a->stdin_source, a->stdin_fd, EPOLLOUT, on_stdin, a);
        if (r < 0) {
                log_actor(a, LOG_ERR, r, "cannot watch actor %s", a->id);
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                a->pid = 0;
                actor_close_io(a);
                a->child_source = sd_event_source_disable_unref(a->child_source);
                a->runtime = ACTOR_FAILED;
                return r;
        }
        (void) sd_event_source_set_enabled(a->stdin_source, SD_EVENT_OFF);
        a->runtime = ACTOR_RUNNING;
        /* Everything after its read cursor is delivered (again): at least once. */
        a->delivered_seq = group_state_cursor(a->group->gs, a->id);
        log_actor(a, LOG_INFO, 0, "started actor %s (pid %d): %s", a->id, (int) pid, a->command[0]);
        json_object_object_add(data, "pid", json_object_new_int((int) pid));
        actor_event(a, "actor.spawned", data);
        actor_pump(a);
        return 0;
fail:
        for (int i = 0; i < 2; i++) {
                if (in[i] >= 0)
                        close(in[i]);
                if (out[i] >= 0)
                        close(out[i]);
                if (err[i] >= 0)
                        close(err[i]);
        }
        a->runtime = ACTOR_FAILED;
        return r;
}

void actor_stop(struct actor *a) {
        if (a->llm) {
                llm_actor_stop(a->llm);
                return;
        }
        if (a->runtime == ACTOR_BACKOFF || a->runtime == ACTOR_FAILED) {
                a->timer = sd_event_source_disable_unref(a->timer);
                a->runtime = ACTOR_STOPPED;
        }
        if (a->pid <= 0 || a->runtime == ACTOR_STOPPING)
                return;
        log_actor(a, LOG_INFO, 0, "stopping actor %s (pid %d)", a->id, (int) a->pid);
        a->runtime = ACTOR_STOPPING;
        /* Closing stdin lets a line-reading actor finish on EOF; SIGTERM follows for the others. */
        a->stdin_source = sd_event_source_disable_unref(a->stdin_source);
        if (a->stdin_fd >= 0) {
                close(a->stdin_fd);
                a->stdin_fd = -1;
        }
        a->term_sent = false;
        a->timer = sd_event_source_disable_unref(a->timer);
        (void) sd_event_add_time_relative(a->group->supervisor->event, &a->timer, CLOCK_MONOTONIC,
                                          ACTOR_STOP_GRACE_USEC, TIMER_ACCURACY_USEC, on_kill_timer, a);
}

void actor_restart(struct actor *a) {
        if (a->llm) {
                llm_actor_restart(a->llm);
                return;
        }
        a->history.n = 0; /* an operator's restart starts a fresh burst window */
        if (a->pid > 0) {
                a->restart_requested = true;
                actor_stop(a);
                return;
        }
        actor_stop(a);
        if (actor_should_run(a))
                (void) actor_spawn(a);
}

int actor_sync_runtime(struct actor *a) {
        if (a->llm) {
                llm_actor_sync(a->llm);
                return 0;
        }
        if (!actor_is_command(a))
                return 0;
        if (actor_should_run(a)) {
                if (a->runtime == ACTOR_STOPPED || a->runtime == ACTOR_FAILED) {
                        a->history.n = 0;
                        return actor_spawn(a);
                }
                return 0;
        }
        if (a->pid > 0 || a->runtime == ACTOR_BACKOFF)
                actor_stop(a);
        return 0;
}

struct json_object *actor_to_json(struct actor *a) {
        struct json_object *o = json_object_new_object(), *cmd = NULL;
        char ts[40];

        if (!o)
                return NULL;
        if (a->command) {
                cmd = json_object_new_array();
                for (char **c = a->command; *c; c++)
                        json_object_array_add(cmd, json_object_new_string(*c));
        }
        json_object_object_add(o, "id", json_object_new_string(a->id));
        json_object_object_add(o, "group", json_object_new_string(a->group->id));
        json_object_object_add(o, "kind", json_object_new_string(a->kind));
        json_object_object_add(o, "title", json_object_new_string(a->title));
        json_object_object_add(o, "command", cmd);
        json_object_object_add(o, "enabled", json_object_new_boolean(a->enabled));
        json_object_object_add(o, "runtime", json_object_new_string(actor_runtime_to_string(a)));
        json_object_object_add(o, "pid", a->pid > 0 ? json_object_new_int((int) a->pid) : NULL);
        json_object_object_add(o, "restarts", json_object_new_int((int) a->restarts));
        json_object_object_add(o, "last_exit", *a->last_exit ? json_object_new_string(a->last_exit) : NULL);
        json_object_object_add(o, "last_exit_time",
                               a->last_exit_realtime_usec
                                       ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, a->last_exit_realtime_usec))
                                       : NULL);
        json_object_object_add(o, "cursor", json_object_new_uint64(a->group->gs ? group_state_cursor(a->group->gs, a->id) : 0));
        if (actor_is_command(a)) {
                uint64_t next = 0;
                bool throttled = actor_throttled(a, &next);

                json_object_object_add(o, "throttled", json_object_new_boolean(throttled));
                json_object_object_add(o, "next_delivery",
                                       throttled ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, next)) : NULL);
                json_object_object_add(o, "deliveries", json_object_new_uint64(a->deliveries));
                json_object_object_add(o, "batches", json_object_new_uint64(a->batches));
        }
        if (a->llm)
                json_object_object_add(o, "llm", llm_actor_status_json(a->llm));
        return o;
}

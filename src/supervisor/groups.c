/* Groups, their ledgers and the durable event path (see groups.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actors.h"
#include "automation.h"
#include "control_server.h"
#include "channel_hub.h"
#include "dedupe.h"
#include "fileio.h"
#include "groups.h"
#include "llm.h"
#include "log.h"
#include "macro.h"
#include "outbox.h"
#include "paths.h"
#include "proto.h"
#include "supervisor.h"
#include "timeutil.h"

#define GROUP_FILE_MAX (4u * 1024u * 1024u)
#define STATE_SAVE_EVERY 1000 /* events between state/state.json snapshots */

static const char *const run_state_names[] = {
        [GROUP_IDLE] = "idle", [GROUP_ACTIVE] = "active", [GROUP_PAUSED] = "paused", [GROUP_STOPPED] = "stopped",
};

const char *group_run_state_to_string(enum group_run_state st) {
        return (size_t) st < ELEMENTSOF(run_state_names) ? run_state_names[st] : "unknown";
}

static int group_run_state_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(run_state_names); i++)
                if (streq(s, run_state_names[i]))
                        return (int) i;
        return -EINVAL;
}

bool valid_id(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > ID_MAX)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '-' && *s != '_')
                        return false;
        return true;
}

static char *group_fields(const struct group *g, char *buf, size_t size) {
        snprintf(buf, size, "CONCLAVE_GROUP=%s", g->id);
        return buf;
}
#define log_group(g, level, error, ...)                                                      \
        ({                                                                                   \
                char _f[96];                                                                 \
                log_fields_errno(level, error, group_fields(g, _f, sizeof _f), __VA_ARGS__); \
        })

struct group *group_find(struct supervisor *s, const char *id) {
        for (size_t i = 0; i < s->n_groups; i++)
                if (streq(s->groups[i]->id, id))
                        return s->groups[i];
        return NULL;
}

static struct actor *group_actor(struct group *g, const char *id) {
        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, id))
                        return g->actors[i];
        return NULL;
}

/* --- files ------------------------------------------------------------------------------- */

static char *groups_dir(struct supervisor *s) {
        return path_join(s->home, "groups");
}

static int write_json_file(const char *path, struct json_object *o) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        return write_file_atomic(path, text, strlen(text), 0600);
}

static int registry_write(struct supervisor *s) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *list = json_object_new_array();
        _cleanup_free_ char *path = path_join(s->home, "registry.json");
        int r;

        if (!o || !list || !path)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_groups; i++)
                json_object_array_add(list, json_object_new_string(s->groups[i]->id));
        json_object_object_add(o, "format_version", json_object_new_int(REGISTRY_FORMAT_VERSION));
        json_object_object_add(o, "groups", json_object_get(list));
        r = write_json_file(path, o);
        if (r < 0)
                log_error_errno(r, "cannot write %s", path);
        return r;
}

static int group_config_write(struct group *g) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *actors = json_object_new_array();
        _cleanup_free_ char *path = path_join(g->dir, "group.json");
        int r;

        if (!o || !actors || !path)
                return -ENOMEM;
        json_object_object_add(o, "format_version", json_object_new_int(GROUP_FORMAT_VERSION));
        json_object_object_add(o, "id", json_object_new_string(g->id));
        json_object_object_add(o, "title", json_object_new_string(g->title ? g->title : ""));
        json_object_object_add(o, "state", json_object_new_string(group_run_state_to_string(g->state)));
        json_object_object_add(o, "created", json_object_new_string(g->created));
        /* Every appended event is applied in memory at once, so this reflects the whole ledger:
         * the next start replays only what comes after. */
        if (g->ledger)
                g->config_seq = ledger_last_seq(g->ledger);
        json_object_object_add(o, "config_seq", json_object_new_uint64(g->config_seq));
        for (size_t i = 0; i < g->n_actors; i++) {
                struct actor *a = g->actors[i];
                struct json_object *ao = json_object_new_object(), *cmd = NULL;
                json_object_object_add(ao, "id", json_object_new_string(a->id));
                json_object_object_add(ao, "kind", json_object_new_string(a->kind));
                json_object_object_add(ao, "title", json_object_new_string(a->title ? a->title : ""));
                if (a->command) {
                        cmd = json_object_new_array();
                        for (char **c = a->command; *c; c++)
                                json_object_array_add(cmd, json_object_new_string(*c));
                }
                json_object_object_add(ao, "command", cmd);
                json_object_object_add(ao, "enabled", json_object_new_boolean(a->enabled));
                if (a->llm)
                        json_object_object_add(ao, "llm", llm_actor_settings_json(a->llm));
                json_object_array_add(actors, ao);
        }
        json_object_object_add(o, "actors", json_object_get(actors));
        r = write_json_file(path, o);
        if (r < 0)
                log_group(g, LOG_ERR, r, "cannot write %s", path);
        return r;
}

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool jbool(struct json_object *o, const char *key) {
        struct json_object *v;
        return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static uint64_t parse_iso_ms(const char *ts) {
        struct tm tm = {};
        unsigned ms = 0;
        const char *p;

        if (!ts || !(p = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm)))
                return 0;
        if (*p == '.')
                sscanf(p + 1, "%3u", &ms);
        return (uint64_t) timegm(&tm) * 1000 + ms;
}

/* --- group configuration, replayed from the ledger ---------------------------------------- */

static int group_add_actor(struct group *g, struct actor *a) {
        struct actor **n = reallocarray(g->actors, g->n_actors + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        g->actors = n;
        g->actors[g->n_actors++] = a;
        return 0;
}

static void group_drop_actor(struct group *g, struct actor *a) {
        for (size_t i = 0; i < g->n_actors; i++)
                if (g->actors[i] == a) {
                        memmove(g->actors + i, g->actors + i + 1, (g->n_actors - i - 1) * sizeof *g->actors);
                        g->n_actors--;
                        break;
                }
        actor_free(a);
}

/* The part of group.json an event changes. Pure bookkeeping: processes are started and stopped
 * by the caller (actor_sync_runtime), so replaying on start-up runs nothing twice. */
static void group_apply_config_event(struct group *g, struct json_object *event) {
        const char *kind = jstr(event, "kind");
        struct json_object *data = NULL;
        const char *actor_id;
        struct actor *a;

        json_object_object_get_ex(event, "data", &data);
        actor_id = jstr(data, "actor_id");
        if (!kind)
                return;
        if (streq(kind, "group.created")) {
                free(g->title);
                g->title = strdup(jstr(data, "title") ?: "");
        } else if (streq(kind, "group.started") || streq(kind, "group.resumed"))
                g->state = GROUP_ACTIVE;
        else if (streq(kind, "group.stopped"))
                g->state = GROUP_STOPPED;
        else if (streq(kind, "group.paused"))
                g->state = GROUP_PAUSED;
        else if (streq(kind, "actor.added") && actor_id && !group_actor(g, actor_id)) {
                struct json_object *cmd = NULL, *llm = NULL;
                json_object_object_get_ex(data, "command", &cmd);
                a = actor_new(g, actor_id, jstr(data, "kind") ?: "human", jstr(data, "title"), cmd);
                if (a && streq(a->kind, "llm") && json_object_object_get_ex(data, "llm", &llm) &&
                    json_object_is_type(llm, json_type_object)) {
                        /* Provider-backed: it answers from the start; `actor stop` pauses it. An
                         * llm actor without settings is an agent acting by itself (MCP, API). */
                        a->enabled = true;
                        if (actor_set_llm(a, llm) < 0)
                                a = (actor_free(a), NULL);
                }
                if (a && group_add_actor(g, a) < 0)
                        actor_free(a);
        } else if (streq(kind, "actor.removed") && actor_id && (a = group_actor(g, actor_id)))
                group_drop_actor(g, a);
        else if (streq(kind, "actor.started") && actor_id && (a = group_actor(g, actor_id)))
                a->enabled = true;
        else if (streq(kind, "actor.stopped") && actor_id && (a = group_actor(g, actor_id)))
                a->enabled = false;
}

static int group_config_load(struct group *g) {
        _cleanup_free_ char *path = path_join(g->dir, "group.json"), *text = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *v, *actors;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_bounded(path, GROUP_FILE_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0; /* rebuilt from the ledger */
        if (r < 0)
                return log_group(g, LOG_ERR, r, "cannot read %s", path);
        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                log_group(g, LOG_WARNING, 0, "%s is not valid JSON; rebuilding it from the ledger", path);
                return 0;
        }
        if (json_object_object_get_ex(o, "format_version", &v) && json_object_get_int(v) > GROUP_FORMAT_VERSION)
                return log_group(g, LOG_ERR, EPROTONOSUPPORT,
                                 "%s was written by a newer Conclave (format %d); upgrade Conclave", path,
                                 json_object_get_int(v));
        free(g->title);
        g->title = strdup(jstr(o, "title") ?: "");
        if (jstr(o, "created"))
                snprintf(g->created, sizeof g->created, "%s", jstr(o, "created"));
        r = group_run_state_from_string(jstr(o, "state") ?: "idle");
        g->state = r >= 0 ? (enum group_run_state) r : GROUP_IDLE;
        if (json_object_object_get_ex(o, "config_seq", &v))
                g->config_seq = json_object_get_uint64(v);
        if (json_object_object_get_ex(o, "actors", &actors) && json_object_is_type(actors, json_type_array))
                for (size_t i = 0; i < json_object_array_length(actors); i++) {
                        struct json_object *ao = json_object_array_get_idx(actors, i), *cmd = NULL, *llm = NULL;
                        struct actor *a;
                        if (!valid_id(jstr(ao, "id")) || group_actor(g, jstr(ao, "id")))
                                continue;
                        json_object_object_get_ex(ao, "command", &cmd);
                        a = actor_new(g, jstr(ao, "id"), jstr(ao, "kind") ?: "human", jstr(ao, "title"), cmd);
                        if (a && streq(a->kind, "llm") && json_object_object_get_ex(ao, "llm", &llm) &&
                            json_object_is_type(llm, json_type_object)) {
                                if (actor_set_llm(a, llm) < 0)
                                        a = (actor_free(a), NULL);
                        }
                        if (!a || group_add_actor(g, a) < 0) {
                                actor_free(a);
                                return -ENOMEM;
                        }
                        a->enabled = jbool(ao, "enabled");
                }
        return 0;
}

/* --- derived state ------------------------------------------------------------------------ */

static int group_state_save(struct group *g) {
        _cleanup_json_ struct json_object *o = group_state_to_json(g->gs);
        _cleanup_free_ char *path = path_join(g->dir, "state/state.json");
        int r;

        if (!o || !path)
                return -ENOMEM;
        r = write_json_file(path, o);
        if (r >= 0)
                g->state_saved_seq = group_state_last_seq(g->gs);
        return r;
}

/* state/state.json, caught up with the ledger; rebuilt from the whole ledger when missing,
 * unreadable or ahead of it (a ledger cut back after a crash). */
/* Loads state/state.json if it is usable (not ahead of the ledger); otherwise starts empty and
 * the caller's replay rebuilds it. */
static int group_state_restore(struct group *g) {
        _cleanup_free_ char *path = path_join(g->dir, "state/state.json"), *text = NULL;
        uint64_t last = ledger_last_seq(g->ledger);
        struct group_state *gs = NULL;

        if (!path)
                return -ENOMEM;
        if (read_file_bounded(path, 256u * 1024u * 1024u, &text, NULL) >= 0) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(text);
                if (o && group_state_from_json(o, &gs) >= 0 && group_state_last_seq(gs) > last) {
                        group_state_free(gs);
                        gs = NULL;
                }
        }
        if (!gs) {
                if (last > 0)
                        log_group(g, LOG_NOTICE, 0, "rebuilding the derived state of group %s from its ledger (%" PRIu64 " events)",
                                  g->id, last);
                if (group_state_new(&gs) < 0)
                        return -ENOMEM;
        }
        g->gs = gs;
        g->state_saved_seq = group_state_last_seq(gs);
        return 0;
}

/* One pass over the events neither cache reflects yet. */
static int apply_replay(struct json_object *event, void *userdata) {
        struct group *g = userdata;
        struct json_object *v;
        uint64_t seq = json_object_object_get_ex(event, "seq", &v) ? json_object_get_uint64(v) : 0;
        int r = 0;

        if (seq > g->config_seq) {
                group_apply_config_event(g, event);
                g->config_seq = seq;
        }
        if (seq > group_state_last_seq(g->gs))
                r = group_state_apply(g->gs, event);
        channel_hub_group_apply(g, event);
        return r;
}

static void write_recovery_note(struct group *g, const char *what, uint64_t offset, const char *reason,
                                uint64_t bytes) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        _cleanup_free_ char *path = path_join(g->dir, "state/recovery.json");
        char ts[40];

        if (!o || !path)
                return;
        json_object_object_add(o, "format_version", json_object_new_int(RECOVERY_NOTE_FORMAT_VERSION));
        json_object_object_add(o, "time", json_object_new_string(format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME))));
        json_object_object_add(o, "what", json_object_new_string(what));
        json_object_object_add(o, "offset", json_object_new_uint64(offset));
        json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
        json_object_object_add(o, "reason", json_object_new_string(reason));
        (void) write_json_file(path, o);
}

static void group_mark_broken(struct group *g, const struct ledger_recovery *rec) {
        free(g->broken);
        if (asprintf(&g->broken, "ledger.jsonl is corrupt at byte offset %" PRIu64 ": %s; the group is stopped "
                     "(nothing was changed; see conclave-supervisor(8) on repairing a ledger)",
                     rec->corrupt_offset, rec->corrupt_reason) < 0)
                g->broken = NULL;
        log_group(g, LOG_ERR, 0, "group %s: %s", g->id, g->broken ? g->broken : "corrupt ledger");
        write_recovery_note(g, "corrupt", rec->corrupt_offset, rec->corrupt_reason, 0);
        for (size_t i = 0; i < g->n_actors; i++)
                actor_stop(g->actors[i]);
}

/* A clean open trusts the index and reads only the tail; the rest of the ledger is checked here,
 * a few thousand lines per loop iteration at idle priority, so start-up stays fast and a
 * corrupt line anywhere still stops the group. */
static int on_verify(sd_event_source *src, void *userdata) {
        struct group *g = userdata;
        struct ledger_recovery rec = {};
        int r = ledger_verify_step(g->ledger, g->verify, 2000, &rec);

        if (r == 0)
                return 0;
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                group_mark_broken(g, &rec);
        else if (r < 0)
                log_group(g, LOG_WARNING, r, "group %s: verifying the ledger failed", g->id);
        else
                log_group(g, LOG_DEBUG, 0, "group %s: ledger verified", g->id);
        g->verify_source = sd_event_source_disable_unref(g->verify_source);
        ledger_verify_free(g->verify);
        g->verify = NULL;
        return 0;
}

static void group_verify_start(struct group *g) {
        struct supervisor *s = g->supervisor;

        if (ledger_verify_begin(g->ledger, &g->verify) < 0)
                return;
        /* Defer sources are one-shot by default: keep it on until the check is done. */
        if (sd_event_add_defer(s->event, &g->verify_source, on_verify, g) < 0 ||
            sd_event_source_set_priority(g->verify_source, SD_EVENT_PRIORITY_IDLE) < 0 ||
            sd_event_source_set_enabled(g->verify_source, SD_EVENT_ON) < 0) {
                g->verify_source = sd_event_source_disable_unref(g->verify_source);
                ledger_verify_free(g->verify);
                g->verify = NULL;
        }
}

static struct group *group_alloc(struct supervisor *s, const char *id) {
        _cleanup_free_ char *dir = groups_dir(s);
        struct group *g = calloc(1, sizeof *g);

        if (!g || !dir)
                return free(g), NULL;
        g->supervisor = s;
        g->id = strdup(id);
        g->dir = path_join(dir, id);
        g->pending_tail = &g->pending;
        if (!g->id || !g->dir) {
                free(g->id);
                free(g->dir);
                free(g);
                return NULL;
        }
        return g;
}

static void group_free(struct group *g) {
        if (!g)
                return;
        /* Caches first: group.json lists the actors freed below. */
        if (g->gs && g->ledger && !g->broken) {
                if (group_state_last_seq(g->gs) != g->state_saved_seq)
                        (void) group_state_save(g);
                if (g->config_seq != ledger_last_seq(g->ledger))
                        (void) group_config_write(g);
                channel_hub_group_save(g, true);
        }
        for (size_t i = 0; i < g->n_actors; i++)
                actor_free(g->actors[i]);
        free(g->actors);
        group_state_free(g->gs);
        outbox_free(g->outbox);
        dedupe_free(g->dedupe);
        sd_event_source_disable_unref(g->verify_source);
        ledger_verify_free(g->verify);
        ledger_close(g->ledger);
        free(g->broken);
        free(g->id);
        free(g->title);
        free(g->dir);
        free(g);
}

void group_dedupe_remember(struct group *g, struct json_object *event) {
        struct json_object *data = NULL, *v;
        const char *id = jstr(event, "id"), *kind = jstr(event, "kind"), *ext, *channel;
        char key[DEDUPE_KEY_MAX + 1];

        if (g->dedupe && streq(kind, "chat.delivery") && json_object_object_get_ex(event, "data", &data) &&
            streq(jstr(data, "status"), "succeeded") && jstr(data, "platform_id") && jstr(data, "event_id") &&
            (channel = jstr(data, "channel"))) {
                /* What went out, so a reply to it on the platform is a reply in the ledger. */
                snprintf(key, sizeof key, "%s>%s", channel, jstr(data, "platform_id"));
                if (json_object_object_get_ex(event, "seq", &v))
                        (void) dedupe_add(g->dedupe, key, jstr(data, "event_id"), json_object_get_uint64(v));
                return;
        }
        if (!g->dedupe || !kind || !streq(kind, "chat.message") || !json_object_object_get_ex(event, "data", &data) ||
            !(ext = jstr(data, "external_id")))
                return;
        channel = jstr(data, "channel");
        snprintf(key, sizeof key, "%s:%s", channel ?: "api", ext);
        if (json_object_object_get_ex(event, "seq", &v))
                (void) dedupe_add(g->dedupe, key, id ?: "", json_object_get_uint64(v));
}

static int remember_one(struct json_object *event, void *userdata) {
        group_dedupe_remember(userdata, event);
        return 0;
}

static int group_open(struct group *g) {
        struct ledger_recovery rec = {};
        _cleanup_json_ struct json_object *last = NULL;
        int r;

        r = mkdir_parents(g->dir, 0700);
        if (r >= 0) {
                _cleanup_free_ char *state = path_join(g->dir, "state");
                r = state ? mkdir_parents(state, 0700) : -ENOMEM;
        }
        if (r < 0)
                return log_group(g, LOG_ERR, r, "cannot create %s", g->dir);

        r = ledger_open(g->dir, g->id, &g->ledger, &rec);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
                group_mark_broken(g, &rec);
                return 0;
        }
        if (r < 0) {
                if (asprintf(&g->broken, "cannot open the ledger: %s", strerror(-r)) < 0)
                        g->broken = NULL;
                return log_group(g, LOG_ERR, r, "group %s: cannot open its ledger", g->id);
        }
        {
                /* A note about an earlier corruption is void once the ledger opens cleanly. */
                _cleanup_free_ char *note = path_join(g->dir, "state/recovery.json"), *text = NULL;
                if (note && read_file_bounded(note, 65536, &text, NULL) >= 0 && strstr(text, "\"corrupt\""))
                        (void) unlink(note);
        }
        if (rec.truncated) {
                log_group(g, LOG_WARNING, 0,
                          "group %s: cut a torn last line of its ledger (%" PRIu64 " bytes at offset %" PRIu64 ": %s); "
                          "it was never acknowledged", g->id, rec.truncated_bytes, rec.truncated_offset, rec.reason);
                write_recovery_note(g, "truncated", rec.truncated_offset, rec.reason, rec.truncated_bytes);
        }
        if (rec.index_rebuilt)
                log_group(g, LOG_NOTICE, 0, "group %s: rebuilt the ledger index", g->id);

        r = group_config_load(g);
        if (r < 0)
                return r;
        if (g->config_seq > ledger_last_seq(g->ledger)) {
                /* group.json is ahead of a ledger cut back after a crash: replay it all. */
                for (size_t i = 0; i < g->n_actors; i++)
                        actor_free(g->actors[i]);
                g->n_actors = 0;
                g->config_seq = 0;
                g->state = GROUP_IDLE;
        }
        r = group_state_restore(g);
        if (r < 0)
                return r;
        {
                uint64_t from = g->config_seq < group_state_last_seq(g->gs) ? g->config_seq : group_state_last_seq(g->gs);
                uint64_t outbox_seq = 0;
                r = channel_hub_group_open(g, &outbox_seq);
                if (r < 0)
                        return r;
                from = MIN(from, outbox_seq);
                r = ledger_read_range(g->ledger, from, SIZE_MAX, apply_replay, g);
        }
        if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
                /* The replay met a bad line: verify the whole ledger now to name its offset. */
                _cleanup_(ledger_verify_freep) struct ledger_verify *v = NULL;
                struct ledger_recovery bad = {};
                int q = ledger_verify_begin(g->ledger, &v);
                while (q >= 0 && (q = ledger_verify_step(g->ledger, v, SIZE_MAX, &bad)) == 0)
                        ;
                if (q == -EBADMSG || q == -EPROTONOSUPPORT) {
                        group_mark_broken(g, &bad);
                        return 0;
                }
        }
        if (r < 0)
                return log_group(g, LOG_ERR, r, "cannot replay the ledger of group %s", g->id);
        if (r > 0) {
                (void) group_config_write(g);
                (void) group_state_save(g);
                channel_hub_group_save(g, true);
        }
        if (ledger_read(g->ledger, ledger_last_seq(g->ledger), &last) >= 0) {
                g->last_event_ms = parse_iso_ms(jstr(last, "ts"));
                event_id_observe(jstr(last, "id"));
        }
        /* The external ids of the last messages, so channel retries after a restart are caught. */
        if (dedupe_new(GROUP_DEDUPE_WINDOW, &g->dedupe) >= 0)
                (void) ledger_tail(g->ledger, GROUP_DEDUPE_WINDOW, remember_one, g);
        group_verify_start(g);
        if (!*g->created) {
                _cleanup_json_ struct json_object *first = NULL;
                if (ledger_read(g->ledger, 1, &first) >= 0 && jstr(first, "ts"))
                        snprintf(g->created, sizeof g->created, "%s", jstr(first, "ts"));
        }
        return 0;
}

int groups_load(struct supervisor *s) {
        _cleanup_free_ char *path = path_join(s->home, "registry.json"), *text = NULL, *dir = groups_dir(s);
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *list, *v;
        int r;

        if (!path || !dir)
                return -ENOMEM;
        r = mkdir_parents(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create %s", dir);
        r = read_file_bounded(path, GROUP_FILE_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "cannot read %s", path);
        o = json_tokener_parse(text);
        if (!o || !json_object_object_get_ex(o, "groups", &list) || !json_object_is_type(list, json_type_array))
                return log_error_errno(EBADMSG, "%s is not a Conclave registry (expected {\"groups\":[…]})", path);
        if (json_object_object_get_ex(o, "format_version", &v) && json_object_get_int(v) > REGISTRY_FORMAT_VERSION)
                return log_error_errno(EPROTONOSUPPORT, "%s was written by a newer Conclave (format %d); upgrade Conclave",
                                       path, json_object_get_int(v));

        for (size_t i = 0; i < json_object_array_length(list); i++) {
                const char *id = json_object_get_string(json_object_array_get_idx(list, i));
                struct group **n, *g;

                if (!valid_id(id) || group_find(s, id)) {
                        log_warning("%s: skipping invalid or duplicate group id \"%s\"", path, id ? id : "");
                        continue;
                }
                g = group_alloc(s, id);
                if (!g)
                        return -ENOMEM;
                r = group_open(g);
                if (r < 0 && !g->broken && asprintf(&g->broken, "cannot load: %s", strerror(-r)) < 0)
                        g->broken = NULL;
                n = reallocarray(s->groups, s->n_groups + 1, sizeof *n);
                if (!n) {
                        group_free(g);
                        return -ENOMEM;
                }
                s->groups = n;
                s->groups[s->n_groups++] = g;
        }
        for (size_t i = 0; i < s->n_groups; i++)
                if (!s->groups[i]->broken)
                        for (size_t j = 0; j < s->groups[i]->n_actors; j++)
                                (void) actor_sync_runtime(s->groups[i]->actors[j]);
        log_info("loaded %zu group(s)", s->n_groups);
        return 0;
}

void groups_free(struct supervisor *s) {
        struct follower *f;

        groups_flush(s);
        while ((f = s->followers)) {
                s->followers = f->next;
                free(f->group_id);
                free(f);
        }
        for (size_t i = 0; i < s->n_groups; i++)
                group_free(s->groups[i]);
        free(s->groups);
        s->groups = NULL;
        s->n_groups = 0;
        s->flush_timer = sd_event_source_disable_unref(s->flush_timer);
        s->flush_defer = sd_event_source_disable_unref(s->flush_defer);
}

/* --- the durable event path ---------------------------------------------------------------- */

static void followers_send(struct supervisor *s, struct group *g, struct json_object *event) {
        _cleanup_json_ struct json_object *line = json_object_new_object();

        if (!line)
                return;
        json_object_object_add(line, "event", json_object_get(event));
        for (struct follower *f = s->followers; f; f = f->next)
                if (!f->group_id || streq(f->group_id, g->id))
                        (void) control_request_stream_send(f->req, line);
}

static void group_flush(struct group *g) {
        struct supervisor *s = g->supervisor;
        struct pending_event *p;
        bool config_changed = false, delivered = false;
        int r = 0;

        if (!g->pending)
                return;
        if (s->config->ledger_sync != LEDGER_SYNC_NONE)
                r = ledger_sync(g->ledger);
        if (r < 0)
                log_group(g, LOG_CRIT, r, "cannot make the ledger of group %s durable; refusing the pending events", g->id);

        while ((p = g->pending)) {
                const char *kind = p->event ? jstr(p->event, "kind") : NULL;
                g->pending = p->next;
                if (r < 0) {
                        if (p->req)
                                control_request_error(p->req, "internal", "the ledger could not be synced: %s",
                                                      strerror(-r));
                } else if (!p->event) {
                        if (p->req)
                                control_request_reply(p->req, p->result);
                } else {
                        if (p->req && p->result)
                                control_request_reply(p->req, p->result);
                        else if (p->req) {
                                _cleanup_json_ struct json_object *res = json_object_new_object();
                                struct json_object *v;
                                json_object_object_add(res, "event_id", json_object_new_string(jstr(p->event, "id") ?: ""));
                                if (json_object_object_get_ex(p->event, "seq", &v))
                                        json_object_object_add(res, "seq", json_object_get(v));
                                json_object_object_add(res, "group", json_object_new_string(g->id));
                                control_request_reply(p->req, res);
                        }
                        followers_send(s, g, p->event);
                        channel_hub_group_durable(g, p->event);
                        if (kind && (strncmp(kind, "group.", 6) == 0 || strncmp(kind, "actor.added", 11) == 0 ||
                                     streq(kind, "actor.removed") || streq(kind, "actor.started") ||
                                     streq(kind, "actor.stopped")))
                                config_changed = true;
                        if (kind && (streq(kind, "chat.message") || streq(kind, "system.notify")))
                                delivered = true;
                }
                json_object_put(p->event);
                json_object_put(p->result);
                free(p);
        }
        g->pending_tail = &g->pending;
        if (config_changed)
                (void) group_config_write(g);
        if (group_state_last_seq(g->gs) >= g->state_saved_seq + STATE_SAVE_EVERY)
                (void) group_state_save(g);
        channel_hub_group_save(g, false);
        if (delivered && g->state == GROUP_ACTIVE)
                for (size_t i = 0; i < g->n_actors; i++)
                        actor_pump(g->actors[i]);
}

uint64_t group_durable_seq(const struct group *g) {
        for (const struct pending_event *p = g->pending; p; p = p->next) {
                struct json_object *v;
                if (p->event && json_object_object_get_ex(p->event, "seq", &v))
                        return json_object_get_uint64(v) - 1;
        }
        return g->ledger ? ledger_last_seq(g->ledger) : 0;
}

void groups_flush(struct supervisor *s) {
        s->flush_timer = sd_event_source_disable_unref(s->flush_timer);
        s->flush_defer = sd_event_source_disable_unref(s->flush_defer);
        for (size_t i = 0; i < s->n_groups; i++)
                group_flush(s->groups[i]);
}

static int on_flush_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        groups_flush(userdata);
        return 0;
}

static int on_flush_defer(sd_event_source *src, void *userdata) {
        groups_flush(userdata);
        return 0;
}

int group_append(struct group *g, const char *kind, const char *by, struct json_object *data,
                 struct control_request *req, struct json_object **ret_event) {
        struct supervisor *s = g->supervisor;
        struct json_object *event = NULL;
        struct pending_event *p;
        int r;

        if (g->broken)
                return -EBADMSG;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        r = ledger_append(g->ledger, kind, by, data, &event);
        if (r < 0) {
                free(p);
                return log_group(g, LOG_ERR, r, "cannot append %s to the ledger of group %s", kind, g->id);
        }
        r = group_state_apply(g->gs, event);
        if (r < 0)
                log_group(g, LOG_ERR, r, "group %s: derived state refused event %s; it will be rebuilt on restart",
                          g->id, jstr(event, "id") ?: "?");
        group_apply_config_event(g, event);
        channel_hub_group_apply(g, event);
        g->last_event_ms = parse_iso_ms(jstr(event, "ts"));
        automation_event_applied(g, event);

        p->event = event;
        p->req = req;
        *g->pending_tail = p;
        g->pending_tail = &p->next;
        if (ret_event)
                *ret_event = event;

        if (s->config->ledger_sync == LEDGER_SYNC_BATCH) {
                /* Group commit: every append of the next few ms shares one fdatasync. The timer's
                 * accuracy must be explicit: sd-event's default slack is 250 ms. */
                if (!s->flush_timer &&
                    sd_event_add_time_relative(s->event, &s->flush_timer, CLOCK_MONOTONIC, s->config->ledger_batch_usec,
                                               1, on_flush_timer, s) < 0)
                        group_flush(g);
        } else if (!s->flush_defer) {
                /* always/none: flush once the requests already read in this loop iteration are
                 * appended, so simultaneous callers share an fdatasync without waiting. */
                if (sd_event_add_defer(s->event, &s->flush_defer, on_flush_defer, s) < 0)
                        group_flush(g);
        }
        return 0;
}

int group_reply_when_durable(struct group *g, struct control_request *req, struct json_object *result) {
        struct pending_event *p;

        if (!g->pending) {
                control_request_reply(req, result);
                return 0;
        }
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->req = req;
        p->result = json_object_get(result);
        *g->pending_tail = p;
        g->pending_tail = &p->next;
        return 0;
}

int group_find_event(struct group *g, const char *name, struct json_object **ret) {
        uint64_t lo = 1, hi;
        char *end;

        if (!name || !*name)
                return -EINVAL;
        if (isdigit((unsigned char) name[0])) {
                unsigned long long seq;
                errno = 0;
                seq = strtoull(name, &end, 10);
                if (!errno && !*end && strlen(name) < EVENT_ID_LEN)
                        return ledger_read(g->ledger, seq, ret);
        }
        if (strlen(name) != EVENT_ID_LEN)
                return -EINVAL;
        /* Ids grow with seq (ULIDs, kept monotonic across restarts), so binary search. */
        hi = ledger_last_seq(g->ledger);
        while (lo <= hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                _cleanup_json_ struct json_object *e = NULL;
                const char *id;
                int c, r = ledger_read(g->ledger, mid, &e);
                if (r < 0)
                        return r;
                id = jstr(e, "id");
                c = strcasecmp(id ? id : "", name);
                if (c == 0) {
                        *ret = e;
                        e = NULL;
                        return 0;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        return -ENOENT;
}

/* --- operations ------------------------------------------------------------------------- */

int group_create(struct supervisor *s, const char *id, const char *title, struct control_request *req) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct group **n, *g;
        int r;

        if (!data)
                return -ENOMEM;
        g = group_alloc(s, id);
        if (!g)
                return -ENOMEM;
        r = group_open(g);
        if (r < 0 || g->broken) {
                group_free(g);
                return r < 0 ? r : -EBADMSG;
        }
        if (ledger_last_seq(g->ledger) > 0) {
                /* A directory left behind (e.g. a crash between ledger and registry): adopt it. */
                log_group(g, LOG_NOTICE, 0, "adopting existing data of group %s", id);
        }
        n = reallocarray(s->groups, s->n_groups + 1, sizeof *n);
        if (!n) {
                group_free(g);
                return -ENOMEM;
        }
        s->groups = n;
        s->groups[s->n_groups++] = g;
        r = registry_write(s);
        if (r < 0)
                return r;
        json_object_object_add(data, "title", json_object_new_string(title ? title : ""));
        if (ledger_last_seq(g->ledger) == 0) {
                _cleanup_json_ struct json_object *op = json_object_new_object(), *result = NULL;
                char ts[40];

                snprintf(g->created, sizeof g->created, "%s", format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME)));
                r = group_append(g, "group.created", "operator", data, NULL, NULL);
                if (r < 0)
                        return r;
                /* The operator is a member of every group: it can be addressed, owes replies and
                 * has an inbox like any human actor. */
                json_object_object_add(op, "actor_id", json_object_new_string("operator"));
                json_object_object_add(op, "kind", json_object_new_string("human"));
                json_object_object_add(op, "title", json_object_new_string("Operator"));
                r = group_append(g, "actor.added", "operator", op, NULL, NULL);
                if (r < 0)
                        return r;
                result = group_to_json(g);
                return group_reply_when_durable(g, req, result);
        }
        {
                _cleanup_json_ struct json_object *result = group_to_json(g); /* adopted */
                return group_reply_when_durable(g, req, result);
        }
}

int group_set_state(struct group *g, enum group_run_state st, struct control_request *req) {
        static const char *const kinds[] = {
                [GROUP_ACTIVE] = "group.started", [GROUP_PAUSED] = "group.paused", [GROUP_STOPPED] = "group.stopped",
        };
        const char *kind = kinds[st];
        int r;

        if (st == GROUP_ACTIVE && g->state == GROUP_PAUSED)
                kind = "group.resumed";
        r = group_append(g, kind, "operator", NULL, NULL, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_actors; i++)
                (void) actor_sync_runtime(g->actors[i]);
        if (g->state == GROUP_ACTIVE)
                for (size_t i = 0; i < g->n_actors; i++)
                        actor_pump(g->actors[i]);
        if (req) {
                _cleanup_json_ struct json_object *result = group_to_json(g);
                return group_reply_when_durable(g, req, result);
        }
        return 0;
}

int group_delete(struct group *g, char **ret_moved_to) {
        struct supervisor *s = g->supervisor;
        _cleanup_free_ char *trash = path_join(s->home, "trash"), *target = NULL;
        char ts[40];
        int r;

        groups_flush(s);
        if (!trash)
                return -ENOMEM;
        r = mkdir_parents(trash, 0700);
        if (r < 0)
                return r;
        format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME));
        for (char *c = ts; *c; c++)
                if (*c == ':')
                        *c = '-';
        if (asprintf(&target, "%s/%s-%s", trash, g->id, ts) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_actors; i++)
                actor_stop(g->actors[i]);
        if (rename(g->dir, target) < 0)
                return log_group(g, LOG_ERR, errno, "cannot move %s to %s", g->dir, target);
        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i] == g) {
                        memmove(s->groups + i, s->groups + i + 1, (s->n_groups - i - 1) * sizeof *s->groups);
                        s->n_groups--;
                        break;
                }
        log_group(g, LOG_NOTICE, 0, "deleted group %s; its data is in %s", g->id, target);
        /* Its files moved: do not write state into the old place. */
        g->state_saved_seq = g->gs ? group_state_last_seq(g->gs) : 0;
        g->config_seq = g->ledger ? ledger_last_seq(g->ledger) : 0;
        group_free(g);
        (void) registry_write(s);
        *ret_moved_to = target;
        target = NULL;
        return 0;
}

struct json_object *group_to_json(struct group *g) {
        struct json_object *o = json_object_new_object();
        unsigned running = 0;
        char ts[40];

        if (!o)
                return NULL;
        for (size_t i = 0; i < g->n_actors; i++)
                running += g->actors[i]->runtime == ACTOR_RUNNING;
        json_object_object_add(o, "id", json_object_new_string(g->id));
        json_object_object_add(o, "title", json_object_new_string(g->title ? g->title : ""));
        json_object_object_add(o, "state", json_object_new_string(g->broken ? "broken" : group_run_state_to_string(g->state)));
        json_object_object_add(o, "created", *g->created ? json_object_new_string(g->created) : NULL);
        json_object_object_add(o, "actor_count", json_object_new_int((int) g->n_actors));
        json_object_object_add(o, "running_actors", json_object_new_int((int) running));
        json_object_object_add(o, "last_seq", json_object_new_uint64(g->ledger ? ledger_last_seq(g->ledger) : 0));
        json_object_object_add(o, "last_event_time",
                               g->last_event_ms ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, g->last_event_ms * 1000)) : NULL);
        json_object_object_add(o, "error", g->broken ? json_object_new_string(g->broken) : NULL);
        return o;
}

/* --- followers --------------------------------------------------------------------------- */

static void follower_closed(struct control_request *req, void *userdata) {
        struct supervisor *s = userdata;

        for (struct follower **p = &s->followers; *p; p = &(*p)->next)
                if ((*p)->req == req) {
                        struct follower *f = *p;
                        *p = f->next;
                        free(f->group_id);
                        free(f);
                        return;
                }
}

int follower_add(struct supervisor *s, struct control_request *req, const char *group_id) {
        struct follower *f = calloc(1, sizeof *f);
        int r;

        if (!f)
                return -ENOMEM;
        f->req = req;
        f->group_id = group_id ? strdup(group_id) : NULL;
        r = control_request_stream_begin(req, follower_closed, s);
        if (r < 0 || (group_id && !f->group_id)) {
                free(f->group_id);
                free(f);
                return r < 0 ? r : -ENOMEM;
        }
        f->next = s->followers;
        s->followers = f;
        return 0;
}

void groups_stop_actors(struct supervisor *s) {
        for (size_t i = 0; i < s->n_groups; i++)
                for (size_t j = 0; j < s->groups[i]->n_actors; j++) {
                        struct actor *a = s->groups[i]->actors[j];
                        bool enabled = a->enabled;
                        actor_stop(a);
                        a->enabled = enabled; /* a daemon stop is not the operator stopping it */
                }
}

bool groups_actors_stopped(struct supervisor *s) {
        for (size_t i = 0; i < s->n_groups; i++)
                for (size_t j = 0; j < s->groups[i]->n_actors; j++)
                        if (s->groups[i]->actors[j]->pid > 0)
                                return false;
        return true;
}

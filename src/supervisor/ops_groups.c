/* Control operations on groups, actors, messages, inboxes and events (docs/control-protocol.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "control_server.h"
#include "group_state.h"
#include "groups.h"
#include "llm.h"
#include "macro.h"
#include "messages.h"
#include "proto.h"
#include "supervisor.h"
#include "timeutil.h"

#define TAIL_MAX 10000
#define EVENTS_RANGE_MAX 1000
/* A page of events must fit one packet of the worker channel (PROTO_PACKET_MAX). */
#define EVENTS_RANGE_BYTES_MAX (160 * 1024)
#define INBOX_MAX 1000
#define INBOX_SCAN_MAX 100000 /* events looked at per inbox.list */

static const char *arg_str(struct json_object *args, const char *key) {
        struct json_object *v;
        if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool arg_bool(struct json_object *args, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(args, key, &v) && json_object_get_boolean(v);
}

static int64_t arg_int(struct json_object *args, const char *key, int64_t def) {
        struct json_object *v;
        if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_int))
                return def;
        return json_object_get_int64(v);
}

/* The group named by args.group, or an error answer (and NULL). */
static struct group *want_group(struct supervisor *s, struct control_request *req, struct json_object *args,
                                bool usable) {
        const char *id = arg_str(args, "group");
        struct group *g;

        if (!id) {
                control_request_error(req, "bad_request", "missing \"group\"");
                return NULL;
        }
        g = group_find(s, id);
        if (!g) {
                control_request_error(req, "not_found", "no group \"%s\" (see `conclave groups`)", id);
                return NULL;
        }
        if (usable && g->broken) {
                control_request_error(req, "broken", "group %s is broken: %s", g->id, g->broken);
                return NULL;
        }
        return g;
}

static struct actor *want_actor(struct group *g, struct control_request *req, struct json_object *args) {
        const char *id = arg_str(args, "actor");

        if (!id) {
                control_request_error(req, "bad_request", "missing \"actor\"");
                return NULL;
        }
        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, id))
                        return g->actors[i];
        control_request_error(req, "not_found", "no actor \"%s\" in group %s", id, g->id);
        return NULL;
}

static void reply_owned(struct control_request *req, struct json_object *o) {
        control_request_reply(req, o);
        json_object_put(o);
}

static void answer_error(struct control_request *req, const struct message_error *err, int r) {
        if (err->code)
                control_request_error(req, err->code, "%s", err->message);
        else
                control_request_error(req, "internal", "%s", strerror(-r));
}

/* The open obligations of actor as a JSON array (see docs/control-protocol.md). */
static struct json_object *obligations_json(struct group *g, const char *actor) {
        _cleanup_free_ struct obligation *list = NULL;
        struct json_object *arr = json_object_new_array();
        int n = g->gs ? group_state_obligations(g->gs, actor, &list) : 0;

        for (int i = 0; arr && i < n; i++) {
                struct json_object *ob = json_object_new_object();
                char ts[40];
                json_object_object_add(ob, "kind", json_object_new_string(list[i].kind == OBLIGATION_REPLY ? "reply" : "ack"));
                json_object_object_add(ob, "actor", json_object_new_string(list[i].actor_id));
                json_object_object_add(ob, "event_id", json_object_new_string(list[i].event_id));
                json_object_object_add(ob, "seq", json_object_new_uint64(list[i].seq));
                json_object_object_add(ob, "from", json_object_new_string(list[i].from));
                json_object_object_add(ob, "since",
                                       json_object_new_string(format_timestamp_iso(ts, sizeof ts, list[i].created_ms * 1000)));
                json_object_array_add(arr, ob);
        }
        return arr;
}

/* --- groups ------------------------------------------------------------------------------ */

static int op_group_list(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct json_object *list = json_object_new_array();
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_groups; i++)
                json_object_array_add(list, group_to_json(s->groups[i]));
        reply_owned(req, list);
        return 0;
}

static int op_group_create(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *id = arg_str(args, "group"), *title = arg_str(args, "title");
        int r;

        if (!valid_id(id)) {
                control_request_error(req, "bad_request", "invalid group id \"%s\": use 1-64 letters, digits, '-' or '_'",
                                      id ? id : "");
                return 0;
        }
        if (group_find(s, id)) {
                control_request_error(req, "exists", "group %s already exists", id);
                return 0;
        }
        if (title && strlen(title) > 256) {
                control_request_error(req, "bad_request", "title longer than 256 bytes");
                return 0;
        }
        r = group_create(s, id, title, req);
        if (r < 0)
                control_request_error(req, "internal", "cannot create group %s: %s", id, strerror(-r));
        return 0;
}

static int op_group_show(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, false);
        struct json_object *o, *actors;

        if (!g)
                return 0;
        o = group_to_json(g);
        actors = json_object_new_array();
        for (size_t i = 0; i < g->n_actors; i++)
                json_object_array_add(actors, actor_to_json(g->actors[i]));
        json_object_object_add(o, "actors", actors);
        reply_owned(req, o);
        return 0;
}

static int set_state(struct supervisor *s, struct control_request *req, struct json_object *args,
                     enum group_run_state st, const enum group_run_state *allowed, size_t n_allowed, const char *verb) {
        struct group *g = want_group(s, req, args, true);
        bool ok = false;
        int r;

        if (!g)
                return 0;
        for (size_t i = 0; i < n_allowed; i++)
                ok = ok || g->state == allowed[i];
        if (!ok) {
                control_request_error(req, "invalid_state", "cannot %s group %s: it is %s", verb, g->id,
                                      group_run_state_to_string(g->state));
                return 0;
        }
        r = group_set_state(g, st, req);
        if (r < 0)
                control_request_error(req, "internal", "cannot %s group %s: %s", verb, g->id, strerror(-r));
        return 0;
}

static int op_group_start(struct supervisor *s, struct control_request *req, struct json_object *args) {
        static const enum group_run_state from[] = { GROUP_IDLE, GROUP_STOPPED };
        return set_state(s, req, args, GROUP_ACTIVE, from, ELEMENTSOF(from), "start");
}

static int op_group_stop(struct supervisor *s, struct control_request *req, struct json_object *args) {
        static const enum group_run_state from[] = { GROUP_IDLE, GROUP_ACTIVE, GROUP_PAUSED };
        return set_state(s, req, args, GROUP_STOPPED, from, ELEMENTSOF(from), "stop");
}

static int op_group_pause(struct supervisor *s, struct control_request *req, struct json_object *args) {
        static const enum group_run_state from[] = { GROUP_ACTIVE };
        return set_state(s, req, args, GROUP_PAUSED, from, ELEMENTSOF(from), "pause");
}

static int op_group_resume(struct supervisor *s, struct control_request *req, struct json_object *args) {
        static const enum group_run_state from[] = { GROUP_PAUSED };
        return set_state(s, req, args, GROUP_ACTIVE, from, ELEMENTSOF(from), "resume");
}

static int op_group_delete(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, false);
        _cleanup_free_ char *moved = NULL, *id = NULL;
        struct json_object *o;
        int r;

        if (!g)
                return 0;
        if (g->state != GROUP_STOPPED && g->state != GROUP_IDLE && !g->broken) {
                control_request_error(req, "invalid_state", "group %s is %s; stop it first (`conclave group stop %s`)",
                                      g->id, group_run_state_to_string(g->state), g->id);
                return 0;
        }
        id = strdup(g->id);
        if (!id)
                return -ENOMEM;
        r = group_delete(g, &moved);
        if (r < 0) {
                control_request_error(req, "internal", "cannot delete group %s: %s", id, strerror(-r));
                return 0;
        }
        o = json_object_new_object();
        json_object_object_add(o, "group", json_object_new_string(id));
        json_object_object_add(o, "moved_to", json_object_new_string(moved));
        reply_owned(req, o);
        return 0;
}

/* --- actors ------------------------------------------------------------------------------ */

static int op_actor_list(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, false);
        struct json_object *list;

        if (!g)
                return 0;
        list = json_object_new_array();
        for (size_t i = 0; i < g->n_actors; i++)
                json_object_array_add(list, actor_to_json(g->actors[i]));
        reply_owned(req, list);
        return 0;
}

static int op_actor_add(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, true);
        const char *id = arg_str(args, "actor"), *kind = arg_str(args, "kind"), *title = arg_str(args, "title");
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct json_object *command = NULL;
        int r;

        if (!g)
                return 0;
        if (!valid_id(id) || streq(id, "operator") || streq(id, "conclave")) {
                control_request_error(req, "bad_request", "invalid actor id \"%s\": use 1-64 letters, digits, '-' or '_' "
                                      "(\"operator\" and \"conclave\" are reserved)", id ? id : "");
                return 0;
        }
        if (!streq(kind, "command") && !streq(kind, "human") && !streq(kind, "llm")) {
                control_request_error(req, "bad_request", "invalid kind \"%s\": expected command, human or llm", kind ? kind : "");
                return 0;
        }
        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, id)) {
                        control_request_error(req, "exists", "actor %s already exists in group %s", id, g->id);
                        return 0;
                }
        json_object_object_get_ex(args, "command", &command);
        if (streq(kind, "command")) {
                bool ok = command && json_object_is_type(command, json_type_array) && json_object_array_length(command) > 0 &&
                          json_object_array_length(command) <= 256;
                for (size_t i = 0; ok && i < json_object_array_length(command); i++) {
                        struct json_object *c = json_object_array_get_idx(command, i);
                        ok = json_object_is_type(c, json_type_string) && json_object_get_string_len(c) > 0 &&
                             json_object_get_string_len(c) < 4096;
                }
                if (!ok) {
                        control_request_error(req, "bad_request", "a command actor needs \"command\": a non-empty list of strings");
                        return 0;
                }
                json_object_object_add(data, "command", json_object_get(command));
        } else if (command && !json_object_is_type(command, json_type_null)) {
                control_request_error(req, "bad_request", "only command actors have a command");
                return 0;
        }
        if (json_object_object_get_ex(args, "llm", &command) && !json_object_is_type(command, json_type_null)) {
                struct json_object *llm = NULL;
                char err[512] = "";
                if (!streq(kind, "llm")) {
                        control_request_error(req, "bad_request", "only llm actors have llm settings");
                        return 0;
                }
                r = llm_settings_for_add(s, command, &llm, err, sizeof err);
                if (r < 0) {
                        control_request_error(req, r == -ENOENT ? "not_found" : "bad_request", "%s", err);
                        return 0;
                }
                json_object_object_add(data, "llm", llm);
        }
        json_object_object_add(data, "actor_id", json_object_new_string(id));
        json_object_object_add(data, "kind", json_object_new_string(kind));
        json_object_object_add(data, "title", json_object_new_string(title ? title : ""));
        r = group_append(g, "actor.added", "operator", data, NULL, NULL);
        if (r < 0) {
                control_request_error(req, "internal", "cannot add actor: %s", strerror(-r));
                return 0;
        }
        {
                _cleanup_json_ struct json_object *result = actor_to_json(g->actors[g->n_actors - 1]);
                return group_reply_when_durable(g, req, result);
        }
}

#define UNREAD_COUNT_MAX 100000

struct unread_count {
        struct group *group;
        const char *actor;
        uint64_t n;
};

static int count_unread(struct json_object *event, void *userdata) {
        struct unread_count *c = userdata;
        if (group_state_addressed_to(c->group->gs, event, c->actor))
                c->n++;
        return 0;
}

static int op_actor_show(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, false);
        struct actor *a = g ? want_actor(g, req, args) : NULL;
        struct json_object *o;

        if (!a)
                return 0;
        o = actor_to_json(a);
        json_object_object_add(o, "obligations", obligations_json(g, a->id));
        if (g->gs && g->ledger) {
                struct unread_count c = { .group = g, .actor = a->id };
                int r = ledger_read_range(g->ledger, group_state_cursor(g->gs, a->id), UNREAD_COUNT_MAX, count_unread, &c);
                json_object_object_add(o, "unread", r >= 0 ? json_object_new_uint64(c.n) : NULL);
                /* Counting looks at most UNREAD_COUNT_MAX events past the cursor. */
                json_object_object_add(o, "unread_capped", json_object_new_boolean(r >= 0 && (size_t) r >= UNREAD_COUNT_MAX));
        }
        reply_owned(req, o);
        return 0;
}

static int actor_change(struct supervisor *s, struct control_request *req, struct json_object *args, const char *what) {
        struct group *g = want_group(s, req, args, true);
        struct actor *a = g ? want_actor(g, req, args) : NULL;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        int r = 0;

        if (!a)
                return 0;
        json_object_object_add(data, "actor_id", json_object_new_string(a->id));
        if (streq(what, "start")) {
                r = group_append(g, "actor.started", "operator", data, NULL, NULL);
                if (r >= 0) {
                        a->history.n = 0;
                        if (a->runtime == ACTOR_FAILED)
                                a->runtime = ACTOR_STOPPED;
                        (void) actor_sync_runtime(a);
                }
        } else if (streq(what, "stop")) {
                r = group_append(g, "actor.stopped", "operator", data, NULL, NULL);
                if (r >= 0)
                        actor_stop(a);
        } else if (streq(what, "restart")) {
                r = group_append(g, "actor.restarted", "operator", data, NULL, NULL);
                if (r >= 0)
                        actor_restart(a);
        }
        if (r < 0) {
                control_request_error(req, "internal", "cannot %s actor %s: %s", what, a->id, strerror(-r));
                return 0;
        }
        {
                _cleanup_json_ struct json_object *result = actor_to_json(a);
                return group_reply_when_durable(g, req, result);
        }
}

static int op_actor_start(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return actor_change(s, req, args, "start");
}
static int op_actor_stop(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return actor_change(s, req, args, "stop");
}
static int op_actor_restart(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return actor_change(s, req, args, "restart");
}

static int op_actor_remove(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, true);
        struct actor *a = g ? want_actor(g, req, args) : NULL;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        int r;

        if (!a)
                return 0;
        if (streq(a->id, "operator")) {
                control_request_error(req, "bad_request", "the operator cannot be removed from a group");
                return 0;
        }
        actor_stop(a);
        json_object_object_add(data, "actor_id", json_object_new_string(a->id));
        r = group_append(g, "actor.removed", "operator", data, NULL, NULL); /* frees a */
        if (r < 0) {
                control_request_error(req, "internal", "cannot remove actor: %s", strerror(-r));
                return 0;
        }
        {
                _cleanup_json_ struct json_object *result = json_object_new_object();
                json_object_object_add(result, "group", json_object_new_string(g->id));
                json_object_object_add(result, "actor", json_object_new_string(arg_str(args, "actor")));
                return group_reply_when_durable(g, req, result);
        }
}

/* --- messages ------------------------------------------------------------------------------ */

static int post(struct supervisor *s, struct control_request *req, struct json_object *args, bool reply) {
        struct group *g = want_group(s, req, args, true);
        struct message_error err = {};
        struct json_object *to = NULL;
        struct message_args m;
        int r;

        if (!g)
                return 0;
        json_object_object_get_ex(args, "to", &to);
        m = (struct message_args){
                .by = arg_str(args, "by") ?: "operator", .text = arg_str(args, "text"),
                .to = to && !json_object_is_type(to, json_type_null) ? to : NULL,
                .reply_to = reply ? arg_str(args, "event") : NULL,
                .reply_required = arg_bool(args, "reply_required"), .attention = arg_bool(args, "attention"),
                .channel = arg_str(args, "channel"), .external_id = arg_str(args, "external_id"),
                .external_from = arg_str(args, "external_from"),
        };
        if (reply && !m.reply_to) {
                control_request_error(req, "bad_request", "missing \"event\" (the id or seq of the message to answer)");
                return 0;
        }
        r = message_post(g, &m, req, &err);
        if (r < 0)
                answer_error(req, &err, r);
        return 0;
}

static int op_message_send(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return post(s, req, args, false);
}

static int op_message_reply(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return post(s, req, args, true);
}

static int op_message_ack(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, true);
        struct message_error err = {};
        const char *by = arg_str(args, "by"), *event = arg_str(args, "event");
        int r;

        if (!g)
                return 0;
        if (!by || !event) {
                control_request_error(req, "bad_request", "ack needs \"by\" (the acknowledging actor) and \"event\"");
                return 0;
        }
        r = message_ack(g, by, event, req, &err);
        if (r < 0)
                answer_error(req, &err, r);
        return 0;
}

struct inbox_scan {
        struct group *group;
        const char *actor;
        struct json_object *unread;
        size_t limit;
        bool more;
        uint64_t last_seq;
};

static int inbox_collect(struct json_object *event, void *userdata) {
        struct inbox_scan *scan = userdata;
        struct json_object *seq;

        if (json_object_object_get_ex(event, "seq", &seq))
                scan->last_seq = json_object_get_uint64(seq);
        if (!group_state_addressed_to(scan->group->gs, event, scan->actor))
                return 0;
        if (json_object_array_length(scan->unread) >= scan->limit) {
                scan->more = true;
                return -ECANCELED; /* enough */
        }
        json_object_array_add(scan->unread, json_object_get(event));
        return 0;
}

/* A command actor's delivery: "throttled" and "next_delivery" (null for other actors). */
static void inbox_add_delivery(struct group *g, const char *actor, struct json_object *o) {
        uint64_t next = 0;
        bool throttled = false;
        char ts[40];

        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, actor) && actor_is_command(g->actors[i]))
                        throttled = actor_throttled(g->actors[i], &next);
        json_object_object_add(o, "throttled", json_object_new_boolean(throttled));
        json_object_object_add(o, "next_delivery", throttled ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, next)) : NULL);
}

static int op_inbox_list(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args, true);
        const char *actor = arg_str(args, "actor");
        int64_t limit = arg_int(args, "limit", 100);
        struct inbox_scan scan = {};
        struct json_object *o;
        uint64_t cursor;
        int r;

        if (!g)
                return 0;
        if (!actor || !group_state_is_member(g->gs, actor)) {
                control_request_error(req, "not_found", "no actor \"%s\" in group %s", actor ? actor : "", g->id);
                return 0;
        }
        if (limit < 1 || limit > INBOX_MAX) {
                control_request_error(req, "bad_request", "limit must be 1 to %d", INBOX_MAX);
                return 0;
        }
        cursor = group_state_cursor(g->gs, actor);
        scan = (struct inbox_scan){ .group = g, .actor = actor, .unread = json_object_new_array(), .limit = (size_t) limit };
        /* Reads forward from the cursor only, and stops once the page is full or after
         * INBOX_SCAN_MAX events: an actor far behind with little addressed to it must not stall
         * the loop (the rest is reported as "unread_more"; reading moves the cursor on). */
        r = ledger_read_range(g->ledger, cursor, INBOX_SCAN_MAX, inbox_collect, &scan);
        if (r < 0 && r != -ECANCELED) {
                json_object_put(scan.unread);
                return r;
        }
        if (r == INBOX_SCAN_MAX && scan.last_seq < ledger_last_seq(g->ledger))
                scan.more = true;
        o = json_object_new_object();
        json_object_object_add(o, "group", json_object_new_string(g->id));
        json_object_object_add(o, "actor", json_object_new_string(actor));
        json_object_object_add(o, "cursor", json_object_new_uint64(cursor));
        json_object_object_add(o, "unread", scan.unread);
        json_object_object_add(o, "unread_more", json_object_new_boolean(scan.more));
        json_object_object_add(o, "obligations", obligations_json(g, actor));
        inbox_add_delivery(g, actor, o);
        if (arg_bool(args, "mark_read") && scan.last_seq > cursor) {
                size_t n = json_object_array_length(scan.unread);
                struct message_error err = {};
                uint64_t up_to;

                if (!scan.more)
                        up_to = ledger_last_seq(g->ledger);
                else if (n < scan.limit)
                        up_to = scan.last_seq; /* the scan stopped early: everything it looked at is read */
                else {
                        /* Up to the last listed message: the next page stays unread. */
                        struct json_object *seq;
                        up_to = json_object_object_get_ex(json_object_array_get_idx(scan.unread, n - 1), "seq", &seq)
                                        ? json_object_get_uint64(seq) : cursor;
                }
                json_object_object_add(o, "marked_read_up_to", json_object_new_uint64(up_to));
                r = message_mark_read(g, actor, up_to, NULL, &err);
                if (r < 0) {
                        json_object_put(o);
                        answer_error(req, &err, r);
                        return 0;
                }
        } else
                json_object_object_add(o, "marked_read_up_to", NULL);
        reply_owned(req, o);
        return 0;
}

/* --- events ------------------------------------------------------------------------------ */

static int collect(struct json_object *event, void *userdata) {
        json_object_array_add(userdata, json_object_get(event));
        return 0;
}

static int compare_ts(const void *a, const void *b) {
        struct json_object *x = *(struct json_object *const *) a, *y = *(struct json_object *const *) b, *tx, *ty;
        int c;
        json_object_object_get_ex(x, "ts", &tx);
        json_object_object_get_ex(y, "ts", &ty);
        c = strcmp(json_object_get_string(tx) ?: "", json_object_get_string(ty) ?: "");
        if (c)
                return c;
        json_object_object_get_ex(x, "id", &tx);
        json_object_object_get_ex(y, "id", &ty);
        return strcmp(json_object_get_string(tx) ?: "", json_object_get_string(ty) ?: "");
}

static int op_events_tail(struct supervisor *s, struct control_request *req, struct json_object *args) {
        int64_t n = arg_int(args, "n", 20);
        struct json_object *list;

        if (n < 0 || n > TAIL_MAX) {
                control_request_error(req, "bad_request", "n must be 0 to %d", TAIL_MAX);
                return 0;
        }
        list = json_object_new_array();
        if (arg_str(args, "group")) {
                struct group *g = want_group(s, req, args, true);
                if (!g) {
                        json_object_put(list);
                        return 0;
                }
                (void) ledger_tail(g->ledger, (size_t) n, collect, list);
        } else {
                /* The last n of every group, merged by time, the last n of those. */
                for (size_t i = 0; i < s->n_groups; i++)
                        if (!s->groups[i]->broken)
                                (void) ledger_tail(s->groups[i]->ledger, (size_t) n, collect, list);
                json_object_array_sort(list, compare_ts);
                if (json_object_array_length(list) > (size_t) n)
                        json_object_array_del_idx(list, 0, json_object_array_length(list) - (size_t) n);
        }
        reply_owned(req, list);
        return 0;
}

struct replay {
        struct control_request *req;
};

static int replay_one(struct json_object *event, void *userdata) {
        _cleanup_json_ struct json_object *line = json_object_new_object();
        json_object_object_add(line, "event", json_object_get(event));
        return control_request_stream_send(userdata, line);
}

static int op_events_follow(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *gid = arg_str(args, "group");
        struct group *g = NULL;
        _cleanup_json_ struct json_object *first = NULL;
        int r;

        if (gid && !(g = want_group(s, req, args, true)))
                return 0;
        r = follower_add(s, req, gid);
        if (r < 0)
                return r;
        first = json_object_new_object();
        json_object_object_add(first, "ok", json_object_new_boolean(1));
        json_object_object_add(first, "result", json_object_new_string("following"));
        (void) control_request_stream_send(req, first);
        if (g && arg_int(args, "after_seq", -1) >= 0) {
                /* Events since the caller's last one, so a tail followed by -f misses nothing;
                 * only durable ones: the rest reach the stream when the group commit is done. */
                int64_t after = arg_int(args, "after_seq", 0);
                uint64_t durable = group_durable_seq(g);
                if ((uint64_t) after < durable)
                        (void) ledger_read_range(g->ledger, (uint64_t) after, durable - (uint64_t) after, replay_one, req);
        }
        return 0;
}

struct range {
        struct json_object *list;
        size_t bytes, max_bytes;
        uint64_t last;
};

static int collect_bounded(struct json_object *event, void *userdata) {
        struct range *rg = userdata;
        size_t len = strlen(json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN));
        struct json_object *v;

        if (json_object_array_length(rg->list) > 0 && rg->bytes + len > rg->max_bytes)
                return -ENOSPC; /* the caller asks again from the last seq it got */
        rg->bytes += len;
        if (json_object_object_get_ex(event, "seq", &v))
                rg->last = json_object_get_uint64(v);
        json_object_array_add(rg->list, json_object_get(event));
        return 0;
}

/* Durable events of a group after a seq, a page at a time (the gateway's REST and SSE resume). */
static int op_events_range(struct supervisor *s, struct control_request *req, struct json_object *args) {
        int64_t after = arg_int(args, "after_seq", 0), limit = arg_int(args, "limit", 100);
        int64_t max_bytes = arg_int(args, "max_bytes", EVENTS_RANGE_BYTES_MAX);
        struct range rg = {};
        struct json_object *o;
        struct group *g;
        uint64_t durable;
        int r;

        if (after < 0 || limit < 1 || limit > EVENTS_RANGE_MAX || max_bytes < 1) {
                control_request_error(req, "bad_request", "after_seq must be >= 0, limit 1 to %d, max_bytes > 0",
                                      EVENTS_RANGE_MAX);
                return 0;
        }
        g = want_group(s, req, args, true);
        if (!g)
                return 0;
        durable = group_durable_seq(g);
        rg.list = json_object_new_array();
        rg.max_bytes = (size_t) (max_bytes < EVENTS_RANGE_BYTES_MAX ? max_bytes : EVENTS_RANGE_BYTES_MAX);
        rg.last = (uint64_t) after;
        if (!rg.list)
                return -ENOMEM;
        if ((uint64_t) after < durable) {
                uint64_t n = durable - (uint64_t) after;
                r = ledger_read_range(g->ledger, (uint64_t) after, n < (uint64_t) limit ? n : (size_t) limit,
                                      collect_bounded, &rg);
                if (r < 0 && r != -ENOSPC) {
                        json_object_put(rg.list);
                        control_request_error(req, "internal", "cannot read the ledger of group %s: %s", g->id,
                                              strerror(-r));
                        return 0;
                }
        }
        o = json_object_new_object();
        if (!o) {
                json_object_put(rg.list);
                return -ENOMEM;
        }
        json_object_object_add(o, "group", json_object_new_string(g->id));
        json_object_object_add(o, "events", rg.list);
        json_object_object_add(o, "last_seq", json_object_new_uint64(durable));
        json_object_object_add(o, "next_after_seq", json_object_new_uint64(rg.last));
        json_object_object_add(o, "more", json_object_new_boolean(rg.last < durable));
        reply_owned(req, o);
        return 0;
}

const struct control_op control_ops_groups[] = {
        { "group.list", op_group_list },
        { "group.create", op_group_create },
        { "group.show", op_group_show },
        { "group.start", op_group_start },
        { "group.stop", op_group_stop },
        { "group.pause", op_group_pause },
        { "group.resume", op_group_resume },
        { "group.delete", op_group_delete },
        { "actor.list", op_actor_list },
        { "actor.add", op_actor_add },
        { "actor.show", op_actor_show },
        { "actor.start", op_actor_start },
        { "actor.stop", op_actor_stop },
        { "actor.restart", op_actor_restart },
        { "actor.remove", op_actor_remove },
        { "message.send", op_message_send },
        { "message.reply", op_message_reply },
        { "message.ack", op_message_ack },
        { "inbox.list", op_inbox_list },
        { "events.tail", op_events_tail },
        { "events.follow", op_events_follow },
        { "events.range", op_events_range },
        { NULL, NULL },
};

/* Control operations on scheduled messages: schedule.add, schedule.list, schedule.remove
 * (docs/control-protocol.md). A schedule is a schedule.added event; its runs are chat.messages
 * appended by automation.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "automation.h"
#include "config.h"
#include "control_server.h"
#include "cron.h"
#include "group_state.h"
#include "groups.h"
#include "macro.h"
#include "proto.h"
#include "schedule.h"
#include "supervisor.h"
#include "timeutil.h"

#define SCHEDULES_MAX 64 /* per group */
#define SCHEDULE_EVERY_MAX_USEC (366 * 86400 * USEC_PER_SEC)

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

static struct group *want_group(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *id = arg_str(args, "group");
        struct group *g = id ? group_find(s, id) : NULL;

        if (!id)
                control_request_error(req, "bad_request", "missing \"group\"");
        else if (!g)
                control_request_error(req, "not_found", "no group \"%s\" (see `conclave groups`)", id);
        else if (g->broken)
                control_request_error(req, "broken", "group %s is broken: %s", g->id, g->broken);
        else
                return g;
        return NULL;
}

static const char *iso(char buf[static 40], uint64_t usec) {
        return format_timestamp_iso(buf, 40, usec);
}

/* The schedule as listed: its timing from the derived state, its message from the event that
 * added it. */
static struct json_object *schedule_json(struct group *g, const struct schedule_entry *e) {
        _cleanup_json_ struct json_object *added = NULL;
        struct json_object *o = json_object_new_object(), *data = NULL, *v;
        struct schedule_timing t;
        struct schedule_run run;
        uint64_t next = UINT64_MAX;
        bool overdue = false;
        char ts[40];

        if (!o)
                return NULL;
        if (ledger_read(g->ledger, e->seq, &added) >= 0)
                json_object_object_get_ex(added, "data", &data);
        if (schedule_entry_timing(e, &t) >= 0) {
                overdue = schedule_due(&t, e->last_due_ms * USEC_PER_MSEC, now_usec(CLOCK_REALTIME), &run, &next) > 0;
                if (overdue)
                        next = run.due_usec;
        }
        json_object_object_add(o, "id", json_object_new_string(e->id));
        json_object_object_add(o, "seq", json_object_new_uint64(e->seq));
        json_object_object_add(o, "group", json_object_new_string(g->id));
        json_object_object_add(o, "kind", json_object_new_string(e->kind == SCHEDULE_EVERY ? "every" :
                                                                  e->kind == SCHEDULE_AT    ? "at" : "cron"));
        if (e->kind == SCHEDULE_EVERY)
                json_object_object_add(o, "every", data && json_object_object_get_ex(data, "every", &v) ? json_object_get(v) : NULL);
        else if (e->kind == SCHEDULE_AT)
                json_object_object_add(o, "at", json_object_new_string(iso(ts, e->at_ms * USEC_PER_MSEC)));
        else
                json_object_object_add(o, "cron", json_object_new_string(e->cron));
        for (size_t i = 0; i < 3; i++) {
                static const char *const keys[] = { "text", "to", "reply_required" };
                json_object_object_add(o, keys[i], data && json_object_object_get_ex(data, keys[i], &v) ? json_object_get(v) : NULL);
        }
        json_object_object_add(o, "attention", json_object_new_boolean(data && json_object_object_get_ex(data, "priority", &v) &&
                                                                        streq(json_object_get_string(v), "attention")));
        json_object_object_add(o, "created", json_object_new_string(iso(ts, e->created_ms * USEC_PER_MSEC)));
        json_object_object_add(o, "runs", json_object_new_uint64(e->runs));
        json_object_object_add(o, "last_due", e->last_due_ms ? json_object_new_string(iso(ts, e->last_due_ms * USEC_PER_MSEC)) : NULL);
        json_object_object_add(o, "next_run", next != UINT64_MAX ? json_object_new_string(iso(ts, next)) : NULL);
        /* Due, but the group is not active: it runs (once) when the group is started again. */
        json_object_object_add(o, "overdue", json_object_new_boolean(overdue));
        return o;
}

/* args.to as message.send takes it: member ids, or ["@all"] (the default). */
static struct json_object *recipients(struct group *g, struct control_request *req, struct json_object *args) {
        struct json_object *to = NULL, *list = json_object_new_array();

        if (!list)
                return NULL;
        if (!json_object_object_get_ex(args, "to", &to) || json_object_is_type(to, json_type_null)) {
                json_object_array_add(list, json_object_new_string("@all"));
                return list;
        }
        if (!json_object_is_type(to, json_type_array) || json_object_array_length(to) == 0 ||
            json_object_array_length(to) > 256) {
                control_request_error(req, "bad_request", "\"to\" must be a non-empty list of actor ids or [\"@all\"]");
                goto fail;
        }
        for (size_t i = 0; i < json_object_array_length(to); i++) {
                struct json_object *item = json_object_array_get_idx(to, i);
                const char *id = json_object_is_type(item, json_type_string) ? json_object_get_string(item) : NULL;

                if (streq(id, "@all") && json_object_array_length(to) == 1) {
                        json_object_array_add(list, json_object_new_string("@all"));
                        break;
                }
                if (!id || !valid_id(id)) {
                        control_request_error(req, "bad_request", "invalid recipient \"%s\"", id ? id : "");
                        goto fail;
                }
                if (!group_state_is_member(g->gs, id)) {
                        control_request_error(req, "not_found", "no actor \"%s\" in group %s", id, g->id);
                        goto fail;
                }
                json_object_array_add(list, json_object_new_string(id));
        }
        return list;
fail:
        json_object_put(list);
        return NULL;
}

/* Fills data with the timing; answers req and returns false when it is not valid. */
static bool schedule_timing_args(struct control_request *req, struct json_object *args, struct json_object *data) {
        const char *every = arg_str(args, "every"), *at = arg_str(args, "at"), *cron = arg_str(args, "cron");
        uint64_t now = now_usec(CLOCK_REALTIME), v;
        char ts[40];

        if (!!every + !!at + !!cron != 1) {
                control_request_error(req, "bad_request", "give exactly one of \"every\", \"at\" or \"cron\"");
                return false;
        }
        if (every) {
                if (parse_duration_usec(every, &v) < 0 || v < SCHEDULE_EVERY_MIN_USEC || v > SCHEDULE_EVERY_MAX_USEC) {
                        control_request_error(req, "bad_request", "invalid \"every\" \"%.64s\": expected a duration from 1s "
                                              "to 366d such as \"90s\", \"15m\", \"1h\"", every);
                        return false;
                }
                /* Whole milliseconds: the ledger's times are, and due times are counted on them. */
                v -= v % USEC_PER_MSEC;
                json_object_object_add(data, "kind", json_object_new_string("every"));
                json_object_object_add(data, "every", json_object_new_string(every));
                json_object_object_add(data, "every_usec", json_object_new_uint64(v));
        } else if (at) {
                if (schedule_parse_time(at, now, &v) < 0) {
                        control_request_error(req, "bad_request", "invalid \"at\" \"%.64s\": expected e.g. "
                                              "\"2026-11-22T14:30:00Z\", \"2026-11-22 15:30\", \"15:30\" or \"+10m\"", at);
                        return false;
                }
                if (v <= now) {
                        control_request_error(req, "bad_request", "\"at\" %s is in the past", iso(ts, v));
                        return false;
                }
                json_object_object_add(data, "kind", json_object_new_string("at"));
                json_object_object_add(data, "at", json_object_new_string(iso(ts, v)));
        } else {
                struct cron_spec spec;
                char why[256];

                if (cron_parse(cron, &spec, why, sizeof why) < 0) {
                        control_request_error(req, "bad_request", "invalid cron expression \"%.128s\": %s", cron, why);
                        return false;
                }
                if (cron_next(&spec, now, &v) < 0) {
                        control_request_error(req, "bad_request", "cron expression \"%.128s\" never matches", cron);
                        return false;
                }
                json_object_object_add(data, "kind", json_object_new_string("cron"));
                json_object_object_add(data, "cron", json_object_new_string(cron));
        }
        return true;
}

static int op_schedule_add(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args);
        _cleanup_json_ struct json_object *data = json_object_new_object(), *to = NULL, *result = NULL;
        _cleanup_free_ struct schedule_entry *list = NULL;
        struct json_object *event = NULL, *id;
        const char *text = arg_str(args, "text");
        int n, r;

        if (!g)
                return 0;
        if (!data)
                return -ENOMEM;
        if (!text || !*text || strlen(text) > MESSAGE_TEXT_MAX) {
                control_request_error(req, "bad_request", "\"text\" must be 1 to %u bytes", MESSAGE_TEXT_MAX);
                return 0;
        }
        n = group_state_schedules(g->gs, &list);
        if (n >= SCHEDULES_MAX) {
                control_request_error(req, "bad_request", "group %s has %d schedules, the most allowed; remove one first",
                                      g->id, SCHEDULES_MAX);
                return 0;
        }
        if (!schedule_timing_args(req, args, data))
                return 0;
        to = recipients(g, req, args);
        if (!to)
                return 0;
        json_object_object_add(data, "text", json_object_new_string(text));
        json_object_object_add(data, "to", json_object_get(to));
        json_object_object_add(data, "priority", json_object_new_string(arg_bool(args, "attention") ? "attention" : "normal"));
        json_object_object_add(data, "reply_required", json_object_new_boolean(arg_bool(args, "reply_required")));
        r = group_append(g, "schedule.added", "operator", data, NULL, &event);
        if (r < 0) {
                control_request_error(req, "internal", "cannot append to the ledger: %s", strerror(-r));
                return 0;
        }
        if (!json_object_object_get_ex(event, "id", &id) ||
            !group_state_schedule(g->gs, json_object_get_string(id))) {
                control_request_error(req, "internal", "the schedule was written but not taken into the group's state");
                return 0;
        }
        result = schedule_json(g, group_state_schedule(g->gs, json_object_get_string(id)));
        return group_reply_when_durable(g, req, result);
}

static int op_schedule_list(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args);
        _cleanup_free_ struct schedule_entry *list = NULL;
        _cleanup_json_ struct json_object *result = NULL;
        int n;

        if (!g)
                return 0;
        n = group_state_schedules(g->gs, &list);
        if (n < 0)
                return n;
        result = json_object_new_array();
        if (!result)
                return -ENOMEM;
        for (int i = 0; i < n; i++)
                json_object_array_add(result, schedule_json(g, &list[i]));
        control_request_reply(req, result);
        return 0;
}

static int op_schedule_remove(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct group *g = want_group(s, req, args);
        const char *name = arg_str(args, "schedule");
        _cleanup_free_ struct schedule_entry *list = NULL;
        _cleanup_json_ struct json_object *data = json_object_new_object(), *result = json_object_new_object();
        const struct schedule_entry *e = NULL;
        int n, r;

        if (!g)
                return 0;
        if (!data || !result)
                return -ENOMEM;
        if (!name) {
                control_request_error(req, "bad_request", "missing \"schedule\" (its id, or the seq of the event that added it)");
                return 0;
        }
        n = group_state_schedules(g->gs, &list);
        for (int i = 0; i < n && !e; i++) {
                char seq[24];
                snprintf(seq, sizeof seq, "%" PRIu64, list[i].seq);
                if (strcasecmp(list[i].id, name) == 0 || streq(seq, name))
                        e = &list[i];
        }
        if (!e) {
                control_request_error(req, "not_found", "no schedule \"%s\" in group %s (see `conclave schedule list -g %s`)",
                                      name, g->id, g->id);
                return 0;
        }
        json_object_object_add(data, "schedule_id", json_object_new_string(e->id));
        r = group_append(g, "schedule.removed", "operator", data, NULL, NULL);
        if (r < 0) {
                control_request_error(req, "internal", "cannot append to the ledger: %s", strerror(-r));
                return 0;
        }
        json_object_object_add(result, "group", json_object_new_string(g->id));
        json_object_object_add(result, "schedule", json_object_new_string(e->id));
        return group_reply_when_durable(g, req, result);
}

const struct control_op control_ops_automation[] = {
        { "schedule.add", op_schedule_add },
        { "schedule.list", op_schedule_list },
        { "schedule.remove", op_schedule_remove },
        { NULL, NULL },
};

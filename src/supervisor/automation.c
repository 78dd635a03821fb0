/* Reminders and scheduled messages on one timer (see automation.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "automation.h"
#include "groups.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "supervisor.h"
#include "timeutil.h"

/* After a failed append (disk full, …) the pass tries again this much later, not in a loop. */
#define AUTOMATION_RETRY_USEC (10 * USEC_PER_SEC)

struct automation {
        struct supervisor *supervisor;
        sd_event_source *timer;
        uint64_t armed_usec; /* UINT64_MAX: not armed */
        bool in_pass;
        uint64_t hint_usec; /* earliest due time learnt from events appended during a pass */
        uint64_t reminders_sent;
        uint64_t scheduled_runs;
};

static uint64_t min_u64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata);

static void arm(struct automation *a, uint64_t due) {
        int r;

        a->armed_usec = due;
        if (due == UINT64_MAX) {
                if (a->timer)
                        (void) sd_event_source_set_enabled(a->timer, SD_EVENT_OFF);
                return;
        }
        /* Explicit accuracy: sd-event's default slack is 250 ms. */
        if (!a->timer)
                r = sd_event_add_time(a->supervisor->event, &a->timer, CLOCK_REALTIME, due, TIMER_ACCURACY_USEC, on_timer, a);
        else {
                r = sd_event_source_set_time(a->timer, due);
                if (r >= 0)
                        r = sd_event_source_set_enabled(a->timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) {
                log_error_errno(r, "cannot arm the automation timer; reminders and schedules wait for the next event");
                a->armed_usec = UINT64_MAX;
        }
}

/* Something may be due at `due`: make sure the timer fires by then. */
static void consider(struct automation *a, uint64_t due) {
        if (a->in_pass)
                a->hint_usec = min_u64(a->hint_usec, due);
        else if (due < a->armed_usec)
                arm(a, due);
}

void automation_run_soon(struct automation *a) {
        if (a)
                consider(a, now_usec(CLOCK_REALTIME));
}

static bool group_automated(const struct group *g) {
        return !g->broken && g->state == GROUP_ACTIVE && g->gs && g->ledger;
}

static struct reminder_policy reminder_policy(const struct config *c, enum obligation_kind kind) {
        return (struct reminder_policy){
                .after_usec = kind == OBLIGATION_REPLY ? c->reply_reminder_after_usec : c->attention_reminder_after_usec,
                .interval_max_usec = c->reminder_interval_max_usec,
                .max = c->reminder_max,
        };
}

static char *group_fields(const struct group *g, const char *actor, char *buf, size_t size) {
        if (actor)
                snprintf(buf, size, "CONCLAVE_GROUP=%s\nCONCLAVE_ACTOR=%s", g->id, actor);
        else
                snprintf(buf, size, "CONCLAVE_GROUP=%s", g->id);
        return buf;
}

/* --- reminders ---------------------------------------------------------------------------- */

static int send_reminder(struct automation *a, struct group *g, const struct obligation *o, unsigned number,
                         unsigned max) {
        _cleanup_json_ struct json_object *data = json_object_new_object(), *ob = json_object_new_object(),
                                          *to = json_object_new_array();
        _cleanup_free_ char *text = NULL;
        const char *kind = o->kind == OBLIGATION_REPLY ? "reply" : "ack";
        char fields[192];
        int r;

        if (!data || !ob || !to ||
            asprintf(&text, "Reminder %u of %u: %s is waiting for your %s message #%" PRIu64 " (%s)", number, max,
                     o->from, o->kind == OBLIGATION_REPLY ? "reply to" : "acknowledgement of", o->seq, o->event_id) < 0)
                return -ENOMEM;
        json_object_array_add(to, json_object_new_string(o->actor_id));
        json_object_object_add(ob, "kind", json_object_new_string(kind));
        json_object_object_add(ob, "actor", json_object_new_string(o->actor_id));
        json_object_object_add(ob, "event_id", json_object_new_string(o->event_id));
        json_object_object_add(ob, "seq", json_object_new_uint64(o->seq));
        json_object_object_add(ob, "from", json_object_new_string(o->from));
        json_object_object_add(data, "text", json_object_new_string(text));
        json_object_object_add(data, "to", json_object_get(to));
        json_object_object_add(data, "reason", json_object_new_string("reminder"));
        json_object_object_add(data, "reminder", json_object_new_uint64(number));
        json_object_object_add(data, "reminder_max", json_object_new_uint64(max));
        json_object_object_add(data, "obligation", json_object_get(ob));
        r = group_append(g, "system.notify", "conclave", data, NULL, NULL);
        if (r < 0)
                return r;
        a->reminders_sent++;
        log_fields_errno(LOG_INFO, 0, group_fields(g, o->actor_id, fields, sizeof fields),
                         "group %s: reminder %u of %u to %s: %s owed for #%" PRIu64 " from %s", g->id, number, max,
                         o->actor_id, kind, o->seq, o->from);
        return 0;
}

/* Sends what is due in g; returns the next due time (UINT64_MAX: none). */
static uint64_t reminders_pass(struct automation *a, struct group *g, uint64_t now) {
        const struct config *c = a->supervisor->config;
        _cleanup_free_ struct obligation *list = NULL;
        uint64_t next = UINT64_MAX;
        int n = group_state_obligations(g->gs, NULL, &list);

        if (n < 0) {
                log_error_errno(n, "group %s: cannot list obligations for reminders", g->id);
                return now + AUTOMATION_RETRY_USEC;
        }
        for (int i = 0; i < n; i++) {
                const struct obligation *o = &list[i];
                struct reminder_policy p = reminder_policy(c, o->kind);
                uint64_t due = reminder_due(&p, o->created_ms * USEC_PER_MSEC, o->reminders, o->reminded_ms * USEC_PER_MSEC);

                if (due == UINT64_MAX)
                        continue;
                if (due > now) {
                        next = min_u64(next, due);
                        continue;
                }
                if (send_reminder(a, g, o, o->reminders + 1, p.max) < 0) {
                        next = min_u64(next, now + AUTOMATION_RETRY_USEC);
                        continue;
                }
                next = min_u64(next, reminder_due(&p, o->created_ms * USEC_PER_MSEC, o->reminders + 1, now));
        }
        return next;
}

/* --- scheduled messages ---------------------------------------------------------------------- */

int schedule_entry_timing(const struct schedule_entry *e, struct schedule_timing *ret) {
        *ret = (struct schedule_timing){
                .kind = e->kind,
                .created_usec = e->created_ms * USEC_PER_MSEC,
                .every_usec = e->every_usec,
                .at_usec = e->at_ms * USEC_PER_MSEC,
        };
        if (e->kind == SCHEDULE_CRON) {
                char why[160];
                return cron_parse(e->cron, &ret->cron, why, sizeof why);
        }
        return 0;
}

/* A run is the schedule's message as it was added, by the operator, with schedule_id, the due
 * time it is for and how many due times before it got no run of their own. */
static int run_schedule(struct automation *a, struct group *g, const struct schedule_entry *e,
                        const struct schedule_run *run) {
        _cleanup_json_ struct json_object *added = NULL, *data = json_object_new_object();
        struct json_object *v, *src;
        char due[40], fields[96];
        int r;

        if (!data)
                return -ENOMEM;
        r = ledger_read(g->ledger, e->seq, &added);
        if (r < 0)
                return log_error_errno(r, "group %s: cannot read schedule %s (#%" PRIu64 ")", g->id, e->id, e->seq);
        src = json_object_object_get_ex(added, "data", &v) ? v : NULL;
        for (size_t i = 0; i < 4; i++) {
                static const char *const keys[] = { "text", "to", "priority", "reply_required" };
                if (src && json_object_object_get_ex(src, keys[i], &v))
                        json_object_object_add(data, keys[i], json_object_get(v));
        }
        json_object_object_add(data, "schedule_id", json_object_new_string(e->id));
        json_object_object_add(data, "due", json_object_new_string(format_timestamp_iso(due, sizeof due, run->due_usec)));
        json_object_object_add(data, "missed", json_object_new_uint64(run->missed));
        if (run->missed_capped)
                json_object_object_add(data, "missed_capped", json_object_new_boolean(1));
        r = group_append(g, "chat.message", "operator", data, NULL, NULL);
        if (r < 0)
                return r;
        a->scheduled_runs++;
        log_fields_errno(run->missed > 0 ? LOG_NOTICE : LOG_INFO, 0, group_fields(g, NULL, fields, sizeof fields),
                         "group %s: schedule %s ran for %s%s%" PRIu64 "%s", g->id, e->id, due,
                         run->missed > 0 ? "; runs missed while the daemon was down or the group inactive: " : "",
                         run->missed, run->missed > 0 ? (run->missed_capped ? " or more" : "") : "");
        return 0;
}

static uint64_t schedules_pass(struct automation *a, struct group *g, uint64_t now) {
        _cleanup_free_ struct schedule_entry *list = NULL;
        uint64_t next = UINT64_MAX;
        int n = group_state_schedules(g->gs, &list);

        if (n < 0) {
                log_error_errno(n, "group %s: cannot list schedules", g->id);
                return now + AUTOMATION_RETRY_USEC;
        }
        for (int i = 0; i < n; i++) {
                struct schedule_timing t;
                struct schedule_run run;
                uint64_t nx;

                if (schedule_entry_timing(&list[i], &t) < 0) {
                        log_debug("group %s: schedule %s has an invalid cron expression; skipped", g->id, list[i].id);
                        continue;
                }
                if (schedule_due(&t, list[i].last_due_ms * USEC_PER_MSEC, now, &run, &nx) <= 0) {
                        next = min_u64(next, nx);
                        continue;
                }
                if (run_schedule(a, g, &list[i], &run) < 0) {
                        next = min_u64(next, now + AUTOMATION_RETRY_USEC);
                        continue;
                }
                /* The run's due time is the latest one not after now, so the next is later. */
                if (schedule_due(&t, run.due_usec, now, &run, &nx) == 0)
                        next = min_u64(next, nx);
                else
                        next = min_u64(next, now + AUTOMATION_RETRY_USEC);
        }
        return next;
}

/* --- the timer ---------------------------------------------------------------------------- */

static void automation_pass(struct automation *a) {
        struct supervisor *s = a->supervisor;
        uint64_t now = now_usec(CLOCK_REALTIME), next = UINT64_MAX;

        if (s->state == SUPERVISOR_STOPPING)
                return; /* what is due now is due at the next start, and happens then */
        a->in_pass = true;
        a->hint_usec = UINT64_MAX;
        for (size_t i = 0; i < s->n_groups; i++) {
                struct group *g = s->groups[i];

                if (!group_automated(g))
                        continue;
                next = min_u64(next, reminders_pass(a, g, now));
                next = min_u64(next, schedules_pass(a, g, now));
        }
        a->in_pass = false;
        arm(a, min_u64(next, a->hint_usec));
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct automation *a = userdata;

        a->armed_usec = UINT64_MAX;
        automation_pass(a);
        return 0;
}

void automation_event_applied(struct group *g, struct json_object *event) {
        struct automation *a = g->supervisor->automation;
        const struct config *c = g->supervisor->config;
        struct json_object *v, *data = NULL;
        const char *kind;

        if (!a || !json_object_object_get_ex(event, "kind", &v))
                return;
        kind = json_object_get_string(v);
        json_object_object_get_ex(event, "data", &data);
        if (streq(kind, "chat.message")) {
                uint64_t now = now_usec(CLOCK_REALTIME);

                if (!group_automated(g) || c->reminder_max == 0)
                        return;
                /* A new obligation is due after its whole first interval: the event is now. */
                if (data && json_object_object_get_ex(data, "reply_required", &v) && json_object_get_boolean(v) &&
                    c->reply_reminder_after_usec > 0)
                        consider(a, now + c->reply_reminder_after_usec);
                if (data && json_object_object_get_ex(data, "priority", &v) && streq(json_object_get_string(v), "attention") &&
                    c->attention_reminder_after_usec > 0)
                        consider(a, now + c->attention_reminder_after_usec);
        } else if (streq(kind, "schedule.added") || streq(kind, "group.started") || streq(kind, "group.resumed"))
                /* The group (or this schedule) may have something overdue. */
                consider(a, now_usec(CLOCK_REALTIME));
}

int automation_new(struct supervisor *s, struct automation **ret) {
        struct automation *a = calloc(1, sizeof *a);

        if (!a)
                return -ENOMEM;
        a->supervisor = s;
        a->armed_usec = UINT64_MAX;
        *ret = a;
        return 0;
}

struct automation *automation_free(struct automation *a) {
        if (!a)
                return NULL;
        sd_event_source_disable_unref(a->timer);
        free(a);
        return NULL;
}

struct json_object *automation_status_json(struct automation *a) {
        struct json_object *o = json_object_new_object();
        size_t schedules = 0;
        char ts[40];

        if (!o || !a)
                return o;
        for (size_t i = 0; i < a->supervisor->n_groups; i++) {
                struct group *g = a->supervisor->groups[i];
                _cleanup_free_ struct schedule_entry *list = NULL;
                int n = g->gs ? group_state_schedules(g->gs, &list) : 0;

                schedules += n > 0 ? (size_t) n : 0;
        }
        json_object_object_add(o, "next_wakeup",
                               a->armed_usec != UINT64_MAX
                                       ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, a->armed_usec))
                                       : NULL);
        json_object_object_add(o, "reminders_sent", json_object_new_uint64(a->reminders_sent));
        json_object_object_add(o, "scheduled_runs", json_object_new_uint64(a->scheduled_runs));
        json_object_object_add(o, "schedules", json_object_new_uint64(schedules));
        return o;
}

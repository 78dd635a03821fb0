/* Automation: reminders for open obligations and scheduled messages.
 *
 * Nothing here is remembered outside the ledger. Obligations, the reminders already sent for
 * them and the schedules with their last run are derived state (group_state.h), so after a
 * restart the plan is the same as before it: no reminder twice, none lost, and a schedule that
 * missed runs while the daemon was down runs once with data.missed counting the rest.
 *
 * One CLOCK_REALTIME timer is armed for the earliest due reminder or run over every active
 * group. When it fires, a pass over the active groups appends what is due (system.notify by
 * "conclave", chat.message by "operator") and re-arms the timer. Events that can make
 * something due earlier (a new obligation, a new schedule, a group starting) move the timer
 * forward; events that close obligations never do, so at worst the timer fires early and the
 * pass finds nothing to do. Automation acts only in active groups. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "group_state.h"
#include "schedule.h"

struct supervisor;
struct group;
struct automation;

int automation_new(struct supervisor *s, struct automation **ret);
struct automation *automation_free(struct automation *a);

/* A pass now (at start-up, once the groups are loaded; after a reload). */
void automation_run_soon(struct automation *a);

/* Hook from group_append(): event was just appended to g and applied to its state. */
void automation_event_applied(struct group *g, struct json_object *event);

/* {"next_wakeup": ISO-8601 or null, "reminders_sent", "scheduled_runs", "schedules"} */
struct json_object *automation_status_json(struct automation *a);

/* The timing of a schedule as group_state keeps it; -EINVAL for a cron expression that does not
 * parse (only a hand-edited ledger has one). */
int schedule_entry_timing(const struct schedule_entry *e, struct schedule_timing *ret);

#!/usr/bin/env bash
# Automation, driven as an operator drives it with short intervals from config.toml: reminders
# for an unanswered reply_required message reach the owing actor's inbox and stop after the
# reply; a service restart in the middle neither repeats nor loses one; a command actor gets
# its reminders on stdin; a throttled command actor gets a batch; a `--every 2s` schedule runs,
# survives a restart with the missed runs recorded, and stops when removed; `--at` runs once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
port=$((20000 + RANDOM % 20000))
home=$SANDBOX_HOME/.conclave
unit=conclave.service
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :; fi; exit $rc' EXIT

# Reminders 2 s after the message, then 4 s apart (the interval doubles, capped at 4 s), at
# most 3; at most one delivery to a command actor every 4 s.
as_user mkdir -p "$home" "$SANDBOX_HOME/bin"
as_user tee "$home/config.toml" >/dev/null <<EOF
[runtime]
ledger_sync = "batch"
[gateway]
port = $port
[automation]
reply_reminder_after = "2s"
attention_reminder_after = "2s"
reminder_max = 3
reminder_interval_max = "4s"
throttle_min_interval = "4s"
throttle_burst = 1
EOF
install -o "$SANDBOX_UID" -m 0755 "$here/actors/recorder-actor" "$SANDBOX_HOME/bin/recorder-actor"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"

events() { cv tail -g a1 -n 10000 --json; }
# reminder numbers (one per line) sent for obligation $2 owed by $1
reminders() {
    events | jq -r --arg a "$1" --arg id "$2" \
        'select(.kind == "system.notify" and .data.reason == "reminder" and .data.obligation.actor == $a
                and .data.obligation.event_id == $id) | .data.reminder'
}
count_reminders() { reminders "$1" "$2" | wc -l; }
restart_service() {
    user_systemctl stop "$unit" || fail "stop"
    sleep "$1"
    user_systemctl start "$unit" || fail "start after stop"
}

cv group create a1 >/dev/null || fail "group create"
cv actor add -g a1 alice --kind human >/dev/null || fail "actor add alice"
cv actor add -g a1 bob --kind human >/dev/null || fail "actor add bob"
cv actor add -g a1 rec --kind command -- "$SANDBOX_HOME/bin/recorder-actor" >/dev/null || fail "actor add rec"
cv actor start -g a1 rec >/dev/null || fail "actor start"
cv group start a1 >/dev/null || fail "group start"

# --- reminders reach the inbox, with backoff, and stop after the reply ------------------------
rr=$(cv send -g a1 --to alice --reply-required --json "your review, please" | jq -r .event_id)
has_reminder() { [[ $(count_reminders "$1" "$2") -ge $3 ]]; }
wait_for 20 has_reminder alice "$rr" 1 || fail "no reminder for alice's open reply"
cv inbox -g a1 --actor-id alice --json | jq -e --arg id "$rr" \
    '.unread | map(select(.kind == "system.notify" and .data.obligation.event_id == $id and .data.reminder == 1
                          and .data.obligation.kind == "reply" and .data.reminder_max == 3)) | length == 1' >/dev/null \
    || fail "reminder 1 is not in alice's inbox"
cv inbox -g a1 --actor-id alice | tee /dev/stderr | grep -q "conclave → alice: Reminder 1 of 3" || fail "inbox does not show the reminder"
wait_for 20 has_reminder alice "$rr" 2 || fail "no second reminder"
events | jq -s -e --arg id "$rr" '[.[] | select(.kind == "system.notify" and .data.obligation.event_id == $id)] |
    (.[1].ts | sub("\\.[0-9]+Z$"; "Z") | fromdate) - (.[0].ts | sub("\\.[0-9]+Z$"; "Z") | fromdate) >= 3' >/dev/null \
    || fail "the second reminder did not wait longer than the first (backoff)"
cv reply -g a1 "$rr" --as alice "done" >/dev/null || fail "reply"
n=$(count_reminders alice "$rr")
sleep 6 # reminder 3 would have come 4 s after reminder 2
[[ $(count_reminders alice "$rr") == "$n" ]] || fail "reminders went on after the reply"
pass "reply_required: reminders 1 and 2 in alice's inbox with backoff, none after the reply"

# --- a restart in the middle: no reminder twice, none lost --------------------------------------
rb=$(cv send -g a1 --to bob --reply-required --json "and yours" | jq -r .event_id)
wait_for 20 has_reminder bob "$rb" 1 || fail "no reminder for bob"
restart_service 5 # reminder 2 falls due while the daemon is down
wait_for 30 has_reminder bob "$rb" 3 || fail "reminders did not continue after the restart"
sleep 5 # would be time for a fourth, if the cap were not respected
[[ $(reminders bob "$rb" | tr '\n' ' ') == "1 2 3 " ]] || fail "reminders after restart: $(reminders bob "$rb" | tr '\n' ' ') (want 1 2 3)"
cv inbox -g a1 --actor-id bob --json | jq -e '[.unread[] | select(.kind == "system.notify")] | length == 3' >/dev/null \
    || fail "bob's inbox does not hold exactly 3 reminders"
pass "service restart while a reminder was due: it came once, late; reminders 1 2 3, no more"

# --- a command actor gets its reminders on stdin, and a batch when throttled -------------------
recorded=$home/groups/a1/actors/rec/recorded.jsonl
att=$(cv send -g a1 --to rec --attention --json "acknowledge this" | jq -r .event_id)
got_notify() { [[ -f $recorded ]] && jq -e --arg id "$att" 'select(.type == "notify" and .event.data.obligation.event_id == $id)' "$recorded" >/dev/null; }
wait_for 30 got_notify || fail "the command actor did not receive its reminder as a notify line"
cv ack -g a1 "$att" --as rec >/dev/null || fail "ack as rec"
pass "a command actor receives system.notify addressed to it ({\"type\":\"notify\"})"

ids=()
for i in 1 2 3 4 5; do ids+=("$(cv send -g a1 --to rec --json "batch $i" | jq -r .event_id)"); done
cv actor list -g a1 --json | jq -e '.[] | select(.id == "rec") | .throttled == true and .next_delivery != null' >/dev/null \
    || fail "actor list does not show rec as throttled"
cv actor list -g a1 | grep -E "^rec .*throttled until" >/dev/null || fail "actor list table does not show the throttle"
cv inbox -g a1 --actor-id rec | grep -q "Delivery to rec is throttled" || fail "inbox does not show the throttle"
cv status | grep -E "rec .*throttled until" >/dev/null || fail "status does not show the throttle"
all_delivered() { [[ $(jq -r 'select(.type == "message") | .event.data.text' "$recorded" | grep -c '^batch ') == 5 ]]; }
wait_for 30 all_delivered || fail "not every message reached the throttled actor"
jq -s -e '[.[] | select(.type == "message" and (.event.data.text | startswith("batch ")))] |
    any(.batch.count >= 2) and all(.batch == null or (.batch.index >= 1 and .batch.index <= .batch.count))' "$recorded" >/dev/null \
    || fail "the throttled actor got no batch"
for id in "${ids[@]}"; do
    [[ $(jq -r --arg id "$id" 'select(.type == "message" and .event.id == $id) | .seq' "$recorded" | wc -l) == 1 ]] \
        || fail "message $id delivered other than once"
done
cv actor show -g a1 rec --json | jq -e '.batches >= 1 and .throttled == false' >/dev/null || fail "actor show: batches"
pass "throttled command actor: visible in actor list, inbox and status; 5 messages, nothing dropped, in a batch"

# --- scheduled messages ---------------------------------------------------------------------
sched=$(cv schedule add -g a1 --every 2s --to alice --json "tick" | jq -r .id)
[[ ${#sched} == 26 ]] || fail "schedule add returned no id"
runs() { events | jq -c --arg s "$sched" 'select(.kind == "chat.message" and .data.schedule_id == $s) | .data'; }
has_runs() { [[ $(runs | wc -l) -ge $1 ]]; }
wait_for 20 has_runs 2 || fail "the schedule did not run twice"
runs | jq -e -s 'all(.missed == 0 and .text == "tick" and .to == ["alice"])' >/dev/null || fail "runs: $(runs)"
cv schedule list -g a1 | tee /dev/stderr | grep -q "every 2s" || fail "schedule list"
cv schedule list -g a1 --json | jq -e --arg s "$sched" '.[] | select(.id == $s) | .runs >= 2 and .next_run != null' >/dev/null \
    || fail "schedule list --json"
cv inbox -g a1 --actor-id alice | grep -q "operator → alice: tick \[scheduled\]" || fail "inbox does not mark scheduled runs"
before=$(runs | wc -l)
restart_service 5 # about two runs fall due while the daemon is down
has_missed() { runs | jq -e -s 'any(.missed >= 1)' >/dev/null; }
wait_for 20 has_missed || fail "no run recording missed runs after the restart: $(runs)"
wait_for 20 has_runs $((before + 2)) || fail "the schedule did not go on after the restart"
runs | jq -e -s '(map(.due) | unique | length) == length' >/dev/null || fail "a due time ran twice: $(runs)"
runs | jq -e -s '[.[] | select(.missed >= 1)] | length == 1' >/dev/null || fail "missed runs recorded more than once: $(runs)"
# Exactly one run for the downtime, then the next due time 2 s later.
runs | jq -e -s '(map(.missed >= 1) | index(true)) as $i | (.[$i + 1].due | sub("\\.[0-9]+Z$"; "Z") | fromdate)
    - (.[$i].due | sub("\\.[0-9]+Z$"; "Z") | fromdate) == 2' >/dev/null || fail "not one catch-up run: $(runs)"
cv tail -g a1 -n 200 | grep -E "chat.message operator: tick .*\[scheduled, [0-9]+ missed\]" >/dev/null || fail "tail does not show missed runs"
cv schedule remove -g a1 "$sched" >/dev/null || fail "schedule remove"
n=$(runs | wc -l)
sleep 5
[[ $(runs | wc -l) == "$n" ]] || fail "the schedule ran after it was removed"
pass "--every 2s: runs; after a restart one run records the missed ones; remove stops it"

once=$(cv schedule add -g a1 --at +2s --to bob --reply-required --json "once" | jq -r .id)
ran_once() { [[ $(events | jq -r --arg s "$once" 'select(.kind == "chat.message" and .data.schedule_id == $s) | .id' | wc -l) == 1 ]]; }
wait_for 20 ran_once || fail "--at did not run"
[[ $(cv schedule list -g a1 --json | jq 'length') == 0 ]] || fail "the --at schedule is still listed after its run"
set +e; msg=$(cv schedule add -g a1 --cron "61 * * * *" x 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "minute field" <<<"$msg" || fail "bad cron: $rc $msg"
set +e; msg=$(cv schedule add -g a1 --cron "0 0 31 2 *" x 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "never matches" <<<"$msg" || fail "impossible cron: $rc $msg"
cron=$(cv schedule add -g a1 --cron "0 9 * * mon-fri" --json "standup" | jq -r .id)
cv schedule list -g a1 --json | jq -e --arg s "$cron" '.[] | select(.id == $s) | .next_run | test("T[0-9:]+\\.000Z$")' >/dev/null \
    || fail "cron schedule has no next run"
cv status | grep -q "Automation: 1 schedule" || fail "status does not show automation"
pass "--at runs once and ends; cron expressions checked; status shows automation"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all automation integration checks passed"

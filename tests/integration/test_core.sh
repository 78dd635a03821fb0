#!/usr/bin/env bash
# The collaboration core, driven as an operator drives it (the runbook's smoke test): a group,
# a command actor that replies, messages with obligations, inboxes, acks, tail and tail -f,
# pause/resume/stop, actor restart while messages flow, a service restart, and recovery of a
# torn ledger tail and a corrupt ledger.
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
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :; fi; exit $rc' EXIT

as_user mkdir -p "$home" "$SANDBOX_HOME/bin"
printf '[runtime]\nledger_sync = "batch"\nrestart_burst = 10\n[gateway]\nport = %s\n' "$port" | as_user tee "$home/config.toml" >/dev/null
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"

seq_of() { cv tail -g "$1" -n 1 --json | jq -r .seq; }
# event ids (JSON lines) of the group's chat.messages replying to $2
replies_to() { cv tail -g "$1" -n 10000 --json | jq -r --arg id "$2" 'select(.kind == "chat.message" and .data.reply_to == $id) | .id'; }

# --- group and actors --------------------------------------------------------------------
cv group create g1 --title "Smoke test" || fail "group create"
cv groups | tee /dev/stderr | grep -E "^g1 +idle" >/dev/null || fail "groups does not list g1 as idle"
! cv group create g1 2>/dev/null || fail "creating g1 twice must fail"
cv actor add -g g1 echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" || fail "actor add echo"
cv actor add -g g1 alice --kind human --title "Alice" || fail "actor add alice"
cv actor start -g g1 echo || fail "actor start"
cv group start g1 || fail "group start"
wait_for 10 bash -c "[[ \$(as_user env '$CONCLAVE' actor list -g g1 --json | jq -r '.[] | select(.id == \"echo\") | .runtime') == running ]]" \
    || fail "echo actor not running"
cv actor list -g g1
pass "group created, command actor running"

# --- a message that requires a reply --------------------------------------------------------
out=$(cv send -g g1 --to echo --reply-required --json "ping one") || fail "send"
id=$(jq -r .event_id <<<"$out")
[[ ${#id} == 26 ]] || fail "send did not return an event id: $out"
got_reply() { [[ -n $(replies_to g1 "$id") ]]; }
wait_for 10 got_reply || fail "no reply from the echo actor"
cv inbox -g g1 --actor-id operator --json | jq -e --arg id "$id" \
    '.unread | map(select(.data.reply_to == $id and .data.text == "echo: ping one")) | length == 1' >/dev/null \
    || fail "reply not in the operator's inbox"
[[ $(cv actor show -g g1 echo --json | jq '.obligations | length') == 0 ]] || fail "echo still owes a reply"
cv inbox -g g1 --actor-id operator
pass "send --reply-required: the actor replied, the obligation closed, the reply is in the inbox"

# --- attention and ack; reply by a human ------------------------------------------------------
att=$(cv send -g g1 --to alice --attention --json "look at this" | jq -r .event_id)
cv inbox -g g1 --actor-id alice --json | jq -e --arg id "$att" '.obligations | map(select(.kind == "ack" and .event_id == $id)) | length == 1' >/dev/null \
    || fail "attention message does not oblige alice to ack"
cv ack -g g1 "$att" --as alice || fail "ack"
[[ $(cv inbox -g g1 --actor-id alice --json | jq '[.obligations[] | select(.kind == "ack")] | length') == 0 ]] || fail "ack did not close"
set +e; cv ack -g g1 "$att" --as alice 2>/dev/null; rc=$?; set -e
[[ $rc == 1 ]] || fail "a second ack should fail (exit $rc)"
rr=$(cv send -g g1 --to alice --reply-required --json "your opinion?" | jq -r .event_id)
[[ $(cv inbox -g g1 --actor-id alice --json | jq '[.obligations[] | select(.kind == "reply")] | length') == 1 ]] || fail "no reply obligation"
rseq=$(cv send -g g1 --to alice --json "plain" | jq -r .seq)
cv reply -g g1 "$rr" --as alice "looks good" || fail "reply"
[[ $(cv inbox -g g1 --actor-id alice --json | jq '.obligations | length') == 0 ]] || fail "reply did not close alice's obligation"
cv inbox -g g1 --actor-id alice --mark-read --json | jq -e '.marked_read_up_to != null' >/dev/null || fail "mark-read"
[[ $(cv inbox -g g1 --actor-id alice --json | jq '.unread | length') == 0 ]] || fail "unread after --mark-read"
[[ $(cv actor show -g g1 alice --json | jq .cursor) -ge $rseq ]] || fail "alice's cursor did not move"
pass "attention → ack, reply_required → reply, --mark-read"

# --- errors change nothing ------------------------------------------------------------------
before=$(seq_of g1)
for bad in "send -g nope hello" "send -g g1 --to nobody hello" "reply -g g1 01ZZZZZZZZZZZZZZZZZZZZZZZZ hi" \
           "ack -g g1 $att --as nobody" "actor start -g g1 nobody" "group start nope" "inbox -g g1 --actor-id nobody"; do
    set +e; msg=$(cv $bad 2>&1); rc=$?; set -e
    [[ $rc == 1 ]] || fail "'conclave $bad' exited $rc, want 1"
    grep -qiE "no (group|actor|event)|unknown|not found" <<<"$msg" || fail "'conclave $bad' gave an unclear error: $msg"
done
[[ $(seq_of g1) == "$before" ]] || fail "a failed command appended to the ledger"
pass "unknown group/actor/event ids: clear errors, exit 1, nothing appended"

# --- tail and tail -f ---------------------------------------------------------------------
[[ $(cv tail -g g1 -n 5 | wc -l) == 5 ]] || fail "tail -n 5"
cv tail -g g1 -n 5
cv tail -g g1 -n 50 --json | jq -e -s 'length == 50 or length == (.[-1].seq)' >/dev/null || fail "tail --json lines"
as_user env "$CONCLAVE" tail -g g1 -n 0 -f --json >/tmp/follow.$$ 2>&1 &
follower=$!
sleep 0.5
fid=$(cv send -g g1 --to alice --json "live" | jq -r .event_id)
wait_for 10 grep -q "$fid" /tmp/follow.$$ || fail "tail -f did not show the new event"
kill "$follower" 2>/dev/null || :
wait "$follower" 2>/dev/null || :
rm -f /tmp/follow.$$
pass "tail -n and tail -f"

# --- pause, resume --------------------------------------------------------------------------
cv group pause g1 || fail "pause"
pid=$(cv send -g g1 --to echo --json "while paused" | jq -r .event_id)
sleep 1.5
[[ -z $(replies_to g1 "$pid") ]] || fail "a paused group delivered to its actor"
cv group resume g1 || fail "resume"
got_paused_reply() { [[ -n $(replies_to g1 "$pid") ]]; }
wait_for 10 got_paused_reply || fail "message held while paused not delivered after resume"
pass "pause holds delivery, resume delivers"

# --- actor restart while messages flow: nothing lost ------------------------------------------
ids=()
for i in $(seq 1 30); do
    ids+=("$(cv send -g g1 --to echo --reply-required --json "flow $i" | jq -r .event_id)")
    if [[ $i == 10 ]]; then cv actor restart -g g1 echo >/dev/null || fail "actor restart"; fi
    if [[ $i == 20 ]]; then kill -9 "$(cv actor show -g g1 echo --json | jq -r .pid)" || :; fi
done
no_obligations() { [[ $(cv actor show -g g1 echo --json | jq '.obligations | length') == 0 ]]; }
wait_for 60 no_obligations || fail "echo still owes replies after restart and crash"
all=$(cv tail -g g1 -n 10000 --json)
for id in "${ids[@]}"; do
    n=$(jq -r --arg id "$id" 'select(.kind == "chat.message" and .data.reply_to == $id) | .id' <<<"$all" | wc -l)
    [[ $n -ge 1 ]] || fail "message $id got no reply"
done
[[ $(cv actor show -g g1 echo --json | jq .restarts) -ge 1 ]] || fail "the crash did not count as a restart"
actor_logged() { user_journalctl -u "$unit" CONCLAVE_ACTOR=echo -o cat | grep -q "echo-actor started"; }
wait_for 10 actor_logged || fail "actor stderr not in the journal"
pass "actor restart and kill -9 while 30 messages flow: every message answered; stderr in the journal"

# --- service restart keeps everything; handled messages are not redelivered ---------------------
replies_before=$(cv tail -g g1 -n 10000 --json | jq -s '[.[] | select(.kind == "chat.message" and .by == "echo")] | length')
user_systemctl restart "$unit" || fail "service restart"
wait_for 10 bash -c "[[ \$(as_user env '$CONCLAVE' actor list -g g1 --json | jq -r '.[] | select(.id == \"echo\") | .runtime') == running ]]" \
    || fail "echo not running after service restart"
cv groups | grep -E "^g1 +active" >/dev/null || fail "g1 not active after restart"
last=$(cv send -g g1 --to echo --json "after restart" | jq -r .event_id)
got_last() { [[ -n $(replies_to g1 "$last") ]]; }
wait_for 10 got_last || fail "no reply after service restart"
replies_after=$(cv tail -g g1 -n 10000 --json | jq -s '[.[] | select(.kind == "chat.message" and .by == "echo")] | length')
[[ $replies_after == $((replies_before + 1)) ]] || fail "redelivery after restart: $replies_before → $replies_after replies"
pass "service restart: state kept, no redelivery of handled messages"

# --- stop refuses sends ---------------------------------------------------------------------
cv group stop g1 || fail "group stop"
set +e; msg=$(cv send -g g1 hello 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "stopped" <<<"$msg" || fail "send to a stopped group: $rc $msg"
wait_for 10 bash -c "[[ \$(as_user env '$CONCLAVE' actor list -g g1 --json | jq -r '.[] | select(.id == \"echo\") | .runtime') == stopped ]]" \
    || fail "actor still running in a stopped group"
pass "a stopped group stops its actors and refuses messages"

# --- torn tail and corrupt ledger ---------------------------------------------------------------
cv group create g2 >/dev/null
cv group create g3 >/dev/null
for i in 1 2 3; do cv send -g g2 "m$i" >/dev/null; cv send -g g3 "m$i" >/dev/null; done
user_systemctl stop "$unit"
ledger1=$home/groups/g1/ledger.jsonl
size=$(stat -c %s "$ledger1")
printf '{"v":1,"id":"01ZZZ","seq":99999,"ts":"2026-' | as_user tee -a "$ledger1" >/dev/null
# corrupt the second line of a ledger, keeping its length
corrupt_line2() {
    as_user python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
lines = open(p, "rb").read().split(b"\n")
lines[1] = lines[1].replace(b'"kind"', b'"k!nd"')
open(p, "wb").write(b"\n".join(lines))
PY
}
corrupt_line2 "$home/groups/g2/ledger.jsonl"
corrupt_line2 "$home/groups/g3/ledger.jsonl"
offset=$(head -n 1 "$home/groups/g2/ledger.jsonl" | wc -c)
offset3=$(head -n 1 "$home/groups/g3/ledger.jsonl" | wc -c)
# g2 keeps its caches, so only the background check reads line 2; g3 lost them, so the replay
# at start-up meets the bad line first.
rm -f "$home/groups/g3/group.json" "$home/groups/g3/state/state.json"
user_systemctl start "$unit" || fail "start after corruption"
[[ $(stat -c %s "$ledger1") == "$size" ]] || fail "torn tail not cut back to $size bytes"
journal_says() { user_journalctl -u "$unit" -o cat | grep -q -- "$1"; }
wait_for 10 journal_says "cut a torn last line" || fail "torn tail not logged"
g2_broken() { cv groups --json | jq -e '.[] | select(.id == "g2") | .state == "broken"' >/dev/null; }
# The index is intact, so the start is fast; the background check of the ledger finds the line.
wait_for 10 g2_broken || fail "g2 not broken"
cv groups --json | jq -e --arg off "$offset" '.[] | select(.id == "g2") | .error | contains("byte offset " + $off)' >/dev/null \
    || fail "g2's error does not name byte offset $offset"
cv groups --json | jq -e --arg off "$offset3" '.[] | select(.id == "g3") | .state == "broken" and (.error | contains("byte offset " + $off))' >/dev/null \
    || fail "g3 (replayed at start) is not broken with byte offset $offset3"
cv groups --json | jq -e '.[] | select(.id == "g1") | .state == "stopped"' >/dev/null || fail "g1 should be fine"
set +e; msg=$(cv send -g g2 hello 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "broken" <<<"$msg" || fail "send to a broken group: $rc $msg"
set +e; out=$(cv doctor 2>&1); rc=$?; set -e
echo "$out"
[[ $rc == 1 ]] || fail "doctor should fail on a corrupt ledger"
grep -q "g2.*byte offset $offset" <<<"$out" || fail "doctor does not report g2's corruption"
grep -q "g1.*torn" <<<"$out" || fail "doctor does not report g1's cut tail"
pass "torn tail cut and reported; corrupt middle line stops only that group, with its byte offset"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all core integration checks passed"

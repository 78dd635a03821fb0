#!/usr/bin/env bash
# The issue's scenario: a group with an llm actor and a human on IRC (Debian's ngircd, a scripted
# IRC user from tests/irc/irc-client.py). alice addresses the actor in the channel ("gpt: …"):
# the message is to gpt with reply_required, so gpt owes a reply (its inbox and `actor show` say
# so while the fake provider, tests/fakes/fake-llm-provider.py, streams slowly); the answer
# reaches alice on IRC and closes the obligation; the ledger links question and answer, with
# usage, and alice's inbox has the answer. A remark that only mentions an actor later stays @all.
# Then the provider fails: alice's actor and the operator get the notify, the actor is degraded,
# the attempts are bounded, and the question it owes an answer to brings a reminder.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi
command -v ngircd >/dev/null || command -v /usr/sbin/ngircd >/dev/null || { echo "SKIP: ngircd not installed (apt-get install ngircd)"; exit 77; }
NGIRCD=$(command -v ngircd || echo /usr/sbin/ngircd)

integration_setup_paths
home=$SANDBOX_HOME/.conclave
irc=$SANDBOX_HOME/irc
unit=conclave.service
irc_port=$((20000 + RANDOM % 20000))
work=$(mktemp -d /tmp/llm-irc.XXXXXX)
stop_pidfile() { [[ -s $1 ]] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; }
fake_pid=
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :
        tail -n 20 "$irc"/*.log >&2 || :
    fi
    for f in "$irc"/*.pid; do stop_pidfile "$f" || :; done
    [[ -z $fake_pid ]] || kill "$fake_pid" 2>/dev/null || :
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT

python3 "$here/../fakes/fake-llm-provider.py" --port-file "$work/port" --log "$work/fake.log" 2>"$work/fake.err" &
fake_pid=$!
wait_for 10 test -s "$work/port" || fail "the fake provider did not start: $(cat "$work/fake.err")"
fp=$(cat "$work/port")

as_user mkdir -p "$home" "$irc"
as_user tee "$irc/ngircd.conf" >/dev/null <<EOF
[Global]
Name = irc.test
Info = Conclave test server
Listen = 127.0.0.1
Ports = $irc_port
MotdPhrase = "test"
PidFile = $irc/ngircd.pid
[Limits]
MaxConnectionsIP = 0
[Options]
DNS = no
Ident = no
PAM = no
EOF
as_user "$NGIRCD" -n -f "$irc/ngircd.conf" >>"$irc/ngircd.log" 2>&1 &
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$irc_port" || fail "ngircd did not listen on $irc_port"

as_user tee "$home/config.toml" >/dev/null <<EOF
[runtime]
ledger_sync = "batch"
[gateway]
enabled = false
[providers.local]
kind = "ollama"
base_url = "http://127.0.0.1:$fp"
model = "fake-model"
timeout = "15s"
retries = 1
[automation]
reply_reminder_after = "8s"
reminder_max = 1
[channels.irc]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $irc_port
tls = false
nick = "conclave"
channel = "#conclave"
allowed_users = ["alice"]
EOF
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
cv group create g1 >/dev/null
# "slower" streams for about 4 s: time to see the open obligation.
cv actor add -g g1 gpt --kind llm --provider local --model slower >/dev/null || fail "actor add gpt"
cv actor add -g g1 broken --kind llm --provider local --model server-error >/dev/null || fail "actor add broken"
cv group start g1 >/dev/null
up() { [[ $(status_field '.channels[] | select(.name == "irc") | .state') == up ]]; }
wait_for 20 up || fail "channel irc did not come up"

as_user touch "$irc/alice.cmd"
as_user python3 "$here/../irc/irc-client.py" --port "$irc_port" --nick alice --channel "#conclave" \
    --log "$irc/alice.log" --commands "$irc/alice.cmd" --pid-file "$irc/alice.pid" >>"$irc/alice.out" 2>&1 &
joined() { [[ -f $irc/alice.log ]] && jq -e -s 'any(.[]; .event == "joined")' "$irc/alice.log" >/dev/null; }
wait_for 15 joined || fail "alice did not join"
say() { printf '%s\n' "$1" | as_user tee -a "$irc/alice.cmd" >/dev/null; }
heard() { [[ -f $irc/alice.log ]] && jq -s -e --arg x "$1" 'any(.[]; .from == "conclave" and .to == "#conclave" and .text == $x)' "$irc/alice.log" >/dev/null; }
events() { cv tail -g g1 -n 10000 --json | jq -s .; }
pass "ngircd, the irc channel, an llm actor on the fake provider, alice on IRC"

# --- alice asks gpt in the channel; the answer reaches her on IRC -----------------------------------
say "gpt: what is two plus two?"
question() { events | jq -r '.[] | select(.kind == "chat.message" and .by == "irc-alice" and .data.text == "gpt: what is two plus two?") | .id'; }
asked() { [[ -n $(question) ]]; }
wait_for 10 asked || fail "alice's question did not reach the ledger"
q=$(question)
[[ ${#q} == 26 ]] || fail "alice's question is not in the ledger"
events | jq -e --arg q "$q" '.[] | select(.id == $q) | .data.to == ["gpt"] and .data.reply_required == true and .data.channel == "irc"' \
    >/dev/null || fail "alice's question is not to gpt with reply_required: $(events | jq -c --arg q "$q" '.[] | select(.id == $q)')"
owes() { cv actor show -g g1 gpt --json | jq -e --arg q "$q" '[.obligations[] | select(.kind == "reply" and .event_id == $q and .from == "irc-alice")] | length == 1' >/dev/null; }
owes || fail "gpt does not owe alice a reply while it answers: $(cv actor show -g g1 gpt --json | jq -c .obligations)"
cv inbox -g g1 --actor-id gpt --json | jq -e --arg q "$q" '[.obligations[] | select(.event_id == $q)] | length == 1' >/dev/null \
    || fail "gpt's inbox does not show the obligation"
pass "'gpt: …' on IRC is to gpt with reply_required; gpt owes alice a reply (actor show, inbox)"
wait_for 20 heard "alice: echo: irc-alice: gpt: what is two plus two?" \
    || fail "alice did not get gpt's answer on IRC: $(cat "$irc/alice.log")"
all=$(events)
jq -e --arg q "$q" '[.[] | select(.kind == "chat.message" and .by == "gpt" and .data.reply_to == $q and .data.to == ["irc-alice"])] | length == 1' \
    <<<"$all" >/dev/null || fail "gpt's answer does not reply to alice's question in the ledger"
jq -e --arg q "$q" '[.[] | select(.kind == "llm.usage" and .data.event_id == $q and .data.provider == "local")] | length == 1' \
    <<<"$all" >/dev/null || fail "no llm.usage for the turn"
cv inbox -g g1 --actor-id irc-alice --json | jq -e --arg q "$q" '[.unread[] | select(.by == "gpt" and .data.reply_to == $q)] | length == 1' \
    >/dev/null || fail "the answer is not in irc-alice's inbox"
[[ $(cv actor show -g g1 gpt --json | jq '.obligations | length') == 0 ]] || fail "gpt still owes something after answering"
[[ $(cv inbox -g g1 --actor-id gpt --json | jq '.obligations | length') == 0 ]] || fail "gpt's inbox still shows an obligation"
# A reminder may come while a slow machine answers (reply_reminder_after is 8 s here), but none
# after the answer closed the obligation.
answer_seq=$(jq -r --arg q "$q" '.[] | select(.kind == "chat.message" and .by == "gpt" and .data.reply_to == $q) | .seq' <<<"$all")
sleep 9
[[ $(events | jq --arg q "$q" --argjson s "$answer_seq" '[.[] | select(.kind == "system.notify" and .data.reason == "reminder"
        and .data.obligation.event_id == $q and .seq > $s)] | length') == 0 ]] \
    || fail "a reminder for an obligation that was already closed"
pass "alice (IRC) → 'gpt: …' → the llm actor answered through the provider → 'alice: echo: …' on IRC; ledger: reply_to, usage; inbox; obligation closed"

# An unaddressed remark in the channel is not answered; naming an actor later in the text does
# not address it either.
say "just chatting, nobody in particular"
say "later I will ask gpt: maybe"
sleep 2
[[ $(jq -s '[.[] | select(.kind == "ollama")] | length' "$work/fake.log") == 1 ]] || fail "an unaddressed remark went to the provider"
events | jq -e '[.[] | select(.kind == "chat.message" and .by == "irc-alice" and (.data.text | startswith("just chatting") or startswith("later I will")))
    | select(.data.to == ["@all"] and .data.reply_required == false)] | length == 2' >/dev/null \
    || fail "remarks that do not start by addressing an actor are not @all without reply_required"
pass "an unaddressed remark in the channel is not sent to the model; 'ask gpt: …' later in the text stays @all"

# --- the provider fails: nothing on IRC, a notify for the operator, the actor degraded ----------------
say "@broken are you there?"
notified() { events | jq -e '[.[] | select(.kind == "system.notify" and .data.actor_id == "broken" and .data.reason == "llm_error")] | length == 1' >/dev/null; }
wait_for 20 notified || fail "no llm_error notify for broken"
events | jq -e '.[] | select(.kind == "system.notify" and .data.actor_id == "broken") | .data.to == ["irc-alice", "operator"] and .data.error.code == "server_error"' \
    >/dev/null || fail "the notify is not for alice and the operator: $(events | jq -c '.[] | select(.kind == "system.notify")')"
[[ $(cv actor show -g g1 broken --json | jq -r .runtime) == degraded ]] || fail "broken is not degraded"
[[ $(jq -s '[.[] | select(.model == "server-error")] | length' "$work/fake.log") == 2 ]] || fail "not exactly 2 attempts (retries = 1)"
pass "a failing provider: notify to alice's actor and the operator, degraded, 2 attempts, then quiet"

# broken never answered "@broken …": it still owes alice a reply, and automation reminds it.
q2=$(events | jq -r '.[] | select(.kind == "chat.message" and .by == "irc-alice" and .data.text == "@broken are you there?") | .id')
[[ ${#q2} == 26 ]] || fail "the question to broken is not in the ledger"
cv actor show -g g1 broken --json | jq -e --arg q "$q2" '[.obligations[] | select(.kind == "reply" and .event_id == $q)] | length == 1' \
    >/dev/null || fail "broken does not owe alice a reply"
reminded() { events | jq -e --arg q "$q2" '[.[] | select(.kind == "system.notify" and .data.reason == "reminder"
    and .data.to == ["broken"] and .data.obligation.event_id == $q)] | length == 1' >/dev/null; }
wait_for 20 reminded || fail "no reminder to broken for alice's question"
pass "'@broken …' unanswered: broken owes alice a reply and gets a reminder"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all llm irc integration checks passed"

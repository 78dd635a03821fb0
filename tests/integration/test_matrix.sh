#!/usr/bin/env bash
# The matrix channel against a local Matrix client-server API (tests/fakes/matrix.py): a user
# in a room talks to the echo actor and gets a rich reply; /sync resumes from the persisted
# since token after kill -9 of conclave-channels; a duplicate event is stored once; sends are
# idempotent by txnId, so a server that takes a message and drops the connection before
# answering still gets it exactly once; M_LIMIT_EXCEEDED retry_after_ms is waited out;
# malformed JSON degrades the channel without a crash; whoami is the live check.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi
. "$here/platform_lib.sh"

integration_setup_paths
port=$((20000 + RANDOM % 20000))
unit=conclave.service
trap 'rc=$?; pf_cleanup; if [[ $rc -ne 0 ]]; then user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :; fi; exit $rc' EXIT

token=syt_Y29uY2xhdmU_test_token
pf_fake mx matrix --token "$token"
as_user mkdir -p "$SANDBOX_HOME/.conclave"
secret_file mx.token "$token"
secret_file mxbad.token "syt_wrong"
pf_service "$port" "
[channels.mx]
kind = \"matrix\"
group = \"g1\"
allowed_users = [\"@alice:localhost\"]
homeserver = \"http://127.0.0.1:$mx_port\"
token_file = \"mx.token\"
room = \"!general:localhost\"
poll_timeout = \"2s\"

[channels.mxbad]
kind = \"matrix\"
group = \"g1\"
allowed_users = [\"@alice:localhost\"]
homeserver = \"http://127.0.0.1:$mx_port\"
token_file = \"mxbad.token\""
wait_for 15 state_is mx up || fail "channel mx not up: $(channel_state mx) $(channel_error mx)"
pass "matrix channel up (/sync)"

sent_count() { fake_get "$mx_port" /_fake/sent | jq --arg t "$1" '[.[] | select(.body == $t)] | length'; }
has_reply() { [[ $(sent_count "$1") -ge 1 ]]; }
inject() { fake_post "$mx_port" /_fake/inject "$1" | jq -r .event_id; }

# --- a human talks to the echo actor ---------------------------------------------------------
ev=$(inject '{"body":"hello bot","sender":"@alice:localhost"}')
wait_for 15 has_reply "echo: hello bot" || fail "no answer in the room"
fake_get "$mx_port" /_fake/sent | jq -e --arg ev "$ev" '.[] | select(.body == "echo: hello bot" and .in_reply_to == $ev and .room == "!general:localhost")' >/dev/null \
    || fail "the answer is not a reply to $ev: $(fake_get "$mx_port" /_fake/sent)"
bot_ev=$(fake_get "$mx_port" /_fake/sent | jq -r '.[] | select(.body == "echo: hello bot") | .event_id')
echo_ev=$(cv tail -g g1 -n 10000 --json | jq -r 'select(.kind == "chat.message" and .data.text == "echo: hello bot") | .id')
inject "{\"body\":\"thanks\",\"sender\":\"@alice:localhost\",\"reply_to\":\"$bot_ev\"}" >/dev/null
got_thanks() { human_messages g1 | jq -e --arg e "$echo_ev" 'select(.data.text == "thanks" and .data.reply_to == $e)' >/dev/null; }
wait_for 15 got_thanks || fail "a rich reply to the bot's message is not a reply to $echo_ev in the ledger"
pass "a Matrix user talks to the echo actor; the answer is an m.in_reply_to reply, and a reply to it is a reply in the ledger"

# --- duplicate event, denied sender ------------------------------------------------------------
inject '{"body":"twice","sender":"@alice:localhost","duplicate":true}' >/dev/null
inject '{"body":"secret of mallory","sender":"@mallory:localhost"}' >/dev/null
inject '{"body":"after both","sender":"@alice:localhost"}' >/dev/null
wait_for 15 has_reply "echo: after both" || fail "no answer after the duplicate"
sleep 1
[[ $(sent_count "echo: twice") == 1 ]] || fail "duplicate event answered $(sent_count "echo: twice") times"
[[ $(human_messages g1 | jq -s '[.[] | select(.data.text == "twice")] | length') == 1 ]] || fail "duplicate event stored twice"
! cv tail -g g1 -n 10000 --json | grep -q "secret of mallory" || fail "a denied sender's text was stored"
pass "a duplicate event is stored once; a sender not in allowed_users is refused"

# --- kill -9 of conclave-channels: since is persisted -----------------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
before=$(human_messages g1 | wc -l)
kill -STOP "$pid"
inject '{"body":"while you were away","sender":"@alice:localhost"}' >/dev/null
n=$(fake_get "$mx_port" /_fake/status | jq '.sinces | length')
kill -9 "$pid"
kill -CONT "$pid" 2>/dev/null || :
wait_for 30 has_reply "echo: while you were away" || fail "message sent during the restart was lost"
first=$(fake_get "$mx_port" /_fake/status | jq -r --argjson n "$n" '[.sinces[$n:][] ] | map(select(. != null)) | length')
none=$(fake_get "$mx_port" /_fake/status | jq -r --argjson n "$n" '[.sinces[$n:][] | select(. == null)] | length')
[[ $none == 0 && $first -gt 0 ]] || fail "after the restart /sync started without since ($none initial syncs)"
sleep 2
[[ $(human_messages g1 | wc -l) == $((before + 1)) ]] || fail "events re-delivered after the restart"
[[ $(sent_count "echo: hello bot") == 1 ]] || fail "an old answer was sent again after the restart"
pass "after kill -9 of conclave-channels /sync resumes from the persisted since token"

# --- kill -9 of conclave-channels during a burst: each message arrives exactly once -----------------
human=$(cv actor list -g g1 --json | jq -r '.[] | select(.kind == "human" and (.id | startswith("mx-"))) | .id' | head -1)
[[ -n $human ]] || fail "no human actor for @alice"
n=20
for i in $(seq 1 $n); do cv send -g g1 --to "$human" "burst $i of $n" >/dev/null || fail "send $i"; done
burst_count() { fake_get "$mx_port" /_fake/sent | jq '[.[] | select(.body | startswith("burst "))] | length'; }
some() { [[ $(burst_count) -ge 3 ]]; }
wait_for 20 some || fail "the burst does not arrive"
kill -9 "$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)"
all() { [[ $(burst_count) -ge $n ]]; }
wait_for 60 all || fail "only $(burst_count) of $n burst messages arrived after the kill"
sleep 2
for i in $(seq 1 $n); do
    c=$(sent_count "burst $i of $n")
    [[ $c == 1 ]] || fail "burst message $i arrived $c times"
done
pass "kill -9 of conclave-channels mid-burst: all $n messages in the room exactly once (unsolicited ones to room)"

# --- exactly once although the server dropped the connection after taking the message -------------
fake_post "$mx_port" /_fake/fault '{"match":"/send/","mode":"drop_after"}' >/dev/null
inject '{"body":"taken then dropped","sender":"@alice:localhost"}' >/dev/null
txn_tries() { fake_get "$mx_port" /_fake/requests | jq '[.[] | select(.method == "PUT")] | length'; }
puts_before=$(txn_tries)
wait_for 20 has_reply "echo: taken then dropped" || fail "no answer"
wait_for 20 bash -c "[[ \$(curl -sf http://127.0.0.1:$mx_port/_fake/requests | jq '[.[] | select(.method == \"PUT\")] | length') -ge $((puts_before + 2)) ]]" \
    || fail "the send was not retried after the dropped answer"
sleep 1
[[ $(sent_count "echo: taken then dropped") == 1 ]] || fail "sent $(sent_count "echo: taken then dropped") times"
pass "connection dropped after the server took the message: retried with the same txnId, in the room once"

# --- M_LIMIT_EXCEEDED --------------------------------------------------------------------------
fake_post "$mx_port" /_fake/fault '{"match":"/send/","mode":"429","retry_after":2}' >/dev/null
inject '{"body":"rate limited","sender":"@alice:localhost"}' >/dev/null
wait_for 20 has_reply "echo: rate limited" || fail "no answer after M_LIMIT_EXCEEDED"
gap=$(fake_get "$mx_port" /_fake/requests | jq '[.[] | select(.method == "PUT") | .time] | .[-1] - .[-2]')
jq -en --argjson g "$gap" '$g >= 1.9' >/dev/null || fail "retried ${gap}s after retry_after_ms 2000"
pass "M_LIMIT_EXCEEDED retry_after_ms 2000 honoured (retried after ${gap}s)"

# --- malformed JSON ----------------------------------------------------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
fake_post "$mx_port" /_fake/fault '{"match":"/sync","mode":"malformed","count":2}' >/dev/null
inject '{"body":"wake the sync","sender":"@alice:localhost"}' >/dev/null
saw() { user_journalctl -o cat | grep -q 'sync: malformed answer'; }
wait_for 15 saw || fail "malformed /sync answer not logged"
wait_for 20 state_is mx up || fail "channel did not recover"
[[ $(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1) == "$pid" ]] || fail "conclave-channels restarted (crashed?)"
wait_for 15 has_reply "echo: wake the sync" || fail "message lost around the malformed answers"
pass "malformed JSON: logged, channel degraded, recovered without a crash, nothing lost"

# --- live check ----------------------------------------------------------------------------------
cv channel doctor mx >&2 || fail "conclave channel doctor mx failed"
set +e; out=$(cv channel doctor mxbad 2>&1); rc=$?; set -e
echo "$out" >&2
[[ $rc == 1 ]] || fail "conclave channel doctor mxbad exited $rc, want 1"
grep -q "FAIL" <<<"$out" && grep -A5 "FAIL" <<<"$out" | grep -q "access_token" || fail "doctor gives no fix for a refused token"
pass "doctor: whoami ok; a refused token gets a concrete fix"

# A clean stop: leaks and errors at exit show up under ASan too.
user_systemctl stop conclave.service || fail "stop"
no_sanitizer_reports

#!/usr/bin/env bash
# The discord channel against a local Discord (tests/fakes/discord.py): the Gateway WebSocket
# (HELLO, IDENTIFY, heartbeats, READY, MESSAGE_CREATE, RESUME after the connection drops, with
# the messages sent meanwhile replayed) and the REST API (replies with message_reference, a
# nonce that makes a retry after a lost answer exactly once, 429 retry_after). A duplicate
# dispatch is stored once, a denied author refused, a malformed payload logged without a
# crash, kill -9 of conclave-channels followed by a fresh IDENTIFY; doctor runs users/@me.
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

token=MTAwMDAw.test.bot-token
pf_fake dc discord --token "$token" --heartbeat-ms 1000
as_user mkdir -p "$SANDBOX_HOME/.conclave"
secret_file dc.token "$token"
secret_file dcbad.token "not.the.token"
pf_service "$port" "
[channels.dc]
kind = \"discord\"
group = \"g1\"
allowed_users = [\"4242\"]
token_file = \"dc.token\"
api_base = \"http://127.0.0.1:$dc_port/api/v10\"

[channels.dcbad]
kind = \"discord\"
group = \"g1\"
allowed_users = [\"4242\"]
token_file = \"dcbad.token\"
api_base = \"http://127.0.0.1:$dc_port/api/v10\""
wait_for 15 state_is dc up || fail "channel dc not up: $(channel_state dc) $(channel_error dc)"
[[ $(fake_get "$dc_port" /_fake/status | jq .identifies) == 1 ]] || fail "no IDENTIFY"
pass "discord channel up (Gateway READY)"

sent_count() { fake_get "$dc_port" /_fake/sent | jq --arg t "$1" '[.[] | select(.content == $t)] | length'; }
has_reply() { [[ $(sent_count "$1") -ge 1 ]]; }
inject() { fake_post "$dc_port" /_fake/inject "$1" | jq -r .id; }

# --- a human talks to the echo actor ---------------------------------------------------------
id=$(inject '{"content":"hello bot","author_id":"4242","username":"alice","channel_id":"900"}')
wait_for 15 has_reply "echo: hello bot" || fail "no answer on Discord"
fake_get "$dc_port" /_fake/sent | jq -e --arg id "$id" '.[] | select(.content == "echo: hello bot" and .channel_id == "900" and .reply_to == $id and (.nonce | length) <= 25)' >/dev/null \
    || fail "the answer is not a reply to $id: $(fake_get "$dc_port" /_fake/sent)"
sleep 3 # a few heartbeats: the connection must stay up
state_is dc up || fail "channel not up after heartbeats: $(channel_error dc)"
pass "a Discord user talks to the echo actor; the answer references the message; heartbeats keep the session"

# --- duplicate, denied, malformed payload ------------------------------------------------------
inject '{"content":"twice","author_id":"4242","channel_id":"900","duplicate":true}' >/dev/null
inject '{"content":"secret of mallory","author_id":"999","channel_id":"900"}' >/dev/null
fake_post "$dc_port" /_fake/ws_send_raw '{"data":"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"d\":"}' >/dev/null
inject '{"content":"after all that","author_id":"4242","channel_id":"900"}' >/dev/null
wait_for 15 has_reply "echo: after all that" || fail "no answer after the duplicate"
sleep 1
[[ $(sent_count "echo: twice") == 1 ]] || fail "duplicate dispatch answered $(sent_count "echo: twice") times"
! cv tail -g g1 -n 10000 --json | grep -q "secret of mallory" || fail "a denied author's text was stored"
user_journalctl -o cat | grep -q 'discord gateway: malformed payload' || fail "malformed payload not logged"
pass "duplicate dispatch stored once; denied author refused; malformed payload logged and skipped"

# --- the connection drops: RESUME replays what was missed --------------------------------------
fake_post "$dc_port" /_fake/ws_drop '{}' >/dev/null
inject '{"content":"while disconnected","author_id":"4242","channel_id":"900"}' >/dev/null
wait_for 20 has_reply "echo: while disconnected" || fail "message sent while disconnected was lost"
[[ $(fake_get "$dc_port" /_fake/status | jq .resumes) -ge 1 ]] || fail "no RESUME after the drop"
wait_for 10 state_is dc up || fail "not up after resume"
pass "dropped Gateway connection resumed; the message sent meanwhile was replayed and answered"

# --- exactly once by nonce; 429 ----------------------------------------------------------------
posts() { fake_get "$dc_port" /_fake/requests | jq '[.[] | select(.path == "/api/v10/channels/900/messages")] | length'; }
n=$(posts)
fake_post "$dc_port" /_fake/fault '{"match":"/messages","mode":"drop_after"}' >/dev/null
inject '{"content":"taken then dropped","author_id":"4242","channel_id":"900"}' >/dev/null
wait_for 20 has_reply "echo: taken then dropped" || fail "no answer"
retried() { [[ $(posts) -ge $((n + 2)) ]]; }
wait_for 20 retried || fail "the send was not retried after the lost answer"
sleep 1
[[ $(sent_count "echo: taken then dropped") == 1 ]] || fail "sent $(sent_count "echo: taken then dropped") times"
fake_post "$dc_port" /_fake/fault '{"match":"/messages","mode":"429","retry_after":1.5}' >/dev/null
inject '{"content":"rate limited","author_id":"4242","channel_id":"900"}' >/dev/null
wait_for 20 has_reply "echo: rate limited" || fail "no answer after 429"
gap=$(fake_get "$dc_port" /_fake/requests | jq '[.[] | select(.path == "/api/v10/channels/900/messages") | .time] | .[-1] - .[-2]')
jq -en --argjson g "$gap" '$g >= 1.4' >/dev/null || fail "retried ${gap}s after retry_after 1.5"
pass "answer lost after Discord took the message: the retry's nonce made it exactly once; 429 retry_after 1.5 honoured (${gap}s)"

# --- kill -9 of conclave-channels: a new session -----------------------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
kill -9 "$pid"
wait_for 30 bash -c "[[ \$(curl -sf http://127.0.0.1:$dc_port/_fake/status | jq .identifies) -ge 2 ]]" || fail "no new IDENTIFY after the restart"
wait_for 15 state_is dc up || fail "not up after the restart"
inject '{"content":"after restart","author_id":"4242","channel_id":"900"}' >/dev/null
wait_for 15 has_reply "echo: after restart" || fail "no answer after the restart"
[[ $(sent_count "echo: hello bot") == 1 ]] || fail "an old answer was sent again after the restart"
pass "after kill -9 of conclave-channels the bot identifies anew and answers; nothing sent twice"

# --- live check ----------------------------------------------------------------------------------
cv channel doctor dc >&2 || fail "conclave channel doctor dc failed"
set +e; out=$(cv channel doctor dcbad 2>&1); rc=$?; set -e
echo "$out" >&2
[[ $rc == 1 ]] || fail "conclave channel doctor dcbad exited $rc, want 1"
grep -q "FAIL" <<<"$out" && grep -A5 "FAIL" <<<"$out" | grep -q "Reset Token" || fail "doctor gives no fix for a bad token"
pass "doctor: users/@me ok; a bad token gets a concrete fix"

# A clean stop: leaks and errors at exit show up under ASan too.
user_systemctl stop conclave.service || fail "stop"
no_sanitizer_reports

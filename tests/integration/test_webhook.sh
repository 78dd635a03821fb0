#!/usr/bin/env bash
# The generic webhook channel both ways, against a local receiver (tests/webhook/receiver.py)
# that checks signatures and de-duplicates on X-Conclave-Delivery: a signed inbound webhook from
# an allowed sender becomes a chat.message by the human actor bound to it; a retried delivery is
# stored once; a sender outside allowed_users gets 403 and its text is not stored; the echo
# actor's reply is POSTed, signed, to the receiver; 503 and 429 + Retry-After are retried with
# the same delivery id, 400 fails the delivery; kill -9 of conclave-channels mid-burst loses
# nothing (the receiver de-duplicates what was resent).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
home=$SANDBOX_HOME/.conclave
work=$SANDBOX_HOME/hook
unit=conclave.service
port=$((20000 + RANDOM % 20000))
stop_pidfile() { [[ -s $1 ]] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; }
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :
        tail -n 20 "$work/received.log" >&2 || :
    fi
    stop_pidfile "$work/receiver.pid" || :
    exit $rc
}
trap cleanup EXIT

as_user mkdir -p "$home" "$SANDBOX_HOME/bin" "$work"
as_user sh -c "umask 077; openssl rand -hex 24 > '$home/hook.secret'"
secret=$(cat "$home/hook.secret")
as_user touch "$work/plan"
as_user python3 "$here/../webhook/receiver.py" --secret-file "$home/hook.secret" --log "$work/received.log" \
    --plan "$work/plan" --port-file "$work/port" --pid-file "$work/receiver.pid" >>"$work/receiver.out" 2>&1 &
wait_for 10 test -s "$work/port" || fail "the receiver did not start"
rport=$(cat "$work/port")

as_user tee "$home/config.toml" >/dev/null <<EOF
[runtime]
ledger_sync = "batch"
[gateway]
port = $port
[channels.hook]
kind = "webhook"
group = "g1"
secret_file = "hook.secret"
url = "http://127.0.0.1:$rport/in"
allowed_users = ["ci-bot"]
EOF
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
cv group create g1 >/dev/null || fail "group create"
cv actor add -g g1 echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" >/dev/null || fail "actor add"
cv actor start -g g1 echo >/dev/null || fail "actor start"
cv group start g1 >/dev/null || fail "group start"
is_up() { [[ $(status_field '.channels[] | select(.name == "hook") | .state') == up ]]; }
wait_for 20 is_up || fail "channel hook is not up"

events() { cv tail -g g1 -n 10000 --json; }
# post DELIVERY_ID BODY → HTTP status; the response body in $work/response
post() {
    local ts sig
    ts=$(date +%s)
    sig=$(printf '%s.%s.%s' "$ts" "$1" "$2" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')
    curl -sS -o "$work/response" -w '%{http_code}' "http://127.0.0.1:$port/webhook/hook" \
        -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Delivery: $1" -H "X-Conclave-Signature: sha256=$sig" \
        -H 'Content-Type: application/json' --data-binary "$2"
}
received() { [[ -f $work/received.log ]] && jq -s -e "$1" "$work/received.log" >/dev/null; }

# --- inbound --------------------------------------------------------------------------------------
code=$(post "evt-1" '{"from":"ci-bot","text":"build 42 failed"}')
[[ $code == 202 ]] || fail "inbound webhook: HTTP $code $(cat "$work/response")"
events | jq -s -e 'any(.[]; .kind == "actor.added" and .data.actor_id == "hook-ci-bot" and .data.channel == "hook"
                         and .data.external_user == "ci-bot")' >/dev/null || fail "no human actor bound to ci-bot"
events | jq -s -e 'any(.[]; .kind == "chat.message" and .by == "hook-ci-bot" and .data.text == "build 42 failed"
                         and .data.external_id == "evt-1")' >/dev/null || fail "the webhook's message is not in the ledger"
code=$(post "evt-1" '{"from":"ci-bot","text":"build 42 failed"}')
[[ $code == 202 ]] && jq -e '.duplicate == true' "$work/response" >/dev/null || fail "retried delivery: HTTP $code $(cat "$work/response")"
[[ $(events | jq -s '[.[] | select(.kind == "chat.message" and .data.external_id == "evt-1")] | length') == 1 ]] \
    || fail "a retried inbound delivery was stored twice"
pass "signed inbound webhook from ci-bot → chat.message by human actor hook-ci-bot; the retry is stored once"

code=$(post "evt-2" '{"from":"mallory","text":"mallory 4711"}')
[[ $code == 403 ]] || fail "denied sender: HTTP $code"
user_journalctl -u "$unit" -o cat CONCLAVE_CHANNEL=hook | grep -q 'sender "mallory" is not in allowed_users' \
    || fail "no journal line for the denied sender"
if events | grep -q 4711; then fail "the denied sender's text is in the ledger"; fi
pass "a sender outside allowed_users: 403, logged with who and which channel, text not stored"

# --- outbound -------------------------------------------------------------------------------------
echo_reply() { events | jq -r 'select(.kind == "chat.message" and .by == "echo" and .data.text == "echo: build 42 failed") | .id'; }
has_reply() { [[ -n $(echo_reply) ]]; }
wait_for 20 has_reply || fail "the echo actor did not answer"
reply=$(echo_reply)
wait_for 20 received "any(.[]; .valid and .status == 200 and .body.to == \"ci-bot\" and .body.text == \"echo: build 42 failed\"
                           and .delivery == \"$reply:hook-ci-bot\")" \
    || fail "the echo reply did not reach the receiver, signed, with its delivery id"
settled() { events | jq -s -e --arg id "$1" --arg st "$2" 'any(.[]; .kind == "chat.delivery" and .data.event_id == $id and .data.status == $st)' >/dev/null; }
wait_for 10 settled "$reply" succeeded || fail "no succeeded chat.delivery for the reply"
events | jq -s -e --arg id "$reply" 'any(.[]; .kind == "chat.delivery" and .data.event_id == $id and .data.platform_id == "r-1")' \
    >/dev/null || fail "the receiver's id is not recorded as platform_id"
pass "the echo reply is POSTed to the receiver with a valid signature and delivery id; succeeded, platform id recorded"

printf '503\n429:2\n' | as_user tee -a "$work/plan" >/dev/null
id=$(cv send -g g1 --to hook-ci-bot --json "retry me" | jq -r .event_id)
wait_for 30 settled "$id" succeeded || fail "the retried delivery did not succeed"
received "[.[] | select(.delivery == \"$id:hook-ci-bot\") | .status] == [503, 429, 200]" \
    || fail "receiver saw: $(jq -c "select(.delivery == \"$id:hook-ci-bot\") | .status" "$work/received.log" | tr '\n' ' ')"
received "[.[] | select(.delivery == \"$id:hook-ci-bot\") | .time] | .[2] - .[1] >= 1.9" \
    || fail "the retry after 429 did not wait for Retry-After: 2"
[[ $(events | jq -s -r --arg id "$id" '[.[] | select(.kind == "chat.delivery" and .data.event_id == $id) | .data.status] | join(" ")') \
    == "attempted deferred attempted deferred attempted succeeded" ]] || fail "delivery events of the retried message"
pass "503 then 429 (Retry-After: 2): retried with the same delivery id, waiting as told; recorded deferred twice, then succeeded"

printf '400\n' | as_user tee -a "$work/plan" >/dev/null
id=$(cv send -g g1 --to hook-ci-bot --json "refused" | jq -r .event_id)
wait_for 20 settled "$id" failed || fail "a 400 did not fail the delivery"
[[ $(jq -s "[.[] | select(.delivery == \"$id:hook-ci-bot\")] | length" "$work/received.log") == 1 ]] || fail "a 400 was retried"
pass "400: failed at once, not retried"

cv channel doctor hook | tee /dev/stderr | grep -q "^ok    hook (webhook): http://127.0.0.1:$rport/in is reachable" \
    || fail "channel doctor"

# --- kill -9 mid-burst ----------------------------------------------------------------------------
n=40
# A slow receiver (150 ms a request, one at a time) keeps deliveries in flight when the kill comes.
for i in $(seq 1 $n); do echo "delay:0.15"; done | as_user tee -a "$work/plan" >/dev/null
for i in $(seq 1 $n); do cv send -g g1 --to hook-ci-bot "burst $i" >/dev/null; done
some() { received "[.[] | select(.body.text | startswith(\"burst \"))] | length >= 5"; }
wait_for 20 some || fail "the burst does not reach the receiver"
pid=$(status_field '.workers[] | select(.name == "channels") | .pid')
kill -9 "$pid"
unique_ok() { received "[.[] | select(.status == 200 and (.body.text | startswith(\"burst \"))) | .body.text] | unique | length == $n"; }
wait_for 60 unique_ok || fail "not every burst message reached the receiver after the kill"
resent=$(jq -s '[.[] | select(.duplicate and (.body.text | startswith("burst ")))] | length' "$work/received.log")
# The receiver logs a delivery before conclave-channels reads its answer and the supervisor
# records it: pending reaches 0 a moment after the last one arrived.
none_pending() { cv channel list --json | jq -e 'any(.[]; .name == "hook" and .pending == 0)' >/dev/null; }
wait_for 10 none_pending || fail "deliveries still pending"
pass "kill -9 of conclave-channels mid-burst: all $n delivered; $resent resent in doubt, de-duplicated by the receiver"

no_sanitizer_reports

#!/usr/bin/env bash
# The slack channel against a local Slack (tests/fakes/slack.py): the Events API posts signed
# events to the gateway's /webhook/NAME (url_verification answered; a forged signature refused;
# Slack's retry of the same event stored once; bot messages and denied senders not stored; a
# malformed body refused), the echo actor answers with chat.postMessage in the message's
# thread; 429 Retry-After is waited out; a dropped connection is retried; doctor runs auth.test.
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

secret=8f742231b10e8888abcd99yyyzzz85a5
pf_fake sl slack --token xoxb-test-token --signing-secret "$secret" --events-url "http://127.0.0.1:$port/webhook/sl"
as_user mkdir -p "$SANDBOX_HOME/.conclave"
secret_file sl.token xoxb-test-token
secret_file sl.signing "$secret"
secret_file slbad.token xoxb-revoked
pf_service "$port" "
[channels.sl]
kind = \"slack\"
group = \"g1\"
allowed_users = [\"U0ALICE\"]
token_file = \"sl.token\"
signing_secret_file = \"sl.signing\"
api_base = \"http://127.0.0.1:$sl_port/api\"

[channels.slbad]
kind = \"slack\"
group = \"g1\"
allowed_users = [\"U0ALICE\"]
token_file = \"slbad.token\"
signing_secret_file = \"sl.signing\"
api_base = \"http://127.0.0.1:$sl_port/api\""
wait_for 15 state_is sl up || fail "channel sl not up: $(channel_state sl) $(channel_error sl)"
wait_for 10 bash -c "curl -sf http://127.0.0.1:$port/readyz >/dev/null" || fail "gateway not ready"
pass "slack channel up (auth.test)"

sent_count() { fake_get "$sl_port" /_fake/sent | jq --arg t "$1" '[.[] | select(.text == $t)] | length'; }
has_reply() { [[ $(sent_count "$1") -ge 1 ]]; }
inject() { fake_post "$sl_port" /_fake/inject "$1"; }

# --- the request URL is verified -----------------------------------------------------------------
out=$(inject '{"url_verification":true}')
jq -e '.deliveries[0].status == 200 and (.deliveries[0].body | fromjson | .challenge) == .challenge' <<<"$out" >/dev/null \
    || fail "url_verification not answered: $out"
pass "url_verification answered with the challenge"

# --- a human talks to the echo actor ---------------------------------------------------------
out=$(inject '{"text":"hello bot","user":"U0ALICE","channel":"C0GENERAL"}')
[[ $(jq '.deliveries[0].status' <<<"$out") == 200 ]] || fail "event not accepted: $out"
ts=$(jq -r .ts <<<"$out")
wait_for 15 has_reply "echo: hello bot" || fail "no answer on Slack"
fake_get "$sl_port" /_fake/sent | jq -e --arg ts "$ts" '.[] | select(.text == "echo: hello bot" and .channel == "C0GENERAL" and .thread_ts == $ts)' >/dev/null \
    || fail "the answer is not in the message's thread: $(fake_get "$sl_port" /_fake/sent)"
out=$(inject '{"text":"in a thread","user":"U0ALICE","channel":"C0GENERAL","thread_ts":"1700000000.000100"}')
wait_for 15 has_reply "echo: in a thread" || fail "no answer in the thread"
fake_get "$sl_port" /_fake/sent | jq -e '.[] | select(.text == "echo: in a thread" and .thread_ts == "1700000000.000100")' >/dev/null \
    || fail "the answer is not in the existing thread"
pass "a Slack user talks to the echo actor; answers go to the message's thread"

# --- Slack retries, forgeries, bots, denied senders, malformed bodies ---------------------------
out=$(inject '{"text":"twice","user":"U0ALICE","channel":"C0GENERAL","duplicate":true}')
[[ $(jq '[.deliveries[].status] == [200, 200]' <<<"$out") == true ]] || fail "retry not accepted: $out"
out=$(inject '{"text":"forged","user":"U0ALICE","bad_signature":true}')
[[ $(jq '.deliveries[0].status' <<<"$out") == 401 ]] || fail "forged event got $(jq '.deliveries[0].status' <<<"$out")"
out=$(inject '{"text":"from a bot","bot":true}')
[[ $(jq '.deliveries[0].status' <<<"$out") == 200 ]] || fail "bot message not acknowledged"
out=$(inject '{"text":"secret of mallory","user":"U0MALLORY"}')
[[ $(jq '.deliveries[0].status' <<<"$out") == 200 ]] || fail "a denied sender must be acknowledged (Slack would retry): $out"
stamp=$(date +%s); body='{"type":"event_callback","event":{"type":"message",'
sig=v0=$(printf 'v0:%s:%s' "$stamp" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Slack-Request-Timestamp: $stamp" -H "X-Slack-Signature: $sig" \
    -H 'Content-Type: application/json' --data-binary "$body" "http://127.0.0.1:$port/webhook/sl")
[[ $code == 400 ]] || fail "a malformed event got $code"
inject '{"text":"after all that","user":"U0ALICE"}' >/dev/null
wait_for 15 has_reply "echo: after all that" || fail "no answer after the bad requests"
sleep 1
[[ $(sent_count "echo: twice") == 1 ]] || fail "Slack's retry answered $(sent_count "echo: twice") times"
[[ $(human_messages g1 | jq -s '[.[] | select(.data.text == "twice")] | length') == 1 ]] || fail "retry stored twice"
for t in forged "from a bot" "secret of mallory"; do
    ! cv tail -g g1 -n 10000 --json | grep -q "$t" || fail "\"$t\" was stored"
done
user_journalctl -o cat | grep -q 'malformed Slack event' || fail "malformed event not logged"
pass "Slack's retry stored once; forged (401), malformed (400), bot and denied events not stored"

# --- 429 Retry-After and a dropped connection ------------------------------------------------
fake_post "$sl_port" /_fake/fault '{"match":"chat.postMessage","mode":"429","retry_after":2}' >/dev/null
inject '{"text":"rate limited","user":"U0ALICE"}' >/dev/null
wait_for 20 has_reply "echo: rate limited" || fail "no answer after 429"
gap=$(fake_get "$sl_port" /_fake/requests | jq '[.[] | select(.path == "/api/chat.postMessage") | .time] | .[-1] - .[-2]')
jq -en --argjson g "$gap" '$g >= 1.9' >/dev/null || fail "retried ${gap}s after Retry-After: 2"
fake_post "$sl_port" /_fake/fault '{"match":"chat.postMessage","mode":"drop"}' >/dev/null
inject '{"text":"dropped","user":"U0ALICE"}' >/dev/null
wait_for 20 has_reply "echo: dropped" || fail "no answer after a drop"
fake_post "$sl_port" /_fake/fault '{"match":"chat.postMessage","mode":"malformed"}' >/dev/null
inject '{"text":"malformed answer","user":"U0ALICE"}' >/dev/null
wait_for 20 has_reply "echo: malformed answer" || fail "no answer after a malformed reply"
sleep 1
for t in "echo: rate limited" "echo: dropped" "echo: malformed answer"; do
    [[ $(sent_count "$t") == 1 ]] || fail "\"$t\" sent $(sent_count "$t") times"
done
pass "429 Retry-After 2 honoured (${gap}s), dropped connection and malformed answer retried; each delivered once"

# --- live check ----------------------------------------------------------------------------------
cv channel doctor sl >&2 || fail "conclave channel doctor sl failed"
set +e; out=$(cv channel doctor slbad 2>&1); rc=$?; set -e
echo "$out" >&2
[[ $rc == 1 ]] || fail "conclave channel doctor slbad exited $rc, want 1"
grep -q "FAIL" <<<"$out" && grep -A5 "FAIL" <<<"$out" | grep -q "xoxb" || fail "doctor gives no fix for a revoked token"
[[ $(channel_state slbad) == down ]] || fail "a channel with a revoked token is $(channel_state slbad)"
pass "doctor: auth.test ok; a revoked token is down with a concrete fix"

# A clean stop: leaks and errors at exit show up under ASan too.
user_systemctl stop conclave.service || fail "stop"
no_sanitizer_reports

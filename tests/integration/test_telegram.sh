#!/usr/bin/env bash
# The telegram channel against a local Telegram Bot API (tests/fakes/telegram.py), the way a
# user meets it: a human writes to the bot, the echo actor answers in a reply; long polling
# resumes from the persisted offset after a restart of conclave-channels (nothing delivered
# twice, nothing lost while it was down); a duplicate update is stored once; a sender not in
# allowed_users is refused; 429 with retry_after is waited out; a server that goes away mid
# request is retried; malformed JSON degrades the channel without a crash; long answers are
# split at 4096 UTF-16 units; webhook mode through the gateway with its secret token; the
# live check (channel.doctor) gives a fix for a refused token.
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

token=123456:TEST-token
pf_fake tg telegram --token "$token"
pf_fake tgw telegram --token 654321:WEBHOOK-token
pf_fake bad telegram --token 1:other
as_user mkdir -p "$SANDBOX_HOME/.conclave"
secret_file tg.token "$token"
secret_file tgw.token 654321:WEBHOOK-token
secret_file tgw.secret "s3cret_Token-for-webhook"
secret_file bad.token 1:wrong
pf_service "$port" "
[channels.tg]
kind = \"telegram\"
group = \"g1\"
allowed_users = [\"4242\"]
token_file = \"tg.token\"
api_base = \"http://127.0.0.1:$tg_port\"
poll_timeout = \"2s\"

[channels.tgw]
kind = \"telegram\"
group = \"g1\"
allowed_users = [\"4242\"]
mode = \"webhook\"
token_file = \"tgw.token\"
secret_file = \"tgw.secret\"
webhook_url = \"http://127.0.0.1:$port/webhook/tgw\"
api_base = \"http://127.0.0.1:$tgw_port\"

[channels.tgbad]
kind = \"telegram\"
group = \"g1\"
allowed_users = [\"4242\"]
token_file = \"bad.token\"
api_base = \"http://127.0.0.1:$bad_port\""
wait_for 15 state_is tg up || fail "channel tg not up: $(channel_state tg) $(channel_error tg)"
cv channel list | tee -a "$SANDBOX_HOME/list.out" >&2
grep -Eq '^tg +telegram +g1 +up' "$SANDBOX_HOME/list.out" || fail "conclave channel list does not show tg up"
pass "telegram channel up (long polling)"

# replies to the human's messages, as (chat_id, reply_to_message_id, text) lines
sent() { fake_get "$1" /_fake/sent | jq -r '.[] | "\(.chat_id) \(.reply_to_message_id) \(.text)"'; }
sent_count() { fake_get "$1" /_fake/sent | jq --arg t "$2" '[.[] | select(.text == $t)] | length'; }
has_reply() { [[ $(sent_count "$1" "$2") -ge 1 ]]; }

# --- a human talks to the echo actor ---------------------------------------------------------
mid=$(fake_post "$tg_port" /_fake/inject '{"text":"hello bot","from_id":4242,"username":"alice"}' | jq -r .message_id)
wait_for 15 has_reply "$tg_port" "echo: hello bot" || fail "no answer on Telegram: $(sent "$tg_port")"
sent "$tg_port" | grep -qx "4242 $mid echo: hello bot" || fail "the answer is not a reply to message $mid: $(sent "$tg_port")"
human_messages g1 | jq -e 'select(.data.text == "hello bot")' >/dev/null || fail "message not in the ledger"
cv actor list -g g1 --json | jq -e '.[] | select(.kind == "human")' >/dev/null || fail "no human actor bound"
# The human answers the bot's message on Telegram: a reply in the ledger too.
bot_mid=$(fake_get "$tg_port" /_fake/sent | jq -r '.[] | select(.text == "echo: hello bot") | .message_id')
echo_ev=$(cv tail -g g1 -n 10000 --json | jq -r 'select(.kind == "chat.message" and .data.text == "echo: hello bot") | .id')
fake_post "$tg_port" /_fake/inject "{\"text\":\"thanks\",\"from_id\":4242,\"reply_to\":$bot_mid}" >/dev/null
got_thanks() { human_messages g1 | jq -e --arg e "$echo_ev" 'select(.data.text == "thanks" and .data.reply_to == $e)' >/dev/null; }
wait_for 15 got_thanks || fail "a reply on Telegram to the bot's message is not a reply to $echo_ev in the ledger"
pass "a Telegram user talks to the echo actor; the answer is a threaded reply, and a reply to it is a reply in the ledger"

# --- duplicate update, denied sender ------------------------------------------------------------
fake_post "$tg_port" /_fake/inject '{"text":"twice","from_id":4242,"duplicate":true}' >/dev/null
fake_post "$tg_port" /_fake/inject '{"text":"secret of mallory","from_id":999,"username":"mallory"}' >/dev/null
fake_post "$tg_port" /_fake/inject '{"text":"after both","from_id":4242}' >/dev/null
wait_for 15 has_reply "$tg_port" "echo: after both" || fail "no answer after the duplicate"
sleep 1
[[ $(sent_count "$tg_port" "echo: twice") == 1 ]] || fail "duplicate update answered $(sent_count "$tg_port" "echo: twice") times"
[[ $(human_messages g1 | jq -s '[.[] | select(.data.text == "twice")] | length') == 1 ]] || fail "duplicate update stored twice"
! cv tail -g g1 -n 10000 --json | grep -q "secret of mallory" || fail "a denied sender's text was stored"
[[ $(sent_count "$tg_port" "echo: secret of mallory") == 0 ]] || fail "a denied sender got an answer"
user_journalctl -o cat | grep -q '"999" is not in allowed_users' || fail "denied sender not logged"
pass "a duplicate update is stored and answered once; a sender not in allowed_users is refused and logged"

# --- restart of conclave-channels: the offset is persisted ------------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
[[ -n $pid ]] || fail "no conclave-channels process"
before=$(human_messages g1 | wc -l)
kill -STOP "$pid"
fake_post "$tg_port" /_fake/inject '{"text":"while you were away","from_id":4242}' >/dev/null
n_offsets=$(fake_get "$tg_port" /_fake/status | jq '.offsets | length')
kill -9 "$pid"
kill -CONT "$pid" 2>/dev/null || :
wait_for 30 has_reply "$tg_port" "echo: while you were away" || fail "message sent during the restart was lost"
# The first getUpdates of the new process asked from the persisted offset, not from 0.
first_new=$(fake_get "$tg_port" /_fake/status | jq --argjson n "$n_offsets" '.offsets[$n]')
[[ $first_new -gt 0 ]] || fail "after the restart getUpdates started from offset $first_new"
sleep 2
[[ $(human_messages g1 | wc -l) == $((before + 1)) ]] || fail "updates re-delivered after the restart"
[[ $(sent_count "$tg_port" "echo: hello bot") == 1 ]] || fail "an old answer was sent again after the restart"
pass "after kill -9 of conclave-channels polling resumes from the persisted offset $first_new: nothing lost, nothing twice"

# --- 429 with retry_after ----------------------------------------------------------------------
fake_post "$tg_port" /_fake/fault '{"match":"sendMessage","mode":"429","retry_after":3}' >/dev/null
fake_post "$tg_port" /_fake/inject '{"text":"rate limited","from_id":4242}' >/dev/null
wait_for 20 has_reply "$tg_port" "echo: rate limited" || fail "no answer after 429"
gap=$(fake_get "$tg_port" /_fake/requests | jq '[.[] | select(.path | endswith("/sendMessage")) | .time] | .[-1] - .[-2]')
jq -en --argjson g "$gap" '$g >= 2.9' >/dev/null || fail "retried ${gap}s after a 429 with retry_after 3"
[[ $(sent_count "$tg_port" "echo: rate limited") == 1 ]] || fail "answer sent more than once after 429"
pass "429 retry_after 3 honoured (retried after ${gap}s), delivered once"

# --- the server goes away mid-request --------------------------------------------------------
fake_post "$tg_port" /_fake/fault '{"match":"sendMessage","mode":"drop"}' >/dev/null
fake_post "$tg_port" /_fake/inject '{"text":"dropped","from_id":4242}' >/dev/null
wait_for 20 has_reply "$tg_port" "echo: dropped" || fail "no answer after the connection was dropped"
sleep 1
[[ $(sent_count "$tg_port" "echo: dropped") == 1 ]] || fail "answer sent more than once after a drop"
pass "a connection dropped mid-request is retried; delivered once"

# --- malformed JSON ----------------------------------------------------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
fake_post "$tg_port" /_fake/fault '{"match":"getUpdates","mode":"malformed","count":2}' >/dev/null
saw_degraded() { user_journalctl -o cat | grep -q 'getUpdates: malformed answer'; }
wait_for 15 saw_degraded || fail "malformed getUpdates answer not logged"
user_journalctl -o cat -t conclave-channels | grep -q 'CHANNEL_STATE=degraded\|is degraded\|degraded' || fail "channel not degraded"
wait_for 20 state_is tg up || fail "channel did not recover after malformed answers"
[[ $(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1) == "$pid" ]] || fail "conclave-channels restarted (crashed?)"
fake_post "$tg_port" /_fake/inject '{"text":"after malformed","from_id":4242}' >/dev/null
wait_for 15 has_reply "$tg_port" "echo: after malformed" || fail "no answer after recovery"
pass "malformed JSON: logged, channel degraded, recovered, no crash"

# --- a long answer is split at 4096 UTF-16 units -------------------------------------------------
long=$(python3 -c 'print(("ab\U0001F600 " * 1100).strip())')
fake_post "$tg_port" /_fake/inject "$(jq -cn --arg t "$long" '{text: $t, from_id: 4242}')" >/dev/null
parts_ok() {
    fake_get "$tg_port" /_fake/sent | python3 -c '
import json, sys
want = "echo: " + sys.argv[1]
sent = [m["text"] for m in json.load(sys.stdin)]
for i in range(len(sent)):
    for j in range(i + 1, len(sent) + 1):
        if "".join(sent[i:j]) == want and j - i >= 2:
            sys.exit(0)
sys.exit(1)' "$long"
}
wait_for 20 parts_ok || fail "long answer not delivered in parts"
pass "a long answer arrives in parts within Telegram's limit"

# --- webhook mode through the gateway ------------------------------------------------------------
wait_for 15 state_is tgw up || fail "webhook channel not up: $(channel_error tgw)"
[[ $(fake_get "$tgw_port" /_fake/status | jq -r .webhook.url) == "http://127.0.0.1:$port/webhook/tgw" ]] \
    || fail "setWebhook not called with the gateway URL"
fake_post "$tgw_port" /_fake/inject '{"text":"via webhook","from_id":4242,"duplicate":true}' >/dev/null
wait_for 15 has_reply "$tgw_port" "echo: via webhook" || fail "no answer to a webhook update"
sleep 1
[[ $(sent_count "$tgw_port" "echo: via webhook") == 1 ]] || fail "a webhook update delivered twice was answered twice"
[[ $(human_messages g1 | jq -s '[.[] | select(.data.text == "via webhook")] | length') == 1 ]] || fail "webhook duplicate stored twice"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Telegram-Bot-Api-Secret-Token: wrong' -H 'Content-Type: application/json' \
    -d '{"update_id":1,"message":{"message_id":1,"from":{"id":4242},"chat":{"id":4242},"text":"forged"}}' \
    "http://127.0.0.1:$port/webhook/tgw")
[[ $code == 401 ]] || fail "a forged webhook got $code"
pass "webhook mode: registered with the gateway URL, duplicate delivery answered once, forged update refused"

# --- live check ----------------------------------------------------------------------------------
cv channel doctor tg >&2 || fail "conclave channel doctor tg failed"
set +e; out=$(cv channel doctor tgbad 2>&1); rc=$?; set -e
echo "$out" >&2
[[ $rc == 1 ]] || fail "conclave channel doctor tgbad exited $rc, want 1"
grep -q "FAIL" <<<"$out" && grep -A5 "FAIL" <<<"$out" | grep -q "BotFather" || fail "doctor gives no fix for a refused token"
[[ $(channel_state tgbad) == down ]] || fail "a channel with a refused token is $(channel_state tgbad), not down"
pass "doctor: ok for a good token; a refused token is down with a concrete fix"

# A clean stop: leaks and errors at exit show up under ASan too.
user_systemctl stop conclave.service || fail "stop"
no_sanitizer_reports

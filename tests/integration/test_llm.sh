#!/usr/bin/env bash
# llm actors and providers, driven as an operator drives them, against a local server that speaks
# the OpenAI, Anthropic and Ollama wire formats (tests/fakes/fake-llm-provider.py): replies that
# close obligations, usage in the ledger, context from the group, a human asking through a signed
# webhook, every failure mode bounded and visible (system.notify, journal, "degraded"), the
# concurrency limit, the daily budget across a restart, a systemd credential as the API key, and
# `conclave doctor`'s live checks.
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
work=$(mktemp -d /tmp/llm-test.XXXXXX)
fake_log=$work/fake.log
fake_pid=
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_systemctl status "$unit" >&2 || :
        user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :
        tail -n 5 "$fake_log" >&2 2>/dev/null || :
    fi
    [[ -z $fake_pid ]] || kill "$fake_pid" 2>/dev/null || :
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT

# --- the fake provider and the configuration --------------------------------------------------
key=sk-test-$RANDOM$RANDOM
python3 "$here/../fakes/fake-llm-provider.py" --port-file "$work/port" --key "$key" --log "$fake_log" 2>"$work/fake.err" &
fake_pid=$!
wait_for 10 test -s "$work/port" || fail "the fake provider did not start: $(cat "$work/fake.err")"
fp=$(cat "$work/port")

as_user mkdir -p "$home"
as_user bash -c "umask 077 && printf '%s\n' '$key' > '$home/openai.key' && printf '%s\n' '$key' > '$home/anthropic.key'"
as_user bash -c "umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > '$home/hook.secret'"
as_user bash -c "umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > '$home/gateway.token'"
cat <<EOF | as_user tee "$home/config.toml" >/dev/null
[runtime]
ledger_sync = "batch"
[gateway]
port = $port
token_file = "gateway.token"

[provider]
default = "oa"

[providers.oa]
kind = "openai"
base_url = "http://127.0.0.1:$fp/v1"
model = "fake-model"
api_key_file = "openai.key"
timeout = "3s"
retries = 2

# The key of this one comes from a systemd credential (LoadCredential= in a drop-in below).
[providers.an]
kind = "anthropic"
base_url = "http://127.0.0.1:$fp"
model = "fake-model"
api_key_file = "credential:anthropic-key"
timeout = "5s"

[providers.ol]
kind = "ollama"
base_url = "http://127.0.0.1:$fp"
model = "fake-model"
max_tokens = 300
temperature = 0.2

[channels.hooks]
kind = "webhook"
group = "g1"
secret_file = "hook.secret"
allowed_users = ["alice"]
EOF
as_user chmod 600 "$home/config.toml"
cv service install >/dev/null
dropin=$SANDBOX_HOME/.config/systemd/user/$unit.d
as_user mkdir -p "$dropin"
printf '[Service]\nLoadCredential=anthropic-key:%s/anthropic.key\n' "$home" | as_user tee "$dropin/credential.conf" >/dev/null
user_systemctl daemon-reload
user_systemctl start "$unit" || fail "start"
pass "service started with three providers (one keyed by a systemd credential) and a fake provider on port $fp"

token=$(cat "$home/gateway.token")
api() { curl -sS -H "Authorization: Bearer $token" "$@"; }
gw=http://127.0.0.1:$port
events() { cv tail -g g1 -n 10000 --json | jq -s .; }
replies_to() { cv tail -g g1 -n 10000 --json | jq -r --arg id "$1" 'select(.kind == "chat.message" and .data.reply_to == $id) | .id'; }
notify_for() { cv tail -g g1 -n 10000 --json | jq -c --arg id "$1" 'select(.kind == "system.notify" and .data.event_id == $id)'; }
runtime() { cv actor show -g g1 "$1" --json | jq -r .runtime; }
owes() { cv actor show -g g1 "$1" --json | jq '.obligations | length'; }
fake_requests() { jq -s --arg m "$1" '[.[] | select(.model == $m)]' "$fake_log" 2>/dev/null || echo '[]'; }

# --- doctor checks every provider live, through the daemon --------------------------------------
out=$(cv doctor 2>&1) || { echo "$out"; fail "doctor reports errors"; }
echo "$out" | grep provider
for p in oa an ol; do
    grep -E "^ok +provider +\[providers\.$p\].*model fake-model is available.*checked by the running daemon" <<<"$out" >/dev/null \
        || fail "doctor did not check provider $p through the daemon"
done
grep -E "\[providers.an\].*key accepted" <<<"$out" >/dev/null || fail "the credential key was not accepted"
pass "doctor: each provider reachable, key accepted (also the systemd credential), model available"

# --- an llm actor per provider answers, closing the obligation; usage in the ledger ------------------
cv group create g1 --title "LLM test" >/dev/null
cv actor add -g g1 gpt --kind llm --provider default --title "OpenAI-compatible" >/dev/null || fail "add gpt"
cv actor add -g g1 claude --kind llm --provider an --system-prompt "You are Claude, terse." >/dev/null || fail "add claude"
cv actor add -g g1 llama --kind llm --provider ol >/dev/null || fail "add llama"
cv actor add -g g1 alice --kind human --title Alice >/dev/null
cv actor add -g g1 agent --kind llm --title "acts by itself (MCP)" >/dev/null || fail "add an llm actor without provider"
set +e; msg=$(cv actor add -g g1 x --kind llm --provider nope 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q 'no provider "nope"' <<<"$msg" || fail "an unknown provider was accepted: $msg"
set +e; msg=$(cv actor add -g g1 x --kind human --provider oa 2>&1); rc=$?; set -e
[[ $rc == 2 ]] || fail "LLM options on a human actor: exit $rc: $msg"
cv group start g1 >/dev/null
declare -A asked
for a in gpt claude llama; do
    asked[$a]=$(cv send -g g1 --to "$a" --reply-required --json "what is two plus two, $a?" | jq -r .event_id)
done
for a in gpt claude llama; do
    got() { [[ -n $(replies_to "${asked[$1]}") ]]; }
    wait_for 15 got "$a" || fail "$a did not answer"
    [[ $(owes "$a") == 0 ]] || fail "$a still owes a reply"
done
all=$(events)
for a in gpt claude llama; do
    jq -e --arg id "${asked[$a]}" --arg a "$a" '.[] | select(.kind == "chat.message" and .data.reply_to == $id) |
        .by == $a and .data.text == ("echo: operator: what is two plus two, " + $a + "?") and .data.to == ["operator"]' \
        <<<"$all" >/dev/null || fail "$a's reply is not the fake's answer to the operator"
    jq -e --arg id "${asked[$a]}" --arg a "$a" '[.[] | select(.kind == "llm.usage" and .data.event_id == $id)] | length == 1 and
        (.[0] | .by == $a and .data.actor_id == $a and .data.model == "fake-model" and .data.input_tokens > 0 and
         .data.output_tokens > 0 and .data.usage_reported == true and .data.attempts == 1 and (.data.reply_id | length) == 26)' \
        <<<"$all" >/dev/null || fail "no llm.usage for $a's turn"
done
jq -e '[.[] | select(.kind == "llm.usage") | .data.provider] | sort == ["an", "oa", "ol"]' <<<"$all" >/dev/null \
    || fail "usage does not name the providers"
cv inbox -g g1 --actor-id operator --json | jq -e '[.unread[] | select(.by == "gpt" or .by == "claude" or .by == "llama")] | length == 3' \
    >/dev/null || fail "the replies are not in the operator's inbox"
cv inbox -g g1 --actor-id operator
pass "openai, anthropic and ollama actors answered; obligations closed; replies in the inbox; llm.usage recorded"

# What went over the wire, as each API documents it.
reqs=$(jq -s . "$fake_log")
jq -e '[.[] | select(.kind == "openai")][0] | .stream == true and .stream_options.include_usage == true and .max_tokens == 1024 and
    .messages[0].role == "system" and (.messages[0].content | contains("gpt")) and .messages[-1].role == "user" and
    .messages[-1].content == "operator: what is two plus two, gpt?"' <<<"$reqs" >/dev/null || fail "the OpenAI request is not as documented"
jq -e '[.[] | select(.kind == "anthropic")][0] | .stream == true and .anthropic_version == "2023-06-01" and .max_tokens == 1024 and
    .system == "You are Claude, terse." and (.messages | length) == 1 and .messages[0].role == "user"' <<<"$reqs" >/dev/null \
    || fail "the Anthropic request is not as documented"
jq -e '[.[] | select(.kind == "ollama")][0] | .stream == true and .options.num_predict == 300 and .options.temperature == 0.2 and
    .messages[0].role == "system"' <<<"$reqs" >/dev/null || fail "the Ollama request is not as documented"
pass "requests: OpenAI stream + include_usage, Anthropic system/anthropic-version/max_tokens, Ollama options"

# --- context: the earlier exchange goes with the next question -------------------------------------
q2=$(cv send -g g1 --to gpt --reply-required --json "and times three?" | jq -r .event_id)
got_q2() { [[ -n $(replies_to "$q2") ]]; }
wait_for 15 got_q2 || fail "no answer to the follow-up"
jq -s -e '[.[] | select(.kind == "openai")][-1].messages | map(.role) == ["system", "user", "assistant", "user"]' "$fake_log" >/dev/null \
    || fail "the follow-up was sent without the earlier exchange: $(jq -s -c '[.[] | select(.kind == "openai")][-1].messages' "$fake_log")"
jq -s -e '[.[] | select(.kind == "openai")][-1].messages[2].content == "echo: operator: what is two plus two, gpt?"' "$fake_log" >/dev/null \
    || fail "the assistant turn is not the earlier reply"
pass "context: system prompt, earlier question and answer, then the new question"

# --- a human asks through a signed webhook; the answer is in her inbox over the REST API ------------
secret=$(cat "$home/hook.secret")
ts=$(date +%s)
id=delivery-$RANDOM
body='{"text":"hello from the webhook","from":"alice","to":["gpt"],"reply_required":true}'
sig=$(printf '%s.%s.%s' "$ts" "$id" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')
hook=$(curl -sS "$gw/webhook/hooks" -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Delivery: $id" \
    -H "X-Conclave-Signature: sha256=$sig" -H 'Content-Type: application/json' --data-binary "$body")
hid=$(jq -r .event_id <<<"$hook")
[[ ${#hid} == 26 ]] || fail "webhook not accepted: $hook"
got_hook() { [[ -n $(replies_to "$hid") ]]; }
wait_for 15 got_hook || fail "gpt did not answer alice"
# The sender is the human actor bound to alice on the webhook channel (docs/api.md).
api "$gw/api/v1/groups/g1/actors/hooks-alice/inbox" | jq -e --arg id "$hid" \
    '[.unread[] | select(.by == "gpt" and .data.reply_to == $id and .data.text == "echo: hooks-alice: hello from the webhook")] | length == 1' \
    >/dev/null || fail "the answer is not in hooks-alice's inbox: $(api "$gw/api/v1/groups/g1/actors/hooks-alice/inbox")"
[[ $(owes gpt) == 0 ]] || fail "gpt still owes alice"
pass "a human (webhook, actor hooks-alice) asked, the llm actor answered her; her inbox over REST shows it; obligation closed"

# --- failure modes: bounded, notified, journaled, degraded ------------------------------------------
# actor  provider  model            error code        requests the fake sees
cases="
srv     oa  server-error     server_error      3
an-srv  an  server-error     server_error      3
cut     oa  cut              stream_cut        3
an-cut  an  cut              stream_cut        3
ol-cut  ol  cut              stream_cut        3
hang    oa  hang             timeout           1
badjson oa  bad-json         bad_response      1
an-bad  an  bad-json         bad_response      1
ol-bad  ol  bad-json         bad_response      1
toolong oa  too-long         context_too_long  1
an-long an  too-long         context_too_long  1
serr    oa  stream-error     server_error      3
an-serr an  stream-error     server_error      3
rl      oa  rate-limit       rate_limited      3
rllong  an  rate-limit-long  rate_limited      1
nomodel ol  no-such-model    not_found         1
"
declare -A fq
while read -r a p m code n; do
    [[ -n $a ]] || continue
    cv actor add -g g1 "$a" --kind llm --provider "$p" --model "$m" >/dev/null || fail "add $a"
done <<<"$cases"
while read -r a p m code n; do
    [[ -n $a ]] || continue
    fq[$a]=$(cv send -g g1 --to "$a" --reply-required --json "question for $a" | jq -r .event_id)
done <<<"$cases"
while read -r a p m code n; do
    [[ -n $a ]] || continue
    notified() { [[ -n $(notify_for "${fq[$1]}") ]]; }
    wait_for 30 notified "$a" || fail "$a: no system.notify for its failure"
    note=$(notify_for "${fq[$a]}")
    jq -e --arg code "$code" --arg a "$a" '.by == "conclave" and .data.reason == "llm_error" and .data.actor_id == $a and
        .data.error.code == $code and .data.to == ["operator"] and (.data.text | contains("could not answer"))' <<<"$note" >/dev/null \
        || fail "$a: the notify is not a $code llm_error: $note"
    [[ $(runtime "$a") == degraded ]] || fail "$a is $(runtime "$a"), not degraded"
    [[ -z $(replies_to "${fq[$a]}") ]] || fail "$a answered although it failed"
    [[ $(owes "$a") == 1 ]] || fail "$a's obligation should stay open"
    seen() { fake_requests "$2" | jq --arg q "question for $1" '[.[] | select(.messages[-1].content | endswith($q))] | length'; }
    saw_n() { [[ $(seen "$1" "$2") == "$3" ]]; }
    wait_for 5 saw_n "$a" "$m" "$n" || fail "$a: the fake saw $(seen "$a" "$m") requests, want $n"
    echo "  $a ($p/$m): $(jq -r .data.text <<<"$note")"
done <<<"$cases"
journal_says() { user_journalctl -u "$unit" -o cat | grep -q -- "$1"; }
wait_for 5 journal_says "srv could not answer" || fail "no journal line for the failure"
user_journalctl -u "$unit" CONCLAVE_ACTOR=hang -o cat | grep -q "timeout" || fail "the journal line has no CONCLAVE_ACTOR field"
user_journalctl -u "$unit" -t conclave-channels -o cat | grep -q "attempt 1 of 3 failed (rate_limited" || fail "retries not journaled"
cv status | grep -E "^ +srv +degraded +llm oa/server-error, last error: provider oa \(model server-error\): server_error after 3 attempts" >/dev/null \
    || { cv status; fail "status does not show srv degraded with its error"; }
sleep 3
n_before=$(wc -l <"$fake_log")
sleep 4
[[ $(wc -l <"$fake_log") == "$n_before" ]] || fail "something keeps retrying: $(tail -n 3 "$fake_log")"
pass "5xx, 529, cut streams, a server that never answers, invalid JSON, context too long, in-stream errors, 429, unknown model: each a system.notify, a journal line and 'degraded', retried at most 3 times, then quiet"

# --- 429 with Retry-After: waited for, then answered --------------------------------------------------
cv actor add -g g1 patient --kind llm --model rate-limit-once >/dev/null
pq=$(cv send -g g1 --to patient --reply-required --json "worth the wait" | jq -r .event_id)
got_pq() { [[ -n $(replies_to "$pq") ]]; }
wait_for 20 got_pq || fail "patient did not answer after the 429"
times=$(fake_requests rate-limit-once | jq -c '[.[] | select(.messages[-1].content | endswith("worth the wait"))] | map(.t_request)')
jq -e 'length == 2 and (.[1] - .[0]) >= 2000000' <<<"$times" >/dev/null || fail "Retry-After: 2 not honoured: $times"
events | jq -e --arg id "$pq" '.[] | select(.kind == "llm.usage" and .data.event_id == $id) | .data.attempts == 2' >/dev/null \
    || fail "the usage does not say 2 attempts"
[[ $(runtime patient) == ready ]] || fail "patient is $(runtime patient) after succeeding"
pass "429 + Retry-After: 2 → the second attempt came >= 2 s later and succeeded; not degraded"

# --- degraded clears: restart, then success ---------------------------------------------------------
cv actor restart -g g1 badjson >/dev/null
[[ $(runtime badjson) == ready ]] || fail "actor restart did not clear degraded"
pass "actor restart clears 'degraded'"

# --- concurrency: one at a time by default, N when asked ----------------------------------------------
cv actor add -g g1 slow1 --kind llm --model slow >/dev/null
cv actor add -g g1 slow2 --kind llm --provider ol --model slow --concurrency 2 >/dev/null
for i in 1 2 3; do cv send -g g1 --to slow1 --json "one at a time $i" >/dev/null; cv send -g g1 --to slow2 --json "two at a time $i" >/dev/null; done
answered() { [[ $(events | jq --arg a "$1" '[.[] | select(.kind == "chat.message" and .by == $a)] | length') == 3 ]]; }
wait_for 30 answered slow1 || fail "slow1 did not answer all three"
wait_for 30 answered slow2 || fail "slow2 did not answer all three"
c1=$(jq -s '[.[] | select(.model == "slow" and .kind == "openai") | .concurrent] | max' "$fake_log")
c2=$(jq -s '[.[] | select(.model == "slow" and .kind == "ollama") | .concurrent] | max' "$fake_log")
[[ $c1 == 1 && $c2 == 2 ]] || fail "concurrency: slow1 had $c1 at once (want 1), slow2 $c2 (want 2)"
pass "concurrency: 1 turn at a time (the rest waited), 2 with --concurrency 2"

# --- the daily token budget, from the ledger, across a restart ------------------------------------------
cv actor add -g g1 cheap --kind llm --daily-tokens 50 >/dev/null
b1=$(cv send -g g1 --to cheap --reply-required --json "first" | jq -r .event_id)
got_b1() { [[ -n $(replies_to "$b1") ]]; }
wait_for 15 got_b1 || fail "cheap did not answer within its budget"
b2=$(cv send -g g1 --to cheap --reply-required --json "second" | jq -r .event_id)
refused() { notify_for "$1" | jq -e '.data.reason == "llm_budget"' >/dev/null; }
wait_for 15 refused "$b2" || fail "the second message was not refused for the budget"
[[ $(runtime cheap) == exhausted ]] || fail "cheap is $(runtime cheap), not exhausted"
user_systemctl restart "$unit" || fail "restart"
wait_for 15 bash -c "[[ \$(as_user env '$CONCLAVE' actor show -g g1 cheap --json | jq -r .runtime) =~ ^(ready|exhausted)$ ]]" || fail "not back"
b3=$(cv send -g g1 --to cheap --reply-required --json "third, after a restart" | jq -r .event_id)
wait_for 15 refused "$b3" || fail "after a restart the budget was forgotten"
[[ -z $(replies_to "$b2") && -z $(replies_to "$b3") ]] || fail "cheap answered past its budget"
[[ $(cv actor show -g g1 cheap --json | jq .llm.tokens_today) -ge 50 ]] || fail "tokens_today not counted"
[[ $(fake_requests fake-model | jq '[.[] | select(.messages[-1].content | test("second|third"))] | length') == 0 ]] \
    || fail "refused turns reached the provider"
pass "daily budget: answered once, then refused with a notify, also after a restart (usage read back from the ledger)"

# --- status and listings show provider and model -----------------------------------------------------
cv status | tee "$work/status" | grep -E "^ +gpt +ready +llm oa/fake-model" >/dev/null || { cat "$work/status"; fail "status lacks gpt's provider/model"; }
grep -E "^ +claude +ready +llm an/fake-model" "$work/status" >/dev/null || fail "status lacks claude"
cv actor list -g g1 | grep -E "^llama +llm +ready .*ol/fake-model" >/dev/null || { cv actor list -g g1; fail "actor list lacks llama's provider"; }
cv actor show -g g1 gpt | grep -q "provider:  oa (openai), model fake-model" || fail "actor show lacks the provider"
[[ $(cv actor show -g g1 agent --json | jq -r .runtime) == n/a ]] || fail "an llm actor without provider is not left alone"
pass "status, actor list and actor show name provider and model"

# --- a message in flight when the daemon stops is answered after the start ---------------------------
cv actor add -g g1 slower --kind llm --provider an --model slower >/dev/null
fl=$(cv send -g g1 --to slower --reply-required --json "in flight over a restart" | jq -r .event_id)
inflight() { [[ $(cv actor show -g g1 slower --json | jq .llm.in_flight) == 1 ]]; }
wait_for 10 inflight || fail "the turn did not start"
user_systemctl restart "$unit" || fail "restart"
got_fl() { [[ -n $(replies_to "$fl") ]]; }
wait_for 20 got_fl || fail "the message in flight during the restart was never answered"
[[ -z $(notify_for "$fl") ]] || fail "a restart made a failure notify: $(notify_for "$fl")"
pass "a turn cut by a restart is answered after it, without a failure notify"

# --- doctor from outside the daemon: a wrong key, a missing model, nothing listening --------------------
dd=$SANDBOX_HOME/doctor
as_user mkdir -p "$dd"
as_user bash -c "umask 077 && echo sk-wrong > '$dd/wrong.key'"
cat <<EOF | as_user tee "$dd/bad.toml" >/dev/null
[providers.wrongkey]
kind = "openai"
base_url = "http://127.0.0.1:$fp/v1"
model = "fake-model"
api_key_file = "$dd/wrong.key"
[providers.nomodel]
kind = "anthropic"
base_url = "http://127.0.0.1:$fp"
model = "claude-nonexistent"
api_key_file = "$home/anthropic.key"
[providers.down]
kind = "ollama"
base_url = "http://127.0.0.1:1"
model = "llama3"
EOF
set +e; out=$(cv doctor --config "$dd/bad.toml" 2>&1); rc=$?; set -e
echo "$out" | grep provider
[[ $rc == 1 ]] || fail "doctor should fail"
grep -E "^error +provider +\[providers.wrongkey\].*key was refused \(HTTP 401.*Incorrect API key.*checked from here" <<<"$out" >/dev/null || fail "wrong key not reported"
grep -E "^error +provider +\[providers.nomodel\].*key accepted, but model claude-nonexistent is not offered" <<<"$out" >/dev/null || fail "missing model not reported"
grep -E "^error +provider +\[providers.down\].*cannot reach" <<<"$out" >/dev/null || fail "unreachable server not reported"
pass "doctor --config: wrong key, missing model and an unreachable server each reported with its provider"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all llm integration checks passed"

#!/usr/bin/env bash
# llm actors against a peer someone else wrote: @copilotkit/aimock (npm, tests/aimock/), a server
# that streams OpenAI Chat Completions, Anthropic Messages and Ollama chat from fixtures and has
# chaos modes. Each kind answers from the fixture; 429 with Retry-After, dropped connections and
# malformed bodies (aimock's chaos, switched on and off at run time) fail the turn, bounded, with a
# notify, and the actor recovers with the next good answer. The exact wire cases aimock cannot
# make on demand (a cut mid-stream, a server that never answers, error events, usage counts) are
# in test_llm.sh against tests/fakes/fake-llm-provider.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    [[ ${CONCLAVE_SANDBOX_REQUIRE:-} == 1 ]] && { echo "FAIL: node and npm are needed for aimock" >&2; exit 1; }
    echo "SKIP: node and npm are needed for aimock (apt-get install nodejs npm)" >&2
    exit 77
fi
# aimock and its node_modules live in the build tree; `npm ci` installs exactly the locked
# version, again only when the lock file changed.
peer_dir=${abs_top_builddir:-$(cd "$here/../.." && pwd)}/tests/aimock-peer
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    mkdir -p "$peer_dir"
    cp "$here/../aimock/package.json" "$here/../aimock/fixtures.json" "$peer_dir/"
    if [[ ! -d $peer_dir/node_modules ]] || ! cmp -s "$here/../aimock/package-lock.json" "$peer_dir/package-lock.json"; then
        rm -rf "$peer_dir/node_modules"
        cp "$here/../aimock/package-lock.json" "$peer_dir/"
        (cd "$peer_dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "FAIL: npm ci in $peer_dir" >&2; exit 1; }
    fi
    # aimock's engines field asks for Node >= 20.15.
    CONCLAVE_TEST_NODE=$(integration_node20 "${abs_top_builddir:-$(cd "$here/../.." && pwd)}") || exit 1
    export AIMOCK_DIR=$peer_dir CONCLAVE_TEST_NODE
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
home=$SANDBOX_HOME/.conclave
unit=conclave.service
ap=$((20000 + RANDOM % 20000))
aimock_pid=
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :
        tail -n 20 /tmp/aimock.$$ >&2 || :
    fi
    [[ -z $aimock_pid ]] || kill "$aimock_pid" 2>/dev/null || :
    rm -f /tmp/aimock.$$
    exit $rc
}
trap cleanup EXIT

"$CONCLAVE_TEST_NODE" "$AIMOCK_DIR/node_modules/@copilotkit/aimock/dist/cli.js" -p "$ap" -f "$AIMOCK_DIR/fixtures.json" --log-level warn \
    >/tmp/aimock.$$ 2>&1 &
aimock_pid=$!
wait_for 20 curl -sf "http://127.0.0.1:$ap/v1/models" -o /dev/null || fail "aimock did not start: $(cat /tmp/aimock.$$)"
chaos() { curl -sf -X "$1" "http://127.0.0.1:$ap/__aimock/chaos" -H 'Content-Type: application/json' ${2:+-d "$2"} >/dev/null; }

as_user mkdir -p "$home"
as_user tee "$home/config.toml" >/dev/null <<EOF
[runtime]
ledger_sync = "batch"
[gateway]
enabled = false
[providers.oa]
kind = "openai"
base_url = "http://127.0.0.1:$ap/v1"
model = "gpt-4o"
timeout = "5s"
retries = 1
[providers.an]
kind = "anthropic"
base_url = "http://127.0.0.1:$ap"
model = "claude-3-5-sonnet-20241022"
timeout = "5s"
retries = 1
[providers.ol]
kind = "ollama"
base_url = "http://127.0.0.1:$ap"
model = "gpt-4o"
timeout = "5s"
retries = 1
EOF
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"

# aimock lists models for OpenAI and Ollama; it has no GET /v1/models/{id}, which the Anthropic
# check uses, so only those two are expected to pass.
set +e; out=$(cv doctor 2>&1); set -e
echo "$out" | grep provider
grep -E "^ok +provider +\[providers.oa\].*model gpt-4o is available" <<<"$out" >/dev/null || fail "doctor: oa"
grep -E "^ok +provider +\[providers.ol\].*model gpt-4o is available" <<<"$out" >/dev/null || fail "doctor: ol"
pass "doctor checks aimock's model lists (OpenAI, Ollama)"

cv group create g1 >/dev/null
for a in oa an ol; do cv actor add -g g1 "bot-$a" --kind llm --provider "$a" >/dev/null || fail "add bot-$a"; done
cv group start g1 >/dev/null
replies_to() { cv tail -g g1 -n 10000 --json | jq -r --arg id "$1" 'select(.kind == "chat.message" and .data.reply_to == $id) | .data.text'; }
notify_for() { cv tail -g g1 -n 10000 --json | jq -c --arg id "$1" 'select(.kind == "system.notify" and .data.event_id == $id)'; }
runtime() { cv actor show -g g1 "$1" --json | jq -r .runtime; }
ask() { cv send -g g1 --to "$1" --reply-required --json "$2" | jq -r .event_id; }

# --- each kind streams the fixture's answer ---------------------------------------------------------
for a in oa an ol; do
    q=$(ask "bot-$a" "what is the capital of France?")
    answered() { [[ $(replies_to "$1") == "The capital of France is Paris." ]]; }
    wait_for 15 answered "$q" || fail "bot-$a: no fixture answer (got: $(replies_to "$q"))"
    [[ $(cv actor show -g g1 "bot-$a" --json | jq '.obligations | length') == 0 ]] || fail "bot-$a still owes a reply"
    cv tail -g g1 -n 10000 --json | jq -s -e --arg q "$q" 'any(.[]; .kind == "llm.usage" and .data.event_id == $q)' >/dev/null \
        || fail "bot-$a: no llm.usage"
done
pass "OpenAI, Anthropic and Ollama streams from aimock: each actor answered with the fixture, obligation closed, usage recorded"

# --- chaos: 429 with Retry-After, dropped connections, malformed bodies ------------------------------
# actor   chaos                      expected code
cases="
bot-oa {\"rateLimitRate\":1}       rate_limited
bot-an {\"disconnectRate\":1}      unreachable
bot-ol {\"malformedRate\":1}       bad_response
"
while read -r a c code; do
    [[ -n $a ]] || continue
    chaos POST "$c" || fail "cannot set aimock chaos $c"
    start=$(date +%s.%N)
    q=$(ask "$a" "chaos for $a")
    notified() { [[ -n $(notify_for "$1") ]]; }
    wait_for 20 notified "$q" || fail "$a: no notify under chaos $c"
    chaos DELETE
    note=$(notify_for "$q")
    jq -e --arg code "$code" '.data.reason == "llm_error" and .data.error.code == $code' <<<"$note" >/dev/null \
        || fail "$a: want $code, got $note"
    [[ $(runtime "$a") == degraded ]] || fail "$a is $(runtime "$a") after failing"
    if [[ $code == rate_limited ]]; then
        # Two attempts with aimock's Retry-After: 1 between them.
        jq -e '.data.error.attempts == 2' <<<"$note" >/dev/null || fail "$a: not 2 attempts: $note"
        awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { exit !(e - s >= 1.0) }' || fail "$a: Retry-After: 1 not waited for"
    fi
    echo "  $a under $c: $(jq -r .data.text <<<"$note")"
    q2=$(ask "$a" "what is the capital of France?")
    recovered() { [[ $(replies_to "$1") == "The capital of France is Paris." ]]; }
    wait_for 15 recovered "$q2" || fail "$a did not answer after the chaos ended"
    [[ $(runtime "$a") == ready ]] || fail "$a is still $(runtime "$a") after a good answer"
done <<<"$cases"
pass "aimock chaos (429 + Retry-After, dropped connections, malformed JSON): bounded failures with notifies; the next good answer clears 'degraded'"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all llm aimock checks passed"

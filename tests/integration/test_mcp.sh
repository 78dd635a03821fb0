#!/usr/bin/env bash
# `conclave mcp` driven as an MCP host drives it: the official MCP SDK client
# (@modelcontextprotocol/sdk from npm, tests/mcp/client.mjs) spawns `conclave mcp --group G
# --actor-id A` with the SDK's scrubbed environment, negotiates, lists and checks the tools'
# schemas, reads the inbox, sends, replies, acks and reads events; the ledger must then show
# those actions by A and nothing else. Also: an unknown group, a stopped daemon, a daemon
# restarted under a running server, over-long lines, end of input, and usage errors.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [[ ${CONCLAVE_SANDBOX_REQUIRE:-} == 1 ]]; then
        echo "FAIL: node and npm are needed for the MCP SDK client (see .ci/packages)" >&2
        exit 1
    fi
    echo "SKIP: node and npm are needed for the MCP SDK client (apt-get install nodejs npm)" >&2
    exit 77
fi

# The client and its node_modules live in the build tree; `npm ci` installs exactly the locked
# versions, again only when the lock file changed.
client_dir=${abs_top_builddir:-$(cd "$here/../.." && pwd)}/tests/mcp-client
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    mkdir -p "$client_dir"
    cp "$here/../mcp/client.mjs" "$here/../mcp/package.json" "$client_dir/"
    if [[ ! -d $client_dir/node_modules ]] || ! cmp -s "$here/../mcp/package-lock.json" "$client_dir/package-lock.json"; then
        rm -rf "$client_dir/node_modules"
        cp "$here/../mcp/package-lock.json" "$client_dir/"
        (cd "$client_dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "FAIL: npm ci in $client_dir" >&2; exit 1; }
    fi
    export MCP_CLIENT_DIR=$client_dir
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
port=$((20000 + RANDOM % 20000))
home=$SANDBOX_HOME/.conclave
unit=conclave.service
work=$SANDBOX_HOME/mcp-test
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_journalctl -u "$unit" -o short-precise | tail -n 40 >&2 || :; fi; exit $rc' EXIT

as_user mkdir -p "$home" "$work"
printf '[runtime]\nledger_sync = "batch"\n[gateway]\nport = %s\n' "$port" | as_user tee "$home/config.toml" >/dev/null
# The test user reads the client from its own home (the build tree may not be readable to it).
cp -r "${MCP_CLIENT_DIR:?}" "$work/client"
chown -R "$SANDBOX_UID:$SANDBOX_GID" "$work/client"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"

# node client.mjs SCENARIO GROUP ACTOR, as the test user; its stderr (and the server's, which
# the SDK passes through) goes to $work/client.err for the sanitizer check.
client() {
    local scenario=$1
    shift
    as_user env ${EXPECT_SOCKET:+EXPECT_SOCKET=$EXPECT_SOCKET} node "$work/client/client.mjs" "$scenario" "$CONCLAVE" "$@" \
        2> >(tee -a "$work/client.err" >&2)
}
# One raw JSON-RPC line per argument, through `conclave mcp -g g1 --actor-id alice` (stdin then EOF).
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}'

# --- a group with the agent as a member -----------------------------------------------------
cv group create g1 --title "MCP test" >/dev/null || fail "group create"
cv actor add -g g1 alice --kind llm --title "An agent" >/dev/null || fail "actor add alice"
cv actor add -g g1 bob --kind human >/dev/null || fail "actor add bob"
cv group start g1 >/dev/null || fail "group start"
question=$(cv send -g g1 --to alice --reply-required --json "question for the agent" | jq -r .event_id)
heads_up=$(cv send -g g1 --to alice --attention --json "heads up, agent" | jq -r .event_id)
before=$(cv tail -g g1 -n 1 --json | jq .seq)

# --- the SDK client's session ---------------------------------------------------------------
summary=$(client session g1 alice) || fail "the MCP SDK client's session failed"
echo "$summary"
sent=$(jq -r .sent <<<"$summary")
reply=$(jq -r .reply <<<"$summary")
ack=$(jq -r .ack <<<"$summary")
[[ ${#sent} == 26 && ${#reply} == 26 && ${#ack} == 26 ]] || fail "bad summary: $summary"
pass "SDK client: handshake on the latest revision, schemas agree with Ajv, every tool works"

# --- the ledger says the same, and every action is by alice --------------------------------
events=$(cv tail -g g1 -n 200 --json | jq -s .)
event() { jq -e --arg id "$1" ".[] | select(.id == \$id) | $2" <<<"$events" >/dev/null; }
event "$sent" '.kind == "chat.message" and .by == "alice" and .data.to == ["operator"] and .data.reply_required == true and .data.text == "hello from the agent"' \
    || fail "the sent message is not in the ledger as alice's"
event "$reply" '.kind == "chat.message" and .by == "alice" and .data.to == ["operator"] and .data.text == "the agent answers"' \
    || fail "the reply is not in the ledger as alice's"
jq -e --arg id "$reply" --arg q "$question" '.[] | select(.id == $id) | .data.reply_to == $q' <<<"$events" >/dev/null \
    || fail "the reply does not answer the question"
jq -e --arg id "$ack" --arg h "$heads_up" '.[] | select(.id == $id) | .kind == "chat.ack" and .by == "alice" and (.data | tostring | contains($h))' \
    <<<"$events" >/dev/null || fail "the ack is not in the ledger as alice's, for the heads-up"
others=$(jq -c --argjson before "$before" '[.[] | select(.seq > $before and .by != "alice") | {seq, kind, by}]' <<<"$events")
[[ $others == "[]" ]] || fail "the MCP session made events not by alice: $others"
pass "the ledger has the message, the reply and the ack by alice, and nothing by anyone else"

cv inbox -g g1 --actor-id alice --json | jq -e '.obligations == [] and .unread == []' >/dev/null \
    || fail "alice still owes something or has unread messages: $(cv inbox -g g1 --actor-id alice --json)"
cv inbox -g g1 --actor-id operator --json | jq -e --arg s "$sent" --arg r "$reply" \
    '([.unread[].id] | index($s) != null and index($r) != null) and ([.obligations[] | select(.kind == "reply" and .event_id == $s)] | length == 1)' \
    >/dev/null || fail "the operator's inbox lacks alice's message and reply, or the reply obligation"
cv inbox -g g1 --actor-id operator
pass "inboxes: alice owes nothing, the operator has her message (owing a reply) and her answer"

# --- errors: an unknown group ----------------------------------------------------------------
client unknown-group nope alice || fail "unknown group scenario"
pass "unknown group: handshake works, every tool reports 'no group'"

# --- raw stdio: end of input, stdout is the protocol only, long lines, usage ------------------
as_user "$CONCLAVE" mcp -g nope --actor-id alice >"$work/out" 2>"$work/err" \
    < <(printf '%s\n' "$INIT" '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_actors","arguments":{}}}' 'not json' \
        '{"jsonrpc":"2.0","id":3,"method":"no/such"}') || fail "conclave mcp did not exit 0 at end of input"
[[ $(wc -l <"$work/out") == 4 ]] || fail "want 4 replies on stdout: $(cat "$work/out")"
jq -e -s '.[0].result.protocolVersion == "2025-06-18" and .[1].result.isError == true and
          .[2].error.code == -32700 and .[2].id == null and .[3].error.code == -32601 and .[3].id == 3' "$work/out" >/dev/null \
    || fail "unexpected replies: $(cat "$work/out")"
grep -q 'no group "nope"' "$work/err" || fail "no warning about the unknown group on stderr: $(cat "$work/err")"
pass "raw stdio: an older revision agreed, JSON-RPC errors, logs on stderr only, exit 0 at end of input"

{ head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'a'; echo; echo '{"jsonrpc":"2.0","id":9,"method":"ping"}'; } \
    | as_user "$CONCLAVE" mcp -g g1 --actor-id alice >"$work/out" 2>>"$work/err" || fail "conclave mcp failed on a long line"
jq -e -s 'length == 2 and .[0].error.code == -32600 and (.[0].error.message | test("longer than")) and .[1].id == 9 and .[1].result == {}' \
    "$work/out" >/dev/null || fail "a 5 MiB line was not refused cleanly: $(head -c 300 "$work/out")"
pass "a 5 MiB line is refused and skipped; the next message is answered"

set +e
as_user "$CONCLAVE" mcp -g g1 </dev/null >/dev/null 2>&1; rc1=$?
as_user "$CONCLAVE" mcp -g g1 --actor-id 'no spaces' </dev/null >/dev/null 2>&1; rc2=$?
help=$(as_user "$CONCLAVE" mcp --help); rc3=$?
set -e
[[ $rc1 == 2 && $rc2 == 2 && $rc3 == 0 ]] || fail "usage: exit $rc1 $rc2 $rc3, want 2 2 0"
grep -q "read_inbox" <<<"$help" && grep -q -- "--actor-id" <<<"$help" || fail "--help does not list the tools and options"
pass "usage errors exit 2; --help"

# --- a daemon stopped, then started again under a running server --------------------------------
coproc MCP { as_user "$CONCLAVE" mcp -g g1 --actor-id alice 2>>"$work/err"; }
mcp_pid=$MCP_PID
# Sends one line and prints the reply. Bash gives the coprocess's fds to command substitutions
# but not to pipelines, hence $(rpc …) and <<<.
rpc() {
    printf '%s\n' "$1" >&"${MCP[1]}"
    local line
    IFS= read -r -t 20 line <&"${MCP[0]}" || { echo "no reply from conclave mcp to $1" >&2; return 1; }
    printf '%s\n' "$line"
}
jq -e '.result.protocolVersion == "2025-06-18"' <<<"$(rpc "$INIT")" >/dev/null || fail "initialize"
printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/initialized"}' >&"${MCP[1]}"
user_systemctl stop "$unit"
EXPECT_SOCKET=$SANDBOX_RUNTIME_DIR/conclave/control.sock client not-running g1 alice || fail "not-running scenario"
SEND='{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"send_message","arguments":{"text":"after the restart"}}}'
jq -e '.result.isError == true and (.result.content[0].text | test("not running"))' <<<"$(rpc "$SEND")" >/dev/null \
    || fail "a call with the daemon stopped should report it"
user_systemctl start "$unit" || fail "restart"
jq -e '.result.isError == false and (.result.structuredContent.seq | type == "number")' <<<"$(rpc "$SEND")" >/dev/null \
    || fail "the running server did not reach the restarted daemon"
to_mcp=${MCP[1]}
exec {to_mcp}>&-
wait "$mcp_pid" || fail "conclave mcp did not exit 0 when its input closed"
cv tail -g g1 -n 1 --json | jq -e '.by == "alice" and .data.text == "after the restart"' >/dev/null \
    || fail "the message sent after the restart is not alice's last event"
pass "daemon stopped: tools say so and name the service's socket; a restarted daemon is found again"

user_systemctl stop "$unit"
no_sanitizer_reports "$work/client.err" "$work/err"
echo "all MCP integration checks passed"

#!/usr/bin/env bash
# The web UI in real headless Chromium (Debian's chromium, driven by playwright-core from npm)
# against the installed suite with a gateway token: log in, open a group, send and see it live,
# see a CLI message live, reply from the ledger and from an inbox, ack, mark read, survive a
# kill -9 of the gateway, fit a 360 px phone, log out. Then the ledger is checked with the CLI.
# Screenshots go to $CONCLAVE_TEST_ARTIFACTS (default: tests/webui/artifacts in the build dir).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble

builddir=${abs_top_builddir:-$(cd "$here/../.." && pwd)}
webui_dir=$builddir/tests/webui
chromium=${CHROMIUM:-/usr/bin/chromium}
# playwright-core needs Node.js >= 20 (its engines field): integration_node20 (lib.sh).

if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    # What the browser test needs, before taking the sandbox: a missing browser is a loud SKIP
    # on a developer's machine and an error where the sandbox is required (CI).
    missing=()
    [[ -x $chromium ]] || missing+=("chromium ($chromium)")
    command -v node >/dev/null || missing+=(node)
    command -v npm >/dev/null || missing+=(npm)
    if ((${#missing[@]})); then
        echo "SKIP: the web UI test needs ${missing[*]} (see .ci/packages)" >&2
        [[ "${CONCLAVE_SANDBOX_REQUIRE:-}" == 1 ]] && exit 99
        exit 77
    fi
    # node_modules lives in the build tree (the source tree may be read-only): the script and
    # its lock file are copied there and `npm ci` runs when they changed.
    mkdir -p "$webui_dir"
    for f in package.json package-lock.json ui-test.mjs; do
        cmp -s "$here/../webui/$f" "$webui_dir/$f" || cp "$here/../webui/$f" "$webui_dir/$f"
    done
    if [[ ! -d $webui_dir/node_modules/playwright-core ||
          $webui_dir/package-lock.json -nt $webui_dir/node_modules/.package-lock.json ]]; then
        (cd "$webui_dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "FAIL: npm ci in $webui_dir" >&2; exit 1; }
    fi
    node=$(integration_node20 "$builddir") || exit 1
    export CONCLAVE_TEST_NODE=$node
    echo "web UI test: $node $("$node" --version), $("$chromium" --version 2>/dev/null)"
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
port=$((20000 + RANDOM % 20000))
home=$SANDBOX_HOME/.conclave
unit=conclave.service
artifacts=${CONCLAVE_TEST_ARTIFACTS:-$webui_dir/artifacts}
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :; fi; exit $rc' EXIT

as_user mkdir -p "$home"
token_file=$home/gateway-token
# 32 random bytes as hex: what an operator would put there.
as_user bash -c "umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > '$token_file'"
[[ $(stat -c %a "$token_file") == 600 ]] || fail "token file is not 0600"
printf '[runtime]\nledger_sync = "batch"\n[gateway]\nport = %s\ntoken_file = "%s"\n' "$port" "$token_file" \
    | as_user tee "$home/config.toml" >/dev/null
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
url=http://127.0.0.1:$port
ready() { curl -sf "$url/readyz" >/dev/null; }
wait_for 15 ready || fail "gateway not ready at $url"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$url/api/v1/groups") == 401 ]] || fail "the API answers without the token"
pass "service started; the gateway wants the token from $token_file"

cv group create g1 --title "Web UI" >/dev/null || fail "group create"
cv actor add -g g1 alice --kind human --title "Alice" >/dev/null || fail "actor add"
cv group start g1 >/dev/null || fail "group start"

# The browser runs as root (hence --no-sandbox for Chromium); the "other path" is the CLI as
# the test user, and the restart is a kill -9 of the gateway, which the supervisor restarts.
rm -rf "$artifacts"
mkdir -p "$artifacts"
export CONCLAVE_UI_SEND_CMD='as_user env CONCLAVE_LOG_TARGET=stderr "$CONCLAVE" send -g g1 --to alice --attention --json "$1"'
export CONCLAVE_UI_RESTART_CMD='kill -9 "$(as_user "$CONCLAVE" status --json | jq -r ".workers[] | select(.name == \"gateway\") | .pid")"'
export CHROMIUM=$chromium
timeout 300 "$CONCLAVE_TEST_NODE" "$webui_dir/ui-test.mjs" --url "$url/" --token-file "$token_file" --group g1 --actor alice \
    --artifacts "$artifacts" || fail "the browser test failed (screenshots in $artifacts)"
ls "$artifacts"/*.png >/dev/null || fail "no screenshots in $artifacts"
pass "Chromium drove the UI; screenshots in $artifacts"

# --- the ledger says what the browser did -------------------------------------------------
result=$artifacts/result.json
all=$(cv tail -g g1 -n 10000 --json | jq -s .)
event() { jq -e --arg id "$(jq -r ".$1" "$result")" ".[] | select(.id == \$id) | $2" <<<"$all" >/dev/null; }
event browser_message '.kind == "chat.message" and .by == "operator" and .data.to == ["alice"] and .data.reply_required == true and (.data.text | test("^hello <b>alice</b> from the browser "))' \
    || fail "the browser's message is not in the ledger as sent"
event cli_message '.kind == "chat.message" and .data.priority == "attention"' || fail "the CLI's message is not in the ledger"
browser_id=$(jq -r .browser_message "$result")
jq -e --arg id "$(jq -r .ledger_reply "$result")" --arg b "$browser_id" '.[] | select(.id == $id) | .by == "operator" and .data.reply_to == $b' <<<"$all" >/dev/null \
    || fail "the reply from the ledger view is not a reply to the browser's message"
jq -e --arg id "$(jq -r .inbox_reply "$result")" --arg b "$browser_id" '.[] | select(.id == $id) | .by == "alice" and .data.reply_to == $b' <<<"$all" >/dev/null \
    || fail "the reply from alice's inbox is not by alice to the browser's message"
jq -e --arg e "$(jq -r .cli_message "$result")" 'map(select(.kind == "chat.ack" and .by == "alice" and .data.event_id == $e)) | length == 1' <<<"$all" >/dev/null \
    || fail "no ack by alice of the CLI's message"
jq -e 'map(select(.kind == "chat.message" and (.data.text | startswith("sent while the gateway was down")))) | length == 1' <<<"$all" >/dev/null \
    || fail "the message sent while the gateway was down is not in the ledger once"
# Everything the browser answered is closed; only the ack of the message sent (with --attention)
# while the gateway was down remains, as it should.
during=$(jq -r 'map(select(.kind == "chat.message" and (.data.text | startswith("sent while the gateway was down")))) | .[0].id' <<<"$all")
cv inbox -g g1 --actor-id alice --json | jq -e --arg d "$during" '[.obligations[] | select(.event_id != $d)] | length == 0' >/dev/null \
    || fail "alice still owes something the browser answered"
cv inbox -g g1 --actor-id alice --json | jq -e --arg d "$during" '[.unread[] | select(.id != $d)] | length == 0' >/dev/null \
    || fail "alice has unread messages after mark read (other than the one sent after it)"
[[ $(status_field '.workers[] | select(.name == "gateway") | .restarts') -ge 1 ]] || fail "the gateway was not restarted"
pass "conclave tail shows the browser's message, both replies, the ack; alice owes nothing"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all web UI integration checks passed"

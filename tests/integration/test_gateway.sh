#!/usr/bin/env bash
# The HTTP gateway driven with curl, as a client would, against the installed suite in the real
# user manager: every endpoint of docs/api.md, every way authentication fails and where the token
# comes from (token_file, $CONCLAVE_WEB_TOKEN, systemd credentials), the failed-auth limiter, each
# limit with its JSON error (413, 429 + Retry-After, 400, 404, 405, 503 for a stopped supervisor
# and over max_connections), slow clients cut off, signed webhooks (good, bad, missing, replayed,
# redelivered, not allowed), the event stream resumed across a kill -9 of the gateway with no
# event missed or repeated, the request log in the journal, the refusal to listen publicly
# without a token and allow_public_bind, and socket activation.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
for tool in curl jq openssl python3 socat systemd-socket-activate; do
    command -v "$tool" >/dev/null || fail "$tool is needed (see .ci/packages)"
done
port=$((20000 + RANDOM % 20000))
home=$SANDBOX_HOME/.conclave
unit=conclave.service
url=http://127.0.0.1:$port
gateway_bin=$CONCLAVE_PREFIX/libexec/conclave/conclave-gateway
tmp=$(mktemp -d)
chmod 755 "$tmp"
install -d -o "$SANDBOX_UID" "$tmp/user" # what processes run as the test user write
cleanup() {
    local rc=$? p f
    # Only processes this script started: its running jobs, and the activated gateways (their
    # pid files; the gateway is not this shell's child), if those pids are still gateways.
    for p in $(jobs -p); do kill "$p" 2>/dev/null || :; done
    for f in "$tmp"/user/*.pid; do
        [[ -s $f ]] || continue
        p=$(cat "$f")
        case $(cat "/proc/$p/comm" 2>/dev/null) in conclave-gatewa* | systemd-socket*) kill "$p" 2>/dev/null || : ;; esac
    done
    if [[ $rc -ne 0 ]]; then
        user_systemctl status "$unit" >&2 || :
        user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

# --- helpers ----------------------------------------------------------------------------------
# call METHOD PATH [CURL ARGS...]: sets code, body, headers (CR stripped).
call() {
    local method=$1 path=$2
    shift 2
    code=$(curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$@" "$url$path" 2>"$tmp/curl.err") || code=000
    body=$(cat "$tmp/body" 2>/dev/null || :)
    headers=$(tr -d '\r' <"$tmp/headers" 2>/dev/null || :)
}
# authed METHOD PATH [CURL ARGS...]: call with the token.
authed() { call "$1" "$2" -H "Authorization: Bearer $token" "${@:3}"; }
# want STATUS ERROR_CODE|"" WHAT: the last answer had this status (and this JSON error).
want() {
    [[ $code == "$1" ]] || fail "$3: HTTP $code, want $1: $body $(cat "$tmp/curl.err" 2>/dev/null)"
    if [[ -n $2 ]]; then
        jq -e --arg c "$2" '.error.code == $c and (.error.message | type == "string" and length > 0)' <<<"$body" >/dev/null \
            || fail "$3: not a JSON error \"$2\": $body"
        grep -qi '^content-type: application/json' <<<"$headers" || fail "$3: error without Content-Type: application/json"
    fi
}
header() { grep -i "^$1:" <<<"$headers" | head -n 1 | cut -d' ' -f2-; }
journal() { user_journalctl -u "$unit" "$@"; }
# Not grep -q after a pipe: it stops reading at the first match, and under pipefail the writer's
# SIGPIPE would fail the pipeline (a found line reported as missing, or a missing one as found).
journal_says() { [[ $(journal -o cat | grep -cF -- "$1") -gt 0 ]]; }
# in_journal TEXT: TEXT appears anywhere in the user's journal, in any field.
in_journal() { [[ $(user_journalctl -o json | grep -cF -- "$1") -gt 0 ]]; }
seq_of() { cv tail -g "$1" -n 1 --json | jq -r .seq; }
# ledger_has EVENT_ID [JQ ARGS...] FILTER: g1's event EVENT_ID exists and FILTER is true of it.
ledger_has() {
    local id=$1
    shift
    cv tail -g g1 -n 10000 --json | jq -e -s --arg id "$id" "${@:1:$#-1}" "any(.[]; .id == \$id and (${!#}))" >/dev/null
}
gateway_pid() { cv status --json | jq -r '.workers[] | select(.name == "gateway") | .pid'; }
ready() { curl -sf "$url/readyz" >/dev/null; }
# sign TS DELIVERY BODY [SECRET]: the generic webhook signature, as docs/api.md computes it.
sign() {
    printf '%s.%s.%s' "$1" "$2" "$3" | openssl dgst -sha256 -hmac "${4:-$hook_secret}" | sed 's/^.*= //'
}
# hook DELIVERY BODY [TS] [SIGNATURE]: POST /webhook/hooks signed (or with the given signature).
hook() {
    local id=$1 data=$2 ts=${3:-$(date +%s)}
    local sig=${4:-sha256=$(sign "$ts" "$id" "$data")}
    call POST /webhook/hooks -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Delivery: $id" \
        -H "X-Conclave-Signature: $sig" -H 'Content-Type: application/json' --data-binary "$data"
}
restart_service() {
    user_systemctl reset-failed "$unit" 2>/dev/null || :
    user_systemctl restart "$unit" || fail "restart $unit"
    wait_for 15 ready || fail "gateway not ready after restart"
}
write_config() { # extra [gateway] lines as arguments (rate_limit = 100000, max_body = "64K" unless given)
    local rate='rate_limit = 100000' body='max_body = "64K"' line
    for line in "$@"; do
        [[ $line == rate_limit* ]] && rate=
        [[ $line == max_body* ]] && body=
    done
    {
        printf '[runtime]\nledger_sync = "batch"\nrestart_burst = 20\n'
        printf '[gateway]\nport = %s\n%s\n%s\n' "$port" "$body" "$rate"
        printf '%s\n' "$@"
        printf '[channels.hooks]\nkind = "webhook"\ngroup = "g1"\nsecret_file = "hook.secret"\nallowed_users = ["ci-bot"]\n'
        printf '[channels.nosecret]\nkind = "webhook"\ngroup = "g1"\nallowed_users = ["*"]\n'
    } | as_user tee "$home/config.toml" >/dev/null
}
reload_config() {
    write_config "$@"
    user_systemctl reload "$unit" || fail "reload"
    wait_for 10 ready || fail "gateway not ready after reload"
}

# --- setup: a token file, a webhook channel, a watchdog slow enough for SIGSTOP -------------------
as_user mkdir -p "$home" "$SANDBOX_HOME/bin" "$SANDBOX_HOME/.config/systemd/user/$unit.d"
token_file=$home/web.token
as_user bash -c "umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > '$token_file'"
token=$(cat "$token_file")
hook_secret=whsec-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
as_user bash -c "umask 077 && printf '%s\n' '$hook_secret' > '$home/hook.secret'"
write_config "token_file = \"$token_file\""
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
# The supervisor is SIGSTOPped below for longer than the unit's 10 s watchdog.
printf '[Service]\nWatchdogSec=60s\n' | as_user tee "$SANDBOX_HOME/.config/systemd/user/$unit.d/watchdog.conf" >/dev/null
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
wait_for 15 ready || fail "gateway not ready at $url"
pass "service started with [gateway] token_file"

# --- health ------------------------------------------------------------------------------------
call GET /healthz
want 200 "" "/healthz"
jq -e '.status == "ok" and .program == "conclave-gateway" and (.pid | type == "number") and (.uptime_usec | type == "number")' <<<"$body" >/dev/null \
    || fail "/healthz body: $body"
[[ $(curl -s -o /dev/null -w '%{http_code}' --head "$url/healthz") == 200 ]] || fail "HEAD /healthz"
call GET /readyz
want 200 "" "/readyz"
jq -e '.status == "ready" and .supervisor == true' <<<"$body" >/dev/null || fail "/readyz body: $body"
call POST /healthz
want 405 method_not_allowed "POST /healthz"
[[ $(header Allow) == "GET, HEAD" ]] || fail "405 without Allow: $headers"
call GET /
want 200 "" "the web UI's page"
grep -qi '^content-type: text/html' <<<"$headers" || fail "/ is not text/html"
call GET /ui/app.js
want 200 "" "/ui/app.js"
pass "/healthz, HEAD, /readyz, 405 with Allow, the web UI's files without a token"

# --- authentication failures ---------------------------------------------------------------------
call GET /api/v1/groups
want 401 unauthorized "no Authorization header"
[[ $(header WWW-Authenticate) == 'Bearer realm="conclave"' ]] || fail "401 without WWW-Authenticate: $headers"
wrong=wrong-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
call GET /api/v1/groups -H "Authorization: Bearer $wrong"
want 401 unauthorized "a wrong token"
grep -q 'error="invalid_token"' <<<"$(header WWW-Authenticate)" || fail "a wrong token: no error=\"invalid_token\""
for h in "Basic dXNlcjpwYXNzd29yZA==" "Bearer" "Bearer " "Bearer ${token}x" "Bearer ${token:1}" "Token $token" \
         "Bearer $(head -c 2000 /dev/zero | tr '\0' a)" "Bearer$token"; do
    call GET /api/v1/groups -H "Authorization: $h"
    want 401 unauthorized "malformed header '${h:0:40}…'"
done
call GET /api/v1/groups -H "Authorization: bearer   $token  "
want 200 "" "the scheme is case-insensitive, spaces around the token are allowed"
call GET /api/v1/status -H "Authorization: Bearer $token"
want 200 "" "GET /api/v1/status"
jq -e '.workers | length >= 1' <<<"$body" >/dev/null || fail "status: $body"
pass "401 for a missing, wrong or malformed Authorization header; the token works"

# The failed-auth limiter, from another loopback address so this shell's address stays usable.
for i in $(seq 1 10); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 -H "Authorization: Bearer $wrong$i" "$url/api/v1/groups")
    [[ $code == 401 ]] || fail "wrong token $i from 127.0.0.2: $code"
done
call GET /api/v1/groups --interface 127.0.0.2 -H "Authorization: Bearer $wrong"
want 429 rate_limited "the 11th wrong token in a minute"
[[ $(header Retry-After) =~ ^[1-9][0-9]*$ ]] || fail "429 without Retry-After: $headers"
call GET /api/v1/groups --interface 127.0.0.2 -H "Authorization: Bearer $token"
want 429 rate_limited "the right token from an address that is refused"
authed GET /api/v1/groups
want 200 "" "another address is not refused"
journal_says "authentication failed: wrong token from 127.0.0.2" || fail "failed authentications not logged"
pass "after 10 wrong tokens the address gets 429 + Retry-After; others are served"

# --- groups and actors ----------------------------------------------------------------------------
authed GET /api/v1/groups
want 200 "" "list groups"
[[ $body == "[]"* ]] || fail "groups at first: $body"
authed POST /api/v1/groups -d '{"id":"g1","title":"Gateway test"}'
want 201 "" "create g1"
jq -e '.id == "g1" and .title == "Gateway test" and .state == "idle"' <<<"$body" >/dev/null || fail "create: $body"
authed POST /api/v1/groups -d '{"id":"g1"}'
want 409 exists "create g1 twice"
authed POST /api/v1/groups -d '{"title":"no id"}'
want 400 bad_request "create without an id"
authed POST /api/v1/groups -d '{"id":"bad id!"}'
want 400 bad_request "create with an invalid id"
authed POST /api/v1/groups -d '{"id":'
want 400 bad_request "malformed JSON"
authed POST /api/v1/groups -d '["g9"]'
want 400 bad_request "a JSON array body"
authed POST /api/v1/groups -d '{"id":"g9"} {"id":"g10"}'
want 400 bad_request "two JSON objects"
authed GET /api/v1/groups
jq -e 'map(.id) == ["g1"]' <<<"$body" >/dev/null || fail "list after create: $body"
authed GET /api/v1/groups/g1
want 200 "" "show g1"
jq -e '.id == "g1" and (.actors | type == "array")' <<<"$body" >/dev/null || fail "show: $body"
authed GET /api/v1/groups/nope
want 404 not_found "show an unknown group"
for action in start pause resume stop start; do
    authed POST "/api/v1/groups/g1/$action"
    want 200 "" "group $action"
done
jq -e '.state == "active"' <<<"$body" >/dev/null || fail "g1 not active: $body"
authed POST /api/v1/groups/nope/start
want 404 not_found "start an unknown group"
authed GET /api/v1/groups/g1/start
want 405 method_not_allowed "GET on an action"
[[ $(header Allow) == POST ]] || fail "405 Allow: $headers"

cv actor add -g g1 echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" >/dev/null || fail "actor add echo"
cv actor add -g g1 alice --kind human --title Alice >/dev/null || fail "actor add alice"
cv actor add -g g1 ci-bot --kind human >/dev/null || fail "actor add ci-bot"
cv actor start -g g1 echo >/dev/null || fail "actor start echo"
authed GET /api/v1/groups/g1/actors
want 200 "" "list actors"
jq -e 'map(.id) | index("echo") != null and index("alice") != null' <<<"$body" >/dev/null || fail "actors: $body"
authed GET /api/v1/groups/g1/actors/alice
want 200 "" "show alice"
jq -e '.id == "alice" and (.obligations | type == "array")' <<<"$body" >/dev/null || fail "show alice: $body"
authed GET /api/v1/groups/g1/actors/nobody
want 404 not_found "show an unknown actor"
echo_running() { [[ $(cv actor show -g g1 echo --json | jq -r .runtime) == running ]]; }
wait_for 10 echo_running || fail "echo not running"
before=$(cv actor show -g g1 echo --json | jq .pid)
authed POST /api/v1/groups/g1/actors/echo/restart
want 200 "" "restart echo"
restarted() { [[ $(cv actor show -g g1 echo --json | jq .pid) != "$before" ]] && echo_running; }
wait_for 10 restarted || fail "echo was not restarted"
pass "groups list/show/create/start/stop/pause/resume, actors list/show/restart; 400/404/405/409 as JSON"

# --- messages, replies, inbox, ack ------------------------------------------------------------------
authed POST /api/v1/groups/g1/messages -d '{"text":"ship it?","to":["alice"],"reply_required":true}'
want 201 "" "send"
jq -e '(.event_id | length == 26) and (.seq | type == "number") and .group == "g1"' <<<"$body" >/dev/null || fail "send: $body"
ask=$(jq -r .event_id <<<"$body")
ask_seq=$(jq -r .seq <<<"$body")
ledger_has "$ask" '.data.text == "ship it?" and .by == "operator"' \
    || fail "the sent message is not in the ledger"
authed POST /api/v1/groups/g1/messages -d '{"text":"x","to":["nobody"]}'
want 404 not_found "send to an unknown actor"
authed POST /api/v1/groups/g1/messages -d '{"to":["alice"]}'
want 400 bad_request "send without text"
authed POST /api/v1/groups/nope/messages -d '{"text":"x"}'
want 404 not_found "send to an unknown group"
authed GET /api/v1/groups/g1/actors/alice/inbox
want 200 "" "alice's inbox"
jq -e --arg id "$ask" '(.unread | map(.id) | index($id) != null) and (.obligations | map(select(.event_id == $id and .kind == "reply")) | length == 1)' <<<"$body" >/dev/null \
    || fail "inbox: $body"
authed POST "/api/v1/groups/g1/messages/$ask/reply" -d '{"text":"yes","by":"alice"}'
want 201 "" "reply by event id"
authed POST "/api/v1/groups/g1/messages/$ask_seq/reply" -d '{"text":"and by seq"}'
want 201 "" "reply by seq"
authed POST /api/v1/groups/g1/messages/01ZZZZZZZZZZZZZZZZZZZZZZZZ/reply -d '{"text":"x"}'
want 404 not_found "reply to an unknown event"
authed GET /api/v1/groups/g1/actors/alice
jq -e '.obligations | length == 0' <<<"$body" >/dev/null || fail "alice still owes a reply: $body"
authed POST /api/v1/groups/g1/messages -d '{"text":"look","to":["alice"],"attention":true}'
want 201 "" "send with attention"
att=$(jq -r .event_id <<<"$body")
authed POST /api/v1/groups/g1/actors/alice/ack -d "{\"event\":\"$att\"}"
want 201 "" "ack"
authed POST /api/v1/groups/g1/actors/alice/ack -d "{\"event\":\"$att\"}"
want 409 not_owed "a second ack"
authed POST /api/v1/groups/g1/actors/alice/inbox/read
want 200 "" "mark read"
authed GET /api/v1/groups/g1/actors/alice/inbox
jq -e '.unread | length == 0' <<<"$body" >/dev/null || fail "unread after mark read: $body"
authed GET '/api/v1/groups/g1/actors/alice/inbox?limit=abc'
want 400 bad_request "inbox ?limit=abc"
pass "send 201 (durable, in the ledger), reply by id and seq, inbox, ack, mark read"

# --- events ----------------------------------------------------------------------------------------
last=$(seq_of g1)
authed GET '/api/v1/groups/g1/events?after=0&limit=3'
want 200 "" "events page"
jq -e --argjson last "$last" '[.events[].seq] == [1,2,3] and .next_after_seq == 3 and .more == true and .last_seq == $last' <<<"$body" >/dev/null \
    || fail "events page: $body"
authed GET "/api/v1/groups/g1/events?after=$((last - 2))"
jq -e --argjson last "$last" '[.events[].seq] == [$last - 1, $last] and .more == false' <<<"$body" >/dev/null || fail "last page: $body"
for q in 'after=-1' 'after=abc' 'limit=0' 'limit=1001' 'after=99999999999999999999'; do
    authed GET "/api/v1/groups/g1/events?$q"
    want 400 bad_request "events ?$q"
done
authed GET /api/v1/groups/nope/events
want 404 not_found "events of an unknown group"
journal CONCLAVE_HTTP_PATH=/api/v1/groups/g1/events -o json | jq -e -s 'length >= 2' >/dev/null || fail "events requests not logged"
! in_journal 'limit=3' || fail "a query string reached the journal"
pass "events ?after&limit pages; bad arguments 400; query strings not logged"

# --- 404, 405, 413, malformed requests ---------------------------------------------------------------
for p in /api/v1/nothing /api/v2/groups /api/v1/groups/g1/unknown /api/v1/groups/bad%20id /webhook /x/../api/v1/groups \
         /api/v1//groups /api/v1/groups/ "/api/v1/groups/$(head -c 80 /dev/zero | tr '\0' a)"; do
    authed GET "$p" --path-as-is
    want 404 not_found "GET $p"
done
authed DELETE /api/v1/groups/g1
want 405 method_not_allowed "DELETE a group"
big=$tmp/big
head -c $((65 * 1024)) /dev/zero | tr '\0' a >"$big"
authed POST /api/v1/groups/g1/messages --data-binary "@$big"
want 413 too_large "a body over max_body (Content-Length)"
authed POST /api/v1/groups/g1/messages -H 'Transfer-Encoding: chunked' --data-binary "@$big"
want 413 too_large "a chunked body over max_body"
call POST /api/v1/groups/g1/messages --data-binary "@$big"
want 401 unauthorized "a big body without a token is refused before it is read"
authed POST /api/v1/groups/g1/messages -d '{"text":"still fine after 413s"}'
want 201 "" "a normal request after 413s"
# libmicrohttpd answers requests it cannot parse itself (400, 505); no answer is a success.
for raw in 'GET /healthz HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n' 'GET /healthz HTTP/7.0\r\nHost: x\r\n\r\n' \
           'GET /api/v1/groups HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'; do
    status=$(printf "$raw" | timeout 5 socat -t 3 - "TCP:127.0.0.1:$port" | head -n 1 | tr -d '\r' || :)
    [[ $status =~ ^HTTP/1\.[01]\ (400|505) ]] || fail "malformed request '$raw' answered '$status'"
done
authed GET /api/v1/groups -H "X-Big: $(head -c 6000 /dev/zero | tr '\0' a)"
want 200 "" "a 6 KB request head"
call GET /healthz -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)"
[[ $code == 431 ]] || fail "a 9 KB request head: $code, want 431"
call GET /healthz
want 200 "" "/healthz after malformed requests"
pass "404 and 405 as JSON; 413 for Content-Length and chunked bodies; 400/505/431 for unparseable requests"

# --- the per-client rate limit ------------------------------------------------------------------------
# A body within max_body but larger than one call to the supervisor can carry: 413, not 503.
reload_config "token_file = \"$token_file\"" 'max_body = "1M"'
python3 -c 'import json; print(json.dumps({"text": "a" * 300000}), end="")' >"$tmp/300k"
authed POST /api/v1/groups/g1/messages --data-binary "@$tmp/300k"
want 413 too_large "a 300 KB body with max_body = 1M"
python3 -c 'import json; print(json.dumps({"text": "a" * 70000}), end="")' >"$tmp/70k"
authed POST /api/v1/groups/g1/messages --data-binary "@$tmp/70k"
want 400 bad_request "a 70 KB message text"
# 6 a minute: a burst of 6, then one every 10 s (slow enough for a slow machine to see it).
reload_config "token_file = \"$token_file\"" 'rate_limit = 6'
for i in $(seq 1 6); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.3 -H "Authorization: Bearer $token" "$url/api/v1/groups")
    [[ $code == 200 ]] || fail "request $i of the burst of 6: $code"
done
call GET /api/v1/groups --interface 127.0.0.3 -H "Authorization: Bearer $token"
want 429 rate_limited "the 7th request at rate_limit = 6"
[[ $(header Retry-After) =~ ^[1-9][0-9]*$ ]] || fail "429 without Retry-After"
call GET /healthz --interface 127.0.0.3
want 200 "" "/healthz is not rate limited"
reload_config "token_file = \"$token_file\""
pass "413 for a body the supervisor cannot take in one call; rate_limit: a burst of 6, then 429 with Retry-After"

# --- webhooks ----------------------------------------------------------------------------------------
d1=delivery-$RANDOM-1
hook "$d1" '{"text":"build 41 is green","from":"ci-bot"}'
want 202 "" "a signed webhook"
jq -e '(.event_id | length == 26) and .group == "g1" and (has("duplicate") | not)' <<<"$body" >/dev/null || fail "webhook: $body"
hook_event=$(jq -r .event_id <<<"$body")
# The sender is the human actor bound to ci-bot on this channel (CHANNEL-USER, docs/api.md).
ledger_has "$hook_event" --arg d "$d1" '.by == "hooks-ci-bot" and .data.text == "build 41 is green" and .data.external_id == $d' \
    || fail "the webhook's message is not in the ledger as sent"
hook "$d1" '{"text":"build 41 is green","from":"ci-bot"}'
want 202 "" "the same delivery again"
jq -e --arg id "$hook_event" '.event_id == $id and .duplicate == true' <<<"$body" >/dev/null || fail "redelivery: $body"
[[ $(cv tail -g g1 -n 10000 --json | jq -s --arg d "$d1" 'map(select(.data.external_id == $d)) | length') == 1 ]] \
    || fail "a redelivered webhook was stored twice"
now=$(date +%s)
hook "$d1-b" '{"text":"x","from":"ci-bot"}' "$now" "sha256=$(sign "$now" "$d1-b" '{"text":"y","from":"ci-bot"}')"
want 401 bad_signature "a signature over another body"
hook "$d1-c" '{"text":"x","from":"ci-bot"}' "$now" "sha256=$(sign "$now" "$d1-c" '{"text":"x","from":"ci-bot"}' wrong-secret-0123456789)"
want 401 bad_signature "a signature with another secret"
old=$((now - 400))
hook "$d1-d" '{"text":"x","from":"ci-bot"}' "$old"
want 401 bad_signature "a timestamp 400 s old (a replay)"
grep -q "outside" <<<"$body" || fail "replay refused for another reason: $body"
hook "$d1-e" '{"text":"x","from":"ci-bot"}' $((now + 400))
want 401 bad_signature "a timestamp 400 s ahead"
hook "$d1-f" '{"text":"x","from":"ci-bot"}' "$now" "sha1=abc"
want 401 bad_signature "a malformed signature"
call POST /webhook/hooks --data-binary '{"text":"x","from":"ci-bot"}'
want 401 bad_signature "an unsigned webhook"
grep -q "missing" <<<"$body" || fail "unsigned refused for another reason: $body"
call POST /webhook/hooks -H "X-Conclave-Timestamp: $now" -H "X-Conclave-Delivery: $d1-g" --data-binary '{"text":"x","from":"ci-bot"}'
want 401 bad_signature "a webhook without X-Conclave-Signature"
hook "bad.id" '{"text":"x","from":"ci-bot"}'
want 401 bad_signature "a delivery id with a dot"
hook "$d1-h" '{"text":"x","from":"mallory"}'
want 403 forbidden "a sender not in allowed_users"
journal_says 'sender "mallory" is not in allowed_users' || fail "the allowlist denial is not logged"
hook "$d1-i" 'not json'
want 400 bad_request "a signed body that is not JSON"
hook "$d1-j" '{"from":"ci-bot"}'
want 400 bad_request "a signed body without text"
ts=$(date +%s)
call POST /webhook/nosecret -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Delivery: n1" \
    -H "X-Conclave-Signature: sha256=$(sign "$ts" n1 '{"text":"x","from":"a"}' '')" --data-binary '{"text":"x","from":"a"}'
want 401 bad_signature "a channel without a secret refuses everything"
call POST /webhook/nope --data-binary '{}'
want 404 not_found "a webhook to an unknown channel"
call GET /webhook/hooks
want 405 method_not_allowed "GET /webhook/hooks"
[[ $(cv tail -g g1 -n 10000 --json | jq -s 'map(select(.data.external_id != null)) | length') == 1 ]] \
    || fail "a refused webhook reached the ledger"
pass "webhooks: signed 202 and durable, redelivery deduplicated, bad/missing/replayed signatures 401, allowlist 403"

# --- the supervisor stopped: 503, never a false success; slow clients meanwhile ---------------------------
# A client sending its request head a line every second, and one sending its body a byte every
# second: the gateway must cut both off (10 s for the head, 30 s for the body), not wait forever.
slow_client() { # NAME HEAD_PREFIX DRIP
    trap '' PIPE
    local fd start=$SECONDS
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf "$2" >&$fd
    while ((SECONDS - start < 60)); do
        printf "$3" >&$fd 2>/dev/null || break
        if read -r -t 1 -u $fd _; then :; elif (($? <= 128)); then break; fi
    done
    echo $((SECONDS - start)) >"$tmp/$1.secs"
}
slow_client head 'GET /healthz HTTP/1.1\r\nHost: x\r\n' 'X-Slow: 1\r\n' &
slow_client body "POST /api/v1/groups/g1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $token\r\nContent-Length: 1000\r\n\r\n" ' ' &
# A stream opened now sees heartbeats while the supervisor is stopped.
curl -sN --max-time 25 -H "Authorization: Bearer $token" "$url/api/v1/groups/g1/events/stream" >"$tmp/heartbeat" 2>/dev/null &
stream_open() { grep -q '^: conclave event stream' "$tmp/heartbeat"; }
wait_for 5 stream_open || fail "the event stream did not open"

supervisor=$(user_systemctl show -p MainPID --value "$unit")
kill -STOP "$supervisor"
not_ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/readyz") == 503 ]]; }
wait_for 10 not_ready || { kill -CONT "$supervisor"; fail "/readyz still says ready while the supervisor is stopped"; }
start=$SECONDS
authed POST /api/v1/groups/g1/messages -d '{"text":"while the supervisor is stopped"}' --max-time 30
elapsed=$((SECONDS - start))
kill -CONT "$supervisor"
want 503 unavailable "send while the supervisor is stopped"
((elapsed >= 14 && elapsed <= 20)) || fail "the 503 came after ${elapsed}s, expected after the 15 s timeout"
wait_for 10 ready || fail "not ready after SIGCONT"
authed POST /api/v1/groups/g1/messages -d '{"text":"after SIGCONT"}'
want 201 "" "send after the supervisor continues"
pass "a stopped supervisor: /readyz 503, a send 503 after 15 s (not a success), then 201 again"

wait_for 25 test -s "$tmp/head.secs" || fail "the slow header client is still connected"
secs=$(cat "$tmp/head.secs")
((secs >= 9 && secs <= 13)) || fail "the slow header client was cut off after ${secs}s, want about 10"
wait_for 30 test -s "$tmp/body.secs" || fail "the slow body client is still connected"
secs=$(cat "$tmp/body.secs")
((secs >= 28 && secs <= 34)) || fail "the slow body client was cut off after ${secs}s, want about 30"
journal_says "did not send a complete request in time" || fail "cut-off slow clients not logged"
grep -q '^: ping' "$tmp/heartbeat" || fail "no heartbeat on the event stream within 25 s"
pass "slow clients cut off (the head after 10 s, the body after 30 s); heartbeats on the stream"

# A request in flight when the supervisor dies: never a success. The gateway, its worker, exits
# with it; the client gets no answer (or a 503), and systemd restarts the suite.
supervisor=$(user_systemctl show -p MainPID --value "$unit")
kill -STOP "$supervisor"
curl -s -o "$tmp/inflight.body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $token" \
    -d '{"text":"in flight when the supervisor dies"}' "$url/api/v1/groups/g1/messages" >"$tmp/inflight.code" 2>/dev/null &
inflight=$!
sleep 1
kill -KILL "$supervisor"
wait "$inflight" || :
[[ $(cat "$tmp/inflight.code") != 2* ]] || fail "a request in flight when the supervisor was killed got $(cat "$tmp/inflight.code")"
back() { user_systemctl is-active --quiet "$unit" && ready; }
wait_for 30 back || fail "the suite did not come back after its supervisor was killed"
pass "a request in flight when the supervisor is killed gets no success ($(cat "$tmp/inflight.code")); the suite comes back"

# --- max_connections: 503 with a JSON error over the soft limit ---------------------------------------------
reload_config "token_file = \"$token_file\"" 'max_connections = 8'
fds=()
for i in $(seq 1 8); do exec {fd}<>"/dev/tcp/127.0.0.1/$port"; fds+=("$fd"); done
sleep 0.3
call GET /healthz
want 503 unavailable "a 9th connection over max_connections = 8"
grep -q max_connections <<<"$body" || fail "503 does not name max_connections: $body"
[[ $(header Connection) == close ]] || fail "503 without Connection: close"
[[ -n $(header Retry-After) ]] || fail "503 without Retry-After"
for fd in "${fds[@]}"; do exec {fd}>&-; done
fds=()
fds_closed() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/healthz") == 200 ]]; }
wait_for 5 fds_closed || fail "still 503 after the idle connections closed"
# Idle connections that never send a request do not hold their slot past the head deadline.
for i in $(seq 1 8); do exec {fd}<>"/dev/tcp/127.0.0.1/$port"; fds+=("$fd"); done
sleep 0.3
[[ $(curl -s -o /dev/null -w '%{http_code}' "$url/healthz") == 503 ]] || fail "no 503 with 8 idle connections"
wait_for 15 fds_closed || fail "idle connections held their slots"
# (No redirection on exec: it would stay in force for the whole script.)
for fd in "${fds[@]}"; do exec {fd}>&-; done
if command -v slowhttptest >/dev/null; then
    # slowloris: 30 connections sending a header line every 2 s for 20 s.
    (cd "$tmp" && timeout 60 slowhttptest -H -c 30 -r 30 -i 2 -l 20 -u "$url/healthz" -o "$tmp/slowloris" >"$tmp/slowhttptest.out" 2>&1) &
    slow=$!
    sleep 14
    # The 8 slots are free again once the head deadline cut the first wave off.
    served=0
    for i in $(seq 1 20); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/healthz") == 200 ]] && { served=1; break; }
        sleep 0.25
    done
    wait "$slow" || :
    ((served)) || fail "slowloris kept every slot: $(tail -n 20 "$tmp/slowhttptest.out")"
fi
reload_config "token_file = \"$token_file\""
pass "over max_connections: 503 JSON with Connection: close; idle and slowloris connections lose their slot"

# --- the event stream across kill -9 of the gateway ----------------------------------------------------------
timeout 120 python3 "$here/sse-follow.py" "$url/api/v1/groups/g1/events/stream" "$token_file" "$tmp/until" 120 \
    >"$tmp/ids" 2>"$tmp/follow.err" &
follower=$!
got_some() { [[ $(wc -l <"$tmp/ids") -ge 5 ]]; }
wait_for 10 got_some || fail "the stream client received nothing: $(cat "$tmp/follow.err")"
killed=0
for i in $(seq 1 60); do
    # Half over HTTP (while the gateway is up), half with the CLI (also while it is down).
    if ((i % 2)); then
        curl -s -o /dev/null -H "Authorization: Bearer $token" -d "{\"text\":\"flow $i\"}" "$url/api/v1/groups/g1/messages" || :
    else
        cv send -g g1 "flow $i" >/dev/null || fail "send flow $i"
    fi
    if ((i == 20 || i == 45)); then
        wait_for 10 ready || fail "the gateway is not back before kill $((killed + 1))"
        kill -9 "$(gateway_pid)" || fail "kill -9 the gateway"
        killed=$((killed + 1))
    fi
done
wait_for 15 ready || fail "the gateway did not come back"
seq_of g1 >"$tmp/until"
cv send -g g1 "sentinel" >/dev/null
wait "$follower" || fail "the stream client did not get every event: $(tail -n 5 "$tmp/follow.err")"
python3 - "$tmp/ids" "$(cat "$tmp/until")" <<'PY' || fail "events missed or repeated across kill -9 (ids in $tmp/ids)"
import sys
ids = [int(x) for x in open(sys.argv[1])]
until = int(sys.argv[2])
dups = len(ids) - len(set(ids))
gaps = [(a, b) for a, b in zip(ids, ids[1:]) if b != a + 1]
print(f"{len(ids)} events, first {ids[0]}, last {ids[-1]}, duplicates {dups}, gaps {gaps}")
sys.exit(0 if ids[0] == 1 and ids[-1] >= until and not dups and not gaps else 1)
PY
reconnects=$(grep -c '^reconnect' "$tmp/follow.err" || :)
((reconnects >= killed)) || fail "the client reconnected $reconnects times for $killed kills"
[[ $(status_field '.workers[] | select(.name == "gateway") | .restarts') -ge 2 ]] || fail "the gateway was not restarted twice"
pass "event stream: every seq exactly once across 2 × kill -9 of the gateway ($reconnects reconnects)"

# --- the request log ------------------------------------------------------------------------------------------
journal CONCLAVE_HTTP_METHOD=POST CONCLAVE_HTTP_PATH=/api/v1/groups CONCLAVE_HTTP_STATUS=201 -o json | jq -e -s \
    'length >= 1 and all(.[]; (.CONCLAVE_HTTP_LATENCY_USEC | tonumber) > 0 and .CONCLAVE_HTTP_CLIENT == "127.0.0.1"
                         and (.MESSAGE | test("^POST /api/v1/groups 201 [0-9]+\\.[0-9]{3}ms 127\\.0\\.0\\.1")))' >/dev/null \
    || fail "POST /api/v1/groups 201 is not logged with method, path, status, latency, client"
for status in 400 401 404 405 413 429 503; do
    journal "CONCLAVE_HTTP_STATUS=$status" -o json | jq -e -s 'length >= 1' >/dev/null || fail "no $status in the request log"
done
journal CONCLAVE_HTTP_PATH=/webhook/hooks CONCLAVE_HTTP_STATUS=202 -o json | jq -e -s 'length >= 2' >/dev/null || fail "webhooks not logged"
for secret in "$token" "$wrong" "$hook_secret"; do
    ! in_journal "$secret" || fail "a token or secret is in the journal"
done
pass "requests logged with method, path, status, latency and client; no token or secret in the journal"

# --- where the token comes from: $CONCLAVE_WEB_TOKEN, systemd credentials ------------------------------------------
dropins=$SANDBOX_HOME/.config/systemd/user/$unit.d
env_token=env-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '[Service]\nEnvironment=CONCLAVE_WEB_TOKEN=%s\n' "$env_token" | as_user tee "$dropins/token.conf" >/dev/null
user_systemctl daemon-reload
restart_service
call GET /api/v1/groups -H "Authorization: Bearer $env_token"
want 200 "" "the token from \$CONCLAVE_WEB_TOKEN"
authed GET /api/v1/groups
want 401 unauthorized "token_file is not used while \$CONCLAVE_WEB_TOKEN is set"
journal_says 'API authentication: token from $CONCLAVE_WEB_TOKEN' || fail "the token's source is not logged"

cred_token=cred-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
as_user bash -c "umask 077 && printf '%s\n' '$cred_token' > '$home/cred.token'"
printf '[Service]\nLoadCredential=gateway-token:%s\n' "$home/cred.token" | as_user tee "$dropins/token.conf" >/dev/null
user_systemctl daemon-reload
restart_service
call GET /api/v1/groups -H "Authorization: Bearer $cred_token"
want 200 "" "the token from the credential gateway-token"
authed GET /api/v1/groups
want 401 unauthorized "token_file is not used while the credential is there"
journal_says 'API authentication: token from systemd credential' || fail "the credential as source is not logged"

# The webhook channel without secret_file takes the credential NAME.secret, as docs/channels.md says.
cred_secret=credsecret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
as_user bash -c "umask 077 && printf '%s\n' '$cred_secret' > '$home/nosecret.cred'"
printf '[Service]\nLoadCredential=web:%s\nLoadCredential=nosecret.secret:%s\n' "$home/cred.token" "$home/nosecret.cred" \
    | as_user tee "$dropins/token.conf" >/dev/null
write_config 'token_file = "credential:web"'
user_systemctl daemon-reload
restart_service
call GET /api/v1/groups -H "Authorization: Bearer $cred_token"
want 200 "" "token_file = \"credential:web\""
ts=$(date +%s)
call POST /webhook/nosecret -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Delivery: n2" \
    -H "X-Conclave-Signature: sha256=$(sign "$ts" n2 '{"text":"x","from":"a"}' "$cred_secret")" --data-binary '{"text":"x","from":"a"}'
want 202 "" "a webhook channel whose secret is the systemd credential nosecret.secret"
as_user rm -f "$dropins/token.conf"
write_config "token_file = \"$token_file\""
user_systemctl daemon-reload
restart_service
authed GET /api/v1/groups
want 200 "" "token_file again"
for secret in "$env_token" "$cred_token" "$cred_secret"; do
    ! in_journal "$secret" || fail "a token is in the journal"
done
pass "tokens from \$CONCLAVE_WEB_TOKEN, the credential gateway-token and token_file = \"credential:NAME\"; a webhook secret from a credential"

# --- the suite socket-activated: conclave.socket ------------------------------------------------------------------
# systemd holds the socket and starts the service on the first connection; the supervisor hands
# the socket to every gateway it starts, so a kill -9 of the gateway loses no connection attempt.
user_systemctl stop "$unit"
so_port=$((port + 2))
sed "s/^ListenStream=.*/ListenStream=127.0.0.1:$so_port/" "$here/../../units/conclave.socket" | sandbox_write_unit conclave.socket
user_systemctl start conclave.socket || fail "start conclave.socket"
! user_systemctl is-active --quiet "$unit" || fail "the service runs before any connection"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $token" "http://127.0.0.1:$so_port/api/v1/groups")
[[ $code == 200 ]] && jq -e 'map(.id) | index("g1") != null' "$tmp/body" >/dev/null || fail "first request on conclave.socket: $code $(cat "$tmp/body")"
user_systemctl is-active --quiet "$unit" || fail "the first connection did not start the service"
journal_says "listening on 127.0.0.1:$so_port (socket activation" || fail "the gateway does not say it serves the passed socket"
! curl -s --max-time 2 "$url/healthz" >/dev/null || fail "the gateway also bound [gateway] port with a socket passed"
kill -9 "$(gateway_pid)"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $token" \
    -d '{"text":"right after kill -9, on the socket"}' "http://127.0.0.1:$so_port/api/v1/groups/g1/messages")
[[ $code == 201 ]] || fail "a request right after kill -9 of the gateway on conclave.socket: $code $(cat "$tmp/body")"
user_systemctl stop conclave.socket "$unit"
as_user rm -f "$SANDBOX_HOME/.config/systemd/user/conclave.socket"
user_systemctl daemon-reload
restart_service
pass "conclave.socket: the first connection starts the suite; the gateway serves the passed socket, also after kill -9"

# --- no public listener without a token and allow_public_bind --------------------------------------------------
user_systemctl stop "$unit"
for variant in no-allow no-token; do
    if [[ $variant == no-allow ]]; then
        write_config 'bind = "0.0.0.0"' "token_file = \"$token_file\""
        expect="allow_public_bind"
    else
        write_config 'bind = "0.0.0.0"' 'allow_public_bind = true'
        expect="no token is configured"
    fi
    user_systemctl reset-failed "$unit" 2>/dev/null || :
    ! user_systemctl start "$unit" 2>/dev/null || fail "the suite started with bind = 0.0.0.0 ($variant)"
    journal_says "$expect" || fail "no clear message for bind = 0.0.0.0 ($variant)"
    ! curl -s --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null || fail "something listens on $port ($variant)"
done
write_config "token_file = \"$token_file\""
restart_service
pass "bind = 0.0.0.0 without allow_public_bind or without a token: refused with a clear message"

# --- socket activation -------------------------------------------------------------------------------------------
# conclave-gateway on its own, given a socket by systemd-socket-activate: it serves /healthz on it
# and answers the API 503 (no supervisor), and refuses a socket beyond loopback without a token.
write_config "token_file = \"$token_file\""
sa_port=$((port + 1))
# activated PIDFILE ADDRESS LOG: systemd-socket-activate then the gateway, in one process whose
# pid is written first (as_user's own shell would be $!), so the test can always stop it.
activated() {
    as_user env CONCLAVE_LOG_TARGET=stderr bash -c 'echo $$ >"$0"; exec systemd-socket-activate -l "$1" "$2" --config "$3"' \
        "$1" "$2" "$gateway_bin" "$home/config.toml" >"$3" 2>&1 &
    wait_for 5 test -s "$1" || fail "systemd-socket-activate did not start"
}
activated "$tmp/user/activated.pid" "127.0.0.1:$sa_port" "$tmp/activated.log"
activated_up() { curl -sf "http://127.0.0.1:$sa_port/healthz" >/dev/null; }
wait_for 10 activated_up || fail "the socket-activated gateway does not answer: $(cat "$tmp/activated.log")"
grep -q "listening on 127.0.0.1:$sa_port (socket activation" "$tmp/activated.log" || fail "activation not logged: $(cat "$tmp/activated.log")"
! grep -q "listening on 127.0.0.1:$port" "$tmp/activated.log" || fail "the activated gateway also bound [gateway] port"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$sa_port/api/v1/groups")
[[ $code == 503 ]] && jq -e '.error.code == "unavailable"' "$tmp/body" >/dev/null || fail "standalone API: $code $(cat "$tmp/body")"
[[ $(curl -s "http://127.0.0.1:$sa_port/healthz" | jq -r .pid) == "$(cat "$tmp/user/activated.pid")" ]] || fail "the activated gateway is not the process started"
kill "$(cat "$tmp/user/activated.pid")"
gone() { ! kill -0 "$(cat "$tmp/user/activated.pid")" 2>/dev/null; }
wait_for 10 gone || fail "the activated gateway did not stop on SIGTERM"
write_config
activated "$tmp/user/public.pid" "0.0.0.0:$sa_port" "$tmp/public.log"
public=$(cat "$tmp/user/public.pid")
# The first connection starts the gateway, which must refuse the socket and exit.
refused() {
    curl -s --max-time 1 "http://127.0.0.1:$sa_port/healthz" >/dev/null 2>&1 || :
    grep -q "refusing to listen: the socket-activated address 0.0.0.0:$sa_port is not a loopback address" "$tmp/public.log" &&
        ! kill -0 "$public" 2>/dev/null
}
wait_for 10 refused || fail "a public activated socket without a token was not refused: $(cat "$tmp/public.log")"
pass "socket activation (standalone gateway): serves the passed socket; a public one without a token is refused"

user_systemctl stop "$unit"
no_sanitizer_reports "$tmp/activated.log" "$tmp/public.log"
echo "all gateway integration checks passed"

#!/usr/bin/env bash
# Format versions, driven as an operator meets them: the service started on a home Conclave
# 0.1.0 left behind (tests/integration/fixtures/home-0.1.0) migrates it at start, keeps every
# event, obligation, cursor and schedule, keeps a copy of what it rewrote, and does not migrate
# again; the same service refuses to start on files a newer Conclave wrote (a registry of
# format 2, a ledger line of version 2), naming the file and both versions in the journal and
# in its status, with exit status 65 that systemd does not retry; `conclave doctor` says the
# same. Putting the file back lets it start.
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
fixture=$here/fixtures/home-0.1.0
MIGRATED=7ac8cf19ff664125bb3b09cc8efda262
NEWER=60cc205a74f647289669464f74319627
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :; fi; exit $rc' EXIT

# --- a 0.1.0 home -----------------------------------------------------------------------------
cp -r "$fixture" "$home"
chown -R "$SANDBOX_UID:$SANDBOX_GID" "$home"
find "$home" -type d -exec chmod 0700 {} +
find "$home" -type f -exec chmod 0600 {} +
printf '[runtime]\nledger_sync = "always"\n[gateway]\nport = %s\n' "$port" | as_user tee "$home/config.toml" >/dev/null
cv service install >/dev/null
if ldd "$CONCLAVE_PREFIX/libexec/conclave/conclave-supervisor" | grep -q libasan; then
    # Inside the unit's sandbox LeakSanitizer cannot stop the process with ptrace() at exit; it
    # then reports a fatal error and replaces the exit status with 1, and the exit status is
    # what this test checks. AddressSanitizer and UBSan stay on.
    as_user mkdir -p "$SANDBOX_HOME/.config/systemd/user/conclave.service.d"
    printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' |
        as_user tee "$SANDBOX_HOME/.config/systemd/user/conclave.service.d/asan.conf" >/dev/null
fi
user_systemctl daemon-reload

out=$(cv doctor) || fail "doctor on the 0.1.0 home: $out"
echo "$out" | grep formats
for f in groups/old/state/ledger.idx groups/old/state/recovery.json groups/team/state/ledger.idx; do
    grep -q "formats  $f is in format 0; the daemon migrates it to 1 at its next start" <<<"$out" ||
        fail "doctor does not announce the migration of $f"
done
pass "doctor: the 0.1.0 files that will be migrated"

user_systemctl start "$unit" || fail "start on the 0.1.0 home"
migrated() { user_journalctl -u "$unit" MESSAGE_ID=$MIGRATED -o json | jq -r .CONCLAVE_FILE | sort; }
want=$(printf '%s\n' "$home/groups/old/state/ledger.idx" "$home/groups/old/state/recovery.json" "$home/groups/team/state/ledger.idx")
[[ $(migrated) == "$want" ]] || fail "migrated files in the journal: $(migrated)"
user_journalctl -u "$unit" MESSAGE_ID=$MIGRATED -o cat
user_journalctl -u "$unit" -o cat | grep -q "rebuilt the ledger index" && fail "a migrated index was rebuilt instead of used"
pass "the service migrated exactly the three older files (journal MESSAGE_ID=$MIGRATED)"

# The ledgers keep every byte; every event reads back through the migrated index. (Automation
# may append after them: reminders and scheduled runs that fell due since the fixture was made.)
for g in team old; do
    size=$(stat -c %s "$fixture/groups/$g/ledger.jsonl")
    cmp -n "$size" "$fixture/groups/$g/ledger.jsonl" "$home/groups/$g/ledger.jsonl" || fail "ledger of $g changed"
    want_ids=$(jq -r .id "$fixture/groups/$g/ledger.jsonl")
    got_ids=$(cv tail -g "$g" -n 1000 --json | jq -r .id | head -n "$(wc -l <<<"$want_ids")")
    [[ $got_ids == "$want_ids" ]] || fail "events of $g differ after the migration"
done
[[ $(head -c 8 "$home/groups/team/state/ledger.idx") == CNCLIDX ]] || fail "index header missing"
cmp "$fixture/groups/old/state/recovery.json" "$home/groups/old/state/recovery.json.pre-v1" ||
    fail "the original recovery note was not kept as .pre-v1"
[[ $(stat -c %a "$home/groups/old/state/recovery.json.pre-v1") == 600 ]] || fail "the kept copy is not private"
jq -e '.format_version == 1 and .what == "truncated" and .offset == 926' "$home/groups/old/state/recovery.json" >/dev/null ||
    fail "migrated recovery note: $(cat "$home/groups/old/state/recovery.json")"
cv groups >&2
cv groups | grep -E "^team +active" >/dev/null || fail "team not active"
cv groups | grep -E "^old +stopped" >/dev/null || fail "old not stopped"
cv inbox -g team --actor-id alice --json | jq -e '[.obligations[] | select(.kind == "reply" and .seq == 6)] | length == 1' >/dev/null ||
    fail "alice's reply obligation from 0.1.0 is gone"
cv actor show -g team operator --json | jq -e '.cursor == 9' >/dev/null || fail "the operator's read cursor moved"
cv schedule list -g team --json | jq -e 'length == 1 and .[0].text == "hourly check"' >/dev/null || fail "the schedule is gone"
last=$(cv tail -g team -n 1 --json | jq -r .seq)
seq=$(cv send -g team --to alice --json "after the upgrade" | jq -r .seq)
((last >= 11 && seq == last + 1)) || fail "the next event has seq $seq after $last"
out=$(cv doctor) || fail "doctor after the migration: $out"
grep -q "formats .* are in the formats this Conclave" <<<"$out" || fail "doctor: $out"
grep -q "1 copies of files from before a migration" <<<"$out" || fail "doctor does not mention the kept copy: $out"
pass "events, obligations, cursors, schedules intact; the kept copy and doctor"

user_systemctl restart "$unit" || fail "restart"
[[ $(migrated | wc -l) == 3 ]] || fail "the second start migrated again"
cv tail -g team -n 1000 --json | jq -s -e --argjson seq "$seq" 'map(select(.seq == $seq and .data.text == "after the upgrade")) | length == 1' >/dev/null ||
    fail "event $seq lost over the restart"
pass "second start: nothing to migrate"

# --- files from a newer Conclave ------------------------------------------------------------------
refused() { # FILE: the service refuses to start, names FILE, exit 65, no restart by systemd
    local file=$1 since
    since=$(date '+%Y-%m-%d %H:%M:%S')
    ! user_systemctl start "$unit" 2>/dev/null || fail "the service started on a newer $file"
    user_systemctl show "$unit" -p Result -p ExecMainStatus -p NRestarts -p StatusText >/tmp/show.$$
    cat /tmp/show.$$ >&2
    grep -qx "ExecMainStatus=65" /tmp/show.$$ || fail "exit status is not 65"
    grep -qx "Result=exit-code" /tmp/show.$$ || fail "result is not exit-code"
    grep -q "^StatusText=refusing to start: $file has format version 2" /tmp/show.$$ || fail "status text"
    user_journalctl -u "$unit" --since "$since" MESSAGE_ID=$NEWER -o json | jq -e --arg f "$home/$file" \
        'select(.CONCLAVE_FILE == $f and .CONCLAVE_FORMAT_VERSION == "2" and .CONCLAVE_FORMAT_SUPPORTED == "1" and .PRIORITY == "3")' \
        >/dev/null || fail "no journal entry naming $file"
    user_journalctl -u "$unit" --since "$since" -o cat | grep "refusing to start" >&2
    user_journalctl -u "$unit" --since "$since" -o cat |
        grep -q "refusing to start: $home/$file has format version 2, but this Conclave (.*) reads .* only up to version 1" ||
        fail "journal message"
    sleep 6 # RestartSec=5s: systemd would have tried again by now
    user_systemctl show "$unit" -p ActiveState | grep -qx "ActiveState=failed" || fail "the unit should stay failed"
    user_systemctl show "$unit" -p NRestarts | grep -qx "NRestarts=0" || fail "systemd restarted it (RestartPreventExitStatus)"
    set +e; out=$(cv doctor); rc=$?; set -e
    [[ $rc == 1 ]] || fail "doctor exit $rc on a newer $file"
    grep -q "^error   formats  $file has format version 2, but this Conclave .* the daemon refuses to start" <<<"$out" ||
        fail "doctor: $out"
    rm -f /tmp/show.$$
}

user_systemctl stop "$unit"
as_user cp "$home/registry.json" "$home/registry.json.keep"
as_user jq '.format_version = 2 | .groups_v2 = {}' "$home/registry.json.keep" | as_user tee "$home/registry.json" >/dev/null
refused registry.json
as_user mv "$home/registry.json.keep" "$home/registry.json"
user_systemctl reset-failed "$unit"
user_systemctl start "$unit" || fail "start with the registry put back"
pass "registry.json of format 2: refused (journal, status, exit 65, no retry, doctor); put back, it starts"

user_systemctl stop "$unit"
ledger=$home/groups/team/ledger.jsonl
size=$(stat -c %s "$ledger")
tail -n 1 "$ledger" | jq -c '.v = 2 | .seq += 1' | as_user tee -a "$ledger" >/dev/null
refused groups/team/ledger.jsonl
as_user truncate -s "$size" "$ledger"
user_systemctl reset-failed "$unit"
user_systemctl start "$unit" || fail "start with the ledger line removed"
[[ $(stat -c %s "$ledger") -ge $size ]] && cv tail -g team -n 1000 --json | jq -s -e --argjson seq "$seq" 'map(select(.seq == $seq)) | length == 1' >/dev/null ||
    fail "ledger not as before"
pass "a ledger line of version 2: refused; removed, it starts"

user_systemctl stop "$unit"
no_sanitizer_reports
echo "all format version checks passed"

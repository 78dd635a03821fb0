#!/usr/bin/env bash
# Crash safety: several clients append through the control socket while the supervisor is
# killed with SIGKILL at random points, many times. Afterwards every event a client was told
# "accepted" is in the ledger exactly once, with its text, and the ledger parses with seq 1..N.
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
work=$(mktemp -d /tmp/conclave-crash.XXXXXX)
chmod 777 "$work"
rounds=${CONCLAVE_CRASH_ROUNDS:-12}
writers=4
as_user mkdir -p "$home"
printf '[runtime]\nledger_sync = "%s"\n[gateway]\nport = %s\n' "${CONCLAVE_CRASH_SYNC:-batch}" $((20000 + RANDOM % 20000)) \
    | as_user tee "$home/config.toml" >/dev/null

start_daemon() {
    as_user env CONCLAVE_LOG_TARGET=stderr "$CONCLAVE" daemon >>"$work/daemon.log" 2>&1 &
    wait_for 10 cv status >/dev/null || fail "daemon did not start"
}
supervisor_pid() { pgrep -u "$SANDBOX_UID" -f 'conclave-supervisor' | head -n 1; }

start_daemon
cv group create c1 >/dev/null || fail "group create"
cv group start c1 >/dev/null || fail "group start"

writer() { # N: appends until $work/stop exists; records what was acknowledged
    local k=$1 i=0 out
    while [[ ! -e $work/stop ]]; do
        i=$((i + 1))
        if out=$(as_user env "$CONCLAVE" send -g c1 --json "w$k-$i" 2>/dev/null); then
            printf '%s w%s-%s\n' "$(jq -r .event_id <<<"$out")" "$k" "$i" >>"$work/acked.$k"
        else
            sleep 0.05
        fi
    done
}
pids=()
for k in $(seq 1 $writers); do
    writer "$k" &
    pids+=($!)
done

for round in $(seq 1 "$rounds"); do
    sleep "0.$((2 + RANDOM % 9))"
    p=$(supervisor_pid)
    [[ -n $p ]] || fail "no supervisor in round $round"
    kill -9 "$p"
    wait_for 10 bash -c "! pgrep -u $SANDBOX_UID -f 'conclave-(supervisor|gateway|channels)' >/dev/null" \
        || fail "processes left after SIGKILL of the supervisor"
    start_daemon
done
touch "$work/stop"
wait "${pids[@]}" 2>/dev/null || :

acked=$(cat "$work"/acked.* | wc -l)
[[ $acked -gt 50 ]] || fail "only $acked events were acknowledged; the test did not exercise much"
ledger=$home/groups/c1/ledger.jsonl
jq -e -c . "$ledger" >/dev/null || fail "the ledger does not parse"
n=$(wc -l <"$ledger")
jq -s -e 'to_entries | all(.value.seq == .key + 1)' "$ledger" >/dev/null || fail "seq is not 1..$n"
jq -r 'select(.kind == "chat.message") | "\(.id) \(.data.text)"' "$ledger" | sort >"$work/ledger.ids"
sort "$work"/acked.* >"$work/acked.ids"
missing=$(comm -23 "$work/acked.ids" "$work/ledger.ids" | wc -l)
[[ $missing == 0 ]] || { comm -23 "$work/acked.ids" "$work/ledger.ids" | head >&2; fail "$missing acknowledged events missing"; }
dups=$(cut -d' ' -f1 "$work/ledger.ids" | sort | uniq -d | wc -l)
[[ $dups == 0 ]] || fail "$dups event ids appear more than once"
dup_texts=$(cut -d' ' -f2 "$work/acked.ids" | sort | uniq -d | wc -l)
[[ $dup_texts == 0 ]] || fail "a text was acknowledged twice"
echo "rounds: $rounds, acknowledged: $acked, ledger events: $n, torn tails cut: $(grep -c 'cut a torn last line' "$work/daemon.log" || true)"
cv status >/dev/null && kill -INT "$(supervisor_pid)"
wait_for 10 bash -c "! pgrep -u $SANDBOX_UID -f conclave-supervisor >/dev/null" || fail "daemon did not stop"
no_sanitizer_reports "$work/daemon.log"
rm -rf "$work"
pass "$rounds SIGKILLs under load: every acknowledged event present exactly once, ledger intact"

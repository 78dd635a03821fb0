#!/usr/bin/env bash
# bench/channels: messages per second end to end through an irc channel (an IRC user's message
# → ngircd → conclave-channels → the ledger → a command actor → its reply → the outbox →
# conclave-channels → ngircd → the user), and the latency of that round trip (p50, p99).
# Figures, not assertions. Runs a private ngircd (penalties off: MaxPenaltyTime = 0) and a
# private `conclave daemon` in a temporary CONCLAVE_HOME; Conclave's flood control is off too,
# so what is measured is Conclave, not the IRC server's pacing.
#
# Usage: bench/channels/run.sh BUILDDIR [MESSAGES] [WINDOW]
# SYNC=none runs with [runtime] ledger_sync = "none" (no fdatasync), to tell the disk's part from
# Conclave's: with "batch" (the default) three fdatasyncs lie on each round trip (the inbound
# message, the reply, the "attempted" record).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
builddir=$(cd "${1:?usage: run.sh BUILDDIR [MESSAGES] [WINDOW]}" && pwd)
n=${2:-2000}
window=${3:-50}
ngircd=$(command -v ngircd || echo /usr/sbin/ngircd)
[[ -x $ngircd ]] || { echo "bench/channels: ngircd is not installed (apt-get install ngircd)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/conclave-bench-channels.XXXXXX)
export CONCLAVE_HOME=$tmp/home XDG_RUNTIME_DIR=$tmp/run CONCLAVE_LIBEXECDIR=$builddir
mkdir -p "$CONCLAVE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
port=$((20000 + RANDOM % 20000))
daemon_pid= ngircd_pid=
cleanup() {
    [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    [[ -n $ngircd_pid ]] && kill "$ngircd_pid" 2>/dev/null && wait "$ngircd_pid" 2>/dev/null
    [[ -n ${KEEP:-} ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/ngircd.conf" <<CONF
[Global]
Name = irc.bench
Info = bench
Listen = 127.0.0.1
Ports = $port
[Limits]
MaxConnectionsIP = 0
MaxPenaltyTime = 0
[Options]
DNS = no
Ident = no
PAM = no
CONF
"$ngircd" -n -f "$tmp/ngircd.conf" >"$tmp/ngircd.log" 2>&1 &
ngircd_pid=$!

cat >"$CONCLAVE_HOME/config.toml" <<CONF
[runtime]
log_level = "warning"
ledger_sync = "${SYNC:-batch}"
[gateway]
enabled = false
[automation]
throttle_min_interval = 0
[channels.irc]
kind = "irc"
group = "bench"
server = "127.0.0.1"
port = $port
tls = false
nick = "conclave"
channel = "#bench"
allowed_users = ["alice"]
flood_interval = "0"
CONF
"$builddir/conclave" daemon >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do "$builddir/conclave" status >/dev/null 2>&1 && break; sleep 0.1; done
cv() { "$builddir/conclave" "$@" >/dev/null; }
cv group create bench
cv actor add -g bench echo --kind command -- python3 "$here/echo-actor.py"
cv actor start -g bench echo
cv group start bench
for _ in $(seq 100); do
    [[ $("$builddir/conclave" channel list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])') == up ]] && break
    sleep 0.1
done

python3 "$here/irc-bench.py" --port "$port" --channel "#bench" --messages "$n" --window "$window"
echo "(ledger: $(wc -l <"$CONCLAVE_HOME/groups/bench/ledger.jsonl") events; ledger_sync = ${SYNC:-batch}; $(nproc) CPUs)"

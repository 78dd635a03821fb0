#!/usr/bin/env bash
# The Debian package's upgrade, as an administrator does it while a user's service runs:
# install the .deb, start conclave.service for the test user (the packaged user unit), give it
# data and a command actor, install a newer version over it, and check that the data is intact,
# the running service was restarted by the package (new main PID on the new files) and still
# serves (CLI, actor, gateway). Then an upgrade under a policy-rc.d that forbids restarts: the
# old daemon keeps running, pins its workers' old programs, and `conclave status` and
# `conclave doctor` tell the user to restart. Finally removal stops the service, and neither
# removal nor purge touches the user's data.
#
# Usage (root; run by ./dev test after it built the package):
#   tests/integration/sandbox.sh run tests/integration/test_upgrade.sh build/deb/conclave_*.deb
# The newer version is the same package repacked with a higher version (dpkg-deb -R/-b), so the
# stage costs seconds, not a second package build. dpkg works on overlays of /usr, /etc,
# /var/lib and /var/cache inside the sandbox's private mount namespace: the machine's own
# package database and files are never changed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
deb=${1:-${CONCLAVE_UPGRADE_DEB:-}}
if [[ -z $deb || ! -f $deb ]]; then
    echo "SKIP: no package given (usage: sandbox.sh run $0 conclave_VERSION_ARCH.deb; .ci/build-deb builds it)" >&2
    exit 77
fi
deb=$(realpath "$deb")
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    exec bash "$here/sandbox.sh" run "${BASH_SOURCE[0]}" "$deb"
fi

unit=conclave.service
home=$SANDBOX_HOME/.conclave
work=$SANDBOX_STATE_DIR/upgrade
port=$((20000 + RANDOM % 20000))
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :; fi; exit $rc' EXIT

# --- private overlays for dpkg ------------------------------------------------------------------
mkdir -p "$work"
for d in /usr /etc /var/lib /var/cache; do
    n=${d//\//_}
    mkdir -p "$work/ovl$n/upper" "$work/ovl$n/work"
    mount -n -t overlay overlay -o "lowerdir=$d,upperdir=$work/ovl$n/upper,workdir=$work/ovl$n/work" "$d" ||
        { echo "SKIP: cannot mount an overlay on $d (overlayfs needed for a private dpkg)" >&2; exit 77; }
done
dpkg_() { dpkg --log=/dev/null --force-confold "$@"; }
# man-db's index update after each dpkg run costs seconds and is not under test.
echo "man-db man-db/auto-update boolean false" | debconf-set-selections 2>/dev/null || :

# --- two versions of the package ------------------------------------------------------------------
v1=$(dpkg-deb -f "$deb" Version)
v2="$v1+upgradetest1"
v3="$v1+upgradetest2"
repack() { # VERSION OUT
    rm -rf "$work/pkg"
    dpkg-deb -R "$deb" "$work/pkg"
    sed -i "s/^Version: .*/Version: $1/" "$work/pkg/DEBIAN/control"
    dpkg-deb --root-owner-group -Zgzip -z1 -b "$work/pkg" "$2" >/dev/null
}
repack "$v2" "$work/v2.deb"
repack "$v3" "$work/v3.deb"

# --- v1 installed, the user's service running with data ----------------------------------------------
dpkg_ -i "$deb" >"$work/install1.log" 2>&1 || { cat "$work/install1.log"; fail "dpkg -i $deb"; }
[[ -f /usr/lib/systemd/user/$unit ]] || fail "the package did not install the user unit"
[[ $(dpkg-query -W -f='${Status}' conclave) == "install ok installed" ]] || fail "not installed"
CONCLAVE=/usr/bin/conclave
as_user mkdir -p "$home" "$SANDBOX_HOME/bin"
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
printf '[runtime]\nledger_sync = "always"\n[gateway]\nport = %s\n' "$port" | as_user tee "$home/config.toml" >/dev/null
user_systemctl daemon-reload
user_systemctl start "$unit" || fail "start the packaged unit"
[[ $(user_systemctl show -P FragmentPath "$unit") == /usr/lib/systemd/user/$unit ]] || fail "not the packaged unit"

cv group create team --title Team >/dev/null
cv actor add -g team echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" >/dev/null
cv actor add -g team alice --kind human >/dev/null
cv actor start -g team echo >/dev/null
cv group start team >/dev/null
for i in 1 2 3 4 5; do cv send -g team --to alice --reply-required "before the upgrade $i" >/dev/null; done
cv schedule add -g team --every 1h "hourly" >/dev/null
replied() { # EVENT-ID: the echo actor replied to it
    cv tail -g team -n 1000 --json | jq -s -e --arg id "$1" 'map(select(.kind == "chat.message" and .data.reply_to == $id)) | length > 0' >/dev/null
}
id=$(cv send -g team --to echo --reply-required --json "ping" | jq -r .event_id)
wait_for 10 replied "$id" || fail "no reply from the echo actor before the upgrade"
events_before=$(cv tail -g team -n 1000 --json | jq -c '{seq, id, kind}')
n_before=$(wc -l <<<"$events_before")
ledger_size=$(stat -c %s "$home/groups/team/ledger.jsonl")
ledger_before=$(sha256sum <"$home/groups/team/ledger.jsonl")
pid1=$(user_systemctl show -P MainPID "$unit")
gateway_pid() { cv status --json | jq -r '.workers[] | select(.name == "gateway") | .pid'; }
pass "v$v1 installed; the user service runs it with a group, a command actor and $n_before events"

# --- upgrade: the package restarts the running user service ----------------------------------------
# Container images often forbid service restarts with a policy-rc.d; this part is about a machine
# that allows them (the file is removed from the overlay only).
rm -f /usr/sbin/policy-rc.d
dpkg_ -i "$work/v2.deb" >"$work/install2.log" 2>&1 || { cat "$work/install2.log"; fail "dpkg -i v2"; }
cat "$work/install2.log"
grep -q "conclave: restarted conclave.service for user $SANDBOX_USER" "$work/install2.log" ||
    fail "the package did not report restarting the user's service"
[[ $(dpkg-query -W -f='${Version}' conclave) == "$v2" ]] || fail "v2 not installed"
[[ $(user_systemctl show -P ActiveState "$unit") == active ]] || fail "not active after the upgrade"
pid2=$(user_systemctl show -P MainPID "$unit")
[[ $pid2 != "$pid1" && $pid2 != 0 ]] || fail "the main process was not restarted ($pid1 → $pid2)"
[[ $(readlink "/proc/$pid2/exe") == /usr/libexec/conclave/conclave-supervisor ]] ||
    fail "the restarted daemon does not run the installed file: $(readlink "/proc/$pid2/exe")"
kill -0 "$pid1" 2>/dev/null && fail "the old daemon ($pid1) is still running"
user_journalctl -u "$unit" -o cat | grep -c "Conclave .* starting" | grep -qx 2 || fail "expected two starts in the journal"
# The stop was clean (no failure, no kill).
user_journalctl -u "$unit" -o cat | grep -q "Conclave stopped" || fail "the old daemon did not stop cleanly"
[[ $(user_systemctl show -P NRestarts "$unit") == 0 ]] || fail "the restart was a failure recovery"
pass "dpkg -i v$v2: the running user service was restarted onto the new files ($pid1 → $pid2), cleanly"

# The restart appends the actor's exit and spawn; everything before stays byte for byte.
[[ $(head -c "$ledger_size" "$home/groups/team/ledger.jsonl" | sha256sum) == "$ledger_before" ]] ||
    fail "the ledger changed over the upgrade"
[[ $(cv tail -g team -n 1000 --json | head -n "$n_before" | jq -c '{seq, id, kind}') == "$events_before" ]] || fail "events differ"
[[ $(cv inbox -g team --actor-id alice --json | jq '[.obligations[] | select(.kind == "reply")] | length') == 5 ]] ||
    fail "alice's obligations are gone"
cv schedule list -g team --json | jq -e 'length == 1' >/dev/null || fail "the schedule is gone"
wait_for 10 bash -c "[[ \$(as_user env '$CONCLAVE' actor list -g team --json | jq -r '.[] | select(.id == \"echo\") | .runtime') == running ]]" ||
    fail "the echo actor is not running after the upgrade"
id=$(cv send -g team --to echo --reply-required --json "ping after the upgrade" | jq -r .event_id)
wait_for 10 replied "$id" || fail "no reply from the echo actor after the upgrade"
curl -fsS "http://127.0.0.1:$port/healthz" | jq -e '.status == "ok"' >/dev/null ||
    fail "the gateway does not answer /healthz"
out=$(cv status)
grep -q "note:" <<<"$out" && fail "status still asks for a restart: $out"
cv doctor >/dev/null || fail "doctor after the upgrade"
pass "after the upgrade: ledger byte for byte, obligations, schedule, actor replies, gateway, doctor clean"

# --- an upgrade where restarts are forbidden: the daemon tells ----------------------------------------
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
dpkg_ -i "$work/v3.deb" >"$work/install3.log" 2>&1 || { cat "$work/install3.log"; fail "dpkg -i v3"; }
rm -f /usr/sbin/policy-rc.d
grep -q "policy-rc.d forbids restarts" "$work/install3.log" || { cat "$work/install3.log"; fail "no policy-rc.d note"; }
[[ $(user_systemctl show -P MainPID "$unit") == "$pid2" ]] || fail "restarted although policy-rc.d forbade it"
out=$(cv status)
grep -q "note:    conclave-supervisor was replaced on disk since the daemon started" <<<"$out" ||
    fail "status does not say the daemon runs replaced files: $out"
out=$(cv doctor) || :
grep -q "^warning daemon   conclave-supervisor was replaced on disk" <<<"$out" || fail "doctor: $out"
# A worker that dies now comes back from the program the daemon started with, not the new file.
gw=$(gateway_pid)
kill -9 "$gw"
gateway_back() { local p; p=$(gateway_pid); [[ $p != null && $p != "$gw" ]] && cv status --json | jq -e '.workers[] | select(.name == "gateway") | .state == "running"' >/dev/null; }
wait_for 15 gateway_back || fail "the gateway did not come back"
[[ $(readlink "/proc/$(gateway_pid)/exe") == *"(deleted)" ]] ||
    fail "the restarted gateway runs the new file, not the one its daemon started with: $(readlink "/proc/$(gateway_pid)/exe")"
user_systemctl restart "$unit"
out=$(cv status)
grep -q "note:" <<<"$out" && fail "status still asks for a restart after it: $out"
pass "restart forbidden: status and doctor ask for it, workers keep the daemon's programs; systemctl --user restart clears it"

# --- removal and purge keep the user's data ---------------------------------------------------------
ledger_size=$(stat -c %s "$home/groups/team/ledger.jsonl")
ledger_now=$(sha256sum <"$home/groups/team/ledger.jsonl")
dpkg_ -r conclave >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
grep -q "conclave: stopped conclave.service for user $SANDBOX_USER" "$work/remove.log" || fail "removal did not stop the service"
[[ $(user_systemctl show -P ActiveState "$unit") != active ]] || fail "still active after removal"
ledger_stopped=$(sha256sum <"$home/groups/team/ledger.jsonl")
[[ $(head -c "$ledger_size" "$home/groups/team/ledger.jsonl" | sha256sum) == "$ledger_now" ]] ||
    fail "stopping for the removal changed the ledger"
dpkg_ -P conclave >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg -P"; }
[[ $(sha256sum <"$home/groups/team/ledger.jsonl") == "$ledger_stopped" ]] || fail "purge touched the data"
[[ -f $home/config.toml && -f $home/registry.json ]] || fail "removal or purge touched ~/.conclave"
pass "dpkg -r stops the user service; -r and -P leave ~/.conclave alone"

echo "all upgrade checks passed"

#!/usr/bin/env bash
# The foundation, driven as an operator drives it: install the user unit, start conclave.service
# under a real systemd --user, read the journal, and check supervision: worker crash and hang,
# reload with a broken config, supervisor hang (systemd's watchdog), stop, foreground daemon.
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

dump() {
    echo "---- systemctl status" >&2
    user_systemctl status "$unit" >&2 || :
    echo "---- journal" >&2
    user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :
}
trap 'rc=$?; [[ $rc -ne 0 ]] && dump; exit $rc' EXIT

write_config() {
    as_user mkdir -p "$home"
    as_user tee "$home/config.toml" >/dev/null
    as_user chmod 600 "$home/config.toml"
}

write_config <<CFG
# integration test configuration
[runtime]
log_level = "info"
worker_watchdog = "2s"   # find hung workers quickly
restart_burst = 5
restart_interval = "60s"

[gateway]
bind = "127.0.0.1"
port = $port
CFG

# --- install and start, as the README tells an operator -----------------------------------
cv service install | tee /dev/stderr | grep -q "Enabled conclave.service" || fail "service install"
unit_file=$SANDBOX_HOME/.config/systemd/user/$unit
[[ -f $unit_file ]] || fail "service install did not write $unit_file"
grep -q "^ExecStart=$CONCLAVE_PREFIX/libexec/conclave/conclave-supervisor$" "$unit_file" || fail "unit ExecStart does not point at the installed supervisor"
user_systemctl is-enabled "$unit" | grep -q enabled || fail "unit not enabled"
pass "conclave service install wrote and enabled the unit"

# Shorter systemd watchdog so the supervisor-hang case is quick; everything else as shipped.
as_user mkdir -p "$unit_file.d"
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\n' | as_user tee "$unit_file.d/test.conf" >/dev/null
if ldd "$CONCLAVE_PREFIX/libexec/conclave/conclave-supervisor" | grep -q libasan; then
    # LeakSanitizer stops the process with ptrace() at exit, which the unit's seccomp filter
    # (@system-service) refuses; allow @debug for sanitizer builds only.
    printf '[Service]\nSystemCallFilter=@debug\n' | as_user tee "$unit_file.d/asan.conf" >/dev/null
fi
user_systemctl daemon-reload

as_user systemd-analyze --user verify --man=no "$unit_file" || fail "systemd-analyze verify $unit_file"
pass "systemd-analyze --user verify is clean"

user_systemctl start "$unit" || fail "systemctl --user start"
state=$(user_systemctl show -p ActiveState --value "$unit")
[[ $state == active ]] || fail "ActiveState=$state after start"
status_text=$(user_systemctl show -p StatusText --value "$unit")
echo "StatusText: $status_text"
[[ $status_text == "ready; gateway listening on 127.0.0.1:$port; channels "* ]] || fail "unexpected StatusText '$status_text'"
pass "systemctl --user start: active with the supervisor's STATUS"

curl -fsS "http://127.0.0.1:$port/healthz" | jq -e '.status == "ok"' >/dev/null || fail "/healthz"
pass "gateway answers /healthz"

cv status || fail "conclave status"
[[ $(status_field '.workers | map(select(.state == "running")) | length') == 2 ]] || fail "both workers running"
main_pid=$(user_systemctl show -p MainPID --value "$unit")
[[ $(status_field .pid) == "$main_pid" ]] || fail "status pid != MainPID"
pass "conclave status reports both workers running"

jq -e --arg pid "$main_pid" '.pid == ($pid|tonumber) and (.workers|length) == 2 and .heartbeat != null' \
    "$home/daemon_state.json" >/dev/null || fail "daemon_state.json"
pass "daemon_state.json written"

journal_has() { # IDENTIFIER PATTERN
    user_journalctl -u "$unit" -t "$1" -o cat | grep -q -- "$2"
}
wait_for 10 journal_has conclave-supervisor "Conclave is ready" || fail "supervisor line in journal"
wait_for 10 journal_has conclave-gateway "." || fail "no gateway line in journalctl -u $unit"
wait_for 10 journal_has conclave-channels "." || fail "no channels line in journalctl -u $unit"
user_journalctl -u "$unit" -o json | jq -e -s 'map(select(.CONCLAVE_WORKER == "gateway")) | length > 0' >/dev/null \
    || fail "no CONCLAVE_WORKER= field in the journal"
pass "journalctl --user -u $unit shows all three programs with CONCLAVE_* fields"

# --- a worker crashes: restarted, journal says so, service stays up ------------------------
gw_pid=$(status_field '.workers[] | select(.name == "gateway") | .pid')
kill -9 "$gw_pid"
gw_running_again() {
    local p
    p=$(status_field '.workers[] | select(.name == "gateway" and .state == "running") | .pid')
    [[ -n $p && $p != null && $p != "$gw_pid" ]]
}
wait_for 15 gw_running_again || fail "gateway not restarted after kill -9"
journal_has conclave-supervisor "worker gateway (pid $gw_pid) killed by SIGKILL" || fail "journal lacks the crash"
[[ $(user_systemctl show -p ActiveState --value "$unit") == active ]] || fail "service not active after worker crash"
[[ $(status_field '.workers[] | select(.name == "gateway") | .restarts') == 1 ]] || fail "restart count"
wait_for 10 curl -fsS "http://127.0.0.1:$port/healthz" || fail "/healthz after restart"
pass "kill -9 of the gateway: restarted, logged, service active"

# --- a worker hangs: the supervisor's watchdog kills and restarts it ------------------------
ch_pid=$(status_field '.workers[] | select(.name == "channels") | .pid')
kill -STOP "$ch_pid"
ch_running_again() {
    local p
    p=$(status_field '.workers[] | select(.name == "channels" and .state == "running") | .pid')
    [[ -n $p && $p != null && $p != "$ch_pid" ]]
}
wait_for 20 ch_running_again || fail "hung channels worker not restarted"
journal_has conclave-supervisor "worker channels (pid $ch_pid) sent no watchdog ping" || fail "journal lacks the hang"
journal_has conclave-supervisor "worker channels (pid $ch_pid) killed by SIGABRT" || fail "hung worker not killed with SIGABRT"
[[ $(user_systemctl show -p ActiveState --value "$unit") == active ]] || fail "service not active after worker hang"
pass "kill -STOP of channels: SIGABRT, restarted, service active"

# --- reload with a broken config: refused, old one keeps running ----------------------------
cp "$home/config.toml" /tmp/conclave-good-config.$$
write_config <<CFG
[gateway]
bind = "127.0.0.1"
port = "not-a-port"
CFG
user_systemctl reload "$unit" || fail "systemctl reload"
wait_for 10 journal_has conclave-supervisor "config.toml:3: error: \[gateway\] port: invalid value" \
    || fail "journal does not name file, line and key of the bad value"
journal_has conclave-supervisor "reload refused" || fail "reload not refused"
[[ $(user_systemctl show -p ActiveState --value "$unit") == active ]] || fail "not active after bad reload"
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || fail "old gateway gone after bad reload"
pass "reload with a broken config is refused, the old configuration keeps serving"

# --- reload with a good config that moves the gateway --------------------------------------
port2=$((port + 1))
sed "s/^port = .*/port = $port2/" /tmp/conclave-good-config.$$ | write_config
rm -f /tmp/conclave-good-config.$$
user_systemctl reload "$unit" || fail "systemctl reload (good)"
wait_for 10 curl -fsS "http://127.0.0.1:$port2/healthz" || fail "gateway not on the new port after reload"
! curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 || fail "old port still open after reload"
status_text_has() { [[ $(user_systemctl show -p StatusText --value "$unit") == *"$1"* ]]; }
wait_for 5 status_text_has "127.0.0.1:$port2" || fail "StatusText does not show the new port"
pass "reload with a valid config moves the gateway to port $port2"
port=$port2

# --- the supervisor hangs: systemd's watchdog restarts the whole service ---------------------
old_main=$(user_systemctl show -p MainPID --value "$unit")
kill -STOP "$old_main"
new_main_up() {
    local p s
    p=$(user_systemctl show -p MainPID --value "$unit")
    s=$(user_systemctl show -p ActiveState --value "$unit")
    [[ $s == active && $p != 0 && $p != "$old_main" ]]
}
wait_for 30 new_main_up || fail "systemd did not restart the hung supervisor"
[[ $(user_systemctl show -p NRestarts --value "$unit") -ge 1 ]] || fail "NRestarts"
user_journalctl -u "$unit" -o cat | grep -qi "watchdog timeout" || fail "journal lacks systemd's watchdog timeout"
wait_for 10 curl -fsS "http://127.0.0.1:$port/healthz" || fail "/healthz after service restart"
pass "kill -STOP of the supervisor: systemd's watchdog restarted the service"

# --- a worker that keeps crashing: past the burst limit the supervisor exits non-zero and
#     systemd's Restart=on-failure restarts the whole service --------------------------------
sed -i 's/^restart_burst = .*/restart_burst = 2/' "$home/config.toml"
user_systemctl reload "$unit" || fail "reload (burst)"
restarts_before=$(user_systemctl show -p NRestarts --value "$unit")
main_before=$(user_systemctl show -p MainPID --value "$unit")
for i in 1 2 3; do
    wait_for 15 gw_running_again || fail "gateway not running before crash $i"
    gw_pid=$(status_field '.workers[] | select(.name == "gateway") | .pid')
    kill -9 "$gw_pid"
done
service_restarted() {
    local p n
    p=$(user_systemctl show -p MainPID --value "$unit")
    n=$(user_systemctl show -p NRestarts --value "$unit")
    [[ $(user_systemctl show -p ActiveState --value "$unit") == active && $p != 0 && $p != "$main_before" && $n -gt $restarts_before ]]
}
wait_for 30 service_restarted || fail "systemd did not restart the service after the supervisor gave up"
journal_has conclave-supervisor "worker gateway failed 2 times within 1min 0s, giving up" || fail "journal lacks the give-up line"
user_journalctl -u "$unit" -o cat | grep -q "Main process exited, code=exited, status=1/FAILURE" || fail "supervisor did not exit 1"
wait_for 10 curl -fsS "http://127.0.0.1:$port/healthz" || fail "/healthz after the service restart"
pass "past restart_burst the supervisor exits 1 and systemd restarts the service"

# --- stop: clean exit, nothing left ---------------------------------------------------------
user_systemctl stop "$unit" || fail "systemctl stop"
[[ $(user_systemctl show -p ActiveState --value "$unit") == inactive ]] || fail "not inactive after stop"
[[ $(user_systemctl show -p Result --value "$unit") == success ]] || fail "Result after stop is not success"
! pgrep -u "$SANDBOX_UID" -f 'conclave-(supervisor|gateway|channels)' || fail "processes left after stop"
journal_has conclave-supervisor "Conclave stopped" || fail "no clean-stop line"
pass "systemctl --user stop: clean exit, no process left"

cv status >/dev/null 2>&1 && fail "status should fail when stopped"
set +e; cv status >/dev/null 2>&1; rc=$?; set -e
[[ $rc == 3 ]] || fail "conclave status exit $rc when not running (want 3)"
pass "conclave status exits 3 when the daemon is not running"

# --- doctor ---------------------------------------------------------------------------------
cv doctor || fail "doctor on a good config"
as_user sh -c "printf 'secret\n' > '$home/token'; chmod 644 '$home/token'"
write_config <<CFG
[gateway]
bind = "0.0.0.0"
token_file = "token"
port = 70000
CFG
set +e; out=$(cv doctor 2>&1); rc=$?; set -e
echo "$out"
[[ $rc == 1 ]] || fail "doctor exit $rc on a bad config (want 1)"
grep -q "config.toml:4: \[gateway\] port: invalid value 70000" <<<"$out" || fail "doctor does not name line and key"
grep -q "allow_public_bind" <<<"$out" || fail "doctor misses the public bind"
grep -q "readable by group or others.*chmod 600" <<<"$out" || fail "doctor misses the readable secret"
pass "conclave doctor names file, line, key and fixes"

# --- foreground daemon: Ctrl-C (SIGINT) stops it cleanly --------------------------------------
write_config <<CFG
[gateway]
port = $port
CFG
as_user env CONCLAVE_LOG_TARGET=stderr "$CONCLAVE" daemon >/tmp/conclave-fg.$$ 2>&1 &
fg=$!
wait_for 10 curl -fsS "http://127.0.0.1:$port/healthz" || { cat /tmp/conclave-fg.$$; fail "foreground daemon"; }
sup=$(pgrep -u "$SANDBOX_UID" -f 'conclave-supervisor' | head -n 1)
kill -INT "$sup"
set +e; wait "$fg"; rc=$?; set -e
cat /tmp/conclave-fg.$$
grep -q "conclave-supervisor\[[0-9]*\]: info: Conclave stopped" /tmp/conclave-fg.$$ || fail "no readable stderr log"
rm -f /tmp/conclave-fg.$$
[[ $rc == 0 ]] || fail "foreground daemon exit $rc after SIGINT"
! pgrep -u "$SANDBOX_UID" -f 'conclave-(supervisor|gateway|channels)' || fail "processes left after Ctrl-C"
pass "conclave daemon in the foreground stops cleanly on SIGINT"

cv service uninstall || fail "service uninstall"
[[ ! -e $unit_file ]] || fail "uninstall left the unit"
pass "conclave service uninstall"
no_sanitizer_reports
echo "all service integration checks passed"

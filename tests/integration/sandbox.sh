#!/usr/bin/env bash
# tests/integration/sandbox.sh - run integration tests against a REAL
# `systemd --user` manager and a REAL systemd-journald, privately.
#
# Recipe: /work/shared/systemd-sandbox.md (private mount namespace, tmpfs on
# /run/systemd, /run/log, /var/log/journal, /run/user and the test user's
# HOME; the user manager's cgroup created and delegated in every systemd
# cgroup hierarchy).
#
# Two ways to use it:
#
#   1. Runner:   tests/integration/sandbox.sh run TEST_SCRIPT [ARGS...]
#      Sets up the sandbox, runs TEST_SCRIPT as root inside it, tears it all
#      down again.  Exit status = TEST_SCRIPT's status; 77 (automake SKIP)
#      when the sandbox cannot be set up on this machine; 99 (automake
#      ERROR) when the test passed but the teardown failed.
#
#   2. Library:  TEST_SCRIPT sees these functions (exported with export -f
#      for bash scripts; or `. "$SANDBOX_LIB"`):
#        as_user CMD...          run CMD as the test user (XDG_RUNTIME_DIR,
#                                HOME, USER, DBUS_SESSION_BUS_ADDRESS if the
#                                user bus exists, caller's PATH)
#        user_systemctl ARGS...  as_user systemctl --user --no-pager ARGS...
#        user_journalctl ARGS... as_user journalctl --user --no-pager ARGS...
#        wait_for SECS CMD...    poll CMD every 0.1 s until it succeeds;
#                                return 1 (with CMD's last output) on timeout
#        sandbox_log MSG...      timestamped message on stderr
#        sandbox_write_unit NAME write stdin to the user's unit NAME (as the
#                                user) and daemon-reload
#        sandbox_require_user_bus  fail clearly unless the user D-Bus exists
#      and these variables: SANDBOX_UID, SANDBOX_GID, SANDBOX_USER,
#      SANDBOX_HOME, SANDBOX_RUNTIME_DIR, SANDBOX_STATE_DIR (journald.log,
#      manager.log), SANDBOX_LIB (this file), SANDBOX_INSIDE=1.
#      A test can re-exec itself through the runner when started directly:
#        if [[ "${SANDBOX_INSIDE:-}" != 1 ]]; then
#            exec bash "$(dirname "$0")/sandbox.sh" run "$0" "$@"; fi
#        . "$SANDBOX_LIB"
#
# What the test sees: / is the machine's, except for private tmpfs on
# /run/systemd, /run/log, /var/log/journal, /run/user and the test user's
# HOME (empty at every run).  The user `conclave-test` (uid 1500) is created
# once with useradd and kept.  Unit ExecStart= binaries must be reachable by
# that user (e.g. not under /root, which is 0700).  Runs for the same uid
# are serialized with flock on /run/lock/conclave-sandbox-UID.lock; a
# different CONCLAVE_SANDBOX_UID/USER pair can run in parallel.  A runner
# killed with SIGKILL cannot clean up: the next run then skips and names the
# leftover pids.
#
# Knobs (environment, all optional):
#   CONCLAVE_SANDBOX_UID      test user's uid (default 1500)
#   CONCLAVE_SANDBOX_USER     name when the user must be created
#                             (default conclave-test)
#   CONCLAVE_SANDBOX_TIMEOUT  seconds to wait for the manager (default 20)
#   CONCLAVE_SANDBOX_REQUIRE=1  a sandbox that cannot be set up is an ERROR
#                             (exit 99) instead of a SKIP (exit 77); for CI
#                             machines where it is known to work.
#   CONCLAVE_SANDBOX_LOCK_TIMEOUT  seconds to wait for a concurrent run with
#                             the same uid (default 1800)
#   CONCLAVE_SANDBOX_VERBOSE=1  more sandbox_log output.

# ---------------------------------------------------------------------------
# Library part: safe to source (defines functions only).
# ---------------------------------------------------------------------------

sandbox_log() {
    printf '[sandbox %(%H:%M:%S)T] %s\n' -1 "$*" >&2
}

_sandbox_need_inside() {
    if [[ -z "${SANDBOX_UID:-}" || -z "${SANDBOX_RUNTIME_DIR:-}" ]]; then
        sandbox_log "ERROR: $1 used outside the sandbox (run the test via tests/integration/sandbox.sh run TEST)"
        return 2
    fi
}

as_user() {
    _sandbox_need_inside as_user || return
    local -a envv=(
        "XDG_RUNTIME_DIR=$SANDBOX_RUNTIME_DIR"
        "HOME=$SANDBOX_HOME"
        "USER=$SANDBOX_USER"
        "LOGNAME=$SANDBOX_USER"
        "PATH=$PATH"
    )
    if [[ -S "$SANDBOX_RUNTIME_DIR/bus" ]]; then
        envv+=("DBUS_SESSION_BUS_ADDRESS=unix:path=$SANDBOX_RUNTIME_DIR/bus")
    fi
    setpriv --reuid="$SANDBOX_UID" --regid="${SANDBOX_GID:-$SANDBOX_UID}" --init-groups -- \
        env -u DBUS_SESSION_BUS_ADDRESS -u MAIL -u SUDO_USER -u SUDO_UID -u SUDO_GID \
        "${envv[@]}" "$@"
}

user_systemctl() {
    as_user systemctl --user --no-pager "$@"
}

user_journalctl() {
    as_user journalctl --user --no-pager "$@"
}

# wait_for TIMEOUT_SECONDS CMD...   (TIMEOUT may have a fractional part)
wait_for() {
    if (($# < 2)); then
        sandbox_log "usage: wait_for TIMEOUT_SECONDS CMD..."
        return 2
    fi
    local timeout=$1
    shift
    if [[ ! "$timeout" =~ ^([0-9]+)(\.([0-9]{1,6}))?$ ]]; then
        sandbox_log "wait_for: bad timeout '$timeout'"
        return 2
    fi
    local frac=${BASH_REMATCH[3]:-0}
    # budget in microseconds
    local budget=$((10#${BASH_REMATCH[1]} * 1000000 + 10#$frac * 10 ** (6 - ${#frac})))
    local start now out="" rc=0
    start=${EPOCHREALTIME/[.,]/}
    sandbox_log "waiting up to ${timeout}s for: $*"
    while :; do
        if out=$("$@" 2>&1); then
            [[ -n "${CONCLAVE_SANDBOX_VERBOSE:-}" ]] &&
                sandbox_log "  ok after $(((${EPOCHREALTIME/[.,]/} - start) / 1000)) ms: $*"
            return 0
        else
            rc=$?
        fi
        now=${EPOCHREALTIME/[.,]/}
        if ((now - start >= budget)); then
            sandbox_log "TIMEOUT after ${timeout}s waiting for: $* (last status $rc)"
            if [[ -n "$out" ]]; then
                printf '%s\n' "$out" | tail -n 20 | sed 's/^/    | /' >&2
            fi
            return 1
        fi
        sleep 0.1
    done
}

# sandbox_write_unit NAME  < unit-file-text
sandbox_write_unit() {
    _sandbox_need_inside sandbox_write_unit || return
    local name=${1:?usage: sandbox_write_unit NAME < text}
    local dir="$SANDBOX_HOME/.config/systemd/user"
    as_user mkdir -p "$dir" || return
    as_user tee "$dir/$name" >/dev/null || return
    user_systemctl daemon-reload
}

sandbox_require_user_bus() {
    _sandbox_need_inside sandbox_require_user_bus || return
    if [[ ! -e /usr/lib/systemd/user/dbus.socket && ! -e /lib/systemd/user/dbus.socket ]]; then
        sandbox_log "ERROR: no user D-Bus: package 'dbus-user-session' is not installed (apt-get install dbus-user-session)"
        return 1
    fi
    if ! wait_for 5 test -S "$SANDBOX_RUNTIME_DIR/bus"; then
        sandbox_log "ERROR: user D-Bus socket $SANDBOX_RUNTIME_DIR/bus missing (dbus.socket not started?)"
        user_systemctl status dbus.socket >&2 || :
        return 1
    fi
}

_sandbox_export_lib() {
    export -f sandbox_log _sandbox_need_inside as_user user_systemctl \
        user_journalctl wait_for sandbox_write_unit sandbox_require_user_bus
}

# ---------------------------------------------------------------------------
# Runner part.
# ---------------------------------------------------------------------------

_SANDBOX_SKIP=77
_SANDBOX_HARD=99

# Setup could not be done: loud SKIP (or ERROR with CONCLAVE_SANDBOX_REQUIRE=1).
_sandbox_skip() {
    local code=$_SANDBOX_SKIP word=SKIPPED
    if [[ "${CONCLAVE_SANDBOX_REQUIRE:-0}" == 1 ]]; then
        code=$_SANDBOX_HARD
        word="FAILED (CONCLAVE_SANDBOX_REQUIRE=1)"
    fi
    {
        echo "######################################################################"
        echo "# systemd sandbox: $*"
        echo "# => integration tests are $word: ${_SANDBOX_TEST:-?}"
        echo "######################################################################"
    } >&2
    exit "$code"
}

_sandbox_verbose() {
    if [[ -n "${CONCLAVE_SANDBOX_VERBOSE:-}" ]]; then sandbox_log "$@"; fi
}

# True if PID exists and is not a zombie.
_sandbox_alive() {
    local pid=$1 stat
    [[ -n "$pid" ]] || return 1
    { stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ "${stat:0:1}" != Z ]]
}

# _sandbox_stop_pid PID NAME GRACE_SECONDS: SIGTERM, wait, SIGKILL, reap.
_sandbox_stop_pid() {
    local pid=$1 name=$2 grace=$3 i
    [[ -n "$pid" ]] || return 0
    if _sandbox_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || :
        for ((i = 0; i < grace * 10; i++)); do
            _sandbox_alive "$pid" || break
            sleep 0.1
        done
        if _sandbox_alive "$pid"; then
            sandbox_log "$name (pid $pid) ignored SIGTERM for ${grace}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || :
            for ((i = 0; i < 50; i++)); do
                _sandbox_alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    wait "$pid" 2>/dev/null || :
}

# PIDs in a cgroup subtree.
_sandbox_cgroup_pids() {
    local dir=$1
    [[ -d "$dir" ]] || return 0
    find "$dir" -name cgroup.procs -type f -exec cat {} + 2>/dev/null
}

_sandbox_detect_hierarchies() {
    _SANDBOX_HIERS=()
    local root=/sys/fs/cgroup
    if [[ "$(stat -fc %T "$root" 2>/dev/null)" == cgroup2fs ]]; then
        _SANDBOX_HIERS=("$root") # pure unified layout
        return 0
    fi
    if [[ -d "$root/systemd" ]] && [[ "$(stat -fc %T "$root/systemd")" == cgroupfs ]] &&
        grep -qs " $root/systemd cgroup .*name=systemd" /proc/self/mounts; then
        _SANDBOX_HIERS+=("$root/systemd")
    fi
    if [[ -d "$root/unified" ]] && [[ "$(stat -fc %T "$root/unified")" == cgroup2fs ]]; then
        _SANDBOX_HIERS+=("$root/unified")
    fi
    ((${#_SANDBOX_HIERS[@]} > 0))
}

_sandbox_dump_diagnostics() {
    local f
    for f in "$SANDBOX_STATE_DIR"/*.log; do
        [[ -s "$f" ]] || continue
        echo "---- $f (last 30 lines) ----" >&2
        tail -n 30 "$f" >&2
    done
    if [[ -n "${_SANDBOX_JOURNALD_PID:-}" ]] && _sandbox_alive "$_SANDBOX_JOURNALD_PID"; then
        echo "---- journal (last 40 lines) ----" >&2
        timeout 10 journalctl --no-pager -n 40 >&2 2>&1 || :
    fi
}

_sandbox_setup() {
    local uid=${CONCLAVE_SANDBOX_UID:-1500}
    local want_name=${CONCLAVE_SANDBOX_USER:-conclave-test}
    local timeout=${CONCLAVE_SANDBOX_TIMEOUT:-20}
    local pw name gid home

    # --- private mounts -----------------------------------------------------
    local m
    for m in /run/systemd /run/log /run/user /var/log/journal; do
        [[ -d "$m" ]] || mkdir -p "$m" || _sandbox_skip "cannot create mount point $m"
    done
    # A booted system has /run as a mount point, and systemd relies on it: for units with
    # options that imply MountAPIVFS= (ProtectKernelTunables=, ProtectProc=, ...) it mounts an
    # empty tmpfs over a /run that is not one, hiding the journal and notify sockets.
    mountpoint -q /run || mount -n --rbind /run /run ||
        _sandbox_skip "cannot make /run a mount point (mount --rbind /run /run)"
    mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/systemd ||
        _sandbox_skip "mount tmpfs on /run/systemd failed (inside unshare -m)"
    mkdir -p /run/systemd/system /run/systemd/journal /run/systemd/sandbox ||
        _sandbox_skip "mkdir in the private /run/systemd failed"
    # Where systemd assembles a unit's mount namespace (ProtectSystem=, PrivateTmp=, ...). PID 1
    # creates it on a booted system; a user manager cannot (EACCES), and without it every such
    # user unit fails with 226/NAMESPACE.
    mkdir -m 0700 /run/systemd/unit-root ||
        _sandbox_skip "cannot create /run/systemd/unit-root"
    SANDBOX_STATE_DIR=/run/systemd/sandbox
    mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/log ||
        _sandbox_skip "mount tmpfs on /run/log failed"
    mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /var/log/journal ||
        _sandbox_skip "mount tmpfs on /var/log/journal failed"
    mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/user ||
        _sandbox_skip "mount tmpfs on /run/user failed"

    # --- journald -------------------------------------------------------------
    [[ -s /etc/machine-id ]] ||
        _sandbox_skip "/etc/machine-id is missing or empty (journald and the user manager need it; run systemd-machine-id-setup)"
    /lib/systemd/systemd-journald </dev/null >"$SANDBOX_STATE_DIR/journald.log" 2>&1 9>&- &
    _SANDBOX_JOURNALD_PID=$!
    _sandbox_verbose "systemd-journald started, pid $_SANDBOX_JOURNALD_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S /run/systemd/journal/socket && -S /run/systemd/journal/stdout &&
            -S /run/systemd/journal/io.systemd.journal ]] && break
        _sandbox_alive "$_SANDBOX_JOURNALD_PID" || break
        sleep 0.1
    done
    if ! [[ -S /run/systemd/journal/socket && -S /run/systemd/journal/stdout ]]; then
        _sandbox_dump_diagnostics
        _sandbox_skip "systemd-journald did not create its sockets in /run/systemd/journal within 10 s"
    fi
    if ! timeout 15 journalctl --flush >"$SANDBOX_STATE_DIR/flush.log" 2>&1; then
        _sandbox_dump_diagnostics
        _sandbox_skip "journalctl --flush failed (per-user journals need persistent storage)"
    fi

    # --- the test user --------------------------------------------------------
    pw=$(getent passwd "$uid") || pw=""
    if [[ -z "$pw" ]]; then
        if getent passwd "$want_name" >/dev/null; then
            _sandbox_skip "user '$want_name' exists but not with uid $uid; pick another CONCLAVE_SANDBOX_USER/CONCLAVE_SANDBOX_UID pair"
        fi
        sandbox_log "creating test user $want_name (uid $uid)"
        useradd -m -u "$uid" -U -s /bin/bash -c "Conclave integration tests" "$want_name" \
            >"$SANDBOX_STATE_DIR/useradd.log" 2>&1 ||
            {
                cat "$SANDBOX_STATE_DIR/useradd.log" >&2
                _sandbox_skip "useradd -m -u $uid $want_name failed"
            }
        pw=$(getent passwd "$uid") || _sandbox_skip "user $uid not found after useradd"
    fi
    IFS=: read -r name _ _ gid _ home _ <<<"$pw"
    case "$home" in
    / | "" | /nonexistent | /proc* | /sys* | /dev* | /run* | /usr* | /etc* | /bin* | /sbin* | /lib*)
        _sandbox_skip "uid $uid ($name) has an unusable home directory '$home'"
        ;;
    esac
    [[ -d "$home" ]] || install -d -o "$uid" -g "$gid" -m 0700 "$home" ||
        _sandbox_skip "cannot create home $home"
    # Fresh, private HOME for every run: nothing persists between runs.
    mount -n -t tmpfs -o "mode=0700,uid=$uid,gid=$gid,nosuid,nodev" tmpfs "$home" ||
        _sandbox_skip "mount tmpfs on $home failed"
    install -d -o "$uid" -g "$gid" -m 0700 "/run/user/$uid" ||
        _sandbox_skip "cannot create /run/user/$uid"

    export SANDBOX_UID=$uid SANDBOX_GID=$gid SANDBOX_USER=$name SANDBOX_HOME=$home
    export SANDBOX_RUNTIME_DIR=/run/user/$uid SANDBOX_STATE_DIR

    # --- cgroups --------------------------------------------------------------
    _sandbox_detect_hierarchies ||
        _sandbox_skip "no systemd cgroup hierarchy found under /sys/fs/cgroup (need name=systemd v1 and/or cgroup2)"
    local rel="user.slice/user-$uid.slice/user@$uid.service" h pids n
    _SANDBOX_CG_MANAGER=()
    for h in "${_SANDBOX_HIERS[@]}"; do
        if [[ -d "$h/$rel" ]]; then
            pids=$(_sandbox_cgroup_pids "$h/$rel" | tr '\n' ' ')
            if [[ -n "${pids// /}" ]]; then
                _sandbox_skip "cgroup $h/$rel is in use by pids $pids- a run that was killed with SIGKILL leaves its manager (and its journald) behind; kill those pids, then rmdir the cgroup tree deepest first"
            fi
            sandbox_log "reusing stale empty cgroup $h/$rel (left by an earlier run)"
        fi
        # retried: a concurrent sandbox (other uid) may rmdir an empty parent
        for n in 1 2 3; do
            mkdir -p "$h/$rel" 2>"$SANDBOX_STATE_DIR/cgroup.log" && break
            sleep 0.1
        done
        [[ -d "$h/$rel" ]] ||
            _sandbox_skip "cannot create cgroup $h/$rel: $(<"$SANDBOX_STATE_DIR/cgroup.log")"
        _SANDBOX_CG_MANAGER+=("$h/$rel")
        chown -R "$uid:$gid" "$h/$rel" ||
            _sandbox_skip "cannot delegate cgroup $h/$rel to uid $uid (chown -R failed)"
    done

    # --- the user manager -----------------------------------------------------
    # The subshell moves itself into the manager cgroup in every hierarchy and
    # then execs the manager, so only the manager (not this shell) lives there.
    (
        for d in "${_SANDBOX_CG_MANAGER[@]}"; do
            echo "$BASHPID" >"$d/cgroup.procs" || {
                echo "sandbox: cannot move pid $BASHPID into $d" >&2
                exit 97
            }
        done
        exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
            env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME="$home" USER="$name" LOGNAME="$name" SHELL=/bin/bash LANG=C.UTF-8 \
            XDG_RUNTIME_DIR="/run/user/$uid" \
            /lib/systemd/systemd --user --log-target=journal-or-kmsg
    ) </dev/null >"$SANDBOX_STATE_DIR/manager.log" 2>&1 9>&- &
    _SANDBOX_MANAGER_PID=$!
    _sandbox_verbose "systemd --user started, pid $_SANDBOX_MANAGER_PID"

    local state="" deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! _sandbox_alive "$_SANDBOX_MANAGER_PID"; then
            local mrc=0
            wait "$_SANDBOX_MANAGER_PID" || mrc=$?
            _SANDBOX_MANAGER_PID=""
            _sandbox_dump_diagnostics
            _sandbox_skip "systemd --user (uid $uid) exited during startup with status $mrc"
        fi
        state=$(timeout 5 setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
            env XDG_RUNTIME_DIR="/run/user/$uid" HOME="$home" \
            systemctl --user is-system-running 2>/dev/null) || :
        case "$state" in running | degraded) break ;; esac
        sleep 0.1
    done
    case "$state" in
    running) ;;
    degraded)
        sandbox_log "user manager is degraded; failed units:"
        user_systemctl --failed --plain --no-legend >&2 || :
        ;;
    *)
        _sandbox_dump_diagnostics
        _sandbox_skip "systemd --user did not reach running/degraded within ${timeout}s (state: '${state:-no answer}')"
        ;;
    esac
    _sandbox_verbose "user manager is $state"
    # systemctl/journalctl --user do not need the user D-Bus (systemctl uses
    # $XDG_RUNTIME_DIR/systemd/private), but systemd-run/busctl --user and
    # sd_bus_open_user() do.  Say so early; sandbox_require_user_bus fails.
    if [[ ! -S "$SANDBOX_RUNTIME_DIR/bus" ]]; then
        sandbox_log "NOTE: no user D-Bus at $SANDBOX_RUNTIME_DIR/bus (package dbus-user-session missing?); systemctl/journalctl --user still work"
    fi
}

_sandbox_cleanup() {
    local rc=$? problems=0
    trap - EXIT
    trap '' INT TERM HUP
    set +e

    # 0. interrupted: stop the test script first
    if [[ -n "${_SANDBOX_TEST_PID:-}" ]]; then
        sandbox_log "interrupted: stopping $_SANDBOX_TEST (pid $_SANDBOX_TEST_PID)"
        _sandbox_stop_pid "$_SANDBOX_TEST_PID" "test script" 5
    fi

    # 1. stop the user units and the manager
    if [[ -n "${_SANDBOX_MANAGER_PID:-}" ]] && _sandbox_alive "$_SANDBOX_MANAGER_PID"; then
        # `systemctl --user exit` stops every unit (exit.target), then the
        # manager exits by itself.
        timeout 10 setpriv --reuid="$SANDBOX_UID" --regid="$SANDBOX_GID" --init-groups -- \
            env XDG_RUNTIME_DIR="$SANDBOX_RUNTIME_DIR" HOME="$SANDBOX_HOME" \
            systemctl --user --no-block exit >/dev/null 2>&1
        local i
        for ((i = 0; i < 200; i++)); do
            _sandbox_alive "$_SANDBOX_MANAGER_PID" || break
            sleep 0.1
        done
        if _sandbox_alive "$_SANDBOX_MANAGER_PID"; then
            sandbox_log "user manager did not exit within 20 s of 'systemctl --user exit'"
            problems=1
        fi
    fi
    _sandbox_stop_pid "${_SANDBOX_MANAGER_PID:-}" "systemd --user" 5

    # 2. anything still in the manager's cgroups was started by it: kill by pid
    local d pid pids n
    for n in 1 2 3 4 5 6 7 8 9 10; do
        pids=""
        for d in "${_SANDBOX_CG_MANAGER[@]}"; do
            pids+=" $(_sandbox_cgroup_pids "$d" | tr '\n' ' ')"
        done
        [[ -n "${pids// /}" ]] || break
        ((n == 1)) && sandbox_log "killing leftover processes of the user manager: $pids"
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
        sleep 0.2
    done
    if [[ -n "${pids// /}" ]]; then
        sandbox_log "processes still in the manager cgroup: $pids"
        problems=1
    fi

    # 3. journald
    _sandbox_stop_pid "${_SANDBOX_JOURNALD_PID:-}" systemd-journald 10

    # 4. any other process still in this private mount namespace was started
    #    by this run (the test script's stragglers): kill by pid.
    local p strays=""
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
        [[ /proc/$p/ns/mnt -ef /proc/$$/ns/mnt ]] || continue
        _sandbox_alive "$p" || continue
        strays+=" $p"
    done
    if [[ -n "$strays" ]]; then
        sandbox_log "killing processes the test left behind in the sandbox:$strays"
        # shellcheck disable=SC2086
        kill -KILL $strays 2>/dev/null
        sleep 0.2
    fi

    # 5. cgroups: the manager's whole subtree (deepest first), then its
    #    parents user-UID.slice and user.slice if nothing else uses them
    #    (rmdir fails on a cgroup that has children or processes).
    for d in "${_SANDBOX_CG_MANAGER[@]}"; do
        [[ -d "$d" ]] || continue
        for n in 1 2 3 4 5 6 7 8 9 10; do
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
            [[ -d "$d" ]] || break
            sleep 0.2
        done
        if [[ -d "$d" ]]; then
            sandbox_log "could not remove cgroup $d"
            problems=1
        fi
    done
    for d in "${_SANDBOX_CG_MANAGER[@]}"; do
        rmdir "${d%/*}" "${d%/*/*}" 2>/dev/null
    done

    if ((problems)) && ((rc == 0)); then
        sandbox_log "ERROR: the test passed but the sandbox teardown failed"
        rc=$_SANDBOX_HARD
    fi
    exit "$rc"
}

# Runs inside the private mount namespace.
_sandbox_inside() {
    _SANDBOX_TEST=$1
    shift
    _SANDBOX_TEST_PID=""
    _SANDBOX_CG_MANAGER=()
    trap _sandbox_cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM

    _sandbox_setup

    export SANDBOX_LIB=$_SANDBOX_SELF SANDBOX_INSIDE=1
    _sandbox_export_lib
    sandbox_log "sandbox up (uid $SANDBOX_UID '$SANDBOX_USER', HOME $SANDBOX_HOME); running $_SANDBOX_TEST $*"

    # In the background + `wait`, so that a signal to this shell (timeout,
    # Ctrl-C) runs the cleanup at once instead of after the test finishes.
    # bash starts background commands with SIGINT/SIGQUIT ignored; give the
    # test (and the daemons it starts) default dispositions back.
    local rc=0
    if [[ -x "$_SANDBOX_TEST" ]]; then
        env --default-signal=INT,QUIT "$_SANDBOX_TEST" "$@" <&0 9>&- &
    else
        env --default-signal=INT,QUIT bash "$_SANDBOX_TEST" "$@" <&0 9>&- &
    fi
    _SANDBOX_TEST_PID=$!
    wait "$_SANDBOX_TEST_PID" || rc=$?
    _SANDBOX_TEST_PID=""
    sandbox_log "$_SANDBOX_TEST exited with status $rc"
    exit "$rc"
}

_sandbox_run() {
    if (($# < 1)); then
        echo "usage: $0 run TEST_SCRIPT [ARGS...]" >&2
        exit 2
    fi
    local test=$1
    shift
    [[ -f "$test" ]] || {
        echo "sandbox: no such test script: $test" >&2
        exit 2
    }
    test=$(realpath "$test")
    _SANDBOX_TEST=$test

    # Already inside a sandbox: just run the test.
    if [[ "${SANDBOX_INSIDE:-}" == 1 && -n "${SANDBOX_UID:-}" ]]; then
        _sandbox_export_lib
        if [[ -x "$test" ]]; then exec "$test" "$@"; else exec bash "$test" "$@"; fi
    fi

    [[ "$(id -u)" == 0 ]] ||
        _sandbox_skip "must run as root (unshare -m, cgroup delegation, setpriv); running as uid $(id -u)"
    local c
    for c in unshare setpriv mount umount useradd getent flock timeout realpath find \
        /lib/systemd/systemd /lib/systemd/systemd-journald systemctl journalctl; do
        command -v "$c" >/dev/null 2>&1 || _sandbox_skip "required program '$c' not found"
    done
    if [[ -d /run/systemd/system ]]; then
        _sandbox_skip "this machine runs systemd as PID 1; use its real user manager instead of this sandbox"
    fi

    local probe
    if ! probe=$(unshare -m --propagation private true 2>&1); then
        _sandbox_skip "'unshare -m --propagation private' is not permitted here: ${probe:-unknown error}"
    fi

    # Serialize runs using the same uid (the cgroup paths are machine-wide).
    local lockdir=/run/lock
    [[ -d "$lockdir" && -w "$lockdir" ]] || lockdir=/tmp
    local lock="$lockdir/conclave-sandbox-${CONCLAVE_SANDBOX_UID:-1500}.lock"
    # fd 9 is held by this process only (closed for the daemons and the test),
    # so a killed run cannot keep the lock through orphans.
    exec 9>"$lock" || _sandbox_skip "cannot open lock file $lock"
    local lock_timeout=${CONCLAVE_SANDBOX_LOCK_TIMEOUT:-1800}
    if ! flock -w "$lock_timeout" 9; then
        _sandbox_skip "another sandbox run held $lock for ${lock_timeout}s"
    fi

    exec unshare -m --propagation private -- bash "$_SANDBOX_SELF" __inside "$test" "$@"
}

_sandbox_main() {
    set -euo pipefail
    _SANDBOX_SELF=$(realpath "${BASH_SOURCE[0]}")
    local cmd=${1:-}
    shift || :
    case "$cmd" in
    run) _sandbox_run "$@" ;;
    __inside) _sandbox_inside "$@" ;;
    *)
        echo "usage: $0 run TEST_SCRIPT [ARGS...]   (or source it from a test run by it)" >&2
        exit 2
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    _sandbox_main "$@"
fi

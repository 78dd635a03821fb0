#!/usr/bin/env bash
# tests/integration/test_sandbox_selftest.sh - proves the systemd sandbox
# (tests/integration/sandbox.sh) works: a Type=notify user service reaches
# active (running) with its STATUS=, its stdout is visible under
# `journalctl --user -u hello.service` for the user, and it stops again.
#
# Run: tests/integration/sandbox.sh run tests/integration/test_sandbox_selftest.sh
# (running this file directly re-executes it through the sandbox).
# Exit: 0 pass, 1 fail, 77 skip (sandbox not possible here).
#
# SELFTEST_NOTIFIER=c forces the compiled C notifier even when python3 exists.
set -euo pipefail

if [[ "${SANDBOX_INSIDE:-}" != 1 ]]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    . "$here/lib.sh"
    integration_preamble
    exec bash "$here/sandbox.sh" run "${BASH_SOURCE[0]}" "$@"
fi
# shellcheck source-path=SCRIPTDIR source=sandbox.sh
. "$SANDBOX_LIB"

fail() {
    sandbox_log "FAIL: $*"
    user_systemctl status --lines=20 hello.service >&2 || :
    exit 1
}

unit=hello.service
marker="conclave-selftest-marker-$$-$RANDOM"
status_text=hello-ready

# --- the notifier: python3 if the test user can run it, else a C helper -----
notifier=${SELFTEST_NOTIFIER:-auto}
if [[ "$notifier" == auto ]]; then
    if [[ -x /usr/bin/python3 ]] && as_user /usr/bin/python3 -c 'import socket' 2>/dev/null; then
        notifier=python
    else
        notifier=c
    fi
fi

case "$notifier" in
python)
    # No backslashes, '%' or '$' in the code: systemd would unescape/expand them.
    py='import os, socket, sys, time; print(sys.argv[1], flush=True); a = os.environ["NOTIFY_SOCKET"]; a = chr(0) + a[1:] if a[:1] == "@" else a; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(("READY=1" + chr(10) + "STATUS=" + sys.argv[2]).encode(), a); time.sleep(3600)'
    exec_start="/usr/bin/python3 -u -c '$py' $marker $status_text"
    ;;
c)
    command -v cc >/dev/null || fail "neither a usable /usr/bin/python3 nor cc to build the notifier"
    # Plain socket code, no libsystemd: what sd_notify(0, "READY=1\nSTATUS=...") sends.
    as_user tee "$SANDBOX_HOME/hello-notify.c" >/dev/null <<'EOF'
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char msg[256];
    socklen_t len;
    int fd;

    if (argc < 3 || !path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: NOTIFY_SOCKET=... %s MARKER STATUS\n", argv[0]);
        return 2;
    }
    printf("%s\n", argv[1]);
    fflush(stdout);
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path));
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", argv[2]);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, strlen(msg), 0, (struct sockaddr *) &sa, len) < 0) {
        perror("sd_notify");
        return 1;
    }
    close(fd);
    for (;;)
        pause();
}
EOF
    as_user cc -std=c99 -D_GNU_SOURCE -Wall -Werror -o "$SANDBOX_HOME/hello-notify" \
        "$SANDBOX_HOME/hello-notify.c" || fail "could not compile the C notifier"
    exec_start="$SANDBOX_HOME/hello-notify $marker $status_text"
    ;;
*) fail "SELFTEST_NOTIFIER must be auto, python or c (got '$notifier')" ;;
esac
sandbox_log "notifier: $notifier"

sandbox_write_unit "$unit" <<EOF || fail "could not install $unit"
[Unit]
Description=Conclave sandbox selftest service

[Service]
Type=notify
ExecStart=$exec_start
TimeoutStartSec=15s
TimeoutStopSec=5s
EOF

# --- start --------------------------------------------------------------------
user_systemctl start "$unit" || fail "systemctl --user start $unit failed"

show=$(user_systemctl show -p ActiveState,SubState,StatusText,Type "$unit") ||
    fail "systemctl --user show $unit failed"
printf '%s\n' "$show" | sed 's/^/    show: /' >&2
for want in ActiveState=active SubState=running "StatusText=$status_text" Type=notify; do
    grep -qxF "$want" <<<"$show" || fail "expected '$want' in systemctl --user show $unit"
done

status=$(user_systemctl status "$unit") || fail "systemctl --user status $unit failed"
grep -qF 'active (running)' <<<"$status" || fail "status does not say active (running)"
grep -qF "Status: \"$status_text\"" <<<"$status" || fail "status does not show Status: \"$status_text\""

# --- journal --------------------------------------------------------------------
# The marker went to stdout -> journald stdout stream; look for it the way an
# operator would: as the user, journalctl --user -u UNIT.
journal_has_marker() {
    user_journalctl -u "$1" -o cat | grep -qxF "$2"
}
wait_for 10 journal_has_marker "$unit" "$marker" ||
    fail "marker '$marker' not shown by journalctl --user -u $unit"
user_journalctl -u "$unit" -o short-monotonic | sed 's/^/    journal: /' >&2

# --- stop -----------------------------------------------------------------------
user_systemctl stop "$unit" || fail "systemctl --user stop $unit failed"
state=$(user_systemctl show -p ActiveState --value "$unit")
[[ "$state" == inactive ]] || fail "after stop ActiveState is '$state', expected inactive"
if user_systemctl is-active --quiet "$unit"; then
    fail "$unit still active after stop"
fi

sandbox_log "PASS: sandbox selftest ($notifier notifier)"

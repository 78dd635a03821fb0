#!/usr/bin/env bash
# Every command in the runbooks is run as written: the ```console blocks of docs/commands.md,
# docs/operations.md and docs/troubleshooting.md, in that order, as the test user in one
# scratch directory, against the suite installed with `make install` into ~/.local (so
# `conclave` is on PATH), exactly as a user following the documents top to bottom would.
# Each command must exit 0 unless it ends with "# → exit N" (then N) or "# → keeps running"
# (then it must still run after 3 s; it gets SIGINT, as from Ctrl-C). The output shown in the
# documents is not compared: times, ids and pids differ on every run.
#
# What the test prepares, as the documents say a reader has: ~/bin/echo-actor (the test actor
# of tests/integration/actors, the documents' command actor), and a configuration whose only
# setting is a free gateway port, which replaces the documented default 7777 in commands.
# CONCLAVE_DOCS_SHOW=1 prints every command's output (for writing the documents).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
top=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
port=$((20000 + RANDOM % 20000))
home=$SANDBOX_HOME/.conclave
scratch=$SANDBOX_HOME/docs
unit=conclave.service
trap 'rc=$?; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 40 >&2 || :; fi; exit $rc' EXIT

as_user mkdir -p -m 0700 "$home"
as_user mkdir -p "$SANDBOX_HOME/bin" "$scratch"
printf '[gateway]\nport = %s\n' "$port" | as_user tee "$home/config.toml" >/dev/null
as_user chmod 600 "$home/config.toml"
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
if ldd "$CONCLAVE_PREFIX/libexec/conclave/conclave-supervisor" | grep -q libasan; then
    # LeakSanitizer stops the process with ptrace() at exit, which the unit's seccomp filter
    # (@system-service) refuses (and then exits 1): allow @debug for sanitizer builds only.
    as_user mkdir -p "$SANDBOX_HOME/.config/systemd/user/conclave.service.d"
    printf '[Service]\nSystemCallFilter=@debug\n' |
        as_user tee "$SANDBOX_HOME/.config/systemd/user/conclave.service.d/asan.conf" >/dev/null
fi

python3 "$top/tests/docs/console_commands.py" "$top/docs/commands.md" "$top/docs/operations.md" \
    "$top/docs/troubleshooting.md" >/tmp/docs-commands.$$ || fail "cannot read the documents' commands"
total=$(wc -l </tmp/docs-commands.$$)
((total > 50)) || fail "only $total runnable commands found in the documents"

run_as_reader() { # COMMAND: in the scratch directory, as the test user, with conclave on PATH
    as_user env PATH="$CONCLAVE_PREFIX/bin:$PATH" DOCS_COMMAND="$1" bash -c 'cd "$0" && eval "$DOCS_COMMAND"' "$scratch"
}
export -f run_as_reader
export CONCLAVE_PREFIX scratch

n=0
while IFS= read -r record; do
    where=$(jq -r .where <<<"$record")
    where=${where#"$top/"}
    expect=$(jq -r .expect <<<"$record")
    cmd=$(jq -r .command <<<"$record")
    cmd=${cmd//:7777/:$port}
    n=$((n + 1))
    rc=0
    if [[ $expect == running ]]; then
        timeout -k 20 -s INT 3 bash -c 'run_as_reader "$1"' _ "$cmd" >/tmp/docs-out.$$ 2>&1 </dev/null || rc=$?
        want=124
    else
        timeout -k 10 120 bash -c 'run_as_reader "$1"' _ "$cmd" >/tmp/docs-out.$$ 2>&1 </dev/null || rc=$?
        want=$expect
    fi
    if [[ ${CONCLAVE_DOCS_SHOW:-} == 1 ]]; then
        printf '\n[%s] $ %s   (exit %s)\n' "$where" "$cmd" "$rc"
        cat /tmp/docs-out.$$
    fi
    if [[ $rc != "$want" ]]; then
        echo "---- output of: $cmd" >&2
        cat /tmp/docs-out.$$ >&2
        if [[ $expect == running ]]; then
            fail "$where: \`$cmd\` should keep running, but it exited with status $rc"
        fi
        fail "$where: \`$cmd\` exited with status $rc, the document says $want"
    fi
    echo "ok $n/$total $where: $cmd${expect:+ (→ ${expect/#0/exit 0})}"
done </tmp/docs-commands.$$
rm -f /tmp/docs-commands.$$ /tmp/docs-out.$$
pass "all $total commands of commands.md, operations.md and troubleshooting.md ran as documented"

user_systemctl stop "$unit" 2>/dev/null || :
no_sanitizer_reports
echo "all documentation commands passed"

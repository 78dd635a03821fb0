# Shared helpers for Conclave's integration tests (sourced; bash).
# Stages `make install` into a private DESTDIR that the sandbox's test user can read, and runs a
# test script inside tests/integration/sandbox.sh (a real systemd --user + journald).

integration_preamble() {
    if [[ "${CONCLAVE_SKIP_INTEGRATION:-}" == 1 ]]; then
        echo "SKIP: integration tests disabled by CONCLAVE_SKIP_INTEGRATION=1" >&2
        exit 77
    fi
}

# Run "$1" (the calling test script) inside the sandbox with a staged install.
integration_run_in_sandbox() {
    local script=$1 here builddir stage rc
    here=$(cd "$(dirname "$script")" && pwd)
    builddir=${abs_top_builddir:-$(cd "$here/../.." && pwd)}
    stage=$(mktemp -d /tmp/conclave-stage.XXXXXX)
    chmod 755 "$stage"
    echo "staging make install into $stage" >&2
    if ! make -s -C "$builddir" install DESTDIR="$stage" >"$stage.install.log" 2>&1; then
        cat "$stage.install.log" >&2
        rm -rf "$stage" "$stage.install.log"
        echo "FAIL: make install failed" >&2
        return 1
    fi
    rm -f "$stage.install.log"
    rc=0
    CONCLAVE_STAGE=$stage bash "$here/sandbox.sh" run "$script" || rc=$?
    rm -rf "$stage"
    return "$rc"
}

# Inside the sandbox: paths of the staged install.
integration_setup_paths() {
    local prefix
    prefix=$(find "$CONCLAVE_STAGE" -path '*/bin/conclave' -type f | head -n 1)
    [[ -n "$prefix" ]] || { echo "FAIL: no bin/conclave under $CONCLAVE_STAGE" >&2; exit 1; }
    CONCLAVE=$prefix
    export CONCLAVE
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

pass() {
    echo "ok: $*"
}

# conclave as the test user
cv() {
    as_user env CONCLAVE_LOG_TARGET=stderr "$CONCLAVE" "$@"
}

# Prints a field of `conclave status --json` (a jq filter).
status_field() {
    cv status --json 2>/dev/null | jq -r "$1"
}

# Shared helpers for Conclave's integration tests (sourced; bash).
# Runs a test script inside tests/integration/sandbox.sh (a real systemd --user + journald) with
# Conclave installed by `make install` into the test user's ~/.local.

integration_preamble() {
    if [[ "${CONCLAVE_SKIP_INTEGRATION:-}" == 1 ]]; then
        echo "SKIP: integration tests disabled by CONCLAVE_SKIP_INTEGRATION=1" >&2
        exit 77
    fi
}

# Run "$1" (the calling test script) inside the sandbox.
integration_run_in_sandbox() {
    local script=$1 here
    here=$(cd "$(dirname "$script")" && pwd)
    CONCLAVE_BUILDDIR=${abs_top_builddir:-$(cd "$here/../.." && pwd)} \
        bash "$here/sandbox.sh" run "$script"
}

# Inside the sandbox: `make install` into a prefix in the test user's home, as a user without
# root would install (the unit's PrivateTmp= would hide an install under /tmp).
integration_setup_paths() {
    local prefix=$SANDBOX_HOME/.local
    if ! make -s -C "$CONCLAVE_BUILDDIR" install prefix="$prefix" >/tmp/conclave-install.$$ 2>&1; then
        cat /tmp/conclave-install.$$ >&2
        rm -f /tmp/conclave-install.$$
        echo "FAIL: make install prefix=$prefix" >&2
        exit 1
    fi
    rm -f /tmp/conclave-install.$$
    chown -R "$SANDBOX_UID:$SANDBOX_GID" "$prefix"
    CONCLAVE=$prefix/bin/conclave
    CONCLAVE_PREFIX=$prefix
    [[ -x $CONCLAVE ]] || { echo "FAIL: $CONCLAVE missing after make install" >&2; exit 1; }
    export CONCLAVE CONCLAVE_PREFIX
}

# Node.js >= 20.15 for the npm peers that need it (playwright-core for the web UI, aimock).
# Debian 12's nodejs is 18: then npm's "node" package (this version only; its checksums are
# npm's) is installed once into BUILDDIR/tests/node20, from the npm registry. Prints the path
# of the node to use; run outside the sandbox (it may download). See docs/webui.md.
CONCLAVE_NODE20_VERSION=20.20.2
integration_node20() {
    local dir=$1/tests/node20 system
    system=$(command -v node) && _node_is_new_enough "$system" && { echo "$system"; return 0; }
    if ! _node_is_new_enough "$dir/node_modules/.bin/node"; then
        echo "node ${system:+$("$system" --version) }is older than 20.15: installing Node $CONCLAVE_NODE20_VERSION (npm package node@$CONCLAVE_NODE20_VERSION) into $dir" >&2
        rm -rf "$dir"
        npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$CONCLAVE_NODE20_VERSION" >&2 ||
            { echo "FAIL: npm install node@$CONCLAVE_NODE20_VERSION" >&2; return 1; }
        _node_is_new_enough "$dir/node_modules/.bin/node" || { echo "FAIL: $dir/node_modules/.bin/node is not Node >= 20.15" >&2; return 1; }
    fi
    echo "$dir/node_modules/.bin/node"
}
_node_is_new_enough() {
    [[ -x $1 ]] && "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number);
        process.exit(a > 20 || (a == 20 && b >= 15) ? 0 : 1)' 2>/dev/null
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

# Fails if a sanitizer (ASan, LSan, UBSan builds) reported anything in the test user's journal
# or in the given log files: a daemon that survives a use-after-free is not a passing test.
no_sanitizer_reports() {
    local pattern='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' found
    found=$( { user_journalctl -o cat 2>/dev/null; [[ $# == 0 ]] || cat "$@" 2>/dev/null; } | grep -E -m 5 "$pattern" || true)
    [[ -z $found ]] || fail "sanitizer reports: $found"
}

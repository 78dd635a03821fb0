#!/usr/bin/env bash
# The documentation against the programs (tests/docs/docs_drift.py): every command, verb and
# option of `conclave` in docs/commands.md and conclave(1), every configuration key in
# docs/config.md and conclave.toml(5), and the configuration examples parse.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
build=${abs_top_builddir:-$top}
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed" >&2; exit 77; }
[[ -x $build/conclave ]] || { echo "FAIL: $build/conclave is not built" >&2; exit 1; }
exec python3 "$here/docs_drift.py" "$build/conclave" "$top"

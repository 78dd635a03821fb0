#!/usr/bin/env bash
# Backup and restore as an operator runs them: `conclave backup` while the service runs and
# writers keep sending, then `restore --force` into the home and a restart. Every event a writer
# was told "accepted" before backup.begin answered is in the restored ledgers exactly once, the
# ledgers verify, doctor passes and the service keeps working. Also: restore refuses while the
# daemon runs, over a non-empty home without --force, a damaged archive and a path-traversal
# archive, each leaving the home untouched.
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
work=$SANDBOX_HOME/work
trap 'rc=$?; touch "$work/stop" 2>/dev/null || :; if [[ $rc -ne 0 ]]; then user_systemctl status "$unit" >&2 || :; user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :; fi; exit $rc' EXIT

as_user mkdir -p "$home/secrets" "$work"
printf '[runtime]\nledger_sync = "batch"\n[gateway]\nport = %s\ntoken_file = "secrets/web.token"\n' "$port" \
    | as_user tee "$home/config.toml" >/dev/null
as_user sh -c "umask 077; echo 'backup-test-token-0123456789abcdef' > '$home/secrets/web.token'"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"

# A fingerprint of every file in the home: "untouched" means this does not change.
home_digest() { (cd "$home" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1; }
aside_count() { find "$SANDBOX_HOME" -maxdepth 1 -name '.conclave.before-restore-*' | wc -l; }

# --- a large ledger and two groups with writers --------------------------------------------------
cv group create big >/dev/null && cv group create g1 >/dev/null && cv group create g2 >/dev/null || fail "group create"
for i in $(seq 1 300); do
    printf '%s %s' "$i" "$(head -c 45000 /dev/urandom | base64 -w0)" | as_user env "$CONCLAVE" send -g big - >/dev/null || fail "send to big"
done
big_bytes=$(stat -c %s "$home/groups/big/ledger.jsonl")
pass "group big has a $((big_bytes / 1024 / 1024)) MiB ledger"

writer() { # GROUP: sends until $work/stop exists; records "ns id seq" for every acknowledged event
    local g=$1 i=0 out
    while [[ ! -e $work/stop ]]; do
        i=$((i + 1))
        if out=$(as_user env "$CONCLAVE" send -g "$g" --json "w-$g-$i" 2>"$work/err.$g"); then
            printf '%s %s\n' "$(date +%s%N)" "$(jq -r '"\(.event_id) \(.seq)"' <<<"$out")" >>"$work/acked.$g"
        else
            echo "send $i failed: $(cat "$work/err.$g")" >>"$work/failed.$g"
        fi
    done
}
acked() { [[ -e $work/acked.$1 ]] && wc -l <"$work/acked.$1" || echo 0; }
writer g1 & w1=$!
writer g2 & w2=$!
wait_for 30 bash -c "[[ \$(wc -l < '$work/acked.g1' 2>/dev/null || echo 0) -ge 20 && \$(wc -l < '$work/acked.g2' 2>/dev/null || echo 0) -ge 20 ]]" \
    || fail "writers did not get going"

# --- backup while they write ---------------------------------------------------------------------
t0=$(date +%s%N)
before1=$(acked g1); before2=$(acked g2)
(cd "$work" && as_user env "$CONCLAVE" backup --json >"$work/backup.json" 2>"$work/backup.err") || { cat "$work/backup.err" >&2; fail "backup"; }
t1=$(date +%s%N)
cat "$work/backup.err"
jq . "$work/backup.json"
file=$(jq -r .file "$work/backup.json")
[[ $file == conclave-backup-*.tar.zst ]] || fail "default name: $file"
archive=$work/$file
[[ -f $archive && $(stat -c %a "$archive") == 600 ]] || fail "$archive missing or not mode 0600"
[[ -z $(find "$work" -name '.conclave-backup-*') ]] || fail "a temp file was left behind"
jq -e '.online == true and (.groups | length) == 3' "$work/backup.json" >/dev/null || fail "backup summary"
grep -q "durable" "$work/backup.err" || fail "backup did not say it used the daemon's backup point"
# The writers kept going across the backup: more acknowledgements after it than before.
wait_for 30 bash -c "[[ \$(wc -l < '$work/acked.g1') -ge $((before1 + 20)) && \$(wc -l < '$work/acked.g2') -ge $((before2 + 20)) ]]" \
    || fail "writers stalled after the backup"
touch "$work/stop"
wait "$w1" "$w2" || :
[[ ! -s $work/failed.g1 && ! -s $work/failed.g2 ]] || fail "sends failed during the backup: $(cat "$work"/failed.* 2>/dev/null)"
during=$(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b' "$work/acked.g1" "$work/acked.g2" | wc -l)
pass "backup of $(jq -r .bytes "$work/backup.json") bytes in $(((t1 - t0) / 1000000)) ms while 2 writers ran ($during acks during it)"

# The archive as tar sees it: the manifest, and no derived state.
as_user tar --zstd -tf "$archive" >"$work/list"
grep -qx manifest.json "$work/list" && grep -qx secrets/web.token "$work/list" && grep -qx groups/big/ledger.jsonl "$work/list" \
    || fail "archive lacks manifest, secret or ledger: $(cat "$work/list")"
! grep -q '/state/' "$work/list" || fail "derived state in the archive"
as_user tar --zstd -xOf "$archive" manifest.json | jq -e '.format_version == 1 and (.files | all(.sha256 | length == 64))' >/dev/null \
    || fail "manifest"

# --- restore refuses while the daemon runs ---------------------------------------------------------
set +e; msg=$(cv restore --force "$archive" 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "running" <<<"$msg" && grep -q "service stop" <<<"$msg" || fail "restore while running: rc=$rc $msg"
[[ $(aside_count) == 0 && -s $home/groups/g1/ledger.jsonl ]] || fail "restore while running moved the home"
[[ -z $(find "$SANDBOX_HOME" -maxdepth 1 -name '.conclave.restore-*') ]] || fail "restore while running extracted something"
pass "restore refuses while the daemon runs: $(head -n 1 <<<"$msg")"

user_systemctl stop "$unit"
digest=$(home_digest)

# --- damaged and hostile archives are refused; the home is untouched --------------------------------
as_user cp "$archive" "$work/damaged.tar.zst"
size=$(stat -c %s "$work/damaged.tar.zst")
python3 - "$work/damaged.tar.zst" $((size / 2)) <<'PY'
import sys
p, i = sys.argv[1], int(sys.argv[2])
d = bytearray(open(p, "rb").read())
d[i] ^= 0x20
open(p, "wb").write(d)
PY
set +e; msg=$(cv restore --force "$work/damaged.tar.zst" 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "cannot be restored" <<<"$msg" && grep -q "was not touched" <<<"$msg" || fail "damaged archive: rc=$rc $msg"
[[ $(home_digest) == "$digest" && $(aside_count) == 0 ]] || fail "a damaged archive changed the home"
[[ -z $(find "$SANDBOX_HOME" -maxdepth 1 -name '.conclave.restore-*') ]] || fail "restore left its temp directory"
pass "a damaged archive is refused: $(head -n 1 <<<"$msg")"

as_user python3 - "$work/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for name, data in [("registry.json", b'{"format_version":1,"groups":[]}'), ("../evil", b"owned"),
                       ("manifest.json", b'{"format":"conclave-backup","format_version":1,"files":[],"groups":[]}')]:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
PY
set +e; msg=$(cv restore --force "$work/evil.tar" 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q 'unsafe path' <<<"$msg" || fail "path traversal archive: rc=$rc $msg"
[[ ! -e $SANDBOX_HOME/evil && ! -e $work/../evil ]] || fail "path traversal wrote outside"
[[ $(home_digest) == "$digest" && $(aside_count) == 0 ]] || fail "a hostile archive changed the home"
pass "a path-traversal archive is refused: $(head -n 1 <<<"$msg")"

set +e; msg=$(cv restore "$archive" 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q -- "--force" <<<"$msg" || fail "restore over a non-empty home without --force: rc=$rc $msg"
[[ $(home_digest) == "$digest" ]] || fail "restore without --force changed the home"

# An offline backup of the stopped service says so (and is a second, independent copy).
(cd "$work" && as_user env "$CONCLAVE" backup offline.tar.gz >"$work/offline.out" 2>&1) || { cat "$work/offline.out"; fail "offline backup"; }
grep -q "not running" "$work/offline.out" || fail "offline backup did not say it copied the files directly"
pass "offline backup: $(tail -n 2 "$work/offline.out" | head -n 1)"

# --- restore --force, start, check -------------------------------------------------------------------
cv restore --force "$archive" | tee "$work/restore.out" || fail "restore"
[[ $(aside_count) == 1 ]] || fail "the old home was not moved aside"
aside=$(find "$SANDBOX_HOME" -maxdepth 1 -name '.conclave.before-restore-*')
[[ -s $aside/groups/g1/ledger.jsonl ]] || fail "the old home's data is not in $aside"
[[ $(stat -c %a "$home/secrets/web.token") == 600 ]] || fail "token file mode not 0600 after restore"
cmp -s "$home/secrets/web.token" "$aside/secrets/web.token" || fail "token file differs after restore"
[[ ! -e $home/groups/g1/state ]] || fail "derived state restored"

user_systemctl start "$unit" || fail "start after restore"
wait_for 10 cv status >/dev/null || fail "daemon does not answer after restore"

for g in g1 g2 big; do
    last=$(jq -r --arg g "$g" '.groups[] | select(.id == $g) | .last_seq' "$work/backup.json")
    jq -r '"\(.seq) \(.id)"' "$home/groups/$g/ledger.jsonl" >"$work/restored.$g"
    [[ $(wc -l <"$work/restored.$g") == "$last" ]] || fail "$g: restored ledger has $(wc -l <"$work/restored.$g") events, the backup point $last"
    awk '{ if ($1 != NR) { exit 1 } }' "$work/restored.$g" || fail "$g: seqs are not 1..$last"
    [[ $(cut -d' ' -f2 "$work/restored.$g" | sort | uniq -d | wc -l) == 0 ]] || fail "$g: duplicate event ids"
    [[ $g == big ]] && continue
    # Every acknowledged event up to the backup point is there exactly once, at its seq; every one
    # acknowledged before the backup started is up to that point.
    n_before=0; n_in=0
    while read -r ns id seq; do
        if ((seq <= last)); then
            [[ $(grep -c " $id\$" "$work/restored.$g") == 1 ]] || fail "$g: acknowledged event $id (seq $seq) not restored exactly once"
            [[ $(sed -n "${seq}p" "$work/restored.$g") == "$seq $id" ]] || fail "$g: event $id not at seq $seq"
            n_in=$((n_in + 1))
        fi
        if ((ns < t0)); then
            ((seq <= last)) || fail "$g: event $id acknowledged before the backup began (seq $seq) is beyond its point ($last)"
            n_before=$((n_before + 1))
        fi
    done <"$work/acked.$g"
    pass "$g: $n_in acknowledged events up to the backup point (seq $last) restored exactly once ($n_before acknowledged before it began)"
done

broken() { cv groups --json | jq -e 'any(.[]; .state == "broken")' >/dev/null; }
sleep 1
! broken || fail "a restored group is broken: $(cv groups --json)"
set +e; out=$(cv doctor 2>&1); rc=$?; set -e
echo "$out" | tail -n 3
[[ $rc == 0 ]] || fail "doctor fails after restore: $out"
g1_last=$(jq -r '.groups[] | select(.id == "g1") | .last_seq' "$work/backup.json")
seq=$(cv send -g g1 --json "after restore" | jq -r .seq) || fail "send after restore"
[[ $seq == $((g1_last + 1)) ]] || fail "send after restore got seq $seq, want $((g1_last + 1))"
cv tail -g g1 -n 1 | grep -q "after restore" || fail "tail after restore"
pass "after restore: no broken group, doctor passes, send works (seq $seq)"

# The restored ledgers verify line by line: an offline backup checks every line it copies.
user_systemctl stop "$unit"
(cd "$work" && as_user env "$CONCLAVE" backup verify.tar >/dev/null) || fail "the restored ledgers do not verify"
pass "restored ledgers verify line by line"

# --- a corrupt ledger is never archived ---------------------------------------------------------------
as_user python3 - "$home/groups/g2/ledger.jsonl" <<'PY'
import sys
p = sys.argv[1]
lines = open(p, "rb").read().split(b"\n")
lines[1] = lines[1].replace(b'"kind"', b'"k!nd"')
open(p, "wb").write(b"\n".join(lines))
PY
offset=$(head -n 1 "$home/groups/g2/ledger.jsonl" | wc -c)
set +e; msg=$(cd "$work" && as_user env "$CONCLAVE" backup corrupt.tar.zst 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "g2/ledger.jsonl is corrupt at byte offset $offset" <<<"$msg" || fail "offline backup of a corrupt ledger: rc=$rc $msg"
[[ ! -e $work/corrupt.tar.zst && -z $(find "$work" -name '.corrupt*') ]] || fail "a failed backup left a file"
user_systemctl start "$unit" || fail "start with a corrupt ledger"
g2_broken() { cv groups --json | jq -e '.[] | select(.id == "g2") | .state == "broken"' >/dev/null; }
wait_for 10 g2_broken || fail "g2 not broken"
set +e; msg=$(cd "$work" && as_user env "$CONCLAVE" backup corrupt.tar.zst 2>&1); rc=$?; set -e
[[ $rc == 1 ]] && grep -q "no backup while group g2 is broken" <<<"$msg" || fail "online backup with a broken group: rc=$rc $msg"
[[ ! -e $work/corrupt.tar.zst ]] || fail "a refused backup left a file"
user_systemctl stop "$unit"
pass "a corrupt ledger stops a backup, offline and online: $(grep -m 1 conclave <<<"$msg")"

no_sanitizer_reports
echo "all backup/restore checks passed"

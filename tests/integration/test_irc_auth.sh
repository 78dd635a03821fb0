#!/usr/bin/env bash
# How the irc channel logs in, against tests/irc/auth-server.py (ngircd has neither SASL nor
# services): SASL PLAIN with the right password registers and joins; a wrong one puts the
# channel down with the reason, and `conclave channel doctor` says what to fix; without sasl a
# password goes to NickServ; a password file readable by others is refused; no password reaches
# the journal.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi

integration_setup_paths
home=$SANDBOX_HOME/.conclave
work=$SANDBOX_HOME/auth
unit=conclave.service
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_journalctl -u "$unit" -o short-precise | tail -n 60 >&2 || :
        tail -n 30 "$work/server.log" >&2 || :
    fi
    [[ -s $work/server.pid ]] && kill "$(cat "$work/server.pid")" 2>/dev/null
    exit $rc
}
trap cleanup EXIT

as_user mkdir -p "$home" "$work"
good=s3cret-sasl-pass-4711
as_user python3 "$here/../irc/auth-server.py" --user bot --password "$good" --log "$work/server.log" \
    --port-file "$work/port" --pid-file "$work/server.pid" >>"$work/server.out" 2>&1 &
wait_for 10 test -s "$work/port" || fail "the test server did not start"
port=$(cat "$work/port")
as_user sh -c "umask 077; printf '%s\n' '$good' > '$home/sasl.pw'; printf 'wrong-password-0815\n' > '$home/bad.pw';
               printf 'nickserv-pass-1234\n' > '$home/ns.pw'"
as_user sh -c "printf 'loose-pass-9999\n' > '$home/loose.pw'; chmod 644 '$home/loose.pw'"

channel() { # NAME NICK EXTRA…
    printf '[channels.%s]\nkind = "irc"\ngroup = "g1"\nserver = "127.0.0.1"\nport = %s\ntls = false\nnick = "%s"\nchannel = "#ops"\nallowed_users = ["alice"]\n' \
        "$1" "$port" "$2"
    shift 2
    printf '%s\n' "$@"
}
{
    printf '[gateway]\nenabled = false\n'
    channel sasl bot 'sasl = true' 'username = "bot"' 'password_file = "sasl.pw"'
    channel badsasl bot2 'sasl = true' 'username = "bot"' 'password_file = "bad.pw"'
    channel ns nsbot 'password_file = "ns.pw"'
    channel loose bot3 'password_file = "loose.pw"'
} | as_user tee "$home/config.toml" >/dev/null
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
cv group create g1 >/dev/null || fail "group create"

state() { status_field ".channels[] | select(.name == \"$1\") | .$2"; }
is() { [[ $(state "$1" state) == "$2" ]]; }
wait_for 20 is sasl up || fail "SASL channel not up: $(state sasl error)"
want=$(printf 'bot\0bot\0%s' "$good" | base64 -w0)
jq -s -e --arg a "AUTHENTICATE $want" 'any(.[]; .line == $a)' "$work/server.log" >/dev/null \
    || fail "no SASL PLAIN credentials (authzid\\0authcid\\0password) sent"
jq -s -e 'any(.[]; .line == "CAP END")' "$work/server.log" >/dev/null || fail "no CAP END after SASL success"
pass "sasl = true: CAP REQ :sasl, AUTHENTICATE PLAIN with bot/password, CAP END, registered and joined (up)"

refused() { [[ $(state badsasl error) == *"SASL PLAIN login refused"* ]]; }
wait_for 20 refused || fail "wrong SASL password: $(state badsasl state) $(state badsasl error)"
is badsasl down || fail "wrong SASL password: state $(state badsasl state)"
set +e
out=$(cv channel doctor badsasl 2>&1)
rc=$?
set -e
printf '%s\n' "$out" >&2
[[ $rc == 1 ]] && grep -q 'fix: check username and password_file' <<<"$out" || fail "doctor on a refused SASL login"
pass "a wrong SASL password: down, 'SASL PLAIN login refused', doctor says to check username and password_file"

wait_for 20 is ns up || fail "NickServ channel not up: $(state ns error)"
jq -s -e 'any(.[]; .line == "PRIVMSG NickServ :IDENTIFY nsbot nickserv-pass-1234")' "$work/server.log" >/dev/null \
    || fail "no NickServ IDENTIFY"
pass "sasl = false with a password: IDENTIFY sent to NickServ after registration"

loose_refused() { [[ $(state loose error) == *"readable by group or others; run chmod 600"* ]]; }
wait_for 10 loose_refused || fail "a password file readable by others: $(state loose error)"
if jq -s -e 'any(.[]; .line | test("loose-pass"))' "$work/server.log" >/dev/null; then fail "the loose password was used"; fi
pass "a password file readable by others is refused (down, with the chmod to run)"

for secret in "$good" wrong-password-0815 nickserv-pass-1234 loose-pass-9999; do
    if user_journalctl -o cat | grep -q -- "$secret"; then fail "a password reached the journal"; fi
done
pass "no password in the journal"
no_sanitizer_reports

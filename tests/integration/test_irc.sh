#!/usr/bin/env bash
# The irc channel against a real IRC server (Debian's ngircd) on loopback, with scripted IRC
# users (tests/irc/irc-client.py): alice talks to an echo command actor in the channel and
# privately and gets the replies on IRC; mallory is not in allowed_users (logged, text not in
# the ledger); `conclave channel list|doctor`, status, STATUS= and daemon_state.json show the
# channel; an IRC server restart is survived; kill -9 of conclave-channels during a burst of
# outbound messages still delivers each message exactly once; a channel pointing at a closed
# port fails `conclave channel doctor` with a fix.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi
command -v ngircd >/dev/null || command -v /usr/sbin/ngircd >/dev/null || { echo "SKIP: ngircd not installed (apt-get install ngircd)"; exit 77; }
NGIRCD=$(command -v ngircd || echo /usr/sbin/ngircd)

integration_setup_paths
home=$SANDBOX_HOME/.conclave
irc=$SANDBOX_HOME/irc
unit=conclave.service
irc_port=$((20000 + RANDOM % 20000))
closed_port=$((irc_port + 1))
tls_port=$((irc_port + 2))
# Background processes run through as_user (a function, so $! is a subshell): each writes its
# own pid file, and is stopped by that pid.
stop_pidfile() { [[ -s $1 ]] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; }
cleanup() {
    rc=$?
    if [[ $rc -ne 0 ]]; then
        user_systemctl status "$unit" >&2 || :
        user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :
        tail -n 20 "$irc"/*.log >&2 || :
    fi
    for f in "$irc"/*.pid; do stop_pidfile "$f" || :; done
    exit $rc
}
trap cleanup EXIT

as_user mkdir -p "$home" "$SANDBOX_HOME/bin" "$irc"
# A private CA and a server certificate for 127.0.0.1, for ngircd's TLS port.
as_user sh -c "cd '$irc' &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
        -extfile san.ext 2>/dev/null" || fail "cannot make test certificates"
as_user tee "$irc/ngircd.conf" >/dev/null <<EOF
[Global]
Name = irc.test
Info = Conclave test server
Listen = 127.0.0.1
Ports = $irc_port
MotdPhrase = "test"
PidFile = $irc/ngircd.pid
[Limits]
MaxConnectionsIP = 0
PingTimeout = 120
PongTimeout = 20
[Options]
DNS = no
Ident = no
PAM = no
[SSL]
CertFile = $irc/server.pem
KeyFile = $irc/server.key
Ports = $tls_port
EOF
start_ngircd() {
    as_user "$NGIRCD" -n -f "$irc/ngircd.conf" >>"$irc/ngircd.log" 2>&1 &
    wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$irc_port" || fail "ngircd did not listen on $irc_port"
}
start_ngircd

# Flood control at 2 lines per second after a burst of 3 (ngircd itself reads about 3 commands
# a second from a client): a burst of 30 takes about 15 seconds.
as_user tee "$home/config.toml" >/dev/null <<EOF
[runtime]
ledger_sync = "batch"
[gateway]
enabled = false
[channels.irc]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $irc_port
tls = false
nick = "conclave"
channel = "#conclave"
allowed_users = ["alice"]
flood_burst = 3
flood_interval = "500ms"
EOF
install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
cv service install >/dev/null
user_systemctl start "$unit" || fail "start"
cv group create g1 >/dev/null || fail "group create"
cv actor add -g g1 echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" >/dev/null || fail "actor add"
cv actor start -g g1 echo >/dev/null || fail "actor start"
cv group start g1 >/dev/null || fail "group start"

channel_state() { status_field '.channels[] | select(.name == "irc") | .state'; }
is_state() { [[ $(channel_state) == "$1" ]]; }
wait_for 20 is_state up || fail "channel irc did not come up: $(status_field '.channels[0]')"
pass "channel irc is up (connected to ngircd, joined #conclave)"

# --- IRC users ------------------------------------------------------------------------------------
start_client() { # NICK
    as_user touch "$irc/$1.cmd"
    as_user python3 "$here/../irc/irc-client.py" --port "$irc_port" --nick "$1" --channel "#conclave" \
        --log "$irc/$1.log" --commands "$irc/$1.cmd" --pid-file "$irc/$1.pid" >>"$irc/$1.out" 2>&1 &
}
say() { printf '%s\n' "$2" | as_user tee -a "$irc/$1.cmd" >/dev/null; }
joins() { [[ -f $irc/$1.log ]] && [[ $(jq -r 'select(.event == "joined") | .event' "$irc/$1.log" | wc -l) -ge $2 ]]; }
got() { # NICK FROM TO TEXT: NICK's log has that PRIVMSG
    [[ -f $irc/$1.log ]] && jq -s -e --arg f "$2" --arg t "$3" --arg x "$4" \
        'any(.[]; .from == $f and .to == $t and .text == $x)' "$irc/$1.log" >/dev/null
}
events() { cv tail -g g1 -n 10000 --json; }

start_client alice
start_client mallory
wait_for 15 joins alice 1 || fail "alice did not join"
wait_for 15 joins mallory 1 || fail "mallory did not join"

say alice "hello conclave"
wait_for 20 got alice conclave "#conclave" "alice: echo: hello conclave" || fail "alice got no echo in the channel"
events | jq -s -e 'any(.[]; .kind == "actor.added" and .data.actor_id == "irc-alice" and .data.kind == "human"
                       and .data.channel == "irc" and .data.external_user == "alice")' >/dev/null \
    || fail "no human actor irc-alice bound to alice on channel irc"
events | jq -s -e 'any(.[]; .kind == "chat.message" and .by == "irc-alice" and .data.text == "hello conclave"
                       and .data.channel == "irc" and (.data.external_id | length) > 0)' >/dev/null \
    || fail "alice's message is not in the ledger as a chat.message by irc-alice"
reply_id=$(events | jq -r 'select(.kind == "chat.message" and .by == "echo" and .data.text == "echo: hello conclave") | .id')
[[ -n $reply_id ]] || fail "no echo reply in the ledger"
events | jq -s -e --arg id "$reply_id" '[.[] | select(.kind == "chat.delivery" and .data.event_id == $id)] |
        map(.data.status) == ["attempted", "succeeded"]' >/dev/null || fail "the reply's chat.delivery events are not attempted, succeeded"
pass "alice in #conclave → chat.message by human actor irc-alice → echo actor → 'alice: echo: …' on IRC (delivery recorded)"

say alice "/msg conclave a private word"
wait_for 20 got alice conclave alice "echo: a private word" || fail "alice got no private echo"
pass "a private message is answered privately"

say mallory "mallory says 4711 secret"
has_denial() { user_journalctl -u "$unit" -o cat CONCLAVE_CHANNEL=irc | grep -q 'sender "mallory" is not in allowed_users'; }
wait_for 10 has_denial || fail "no journal line for the denied sender"
sleep 1
if events | grep -q 4711; then fail "the denied sender's text reached the ledger"; fi
if grep -rq 4711 "$home"; then fail "the denied sender's text is stored under $home"; fi
events | jq -s -e 'any(.[]; .kind == "actor.added" and (.data.actor_id | test("mallory")))' >/dev/null \
    && fail "an actor was created for the denied sender"
pass "mallory (not in allowed_users): journal names who and which channel; text nowhere in the ledger"

# --- visibility ---------------------------------------------------------------------------------
cv channel list | tee /dev/stderr | grep -E '^irc +irc +g1 +up +1 ' >/dev/null || fail "channel list: $(cv channel list)"
cv channel doctor | tee /dev/stderr | grep -q '^ok    irc (irc): connected to 127.0.0.1' || fail "channel doctor"
cv status | grep -E '^  irc +irc +group g1 +up' >/dev/null || fail "conclave status does not show the channel up"
user_systemctl show -p StatusText "$unit" | grep -q 'channels 1/1 channels up' || fail "STATUS=: $(user_systemctl show -p StatusText "$unit")"
jq -e 'any(.channels[]; .name == "irc" and .state == "up")' "$home/daemon_state.json" >/dev/null \
    || fail "daemon_state.json does not show the channel up"
pass "channel list, channel doctor, status, STATUS= and daemon_state.json show irc up"

# --- the IRC server restarts --------------------------------------------------------------------
stop_pidfile "$irc/ngircd.pid" || fail "cannot stop ngircd"
is_not_up() { [[ $(channel_state) != up ]]; }
wait_for 20 is_not_up || fail "the channel still says up with the server gone"
cv channel doctor irc >/dev/null && fail "channel doctor passed with the IRC server down"
start_ngircd
wait_for 40 is_state up || fail "the channel did not reconnect: $(status_field '.channels[0].error')"
wait_for 20 joins alice 2 || fail "alice did not rejoin"
say alice "after the restart"
wait_for 20 got alice conclave "#conclave" "alice: echo: after the restart" || fail "no echo after the server restart"
pass "ngircd restarted: the channel went down, reconnected, rejoined; a message after it works"

# --- kill -9 of conclave-channels during a burst ------------------------------------------------
n=30
for i in $(seq 1 $n); do cv send -g g1 --to irc-alice "burst $i of $n" >/dev/null || fail "send $i"; done
# After the kill the server may still hold the old connection's nick for a moment: conclave_.
from_us='(.from | test("^conclave_*$"))'
burst_count() { jq -r "select($from_us and (.text | startswith(\"alice: burst \"))) | .text" "$irc/alice.log" | wc -l; }
some_arrived() { [[ $(burst_count) -ge 6 ]]; }
wait_for 20 some_arrived || fail "the burst does not arrive"
pid=$(status_field '.workers[] | select(.name == "channels") | .pid')
kill -9 "$pid"
all_arrived() { [[ $(burst_count) -ge $n ]]; }
wait_for 60 all_arrived || fail "only $(burst_count) of $n burst messages arrived after the kill"
sleep 3 # anything sent twice would have arrived by now
for i in $(seq 1 $n); do
    c=$(jq -r --arg t "alice: burst $i of $n" "select($from_us and .text == \$t) | .text" "$irc/alice.log" | wc -l)
    [[ $c == 1 ]] || fail "burst message $i arrived $c times"
done
settled=$(events | jq -s '[.[] | select(.kind == "chat.delivery" and (.data.status == "succeeded" or .data.status == "unconfirmed"))
                           | .data.event_id] | length')
owed=$(events | jq -s '[.[] | select(.kind == "chat.message" and .by == "operator" and (.data.text | startswith("burst ")))] | length')
[[ $owed == "$n" ]] || fail "$owed burst messages in the ledger"
cv channel list --json | jq -e 'any(.[]; .name == "irc" and .pending == 0)' >/dev/null || fail "deliveries still pending"
user_journalctl -u "$unit" -o cat | grep -q "worker channels (pid $pid) killed by SIGKILL" || fail "the kill is not in the journal"
pass "kill -9 of conclave-channels mid-burst: all $n messages arrived exactly once ($settled deliveries settled, 0 pending)"
# Its old connection's nick is freed by the server soon; the channel takes it back (degraded
# until then).
wait_for 40 is_state up || fail "the channel did not get its nick back: $(status_field '.channels[0].error')"

# --- a channel that cannot connect fails the doctor, with a fix --------------------------------
as_user tee -a "$home/config.toml" >/dev/null <<EOF
[channels.broken]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $closed_port
tls = false
nick = "conclave2"
channel = "#conclave"
allowed_users = ["alice"]
[channels.secure]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $tls_port
tls = true
ca_file = "$irc/ca.pem"
nick = "conclave4"
channel = "#conclave"
allowed_users = ["alice"]
[channels.untrusted]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $tls_port
tls = true
nick = "conclave5"
channel = "#conclave"
allowed_users = ["alice"]
[channels.nobody]
kind = "irc"
group = "g1"
server = "127.0.0.1"
port = $irc_port
tls = false
nick = "conclave3"
channel = "#conclave"
allowed_users = []
EOF
cv service reload >/dev/null || fail "reload"
broken_down() { [[ $(status_field '.channels[] | select(.name == "broken") | .state') =~ ^(connecting|down)$ ]] &&
                [[ $(status_field '.channels[] | select(.name == "broken") | .error') == *refused* ]]; }
wait_for 20 broken_down || fail "the broken channel does not report its error"
secure_up() { [[ $(status_field '.channels[] | select(.name == "secure") | .state') == up ]]; }
wait_for 20 secure_up || fail "the TLS channel did not come up: $(status_field '.channels[] | select(.name == "secure")')"
say alice "/msg conclave4 over tls"
wait_for 20 got alice conclave4 alice "echo: over tls" || fail "no echo through the TLS channel"
untrusted_error() { [[ $(status_field '.channels[] | select(.name == "untrusted") | .error') == *"certificate verification failed"* ]]; }
wait_for 20 untrusted_error || fail "a server certificate from an unknown CA was not refused"
pass "TLS (ngircd's TLS port, its CA in ca_file): up, a private message and its echo go through; without ca_file the certificate is refused"
set +e
out=$(cv channel doctor 2>&1)
rc=$?
set -e
printf '%s\n' "$out" >&2
[[ $rc == 1 ]] || fail "channel doctor exited $rc with a failing channel"
grep -q '^ok    irc ' <<<"$out" || fail "doctor: irc should still pass"
grep -A1 '^FAIL  broken (irc): .*refused' <<<"$out" | grep -q 'fix: is an IRC server listening on 127.0.0.1 port' \
    || fail "doctor: no concrete fix for the closed port"
grep -A1 '^FAIL  nobody (irc): allowed_users is empty' <<<"$out" | grep -q 'fix: set allowed_users' \
    || fail "doctor: no allowlist check"
grep -q '^ok    secure (irc): connected to 127.0.0.1:[0-9]* with TLS as conclave4' <<<"$out" || fail "doctor: TLS channel"
grep -A1 '^FAIL  untrusted (irc): .*certificate verification failed' <<<"$out" | grep -q 'fix: set ca_file' \
    || fail "doctor: no fix for the untrusted certificate"
is_state up || fail "reload restarted the unchanged channel irc"
pass "channel doctor: one line per channel, a concrete fix for each failure, exit 1"

no_sanitizer_reports

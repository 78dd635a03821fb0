# Helpers for the platform channel tests (test_telegram.sh, test_slack.sh, test_discord.sh,
# test_matrix.sh, test_email.sh): local fakes of the platforms (tests/fakes/), the control
# socket, channel states. Sourced inside the sandbox after lib.sh.

fakes_dir=${abs_top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/fakes
pf_pids=()

# pf_fake NAME KIND ARGS...: starts tests/fakes/KIND.py as the test user; sets NAME_port.
pf_fake() {
    local name=$1 kind=$2 portfile
    shift 2
    portfile=$SANDBOX_HOME/fake-$name.port
    rm -f "$portfile"
    as_user /usr/bin/python3 "$fakes_dir/$kind.py" --port-file "$portfile" "$@" >>"$SANDBOX_HOME/fake-$name.log" 2>&1 &
    pf_pids+=($!)
    wait_for 10 test -s "$portfile" || fail "fake $name ($kind) did not start: $(tail -5 "$SANDBOX_HOME/fake-$name.log")"
    printf -v "${name}_port" '%s' "$(cat "$portfile")"
}

pf_cleanup() {
    local p
    for p in "${pf_pids[@]}"; do kill "$p" 2>/dev/null || :; done
}

# fake_get PORT PATH / fake_post PORT PATH JSON: the fakes' control API.
fake_get() { curl -sf "http://127.0.0.1:$1$2"; }
fake_post() { curl -sf -X POST -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$1$2"; }

# ctl OP [ARGS_JSON]: one control operation; prints the reply object.
ctl() {
    as_user /usr/bin/python3 - "$1" "${2:-{\}}" <<'PY'
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.path.join(os.environ["XDG_RUNTIME_DIR"], "conclave", "control.sock"))
s.sendall((json.dumps({"op": sys.argv[1], "args": json.loads(sys.argv[2])}) + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode().strip())
PY
}

# channel_state NAME: up, degraded, connecting, down, unknown.
channel_state() { ctl channel.list | jq -r --arg n "$1" '.result[] | select(.name == $n) | .state'; }
channel_error() { ctl channel.list | jq -r --arg n "$1" '.result[] | select(.name == $n) | .error // ""'; }
state_is() { [[ $(channel_state "$1") == "$2" ]]; }

# The pid of conclave-channels.
channels_pid() { pgrep -u "$SANDBOX_UID" -x conclave-channel || pgrep -u "$SANDBOX_UID" -f 'libexec/conclave/conclave-channels' | head -1; }

# chat.messages of group $1 by humans (JSON lines).
human_messages() {
    cv tail -g "$1" -n 10000 --json | jq -c 'select(.kind == "chat.message" and (.data.channel // "") != "")'
}

# pf_service PORT CHANNEL_SECTIONS: writes config.toml, installs and starts the service, makes
# group g1 with the echo actor.
pf_service() {
    local home=$SANDBOX_HOME/.conclave
    as_user mkdir -p "$home" "$SANDBOX_HOME/bin"
    {
        printf '[runtime]\nledger_sync = "batch"\nrestart_burst = 20\n[gateway]\nport = %s\n' "$1"
        printf '%s\n' "$2"
    } | as_user tee "$home/config.toml" >/dev/null
    install -o "$SANDBOX_UID" -m 0755 "$here/actors/echo-actor" "$SANDBOX_HOME/bin/echo-actor"
    cv service install >/dev/null
    user_systemctl start conclave.service || fail "start"
    cv group create g1 --title "Platform test" >/dev/null || fail "group create"
    cv actor add -g g1 echo --kind command -- "$SANDBOX_HOME/bin/echo-actor" >/dev/null || fail "actor add"
    cv actor start -g g1 echo >/dev/null || fail "actor start"
    cv group start g1 >/dev/null || fail "group start"
}

# secret_file NAME CONTENT: a private file in $CONCLAVE_HOME.
secret_file() {
    printf '%s\n' "$2" | as_user tee "$SANDBOX_HOME/.conclave/$1" >/dev/null
    chmod 600 "$SANDBOX_HOME/.conclave/$1"
}

#!/usr/bin/env bash
# The email channel against real Debian mail servers run unprivileged on loopback: dovecot
# (IMAP; mail arrives by IMAP APPEND, as a mail client files it) and an aiosmtpd SMTP server
# (tests/fakes/smtp_sink.py). A human mails the bot and gets the echo actor's answer threaded
# with In-Reply-To/References; the same message filed twice is stored once; a sender not in
# allowed_users, an auto-reply and a mail without From are not answered; the last UID is
# persisted across kill -9 of conclave-channels; SMTP 451 is retried and the answer delivered
# once; the IMAP server going away degrades the channel until it is back; doctor checks the
# IMAP login.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
integration_preamble
if [[ -z "${SANDBOX_INSIDE:-}" ]]; then
    integration_run_in_sandbox "${BASH_SOURCE[0]}"
    exit $?
fi
. "$here/platform_lib.sh"
[[ -x /usr/sbin/dovecot ]] || { echo "SKIP: dovecot-imapd is not installed (.ci/packages)" >&2; exit 77; }
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || { echo "SKIP: python3-aiosmtpd is not installed" >&2; exit 77; }

integration_setup_paths
port=$((20000 + RANDOM % 20000))
imap_port=$((port + 1))
smtp_port=$((port + 2))
unit=conclave.service
mail=$SANDBOX_HOME/mail
stop_dovecot() { as_user /usr/sbin/dovecot -c "$mail/dovecot.conf" stop 2>/dev/null || :; }
trap 'rc=$?; pf_cleanup; stop_dovecot; if [[ $rc -ne 0 ]]; then user_journalctl -u "$unit" -o short-precise | tail -n 80 >&2 || :; cat "$mail/dovecot.log" >&2 2>/dev/null || :; tail -n 40 "$SANDBOX_HOME/smtp.log" >&2 || :; fi; exit $rc' EXIT

# --- dovecot (IMAP) and the SMTP server, as the test user ------------------------------------
as_user mkdir -p "$mail/run" "$mail/state" "$mail/home"
as_user tee "$mail/dovecot.conf" >/dev/null <<CONF
base_dir = $mail/run
state_dir = $mail/state
log_path = $mail/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $SANDBOX_USER
default_internal_group = $(id -gn "$SANDBOX_USER")
default_login_user = $SANDBOX_USER
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $mail/passwd
}
userdb {
  driver = static
  args = uid=$SANDBOX_USER gid=$(id -gn "$SANDBOX_USER") home=$mail/home/%u
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
CONF
printf 'bot@example.test:{PLAIN}imap-secret-1\n' | as_user tee "$mail/passwd" >/dev/null
start_dovecot() { as_user /usr/sbin/dovecot -c "$mail/dovecot.conf" || fail "dovecot did not start: $(tail -5 "$mail/dovecot.log")"; }
start_dovecot
imap_up() { curl -s --max-time 3 "imap://127.0.0.1:$imap_port/" -u bot@example.test:imap-secret-1 -X 'EXAMINE INBOX' | grep -q UIDVALIDITY; }
wait_for 10 imap_up || fail "dovecot does not answer: $(tail -5 "$mail/dovecot.log")"
echo 0 | as_user tee "$mail/smtp-fail" >/dev/null
as_user /usr/bin/python3 "$fakes_dir/smtp_sink.py" --port "$smtp_port" --maildir "$mail/sent" --fail-file "$mail/smtp-fail" --login bot@example.test:imap-secret-1 \
    >>"$SANDBOX_HOME/smtp.log" 2>&1 &
pf_pids+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$smtp_port" || fail "SMTP server did not start: $(cat "$SANDBOX_HOME/smtp.log")"
pass "dovecot (IMAP) and aiosmtpd (SMTP) running on loopback as the test user"

as_user mkdir -p "$SANDBOX_HOME/.conclave"
secret_file mail.password imap-secret-1
secret_file bad.password wrong-password
pf_service "$port" "
[channels.mail]
kind = \"email\"
group = \"g1\"
allowed_users = [\"alice@example.test\"]
imap_url = \"imap://127.0.0.1:$imap_port\"
smtp_url = \"smtp://127.0.0.1:$smtp_port\"
username = \"bot@example.test\"
password_file = \"mail.password\"
from = \"bot@example.test\"
poll_interval = \"1s\"
tls = false

[channels.mailbad]
kind = \"email\"
group = \"g1\"
allowed_users = [\"alice@example.test\"]
imap_url = \"imap://127.0.0.1:$imap_port\"
smtp_url = \"smtp://127.0.0.1:$smtp_port\"
username = \"bot@example.test\"
password_file = \"bad.password\"
poll_interval = \"1s\"
tls = false"
wait_for 20 state_is mail up || fail "channel mail not up: $(channel_state mail) $(channel_error mail)"
sleep 2 # the first poll only takes the position
pass "email channel up (IMAP)"

# file_mail FROM MESSAGE-ID SUBJECT BODY [EXTRA-HEADER]: a mail in the bot's INBOX (IMAP APPEND)
file_mail() {
    local f=$SANDBOX_HOME/mail-$RANDOM.eml
    { printf 'From: %s\r\nTo: bot@example.test\r\nSubject: %s\r\nDate: %s\r\n' "$1" "$3" "$(date -R)"
      [[ -z $2 ]] || printf 'Message-ID: %s\r\n' "$2"
      [[ -z ${5:-} ]] || printf '%s\r\n' "$5"
      printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n' "$4"; } >"$f"
    curl -s -T "$f" "imap://127.0.0.1:$imap_port/INBOX" -u bot@example.test:imap-secret-1 || fail "IMAP APPEND failed"
    rm -f "$f"
}
# answers in the SMTP server's Maildir as JSON lines {to, subject, in_reply_to, references, body}
answers() {
    /usr/bin/python3 - "$mail/sent" <<'PY'
import json, mailbox, sys
for key, m in mailbox.Maildir(sys.argv[1], create=False).items():
    body = m.get_payload(decode=True).decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
    print(json.dumps({"to": m["To"], "subject": str(m["Subject"]), "in_reply_to": m["In-Reply-To"],
                      "references": m["References"], "auto": m["Auto-Submitted"], "body": body,
                      "message_id": m["Message-ID"]}))
PY
}
answer_count() { answers | jq -s --arg t "$1" '[.[] | select(.body == $t)] | length'; }
has_answer() { [[ $(answer_count "$1") -ge 1 ]]; }

# --- a human mails the bot -----------------------------------------------------------------------
file_mail '"Alice" <Alice@Example.test>' '<m1@example.test>' 'Hello' 'hello bot'
wait_for 20 has_answer "echo: hello bot" || fail "no answer by mail: $(answers)"
answers | jq -e 'select(.body == "echo: hello bot" and .to == "<alice@example.test>" and .in_reply_to == "<m1@example.test>"
                 and .references == "<m1@example.test>" and .auto == "auto-replied" and (.subject | startswith("Re:")))' >/dev/null \
    || fail "the answer is not threaded: $(answers)"
pass "a mail from alice is answered by the echo actor, threaded by In-Reply-To/References"

# --- duplicates, denied senders, auto-replies, no From -------------------------------------------
file_mail alice@example.test '<dup@example.test>' 'Twice' 'twice'
file_mail alice@example.test '<dup@example.test>' 'Twice' 'twice'
file_mail mallory@example.test '<m2@example.test>' 'Hi' 'secret of mallory'
file_mail alice@example.test '<m3@example.test>' 'Away' 'I am on holiday' 'Auto-Submitted: auto-replied'
printf 'Subject: no sender\r\n\r\nwho am I\r\n' >"$SANDBOX_HOME/bad.eml"
curl -s -T "$SANDBOX_HOME/bad.eml" "imap://127.0.0.1:$imap_port/INBOX" -u bot@example.test:imap-secret-1 || fail "APPEND"
file_mail alice@example.test '<m4@example.test>' 'Last' 'after all that'
wait_for 20 has_answer "echo: after all that" || fail "no answer after the odd mails"
sleep 2
[[ $(answer_count "echo: twice") == 1 ]] || fail "the same message filed twice was answered $(answer_count "echo: twice") times"
for t in "secret of mallory" "I am on holiday" "who am I"; do
    ! cv tail -g g1 -n 10000 --json | grep -q "$t" || fail "\"$t\" was stored"
done
user_journalctl -o cat | grep -q 'is not a readable mail' || fail "the mail without From was not logged"
pass "one Message-ID filed twice stored once; denied sender, auto-reply and a mail without From not answered"

# --- kill -9 of conclave-channels: the last UID is persisted -----------------------------------
pid=$(pgrep -u "$SANDBOX_UID" -f 'conclave-channels' | head -1)
before=$(human_messages g1 | wc -l)
kill -9 "$pid"
file_mail alice@example.test '<m5@example.test>' 'Restart' 'while you were away'
wait_for 30 has_answer "echo: while you were away" || fail "mail filed during the restart was not answered"
sleep 3
[[ $(human_messages g1 | wc -l) == $((before + 1)) ]] || fail "mail re-read after the restart"
[[ $(answer_count "echo: hello bot") == 1 ]] || fail "an old answer was sent again"
pass "after kill -9 of conclave-channels polling resumes after the persisted UID: nothing lost, nothing twice"

# --- SMTP temporary failure -------------------------------------------------------------------
echo 1 >"$mail/smtp-fail"
file_mail alice@example.test '<m6@example.test>' 'Retry' 'smtp busy'
wait_for 30 has_answer "echo: smtp busy" || fail "no answer after SMTP 451"
grep -q 'refusing with 451' "$SANDBOX_HOME/smtp.log" || fail "the 451 did not happen"
sleep 1
[[ $(answer_count "echo: smtp busy") == 1 ]] || fail "answer delivered $(answer_count "echo: smtp busy") times"
pass "SMTP 451 retried; the answer delivered once"

# --- live check ----------------------------------------------------------------------------------
cv channel doctor mail >&2 || fail "conclave channel doctor mail failed"
set +e; out=$(cv channel doctor mailbad 2>&1); rc=$?; set -e
echo "$out" >&2
[[ $rc == 1 ]] || fail "conclave channel doctor mailbad exited $rc, want 1"
grep -q "FAIL" <<<"$out" && grep -A5 "FAIL" <<<"$out" | grep -q "password_file" || fail "doctor gives no fix for a refused login"
[[ $(channel_state mailbad) == down ]] || fail "a refused login is $(channel_state mailbad), not down"
pass "doctor: IMAP login ok; a refused login is down with a concrete fix"

# --- the IMAP server goes away ----------------------------------------------------------------
# `dovecot stop` lets established IMAP sessions linger a while: kill them too, as a crash would.
stop_dovecot
for p in $(ps -u "$SANDBOX_UID" -o pid=,comm= | awk '$2 ~ /^(imap|dovecot)$/ {print $1}'); do kill -9 "$p" 2>/dev/null || :; done
not_up() { [[ $(channel_state mail) != up ]]; }
wait_for 30 not_up || fail "channel still up with the IMAP server gone"
echo "with the IMAP server gone: $(channel_state mail): $(channel_error mail)"
start_dovecot
wait_for 30 state_is mail up || fail "channel did not recover: $(channel_error mail)"
file_mail alice@example.test '<m7@example.test>' 'Back' 'server is back'
wait_for 30 has_answer "echo: server is back" || fail "no answer after the IMAP server came back"
pass "IMAP server gone: channel degraded, recovered when it came back"

# A clean stop: leaks and errors at exit show up under ASan too.
user_systemctl stop conclave.service || fail "stop"
no_sanitizer_reports

#!/usr/bin/python3
"""An SMTP server for Conclave's e-mail tests: aiosmtpd (Debian's python3-aiosmtpd, a real
SMTP implementation) storing every message it accepts in a Maildir.

  --fail-file PATH   while PATH holds a number N > 0, the next N DATA commands are refused
                     with "451 4.3.0" (a temporary failure, to be retried), N counting down
  --login USER:PASS  require SMTP AUTH (PLAIN or LOGIN) with these credentials, as a
                     submission server does (without TLS: loopback tests only)
"""

import argparse
import logging
import mailbox
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, fail_file):
        self.box = mailbox.Maildir(maildir, create=True)
        self.fail_file = fail_file
        self.lock = threading.Lock()

    def take_failure(self):
        if not self.fail_file:
            return False
        with self.lock:
            try:
                with open(self.fail_file) as f:
                    n = int(f.read().strip() or 0)
            except (OSError, ValueError):
                return False
            if n <= 0:
                return False
            with open(self.fail_file, "w") as f:
                f.write("%d\n" % (n - 1))
            return True

    async def handle_DATA(self, server, session, envelope):
        if self.take_failure():
            print("smtp-sink: refusing with 451", file=sys.stderr, flush=True)
            return "451 4.3.0 Temporary failure, try again later"
        msg = mailbox.MaildirMessage(envelope.original_content)
        msg["X-Envelope-From"] = envelope.mail_from
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.box.add(msg)
        print("smtp-sink: stored a message for %s" % envelope.rcpt_tos, file=sys.stderr, flush=True)
        return "250 2.0.0 OK"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--fail-file")
    ap.add_argument("--login")
    args = ap.parse_args()
    # The SMTP conversation goes to stderr: the test's log shows what went wrong.
    logging.basicConfig(level=logging.INFO, format="smtp-sink: %(message)s")
    kwargs = {}
    if args.login:
        user, password = args.login.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and \
                auth_data.password.decode() == password
            return AuthResult(success=ok)

        kwargs = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
    c = Controller(Handler(args.maildir, args.fail_file), hostname="127.0.0.1", port=args.port, **kwargs)
    c.start()
    print("smtp-sink: listening on 127.0.0.1:%d" % args.port, file=sys.stderr, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    c.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A scripted IRC user for Conclave's tests (stdlib only).

Connects to an IRC server as NICK, joins CHANNEL, and keeps doing so (reconnecting when the
server goes away). Every PRIVMSG it receives is appended to LOG as one JSON line
{"from": nick, "to": target, "text": text}. Every line appended to COMMANDS is sent: plain text
goes to the channel, "/msg NICK TEXT" privately. Once connected and joined, writes "joined" to
LOG (as {"event": "joined"}), so a test knows when to start talking.
"""
import argparse
import json
import os
import socket
import sys
import time


def log(path, obj):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()


def session(args, state):
    sock = socket.create_connection((args.host, args.port), timeout=5)
    sock.settimeout(0.2)
    buf = b""

    def send(line):
        sock.sendall(line.encode("utf-8") + b"\r\n")

    send(f"NICK {args.nick}")
    send(f"USER {args.nick} 0 * :test user")
    joined = False
    while True:
        # Commands appended since last time
        if joined and os.path.exists(args.commands):
            with open(args.commands, "rb") as f:
                f.seek(state["offset"])
                data = f.read()
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                state["offset"] += len(line) + 1
                text = line.decode("utf-8", "replace")
                if text.startswith("/msg "):
                    _, target, rest = text.split(" ", 2)
                    send(f"PRIVMSG {target} :{rest}")
                elif text.startswith("/raw "):
                    send(text[5:])
                elif text:
                    send(f"PRIVMSG {args.channel} :{text}")
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            raise ConnectionError("closed by server")
        buf += chunk
        while b"\r\n" in buf or b"\n" in buf:
            sep = b"\r\n" if b"\r\n" in buf else b"\n"
            raw, buf = buf.split(sep, 1)
            line = raw.decode("utf-8", "replace")
            prefix = ""
            if line.startswith(":"):
                prefix, line = line[1:].split(" ", 1)
            if " :" in line:
                head, trailing = line.split(" :", 1)
                params = head.split() + [trailing]
            else:
                params = line.split()
            if not params:
                continue
            cmd = params[0]
            if cmd == "PING":
                send("PONG :" + (params[1] if len(params) > 1 else ""))
            elif cmd == "001":
                send(f"JOIN {args.channel}")
            elif cmd == "JOIN" and prefix.split("!")[0] == args.nick:
                joined = True
                log(args.log, {"event": "joined"})
            elif cmd == "PRIVMSG" and len(params) >= 3:
                log(args.log, {"from": prefix.split("!")[0], "to": params[1], "text": params[2]})
            elif cmd == "433":
                raise ConnectionError("nick in use")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nick", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--commands", required=True)
    p.add_argument("--pid-file", help="write our pid here (the test stops us with it)")
    args = p.parse_args()
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    # Start after what is already in the commands file.
    state = {"offset": os.path.getsize(args.commands) if os.path.exists(args.commands) else 0}
    while True:
        try:
            session(args, state)
        except (OSError, ConnectionError) as e:
            log(args.log, {"event": "disconnected", "why": str(e)})
            time.sleep(0.5)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)

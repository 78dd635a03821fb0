#!/usr/bin/env python3
"""A minimal IRC server for testing how Conclave logs in (stdlib only): SASL PLAIN (IRCv3
CAP REQ :sasl, AUTHENTICATE) checked against --user/--password, NickServ IDENTIFY recorded,
registration (001), JOIN echoed, PING answered. ngircd has neither SASL nor services, hence this.
Every line a client sends is appended to LOG as {"conn": N, "line": LINE}.
"""
import argparse
import base64
import json
import os
import socketserver
import threading

lock = threading.Lock()
counter = [0]


class Handler(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        with lock:
            counter[0] += 1
            conn = counter[0]
        nick = user = None
        negotiating = registered = False
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with lock, open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"conn": conn, "line": line}) + "\n")
            words = line.split(" ")
            cmd = words[0].upper()
            if cmd == "CAP" and len(words) > 1 and words[1] == "REQ":
                negotiating = True
                self.send(":auth.test CAP * ACK :sasl")
            elif cmd == "AUTHENTICATE" and words[1] == "PLAIN":
                self.send("AUTHENTICATE +")
            elif cmd == "AUTHENTICATE":
                try:
                    authz, authc, password = base64.b64decode(words[1]).split(b"\0")
                    ok = authc.decode() == ARGS.user and password.decode() == ARGS.password
                except Exception:
                    ok = False
                if ok:
                    self.send(f":auth.test 903 {nick or '*'} :SASL authentication successful")
                else:
                    self.send(f":auth.test 904 {nick or '*'} :SASL authentication failed")
            elif cmd == "CAP" and len(words) > 1 and words[1] == "END":
                negotiating = False
            elif cmd == "NICK":
                nick = words[1]
            elif cmd == "USER":
                user = words[1]
            elif cmd == "PING":
                self.send(":auth.test PONG auth.test " + (words[1] if len(words) > 1 else ""))
            elif cmd == "JOIN":
                self.send(f":{nick}!{user}@127.0.0.1 JOIN {words[1]}")
            elif cmd == "PRIVMSG" and len(words) > 1 and words[1] == "NickServ":
                self.send(f":NickServ!services@auth.test NOTICE {nick} :You are now identified")
            elif cmd == "QUIT":
                return
            if nick and user and not negotiating and not registered:
                registered = True
                self.send(f":auth.test 001 {nick} :Welcome")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--pid-file", required=True)
    ARGS = p.parse_args()
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(ARGS.pid_file, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    with open(ARGS.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

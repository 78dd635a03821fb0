#!/usr/bin/env python3
"""The IRC side of bench/channels: as alice, sends MESSAGES lines to the channel with at most
WINDOW unanswered, and times each until "alice: echo: LINE" comes back. First a closed loop (one
at a time) for latency, then the windowed run for throughput."""
import argparse
import socket
import statistics
import time


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


class Client:
    def __init__(self, port, channel):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.channel = channel
        self.send("NICK alice")
        self.send("USER alice 0 * :bench")
        while True:
            cmd, params = self.read()
            if cmd == "001":
                self.send(f"JOIN {channel}")
            elif cmd == "366":  # end of NAMES: joined
                break

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def read(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n", 1)
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            line = line.split(" ", 1)[1]
        head, _, trailing = line.partition(" :")
        params = head.split()
        if trailing or " :" in line:
            params.append(trailing)
        if params and params[0] == "PING":
            self.send("PONG :" + (params[1] if len(params) > 1 else ""))
        return params[0] if params else "", params[1:]

    def reply(self):
        """The next echo line's payload."""
        while True:
            cmd, params = self.read()
            if cmd == "PRIVMSG" and len(params) == 2 and params[1].startswith("alice: echo: "):
                return params[1][len("alice: echo: "):]


def run(client, tag, count, window):
    sent = {}
    lat = []
    nxt = 0
    start = time.monotonic()
    while len(lat) < count:
        while nxt < count and len(sent) < window:
            key = f"{tag}{nxt}"
            sent[key] = time.monotonic()
            client.send(f"PRIVMSG {client.channel} :{key}")
            nxt += 1
        key = client.reply()
        if key in sent:
            lat.append(time.monotonic() - sent.pop(key))
    return time.monotonic() - start, lat


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--window", type=int, default=50)
    a = p.parse_args()
    c = Client(a.port, a.channel)
    run(c, "warm", 20, 1)
    closed = min(300, a.messages)
    _, lat = run(c, "seq", closed, 1)
    ms = [x * 1000 for x in lat]
    print(f"closed loop, {closed} messages one at a time: round trip p50 {statistics.median(ms):.1f} ms, "
          f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms")
    elapsed, lat = run(c, "win", a.messages, a.window)
    ms = [x * 1000 for x in lat]
    print(f"windowed, {a.messages} messages, up to {a.window} unanswered: {a.messages / elapsed:.0f} messages/s "
          f"end to end; round trip p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.1f} ms")


if __name__ == "__main__":
    main()

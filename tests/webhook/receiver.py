#!/usr/bin/env python3
"""A webhook receiver for Conclave's tests (stdlib only): checks each POST's X-Conclave-*
signature with the shared secret, de-duplicates on X-Conclave-Delivery, and appends one JSON
line per request to LOG: {"delivery", "valid", "duplicate", "status", "body"}.

How to answer is scripted: each line of PLAN, taken in order by the requests that arrive, is a
status ("503", "400"), "429:SECONDS" (with Retry-After) or "delay:SECONDS" (a 200, that late);
when PLAN has no more lines the answer is 200 {"id": "r-N"}. Listens on 127.0.0.1, an ephemeral port written to PORT_FILE.
"""
import argparse
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

seen = {}
plan_used = 0


def next_plan(path):
    global plan_used
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip()]
    if plan_used < len(lines):
        plan_used += 1
        return lines[plan_used - 1]
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(405, b'{"error":"POST only"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        ts = self.headers.get("X-Conclave-Timestamp", "")
        delivery = self.headers.get("X-Conclave-Delivery", "")
        sig = self.headers.get("X-Conclave-Signature", "")
        expect = "sha256=" + hmac.new(SECRET, f"{ts}.{delivery}.".encode() + body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expect, sig) and ts.isdigit() and abs(time.time() - int(ts)) < 300
        entry = {"delivery": delivery, "valid": valid, "duplicate": delivery in seen,
                 "time": time.time()}
        try:
            entry["body"] = json.loads(body)
        except ValueError:
            entry["body"] = None
        step = next_plan(ARGS.plan) if valid else "401"
        if step is not None and step.startswith("delay:"):
            time.sleep(float(step[6:]))
            step = None
        if step is None:
            if delivery not in seen:
                seen[delivery] = f"r-{len(seen) + 1}"
            status, payload, headers = 200, json.dumps({"id": seen[delivery]}).encode(), [("Content-Type", "application/json")]
        elif step.startswith("429:"):
            status, payload, headers = 429, b'{"error":"slow down"}', [("Retry-After", step[4:])]
        else:
            status, payload, headers = int(step), b'{"error":"scripted"}', []
        entry["status"] = status
        with open(ARGS.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self.answer(status, payload, headers)


def main():
    global ARGS, SECRET
    p = argparse.ArgumentParser()
    p.add_argument("--secret-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--pid-file")
    ARGS = p.parse_args()
    with open(ARGS.secret_file, "rb") as f:
        SECRET = f.read().rstrip(b"\r\n")
    server = HTTPServer(("127.0.0.1", 0), Handler)
    if ARGS.pid_file:
        with open(ARGS.pid_file, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    with open(ARGS.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

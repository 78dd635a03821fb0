"""Shared plumbing for the local fakes of chat platforms (tests/fakes/*.py).

Each fake is a small HTTP server speaking one platform's documented wire format on loopback.
This module gives them: a threaded server that writes its port to a file, JSON helpers, a log
of every request, and a control API under /_fake/ that tests drive with curl:

  POST /_fake/fault   {"match": "sendMessage", "mode": "429|500|malformed|drop|drop_after",
                       "count": 1, "retry_after": 2}
      the next COUNT requests whose path contains MATCH fail that way: 429 in the platform's
      own rate-limit form, 500, a 200 whose JSON is cut short, the connection closed before
      anything is done (drop), or closed after the request took effect but before the answer
      (drop_after: the client cannot know it worked).
  GET  /_fake/requests  every request seen: [{"method", "path", "time"}]
  GET  /_fake/sent      the messages the platform accepted from the bot (platform-specific)
  POST /_fake/inject    a message from a human on the platform (platform-specific)
  GET  /_fake/status    platform-specific state (offsets seen, webhook, …)

Stdlib only (python3), so the tests need nothing from PyPI.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class FakeState:
    """State shared by the handler threads; every access holds the lock."""

    def __init__(self):
        self.lock = threading.Condition()
        self.faults = []
        self.requests = []
        self.sent = []
        self.port = 0  # set once listening

    def take_fault(self, path):
        with self.lock:
            for f in self.faults:
                if f["match"] in path and f["count"] > 0:
                    f["count"] -= 1
                    return dict(f)
        return None


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "conclave-fake/1"
    state = None  # set by serve()

    def log_message(self, fmt, *args):
        log("%s: %s" % (self.server.fake_name, fmt % args))

    # --- helpers -----------------------------------------------------------------------
    def body_bytes(self):
        if hasattr(self, "_body"):
            return self._body
        n = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(n) if n > 0 else b""
        return self._body

    def params(self):
        """Query string plus a JSON or form body, as a flat dict (the way Telegram reads them)."""
        u = urlsplit(self.path)
        out = {k: v[-1] for k, v in parse_qs(u.query).items()}
        body = self.body_bytes()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and ctype == "application/json":
            try:
                obj = json.loads(body)
            except ValueError:
                raise BadRequest("can't parse JSON body")
            if not isinstance(obj, dict):
                raise BadRequest("JSON body must be an object")
            out.update(obj)
        elif body and ctype == "application/x-www-form-urlencoded":
            out.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()})
        return out

    def send_json(self, status, obj, headers=None):
        self.send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def send_raw(self, status, data, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """Go away mid-request: no status line, the connection just closes."""
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # Platform hooks ---------------------------------------------------------------------
    def rate_limited(self, retry_after):  # the platform's own 429
        self.send_json(429, {"error": "rate limited"}, {"Retry-After": retry_after})

    def handle_api(self, method):  # returns True when it answered
        return False

    def inject(self, obj):
        raise BadRequest("inject not supported")

    def status(self):  # platform-specific state for tests, under the lock
        return {}

    # --- dispatch ----------------------------------------------------------------------
    def dispatch(self, method):
        # One handler object serves every request of a keep-alive connection.
        self.__dict__.pop("_body", None)
        self.after_fault = None
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_fake/"):
                return self.control(method, path)
            with self.state.lock:
                self.state.requests.append({"method": method, "path": path, "time": time.time()})
            fault = self.state.take_fault(path)
            if fault:
                mode = fault["mode"]
                log("%s: fault %s on %s" % (self.server.fake_name, mode, path))
                self.body_bytes()
                if mode == "drop":
                    return self.drop()
                if mode == "429":
                    return self.rate_limited(fault.get("retry_after", 1))
                if mode == "500":
                    return self.send_raw(500, b"<html>Internal Server Error</html>", "text/html")
                if mode == "malformed":
                    return self.send_raw(200, b'{"ok":true,"result":[{"update_id":', "application/json")
                if mode == "drop_after":
                    self.after_fault = "drop"
            if not self.handle_api(method):
                self.not_found()
        except BadRequest as e:
            self.bad_request(str(e))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def not_found(self):
        self.send_json(404, {"error": "not found"})

    def bad_request(self, text):
        self.send_json(400, {"error": text})

    def reply(self, status, obj, headers=None):
        """For API answers: honours a drop_after fault (the work is done, the answer lost)."""
        if getattr(self, "after_fault", None) == "drop":
            return self.drop()
        self.send_json(status, obj, headers)

    def control(self, method, path):
        if method == "POST" and path == "/_fake/fault":
            f = json.loads(self.body_bytes() or b"{}")
            f.setdefault("count", 1)
            f.setdefault("match", "")
            with self.state.lock:
                self.state.faults.append(f)
            return self.send_json(200, {"ok": True})
        if method == "GET" and path == "/_fake/requests":
            with self.state.lock:
                return self.send_json(200, list(self.state.requests))
        if method == "GET" and path == "/_fake/sent":
            with self.state.lock:
                return self.send_json(200, list(self.state.sent))
        if method == "GET" and path == "/_fake/status":
            with self.state.lock:
                return self.send_json(200, self.status())
        if method == "POST" and path == "/_fake/inject":
            obj = json.loads(self.body_bytes() or b"{}")
            return self.send_json(200, self.inject(obj) or {"ok": True})
        return self.not_found()

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")


class BadRequest(Exception):
    pass


def arg_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--port-file", help="write the port here once listening")
    return p


def serve(name, handler_cls, state, args):
    handler_cls.state = state
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler_cls)
    httpd.daemon_threads = True
    httpd.fake_name = name
    port = httpd.server_address[1]
    state.port = port
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    log("%s: listening on 127.0.0.1:%d" % (name, port))
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return httpd

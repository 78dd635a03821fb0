#!/usr/bin/env python3
"""A local server speaking the documented wire formats of three LLM APIs, for Conclave's tests.

  POST /v1/chat/completions  OpenAI Chat Completions, "stream": true: SSE "data:" lines of
                             chat.completion.chunk objects, a usage chunk (stream_options
                             include_usage), "data: [DONE]". Bearer key.
  POST /v1/messages          Anthropic Messages, "stream": true: SSE named events
                             message_start, content_block_start/delta/stop, ping,
                             message_delta (usage), message_stop; x-api-key and
                             anthropic-version headers.
  POST /api/chat             Ollama chat: NDJSON lines, the last with "done": true and counts.
  GET  /v1/models            OpenAI model list       GET /v1/models/{id}  Anthropic model
  GET  /api/tags             Ollama model list

The model name picks the behaviour, so one server serves every test case:

  fake-model        answers "echo: <the last line of the last user message>"
  slow              the same, in 6 pieces 0.25 s apart (concurrency tests)
  slower            the same, in 8 pieces 0.5 s apart
  rate-limit-once   429 with Retry-After: 2 the first time a question is asked, then answers
  rate-limit        always 429 with Retry-After: 1
  rate-limit-long   429 with Retry-After: 3600
  server-error      always 500 (Anthropic: 529 overloaded_error)
  cut               two pieces of the answer, then the connection is closed mid-stream
  hang              reads the request and never answers
  bad-json          a stream piece that is not JSON
  too-long          400: the prompt does not fit the context window (each API's wording)
  stream-error      an error inside a 200 stream (Anthropic "event: error", overloaded)
  no-usage          answers without any token counts

Other model names are unknown (404 in each API's format). Every request is logged as one JSON
line (--log) with "concurrent" (requests of that API and model being answered, this one
included) and CLOCK_MONOTONIC times: "t_request" (request fully read) and "t_done" (last
byte written), which bench/llm uses. Standard library only.
"""

import argparse
import http.server
import json
import os
import socket
import sys
import threading
import time

KNOWN = ["fake-model", "slow", "slower", "rate-limit-once", "rate-limit", "rate-limit-long", "server-error", "cut",
         "hang", "bad-json", "too-long", "stream-error", "no-usage"]

args = None
log_lock = threading.Lock()
state_lock = threading.Lock()
seen_questions = set()
in_flight = {}  # (API, model) -> requests being answered now


def now():
    return time.monotonic_ns() // 1000  # CLOCK_MONOTONIC, microseconds


def log(entry):
    if not args.log:
        return
    with log_lock:
        with open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")


def last_user_text(body, kind):
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):  # Anthropic content blocks
                c = " ".join(b.get("text", "") for b in c if isinstance(b, dict))
            return c if isinstance(c, str) else ""
    return ""


def answer_for(body, kind):
    text = last_user_text(body, kind).strip().splitlines()
    return "echo: " + (text[-1] if text else "")


def prompt_chars(body):
    n = len(body.get("system") or "") if isinstance(body.get("system"), str) else 0
    for m in body.get("messages") or []:
        c = m.get("content")
        n += len(c) if isinstance(c, str) else 0
    return n


def pieces(text, n):
    size = max(1, (len(text) + n - 1) // n)
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm-provider/1"

    def log_message(self, fmt, *a):
        if args.verbose:
            sys.stderr.write("fake-llm: " + (fmt % a) + "\n")

    # --- helpers -----------------------------------------------------------------------------
    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self):
        # Gone mid-stream: no terminating chunk, the connection just closes.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hang(self):
        # Never answer; end when the client gives up (or after 10 minutes).
        self.close_connection = True
        self.connection.settimeout(1)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    # --- auth ---------------------------------------------------------------------------------
    def check_auth(self, kind):
        key = args.key
        if kind == "openai":
            got = self.headers.get("Authorization", "")
            if key and got != "Bearer " + key:
                self.send_json(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                               "param": None, "code": "invalid_api_key"}})
                return False
        elif kind == "anthropic":
            if not self.headers.get("anthropic-version"):
                self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "anthropic-version: header is required"}})
                return False
            if key and self.headers.get("x-api-key") != key:
                self.send_json(401, {"type": "error", "error": {"type": "authentication_error",
                                                                "message": "invalid x-api-key"}})
                return False
        return True

    # --- GET ------------------------------------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/v1/models":
            if self.check_auth("openai"):
                self.send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000,
                                                                  "owned_by": "fake"} for m in KNOWN]})
        elif path.startswith("/v1/models/"):
            if not self.check_auth("anthropic"):
                return
            m = path[len("/v1/models/"):]
            if m in KNOWN:
                self.send_json(200, {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"})
            else:
                self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "model: " + m}})
        elif path == "/api/tags":
            self.send_json(200, {"models": [{"name": m + ":latest", "model": m + ":latest", "size": 1, "digest": "0",
                                             "details": {}} for m in KNOWN]})
        else:
            self.send_json(404, {"error": "not found"})

    # --- POST -----------------------------------------------------------------------------------
    def do_POST(self):
        path = self.path.split("?")[0]
        kind = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/api/chat": "ollama"}.get(path)
        if not kind:
            self.send_json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        t_request = now()
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        model = body.get("model", "")
        entry = {"kind": kind, "path": path, "model": model, "t_request": t_request, "stream": body.get("stream"),
                 "system": body.get("system"), "messages": body.get("messages"), "max_tokens": body.get("max_tokens"),
                 "max_completion_tokens": body.get("max_completion_tokens"), "options": body.get("options"),
                 "stream_options": body.get("stream_options"), "temperature": body.get("temperature"),
                 "anthropic_version": self.headers.get("anthropic-version")}
        if not self.check_auth(kind):
            entry.update(status=401, t_done=now())
            log(entry)
            return
        slot = (kind, model)
        with state_lock:
            in_flight[slot] = in_flight.get(slot, 0) + 1
            entry["concurrent"] = in_flight[slot]
        try:
            entry["status"] = self.serve(kind, model, body)
        except (BrokenPipeError, ConnectionResetError):
            entry["status"] = "client-gone"
        finally:
            with state_lock:
                in_flight[slot] -= 1
            entry["t_done"] = now()
            log(entry)

    def serve(self, kind, model, body):
        base = model.split(":")[0]
        if base not in KNOWN:
            if kind == "openai":
                self.send_json(404, {"error": {"message": "The model `%s` does not exist" % model,
                                               "type": "invalid_request_error", "param": None, "code": "model_not_found"}})
            elif kind == "anthropic":
                self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "model: " + model}})
            else:
                self.send_json(404, {"error": 'model "%s" not found, try pulling it first' % model})
            return 404
        question = last_user_text(body, kind)
        if base == "rate-limit-once":
            with state_lock:
                first = question not in seen_questions
                seen_questions.add(question)
            if first:
                return self.rate_limited(kind, 2)
        if base == "rate-limit":
            return self.rate_limited(kind, 1)
        if base == "rate-limit-long":
            return self.rate_limited(kind, 3600)
        if base == "server-error":
            if kind == "openai":
                self.send_json(500, {"error": {"message": "The server had an error while processing your request.",
                                               "type": "server_error", "param": None, "code": None}})
                return 500
            if kind == "anthropic":
                self.send_json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return 529
            self.send_json(500, {"error": "llama runner process has terminated"})
            return 500
        if base == "too-long":
            if kind == "openai":
                self.send_json(400, {"error": {"message": "This model's maximum context length is 8192 tokens. However, "
                                               "your messages resulted in 9000 tokens.", "type": "invalid_request_error",
                                               "param": "messages", "code": "context_length_exceeded"}})
            elif kind == "anthropic":
                self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "prompt is too long: 210000 tokens > 200000 maximum"}})
            else:
                self.send_json(400, {"error": "the input exceeds the context length of the model"})
            return 400
        if base == "hang":
            self.hang()
            return "hang"
        text = answer_for(body, kind)
        n = {"slow": 6, "slower": 8}.get(base, 3)
        delay = {"slow": 0.25, "slower": 0.5}.get(base, 0)
        usage = base != "no-usage"
        return {"openai": self.stream_openai, "anthropic": self.stream_anthropic,
                "ollama": self.stream_ollama}[kind](base, model, body, text, n, delay, usage)

    def rate_limited(self, kind, seconds):
        h = {"Retry-After": str(seconds)}
        if kind == "openai":
            self.send_json(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}}, h)
        elif kind == "anthropic":
            self.send_json(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                            "message": "Number of requests has exceeded your rate limit"}}, h)
        else:
            self.send_json(429, {"error": "too many requests"}, h)
        return 429

    def stream_openai(self, base, model, body, text, n, delay, usage):
        cid = "chatcmpl-fake%d" % now()

        def ev(obj):
            self.chunk("data: " + json.dumps(obj) + "\n\n")

        def choice(delta, finish=None):
            return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        self.start_stream("text/event-stream")
        self.chunk(": keep-alive comment\n\n")
        ev(choice({"role": "assistant", "content": ""}))
        for i, p in enumerate(pieces(text, n)):
            if base == "cut" and i == 2:
                return self.cut() or "cut"
            if base == "bad-json" and i == 1:
                self.chunk("data: {\"id\": \"x\", \"choices\": [\n\n")
            if base == "stream-error" and i == 1:
                ev({"error": {"message": "The server is overloaded", "type": "server_error", "code": None}})
                self.end_stream()
                return "stream-error"
            ev(choice({"content": p}))
            time.sleep(delay)
        if base == "cut":
            return self.cut() or "cut"
        ev(choice({}, "stop"))
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            out = max(1, len(text) // 4)
            inp = max(1, prompt_chars(body) // 4)
            ev({"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [], "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}})
        self.chunk("data: [DONE]\n\n")
        self.end_stream()
        return 200

    def stream_anthropic(self, base, model, body, text, n, delay, usage):
        def ev(name, obj):
            # Sent split across two chunks on purpose: a parser must not need whole events.
            s = "event: %s\ndata: %s\n\n" % (name, json.dumps(obj))
            self.chunk(s[:len(s) // 2])
            self.chunk(s[len(s) // 2:])
        inp = max(1, prompt_chars(body) // 4) if usage else 0
        self.start_stream("text/event-stream; charset=utf-8")
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": inp, "output_tokens": 1}}})
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})
        ev("ping", {"type": "ping"})
        for i, p in enumerate(pieces(text, n)):
            if base == "cut" and i == 2:
                return self.cut() or "cut"
            if base == "bad-json" and i == 1:
                self.chunk("event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\":\n\n")
            if base == "stream-error" and i == 1:
                ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                self.end_stream()
                return "stream-error"
            ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": p}})
            time.sleep(delay)
        if base == "cut":
            return self.cut() or "cut"
        ev("content_block_stop", {"type": "content_block_stop", "index": 0})
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": max(1, len(text) // 4) if usage else 0}})
        ev("message_stop", {"type": "message_stop"})
        self.end_stream()
        return 200

    def stream_ollama(self, base, model, body, text, n, delay, usage):
        def line(obj):
            self.chunk(json.dumps(obj) + "\n")
        ts = "2026-01-01T00:00:00.000000Z"
        self.start_stream("application/x-ndjson")
        for i, p in enumerate(pieces(text, n)):
            if base == "cut" and i == 2:
                return self.cut() or "cut"
            if base == "bad-json" and i == 1:
                self.chunk("{\"model\": \"x\", \"message\": \n")
            if base == "stream-error" and i == 1:
                line({"error": "an error was encountered while running the model"})
                self.end_stream()
                return "stream-error"
            line({"model": model, "created_at": ts, "message": {"role": "assistant", "content": p}, "done": False})
            time.sleep(delay)
        if base == "cut":
            return self.cut() or "cut"
        last = {"model": model, "created_at": ts, "message": {"role": "assistant", "content": ""}, "done": True,
                "done_reason": "stop", "total_duration": 1000, "load_duration": 10}
        if usage:
            last.update(prompt_eval_count=max(1, prompt_chars(body) // 4), prompt_eval_duration=100,
                        eval_count=max(1, len(text) // 4), eval_duration=100)
        line(last)
        self.end_stream()
        return 200


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--key", default="", help="the API key expected (empty: none checked)")
    p.add_argument("--log", help="append one JSON line per chat request")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

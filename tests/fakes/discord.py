#!/usr/bin/env python3
"""A local Discord API (https://discord.com/developers/docs) for Conclave's tests: REST v10 and
the Gateway WebSocket, on one port.

REST (Authorization: Bot TOKEN): GET /api/v10/users/@me, GET /api/v10/gateway/bot, POST
/api/v10/channels/{id}/messages (content <= 2000 characters, message_reference, nonce with
enforce_nonce: a repeated nonce returns the first message and creates none). Responses carry
X-RateLimit-* headers; 429 is {"message":"You are being rate limited.","retry_after":S,
"global":false} with Retry-After and X-RateLimit-Scope. Errors are {"message","code"}.

Gateway (GET / with Upgrade: websocket, ?v=10&encoding=json): HELLO (op 10) with
heartbeat_interval, IDENTIFY (op 2) → READY, HEARTBEAT (op 1) → HEARTBEAT_ACK (op 11), RESUME
(op 6) → missed dispatches then RESUMED, INVALID_SESSION (op 9) for an unknown session, close
4004 for a bad token. MESSAGE_CREATE content is empty unless IDENTIFY asked for the
MESSAGE_CONTENT intent (1 << 15), as on Discord. Control API: see fakelib.py, plus

  POST /_fake/inject {"content": "hi", "author_id": "4242", "username": "alice",
                      "channel_id": "900", "reply_to": "MESSAGE_ID", "duplicate": true}
  POST /_fake/ws_drop   close every gateway connection without a close frame
  POST /_fake/ws_send_raw {"data": "…"}   send a text frame as is (malformed payloads)
"""

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import urllib.parse

import fakelib

BOT_ID = "700000000000000001"
MESSAGE_CONTENT = 1 << 15
MAX_CONTENT = 2000


class State(fakelib.FakeState):
    def __init__(self, token, heartbeat_ms):
        super().__init__()
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.next_id = 1
        self.nonces = {}  # nonce -> message
        self.sessions = {}  # session_id -> {"seq", "events": [(seq, payload)], "conn", "intents"}
        self.identifies = 0
        self.resumes = 0

    def snowflake(self):
        self.next_id += 1
        return str(800000000000000000 + self.next_id)


class Handler(fakelib.FakeHandler):
    def ratelimit_headers(self, remaining=4, reset_after=1.0):
        return {"X-RateLimit-Limit": 5, "X-RateLimit-Remaining": remaining,
                "X-RateLimit-Reset": "%.3f" % (time.time() + reset_after),
                "X-RateLimit-Reset-After": "%.3f" % reset_after, "X-RateLimit-Bucket": "abcd1234"}

    def rate_limited(self, retry_after):
        h = self.ratelimit_headers(0, retry_after)
        h.update({"Retry-After": int(retry_after) or 1, "X-RateLimit-Scope": "user"})
        self.send_json(429, {"message": "You are being rate limited.", "retry_after": float(retry_after),
                             "global": False}, h)

    def dc_error(self, status, message, code, **extra):
        obj = {"message": message, "code": code}
        obj.update(extra)
        self.reply(status, obj)

    def dispatch(self, method):
        if method == "GET" and (self.headers.get("Upgrade") or "").lower() == "websocket":
            return self.websocket()
        if method == "POST" and self.path == "/_fake/ws_drop":
            with self.state.lock:
                conns = [s["conn"] for s in self.state.sessions.values() if s.get("conn")]
            for c in conns:
                c.drop()
            return self.send_json(200, {"ok": True, "dropped": len(conns)})
        if method == "POST" and self.path == "/_fake/ws_send_raw":
            data = json.loads(self.body_bytes() or b"{}").get("data", "")
            with self.state.lock:
                conns = [s["conn"] for s in self.state.sessions.values() if s.get("conn")]
            for c in conns:
                c.send_frame(1, data.encode())
            return self.send_json(200, {"ok": True, "sent": len(conns)})
        return super().dispatch(method)

    def handle_api(self, method):
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith("/api/v10/"):
            return False
        if (self.headers.get("Authorization") or "") != "Bot " + self.state.token:
            self.body_bytes()
            self.dc_error(401, "401: Unauthorized", 0)
            return True
        parts = path[len("/api/v10/"):].split("/")
        if method == "GET" and parts == ["users", "@me"]:
            self.reply(200, {"id": BOT_ID, "username": "conclave", "discriminator": "0", "global_name": None,
                             "avatar": None, "bot": True, "verified": True, "flags": 0})
        elif method == "GET" and parts == ["gateway", "bot"]:
            self.reply(200, {"url": "ws://127.0.0.1:%d" % self.state.port, "shards": 1,
                             "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000,
                                                     "max_concurrency": 1}})
        elif method == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages":
            self.create_message(parts[1])
        else:
            self.dc_error(404, "404: Not Found", 0)
        return True

    def create_message(self, channel_id):
        try:
            p = self.params()
        except fakelib.BadRequest:
            return self.dc_error(400, "400: Bad Request", 50109)
        content = p.get("content")
        if not isinstance(content, str) or not content:
            return self.dc_error(400, "Cannot send an empty message", 50006)
        if len(content) > MAX_CONTENT:
            return self.dc_error(400, "Invalid Form Body", 50035, errors={"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}})
        st = self.state
        with st.lock:
            nonce = p.get("nonce")
            if nonce is not None and p.get("enforce_nonce") and str(nonce) in st.nonces:
                return self.reply(200, st.nonces[str(nonce)], self.ratelimit_headers())
            msg = {"id": st.snowflake(), "type": 0, "channel_id": channel_id, "content": content,
                   "author": {"id": BOT_ID, "username": "conclave", "discriminator": "0", "bot": True},
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime()),
                   "tts": False, "mentions": [], "attachments": [], "embeds": [], "pinned": False}
            ref = p.get("message_reference")
            if isinstance(ref, dict):
                msg["message_reference"] = {"message_id": ref.get("message_id"), "channel_id": channel_id}
                msg["type"] = 19
            if nonce is not None:
                msg["nonce"] = nonce
                st.nonces[str(nonce)] = msg
            st.sent.append({"channel_id": channel_id, "content": content, "id": msg["id"], "nonce": nonce,
                            "reply_to": (ref or {}).get("message_id") if isinstance(ref, dict) else None})
        self.reply(200, msg, self.ratelimit_headers())

    def status(self):
        return {"identifies": self.state.identifies, "resumes": self.state.resumes,
                "connected": sum(1 for s in self.state.sessions.values() if s.get("conn"))}

    def inject(self, obj):
        st = self.state
        with st.lock:
            mid = st.snowflake()
            msg = {"id": mid, "type": 0, "channel_id": str(obj.get("channel_id", "900")),
                   "author": {"id": str(obj.get("author_id", "4242")), "username": obj.get("username", "alice"),
                              "discriminator": "0", "global_name": obj.get("username", "alice")},
                   "content": obj.get("content", ""), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00"),
                   "mentions": [], "attachments": [], "embeds": []}
            if obj.get("guild_id"):
                msg["guild_id"] = str(obj["guild_id"])
            if obj.get("bot"):
                msg["author"]["bot"] = True
            if obj.get("reply_to"):
                msg["type"] = 19
                msg["message_reference"] = {"message_id": str(obj["reply_to"]), "channel_id": msg["channel_id"]}
            delivered = 0
            for sid, s in st.sessions.items():
                d = dict(msg)
                if not s["intents"] & MESSAGE_CONTENT:
                    d["content"] = ""
                for _ in range(2 if obj.get("duplicate") else 1):
                    s["seq"] += 1
                    payload = {"op": 0, "t": "MESSAGE_CREATE", "s": s["seq"], "d": d}
                    s["events"].append(payload)
                    if s.get("conn"):
                        s["conn"].send_json(payload)
                        delivered += 1
        return {"ok": True, "id": mid, "delivered": delivered}

    # --- the gateway ------------------------------------------------------------------------
    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Sec-WebSocket-Version") != "13":
            return self.send_raw(400, b"bad websocket handshake", "text/plain")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        conn = WsConn(self.connection, self.rfile)
        Gateway(self.state, conn).run()


class WsConn:
    """RFC 6455 server side: unmasked frames out, masked frames in."""

    def __init__(self, sock, rfile):
        self.sock, self.rfile = sock, rfile
        self.wlock = threading.Lock()
        self.closed = False

    def send_frame(self, opcode, data):
        n = len(data)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([n])
        elif n < 65536:
            hdr += bytes([126]) + struct.pack("!H", n)
        else:
            hdr += bytes([127]) + struct.pack("!Q", n)
        with self.wlock:
            if self.closed:
                return
            try:
                self.sock.sendall(hdr + data)
            except OSError:
                self.closed = True

    def send_json(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def close(self, code, reason):
        self.send_frame(8, struct.pack("!H", code) + reason.encode())
        self.drop()

    def drop(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def recv_message(self):
        """Returns (opcode, payload) of a whole message, or None when the connection ends."""
        buf, first_op = b"", None
        while True:
            h = self.rfile.read(2)
            if len(h) < 2:
                return None
            fin, op = h[0] & 0x80, h[0] & 0x0F
            masked, n = h[1] & 0x80, h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.rfile.read(8))[0]
            if not masked or n > 1 << 20:
                self.close(1002, "protocol error")
                return None
            mask = self.rfile.read(4)
            data = bytearray(self.rfile.read(n))
            if len(data) < n:
                return None
            for i in range(n):
                data[i] ^= mask[i % 4]
            if op >= 8:  # control frames may interleave
                if op == 9:
                    self.send_frame(10, bytes(data))
                    continue
                if op == 10:
                    continue
                return (op, bytes(data))
            if op != 0:
                first_op = op
            buf += data
            if fin:
                return (first_op, buf)


class Gateway:
    def __init__(self, state, conn):
        self.st, self.conn, self.session = state, conn, None

    def run(self):
        st, conn = self.st, self.conn
        conn.send_json({"op": 10, "d": {"heartbeat_interval": st.heartbeat_ms}, "s": None, "t": None})
        while True:
            m = conn.recv_message()
            if m is None or m[0] == 8:
                break
            try:
                msg = json.loads(m[1])
                op = msg["op"]
            except (ValueError, KeyError, TypeError):
                conn.close(4002, "Error while decoding payload.")
                break
            if op == 1:
                conn.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                self.identify(msg.get("d") or {})
            elif op == 6:
                self.resume(msg.get("d") or {})
            else:
                conn.close(4001, "Unknown opcode.")
                break
        with st.lock:
            if self.session and st.sessions.get(self.session, {}).get("conn") is conn:
                st.sessions[self.session]["conn"] = None
        conn.drop()

    def identify(self, d):
        st = self.st
        if d.get("token") != st.token:
            return self.conn.close(4004, "Authentication failed.")
        with st.lock:
            st.identifies += 1
            sid = "session%d" % st.identifies
            self.session = sid
            s = {"seq": 1, "events": [], "conn": self.conn, "intents": int(d.get("intents") or 0)}
            st.sessions[sid] = s
            ready = {"op": 0, "t": "READY", "s": 1, "d": {
                "v": 10, "user": {"id": BOT_ID, "username": "conclave", "discriminator": "0", "bot": True},
                "guilds": [], "session_id": sid, "resume_gateway_url": "ws://127.0.0.1:%d" % st.port,
                "application": {"id": BOT_ID, "flags": 0}}}
            self.conn.send_json(ready)

    def resume(self, d):
        st = self.st
        with st.lock:
            s = st.sessions.get(d.get("session_id"))
            if d.get("token") != st.token or not s:
                self.conn.send_json({"op": 9, "d": False, "s": None, "t": None})
                return
            st.resumes += 1
            self.session = d["session_id"]
            s["conn"] = self.conn
            seq = int(d.get("seq") or 0)
            for ev in s["events"]:
                if ev["s"] > seq:
                    self.conn.send_json(ev)
            s["seq"] += 1
            self.conn.send_json({"op": 0, "t": "RESUMED", "s": s["seq"], "d": {}})


def main():
    ap = fakelib.arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--token", default="MTAwMDAw.test.bot-token")
    ap.add_argument("--heartbeat-ms", type=int, default=41250)
    args = ap.parse_args()
    fakelib.serve("discord", Handler, State(args.token, args.heartbeat_ms), args)


if __name__ == "__main__":
    main()

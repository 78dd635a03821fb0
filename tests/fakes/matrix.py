#!/usr/bin/env python3
"""A local Matrix client-server API (https://spec.matrix.org/v1.10/client-server-api/) for
Conclave's tests: one homeserver, one bot user, any number of rooms.

GET /_matrix/client/v3/account/whoami, GET /_matrix/client/v3/sync (long polling: since/
timeout in ms, next_batch, rooms.join.<room>.timeline.events), PUT /_matrix/client/v3/rooms/
{roomId}/send/{eventType}/{txnId} (idempotent per access token and txnId: a repeat returns
the first event_id and sends nothing). Auth by "Authorization: Bearer" or ?access_token=.
Errors are {"errcode":"M_…","error":"…"}; 429 is M_LIMIT_EXCEEDED with retry_after_ms (in the
body only, so a client must read it there). The bot's own messages come back in /sync, as on a
real server. Control API: see fakelib.py.

  POST /_fake/inject {"room": "!general:localhost", "sender": "@alice:localhost", "body": "hi",
                      "reply_to": "$event", "duplicate": true}
"""

import time
import urllib.parse

import fakelib

PREFIX = "/_matrix/client/v3/"
BOT = "@conclave:localhost"


class State(fakelib.FakeState):
    def __init__(self, token):
        super().__init__()
        self.token = token
        self.events = []  # (room_id, event); a since token "s<N>" means "after the first N"
        self.txns = {}  # (token, txnId) -> event_id
        self.next_event = 1
        self.sinces = []

    def add(self, room, ev):
        self.events.append((room, ev))
        self.lock.notify_all()

    def new_event(self, room, sender, content):
        eid = "$ev%06d:localhost" % self.next_event
        self.next_event += 1
        return {"type": "m.room.message", "event_id": eid, "sender": sender,
                "origin_server_ts": int(time.time() * 1000), "content": content,
                "unsigned": {"age": 0}, "room_id": room}


class Handler(fakelib.FakeHandler):
    def mx_error(self, status, errcode, error, **extra):
        obj = {"errcode": errcode, "error": error}
        obj.update(extra)
        self.reply(status, obj)

    def rate_limited(self, retry_after):
        self.mx_error(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=int(retry_after * 1000))

    def handle_api(self, method):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX):
            self.mx_error(404, "M_UNRECOGNIZED", "Unrecognized request")
            return True
        query = dict(urllib.parse.parse_qsl(url.query))
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else query.get("access_token")
        self.body_bytes()
        if not token:
            self.mx_error(401, "M_MISSING_TOKEN", "Missing access token")
            return True
        if token != self.state.token:
            self.mx_error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.", soft_logout=False)
            return True
        parts = [urllib.parse.unquote(p) for p in url.path[len(PREFIX):].split("/")]
        if method == "GET" and parts == ["account", "whoami"]:
            self.reply(200, {"user_id": BOT, "device_id": "CONCLAVEDEV", "is_guest": False})
        elif method == "GET" and parts == ["sync"]:
            self.sync(query)
        elif method == "PUT" and len(parts) == 5 and parts[0] == "rooms" and parts[2] == "send":
            self.send_event(token, parts[1], parts[3], parts[4])
        else:
            self.mx_error(404, "M_UNRECOGNIZED", "Unrecognized request")
        return True

    def sync(self, q):
        st = self.state
        since = q.get("since")
        try:
            start = int(since[1:]) if since else 0
            timeout = int(q.get("timeout", "0")) / 1000.0
        except ValueError:
            return self.mx_error(400, "M_INVALID_PARAM", "Invalid since or timeout")
        deadline = time.time() + timeout
        with st.lock:
            st.sinces.append(since)
            while since and len(st.events) <= start and time.time() < deadline:
                st.lock.wait(deadline - time.time())
            new = st.events[start:]
            end = len(st.events)
        rooms = {}
        for room, ev in new:
            ev = {k: v for k, v in ev.items() if k != "room_id"}
            r = rooms.setdefault(room, {"timeline": {"events": [], "limited": False, "prev_batch": "p%d" % start},
                                        "state": {"events": []}, "ephemeral": {"events": []},
                                        "account_data": {"events": []},
                                        "unread_notifications": {"highlight_count": 0, "notification_count": 0}})
            r["timeline"]["events"].append(ev)
        self.reply(200, {"next_batch": "s%d" % end, "rooms": {"join": rooms, "invite": {}, "leave": {}},
                         "presence": {"events": []}, "account_data": {"events": []}})

    def send_event(self, token, room, etype, txn):
        st = self.state
        try:
            content = self.params()
        except fakelib.BadRequest:
            return self.mx_error(400, "M_NOT_JSON", "Content not JSON.")
        if etype == "m.room.message" and (not isinstance(content.get("body"), str) or "msgtype" not in content):
            return self.mx_error(400, "M_BAD_JSON", "m.room.message needs body and msgtype")
        if len(self.body_bytes()) > 65536:
            return self.mx_error(413, "M_TOO_LARGE", "event too large")
        with st.lock:
            eid = st.txns.get((token, txn))
            if not eid:
                ev = st.new_event(room, BOT, content)
                ev["type"] = etype
                eid = ev["event_id"]
                st.txns[(token, txn)] = eid
                st.add(room, ev)
                rel = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
                st.sent.append({"room": room, "body": content.get("body"), "txn_id": txn, "event_id": eid,
                                "in_reply_to": rel.get("event_id")})
        self.reply(200, {"event_id": eid})

    def status(self):
        return {"sinces": self.state.sinces, "events": len(self.state.events)}

    def inject(self, obj):
        st = self.state
        room = obj.get("room", "!general:localhost")
        content = {"msgtype": obj.get("msgtype", "m.text"), "body": obj.get("body", "")}
        if obj.get("reply_to"):
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": obj["reply_to"]}}
        with st.lock:
            ev = st.new_event(room, obj.get("sender", "@alice:localhost"), content)
            st.add(room, ev)
            if obj.get("duplicate"):
                st.add(room, dict(ev))
        return {"ok": True, "event_id": ev["event_id"]}


def main():
    ap = fakelib.arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--token", default="syt_Y29uY2xhdmU_test_token")
    args = ap.parse_args()
    fakelib.serve("matrix", Handler, State(args.token), args)


if __name__ == "__main__":
    main()

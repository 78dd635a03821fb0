#!/usr/bin/env python3
"""A local Slack Web API and Events API sender (https://api.slack.com) for Conclave's tests.

Web API: POST /api/auth.test and /api/chat.postMessage with "Authorization: Bearer xoxb-…",
answering HTTP 200 with {"ok":false,"error":"invalid_auth"|"channel_not_found"|"no_text"|
"msg_too_long"} on errors and HTTP 429 with a Retry-After header when rate limited, as Slack does.
Events API: /_fake/inject POSTs an event_callback (or a url_verification challenge) to the
request URL given with --events-url, signed the documented way: X-Slack-Request-Timestamp and
X-Slack-Signature = "v0=" + hex HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body);
"duplicate" sends it again as Slack's retry (X-Slack-Retry-Num: 1, X-Slack-Retry-Reason).

  POST /_fake/inject {"text": "hi", "user": "U0ALICE", "channel": "C0GENERAL", "thread_ts": "…",
                      "duplicate": true, "bad_signature": true, "url_verification": true,
                      "bot": true}
  answers {"deliveries": [{"status": 200, "body": "…"}, …], "event_id": "Ev…", "ts": "…"}
"""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

import fakelib

BOT_USER = "U0CONCLAVE"
BOT_ID = "B0CONCLAVE"


class State(fakelib.FakeState):
    def __init__(self, token, secret, events_url):
        super().__init__()
        self.token = token
        self.secret = secret
        self.events_url = events_url
        self.ts = int(time.time())
        self.seq = 0
        self.next_event = 1

    def new_ts(self):
        self.seq += 1
        return "%d.%06d" % (self.ts, self.seq)


class Handler(fakelib.FakeHandler):
    def rate_limited(self, retry_after):
        self.send_json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after})

    def handle_api(self, method):
        path = self.path.split("?")[0]
        if method != "POST" or path not in ("/api/auth.test", "/api/chat.postMessage"):
            return False
        auth = self.headers.get("Authorization") or ""
        try:
            p = self.params()
        except fakelib.BadRequest:
            self.reply(200, {"ok": False, "error": "invalid_json"})
            return True
        if not auth.startswith("Bearer "):
            self.reply(200, {"ok": False, "error": "not_authed"})
            return True
        if auth[7:] != self.state.token:
            self.reply(200, {"ok": False, "error": "invalid_auth"})
            return True
        if path == "/api/auth.test":
            self.reply(200, {"ok": True, "url": "https://conclave-test.slack.com/", "team": "Conclave Test",
                             "user": "conclave", "team_id": "T0TEST", "user_id": BOT_USER, "bot_id": BOT_ID,
                             "is_enterprise_install": False})
            return True
        channel, text = p.get("channel"), p.get("text")
        if not channel:
            self.reply(200, {"ok": False, "error": "channel_not_found"})
        elif not isinstance(text, str) or not text:
            self.reply(200, {"ok": False, "error": "no_text"})
        elif len(text) > 40000:
            self.reply(200, {"ok": False, "error": "msg_too_long"})
        else:
            with self.state.lock:
                ts = self.state.new_ts()
                msg = {"type": "message", "subtype": "bot_message", "text": text, "user": BOT_USER,
                       "bot_id": BOT_ID, "ts": ts}
                if p.get("thread_ts"):
                    msg["thread_ts"] = p["thread_ts"]
                self.state.sent.append({"channel": channel, "text": text, "thread_ts": p.get("thread_ts"),
                                        "ts": ts})
            self.reply(200, {"ok": True, "channel": channel, "ts": ts, "message": msg})
        return True

    def inject(self, obj):
        st = self.state
        url = obj.get("events_url") or st.events_url
        if not url:
            raise fakelib.BadRequest("no --events-url")
        with st.lock:
            ts = st.new_ts()
            event_id = "Ev%08d" % st.next_event
            st.next_event += 1
        if obj.get("url_verification"):
            payload = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}
        else:
            ev = {"type": "message", "channel": obj.get("channel", "C0GENERAL"), "user": obj.get("user", "U0ALICE"),
                  "text": obj.get("text", ""), "ts": ts, "event_ts": ts, "channel_type": "channel"}
            if obj.get("thread_ts"):
                ev["thread_ts"] = obj["thread_ts"]
            if obj.get("bot"):
                ev.update({"subtype": "bot_message", "bot_id": BOT_ID, "user": BOT_USER})
            payload = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "team_id": "T0TEST", "api_app_id": "A0TEST",
                       "event": ev, "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
                       "authorizations": [{"team_id": "T0TEST", "user_id": BOT_USER, "is_bot": True}]}
        body = json.dumps(payload).encode()
        out = []
        for attempt in range(2 if obj.get("duplicate") else 1):
            stamp = str(int(time.time()))
            key = b"wrong-secret-wrong" if obj.get("bad_signature") else st.secret.encode()
            sig = "v0=" + hmac.new(key, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                       "X-Slack-Signature": sig, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
            if attempt:
                headers.update({"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"})
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    out.append({"status": r.status, "body": r.read().decode("utf-8", "replace")})
            except urllib.error.HTTPError as e:
                out.append({"status": e.code, "body": e.read().decode("utf-8", "replace")})
            except Exception as e:
                out.append({"status": 0, "body": str(e)})
        return {"deliveries": out, "event_id": event_id, "ts": ts,
                "challenge": payload.get("challenge")}


def main():
    ap = fakelib.arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--token", default="xoxb-test-token")
    ap.add_argument("--signing-secret", default="8f742231b10e8888abcd99yyyzzz85a5")
    ap.add_argument("--events-url", help="our request URL, e.g. http://127.0.0.1:PORT/webhook/slack")
    args = ap.parse_args()
    fakelib.serve("slack", Handler, State(args.token, args.signing_secret, args.events_url), args)


if __name__ == "__main__":
    main()

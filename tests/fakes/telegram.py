#!/usr/bin/env python3
"""A local Telegram Bot API (https://core.telegram.org/bots/api) for Conclave's tests.

Speaks the documented wire format on /bot<token>/<method>: getMe, getUpdates (long polling with
offset/limit/timeout; 409 while a webhook is set), sendMessage (4096-character limit counted in
UTF-16 code units, reply_parameters or reply_to_message_id), setWebhook/deleteWebhook/
getWebhookInfo (updates then go out as POSTs with X-Telegram-Bot-Api-Secret-Token, retried
while the receiver fails). Errors are {"ok":false,"error_code":N,"description":…}; 429 carries
parameters.retry_after. Control API: see fakelib.py.

  POST /_fake/inject {"text": "hi", "from_id": 42, "username": "alice", "chat_id": 42,
                      "reply_to": MESSAGE_ID, "duplicate": true}
"""

import json
import threading
import time
import urllib.request

import fakelib

MAX_TEXT = 4096


def utf16_len(s):
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


class State(fakelib.FakeState):
    def __init__(self, token):
        super().__init__()
        self.token = token
        self.updates = []  # pending, in order
        self.next_update_id = 100000
        self.next_message_id = 1
        self.webhook = None  # {"url", "secret_token"}
        self.webhook_error = None
        self.offsets = []  # every offset getUpdates was called with


class Handler(fakelib.FakeHandler):
    def tg_error(self, code, description, parameters=None):
        obj = {"ok": False, "error_code": code, "description": description}
        if parameters:
            obj["parameters"] = parameters
        self.reply(code, obj)

    def rate_limited(self, retry_after):
        self.tg_error(429, "Too Many Requests: retry after %d" % retry_after, {"retry_after": retry_after})

    def ok(self, result):
        self.reply(200, {"ok": True, "result": result})

    def handle_api(self, method):
        path = self.path.split("?")[0]
        parts = path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot"):
            self.tg_error(404, "Not Found")
            return True
        if parts[1][3:] != self.state.token:
            self.tg_error(401, "Unauthorized")
            return True
        try:
            p = self.params()
        except fakelib.BadRequest as e:
            self.tg_error(400, "Bad Request: " + str(e))
            return True
        fn = getattr(self, "m_" + parts[2], None)
        if not fn:
            self.tg_error(404, "Not Found")
            return True
        fn(p)
        return True

    def m_getMe(self, p):
        self.ok({"id": 7000001, "is_bot": True, "first_name": "Conclave", "username": "conclave_test_bot",
                 "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False})

    def m_getUpdates(self, p):
        st = self.state
        try:
            offset = int(p.get("offset", 0))
            limit = int(p.get("limit", 100))
            timeout = int(p.get("timeout", 0))
        except ValueError:
            return self.tg_error(400, "Bad Request: wrong parameter type")
        limit = max(1, min(limit, 100))
        deadline = time.time() + max(0, timeout)
        with st.lock:
            if st.webhook:
                return self.tg_error(409, "Conflict: can't use getUpdates method while webhook is active; "
                                          "use deleteWebhook to delete the webhook first")
            st.offsets.append(offset)
            if offset:
                # Confirms every update below offset: they are never returned again.
                st.updates = [u for u in st.updates if u["update_id"] >= offset]
            while not st.updates and time.time() < deadline:
                st.lock.wait(deadline - time.time())
            out = st.updates[:limit]
        self.ok(out)

    def m_sendMessage(self, p):
        text = p.get("text")
        if "chat_id" not in p:
            return self.tg_error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return self.tg_error(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            return self.tg_error(400, "Bad Request: message is too long")
        reply_to = None
        rp = p.get("reply_parameters")
        if isinstance(rp, str):
            rp = json.loads(rp)
        if isinstance(rp, dict):
            reply_to = rp.get("message_id")
        elif "reply_to_message_id" in p:
            reply_to = int(p["reply_to_message_id"])
        try:
            chat_id = int(p["chat_id"])
        except (TypeError, ValueError):
            return self.tg_error(400, "Bad Request: chat not found")
        with self.state.lock:
            mid = self.state.next_message_id
            self.state.next_message_id += 1
            msg = {"message_id": mid, "from": {"id": 7000001, "is_bot": True, "first_name": "Conclave",
                                               "username": "conclave_test_bot"},
                   "chat": {"id": chat_id, "type": "private"}, "date": int(time.time()), "text": text}
            if reply_to is not None:
                msg["reply_to_message"] = {"message_id": reply_to}
            self.state.sent.append({"chat_id": chat_id, "text": text, "reply_to_message_id": reply_to,
                                    "message_id": mid})
        self.ok(msg)

    def m_setWebhook(self, p):
        url = p.get("url", "")
        secret = p.get("secret_token")
        if secret is not None and not (1 <= len(secret) <= 256 and
                                       all(c.isalnum() or c in "_-" for c in secret)):
            return self.tg_error(400, "Bad Request: secret token contains unallowed characters")
        with self.state.lock:
            if not url:
                self.state.webhook = None
            else:
                self.state.webhook = {"url": url, "secret_token": secret}
                if p.get("drop_pending_updates") in (True, "true", "True"):
                    self.state.updates = []
            self.state.lock.notify_all()
        self.ok(True)

    def m_deleteWebhook(self, p):
        with self.state.lock:
            self.state.webhook = None
        self.ok(True)

    def m_getWebhookInfo(self, p):
        with self.state.lock:
            wh = self.state.webhook
            info = {"url": wh["url"] if wh else "", "has_custom_certificate": False,
                    "pending_update_count": len(self.state.updates)}
            if wh:
                info["max_connections"] = 40
                info["ip_address"] = "127.0.0.1"
            if self.state.webhook_error:
                info["last_error_date"], info["last_error_message"] = self.state.webhook_error
        self.ok(info)

    def status(self):
        return {"offsets": self.state.offsets, "pending": len(self.state.updates), "webhook": self.state.webhook}

    def inject(self, obj):
        st = self.state
        with st.lock:
            uid = st.next_update_id
            st.next_update_id += 1
            mid = st.next_message_id
            st.next_message_id += 1
            from_id = int(obj.get("from_id", 4242))
            msg = {"message_id": mid,
                   "from": {"id": from_id, "is_bot": False, "first_name": obj.get("first_name", "Test"),
                            "username": obj.get("username", "alice"), "language_code": "en"},
                   "chat": {"id": int(obj.get("chat_id", from_id)), "type": obj.get("chat_type", "private")},
                   "date": int(time.time())}
            if "text" in obj:
                msg["text"] = obj["text"]
            if "reply_to" in obj:
                msg["reply_to_message"] = {"message_id": int(obj["reply_to"]), "date": int(time.time()),
                                           "chat": msg["chat"]}
            upd = {"update_id": uid, "message": msg}
            copies = 2 if obj.get("duplicate") else 1
            wh = st.webhook
            if not wh:
                st.updates.extend([upd] * copies)
                st.lock.notify_all()
        if wh:
            threading.Thread(target=deliver_webhook, args=(st, dict(wh), upd, copies), daemon=True).start()
        return {"ok": True, "update_id": uid, "message_id": mid}


def deliver_webhook(st, wh, upd, copies):
    """Telegram POSTs each update and retries while the answer is not 2xx."""
    data = json.dumps(upd).encode()
    headers = {"Content-Type": "application/json"}
    if wh.get("secret_token"):
        headers["X-Telegram-Bot-Api-Secret-Token"] = wh["secret_token"]
    for _ in range(copies):
        for attempt in range(10):
            try:
                req = urllib.request.Request(wh["url"], data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                break
            except Exception as e:  # HTTPError, URLError, timeouts
                with st.lock:
                    st.webhook_error = (int(time.time()), "Wrong response from the webhook: %s" % e)
                fakelib.log("telegram: webhook delivery of update %d failed: %s" % (upd["update_id"], e))
                time.sleep(0.5 * (attempt + 1))


def main():
    ap = fakelib.arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--token", default="123456:TEST-token")
    args = ap.parse_args()
    fakelib.serve("telegram", Handler, State(args.token), args)


if __name__ == "__main__":
    main()

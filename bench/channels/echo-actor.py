#!/usr/bin/env python3
"""A fast echo command actor for bench/channels (the test suite's echo-actor runs jq twice a
message): answers each message with "echo: TEXT" as a reply."""
import json
import sys

for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("type") != "message":
        continue
    e = m["event"]
    sys.stdout.write(json.dumps({"type": "reply", "reply_to": e["id"], "text": "echo: " + e["data"]["text"]}) + "\n")
    sys.stdout.flush()

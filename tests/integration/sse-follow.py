#!/usr/bin/env python3
"""An EventSource-like client for test_gateway.sh: follows the gateway's event stream of a group,
reconnecting with Last-Event-ID as a browser does, and prints every event id it receives, one per
line, as it receives it (duplicates included, so the test can see them).

    sse-follow.py URL TOKEN_FILE UNTIL_FILE [TIMEOUT]

Starts with Last-Event-ID: 0. Once UNTIL_FILE exists it holds the last seq expected; the client
exits 0 when it has received it (it looks at the file whenever a line arrives: send one more
event after writing it), 1 after TIMEOUT seconds without success (default 90; reads block, so
run it under timeout(1) too). Reconnections and pings go to stderr."""

import http.client
import os
import sys
import time
import urllib.parse


def main():
    url, token_file, until_file = sys.argv[1:4]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 90.0
    with open(token_file) as f:
        token = f.read().strip()
    u = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    last = 0
    connects = 0

    def target():
        try:
            with open(until_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    while time.monotonic() < deadline:
        t = target()
        if t is not None and last >= t:
            return 0
        connects += 1
        if connects > 1:
            print(f"reconnect {connects - 1} after {last}", file=sys.stderr, flush=True)
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port)
            conn.request("GET", u.path, headers={"Authorization": f"Bearer {token}",
                                                 "Accept": "text/event-stream",
                                                 "Last-Event-ID": str(last)})
            resp = conn.getresponse()
            if resp.status != 200:
                print(f"status {resp.status}: {resp.read()[:200]!r}", file=sys.stderr, flush=True)
                conn.close()
                time.sleep(0.3)
                continue
            while time.monotonic() < deadline:
                line = resp.readline()
                if not line:
                    break  # the server closed the stream: reconnect
                line = line.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    last = int(line[4:])
                    print(last, flush=True)
                elif line.startswith(": ping"):
                    print("ping", file=sys.stderr, flush=True)
                t = target()
                if t is not None and last >= t:
                    return 0
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            print(f"connection error: {e!r}", file=sys.stderr, flush=True)
        time.sleep(0.2)
    print(f"timed out at {last}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

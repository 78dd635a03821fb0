#!/usr/bin/env python3
"""Prints the runnable commands of Markdown files, one JSON object per line, in document order.

A runnable block is a fenced ```console block. In it, a line starting with "$ " is a command
(a line ending in " \\" continues on the next one); every other line is example output and is
not checked. A command's expected outcome may be given by a comment at its end:

    $ conclave group delete release          # → exit 2
    $ conclave tail -g release -f            # → keeps running

Without one it must exit with status 0. Other fences (```sh, ```toml, …) are not run.
"""
import json
import re
import sys

MARK = re.compile(r"\s+#\s*→\s*(?:exit\s+(\d+)|(keeps running))[^#]*$")


def commands(path):
    in_console = False
    indent = 0
    pending = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            fence = line.strip()
            if fence.startswith("```"):
                if in_console and pending:
                    raise SystemExit(f"{path}:{pending[0]}: command continues past the end of its block")
                in_console = fence == "```console"
                indent = len(line) - len(line.lstrip(" "))  # a block inside a list item
                continue
            if not in_console:
                continue
            if line[:indent].strip() == "":
                line = line[indent:]
            if pending:
                start, text = pending
                text += "\n" + line
            elif line.startswith("$ "):
                start, text = number, line[2:]
            else:
                continue
            if text.endswith("\\"):
                pending = (start, text)
                continue
            pending = None
            expect = "0"
            m = MARK.search(text)
            if m:
                expect = m.group(1) or "running"
                text = text[: m.start()]
            yield {"where": f"{path}:{start}", "command": text.strip(), "expect": expect}


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: console_commands.py FILE.md...")
    for path in sys.argv[1:]:
        for c in commands(path):
            print(json.dumps(c, ensure_ascii=False))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Keeps the documentation from drifting away from the programs.

Checks, against the built `conclave` and the sources:
  * every command `conclave --help` lists has a `### `conclave COMMAND…`` section in
    docs/commands.md and an entry in conclave(1) (SYNOPSIS and COMMANDS);
  * every verb of a command with verbs (`group create|show|…`) is in a heading of
    docs/commands.md and in the SYNOPSIS of conclave(1);
  * every long option that `conclave COMMAND [VERB] --help` prints is in that command's
    sections of docs/commands.md and in conclave(1);
  * every configuration key and section src/lib/config.c accepts is in docs/config.md and in
    conclave.toml(5), and every ```toml example in docs/config.md parses without errors.
Prints one line per problem and exits 1 if there is any.

Usage: docs_drift.py CONCLAVE SRCDIR
"""
import re
import subprocess
import sys

problems = []


def problem(msg):
    problems.append(msg)
    print("DRIFT: " + msg)


def run_help(conclave, *args):
    out = subprocess.run([conclave, *args, "--help"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        problem(f"`conclave {' '.join(args)} --help` exited with status {out.returncode}")
    return out.stdout


def roff_text(path):
    """The man page as plain text: escapes and font changes removed."""
    text = open(path, encoding="utf-8").read()
    text = text.replace("\\-", "-").replace("\\(dq", '"')
    text = re.sub(r"\\f[BIRP]", "", text)
    return text


def man_section(text, name):
    m = re.search(r"^\.SH \"?" + re.escape(name) + r"\"?\s*$(.*?)(?=^\.SH |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


def commands_from_help(conclave):
    out = run_help(conclave)
    names = {}
    in_list = False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            in_list = True
            continue
        if in_list:
            m = re.match(r"^  ([a-z]+)\s+(.*)$", line)
            if not m:
                if line.strip():
                    in_list = False
                continue
            names[m.group(1)] = m.group(2)
    if len(names) < 10:
        problem(f"`conclave --help` lists only {len(names)} commands")
    return names


def commands_md_sections(md):
    """{command: [section text, …]} for every `### `conclave COMMAND …`` heading."""
    sections = {}
    parts = re.split(r"^(#{2,3} .*)$", md, flags=re.M)
    for i in range(1, len(parts), 2):
        heading, body = parts[i], parts[i + 1]
        m = re.match(r"^### `conclave ([a-z]+)(.*?)`", heading)
        if m:
            sections.setdefault(m.group(1), []).append((m.group(2), heading + body))
    return sections


def long_options(help_text):
    opts = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*[a-z])", help_text))
    opts.discard("--help")
    return opts


def short_aliases(help_text):
    """{"--group": "-g", …} from "-g, --group" lines."""
    return {long: short for short, long in re.findall(r"(?<![\w-])(-[a-zA-Z]), (--[a-z][a-z-]*)", help_text)}


def check_commands(conclave, top):
    md = open(f"{top}/docs/commands.md", encoding="utf-8").read()
    man = roff_text(f"{top}/docs/man/conclave.1")
    synopsis = man_section(man, "SYNOPSIS")
    commands_sec = man_section(man, "COMMANDS")
    sections = commands_md_sections(md)
    names = commands_from_help(conclave)
    for name, summary in names.items():
        if name not in sections:
            problem(f"docs/commands.md has no section `### `conclave {name} …`` for `conclave {name}`")
        if not re.search(r"^\.B (conclave )?" + name + r"\b", synopsis, re.M) and \
                not re.search(r"^\.B conclave " + name + r"\b", synopsis, re.M):
            problem(f"conclave(1) SYNOPSIS does not show `conclave {name}`")
        if not re.search(r"^\.TP\n\.B[RI]? \"?" + name + r"\b", commands_sec, re.M):
            problem(f"conclave(1) COMMANDS has no entry for `{name}`")

        verbs = []
        m = re.match(r"^([a-z]+(?:\|[a-z]+)+)\b", summary)
        if m:
            verbs = m.group(1).split("|")
        headings = " ".join(h for h, _ in sections.get(name, []))
        heading_words = set(re.split(r"[\s|`\[\]()]+", headings))
        for verb in verbs:
            if verb not in heading_words:
                problem(f"docs/commands.md: no heading names `conclave {name} {verb}`")
            if not re.search(r"\b" + verb + r"\b", synopsis):
                problem(f"conclave(1) SYNOPSIS does not show `conclave {name} {verb}`")

        helps = [run_help(conclave, name)] if name != "version" else []
        for verb in verbs:
            if name == "service":
                continue  # one --help for all verbs (they are systemctl's)
            helps.append(run_help(conclave, name, verb))
        text = " ".join(body for _, body in sections.get(name, []))
        aliases = {}
        for h in helps:
            aliases.update(short_aliases(h))
        for opt in sorted(set().union(*map(long_options, helps)) if helps else set()):
            short = aliases.get(opt)
            # The documents may use the short form (`-g GROUP`) for an option that has one.
            if opt not in text and not (short and re.search(r"(?<![\w-])" + short + r"(?![\w-])", text)):
                problem(f"docs/commands.md: `conclave {name}` sections do not mention {opt}")
            if opt not in man:
                problem(f"conclave(1) does not mention {opt} (an option of `conclave {name}`)")
    return len(names)


def check_config(top):
    src = open(f"{top}/src/lib/config.c", encoding="utf-8").read()
    md = open(f"{top}/docs/config.md", encoding="utf-8").read()
    man = roff_text(f"{top}/docs/man/conclave.toml.5")
    keys = set(re.findall(r'^\s*\{ "([a-z_]+)", V_[A-Z_]+,', src, re.M))
    m = re.search(r"channel_setting_keys\[\] = \{(.*?)\};", src, re.S)
    if m:
        keys |= set(re.findall(r'"([a-z_]+)"', m.group(1)))
    keys |= {"kind", "group", "allowed_users"}  # channel keys handled in code
    if len(keys) < 30:
        problem(f"found only {len(keys)} configuration keys in src/lib/config.c")
    for key in sorted(keys):
        if f"`{key}`" not in md:
            problem(f"docs/config.md does not document the key `{key}`")
        if not re.search(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])", man):
            problem(f"conclave.toml(5) does not document the key {key}")
    for section in ("runtime", "gateway", "provider", "providers.", "channels.", "automation"):
        if f"[{section}" not in md:
            problem(f"docs/config.md does not document [{section}…]")
        if f"[{section}" not in man:
            problem(f"conclave.toml(5) does not document [{section}…]")
    return len(keys)


def check_config_examples(conclave, top):
    """Every ```toml block of docs/config.md is a configuration `conclave doctor` finds no error in."""
    import json
    import os
    import tempfile
    md = open(f"{top}/docs/config.md", encoding="utf-8").read()
    blocks = re.findall(r"^```toml\n(.*?)^```", md, re.M | re.S)
    if not blocks:
        problem("docs/config.md has no ```toml example")
    for i, block in enumerate(blocks, 1):
        with tempfile.TemporaryDirectory() as home:
            path = os.path.join(home, "config.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(block)
            os.chmod(path, 0o600)
            env = dict(os.environ, CONCLAVE_HOME=home, HOME=home)
            out = subprocess.run([conclave, "doctor", "--json", "--config", path], capture_output=True,
                                 text=True, env=env, check=False)
            try:
                findings = json.loads(out.stdout)
            except ValueError:
                problem(f"docs/config.md example {i}: `conclave doctor --json` printed no JSON: {out.stderr}")
                continue
            for f in findings:
                if f["check"] == "config" and f["severity"] == "error":
                    problem(f"docs/config.md example {i} does not parse: {f['message']}")
    return len(blocks)


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: docs_drift.py CONCLAVE SRCDIR")
    conclave, top = sys.argv[1], sys.argv[2]
    n_commands = check_commands(conclave, top)
    n_keys = check_config(top)
    n_examples = check_config_examples(conclave, top)
    if problems:
        print(f"{len(problems)} problem(s): the documentation does not match the programs")
        sys.exit(1)
    print(f"ok: {n_commands} commands with their verbs and options, {n_keys} configuration keys documented, "
          f"{n_examples} configuration example(s) parse")


if __name__ == "__main__":
    main()

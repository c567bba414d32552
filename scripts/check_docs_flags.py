#!/usr/bin/env python3
"""Checks the configuration tables in docs/ against the binaries' own `--help`: every flag (and its environment
variable) a binary accepts is named in its documentation page, and every flag a page's tables name still exists.

Usage: python3 scripts/check_docs_flags.py [BIN_DIR]   (default target/debug; exit code 0 = passed)
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# (binary, arguments before --help, documentation pages that must name its flags)
AGENT_DOCS = ["docs/agent.md", "docs/agent-metadata.md", "docs/agent-sources.md"]
PROCESSOR_DOCS = ["docs/processor.md"]
TENANTS_DOCS = ["docs/tenants.md", "docs/processor.md"]  # the shared settings (region, table, role) are on processor.md
SURFACES = [
    ("logrelay-agent", [], AGENT_DOCS),
    ("logrelay-processor", [], PROCESSOR_DOCS),
    *[("logrelay-processor", [mode], PROCESSOR_DOCS) for mode in ("lambda", "sqs", "manual", "replay")],
    ("logrelay-processor", ["quarantine", "list"], PROCESSOR_DOCS),
    ("logrelay-processor", ["quarantine", "release"], PROCESSOR_DOCS),
    *[
        ("logrelay-processor", ["tenants", command], TENANTS_DOCS)
        for command in ("validate", "put", "get", "list", "delete", "enable", "disable", "onboard", "doctor", "migrate")
    ],
    ("logrelay-demo", ["run"], ["docs/demo.md"]),
    ("logrelay-demo", ["chaos"], ["docs/demo.md"]),
    *[
        ("logrelay-testgen", [command], ["docs/test-generator.md"])
        for command in ("ndjson", "pods", "verify", "kill-loop")
    ],
]
# Flags every clap binary has.
BUILTIN = {"--help", "--version"}
OPTION = re.compile(r"^\s+(?:-[A-Za-z], )?(--[a-z0-9-]+)")
ENV = re.compile(r"\[env: ([A-Z0-9_]+)")
TABLE_FLAG = re.compile(r"`(--[a-z0-9-]+)")


def help_entries(binary: pathlib.Path, args: list[str]) -> list[tuple[str, str | None]]:
    """(flag, env) of every option `--help` lists."""
    text = subprocess.run([str(binary), *args, "--help"], capture_output=True, text=True, check=True).stdout
    entries: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        m = OPTION.match(line)
        if m:
            entries.append((m.group(1), None))
        env = ENV.search(line)
        if env and entries:
            flag, _ = entries[-1]
            entries[-1] = (flag, env.group(1))
    return [(f, e) for f, e in entries if f not in BUILTIN]


def names(text: str, word: str) -> bool:
    """Whether `text` names `word` as a whole word (a flag or variable, not a prefix of a longer one)."""
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def main(argv: list[str]) -> int:
    bin_dir = ROOT / (argv[0] if argv else "target/debug")
    problems = []
    for name, args, pages in SURFACES:
        docs = "\n".join((ROOT / p).read_text() for p in pages)
        surface = " ".join([name, *args])
        entries = help_entries(bin_dir / name, args)
        for flag, env in entries:
            if not names(docs, flag):
                problems.append(f"{surface}: {flag} is not named in {', '.join(pages)}")
            if env and not names(docs, env):
                problems.append(f"{surface}: {env} ({flag}) is not named in {', '.join(pages)}")
        print(f"  {surface}: {len(entries)} options")
    # Stale rows: a flag a page's configuration table names that no binary accepts any more (aliases count).
    accepted = set()
    for name, args, _ in SURFACES:
        accepted |= {f for f, _ in help_entries(bin_dir / name, args)}
        text = subprocess.run([str(bin_dir / name), *args, "--help"], capture_output=True, text=True).stdout
        for listed in re.findall(r"\[alias(?:es)?: ([^\]]+)\]", text):
            accepted |= set(re.findall(r"--[a-z0-9-]+", listed))
    for page in sorted({p for _, _, pages in SURFACES for p in pages}):
        for line in (ROOT / page).read_text().splitlines():
            if line.startswith("|"):
                first_cells = "|".join(line.split("|")[1:3])
                for flag in TABLE_FLAG.findall(first_cells):
                    if flag not in accepted and flag not in BUILTIN:
                        problems.append(f"{page}: table row names {flag}, which no binary accepts")
    for p in problems:
        print(f"  FAIL {p}")
    print(f"docs vs --help: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

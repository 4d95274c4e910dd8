#!/usr/bin/env python3
"""Writes the mutation-testing summary of tools/mutants.sh into docs/testing.md.

    python3 tools/mutants_summary.py target/mutants-out docs/testing.md

For each mutant set (core, blocks) the runs kept under <set>/history/<n>/ are merged: every
mutant of the latest run's full list (universe.json: `cargo mutants --list --json` at that
commit) takes its outcome from the most recent run that tested it, so a full run followed by
`--iterate` runs (which re-test only what was not caught) gives one table. Missed mutants are
listed with the reason from tools/mutants-equivalent.txt (one per line: the mutant's name
without its line and column, a tab, one line on why it cannot change behaviour), or flagged
as unexplained.

The generated part of docs/testing.md lies between the markers
<!-- mutants:begin --> and <!-- mutants:end -->; the rest of the file is left alone.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict

BEGIN, END = "<!-- mutants:begin -->", "<!-- mutants:end -->"
BARS = {"core": 0.90, "blocks": 0.85}
TITLES = {"core": "Numeric core (crate `tensile`)", "blocks": "Blocks and twins (crate `tensile-nn`)"}
OUTCOME = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout", "Unviable": "unviable"}
HERE = os.path.dirname(os.path.abspath(__file__))


def stable(name: str) -> str:
    """`file:line:col: what` → `file: what`: how the summary and the reasons file name a mutant."""
    return re.sub(r"^([^:]+):\d+:\d+:", r"\1:", name)


def key(m: dict) -> tuple:
    """Identifies a mutant across runs: its file, function, description and position relative to
    the start of its function, which survive edits elsewhere in the file (absolute line
    numbers do not, and one function can hold several mutants with the same description)."""
    f = m.get("function") or {}
    origin = (f.get("span") or {}).get("start", {"line": 0})["line"]
    at = m["span"]["start"]
    return (m["file"], f.get("function_name"), stable(m["name"]), at["line"] - origin, at["column"])


def load_reasons() -> dict[str, str]:
    reasons = {}
    path = os.path.join(HERE, "mutants-equivalent.txt")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, _, why = line.partition("\t")
                reasons[name.strip()] = why.strip()
    return reasons


def merge(set_dir: str):
    hist = os.path.join(set_dir, "history")
    runs = sorted((d for d in os.listdir(hist) if d.isdigit()), key=int) if os.path.isdir(hist) else []
    if not runs:
        return None
    outcome, meta = {}, []
    for r in runs:
        d = os.path.join(hist, r)
        info = json.load(open(os.path.join(d, "run.json")))
        meta.append(info)
        for o in json.load(open(os.path.join(d, "outcomes.json")))["outcomes"]:
            m = o["scenario"].get("Mutant") if isinstance(o["scenario"], dict) else None
            if m and o["summary"] in OUTCOME:
                outcome[key(m)] = OUTCOME[o["summary"]]
    universe = json.load(open(os.path.join(hist, runs[-1], "universe.json")))
    per_file = defaultdict(lambda: defaultdict(int))
    missed = []
    for m in universe:
        name = stable(m["name"])
        result = outcome.get(key(m), "untested")
        per_file[m["file"]][result] += 1
        if result in ("missed", "timeout"):
            missed.append((name, result))
    return meta, per_file, missed


def rate(c) -> str:
    tested = c["caught"] + c["missed"] + c["timeout"]
    return f"{c['caught'] / tested:.1%}" if tested else "—"


def render(root: str) -> tuple[str, bool]:
    reasons = load_reasons()
    lines, all_ok = [], True
    for name in ("core", "blocks"):
        merged = merge(os.path.join(root, name))
        if merged is None:
            continue
        meta, per_file, missed = merged
        lines.append(f"### {TITLES[name]}\n")
        lines.append("Runs, oldest first; each mutant counts with the outcome of the latest run that tested it:\n")
        for m in meta:
            mode = " `--iterate`" if m["iterate"] else ""
            if not m.get("complete", True):
                mode += " (stopped before the end)"
            lines.append(f"- {m['date']}, commit `{m['commit']}`: `{m['group']}`{mode}, {m['minutes']} min, tests `{m['tests']}` "
                         f"(cargo-mutants {m['cargo_mutants']}, {m['machine']})")
        lines.append("")
        lines.append("| file | mutants | caught | missed | timed out | unviable | not tested | caught / tested |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        total = defaultdict(int)
        for f in sorted(per_file):
            c = per_file[f]
            for k in ("caught", "missed", "timeout", "unviable", "untested"):
                total[k] += c[k]
            n = sum(c.values())
            lines.append(f"| `{f}` | {n} | {c['caught']} | {c['missed']} | {c['timeout']} | {c['unviable']} | {c['untested']} | {rate(c)} |")
        n = sum(total.values())
        tested = total["caught"] + total["missed"] + total["timeout"]
        r = total["caught"] / tested if tested else 0.0
        ok = r >= BARS[name] and total["untested"] == 0
        all_ok &= ok
        lines.append(f"| **all** | **{n}** | **{total['caught']}** | **{total['missed']}** | **{total['timeout']}** | **{total['unviable']}** | **{total['untested']}** | **{r:.1%}** |\n")
        lines.append(f"Bar: {BARS[name]:.0%} caught; {'met' if ok else 'NOT met'}."
                     + (f" {total['untested']} mutants were never tested." if total["untested"] else "") + "\n")
        if missed:
            lines.append("Not caught by an assertion, each with why it cannot change behaviour (or how it is detected):\n")
            for m, result in sorted(set(missed)):
                why = reasons.get(m)
                if why is None and result == "timeout":
                    # Detected, though not by an assertion: the tests hang, and a run with a
                    # timeout (CI's, cargo-mutants') fails.
                    why = "detected by hanging: the tests do not finish, which fails any run with a time limit"
                if why is None:
                    all_ok = False
                    why = "**unexplained**"
                extra = "" if result == "missed" else f" ({result})"
                lines.append(f"- `{m}`{extra}: {why}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n", all_ok


def main(argv) -> int:
    root, doc = argv[1], argv[2]
    body, ok = render(root)
    text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else f"# Testing\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        print(f"mutants_summary: {doc} has no {BEGIN} … {END} markers", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tmp = doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(head + BEGIN + "\n" + body + END + tail)
    os.replace(tmp, doc)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

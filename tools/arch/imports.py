#!/usr/bin/env python3
"""Lists the module imports of crates/tensile/src and reports every import cycle.

A module is a file under src/ (report/x.rs is `report::x`, checks/mod.rs is `checks`). An
import is any `crate::a::b` path in the file (in `use` lines or inline), resolved to the
longest module prefix; `super::` inside a submodule resolves to its parent. Exit code 1 when
there is a cycle, so CI can keep the flow one-way.
"""
import os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../crates/tensile/src")
mods = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)[:-3].split(os.sep)
        if rel[-1] == "mod":
            rel = rel[:-1]
        if rel == ["lib"]:
            continue
        mods["::".join(rel)] = open(os.path.join(dirpath, f)).read()

def resolve(path):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        cand = "::".join(parts[:n])
        if cand in mods:
            return cand
    return None

edges = {m: set() for m in mods}
for m, text in mods.items():
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//.*", "", text)
    paths = []
    for use in re.findall(r"use\s+([^;]+);", text):
        # expand `crate::a::{b, c::d}` one level
        mm = re.match(r"(crate|super)::([\w:]*?)::?\{(.*)\}", use.replace("\n", " ").replace(" ", ""))
        if mm:
            base = mm.group(1) + "::" + mm.group(2)
            paths += [base.rstrip(":") + "::" + p for p in mm.group(3).split(",") if p]
        else:
            paths.append(use.replace(" ", ""))
    paths += re.findall(r"\b((?:crate|super)::[\w:]+)", text)
    parent = m.rsplit("::", 1)[0] if "::" in m else ""
    for p in paths:
        if p.startswith("super::"):
            p = (parent + "::" if parent else "") + p[len("super::"):]
        elif p.startswith("crate::"):
            p = p[len("crate::"):]
        else:
            continue
        t = resolve(p.strip(":"))
        if t and t != m and not t.startswith(m + "::"):
            edges[m].add(t)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in sorted(mods):
    if v not in index:
        strong(v)
cycles = [sorted(c) for c in sccs if len(c) > 1]
if "-v" in sys.argv:
    for m in sorted(edges):
        print(f"{m}: {', '.join(sorted(edges[m]))}")
for c in cycles:
    print("cycle:", " ".join(c))
print(f"{len(mods)} modules, {sum(len(e) for e in edges.values())} imports, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)

#!/usr/bin/env python3
"""Checks that transformers loads what tensile's save_pretrained writes, and computes the same
outputs: for each model directory in crates/tensile-nn/tests/models, the Rust example
``resave`` loads it with ``load_pretrained`` and writes it back with ``save_pretrained``;
transformers then loads the copy (``AutoModel``/``AutoModelFor*`` by the saved
``architectures``) and runs the inputs of ``reference.json``. The result, per directory, is
written to crates/tensile-nn/tests/models/transformers_reload.json.

    .venv/bin/python tools/golden/check_saved.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "crates", "tensile-nn", "tests", "models")


def main() -> int:
    results = {}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(MODELS)):
            src = os.path.join(MODELS, name)
            if not os.path.isfile(os.path.join(src, "reference.json")):
                continue
            dst = os.path.join(tmp, name)
            subprocess.run(["cargo", "run", "-q", "-p", "tensile-nn", "--example", "resave", "--", src, dst], check=True, cwd=REPO)
            ref = json.load(open(os.path.join(src, "reference.json")))
            saved = json.load(open(os.path.join(dst, "config.json")))
            cls = getattr(transformers, saved["architectures"][0])
            model = cls.from_pretrained(dst, attn_implementation="eager").eval()
            with torch.no_grad():
                out = getattr(model(input_ids=torch.tensor(ref["input_ids"]), attention_mask=torch.tensor(ref["attention_mask"])), ref["output_name"])
            diff = float((out.double() - torch.tensor(ref["output_f32"], dtype=torch.float64)).abs().max())
            results[name] = {"architecture": saved["architectures"][0], "max_abs_diff_vs_reference_f32": diff}
            ok = diff <= 1e-5
            bad += not ok
            print(f"{name:24s} {saved['architectures'][0]:38s} reloaded by transformers: max |diff| {diff:.2e} {'OK' if ok else 'FAIL'}")
    results = {"generator": "tools/golden/check_saved.py", "torch_version": torch.__version__, "transformers_version": transformers.__version__,
               "models": results}
    with open(os.path.join(MODELS, "transformers_reload.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

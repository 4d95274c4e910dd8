#!/usr/bin/env python3
"""Float64 references of every golden case at input magnitudes 1e-3 and 1e3.

The golden cases hold O(1) inputs, where an epsilon inside a norm or a mis-scaled softmax is
invisible. This script takes each case in crates/tensile-nn/tests/golden, multiplies its
input (float32, widened to float64) by each scale and recomputes the output with the
independent NumPy implementation in numpy_check.py (no torch). It writes one file per case,
crates/tensile-nn/tests/golden_scaled/<case>.safetensors, holding float64 tensors
``output_x0.001`` and ``output_x1000``; the scaled input is not stored, because the Rust test
recomputes it exactly (one float64 multiplication, the same in both languages).

    python tools/golden/scaled.py [--golden DIR] [--out DIR]

Deterministic: rerunning with the same NumPy gives the same bytes (the NumPy version is
recorded in the file's metadata).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_check  # noqa: E402

SCALES = (1e-3, 1e3)


def scale_name(s: float) -> str:
    return f"output_x{s:g}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--golden", default=numpy_check.DEFAULT_DIR)
    p.add_argument("--out", default=os.path.join(os.path.dirname(numpy_check.DEFAULT_DIR), "golden_scaled"))
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    for fn in sorted(os.listdir(a.golden)):
        if not fn.endswith(".safetensors"):
            continue
        case, W, x, _ = numpy_check.read_case(os.path.join(a.golden, fn))
        out = {}
        for s in SCALES:  # silu of -1e3·x overflows exp() to inf, whose limit (0) is right
            with np.errstate(over="ignore"):
                y = numpy_check.run(case["module"], case["config"], W, x * s)
            assert np.all(np.isfinite(y)), (fn, s)
            out[scale_name(s)] = np.ascontiguousarray(y, dtype=np.float64)
            print(f"{fn:42s} x{s:<6g} max|y| = {np.abs(y).max():.3e}")
        # One metadata key holding sorted JSON: safetensors orders several keys at random,
        # which would make the bytes differ from run to run.
        meta = json.dumps({"generator": "tools/golden/scaled.py", "numpy_version": np.__version__, "scaled_from": fn}, sort_keys=True)
        save_file(out, os.path.join(a.out, fn), metadata={"tensile.scaled": meta})
    return 0


if __name__ == "__main__":
    sys.exit(main())

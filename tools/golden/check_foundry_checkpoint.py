#!/usr/bin/env python3
"""Loads a foundry checkpoint with transformers and compares its logits with `tensile forward`.

usage: python tools/golden/check_foundry_checkpoint.py CHECKPOINT_DIR [TENSILE_BINARY]
Prints the transformers class and the largest absolute difference of the logits on ids 5..8;
exits 1 above 1e-4. Needs torch and transformers (e.g. /work/venv-hf).
"""
import json
import subprocess
import sys
import tempfile

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

path = sys.argv[1]
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/tensile"
arch = AutoConfig.from_pretrained(path).architectures[0]
cls = AutoModelForCausalLM if arch.endswith("CausalLM") else AutoModelForMaskedLM
model = cls.from_pretrained(path, dtype=torch.float32).eval()
ids = [[5, 6, 7, 8]]
with torch.no_grad():
    theirs = model(input_ids=torch.tensor(ids)).logits[0].tolist()
with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
    json.dump({"input_ids": ids}, f)
    f.flush()
    ours = json.loads(subprocess.run([binary, "forward", "--model", path, "--inputs", f.name, "--json"], check=True, capture_output=True, text=True).stdout)["output"][0]
diff = max(abs(a - b) for ra, rb in zip(theirs, ours) for a, b in zip(ra, rb))
print(f"{type(model).__name__}: max abs difference {diff:.3g}")
sys.exit(0 if diff < 1e-4 else 1)

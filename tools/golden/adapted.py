#!/usr/bin/env python3
"""Golden cases for the adapted kinds: PEFT LoRA and quantized weights (float64, exact).

Writes module cases in crates/tensile-nn/tests/golden (the format of generate.py, see
README.md), one per file:

* ``lora.linear`` (``lora_linear``: bias and rsLoRA; ``lora_linear_plain``: no bias, plain
  ``alpha / r``): an ``nn.Linear`` wrapped by PEFT's own LoRA layer (``inject_adapter_in_model``
  with ``init_lora_weights=False``, the seeded ``A`` and ``B`` then loaded), run by PEFT in
  float64 and eval mode. Config: ``in_features``, ``out_features``, ``bias`` and PEFT's
  ``r``, ``lora_alpha``, ``use_rslora``, ``lora_dropout``; weights ``weight``, ``bias``,
  ``lora_A.default.weight`` ``(r, in)`` and ``lora_B.default.weight`` ``(out, r)``.
* ``lora.llama_attention`` (``lora_llama_attention``): transformers' ``LlamaAttention`` with
  PEFT adapters on ``q_proj`` and ``v_proj`` (GQA, dropout 0.1 in the config, off in eval).
  Config: the LlamaConfig fields plus ``r``, ``lora_alpha``, ``lora_dropout``,
  ``target_modules``; weights ``{q,k,v,o}_proj.weight`` and
  ``{q,v}_proj.lora_{A,B}.default.weight``.
* ``quantized.linear`` (``quantized_linear_q8_0``), ``quantized.llama_mlp``
  (``quantized_llama_mlp_q4_0``) and ``quantized.llama_attention``
  (``quantized_llama_attention_int8``): config ``format`` plus the linear / LlamaConfig
  fields. The file holds the ORIGINAL float32 weights, because tensile quantizes them when it
  builds the block; ``output`` is the float64 module (``F.linear``, ``LlamaMLP``,
  ``LlamaAttention``) run with the weights after the quantize → dequantize round trip, which
  is what tensile's float64 twin multiplies with.

The round trips are numpy_check.py's NumPy quantizers. q8_0 and q4_0 are ggml's reference
quantizers (``quantize_row_q{8,4}_0_ref``), which candle's ``BlockQ8_0`` / ``BlockQ4_0``
implement; before writing, the script asserts that gguf-py's ``quantize`` → ``dequantize``
gives bitwise the same float32 weights (on the case weights and on adversarial blocks: zeros,
ties at .5, a block whose largest |x| is negative). int8 is tensile's own format (per output
row, f32 scale ``max|w| / 127``, ``round(w · (1/s))`` half away from zero, clamp ±127).

Float64 fidelity: the Llama kinds run under generate.py's ``float64_exact`` (float64 RoPE,
softmax and RMSNorm), causal, positions 0..seq, with an explicit additive mask. Every output
is also recomputed with numpy_check.py (must agree to 1e-12).

    /work/venv-hf/bin/python tools/golden/adapted.py     # then: tools/golden/scaled.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import zlib

import gguf
import numpy as np
import peft
import torch
import transformers
from gguf import GGMLQuantizationType
from peft import LoraConfig, inject_adapter_in_model
from transformers.models.llama import modeling_llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_check  # noqa: E402
from generate import (build_module, causal_mask, float64_exact, full_config, hf_config, position_embeddings_f64,  # noqa: E402
                      random_weights, run_case, write_safetensors)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "crates", "tensile-nn", "tests", "golden")

LLAMA = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2)

# name, kind, config, batch, seq
LORA_CASES = [
    ("lora_linear", "lora.linear",
     dict(in_features=24, out_features=20, bias=True, r=4, lora_alpha=8.0, use_rslora=True, lora_dropout=0.0), 2, 5),
    ("lora_linear_plain", "lora.linear",
     dict(in_features=24, out_features=20, bias=False, r=4, lora_alpha=8.0), 1, 3),
    ("lora_llama_attention", "lora.llama_attention",
     dict(full_config("llama.attention", dict(LLAMA, rope_theta=10000.0)), r=4, lora_alpha=8.0, lora_dropout=0.1,
          target_modules=["q_proj", "v_proj"]), 2, 7),
]
QUANT_CASES = [
    ("quantized_linear_q8_0", "quantized.linear", dict(in_features=64, out_features=48, bias=True, format="q8_0"), 2, 5),
    ("quantized_llama_mlp_q4_0", "quantized.llama_mlp", dict(full_config("llama.mlp", LLAMA), format="q4_0"), 2, 5),
    ("quantized_llama_attention_int8", "quantized.llama_attention",
     dict(full_config("llama.attention", LLAMA), format="int8"), 2, 7),
]

GGUF_TYPES = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}


def meta(kind, cfg, **extra):
    m = {
        "tensile.case": json.dumps({"module": kind, "config": cfg}, sort_keys=True, separators=(",", ":")),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    m.update(extra)
    return m


def lora_weights(layers: dict, r: int, gen: torch.Generator) -> dict:
    """Seeded A (r, in) and B (out, r), each N(0, 1)/sqrt(fan_in), for each (prefix -> (in, out))."""
    out = {}
    for prefix, (fin, fout) in layers.items():
        p = prefix + "." if prefix else ""
        out[p + "lora_A.default.weight"] = (torch.randn((r, fin), generator=gen) / math.sqrt(fin)).contiguous()
        out[p + "lora_B.default.weight"] = (torch.randn((fout, r), generator=gen) / math.sqrt(r)).contiguous()
    return out


def peft_config(cfg: dict, targets) -> LoraConfig:
    return LoraConfig(r=cfg["r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg.get("lora_dropout", 0.0),
                      use_rslora=cfg.get("use_rslora", False), target_modules=list(targets), init_lora_weights=False)


def load_peft(model, weights: dict, prefix: str, dtype):
    """Loads the case's weights (module-relative names) into a PEFT-injected module, whose names
    carry the extra `base_layer.` of the wrapped layer."""
    sd = model.state_dict()
    mapped = {}
    for k, v in weights.items():
        name = prefix + k
        if name not in sd:  # a wrapped layer's own weight or bias: `q_proj.base_layer.weight`
            head, _, leaf = name.rpartition(".")
            name = f"{head}.base_layer.{leaf}"
        assert name in sd, (k, name, sorted(sd))
        mapped[name] = v.to(dtype)
    model.to(dtype)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected, unexpected
    params = dict(model.named_parameters())
    assert all(k not in params for k in missing), missing
    return model.eval()


@torch.no_grad()
def run_lora_linear(cfg, weights, x, dtype):
    holder = torch.nn.Module()
    holder.lin = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"])
    holder = inject_adapter_in_model(peft_config(cfg, ["lin"]), holder)
    assert type(holder.lin).__module__.startswith("peft."), type(holder.lin)
    load_peft(holder, weights, "lin.", dtype)
    return holder.lin(x.to(dtype))


@torch.no_grad()
def run_lora_attention(cfg, weights, x, dtype, exact=True):
    llama = {k: v for k, v in cfg.items() if k not in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora")}
    config = hf_config("llama.attention", llama)
    attn = inject_adapter_in_model(peft_config(cfg, cfg["target_modules"]), build_module("llama.attention", config))
    for t in cfg["target_modules"]:
        assert type(getattr(attn, t)).__module__.startswith("peft."), t
    load_peft(attn, weights, "", dtype)
    batch, seq, _ = x.shape
    if exact:
        with float64_exact():
            cos, sin = position_embeddings_f64(config, seq)
            out = attn(hidden_states=x.to(dtype), position_embeddings=(cos.to(dtype), sin.to(dtype)), attention_mask=causal_mask(batch, seq, dtype))
    else:
        rotary = modeling_llama.LlamaRotaryEmbedding(config=config)
        pe = rotary(x.to(dtype), torch.arange(seq)[None, :])
        out = attn(hidden_states=x.to(dtype), position_embeddings=pe, attention_mask=causal_mask(batch, seq, dtype))
    return out[0]


def check_numpy(name, kind, cfg, tensors, y):
    W = {k: v.detach().numpy().astype(np.float64) for k, v in tensors.items() if k not in ("input", "output")}
    y_np = numpy_check.run(kind, cfg, W, tensors["input"].numpy().astype(np.float64))
    err = float(np.abs(y_np - y.numpy()).max() / np.abs(y.numpy()).max())
    assert err <= 1e-12, (name, err)
    return err


def lora_cases():
    for name, kind, cfg, batch, seq in LORA_CASES:
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        if kind == "lora.linear":
            base = random_weights(torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"]), gen)
            weights = dict(base, **lora_weights({"": (cfg["in_features"], cfg["out_features"])}, cfg["r"], gen))
            hidden = cfg["in_features"]
            x = torch.randn((batch, seq, hidden), generator=gen, dtype=torch.float32)
            y = run_lora_linear(cfg, weights, x, torch.float64)
            y32 = run_lora_linear(cfg, weights, x, torch.float32).double()
            y_base = torch.nn.functional.linear(x.double(), base["weight"].double(), base["bias"].double() if cfg["bias"] else None)
        else:
            llama = {k: v for k, v in cfg.items() if k not in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora")}
            base = random_weights(build_module("llama.attention", hf_config("llama.attention", llama)), gen)
            hd = llama["hidden_size"] // llama["num_attention_heads"]
            dims = {"q_proj": (llama["hidden_size"], llama["num_attention_heads"] * hd),
                    "v_proj": (llama["hidden_size"], llama["num_key_value_heads"] * hd)}
            weights = dict(base, **lora_weights({t: dims[t] for t in cfg["target_modules"]}, cfg["r"], gen))
            x = torch.randn((batch, seq, llama["hidden_size"]), generator=gen, dtype=torch.float32)
            y = run_lora_attention(cfg, weights, x, torch.float64)
            y32 = run_lora_attention(cfg, weights, x, torch.float32, exact=False).double()
            y_base = run_case("llama.attention", llama, base, x)
        tensors = dict(weights, input=x, output=y)
        err = check_numpy(name, kind, cfg, tensors, y)
        write_safetensors(os.path.join(GOLDEN, name + ".safetensors"), tensors, meta(kind, cfg, peft_version=peft.__version__))
        print(f"{name:32s} {kind:26s} in {tuple(x.shape)} |out|max {y.abs().max():.3f} |lora part|max {(y - y_base).abs().max():.3f}"
              f" | peft_f32 {(y - y32).abs().max():.2e} numpy {err:.1e}")


# ----------------------------------------------------------------------------- quantizers

def check_quantizers_against_gguf(samples):
    """numpy_check's q8_0 / q4_0 round trips equal gguf-py's quantize → dequantize bitwise."""
    rng = np.random.default_rng(0)
    special = [
        np.zeros((2, 32), np.float32),                                       # d = 0
        np.tile(np.float32([-3.0, 1.0, 0.5, -0.25]), (1, 8)),               # largest |x| negative
        np.tile(np.float32([2.0, -2.0, 0.75, 0.0]), (1, 8)),                 # |max| tie, first wins
        # exact ties: d = 1 (q8_0: max 127; q4_0: max −8), so x·id = x is a half-integer
        np.float32([127.0, 0.5, -0.5, 2.5, -2.5, 126.5, -126.5, 1.5] * 4)[None, :],
        np.float32([-8.0, -7.5, 7.5, 6.5, -0.5, 0.5, 7.4999995, -7.4999995] * 4)[None, :],
        rng.standard_normal((4096, 32)).astype(np.float32),                  # f32-vs-f64 rounding edges
        np.float32(1e-3) * rng.standard_normal((3, 64)).astype(np.float32),
        np.float32(1e3) * rng.standard_normal((3, 64)).astype(np.float32),
    ]
    for fmt, qt in GGUF_TYPES.items():
        for w in special + samples:
            w = np.ascontiguousarray(w, np.float32)
            ref = gguf.quants.dequantize(gguf.quants.quantize(w, qt), qt).reshape(w.shape)
            ours = numpy_check.quantize_roundtrip(w, fmt)
            assert ref.dtype == ours.dtype == np.float32
            assert np.array_equal(ref.view(np.uint32), ours.view(np.uint32)), (fmt, np.abs(ref - ours).max())
    print(f"gguf-py {gguf.__name__} quantize→dequantize == numpy_check (bitwise) for {', '.join(GGUF_TYPES)} "
          f"on {len(special) + len(samples)} matrices")


def int8_check():
    """tensile's int8 round trip on hand-made rows (the unit test of quant/int.rs, and ties)."""
    w = np.float32([[1.27, -0.5, 0.01], [0.0, 0.0, 0.0]])
    d = numpy_check.int8_roundtrip(w)
    s = np.float32(1.27) / np.float32(127)
    assert d[1].tolist() == [0.0, 0.0, 0.0] and d[0, 0] == np.float32(127) * s
    # round half away from zero: with s = 1 (max 127), w = ±0.5 and ±2.5 give ±1 and ±3.
    w = np.float32([[127.0, 0.5, -0.5, 2.5, -2.5, 0.49999997]])
    assert numpy_check.int8_roundtrip(w)[0].tolist() == [127.0, 1.0, -1.0, 3.0, -3.0, 0.0]


def quant_cases():
    int8_check()
    prepared = []
    for name, kind, cfg, batch, seq in QUANT_CASES:
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        if kind == "quantized.linear":
            module = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"])
            hidden = cfg["in_features"]
        else:
            inner = "llama.mlp" if kind == "quantized.llama_mlp" else "llama.attention"
            module = build_module(inner, hf_config(inner, {k: v for k, v in cfg.items() if k != "format"}))
            hidden = cfg["hidden_size"]
        weights = random_weights(module, gen)
        x = torch.randn((batch, seq, hidden), generator=gen, dtype=torch.float32)
        prepared.append((name, kind, cfg, weights, x))
    check_quantizers_against_gguf([w.numpy() for (_, _, c, ws, _) in prepared if c["format"] in GGUF_TYPES for w in ws.values() if w.ndim == 2])

    for name, kind, cfg, weights, x in prepared:
        fmt = cfg["format"]
        deq = {k: (torch.from_numpy(numpy_check.quantize_roundtrip(v.numpy(), fmt)) if v.ndim == 2 else v) for k, v in weights.items()}
        rel = max(float((deq[k] - v).norm() / v.norm()) for k, v in weights.items() if v.ndim == 2)
        if kind == "quantized.linear":
            y = torch.nn.functional.linear(x.double(), deq["weight"].double(), deq["bias"].double() if cfg["bias"] else None)
            y_dense = torch.nn.functional.linear(x.double(), weights["weight"].double(), weights["bias"].double() if cfg["bias"] else None)
        else:
            inner = "llama.mlp" if kind == "quantized.llama_mlp" else "llama.attention"
            llama = {k: v for k, v in cfg.items() if k != "format"}
            y = run_case(inner, llama, deq, x)
            y_dense = run_case(inner, llama, weights, x)
        tensors = dict(weights, input=x, output=y)
        err = check_numpy(name, kind, cfg, tensors, y)
        write_safetensors(os.path.join(GOLDEN, name + ".safetensors"), tensors, meta(kind, cfg, numpy_version=np.__version__))
        print(f"{name:32s} {kind:26s} in {tuple(x.shape)} |out|max {y.abs().max():.3f} | max ‖Ŵ−W‖/‖W‖ {rel:.2e}"
              f" |quantized − dense|max {(y - y_dense).abs().max():.2e} | numpy {err:.1e}")


def main() -> int:
    torch.use_deterministic_algorithms(True)
    lora_cases()
    quant_cases()
    return 0


if __name__ == "__main__":
    sys.exit(main())

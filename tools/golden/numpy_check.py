#!/usr/bin/env python3
"""Independent float64 NumPy re-implementation of every golden case kind.

Reads each reference case in DIR (default crates/tensile-nn/tests/golden) with
only safetensors + numpy (no torch, no transformers), recomputes the output in
float64 from the float32 weights and input, and compares it with the stored
``output``. This double-checks generate.py, modernbert.py and adapted.py and
documents the math the Rust implementation has to match.

The quantized kinds store the original float32 weights; the quantizers below
(``quantize_roundtrip``) redo, bit for bit, what tensile does on build (int8:
tensile's own per-row format; q8_0 / q4_0: ggml's reference quantizers, which
candle implements), and the output is the dense formula over the dequantized
weights.

    python tools/golden/numpy_check.py [DIR] [--tol 1e-10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors import safe_open

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO_ROOT, "crates", "tensile-nn", "tests", "golden")


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def act(name, x):
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "gelu":
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    raise ValueError(name)


def rms_norm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def inv_freq(cfg, head_dim):
    theta = float(cfg["rope_theta"])
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    assert rs["rope_type"] == "llama3", rs
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    out = np.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    medium = (wavelen >= old / hi) & (wavelen <= old / lo)
    return np.where(medium, (1 - smooth) * inv / factor + smooth * inv, out)


def rope(x, cos, sin):  # x: (b, h, s, d), rotate_half convention
    d = x.shape[-1] // 2
    rot = np.concatenate([-x[..., d:], x[..., :d]], axis=-1)
    return x * cos + rot * sin


def llama_attention(x, W, cfg, p=""):
    b, s, _ = x.shape
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    g = lambda n: W.get(p + n)  # noqa: E731
    q = linear(x, g("q_proj.weight"), g("q_proj.bias")).reshape(b, s, nh, hd).transpose(0, 2, 1, 3)
    k = linear(x, g("k_proj.weight"), g("k_proj.bias")).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
    v = linear(x, g("v_proj.weight"), g("v_proj.bias")).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
    ang = np.arange(s, dtype=np.float64)[:, None] * inv_freq(cfg, hd)[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    q, k = rope(q, np.cos(ang), np.sin(ang)), rope(k, np.cos(ang), np.sin(ang))
    k = np.repeat(k, nh // nkv, axis=1)  # head i uses kv head i // (nh/nkv)
    v = np.repeat(v, nh // nkv, axis=1)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    scores = np.where(np.triu(np.ones((s, s), bool), 1), -np.inf, scores)
    o = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * hd)
    return linear(o, g("o_proj.weight"), g("o_proj.bias"))


def llama_mlp(x, W, cfg, p=""):
    g = lambda n: W.get(p + n)  # noqa: E731
    h = act(cfg["hidden_act"], linear(x, g("gate_proj.weight"), g("gate_proj.bias")))
    h = h * linear(x, g("up_proj.weight"), g("up_proj.bias"))
    return linear(h, g("down_proj.weight"), g("down_proj.bias"))


def bert_layer(x, W, cfg):
    b, s, hsz = x.shape
    nh = cfg["num_attention_heads"]
    hd = hsz // nh
    eps = cfg["layer_norm_eps"]
    g = lambda n: W[n]  # noqa: E731

    def heads(t):
        return t.reshape(b, s, nh, hd).transpose(0, 2, 1, 3)

    q = heads(linear(x, g("attention.self.query.weight"), g("attention.self.query.bias")))
    k = heads(linear(x, g("attention.self.key.weight"), g("attention.self.key.bias")))
    v = heads(linear(x, g("attention.self.value.weight"), g("attention.self.value.bias")))
    a = (softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)) @ v).transpose(0, 2, 1, 3).reshape(b, s, hsz)
    a = linear(a, g("attention.output.dense.weight"), g("attention.output.dense.bias"))
    h = layer_norm(a + x, g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias"), eps)
    i = act(cfg["hidden_act"], linear(h, g("intermediate.dense.weight"), g("intermediate.dense.bias")))
    o = linear(i, g("output.dense.weight"), g("output.dense.bias"))
    return layer_norm(o + h, g("output.LayerNorm.weight"), g("output.LayerNorm.bias"), eps)


def modernbert_pattern(cfg):
    """(half window or None, rope base) of the case's layer, as transformers decides them."""
    i = cfg.get("layer_idx", 0)
    local = i % cfg["global_attn_every_n_layers"] != 0
    if local:
        return cfg["local_attention"] // 2, float(cfg.get("local_rope_theta") or cfg["global_rope_theta"])
    return None, float(cfg["global_rope_theta"])


def modernbert_attention(x, W, cfg, p="", keep=None):
    """keep: (b, s) padding mask, 1 = token (None = no padding)."""
    b, s, hsz = x.shape
    nh = cfg["num_attention_heads"]
    hd = hsz // nh
    half, theta = modernbert_pattern(cfg)
    qkv = linear(x, W[p + "Wqkv.weight"], W.get(p + "Wqkv.bias")).reshape(b, s, 3, nh, hd)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(s, dtype=np.float64)[:, None] * inv[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    q, k = rope(q, np.cos(ang), np.sin(ang)), rope(k, np.cos(ang), np.sin(ang))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    hide = np.zeros((b, 1, s, s), bool)
    if half is not None:
        idx = np.arange(s)
        hide |= (np.abs(idx[:, None] - idx[None, :]) > half)[None, None]
    if keep is not None:
        hide |= (keep == 0)[:, None, None, :]
    scores = np.where(hide, -np.inf, scores)
    o = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, hsz)
    return linear(o, W[p + "Wo.weight"], W.get(p + "Wo.bias"))


def modernbert_mlp(x, W, cfg, p=""):
    h = linear(x, W[p + "Wi.weight"], W.get(p + "Wi.bias"))
    i = cfg["intermediate_size"]
    return linear(act(cfg["hidden_activation"], h[..., :i]) * h[..., i:], W[p + "Wo.weight"], W.get(p + "Wo.bias"))


def modernbert_norm(x, W, name, cfg):
    w = W[name + ".weight"]
    return layer_norm(x, w, W.get(name + ".bias", np.zeros_like(w)), cfg["norm_eps"])


def modernbert_layer(x, W, cfg, p="", keep=None):
    normed = x if cfg.get("layer_idx", 0) == 0 else modernbert_norm(x, W, p + "attn_norm", cfg)
    h = x + modernbert_attention(normed, W, cfg, p + "attn.", keep)
    return h + modernbert_mlp(modernbert_norm(h, W, p + "mlp_norm", cfg), W, cfg, p + "mlp.")


def head(kind, cfg, W, x):
    """A classification head on hidden states, weights named from the model's root."""
    if cfg["model_type"] == "bert":
        if kind == "head.sequence_classification":
            x = np.tanh(linear(x[:, 0], W["bert.pooler.dense.weight"], W["bert.pooler.dense.bias"]))
        return linear(x, W["classifier.weight"], W["classifier.bias"])
    if kind == "head.sequence_classification":
        x = x.mean(axis=1) if cfg.get("classifier_pooling") == "mean" else x[:, 0]
    h = act(cfg["classifier_activation"] if "classifier_activation" in cfg else "gelu", linear(x, W["head.dense.weight"], W.get("head.dense.bias")))
    h = modernbert_norm(h, W, "head.norm", cfg)
    return linear(h, W["classifier.weight"], W["classifier.bias"])


# --------------------------------------------------------------------------- adapters

def lora_scaling(cfg):
    r, alpha = cfg["r"], float(cfg["lora_alpha"])
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def lora_targets(cfg):
    return cfg.get("target_modules", ["q_proj", "v_proj"])


def lora_merged(W, cfg, modules):
    """The weights with each targeted module's W + s·B·A (algebraically x Wᵀ + s·(x Aᵀ) Bᵀ)."""
    s = lora_scaling(cfg)
    out = {k: v for k, v in W.items() if ".lora_" not in k and not k.startswith("lora_")}
    for m in modules:
        p = m + "." if m else ""
        if p + "lora_A.default.weight" in W:
            out[p + "weight"] = W[p + "weight"] + s * (W[p + "lora_B.default.weight"] @ W[p + "lora_A.default.weight"])
    return out


# --------------------------------------------------------------------------- quantizers

def _roundf(v):
    """C's roundf / Rust's f32::round (half away from zero) of a float32 array, exactly: the
    float64 sum |v| + 0.5 is exact for every float32 v."""
    a = np.abs(v.astype(np.float64))
    return (np.sign(v) * np.floor(a + 0.5)).astype(np.float32)


def q8_0_roundtrip(w):
    """ggml's quantize_row_q8_0_ref then dequantize_row_q8_0 (candle's BlockQ8_0), per block
    of 32 along the row: d = max|x| / 127 (f32), id = 1/d, q = roundf(x·id) as i8, d kept
    as f16; the weight is q·f32(f16(d)) in f32."""
    w = np.asarray(w, np.float32)
    b = w.reshape(-1, 32)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.clip(_roundf(b * inv), -128, 127).astype(np.int8)
    dh = d.astype(np.float16).astype(np.float32)
    return (q.astype(np.float32) * dh).reshape(w.shape)


def q4_0_roundtrip(w):
    """ggml's quantize_row_q4_0_ref then dequantize_row_q4_0 (candle's BlockQ4_0), per block
    of 32: max = the value of largest |x| (the first such, sign kept), d = max / -8 (f32),
    id = 1/d, q = min(15, (u8)(x·id + 8.5)) (f32 sum, truncated), d kept as f16; the weight
    is (q − 8)·f32(f16(d)) in f32."""
    w = np.asarray(w, np.float32)
    b = w.reshape(-1, 32)
    mx = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)
    d = mx / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    t = (b * inv + np.float32(8.5)).astype(np.float32)
    q = np.minimum(15, np.trunc(t).clip(0, 255).astype(np.uint8))
    dh = d.astype(np.float16).astype(np.float32)
    return ((q.astype(np.int16) - 8).astype(np.float32) * dh).reshape(w.shape)


def int8_roundtrip(w):
    """tensile's int8 (quant/int.rs), per output row, all in f32: s = max|w| / 127,
    inv = 1/s (0 if s = 0), q = clamp(round(w·inv), −127, 127) (half away from zero), the
    weight is f32(q)·s."""
    w = np.asarray(w, np.float32)
    s = np.abs(w).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(s > 0, np.float32(1) / s, np.float32(0)).astype(np.float32)
    q = np.clip(_roundf(w * inv), -127, 127).astype(np.int8)
    return (q.astype(np.float32) * s).astype(np.float32)


QUANTIZERS = {"q8_0": q8_0_roundtrip, "q4_0": q4_0_roundtrip, "int8": int8_roundtrip}


def quantize_roundtrip(w, fmt):
    """The float32 weight a quantized tensile block computes with, from the stored weight."""
    if fmt not in QUANTIZERS:
        raise ValueError(f"no NumPy quantizer for format {fmt!r}")
    return QUANTIZERS[fmt](w)


def dequantized(W, fmt):
    """Every 2-D weight (name ending in .weight or equal to weight) through the round trip,
    widened to float64; biases stay as they are."""
    return {k: (quantize_roundtrip(v.astype(np.float32), fmt).astype(np.float64) if v.ndim == 2 else v) for k, v in W.items()}


def run(kind, cfg, W, x):
    if kind == "llama.rms_norm":
        return rms_norm(x, W["weight"], cfg["rms_norm_eps"])
    if kind == "llama.mlp":
        return llama_mlp(x, W, cfg)
    if kind == "llama.attention":
        return llama_attention(x, W, cfg)
    if kind == "llama.decoder_layer":
        eps = cfg["rms_norm_eps"]
        h = x + llama_attention(rms_norm(x, W["input_layernorm.weight"], eps), W, cfg, "self_attn.")
        return h + llama_mlp(rms_norm(h, W["post_attention_layernorm.weight"], eps), W, cfg, "mlp.")
    if kind == "bert.layer":
        return bert_layer(x, W, cfg)
    if kind == "modernbert.attention":
        return modernbert_attention(x, W, cfg)
    if kind == "modernbert.mlp":
        return modernbert_mlp(x, W, cfg)
    if kind == "modernbert.layer":
        return modernbert_layer(x, W, cfg)
    if kind in ("head.sequence_classification", "head.token_classification"):
        return head(kind, cfg, W, x)
    if kind == "pooling.cls":
        return x[:, 0]
    if kind == "pooling.mean":
        return x.mean(axis=1)
    if kind == "pooling.max":
        return x.max(axis=1)
    if kind == "pooling.attention":
        return (softmax(linear(x, W["attention.weight"], W["attention.bias"])[..., 0])[..., None] * x).sum(axis=1)
    if kind == "lora.linear":
        M = lora_merged(W, cfg, [""])
        return linear(x, M["weight"], M.get("bias"))
    if kind == "lora.llama_attention":
        return llama_attention(x, lora_merged(W, cfg, lora_targets(cfg)), cfg)
    if kind == "quantized.linear":
        M = dequantized(W, cfg["format"])
        return linear(x, M["weight"], M.get("bias"))
    if kind == "quantized.llama_mlp":
        return llama_mlp(x, dequantized(W, cfg["format"]), cfg)
    if kind == "quantized.llama_attention":
        return llama_attention(x, dequantized(W, cfg["format"]), cfg)
    raise ValueError(kind)


def read_case(path):
    """A case file's header, weights and input (widened to float64) and stored output."""
    with safe_open(path, framework="np") as f:
        case = json.loads(f.metadata()["tensile.case"])
        T = {k: f.get_tensor(k) for k in f.keys()}
    x = T.pop("input").astype(np.float64)
    y = T.pop("output")
    return case, {k: v.astype(np.float64) for k, v in T.items()}, x, y


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR)
    p.add_argument("--tol", type=float, default=1e-10)
    a = p.parse_args(argv)
    bad = 0
    for fn in sorted(os.listdir(a.dir)):
        if not fn.endswith(".safetensors"):
            continue
        case, W, x, y = read_case(os.path.join(a.dir, fn))
        y2 = run(case["module"], case["config"], W, x)
        err = float(np.abs(y2 - y).max())
        ok = err <= a.tol
        bad += not ok
        print(f"{fn:42s} {case['module']:20s} max|numpy-ref| = {err:.2e} {'OK' if ok else 'FAIL'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

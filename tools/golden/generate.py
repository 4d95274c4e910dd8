#!/usr/bin/env python3
"""Generate tensile "reference case" files from Hugging Face transformers modules.

Each case is ONE safetensors file holding

* the module's parameters under their Hugging Face ``state_dict()`` names
  (relative to the module), stored as float32; non-persistent buffers such as
  the rotary ``inv_freq`` are not included;
* ``input``  -- float32, shape (batch, seq, hidden), standard normal, seeded;
* ``output`` -- float64, same shape: the module run with every weight and the
  input cast to float64;
* metadata ``tensile.case`` = JSON ``{"module": KIND, "config": {...}}`` where
  ``config`` uses Hugging Face config.json field names, plus the metadata keys
  ``torch_version`` and ``transformers_version``.

KIND is one of ``llama.attention``, ``llama.mlp``, ``llama.rms_norm``,
``llama.decoder_layer``, ``bert.layer``.

Semantics: llama kinds are causal with positions 0..seq (an explicit 4-D
additive causal mask is passed, eager attention); ``bert.layer`` runs in eval
mode without an attention mask.

Float64 fidelity: transformers' Llama code deliberately computes a few things
in float32 even when the module is float64 (LlamaRMSNorm upcasts to float32 and
casts back, eager_attention_forward does ``softmax(..., dtype=torch.float32)``,
LlamaRotaryEmbedding computes inv_freq / cos / sin in float32). For a true
float64 reference these three spots are replaced while the reference output is
computed (see ``float64_exact``): the replacements are the same formulas
evaluated in the input dtype (for float32 inputs the RMSNorm and softmax
replacements are identical to the originals). The float64 rotary frequencies
are checked against
``LlamaRotaryEmbedding(config).inv_freq`` and every case is cross-checked
against the unmodified transformers module run in float32 (the differences are
printed).

Usage::

    python tools/golden/generate.py --out crates/tensile-nn/tests/golden
    python tools/golden/generate.py --check crates/tensile-nn/tests/golden

The output is deterministic: rerunning produces the same bytes apart from the
version metadata (the safetensors file is written by a small local writer with
sorted keys, because safetensors' own writer orders metadata randomly).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch
import transformers
from transformers import BertConfig, LlamaConfig
from transformers.models.bert import modeling_bert
from transformers.models.llama import modeling_llama

KINDS = ("llama.attention", "llama.mlp", "llama.rms_norm", "llama.decoder_layer", "bert.layer")

LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # Small on purpose: with head_dim 16 and rope_theta 500000 the frequencies
    # fall into all three llama3 regimes (kept, smoothed, divided by factor).
    "original_max_position_embeddings": 64,
}

# name -> (kind, config overrides, batch, seq)
DEFAULT_CASES = [
    ("llama_rms_norm", "llama.rms_norm",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6),
     2, 7),
    ("llama_mlp", "llama.mlp",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=4),
     2, 5),
    ("llama_attention_mha", "llama.attention",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=4),
     1, 8),
    ("llama_attention_gqa", "llama.attention",
     dict(hidden_size=128, intermediate_size=256, num_attention_heads=8, num_key_value_heads=2, rope_theta=500000.0),
     2, 9),
    ("llama_attention_mqa", "llama.attention",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=1),
     1, 5),
    ("llama_attention_bias", "llama.attention",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=2, attention_bias=True),
     1, 6),
    ("llama_attention_rope_llama3", "llama.attention",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=2,
          rope_theta=500000.0, rope_scaling=LLAMA3_SCALING, max_position_embeddings=256),
     1, 11),
    ("llama_decoder_layer", "llama.decoder_layer",
     dict(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6),
     2, 7),
    ("bert_layer", "bert.layer",
     dict(hidden_size=64, num_attention_heads=4, intermediate_size=256, hidden_act="gelu"),
     2, 9),
    ("bert_layer_gelu_tanh", "bert.layer",
     dict(hidden_size=64, num_attention_heads=4, intermediate_size=256, hidden_act="gelu_new"),
     1, 6),
]

# Not written by default (only with --extra): explicit head_dim != hidden/heads.
EXTRA_CASES = [
    ("llama_attention_head_dim", "llama.attention",
     dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=2, head_dim=32),
     1, 6),
]

LLAMA_DEFAULTS = dict(
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    rope_scaling=None,
    attention_bias=False,
    mlp_bias=False,
    max_position_embeddings=256,
    hidden_act="silu",
)
LLAMA_FIELDS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "rms_norm_eps", "rope_theta", "rope_scaling", "attention_bias", "mlp_bias",
                "max_position_embeddings", "hidden_act")
BERT_DEFAULTS = dict(layer_norm_eps=1e-12)
BERT_FIELDS = ("hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "layer_norm_eps")


def full_config(kind: str, overrides: dict) -> dict:
    """The config dict stored in the case file (HF config.json field names)."""
    if kind.startswith("llama."):
        cfg = dict(LLAMA_DEFAULTS)
        cfg.update(overrides)
        # head_dim only when explicitly set by the case.
        return {k: cfg[k] for k in LLAMA_FIELDS if k in cfg}
    cfg = dict(BERT_DEFAULTS)
    cfg.update(overrides)
    return {k: cfg[k] for k in BERT_FIELDS}


def hf_config(kind: str, cfg: dict):
    if kind.startswith("llama."):
        kwargs = dict(cfg)
        if kwargs.get("rope_scaling") is not None:
            kwargs["rope_scaling"] = dict(kwargs["rope_scaling"])  # transformers mutates it
        else:
            kwargs.pop("rope_scaling", None)
        config = LlamaConfig(**kwargs)
    else:
        config = BertConfig(**cfg, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    return config


def build_module(kind: str, config):
    if kind == "llama.rms_norm":
        m = modeling_llama.LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    elif kind == "llama.mlp":
        m = modeling_llama.LlamaMLP(config)
    elif kind == "llama.attention":
        m = modeling_llama.LlamaAttention(config, layer_idx=0)
    elif kind == "llama.decoder_layer":
        m = modeling_llama.LlamaDecoderLayer(config, layer_idx=0)
    elif kind == "bert.layer":
        m = modeling_bert.BertLayer(config)
    else:
        raise ValueError(f"unknown kind {kind}")
    return m.eval()


def parameter_names(module) -> list[str]:
    """state_dict() names that are parameters (drops buffers such as inv_freq)."""
    params = dict(module.named_parameters())
    return [k for k in module.state_dict().keys() if k in params]


def random_weights(module, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for name in parameter_names(module):
        shape = tuple(module.state_dict()[name].shape)
        z = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name.endswith("bias"):
            w = 0.1 * z
        elif len(shape) == 1:  # norm weight
            w = 1.0 + 0.1 * z
        elif len(shape) == 2:  # linear weight (out, in)
            w = z / math.sqrt(shape[1])
        else:
            raise ValueError(f"unexpected parameter {name} {shape}")
        out[name] = w.contiguous()
    return out


def load_weights(module, weights: dict[str, torch.Tensor], dtype: torch.dtype):
    names = parameter_names(module)
    if sorted(names) != sorted(weights):
        raise ValueError(f"weight names differ: module {sorted(names)} vs file {sorted(weights)}")
    module.to(dtype)
    missing, unexpected = module.load_state_dict({k: v.to(dtype) for k, v in weights.items()}, strict=False)
    assert not unexpected, unexpected
    assert all(k not in names for k in missing), missing
    return module


# --------------------------------------------------------------------------- rope / mask

def rope_inv_freq_f64(config) -> torch.Tensor:
    """inv_freq in float64, same formulas as transformers (default and llama3)."""
    rp = config.rope_parameters
    base = float(rp["rope_theta"])
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * rp.get("partial_rotary_factor", 1.0))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rope_type = rp.get("rope_type", "default")
    if rope_type == "default":
        return inv_freq
    if rope_type != "llama3":
        raise ValueError(f"unsupported rope_type {rope_type}")
    factor = rp["factor"]
    low_freq_factor = rp["low_freq_factor"]
    high_freq_factor = rp["high_freq_factor"]
    old_context_len = rp["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def position_embeddings_f64(config, seq: int):
    """(cos, sin), each (1, seq, head_dim) float64, built like LlamaRotaryEmbedding."""
    rotary = modeling_llama.LlamaRotaryEmbedding(config=config)
    inv64 = rope_inv_freq_f64(config)
    hf_inv = rotary.inv_freq.to(torch.float64)
    if not torch.allclose(inv64, hf_inv, rtol=1e-6, atol=0.0):
        raise AssertionError(f"float64 inv_freq disagrees with transformers:\n{inv64}\n{hf_inv}")
    scaling = float(rotary.attention_scaling)
    position_ids = torch.arange(seq, dtype=torch.float64)[None, :]
    freqs = position_ids[..., None] * inv64
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * scaling, emb.sin() * scaling


def position_embeddings_hf(config, seq: int, dtype):
    """(cos, sin) exactly as transformers computes them (float32 math)."""
    rotary = modeling_llama.LlamaRotaryEmbedding(config=config)
    x = torch.zeros(1, seq, config.hidden_size, dtype=dtype)
    return rotary(x, torch.arange(seq)[None, :])


def causal_mask(batch: int, seq: int, dtype) -> torch.Tensor:
    """(batch, 1, seq, seq) additive mask: 0 on/below the diagonal, finfo.min above."""
    m = torch.full((seq, seq), torch.finfo(dtype).min, dtype=dtype).triu(1)
    return m[None, None].expand(batch, 1, seq, seq).contiguous()


# --------------------------------------------------------------------------- float64 patches

def _rms_norm_forward_exact(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * hidden_states


def _eager_attention_forward_exact(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key_states = modeling_llama.repeat_kv(key, module.num_key_value_groups)
    value_states = modeling_llama.repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = torch.nn.functional.softmax(attn_weights, dim=-1)  # in query.dtype
    attn_weights = torch.nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


@contextlib.contextmanager
def float64_exact():
    """Temporarily remove transformers' forced float32 islands in Llama."""
    saved = (modeling_llama.LlamaRMSNorm.forward, modeling_llama.eager_attention_forward)
    modeling_llama.LlamaRMSNorm.forward = _rms_norm_forward_exact
    modeling_llama.eager_attention_forward = _eager_attention_forward_exact
    try:
        yield
    finally:
        modeling_llama.LlamaRMSNorm.forward, modeling_llama.eager_attention_forward = saved


# --------------------------------------------------------------------------- running

def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def run_case(kind: str, cfg: dict, weights: dict, x: torch.Tensor, dtype=torch.float64, exact=True) -> torch.Tensor:
    """Run the module. exact=True: float64-faithful reference path (patched float32
    islands, float64 rope). exact=False: unmodified transformers code path."""
    config = hf_config(kind, cfg)
    module = load_weights(build_module(kind, config), weights, dtype)
    x = x.to(dtype)
    batch, seq, _ = x.shape
    ctx = float64_exact() if exact else contextlib.nullcontext()
    with ctx:
        if kind in ("llama.rms_norm", "llama.mlp"):
            out = module(x)
        elif kind == "bert.layer":
            out = module(x, attention_mask=None)
        else:
            if exact:
                cos, sin = position_embeddings_f64(config, seq)
                pe = (cos.to(dtype), sin.to(dtype))
            else:
                pe = position_embeddings_hf(config, seq, dtype)
            mask = causal_mask(batch, seq, dtype)
            if kind == "llama.attention":
                out = module(hidden_states=x, position_embeddings=pe, attention_mask=mask)
            else:
                position_ids = torch.arange(seq)[None, :]
                out = module(x, attention_mask=mask, position_ids=position_ids, position_embeddings=pe)
    out = _first(out)
    assert out.shape == x.shape and out.dtype == dtype, (out.shape, out.dtype)
    return out


# --------------------------------------------------------------------------- safetensors I/O

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}


def write_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    """Deterministic safetensors writer (sorted metadata and tensor names)."""
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in tensors.items()}
    # Same layout rule as safetensors: larger alignment first, then by name.
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for k in order:
        a = arrays[k]
        n = a.nbytes
        header[k] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hbytes = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for k in order:
            f.write(arrays[k].astype(arrays[k].dtype.newbyteorder("<"), copy=False).tobytes())


def read_case(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    case = json.loads(meta["tensile.case"])
    return case, meta, tensors


# --------------------------------------------------------------------------- main

def generate(out_dir: str, cases) -> None:
    os.makedirs(out_dir, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for name, kind, overrides, batch, seq in cases:
        assert kind in KINDS
        cfg = full_config(kind, overrides)
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        config = hf_config(kind, cfg)
        weights = random_weights(build_module(kind, config), gen)
        x = torch.randn((batch, seq, cfg["hidden_size"]), generator=gen, dtype=torch.float32)
        y = run_case(kind, cfg, weights, x, torch.float64, exact=True)

        # Cross-checks against the unmodified transformers code.
        y_hf32 = run_case(kind, cfg, weights, x, torch.float32, exact=False).double()
        y_hf64 = run_case(kind, cfg, weights, x, torch.float64, exact=False)
        y_ex32 = run_case(kind, cfg, weights, x, torch.float32, exact=True).double()

        tensors = dict(weights)
        tensors["input"] = x
        tensors["output"] = y
        meta = {
            "tensile.case": json.dumps({"module": kind, "config": cfg}, sort_keys=True, separators=(",", ":")),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
        }
        path = os.path.join(out_dir, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        print(f"{name:30s} {kind:20s} in/out {tuple(x.shape)} |out|max {y.abs().max():.3f} std {y.std():.3f} "
              f"| ref-hf_f32 {(y - y_hf32).abs().max():.2e} ref-hf_f64 {(y - y_hf64).abs().max():.2e} "
              f"hf_f32-exact_f32 {(y_hf32 - y_ex32).abs().max():.1e} | {os.path.getsize(path)} B")


def check(out_dir: str) -> int:
    bad = 0
    total = 0
    for fn in sorted(os.listdir(out_dir)):
        if not fn.endswith(".safetensors"):
            continue
        path = os.path.join(out_dir, fn)
        total += os.path.getsize(path)
        case, meta, tensors = read_case(path)
        kind, cfg = case["module"], case["config"]
        x, y = tensors.pop("input"), tensors.pop("output")
        print(f"== {fn} ({os.path.getsize(path)} B) module={kind}")
        print(f"   config={json.dumps(cfg, sort_keys=True)}")
        print(f"   torch={meta.get('torch_version')} transformers={meta.get('transformers_version')}")
        for k, v in tensors.items():
            assert v.dtype == torch.float32, (k, v.dtype)
            print(f"   {k:40s} {str(v.dtype):14s} {list(v.shape)}")
        print(f"   {'input':40s} {str(x.dtype):14s} {list(x.shape)}")
        print(f"   {'output':40s} {str(y.dtype):14s} {list(y.shape)}")
        assert x.dtype == torch.float32 and y.dtype == torch.float64 and x.shape == y.shape
        y2 = run_case(kind, cfg, tensors, x, torch.float64, exact=True)
        err = (y2 - y).abs().max().item()
        ok = err <= 1e-12
        bad += not ok
        print(f"   rerun float64 max|diff| = {err:.3e} {'OK' if ok else 'FAIL'}")
    print(f"total {total} bytes, {'all OK' if not bad else f'{bad} FAILED'}")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="directory to write the default case set into")
    p.add_argument("--extra", action="store_true", help="also write EXTRA_CASES")
    p.add_argument("--only", nargs="*", help="case names to write (default: all)")
    p.add_argument("--check", metavar="DIR", help="reload every case in DIR and recompute the output")
    a = p.parse_args(argv)
    if not a.out and not a.check:
        p.error("give --out DIR and/or --check DIR")
    if a.out:
        cases = DEFAULT_CASES + (EXTRA_CASES if a.extra else [])
        if a.only:
            cases = [c for c in cases if c[0] in a.only]
        generate(a.out, cases)
    if a.check:
        return check(a.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())

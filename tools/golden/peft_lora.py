#!/usr/bin/env python3
"""PEFT LoRA golden data: a tiny Llama, three LoRA adapters and PEFT's own outputs.

Writes, under crates/tensile-nn/tests/models/:

* ``tiny-llama/`` -- a 2-layer ``LlamaForCausalLM`` (vocab 128, hidden 64, 4 heads, 2 kv
  heads, intermediate 96, untied ``lm_head``) with seeded random weights (N(0, 0.2²) for every
  matrix, 1 + 0.1·N(0, 1) for the RMSNorm weights, so the signals are O(1)), written by
  transformers' own ``save_pretrained`` in float32 (config.json + model.safetensors only).
* three adapter directories written by PEFT's own ``save_pretrained`` (adapter_config.json +
  adapter_model.safetensors only; PEFT's README.md model card is not kept). Their
  ``base_model_name_or_path`` is the base directory relative to the repository root.
  The LoRA matrices are N(0, 0.1²) (seeded), so every adapter changes the logits visibly:

  - ``tiny-llama-lora-qv``         "alpha": r=4, lora_alpha=8, q_proj + v_proj, dropout 0.1
                                    (inactive in eval) -> scaling 8/4 = 2
  - ``tiny-llama-lora-mlp-rslora`` "beta": r=4, lora_alpha=16, use_rslora, target_modules a
                                    regex string over the MLP projections -> scaling 16/sqrt(4) = 8
  - ``tiny-llama-lora-qv2``        "gamma": like alpha but lora_alpha=4 -> scaling 1

* ``tiny-llama/lora_reference.json`` -- for a fixed (2, 7) batch of ``input_ids`` (no mask),
  the logits (2, 7, 128) of: the base model, each adapter loaded back from its directory with
  ``PeftModel.from_pretrained`` / ``load_adapter`` (so the saved files are what is tested),
  alpha merged with ``merge_and_unload()``, PEFT's ``add_weighted_adapter(["alpha", "gamma"],
  [0.7, 0.3], "combo", combination_type="cat")`` and the ``disable_adapter()`` context. Keys
  without a suffix are transformers + PEFT run unmodified in float32 (rounded to 8 significant
  digits); ``*_f64`` keys are the same computations with every weight cast to float64 and
  transformers' float32 islands (RMSNorm upcast, eager softmax, RoPE angles) evaluated in
  float64 (full precision). It also holds the scalings, the combination formula and PEFT's
  trainable parameter counts.

The script checks itself: merged == adapted (< 1e-5 in float32), disabled == base (exactly),
and the combination equals the base model run with W + Σ_i w_i·s_i·B_i·A_i computed by hand
from the saved adapter files (and likewise each single adapter).

    /work/venv-hf/bin/python tools/golden/peft_lora.py
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "crates", "tensile-nn", "tests", "models")
BASE_DIR = os.path.join(MODELS, "tiny-llama")
BASE_REL = "crates/tensile-nn/tests/models/tiny-llama"

MLP_REGEX = r".*\.mlp\.(gate|up|down)_proj"

# name, directory, LoraConfig kwargs, weight seed, scaling PEFT must use
ADAPTERS = [
    ("alpha", "tiny-llama-lora-qv",
     dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.1, bias="none"), 1, 8 / 4),
    ("beta", "tiny-llama-lora-mlp-rslora",
     dict(r=4, lora_alpha=16, use_rslora=True, target_modules=MLP_REGEX, lora_dropout=0.0, bias="none"), 2, 16 / math.sqrt(4)),
    ("gamma", "tiny-llama-lora-qv2",
     dict(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, bias="none"), 3, 4 / 4),
]
COMBO = (["alpha", "gamma"], [0.7, 0.3], "combo")


def llama_config() -> LlamaConfig:
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu",
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    config._attn_implementation = "eager"
    return config


def input_ids() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1234)
    return torch.randint(0, 128, (2, 7), generator=gen)


# ----------------------------------------------------------------------------- float64 fidelity

def _rms_norm_exact(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _eager_exact(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
    value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


def _rotary_exact(self, x, position_ids):
    cfg = self.config
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    base = cfg.rope_parameters["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    assert torch.allclose(inv, self.inv_freq.double(), rtol=1e-6), "float64 inv_freq disagrees with transformers"
    freqs = position_ids[..., None].to(torch.float64) * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


@contextlib.contextmanager
def float64_exact():
    """Temporarily evaluate transformers' float32 islands in Llama in the input dtype."""
    m = modeling_llama
    saved = (m.LlamaRMSNorm.forward, m.eager_attention_forward, m.LlamaRotaryEmbedding.forward)
    m.LlamaRMSNorm.forward, m.eager_attention_forward, m.LlamaRotaryEmbedding.forward = _rms_norm_exact, _eager_exact, _rotary_exact
    try:
        yield
    finally:
        m.LlamaRMSNorm.forward, m.eager_attention_forward, m.LlamaRotaryEmbedding.forward = saved


# ----------------------------------------------------------------------------- writing

def write_base():
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).to(torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    os.makedirs(BASE_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for fn in ("config.json", "model.safetensors"):
            os.replace(os.path.join(tmp, fn), os.path.join(BASE_DIR, fn))
    gc = os.path.join(BASE_DIR, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    print(f"wrote {BASE_DIR}: {sum(p.numel() for p in model.parameters())} parameters")


def load_base(dtype=torch.float32) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32, attn_implementation="eager")
    return model.to(dtype).eval()


def expected_trainable(base, cfg) -> int:
    """r·(in + out) summed over the targeted linear layers."""
    import re

    total = 0
    for name, mod in base.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        tm = cfg["target_modules"]
        hit = re.fullmatch(tm, name) is not None if isinstance(tm, str) else name.split(".")[-1] in tm
        if hit:
            total += cfg["r"] * (mod.in_features + mod.out_features)
    return total


def write_adapters() -> dict:
    trainable = {}
    for name, dirname, cfg, seed, _ in ADAPTERS:
        base = load_base()
        want = expected_trainable(base, cfg)
        model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **cfg), adapter_name=name)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for pname, p in sorted(model.named_parameters()):
                if ".lora_A." in pname or ".lora_B." in pname:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        n_train, n_all = model.get_nb_trainable_parameters()
        assert n_train == want, (name, n_train, want)
        trainable[name] = {"trainable": n_train, "all": n_all, "expected_r_times_in_plus_out": want}
        model.peft_config[name].base_model_name_or_path = BASE_REL
        out = os.path.join(MODELS, dirname)
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            # PEFT saves a non-default adapter name in a subdirectory
            src = tmp if os.path.exists(os.path.join(tmp, "adapter_config.json")) else os.path.join(tmp, name)
            for fn in ("adapter_config.json", "adapter_model.safetensors"):
                os.replace(os.path.join(src, fn), os.path.join(out, fn))
        # PEFT keeps a list of target_modules as a set and writes it in hash order; sort it so
        # reruns give the same bytes (same writer settings as PEFT's to_json_file otherwise).
        cfg_path = os.path.join(out, "adapter_config.json")
        with open(cfg_path) as f:
            saved = json.load(f)
        if isinstance(saved["target_modules"], list):
            saved["target_modules"] = sorted(saved["target_modules"])
        with open(cfg_path, "w") as f:
            f.write(json.dumps(saved, indent=2, sort_keys=True))
        print(f"wrote {out}: trainable {n_train} of {n_all}")
        with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f:
            for k in sorted(f.keys()):
                t = f.get_tensor(k)
                print(f"   {k:70s} {str(t.dtype):14s} {tuple(t.shape)}")
                assert k.startswith("base_model.model.model.layers.") and k.endswith((".lora_A.weight", ".lora_B.weight")), k
    return trainable


def adapter_tensors(dirname) -> dict:
    with safe_open(os.path.join(MODELS, dirname, "adapter_model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def manual_model(terms, dtype) -> LlamaForCausalLM:
    """The base model with W += w·s·B·A for every (weight, scaling, adapter tensors) term,
    computed by hand from the saved adapter files."""
    model = load_base(dtype)
    sd = model.state_dict()
    with torch.no_grad():
        for w, s, tensors in terms:
            for k, a in tensors.items():
                if not k.endswith(".lora_A.weight"):
                    continue
                b = tensors[k.replace(".lora_A.", ".lora_B.")]
                target = k[len("base_model.model."):-len(".lora_A.weight")] + ".weight"
                sd[target] += w * s * (b.to(dtype) @ a.to(dtype))
    model.load_state_dict(sd)
    return model.eval()


@torch.no_grad()
def logits(model, ids):
    return model(input_ids=ids).logits


def run_all(dtype) -> dict:
    """Every reference output in one dtype."""
    ids = input_ids()
    d = {name: dirname for name, dirname, *_ in ADAPTERS}
    out = {}
    base = load_base(dtype)
    out["base"] = logits(base, ids)

    model = PeftModel.from_pretrained(base, os.path.join(MODELS, d["alpha"]), adapter_name="alpha")
    model.load_adapter(os.path.join(MODELS, d["beta"]), adapter_name="beta")
    model.load_adapter(os.path.join(MODELS, d["gamma"]), adapter_name="gamma")
    model.to(dtype).eval()
    for name, _, _, _, scaling in ADAPTERS:
        layer = model.base_model.model.model.layers[0]
        mod = layer.self_attn.q_proj if name != "beta" else layer.mlp.gate_proj
        assert math.isclose(mod.scaling[name], scaling), (name, mod.scaling[name], scaling)
        for p in model.parameters():
            assert p.dtype == dtype
    model.set_adapter("alpha")
    out["alpha"] = logits(model, ids)
    model.set_adapter("beta")
    out["beta"] = logits(model, ids)
    model.set_adapter("gamma")
    out["gamma"] = logits(model, ids)

    adapters, weights, combo = COMBO
    model.add_weighted_adapter(adapters, weights, combo, combination_type="cat")
    # The new adapter's modules (its lora_dropout, p=0.1 copied from alpha's config) are
    # created in training mode: without this eval() the combination would be stochastic.
    model.eval()
    model.set_adapter(combo)
    out["combined"] = logits(model, ids)
    cfg = model.peft_config[combo]
    out["combo_config"] = {"r": cfg.r, "lora_alpha": cfg.lora_alpha, "use_rslora": cfg.use_rslora,
                           "scaling": model.base_model.model.model.layers[0].self_attn.q_proj.scaling[combo]}

    model.set_adapter("alpha")
    with model.disable_adapter():
        out["disabled"] = logits(model, ids)
    out["alpha_again"] = logits(model, ids)
    merged = model.merge_and_unload(adapter_names=["alpha"])
    out["alpha_merged"] = logits(merged.eval(), ids)

    # by hand, from the saved files
    tens = {name: adapter_tensors(dirname) for name, dirname, *_ in ADAPTERS}
    scal = {name: s for name, _, _, _, s in ADAPTERS}
    for name in ("alpha", "beta", "gamma"):
        out[f"manual_{name}"] = logits(manual_model([(1.0, scal[name], tens[name])], dtype), ids)
    out["manual_combined"] = logits(manual_model([(w, scal[a], tens[a]) for a, w in zip(adapters, weights)], dtype), ids)
    return out


def rounded(t: torch.Tensor, digits=None):
    if digits is None:
        return t.tolist()
    return [rounded_list(x, digits) for x in t.tolist()]


def rounded_list(x, digits):
    if isinstance(x, list):
        return [rounded_list(v, digits) for v in x]
    return float(f"{x:.{digits}g}")


def check(out, tol, label) -> dict:
    def diff(a, b):
        return (out[a] - out[b]).abs().max().item()

    diffs = {
        "alpha_merged-alpha": diff("alpha_merged", "alpha"),
        "alpha_again-alpha": diff("alpha_again", "alpha"),
        "disabled-base": diff("disabled", "base"),
        "combined-manual": diff("combined", "manual_combined"),
        "alpha-manual": diff("alpha", "manual_alpha"),
        "beta-manual": diff("beta", "manual_beta"),
        "gamma-manual": diff("gamma", "manual_gamma"),
        "alpha-base": diff("alpha", "base"),
        "beta-base": diff("beta", "base"),
        "combined-base": diff("combined", "base"),
        "combined-alpha": diff("combined", "alpha"),
    }
    for k, v in diffs.items():
        print(f"   [{label}] max|{k}| = {v:.3e}")
    assert diffs["disabled-base"] == 0.0
    assert diffs["alpha_again-alpha"] == 0.0
    for k in ("alpha_merged-alpha", "combined-manual", "alpha-manual", "beta-manual", "gamma-manual"):
        assert diffs[k] < tol, (label, k, diffs[k])
    for k in ("alpha-base", "beta-base", "combined-base", "combined-alpha"):
        assert diffs[k] > 0.05, (label, k, diffs[k])
    return diffs


def main() -> int:
    torch.use_deterministic_algorithms(True)
    write_base()
    trainable = write_adapters()

    f32 = run_all(torch.float32)
    d32 = check(f32, 1e-5, "float32")
    with float64_exact():
        f64 = run_all(torch.float64)
    d64 = check(f64, 1e-12, "float64")
    f32_vs_f64 = max((f32[k].double() - f64[k]).abs().max().item() for k in ("base", "alpha", "beta", "combined"))
    print(f"   max|f32 - f64| over base/alpha/beta/combined = {f32_vs_f64:.3e}")
    assert f32_vs_f64 < 1e-4

    ref = {
        "generator": "tools/golden/peft_lora.py",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "base": BASE_REL,
        "adapters": {name: {"dir": f"crates/tensile-nn/tests/models/{dirname}", "seed": seed} for name, dirname, _, seed, _ in ADAPTERS},
        "scalings": {name: s for name, _, _, _, s in ADAPTERS},
        "combination": {
            "adapters": COMBO[0], "weights": COMBO[1], "name": COMBO[2], "combination_type": "cat",
            "formula": "delta_W = sum_i w_i * scaling_i * B_i @ A_i (per target module; W_eff = W + delta_W)",
            "peft_adapter": dict(f32["combo_config"], note="PEFT builds A = cat_i(w_i * scaling_i * A_i) along rank, B = cat_i(B_i) along rank, r = sum r_i, lora_alpha = r, scaling 1"),
        },
        "trainable_parameters": trainable,
        "float32_note": "keys without suffix: transformers + PEFT unmodified in float32, rounded to 8 significant digits",
        "float64_note": "*_f64 keys: all weights cast to float64, transformers' float32 islands (RMSNorm, eager softmax, RoPE) evaluated in float64",
        "observed_max_abs_diff": {"float32": d32, "float64": d64, "f32_vs_f64": f32_vs_f64},
        "input_ids": input_ids().tolist(),
        "shape": list(f32["base"].shape),
    }
    for key in ("base", "alpha", "beta", "gamma", "alpha_merged", "combined", "disabled"):
        ref[f"{key}_logits"] = rounded(f32[key], 8)
    for key in ("base", "alpha", "beta", "gamma", "alpha_merged", "combined", "disabled"):
        ref[f"{key}_logits_f64"] = rounded(f64[key])
    path = os.path.join(BASE_DIR, "lora_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    size = os.path.getsize(path)
    print(f"wrote {path} ({size} bytes)")
    assert size < 1_000_000
    return 0


if __name__ == "__main__":
    sys.exit(main())

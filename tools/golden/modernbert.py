#!/usr/bin/env python3
"""ModernBERT golden data from Hugging Face transformers (float64, exact).

Writes two kinds of reference data:

* module cases in crates/tensile-nn/tests/golden (the format of generate.py, see README.md):
  ``modernbert.attention`` (a global layer, and a local layer whose sequence is longer than
  the window), ``modernbert.mlp`` and ``modernbert.layer`` (layer 0, whose ``attn_norm`` is the
  identity, and a local layer with every bias on). Their config carries tensile's own field
  ``layer_idx``, which decides global or local attention and whether there is an ``attn_norm``.
* whole-model directories in crates/tensile-nn/tests/models/<name>/, written by
  transformers' own ``save_pretrained`` (config.json + model.safetensors), with
  ``reference.json``: the inputs (``input_ids``, ``attention_mask``, padded rows and odd
  lengths) and the outputs of transformers run unmodified in float32 (``output_f32``) and
  float64-exact (``output_f64``). ``output_name`` says which output that is
  (``last_hidden_state`` or ``logits``).

Float64 fidelity: transformers computes RoPE's angles and the rotation in float32 and its
eager softmax in float32 even for a float64 module; ``float64_exact`` replaces those three
spots with the same formulas in the input dtype while the float64 reference is computed.

    .venv/bin/python tools/golden/modernbert.py            # writes both
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import zlib

import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification, ModernBertConfig, ModernBertForSequenceClassification, ModernBertModel
from transformers.models.modernbert import modeling_modernbert as mb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import random_weights, write_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "crates", "tensile-nn", "tests", "golden")
MODELS = os.path.join(REPO, "crates", "tensile-nn", "tests", "models")

BASE = dict(hidden_size=64, num_attention_heads=4, intermediate_size=96, hidden_activation="gelu", norm_eps=1e-5, norm_bias=False,
            attention_bias=False, mlp_bias=False, global_rope_theta=160000.0, local_rope_theta=10000.0, global_attn_every_n_layers=3,
            local_attention=8)

# name, kind, overrides, batch, seq
CASES = [
    ("modernbert_attention_global", "modernbert.attention", dict(layer_idx=0), 2, 12),
    ("modernbert_attention_local", "modernbert.attention", dict(layer_idx=1), 2, 13),
    ("modernbert_mlp", "modernbert.mlp", dict(), 2, 7),
    ("modernbert_layer_global", "modernbert.layer", dict(layer_idx=0), 2, 9),
    ("modernbert_layer_local", "modernbert.layer", dict(layer_idx=2, norm_bias=True, attention_bias=True, mlp_bias=True, hidden_activation="gelu_pytorch_tanh"),
     2, 17),
]


# Heads on hidden states: name, kind, config, batch, seq. Weights are named from the model's
# root, as in a whole `*ForSequenceClassification` checkpoint.
HEAD_CASES = [
    ("head_sequence_modernbert_mean", "head.sequence_classification",
     dict(BASE, model_type="modernbert", classifier_pooling="mean", num_labels=3, norm_bias=True, classifier_bias=True), 2, 5),
    ("head_sequence_bert", "head.sequence_classification", dict(model_type="bert", hidden_size=64, num_labels=2), 2, 5),
    ("head_token_modernbert", "head.token_classification", dict(BASE, model_type="modernbert", num_labels=4), 2, 6),
]


def head_modules(kind, cfg):
    """The transformers modules a head case runs, keyed by their checkpoint prefix."""
    from torch import nn
    from transformers.models.bert.modeling_bert import BertPooler

    n = cfg["num_labels"]
    if cfg["model_type"] == "bert":
        mods = {"classifier": nn.Linear(cfg["hidden_size"], n)}
        if kind == "head.sequence_classification":
            mods["bert.pooler"] = BertPooler(BertConfig(hidden_size=cfg["hidden_size"]))
        return mods
    config = hf_config({k: v for k, v in cfg.items() if k not in ("model_type", "num_labels")}, 3)
    return {"head": mb.ModernBertPredictionHead(config), "classifier": nn.Linear(cfg["hidden_size"], n)}


def run_head(kind, cfg, mods, x):
    with torch.no_grad():
        if cfg["model_type"] == "bert":
            h = mods["bert.pooler"](x) if kind == "head.sequence_classification" else x
            return mods["classifier"](h)
        if kind == "head.sequence_classification":
            x = x.mean(dim=1) if cfg.get("classifier_pooling") == "mean" else x[:, 0]
        return mods["classifier"](mods["head"](x))


def head_cases():
    for name, kind, cfg, batch, seq in HEAD_CASES:
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        mods = head_modules(kind, cfg)
        weights = {}
        for prefix, m in mods.items():
            weights.update({f"{prefix}.{k}": v for k, v in random_weights(m, gen).items()})
        x = torch.randn((batch, seq, cfg["hidden_size"]), generator=gen, dtype=torch.float32)
        outs = []
        for dtype in (torch.float64, torch.float32):
            for prefix, m in mods.items():
                m.load_state_dict({k[len(prefix) + 1:]: v.to(dtype) for k, v in weights.items() if k.startswith(prefix + ".")})
                m.to(dtype).eval()
            outs.append(run_head(kind, cfg, mods, x.to(dtype)))
        y, y32 = outs[0], outs[1].double()
        meta = {
            "tensile.case": json.dumps({"module": kind, "config": cfg}, sort_keys=True, separators=(",", ":")),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
        }
        write_safetensors(os.path.join(GOLDEN, name + ".safetensors"), dict(weights, input=x, output=y), meta)
        print(f"{name:30s} {kind:30s} in {tuple(x.shape)} out {tuple(y.shape)} | ref-hf_f32 {(y - y32).abs().max():.2e}")


# Poolings on hidden states without a mask (the golden runner passes none): name, mode, batch,
# seq. cls, mean and max as sentence-transformers' Pooling computes them; attention pooling as
# softmax over positions of `attention(x)` (a Linear hidden → 1), weighting the states.
POOLING_CASES = [
    ("pooling_cls", "cls", 2, 5),
    ("pooling_mean", "mean", 2, 7),
    ("pooling_max", "max", 3, 4),
    ("pooling_attention", "attention", 2, 6),
]


def pooling_cases():
    from torch import nn

    for name, mode, batch, seq in POOLING_CASES:
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        hidden = 32
        weights = {}
        if mode == "attention":
            weights = {f"attention.{k}": v for k, v in random_weights(nn.Linear(hidden, 1), gen).items()}
        x = torch.randn((batch, seq, hidden), generator=gen, dtype=torch.float32)
        xd = x.double()
        if mode == "cls":
            y = xd[:, 0]
        elif mode == "mean":
            y = xd.mean(dim=1)
        elif mode == "max":
            y = xd.max(dim=1).values
        else:
            scores = xd @ weights["attention.weight"].double().T + weights["attention.bias"].double()  # (b, s, 1)
            y = (torch.softmax(scores, dim=1) * xd).sum(dim=1)
        meta = {
            "tensile.case": json.dumps({"module": f"pooling.{mode}", "config": {"hidden_size": hidden}}, sort_keys=True, separators=(",", ":")),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
        }
        write_safetensors(os.path.join(GOLDEN, name + ".safetensors"), dict(weights, input=x, output=y), meta)
        print(f"{name:30s} pooling.{mode:10s} in {tuple(x.shape)} out {tuple(y.shape)}")


def hf_config(cfg: dict, num_layers: int) -> ModernBertConfig:
    fields = {k: v for k, v in cfg.items() if k != "layer_idx"}
    config = ModernBertConfig(num_hidden_layers=num_layers, vocab_size=cfg.get("vocab_size", 128), pad_token_id=0, bos_token_id=1,
                              eos_token_id=2, cls_token_id=1, sep_token_id=2, **{k: v for k, v in fields.items() if k != "vocab_size"})
    config._attn_implementation = "eager"
    return config


def _rotary_forward_exact(self, x, position_ids, layer_type):
    base = self.config.rope_parameters[layer_type]["rope_theta"]
    dim = self.config.hidden_size // self.config.num_attention_heads
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = position_ids[..., None].to(torch.float64) * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def _apply_rotary_exact(q, k, cos, sin, unsqueeze_dim=1):
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + mb.rotate_half(q) * sin, k * cos + mb.rotate_half(k) * sin


def _eager_exact(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


@contextlib.contextmanager
def float64_exact():
    saved = (mb.ModernBertRotaryEmbedding.forward, mb.apply_rotary_pos_emb, mb.eager_attention_forward)
    mb.ModernBertRotaryEmbedding.forward = _rotary_forward_exact
    mb.apply_rotary_pos_emb = _apply_rotary_exact
    mb.eager_attention_forward = _eager_exact
    try:
        yield
    finally:
        mb.ModernBertRotaryEmbedding.forward, mb.apply_rotary_pos_emb, mb.eager_attention_forward = saved


def position_embeddings(config, layer_type, seq, dtype):
    rot = mb.ModernBertRotaryEmbedding(config)
    x = torch.zeros(1, dtype=dtype)
    return rot(x, torch.arange(seq).unsqueeze(0), layer_type)


def window_mask(config, layer_idx, batch, seq, dtype):
    if config.layer_types[layer_idx] != "sliding_attention":
        return None
    i = torch.arange(seq)
    hide = (i[:, None] - i[None, :]).abs() > config.local_attention // 2
    return torch.zeros(batch, 1, seq, seq, dtype=dtype).masked_fill(hide, torch.finfo(dtype).min)


def run_module(kind, cfg, weights, x, dtype):
    idx = cfg.get("layer_idx", 0)
    config = hf_config(cfg, max(idx + 1, 3))
    if kind == "modernbert.mlp":
        m = mb.ModernBertMLP(config)
    elif kind == "modernbert.attention":
        m = mb.ModernBertAttention(config, layer_idx=idx)
    else:
        m = mb.ModernBertEncoderLayer(config, layer_idx=idx)
    m.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
    m.to(dtype).eval()
    x = x.to(dtype)
    with torch.no_grad():
        if kind == "modernbert.mlp":
            return m(x)
        layer_type = config.layer_types[idx]
        pe = position_embeddings(config, layer_type, x.shape[1], dtype)
        out = m(x, position_embeddings=pe, attention_mask=window_mask(config, idx, x.shape[0], x.shape[1], dtype))
        return out[0] if isinstance(out, tuple) else out


def module_cases():
    torch.use_deterministic_algorithms(True)
    for name, kind, overrides, batch, seq in CASES:
        cfg = dict(BASE, **overrides)
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        idx = cfg.get("layer_idx", 0)
        config = hf_config(cfg, max(idx + 1, 3))
        shell = {"modernbert.mlp": lambda: mb.ModernBertMLP(config), "modernbert.attention": lambda: mb.ModernBertAttention(config, layer_idx=idx)}.get(
            kind, lambda: mb.ModernBertEncoderLayer(config, layer_idx=idx))()
        weights = random_weights(shell, gen)
        x = torch.randn((batch, seq, cfg["hidden_size"]), generator=gen, dtype=torch.float32)
        with float64_exact():
            y = run_module(kind, cfg, weights, x, torch.float64)
        y32 = run_module(kind, cfg, weights, x, torch.float32).double()
        tensors = dict(weights, input=x, output=y)
        meta = {
            "tensile.case": json.dumps({"module": kind, "config": cfg}, sort_keys=True, separators=(",", ":")),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
        }
        path = os.path.join(GOLDEN, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        print(f"{name:30s} {kind:22s} in/out {tuple(x.shape)} |out|max {y.abs().max():.3f} | ref-hf_f32 {(y - y32).abs().max():.2e}")


# ----------------------------------------------------------------------------- model directories

def seeded_model(model, name):
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    weights = random_weights(model, gen)
    model.load_state_dict(weights, strict=False)
    return model


def inputs(vocab, pad, name):
    """Two rows of odd length 11: the second padded after 7 tokens."""
    gen = torch.Generator().manual_seed(zlib.crc32((name + "/ids").encode()))
    ids = torch.randint(3, vocab, (2, 11), generator=gen)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 7:] = 0
    ids[1, 7:] = pad
    return ids, mask


def write_model_dir(name, model, output_name, exact=contextlib.nullcontext):
    out = os.path.join(MODELS, name)
    os.makedirs(out, exist_ok=True)
    model.eval()
    ids, mask = inputs(model.config.vocab_size, model.config.pad_token_id, name)
    with torch.no_grad():
        f32 = getattr(model(input_ids=ids, attention_mask=mask), output_name)
        m64 = model.to(torch.float64)
        with exact():
            f64 = getattr(m64(input_ids=ids, attention_mask=mask), output_name)
        model.to(torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for fn in ("config.json", "model.safetensors"):
            os.replace(os.path.join(tmp, fn), os.path.join(out, fn))
    ref = {}
    tok_path = os.path.join(out, "tokenizer.json")
    if os.path.exists(tok_path):
        # Texts through the directory's tokenizer, padded to the longest with id 0: what
        # `tensile classify` must reproduce.
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(tok_path)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        texts = ["w5 w17 w42 w99", "w8 w9", "w60 unknown w61"]
        enc = tok.encode_batch(texts)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([e.ids for e in enc]), attention_mask=torch.tensor([e.attention_mask for e in enc])).logits
        ref.update(texts=texts, text_ids=[e.ids for e in enc], text_logits_f32=logits.tolist())
    ref.update({
        "generator": "tools/golden/modernbert.py",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "architecture": type(model).__name__,
        "output_name": output_name,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "shape": list(f32.shape),
        "output_f32": f32.tolist(),
        "output_f64": f64.tolist(),
    })
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name:30s} {type(model).__name__:38s} {output_name} {tuple(f32.shape)} |f32-f64| {(f32.double() - f64).abs().max():.2e}")


def write_tokenizer(name, vocab_size):
    """A word-level tokenizer.json for the classification directories: `[PAD]` 0, `[CLS]` 1,
    `[SEP]` 2, `[UNK]` 3 and the words `w4` … `w{vocab_size - 1}`, split on whitespace, each
    text wrapped as `[CLS] text [SEP]`."""
    vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3}
    vocab.update({f"w{i}": i for i in range(4, vocab_size)})
    special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
               for t, i in list(vocab.items())[:4]]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    with open(os.path.join(MODELS, name, "tokenizer.json"), "w") as f:
        json.dump(tok, f, indent=1)
        f.write("\n")


def model_dirs():
    small = dict(BASE, hidden_size=32, num_attention_heads=2, intermediate_size=48, local_attention=6, global_attn_every_n_layers=2, vocab_size=100)
    config = hf_config(small, 3)
    write_model_dir("tiny-modernbert", seeded_model(ModernBertModel(config), "tiny-modernbert"), "last_hidden_state", float64_exact)
    for name in ("tiny-modernbert-cls", "tiny-bert-cls"):
        os.makedirs(os.path.join(MODELS, name), exist_ok=True)
        write_tokenizer(name, 100)
    cls_config = hf_config(dict(small, classifier_pooling="mean", norm_bias=True, classifier_bias=True), 3)
    cls_config.num_labels = 3
    cls_config.id2label = {0: "negative", 1: "neutral", 2: "positive"}
    cls_config.label2id = {v: k for k, v in cls_config.id2label.items()}
    model = seeded_model(ModernBertForSequenceClassification(cls_config), "tiny-modernbert-cls")
    write_model_dir("tiny-modernbert-cls", model, "logits", float64_exact)
    bert = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                      pad_token_id=0, num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    bert._attn_implementation = "eager"
    write_model_dir("tiny-bert-cls", seeded_model(BertForSequenceClassification(bert), "tiny-bert-cls"), "logits")


def main() -> int:
    module_cases()
    head_cases()
    pooling_cases()
    model_dirs()
    return 0


if __name__ == "__main__":
    sys.exit(main())

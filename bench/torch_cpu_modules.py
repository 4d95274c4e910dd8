"""PyTorch's side of bench/cpu_modules.sh: the median forward time of each block of
bench/cpu_modules.toml, as transformers builds it (sdpa attention), f32, 2 threads, no grad.

    python bench/torch_cpu_modules.py OUT.json [CASE ...]

Each case is timed after warm-up runs, as a median of repeated forwards; the shell script
alternates rounds of this and of tensile, so both sides see the same machine state.
"""
import json
import statistics
import sys
import time

import torch
from transformers import BertConfig, LlamaConfig
from transformers.models.bert import modeling_bert as mb
from transformers.models.llama import modeling_llama as ml

torch.set_num_threads(2)
torch.manual_seed(0)


def median_ms(fn, warm=3, min_runs=10, budget_s=2.0):
    for _ in range(warm):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def llama(kind, hidden, heads, kv, inter, seq):
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=kv,
                      rope_theta=500000.0, attn_implementation="sdpa")
    x = torch.randn(1, seq, hidden)
    if kind == "attention":
        pe = ml.LlamaRotaryEmbedding(cfg)(x, torch.arange(seq)[None])
        attn = ml.LlamaAttention(cfg, 0).eval()
        return lambda: attn(x, pe, attention_mask=None, is_causal=True)
    if kind == "mlp":
        mlp = ml.LlamaMLP(cfg).eval()
        return lambda: mlp(x)
    norm = ml.LlamaRMSNorm(hidden).eval()
    return lambda: norm(x)


CASES = {}
for hidden, heads, kv, inter, seq in [(4096, 32, 8, 14336, 128), (1024, 16, 16, 2816, 512), (256, 8, 2, 688, 64)]:
    for kind in ["attention", "mlp", "rmsnorm"]:
        CASES[f"llama_{kind}_h{hidden}_s{seq}"] = (lambda k=kind, a=(hidden, heads, kv, inter, seq): llama(k, *a))


def bert_layer():
    cfg = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536, attn_implementation="sdpa")
    layer = mb.BertLayer(cfg).eval()
    x = torch.randn(32, 128, 384)
    return lambda: layer(x)


CASES["bert_layer_minilm_b32_s128"] = bert_layer

if __name__ == "__main__":
    out, names = sys.argv[1], sys.argv[2:] or list(CASES)
    res = {}
    with torch.no_grad():
        for name in names:
            res[name] = median_ms(CASES[name]())
    json.dump(res, open(out, "w"), indent=1)

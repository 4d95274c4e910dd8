#!/usr/bin/env python3
"""Throughput of the HF `tokenizers` library on a text corpus: a reference for tensile-foundry.

Measures, in one run:
  (a) training a byte-level BPE tokenizer (ByteLevel pre-tokenizer, add_prefix_space=False;
      ByteLevel decoder; BpeTrainer vocab_size=4096, special tokens <pad> <s> </s> <unk>,
      initial_alphabet=ByteLevel.alphabet()) on all corpus files: MB/s = corpus MB / seconds;
  (b) encoding every document with `encode_batch` using that tokenizer: MB/s = UTF-8 bytes of
      the documents (without the "%" separator lines) / seconds.
Both are the best of --repeat runs (default 3), in one process per thread setting.

Documents are the fortune entries: the text between lines consisting only of "%".
Each measurement runs in a fresh child process, once per thread setting:
  default            (rayon uses all cores; TOKENIZERS_PARALLELISM unset)
  RAYON_NUM_THREADS=1 (the env var rayon reads; tokenizers' parallel code path on 1 thread)
  TOKENIZERS_PARALLELISM=false (tokenizers' serial code path)

Corpus: every regular file in the directory except `*.dat` (strfile indexes), `*.u8`
(UTF-8 duplicates in some fortune packages), dotfiles and `SOURCE` (where the files came from).
MB = 10^6 bytes of the raw files.

Usage:
    python bench/tokenizers_throughput.py [CORPUS_DIR] [--repeat N] [--vocab-size N]
CORPUS_DIR defaults to test-data/fortunes (relative to the repository root).

Python: the interpreter running the script is used if it can import `tokenizers`. Set
PYTHON=/path/to/python to run the measurement with another interpreter instead. If neither
has `tokenizers`, a venv is created at target/bench-venv-tokenizers and `tokenizers` is
pip-installed into it (needs network once).

Output: a markdown table, then one line starting with `JSON ` holding every number.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(REPO, "test-data", "fortunes")
VENV = os.path.join(REPO, "target", "bench-venv-tokenizers")

MODES = [
    ("default", {}),
    ("RAYON_NUM_THREADS=1", {"RAYON_NUM_THREADS": "1"}),
    ("TOKENIZERS_PARALLELISM=false", {"TOKENIZERS_PARALLELISM": "false"}),
]


# ---------------------------------------------------------------------------------------------
# interpreter selection


def has_tokenizers(python):
    r = subprocess.run([python, "-c", "import tokenizers"], capture_output=True)
    return r.returncode == 0


def pick_python():
    override = os.environ.get("PYTHON")
    if override:
        if not has_tokenizers(override):
            sys.exit(f"PYTHON={override} cannot import tokenizers")
        return override
    if has_tokenizers(sys.executable):
        return sys.executable
    venv_py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(venv_py):
        print(f"tokenizers not importable; creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    if not has_tokenizers(venv_py):
        subprocess.run([venv_py, "-m", "pip", "install", "-q", "tokenizers"], check=True)
    return venv_py


# ---------------------------------------------------------------------------------------------
# corpus


def corpus_files(corpus_dir):
    files = []
    for name in sorted(os.listdir(corpus_dir)):
        path = os.path.join(corpus_dir, name)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        if name.startswith(".") or name.endswith((".dat", ".u8")) or name == "SOURCE":
            continue
        files.append(path)
    if not files:
        sys.exit(f"no corpus files in {corpus_dir}")
    return files


def documents(files):
    docs = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            cur = []
            for line in f:
                if line.rstrip("\r\n") == "%":
                    if cur:
                        docs.append("".join(cur))
                    cur = []
                else:
                    cur.append(line)
            if cur:
                docs.append("".join(cur))
    return docs


# ---------------------------------------------------------------------------------------------
# measurement (child process)


def measure(corpus_dir, repeat, vocab_size):
    import tokenizers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    files = corpus_files(corpus_dir)
    corpus_bytes = sum(os.path.getsize(p) for p in files)
    docs = documents(files)
    doc_bytes = sum(len(d.encode("utf-8")) for d in docs)

    train_s = None
    for _ in range(repeat):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        t0 = time.perf_counter()
        tok.train(files, trainer)  # tokenizers reads the files itself, line by line
        dt = time.perf_counter() - t0
        train_s = dt if train_s is None else min(train_s, dt)

    best = None
    n_tokens = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        enc = tok.encode_batch(docs)
        dt = time.perf_counter() - t0
        n_tokens = sum(len(e.ids) for e in enc)
        best = dt if best is None else min(best, dt)

    # sanity: byte-level BPE round-trips (up to the errors="replace" decoding of the files)
    sample = docs[: min(50, len(docs))]
    assert all(tok.decode(e.ids) == d for e, d in zip(tok.encode_batch(sample), sample))

    return {
        "tokenizers_version": tokenizers.__version__,
        "files": len(files),
        "corpus_bytes": corpus_bytes,
        "documents": len(docs),
        "document_bytes": doc_bytes,
        "vocab_size": tok.get_vocab_size(),
        "train_s": train_s,
        "train_mb_s": corpus_bytes / 1e6 / train_s,
        "encode_s": best,
        "encode_mb_s": doc_bytes / 1e6 / best,
        "tokens": n_tokens,
        "encode_tokens_per_s": n_tokens / best,
        "bytes_per_token": doc_bytes / n_tokens,
    }


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", nargs="?", default=DEFAULT_CORPUS)
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of training and of encode_batch (best kept)")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(measure(args.corpus, args.repeat, args.vocab_size)))
        return

    python = pick_python()
    results = {}
    for label, extra in MODES:
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS", "TOKENIZERS_PARALLELISM")}
        env.update(extra)
        cmd = [python, os.path.abspath(__file__), args.corpus, "--child",
               "--repeat", str(args.repeat), "--vocab-size", str(args.vocab_size)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])

    first = next(iter(results.values()))
    print(f"corpus: {args.corpus}: {first['files']} files, {first['corpus_bytes'] / 1e6:.2f} MB, "
          f"{first['documents']} documents ({first['document_bytes'] / 1e6:.2f} MB); "
          f"tokenizers {first['tokenizers_version']}; {os.cpu_count()} CPUs; "
          f"byte-level BPE vocab {first['vocab_size']}, {first['bytes_per_token']:.2f} bytes/token")
    print()
    print("| threads | train s | train MB/s | encode_batch s | encode MB/s | encode Mtok/s |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['train_s']:.2f} | {r['train_mb_s']:.2f} | {r['encode_s']:.3f} "
              f"| {r['encode_mb_s']:.2f} | {r['encode_tokens_per_s'] / 1e6:.2f} |")
    print()
    print("JSON " + json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "corpus": os.path.abspath(args.corpus),
        "results": results,
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Regenerate the SentencePiece test fixtures in this directory.

Trains two tiny unigram models on ../tiny_corpus/*.txt with the `sentencepiece` Python
package and writes, next to each `<name>.model`, a `<name>.json` with the trainer settings,
the full piece table, the special ids, reference encode/decode outputs and notes on the proto
layout for the Rust parser.

    pip install sentencepiece protobuf
    python make_spm.py

Training is run single-threaded with a fixed seed-ish setup; outputs should be identical for
the same sentencepiece version (recorded in the JSON).
"""
import glob
import io
import json
import os
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
# Relative paths: TrainerSpec.input / model_prefix are stored in the .model file verbatim.
CORPUS = sorted(glob.glob(os.path.join("..", "tiny_corpus", "*.txt"), root_dir=HERE))

TEST_STRINGS = [
    "Hello world",
    "  leading and trailing  ",
    "  two  spaces",
    "2024-12-01",
    "café Straße",
    "Ω",
    "",
    "naïve 日本 bees",
    "ｆｕｌｌｗｉｄｔｈ ①",  # changes under NFKC, identity keeps it
    "line\nbreak\ttab",
]

BASE = dict(
    model_type="unigram",
    vocab_size=300,
    character_coverage=1.0,
    add_dummy_prefix=True,
    num_threads=1,
    # defaults spelled out so the JSON documents them:
    remove_extra_whitespaces=True,
    split_digits=False,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=-1,
)

MODELS = {
    "unigram": dict(BASE, normalization_rule_name="identity", byte_fallback=False),
    # byte_fallback adds 256 <0xNN> pieces and character_coverage=1.0 makes every corpus
    # character (73) a required piece: 3 + 256 + 73 = 332 > 300, so this one needs a bigger vocab.
    "unigram_nfkc": dict(BASE, normalization_rule_name="nmt_nfkc", byte_fallback=True, vocab_size=400),
}

TYPE_NAMES = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}


def _default(f):
    if f.type == 11 or f.is_repeated:  # message or repeated
        return None
    v = f.default_value
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if f.type == 14:  # enum: give the name too
        return f.enum_type.values_by_number[v].name
    return v


def field_numbers():
    """Field numbers straight from the installed package's descriptors."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except Exception as e:  # protobuf missing
        return {"error": f"sentencepiece_model_pb2 not importable: {e}"}, None
    out = {}
    for name, msg in [
        ("ModelProto", pb.ModelProto),
        ("ModelProto.SentencePiece", pb.ModelProto.SentencePiece),
        ("TrainerSpec", pb.TrainerSpec),
        ("NormalizerSpec", pb.NormalizerSpec),
    ]:
        d = msg.DESCRIPTOR
        out[name] = {
            f.name: {
                "number": f.number,
                "type": f.type,  # FieldDescriptor.TYPE_* (2=float, 5=int32, 8=bool, 9=string, 11=message, 12=bytes, 14=enum)
                "default": _default(f),
            }
            for f in d.fields
        }
    out["ModelProto.SentencePiece.Type"] = {
        v.name: v.number for v in pb.ModelProto.SentencePiece.Type.DESCRIPTOR.values
    }
    out["TrainerSpec.ModelType"] = {v.name: v.number for v in pb.TrainerSpec.ModelType.DESCRIPTOR.values}
    return out, pb


def main():
    os.chdir(HERE)
    assert len(CORPUS) == 3, CORPUS
    fields, pb = field_numbers()
    for name, settings in MODELS.items():
        prefix = name
        spm.SentencePieceTrainer.train(
            input=",".join(CORPUS), model_prefix=prefix, minloglevel=2, **settings
        )
        os.remove(prefix + ".vocab")
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        pieces = [
            {
                "id": i,
                "piece": sp.id_to_piece(i),
                "score": sp.get_score(i),
                "type": "UNKNOWN" if sp.is_unknown(i) else "CONTROL" if sp.is_control(i)
                else "BYTE" if sp.is_byte(i) else "UNUSED" if sp.is_unused(i) else "NORMAL_OR_USER_DEFINED",
            }
            for i in range(sp.get_piece_size())
        ]
        proto_info = {}
        if pb is not None:
            m = pb.ModelProto()
            m.ParseFromString(open(prefix + ".model", "rb").read())
            for p, rec in zip(m.pieces, pieces):
                rec["type"] = TYPE_NAMES[p.type]
                if p.HasField("type"):
                    assert p.type != 1
                else:
                    assert rec["type"] == "NORMAL"
            ns = m.normalizer_spec
            proto_info = {
                "normalizer_spec": {
                    "name": ns.name,
                    "add_dummy_prefix": ns.add_dummy_prefix,
                    "remove_extra_whitespaces": ns.remove_extra_whitespaces,
                    "escape_whitespaces": ns.escape_whitespaces,
                    "precompiled_charsmap_len": len(ns.precompiled_charsmap),
                    "fields_present": [f.name for f, _ in ns.ListFields()],
                },
                "denormalizer_spec_present": m.HasField("denormalizer_spec"),
                "denormalizer_spec": {
                    "name": m.denormalizer_spec.name,
                    "precompiled_charsmap_len": len(m.denormalizer_spec.precompiled_charsmap),
                    "fields_present": [f.name for f, _ in m.denormalizer_spec.ListFields()],
                },
                "trainer_spec": {
                    "model_type": m.trainer_spec.model_type,
                    "byte_fallback": m.trainer_spec.byte_fallback,
                    "vocab_size": m.trainer_spec.vocab_size,
                    "unk_id": m.trainer_spec.unk_id,
                    "bos_id": m.trainer_spec.bos_id,
                    "eos_id": m.trainer_spec.eos_id,
                    "pad_id": m.trainer_spec.pad_id,
                    "unk_surface": m.trainer_spec.unk_surface,
                    "fields_present": [f.name for f, _ in m.trainer_spec.ListFields()],
                },
                "model_file_bytes": os.path.getsize(prefix + ".model"),
            }
        cases = []
        for text in TEST_STRINGS:
            ids = sp.encode(text, out_type=int)
            cases.append(
                {
                    "text": text,
                    "ids": ids,
                    "pieces": sp.encode(text, out_type=str),
                    "decoded": sp.decode(ids),
                    "roundtrip_exact": sp.decode(ids) == text,
                }
            )
        doc = {
            "sentencepiece_version": spm.__version__,
            "corpus": CORPUS,
            "trainer_settings": settings,
            "vocab_size": sp.get_piece_size(),
            "special_ids": {
                "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(),
            },
            "proto": proto_info,
            "cases": cases,
            "notes": NOTES,
            "proto_fields": fields,
            "pieces": pieces,
        }
        # One piece per line ([id, piece, score, type]) keeps the file diffable and small.
        doc["pieces_format"] = "[id, piece, score, type]"
        doc["pieces"] = ["@@%d@@" % i for i in range(len(pieces))]
        text = json.dumps(doc, ensure_ascii=False, indent=1)
        for i, r in enumerate(pieces):
            row = [r["id"], r["piece"], r["score"], r["type"]]
            text = text.replace('"@@%d@@"' % i, json.dumps(row, ensure_ascii=False), 1)
        with io.open(prefix + ".json", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(name, sp.get_piece_size(), os.path.getsize(prefix + ".model"), "bytes")


NOTES = [
    "Field numbers below are from sentencepiece_model_pb2 descriptors of the installed package "
    "(see proto_fields for all of them, with their proto2 defaults).",
    "ModelProto: pieces=1 (repeated SentencePiece), trainer_spec=2, normalizer_spec=3, "
    "denormalizer_spec=5 (absent in both models here). Serialized in field order: all pieces first, "
    "then trainer_spec, then normalizer_spec.",
    "ModelProto.SentencePiece: piece=1 (string), score=2 (float, wire type 5 = 4-byte little-endian "
    "fixed32, NOT a varint), type=3 (enum varint). type is OMITTED for NORMAL pieces (proto2 default "
    "NORMAL=1); it is written for UNKNOWN=2, CONTROL=3, BYTE=6 (also USER_DEFINED=4, UNUSED=5).",
    "TrainerSpec: model_type=3 (UNIGRAM=1, BPE=2, WORD=3, CHAR=4), vocab_size=4, byte_fallback=35, "
    "unk_id=40, bos_id=41, eos_id=42, pad_id=43, unk_piece=45, bos_piece=46, eos_piece=47, "
    "pad_piece=48, unk_surface=44 (default ' \u2047 '), treat_whitespace_as_suffix=24, "
    "split_digits=25, character_coverage=10 (float).",
    "pad_id=-1 is an int32 varint: it is stored as the 10-byte varint 0xFFFFFFFFFFFFFFFF01 "
    "(decoded u64 18446744073709551615); a parser must cast u64 -> i64 -> i32.",
    "TrainerSpec.input (1, repeated string) and model_prefix (2) hold the paths given at training "
    "time (relative here); ignore them.",
    "NormalizerSpec: name=1 (string), precompiled_charsmap=2 (bytes), add_dummy_prefix=3 (bool), "
    "remove_extra_whitespaces=4 (bool), escape_whitespaces=5 (bool), normalization_rule_tsv=6. "
    "In these files fields 1,2,3,4 are present and escape_whitespaces (5) is ABSENT: apply the proto2 "
    "defaults add_dummy_prefix=true, remove_extra_whitespaces=true, escape_whitespaces=true.",
    "identity: precompiled_charsmap is present but empty (0 bytes). nmt_nfkc: precompiled_charsmap "
    "is ~240 KB (this is why unigram_nfkc.model is ~246 KB; the pieces are only a few KB). Its layout: "
    "u32 little-endian trie size in bytes (179200 here), then that many bytes of a darts-clone "
    "double-array trie (u32 units), then a blob of NUL-terminated replacement strings indexed by the "
    "trie values. Matching is longest-prefix over UTF-8 bytes; unmatched chars pass through.",
    "remove_extra_whitespaces=true (applied with the identity rule too): leading and trailing spaces are "
    "dropped and internal runs of spaces collapse to one, so '  two  spaces' normalizes to 'two spaces', "
    "then add_dummy_prefix + escape_whitespaces give '\u2581two\u2581spaces'; decode gives "
    "'two spaces' (not the input). Same for '  leading and trailing  ' -> 'leading and trailing'.",
    "identity does not touch '\n' or '\t': they are not in the vocab (training is line-based, "
    "so '\n' never occurs in training sentences) and become <unk> in unigram.model. nmt_nfkc maps "
    "them (and other control/whitespace chars) to ' ' before the whitespace cleanup.",
    "Unknown characters: consecutive characters not in the vocab merge into ONE <unk> id "
    "(e.g. the 9 fullwidth letters -> [0]); sp.decode renders each <unk> id as unk_surface ' \u2047 ' "
    "(space, U+2047, space).",
    "With byte_fallback=true, a char not in the vocab becomes its UTF-8 bytes as <0xNN> pieces "
    "(ids 3..258 = bytes 0x00..0xFF in order, type BYTE, score 0); 'Ω' -> ['\u2581', '<0xCE>', '<0xA9>'] "
    "and decodes back to 'Ω'. vocab_size had to be 400 for this model: 3 specials + 256 bytes + 73 "
    "required corpus chars (character_coverage=1.0) = 332 > 300.",
    "Piece order: <unk>=0, <s>=1, </s>=2, then BYTE pieces (if byte_fallback), then NORMAL pieces by "
    "descending score (log-probabilities). CONTROL/UNKNOWN/BYTE scores are 0.0. sp.encode adds no "
    "<s>/</s>.",
    "Decoding: pieces are concatenated, U+2581 is turned back into ' ', and the one leading space "
    "produced by add_dummy_prefix is removed from the start of the output.",
    "The 'Hello world' case starts with the lone piece '\u2581' because '\u2581H' is not a piece: "
    "the dummy prefix is an ordinary piece to the Viterbi segmentation.",
]


if __name__ == "__main__":
    sys.exit(main())

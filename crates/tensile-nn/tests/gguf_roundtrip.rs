//! A seeded Llama written as GGUF by the library's own quantizer (Q/K rows interleaved as
//! llama.cpp lays them out) and read back: the logits follow the dense model's to the
//! format's accuracy, the byte-level tokenizer round-trips any text, and broken files are
//! refused with one line naming the problem.

use candle_core::{DType, Device, Module, Tensor};
use std::path::Path;
use tensile_nn::generate::{generate, Sampling};
use tensile_nn::gguf::{load_gguf, save_gguf, GgufVocabSpec};
use tensile_nn::init::{random_ids, SeededInit};
use tensile_nn::llama::{Llama, LlamaConfig};
use tensile_nn::quant::QuantFormat;

fn cfg(tied: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 260,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 64,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        tie_word_embeddings: tied,
        ..LlamaConfig::default()
    }
}

fn write(dir: &Path, tied: bool, format: &str) -> (Llama, std::path::PathBuf) {
    let model = Llama::new(&cfg(tied), SeededInit::var_builder(3, DType::F32, &Device::Cpu)).unwrap();
    let path = dir.join(format!("tiny-{format}-{tied}.gguf"));
    save_gguf(&model, &GgufVocabSpec::byte_level(260).unwrap(), format.parse().unwrap(), "tiny", &path).unwrap();
    (model, path)
}

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.flatten_all().unwrap().to_dtype(DType::F64).unwrap(), b.flatten_all().unwrap().to_dtype(DType::F64).unwrap());
    let dot = (&a * &b).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let n = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    dot / (n(&a) * n(&b))
}

#[test]
fn a_written_model_reads_back_with_its_logits() {
    let dir = tempfile::tempdir().unwrap();
    let ids = random_ids(0, "ids", (2, 9), 256, &Device::Cpu).unwrap();
    // Against the dense model it came from: a random model has no structure to absorb the
    // rounding, so its logits move more than a trained model's (SmolLM2's Q4_1 keeps a
    // cosine of 0.998 with its own dequantized weights): about 0.9996 for 8 bits, 0.95 for 4.
    for (tied, format, min_cos) in [(false, "q8_0", 0.999), (true, "q8_0", 0.999), (false, "q4_0", 0.9), (false, "q4_1", 0.9)] {
        let (dense, path) = write(dir.path(), tied, format);
        let m = load_gguf(&path, &Device::Cpu).unwrap();
        assert_eq!(m.tied_embeddings, tied);
        assert_eq!(m.config.kv_heads(), 2);
        let c = cosine(&m.model.forward(&ids).unwrap(), &dense.forward(&ids).unwrap());
        println!("{format} tied={tied}: cosine {c:.6}");
        assert!(c >= min_cos, "{format} tied={tied}: cosine {c}");
        // The projections stay quantized in the file's format.
        let q = tensile_nn::linears(&m.model).into_iter().find(|(p, _)| p.ends_with("q_proj")).unwrap().1;
        assert_eq!(q.quant_format(), Some(format.parse::<QuantFormat>().unwrap()));
    }
}

#[test]
fn unpermuted_rows_matter() {
    // Reading Q/K rows in the file's interleaved order would rotate the wrong pairs: the
    // dequantized q_proj must equal the dense one row for row, not a permutation of it.
    let dir = tempfile::tempdir().unwrap();
    let (dense, path) = write(dir.path(), false, "q8_0");
    let m = load_gguf(&path, &Device::Cpu).unwrap();
    let get = |model: &Llama| tensile_nn::linears(model).into_iter().find(|(p, _)| p == "model.layers.1.self_attn.k_proj").unwrap().1.weight();
    let (a, b) = (get(&m.model), get(&dense));
    let err = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(err < 0.01 * scale, "k_proj differs by {err} (scale {scale})");
}

#[test]
fn the_byte_level_vocabulary_round_trips_any_text() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = write(dir.path(), false, "q8_0");
    let m = load_gguf(&path, &Device::Cpu).unwrap();
    let text = "héllo wörld, 12 ∑ <|ctl_1|>!";
    let ids = m.vocab.encode(text).unwrap();
    assert!(ids.contains(&257), "the control token is one id: {ids:?}");
    assert_eq!(ids.len(), text.len() - "<|ctl_1|>".len() + 1, "one id per byte, one for the control token");
    assert_eq!(m.vocab.decode(&ids).unwrap(), text);
    assert_eq!((m.vocab.bos, m.vocab.eos, m.vocab.add_bos), (Some(256), Some(257), false));
}

#[test]
fn the_kv_cache_gives_the_logits_of_a_full_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = write(dir.path(), false, "q8_0");
    let m = load_gguf(&path, &Device::Cpu).unwrap();
    let prompt = [5u32, 17, 200, 33];
    let g = generate(&m.model, &prompt, 6, &Sampling::default(), &[], &Device::Cpu).unwrap();
    assert_eq!(g.tokens.len(), 6);
    // Each greedy token is the argmax of a full forward over everything before it.
    let mut seq = prompt.to_vec();
    for &t in &g.tokens {
        let ids = Tensor::new(seq.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let logits = m.model.forward(&ids).unwrap();
        let last = logits.narrow(1, seq.len() - 1, 1).unwrap().flatten_all().unwrap();
        assert_eq!(last.argmax(0).unwrap().to_scalar::<u32>().unwrap(), t);
        seq.push(t);
    }
    let sampled =
        |seed| generate(&m.model, &prompt, 6, &Sampling { temperature: 1.0, top_p: 0.9, seed, ..Sampling::default() }, &[], &Device::Cpu).unwrap().tokens;
    assert_eq!(sampled(7), sampled(7), "a seed replays its draws");
    let err = generate(&m.model, &prompt, 61, &Sampling::default(), &[], &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("exceed the context of 64"), "{err}");
    assert!(generate(&m.model, &[999], 1, &Sampling::default(), &[], &Device::Cpu).unwrap_err().to_string().contains("outside the vocabulary"));
}

/// Replaces the first occurrence of `from` in the file's bytes with `to` (same length).
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn broken_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| -> String {
        let e = load_gguf(p, &Device::Cpu).err().expect("a broken file must not load").to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let (_, good) = write(dir.path(), false, "q8_0");
    let bytes = std::fs::read(&good).unwrap();
    // Truncated: the header parses, a tensor's bytes are missing.
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&cut);
    assert!(e.contains("cut.gguf") && e.contains("bytes"), "{e}");
    // Truncated inside the header.
    std::fs::write(&cut, &bytes[..40]).unwrap();
    assert!(err(&cut).contains("not a readable GGUF file"));
    // Wrong magic.
    let magic = dir.path().join("magic.gguf");
    std::fs::write(&magic, [b"GGML", &bytes[4..]].concat()).unwrap();
    assert!(err(&magic).contains("not a readable GGUF file"));
    // A tensor the model needs is missing (renamed in the header).
    let missing = dir.path().join("missing.gguf");
    std::fs::write(&missing, &bytes).unwrap();
    patch(&missing, b"blk.1.ffn_up.weight", b"blk.1.ffn_xx.weight");
    assert!(err(&missing).contains("missing tensor `blk.1.ffn_up.weight`"));
    // An unsupported tensor type: the type id after `output_norm.weight`'s one dimension.
    let qtype = dir.path().join("qtype.gguf");
    let name = b"output_norm.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 8;
    let mut b = bytes.clone();
    b[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    std::fs::write(&qtype, b).unwrap();
    let e = err(&qtype);
    assert!(e.contains("77"), "{e}");
    // Another architecture.
    let arch = dir.path().join("arch.gguf");
    let mut b = bytes.clone();
    let key = b"general.architecture";
    let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 8;
    b[at..at + 5].copy_from_slice(b"gpt2x");
    std::fs::write(&arch, b).unwrap();
    assert!(err(&arch).contains("general.architecture `gpt2x` is not supported"));
    assert!(err(dir.path()).contains("is a directory"));
}

#[test]
fn each_known_pre_tokenizer_builds_and_an_unknown_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = Llama::new(&cfg(false), SeededInit::var_builder(3, DType::F32, &Device::Cpu)).unwrap();
    let text = "x 12345 y";
    for pre in ["gpt2", "smollm", "llama-bpe"] {
        let path = dir.path().join(format!("{pre}.gguf"));
        let vocab = GgufVocabSpec { pre: pre.into(), ..GgufVocabSpec::byte_level(260).unwrap() };
        save_gguf(&model, &vocab, "q8_0".parse().unwrap(), "tiny", &path).unwrap();
        let m = load_gguf(&path, &Device::Cpu).unwrap();
        let ids = m.vocab.encode(text).unwrap();
        // Without merges every byte is a token, whatever the split: the ids are the bytes.
        assert_eq!(ids.len(), text.len(), "{pre}");
        assert_eq!(m.vocab.decode(&ids).unwrap(), text);
    }
    let path = dir.path().join("odd.gguf");
    let vocab = GgufVocabSpec { pre: "mystery".into(), ..GgufVocabSpec::byte_level(260).unwrap() };
    save_gguf(&model, &vocab, "q8_0".parse().unwrap(), "tiny", &path).unwrap();
    let err = load_gguf(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("tokenizer.ggml.pre `mystery` is not supported"), "{err}");
    // A SentencePiece (`llama`) tokenizer is not a byte-level BPE.
    let path = dir.path().join("spm.gguf");
    save_gguf(&model, &GgufVocabSpec::byte_level(260).unwrap(), "q8_0".parse().unwrap(), "tiny", &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"tokenizer.ggml.model";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 8;
    bytes[at..at + 4].copy_from_slice(b"gpt3");
    std::fs::write(&path, bytes).unwrap();
    assert!(load_gguf(&path, &Device::Cpu).err().unwrap().to_string().contains("tokenizer.ggml.model `gpt3` is not supported"));
}

#[test]
fn writing_needs_a_gguf_format_and_a_matching_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let model = Llama::new(&cfg(false), SeededInit::var_builder(3, DType::F32, &Device::Cpu)).unwrap();
    let path = dir.path().join("x.gguf");
    let vocab = GgufVocabSpec::byte_level(260).unwrap();
    assert!(save_gguf(&model, &vocab, QuantFormat::Int8, "x", &path).unwrap_err().to_string().contains("int8 is not a GGUF format"));
    let small = GgufVocabSpec::byte_level(258).unwrap();
    assert!(save_gguf(&model, &small, "q8_0".parse().unwrap(), "x", &path).unwrap_err().to_string().contains("258 tokens, the model 260"));
    assert!(GgufVocabSpec::byte_level(100).is_err());
    assert!(!path.exists(), "nothing is written on an error");
    // GPT-2's byte stand-ins: printable bytes map to themselves, space and newline above 255.
    use tensile_nn::gguf::byte_char;
    assert_eq!((byte_char(b'a'), byte_char(b' '), byte_char(b'\n'), byte_char(0)), ('a', 'Ġ', 'Ċ', 'Ā'));
}

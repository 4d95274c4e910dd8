//! The end-to-end workflow on real data: all-MiniLM-L6-v2 with a classification head, the head
//! trained with AdamW on Debian's `fortunes` (one file per category), held-out accuracy well
//! above chance, then saved, reloaded (by the library and by `tensile classify`) with the
//! same predictions. Needs `bash tools/fetch-test-data.sh` and `bash tools/fetch-fortunes.sh`
//! (tools/test.sh runs both); without their files it skips, saying why.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tensile_nn::bert::BertConfig;
use tensile_nn::heads::{ClassificationHead, EncoderWithHead, HeadTarget, TaskConfig};
use tensile_nn::inference::{encode, load_tokenizer, Classifier};
use tensile_nn::loss::CrossEntropyLoss;
use tensile_nn::{load_pretrained, save_pretrained, Block, PretrainedModel};

const CATEGORIES: [&str; 5] = ["computers", "science", "love", "politics", "sports"];
/// Per category: the first TRAIN fortunes (after a seeded shuffle) train, the next TEST judge.
const TRAIN: usize = 64;
const TEST: usize = 40;
/// Tokens kept per text.
const MAX_TOKENS: usize = 64;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data"))
}

/// Texts and labels, split into train and test, balanced over the categories.
fn corpus(dir: &Path) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (label, cat) in CATEGORIES.iter().enumerate() {
        let mut items = tensile_nn::corpus::fortunes(&dir.join(cat)).unwrap();
        items.shuffle(&mut tensile_nn::init::rng_for(7, cat));
        assert!(items.len() >= TRAIN + TEST, "{cat}: only {} fortunes", items.len());
        train.extend(items[..TRAIN].iter().map(|t| (t.clone(), label as i64)));
        test.extend(items[TRAIN..TRAIN + TEST].iter().map(|t| (t.clone(), label as i64)));
    }
    (train, test)
}

/// The frozen encoder's last hidden states and masks, in batches of 32, each padded to its
/// longest text (at most [`MAX_TOKENS`]: most fortunes are shorter, and the head reads only
/// `[CLS]`).
fn encode_all(model: &PretrainedModel, tokenizer: &tokenizers::Tokenizer, texts: &[&str]) -> Vec<(Tensor, Tensor)> {
    texts
        .chunks(32)
        .map(|chunk| {
            let (ids, mask) = encode(tokenizer, chunk, &Device::Cpu).unwrap();
            let keep = ids.dim(1).unwrap().min(MAX_TOKENS);
            let (ids, mask) = (ids.narrow(1, 0, keep).unwrap(), mask.narrow(1, 0, keep).unwrap());
            (model.forward(&ids, Some(&mask)).unwrap(), mask)
        })
        .collect()
}

fn texts(set: &[(String, i64)]) -> Vec<&str> {
    set.iter().map(|(t, _)| t.as_str()).collect()
}

fn argmax_rows(logits: &Tensor) -> Vec<usize> {
    logits.argmax(1).unwrap().to_vec1::<u32>().unwrap().into_iter().map(|i| i as usize).collect()
}

#[test]
fn minilm_with_a_trained_head_classifies_fortunes_and_survives_a_round_trip() {
    let (minilm, fortunes) = (data_dir().join("all-MiniLM-L6-v2"), data_dir().join("fortunes"));
    if !minilm.join("model.safetensors").exists() || !fortunes.join("computers").exists() {
        eprintln!("skipping: needs test-data/all-MiniLM-L6-v2 and test-data/fortunes (bash tools/fetch-test-data.sh && bash tools/fetch-fortunes.sh)");
        return;
    }
    let dev = Device::Cpu;
    let encoder = load_pretrained(&minilm, DType::F32, &dev).unwrap();
    assert_eq!(encoder.architecture(), "BertModel");
    let tokenizer = load_tokenizer(&minilm, &encoder).unwrap();
    let (train, test) = corpus(&fortunes);
    let start = std::time::Instant::now();
    let train_hidden = encode_all(&encoder, &tokenizer, &texts(&train));
    let test_hidden = encode_all(&encoder, &tokenizer, &texts(&test));
    let encoded = start.elapsed();

    // The head, as BertForSequenceClassification lays it out: MiniLM's own pooler as the
    // starting point, a seeded classifier; both trainable, the encoder frozen.
    let cfg: BertConfig = serde_json::from_value(encoder.source_config().clone()).unwrap();
    let task = TaskConfig::with_labels(&CATEGORIES);
    let weights = candle_core::safetensors::load(minilm.join("model.safetensors"), &dev).unwrap();
    let varmap = VarMap::new();
    {
        let mut vars = varmap.data().lock().unwrap();
        for p in ["weight", "bias"] {
            let t = weights[&format!("pooler.dense.{p}")].clone();
            vars.insert(format!("bert.pooler.dense.{p}"), candle_core::Var::from_tensor(&t).unwrap());
        }
        let w = (tensile_nn::init::randn(3, "classifier.weight", (CATEGORIES.len(), cfg.hidden_size), DType::F32, &dev).unwrap() * 0.02).unwrap();
        vars.insert("classifier.weight".into(), candle_core::Var::from_tensor(&w).unwrap());
        vars.insert("classifier.bias".into(), candle_core::Var::from_tensor(&Tensor::zeros(CATEGORIES.len(), DType::F32, &dev).unwrap()).unwrap());
    }
    let head = ClassificationHead::bert(&cfg, &task, HeadTarget::Sequence, candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    let mut opt = candle_nn::AdamW::new(varmap.all_vars(), candle_nn::ParamsAdamW { lr: 2e-3, weight_decay: 0.01, ..Default::default() }).unwrap();
    let labels: Vec<i64> = train.iter().map(|(_, l)| *l).collect();
    let loss_fn = CrossEntropyLoss::default();
    let mut order: Vec<usize> = (0..train_hidden.len()).collect();
    let mut first_loss = None;
    let mut last_loss = f64::NAN;
    for epoch in 0..20 {
        order.shuffle(&mut tensile_nn::init::rng_for(epoch, "batches"));
        let mut total = 0.0;
        for &b in &order {
            let (hidden, mask) = &train_hidden[b];
            let targets = &labels[b * 32..(b * 32 + hidden.dim(0).unwrap())];
            let loss = loss_fn.forward(&head.forward_masked(hidden, Some(mask)).unwrap(), targets).unwrap();
            total += loss.to_scalar::<f32>().unwrap() as f64;
            opt.backward_step(&loss).unwrap();
        }
        last_loss = total / order.len() as f64;
        first_loss.get_or_insert(last_loss);
    }
    let first_loss = first_loss.unwrap();
    assert!(last_loss < 0.5 * first_loss, "training did not learn: loss {first_loss:.3} → {last_loss:.3}");

    let predict =
        |head: &ClassificationHead| -> Vec<usize> { test_hidden.iter().flat_map(|(h, m)| argmax_rows(&head.forward_masked(h, Some(m)).unwrap())).collect() };
    let predictions = predict(&head);
    let correct = predictions.iter().zip(&test).filter(|(p, (_, l))| **p as i64 == *l).count();
    let accuracy = correct as f64 / test.len() as f64;
    let chance = 1.0 / CATEGORIES.len() as f64;
    println!(
        "held-out accuracy {accuracy:.3} over {} fortunes (chance {chance:.2}); loss {first_loss:.3} → {last_loss:.3}; encoding {:.1} s, training {:.1} s",
        test.len(),
        encoded.as_secs_f64(),
        (start.elapsed() - encoded).as_secs_f64()
    );
    assert!(accuracy >= 2.5 * chance, "held-out accuracy {accuracy:.3} is not well above chance {chance:.2}");

    // Save the whole model (MiniLM under `bert.`, the trained head at the root) with its
    // tokenizer, and load it back.
    let mut all: HashMap<String, Tensor> = weights.into_iter().filter(|(k, _)| !k.starts_with("pooler.")).map(|(k, t)| (format!("bert.{k}"), t)).collect();
    all.extend(head.parameters());
    let model = EncoderWithHead::bert(&cfg, &task, HeadTarget::Sequence, candle_nn::VarBuilder::from_tensors(all, DType::F32, &dev)).unwrap();
    let out = tempfile::tempdir().unwrap();
    save_pretrained(&PretrainedModel::with_head(model, encoder.source_config().clone()), out.path()).unwrap();
    std::fs::copy(minilm.join("tokenizer.json"), out.path().join("tokenizer.json")).unwrap();

    let reloaded = load_pretrained(out.path(), DType::F32, &dev).unwrap();
    assert_eq!(reloaded.architecture(), "BertForSequenceClassification");
    assert_eq!(reloaded.task().unwrap().labels(), CATEGORIES);
    // The reloaded model runs end to end (encoder and head) on the held-out texts of the first
    // batch; its predictions are the trained head's.
    let sample: Vec<&str> = test.iter().take(32).map(|(t, _)| t.as_str()).collect();
    let (ids, mask) = encode(&tokenizer, &sample, &dev).unwrap();
    let keep = ids.dim(1).unwrap().min(MAX_TOKENS);
    let logits = reloaded.forward(&ids.narrow(1, 0, keep).unwrap(), Some(&mask.narrow(1, 0, keep).unwrap())).unwrap();
    assert_eq!(argmax_rows(&logits), predictions[..32]);

    // And `tensile classify` on the saved directory agrees with them, label for label.
    let few: Vec<&str> = sample.iter().copied().filter(|t| t.split_whitespace().count() < 40).take(6).collect();
    let classifier = Classifier::load(out.path(), DType::F32, &dev).unwrap();
    let in_library: Vec<String> = classifier.classify(&few).unwrap().into_iter().map(|p| p.label).collect();
    let mut args = vec!["classify".to_string(), "--model".into(), out.path().display().to_string(), "--json".into()];
    for t in &few {
        args.extend(["--text".to_string(), t.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    let from_cli: Vec<String> = doc["predictions"].as_array().unwrap().iter().map(|p| p["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(from_cli, in_library);
    for (i, t) in few.iter().enumerate() {
        let j = sample.iter().position(|s| s == t).unwrap();
        assert_eq!(in_library[i], CATEGORIES[predictions[j]], "{t:?}");
    }
}

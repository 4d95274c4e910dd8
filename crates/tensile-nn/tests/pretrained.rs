//! The model factory against transformers: each directory in `tests/models` was written by
//! transformers' own `save_pretrained` (tools/golden/modernbert.py), with the outputs
//! transformers computed for padded inputs of odd length, in float32 and float64-exact.

use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use tensile_nn::{load_pretrained, save_pretrained, PretrainedModel};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("models")
}

struct Reference {
    architecture: String,
    output_name: String,
    ids: Tensor,
    mask: Tensor,
    f32: Vec<f64>,
    f64: Vec<f64>,
    shape: Vec<usize>,
}

fn flat(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
        x => out.push(x.as_f64().unwrap()),
    }
}

fn reference(name: &str) -> Reference {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(models().join(name).join("reference.json")).unwrap()).unwrap();
    let ints = |key: &str| -> Tensor {
        let rows: Vec<Vec<u32>> = serde_json::from_value(v[key].clone()).unwrap();
        Tensor::new(rows, &Device::Cpu).unwrap()
    };
    let (mut f32, mut f64) = (Vec::new(), Vec::new());
    flat(&v["output_f32"], &mut f32);
    flat(&v["output_f64"], &mut f64);
    Reference {
        architecture: v["architecture"].as_str().unwrap().into(),
        output_name: v["output_name"].as_str().unwrap().into(),
        ids: ints("input_ids"),
        mask: ints("attention_mask"),
        f32,
        f64,
        shape: serde_json::from_value(v["shape"].clone()).unwrap(),
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

const DIRS: [&str; 3] = ["tiny-modernbert", "tiny-modernbert-cls", "tiny-bert-cls"];

#[test]
fn every_directory_reproduces_transformers() {
    for name in DIRS {
        let r = reference(name);
        let model = load_pretrained(&models().join(name), DType::F32, &Device::Cpu).unwrap();
        assert_eq!((model.architecture(), model.output_name()), (r.architecture.as_str(), r.output_name.as_str()), "{name}");
        let out = model.forward(&r.ids, Some(&r.mask)).unwrap();
        assert_eq!(out.dims(), r.shape.as_slice(), "{name}");
        let fast = max_diff(&values(&out), &r.f32);
        let twin = max_diff(&values(&model.forward_reference(&r.ids, Some(&r.mask)).unwrap()), &r.f64);
        println!("{name:<22} fast vs transformers f32 {fast:.2e}, twin vs transformers f64 {twin:.2e}");
        assert!(fast <= 1e-4, "{name}: {fast:.3e} from transformers in float32");
        assert!(twin <= 1e-10, "{name}: twin {twin:.3e} from transformers in float64");
    }
}

#[test]
fn padding_changes_no_real_position() {
    // Row 1 holds 7 tokens and 4 pads; alone and unpadded it must give the same outputs.
    for name in ["tiny-modernbert", "tiny-modernbert-cls", "tiny-bert-cls"] {
        let r = reference(name);
        let model = load_pretrained(&models().join(name), DType::F32, &Device::Cpu).unwrap();
        let padded = model.forward(&r.ids, Some(&r.mask)).unwrap().get(1).unwrap();
        let alone = model.forward(&r.ids.get(1).unwrap().narrow(0, 0, 7).unwrap().unsqueeze(0).unwrap(), None).unwrap().get(0).unwrap();
        let padded = if model.output_name() == "last_hidden_state" { padded.narrow(0, 0, 7).unwrap() } else { padded };
        let d = max_diff(&values(&padded), &values(&alone));
        assert!(d < 1e-5, "{name}: padding moved real outputs by {d:.3e}");
    }
}

fn parameters(m: &PretrainedModel) -> Vec<(String, Vec<u8>)> {
    let mut p: Vec<(String, Vec<u8>)> = m
        .block()
        .parameters()
        .into_iter()
        .map(|(n, t)| {
            let bytes = t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect();
            (n, bytes)
        })
        .collect();
    p.sort();
    p
}

#[test]
fn save_then_load_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    for name in DIRS {
        let r = reference(name);
        let model = load_pretrained(&models().join(name), DType::F32, &Device::Cpu).unwrap();
        let dir = tmp.path().join(name);
        save_pretrained(&model, &dir).unwrap();
        let back = load_pretrained(&dir, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(back.architecture(), model.architecture());
        assert_eq!(back.task(), model.task(), "{name}: labels survive");
        assert_eq!(parameters(&back), parameters(&model), "{name}: parameters differ after a round trip");
        let (a, b) = (model.forward(&r.ids, Some(&r.mask)).unwrap(), back.forward(&r.ids, Some(&r.mask)).unwrap());
        assert_eq!(values(&a), values(&b), "{name}: outputs differ after a round trip");
        // Every tensor the checkpoint transformers wrote holds is written back under its name.
        let theirs = candle_core::safetensors::load(models().join(name).join("model.safetensors"), &Device::Cpu).unwrap();
        let ours = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        for (k, t) in &theirs {
            let mine = ours.get(k).unwrap_or_else(|| panic!("{name}: `{k}` not saved"));
            assert_eq!(values(mine), values(t), "{name}: `{k}`");
        }
        // Fields this crate does not read are written back as transformers wrote them.
        let read = |p: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
        let (src, saved) = (read(models().join(name).join("config.json")), read(dir.join("config.json")));
        for key in ["bos_token_id", "eos_token_id", "initializer_range", "id2label", "architectures", "model_type"] {
            if src.get(key).is_some() {
                assert_eq!(saved[key], src[key], "{name}: `{key}`");
            }
        }
        // Saving again writes the same bytes: nothing in the files depends on the run.
        let again = tmp.path().join(format!("{name}-again"));
        save_pretrained(&back, &again).unwrap();
        for f in ["config.json", "model.safetensors"] {
            assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(again.join(f)).unwrap(), "{name}/{f}");
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "{name}: no temporary file is left behind");
    }
}

#[test]
fn dtype_is_chosen_on_load() {
    let name = "tiny-modernbert-cls";
    let r = reference(name);
    for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 0.1), (DType::F16, 0.02)] {
        let model = load_pretrained(&models().join(name), dtype, &Device::Cpu).unwrap();
        assert!(model.block().parameters().iter().all(|(_, t)| t.dtype() == dtype), "{dtype:?}");
        let out = model.forward(&r.ids, Some(&r.mask)).unwrap();
        assert_eq!(out.dtype(), dtype);
        let d = max_diff(&values(&out), &r.f32);
        assert!(d <= tol, "{dtype:?}: {d:.3e} from transformers");
        // What is saved records the dtype, as transformers' `dtype` field.
        let tmp = tempfile::tempdir().unwrap();
        save_pretrained(&model, tmp.path()).unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
        let want = match dtype {
            DType::BF16 => "bfloat16",
            DType::F16 => "float16",
            _ => "float32",
        };
        assert_eq!(cfg["dtype"], want);
    }
}

/// A copy of a model directory with `edit` applied, for the error cases.
fn broken(name: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(models().join(name).join(f), tmp.path().join(f)).unwrap();
    }
    edit(tmp.path());
    tmp
}

fn load_error(dir: &Path) -> String {
    match load_pretrained(dir, DType::F32, &Device::Cpu) {
        Ok(m) => panic!("{} loaded as {}", dir.display(), m.architecture()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn bad_directories_are_one_line_errors_naming_the_file_and_the_field_or_tensor() {
    let name = "tiny-modernbert-cls";
    let missing = broken(name, |d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert!(load_error(missing.path()).contains("config.json"));
    let no_weights = broken(name, |d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    assert!(load_error(no_weights.path()).contains("model.safetensors"));
    let unknown = broken(name, |d| edit_config(d, |v| v["architectures"] = serde_json::json!(["GPT2LMHeadModel"])));
    let e = load_error(unknown.path());
    assert!(e.contains("`architectures`") && e.contains("GPT2LMHeadModel") && e.contains("ModernBertForSequenceClassification"), "{e}");
    let no_type = broken(name, |d| {
        edit_config(d, |v| {
            v.as_object_mut().unwrap().remove("architectures");
            v["model_type"] = "t5".into();
        })
    });
    let e = load_error(no_type.path());
    assert!(e.contains("`model_type`") && e.contains("t5") && e.contains("modernbert"), "{e}");
    let bad_field = broken(name, |d| edit_config(d, |v| v["num_attention_heads"] = 5.into()));
    let e = load_error(bad_field.path());
    assert!(e.contains("config.json") && e.contains("`num_attention_heads`"), "{e}");
    let truncated = broken(name, |d| {
        let p = d.join("model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    let e = load_error(truncated.path());
    assert!(e.contains("model.safetensors"), "{e}");
    let wrong_shape = broken(name, |d| edit_config(d, |v| v["intermediate_size"] = 40.into()));
    let e = load_error(wrong_shape.path());
    assert!(e.contains("model.safetensors") && e.contains("Wi"), "{e}");
    let more_labels = broken(name, |d| {
        edit_config(d, |v| {
            v["id2label"] = serde_json::json!({"0": "a", "1": "b", "2": "c", "3": "d"});
            v["label2id"] = serde_json::json!({"a": 0, "b": 1, "c": 2, "d": 3});
        })
    });
    let e = load_error(more_labels.path());
    assert!(e.contains("classifier"), "{e}");
    for e in [load_error(truncated.path()), load_error(wrong_shape.path()), load_error(unknown.path())] {
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn token_classification_models_save_and_load_as_their_architecture() {
    use tensile_nn::heads::{EncoderWithHead, HeadTarget, TaskConfig};
    let dev = Device::Cpu;
    let task = TaskConfig::with_labels(&["O", "B-PER", "I-PER"]);
    let vb = || tensile_nn::init::SeededInit::var_builder(4, DType::F32, &dev);
    let bert = tensile_nn::bert::BertConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 32,
        ..Default::default()
    };
    let modern = tensile_nn::modernbert::ModernBertConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 24,
        pad_token_id: 0,
        ..Default::default()
    };
    let ids = Tensor::new(&[[1u32, 7, 9, 3], [1, 4, 0, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 0, 0]], &dev).unwrap();
    for (model, arch) in [
        (EncoderWithHead::bert(&bert, &task, HeadTarget::Token, vb()).unwrap(), "BertForTokenClassification"),
        (EncoderWithHead::modernbert(&modern, &task, HeadTarget::Token, vb()).unwrap(), "ModernBertForTokenClassification"),
    ] {
        let model = PretrainedModel::with_head(model, serde_json::json!({"initializer_range": 0.02}));
        assert_eq!(model.architecture(), arch);
        let out = model.forward(&ids, Some(&mask)).unwrap();
        assert_eq!(out.dims(), [2, 4, 3], "{arch}: one prediction per token");
        let twin = model.forward_reference(&ids, Some(&mask)).unwrap();
        assert!(max_diff(&values(&out), &values(&twin)) < 1e-5, "{arch}");
        let tmp = tempfile::tempdir().unwrap();
        save_pretrained(&model, tmp.path()).unwrap();
        let back = load_pretrained(tmp.path(), DType::F32, &dev).unwrap();
        assert_eq!((back.architecture(), back.task().unwrap().labels()), (arch, vec!["O".to_string(), "B-PER".into(), "I-PER".into()]));
        assert_eq!(values(&back.forward(&ids, Some(&mask)).unwrap()), values(&out), "{arch}");
        assert_eq!(back.source_config()["initializer_range"], 0.02);
    }
}

#[test]
fn a_llama_directory_loads_by_model_type_and_takes_right_padding_only() {
    use tensile_nn::Block;
    let dev = Device::Cpu;
    let cfg = tensile_nn::llama::LlamaConfig {
        vocab_size: 40,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        ..Default::default()
    };
    let llama = tensile_nn::llama::Llama::new(&cfg, tensile_nn::init::SeededInit::var_builder(5, DType::F32, &dev)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let params: std::collections::HashMap<String, Tensor> = llama.parameters().into_iter().collect();
    candle_core::safetensors::save(&params, tmp.path().join("model.safetensors")).unwrap();
    // No `architectures`: `model_type` alone picks LlamaForCausalLM.
    let mut config = serde_json::to_value(&cfg).unwrap();
    config["model_type"] = "llama".into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let model = load_pretrained(tmp.path(), DType::F32, &dev).unwrap();
    assert_eq!((model.architecture(), model.output_name(), model.max_positions()), ("LlamaForCausalLM", "logits", cfg.max_position_embeddings));
    let ids = Tensor::new(&[[1u32, 5, 9, 2], [3, 4, 0, 0]], &dev).unwrap();
    let right = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 0, 0]], &dev).unwrap();
    let out = model.forward(&ids, Some(&right)).unwrap();
    assert_eq!(values(&out), values(&candle_core::Module::forward(&llama, &ids).unwrap()), "the mask changes nothing for a causal model");
    assert!(max_diff(&values(&out), &values(&model.forward_reference(&ids, Some(&right)).unwrap())) < 1e-4);
    let left = Tensor::new(&[[1u32, 1, 1, 1], [0, 0, 1, 1]], &dev).unwrap();
    assert!(model.forward(&ids, Some(&left)).unwrap_err().to_string().contains("right padding only"));
    let wrong = Tensor::new(&[[1u32, 1, 1]], &dev).unwrap();
    assert!(model.forward(&ids, Some(&wrong)).unwrap_err().to_string().contains("attention_mask has shape"));
    // Round trip, and the saved config names the architecture.
    let again = tmp.path().join("again");
    save_pretrained(&model, &again).unwrap();
    let back = load_pretrained(&again, DType::F32, &dev).unwrap();
    assert_eq!(values(&back.forward(&ids, None).unwrap()), values(&out));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(again.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["architectures"], serde_json::json!(["LlamaForCausalLM"]));
    // A base BERT named by model_type alone, and `architectures` that is not a list of names.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(tmp.path().join("model.safetensors"), bad.join("model.safetensors")).unwrap();
    for (cfg, needle) in
        [(r#"{"architectures": "LlamaForCausalLM"}"#, "must be a list"), (r#"{"hidden_size": 16}"#, "neither `architectures` nor `model_type`")]
    {
        std::fs::write(bad.join("config.json"), cfg).unwrap();
        let e = load_pretrained(&bad, DType::F32, &dev).err().unwrap().to_string();
        assert!(e.contains(needle) && e.contains("config.json"), "{e}");
    }
}

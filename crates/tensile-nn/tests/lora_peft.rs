//! LoRA against Hugging Face PEFT 0.21 (tools/golden/peft_lora.py): a tiny Llama saved by
//! transformers with three PEFT adapters (q/v with dropout; an rsLoRA adapter whose targets
//! are a regular expression over the MLP; a second q/v adapter), and PEFT's logits for each,
//! merged, disabled and for a weighted combination.

use candle_core::{DType, Device, Module, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensile_nn::lora::{LoraConfig, LoraModel};
use tensile_nn::{load_pretrained, PretrainedModel};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(models().join("tiny-llama/lora_reference.json")).unwrap()).unwrap()
}

fn tensor(v: &serde_json::Value, dtype: DType) -> Tensor {
    let flat: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().flat_map(|c| c.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())))
        .collect();
    Tensor::from_vec(flat, (2, 7, 128), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn ids(r: &serde_json::Value) -> Tensor {
    let flat: Vec<u32> = r["input_ids"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32)).collect();
    Tensor::from_vec(flat, (2, 7), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap()
}

fn base(dtype: DType) -> PretrainedModel {
    load_pretrained(&models().join("tiny-llama"), dtype, &Device::Cpu).unwrap()
}

fn logits(m: &PretrainedModel, ids: &Tensor) -> Tensor {
    m.forward(ids, None).unwrap()
}

/// The fast path in f32 against PEFT in f32, and the float64 twin against PEFT in float64
/// (the fast path's fused norm has no f64 kernel on the CPU).
#[test]
fn peft_adapters_give_pefts_logits_in_f32_and_f64() {
    let r = reference();
    let x = ids(&r);
    {
        let (dtype, suffix, tol) = (DType::F32, "", 2e-4);
        let model = base(dtype);
        assert!(max_diff(&logits(&model, &x), &tensor(&r[format!("base_logits{suffix}")], dtype)) < tol);
        let mut lora = LoraModel::attach(model.block());
        lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
        lora.load_adapter(&models().join("tiny-llama-lora-mlp-rslora"), "beta", &Device::Cpu).unwrap();
        lora.load_adapter(&models().join("tiny-llama-lora-qv2"), "gamma", &Device::Cpu).unwrap();
        assert_eq!(lora.active(), vec!["alpha"], "the first adapter loaded is active");
        for name in ["alpha", "beta", "gamma"] {
            lora.set_adapter(&[name]).unwrap();
            let d = max_diff(&logits(&model, &x), &tensor(&r[format!("{name}_logits{suffix}")], dtype));
            assert!(d < tol, "{name} {dtype:?}: {d}");
            // The reference twin applies the adapter too, in float64.
            let twin = model.forward_reference(&x, None).unwrap();
            assert!(max_diff(&twin, &tensor(&r[format!("{name}_logits_f64")], DType::F64)) < 1e-9);
        }
        assert_eq!(lora.adapter("beta").unwrap().1.len(), 6, "the regex selects gate, up and down in both layers");
        lora.disable_adapters(true);
        assert!(max_diff(&logits(&model, &x), &tensor(&r[format!("disabled_logits{suffix}")], dtype)) < tol);
        lora.disable_adapters(false);
        lora.add_weighted_adapter("combo", &[("alpha", 0.7), ("gamma", 0.3)]).unwrap();
        lora.set_adapter(&["combo"]).unwrap();
        let d = max_diff(&logits(&model, &x), &tensor(&r[format!("combined_logits{suffix}")], dtype));
        assert!(d < tol, "combination {dtype:?}: {d}");
    }
}

#[test]
fn trainable_parameters_are_r_times_in_plus_out_per_target_as_peft_counts() {
    let r = reference();
    let model = base(DType::F32);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
    // q_proj 64 → 64 and v_proj 64 → 32 in two layers at r = 4.
    assert_eq!(lora.trainable_count(), 2 * 4 * ((64 + 64) + (64 + 32)));
    assert_eq!(lora.trainable_count() as u64, r["trainable_parameters"]["alpha"]["trainable"].as_u64().unwrap());
    lora.load_adapter(&models().join("tiny-llama-lora-mlp-rslora"), "beta", &Device::Cpu).unwrap();
    lora.set_adapter(&["beta"]).unwrap();
    assert_eq!(lora.trainable_count() as u64, r["trainable_parameters"]["beta"]["trainable"].as_u64().unwrap());
}

#[test]
fn merged_equals_adapted_and_unmerge_restores_the_base() {
    let x = ids(&reference());
    let model = base(DType::F32);
    let weights = |m: &PretrainedModel| -> BTreeMap<String, Tensor> { m.block().parameters().into_iter().filter(|(n, _)| !n.contains("lora_")).collect() };
    let before = weights(&model);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
    let adapted = logits(&model, &x);
    lora.merge().unwrap();
    let merged = logits(&model, &x);
    assert!(max_diff(&adapted, &merged) < 1e-5, "{}", max_diff(&adapted, &merged));
    let q = "model.layers.0.self_attn.q_proj.weight";
    assert!(max_diff(&weights(&model)[q], &before[q]) > 1e-3, "merging changed the base weight");
    let twice = lora.merge().unwrap_err().to_string();
    assert!(twice.contains("already has alpha merged"), "{twice}");
    lora.unmerge().unwrap();
    for (name, w) in weights(&model) {
        assert!(max_diff(&w, &before[&name]) < 1e-6, "{name}");
    }
    assert!(max_diff(&logits(&model, &x), &adapted) < 1e-5);
    assert!(lora.delete_adapter("alpha").is_ok());
    assert!(lora.delete_adapter("alpha").unwrap_err().to_string().contains("no adapter named `alpha`"));
}

#[test]
fn switching_adapters_keeps_the_base_tensors() {
    let model = base(DType::F32);
    let ids_of = |m: &PretrainedModel| -> Vec<candle_core::TensorId> {
        m.block().parameters().iter().filter(|(n, _)| !n.contains("lora_")).map(|(_, t)| t.id()).collect()
    };
    let before = ids_of(&model);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
    lora.load_adapter(&models().join("tiny-llama-lora-qv2"), "gamma", &Device::Cpu).unwrap();
    for name in ["gamma", "alpha", "gamma"] {
        lora.set_adapter(&[name]).unwrap();
        assert_eq!(ids_of(&model), before, "switching to {name} reloaded or copied a base tensor");
    }
    assert!(lora.set_adapter(&["delta"]).is_err());
}

#[test]
fn a_saved_adapter_has_pefts_names_and_loads_back_to_the_same_logits() {
    let x = ids(&reference());
    let model = base(DType::F32);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-mlp-rslora"), "beta", &Device::Cpu).unwrap();
    let expected = logits(&model, &x);
    let dir = tempfile::tempdir().unwrap();
    lora.save_adapter("beta", dir.path()).unwrap();
    let saved = candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let original = candle_core::safetensors::load(models().join("tiny-llama-lora-mlp-rslora/adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(saved.keys().collect::<std::collections::BTreeSet<_>>(), original.keys().collect());
    assert!(saved.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((cfg["use_rslora"].as_bool(), cfg["task_type"].as_str(), cfg["r"].as_u64()), (Some(true), Some("CAUSAL_LM"), Some(4)));
    let fresh = base(DType::F32);
    LoraModel::attach(fresh.block()).load_adapter(dir.path(), "beta", &Device::Cpu).unwrap();
    assert_eq!(max_diff(&logits(&fresh, &x), &expected), 0.0);
}

#[test]
fn bad_adapter_directories_are_named_errors() {
    let model = base(DType::F32);
    let dir = tempfile::tempdir().unwrap();
    let mut lora = LoraModel::attach(model.block());
    let err = lora.load_adapter(dir.path(), "a", &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("adapter_config.json"), "{err}");
    // A config whose targets the model lacks.
    let mut cfg = LoraConfig::new(2, 4.0, &["c_attn"]);
    std::fs::write(dir.path().join("adapter_config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    std::fs::copy(models().join("tiny-llama-lora-qv/adapter_model.safetensors"), dir.path().join("adapter_model.safetensors")).unwrap();
    let err = lora.load_adapter(dir.path(), "a", &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("match no linear layer"), "{err}");
    // The right targets with the wrong rank: the shapes are named.
    cfg = LoraConfig::new(2, 4.0, &["q_proj", "v_proj"]);
    std::fs::write(dir.path().join("adapter_config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let err = lora.load_adapter(dir.path(), "a", &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("should be (2, 64)"), "{err}");
    // Weights for modules the targets do not select.
    cfg = LoraConfig::new(4, 4.0, &["q_proj"]);
    std::fs::write(dir.path().join("adapter_config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let err = lora.load_adapter(dir.path(), "a", &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("v_proj") && err.contains("do not select"), "{err}");
    assert!(lora.adapter_names().is_empty(), "a failed load leaves nothing behind");
}

/// Training facts: only the adapters get gradients, and k micro-batches accumulate to one
/// k-times batch. Gradients go through the float64 twin, which is made of differentiable
/// operations (the fast path's fused softmax and norms have no backward in candle).
#[test]
fn only_lora_parameters_get_gradients_and_micro_batches_accumulate_to_the_batch() {
    let r = reference();
    let x = ids(&r);
    let model = base(DType::F32);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
    let vars = lora.trainable_vars().unwrap();
    assert_eq!(vars.len(), 8, "A and B of q_proj and v_proj in two layers");
    let loss = |ids: &Tensor| -> Tensor {
        let out = model.forward_reference(ids, None).unwrap();
        // Mean over the rows of the batch, so a batch's gradient is its rows' average.
        (out.sqr().unwrap().sum_all().unwrap() / ids.dim(0).unwrap() as f64).unwrap()
    };
    let grads = loss(&x).backward().unwrap();
    for (name, v) in &vars {
        assert!(grads.get(v.as_tensor()).is_some(), "no gradient for {name}");
    }
    for (name, t) in model.block().parameters() {
        if !name.contains("lora_") {
            assert!(grads.get(&t).is_none(), "the frozen {name} got a gradient");
        }
    }
    let mut accumulated: Vec<Tensor> = vars.iter().map(|(_, v)| v.zeros_like().unwrap().to_dtype(DType::F64).unwrap()).collect();
    for row in 0..2 {
        let g = loss(&x.narrow(0, row, 1).unwrap()).backward().unwrap();
        for (acc, (_, v)) in accumulated.iter_mut().zip(&vars) {
            *acc = (&*acc + (g.get(v.as_tensor()).unwrap().to_dtype(DType::F64).unwrap() / 2.0).unwrap()).unwrap();
        }
    }
    for (acc, (name, v)) in accumulated.iter().zip(&vars) {
        let full = grads.get(v.as_tensor()).unwrap();
        let d = max_diff(acc, full);
        let scale = full.abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
        assert!(d <= 1e-6 * scale.max(1.0), "{name}: {d} (scale {scale})");
    }
}

#[test]
fn dropout_is_active_in_training_only() {
    let x = ids(&reference());
    let model = base(DType::F32);
    let mut lora = LoraModel::attach(model.block());
    lora.load_adapter(&models().join("tiny-llama-lora-qv"), "alpha", &Device::Cpu).unwrap();
    let eval = logits(&model, &x);
    lora.train(true, 3);
    let (a, b) = (logits(&model, &x), logits(&model, &x));
    assert!(max_diff(&a, &eval) > 1e-3 && max_diff(&a, &b) > 1e-3, "dropout 0.1 changes each training forward");
    lora.train(false, 3);
    assert_eq!(max_diff(&logits(&model, &x), &eval), 0.0);
}

#[test]
fn a_new_adapter_starts_as_the_identity_and_targets_globs() {
    let x = ids(&reference());
    let model = base(DType::F32);
    let before = logits(&model, &x);
    let mut lora = LoraModel::attach(model.block());
    lora.add_adapter("fresh", &LoraConfig::new(8, 16.0, &["*.mlp.*", "o_proj"]), 0).unwrap();
    assert_eq!(lora.adapter("fresh").unwrap().1.len(), 8, "gate, up, down and o_proj in two layers");
    assert_eq!(max_diff(&logits(&model, &x), &before), 0.0, "B starts at zero");
    let layer = &model.block().parameters().into_iter().find(|(n, _)| n == "model.layers.0.mlp.up_proj.lora_A.fresh.weight").unwrap().1;
    let bound = 1.0 / 64f64.sqrt();
    let max = layer.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!(max <= bound && max > bound * 0.8, "A is uniform in ±1/√in: max {max}");
    let linear = tensile_nn::linears(model.block()).into_iter().find(|(p, _)| p == "model.layers.0.mlp.up_proj").unwrap().1;
    assert!(linear.forward(&Tensor::zeros((1, 64), DType::F32, &Device::Cpu).unwrap()).is_ok());
}

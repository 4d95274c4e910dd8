//! `LoraModel` on a seeded Llama owned by it: the states that refuse an operation, each with a
//! message naming what is wrong, and the `Block` view the test runner sees.

use candle_core::{DType, Device, Module, Tensor};
use std::collections::BTreeMap;
use tensile_nn::init::{random_ids, SeededInit};
use tensile_nn::llama::{Llama, LlamaConfig};
use tensile_nn::lora::{LoraConfig, LoraModel, TargetModules};
use tensile_nn::{Block, BlockKind};

fn llama() -> Llama {
    let cfg = LlamaConfig {
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 32,
        ..LlamaConfig::default()
    };
    Llama::new(&cfg, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap()
}

fn random_b(r: usize) -> LoraConfig {
    let mut c = LoraConfig::new(r, 2.0 * r as f64, &["q_proj", "v_proj"]);
    c.extra.insert("init_lora_weights".into(), false.into());
    c
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn an_owned_model_is_its_base_for_the_runner_and_merges_into_a_plain_model() {
    let ids = random_ids(1, "ids", (1, 6), 64, &Device::Cpu).unwrap();
    let mut lora = LoraModel::new(llama());
    let base_out = lora.forward(&ids).unwrap();
    lora.add_adapter("a", &random_b(4), 1).unwrap();
    let adapted = lora.forward(&ids).unwrap();
    assert!(max_diff(&adapted, &base_out) > 1e-4, "a random B changes the output");
    assert_eq!((lora.kind(), lora.input_shape(2, 5)), (BlockKind::Llama, vec![2, 5]));
    assert_eq!(lora.dims(), lora.base().dims());
    assert!(lora.cost(&[1, 6]).flops > lora.base().children()[0].block.cost(&[1, 6]).flops);
    assert!(lora.parameters().iter().any(|(n, _)| n == "model.layers.1.self_attn.v_proj.lora_B.a.weight"));
    assert!(lora.storage_bytes() > tensile_nn::Block::storage_bytes(&llama()), "adapters add bytes");
    assert!(max_diff(&lora.forward_reference(&ids).unwrap().to_dtype(DType::F32).unwrap(), &adapted) < 1e-4);
    assert!(lora.as_linear().is_none());
    // A rebuild (what the runner does to change dtype) keeps the adapter.
    let params: std::collections::HashMap<String, Tensor> = lora.parameters().into_iter().collect();
    let rebuilt = lora.rebuild(candle_nn::VarBuilder::from_tensors(params, DType::F32, &Device::Cpu)).unwrap();
    assert!(max_diff(&rebuilt.forward(&ids).unwrap(), &adapted) < 1e-6);
    let tensors = lora.adapter_tensors("a").unwrap();
    assert_eq!(tensors.len(), 4);
    let plain = lora.merge_and_unload().unwrap();
    assert!(max_diff(&plain.forward(&ids).unwrap(), &adapted) < 1e-4, "merged and unloaded computes as adapted");
    assert!(!plain.parameters().iter().any(|(n, _)| n.contains("lora_")), "no adapter is left");
}

#[test]
fn operations_that_cannot_apply_name_the_reason() {
    let mut lora = LoraModel::new(llama());
    lora.add_adapter("a", &random_b(4), 1).unwrap();
    assert!(lora.add_adapter("a", &random_b(4), 1).unwrap_err().to_string().contains("already exists"));
    let mlp = LoraConfig::new(2, 2.0, &["*.mlp.*"]);
    lora.add_adapter("m", &mlp, 2).unwrap();
    let err = lora.add_weighted_adapter("mix", &[("a", 0.5), ("m", 0.5)]).unwrap_err().to_string();
    assert!(err.contains("target different modules"), "{err}");
    assert!(lora.add_weighted_adapter("mix", &[]).unwrap_err().to_string().contains("at least one part"));
    assert!(lora.add_weighted_adapter("mix", &[("nope", 1.0)]).unwrap_err().to_string().contains("no adapter named `nope`"));
    // Several active adapters add up; disabled, none applies and nothing merges.
    lora.set_adapter(&["a", "m"]).unwrap();
    assert_eq!(lora.active(), vec!["a", "m"]);
    assert_eq!(lora.trainable_count(), 2 * 4 * ((32 + 32) + (32 + 16)) + 2 * 2 * ((32 + 64) * 2 + (64 + 32)));
    lora.merge().unwrap();
    assert!(lora.delete_adapter("a").unwrap_err().to_string().contains("is merged"));
    lora.unmerge().unwrap();
    lora.delete_adapter("m").unwrap();
    assert_eq!(lora.adapter_names(), vec!["a"]);
    // Pairs for a module the targets do not select, and a target without its pair.
    let mut tensors: BTreeMap<String, (Tensor, Tensor)> = lora.adapter_tensors("a").unwrap();
    let (a, b) = tensors.values().next().unwrap().clone();
    tensors.insert("lm_head".into(), (a.clone(), b.clone()));
    assert!(lora.add_adapter_from("b", &random_b(4), tensors.clone()).unwrap_err().to_string().contains("`lm_head`"));
    tensors.remove("lm_head");
    tensors.remove("model.layers.0.self_attn.q_proj");
    assert!(lora.add_adapter_from("b", &random_b(4), tensors).unwrap_err().to_string().contains("no weights for `model.layers.0.self_attn.q_proj`"));
    let none = LoraConfig { target_modules: TargetModules::Regex("nothing".into()), ..random_b(4) };
    assert!(lora.add_adapter("c", &none, 0).unwrap_err().to_string().contains("match no linear layer"));
    // A quantized weight takes an adapter (QLoRA) but cannot absorb it.
    tensile_nn::quant::quantize_linears(lora.base(), "q8_0".parse().unwrap(), |p| p.ends_with("q_proj")).unwrap();
    let err = lora.merge().unwrap_err().to_string();
    assert!(err.contains("quantized weight"), "{err}");
    lora.unload();
    assert!(lora.adapter_names().is_empty() && lora.active().is_empty());
}

//! The model being trained: f32 master weights as named [`Var`]s, and the library model
//! (Llama, or BERT/ModernBERT with a masked-LM head) built on them.
//!
//! The library's blocks hold plain tensors. Built from a [`VarBuilder`] over the variables'
//! own tensors, they compute on the variables themselves: an optimiser step that sets a
//! variable is seen by the next forward, and gradients of the forward land on the variables.
//! For bf16 or f16 training the model is rebuilt per step on `var.to_dtype(half)`: the cast
//! is differentiable, so the gradients still reach the f32 masters.

use crate::config::LibraryConfig;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;
use tensile_nn::heads::MaskedLm;
use tensile_nn::llama::Llama;
use tensile_nn::{Block, PretrainedModel};

/// Standard deviation of the initial matrices (transformers' `initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// A library model ready to compute.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // One `Net` lives per model; boxing would buy nothing.
pub enum Net {
    /// A causal LM.
    Llama(Llama),
    /// An encoder with its masked-LM head.
    Masked(MaskedLm),
}

impl Net {
    /// Builds the model `library` describes from `vb`.
    pub fn build(library: &LibraryConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match library {
            LibraryConfig::Llama(c) => Net::Llama(Llama::new(c, vb)?),
            LibraryConfig::Bert(c) => Net::Masked(MaskedLm::bert(c, vb)?),
            LibraryConfig::ModernBert(c) => Net::Masked(MaskedLm::modernbert(c, vb)?),
        })
    }

    /// The model as a block: its parameters, costs and twin.
    pub fn block(&self) -> &dyn Block {
        match self {
            Net::Llama(m) => m,
            Net::Masked(m) => m,
        }
    }

    /// Logits `(batch, seq, vocab)` for `ids` `(batch, seq)`.
    pub fn logits(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::Llama(m) => m.forward_with(ids, None),
            Net::Masked(m) => m.forward_with(ids, None),
        }
    }

    /// The model as a [`PretrainedModel`], to save in Hugging Face layout.
    pub fn into_pretrained(self) -> PretrainedModel {
        match self {
            Net::Llama(m) => PretrainedModel::causal_lm(m, serde_json::Value::Null),
            Net::Masked(m) => PretrainedModel::masked_lm(m, serde_json::Value::Null),
        }
    }
}

/// The trained weights and the model on them.
pub struct TrainModel {
    library: LibraryConfig,
    params: Vec<(String, Var)>,
    net: Net,
    device: Device,
}

impl TrainModel {
    /// A fresh model: matrices `N(0, 0.02²)`, norm weights 1, biases 0 (transformers'
    /// initialisation), each matrix drawn from a ChaCha stream keyed by `(seed, name)`.
    pub fn new(library: &LibraryConfig, seed: u64, device: &Device) -> Result<Self> {
        // The shapes and names come from a model on meta storage; nothing is allocated twice.
        let shapes = Net::build(library, tensile_nn::init::MetaInit::var_builder(DType::F32, &Device::Cpu))?;
        let mut tensors = HashMap::new();
        for (name, t) in shapes.block().parameters() {
            let dims = t.dims().to_vec();
            let value = if dims.len() >= 2 {
                let mut rng = tensile_nn::init::rng_for(seed, &name);
                let v: Vec<f32> = tensile_nn::init::normal_samples(&mut rng, t.elem_count()).into_iter().map(|x| x * INIT_STD as f32).collect();
                Tensor::from_vec(v, dims, &Device::Cpu)?
            } else if name.ends_with("bias") {
                Tensor::zeros(dims, DType::F32, &Device::Cpu)?
            } else {
                Tensor::ones(dims, DType::F32, &Device::Cpu)?
            };
            tensors.insert(name, value.to_device(device)?);
        }
        Self::from_tensors(library, tensors, device)
    }

    /// A model on the given f32 weights (a checkpoint's), named as the model names them.
    ///
    /// # Errors
    /// A missing tensor or one of the wrong shape, naming it.
    pub fn from_tensors(library: &LibraryConfig, tensors: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let mut vars = HashMap::new();
        for (name, t) in tensors {
            vars.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?.to_device(device)?)?);
        }
        let view: HashMap<String, Tensor> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        let net = Net::build(library, VarBuilder::from_tensors(view, DType::F32, device))?;
        let mut params = Vec::new();
        for (name, _) in net.block().parameters() {
            let var = vars.remove(&name).ok_or_else(|| Error::Invalid { field: "model", reason: format!("no weight for `{name}`") })?;
            params.push((name, var));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { library: library.clone(), params, net, device: device.clone() })
    }

    /// The library config.
    pub fn library(&self) -> &LibraryConfig {
        &self.library
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The f32 master weights by checkpoint name, sorted by name; a tied matrix appears once.
    pub fn parameters(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The number of weights.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The model computing in `dtype`: on the masters themselves in f32, or on a
    /// differentiable cast of them.
    pub fn net(&self, dtype: DType) -> Result<Net> {
        if dtype == DType::F32 {
            return Ok(self.net.clone());
        }
        let cast = self.params.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().to_dtype(dtype)?))).collect::<candle_core::Result<HashMap<_, _>>>()?;
        Net::build(&self.library, VarBuilder::from_tensors(cast, dtype, &self.device))
    }

    /// Writes `config.json` and `model.safetensors` (Hugging Face layout) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        Ok(tensile_nn::save_pretrained(&self.net.clone().into_pretrained(), dir)?)
    }

    /// The weights as named tensors (copies, so later steps do not change them).
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.params.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, predicted_parameters};

    pub(crate) fn config(arch: &str, extra: &str) -> crate::config::ExperimentConfig {
        let text = format!(
            r#"
experiment_name = "t"
[data]
sources = ["x"]
output_dir = "d"
max_sequence_length = 16
batch_size = 2
[tokenizer]
vocab_size = 64
output_dir = "tok"
[model]
architecture = "{arch}"
num_hidden_layers = 2
hidden_size = 32
intermediate_size = 48
num_attention_heads = 4
{extra}
[training]
learning_rate = 1e-3
train_steps = 4
output_dir = "run"
"#
        );
        parse(&text, Path::new("t.toml")).unwrap().config
    }

    #[test]
    fn every_architecture_builds_with_the_predicted_parameter_count_and_standard_init() {
        for (arch, extra) in [("llama", "tie_word_embeddings = true"), ("llama", "num_key_value_heads = 2"), ("bert", ""), ("modernbert", "")] {
            let c = config(arch, extra);
            let lib = c.library_config(64).unwrap();
            let m = TrainModel::new(&lib, 1, &Device::Cpu).unwrap();
            assert_eq!(m.parameter_count(), predicted_parameters(&c, 64).unwrap(), "{arch} {extra}");
            for (name, v) in m.parameters() {
                let t = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                if v.rank() >= 2 {
                    let std = (t.iter().map(|x| x * x).sum::<f32>() / t.len() as f32).sqrt();
                    assert!((std - 0.02).abs() < 0.004, "{name}: std {std}");
                } else if name.ends_with("bias") {
                    assert!(t.iter().all(|&x| x == 0.0), "{name}");
                } else {
                    assert!(t.iter().all(|&x| x == 1.0), "{name}");
                }
            }
            let again = TrainModel::new(&lib, 1, &Device::Cpu).unwrap();
            let other = TrainModel::new(&lib, 2, &Device::Cpu).unwrap();
            let first = |m: &TrainModel| m.parameters().iter().find(|(_, v)| v.rank() == 2).unwrap().1.as_tensor().to_vec2::<f32>().unwrap();
            assert_eq!(first(&m), first(&again), "the seed fixes the weights");
            assert_ne!(first(&m), first(&other));
        }
    }

    #[test]
    fn the_net_computes_on_the_variables_and_half_precision_grads_reach_them() {
        let lib = config("llama", "").library_config(64).unwrap();
        let m = TrainModel::new(&lib, 1, &Device::Cpu).unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
        let before = m.net(DType::F32).unwrap().logits(&ids).unwrap();
        let (name, var) = m.parameters().iter().find(|(n, _)| n.contains("embed_tokens")).unwrap();
        var.set(&(var.as_tensor() * 2.0).unwrap()).unwrap();
        let after = m.net(DType::F32).unwrap().logits(&ids).unwrap();
        let d = (before - &after).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d > 1e-4, "setting {name} changed nothing");
        let loss = tensile_nn::training::scope(&Default::default(), 0, || {
            m.net(DType::BF16).unwrap().logits(&ids).unwrap().to_dtype(DType::F32).unwrap().sqr().unwrap().sum_all().unwrap()
        });
        let grads = loss.backward().unwrap();
        for (n, v) in m.parameters() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {n}"));
            assert_eq!(g.dtype(), DType::F32, "{n}");
        }
    }
}

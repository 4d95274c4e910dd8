//! Built-in model presets for `tensile run --model`: real layer shapes with seeded random
//! weights (the tiny presets are small enough to run in seconds on a CPU).
//!
//! Each preset declares specs for attention, the MLP, a norm and one whole layer, with a
//! sequence-length sweep for the MLP (expected linear) and for attention (expected to follow
//! its own FLOP count over the sweep, which is between linear and quadratic depending on how
//! the sequence length compares with the hidden size). The llama presets carry the seed
//! documents' targets (attention 5 ms / 512 MB, FFN 3 ms / 256 MB at (1, 2048, 4096)): they
//! describe a GPU, and on a CPU they fail, with a note saying so.

mod adapted;

use crate::error::{Error, Result};
use crate::lazy::LazyModule;
use crate::spec::{latency_ms, Check, ModuleTest, Scaling, Targets};
use crate::suite::Suite;
pub use adapted::quant_tolerance;
use candle_core::{DType, Device};
use tensile_nn::bert::{BertConfig, BertLayer};
use tensile_nn::llama::{LlamaConfig, LlamaDecoderLayer};
use tensile_nn::modernbert::{ModernBertConfig, ModernBertLayer};
use tensile_nn::{Activation, RopeScaling};

/// A built-in preset.
pub struct Preset {
    /// Name on the command line.
    pub name: &'static str,
    /// One line for `tensile list`.
    pub description: &'static str,
    /// Default sequence length of its specs.
    pub seq_len: usize,
    build: fn(usize, usize, Weights) -> Result<Vec<ModuleTest>>,
}

/// How a preset's weights are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Seeded random weights (what runs use), made per case for the module under test only
    /// ([`crate::lazy::LazyModule`]): loading a preset allocates nothing.
    Seeded,
    /// No storage at all (every parameter a zero-stride view): for listing shapes, specs and
    /// coverage without running anything, free even for the 8B layers.
    Zeros,
}

impl Weights {
    fn var_builder(self) -> candle_nn::VarBuilder<'static> {
        // Both start without storage; seeded tests get their weights per case.
        tensile_nn::init::MetaInit::var_builder(DType::F32, &Device::Cpu)
    }

    /// The tests of parts of `root`, with seeded weights made per case when seeded.
    fn finish(self, root: &dyn tensile_nn::Block, tests: Vec<ModuleTest>) -> Vec<ModuleTest> {
        if self == Weights::Zeros {
            return tests;
        }
        let root_params = root.parameters();
        tests
            .into_iter()
            .map(|mut t| {
                let prefix = LazyModule::prefix_in(&root_params, &t.module.parameters());
                t.module = std::sync::Arc::new(LazyModule::new(t.module, prefix, 0));
                t
            })
            .collect()
    }
}

impl Preset {
    /// The preset's module tests at `batch` × `seq_len` with seeded weights.
    pub fn module_tests(&self, batch: usize, seq_len: usize) -> Result<Vec<ModuleTest>> {
        (self.build)(batch, seq_len, Weights::Seeded)
    }

    /// The preset's module tests with weights made as `weights` says.
    pub fn module_tests_with(&self, batch: usize, seq_len: usize, weights: Weights) -> Result<Vec<ModuleTest>> {
        (self.build)(batch, seq_len, weights)
    }
}

/// The module tests of each of `presets` at its own sequence length with zero weights: what
/// configuration coverage compares a plan with, cheap even for the 8B layers (zero pages are
/// mapped lazily).
pub fn zero_weight_tests<'a>(presets: impl IntoIterator<Item = &'a Preset>) -> Result<Vec<(&'static str, Vec<ModuleTest>)>> {
    presets.into_iter().map(|p| Ok((p.name, p.module_tests_with(1, p.seq_len, Weights::Zeros)?))).collect()
}

/// Every preset.
pub fn all() -> &'static [Preset] {
    &PRESETS
}

/// The preset called `name`.
pub fn find(name: &str) -> Result<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::UnknownPreset { name: name.to_string(), known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ") })
}

static PRESETS: [Preset; 11] = [
    Preset {
        name: "tiny-llama",
        description: "LLaMA-style layer, hidden 256, 8 heads / 2 KV heads, MLP 688 (seconds on a CPU)",
        seq_len: 128,
        build: tiny_llama,
    },
    Preset { name: "tiny-bert", description: "BERT layer, hidden 128, 4 heads, FFN 512 (seconds on a CPU)", seq_len: 128, build: tiny_bert },
    Preset {
        name: "llama3-8b",
        description: "Llama-3-8B layer: hidden 4096, 32 heads / 8 KV heads, MLP 14336, rope θ 500000 + llama3 scaling",
        seq_len: 2048,
        build: llama3_8b,
    },
    Preset { name: "llama2-7b", description: "Llama-2-7B layer: hidden 4096, 32 heads, MLP 11008, rope θ 10000", seq_len: 2048, build: llama2_7b },
    Preset { name: "bert-base", description: "BERT-base layer: hidden 768, 12 heads, FFN 3072, GELU", seq_len: 512, build: bert_base },
    Preset { name: "minilm-l6", description: "all-MiniLM-L6-v2 layer: hidden 384, 12 heads, FFN 1536, GELU", seq_len: 256, build: minilm_l6 },
    Preset {
        name: "tiny-modernbert",
        description: "ModernBERT local layer, hidden 128, 4 heads, GeGLU 192, window 64 (seconds on a CPU)",
        seq_len: 128,
        build: tiny_modernbert,
    },
    Preset {
        name: "modernbert-base",
        description: "ModernBERT-base local layer: hidden 768, 12 heads, GeGLU 1152, window 128, rope θ 10000",
        seq_len: 512,
        build: modernbert_base,
    },
    Preset {
        name: "tiny-llama-lora",
        description: "tiny LLaMA layer (hidden 256, MLP 768) with LoRA r 8 on every projection",
        seq_len: 128,
        build: adapted::tiny_llama_lora,
    },
    Preset {
        name: "tiny-llama-q8",
        description: "tiny LLaMA layer quantized to Q8_0, each module against its f32 original",
        seq_len: 128,
        build: adapted::tiny_llama_q8,
    },
    Preset {
        name: "tiny-llama-q4",
        description: "tiny LLaMA layer quantized to Q4_0, each module against its f32 original",
        seq_len: 128,
        build: adapted::tiny_llama_q4,
    },
];

/// Checks for every module; gradients only where the float64 reference is cheap.
fn checks(gradients: bool) -> Vec<Check> {
    let mut c = vec![Check::Correctness, Check::Determinism, Check::BatchInvariance, Check::DtypeParity, Check::Performance, Check::Memory];
    if gradients {
        c.insert(1, Check::Gradients);
    }
    c
}

/// The MLP's sweep: the same lengths as attention's (see [`attention_sweep`]). Its time is
/// linear at any length, but from 512 tokens up its intermediate activations outgrow a core's
/// L2 cache, and on a loaded 2-core machine the longest length of the 8× sweep this preset
/// used before ran 2× slow for whole checks at a time, in 8 of 10 repetitions of the BERT FFN.
fn mlp_sweep(seq: usize) -> Vec<usize> {
    attention_sweep(seq)
}

/// Attention's sweep ends at twice the preset's length (at most 256). The fast path
/// materialises the `(heads, seq, seq)` f32 scores: at 256 tokens and 8 heads that is 2 MiB,
/// which stays in a CPU's caches, while at 1024 tokens (32 MiB) every pass over it goes to
/// DRAM at a fraction of the speed. Past that point the time per score grows with the length,
/// a memory-hierarchy effect rather than the module's scaling, and its size depends on the
/// machine and on what else runs on it: the scaling verdict would flip with load.
fn attention_sweep(seq: usize) -> Vec<usize> {
    let s = seq.clamp(8, 128);
    vec![s / 4, s / 2, s, s * 2]
}

struct LlamaPreset {
    name: &'static str,
    cfg: LlamaConfig,
    gradients: bool,
    attention: Targets,
    mlp: Targets,
}

fn llama_suite(p: LlamaPreset, batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let layer = LlamaDecoderLayer::new(&p.cfg, w.var_builder()).map_err(|source| Error::Block { context: p.name.to_string(), source })?;
    let mut s = Suite::new(&layer).name(p.name).batch_size(batch).seq_len(seq);
    s.test(layer.self_attn())
        .name("attention")
        .checks(checks(p.gradients))
        .seq_lengths(attention_sweep(seq))
        .expect_scaling(Scaling::FromCost)
        .expect(p.attention);
    s.test(layer.mlp()).name("mlp").checks(checks(p.gradients)).seq_lengths(mlp_sweep(seq)).expect_scaling(Scaling::Linear).expect(p.mlp);
    s.test(layer.input_layernorm()).name("norm").checks(checks(p.gradients));
    s.test(&layer).name("decoder_layer").checks(checks(p.gradients));
    Ok(w.finish(&layer, s.module_tests()?))
}

fn tiny_llama(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = LlamaConfig {
        hidden_size: 256,
        intermediate_size: 688,
        num_attention_heads: 8,
        num_key_value_heads: Some(2),
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        ..LlamaConfig::default()
    };
    // CPU-class targets with room for slow shared machines at (1, 128, 256).
    llama_suite(
        LlamaPreset { name: "tiny-llama", cfg, gradients: true, attention: latency_ms(50.0).memory_mb(64.0), mlp: latency_ms(50.0).memory_mb(64.0) },
        batch,
        seq,
        w,
    )
}

fn seed_targets() -> (Targets, Targets) {
    (latency_ms(5.0).memory_mb(512.0).gpu_class(), latency_ms(3.0).memory_mb(256.0).gpu_class())
}

fn llama3_8b(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = LlamaConfig {
        hidden_size: 4096,
        intermediate_size: 14336,
        num_attention_heads: 32,
        num_key_value_heads: Some(8),
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 131_072,
        rope_scaling: Some(RopeScaling {
            rope_type: "llama3".into(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }),
        ..LlamaConfig::default()
    };
    let (attention, mlp) = seed_targets();
    llama_suite(LlamaPreset { name: "llama3-8b", cfg, gradients: false, attention, mlp }, batch, seq, w)
}

fn llama2_7b(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = LlamaConfig {
        hidden_size: 4096,
        intermediate_size: 11008,
        num_attention_heads: 32,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 4096,
        ..LlamaConfig::default()
    };
    let (attention, mlp) = seed_targets();
    llama_suite(LlamaPreset { name: "llama2-7b", cfg, gradients: false, attention, mlp }, batch, seq, w)
}

fn bert_suite(name: &str, cfg: BertConfig, gradients: bool, batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let layer = BertLayer::new(&cfg, w.var_builder()).map_err(|source| Error::Block { context: name.to_string(), source })?;
    let mut s = Suite::new(&layer).name(name).batch_size(batch).seq_len(seq);
    s.test(layer.attention()).name("attention").checks(checks(gradients)).seq_lengths(attention_sweep(seq)).expect_scaling(Scaling::FromCost);
    s.test(layer.mlp()).name("ffn").checks(checks(gradients)).seq_lengths(mlp_sweep(seq)).expect_scaling(Scaling::Linear);
    s.test(layer.attention_layer_norm()).name("norm").checks(checks(gradients));
    s.test(&layer).name("layer").checks(checks(gradients));
    Ok(w.finish(&layer, s.module_tests()?))
}

fn tiny_bert(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = BertConfig { hidden_size: 128, num_attention_heads: 4, intermediate_size: 512, ..BertConfig::default() };
    bert_suite("tiny-bert", cfg, true, batch, seq, w)
}

fn bert_base(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    bert_suite("bert-base", BertConfig::default(), false, batch, seq, w)
}

fn minilm_l6(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = BertConfig { hidden_size: 384, num_attention_heads: 12, intermediate_size: 1536, hidden_act: Activation::Gelu, ..BertConfig::default() };
    bert_suite("minilm-l6", cfg, false, batch, seq, w)
}

/// A ModernBERT preset tests layer 1: a sliding-window layer with its `attn_norm`, the kind
/// two of every three layers are (layer 0, global and without `attn_norm`, is the exception).
fn modernbert_suite(name: &str, cfg: ModernBertConfig, gradients: bool, batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let layer = ModernBertLayer::new(&cfg, 1, w.var_builder()).map_err(|source| Error::Block { context: name.to_string(), source })?;
    let mut s = Suite::new(&layer).name(name).batch_size(batch).seq_len(seq);
    s.test(layer.attention()).name("attention").checks(checks(gradients)).seq_lengths(attention_sweep(seq)).expect_scaling(Scaling::FromCost);
    s.test(layer.mlp()).name("mlp").checks(checks(gradients)).seq_lengths(mlp_sweep(seq)).expect_scaling(Scaling::Linear);
    s.test(layer.mlp_norm()).name("norm").checks(checks(gradients));
    s.test(&layer).name("layer").checks(checks(gradients));
    Ok(w.finish(&layer, s.module_tests()?))
}

fn tiny_modernbert(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let cfg = ModernBertConfig { hidden_size: 128, num_attention_heads: 4, intermediate_size: 192, local_attention: 64, ..ModernBertConfig::default() };
    modernbert_suite("tiny-modernbert", cfg, true, batch, seq, w)
}

fn modernbert_base(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    modernbert_suite("modernbert-base", ModernBertConfig::default(), false, batch, seq, w)
}

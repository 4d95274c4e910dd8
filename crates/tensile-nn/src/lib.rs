//! Transformer building blocks for tensile, each with a float64 reference twin.
//!
//! Every block loads Hugging Face weights under their checkpoint names, runs a fast forward on
//! candle's kernels, and exposes [`Block::forward_reference`]: the same math in float64 on the
//! CPU, written naively, so the fast path can always be checked against the formula.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use tensile_nn::{init::SeededInit, Block, RmsNorm};
//!
//! # fn main() -> tensile_nn::Result<()> {
//! let vb = SeededInit::var_builder(0, DType::F32, &Device::Cpu);
//! let norm = RmsNorm::new(2, 1e-6, vb)?;
//! // x = (3, 4): rms = sqrt((9 + 16) / 2) ≈ 3.5355, so x / rms ≈ (0.8485, 1.1314) before the weight.
//! let x = Tensor::new(&[[3f32, 4.0]], &Device::Cpu)?;
//! let w = norm.weight().to_vec1::<f32>()?;
//! let y = norm.forward(&x)?.to_vec2::<f32>()?;
//! assert!((y[0][0] - 0.848_528 * w[0]).abs() < 1e-5);
//! assert!((y[0][1] - 1.131_371 * w[1]).abs() < 1e-5);
//! let twin = norm.forward_reference(&x)?.to_vec2::<f64>()?;
//! assert!((twin[0][1] - f64::from(y[0][1])).abs() < 1e-5);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod activation;
mod attention;
pub mod bert;
mod block;
pub mod catalog;
mod catalog_wrapped;
pub mod corpus;
mod embedding;
mod error;
mod fast_exp;
pub mod fault;
pub mod files;
mod flash_attention;
mod gelu_kernel;
mod gelu_mlp;
pub mod generate;
pub mod gguf;
pub mod heads;
pub mod inference;
pub mod init;
mod layer_norm;
mod layer_norm_kernel;
mod limits;
mod linear;
pub mod llama;
pub mod lora;
pub mod loss;
mod matmul_kernel;
pub mod metrics;
pub mod modernbert;
mod pooling;
mod pretrained;
pub mod quant;
mod rms_norm;
mod rotary;
pub mod runtime;
pub mod sentence;
mod silu_mul;
mod swiglu;
mod tagged;
pub mod tokenizer;
pub mod training;
mod training_kernels;

pub use activation::Activation;
pub use attention::{Attention, AttentionConfig, KvCache};
pub use bert::BertEmbeddings;
pub use block::{bytes_of, prefixed, softmax_reference, to_f64_cpu, tokens, Block, Child, Cost, InputKind};
pub use catalog::BlockKind;
pub use embedding::Embedding;
pub use error::{innermost_message, Error, Result};
pub use gelu_mlp::GeluMlp;
pub use layer_norm::LayerNorm;
pub use limits::MAX_DIM;
pub use linear::{linears, rebuild_with_state, Linear, LinearWeight};
pub use pooling::{Pooling, PoolingMode};
pub use pretrained::{load_pretrained, load_pretrained_shapes, save_pretrained, PretrainedModel, ARCHITECTURES};
pub use rms_norm::RmsNorm;
pub use rotary::{inverse_frequencies, RopeScaling, RotaryEmbedding};
pub use swiglu::SwiGlu;
pub use tagged::Tagged;

//! The LLaMA family.

mod config;
mod decoder_layer;
mod model;

pub use config::LlamaConfig;
pub use decoder_layer::LlamaDecoderLayer;
pub use model::Llama;

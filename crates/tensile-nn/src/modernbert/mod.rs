//! The ModernBERT family (Hugging Face `ModernBertModel`, transformers ≥ 4.48 names).

mod attention;
mod config;
mod embeddings;
mod layer;
mod mlp;
mod model;

pub use attention::ModernBertAttention;
pub use config::{LayerAttention, ModernBertConfig, RopeParameters, RopeType};
pub use embeddings::ModernBertEmbeddings;
pub use layer::ModernBertLayer;
pub use mlp::ModernBertMlp;
pub use model::ModernBert;

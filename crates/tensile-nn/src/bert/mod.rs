//! The BERT family.

mod config;
mod embeddings;
mod layer;
mod model;

pub use config::BertConfig;
pub use embeddings::BertEmbeddings;
pub use layer::BertLayer;
pub use model::Bert;

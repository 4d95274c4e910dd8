//! The BERT family.

mod config;
mod layer;
mod model;

pub use config::BertConfig;
pub use layer::BertLayer;
pub use model::Bert;

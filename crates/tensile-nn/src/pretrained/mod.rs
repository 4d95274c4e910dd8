//! The model factory: a Hugging Face model directory (`config.json` + `model.safetensors`) to
//! the right model with its head, and back.

mod load;
mod model;
mod save;

pub use load::{load_pretrained, load_pretrained_shapes, ARCHITECTURES};
pub use model::PretrainedModel;
pub(crate) use save::safetensors_bytes;
pub use save::save_pretrained;

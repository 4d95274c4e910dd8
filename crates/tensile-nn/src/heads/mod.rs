//! Task heads in Hugging Face layouts, their labels and problem types, and encoders with a
//! head on top.

mod classification;
mod mlm;
mod model;
mod task;

pub use classification::{ClassificationHead, HeadStyle, HeadTarget};
pub use mlm::MaskedLm;
pub use model::{Encoder, EncoderWithHead};
pub use task::{ProblemType, Targets, TaskConfig};

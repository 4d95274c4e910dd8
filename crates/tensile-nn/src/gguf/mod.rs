//! GGUF files (llama.cpp's format): a Llama-architecture model with its quantized weights,
//! its tokenizer and its chat template ([`load_gguf`]).

mod model;
mod tokenizer;

pub use model::{load_gguf, GgufModel};
pub use tokenizer::GgufVocab;

//! GGUF files (llama.cpp's format): a Llama-architecture model with its quantized weights,
//! its tokenizer and its chat template ([`load_gguf`]), and written from a model in any GGUF
//! block format ([`save_gguf`]).

mod model;
mod tokenizer;
mod write;

pub use model::{load_gguf, load_gguf_shapes, GgufModel};
pub use tokenizer::GgufVocab;
pub use write::{byte_char, save_gguf, GgufVocabSpec};

//! Quantizes a Llama checkpoint directory into a GGUF file with the library's own writer, for
//! a per-module quantization report against the original:
//!
//! ```text
//! cargo run --release -p tensile-nn --example quantize_gguf -- DIR q4_0 OUT.gguf
//! tensile run --model OUT.gguf --compare-with DIR --layers all --checks correctness --html r.html
//! ```
//!
//! The file carries a byte-level placeholder vocabulary of the model's size, not the model's
//! tokenizer: it is for module tests, not for generating text.

use candle_core::{DType, Device};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, format, out] = args.as_slice() else {
        return Err("usage: quantize_gguf DIR FORMAT OUT.gguf (FORMAT: q4_0, q4_1, q8_0, q4_k, q6_k, …)".into());
    };
    let pretrained = tensile_nn::load_pretrained(&PathBuf::from(dir), DType::F32, &Device::Cpu)?;
    let llama = pretrained.as_llama().ok_or_else(|| format!("{dir} is not a Llama (GGUF writing supports Llama only)"))?;
    let vocab = tensile_nn::gguf::GgufVocabSpec::byte_level(llama.config().vocab_size)?;
    let name = PathBuf::from(dir).file_name().map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    tensile_nn::gguf::save_gguf(llama, &vocab, format.parse()?, &name, &PathBuf::from(out))?;
    println!("wrote {out} ({format})");
    Ok(())
}

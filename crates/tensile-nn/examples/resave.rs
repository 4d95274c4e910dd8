//! Loads a Hugging Face model directory with `load_pretrained` and writes it back with
//! `save_pretrained`: `cargo run -p tensile-nn --example resave -- SRC DST [f32|bf16|f16]`.
//! tools/golden/check_saved.py then loads DST with transformers and compares its outputs with
//! SRC's `reference.json`.

use candle_core::{DType, Device};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst, rest @ ..] = args.as_slice() else {
        return Err("usage: resave SRC DST [f32|bf16|f16]".into());
    };
    let dtype = match rest.first().map(String::as_str) {
        None | Some("f32") => DType::F32,
        Some("bf16") => DType::BF16,
        Some("f16") => DType::F16,
        Some(other) => return Err(format!("unknown dtype `{other}`").into()),
    };
    let model = tensile_nn::load_pretrained(&PathBuf::from(src), dtype, &Device::Cpu)?;
    tensile_nn::save_pretrained(&model, &PathBuf::from(dst))?;
    println!("{} ({}) → {dst}", model.architecture(), dtype.as_str());
    Ok(())
}

//! `tensile dequantize FILE.gguf --out DIR`: the float32 Hugging Face copy of a quantized GGUF
//! model, so that `tensile run --model FILE.gguf --compare-with DIR` can separate the quantized
//! kernels' own error from the format's rounding of the weights without any code.

use crate::EXIT_OK;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DequantizeArgs {
    /// A GGUF Llama model.
    model: PathBuf,
    /// The directory to write (`config.json` and `model.safetensors`); it must not hold a
    /// model already.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: &DequantizeArgs) -> Result<u8> {
    if args.out.join("config.json").exists() || args.out.join("model.safetensors").exists() {
        bail!("{} already holds a model; give an empty or new directory", args.out.display());
    }
    let m = tensile_nn::gguf::load_gguf(&args.model, &candle_core::Device::Cpu)?;
    let params: usize = tensile_nn::Block::parameters(&m.model).iter().map(|(_, t)| t.elem_count()).sum();
    tensile_nn::save_pretrained(&tensile_nn::PretrainedModel::causal_lm(m.model, serde_json::Value::Null), &args.out)?;
    println!("wrote {} ({params} parameters in f32)", args.out.display());
    Ok(EXIT_OK)
}

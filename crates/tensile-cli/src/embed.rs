//! `tensile embed`.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tensile_nn::sentence::SentenceEmbedder;

#[derive(Args)]
pub struct EmbedArgs {
    /// sentence-transformers model directory (config.json, model.safetensors, tokenizer.json, …).
    #[arg(long)]
    model: PathBuf,
    /// Text to embed; repeat for several.
    #[arg(long = "text", required = true)]
    texts: Vec<String>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Dtype of the model: f32, bf16, f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print `{"embeddings": [[…], …]}`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EmbedArgs) -> Result<u8> {
    let device = tensile::device::parse_device(&args.device)?;
    let dtype = tensile::device::parse_dtype(&args.dtype)?;
    let model = SentenceEmbedder::load(&args.model, dtype, &device).with_context(|| format!("failed to load model at {}", args.model.display()))?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let embeddings = model.embed(&texts)?;
    if args.json {
        println!("{}", serde_json::json!({ "embeddings": embeddings }));
    } else {
        for (text, e) in texts.iter().zip(&embeddings) {
            let head: Vec<String> = e.iter().take(6).map(|v| format!("{v:+.5}")).collect();
            println!("{} dims [{} …]  {text}", e.len(), head.join(", "));
        }
    }
    Ok(EXIT_OK)
}

//! `tensile embed`.

use crate::{EXIT_FAILED, EXIT_OK};
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
    #[command(flatten)]
    placement: crate::placement::Placement,
    /// Print `{"embeddings": [[…], …]}`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EmbedArgs) -> Result<u8> {
    let (device, dtype) = args.placement.resolve()?;
    let model = SentenceEmbedder::load(&args.model, dtype, &device).with_context(|| format!("failed to load model at {}", args.model.display()))?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let embeddings = model.embed(&texts)?;
    // Which sentences came out with NaN or infinity (a broken weight, an overflow in f16):
    // what was computed is still printed, but the run fails.
    let bad: Vec<usize> = embeddings.iter().enumerate().filter(|(_, e)| e.iter().any(|v| !v.is_finite())).map(|(i, _)| i).collect();
    if args.json {
        // JSON has no NaN: such values print as null, and `non_finite` lists their sentences.
        let mut doc = serde_json::json!({ "embeddings": embeddings });
        if !bad.is_empty() {
            doc["non_finite"] = serde_json::json!(bad);
        }
        println!("{doc}");
    } else {
        for (text, e) in texts.iter().zip(&embeddings) {
            let head: Vec<String> = e.iter().take(6).map(|v| format!("{v:+.5}")).collect();
            println!("{} dims [{} …]  {text}", e.len(), head.join(", "));
        }
    }
    if bad.is_empty() {
        return Ok(EXIT_OK);
    }
    let which: Vec<String> = bad.iter().map(|&i| format!("{} {:?}", i + 1, texts[i])).collect();
    eprintln!("error: embeddings are not finite (NaN or infinity) for sentence {} of {}", which.join(", "), texts.len());
    Ok(EXIT_FAILED)
}

//! `tensile generate`: continue a prompt with a GGUF Llama model.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tensile_nn::generate::{generate, Sampling};

#[derive(Args)]
pub struct GenerateArgs {
    /// A GGUF file of the Llama architecture (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    gguf: PathBuf,
    /// The prompt, tokenized with the file's own tokenizer (special tokens such as
    /// <|im_start|> are recognised).
    #[arg(long)]
    prompt: String,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print {"prompt_ids", "tokens", "text", "last_logits", "tokens_per_second"} as JSON.
    #[arg(long)]
    json: bool,
}

/// How many tokens to generate and how to pick them, as `tensile generate` and
/// `tensile foundry generate` both take them.
#[derive(Args)]
pub struct SamplingArgs {
    /// Most new tokens; generation also stops at the end-of-sequence token.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// 0 (the default) picks the most likely token; above 0 samples at that temperature.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling: draw among the most likely tokens whose probabilities sum to this.
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Draw only among the K most likely tokens (0 keeps them all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed of the sampling draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SamplingArgs {
    /// The sampling settings, checked.
    pub fn sampling(&self) -> Result<Sampling> {
        let s = Sampling { temperature: self.temperature, top_p: self.top_p, top_k: self.top_k, seed: self.seed };
        s.validate()?;
        Ok(s)
    }
}

pub fn run(args: &GenerateArgs) -> Result<u8> {
    let device = tensile::device::parse_device(&args.device)?;
    let sampling = args.sampling.sampling()?;
    let m = tensile_nn::gguf::load_gguf(&args.gguf, &device).with_context(|| format!("failed to load GGUF model at {}", args.gguf.display()))?;
    let prompt_ids = m.vocab.encode(&args.prompt)?;
    let stop: Vec<u32> = m.vocab.eos.into_iter().collect();
    let g = generate(&m.model, &prompt_ids, args.sampling.max_tokens, &sampling, &stop, &device)?;
    let text = m.vocab.decode(&g.tokens)?;
    if args.json {
        let doc = serde_json::json!({
            "prompt_ids": prompt_ids,
            "tokens": g.tokens,
            "text": text,
            "last_logits": g.last_logits,
            "tokens_per_second": g.tokens_per_second(),
            "prompt_seconds": g.prompt_seconds,
        });
        println!("{doc}");
    } else {
        println!("{}{}", args.prompt, text);
        eprintln!(
            "{} tokens, {:.1} tokens/s after a {:.0} ms prompt of {} tokens",
            g.tokens.len(),
            g.tokens_per_second(),
            g.prompt_seconds * 1e3,
            prompt_ids.len()
        );
    }
    Ok(EXIT_OK)
}

//! `tensile foundry preprocess` and `tensile foundry validate`.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FoundryCommand {
    /// Train or load the tokenizer, and write the token shards, the split and the statistics.
    Preprocess {
        /// The experiment config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check the config and, when it has been prepared, the data: shards, checksums, tokenizer.
    Validate {
        /// The experiment config (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Train the model (module tests first), with checkpoints, logs and metrics.
    Train(crate::foundry_train::TrainArgs),
    /// Print a checkpoint's validation loss and perplexity.
    Evaluate(crate::foundry_train::EvaluateArgs),
    /// Continue a prompt with a trained causal LM.
    Generate(crate::foundry_train::FoundryGenerateArgs),
    /// List an experiment's log files.
    Logs(crate::foundry_train::LogsArgs),
}

pub fn run(command: FoundryCommand) -> Result<u8> {
    match command {
        FoundryCommand::Preprocess { config, no_progress } => preprocess(&config, no_progress),
        FoundryCommand::Validate { config } => validate(&config),
        FoundryCommand::Train(args) => crate::foundry_train::train(&args),
        FoundryCommand::Evaluate(args) => crate::foundry_train::evaluate(&args),
        FoundryCommand::Generate(args) => crate::foundry_train::generate(&args),
        FoundryCommand::Logs(args) => crate::foundry_train::logs(&args),
    }
}

fn preprocess(path: &std::path::Path, no_progress: bool) -> Result<u8> {
    let loaded = tensile_foundry::config::load(path)?;
    let bar = indicatif::ProgressBar::new(0);
    if no_progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}").expect("a valid template").progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    // The heap's high-water mark during the whole preparation (the binary counts its
    // allocations): what shows that memory does not grow with the corpus.
    let (prepared, peak) = tensile::alloc::measure_peak(|| {
        tensile_foundry::preprocess::preprocess(&loaded, &mut |p| {
            bar.set_message(p.pass);
            bar.set_length(p.total);
            bar.set_position(p.done);
        })
    });
    let prepared = prepared.with_context(|| format!("failed to preprocess {}", path.display()))?;
    bar.finish_and_clear();
    let (s, m) = (&prepared.stats, &prepared.manifest);
    let mb = s.bytes as f64 / 1e6;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} documents, {} tokens ({:.2} MB in {secs:.1} s, {:.2} MB/s)",
        s.train.documents + s.validation.documents,
        s.train.tokens + s.validation.tokens,
        mb,
        mb / secs.max(1e-9)
    );
    println!(
        "train: {} chunks of {} tokens ({} tokens dropped); validation: {} chunks",
        s.train.chunks, m.chunk_len, s.train.tokens_wasted, s.validation.chunks
    );
    println!("vocabulary {} ({}-byte tokens), tokenizer {}", m.vocab_size, m.token_width, prepared.dir.join(&m.tokenizer).display());
    if let Some(peak) = peak {
        println!("peak heap {:.1} MB", peak as f64 / 1e6);
    }
    println!("wrote {}", prepared.dir.display());
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    Ok(EXIT_OK)
}

fn validate(path: &std::path::Path) -> Result<u8> {
    let loaded = tensile_foundry::config::load(path)?;
    let c = &loaded.config;
    println!("config {}: valid ({} / {:?})", path.display(), c.experiment_name, c.model.architecture);
    let dir = loaded.resolve(&c.data.output_dir);
    if !dir.join("manifest.json").exists() {
        println!("no prepared data in {} yet (run `tensile foundry preprocess`)", dir.display());
        return Ok(EXIT_OK);
    }
    let manifest = tensile_foundry::preprocess::read_manifest(&dir)?;
    if manifest.chunk_len != c.data.max_sequence_length {
        anyhow::bail!(
            "{}: chunks of {} tokens, the config asks for max_sequence_length {}",
            dir.join("manifest.json").display(),
            manifest.chunk_len,
            c.data.max_sequence_length
        );
    }
    let tokenizer = tensile_foundry::tokenizer::load(&dir.join(&manifest.tokenizer))?;
    if tokenizer.get_vocab_size(true) != manifest.vocab_size {
        anyhow::bail!("{}: {} tokens, the manifest says {}", dir.join(&manifest.tokenizer).display(), tokenizer.get_vocab_size(true), manifest.vocab_size);
    }
    let train = tensile_foundry::loader::Dataset::open(&dir, false)?;
    let validation = tensile_foundry::loader::Dataset::open(&dir, true)?;
    let params = tensile_foundry::config::predicted_parameters(c, manifest.vocab_size)?;
    println!("data {}: {} training and {} validation chunks, checksums verified; model of {params} parameters", dir.display(), train.len(), validation.len());
    Ok(EXIT_OK)
}

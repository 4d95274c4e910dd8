//! `tensile foundry train | evaluate | generate | logs`: thin wrappers over the foundry's
//! trainer; the progress bar and console lines render the trainer's events.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tensile_foundry::runlog::{self, RunLog};
use tensile_foundry::trainer::{self, Resume, TrainEvent, TrainOptions};

#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config (TOML), prepared with `tensile foundry preprocess`.
    #[arg(long)]
    config: PathBuf,
    /// Continue from the latest checkpoint of the run, or from the checkpoint folder given.
    #[arg(long, num_args = 0..=1, default_missing_value = "latest", value_name = "CHECKPOINT")]
    resume: Option<String>,
    /// Train without first running the model's module tests.
    #[arg(long)]
    skip_module_tests: bool,
    /// Stop after this step, with a checkpoint (resume later with --resume).
    #[arg(long, value_name = "STEP")]
    stop_after: Option<u64>,
    /// Device: cpu, cuda or cuda:N (under a launcher, `cuda` is cuda:LOCAL_RANK).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Under `mpirun -np N`, `srun` or `torchrun --no-python`: how long a rank waits for the
    /// others to join, and then in one exchange, before it gives up, e.g. 90s or 10m.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = tensile::isolate::parse_duration)]
    rank_timeout: std::time::Duration,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Validation batches to use (0: all).
    #[arg(long, default_value_t = 0)]
    batches: usize,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
pub struct FoundryGenerateArgs {
    /// A checkpoint folder of a causal LM, or its run folder (the latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    #[command(flatten)]
    sampling: crate::generate::SamplingArgs,
}

#[derive(Args)]
pub struct LogsArgs {
    /// The experiment config whose log folder to list.
    #[arg(long)]
    config: PathBuf,
}

pub fn train(args: &TrainArgs) -> Result<u8> {
    // Under a launcher, a bare `cuda` means this rank's own GPU (cuda:LOCAL_RANK).
    let launch = tensile_foundry::parallel::Launch::from_env()?;
    let device = tensile::device::parse_device(&launch.as_ref().map_or_else(|| args.device.clone(), |l| l.device_name(&args.device)))?;
    let group = tensile_foundry::parallel::Group::join(launch.as_ref(), &device, args.rank_timeout)?;
    let result = train_in(args, device, &group);
    if group.world_size() == 1 {
        return result;
    }
    // A rank that stops with an error ends the run on every rank: the others would wait for
    // it. Its error is printed here, with its rank, because MPI's abort does not return.
    match result {
        Ok(code) if code == EXIT_OK || code == tensile::exit::INTERRUPTED => Ok(code),
        Ok(code) => {
            group.0.abort(i32::from(code));
            Ok(code)
        }
        Err(e) => {
            eprintln!("error: rank {}: {}", group.rank(), format!("{e:#}").lines().collect::<Vec<_>>().join(" "));
            group.0.abort(i32::from(crate::EXIT_USAGE));
            Ok(crate::EXIT_USAGE)
        }
    }
}

fn train_in(args: &TrainArgs, device: candle_core::Device, group: &tensile_foundry::parallel::Group) -> Result<u8> {
    let loaded = tensile_foundry::config::load(&args.config)?;
    tensile::interrupt::install()?;
    let resume = args.resume.as_deref().map(|r| if r == "latest" { Resume::Latest } else { Resume::From(PathBuf::from(r)) });
    let opts = TrainOptions {
        device,
        resume,
        skip_module_tests: args.skip_module_tests,
        stop_after: args.stop_after,
        interrupted: tensile::interrupt::requested,
        group: group.clone(),
    };
    // Rank 0 speaks for the run: its log, its progress bar, its summary. The others train in
    // silence (their errors still reach stderr).
    let lead = group.rank() == 0;
    let mut log = if lead { Some(RunLog::open(&loaded)?) } else { None };
    if group.world_size() > 1 && lead {
        println!("data-parallel: {} ranks ({}); each step's global batch is split between them", group.world_size(), group.0.engine());
    }
    let bar = indicatif::ProgressBar::new(0);
    if args.no_progress || !lead {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(indicatif::ProgressStyle::with_template("{pos}/{len} [{bar:30}] {msg} ETA {eta}").expect("a valid template").progress_chars("=> "));
    let mut log_error = None;
    let result = trainer::train(&loaded, &opts, &mut |e| {
        match e {
            TrainEvent::Started { first_step, total_steps, .. } => {
                bar.set_length(*total_steps);
                bar.set_position(first_step - 1);
                bar.reset_eta();
            }
            TrainEvent::Step(s) => {
                bar.set_position(s.step);
                bar.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", s.loss, s.learning_rate, s.tokens_per_second));
            }
            _ => {}
        }
        match log.as_mut().map(|l| l.on_event(e)) {
            Some(Ok(Some(line))) => bar.suspend(|| println!("{line}")),
            Some(Ok(None)) | None => {}
            Some(Err(err)) => {
                log_error.get_or_insert(err);
            }
        }
    });
    bar.finish_and_clear();
    let finished = log.as_mut().map_or(Ok(()), |l| l.finish());
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            if let Some(l) = log.as_mut() {
                let _ = l.line(&format!("error: {e}"));
            }
            // A module that fails its test and a loss that diverges are failed runs (exit 1),
            // not bad input (exit 2).
            if matches!(e, tensile_foundry::Error::ModuleTest { .. } | tensile_foundry::Error::NonFinite { .. }) {
                eprintln!("error: {e}");
                return Ok(crate::EXIT_FAILED);
            }
            return Err(e).with_context(|| format!("training {} failed", args.config.display()));
        }
    };
    if let Some(e) = log_error {
        return Err(e).context("failed to write the run's log");
    }
    finished?;
    if let Some(log) = &log {
        let ck = outcome.checkpoint.as_ref().map_or("none".to_string(), |p| p.display().to_string());
        println!(
            "step {}/{}: loss {:.4} (first step of this run {:.4}); checkpoint {ck}; log {}",
            outcome.step,
            outcome.total_steps,
            outcome.loss,
            outcome.first_loss.unwrap_or(f64::NAN),
            log.path().display()
        );
    }
    if tensile::interrupt::requested() {
        if lead {
            println!("interrupted: resume with `tensile foundry train --config {} --resume`", args.config.display());
        }
        return Ok(tensile::exit::INTERRUPTED);
    }
    Ok(EXIT_OK)
}

/// A checkpoint folder itself, or the latest checkpoint of a run folder.
fn checkpoint_dir(path: &Path) -> Result<PathBuf> {
    if path.join(tensile_foundry::checkpoint::STATE_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    tensile_foundry::checkpoint::latest(&path.join("checkpoints")).or_else(|| tensile_foundry::checkpoint::latest(path)).with_context(|| {
        format!("no checkpoint at {} (a folder with {} or a run folder with checkpoints/)", path.display(), tensile_foundry::checkpoint::STATE_FILE)
    })
}

pub fn evaluate(args: &EvaluateArgs) -> Result<u8> {
    let device = tensile::device::parse_device(&args.device)?;
    let dir = checkpoint_dir(&args.checkpoint)?;
    let ck = trainer::load_checkpoint(&dir, &device)?;
    let loaded = ck.loaded_config();
    let data_dir = loaded.resolve(&loaded.config.data.output_dir);
    let manifest = tensile_foundry::preprocess::read_manifest(&data_dir)
        .with_context(|| format!("the checkpoint's data folder {} is not prepared", data_dir.display()))?;
    let library = loaded.config.library_config(manifest.vocab_size)?;
    let model = tensile_foundry::model::TrainModel::from_tensors(&library, ck.weights, &device)?;
    let task = trainer::task_for(&loaded, &data_dir)?;
    let validation = std::sync::Arc::new(tensile_foundry::loader::Dataset::open(&data_dir, true)?);
    let loss = trainer::validation_loss(&model.net(candle_core::DType::F32)?, validation, &task, loaded.config.data.batch_size, args.batches, &device)?;
    println!("checkpoint {} (step {}): validation loss {loss:.4}, perplexity {:.2}", dir.display(), ck.state.step, loss.exp());
    Ok(EXIT_OK)
}

pub fn generate(args: &FoundryGenerateArgs) -> Result<u8> {
    let dir = checkpoint_dir(&args.checkpoint)?;
    let device = candle_core::Device::Cpu;
    let model =
        tensile_nn::load_pretrained(&dir, candle_core::DType::F32, &device).with_context(|| format!("failed to load the model in {}", dir.display()))?;
    let llama =
        model.as_llama().with_context(|| format!("{} holds a {}, which does not generate text (a causal LM does)", dir.display(), model.architecture()))?;
    let tokenizer = tensile_foundry::tokenizer::load(&dir.join("tokenizer.json"))?;
    let prompt = tokenizer.encode(args.prompt.as_str(), false).map_err(|e| anyhow::anyhow!("failed to tokenize the prompt: {e}"))?.get_ids().to_vec();
    let stop: Vec<u32> = tokenizer.token_to_id("</s>").into_iter().collect();
    let sampling = args.sampling.sampling()?;
    let max_tokens = args.sampling.max_tokens.min(llama.config().max_position_embeddings.saturating_sub(prompt.len()));
    let g = tensile_nn::generate::generate(llama, &prompt, max_tokens, &sampling, &stop, &device)?;
    let text = tokenizer.decode(&g.tokens, true).map_err(|e| anyhow::anyhow!("failed to decode: {e}"))?;
    println!("{}{}", args.prompt, text);
    eprintln!("{} tokens, {:.1} tokens/s", g.tokens.len(), g.tokens_per_second());
    Ok(EXIT_OK)
}

pub fn logs(args: &LogsArgs) -> Result<u8> {
    let loaded = tensile_foundry::config::load(&args.config)?;
    let dir = runlog::log_dir(&loaded);
    let logs = runlog::list_logs(&dir);
    if logs.is_empty() {
        println!("no log files in {}", dir.display());
    }
    for (path, size) in logs {
        println!("{size:>10}  {}", path.display());
    }
    Ok(EXIT_OK)
}

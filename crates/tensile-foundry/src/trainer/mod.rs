//! The trainer: AdamW over the model's f32 weights, gradient accumulation and clipping, a
//! warmup-then-decay schedule, mixed precision, a memory budget with a micro-batch fallback,
//! and checkpoints from which a run resumes bit for bit.
//!
//! Every random draw of a step is keyed by the experiment's seed and the step (dropout masks,
//! masked-LM masking) or the epoch (data order), so a checkpoint needs no generator state
//! beyond those seeds: resuming from step N replays steps N+1… exactly as an uninterrupted run
//! takes them.

mod checks;
mod eval;
mod events;
mod save;
mod setup;
mod state;
mod step;

pub use checks::module_tests;
pub use eval::{flops_per_token, matmul_rate, validation_loss};
pub use events::{StepReport, TrainEvent};
pub use save::{load_checkpoint, Checkpoint};
pub use state::{git_commit, now_utc, utc_timestamp, Environment, LossScale, RngState, ScheduleState, TrainerState, FORMAT};

use crate::checkpoint;
use crate::config::{ExperimentConfig, LoadedConfig, Objective, OnNan, Precision};
use crate::error::{Error, Result};
use crate::loader::{Dataset, Loader};
use crate::model::TrainModel;
use crate::objective::{self, Example, MaskTokens};
use crate::optim::{clip_to_norm, Schedule};
pub use crate::parallel::Group;
use crate::parallel::Solo;
use candle_core::{DType, Device};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use step::{PassError, PassSettings};
use tensile_nn::training::TrainingMode;

/// Where to resume from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// The checkpoint with the highest step in the run's folder.
    Latest,
    /// This checkpoint folder.
    From(PathBuf),
}

/// How to run the trainer, beyond the config.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The device to train on.
    pub device: Device,
    /// Continue from a checkpoint.
    pub resume: Option<Resume>,
    /// Train even without running (or passing) the module tests.
    pub skip_module_tests: bool,
    /// Stop after this step (with a checkpoint), as if interrupted there.
    pub stop_after: Option<u64>,
    /// Returns true when the run should stop (Ctrl-C); checked after every step.
    pub interrupted: fn() -> bool,
    /// The ranks training together ([`crate::parallel`]); one process alone by default.
    pub group: Group,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { device: Device::Cpu, resume: None, skip_module_tests: false, stop_after: None, interrupted: || false, group: Group::default() }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The last step taken.
    pub step: u64,
    /// The steps the run was to take.
    pub total_steps: u64,
    /// The first step's loss in this process.
    pub first_loss: Option<f64>,
    /// The last step's loss.
    pub loss: f64,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
    /// Whether the run stopped early (interrupted or `stop_after`).
    pub stopped_early: bool,
}

/// What is learned from a chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// The next token; padding is not predicted.
    Causal {
        /// The pad id.
        pad_id: u32,
    },
    /// Masked tokens.
    Masked {
        /// The ids masking needs.
        tokens: MaskTokens,
        /// The share of tokens chosen.
        probability: f64,
        /// Seed of the masking.
        seed: u64,
    },
}

impl Task {
    /// The example chunk `index` of step `step` becomes.
    pub fn example(&self, chunk: &[u32], step: u64, index: usize) -> Example {
        match *self {
            Task::Causal { pad_id } => objective::causal(chunk, pad_id),
            Task::Masked { tokens, probability, seed } => {
                let key = seed ^ step.wrapping_mul(crate::corpus::GOLDEN) ^ (index as u64).rotate_left(40);
                objective::masked(chunk, tokens, probability, &mut tensile_nn::init::rng_for(key, "masking"))
            }
        }
    }
}

/// The mean token loss and the summed gradients of one step over `examples`, run in
/// micro-batches of `micro_batch` examples in f32 without dropout: what the trainer computes
/// before clipping and the optimiser step. However `examples` is split, the result is the
/// same up to the order of the sums.
pub fn step_gradients(model: &TrainModel, examples: &[Example], micro_batch: usize) -> Result<(f64, crate::optim::Grads)> {
    let mode = TrainingMode::default();
    let s = PassSettings { micro_batch, dtype: DType::F32, mode: &mode, step: 1, loss_scale: 1.0, budget_bytes: None };
    match step::run(model, examples, &s, &Solo) {
        Ok(p) => Ok((p.loss, p.grads)),
        Err(PassError::Failed(e)) => Err(e),
        Err(PassError::OutOfMemory { .. }) => Err(Error::Invalid { field: "micro_batch", reason: "out of memory".into() }),
    }
}

/// The run's folder (`training.output_dir`).
pub fn run_dir(loaded: &LoadedConfig) -> PathBuf {
    loaded.resolve(&loaded.config.training.output_dir)
}

/// The run's checkpoint folder.
pub fn checkpoints_dir(loaded: &LoadedConfig) -> PathBuf {
    run_dir(loaded).join("checkpoints")
}

/// The steps that get a checkpoint: every `checkpoint_every`, the first `early_checkpoints`
/// powers of two, the listed `checkpoint_steps`, and the last step.
pub fn checkpoint_steps(c: &ExperimentConfig, total: u64) -> BTreeSet<u64> {
    let t = &c.training;
    let mut s: BTreeSet<u64> = t.checkpoint_steps.iter().map(|&x| x as u64).filter(|&x| x >= 1 && x <= total).collect();
    if t.checkpoint_every > 0 {
        s.extend((1..=total / t.checkpoint_every as u64).map(|k| k * t.checkpoint_every as u64));
    }
    s.extend((0..t.early_checkpoints as u32).map(|i| 1u64 << i).filter(|&x| x <= total));
    s.insert(total);
    s
}

/// The task, from the config and the prepared data's tokenizer.
pub fn task_for(loaded: &LoadedConfig, data_dir: &Path) -> Result<Task> {
    let c = &loaded.config;
    let manifest = crate::preprocess::read_manifest(data_dir)?;
    Ok(match c.objective() {
        Objective::CausalLm => Task::Causal { pad_id: manifest.pad_id },
        Objective::MaskedLm => {
            let tokenizer = crate::tokenizer::load(&data_dir.join(&manifest.tokenizer))?;
            let specials = c.special_tokens();
            let mut top = 0;
            for s in &specials {
                top = top.max(crate::tokenizer::special_id(&tokenizer, s)? + 1);
            }
            let mask_id = crate::tokenizer::special_id(&tokenizer, "<mask>")?;
            Task::Masked {
                tokens: MaskTokens { mask_id, specials: top, vocab: manifest.vocab_size as u32 },
                probability: c.training.mlm_probability,
                seed: RngState::from_seed(c.random_seed).masking_seed,
            }
        }
    })
}

fn dtype_of(p: Precision) -> DType {
    match p {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
        Precision::F16 => DType::F16,
    }
}

/// Trains as `loaded` describes, reporting to `on_event`.
///
/// # Errors
/// Data not prepared, a checkpoint that does not fit the config, a failing module test, a
/// non-finite loss with `on_nan = "stop"`, a write that fails.
pub fn train(loaded: &LoadedConfig, opts: &TrainOptions, on_event: &mut dyn FnMut(&TrainEvent)) -> Result<Outcome> {
    let c = &loaded.config;
    let t = &c.training;
    let device = &opts.device;
    let data_dir = loaded.resolve(&c.data.output_dir);
    if !data_dir.join("manifest.json").is_file() {
        return Err(Error::Data { path: data_dir, reason: "no prepared data here (run `tensile foundry preprocess --config …` first)".into() });
    }
    let manifest = crate::preprocess::read_manifest(&data_dir)?;
    let library = c.library_config(manifest.vocab_size)?;
    let task = task_for(loaded, &data_dir)?;
    let train_data = Arc::new(Dataset::open(&data_dir, false)?);
    if train_data.is_empty() {
        return Err(Error::Data { path: data_dir, reason: "the training split has no chunk".into() });
    }
    let validation = Arc::new(Dataset::open(&data_dir, true)?);
    let total = c.train_steps(train_data.len()) as u64;
    let schedule = Schedule { peak: t.learning_rate, warmup: c.warmup_steps(total as usize), total: total as usize, decay: t.lr_scheduler };
    let root = checkpoints_dir(loaded);
    let group = opts.group.0.as_ref();
    // Rank 0 alone writes (and tidies) checkpoints; every rank reads the one resumed from.
    let lead = group.rank() == 0;
    let removed = if lead { checkpoint::remove_unfinished(&root)? } else { 0 };
    if removed > 0 {
        on_event(&TrainEvent::Note { message: format!("removed {removed} unfinished checkpoint write(s) in {}", root.display()) });
    }

    let (model, mut optimizer, mut state) = setup::start(loaded, &library, opts, &root, &schedule, total, on_event)?;
    // The seeds the run started with (a resume checked that they are this config's).
    let rng = state.rng;
    let predicted = crate::config::predicted_parameters(c, manifest.vocab_size)?;
    if opts.skip_module_tests {
        on_event(&TrainEvent::Note { message: "module tests skipped (--skip-module-tests)".into() });
    } else if lead {
        let n = module_tests(&model.net(DType::F32)?, &c.experiment_name)?;
        on_event(&TrainEvent::Note { message: format!("module tests passed: {n} modules of layer 0 (correctness and gradients against the float64 twin)") });
    }
    if c.model.attention_implementation == crate::config::AttentionImplementation::Fused {
        on_event(&TrainEvent::Note {
            message: "attention_implementation = \"fused\": candle's fused softmax, norms and RoPE have no backward, so training uses their differentiable compositions".into(),
        });
    }

    let mut loader = Loader::new(train_data.clone(), c.data.batch_size, c.data.shuffle, rng.data_seed);
    loader.resume(state.position);
    let effective = c.data.batch_size * t.gradient_accumulation_steps;
    let seq_in = match task {
        Task::Causal { .. } => c.data.max_sequence_length - 1,
        Task::Masked { .. } => c.data.max_sequence_length,
    };
    let rate = matmul_rate(device)?;
    let flops_token = flops_per_token(model.parameter_count(), c.model.num_hidden_layers, c.model.hidden_size, seq_in);
    on_event(&TrainEvent::Started {
        experiment: c.experiment_name.clone(),
        first_step: state.step + 1,
        total_steps: total,
        parameters: model.parameter_count(),
        predicted_parameters: predicted,
        tokens_per_step: effective * seq_in,
        matmul_flops: rate,
    });
    let saves = checkpoint_steps(c, total);
    let mode = TrainingMode { dropout: c.model.dropout, attention_dropout: c.model.attention_dropout, seed: rng.dropout_seed };
    let dtype = dtype_of(t.precision);
    let budget = t.memory_budget_mb.map(|mb| (mb * 1024.0 * 1024.0) as usize);
    let vars: Vec<candle_core::Var> = model.parameters().iter().map(|(_, v)| v.clone()).collect();
    let mut outcome =
        Outcome { step: state.step, total_steps: total, first_loss: None, loss: state.loss.unwrap_or(f64::NAN), checkpoint: None, stopped_early: false };

    while state.step < total {
        let started = Instant::now();
        let step = state.step + 1;
        let mut chunks = Vec::with_capacity(effective);
        for _ in 0..t.gradient_accumulation_steps {
            chunks.extend(loader.next_batch().map(|b| b.chunks).unwrap_or_default());
        }
        let examples: Vec<Example> = chunks.iter().enumerate().map(|(i, ch)| task.example(ch, step, i)).collect();
        let scale = state.loss_scale.map_or(1.0, |s| s.scale);
        let base = PassSettings { micro_batch: state.micro_batch, dtype, mode: &mode, step, loss_scale: scale, budget_bytes: budget };
        let passes = step::run_with_fallback(&model, &examples, base, &mut state.micro_batch, t.memory_budget_mb, group, on_event)?;
        let mut grads = passes.grads;
        if scale != 1.0 {
            grads.scale(1.0 / scale)?;
        }
        let lr = schedule.lr(step as usize - 1);
        let norm = crate::optim::global_norm(&vars, &grads)?;
        let finite = passes.loss.is_finite() && norm.is_finite();
        if let Some(s) = state.loss_scale.as_mut() {
            s.update(finite);
        }
        let skipped = !finite;
        if !finite {
            let (what, value) = if passes.loss.is_finite() { ("gradient norm", norm) } else { ("loss", passes.loss) };
            if t.on_nan == OnNan::Stop && t.precision != Precision::F16 {
                return Err(Error::NonFinite { step, what, value });
            }
            state.skipped_steps += 1;
            on_event(&TrainEvent::Note { message: format!("step {step}: the {what} is {value}; its update was dropped") });
        } else {
            clip_to_norm(&mut grads, norm, t.max_grad_norm)?;
            optimizer.step(&grads, lr)?;
        }
        let tokens = (examples.len() * seq_in) as u64;
        state.step = step;
        state.tokens_seen += tokens;
        state.loss = passes.loss.is_finite().then_some(passes.loss);
        state.learning_rate = lr;
        state.position = loader.position();
        let seconds = started.elapsed().as_secs_f64();
        let tps = tokens as f64 / seconds.max(1e-9);
        outcome.first_loss.get_or_insert(passes.loss);
        (outcome.step, outcome.loss) = (step, passes.loss);
        on_event(&TrainEvent::Step(StepReport {
            step,
            total_steps: total,
            loss: passes.loss,
            learning_rate: lr,
            grad_norm: norm,
            clipped: finite && norm > t.max_grad_norm,
            tokens_per_second: tps,
            mfu: tps * flops_token / (rate * group.world_size() as f64),
            tokens_seen: state.tokens_seen,
            peak_mb: passes.peak_bytes.map(|b| b as f64 / 1048576.0),
            micro_batch: state.micro_batch,
            accumulation: examples.len().div_ceil(state.micro_batch),
            skipped,
            seconds,
            exchange_seconds: passes.exchange_seconds,
            ranks: group.world_size(),
        }));
        let mut stop = opts.stop_after.is_some_and(|s| step >= s) || (opts.interrupted)();
        if group.world_size() > 1 {
            // A stop on any rank (Ctrl-C reaches them at different times) stops every rank
            // after the same step, so none waits for a step the others never take.
            stop = group.max_u64(u64::from(stop))? == 1;
        }
        let save_now = lead && (saves.contains(&step) || stop);
        let eval_now = if t.eval_every > 0 { step % t.eval_every as u64 == 0 || step == total } else { saves.contains(&step) || stop };
        if lead && eval_now && !validation.is_empty() {
            let loss = validation_loss(&model.net(DType::F32)?, validation.clone(), &task, c.data.batch_size, t.eval_batches, device)?;
            if loss.is_finite() {
                state.validation = Some((step, loss));
                if state.best.is_none_or(|(_, b)| loss < b) {
                    state.best = Some((step, loss));
                }
            }
            on_event(&TrainEvent::Evaluated { step, loss, perplexity: loss.exp() });
        }
        if save_now {
            let path = save::save_checkpoint(loaded, &root, &model, &optimizer, &mut state, &data_dir.join(&manifest.tokenizer))?;
            on_event(&TrainEvent::Checkpoint { step, path: path.clone() });
            outcome.checkpoint = Some(path);
            let removed = checkpoint::prune(&root, t.keep_checkpoints, state.best.map(|(s, _)| s))?;
            if !removed.is_empty() {
                on_event(&TrainEvent::Note {
                    message: format!("removed checkpoints of steps {removed:?} (keeping the newest {} and the best)", t.keep_checkpoints),
                });
            }
        }
        if stop && step < total {
            outcome.stopped_early = true;
            break;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(training: &str) -> ExperimentConfig {
        let text = format!(
            "experiment_name = \"t\"\n[data]\nsources = [\"x\"]\noutput_dir = \"d\"\nmax_sequence_length = 8\nbatch_size = 2\n[tokenizer]\noutput_dir = \"t\"\n\
             [model]\narchitecture = \"llama\"\nnum_hidden_layers = 1\nhidden_size = 8\nintermediate_size = 8\nnum_attention_heads = 2\n\
             [training]\nlearning_rate = 1e-3\ntrain_steps = 100\noutput_dir = \"r\"\n{training}\n"
        );
        crate::config::parse(&text, Path::new("t.toml")).unwrap().config
    }

    #[test]
    fn the_checkpoint_steps_combine_every_rule_and_always_include_the_last() {
        let steps = |t: &str, total| checkpoint_steps(&config(t), total).into_iter().collect::<Vec<_>>();
        assert_eq!(steps("", 100), vec![100]);
        assert_eq!(steps("checkpoint_every = 30", 100), vec![30, 60, 90, 100]);
        assert_eq!(steps("early_checkpoints = 4\ncheckpoint_every = 50", 100), vec![1, 2, 4, 8, 50, 100]);
        assert_eq!(steps("checkpoint_steps = [0, 3, 7, 500]", 100), vec![3, 7, 100], "out-of-range steps are ignored");
        assert_eq!(steps("early_checkpoints = 10", 20), vec![1, 2, 4, 8, 16, 20]);
    }

    #[test]
    fn examples_follow_the_task() {
        let causal = Task::Causal { pad_id: 0 };
        assert_eq!(causal.example(&[4, 5, 6], 1, 0).targets, vec![5, 6]);
        let masked = Task::Masked { tokens: MaskTokens { mask_id: 4, specials: 5, vocab: 50 }, probability: 0.5, seed: 1 };
        let chunk: Vec<u32> = (5..45).collect();
        assert_eq!(masked.example(&chunk, 3, 1), masked.example(&chunk, 3, 1), "a step and an index fix the masking");
        assert_ne!(masked.example(&chunk, 3, 1), masked.example(&chunk, 4, 1), "another step masks otherwise");
        assert_ne!(masked.example(&chunk, 3, 1), masked.example(&chunk, 3, 2), "and another chunk");
    }
}

//! What the trainer reports as it goes. The trainer computes; whoever listens (the console's
//! progress bar, the log files) only renders.

use serde::Serialize;
use std::path::PathBuf;

/// One report of the trainer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// Training is about to start (or resume).
    Started {
        /// The experiment.
        experiment: String,
        /// The first step to run.
        first_step: u64,
        /// The last step.
        total_steps: u64,
        /// Parameters of the model.
        parameters: usize,
        /// Parameters the config predicts.
        predicted_parameters: usize,
        /// Input tokens per step.
        tokens_per_step: usize,
        /// The measured f32 matmul rate the MFU is relative to, in FLOP/s.
        matmul_flops: f64,
    },
    /// Something worth a line in the log (a fallback taken, a resume, a pruned checkpoint).
    Note {
        /// The message.
        message: String,
    },
    /// A step finished.
    Step(StepReport),
    /// The validation loss was computed.
    Evaluated {
        /// After this step.
        step: u64,
        /// Mean token loss.
        loss: f64,
        /// `exp(loss)`.
        perplexity: f64,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// After this step.
        step: u64,
        /// Its folder.
        path: PathBuf,
    },
}

/// The numbers of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// The step, from 1.
    pub step: u64,
    /// The last step.
    pub total_steps: u64,
    /// Mean token loss.
    pub loss: f64,
    /// The learning rate it ran at.
    pub learning_rate: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether clipping scaled the gradients down.
    pub clipped: bool,
    /// Input tokens per second over this step.
    pub tokens_per_second: f64,
    /// Model FLOPs utilisation: achieved FLOP/s (6N + 12·L·h·T per token) over the measured
    /// matmul rate.
    pub mfu: f64,
    /// Input tokens seen so far.
    pub tokens_seen: u64,
    /// Peak memory of a micro-batch, in MiB, where measured.
    pub peak_mb: Option<f64>,
    /// Chunks per micro-batch.
    pub micro_batch: usize,
    /// Micro-batches in the step.
    pub accumulation: usize,
    /// Whether the update was dropped (non-finite loss or gradients).
    pub skipped: bool,
    /// Seconds the step took.
    pub seconds: f64,
    /// Seconds of the step spent exchanging gradients with the other ranks (0 alone).
    pub exchange_seconds: f64,
    /// Ranks that took the step together.
    pub ranks: usize,
}

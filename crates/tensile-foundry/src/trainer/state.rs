//! What a checkpoint records beside the weights and the optimiser's moments: everything else
//! the next step depends on, and where the run came from.

use crate::loader::Position;
use crate::optim::Decay;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of [`TrainerState`]'s layout.
pub const FORMAT: u32 = 1;

/// The trainer's state after a step, written as `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Optimiser steps taken.
    pub step: u64,
    /// Steps the run is to take.
    pub total_steps: u64,
    /// Input tokens consumed.
    pub tokens_seen: u64,
    /// The last step's loss (`None` when it was not finite).
    pub loss: Option<f64>,
    /// The last step's learning rate.
    pub learning_rate: f64,
    /// Where the loader stands: the next step's first batch.
    pub position: Position,
    /// Chunks per micro-batch now (halved after a step over the memory budget).
    pub micro_batch: usize,
    /// Steps whose update was dropped (`on_nan = "skip"`, f16 overflow).
    pub skipped_steps: u64,
    /// The f16 loss scaler, when training in f16.
    pub loss_scale: Option<LossScale>,
    /// The latest finite validation loss and the step it was computed at.
    pub validation: Option<(u64, f64)>,
    /// The best validation loss so far and its step.
    pub best: Option<(u64, f64)>,
    /// The random streams: every draw is keyed by this seed and the step (dropout masks,
    /// masking) or the epoch (data order), so the seed and the step restore them exactly.
    pub rng: RngState,
    /// The learning-rate schedule.
    pub schedule: ScheduleState,
    /// When the checkpoint was written, UTC (`2026-12-02T10:00:00Z`).
    pub timestamp: String,
    /// The config file the run was started with (its relative paths are relative to it).
    pub config_path: std::path::PathBuf,
    /// The git commit of the folder the config lives in, if it is a repository.
    pub git_commit: Option<String>,
    /// The machine and software that trained.
    pub environment: Environment,
}

/// The seeds of every random stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    /// The experiment's `random_seed`.
    pub seed: u64,
    /// Seed of the dropout masks, drawn per (step, micro-batch).
    pub dropout_seed: u64,
    /// Seed of the data order, drawn per epoch.
    pub data_seed: u64,
    /// Seed of the masked-LM masking, drawn per (step, chunk).
    pub masking_seed: u64,
}

impl RngState {
    /// The streams of experiment seed `seed`, each its own SplitMix64 derivation.
    pub fn from_seed(seed: u64) -> Self {
        let derive = |k: u64| crate::corpus::splitmix64(seed ^ k.wrapping_mul(crate::corpus::GOLDEN));
        Self { seed, dropout_seed: derive(1), data_seed: derive(2), masking_seed: derive(3) }
    }
}

/// The learning-rate schedule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// Total steps.
    pub total: usize,
    /// Decay after warmup.
    pub decay: Decay,
}

/// Dynamic loss scaling for f16: the loss is multiplied by `scale` before the backward pass
/// so that small gradients do not flush to zero; a step whose gradients overflow is dropped
/// and the scale halved, and after [`LossScale::GROWTH_INTERVAL`] clean steps it doubles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The current factor.
    pub scale: f64,
    /// Clean steps since the last change.
    pub clean_steps: u64,
}

impl LossScale {
    /// Clean steps before the scale doubles (PyTorch's `GradScaler` default).
    pub const GROWTH_INTERVAL: u64 = 2000;

    /// Updates the scale after a step: `true` if the step's gradients were finite.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.clean_steps = 0;
        }
    }
}

/// A snapshot of the machine and build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// tensile-foundry's version.
    pub version: String,
    /// Operating system and architecture.
    pub os: String,
    /// The CPU model, from `/proc/cpuinfo` where there is one.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// The device trained on.
    pub device: String,
    /// Instruction-set and library features candle was built with.
    pub features: Vec<String>,
}

impl Environment {
    /// The current machine, training on `device`.
    pub fn current(device: &candle_core::Device) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let mut features = Vec::new();
        for (on, name) in [
            (candle_core::utils::with_avx(), "avx"),
            (candle_core::utils::with_f16c(), "f16c"),
            (candle_core::utils::with_neon(), "neon"),
            (candle_core::utils::with_simd128(), "simd128"),
            (candle_core::utils::cuda_is_available(), "cuda"),
            (candle_core::utils::has_mkl(), "mkl"),
        ] {
            if on {
                features.push(name.to_string());
            }
        }
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: format!("{device:?}"),
            features,
        }
    }
}

/// The commit checked out in the repository holding `dir`, if any.
pub fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git").arg("-C").arg(dir).args(["rev-parse", "HEAD"]).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `secs` since the Unix epoch as an ISO 8601 UTC timestamp (days to civil date after
/// Howard Hinnant's algorithm).
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Now, as [`utc_timestamp`].
pub fn now_utc() -> String {
    utc_timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        // `date -u -d @1764633600` → 2025-12-02 00:00:00; a leap day and the end of a year.
        assert_eq!(utc_timestamp(1_764_633_600), "2025-12-02T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(utc_timestamp(1_704_067_199), "2023-12-31T23:59:59Z");
    }

    #[test]
    fn the_loss_scale_halves_on_overflow_and_grows_after_clean_steps() {
        let mut s = LossScale { scale: 1024.0, clean_steps: 5 };
        s.update(false);
        assert_eq!(s, LossScale { scale: 512.0, clean_steps: 0 });
        for _ in 0..LossScale::GROWTH_INTERVAL {
            s.update(true);
        }
        assert_eq!(s, LossScale { scale: 1024.0, clean_steps: 0 });
        let mut floor = LossScale { scale: 1.0, clean_steps: 0 };
        floor.update(false);
        assert_eq!(floor.scale, 1.0, "never below 1");
    }

    #[test]
    fn seeds_differ_per_stream_and_follow_the_experiment_seed() {
        let a = RngState::from_seed(1);
        assert_eq!(a, RngState::from_seed(1));
        assert_ne!(a.dropout_seed, a.data_seed);
        assert_ne!(a.data_seed, RngState::from_seed(2).data_seed);
        let env = Environment::current(&candle_core::Device::Cpu);
        assert!(env.cpus >= 1 && env.device.contains("Cpu"));
    }
}

//! The model, the optimiser and the trainer's state at the start of a run: fresh from the
//! seed, or read from the checkpoint to resume from.

use super::{load_checkpoint, Environment, LossScale, Resume, RngState, ScheduleState, TrainEvent, TrainOptions, TrainerState, FORMAT};
use crate::checkpoint;
use crate::config::{LibraryConfig, LoadedConfig, Precision};
use crate::error::{Error, Result};
use crate::loader::Position;
use crate::model::TrainModel;
use crate::optim::{AdamW, AdamWConfig, Schedule};
use std::path::Path;

/// The model, the optimiser and the state to train from.
pub(super) fn start(
    loaded: &LoadedConfig,
    library: &LibraryConfig,
    opts: &TrainOptions,
    root: &Path,
    schedule: &Schedule,
    total: u64,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<(TrainModel, AdamW, TrainerState)> {
    let c = &loaded.config;
    let t = &c.training;
    let device = &opts.device;
    let adamw = AdamWConfig { betas: t.betas, eps: t.eps, weight_decay: t.weight_decay, decay_vectors: t.decay_norms_and_biases };
    let resume_from = match &opts.resume {
        None => None,
        Some(Resume::From(p)) => Some(p.clone()),
        Some(Resume::Latest) => {
            Some(checkpoint::latest(root).ok_or_else(|| Error::Checkpoint { path: root.to_path_buf(), reason: "no checkpoint to resume from".into() })?)
        }
    };
    if let Some(dir) = &resume_from {
        let ck = load_checkpoint(dir, device)?;
        if ck.config.model != c.model || ck.config.data.max_sequence_length != c.data.max_sequence_length || ck.config.random_seed != c.random_seed {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                reason: "it was trained with another [model], sequence length or seed than this config".into(),
            });
        }
        let model = TrainModel::from_tensors(library, ck.weights, device)?;
        let mut optimizer = AdamW::new(model.parameters().to_vec(), adamw)?;
        optimizer.load_state(&ck.optimizer)?;
        on_event(&TrainEvent::Note { message: format!("resumed from {} at step {}", dir.display(), ck.state.step) });
        return Ok((model, optimizer, ck.state));
    }
    let model = TrainModel::new(library, c.random_seed, device)?;
    let optimizer = AdamW::new(model.parameters().to_vec(), adamw)?;
    let state = TrainerState {
        format: FORMAT,
        step: 0,
        total_steps: total,
        tokens_seen: 0,
        loss: None,
        learning_rate: 0.0,
        position: Position::default(),
        micro_batch: c.data.batch_size,
        skipped_steps: 0,
        loss_scale: (t.precision == Precision::F16).then_some(LossScale { scale: t.loss_scale, clean_steps: 0 }),
        validation: None,
        best: None,
        rng: RngState::from_seed(c.random_seed),
        schedule: ScheduleState { peak: schedule.peak, warmup: schedule.warmup, total: schedule.total, decay: schedule.decay },
        timestamp: String::new(),
        config_path: std::path::absolute(&loaded.path).unwrap_or_else(|_| loaded.path.clone()),
        git_commit: None,
        environment: Environment::current(device),
    };
    Ok((model, optimizer, state))
}

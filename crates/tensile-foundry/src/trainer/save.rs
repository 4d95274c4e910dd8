//! Writing and reading a whole training state as a checkpoint folder:
//!
//! | file | contents |
//! |---|---|
//! | `config.json`, `model.safetensors` | the model in Hugging Face layout (f32) |
//! | `optimizer.safetensors` | AdamW's moments (`{name}.exp_avg`, `{name}.exp_avg_sq`) and `step` |
//! | `tokenizer.json` | the tokenizer the data was made with |
//! | `experiment.toml` | the experiment config |
//! | `trainer_state.json` | [`TrainerState`]: step, loader position, schedule, seeds, metadata (written last) |

use super::state::{git_commit, now_utc, Environment, TrainerState};
use crate::checkpoint::{self, STATE_FILE};
use crate::config::{ExperimentConfig, LoadedConfig};
use crate::error::{Error, Result};
use crate::model::TrainModel;
use crate::optim::AdamW;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A checkpoint read back.
pub struct Checkpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// The trainer's state.
    pub state: TrainerState,
    /// The experiment config it was trained with.
    pub config: ExperimentConfig,
    /// The weights by name.
    pub weights: HashMap<String, Tensor>,
    /// The optimiser state by name.
    pub optimizer: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// The config as loaded from its original file (relative paths resolve against it).
    pub fn loaded_config(&self) -> LoadedConfig {
        LoadedConfig { config: self.config.clone(), path: self.state.config_path.clone() }
    }
}

fn ck_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Writes the checkpoint of `state.step` under `root` (stamping its time, commit and
/// environment into `state`). Refuses weights that are not all finite, so a poisoned state
/// never becomes a checkpoint.
pub(crate) fn save_checkpoint(
    loaded: &LoadedConfig,
    root: &Path,
    model: &TrainModel,
    optimizer: &AdamW,
    state: &mut TrainerState,
    tokenizer: &Path,
) -> Result<PathBuf> {
    for (name, v) in model.parameters() {
        let finite = v.as_tensor().to_dtype(DType::F64)?.abs()?.sum_all()?.to_scalar::<f64>()?.is_finite();
        if !finite {
            return Err(ck_err(root, format!("not written: weight `{name}` is not finite at step {}", state.step)));
        }
    }
    state.timestamp = now_utc();
    state.git_commit = loaded.path.parent().and_then(|d| git_commit(if d.as_os_str().is_empty() { Path::new(".") } else { d }));
    state.environment = Environment::current(model.device());
    let step = state.step;
    checkpoint::save(root, step, |dir| {
        model.save(dir)?;
        checkpoint::hold_if_asked(step);
        let opt: HashMap<String, Tensor> = optimizer.state()?.into_iter().collect();
        candle_core::safetensors::save(&opt, dir.join("optimizer.safetensors"))?;
        std::fs::copy(tokenizer, dir.join("tokenizer.json")).map_err(|e| ck_err(tokenizer, e))?;
        let toml = toml::to_string(&loaded.config).map_err(|e| ck_err(dir, e))?;
        std::fs::write(dir.join("experiment.toml"), toml).map_err(|e| ck_err(dir, e))?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| ck_err(dir, e))?;
        std::fs::write(dir.join(STATE_FILE), json).map_err(|e| ck_err(dir, e))
    })
}

/// Reads the checkpoint in `dir` onto `device`.
///
/// # Errors
/// A missing or damaged file, naming it; a state of another format version.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let state_path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&state_path).map_err(|e| ck_err(&state_path, format!("cannot read it ({e}); is this a checkpoint folder?")))?;
    let state: TrainerState = serde_json::from_slice(&bytes).map_err(|e| ck_err(&state_path, e))?;
    if state.format != super::FORMAT {
        return Err(ck_err(&state_path, format!("format {} (this version reads {})", state.format, super::FORMAT)));
    }
    let toml_path = dir.join("experiment.toml");
    let text = std::fs::read_to_string(&toml_path).map_err(|e| ck_err(&toml_path, e))?;
    let config = crate::config::parse(&text, &toml_path)?.config;
    let load = |name: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(name);
        candle_core::safetensors::load(&p, device).map_err(|e| ck_err(&p, tensile_nn::innermost_message(&e)))
    };
    Ok(Checkpoint { dir: dir.to_path_buf(), state, config, weights: load("model.safetensors")?, optimizer: load("optimizer.safetensors")? })
}

//! `--model PRESET|DIR|FILE.gguf | --spec FILE.toml`: where the module tests of `run` and
//! `coverage` come from.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tensile::presets::{self, Preset, Weights};
use tensile::ModuleTest;

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// Built-in preset (see `tensile list`), or a model on disk: a Hugging Face directory or a
    /// GGUF file, tested with its own config and real weights.
    #[arg(long)]
    model: Option<String>,
    /// TOML spec file with `[[test]]` entries; its coverage is compared with every preset.
    #[arg(long)]
    spec: Option<PathBuf>,
}

/// Options for a model on disk.
#[derive(Args)]
pub struct LayerArgs {
    /// Layers of a model on disk to test: `0` (the default), `all`, or a list such as 0,15,31.
    #[arg(long, value_name = "all|LIST")]
    layers: Option<String>,
    /// Compare every module of the model (a quantized GGUF, say) with the same module of this
    /// original checkpoint on the same input, at the quantization format's tolerance.
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub compare_with: Option<PathBuf>,
}

impl LayerArgs {
    pub fn layers(&self) -> Result<tensile::checkpoint::Layers> {
        match &self.layers {
            None => Ok(tensile::checkpoint::Layers::First),
            Some(s) => s.parse().map_err(|e: String| anyhow::anyhow!("invalid --layers: {e}")),
        }
    }
}

/// The sequence length of a model on disk's tests unless `--seq-len` says otherwise.
pub const DEFAULT_MODEL_SEQ: usize = 64;

/// The module tests of a source and what goes with them.
pub struct Loaded {
    pub tests: Vec<ModuleTest>,
    /// The preset's sequence length, or the default one for a spec file.
    pub default_seq: usize,
    /// `preset `NAME`` or `spec file PATH`, for messages.
    pub description: String,
    /// The presets whose modules the coverage report compares against: the one preset run,
    /// or every preset for a spec file or a model on disk.
    pub compare_with: Vec<&'static Preset>,
    /// The weights health of a model on disk.
    pub health: Option<tensile::health::Health>,
}

impl Source {
    /// The spec file, when the tests come from one.
    pub fn spec_path(&self) -> Option<PathBuf> {
        self.spec.clone()
    }

    /// Loads the tests; a preset's are built at `batch` × `seq_len` (default: its own) with
    /// `weights`. Spec files always carry their own seeded weights.
    pub fn load(&self, batch: usize, seq_len: Option<usize>, weights: Weights, model_args: &LayerArgs) -> Result<Loaded> {
        let layers = &model_args.layers()?;
        let on_disk = self.model.as_deref().is_some_and(|m| presets::find(m).is_err() && tensile::checkpoint::is_model_path(m));
        if model_args.compare_with.is_some() && !on_disk {
            anyhow::bail!("--compare-with needs --model DIR or FILE.gguf (a model on disk to compare)");
        }
        match (&self.model, &self.spec) {
            (Some(model), _) if on_disk => {
                let m = tensile::checkpoint::load_model(std::path::Path::new(model))?;
                let seq = seq_len.unwrap_or(DEFAULT_MODEL_SEQ);
                let mut tests = tensile::checkpoint::module_tests(&m, layers, batch, seq)?;
                if let Some(original) = &model_args.compare_with {
                    let o = tensile::checkpoint::load_model(original)?;
                    tensile::checkpoint::compare_with(&mut tests, &m, &o)?;
                }
                let health = tensile::health::check(&m.block.parameters())?;
                Ok(Loaded {
                    tests,
                    default_seq: DEFAULT_MODEL_SEQ,
                    description: m.description,
                    compare_with: presets::all().iter().collect(),
                    health: Some(health),
                })
            }
            (Some(model), _) => {
                let p =
                    presets::find(model).map_err(|e| anyhow::anyhow!("{e}; `{model}` is not a model directory (with config.json) or a .gguf file either"))?;
                let tests = p.module_tests_with(batch, seq_len.unwrap_or(p.seq_len), weights)?;
                Ok(Loaded { tests, default_seq: p.seq_len, description: format!("preset `{}`", p.name), compare_with: vec![p], health: None })
            }
            (None, Some(path)) => Ok(Loaded {
                tests: tensile::specfile::load(path)?,
                default_seq: tensile::Settings::default().seq_len,
                description: format!("spec file {}", path.display()),
                compare_with: presets::all().iter().collect(),
                health: None,
            }),
            (None, None) => anyhow::bail!("give --model PRESET or --spec FILE.toml"),
        }
    }
}

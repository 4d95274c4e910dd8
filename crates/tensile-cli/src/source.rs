//! `--model PRESET | --spec FILE.toml`: where the module tests of `run` and `coverage` come from.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tensile::presets::{self, Preset, Weights};
use tensile::ModuleTest;

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// Built-in preset (see `tensile list`).
    #[arg(long)]
    model: Option<String>,
    /// TOML spec file with `[[test]]` entries; its coverage is compared with every preset.
    #[arg(long)]
    spec: Option<PathBuf>,
}

/// The module tests of a source and what goes with them.
pub struct Loaded {
    pub tests: Vec<ModuleTest>,
    /// The preset's sequence length, or the default one for a spec file.
    pub default_seq: usize,
    /// `preset `NAME`` or `spec file PATH`, for messages.
    pub description: String,
    /// The presets whose modules the coverage report compares against: the one preset run,
    /// or every preset for a spec file.
    pub compare_with: Vec<&'static Preset>,
}

impl Source {
    /// The spec file, when the tests come from one.
    pub fn spec_path(&self) -> Option<PathBuf> {
        self.spec.clone()
    }

    /// Loads the tests; a preset's are built at `batch` × `seq_len` (default: its own) with
    /// `weights`. Spec files always carry their own seeded weights.
    pub fn load(&self, batch: usize, seq_len: Option<usize>, weights: Weights) -> Result<Loaded> {
        match (&self.model, &self.spec) {
            (Some(model), _) => {
                let p = presets::find(model)?;
                let tests = p.module_tests_with(batch, seq_len.unwrap_or(p.seq_len), weights)?;
                Ok(Loaded { tests, default_seq: p.seq_len, description: format!("preset `{}`", p.name), compare_with: vec![p] })
            }
            (None, Some(path)) => Ok(Loaded {
                tests: tensile::specfile::load(path)?,
                default_seq: tensile::Settings::default().seq_len,
                description: format!("spec file {}", path.display()),
                compare_with: presets::all().iter().collect(),
            }),
            (None, None) => anyhow::bail!("give --model PRESET or --spec FILE.toml"),
        }
    }
}

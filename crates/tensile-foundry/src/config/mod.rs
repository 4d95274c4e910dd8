//! The experiment config: one TOML file read into typed sections ([`ExperimentConfig`]),
//! validated field by field with errors at `file:line:col`, and the values derived from it
//! (training steps, warmup steps, the model's parameter count).

mod params;
mod sections;
mod validate;

pub use params::{predicted_parameters, LibraryConfig};
pub use sections::*;

use crate::error::{Error, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A loaded and validated config, with the file it came from (paths in it are relative to
/// that file's folder).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config.
    pub config: ExperimentConfig,
    /// The file.
    pub path: PathBuf,
}

impl LoadedConfig {
    /// `p` resolved against the config file's folder (absolute paths stay as they are).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.path.parent().map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
    }
}

/// Turns byte offsets of the file into `path:line:col` errors.
pub(crate) struct Locator<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Locator<'_> {
    pub(crate) fn err(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let start = span.start.min(self.text.len());
        let start = (0..=start).rev().find(|&i| self.text.is_char_boundary(i)).unwrap_or(0);
        let upto = &self.text[..start];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let message: String = message.into().lines().next().unwrap_or_default().to_string();
        Error::Config { path: self.path.to_path_buf(), line, col, message }
    }

    /// The span of the value at `keys` (`["model", "hidden_size"]`), or of the deepest table
    /// on the way that exists (a missing key is reported where its table is).
    pub(crate) fn span(&self, keys: &[&str]) -> Range<usize> {
        let Ok(root) = toml::de::DeTable::parse(self.text) else { return 0..0 };
        let mut span = 0..0;
        let mut table = Some(root.get_ref());
        for key in keys {
            let Some(value) = table.and_then(|t| t.get(*key)) else { break };
            span = value.span();
            table = value.get_ref().as_table();
        }
        span
    }
}

/// Reads and validates the config at `path`.
///
/// # Errors
/// A file that cannot be read, TOML that does not parse, a field of the wrong type, a
/// missing required field, an unknown key, or a value out of its range: each one line naming
/// `path:line:col` and the field.
pub fn load(path: &Path) -> Result<LoadedConfig> {
    let bytes = tensile_nn::files::read(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Config { path: path.to_path_buf(), line: 1, col: 1, message: format!("not UTF-8: {e}") })?;
    parse(&text, path)
}

/// Parses and validates config `text`; `path` is named in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<LoadedConfig> {
    let loc = Locator { path, text };
    let config: ExperimentConfig = toml::from_str(text).map_err(|e| loc.err(e.span().unwrap_or(0..0), e.message().to_string()))?;
    validate::validate(&config, &loc)?;
    Ok(LoadedConfig { config, path: path.to_path_buf() })
}

impl ExperimentConfig {
    /// The objective, defaulted from the architecture (Llama predicts the next token, the
    /// encoders masked tokens).
    pub fn objective(&self) -> Objective {
        self.model.objective.unwrap_or(match self.model.architecture {
            Architecture::Llama => Objective::CausalLm,
            _ => Objective::MaskedLm,
        })
    }

    /// The special tokens: the configured ones, or the objective's (`<pad>`, `<s>`, `</s>`,
    /// `<unk>`, and `<mask>` for a masked LM).
    pub fn special_tokens(&self) -> Vec<String> {
        if !self.tokenizer.special_tokens.is_empty() {
            return self.tokenizer.special_tokens.clone();
        }
        let mut t: Vec<String> = ["<pad>", "<s>", "</s>", "<unk>"].iter().map(|s| s.to_string()).collect();
        if self.objective() == Objective::MaskedLm {
            t.push("<mask>".into());
        }
        t
    }

    /// Optimiser steps: `train_steps`, or `epochs × ⌈chunks / (batch × accumulation)⌉` for a
    /// training set of `chunks` chunks.
    pub fn train_steps(&self, chunks: usize) -> usize {
        let t = &self.training;
        t.train_steps.unwrap_or_else(|| {
            let per_step = self.data.batch_size * t.gradient_accumulation_steps;
            t.epochs.unwrap_or(1) * chunks.div_ceil(per_step.max(1))
        })
    }

    /// Warmup steps: `warmup_steps`, or `⌈warmup_ratio × train_steps⌉` (transformers' rounding),
    /// or 0.
    pub fn warmup_steps(&self, train_steps: usize) -> usize {
        let t = &self.training;
        match (t.warmup_steps, t.warmup_ratio) {
            (Some(w), _) => w,
            (None, Some(r)) => (r * train_steps as f64).ceil() as usize,
            (None, None) => 0,
        }
    }
}

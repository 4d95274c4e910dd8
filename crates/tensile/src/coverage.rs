//! Configuration coverage as plain data: which block kinds, dtypes, devices, checks and
//! parameter values (hidden size, heads, sequence length, …) a plan exercises, and which
//! modules of the built-in presets (or of a model's own configuration) no case of the plan
//! covers.
//!
//! [`crate::plan::Plan::coverage`] computes it from a plan; the reporting layer compares it
//! with the presets or a model ([`crate::report::coverage`]) and renders it. It travels to
//! reporters in [`crate::Event::RunStarted`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The name under which sequence lengths (the input's and every sweep's) are listed.
pub const SEQ_LEN: &str = "seq_len";

/// What a plan exercises.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// One entry per module kind, sorted by kind.
    pub kinds: Vec<KindCoverage>,
    /// Modules of the targets compared against with no matching case (empty when nothing was
    /// compared).
    pub uncovered: Vec<Uncovered>,
    /// What was compared against, in order: preset names, or the model (`tensile coverage
    /// --model PATH --spec …`: the path as given). The field keeps its name for the format's
    /// sake.
    pub presets: Vec<String>,
}

/// What the plan exercises of one module kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindCoverage {
    /// Module kind (`llama.attention`).
    pub kind: String,
    /// Cases of this kind.
    pub cases: usize,
    /// Module test names.
    pub tests: BTreeSet<String>,
    /// Dtypes.
    pub dtypes: BTreeSet<String>,
    /// Devices.
    pub devices: BTreeSet<String>,
    /// Checks.
    pub checks: BTreeSet<String>,
    /// Distinct values of each configuration number, and of `seq_len`.
    pub dims: BTreeMap<String, BTreeSet<usize>>,
}

/// A module of a preset or model compared against that no case covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uncovered {
    /// The preset or model it belongs to, as in [`Coverage::presets`] (the field keeps its
    /// name for the format's sake).
    pub preset: String,
    /// Module test name within the preset or model. Modules of one target sharing a kind and
    /// configuration are listed once: the first one's name, then ` (+N more)`
    /// (`tiny-llama::model.layers.0.mlp (+29 more)`).
    pub test: String,
    /// Module kind.
    pub kind: String,
    /// Its configuration numbers.
    pub dims: BTreeMap<String, usize>,
}

impl KindCoverage {
    /// `min–max (n values)` of one configuration number, or `-` when absent.
    pub fn range(&self, dim: &str) -> String {
        match self.dims.get(dim) {
            Some(v) if !v.is_empty() => {
                let (lo, hi) = (v.first().copied().unwrap_or(0), v.last().copied().unwrap_or(0));
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}–{hi} ({} values)", v.len())
                }
            }
            _ => "-".to_string(),
        }
    }
}

/// Configuration numbers shown as columns, in order.
pub const COLUMNS: [&str; 5] = ["hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size", SEQ_LEN];

//! Configuration coverage: which block kinds, dtypes, devices, checks and parameter values
//! (hidden size, heads, sequence length, …) a plan exercises, and which modules of the
//! built-in presets no case of the plan covers.
//!
//! A preset module counts as covered when some case has the same kind and the same
//! configuration numbers ([`crate::TestModule::dims`]); dtypes and devices are not compared,
//! since the report lists those per kind.

use crate::device::dtype_name;
use crate::error::Result;
use crate::plan::Plan;
use crate::presets::{Preset, Weights};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The name under which sequence lengths (the input's and every sweep's) are listed.
pub const SEQ_LEN: &str = "seq_len";

/// What a plan exercises.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// One entry per module kind, sorted by kind.
    pub kinds: Vec<KindCoverage>,
    /// Preset modules with no matching case (empty when presets were not compared).
    pub uncovered: Vec<Uncovered>,
    /// Presets compared against, in order.
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

/// A preset module that no case covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uncovered {
    /// Preset name.
    pub preset: String,
    /// Module test name within the preset.
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

type Signature = (String, BTreeMap<String, usize>);

impl Coverage {
    /// The kinds, dtypes, devices, checks and parameter values of `plan`.
    pub fn of(plan: &Plan) -> Self {
        let mut kinds: BTreeMap<String, KindCoverage> = BTreeMap::new();
        for case in &plan.cases {
            let kind = case.module.kind().to_string();
            let k = kinds.entry(kind.clone()).or_insert_with(|| KindCoverage { kind, ..KindCoverage::default() });
            k.cases += 1;
            k.tests.insert(case.name.clone());
            k.dtypes.insert(dtype_name(case.dtype).to_string());
            k.devices.insert(case.device.clone());
            k.checks.extend(case.checks.iter().map(|c| c.name().to_string()));
            for (name, value) in case.module.dims() {
                k.dims.entry(name.to_string()).or_default().insert(value);
            }
            let seqs = k.dims.entry(SEQ_LEN.to_string()).or_default();
            seqs.insert(case.seq_len);
            if let Some(sweep) = &case.spec.sweep {
                seqs.extend(sweep.seq_lengths.iter().copied());
            }
        }
        Self { kinds: kinds.into_values().collect(), uncovered: Vec::new(), presets: Vec::new() }
    }

    /// Adds the modules of `presets` that no case of `plan` covers. The presets are built with
    /// zero weights (lazily mapped pages, so even the 8B layers cost no real memory).
    pub fn against_presets<'a>(mut self, plan: &Plan, presets: impl IntoIterator<Item = &'a Preset>) -> Result<Self> {
        let covered: BTreeSet<Signature> = plan.cases.iter().map(|c| signature(c.module.kind(), c.module.dims())).collect();
        for p in presets {
            self.presets.push(p.name.to_string());
            for t in p.module_tests_with(1, p.seq_len, Weights::Zeros)? {
                let sig = signature(t.module.kind(), t.module.dims());
                if !covered.contains(&sig) {
                    self.uncovered.push(Uncovered { preset: p.name.to_string(), test: t.name.clone(), kind: sig.0, dims: sig.1 });
                }
            }
        }
        Ok(self)
    }
}

/// Configuration numbers shown as columns, in order.
pub const COLUMNS: [&str; 5] = ["hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size", SEQ_LEN];

impl Coverage {
    /// A plain-text table of the kinds, then the uncovered preset modules.
    pub fn to_text(&self) -> String {
        let header = ["kind", "cases", "dtypes", "devices", "hidden", "heads", "kv heads", "intermediate", "seq len"];
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        let rows: Vec<Vec<String>> = self
            .kinds
            .iter()
            .map(|k| {
                let mut row = vec![k.kind.clone(), k.cases.to_string(), join(&k.dtypes), join(&k.devices)];
                row.extend(COLUMNS.iter().map(|c| k.range(c)));
                row
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("{}\n", s.join("  ").trim_end())
        };
        let mut out = line(header.iter().map(|h| h.to_string()).collect());
        for row in rows {
            out.push_str(&line(row));
        }
        if !self.presets.is_empty() {
            if self.uncovered.is_empty() {
                out.push_str(&format!("\nevery module of {} has a spec\n", self.presets.join(", ")));
            } else {
                out.push_str(&format!("\n{} preset modules without a spec:\n", self.uncovered.len()));
                for u in &self.uncovered {
                    let dims: Vec<String> = u.dims.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    out.push_str(&format!("  {}  {}  ({})\n", u.test, u.kind, dims.join(", ")));
                }
            }
        }
        out
    }
}

fn signature(kind: &str, dims: Vec<(&'static str, usize)>) -> Signature {
    (kind.to_string(), dims.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Settings;
    use crate::presets;

    #[test]
    fn a_preset_covers_itself_and_not_the_others() {
        let tiny = presets::find("tiny-llama").unwrap();
        let plan = Plan::new(&tiny.module_tests_with(1, 32, Weights::Zeros).unwrap(), &Settings { seq_len: 32, ..Settings::default() }).unwrap();
        let cov = Coverage::of(&plan).against_presets(&plan, [tiny, presets::find("tiny-bert").unwrap()]).unwrap();
        let kinds: Vec<&str> = cov.kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["llama.attention", "llama.decoder_layer", "llama.mlp", "llama.rms_norm"]);
        let attn = &cov.kinds[0];
        assert_eq!(attn.dims["hidden_size"], BTreeSet::from([256]));
        assert_eq!(attn.dims["num_key_value_heads"], BTreeSet::from([2]));
        // The input length and the sweep's lengths (32 capped at 256, times 1, 2, 4, 8).
        assert_eq!(attn.dims[SEQ_LEN], BTreeSet::from([32, 64, 128, 256]));
        assert_eq!(attn.range(SEQ_LEN), "32–256 (4 values)");
        assert_eq!(attn.range("hidden_size"), "256");
        assert_eq!(attn.range("absent"), "-");
        assert!(attn.dtypes.contains("f32") && attn.devices.contains("cpu") && attn.checks.contains("correctness"));
        // Every tiny-bert module is uncovered, no tiny-llama module is.
        assert_eq!(cov.presets, ["tiny-llama", "tiny-bert"]);
        assert_eq!(cov.uncovered.len(), 4, "{:?}", cov.uncovered);
        assert!(cov.uncovered.iter().all(|u| u.preset == "tiny-bert"));
        let layer = cov.uncovered.iter().find(|u| u.test == "tiny-bert::layer").unwrap();
        assert_eq!(layer.dims["hidden_size"], 128);
        assert_eq!(layer.kind, "bert.layer");
    }

    #[test]
    fn the_text_table_lists_kinds_ranges_and_uncovered_modules() {
        let tiny = presets::find("tiny-llama").unwrap();
        let tests = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap();
        let mlp_only: Vec<_> = tests.into_iter().filter(|t| t.name.ends_with("mlp")).collect();
        let plan = Plan::new(&mlp_only, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let text = Coverage::of(&plan).against_presets(&plan, [tiny]).unwrap().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("kind") && lines[0].ends_with("seq len"), "{text}");
        assert!(lines[1].starts_with("llama.mlp") && lines[1].contains("256") && lines[1].contains("688") && lines[1].contains("16–128 (4 values)"), "{text}");
        assert!(text.contains("3 preset modules without a spec:") && text.contains("tiny-llama::attention  llama.attention"), "{text}");
        let all = Plan::new(&tiny.module_tests_with(1, 16, Weights::Zeros).unwrap(), &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        assert!(Coverage::of(&all).against_presets(&all, [tiny]).unwrap().to_text().contains("every module of tiny-llama has a spec"));
    }

    #[test]
    fn another_hidden_size_does_not_cover_a_preset_module() {
        // The tiny-llama norm at hidden 256 does not cover a norm of another width.
        let tiny = presets::find("tiny-llama").unwrap();
        let tests = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap();
        let norm_only: Vec<_> = tests.into_iter().filter(|t| t.name.ends_with("norm")).collect();
        let plan = Plan::new(&norm_only, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let cov = Coverage::of(&plan).against_presets(&plan, [tiny]).unwrap();
        let missing: Vec<&str> = cov.uncovered.iter().map(|u| u.test.as_str()).collect();
        assert_eq!(missing, ["tiny-llama::attention", "tiny-llama::mlp", "tiny-llama::decoder_layer"]);
    }
}

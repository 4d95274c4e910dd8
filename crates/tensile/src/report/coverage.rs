//! Configuration coverage in the reporting layer: the comparison of a plan's coverage with the
//! modules of the built-in presets, and its plain-text table.
//!
//! A preset module counts as covered when some case has the same kind and the same
//! configuration numbers ([`crate::ModuleUnderTest::dims`]); dtypes and devices are not
//! compared, since the report lists those per kind. The presets' module tests arrive as data
//! (built by the caller, with zero weights), so reporting never reaches up to the front-ends.

use super::escape::visible_line;
use crate::coverage::{Coverage, Uncovered, COLUMNS};
use crate::plan::Plan;
use crate::spec::ModuleTest;
use std::collections::{BTreeMap, BTreeSet};

type Signature = (String, BTreeMap<String, usize>);

/// Adds to `coverage` (of `plan`) the modules of each `(preset name, module tests)` that no
/// case of `plan` covers, and lists the presets compared against.
pub fn against_presets<'a>(mut coverage: Coverage, plan: &Plan, presets: impl IntoIterator<Item = (&'a str, Vec<ModuleTest>)>) -> Coverage {
    let covered: BTreeSet<Signature> = plan.cases.iter().map(|c| signature(c.module.kind(), c.module.dims())).collect();
    for (preset, tests) in presets {
        coverage.presets.push(preset.to_string());
        for t in tests {
            let sig = signature(t.module.kind(), t.module.dims());
            if !covered.contains(&sig) {
                coverage.uncovered.push(Uncovered { preset: preset.to_string(), test: t.name.clone(), kind: sig.0, dims: sig.1 });
            }
        }
    }
    coverage
}

/// A plain-text table of the kinds, then the uncovered preset modules.
pub fn to_text(coverage: &Coverage) -> String {
    let header = ["kind", "cases", "dtypes", "devices", "hidden", "heads", "kv heads", "intermediate", "seq len"];
    let join = |s: &BTreeSet<String>| visible_line(&s.iter().cloned().collect::<Vec<_>>().join(",")).into_owned();
    let rows: Vec<Vec<String>> = coverage
        .kinds
        .iter()
        .map(|k| {
            // A custom module names its own kind: shown like any other outside text.
            let mut row = vec![visible_line(&k.kind).into_owned(), k.cases.to_string(), join(&k.dtypes), join(&k.devices)];
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
    if !coverage.presets.is_empty() {
        if coverage.uncovered.is_empty() {
            out.push_str(&format!("\nevery module of {} has a spec\n", coverage.presets.join(", ")));
        } else {
            out.push_str(&format!("\n{} preset modules without a spec:\n", coverage.uncovered.len()));
            for u in &coverage.uncovered {
                let dims: Vec<String> = u.dims.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out.push_str(&format!("  {}  {}  ({})\n", visible_line(&u.test), visible_line(&u.kind), dims.join(", ")));
            }
        }
    }
    out
}

fn signature(kind: &str, dims: Vec<(&'static str, usize)>) -> Signature {
    (kind.to_string(), dims.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage::SEQ_LEN;
    use crate::plan::Settings;
    use crate::presets::{self, Preset, Weights};

    fn zero<'a>(ps: impl IntoIterator<Item = &'a Preset>) -> Vec<(&'static str, Vec<ModuleTest>)> {
        presets::zero_weight_tests(ps).unwrap()
    }

    #[test]
    fn a_preset_covers_itself_and_not_the_others() {
        let tiny = presets::find("tiny-llama").unwrap();
        let plan = Plan::new(&tiny.module_tests_with(1, 32, Weights::Zeros).unwrap(), &Settings { seq_len: 32, ..Settings::default() }).unwrap();
        let cov = against_presets(plan.coverage(), &plan, zero([tiny, presets::find("tiny-bert").unwrap()]));
        let kinds: Vec<&str> = cov.kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["llama.attention", "llama.decoder_layer", "llama.mlp", "llama.rms_norm"]);
        let attn = &cov.kinds[0];
        assert_eq!(attn.dims["hidden_size"], BTreeSet::from([256]));
        assert_eq!(attn.dims["num_key_value_heads"], BTreeSet::from([2]));
        // The input length and attention's sweep (a quarter of 32 up to twice 32).
        assert_eq!(attn.dims[SEQ_LEN], BTreeSet::from([8, 16, 32, 64]));
        assert_eq!(attn.range(SEQ_LEN), "8–64 (4 values)");
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
        let text = to_text(&against_presets(plan.coverage(), &plan, zero([tiny])));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("kind") && lines[0].ends_with("seq len"), "{text}");
        assert!(lines[1].starts_with("llama.mlp") && lines[1].contains("256") && lines[1].contains("688") && lines[1].contains("4–32 (4 values)"), "{text}");
        assert!(text.contains("3 preset modules without a spec:") && text.contains("tiny-llama::attention  llama.attention"), "{text}");
        let all = Plan::new(&tiny.module_tests_with(1, 16, Weights::Zeros).unwrap(), &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        assert!(to_text(&against_presets(all.coverage(), &all, zero([tiny]))).contains("every module of tiny-llama has a spec"));
    }

    #[test]
    fn a_custom_kind_with_control_characters_is_shown_escaped() {
        let kind = crate::coverage::KindCoverage { kind: "mine\u{1b}[2J\u{202e}".into(), cases: 1, ..Default::default() };
        let text = to_text(&Coverage { kinds: vec![kind], ..Default::default() });
        assert!(text.contains("mine\\u{1b}[2J\\u{202e}") && !text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn another_hidden_size_does_not_cover_a_preset_module() {
        // The tiny-llama norm at hidden 256 does not cover a norm of another width.
        let tiny = presets::find("tiny-llama").unwrap();
        let tests = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap();
        let norm_only: Vec<_> = tests.into_iter().filter(|t| t.name.ends_with("norm")).collect();
        let plan = Plan::new(&norm_only, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let cov = against_presets(plan.coverage(), &plan, zero([tiny]));
        let missing: Vec<&str> = cov.uncovered.iter().map(|u| u.test.as_str()).collect();
        assert_eq!(missing, ["tiny-llama::attention", "tiny-llama::mlp", "tiny-llama::decoder_layer"]);
    }
}

//! Configuration coverage in the reporting layer: the comparison of a plan's coverage with the
//! modules of some targets (the built-in presets, or a model's own modules), and its
//! plain-text table.
//!
//! A target module counts as covered when some case has the same kind and the same
//! configuration numbers ([`crate::ModuleUnderTest::dims`]); dtypes and devices are not
//! compared, since the report lists those per kind. The targets' module tests arrive as data
//! (built by the caller, with zero weights or from a checkpoint's shapes), so reporting never
//! reaches up to the front-ends.

use super::escape::visible_line;
use crate::coverage::{Coverage, Uncovered, COLUMNS};
use crate::plan::Plan;
use crate::spec::ModuleTest;
use std::collections::{BTreeMap, BTreeSet};

type Signature = (String, BTreeMap<String, usize>);

/// Adds to `coverage` (of `plan`) the modules of each `(target name, module tests)` that no
/// case of `plan` covers, and lists the targets compared against. A target is a preset with
/// its zero-weight tests, or a model with the tests derived from its configuration.
///
/// Uncovered modules of one target that share a kind and configuration numbers (a model's
/// layers 1, 2, … identical to layer 0, or its norms of one width) are listed once, under the
/// first one's test name followed by ` (+N more)`. A preset's modules are all distinct, so
/// each is listed under its own name.
pub fn against_presets<'a>(mut coverage: Coverage, plan: &Plan, targets: impl IntoIterator<Item = (&'a str, Vec<ModuleTest>)>) -> Coverage {
    let covered: BTreeSet<Signature> = plan.cases.iter().map(|c| signature(c.module.kind(), c.module.dims())).collect();
    for (target, tests) in targets {
        coverage.presets.push(target.to_string());
        // The first test name of each uncovered configuration, how many more share it, in
        // the order of the target's tests.
        let mut missing: Vec<(String, Signature, usize)> = Vec::new();
        let mut seen: BTreeMap<Signature, usize> = BTreeMap::new();
        for t in tests {
            let sig = signature(t.module.kind(), t.module.dims());
            if covered.contains(&sig) {
                continue;
            }
            match seen.get(&sig) {
                Some(&i) => missing[i].2 += 1,
                None => {
                    seen.insert(sig.clone(), missing.len());
                    missing.push((t.name.clone(), sig, 0));
                }
            }
        }
        for (name, (kind, dims), more) in missing {
            let test = if more == 0 { name } else { format!("{name} (+{more} more)") };
            coverage.uncovered.push(Uncovered { preset: target.to_string(), test, kind, dims });
        }
    }
    coverage
}

/// A plain-text table of the kinds, then the uncovered modules of the targets compared
/// against.
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
            out.push_str(&format!("\nevery module of {} has a spec\n", visible_line(&coverage.presets.join(", "))));
        } else {
            let n = coverage.uncovered.len();
            let what = if n == 1 { "module configuration" } else { "module configurations" };
            out.push_str(&format!("\n{n} {what} of {} without a spec:\n", visible_line(&coverage.presets.join(", "))));
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
        assert!(
            text.contains("\n3 module configurations of tiny-llama without a spec:\n") && text.contains("tiny-llama::attention  llama.attention"),
            "{text}"
        );
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

    #[test]
    fn the_modules_of_a_target_sharing_a_configuration_are_listed_once() {
        // A model's layers: layer 1 repeats layer 0's MLP and norms, and a second norm of
        // the same width; only the other width's norm is a configuration of its own.
        let tiny = presets::find("tiny-llama").unwrap();
        let tests = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap();
        let (mlp, norm) = (tests.iter().find(|t| t.name.ends_with("mlp")).unwrap(), tests.iter().find(|t| t.name.ends_with("norm")).unwrap());
        let named = |t: &ModuleTest, name: &str| ModuleTest { name: name.into(), ..t.clone() };
        let model = vec![
            named(mlp, "m::layers.0.mlp"),
            named(norm, "m::layers.0.input_norm"),
            named(norm, "m::layers.0.post_norm"),
            named(mlp, "m::layers.1.mlp"),
            named(norm, "m::layers.1.input_norm"),
            named(norm, "m::layers.1.post_norm"),
            named(tests.iter().find(|t| t.name.ends_with("attention")).unwrap(), "m::layers.0.attn"),
        ];
        // The plan covers the attention only.
        let attn_only: Vec<_> = tests.iter().filter(|t| t.name.ends_with("attention")).cloned().collect();
        let plan = Plan::new(&attn_only, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let cov = against_presets(plan.coverage(), &plan, [("models/m", model)]);
        let listed: Vec<(&str, &str)> = cov.uncovered.iter().map(|u| (u.test.as_str(), u.kind.as_str())).collect();
        assert_eq!(listed, [("m::layers.0.mlp (+1 more)", "llama.mlp"), ("m::layers.0.input_norm (+3 more)", "llama.rms_norm")]);
        assert!(cov.uncovered.iter().all(|u| u.preset == "models/m"), "{:?}", cov.uncovered);
        assert_eq!(cov.presets, ["models/m"]);
        let text = to_text(&cov);
        assert!(text.contains("\n2 module configurations of models/m without a spec:\n"), "{text}");
        assert!(text.contains("  m::layers.0.mlp (+1 more)  llama.mlp  (hidden_size 256, intermediate_size 688)\n"), "{text}");
        assert!(!text.contains("layers.1"), "{text}");
    }

    #[test]
    fn the_same_configuration_in_two_targets_is_listed_for_each() {
        // Deduplication is per target: two presets sharing a module both name it.
        let tiny = presets::find("tiny-llama").unwrap();
        let norm_only: Vec<_> = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap().into_iter().filter(|t| t.name.ends_with("norm")).collect();
        let plan = Plan::new(&norm_only, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let cov = against_presets(plan.coverage(), &plan, zero([tiny, tiny]));
        assert_eq!(cov.uncovered.len(), 6, "{:?}", cov.uncovered);
        assert!(cov.uncovered.iter().all(|u| !u.test.contains("more")), "{:?}", cov.uncovered);
    }

    #[test]
    fn every_preset_module_is_listed_under_its_own_name() {
        // Against an empty plan, each preset module is its own configuration: the preset
        // comparison lists exactly the presets' module tests.
        let plan = Plan::new(&[], &Settings::default()).unwrap();
        let all = zero(presets::all());
        let expected: Vec<String> = all.iter().flat_map(|(_, tests)| tests.iter().map(|t| t.name.clone())).collect();
        let cov = against_presets(plan.coverage(), &plan, all);
        let listed: Vec<String> = cov.uncovered.iter().map(|u| u.test.clone()).collect();
        assert_eq!(listed, expected);
        let text = to_text(&cov);
        assert!(text.contains(&format!("\n{} module configurations of tiny-llama, ", expected.len())), "{text}");
    }

    #[test]
    fn a_target_name_with_control_characters_is_shown_escaped() {
        let tiny = presets::find("tiny-llama").unwrap();
        let tests = tiny.module_tests_with(1, 16, Weights::Zeros).unwrap();
        let plan = Plan::new(&tests, &Settings { seq_len: 16, ..Settings::default() }).unwrap();
        let text = to_text(&against_presets(plan.coverage(), &plan, [("dir\u{1b}[2J", tests.clone())]));
        assert!(text.contains("every module of dir\\u{1b}[2J has a spec") && !text.contains('\u{1b}'), "{text:?}");
        let none = Plan::new(&[], &Settings::default()).unwrap();
        let text = to_text(&against_presets(none.coverage(), &none, [("dir\u{1b}[2J", tests)]));
        assert!(text.contains("4 module configurations of dir\\u{1b}[2J without a spec:") && !text.contains('\u{1b}'), "{text:?}");
    }
}

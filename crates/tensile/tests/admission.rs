//! Admission control's predictions against what the memory check measures: a prediction must
//! never be below the real peak (a case it admits fits), and must not be so far above it that
//! healthy cases get refused.

use tensile::admission::predict;
use tensile::keys::Metric;
use tensile::presets::{self, Weights};
use tensile::runner::{run_with, RunOptions};
use tensile::{Check, Plan, Settings};

tensile::install_counting_allocator!();

#[test]
fn predictions_bound_the_measured_peak_from_above_within_a_small_factor() {
    for (preset, seq) in [("tiny-llama", 128), ("tiny-llama", 512), ("tiny-bert", 256)] {
        let p = presets::find(preset).unwrap();
        let tests = p.module_tests_with(2, seq, Weights::Seeded).unwrap();
        let settings = Settings { batch_size: 2, seq_len: seq, checks: Some(vec![Check::Memory]), ..Settings::default() };
        let plan = Plan::new(&tests, &settings).unwrap();
        let summary = run_with(&plan, &RunOptions::default(), &mut []);
        for (case, result) in plan.cases.iter().zip(&summary.cases) {
            let metrics = &result.checks[0].outcome.metrics;
            let measured = (metrics[&Metric::PeakMb] + metrics[&Metric::ParamMb]) * 1024.0 * 1024.0;
            let predicted = predict(case).total;
            assert!(predicted >= measured, "{preset} {} at seq {seq}: predicted {predicted} < measured {measured}", case.name);
            assert!(predicted <= 64.0 * measured, "{preset} {} at seq {seq}: predicted {predicted} is over 64× the measured {measured}", case.name);
        }
    }
}

#[test]
fn a_budget_fails_the_cases_over_it_and_runs_the_rest() {
    let p = presets::find("tiny-llama").unwrap();
    let tests = p.module_tests_with(1, 16, Weights::Seeded).unwrap();
    let settings = Settings { seq_len: 16, checks: Some(vec![Check::Correctness]), ..Settings::default() };
    let plan = Plan::new(&tests, &settings).unwrap();
    let norm = plan.cases.iter().find(|c| c.name.ends_with("norm")).unwrap();
    let layer = plan.cases.iter().find(|c| c.name.ends_with("decoder_layer")).unwrap();
    let (small, large) = (predict(norm).total, predict(layer).total);
    assert!(small < large);
    // A budget between the two: the norm runs, the layer is refused with its prediction.
    let options = RunOptions { max_memory: Some(tensile::admission::MemoryLimit::Bytes((small + large) / 2.0)), ..RunOptions::default() };
    let summary = run_with(&plan, &options, &mut []);
    for (case, result) in plan.cases.iter().zip(&summary.cases) {
        let fits = predict(case).total <= (small + large) / 2.0;
        assert_eq!(result.passed, fits, "{}: {:?}", case.name, result.checks[0].outcome.errors);
        if !fits {
            let e = &result.checks[0].outcome.errors[0];
            assert!(e.contains("predicted peak memory") && e.contains("--max-memory"), "{e}");
        }
    }
}

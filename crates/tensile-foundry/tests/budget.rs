//! A planted memory budget: a step over it is redone with half the micro-batch and twice the
//! accumulation, the effective batch and the loss curve stay the same, and the run goes on.
//! Alone in its test binary because the counting allocator measures the whole process.

tensile::install_counting_allocator!();

mod common;

use std::path::Path;
use tensile_foundry::config;
use tensile_foundry::trainer::{self, TrainEvent, TrainOptions};

fn experiment(out: &Path, batch: usize, extra: &str) -> config::LoadedConfig {
    let shape = common::Shape { seq: 32, batch, hidden: 64, intermediate: 128 };
    common::experiment(out, "llama", shape, "", &format!("train_steps = 4\ngradient_accumulation_steps = {}\n{extra}", 8 / batch))
}

fn run(c: &config::LoadedConfig) -> Vec<TrainEvent> {
    let mut events = Vec::new();
    trainer::train(c, &TrainOptions { skip_module_tests: true, ..TrainOptions::default() }, &mut |e| events.push(e.clone())).unwrap();
    events
}

fn steps(events: &[TrainEvent]) -> Vec<trainer::StepReport> {
    events.iter().filter_map(|e| if let TrainEvent::Step(s) = e { Some(s.clone()) } else { None }).collect()
}

#[test]
fn a_step_over_the_budget_halves_the_micro_batch_and_keeps_the_effective_batch() {
    assert!(tensile::alloc::is_installed());
    let peak = |batch: usize| {
        let d = tempfile::tempdir().unwrap();
        let s = steps(&run(&experiment(d.path(), batch, "")));
        s.iter().filter_map(|s| s.peak_mb).fold(0.0, f64::max)
    };
    let (p8, p4) = (peak(8), peak(4));
    assert!(p8 > p4 * 1.3, "a micro-batch of 8 needs clearly more than one of 4: {p8} vs {p4} MiB");
    let d = tempfile::tempdir().unwrap();
    let reference = steps(&run(&experiment(d.path(), 8, "")));
    let d = tempfile::tempdir().unwrap();
    let budget = (p8 + p4) / 2.0;
    let events = run(&experiment(d.path(), 8, &format!("memory_budget_mb = {budget}")));
    let note =
        events.iter().find_map(|e| if let TrainEvent::Note { message } = e { message.contains("micro-batch 8 → 4").then_some(message.clone()) } else { None });
    let note = note.expect("the fallback is logged");
    assert!(note.contains("accumulation 1 → 2") && note.contains("effective batch 8 unchanged"), "{note}");
    let budgeted = steps(&events);
    assert_eq!(budgeted.len(), 4, "the run went on to the end");
    for (a, b) in budgeted.iter().zip(&reference) {
        assert_eq!((a.micro_batch, a.accumulation), (4, 2));
        assert!(a.peak_mb.unwrap() <= budget, "step {}: {:?} MiB over {budget}", a.step, a.peak_mb);
        assert!((a.loss - b.loss).abs() < 1e-4 * b.loss, "step {}: {} vs {}", a.step, a.loss, b.loss);
    }
    // A budget below one chunk's need is an error naming the field, not a loop.
    let d = tempfile::tempdir().unwrap();
    let c = experiment(d.path(), 8, "memory_budget_mb = 0.001");
    let e = trainer::train(&c, &TrainOptions { skip_module_tests: true, ..TrainOptions::default() }, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("memory_budget_mb") && e.contains("one chunk per micro-batch"), "{e}");
}

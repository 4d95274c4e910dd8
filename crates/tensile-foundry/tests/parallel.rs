//! Data-parallel training with ranks as threads ([`LocalGroup`]): 2 and 3 ranks train bitwise
//! like one process, a run resumes bit-exactly with another world size, only rank 0 writes,
//! and a rank that fails stops the others instead of leaving them waiting.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tensile_foundry::config::LoadedConfig;
use tensile_foundry::parallel::{Collective, Group, LocalGroup};
use tensile_foundry::trainer::{self, Resume, TrainEvent, TrainOptions};

/// Three accumulated micro-batches a step and dropout: a step's leaves are not a power of
/// two, and every leaf draws its own masks.
fn experiment(out: &Path) -> LoadedConfig {
    let training = "train_steps = 4\ngradient_accumulation_steps = 3\ncheckpoint_every = 2\nwarmup_steps = 1";
    common::experiment(out, "llama", common::SMALL, "dropout = 0.1\nattention_dropout = 0.1", training)
}

fn options(group: Group) -> TrainOptions {
    TrainOptions { skip_module_tests: true, group, ..TrainOptions::default() }
}

/// What a rank saw: its outcome and its steps' losses (as bits).
type Seen = (tensile_foundry::Result<trainer::Outcome>, Vec<u64>);

fn train(c: &LoadedConfig, opts: &TrainOptions) -> Seen {
    let mut losses = Vec::new();
    let r = trainer::train(c, opts, &mut |e| {
        if let TrainEvent::Step(s) = e {
            losses.push(s.loss.to_bits());
        }
    });
    (r, losses)
}

/// Runs `world` ranks as threads; each gets `opts` with its own rank. A rank that fails
/// aborts the group, as the command line does.
fn train_ranks(c: &LoadedConfig, world: usize, opts: impl Fn() -> TrainOptions + Sync) -> Vec<Seen> {
    let ranks = LocalGroup::new(world, Duration::from_secs(120));
    std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                let opts = &opts;
                s.spawn(move || {
                    let seen = train(c, &TrainOptions { group: Group(Arc::new(rank.clone())), ..opts() });
                    if seen.0.is_err() {
                        rank.abort(2);
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn final_checkpoint(out: &Path) -> Vec<Vec<u8>> {
    let dir = out.join("run/checkpoints/step-00000004");
    ["model.safetensors", "optimizer.safetensors"].iter().map(|f| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))).collect()
}

#[test]
fn two_and_three_ranks_train_bitwise_like_one_process() {
    let solo_dir = tempfile::tempdir().unwrap();
    let solo = experiment(solo_dir.path());
    let (outcome, solo_losses) = train(&solo, &options(Group::default()));
    assert_eq!(outcome.unwrap().step, 4);
    let expected = final_checkpoint(solo_dir.path());
    for world in [2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let c = experiment(dir.path());
        let seen = train_ranks(&c, world, || options(Group::default()));
        for (rank, (outcome, losses)) in seen.into_iter().enumerate() {
            let outcome = outcome.unwrap();
            assert_eq!(losses, solo_losses, "{world} ranks, rank {rank}: the loss curve differs");
            // Only rank 0 writes checkpoints.
            assert_eq!(outcome.checkpoint.is_some(), rank == 0, "{world} ranks, rank {rank}");
        }
        assert!(final_checkpoint(dir.path()) == expected, "{world} ranks: the final weights or optimizer state differ from one process's");
    }
}

#[test]
fn a_run_resumes_bit_exactly_with_another_world_size() {
    let solo_dir = tempfile::tempdir().unwrap();
    let solo = experiment(solo_dir.path());
    let (_, solo_losses) = train(&solo, &options(Group::default()));
    let dir = tempfile::tempdir().unwrap();
    let c = experiment(dir.path());
    // Two ranks stop after step 2, and one process takes the run to its end.
    let first = train_ranks(&c, 2, || TrainOptions { stop_after: Some(2), ..options(Group::default()) });
    assert!(first.iter().all(|(o, _)| o.as_ref().unwrap().stopped_early));
    let (rest, rest_losses) = train(&c, &TrainOptions { resume: Some(Resume::Latest), ..options(Group::default()) });
    assert_eq!(rest.unwrap().step, 4);
    assert_eq!(rest_losses, solo_losses[2..], "the loss curve continues exactly");
    assert!(final_checkpoint(dir.path()) == final_checkpoint(solo_dir.path()));
    // And the other way: one process's checkpoint resumed by three ranks.
    let again = tempfile::tempdir().unwrap();
    let c = experiment(again.path());
    let (stopped, _) = train(&c, &TrainOptions { stop_after: Some(2), ..options(Group::default()) });
    assert!(stopped.unwrap().stopped_early);
    let resumed = train_ranks(&c, 3, || TrainOptions { resume: Some(Resume::Latest), ..options(Group::default()) });
    assert!(resumed.iter().all(|(_, l)| *l == solo_losses[2..]));
    assert!(final_checkpoint(again.path()) == final_checkpoint(solo_dir.path()));
}

#[test]
fn a_rank_that_fails_stops_the_others_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = experiment(dir.path());
    let missing = dir.path().join("no-such-checkpoint");
    let ranks = LocalGroup::new(2, Duration::from_secs(600));
    let started = std::time::Instant::now();
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                let (c, missing) = (&c, missing.clone());
                s.spawn(move || {
                    // Rank 1 is told to resume from a checkpoint that is not there.
                    let resume = (rank.rank() == 1).then_some(Resume::From(missing));
                    let seen = train(c, &TrainOptions { resume, ..options(Group(Arc::new(rank.clone()))) });
                    if seen.0.is_err() {
                        rank.abort(2);
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(started.elapsed() < Duration::from_secs(120), "the healthy rank waited for the timeout");
    let err = |k: usize| seen[k].0.as_ref().unwrap_err().to_string();
    assert!(err(1).contains("no-such-checkpoint"), "{}", err(1));
    assert!(err(0).contains("rank 0") && err(0).contains("aborted the run"), "{}", err(0));
}

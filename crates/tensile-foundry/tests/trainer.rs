//! The trainer on the committed tiny corpus: accumulation equals the large batch, mixed
//! precision keeps f32 masters, masked LMs train, a non-finite loss stops (or is skipped)
//! without a poisoned checkpoint, a broken module stops training before it starts, an
//! interrupted run leaves a checkpoint, and a resumed run is bit-identical.

mod common;

use candle_core::{DType, Device};
use std::path::Path;
use tensile_foundry::config::{self, LoadedConfig};
use tensile_foundry::model::TrainModel;
use tensile_foundry::trainer::{self, load_checkpoint, Resume, TrainEvent, TrainOptions};

fn experiment(out: &Path, arch: &str, model: &str, training: &str) -> LoadedConfig {
    common::experiment(out, arch, common::SMALL, model, training)
}

fn quick() -> TrainOptions {
    TrainOptions { skip_module_tests: true, ..TrainOptions::default() }
}

fn train(c: &LoadedConfig, opts: &TrainOptions) -> (tensile_foundry::Result<trainer::Outcome>, Vec<TrainEvent>) {
    let mut events = Vec::new();
    let r = trainer::train(c, opts, &mut |e| events.push(e.clone()));
    (r, events)
}

fn losses(events: &[TrainEvent]) -> Vec<f64> {
    events.iter().filter_map(|e| if let TrainEvent::Step(s) = e { Some(s.loss) } else { None }).collect()
}

#[test]
fn k_micro_batches_give_the_gradients_of_one_k_times_batch() {
    let out = tempfile::tempdir().unwrap();
    let c = experiment(out.path(), "llama", "", "train_steps = 1");
    let lib = c.config.library_config(300).unwrap();
    let model = TrainModel::new(&lib, 1, &Device::Cpu).unwrap();
    let data = tensile_foundry::loader::Dataset::open(&out.path().join("data"), false).unwrap();
    let task = trainer::task_for(&c, &out.path().join("data")).unwrap();
    let examples: Vec<_> = (0..8).map(|i| task.example(&data.chunk(i), 1, i)).collect();
    let (loss8, g8) = trainer::step_gradients(&model, &examples, 8).unwrap();
    for micro in [4, 2, 1, 3] {
        let (loss, g) = trainer::step_gradients(&model, &examples, micro).unwrap();
        assert!((loss - loss8).abs() < 1e-5 * loss8.abs(), "micro {micro}: loss {loss} vs {loss8}");
        for (name, v) in model.parameters() {
            let (a, b) = (g.get(v).unwrap(), g8.get(v).unwrap());
            let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff <= 1e-5 * scale.max(1e-6), "micro {micro}, {name}: {diff} (scale {scale})");
        }
    }
}

#[test]
fn a_run_stopped_and_resumed_is_bit_identical_to_an_uninterrupted_one() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let settings = "train_steps = 6\ncheckpoint_every = 3\ngradient_accumulation_steps = 2\nwarmup_steps = 2";
    let model = "dropout = 0.1\nattention_dropout = 0.1";
    let ca = experiment(a.path(), "llama", model, settings);
    let cb = experiment(b.path(), "llama", model, settings);
    let (whole, ev_whole) = train(&ca, &quick());
    let whole = whole.unwrap();
    let (first, _) = train(&cb, &TrainOptions { stop_after: Some(3), ..quick() });
    assert!(first.unwrap().stopped_early);
    let (rest, ev_rest) = train(&cb, &TrainOptions { resume: Some(Resume::Latest), ..quick() });
    assert_eq!(rest.unwrap().step, 6);
    assert_eq!(losses(&ev_whole)[3..], losses(&ev_rest)[..], "the loss curve continues exactly");
    let last = |d: &Path| d.join("run/checkpoints/step-00000006");
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(std::fs::read(last(a.path()).join(f)).unwrap(), std::fs::read(last(b.path()).join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(whole.checkpoint.unwrap(), last(a.path()));
    let state = load_checkpoint(&last(b.path()), &Device::Cpu).unwrap().state;
    assert_eq!((state.step, state.total_steps, state.tokens_seen), (6, 6, 6 * 8 * 15));
    assert!(state.timestamp.ends_with('Z') && state.environment.cpus >= 1);
}

#[test]
fn half_precision_trains_on_f32_master_weights() {
    let out = tempfile::tempdir().unwrap();
    let f32_run = experiment(out.path(), "llama", "", "train_steps = 3");
    let (r, ev32) = train(&f32_run, &quick());
    r.unwrap();
    for (precision, tol) in [("bf16", 0.05), ("f16", 0.01)] {
        let d = tempfile::tempdir().unwrap();
        let c = experiment(d.path(), "llama", "", &format!("train_steps = 3\nprecision = \"{precision}\""));
        let (r, ev) = train(&c, &quick());
        let o = r.unwrap();
        let (l32, l) = (losses(&ev32), losses(&ev));
        assert!((l[0] - l32[0]).abs() < tol * l32[0], "{precision}: first loss {} vs f32 {}", l[0], l32[0]);
        let ck = load_checkpoint(&o.checkpoint.unwrap(), &Device::Cpu).unwrap();
        assert!(ck.weights.values().all(|t| t.dtype() == DType::F32), "{precision}: the masters stay f32");
        assert_eq!(ck.state.loss_scale.is_some(), precision == "f16", "only f16 scales the loss");
    }
}

#[test]
fn masked_language_models_train_and_their_loss_falls() {
    for arch in ["bert", "modernbert"] {
        let out = tempfile::tempdir().unwrap();
        let c = experiment(out.path(), arch, "", "train_steps = 12\nwarmup_steps = 2");
        let (r, ev) = train(&c, &TrainOptions::default());
        let o = r.unwrap_or_else(|e| panic!("{arch}: {e}"));
        let l = losses(&ev);
        assert!(l.iter().all(|x| x.is_finite()));
        let (head, tail) = (l[..3].iter().sum::<f64>() / 3.0, l[l.len() - 3..].iter().sum::<f64>() / 3.0);
        assert!(tail < head, "{arch}: {head} → {tail}");
        let started = ev.iter().find_map(|e| {
            if let TrainEvent::Started { parameters, predicted_parameters, .. } = e {
                Some((*parameters, *predicted_parameters))
            } else {
                None
            }
        });
        let (p, predicted) = started.unwrap();
        assert_eq!(p, predicted, "{arch}");
        // The checkpoint loads as transformers' masked-LM class.
        let m = tensile_nn::load_pretrained(&o.checkpoint.unwrap(), DType::F32, &Device::Cpu).unwrap();
        assert!(m.architecture().ends_with("ForMaskedLM") && m.as_masked_lm().is_some(), "{}", m.architecture());
        assert!(ev.iter().any(|e| matches!(e, TrainEvent::Note { message } if message.starts_with("module tests passed"))), "{arch}");
    }
}

#[test]
fn a_non_finite_loss_stops_without_a_poisoned_checkpoint_or_is_skipped() {
    // A learning rate of 1e30 sends every weight to ±1e30 in one step; the next forward
    // overflows.
    let blow_up = "train_steps = 4\ncheckpoint_every = 1\nlearning_rate = 1e30\nweight_decay = 0.0";
    let out = tempfile::tempdir().unwrap();
    let c = experiment(out.path(), "llama", "", &blow_up.replace("learning_rate = 1e30\n", ""));
    let c = LoadedConfig {
        config: config::ExperimentConfig { training: config::TrainingConfig { learning_rate: 1e30, ..c.config.training.clone() }, ..c.config.clone() },
        ..c
    };
    let (r, _) = train(&c, &quick());
    let e = r.unwrap_err().to_string();
    assert!(e.contains("step 2") && e.contains("loss") && e.contains("not finite"), "{e}");
    let root = out.path().join("run/checkpoints");
    assert_eq!(tensile_foundry::checkpoint::list(&root).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1], "no checkpoint after the bad step");
    let skip = LoadedConfig {
        config: config::ExperimentConfig { training: config::TrainingConfig { on_nan: config::OnNan::Skip, ..c.config.training.clone() }, ..c.config.clone() },
        ..c
    };
    std::fs::remove_dir_all(out.path().join("run")).unwrap();
    let (r, ev) = train(&skip, &quick());
    let o = r.unwrap();
    assert_eq!(o.step, 4);
    let skipped = ev.iter().filter(|e| matches!(e, TrainEvent::Step(s) if s.skipped)).count();
    assert_eq!(skipped, 3);
    assert_eq!(load_checkpoint(&o.checkpoint.unwrap(), &Device::Cpu).unwrap().state.skipped_steps, 3);
}

#[test]
fn a_broken_module_stops_training_before_the_first_step() {
    let out = tempfile::tempdir().unwrap();
    let c = experiment(out.path(), "llama", "", "train_steps = 1");
    let model = TrainModel::new(&c.config.library_config(300).unwrap(), 1, &Device::Cpu).unwrap();
    assert_eq!(trainer::module_tests(&model.net(DType::F32).unwrap(), "t").unwrap(), 5, "layer 0, its attention, MLP and two norms");
    let (name, var) = model.parameters().iter().find(|(n, _)| n.contains("layers.0.mlp.up_proj")).unwrap();
    var.set(&(var.as_tensor() * f64::NAN).unwrap()).unwrap();
    let e = trainer::module_tests(&model.net(DType::F32).unwrap(), "t").unwrap_err().to_string();
    assert!(e.contains("layers.0") && e.contains("check") && e.contains("--skip-module-tests"), "{name}: {e}");
}

#[test]
fn an_interrupted_run_saves_where_it_stopped() {
    let out = tempfile::tempdir().unwrap();
    let c = experiment(out.path(), "llama", "", "train_steps = 50\ncheckpoint_every = 20");
    let (r, _) = train(&c, &TrainOptions { interrupted: || true, ..quick() });
    let o = r.unwrap();
    assert!(o.stopped_early && o.step == 1);
    assert_eq!(o.checkpoint.unwrap(), out.path().join("run/checkpoints/step-00000001"));
}

#[test]
fn resuming_needs_a_checkpoint_that_fits_the_config() {
    let out = tempfile::tempdir().unwrap();
    let c = experiment(out.path(), "llama", "", "train_steps = 2");
    let (r, _) = train(&c, &TrainOptions { resume: Some(Resume::Latest), ..quick() });
    assert!(r.unwrap_err().to_string().contains("no checkpoint to resume from"));
    train(&c, &quick()).0.unwrap();
    let other = LoadedConfig { config: config::ExperimentConfig { random_seed: 9, ..c.config.clone() }, ..c.clone() };
    let (r, _) = train(&other, &TrainOptions { resume: Some(Resume::Latest), ..quick() });
    assert!(r.unwrap_err().to_string().contains("another [model], sequence length or seed"));
}

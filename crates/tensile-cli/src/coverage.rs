//! `tensile coverage`: which configurations the declared specs exercise, without running them,
//! and which modules of the presets, or of a model, no spec covers.
//!
//! - `--spec F…`: the spec files (one plan) against every preset;
//! - `--model X`: the model's own modules against the presets (a preset: against itself);
//! - `--model X --spec F…`: the spec files against the model's own modules (those of a kind a
//!   spec file can declare).
//!
//! Nothing is run and no weight is read: presets are built with zero weights, and a model on
//! disk is read for its shapes only (`config.json` and the safetensors header, or the GGUF
//! header).

use crate::source::DEFAULT_MODEL_SEQ;
use crate::{EXIT_FAILED, EXIT_OK};
use anyhow::Result;
use clap::{ArgGroup, Args};
use std::path::{Path, PathBuf};
use tensile::checkpoint::Layers;
use tensile::presets::{self, zero_weight_tests, Preset, Weights};
use tensile::report::coverage::{against_presets, to_text};
use tensile::report::escape::visible_line;
use tensile::{ModuleTest, Plan, Settings};
use tensile_nn::BlockKind;

#[derive(Args)]
#[command(group(ArgGroup::new("input").args(["model", "spec"]).required(true).multiple(true)))]
pub struct CoverageArgs {
    /// Built-in preset (see `tensile list`), or a model on disk: a Hugging Face directory or a
    /// GGUF file, read for its configuration only. Alone, its modules are compared with the
    /// presets; with --spec, the spec files are compared with its modules.
    #[arg(long, value_name = "PRESET|DIR|FILE.gguf")]
    model: Option<String>,
    /// TOML spec files with `[[test]]` entries, taken together as one plan (repeatable, or
    /// several after one --spec). Alone, they are compared with every preset.
    #[arg(long, value_name = "FILE.toml", num_args = 1..)]
    spec: Vec<PathBuf>,
    /// Layers of a model on disk: `all` (the default here, since layers can differ, such as
    /// ModernBERT's global and local attention), or a list such as 0,15,31.
    #[arg(long, value_name = "all|LIST")]
    layers: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit with 1 when a module compared against has no spec (for CI).
    #[arg(long)]
    fail_uncovered: bool,
}

/// What `--model` names.
enum Model {
    Preset(&'static Preset),
    OnDisk(tensile::checkpoint::LoadedModel),
}

pub fn run(args: &CoverageArgs) -> Result<u8> {
    let model = match args.model.as_deref() {
        Some(name) => Some((name, model(name)?)),
        None => None,
    };
    let layers = match &args.layers {
        None => Layers::All,
        Some(_) if !matches!(model, Some((_, Model::OnDisk(_)))) => {
            anyhow::bail!("--layers applies to a model on disk (--model DIR or FILE.gguf)")
        }
        Some(s) => s.parse().map_err(|e: String| anyhow::anyhow!("invalid --layers: {e}"))?,
    };
    // The covered plan: the spec files' tests, or else the model's own.
    let (covered, seq) = if args.spec.is_empty() {
        match &model {
            Some((_, m)) => model_tests(m, &layers)?,
            None => anyhow::bail!("give --model PRESET|DIR|FILE.gguf or --spec FILE.toml"),
        }
    } else {
        let mut tests = Vec::new();
        for path in &args.spec {
            tests.extend(tensile::specfile::load(path)?);
        }
        (tests, Settings::default().seq_len)
    };
    let plan = Plan::new(&covered, &Settings { seq_len: seq, ..Settings::default() })?;
    // What is compared against: the model's own modules when specs were given; otherwise
    // the preset itself, or every preset.
    let targets: Vec<(&str, Vec<ModuleTest>)> = match (&model, args.spec.is_empty()) {
        (Some((name, m)), false) => vec![(*name, declarable(name, model_tests(m, &layers)?.0))],
        (Some((_, Model::Preset(p))), true) => zero_weight_tests([*p])?,
        (Some((_, Model::OnDisk(_))), true) | (None, _) => zero_weight_tests(presets::all())?,
    };
    let coverage = against_presets(plan.coverage(), &plan, targets);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&coverage)?);
    } else {
        print!("{}", to_text(&coverage));
    }
    Ok(if args.fail_uncovered && !coverage.uncovered.is_empty() { EXIT_FAILED } else { EXIT_OK })
}

/// The tests of the modules a spec file can declare (a kind built from a config alone). The
/// others (embeddings, a plain linear head, a LayerNorm) could never be covered by one, so
/// they are named on stderr rather than counted as uncovered.
fn declarable(name: &str, tests: Vec<ModuleTest>) -> Vec<ModuleTest> {
    let (kept, left): (Vec<ModuleTest>, Vec<ModuleTest>) =
        tests.into_iter().partition(|t| t.module.kind().parse::<BlockKind>().is_ok_and(BlockKind::buildable));
    if !left.is_empty() {
        let mut kinds: Vec<&str> = Vec::new();
        for t in &left {
            if !kinds.contains(&t.module.kind()) {
                kinds.push(t.module.kind());
            }
        }
        let (n, plural) = (left.len(), if left.len() == 1 { "module" } else { "modules" });
        let kinds = visible_line(&kinds.join(", ")).into_owned();
        eprintln!("note: {n} {plural} of {} not compared, since a spec file cannot declare their kind ({kinds})", visible_line(name));
    }
    kept
}

/// A preset by name, else a model on disk read for its shapes only (no weight is read).
fn model(name: &str) -> Result<Model> {
    match presets::find(name) {
        Ok(p) => Ok(Model::Preset(p)),
        Err(_) if tensile::checkpoint::is_model_path(name) => Ok(Model::OnDisk(tensile::checkpoint::load_model_shapes(Path::new(name))?)),
        Err(e) => anyhow::bail!("{e}; `{name}` is not a model directory (with config.json) or a .gguf file either"),
    }
}

/// The module tests of a model, with zero weights or its shapes, and their sequence length.
fn model_tests(model: &Model, layers: &Layers) -> Result<(Vec<ModuleTest>, usize)> {
    Ok(match model {
        Model::Preset(p) => (p.module_tests_with(1, p.seq_len, Weights::Zeros)?, p.seq_len),
        Model::OnDisk(m) => (tensile::checkpoint::module_tests(m, layers, 1, DEFAULT_MODEL_SEQ)?, DEFAULT_MODEL_SEQ),
    })
}

//! `tensile coverage`: which configurations the declared specs exercise, without running them.

use crate::source::Source;
use crate::EXIT_OK;
use anyhow::Result;
use clap::Args;
use tensile::presets::zero_weight_tests;
use tensile::presets::Weights;
use tensile::report::coverage::{against_presets, to_text};
use tensile::{Plan, Settings};

#[derive(Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    layers: crate::source::LayerArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CoverageArgs) -> Result<u8> {
    // Zero weights: only the shapes matter, and zeros cost no real memory even at 8B scale.
    let loaded = args.source.load(1, None, Weights::Zeros, &args.layers)?;
    let settings = Settings { seq_len: loaded.default_seq, ..Settings::default() };
    let plan = Plan::new(&loaded.tests, &settings)?;
    let coverage = against_presets(plan.coverage(), &plan, zero_weight_tests(loaded.compare_with)?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&coverage)?);
    } else {
        print!("{}", to_text(&coverage));
    }
    Ok(EXIT_OK)
}

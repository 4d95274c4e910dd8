//! `tensile coverage`: which configurations the declared specs exercise, without running them.

use crate::EXIT_OK;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use tensile::coverage::Coverage;
use tensile::presets::{self, Weights};
use tensile::{Plan, Settings};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["model", "spec"]))]
pub struct CoverageArgs {
    /// Built-in preset.
    #[arg(long)]
    model: Option<String>,
    /// TOML spec file with `[[test]]` entries; compared against every preset.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CoverageArgs) -> Result<u8> {
    let (tests, settings, against): (_, _, Vec<&presets::Preset>) = match (&args.model, &args.spec) {
        (Some(model), _) => {
            let p = presets::find(model)?;
            (p.module_tests_with(1, p.seq_len, Weights::Zeros)?, Settings { seq_len: p.seq_len, ..Settings::default() }, vec![p])
        }
        (None, Some(path)) => (tensile::specfile::load(path)?, Settings::default(), presets::all().iter().collect()),
        (None, None) => bail!("give --model PRESET or --spec FILE.toml"),
    };
    let plan = Plan::new(&tests, &settings)?;
    let coverage = Coverage::of(&plan).against_presets(&plan, against)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&coverage)?);
    } else {
        print!("{}", coverage.to_text());
    }
    Ok(EXIT_OK)
}

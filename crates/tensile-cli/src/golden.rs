//! `tensile golden check`.

use crate::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tensile::golden::{GoldenCase, GoldenResult};
use tensile::Tolerance;

#[derive(Subcommand)]
pub enum GoldenCommand {
    /// Run each case's module and compare with the stored reference output.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Reference case files (.safetensors).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Dtype the module runs in: f32, bf16, f16 (or f64).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Absolute tolerance, finite and ≥ 0 (default: the dtype's; for a block on quantized
    /// GGUF kernels, the looser default those kernels need).
    #[arg(long, allow_negative_numbers = true)]
    atol: Option<f64>,
    /// Relative tolerance, finite and ≥ 0 (default: the dtype's).
    #[arg(long, allow_negative_numbers = true)]
    rtol: Option<f64>,
    /// Minimum Pearson correlation, in [-1, 1] (default: the dtype's).
    #[arg(long, allow_negative_numbers = true)]
    min_pcc: Option<f64>,
    /// Print one JSON object per case instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(command: GoldenCommand) -> Result<u8> {
    let GoldenCommand::Check(args) = command;
    let device = tensile::device::parse_device(&args.device)?;
    let dtype = tensile::device::parse_dtype(&args.dtype)?;
    let mut tol = Tolerance::for_dtype(dtype);
    tol.atol = args.atol.unwrap_or(tol.atol);
    tol.rtol = args.rtol.unwrap_or(tol.rtol);
    tol.min_pcc = args.min_pcc.unwrap_or(tol.min_pcc);
    // The spec parser's rules, so `--atol nan` is a usage error before any file is read, not
    // a failed (or, for `inf`, a passed) case.
    tol.validate().map_err(|(field, reason)| tensile::Error::Setting { name: format!("--{}", field.replace('_', "-")), reason })?;
    let mut code = EXIT_OK;
    if !args.json {
        println!("{:<44} {:<20} {:<14} {:>10} {:>10} {:>12} {:>12}  result", "case", "module", "shape", "max_abs", "max_rel", "pcc", "cosine");
    }
    for file in &args.files {
        // Without an override each case takes its module's default (looser for blocks on
        // quantized GGUF kernels); with one, the dtype's default with the overrides.
        let overridden = args.atol.is_some() || args.rtol.is_some() || args.min_pcc.is_some();
        match GoldenCase::load(file).and_then(|case| case.check(&device, dtype, overridden.then_some(tol))) {
            Ok(result) => {
                print_result(&result, args.json)?;
                if !result.passed {
                    code = code.max(EXIT_FAILED);
                }
            }
            Err(err) => {
                // Keep checking the other files; the exit code still reports the bad one.
                eprintln!("error: {}", err.to_string().lines().collect::<Vec<_>>().join(" "));
                code = EXIT_USAGE;
            }
        }
    }
    Ok(code)
}

fn print_result(r: &GoldenResult, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let name = r.file.rsplit('/').next().unwrap_or(&r.file);
    let shape = format!("{:?}", r.shape).replace(' ', "");
    let c = &r.comparison;
    println!(
        "{name:<44} {:<20} {shape:<14} {:>10.3e} {:>10.3e} {:>12.9} {:>12.9}  {}",
        r.module,
        c.max_abs,
        c.max_rel,
        c.pcc,
        c.cosine,
        if r.passed { "PASS" } else { "FAIL" }
    );
    for why in &r.failures {
        println!("    {why}");
    }
    Ok(())
}

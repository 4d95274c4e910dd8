//! `tensile bench`: the anchor cases (attention, MLP, norm of a preset at several sequence
//! lengths) through tensile's runner, next to PyTorch's numbers from the same machine.

use crate::EXIT_OK;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tensile::bench;
use tensile::device::parse_dtype;
use tensile::event::Machine;
use tensile::presets;

#[derive(Args)]
pub struct BenchArgs {
    /// Preset whose attention, MLP and norm are measured (llama2-7b has the anchors' shapes).
    #[arg(long)]
    preset: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Dtype: f32, bf16 or f16.
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// Sequence lengths.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
    seq_lens: Vec<usize>,
    /// PyTorch anchor JSON written by `torch_hf_modules.py` in the same device session.
    #[arg(long, value_name = "JSON")]
    torch: Option<PathBuf>,
    /// Append the table to this Markdown file (e.g. bench/RESULTS.md) as well as printing it.
    #[arg(long, value_name = "MD")]
    results: Option<PathBuf>,
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    tensile_foundry::trainer::now_utc()[..10].to_string()
}

pub fn run(args: &BenchArgs) -> Result<u8> {
    let preset = presets::find(&args.preset)?;
    let dtype = parse_dtype(&args.dtype)?;
    if args.seq_lens.is_empty() || args.seq_lens.contains(&0) {
        anyhow::bail!("--seq-lens needs positive lengths");
    }
    let device = tensile::device::parse_device(&args.device)?;
    let anchors = args.torch.as_deref().map(bench::load_anchors).transpose()?.unwrap_or_default();
    let ceilings = bench::ceilings(&device, dtype)?;
    let rows = bench::run(preset, &args.device, dtype, &args.seq_lens, &ceilings)?;
    let m = Machine::current();
    let machine = format!("{} ({}, {} CPUs, device {})", m.host, m.os, m.cpus, args.device);
    let commit = tensile::baseline::detect_commit().map_or("unknown".to_string(), |c| c.chars().take(7).collect());
    let date = today();
    let header = bench::Header { preset: preset.name, device: &args.device, dtype, machine: &machine, date: &date, commit: &commit };
    let table = bench::markdown(&header, &ceilings, &rows, &anchors);
    print!("{table}");
    for r in rows.iter().filter(|r| !r.errors.is_empty()) {
        eprintln!("warning: {} at {}: {}", r.module, r.seq_len, r.errors.join("; "));
    }
    if let Some(path) = &args.results {
        // Appended by rewriting the whole file atomically, so an interrupted bench never leaves
        // a half-written table in the results.
        // Read like any input file, so a FIFO or a device there is refused, not read forever.
        let old = match tensile::input::read_to_string(path, tensile::input::MAX_JSON_BYTES) {
            Ok(text) => text,
            Err(tensile::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        tensile::atomic::write(path, format!("{old}\n{table}")).map_err(|e| anyhow::anyhow!("failed to write {}: {e}", path.display()))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_plausible_date() {
        let d = super::today();
        assert_eq!(d.len(), 10);
        assert!(d.as_str() >= "2025-01-01" && &d[4..5] == "-", "{d}");
    }
}

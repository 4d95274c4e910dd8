//! The `tensile` command-line tool: parses arguments and calls the libraries.

mod embed;
mod golden;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Every check passed.
pub const EXIT_OK: u8 = 0;
/// At least one check failed.
pub const EXIT_FAILED: u8 = 1;
/// Usage, spec or file error: nothing trustworthy could be computed.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "tensile", version, about = "Prove that every module configuration a transformer uses is correct and fast")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reference case files produced from Hugging Face transformers.
    Golden {
        #[command(subcommand)]
        command: golden::GoldenCommand,
    },
    /// Sentence embeddings from a sentence-transformers BERT directory.
    Embed(embed::EmbedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Golden { command } => golden::run(command),
        Command::Embed(args) => embed::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The error and its causes on one line, as promised for every usage or file error.
fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

//! The `tensile` command-line tool: parses arguments and calls the libraries.

mod bench;
mod coverage;
mod dequantize;
mod embed;
mod forward;
mod foundry;
mod foundry_train;
mod generate;
mod golden;
mod merge;
mod placement;
mod report;
mod run;
mod source;

tensile::install_counting_allocator!();

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use tensile::exit::{FAILED as EXIT_FAILED, OK as EXIT_OK, USAGE as EXIT_USAGE};

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
    /// Run a built-in preset's module tests and report.
    Run(run::RunArgs),
    /// List the built-in presets and their module tests, or those a model on disk would run.
    List(run::ListArgs),
    /// Time a preset's attention, MLP and norm at several sequence lengths next to PyTorch's
    /// numbers and the roofline floor.
    Bench(bench::BenchArgs),
    /// Show which block kinds, dtypes, devices and parameter ranges the specs exercise, and
    /// which modules of the presets (or of --model, with --spec) have no spec.
    Coverage(coverage::CoverageArgs),
    /// Sentence embeddings from a sentence-transformers BERT directory.
    Embed(embed::EmbedArgs),
    /// Run a Hugging Face model directory (LLaMA, BERT, ModernBERT, with or without a
    /// classification head) on token ids from a JSON file.
    Forward(forward::ForwardArgs),
    /// Classify texts with a sequence-classification model directory and its tokenizer.
    Classify(forward::ClassifyArgs),
    /// Write the float32 Hugging Face copy of a GGUF model, the original to compare the
    /// quantized one with (`run --compare-with`).
    Dequantize(dequantize::DequantizeArgs),
    /// Continue a prompt with a GGUF Llama model (greedy by default, or sampled).
    Generate(generate::GenerateArgs),
    /// Work with reports: merge the JSON reports of a plan's shards.
    Report {
        #[command(subcommand)]
        command: merge::ReportCommand,
    },
    /// The model foundry: prepare a corpus, train on it, evaluate and sample.
    Foundry {
        #[command(subcommand)]
        command: foundry::FoundryCommand,
    },
}

fn main() -> ExitCode {
    // Before any thread starts: a fixed thread count and an allocator that reuses large blocks.
    tensile_nn::runtime::configure_process();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Golden { command } => golden::run(command),
        Command::Run(args) => run::run(&args),
        Command::List(args) => run::list(&args),
        Command::Coverage(args) => coverage::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Forward(args) => forward::run_forward(&args),
        Command::Classify(args) => forward::run_classify(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Dequantize(args) => dequantize::run(&args),
        Command::Foundry { command } => foundry::run(command),
        Command::Report { command } => merge::run(&command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // A closed pipe (`tensile list | head`) is the reader's choice, not an error.
        Err(err) if err.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The error and its causes on one line, as promised for every usage or file error. It can
/// quote a path or a spec value, so control and bidirectional characters are shown escaped
/// rather than sent to the terminal.
fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let line = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    tensile::report::escape::visible_line(&line).into_owned()
}

//! `tensile embed`.

use crate::{EXIT_FAILED, EXIT_OK};
use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tensile_nn::sentence::{SentenceEmbedder, DEFAULT_BATCH_SIZE};

/// Largest text file (or standard input) read by `--input`. Each text's embedding takes far
/// more memory than its line, so a larger file would not fit once embedded anyway.
const MAX_INPUT_BYTES: u64 = 1 << 30;

/// How many sentences the not-finite error names before it only counts the rest, so one line
/// stays readable when a broken model turns a whole file into NaN.
const MAX_NAMED: usize = 10;

#[derive(Args)]
#[command(group = ArgGroup::new("source").required(true).args(["texts", "input"]))]
pub struct EmbedArgs {
    /// sentence-transformers model directory (config.json, model.safetensors, tokenizer.json, …).
    #[arg(long)]
    model: PathBuf,
    /// Text to embed; repeat for several. Exclusive with --input.
    #[arg(long = "text", value_name = "TEXT")]
    texts: Vec<String>,
    /// File of texts to embed, `-` for standard input: one text per line, blank lines skipped
    /// (or JSON Lines, see --jsonl). Exclusive with --text.
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Read --input as JSON Lines: each line a JSON string or an object with a string field
    /// "text"; blank lines are skipped, any other line that is not one is an error naming it.
    /// Implied by a file name ending in `.jsonl`.
    #[arg(long, conflicts_with = "texts")]
    jsonl: bool,
    /// Texts per forward pass (at least 1). Texts are sorted by token count, longest first, so
    /// each batch pads little; the output keeps the input order.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    #[command(flatten)]
    placement: crate::placement::Placement,
    /// Print `{"embeddings": [[…], …]}`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EmbedArgs) -> Result<u8> {
    let (device, dtype) = args.placement.resolve()?;
    // Checked here rather than by clap, so the error is the one line every usage error is.
    if args.batch_size == 0 {
        bail!("invalid --batch-size: must be at least 1, got 0");
    }
    // The texts are read before the model loads, so a wrong path fails at once.
    let texts: Vec<String> = match &args.input {
        Some(path) => read_texts(path, args.jsonl || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl")))?,
        None => args.texts.clone(),
    };
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let model = SentenceEmbedder::load(&args.model, dtype, &device).with_context(|| format!("failed to load model at {}", args.model.display()))?;
    let start = Instant::now();
    let embeddings = model.embed_batched(&texts, args.batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    // Which sentences came out with NaN or infinity (a broken weight, an overflow in f16):
    // what was computed is still printed, but the run fails.
    let bad: Vec<usize> = embeddings.iter().enumerate().filter(|(_, e)| e.iter().any(|v| !v.is_finite())).map(|(i, _)| i).collect();
    if args.json {
        // JSON has no NaN: such values print as null, and `non_finite` lists their sentences.
        let mut doc = serde_json::json!({ "embeddings": embeddings });
        if !bad.is_empty() {
            doc["non_finite"] = serde_json::json!(bad);
        }
        println!("{doc}");
    } else {
        for (text, e) in texts.iter().zip(&embeddings) {
            let head: Vec<String> = e.iter().take(6).map(|v| format!("{v:+.5}")).collect();
            println!("{} dims [{} …]  {text}", e.len(), head.join(", "));
        }
    }
    // A file is embedded for its throughput as much as for its vectors; a few `--text` values
    // are not, and keep stderr empty on success as before.
    if args.input.is_some() {
        let n = texts.len();
        eprintln!("embedded {n} {} in {seconds:.3} s ({:.1} texts/s, load excluded)", if n == 1 { "text" } else { "texts" }, n as f64 / seconds.max(1e-9));
    }
    if bad.is_empty() {
        return Ok(EXIT_OK);
    }
    let mut which: Vec<String> = bad.iter().take(MAX_NAMED).map(|&i| format!("{} {:?}", i + 1, texts[i])).collect();
    if bad.len() > MAX_NAMED {
        which.push(format!("and {} more", bad.len() - MAX_NAMED));
    }
    eprintln!("error: embeddings are not finite (NaN or infinity) for sentence {} of {}", which.join(", "), texts.len());
    Ok(EXIT_FAILED)
}

/// The texts of `path` (`-` for standard input), one per line, or one JSON value per line
/// when `jsonl`. Lines end in `\n` or `\r\n`, and a leading byte-order mark is dropped, so a
/// file saved by a Windows editor reads the same. An input without a single text is an error
/// rather than an empty result, as `--text` must be given at least once.
fn read_texts(path: &Path, jsonl: bool) -> Result<Vec<String>> {
    let stdin = path == Path::new("-");
    let name = if stdin { "standard input".to_string() } else { path.display().to_string() };
    let content = if stdin { read_stdin()? } else { read_file(path)? };
    let content = content.strip_prefix('\u{feff}').unwrap_or(&content);
    let mut texts = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !jsonl {
            texts.push(line.to_string());
            continue;
        }
        let at = || format!("failed to read texts from {name}: line {}", i + 1);
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            // serde_json locates errors as "line 1 column C" of the one line parsed: only the column helps.
            let message = e.to_string();
            let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
            anyhow!("{}: not valid JSON ({message} at column {})", at(), e.column())
        })?;
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Object(mut o) => match o.remove("text") {
                Some(serde_json::Value::String(s)) => s,
                Some(other) => bail!("{}: the field \"text\" is {}, not a string", at(), kind(&other)),
                None => bail!("{}: the object has no field \"text\"", at()),
            },
            other => bail!("{}: expected a JSON string or an object with a field \"text\", got {}", at(), kind(&other)),
        };
        texts.push(text);
    }
    if texts.is_empty() {
        bail!("no texts in {name} (blank lines are skipped)");
    }
    Ok(texts)
}

/// A JSON value's kind, for errors.
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The file at `path` as text, through the bounded reader every user-named file goes through
/// (a FIFO or `/dev/zero` is refused before a byte is read; pipes come in on `--input -`).
fn read_file(path: &Path) -> Result<String> {
    tensile::input::read_to_string(path, MAX_INPUT_BYTES).map_err(|e| match e {
        tensile::Error::Io { path, source } => anyhow!("failed to read texts from {}: {source}", path.display()),
        tensile::Error::Input { path, reason } => anyhow!("failed to read texts from {}: {reason}", path.display()),
        other => anyhow!(other),
    })
}

/// Standard input as text, bounded like a file.
fn read_stdin() -> Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).context("failed to read texts from standard input")?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("failed to read texts from standard input: more than the {MAX_INPUT_BYTES} bytes read as texts");
    }
    String::from_utf8(bytes)
        .map_err(|e| anyhow!("failed to read texts from standard input: not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
}

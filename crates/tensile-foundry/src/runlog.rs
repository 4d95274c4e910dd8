//! The records of a training run, written from the trainer's events:
//!
//! - a log file per run, `{experiment}-{UTC time}.log`, one timestamped line per event
//!   (in `logging.dir`, or the run's `logs/`), so that runs of several experiments, or
//!   several runs of one, never write to the same file;
//! - `metrics.jsonl` in the run's folder: one JSON object per step and per evaluation
//!   (`{"step":…,"loss":…,…}`); a resumed run first drops the lines past its checkpoint, so
//!   the file always describes one unbroken run;
//! - TensorBoard event files in the run's `tensorboard/` when `logging.tensorboard` is set.

use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::tensorboard::EventWriter;
use crate::trainer::{now_utc, TrainEvent};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a run's log file, metrics and TensorBoard events.
pub struct RunLog {
    log: File,
    log_path: PathBuf,
    metrics_path: PathBuf,
    metrics: Option<File>,
    tensorboard: Option<EventWriter>,
    tensorboard_dir: Option<PathBuf>,
    log_every: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Nn(tensile_nn::Error::Io { path: path.to_path_buf(), source: e })
}

/// The folder of a config's log files.
pub fn log_dir(loaded: &LoadedConfig) -> PathBuf {
    match &loaded.config.logging.dir {
        Some(d) => loaded.resolve(d),
        None => crate::trainer::run_dir(loaded).join("logs"),
    }
}

/// The log files in `dir` (`*.log`), oldest name first, with their sizes.
pub fn list_logs(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<(PathBuf, u64)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let size = std::fs::metadata(&p).map_or(0, |m| m.len());
            (p, size)
        })
        .collect();
    v.sort();
    v
}

impl RunLog {
    /// Opens a new log file for the run `loaded` describes.
    pub fn open(loaded: &LoadedConfig) -> Result<Self> {
        let c = &loaded.config;
        let dir = log_dir(loaded);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let stamp = now_utc().replace(':', "");
        let mut log_path = dir.join(format!("{}-{stamp}.log", c.experiment_name));
        let mut n = 1;
        while log_path.exists() {
            log_path = dir.join(format!("{}-{stamp}-{n}.log", c.experiment_name));
            n += 1;
        }
        let log = OpenOptions::new().create_new(true).append(true).open(&log_path).map_err(io(&log_path))?;
        let run = crate::trainer::run_dir(loaded);
        std::fs::create_dir_all(&run).map_err(io(&run))?;
        Ok(Self {
            log,
            log_path,
            metrics_path: run.join("metrics.jsonl"),
            metrics: None,
            tensorboard: None,
            tensorboard_dir: c.logging.tensorboard.then(|| run.join("tensorboard")),
            log_every: c.logging.log_every.max(1) as u64,
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.log_path
    }

    /// The metrics file.
    pub fn metrics_path(&self) -> &Path {
        &self.metrics_path
    }

    /// Writes a line to the log file with the time.
    pub fn line(&mut self, message: &str) -> Result<()> {
        writeln!(self.log, "{} {message}", now_utc()).map_err(io(&self.log_path))
    }

    fn metric(&mut self, value: serde_json::Value) -> Result<()> {
        let Some(f) = self.metrics.as_mut() else { return Ok(()) };
        writeln!(f, "{value}").map_err(io(&self.metrics_path))
    }

    /// Starts the metrics file at `first_step`: lines of later steps (from a run that went on
    /// past the checkpoint it is resumed from) are dropped, earlier ones kept.
    fn start_metrics(&mut self, first_step: u64) -> Result<()> {
        let kept: Vec<String> = std::fs::read_to_string(&self.metrics_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v.get("step")?.as_u64()).is_some_and(|s| s < first_step))
            .map(str::to_string)
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        tensile_nn::files::write_atomic(&self.metrics_path, text).map_err(io(&self.metrics_path))?;
        self.metrics = Some(OpenOptions::new().append(true).open(&self.metrics_path).map_err(io(&self.metrics_path))?);
        if let Some(dir) = &self.tensorboard_dir {
            self.tensorboard = Some(EventWriter::create(dir)?);
        }
        Ok(())
    }

    /// Records `event`; returns the line to show on the console, if this event has one
    /// (notes, evaluations, checkpoints, and a step every `log_every`).
    pub fn on_event(&mut self, event: &TrainEvent) -> Result<Option<String>> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let line = match event {
            TrainEvent::Started { experiment, first_step, total_steps, parameters, predicted_parameters, tokens_per_step, matmul_flops } => {
                self.start_metrics(*first_step)?;
                Some(format!(
                    "{experiment}: steps {first_step}..={total_steps}, {parameters} parameters (predicted {predicted_parameters}), {tokens_per_step} tokens a step, matmul {:.1} GFLOP/s",
                    matmul_flops / 1e9
                ))
            }
            TrainEvent::Note { message } => Some(message.clone()),
            TrainEvent::Step(s) => {
                self.metric(serde_json::json!({
                    "step": s.step, "loss": s.loss, "lr": s.learning_rate, "grad_norm": s.grad_norm, "clipped": s.clipped,
                    "tokens_per_second": s.tokens_per_second, "mfu": s.mfu, "tokens_seen": s.tokens_seen, "peak_mb": s.peak_mb,
                    "micro_batch": s.micro_batch, "accumulation": s.accumulation, "skipped": s.skipped,
                    "seconds": s.seconds, "exchange_seconds": s.exchange_seconds, "ranks": s.ranks,
                }))?;
                if let Some(tb) = self.tensorboard.as_mut() {
                    let scalars = [
                        ("train/loss", s.loss),
                        ("train/lr", s.learning_rate),
                        ("train/grad_norm", s.grad_norm),
                        ("perf/tokens_per_second", s.tokens_per_second),
                        ("perf/mfu", s.mfu),
                    ];
                    tb.add_scalars(s.step, wall, &scalars)?;
                }
                let text = format!(
                    "step {}/{} loss {:.4} lr {:.3e} grad norm {:.3}{} | {:.0} tokens/s, MFU {:.1}%{}",
                    s.step,
                    s.total_steps,
                    s.loss,
                    s.learning_rate,
                    s.grad_norm,
                    if s.clipped { " (clipped)" } else { "" },
                    s.tokens_per_second,
                    100.0 * s.mfu,
                    s.peak_mb.map_or(String::new(), |p| format!(", peak {p:.1} MiB"))
                );
                self.line(&text)?;
                return Ok((s.step % self.log_every == 0 || s.step == s.total_steps).then_some(text));
            }
            TrainEvent::Evaluated { step, loss, perplexity } => {
                self.metric(serde_json::json!({"step": step, "validation_loss": loss, "perplexity": perplexity}))?;
                if let Some(tb) = self.tensorboard.as_mut() {
                    tb.add_scalars(*step, wall, &[("validation/loss", *loss), ("validation/perplexity", *perplexity)])?;
                }
                Some(format!("step {step}: validation loss {loss:.4}, perplexity {perplexity:.2}"))
            }
            TrainEvent::Checkpoint { step, path } => Some(format!("step {step}: checkpoint {}", path.display())),
        };
        if let Some(l) = &line {
            self.line(l)?;
        }
        Ok(line)
    }

    /// Flushes everything to disk.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(tb) = self.tensorboard.as_mut() {
            tb.flush()?;
        }
        if let Some(m) = self.metrics.as_mut() {
            m.sync_all().map_err(io(&self.metrics_path))?;
        }
        self.log.sync_all().map_err(io(&self.log_path))
    }
}

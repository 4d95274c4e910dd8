//! One optimiser step's forward and backward passes: the step's examples split into
//! micro-batches, each run in a training scope, its gradients kept for the variables only and
//! summed, its peak memory measured against the budget.

use crate::error::Error;
use crate::model::TrainModel;
use crate::objective::{stack, token_loss, Example};
use crate::optim::Grads;
use candle_core::{DType, Device, Var};
use tensile_nn::training::{self, TrainingMode};

/// What the passes of one step produced.
pub(crate) struct Passes {
    /// The step's loss: the mean token loss over all its micro-batches (unscaled).
    pub loss: f64,
    /// The summed gradients (still multiplied by the loss scale, if any).
    pub grads: Grads,
    /// The largest peak of one micro-batch, in bytes, where it can be measured.
    pub peak_bytes: Option<usize>,
}

/// Why the passes stopped.
pub(crate) enum PassError {
    /// A micro-batch needed more memory than the budget, or the device ran out.
    OutOfMemory {
        /// Its peak, in bytes, when measured.
        peak_bytes: Option<usize>,
    },
    /// Anything else.
    Failed(Error),
}

impl From<candle_core::Error> for PassError {
    fn from(e: candle_core::Error) -> Self {
        // The CUDA allocator's failure comes back as an error whose message says so.
        if tensile_nn::innermost_message(&e).to_lowercase().contains("out of memory") {
            PassError::OutOfMemory { peak_bytes: None }
        } else {
            PassError::Failed(e.into())
        }
    }
}

impl From<Error> for PassError {
    fn from(e: Error) -> Self {
        PassError::Failed(e)
    }
}

/// How the passes are run.
#[derive(Clone, Copy)]
pub(crate) struct PassSettings<'a> {
    /// Examples per micro-batch.
    pub micro_batch: usize,
    /// The compute dtype.
    pub dtype: DType,
    /// Dropout.
    pub mode: &'a TrainingMode,
    /// Keys the dropout masks: the step.
    pub step: u64,
    /// Multiplies the loss before backward (f16 loss scaling; 1 otherwise).
    pub loss_scale: f64,
    /// Largest allowed peak bytes per micro-batch.
    pub budget_bytes: Option<usize>,
}

/// Peak memory of `f` on `device`: heap bytes on the CPU (with the counting allocator
/// installed), the CUDA pool's high-water mark on a GPU.
fn peak_of<T>(device: &Device, f: impl FnOnce() -> T) -> (T, Option<usize>) {
    if device.is_cpu() {
        tensile::alloc::measure_peak(f)
    } else {
        let mut f = Some(f);
        let mut out = None;
        let peak = tensile::device_memory::measure_peak(device, || out = f.take().map(|f| f())).ok().and_then(|((), p)| p);
        match out {
            Some(v) => (v, peak.map(|p| p as usize)),
            None => (f.take().map(|f| f()).expect("the closure runs once"), None),
        }
    }
}

/// Runs forward and backward over `examples` in micro-batches.
pub(crate) fn run(model: &TrainModel, examples: &[Example], s: &PassSettings) -> std::result::Result<Passes, PassError> {
    let normaliser: usize = examples.iter().map(Example::counted).sum();
    let vars: Vec<Var> = model.parameters().iter().map(|(_, v)| v.clone()).collect();
    let mut grads = Grads::default();
    let (mut loss, mut peak_max) = (0.0, None::<usize>);
    for (k, piece) in examples.chunks(s.micro_batch.max(1)).enumerate() {
        let key = s.step.wrapping_mul(1 << 16).wrapping_add(k as u64);
        let (out, peak) = peak_of(model.device(), || {
            training::scope(s.mode, key, || -> std::result::Result<(f64, Grads), PassError> {
                let net = model.net(s.dtype)?;
                let (ids, targets) = stack(piece, model.device())?;
                let l = token_loss(&net.logits(&ids)?, &targets, normaliser)?;
                let value = f64::from(l.to_scalar::<f32>()?);
                let scaled = if s.loss_scale == 1.0 { l } else { (l * s.loss_scale)? };
                Ok((value, Grads::from_store(scaled.backward()?, &vars)))
            })
        });
        if let (Some(p), Some(budget)) = (peak, s.budget_bytes) {
            if p > budget {
                return Err(PassError::OutOfMemory { peak_bytes: Some(p) });
            }
        }
        let (value, g) = out?;
        loss += value;
        grads.accumulate(g)?;
        peak_max = match (peak_max, peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(Passes { loss, grads, peak_bytes: peak_max })
}

/// [`run`], redone with half the micro-batch (and so twice the accumulation) while a
/// micro-batch runs out of memory or over the budget; `micro_batch` keeps the size that
/// worked, and each fallback is reported as a note.
///
/// # Errors
/// A micro-batch of one chunk still over the budget (naming `training.memory_budget_mb`), or
/// any other failure of the passes.
pub(crate) fn run_with_fallback(
    model: &TrainModel,
    examples: &[Example],
    base: PassSettings,
    micro_batch: &mut usize,
    budget_mb: Option<f64>,
    on_event: &mut dyn FnMut(&crate::trainer::TrainEvent),
) -> crate::error::Result<Passes> {
    let mib = |b: usize| b as f64 / 1048576.0;
    loop {
        let settings = PassSettings { micro_batch: *micro_batch, ..base };
        match run(model, examples, &settings) {
            Ok(p) => return Ok(p),
            Err(PassError::OutOfMemory { peak_bytes }) if *micro_batch > 1 => {
                let was = *micro_batch;
                *micro_batch = was.div_ceil(2);
                let peak = peak_bytes.map_or("out of device memory".to_string(), |p| format!("peak {:.1} MiB over the budget", mib(p)));
                let n = examples.len();
                let message = format!(
                    "step {}: {peak}; micro-batch {was} → {}, accumulation {} → {} (effective batch {n} unchanged)",
                    base.step,
                    *micro_batch,
                    n.div_ceil(was),
                    n.div_ceil(*micro_batch)
                );
                on_event(&crate::trainer::TrainEvent::Note { message });
            }
            Err(PassError::OutOfMemory { peak_bytes }) => {
                let need = peak_bytes.map_or("more than the device has".to_string(), |p| format!("{:.1} MiB", mib(p)));
                return Err(Error::Invalid {
                    field: "training.memory_budget_mb",
                    reason: format!("one chunk per micro-batch still needs {need} (the budget is {:.1} MiB)", budget_mb.unwrap_or(0.0)),
                });
            }
            Err(PassError::Failed(e)) => return Err(e),
        }
    }
}

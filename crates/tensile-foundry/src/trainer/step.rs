//! One optimiser step's forward and backward passes: the step's examples split into
//! micro-batches, each run in a training scope, its gradients kept for the variables only and
//! summed in a fixed tree order (across ranks too), its peak memory measured against the
//! budget.

use crate::error::Error;
use crate::model::TrainModel;
use crate::objective::{stack, token_loss, Example};
use crate::optim::Grads;
use crate::parallel::{tree, Collective};
use candle_core::{DType, Device, Tensor, Var};
use tensile_nn::training::{self, TrainingMode};

/// What the passes of one step produced.
pub(crate) struct Passes {
    /// The step's loss: the mean token loss over all its micro-batches (unscaled).
    pub loss: f64,
    /// The summed gradients (still multiplied by the loss scale, if any).
    pub grads: Grads,
    /// The largest peak of one micro-batch, in bytes, where it can be measured.
    pub peak_bytes: Option<usize>,
    /// Seconds spent exchanging with the other ranks.
    pub exchange_seconds: f64,
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

/// One micro-batch's loss (its share of the step's mean) and gradients.
type Unit = (f64, Grads);

/// Runs forward and backward over `examples` (the whole step's, on every rank) in
/// micro-batches, the leaves of [`tree`]: this rank computes the subtrees it owns, and the
/// ranks' sums are gathered and combined in the tree's order, so every rank ends with the same
/// sum, bitwise the same as one process's. A micro-batch is the same computation on any rank:
/// its dropout key and its examples' masking depend on its place in the step, the loss is
/// normalised by the tokens of the whole step.
pub(crate) fn run(model: &TrainModel, examples: &[Example], s: &PassSettings, group: &dyn Collective) -> std::result::Result<Passes, PassError> {
    let normaliser: usize = examples.iter().map(Example::counted).sum();
    let vars: Vec<Var> = model.parameters().iter().map(|(_, v)| v.clone()).collect();
    let units: Vec<&[Example]> = examples.chunks(s.micro_batch.max(1)).collect();
    let (world, rank) = (group.world_size(), group.rank());
    let level = tree::nodes(units.len(), tree::depth(world));
    let mut peak_max = None::<usize>;
    let mut leaf = |k: usize| -> std::result::Result<Unit, PassError> {
        let key = s.step.wrapping_mul(1 << 16).wrapping_add(k as u64);
        let (out, peak) = peak_of(model.device(), || {
            training::scope(s.mode, key, || -> std::result::Result<Unit, PassError> {
                let net = model.net(s.dtype)?;
                let (ids, targets) = stack(units[k], model.device())?;
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
        peak_max = match (peak_max, peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        out
    };
    let mut add = |(la, mut ga): Unit, (lb, gb): Unit| -> std::result::Result<Unit, PassError> {
        ga.accumulate(gb)?;
        Ok((la + lb, ga))
    };
    let mine: std::result::Result<Vec<Option<Unit>>, PassError> = tree::owned(rank, world).map(|n| tree::sum(level[n].clone(), &mut leaf, &mut add)).collect();
    if world == 1 {
        let (loss, grads) = mine?.pop().flatten().unwrap_or_default();
        return Ok(Passes { loss, grads, peak_bytes: peak_max, exchange_seconds: 0.0 });
    }
    let exchange = std::time::Instant::now();
    // Every rank learns whether any ran out of memory (all then retry with smaller
    // micro-batches, keeping the leaves alike) or failed, before anything is gathered.
    let status = match &mine {
        Ok(_) => 0,
        Err(PassError::OutOfMemory { .. }) => 1,
        Err(PassError::Failed(_)) => 2,
    };
    match (group.max_u64(status)?, mine) {
        (_, Err(e)) => Err(e),
        (1, Ok(_)) => Err(PassError::OutOfMemory { peak_bytes: None }),
        (2, Ok(_)) => Err(PassError::Failed(Error::Collective { rank, reason: "another rank failed this step (see its error)".into() })),
        (_, Ok(mine)) => {
            let level = gather(group, &vars, mine)?;
            let exchange_seconds = exchange.elapsed().as_secs_f64();
            let (loss, grads) = tree::combine(level, &mut add)?.unwrap_or_default();
            Ok(Passes { loss, grads, peak_bytes: peak_max, exchange_seconds })
        }
    }
}

/// Every rank's node sums, in node order: each rank sends [`tree::slots`] slots (its nodes,
/// then empty ones), each a presence flag and a loss (f64) and every variable's gradient
/// (f32, in the model's variable order; a variable without one sends zeros). The gradients
/// travel as one tensor on the model's device, so that an engine that exchanges device memory
/// never copies them to the host.
fn gather(group: &dyn Collective, vars: &[Var], mine: Vec<Option<Unit>>) -> crate::error::Result<Vec<Option<Unit>>> {
    let world = group.world_size();
    let slots = tree::slots(world);
    let sizes: Vec<usize> = vars.iter().map(|v| v.elem_count()).collect();
    let width: usize = sizes.iter().sum();
    let device = vars.first().map_or(Device::Cpu, |v| v.device().clone());
    let (mut head, mut body) = (Vec::with_capacity(2 * slots), Vec::with_capacity(slots * vars.len()));
    for k in 0..slots {
        match mine.get(k).and_then(Option::as_ref) {
            Some((loss, grads)) => {
                head.extend([1.0, *loss]);
                for (v, &n) in vars.iter().zip(&sizes) {
                    body.push(match grads.get(v) {
                        Some(g) => g.to_dtype(DType::F32)?.flatten_all()?,
                        None => Tensor::zeros(n, DType::F32, &device)?,
                    });
                }
            }
            None => {
                head.extend([0.0, 0.0]);
                body.push(Tensor::zeros(width, DType::F32, &device)?);
            }
        }
    }
    if body.is_empty() {
        body.push(Tensor::zeros(0, DType::F32, &device)?);
    }
    let heads = group.all_gather_f64(&head)?;
    // (world · slots · width,): every rank's slots, each its variables' gradients end to end.
    let bodies = group.all_gather_tensor(&Tensor::cat(&body, 0)?)?;
    let mut level: Vec<Option<Unit>> = (0..1usize << tree::depth(world)).map(|_| None).collect();
    for r in 0..world {
        for (k, node) in tree::owned(r, world).enumerate() {
            let slot = r * slots + k;
            if heads[2 * slot] != 1.0 {
                continue;
            }
            let mut grads = Grads::default();
            let mut at = slot * width;
            for (v, &n) in vars.iter().zip(&sizes) {
                grads.insert(v, bodies.narrow(0, at, n)?.reshape(v.shape())?.to_dtype(v.dtype())?);
                at += n;
            }
            level[node] = Some((heads[2 * slot + 1], grads));
        }
    }
    Ok(level)
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
    group: &dyn Collective,
    on_event: &mut dyn FnMut(&crate::trainer::TrainEvent),
) -> crate::error::Result<Passes> {
    let mib = |b: usize| b as f64 / 1048576.0;
    loop {
        let settings = PassSettings { micro_batch: *micro_batch, ..base };
        match run(model, examples, &settings, group) {
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

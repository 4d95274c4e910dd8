//! The spec IR: what a module instance must satisfy. Every front-end (builder, derive,
//! registry, TOML, presets) produces [`ModuleTest`] values; [`crate::plan::Plan`] validates them.

use crate::module::TestModule;
use crate::tolerance::Tolerance;
use candle_core::DType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One check the runner can perform on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Output shape, finiteness, and agreement with the reference.
    Correctness,
    /// Autograd gradients against central finite differences, in float64.
    Gradients,
    /// The same input twice gives the same output (bitwise on the CPU).
    Determinism,
    /// Row-by-row outputs equal the batched output.
    BatchInvariance,
    /// Half-precision outputs agree with float32 within the half dtype's tolerance.
    DtypeParity,
    /// Latency statistics against the latency target.
    Performance,
    /// Peak memory of one forward against the memory target.
    Memory,
    /// Fitted exponent of time against sequence length, against the expectation.
    Scaling,
}

impl Check {
    /// Every check, in run order.
    pub const ALL: [Check; 8] =
        [Self::Correctness, Self::Gradients, Self::Determinism, Self::BatchInvariance, Self::DtypeParity, Self::Performance, Self::Memory, Self::Scaling];

    /// The snake_case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Correctness => "correctness",
            Self::Gradients => "gradients",
            Self::Determinism => "determinism",
            Self::BatchInvariance => "batch_invariance",
            Self::DtypeParity => "dtype_parity",
            Self::Performance => "performance",
            Self::Memory => "memory",
            Self::Scaling => "scaling",
        }
    }

    /// Parses a name as written by [`Check::name`].
    pub fn parse(s: &str) -> Option<Check> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Expected growth of time with sequence length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// Exponent 0 (±0.3).
    Constant,
    /// Exponent 1 (±0.3).
    Linear,
    /// Exponent 2 (±0.3).
    Quadratic,
    /// A given exponent with a given tolerance.
    Exponent {
        /// Expected exponent.
        value: f64,
        /// Allowed deviation of the fitted exponent.
        tolerance: f64,
    },
    /// The growth of the module's own cost model: between the lowest and the highest degree of
    /// its terms in the sequence length (attention: `seq` to `seq²`), ± the default tolerance.
    FromCost,
}

impl Scaling {
    /// Tolerance on the fitted exponent for the named regimes.
    pub const DEFAULT_TOLERANCE: f64 = 0.3;

    /// `(expected exponent, tolerance)`. `cost_degrees` is the lowest and highest degree of
    /// the module's cost terms in the sequence length (1 for projections, 2 for attention
    /// scores): `FromCost` accepts any exponent a non-negative mix of those terms can produce,
    /// widened by the default tolerance.
    pub fn expectation(self, cost_degrees: (f64, f64)) -> (f64, f64) {
        match self {
            Self::Constant => (0.0, Self::DEFAULT_TOLERANCE),
            Self::Linear => (1.0, Self::DEFAULT_TOLERANCE),
            Self::Quadratic => (2.0, Self::DEFAULT_TOLERANCE),
            Self::Exponent { value, tolerance } => (value, tolerance),
            Self::FromCost => {
                let (lo, hi) = cost_degrees;
                ((lo + hi) / 2.0, (hi - lo).abs() / 2.0 + Self::DEFAULT_TOLERANCE)
            }
        }
    }
}

/// A sequence-length sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Sequence lengths, at least two distinct.
    pub seq_lengths: Vec<usize>,
    /// Expected growth of time.
    pub expect: Scaling,
}

/// A target value: a constant or a function of sequence length.
#[derive(Clone)]
pub enum Target {
    /// The same target at every sequence length.
    Fixed(f64),
    /// A target computed from the sequence length.
    PerSeqLen(Arc<dyn Fn(usize) -> f64 + Send + Sync>),
}

impl Target {
    /// The target at `seq_len`.
    pub fn at(&self, seq_len: usize) -> f64 {
        match self {
            Target::Fixed(v) => *v,
            Target::PerSeqLen(f) => f(seq_len),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Fixed(v) => write!(f, "Fixed({v})"),
            Target::PerSeqLen(_) => f.write_str("PerSeqLen(..)"),
        }
    }
}

impl From<f64> for Target {
    fn from(v: f64) -> Self {
        Target::Fixed(v)
    }
}

/// Performance and memory targets.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Median latency must not exceed this many milliseconds.
    pub latency_ms: Option<Target>,
    /// Peak forward memory must not exceed this many MiB (2²⁰ bytes).
    pub memory_mb: Option<Target>,
    /// Two-sided margin: a measurement below `target / margin` marks the target as stale
    /// (so loose it no longer guards anything). Must be > 1.
    pub margin: Option<f64>,
    /// The targets describe a GPU; on a CPU they are still checked, and reports say so.
    pub gpu_class: bool,
}

/// Builder for [`Targets`]: `latency_ms(5.0).memory_mb(512.0)`.
pub fn latency_ms(ms: impl Into<Target>) -> Targets {
    Targets { latency_ms: Some(ms.into()), ..Targets::default() }
}

/// Builder for [`Targets`] starting from a memory target.
pub fn memory_mb(mb: impl Into<Target>) -> Targets {
    Targets { memory_mb: Some(mb.into()), ..Targets::default() }
}

impl Targets {
    /// Adds a latency target.
    pub fn latency_ms(mut self, ms: impl Into<Target>) -> Self {
        self.latency_ms = Some(ms.into());
        self
    }
    /// Adds a memory target.
    pub fn memory_mb(mut self, mb: impl Into<Target>) -> Self {
        self.memory_mb = Some(mb.into());
        self
    }
    /// Flags measurements more than `margin`× better than the target as stale.
    pub fn margin(mut self, margin: f64) -> Self {
        self.margin = Some(margin);
        self
    }
    /// Marks the targets as meant for a GPU.
    pub fn gpu_class(mut self) -> Self {
        self.gpu_class = true;
        self
    }
}

/// What the module's output is compared against.
#[derive(Clone, Default)]
pub enum Reference {
    /// The module's own float64 twin.
    #[default]
    Twin,
    /// A reference case file (weights, `input`, `output`).
    CaseFile(PathBuf),
    /// Another module given the same input (`compare_with`).
    Module(Arc<dyn TestModule>),
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Twin => f.write_str("Twin"),
            Reference::CaseFile(p) => write!(f, "CaseFile({})", p.display()),
            Reference::Module(m) => write!(f, "Module({})", m.kind()),
        }
    }
}

/// Timing budget of the performance and scaling checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Warm-up runs until at least this much time has passed (and at least one run).
    pub warmup: Duration,
    /// Fixed number of warm-up runs, replacing the time-based warm-up.
    pub warmup_runs: Option<usize>,
    /// Fixed number of timed iterations; `None` adapts the count to `budget`.
    pub iterations: Option<usize>,
    /// Time to spend on timed iterations when the count adapts.
    pub budget: Duration,
    /// Overwrite a buffer of this many MiB on the device before every timed run, so each run
    /// starts with cold caches (256 MiB is several times an H100's 50 MiB L2 and any CPU's
    /// last-level cache). 0 keeps caches warm, as repeated inference sees them.
    pub flush_cache_mib: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Self { warmup: Duration::from_millis(100), warmup_runs: None, iterations: None, budget: Duration::from_millis(300), flush_cache_mib: 0 }
    }
}

/// The declaration for one module instance.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Input shape; `None` asks the module for its natural shape at the suite's batch and
    /// sequence length.
    pub input_shape: Option<Vec<usize>>,
    /// Expected output shape; `None` means "same as the input" for hidden-state modules.
    pub output_shape: Option<Vec<usize>>,
    /// Dtypes to run in (each is a separate case).
    pub dtypes: Vec<DType>,
    /// Devices to run on (`cpu`, `cuda`, `cuda:N`).
    pub devices: Vec<String>,
    /// Tolerance; `None` takes the dtype's default.
    pub tolerance: Option<Tolerance>,
    /// Performance and memory targets.
    pub targets: Targets,
    /// Sequence-length sweep for the scaling check.
    pub sweep: Option<Sweep>,
    /// Checks to run.
    pub checks: Vec<Check>,
    /// What correctness compares against.
    pub reference: Reference,
    /// Timing budget.
    pub profile: Profile,
    /// Seed of the random input.
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            input_shape: None,
            output_shape: None,
            dtypes: vec![DType::F32],
            devices: vec!["cpu".to_string()],
            tolerance: None,
            targets: Targets::default(),
            sweep: None,
            checks: vec![Check::Correctness, Check::Determinism, Check::Performance, Check::Memory],
            reference: Reference::Twin,
            profile: Profile::default(),
            seed: 0,
        }
    }
}

/// A named module instance and its spec: the unit every front-end produces.
#[derive(Clone)]
pub struct ModuleTest {
    /// Unique name within a run, e.g. `tiny-llama::attention`.
    pub name: String,
    /// The module under test.
    pub module: Arc<dyn TestModule>,
    /// What it must satisfy.
    pub spec: Spec,
}

impl fmt::Debug for ModuleTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleTest").field("name", &self.name).field("module", &self.module.kind()).field("spec", &self.spec).finish()
    }
}

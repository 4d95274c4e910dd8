//! The spec IR: what a module instance must satisfy. Every front-end (builder, derive,
//! registry, TOML, presets) produces [`ModuleTest`] values; [`crate::plan::Plan`] validates them.

use crate::module::ModuleUnderTest;
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
}

/// Parses a check's name as written by [`Check::name`]; the one "unknown check" message of
/// the command line, spec files and the harness.
impl std::str::FromStr for Check {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Check, String> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| format!("unknown check `{s}` (known: {})", Self::ALL.map(Check::name).join(", ")))
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

/// Parses the named regimes (`constant`, `linear`, `quadratic`, `from_cost`), as spec files
/// and the command line write them.
impl std::str::FromStr for Scaling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Scaling, String> {
        Ok(match s {
            "constant" => Self::Constant,
            "linear" => Self::Linear,
            "quadratic" => Self::Quadratic,
            "from_cost" => Self::FromCost,
            other => return Err(format!("`{other}` is not constant, linear, quadratic, from_cost or {{ exponent, tolerance }}")),
        })
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
    Module(Arc<dyn ModuleUnderTest>),
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
///
/// Every front-end declares through the methods of this type, each key written once: the
/// builder's `suite.test(block)` hands out a `&mut Spec`, [`crate::inline::Tested::declare`]
/// and `Suite::test_all_modules().matching(..).each(..)` take a closure over one, the derive
/// turns `key = value` into `spec.key(value)` (so an unknown key is a compile error at the
/// key), and TOML spec files call the same methods while lowering.
///
/// ```
/// use tensile::{latency_ms, Check, Scaling, Spec};
///
/// let mut spec = Spec::default();
/// spec.name("ffn").input_shape((1, 128, 256)).tolerance(1e-3).expect(latency_ms(5.0)).seq_lengths([128, 256]).expect_scaling(Scaling::Linear);
/// assert_eq!(spec.input_shape, Some(vec![1, 128, 256]));
/// // A sweep adds the scaling check; a target adds the check that judges it.
/// assert!(spec.checks.contains(&Check::Scaling) && spec.checks.contains(&Check::Performance));
/// assert_eq!(spec.sweep.as_ref().unwrap().expect, Scaling::Linear);
/// ```
#[derive(Debug, Clone)]
pub struct Spec {
    /// The test's name; `None` lets the front-end name it (the path found in the model, the
    /// field, or the block's kind).
    pub name: Option<String>,
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
    /// The test's own tags (markers such as `slow`, `nightly`); the plan adds built-in ones
    /// ([`crate::tags`]).
    pub tags: Vec<String>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            name: None,
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
            tags: Vec::new(),
        }
    }
}

/// Dimensions from a tuple, an array or a vector: what every front-end's `input_shape` accepts.
pub trait IntoDims {
    /// The dimensions as a vector.
    fn into_dims(self) -> Vec<usize>;
}

impl IntoDims for Vec<usize> {
    fn into_dims(self) -> Vec<usize> {
        self
    }
}

impl IntoDims for &[usize] {
    fn into_dims(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl<const N: usize> IntoDims for [usize; N] {
    fn into_dims(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl IntoDims for (usize, usize) {
    fn into_dims(self) -> Vec<usize> {
        vec![self.0, self.1]
    }
}

impl IntoDims for (usize, usize, usize) {
    fn into_dims(self) -> Vec<usize> {
        vec![self.0, self.1, self.2]
    }
}

impl IntoDims for (usize, usize, usize, usize) {
    fn into_dims(self) -> Vec<usize> {
        vec![self.0, self.1, self.2, self.3]
    }
}

/// The declaration keys. Each is implemented here and nowhere else.
impl Spec {
    /// Names the test.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }
    /// Fixes the input shape: a tuple, an array or a vector.
    pub fn input_shape(&mut self, shape: impl IntoDims) -> &mut Self {
        self.input_shape = Some(shape.into_dims());
        self
    }
    /// Sets the tolerance: a [`Tolerance`] or one number used as both atol and rtol.
    pub fn tolerance(&mut self, tolerance: impl Into<Tolerance>) -> &mut Self {
        self.tolerance = Some(tolerance.into());
        self
    }
    /// Sets performance and memory targets, e.g. `latency_ms(5.0).memory_mb(512.0)`, and adds
    /// the check that judges each target present.
    pub fn expect(&mut self, targets: Targets) -> &mut Self {
        let (latency, memory) = (targets.latency_ms.is_some(), targets.memory_mb.is_some());
        self.targets = targets;
        if latency {
            self.add_check(Check::Performance);
        }
        if memory {
            self.add_check(Check::Memory);
        }
        self
    }
    /// Sets the latency target (median, in ms) and adds the performance check.
    pub fn latency_ms(&mut self, ms: impl Into<Target>) -> &mut Self {
        let targets = Targets { latency_ms: Some(ms.into()), ..self.targets.clone() };
        self.expect(targets)
    }
    /// Sets the memory target (peak of one forward, in MiB) and adds the memory check.
    pub fn memory_mb(&mut self, mb: impl Into<Target>) -> &mut Self {
        let targets = Targets { memory_mb: Some(mb.into()), ..self.targets.clone() };
        self.expect(targets)
    }
    /// Flags measurements more than `margin`× better than their target as stale.
    pub fn margin(&mut self, margin: f64) -> &mut Self {
        self.targets.margin = Some(margin);
        self
    }
    /// Marks the targets as meant for a GPU (on a CPU they are still checked, with a note).
    pub fn gpu_class(&mut self, gpu_class: bool) -> &mut Self {
        self.targets.gpu_class = gpu_class;
        self
    }
    /// Declares a sequence-length sweep and adds the scaling check. The growth expected is
    /// linear until [`Spec::expect_scaling`] says otherwise (in either order).
    pub fn seq_lengths(&mut self, lengths: impl IntoIterator<Item = usize>) -> &mut Self {
        let expect = self.sweep.as_ref().map_or(Scaling::Linear, |s| s.expect);
        self.sweep = Some(Sweep { seq_lengths: lengths.into_iter().collect(), expect });
        self.add_check(Check::Scaling);
        self
    }
    /// Sets the expected growth of time with sequence length.
    pub fn expect_scaling(&mut self, scaling: Scaling) -> &mut Self {
        match &mut self.sweep {
            Some(s) => s.expect = scaling,
            None => self.sweep = Some(Sweep { seq_lengths: Vec::new(), expect: scaling }),
        }
        self
    }
    /// Chooses the checks to run, replacing those chosen so far (keys declared later may
    /// still add theirs).
    pub fn checks(&mut self, checks: impl IntoIterator<Item = Check>) -> &mut Self {
        self.checks = checks.into_iter().collect();
        self
    }
    /// Chooses the dtypes to run in (each is a case of its own).
    pub fn dtypes(&mut self, dtypes: impl IntoIterator<Item = DType>) -> &mut Self {
        self.dtypes = dtypes.into_iter().collect();
        self
    }
    /// Chooses the devices to run on (`cpu`, `cuda`, `cuda:N`).
    pub fn devices<S: Into<String>>(&mut self, devices: impl IntoIterator<Item = S>) -> &mut Self {
        self.devices = devices.into_iter().map(Into::into).collect();
        self
    }
    /// Seeds the random input (and, in spec files, the weights).
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self
    }
    /// Tags the test, for selection with a tag expression (`--tags`, `TENSILE_TAGS`).
    pub fn tags<S: Into<String>>(&mut self, tags: impl IntoIterator<Item = S>) -> &mut Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// Compares against a reference case file instead of the twin.
    pub fn reference_case(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.reference = Reference::CaseFile(path.into());
        self
    }
    /// Compares against another module given the same input instead of the twin.
    pub fn compare_with_module(&mut self, reference: Arc<dyn ModuleUnderTest>) -> &mut Self {
        self.reference = Reference::Module(reference);
        self
    }
    /// Compares against another block given the same input instead of the twin.
    pub fn compare_with<B: tensile_nn::Block + Clone + 'static>(&mut self, reference: &B) -> &mut Self {
        self.compare_with_module(Arc::new(crate::module::NnModule::new(reference.clone())))
    }
    /// Overwrites a buffer of `mib` MiB before every timed run so each starts with cold caches
    /// (256 is a good value on a GPU; 0 turns it off).
    pub fn flush_cache(&mut self, mib: usize) -> &mut Self {
        self.profile.flush_cache_mib = mib;
        self
    }
    /// `warmup` untimed runs, then exactly `iterations` timed runs.
    pub fn profile(&mut self, warmup: usize, iterations: usize) -> &mut Self {
        self.profile = Profile { warmup: Duration::ZERO, warmup_runs: Some(warmup), iterations: Some(iterations), ..self.profile };
        self
    }

    fn add_check(&mut self, check: Check) {
        if !self.checks.contains(&check) {
            self.checks.push(check);
        }
    }
}

/// A named module instance and its spec: the unit every front-end produces.
#[derive(Clone)]
pub struct ModuleTest {
    /// Unique name within a run, e.g. `tiny-llama::attention`.
    pub name: String,
    /// The module under test.
    pub module: Arc<dyn ModuleUnderTest>,
    /// What it must satisfy.
    pub spec: Spec,
}

impl ModuleTest {
    /// The test of `module` under `spec`, named `prefix::name` where `name` is the spec's own
    /// name or, when it declares none, `default_name` (a path in the model, a field, a kind).
    pub fn new(prefix: Option<&str>, default_name: &str, module: Arc<dyn ModuleUnderTest>, spec: Spec) -> Self {
        let name = spec.name.as_deref().unwrap_or(default_name);
        let name = match prefix {
            Some(p) => format!("{p}::{name}"),
            None => name.to_string(),
        };
        Self { name, module, spec }
    }
}

impl fmt::Debug for ModuleTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleTest").field("name", &self.name).field("module", &self.module.kind()).field("spec", &self.spec).finish()
    }
}

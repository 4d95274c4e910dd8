//! The builder front-end (the seed's `TestSuite`, in Rust).
//!
//! ```
//! use tensile::suite::Suite;
//! use tensile::spec::{latency_ms, Scaling};
//! use tensile_nn::{init::SeededInit, llama::{LlamaConfig, LlamaDecoderLayer}};
//! use candle_core::{DType, Device};
//!
//! let cfg = LlamaConfig { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: Some(2), ..Default::default() };
//! let layer = LlamaDecoderLayer::new(&cfg, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap();
//! let mut suite = Suite::new(&layer).name("tiny").batch_size(1).seq_len(16);
//! suite.test(layer.self_attn()).tolerance(1e-3).expect(latency_ms(1000.0));
//! suite.test(layer.mlp()).with_seq_lengths([16, 32]).expect_scaling(Scaling::Linear).checks([tensile::Check::Correctness]);
//! let results = suite.run().unwrap();
//! assert_eq!(results.len(), 2);
//! assert_eq!(results[0].module_name, "tiny::self_attn"); // found from the model
//! assert!(results.iter().all(|r| r.passed), "{results:?}");
//! ```

use crate::error::{Error, Result};
use crate::event::Reporter;
use crate::module::{NnModule, TestModule};
use crate::plan::{Plan, Settings};
use crate::runner::{self, RunSummary};
use crate::spec::{Check, ModuleTest, Profile, Reference, Scaling, Spec, Sweep, Targets};
use crate::tolerance::Tolerance;
use candle_core::DType;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tensile_nn::Block;

/// A model that can list its submodules by path (PyTorch's `named_modules`).
pub trait NamedModules {
    /// Submodules worth testing, by path relative to the model.
    fn named_modules(&self) -> Vec<(String, &dyn Block)>;
}

/// Every block lists its submodules from its own children ([`Block::named_modules`]).
impl<B: Block + ?Sized> NamedModules for B {
    fn named_modules(&self) -> Vec<(String, &dyn Block)> {
        Block::named_modules(self)
    }
}

/// One declared test, filled in by chained calls.
pub struct TestBuilder {
    name: Option<String>,
    module: std::result::Result<Arc<dyn TestModule>, String>,
    spec: Spec,
}

impl TestBuilder {
    fn new(name: Option<String>, module: std::result::Result<Arc<dyn TestModule>, String>) -> Self {
        Self { name, module, spec: Spec::default() }
    }

    /// Names the test (otherwise the path found in the model, or the module's kind).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }
    /// Fixes the input shape.
    pub fn input_shape(&mut self, shape: impl Into<Vec<usize>>) -> &mut Self {
        self.spec.input_shape = Some(shape.into());
        self
    }
    /// Sets the tolerance: a [`Tolerance`] or one number used as both atol and rtol.
    pub fn tolerance(&mut self, tolerance: impl Into<Tolerance>) -> &mut Self {
        self.spec.tolerance = Some(tolerance.into());
        self
    }
    /// Sets performance and memory targets, e.g. `latency_ms(5.0).memory_mb(512.0)`.
    pub fn expect(&mut self, targets: Targets) -> &mut Self {
        self.spec.targets = targets;
        self
    }
    /// Declares a sequence-length sweep (expected linear until [`TestBuilder::expect_scaling`])
    /// and adds the scaling check.
    pub fn with_seq_lengths(&mut self, lengths: impl IntoIterator<Item = usize>) -> &mut Self {
        let expect = self.spec.sweep.as_ref().map_or(Scaling::Linear, |s| s.expect);
        self.spec.sweep = Some(Sweep { seq_lengths: lengths.into_iter().collect(), expect });
        if !self.spec.checks.contains(&Check::Scaling) {
            self.spec.checks.push(Check::Scaling);
        }
        self
    }
    /// Sets the expected growth of time with sequence length.
    pub fn expect_scaling(&mut self, scaling: Scaling) -> &mut Self {
        match &mut self.spec.sweep {
            Some(s) => s.expect = scaling,
            None => self.spec.sweep = Some(Sweep { seq_lengths: Vec::new(), expect: scaling }),
        }
        self
    }
    /// Compares against another block given the same input instead of the twin.
    pub fn compare_with<B: Block + Clone + 'static>(&mut self, reference: &B) -> &mut Self {
        self.spec.reference = Reference::Module(Arc::new(NnModule::new(reference.clone())));
        self
    }
    /// Compares against any module given the same input.
    pub fn compare_with_module(&mut self, reference: Arc<dyn TestModule>) -> &mut Self {
        self.spec.reference = Reference::Module(reference);
        self
    }
    /// Compares against a reference case file.
    pub fn reference_case(&mut self, path: impl Into<std::path::PathBuf>) -> &mut Self {
        self.spec.reference = Reference::CaseFile(path.into());
        self
    }
    /// Overwrites a buffer of `mib` MiB before every timed run so each starts with cold caches
    /// (256 is a good value on a GPU; 0 turns it off).
    pub fn flush_cache(&mut self, mib: usize) -> &mut Self {
        self.spec.profile.flush_cache_mib = mib;
        self
    }

    /// `warmup` untimed runs, then exactly `iterations` timed runs.
    pub fn profile(&mut self, warmup: usize, iterations: usize) -> &mut Self {
        self.spec.profile = Profile { warmup: Duration::ZERO, warmup_runs: Some(warmup), iterations: Some(iterations), ..Profile::default() };
        self
    }
    /// Chooses the checks to run.
    pub fn checks(&mut self, checks: impl IntoIterator<Item = Check>) -> &mut Self {
        self.spec.checks = checks.into_iter().collect();
        self
    }
    /// Chooses the dtypes to run in.
    pub fn dtypes(&mut self, dtypes: impl IntoIterator<Item = DType>) -> &mut Self {
        self.spec.dtypes = dtypes.into_iter().collect();
        self
    }
    /// Chooses the devices to run on (`cpu`, `cuda`, `cuda:N`).
    pub fn devices<S: Into<String>>(&mut self, devices: impl IntoIterator<Item = S>) -> &mut Self {
        self.spec.devices = devices.into_iter().map(Into::into).collect();
        self
    }
    /// Seeds the random input.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.spec.seed = seed;
        self
    }
    /// Replaces the whole spec (used by other front-ends).
    pub fn spec(&mut self, spec: Spec) -> &mut Self {
        self.spec = spec;
        self
    }
}

impl From<f64> for Tolerance {
    /// One number as both atol and rtol; PCC and cosine must then reach `1 − 10·tol`
    /// (at most 0.99999, at least 0.99).
    fn from(tol: f64) -> Self {
        let corr = (1.0 - 10.0 * tol).clamp(0.99, 0.99999);
        Tolerance { atol: tol, rtol: tol, min_pcc: corr, min_cosine: corr }
    }
}

/// Per-case results in the seed's shape: `{module_name, passed, metrics, errors}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleResult {
    /// Module test name.
    pub module_name: String,
    /// Dtype and device of this case.
    pub dtype: String,
    /// Device of this case.
    pub device: String,
    /// Whether every check passed.
    pub passed: bool,
    /// Metrics as `check.metric`.
    pub metrics: BTreeMap<String, f64>,
    /// Errors as `check: message`.
    pub errors: Vec<String>,
}

/// A suite of module tests over one model.
pub struct Suite<'m> {
    name: Option<String>,
    model: Option<&'m dyn NamedModules>,
    settings: Settings,
    tests: Vec<TestBuilder>,
}

impl<'m> Suite<'m> {
    /// A suite over `model`, whose submodule names are found with [`NamedModules`].
    pub fn new(model: &'m dyn NamedModules) -> Self {
        Self { name: None, model: Some(model), settings: Settings::default(), tests: Vec::new() }
    }

    /// A suite without a model (tests must be named).
    pub fn standalone(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), model: None, settings: Settings::default(), tests: Vec::new() }
    }

    /// Prefixes every test name with `name::`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Batch size for inferred input shapes.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.settings.batch_size = n;
        self
    }
    /// Sequence length for inferred input shapes.
    pub fn seq_len(mut self, n: usize) -> Self {
        self.settings.seq_len = n;
        self
    }
    /// Replaces all settings (command-line overrides).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    fn path_of(&self, block: *const ()) -> Option<String> {
        let model = self.model?;
        model.named_modules().into_iter().find(|(_, m)| std::ptr::eq(*m as *const dyn Block as *const (), block)).map(|(n, _)| n)
    }

    /// Declares a test of `block`, a submodule of the model or any block.
    pub fn test<B: Block + Clone + 'static>(&mut self, block: &B) -> &mut TestBuilder {
        let path = self.path_of(block as *const B as *const ());
        self.tests.push(TestBuilder::new(path, Ok(Arc::new(NnModule::new(block.clone())))));
        self.tests.last_mut().expect("just pushed")
    }

    /// Declares a test of any [`TestModule`] under `name`.
    pub fn test_module(&mut self, name: impl Into<String>, module: Arc<dyn TestModule>) -> &mut TestBuilder {
        self.tests.push(TestBuilder::new(Some(name.into()), Ok(module)));
        self.tests.last_mut().expect("just pushed")
    }

    /// Selects every submodule of the model for testing; narrow it with
    /// [`AllModules::matching`].
    pub fn test_all_modules(&mut self) -> AllModules<'_, 'm> {
        AllModules { suite: self }
    }

    /// Lowers the declarations to the spec IR.
    pub fn module_tests(&self) -> Result<Vec<ModuleTest>> {
        self.tests
            .iter()
            .map(|t| {
                let base = t.name.clone().unwrap_or_else(|| t.module.as_ref().map_or_else(|_| "module".to_string(), |m| m.kind().to_string()));
                let name = match &self.name {
                    Some(prefix) => format!("{prefix}::{base}"),
                    None => base,
                };
                let module = t.module.clone().map_err(|reason| Error::Spec { spec: name.clone(), field: "module".into(), reason })?;
                Ok(ModuleTest { name, module, spec: t.spec.clone() })
            })
            .collect()
    }

    /// Validates the suite into a plan.
    pub fn plan(&self) -> Result<Plan> {
        Plan::new(&self.module_tests()?, &self.settings)
    }

    /// Runs the suite, reporting to `reporters`.
    pub fn run_with(&self, reporters: &mut [&mut dyn Reporter]) -> Result<RunSummary> {
        Ok(runner::run(&self.plan()?, reporters))
    }

    /// Runs the suite and returns one result per case.
    pub fn run(&self) -> Result<Vec<ModuleResult>> {
        Ok(module_results(&self.run_with(&mut [])?))
    }

    /// Declares tests inside `f` and runs them when the closure returns, like the seed's
    /// context manager.
    pub fn scope(model: &'m dyn NamedModules, f: impl FnOnce(&mut Suite<'m>)) -> Result<Vec<ModuleResult>> {
        let mut suite = Suite::new(model);
        f(&mut suite);
        suite.run()
    }
}

/// The model's submodules, before narrowing with a glob.
pub struct AllModules<'s, 'm> {
    suite: &'s mut Suite<'m>,
}

impl<'s> AllModules<'s, '_> {
    /// Declares a test for every submodule whose path matches `pattern` (a glob such as
    /// `*attention*` or `*.mlp`) and returns them for further configuration.
    pub fn matching(self, pattern: &str) -> Result<Selection<'s>> {
        let glob = glob::Pattern::new(pattern).map_err(|e| Error::Spec {
            spec: "suite".into(),
            field: "matching".into(),
            reason: format!("bad glob `{pattern}`: {e}"),
        })?;
        let first = self.suite.tests.len();
        if let Some(model) = self.suite.model {
            for (path, block) in model.named_modules() {
                if glob.matches(&path) {
                    let module = NnModule::from_dyn(block).map(|m| Arc::new(m) as Arc<dyn TestModule>).map_err(|e| e.to_string());
                    self.suite.tests.push(TestBuilder::new(Some(path), module));
                }
            }
        }
        Ok(Selection { tests: &mut self.suite.tests[first..] })
    }
}

/// The tests declared by one [`AllModules::matching`] call.
pub struct Selection<'s> {
    tests: &'s mut [TestBuilder],
}

impl Selection<'_> {
    /// How many submodules matched.
    pub fn len(&self) -> usize {
        self.tests.len()
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Applies `configure` to every selected test.
    pub fn each(self, configure: impl Fn(&mut TestBuilder)) -> Self {
        for t in self.tests.iter_mut() {
            configure(t);
        }
        self
    }
}

/// Flattens a run summary into [`ModuleResult`]s.
pub fn module_results(summary: &RunSummary) -> Vec<ModuleResult> {
    summary
        .cases
        .iter()
        .map(|c| {
            let mut metrics = BTreeMap::new();
            let mut errors = Vec::new();
            for r in &c.checks {
                metrics.extend(r.outcome.metrics.iter().map(|(k, v)| (format!("{}.{k}", r.check), *v)));
                errors.extend(r.outcome.errors.iter().map(|e| format!("{}: {e}", r.check)));
            }
            ModuleResult { module_name: c.case.name.clone(), dtype: c.case.dtype.clone(), device: c.case.device.clone(), passed: c.passed, metrics, errors }
        })
        .collect()
}

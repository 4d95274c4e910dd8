//! The builder front-end: a suite over one model whose tests are found by their path in it.
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
//! suite.test(layer.mlp()).seq_lengths([16, 32]).expect_scaling(Scaling::Linear).checks([tensile::Check::Correctness]);
//! let results = suite.run().unwrap();
//! assert_eq!(results.len(), 2);
//! assert_eq!(results[0].module_name, "tiny::self_attn"); // found from the model
//! assert!(results.iter().all(|r| r.passed), "{results:?}");
//! ```

use crate::error::{Error, Result};
use crate::event::Reporter;
use crate::module::{ModuleUnderTest, NnModule};
use crate::plan::{Plan, Settings};
use crate::runner::{self, ModuleResult, RunSummary};
use crate::spec::{ModuleTest, Spec};
use std::sync::Arc;
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

/// One declared test: where it was found, the module, and its spec.
struct Declared {
    path: Option<String>,
    module: std::result::Result<Arc<dyn ModuleUnderTest>, String>,
    spec: Spec,
}

impl Declared {
    fn new(path: Option<String>, module: std::result::Result<Arc<dyn ModuleUnderTest>, String>) -> Self {
        Self { path, module, spec: Spec::default() }
    }
}

/// A suite of module tests over one model.
pub struct Suite<'m> {
    name: Option<String>,
    model: Option<&'m dyn NamedModules>,
    settings: Settings,
    tests: Vec<Declared>,
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

    /// Declares a test of `block`, a submodule of the model or any block, and returns its
    /// spec to declare on (named after the block's path in the model unless named).
    pub fn test<B: Block + Clone + 'static>(&mut self, block: &B) -> &mut Spec {
        let path = self.path_of(block as *const B as *const ());
        self.tests.push(Declared::new(path, Ok(Arc::new(NnModule::new(block.clone())))));
        &mut self.tests.last_mut().expect("just pushed").spec
    }

    /// Declares a test of any [`ModuleUnderTest`] under `name`.
    pub fn test_module(&mut self, name: impl Into<String>, module: Arc<dyn ModuleUnderTest>) -> &mut Spec {
        self.tests.push(Declared::new(Some(name.into()), Ok(module)));
        &mut self.tests.last_mut().expect("just pushed").spec
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
                let default = t.path.clone().unwrap_or_else(|| t.module.as_ref().map_or_else(|_| "module".to_string(), |m| m.kind().to_string()));
                match &t.module {
                    Ok(module) => Ok(ModuleTest::new(self.name.as_deref(), &default, module.clone(), t.spec.clone())),
                    Err(reason) => Err(Error::Spec { spec: default, field: "module".into(), reason: reason.clone() }),
                }
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
        Ok(self.run_with(&mut [])?.module_results())
    }

    /// Declares tests inside `f` and runs them when the closure returns: a scope in which the
    /// model's tests are declared, with no way to forget the run.
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
                    let module = NnModule::from_dyn(block).map(|m| Arc::new(m) as Arc<dyn ModuleUnderTest>).map_err(|e| e.to_string());
                    self.suite.tests.push(Declared::new(Some(path), module));
                }
            }
        }
        Ok(Selection { tests: &mut self.suite.tests[first..] })
    }
}

/// The tests declared by one [`AllModules::matching`] call.
pub struct Selection<'s> {
    tests: &'s mut [Declared],
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

    /// Declares on the spec of every selected test.
    pub fn each(self, declare: impl Fn(&mut Spec)) -> Self {
        for t in self.tests.iter_mut() {
            declare(&mut t.spec);
        }
        self
    }
}

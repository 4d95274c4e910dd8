//! Inline front-ends: wrap a block where the model is built ([`Tested`]), or list tests by
//! hand ([`TestableModel`]). Both lower to the same [`ModuleTest`] IR as every other front-end.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use tensile::inline::{Tested, TestableModel};
//! use tensile::{latency_ms, ModuleTest};
//! use tensile_nn::{init::SeededInit, RmsNorm};
//!
//! struct Model { norm: Tested<RmsNorm> }
//!
//! impl TestableModel for Model {
//!     fn module_tests(&self) -> Vec<ModuleTest> {
//!         vec![self.norm.module_test()]
//!     }
//! }
//!
//! let norm = RmsNorm::new(8, 1e-6, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap();
//! let model = Model { norm: Tested::new(norm).name("norm").input_shape([1, 4, 8]).expect(latency_ms(50.0)) };
//! // The wrapper does not change what the block computes.
//! let x = Tensor::ones((1, 4, 8), DType::F32, &Device::Cpu).unwrap();
//! assert_eq!(model.norm.forward(&x).unwrap().to_vec3::<f32>().unwrap(), model.norm.inner().forward(&x).unwrap().to_vec3::<f32>().unwrap());
//! let tests = model.module_tests();
//! assert_eq!(tests[0].name, "norm");
//! assert_eq!(tests[0].spec.input_shape, Some(vec![1, 4, 8]));
//! ```

use crate::module::NnModule;
use crate::spec::{Check, ModuleTest, Scaling, Spec, Sweep, Targets};
use crate::tolerance::Tolerance;
use candle_core::{Module, Result, Tensor};
use std::sync::Arc;
use tensile_nn::Block;

/// Dimensions from a tuple, an array or a vector (what `input_shape = …` accepts).
pub trait IntoDims {
    /// The dimensions as a vector.
    fn into_dims(self) -> Vec<usize>;
}

impl IntoDims for Vec<usize> {
    fn into_dims(self) -> Vec<usize> {
        self
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

/// A block as a test module (what `#[derive(Testable)]` calls for each declared field; its
/// bound is what makes a non-block field a compile error).
pub fn test_module<B: Block + Clone + 'static>(block: &B) -> Arc<dyn crate::module::TestModule> {
    Arc::new(NnModule::new(block.clone()))
}

/// Calls `f` on the model; lets `#[derive(Testable)]` accept closures without type annotations
/// (`|m| (1, 2048, m.config.hidden_size)`).
pub fn with_model<M: ?Sized, R>(model: &M, f: impl FnOnce(&M) -> R) -> R {
    f(model)
}

/// A model that lists its own module tests (the seed's `get_module_tests()`).
pub trait TestableModel {
    /// The module tests of this model instance.
    fn module_tests(&self) -> Vec<ModuleTest>;
}

/// A block wrapped at construction with its spec. It forwards exactly like the block.
#[derive(Debug, Clone)]
pub struct Tested<B> {
    block: B,
    name: Option<String>,
    spec: Spec,
}

impl<B: Block + Clone + 'static> Tested<B> {
    /// Wraps `block` with the default spec.
    pub fn new(block: B) -> Self {
        Self { block, name: None, spec: Spec::default() }
    }
    /// Names the test (default: the block's kind).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Fixes the input shape.
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.spec.input_shape = Some(shape.into());
        self
    }
    /// Sets the tolerance.
    pub fn tolerance(mut self, tolerance: impl Into<Tolerance>) -> Self {
        self.spec.tolerance = Some(tolerance.into());
        self
    }
    /// Sets performance and memory targets.
    pub fn expect(mut self, targets: Targets) -> Self {
        self.spec.targets = targets;
        self
    }
    /// Declares a sequence-length sweep with its expected scaling.
    pub fn with_seq_lengths(mut self, lengths: impl IntoIterator<Item = usize>, expect: Scaling) -> Self {
        self.spec.sweep = Some(Sweep { seq_lengths: lengths.into_iter().collect(), expect });
        if !self.spec.checks.contains(&Check::Scaling) {
            self.spec.checks.push(Check::Scaling);
        }
        self
    }
    /// Chooses the checks.
    pub fn checks(mut self, checks: impl IntoIterator<Item = Check>) -> Self {
        self.spec.checks = checks.into_iter().collect();
        self
    }
    /// The wrapped block.
    pub fn inner(&self) -> &B {
        &self.block
    }
    /// The declared spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
    /// The test this wrapper declares.
    pub fn module_test(&self) -> ModuleTest {
        ModuleTest {
            name: self.name.clone().unwrap_or_else(|| self.block.kind().to_string()),
            module: Arc::new(NnModule::new(self.block.clone())),
            spec: self.spec.clone(),
        }
    }
}

impl<B: Module> Module for Tested<B> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.block.forward(xs)
    }
}

impl<B> std::ops::Deref for Tested<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.block
    }
}

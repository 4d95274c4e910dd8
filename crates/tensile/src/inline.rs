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
//! let model = Model { norm: Tested::new(norm).declare(|s| s.name("norm").input_shape((1, 4, 8)).expect(latency_ms(50.0))) };
//! // The wrapper does not change what the block computes.
//! let x = Tensor::ones((1, 4, 8), DType::F32, &Device::Cpu).unwrap();
//! assert_eq!(model.norm.forward(&x).unwrap().to_vec3::<f32>().unwrap(), model.norm.inner().forward(&x).unwrap().to_vec3::<f32>().unwrap());
//! let tests = model.module_tests();
//! assert_eq!(tests[0].name, "norm");
//! assert_eq!(tests[0].spec.input_shape, Some(vec![1, 4, 8]));
//! ```

use crate::module::NnModule;
use crate::spec::{ModuleTest, Spec};
use candle_core::{Module, Result, Tensor};
use std::sync::Arc;
use tensile_nn::Block;

/// A block as a test module (what `#[derive(Testable)]` calls for each declared field; its
/// bound is what makes a non-block field a compile error).
pub fn test_module<B: Block + Clone + 'static>(block: &B) -> Arc<dyn crate::module::ModuleUnderTest> {
    Arc::new(NnModule::new(block.clone()))
}

/// Calls `f` on the model; lets `#[derive(Testable)]` accept closures without type annotations
/// (`|m| (1, 2048, m.config.hidden_size)`).
pub fn with_model<M: ?Sized, R>(model: &M, f: impl FnOnce(&M) -> R) -> R {
    f(model)
}

/// A model that lists its own module tests, whatever front-end declared them.
pub trait TestableModel {
    /// The module tests of this model instance.
    fn module_tests(&self) -> Vec<ModuleTest>;
}

/// A block wrapped at construction with its spec. It forwards exactly like the block.
#[derive(Debug, Clone)]
pub struct Tested<B> {
    block: B,
    spec: Spec,
}

impl<B: Block + Clone + 'static> Tested<B> {
    /// Wraps `block` with the default spec.
    pub fn new(block: B) -> Self {
        Self { block, spec: Spec::default() }
    }
    /// Declares on the wrapper's spec with the same keys as every front-end:
    /// `Tested::new(norm).declare(|s| s.name("norm").input_shape((1, 4, 8)))`.
    pub fn declare(mut self, declare: impl for<'a> FnOnce(&'a mut Spec) -> &'a mut Spec) -> Self {
        declare(&mut self.spec);
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
        ModuleTest::new(None, &self.block.kind().to_string(), Arc::new(NnModule::new(self.block.clone())), self.spec.clone())
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

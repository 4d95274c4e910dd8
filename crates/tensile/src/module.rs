//! [`ModuleUnderTest`]: what the runner needs from a module under test.

use candle_core::{DType, Device, Module, Result, Tensor};
use std::collections::HashMap;
use std::sync::Arc;
use tensile_nn::Block;
pub use tensile_nn::{Cost, InputKind};

/// A module under test. Object safe, so the runner holds any mix of blocks and user modules.
pub trait ModuleUnderTest: Send + Sync {
    /// A short kind name (`llama.attention`, `custom`, …).
    fn kind(&self) -> &str;
    /// The fast forward pass.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// The float64 reference twin, if the module has one. It must be built from elementary
    /// differentiable operations: the gradient check differentiates through it.
    fn forward_reference(&self, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }
    /// What the module consumes.
    fn input_kind(&self) -> InputKind {
        InputKind::Hidden
    }
    /// The natural input shape for `batch` sequences of `seq` tokens, if the module knows it.
    fn input_shape_hint(&self, _batch: usize, _seq: usize) -> Option<Vec<usize>> {
        None
    }
    /// Named parameters.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// FLOPs and bytes of one forward on `shape` (zeros when unknown).
    fn cost(&self, _shape: &[usize]) -> Cost {
        Cost::default()
    }
    /// Configuration numbers under Hugging Face names (`hidden_size`, …), for coverage reports.
    fn dims(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }
    /// Bytes of the parameters as stored: quantized weights at their packed size, adapters
    /// included. The dense parameters' bytes by default.
    fn parameter_bytes(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }
    /// The tolerance a case of this module uses in `dtype` when its spec sets none; `None`
    /// for the dtype's default ([`crate::Tolerance::for_dtype`]).
    fn default_tolerance(&self, _dtype: DType) -> Option<crate::Tolerance> {
        None
    }
    /// Parameters that are not trainable (quantized weights, whose listed tensor is a
    /// dequantized view): the gradient check differentiates with respect to the others only.
    fn frozen_parameters(&self) -> Vec<String> {
        Vec::new()
    }
    /// Number of parameter elements, for admission control before anything is built.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.elem_count()).sum()
    }
    /// The module built to run in `dtype` on `device`, for a module that holds no weights
    /// until a case needs them ([`crate::lazy::LazyModule`]); `None` for a module that is
    /// already built, which [`convert`] then converts.
    fn materialize(&self, _dtype: DType, _device: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        None
    }
    /// The same module with parameters replaced by `params` (same names), placed in `dtype`
    /// on `device`. `None` when the module cannot be rebuilt; checks that need another dtype
    /// or device then skip with that reason.
    fn with_parameters(&self, _params: HashMap<String, Tensor>, _dtype: DType, _device: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        None
    }
}

/// The dtype and device of a module's first parameter (f32 on the CPU for a module without
/// parameters).
pub fn placement(m: &dyn ModuleUnderTest) -> (DType, Device) {
    m.parameters().first().map_or((DType::F32, Device::Cpu), |(_, t)| (t.dtype(), t.device().clone()))
}

/// The module converted to `dtype` on `device` (itself when already there).
pub fn convert(m: &Arc<dyn ModuleUnderTest>, dtype: DType, device: &Device) -> std::result::Result<Arc<dyn ModuleUnderTest>, String> {
    if let Some(built) = m.materialize(dtype, device) {
        return built.map_err(|e| tensile_nn::innermost_message(&e));
    }
    let (d, dev) = placement(m.as_ref());
    if d == dtype && dev.same_device(device) {
        return Ok(m.clone());
    }
    let params: HashMap<String, Tensor> = m.parameters().into_iter().collect();
    match m.with_parameters(params, dtype, device) {
        Some(Ok(converted)) => Ok(converted),
        Some(Err(e)) => Err(tensile_nn::innermost_message(&e)),
        None => Err(format!("module `{}` cannot be rebuilt in another dtype or on another device", m.kind())),
    }
}

/// A `tensile-nn` block as a [`ModuleUnderTest`].
pub struct NnModule(pub Box<dyn Block>);

impl NnModule {
    /// Wraps an owned block.
    pub fn new(block: impl Block + 'static) -> Self {
        Self(Box::new(block))
    }

    /// An owned copy of a borrowed block (parameters are shared, not copied).
    pub fn from_dyn(block: &dyn Block) -> Result<Self> {
        let params: HashMap<String, Tensor> = block.parameters().into_iter().collect();
        let (dtype, dev) = params.values().next().map_or((DType::F32, Device::Cpu), |t| (t.dtype(), t.device().clone()));
        let vb = candle_nn::VarBuilder::from_tensors(params, dtype, &dev);
        tensile_nn::rebuild_with_state(block, vb).map(Self).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

impl ModuleUnderTest for NnModule {
    fn kind(&self) -> &str {
        self.0.kind().name()
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(self.0.forward_reference(x))
    }
    fn input_kind(&self) -> InputKind {
        self.0.input_kind()
    }
    fn input_shape_hint(&self, batch: usize, seq: usize) -> Option<Vec<usize>> {
        Some(self.0.input_shape(batch, seq))
    }
    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.0.parameters()
    }
    fn cost(&self, shape: &[usize]) -> Cost {
        self.0.cost(shape)
    }
    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.0.dims()
    }
    fn parameter_bytes(&self) -> usize {
        self.0.storage_bytes()
    }
    /// The weights of quantized linear layers.
    fn frozen_parameters(&self) -> Vec<String> {
        let path = |p: &str| if p.is_empty() { "weight".to_string() } else { format!("{p}.weight") };
        tensile_nn::linears(self.0.as_ref()).iter().filter(|(_, l)| l.quant_format().is_some()).map(|(p, _)| path(p)).collect()
    }
    /// [`crate::Tolerance::for_quantized_kernels`] for weights on quantized GGUF kernels,
    /// which round the activations; int8 and int4 dequantize to f32 and need no allowance.
    fn default_tolerance(&self, dtype: DType) -> Option<crate::Tolerance> {
        let ggml = tensile_nn::linears(self.0.as_ref()).iter().any(|(_, l)| matches!(l.quant_format(), Some(tensile_nn::quant::QuantFormat::Ggml(_))));
        ggml.then(|| crate::Tolerance::for_quantized_kernels(dtype))
    }
    fn with_parameters(&self, params: HashMap<String, Tensor>, dtype: DType, device: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        let vb = candle_nn::VarBuilder::from_tensors(params, dtype, device);
        // Quantization and adapters added after the block was built survive the rebuild.
        let rebuilt = tensile_nn::rebuild_with_state(self.0.as_ref(), vb);
        Some(rebuilt.map(|b| Arc::new(NnModule(b)) as Arc<dyn ModuleUnderTest>).map_err(|e| candle_core::Error::Msg(e.to_string())))
    }
}

/// Any candle [`Module`] as a [`ModuleUnderTest`], with an optional reference closure.
pub struct CustomModule<M> {
    module: M,
    kind: String,
    reference: Option<Box<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>>,
}

impl<M: Module + Send + Sync> CustomModule<M> {
    /// Wraps `module` under the kind name `kind`.
    pub fn new(kind: impl Into<String>, module: M) -> Self {
        Self { module, kind: kind.into(), reference: None }
    }

    /// Adds a float64 reference forward.
    pub fn with_reference(mut self, f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static) -> Self {
        self.reference = Some(Box::new(f));
        self
    }
}

impl<M: Module + Send + Sync> ModuleUnderTest for CustomModule<M> {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.module.forward(x)
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        self.reference.as_ref().map(|f| f(x))
    }
}

//! Autograd gradients against central finite differences, in float64 on the CPU.
//!
//! Gradients are taken through the module's reference twin, which is built from elementary
//! operations: candle's fused kernels (softmax, rms_norm, rope, …) have no backward pass and
//! would leave gradients silently missing. A missing gradient is reported as a failure.

use super::Ctx;
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::Metric;
use crate::module::{InputKind, ModuleUnderTest};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};

/// Step of the central difference; with float64 its truncation and rounding errors are both
/// far below the tolerance for O(1) activations.
const EPS: f64 = 1e-6;
/// Coordinates sampled per tensor.
const SAMPLES: usize = 6;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    // A short sequence keeps the float64 reference cheap; gradients are local properties.
    let mut shape = ctx.case.input_shape.clone();
    shape[0] = 1;
    shape[1] = shape[1].min(4);
    gradient_check(ctx.module.as_ref(), &shape, ctx.case.spec.seed)
}

/// Compares autograd and finite-difference gradients of `sum(f(x) · r)` (r a fixed random
/// cotangent) with respect to the input and every parameter of `module`, at `shape`.
pub fn gradient_check(module: &dyn ModuleUnderTest, shape: &[usize], seed: u64) -> Result<CheckOutcome> {
    let cpu = Device::Cpu;
    let vars: Vec<(String, Var)> = module
        .parameters()
        .into_iter()
        .map(|(n, t)| Ok((n, Var::from_tensor(&t.to_device(&cpu)?.to_dtype(DType::F64)?)?)))
        .collect::<candle_core::Result<_>>()?;
    let build = |params: HashMap<String, Tensor>| -> Result<Option<std::sync::Arc<dyn ModuleUnderTest>>> {
        Ok(module.with_parameters(params, DType::F64, &cpu).transpose()?)
    };
    let base: HashMap<String, Tensor> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    // A module without parameters is differentiated as it is; its reference is float64 anyway.
    let rebuilt = match build(base.clone())? {
        Some(m) => Some(m),
        None if vars.is_empty() => None,
        None => return Ok(CheckOutcome::skip("the module cannot be rebuilt with float64 parameters")),
    };
    let m64: &dyn ModuleUnderTest = rebuilt.as_deref().unwrap_or(module);
    let input_var = match module.input_kind() {
        InputKind::Hidden => Some(Var::from_tensor(&tensile_nn::init::randn(seed, "input", shape, DType::F64, &cpu)?)?),
        InputKind::TokenIds { .. } => None,
    };
    let input = match &input_var {
        Some(v) => v.as_tensor().clone(),
        None => super::make_input(module, shape, DType::F64, &cpu, seed)?,
    };
    let Some(out) = m64.forward_reference(&input).transpose()? else {
        return Ok(CheckOutcome::skip("no reference twin to differentiate"));
    };
    let cotangent = tensile_nn::init::randn(seed, "cotangent", out.shape(), DType::F64, &cpu)?;
    let grads = (&out * &cotangent)?.sum_all()?.backward()?;
    let loss = |m: &dyn ModuleUnderTest, x: &Tensor| -> Result<f64> {
        let out = m.forward_reference(x).transpose()?.ok_or_else(|| candle_core::Error::Msg("reference vanished".into()))?;
        Ok((out * &cotangent)?.sum_all()?.to_scalar::<f64>()?)
    };

    let mut rng = tensile_nn::init::rng_for(seed, "gradient-coordinates");
    let (mut max_abs, mut max_rel, mut checked, mut errors) = (0.0f64, 0.0f64, 0usize, Vec::new());
    let mut targets: Vec<(String, Tensor)> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    if let Some(v) = &input_var {
        targets.push(("input".to_string(), v.as_tensor().clone()));
    }
    for (name, tensor) in &targets {
        let Some(grad) = grads.get(tensor) else {
            errors.push(format!("no gradient reached `{name}` (a fused op without backward in the reference?)"));
            continue;
        };
        let grad = grad.flatten_all()?.to_vec1::<f64>()?;
        let values = tensor.flatten_all()?.to_vec1::<f64>()?;
        for _ in 0..SAMPLES.min(values.len()) {
            let i = rng.random_range(0..values.len());
            let eval = |delta: f64| -> Result<f64> {
                let mut v = values.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, tensor.shape(), &cpu)?;
                if name == "input" && input_var.is_some() {
                    loss(m64, &t)
                } else {
                    let mut params = base.clone();
                    params.insert(name.clone(), t);
                    let m = build(params)?.ok_or_else(|| candle_core::Error::Msg("rebuild failed".into()))?;
                    loss(m.as_ref(), &input)
                }
            };
            let numeric = (eval(EPS)? - eval(-EPS)?) / (2.0 * EPS);
            let analytic = grad[i];
            let err = (analytic - numeric).abs();
            let scale = analytic.abs().max(numeric.abs());
            max_abs = max_abs.max(err);
            max_rel = max_rel.max(if scale > 0.0 { err / scale } else { 0.0 });
            checked += 1;
            if !(err <= 1e-6 + 1e-4 * scale) && errors.len() < 5 {
                errors.push(format!("`{name}` element {i}: autograd {analytic:.6e} vs finite difference {numeric:.6e}"));
            }
        }
    }
    let metrics = BTreeMap::from([(Metric::MaxAbsErr, max_abs), (Metric::MaxRelErr, max_rel), (Metric::Coordinates, checked as f64)]);
    Ok(CheckOutcome::from_errors(metrics, errors))
}

//! Autograd gradients against central finite differences, in float64 on the CPU, and the fast
//! path's own gradients against them.
//!
//! Gradients are first taken through the module's reference twin, which is built from
//! elementary operations: candle's fused kernels (softmax, rms_norm, rope, …) have no backward
//! pass and would leave gradients silently missing. A missing gradient is reported as a
//! failure.
//!
//! Training runs the fast path, not the twin: in a training scope its fused kernels take
//! their differentiable forms, some with hand-written backward passes (tensile-nn's fused
//! softmax, RMSNorm, GELU, SwiGLU gate). So the fast path is differentiated too, in f32 inside
//! a training scope (dropout off), and each of its gradients must match the twin's within
//! 1e-3 of that gradient's largest magnitude (or of 1% of the largest gradient of any target,
//! when larger: an analytically zero gradient comes out as f32 noise): f32 rounding stays far
//! below that, and a backward pass missing a term or a boundary lands far above. Modules with
//! quantized weights are left out: candle's quantized matmul has no backward.

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

/// Disagreeing coordinates reported by message; the metrics cover the rest.
const MAX_MESSAGES: usize = 5;

/// The absolute and relative difference of one coordinate's gradients, and whether they
/// agree: within 1e-6 absolute plus 1e-4 of the larger magnitude (a NaN never agrees).
fn score(analytic: f64, numeric: f64) -> (f64, f64, bool) {
    let err = (analytic - numeric).abs();
    let scale = analytic.abs().max(numeric.abs());
    let rel = if scale > 0.0 { err / scale } else { 0.0 };
    (err, rel, err <= 1e-6 + 1e-4 * scale)
}

/// The longest sequence the gradients are checked at.
const GRADIENT_SEQ: usize = 72;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    // A short sequence keeps the float64 reference cheap, but not shorter than what crosses a
    // tile of the tiled attention kernel (64 queries), whose backward handles each tile and the
    // keys it shares with the next on its own: at 4 tokens a boundary fault had no tile to cross.
    let mut shape = ctx.case.input_shape.clone();
    shape[0] = 1;
    shape[1] = shape[1].min(GRADIENT_SEQ);
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
    // Frozen parameters (quantized weights) take part in the forward but are not differentiated:
    // their values move in steps, so neither side of the comparison is defined for them.
    let frozen = module.frozen_parameters();
    let mut targets: Vec<(String, Tensor)> = vars.iter().filter(|(n, _)| !frozen.contains(n)).map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    if targets.is_empty() && input_var.is_none() {
        return Ok(CheckOutcome::skip("every parameter is frozen (quantized) and the input is token ids: nothing to differentiate"));
    }
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
            let (err, rel, agrees) = score(analytic, numeric);
            max_abs = max_abs.max(err);
            max_rel = max_rel.max(rel);
            checked += 1;
            if !agrees && errors.len() < MAX_MESSAGES {
                errors.push(format!("`{name}` element {i}: autograd {analytic:.6e} vs finite difference {numeric:.6e}"));
            }
        }
    }
    let mut metrics = BTreeMap::from([(Metric::MaxAbsErr, max_abs), (Metric::MaxRelErr, max_rel), (Metric::Coordinates, checked as f64)]);
    let mut notes = Vec::new();
    if !frozen.is_empty() {
        // candle's quantized matmul has no backward, so no gradient crosses a quantized layer
        // on the fast path; the twin's gradients (over the dequantized weights) were checked.
        notes.push("the fast path's gradients were not compared: its quantized layers have no backward pass".to_string());
    } else if let Some(worst) = fast_path(module, &input, input_var.is_some(), &cotangent, &targets, &grads, &mut errors)? {
        metrics.insert(Metric::FastPathGradErr, worst);
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    Ok(outcome)
}

/// Largest gap, relative to the gradient's largest magnitude, that the fast path's f32
/// gradient may keep from the twin's float64 one.
const FAST_PATH_TOLERANCE: f64 = 1e-3;

/// The fast path's f32 gradients (in a training scope) against the twin's: the worst relative
/// gap over every target, or `None` when the module cannot be rebuilt in f32 with variables.
#[allow(clippy::too_many_arguments)]
fn fast_path(
    module: &dyn ModuleUnderTest,
    input: &Tensor,
    differentiate_input: bool,
    cotangent: &Tensor,
    targets: &[(String, Tensor)],
    twin: &candle_core::backprop::GradStore,
    errors: &mut Vec<String>,
) -> Result<Option<f64>> {
    let cpu = Device::Cpu;
    let vars: HashMap<String, Var> = module
        .parameters()
        .into_iter()
        .map(|(n, t)| Ok((n, Var::from_tensor(&t.to_device(&cpu)?.to_dtype(DType::F32)?)?)))
        .collect::<candle_core::Result<_>>()?;
    let params: HashMap<String, Tensor> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    let owned = module.with_parameters(params, DType::F32, &cpu).transpose()?;
    let rebuilt: &dyn ModuleUnderTest = match &owned {
        Some(m) => m.as_ref(),
        // A module without parameters runs as it is, on an f32 input.
        None if vars.is_empty() => module,
        None => return Ok(None),
    };
    let x = if differentiate_input { Var::from_tensor(&input.to_dtype(DType::F32)?)?.as_tensor().clone() } else { input.clone() };
    let out = tensile_nn::training::scope(&tensile_nn::training::TrainingMode::default(), 0, || rebuilt.forward(&x))?;
    let grads = (&out.to_dtype(DType::F32)? * &cotangent.to_dtype(DType::F32)?)?.sum_all()?.backward()?;
    // An analytically zero gradient (a key bias, which softmax cancels) comes out as f32
    // rounding noise: each gap may also reach 1e-5 of the largest gradient of any target.
    let global = targets.iter().filter_map(|(_, t)| twin.get(t)).map(|g| g.abs()?.max_all()?.to_scalar::<f64>()).collect::<candle_core::Result<Vec<_>>>()?;
    let global = global.into_iter().fold(0.0f64, f64::max);
    let mut worst = 0.0f64;
    for (name, twin_tensor) in targets {
        let Some(want) = twin.get(twin_tensor) else { continue };
        let ours = if name == "input" { Some(&x) } else { vars.get(name).map(|v| v.as_tensor()) };
        let Some(got) = ours.and_then(|t| grads.get(t)) else {
            errors.push(format!("no gradient reached `{name}` through the fast path (a fused op without backward?)"));
            continue;
        };
        let (got, want) = (got.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?, want.flatten_all()?.to_vec1::<f64>()?);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (i, gap) = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .enumerate()
            .fold((0, 0.0f64), |best, (i, d)| if d > best.1 || d.is_nan() { (i, d) } else { best });
        let floor = scale.max(1e-2 * global);
        let rel = if floor > 0.0 { gap / floor } else { gap };
        worst = if rel.is_nan() || worst.is_nan() { f64::NAN } else { worst.max(rel) };
        if !(rel <= FAST_PATH_TOLERANCE) && errors.len() < MAX_MESSAGES {
            errors.push(format!(
                "`{name}` element {i}: the fast path's gradient {:.6e} vs the twin's {:.6e} ({:.2e} of its largest magnitude, allowed {FAST_PATH_TOLERANCE})",
                got[i], want[i], rel
            ));
        }
    }
    Ok(Some(worst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::NnModule;
    use candle_core::Result as CandleResult;

    #[test]
    fn a_coordinate_agrees_within_an_absolute_and_a_relative_margin() {
        assert_eq!(score(2.0, 1.0), (1.0, 0.5, false));
        assert_eq!(score(-1.0, -4.0), (3.0, 0.75, false));
        assert_eq!(score(0.0, 0.0), (0.0, 0.0, true));
        // The margin is 1e-6 + 1e-4 · 1000 = 0.100001 at magnitude 1000.
        assert!(score(1000.0, 1000.1).2 && !score(1000.0, 1000.2).2);
        // At magnitude 1e-3 the absolute part dominates: 1e-6 + 1e-7.
        assert!(score(1e-3, 1e-3 + 1e-6).2 && !score(1e-3, 1e-3 + 2e-6).2);
        assert!(!score(f64::NAN, 1.0).2);
    }

    /// `x²`, with or without a parameter it cannot be rebuilt with.
    struct Square {
        parameter: Option<Tensor>,
    }

    impl ModuleUnderTest for Square {
        fn kind(&self) -> &str {
            "square"
        }
        fn forward(&self, x: &Tensor) -> CandleResult<Tensor> {
            x.sqr()
        }
        fn forward_reference(&self, x: &Tensor) -> Option<CandleResult<Tensor>> {
            Some(x.to_dtype(DType::F64).and_then(|x| x.sqr()))
        }
        fn parameters(&self) -> Vec<(String, Tensor)> {
            self.parameter.iter().map(|p| ("scale".to_string(), p.clone())).collect()
        }
    }

    #[test]
    fn a_module_without_parameters_is_differentiated_as_it_is() {
        let o = gradient_check(&Square { parameter: None }, &[1, 3, 4], 0).unwrap();
        assert!(o.passed && o.skipped.is_none(), "{:?} {:?}", o.errors, o.skipped);
        assert_eq!(o.metrics[&Metric::Coordinates], SAMPLES as f64, "the input's samples");
    }

    #[test]
    fn a_module_with_parameters_it_cannot_be_rebuilt_with_is_skipped() {
        let parameter = Some(Tensor::ones(4, DType::F32, &Device::Cpu).unwrap());
        let o = gradient_check(&Square { parameter }, &[1, 3, 4], 0).unwrap();
        assert_eq!(o.skipped.as_deref(), Some("the module cannot be rebuilt with float64 parameters"));
    }

    #[test]
    fn a_healthy_block_agrees_everywhere_and_says_how_closely() {
        let vb = tensile_nn::init::SeededInit::var_builder(0, DType::F32, &Device::Cpu);
        let norm = NnModule::new(tensile_nn::RmsNorm::new(8, 1e-6, vb).unwrap());
        let o = gradient_check(&norm, &[1, 3, 8], 0).unwrap();
        assert!(o.passed, "{:?}", o.errors);
        // The weight's and the input's samples.
        assert_eq!(o.metrics[&Metric::Coordinates], 2.0 * SAMPLES as f64);
        let (abs, rel) = (o.metrics[&Metric::MaxAbsErr], o.metrics[&Metric::MaxRelErr]);
        assert!(abs > 0.0 && abs < 1e-6 && rel > 0.0 && rel < 1e-4, "abs {abs:e}, rel {rel:e}");
    }
}

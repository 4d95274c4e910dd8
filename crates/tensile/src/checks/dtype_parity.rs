//! Half-precision outputs must agree with float32 within the half dtype's tolerance.

use super::{make_input, Ctx};
use crate::device::dtype_name;
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::Metric;
use crate::metrics::{compare, to_f64_vec};
use crate::module::convert;
use crate::tolerance::Tolerance;
use candle_core::DType;
use std::collections::BTreeMap;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let halves: Vec<DType> = match ctx.case.dtype {
        DType::BF16 | DType::F16 => vec![ctx.case.dtype],
        _ => vec![DType::BF16, DType::F16],
    };
    let to_module = |dtype| convert(ctx.module, dtype, ctx.device).map_err(|reason| candle_core::Error::Msg(reason));
    let full = to_module(DType::F32)?;
    let input = make_input(ctx.module.as_ref(), &ctx.case.input_shape, DType::F32, ctx.device, ctx.case.spec.seed)?;
    let expected = full.forward(&input)?;
    let (mut metrics, mut errors) = (BTreeMap::new(), Vec::new());
    for dtype in halves {
        let half = to_module(dtype)?;
        let x = if input.dtype().is_float() { input.to_dtype(dtype)? } else { input.clone() };
        let out = half.forward(&x)?;
        let cmp = compare(&out, &expected)?;
        let name = dtype_name(dtype);
        let (max_abs, pcc) = if dtype == DType::BF16 { (Metric::Bf16MaxAbs, Metric::Bf16Pcc) } else { (Metric::F16MaxAbs, Metric::F16Pcc) };
        metrics.insert(max_abs, cmp.max_abs);
        metrics.insert(pcc, cmp.pcc);
        // A module on quantized kernels rounds its activations to 8 bits in any dtype: its
        // own default allows for that, as it does against the twin.
        let tol = ctx.module.default_tolerance(dtype).unwrap_or_else(|| Tolerance::for_dtype(dtype));
        errors.extend(tol.failures(&cmp, &to_f64_vec(&out)?, &to_f64_vec(&expected)?).into_iter().map(|f| format!("{name} vs f32: {f}")));
    }
    Ok(CheckOutcome::from_errors(metrics, errors))
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support as ts;
    use crate::keys::Metric;
    use crate::spec::{Check, Spec};
    use candle_core::DType;

    #[test]
    fn each_half_precision_is_reported_under_its_own_name() {
        let c = ts::case(ts::rms_norm(64), vec![1, 8, 64], Check::DtypeParity, Spec::default());
        let o = ts::run(super::run, &c).unwrap();
        assert!(o.passed, "{:?}", o.errors);
        // bf16 keeps 8 significant bits and f16 11: bf16's error is the larger one.
        let (bf16, f16) = (o.metrics[&Metric::Bf16MaxAbs], o.metrics[&Metric::F16MaxAbs]);
        assert!(bf16 > f16 && f16 > 0.0, "bf16 {bf16}, f16 {f16}");
        assert!(o.metrics[&Metric::Bf16Pcc] > 0.99 && o.metrics[&Metric::F16Pcc] > 0.99);
    }

    #[test]
    fn a_half_precision_case_is_compared_in_its_own_dtype_only() {
        let mut c = ts::case(ts::rms_norm(64), vec![1, 8, 64], Check::DtypeParity, Spec::default());
        c.dtype = DType::BF16;
        let o = ts::run(super::run, &c).unwrap();
        assert!(o.metrics.contains_key(&Metric::Bf16MaxAbs) && !o.metrics.contains_key(&Metric::F16MaxAbs), "{:?}", o.metrics);
    }
}

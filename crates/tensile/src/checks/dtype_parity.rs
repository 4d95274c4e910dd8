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
        let tol = Tolerance::for_dtype(dtype);
        errors.extend(tol.failures(&cmp, &to_f64_vec(&out)?, &to_f64_vec(&expected)?).into_iter().map(|f| format!("{name} vs f32: {f}")));
    }
    Ok(CheckOutcome::from_errors(metrics, errors))
}

//! Running rows one at a time must give the batched result.

use super::{make_input, Ctx};
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::Metric;
use crate::metrics::{compare, to_f64_vec};
use candle_core::Tensor;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    // A batch of one proves nothing, so the check always uses at least two rows.
    let input = if ctx.input.dim(0)? >= 2 {
        ctx.input.clone()
    } else {
        let mut shape = ctx.case.input_shape.clone();
        shape[0] = 2;
        make_input(ctx.module.as_ref(), &shape, ctx.case.dtype, ctx.device, ctx.case.spec.seed)?
    };
    let batched = ctx.module.forward(&input)?;
    let rows = (0..input.dim(0)?).map(|i| ctx.module.forward(&input.narrow(0, i, 1)?)).collect::<candle_core::Result<Vec<_>>>()?;
    let single = Tensor::cat(&rows, 0)?;
    let cmp = compare(&single, &batched)?;
    let mut metrics = super::correctness::comparison_metrics(&cmp);
    let (a, b) = (to_f64_vec(&single)?, to_f64_vec(&batched)?);
    let bitwise = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    metrics.insert(Metric::BitwiseEqual, f64::from(u8::from(bitwise)));
    metrics.insert(Metric::Batch, input.dim(0)? as f64);
    let errors = ctx.case.tolerance.failures(&cmp, &a, &b).into_iter().map(|f| format!("row-by-row vs batched: {f}")).collect();
    Ok(CheckOutcome::from_errors(metrics, errors))
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support as ts;
    use crate::keys::Metric;
    use crate::spec::{Check, Spec};

    #[test]
    fn a_batch_of_one_is_widened_to_two_rows_and_row_wise_blocks_match_bitwise() {
        for batch in [1, 3] {
            let c = ts::case(ts::rms_norm(64), vec![batch, 8, 64], Check::BatchInvariance, Spec::default());
            let o = ts::run(super::run, &c).unwrap();
            assert!(o.passed, "{:?}", o.errors);
            // One row cannot show rows leaking into each other, so it is checked on two.
            assert_eq!(o.metrics[&Metric::Batch], batch.max(2) as f64);
            // RMSNorm normalises each row alone: the same arithmetic in either layout.
            assert_eq!(o.metrics[&Metric::BitwiseEqual], 1.0);
            assert_eq!(o.metrics[&Metric::MaxAbs], 0.0);
        }
    }
}

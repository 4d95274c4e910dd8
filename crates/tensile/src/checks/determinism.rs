//! The same input twice must give the same output: bitwise on the CPU, within the dtype's
//! tolerance on accelerators (whose reductions may legitimately reorder).

use super::Ctx;
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::Metric;
use crate::metrics::to_f64_vec;
use std::collections::BTreeMap;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let a = to_f64_vec(&ctx.module.forward(ctx.input)?)?;
    let b = to_f64_vec(&ctx.module.forward(ctx.input)?)?;
    let differing = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    let max_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let metrics = BTreeMap::from([(Metric::DifferingElements, differing as f64), (Metric::MaxAbsDiff, max_diff)]);
    let mut errors = Vec::new();
    if ctx.device.is_cpu() {
        if differing > 0 {
            errors.push(format!(
                "two runs on the same input differ in {differing} of {} elements (max {max_diff:.3e}); expected bitwise equality on cpu",
                a.len()
            ));
        }
    } else if let Some(i) = ctx.case.tolerance.first_violation(&a, &b) {
        errors.push(format!("two runs on the same input differ at element {i} beyond the tolerance ({} vs {})", a[i], b[i]));
    }
    Ok(CheckOutcome::from_errors(metrics, errors))
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support as ts;
    use crate::keys::Metric;
    use crate::spec::{Check, Spec};

    #[test]
    fn a_deterministic_block_differs_nowhere_and_by_nothing() {
        let c = ts::case(ts::rms_norm(64), vec![2, 8, 64], Check::Determinism, Spec::default());
        let o = ts::run(super::run, &c).unwrap();
        assert!(o.passed && o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!((o.metrics[&Metric::DifferingElements], o.metrics[&Metric::MaxAbsDiff]), (0.0, 0.0));
    }
}

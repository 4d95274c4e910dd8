//! Output shape, finiteness, and agreement with the reference.

use super::Ctx;
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::golden::GoldenCase;
use crate::keys::Metric;
use crate::metrics::{compare, to_f64_vec, Comparison};
use crate::module::{convert, InputKind};
use crate::spec::Reference;
use candle_core::Tensor;
use std::collections::BTreeMap;

/// The comparison metrics as a metric map.
pub(crate) fn comparison_metrics(c: &Comparison) -> BTreeMap<Metric, f64> {
    BTreeMap::from([
        (Metric::MaxAbs, c.max_abs),
        (Metric::MaxRel, c.max_rel),
        (Metric::MeanAbs, c.mean_abs),
        (Metric::Pcc, c.pcc),
        (Metric::Cosine, c.cosine),
        (Metric::MaxUlp, c.max_ulp as f64),
        (Metric::SnrDb, c.snr_db),
    ])
}

fn finite(t: &Tensor) -> Result<bool> {
    Ok(to_f64_vec(t)?.iter().all(|v| v.is_finite()))
}

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let spec = &ctx.case.spec;
    let (output, expected) = match &spec.reference {
        Reference::Twin => {
            let out = ctx.module.forward(ctx.input)?;
            (out, ctx.module.forward_reference(ctx.input).transpose()?)
        }
        Reference::Module(other) => {
            let other = convert(other, ctx.case.dtype, ctx.device).map_err(|reason| candle_core::Error::Msg(format!("compare_with module: {reason}")))?;
            (ctx.module.forward(ctx.input)?, Some(other.forward(ctx.input)?))
        }
        Reference::CaseFile(path) => {
            // The case file carries its own weights and input: load them into this module.
            let case = GoldenCase::load(path)?;
            let in_file = |reason: String| candle_core::Error::Msg(format!("{}: {reason}", path.display()));
            let module = ctx
                .module
                .with_parameters(case.weights().clone(), ctx.case.dtype, ctx.device)
                .ok_or_else(|| in_file("the module cannot load a reference case's weights".into()))?
                .map_err(|e| in_file(e.to_string()))?;
            let input = case.input.to_dtype(ctx.case.dtype)?.to_device(ctx.device)?;
            (module.forward(&input)?, Some(case.output.clone()))
        }
    };
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let expected_shape = match (&spec.output_shape, ctx.module.input_kind(), &expected) {
        (Some(s), _, _) => Some(s.clone()),
        (None, _, Some(e)) => Some(e.dims().to_vec()),
        (None, InputKind::Hidden, None) => Some(ctx.input.dims().to_vec()),
        (None, InputKind::TokenIds { .. }, None) => None,
    };
    if let Some(s) = &expected_shape {
        if output.dims() != s.as_slice() {
            errors.push(format!("output shape {:?}, expected {s:?}", output.dims()));
        }
    }
    if !finite(&output)? {
        errors.push("output contains NaN or infinity".to_string());
    }
    let mut metrics = BTreeMap::new();
    match expected {
        Some(e) if output.dims() == e.dims() => {
            let cmp = compare(&output, &e)?;
            metrics = comparison_metrics(&cmp);
            let tol = ctx.case.tolerance;
            errors.extend(tol.failures(&cmp, &to_f64_vec(&output)?, &to_f64_vec(&e)?).into_iter().filter(|f| !f.starts_with("output contains")));
        }
        Some(_) => {}
        None => notes.push("no reference twin: only the output shape and finiteness were checked".to_string()),
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support as ts;
    use crate::keys::Metric;
    use crate::module::NnModule;
    use crate::spec::{Check, Reference, Spec};
    use candle_core::{DType, Device};
    use std::sync::Arc;

    #[test]
    fn a_healthy_block_reports_every_comparison_metric() {
        let c = ts::case(ts::rms_norm(64), vec![1, 8, 64], Check::Correctness, Spec::default());
        let o = ts::run(super::run, &c).unwrap();
        assert!(o.passed, "{:?}", o.errors);
        let keys: Vec<Metric> = o.metrics.keys().copied().collect();
        for k in [Metric::MaxAbs, Metric::MaxRel, Metric::MeanAbs, Metric::Pcc, Metric::Cosine, Metric::MaxUlp, Metric::SnrDb] {
            assert!(keys.contains(&k), "{k:?} missing from {keys:?}");
        }
        assert!(o.metrics[&Metric::Pcc] > 0.9999 && o.metrics[&Metric::MaxAbs] < 1e-5, "{:?}", o.metrics);
        // f32 against float64: rounding noise some 120 dB or more below the signal, not equal.
        assert!((100.0..200.0).contains(&o.metrics[&Metric::SnrDb]), "{:?}", o.metrics);
    }

    #[test]
    fn a_reference_of_another_shape_fails_on_the_shape_without_comparing() {
        let vb = tensile_nn::init::SeededInit::var_builder(0, DType::F32, &Device::Cpu);
        let narrower = Arc::new(NnModule::new(tensile_nn::Linear::new(64, 32, false, vb).unwrap()));
        let spec = Spec { reference: Reference::Module(narrower), ..Spec::default() };
        let c = ts::case(ts::rms_norm(64), vec![1, 8, 64], Check::Correctness, spec);
        let o = ts::run(super::run, &c).unwrap();
        assert!(!o.passed);
        assert_eq!(o.errors, vec!["output shape [1, 8, 64], expected [1, 8, 32]".to_string()]);
        assert!(o.metrics.is_empty(), "{:?}", o.metrics);
    }
}

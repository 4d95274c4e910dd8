//! The evaluation metrics against numbers scikit-learn and SciPy computed
//! (`tests/data/metrics_reference.json`, written by `tools/metrics_reference.py`), edge cases
//! included: where the libraries refuse an input or return NaN, tensile must return an error.
//! Property tests below cover what the fixtures cannot enumerate.

use proptest::prelude::*;
use serde_json::Value;
use tensile_nn::metrics::{self, Average, ConfusionMatrix, Scores};

/// Both sides are float64 sums of at most a few hundred terms in different orders.
const TOL: f64 = 1e-12;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn labels(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= TOL * want.abs().max(1.0), "{what}: {got} vs {want}");
}

fn assert_scores(got: &Scores, want: &Value, what: &str) {
    close(got.precision, want["precision"].as_f64().unwrap(), &format!("{what} precision"));
    close(got.recall, want["recall"].as_f64().unwrap(), &format!("{what} recall"));
    close(got.f1, want["f1"].as_f64().unwrap(), &format!("{what} f1"));
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let cases = fixture()["classification"].as_array().unwrap().clone();
    assert!(cases.len() >= 8);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let (truth, predicted) = (labels(&case["y_true"]), labels(&case["y_pred"]));
        close(metrics::accuracy(&predicted, &truth).unwrap(), case["accuracy"].as_f64().unwrap(), name);
        let matrix = ConfusionMatrix::new(&predicted, &truth).unwrap();
        assert_eq!(matrix.labels, labels(&case["labels"]), "{name}");
        let want: Vec<Vec<u64>> = case["confusion"].as_array().unwrap().iter().map(|r| labels(r).into_iter().map(|c| c as u64).collect()).collect();
        assert_eq!(matrix.counts, want, "{name}");
        assert_eq!(matrix.total(), truth.len() as u64);
        let per_label = matrix.per_label();
        let want = &case["per_label"];
        for (i, s) in per_label.iter().enumerate() {
            let label = format!("{name} label {}", matrix.labels[i]);
            close(s.precision, want["precision"][i].as_f64().unwrap(), &format!("{label} precision"));
            close(s.recall, want["recall"][i].as_f64().unwrap(), &format!("{label} recall"));
            close(s.f1, want["f1"][i].as_f64().unwrap(), &format!("{label} f1"));
        }
        for (average, key) in [(Average::Macro, "macro"), (Average::Micro, "micro"), (Average::Weighted, "weighted")] {
            assert_scores(&metrics::precision_recall_f1(&predicted, &truth, average).unwrap(), &case[key], &format!("{name} {key}"));
        }
    }
}

#[test]
fn regression_metrics_match_scipy_and_scikit_learn() {
    type Metric = fn(&[f64], &[f64]) -> tensile_nn::Result<f64>;
    let metrics: [(&str, Metric); 4] = [("mse", metrics::mse), ("mae", metrics::mae), ("pearson", metrics::pearson), ("spearman", metrics::spearman)];
    let mut refused = 0;
    for case in fixture()["regression"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (predicted, truth) = (floats(&case["pred"]), floats(&case["truth"]));
        for (key, f) in metrics {
            match (f(&predicted, &truth), case[key].get("value")) {
                (Ok(got), Some(want)) => close(got, want.as_f64().unwrap(), &format!("{name} {key}")),
                (Err(e), None) => {
                    refused += 1;
                    assert!(e.to_string().starts_with(&format!("cannot compute {key}: ")), "{e}");
                }
                (got, want) => panic!("{name} {key}: tensile gave {got:?}, the reference {want:?} ({})", case[key]),
            }
        }
    }
    // The constant and the single-value cases: pearson and spearman of each.
    assert_eq!(refused, 4);
}

#[test]
fn roc_auc_matches_scikit_learn() {
    let mut refused = 0;
    for case in fixture()["roc_auc"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let positive: Vec<bool> = case["labels"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
        match (metrics::roc_auc(&floats(&case["scores"]), &positive), case.get("value")) {
            (Ok(got), Some(want)) => close(got, want.as_f64().unwrap(), name),
            (Err(e), None) => {
                refused += 1;
                assert_eq!(e.to_string(), "cannot compute roc_auc: only one class is present in the labels");
            }
            (got, want) => panic!("{name}: tensile gave {got:?}, the reference {want:?}"),
        }
    }
    assert_eq!(refused, 1);
}

#[test]
fn meaningless_inputs_are_errors_that_say_why() {
    let err = |r: tensile_nn::Result<f64>| r.unwrap_err().to_string();
    assert_eq!(err(metrics::accuracy(&[], &[])), "cannot compute accuracy: empty input");
    assert_eq!(err(metrics::accuracy(&[1, 2], &[1])), "cannot compute accuracy: 2 predictions but 1 targets");
    assert!(ConfusionMatrix::new(&[], &[]).is_err());
    assert!(metrics::precision_recall_f1(&[0], &[0, 1], Average::Macro).is_err());
    assert_eq!(err(metrics::mse(&[1.0, f64::NAN], &[1.0, 2.0])), "cannot compute mse: prediction 1 is NaN");
    assert_eq!(err(metrics::mae(&[1.0, 2.0], &[f64::INFINITY, 2.0])), "cannot compute mae: target 0 is inf");
    assert_eq!(err(metrics::pearson(&[], &[])), "cannot compute pearson: empty input");
    assert_eq!(err(metrics::spearman(&[1.0, 1.0], &[1.0, 2.0])), "cannot compute spearman: an input is constant, so the correlation is undefined");
    assert_eq!(err(metrics::pearson(&[1.0, 2.0], &[3.0, 3.0])), "cannot compute pearson: an input is constant, so the correlation is undefined");
    assert_eq!(err(metrics::roc_auc(&[0.5, f64::NAN], &[true, false])), "cannot compute roc_auc: score 1 is NaN");
    assert_eq!(err(metrics::roc_auc(&[0.5], &[true, false])), "cannot compute roc_auc: 1 predictions but 2 targets");
    assert_eq!(err(metrics::roc_auc(&[0.5, 0.2], &[false, false])), "cannot compute roc_auc: only one class is present in the labels");
}

#[test]
fn argmax_picks_the_first_largest_logit_and_refuses_nan() {
    assert_eq!(metrics::argmax_rows(&[vec![0.1, 2.0, -1.0], vec![3.0, 3.0, 1.0], vec![-5.0]]).unwrap(), vec![1, 0, 0]);
    assert_eq!(metrics::argmax_rows(&[vec![-1.0, -0.5]]).unwrap(), vec![1]);
    assert_eq!(metrics::argmax_rows(&[vec![0.0, f64::NAN]]).unwrap_err().to_string(), "cannot compute argmax: logit [0][1] is NaN");
    assert_eq!(metrics::argmax_rows(&[vec![1.0], vec![]]).unwrap_err().to_string(), "cannot compute argmax: row 1 is empty");
    assert_eq!(metrics::argmax_rows(&[]).unwrap_err().to_string(), "cannot compute argmax: empty input");
}

proptest! {
    /// Micro-averaged scores of a single-label problem all equal its accuracy, and every
    /// average lies in [0, 1].
    #[test]
    fn micro_scores_are_the_accuracy(pairs in prop::collection::vec((0usize..5, 0usize..5), 1..60)) {
        let (predicted, truth): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
        let acc = metrics::accuracy(&predicted, &truth).unwrap();
        let micro = metrics::precision_recall_f1(&predicted, &truth, Average::Micro).unwrap();
        prop_assert!((micro.precision - acc).abs() < 1e-15 && (micro.recall - acc).abs() < 1e-15 && (micro.f1 - acc).abs() < 1e-15);
        for average in [Average::Macro, Average::Weighted] {
            let s = metrics::precision_recall_f1(&predicted, &truth, average).unwrap();
            for v in [s.precision, s.recall, s.f1] {
                prop_assert!((0.0..=1.0).contains(&v), "{average:?}: {v}");
            }
            // Weighted recall is the accuracy too: each label's recall weighted by its support
            // sums its true positives.
            if average == Average::Weighted {
                prop_assert!((s.recall - acc).abs() < 1e-12);
            }
        }
    }

    /// Correlations are symmetric, lie in [-1, 1], and Spearman's ignores any increasing
    /// transformation of its inputs; Pearson's ignores positive affine ones.
    #[test]
    fn correlations_have_their_invariances(xy in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 3..40)) {
        let (x, y): (Vec<f64>, Vec<f64>) = xy.into_iter().unzip();
        if let (Ok(p), Ok(s)) = (metrics::pearson(&x, &y), metrics::spearman(&x, &y)) {
            prop_assert!((-1.0..=1.0).contains(&p) && (-1.0..=1.0).contains(&s));
            prop_assert!((metrics::pearson(&y, &x).unwrap() - p).abs() < 1e-12);
            let affine: Vec<f64> = x.iter().map(|v| 3.0 * v - 7.0).collect();
            prop_assert!((metrics::pearson(&affine, &y).unwrap() - p).abs() < 1e-9);
            let cubed: Vec<f64> = x.iter().map(|v| v * v * v + v).collect();
            prop_assert!((metrics::spearman(&cubed, &y).unwrap() - s).abs() < 1e-12);
        }
    }

    /// Negating the scores mirrors the ROC curve: the two areas add up to 1.
    #[test]
    fn negated_scores_give_the_complementary_area(points in prop::collection::vec((-10i32..10, any::<bool>()), 2..50)) {
        let scores: Vec<f64> = points.iter().map(|(s, _)| f64::from(*s) / 4.0).collect();
        let positive: Vec<bool> = points.iter().map(|(_, p)| *p).collect();
        if let Ok(auc) = metrics::roc_auc(&scores, &positive) {
            let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
            prop_assert!((auc + metrics::roc_auc(&negated, &positive).unwrap() - 1.0).abs() < 1e-12);
            prop_assert!((0.0..=1.0).contains(&auc));
        }
    }
}

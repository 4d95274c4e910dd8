#!/usr/bin/env python3
"""Writes crates/tensile-nn/tests/data/metrics_reference.json: reference values for the
evaluation metrics of tensile-nn (crates/tensile-nn/src/metrics) from scikit-learn and SciPy,
which crates/tensile-nn/tests/metrics_reference.rs compares against.

    python3 tools/metrics_reference.py        # needs numpy, scipy, scikit-learn (pip)

The output is deterministic for given library versions (fixed seeds, the inputs stored next to
the values, floats written with full precision); the header records the versions. Each case
holds its inputs and either the values or "error": the name of the exception the library
raised (or the warning it gave while returning NaN), where tensile must refuse the input.

* "classification": y_true, y_pred (integer labels), with accuracy_score, confusion_matrix
  (its labels = the sorted union of both) and precision_recall_fscore_support under average
  macro, micro and weighted with zero_division=0, plus the per-label scores.
* "regression": mean_squared_error, mean_absolute_error, scipy.stats.pearsonr and
  scipy.stats.spearmanr (ties get average ranks) of float predictions and targets.
* "roc_auc": roc_auc_score of binary labels and scores, ties included.
"""

import json
import pathlib
import sys
import warnings

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn import metrics

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/tensile-nn/tests/data/metrics_reference.json"


def floats(xs):
    return [float(x) for x in xs]


def ints(xs):
    return [int(x) for x in xs]


def classification_cases(rng):
    cases = []
    # Random multiclass predictions that are right more often than chance.
    for name, n, k, right in [("three_labels", 60, 3, 0.6), ("five_labels", 200, 5, 0.45), ("binary", 41, 2, 0.7)]:
        y_true = rng.integers(0, k, n)
        y_pred = np.where(rng.random(n) < right, y_true, rng.integers(0, k, n))
        cases.append((name, y_true, y_pred))
    # A label that is never predicted (its precision is 0/0) and one that is never true.
    cases.append(("label_never_predicted", np.array([0, 1, 2, 2, 1, 0, 2]), np.array([0, 1, 1, 1, 1, 0, 0])))
    cases.append(("label_never_true", np.array([0, 0, 1, 1, 0]), np.array([0, 3, 1, 0, 3])))
    # Labels that are not 0..k: the matrix has rows and columns only for the labels seen.
    cases.append(("sparse_labels", np.array([7, 2, 7, 9, 2, 9, 9]), np.array([7, 7, 2, 9, 2, 9, 2])))
    # One class only, predicted perfectly and predicted wrongly.
    cases.append(("one_class_right", np.array([4, 4, 4]), np.array([4, 4, 4])))
    cases.append(("one_class_wrong", np.array([1, 1, 1, 1]), np.array([1, 0, 1, 0])))
    out = []
    for name, y_true, y_pred in cases:
        labels = np.unique(np.concatenate([y_true, y_pred]))
        case = {"name": name, "y_true": ints(y_true), "y_pred": ints(y_pred),
                "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
                "labels": ints(labels),
                "confusion": [ints(r) for r in metrics.confusion_matrix(y_true, y_pred, labels=labels)]}
        p, r, f, _ = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        case["per_label"] = {"precision": floats(p), "recall": floats(r), "f1": floats(f)}
        for average in ["macro", "micro", "weighted"]:
            p, r, f, _ = metrics.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
            case[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
        out.append(case)
    return out


def outcome(fn):
    """The value, or the name of the exception raised (a warning turned into NaN counts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            value = float(fn())
        except Exception as e:  # noqa: BLE001 - any refusal is what the test expects
            return {"error": type(e).__name__}
    if not np.isfinite(value):
        return {"error": "non-finite result"}
    return {"value": value}


def regression_cases(rng):
    cases = []
    x = rng.normal(size=50)
    cases.append(("linear_noise", 3.0 * x + rng.normal(scale=0.5, size=50), x))
    cases.append(("anticorrelated", -x ** 3 + rng.normal(scale=0.1, size=50), x))
    # Many ties on both sides: spearman must average the tied ranks.
    a = rng.integers(0, 4, 40).astype(float)
    cases.append(("ties", a + rng.integers(0, 2, 40), a))
    # A large mean and a small spread: a one-pass correlation formula loses every digit here.
    cases.append(("large_offset", 1e8 + x, 1e8 + x + rng.normal(scale=0.1, size=50)))
    cases.append(("two_values", np.array([1.0, 2.0]), np.array([3.0, 1.0])))
    # Undefined correlations: a constant input, a single value.
    cases.append(("constant", np.array([2.0, 2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])))
    cases.append(("single", np.array([1.0]), np.array([2.0])))
    out = []
    for name, pred, truth in cases:
        out.append({"name": name, "pred": floats(pred), "truth": floats(truth),
                    "mse": outcome(lambda: metrics.mean_squared_error(truth, pred)),
                    "mae": outcome(lambda: metrics.mean_absolute_error(truth, pred)),
                    "pearson": outcome(lambda: stats.pearsonr(pred, truth)[0]),
                    "spearman": outcome(lambda: stats.spearmanr(pred, truth)[0])})
    return out


def roc_cases(rng):
    cases = []
    y = rng.random(80) < 0.4
    cases.append(("separable_noise", y, y * 1.0 + rng.normal(scale=0.8, size=80)))
    # Coarse scores: many ties between positives and negatives count one half each.
    cases.append(("tied_scores", y, np.round(y * 0.5 + rng.random(80), 1)))
    cases.append(("perfect", np.array([False, False, True, True]), np.array([0.1, 0.2, 0.8, 0.9])))
    cases.append(("inverted", np.array([True, True, False]), np.array([0.1, 0.2, 0.9])))
    cases.append(("one_class", np.array([True, True, True]), np.array([0.1, 0.5, 0.9])))
    return [{"name": name, "labels": [bool(v) for v in y], "scores": floats(s),
             **outcome(lambda: metrics.roc_auc_score(y, s))} for name, y, s in cases]


def main():
    rng = np.random.default_rng(20261201)
    data = {
        "generated_by": "tools/metrics_reference.py",
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__},
        "classification": classification_cases(rng),
        "regression": regression_cases(rng),
        "roc_auc": roc_cases(rng),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

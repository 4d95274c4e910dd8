//! What a task head predicts: its labels (`id2label`, `label2id`) and its `problem_type`,
//! field for field as in Hugging Face `config.json`, and the loss that goes with it.

use crate::error::config_err;
use crate::loss::{bce_with_logits, mse_loss, CrossEntropyLoss};
use crate::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which loss a head is trained with, as transformers' `problem_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// One class per example: cross-entropy over the logits, argmax to predict.
    SingleLabelClassification,
    /// Any number of classes per example: a sigmoid per logit, binary cross-entropy.
    MultiLabelClassification,
    /// Real-valued targets, one per logit: mean squared error.
    Regression,
}

/// The task part of a Hugging Face config: labels and problem type. Missing fields get
/// transformers' defaults (two labels `LABEL_0`, `LABEL_1`; the problem type inferred).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskConfig {
    /// Label of each class index, keyed by the index written as a string (`"0"`), as JSON
    /// object keys must be.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub id2label: BTreeMap<String, String>,
    /// The inverse of `id2label`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub label2id: BTreeMap<String, usize>,
    /// The loss to train with; `None` lets [`TaskConfig::problem_type_for`] infer it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<ProblemType>,
    /// The number of outputs when there is no `id2label` (transformers accepts it as an
    /// argument and writes `id2label` instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
}

impl TaskConfig {
    /// A task with these labels, in class order.
    pub fn with_labels<S: AsRef<str>>(labels: &[S]) -> Self {
        let id2label: BTreeMap<String, String> = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.as_ref().to_string())).collect();
        let label2id = labels.iter().enumerate().map(|(i, l)| (l.as_ref().to_string(), i)).collect();
        Self { id2label, label2id, problem_type: None, num_labels: None }
    }

    /// The number of outputs: `id2label`'s size, else `num_labels`, else 2.
    pub fn num_labels(&self) -> usize {
        if self.id2label.is_empty() {
            self.num_labels.unwrap_or(2)
        } else {
            self.id2label.len()
        }
    }

    /// The label of every class, in class order (`LABEL_{i}` where none is given).
    pub fn labels(&self) -> Vec<String> {
        (0..self.num_labels()).map(|i| self.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}"))).collect()
    }

    /// Checks that `id2label` numbers its classes `0..n` without gaps, that `label2id` (when
    /// given) is its inverse, and that `num_labels` (when given with labels) agrees.
    pub fn validate(&self) -> Result<()> {
        for key in self.id2label.keys() {
            match key.parse::<usize>() {
                Ok(i) if i < self.id2label.len() => {}
                _ => return Err(config_err("id2label", format!("key `{key}` is not a class index below {}", self.id2label.len()))),
            }
        }
        if !self.label2id.is_empty() {
            for (label, &id) in &self.label2id {
                if self.id2label.get(&id.to_string()) != Some(label) {
                    return Err(config_err("label2id", format!("`{label}` → {id} disagrees with id2label")));
                }
            }
        }
        match self.num_labels {
            Some(0) => Err(config_err("num_labels", "must be at least 1")),
            Some(n) if !self.id2label.is_empty() && n != self.id2label.len() => {
                Err(config_err("num_labels", format!("{n} disagrees with the {} labels of id2label", self.id2label.len())))
            }
            Some(n) => crate::limits::dim("num_labels", n),
            None => Ok(()),
        }
    }

    /// The problem type: the declared one, else what transformers infers (one output is a
    /// regression; integer targets are single-label classification; other targets are
    /// multi-label).
    pub fn problem_type_for(&self, integer_targets: bool) -> ProblemType {
        match self.problem_type {
            Some(p) => p,
            None if self.num_labels() == 1 => ProblemType::Regression,
            None if integer_targets => ProblemType::SingleLabelClassification,
            None => ProblemType::MultiLabelClassification,
        }
    }
}

/// Targets of a batch: class indices (one per row) or real values (one per logit).
#[derive(Debug, Clone)]
pub enum Targets<'a> {
    /// Class indices, `-100` for rows to ignore.
    Classes(&'a [i64]),
    /// A tensor of the logits' shape (multi-label 0/1 targets, or regression values).
    Values(&'a Tensor),
}

impl ProblemType {
    /// The mean loss of `logits` `(rows, labels)` against `targets`, as transformers' heads
    /// compute it for this problem type.
    ///
    /// # Errors
    /// Targets of the wrong kind for the problem (class indices for a regression, say), or of
    /// the wrong shape.
    pub fn loss(self, logits: &Tensor, targets: &Targets) -> Result<Tensor> {
        let wrong = |want: &str| Error::InvalidInput { op: "head loss", reason: format!("{self:?} needs {want}") };
        match (self, targets) {
            (ProblemType::SingleLabelClassification, Targets::Classes(t)) => CrossEntropyLoss::default().forward(logits, t),
            (ProblemType::SingleLabelClassification, _) => Err(wrong("class indices")),
            (ProblemType::MultiLabelClassification, Targets::Values(t)) => bce_with_logits(logits, t),
            (ProblemType::Regression, Targets::Values(t)) => mse_loss(logits, t),
            (_, Targets::Classes(_)) => Err(wrong("target values shaped like the logits")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn labels_default_as_transformers_does() {
        let t: TaskConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(t.labels(), ["LABEL_0", "LABEL_1"]);
        let one: TaskConfig = serde_json::from_str(r#"{"num_labels": 1}"#).unwrap();
        assert_eq!((one.num_labels(), one.problem_type_for(true)), (1, ProblemType::Regression));
        let named: TaskConfig = serde_json::from_str(r#"{"id2label": {"1": "spam", "0": "ham"}, "label2id": {"ham": 0, "spam": 1}}"#).unwrap();
        assert_eq!(named.labels(), ["ham", "spam"]);
        assert!(named.validate().is_ok());
        assert_eq!(named, TaskConfig::with_labels(&["ham", "spam"]));
        assert_eq!(named.problem_type_for(true), ProblemType::SingleLabelClassification);
        assert_eq!(named.problem_type_for(false), ProblemType::MultiLabelClassification);
        let declared = TaskConfig { problem_type: Some(ProblemType::Regression), ..named };
        assert_eq!(declared.problem_type_for(true), ProblemType::Regression);
        let p: ProblemType = serde_json::from_str(r#""multi_label_classification""#).unwrap();
        assert_eq!(p, ProblemType::MultiLabelClassification);
    }

    #[test]
    fn inconsistent_labels_name_their_field() {
        for (json, field) in [
            (r#"{"id2label": {"0": "a", "2": "b"}}"#, "id2label"),
            (r#"{"id2label": {"x": "a"}}"#, "id2label"),
            (r#"{"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 1}}"#, "label2id"),
            (r#"{"id2label": {"0": "a", "1": "b"}, "num_labels": 3}"#, "num_labels"),
            (r#"{"num_labels": 0}"#, "num_labels"),
        ] {
            let t: TaskConfig = serde_json::from_str(json).unwrap();
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{json}: {e}");
        }
    }

    #[test]
    fn each_problem_type_takes_its_own_loss() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[2.0f64, 0.0], [0.0, 0.0]], &dev).unwrap();
        // Cross-entropy: −log softmax; row 1 is ignored.
        let ce = ProblemType::SingleLabelClassification.loss(&logits, &Targets::Classes(&[0, -100])).unwrap().to_scalar::<f64>().unwrap();
        assert!((ce - (1.0 + (-2f64).exp()).ln()).abs() < 1e-12, "{ce}");
        let zeros = logits.zeros_like().unwrap();
        // BCE of logit z against 0 is ln(1 + e^z): (ln(1+e²) + 3·ln 2) / 4.
        let bce = ProblemType::MultiLabelClassification.loss(&logits, &Targets::Values(&zeros)).unwrap().to_scalar::<f64>().unwrap();
        assert!((bce - ((1.0 + 2f64.exp()).ln() + 3.0 * 2f64.ln()) / 4.0).abs() < 1e-12, "{bce}");
        let mse = ProblemType::Regression.loss(&logits, &Targets::Values(&zeros)).unwrap().to_scalar::<f64>().unwrap();
        assert_eq!(mse, 1.0);
        for (p, t) in [
            (ProblemType::SingleLabelClassification, Targets::Values(&zeros)),
            (ProblemType::Regression, Targets::Classes(&[0, 1])),
            (ProblemType::MultiLabelClassification, Targets::Classes(&[0, 1])),
        ] {
            assert!(p.loss(&logits, &t).unwrap_err().to_string().contains("head loss"), "{p:?}");
        }
    }
}

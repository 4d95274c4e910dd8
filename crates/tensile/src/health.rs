//! The weights health check of a checkpoint: every tensor's statistics, its non-finite
//! values, and the layers whose statistics lie far from their siblings'.
//!
//! Tensors of the same role in different layers (`model.layers.*.mlp.up_proj.weight`) are
//! siblings. One whose standard deviation is far from the siblings' median (by more than 8
//! median absolute deviations and by more than half the median), or whose largest magnitude
//! is more than 4 times the siblings' median, gets a note: training rarely leaves one layer
//! alone with another scale, and a corrupted or wrongly converted layer usually shows that
//! way. The largest magnitude has heavy tails in real models (SmolLM2's first and last layers
//! reach 3.5 times the median), hence its wider bound. A NaN or an infinity is a failure naming
//! the tensor.

use crate::error::Result;
use crate::layer_path::layer_index;
use candle_core::{DType, Tensor};
use std::collections::BTreeMap;

/// One tensor's statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorStats {
    /// Checkpoint name.
    pub name: String,
    /// Elements.
    pub numel: usize,
    /// Mean of the finite values.
    pub mean: f64,
    /// Standard deviation of the finite values.
    pub std: f64,
    /// Largest finite magnitude.
    pub max_abs: f64,
    /// NaN and infinite values.
    pub non_finite: usize,
}

/// The health of a set of weights.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Health {
    /// Every tensor, in the order given.
    pub tensors: Vec<TensorStats>,
    /// Tensors with non-finite values, one line each.
    pub failures: Vec<String>,
    /// Outliers among siblings, one line each.
    pub notes: Vec<String>,
}

impl Health {
    /// Whether no tensor has a non-finite value.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn stats(name: &str, t: &Tensor) -> Result<TensorStats> {
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = finite.len().max(1) as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let std = (finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let max_abs = finite.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    Ok(TensorStats { name: name.to_string(), numel: v.len(), mean, std, max_abs, non_finite: v.len() - finite.len() })
}

/// The role of a tensor: its name with the layer index replaced by `*`.
pub fn role(name: &str) -> String {
    match layer_index(name) {
        Some(i) => name.replacen(&format!(".{i}."), ".*.", 1),
        None => name.to_string(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Checks `params` (name, tensor): statistics, non-finite values, and outliers among
/// siblings of the same role (at least 3 of them).
pub fn check(params: &[(String, Tensor)]) -> Result<Health> {
    let mut h = Health::default();
    for (name, t) in params {
        let s = stats(name, t)?;
        if s.non_finite > 0 {
            h.failures.push(format!("weight `{name}` has {} non-finite values out of {}", s.non_finite, s.numel));
        }
        h.tensors.push(s);
    }
    let mut roles: BTreeMap<String, Vec<&TensorStats>> = BTreeMap::new();
    for s in &h.tensors {
        if layer_index(&s.name).is_some() {
            roles.entry(role(&s.name)).or_default().push(s);
        }
    }
    for (role, members) in roles.iter().filter(|(_, m)| m.len() >= 3) {
        for (what, get, ratio) in [("std", (|s: &TensorStats| s.std) as fn(&TensorStats) -> f64, 0.5), ("max |w|", |s: &TensorStats| s.max_abs, 3.0)] {
            let values: Vec<f64> = members.iter().map(|s| get(s)).collect();
            let med = median(values.clone());
            let mad = median(values.iter().map(|v| (v - med).abs()).collect());
            for s in members {
                let v = get(s);
                let far = (v - med).abs() > 8.0 * mad.max(1e-12) && (v - med).abs() > ratio * med.abs();
                if far {
                    h.notes.push(format!("`{}`: {what} {v:.4} against a median of {med:.4} over the {} `{role}` tensors", s.name, members.len()));
                }
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn layer(i: usize, scale: f32) -> (String, Tensor) {
        let t = tensile_nn::init::randn(i as u64, "w", (16, 16), DType::F32, &Device::Cpu).unwrap();
        (format!("model.layers.{i}.mlp.up_proj.weight"), (t * f64::from(scale)).unwrap())
    }

    #[test]
    fn a_layer_far_from_its_siblings_is_noted_and_a_nan_fails() {
        let mut params: Vec<(String, Tensor)> = (0..6).map(|i| layer(i, 0.02)).collect();
        let h = check(&params).unwrap();
        assert!(h.passed() && h.notes.is_empty(), "{h:?}");
        assert_eq!(h.tensors.len(), 6);
        assert!((h.tensors[0].std - 0.02).abs() < 0.005, "{:?}", h.tensors[0]);
        params[4] = layer(4, 0.5);
        let h = check(&params).unwrap();
        assert!(h.notes.iter().any(|n| n.contains("layers.4.") && n.contains("std")), "{:?}", h.notes);
        assert!(h.notes.iter().all(|n| n.contains("layers.4.")), "only the planted layer: {:?}", h.notes);
        let mut v = params[2].1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[7] = f32::NAN;
        v[9] = f32::INFINITY;
        params[2].1 = Tensor::from_vec(v, (16, 16), &Device::Cpu).unwrap();
        let h = check(&params).unwrap();
        assert!(!h.passed());
        assert_eq!(h.failures.len(), 1);
        assert!(h.failures[0].contains("layers.2.mlp.up_proj.weight") && h.failures[0].contains("2 non-finite"), "{:?}", h.failures);
        assert!(h.tensors[2].mean.is_finite(), "statistics skip the non-finite values");
    }

    #[test]
    fn roles_replace_the_layer_index_only() {
        assert_eq!(role("model.layers.12.self_attn.q_proj.weight"), "model.layers.*.self_attn.q_proj.weight");
        assert_eq!(role("bert.encoder.layer.3.output.dense.bias"), "bert.encoder.layer.*.output.dense.bias");
        assert_eq!(role("model.norm.weight"), "model.norm.weight");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

//! [`LoraModel`]: named LoRA adapters on any block of the library, switched, combined,
//! merged and trained in place.

use super::slot::LoraWeights;
use super::LoraConfig;
use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::error::Error;
use crate::linear::{linears, rebuild_with_state, Linear, LinearWeight};
use candle_core::{DType, Module, Result, Tensor, Var};
use candle_nn::VarBuilder;
use rand::Rng;
use std::collections::BTreeMap;

/// A base block and the LoRA adapters attached to its linear layers, PEFT's `PeftModel` for
/// the library's blocks.
///
/// Adapters live in the linear layers themselves ([`Linear`] shares its state between
/// clones), so switching the active adapter, disabling all, deleting one or merging changes
/// what the base computes without reloading or copying it.
pub struct LoraModel<B = Detached> {
    base: B,
    /// Every linear layer of the base under its checkpoint path.
    layers: Vec<(String, Linear)>,
    /// Each adapter's configuration and the paths it wraps.
    adapters: BTreeMap<String, (LoraConfig, Vec<String>)>,
}

/// The base of a [`LoraModel`] made by [`LoraModel::attach`]: the model stays with its owner,
/// who runs it, while the adapters attached through this handle change what it computes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detached;

impl LoraModel<Detached> {
    /// Adapter control over `block`'s linear layers, which the caller keeps owning and
    /// running (a loaded model, say): adapters added here take effect in `block`.
    pub fn attach(block: &dyn Block) -> Self {
        Self { base: Detached, layers: linears(block), adapters: BTreeMap::new() }
    }
}

impl<B: Block> LoraModel<B> {
    /// `base` with no adapter yet.
    pub fn new(base: B) -> Self {
        let layers = linears(&base);
        Self { base, layers, adapters: BTreeMap::new() }
    }

    /// The base block (which computes with the active adapters).
    pub fn base(&self) -> &B {
        &self.base
    }

    /// Merges the active adapters and removes every adapter: the plain base model that remains
    /// computes what the adapted one did.
    pub fn merge_and_unload(mut self) -> crate::Result<B> {
        self.merge()?;
        self.unload();
        Ok(self.base)
    }
}

impl<B> LoraModel<B> {
    /// Removes every adapter from the layers (merged updates stay in the weights).
    pub fn unload(&mut self) {
        self.for_each(|st| st.lora = Default::default());
        self.adapters.clear();
    }

    /// The adapters by name, in order.
    pub fn adapter_names(&self) -> Vec<String> {
        self.adapters.keys().cloned().collect()
    }

    /// An adapter's configuration and the module paths it wraps.
    pub fn adapter(&self, name: &str) -> crate::Result<&(LoraConfig, Vec<String>)> {
        self.adapters.get(name).ok_or_else(|| Error::Lora(format!("no adapter named `{name}` (have: {})", self.adapter_names().join(", "))))
    }

    /// The linear layers `cfg` targets, under their paths; an error if there are none.
    pub fn targets(&self, cfg: &LoraConfig) -> crate::Result<Vec<(String, Linear)>> {
        let mut out = Vec::new();
        for (path, l) in &self.layers {
            if cfg.target_modules.matches(path)? {
                out.push((path.clone(), l.clone()));
            }
        }
        if out.is_empty() {
            return Err(Error::Lora(format!("target_modules {:?} match no linear layer of the model", cfg.target_modules)));
        }
        Ok(out)
    }

    /// Adds adapter `name` initialised as PEFT does: `A` uniform in `±1/√in` (Kaiming with
    /// `a = √5`), `B` zero so the model is unchanged, or `B` drawn like `A` when the config
    /// says `"init_lora_weights": false`. Draws come from `seed` and each module's path. The
    /// first adapter added becomes active.
    pub fn add_adapter(&mut self, name: &str, cfg: &LoraConfig, seed: u64) -> crate::Result<()> {
        let zero_b = cfg.extra.get("init_lora_weights") != Some(&serde_json::Value::Bool(false));
        let mut tensors = BTreeMap::new();
        for (path, l) in self.targets(cfg)? {
            let (r, _) = cfg.rank_and_scaling(&path)?;
            let (i, o) = l.features();
            let mut rng = crate::init::rng_for(seed, &format!("{name}.{path}"));
            let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
                let bound = 1.0 / (fan_in as f32).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let dev = l.weight().device().clone();
            let a = Tensor::from_vec(uniform(r * i, i), (r, i), &dev)?;
            let b = if zero_b { Tensor::zeros((o, r), DType::F32, &dev)? } else { Tensor::from_vec(uniform(o * r, r), (o, r), &dev)? };
            tensors.insert(path, (a, b));
        }
        self.add_adapter_from(name, cfg, tensors)
    }

    /// Adds adapter `name` with given `(A, B)` per module path, in the base's dtype. Every
    /// targeted module must have its pair, with shapes `(r, in)` and `(out, r)`, and no pair
    /// may name a module the config does not target.
    pub fn add_adapter_from(&mut self, name: &str, cfg: &LoraConfig, mut tensors: BTreeMap<String, (Tensor, Tensor)>) -> crate::Result<()> {
        cfg.validate()?;
        if self.adapters.contains_key(name) {
            return Err(Error::Lora(format!("an adapter named `{name}` already exists")));
        }
        let targets = self.targets(cfg)?;
        let mut prepared = Vec::new();
        for (path, l) in &targets {
            let (r, scaling) = cfg.rank_and_scaling(path)?;
            let (i, o) = l.features();
            let (a, b) = tensors.remove(path).ok_or_else(|| Error::Lora(format!("adapter `{name}` has no weights for `{path}`")))?;
            if a.dims() != [r, i] || b.dims() != [o, r] {
                return Err(Error::Lora(format!(
                    "adapter `{name}` at `{path}`: lora_A {:?} and lora_B {:?} should be ({r}, {i}) and ({o}, {r})",
                    a.dims(),
                    b.dims()
                )));
            }
            let dtype = l.dtype();
            prepared.push((l.clone(), LoraWeights { a: a.to_dtype(dtype)?, b: b.to_dtype(dtype)?, scaling, dropout: cfg.lora_dropout }));
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::Lora(format!("adapter `{name}` has weights for `{extra}`, which its target_modules do not select")));
        }
        let first = self.adapters.is_empty();
        for (l, w) in prepared {
            let mut st = l.write();
            st.lora.adapters.insert(name.to_string(), w);
            if first {
                st.lora.active = vec![name.to_string()];
            }
        }
        self.adapters.insert(name.to_string(), (cfg.clone(), targets.into_iter().map(|(p, _)| p).collect()));
        Ok(())
    }

    /// Makes `names` the active adapters (usually one), without touching the base weights.
    pub fn set_adapter(&self, names: &[&str]) -> crate::Result<()> {
        for n in names {
            self.adapter(n)?;
        }
        self.for_each(|st| st.lora.active = names.iter().map(|s| s.to_string()).collect());
        Ok(())
    }

    /// The active adapters.
    pub fn active(&self) -> Vec<String> {
        self.layers.iter().find(|(_, l)| !l.read().lora.is_empty()).map_or_else(Vec::new, |(_, l)| l.read().lora.active.clone())
    }

    /// Turns every adapter off (`true`) or back on (`false`); the base alone computes while off.
    pub fn disable_adapters(&self, off: bool) {
        self.for_each(|st| st.lora.disabled = off);
    }

    /// Training mode: adapter dropout on. Dropout masks are drawn from `seed`.
    pub fn train(&self, on: bool, seed: u64) {
        self.for_each(|st| {
            st.lora.training = on;
            st.lora.dropout_seed = seed;
        });
    }

    /// Removes adapter `name`; it must not be merged.
    pub fn delete_adapter(&mut self, name: &str) -> crate::Result<()> {
        self.adapter(name)?;
        if self.layers.iter().any(|(_, l)| l.read().lora.merged.iter().any(|m| m == name)) {
            return Err(Error::Lora(format!("adapter `{name}` is merged; unmerge it before deleting it")));
        }
        self.for_each(|st| {
            st.lora.adapters.remove(name);
            st.lora.active.retain(|a| a != name);
        });
        self.adapters.remove(name);
        Ok(())
    }

    /// A new adapter whose update is `Σ wᵢ · ΔWᵢ` over `parts` (PEFT's `cat` combination):
    /// `A` stacks each `wᵢ · sᵢ · Aᵢ`, `B` each `Bᵢ`, and the scaling is 1. The parts must
    /// target the same modules.
    pub fn add_weighted_adapter(&mut self, name: &str, parts: &[(&str, f64)]) -> crate::Result<()> {
        let Some((first, _)) = parts.first() else {
            return Err(Error::Lora("a weighted adapter needs at least one part".into()));
        };
        let (cfg0, paths) = self.adapter(first)?.clone();
        for (p, _) in parts {
            if self.adapter(p)?.1 != paths {
                return Err(Error::Lora(format!("adapters `{first}` and `{p}` target different modules and cannot be combined")));
            }
        }
        let mut tensors = BTreeMap::new();
        let mut rank = 0;
        for path in &paths {
            let l = &self.layers.iter().find(|(p, _)| p == path).expect("a targeted path is a layer").1;
            let st = l.read();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (p, w) in parts {
                let lw = &st.lora.adapters[*p];
                a.push((&lw.a * (w * lw.scaling))?);
                b.push(lw.b.clone());
            }
            let (a, b) = (Tensor::cat(&a, 0)?, Tensor::cat(&b, 1)?);
            rank = a.dim(0)?;
            tensors.insert(path.clone(), (a, b));
        }
        let mut cfg = LoraConfig { r: rank, lora_alpha: rank as f64, use_rslora: false, lora_dropout: 0.0, ..cfg0 };
        cfg.target_modules = super::TargetModules::List(paths.clone());
        cfg.rank_pattern.clear();
        cfg.alpha_pattern.clear();
        self.add_adapter_from(name, &cfg, tensors)
    }

    /// Adds the active adapters' updates into the base weights (`W ← W + Σ s·B·A`), after
    /// which the forward skips them. Merging again before [`LoraModel::unmerge`] is an error,
    /// as is merging into a quantized weight.
    pub fn merge(&self) -> crate::Result<()> {
        for (path, l) in &self.layers {
            let st = l.read();
            if !st.lora.merged.is_empty() {
                return Err(Error::Lora(format!("`{path}` already has {} merged; unmerge first", st.lora.merged.join(", "))));
            }
            if st.lora.active_rank() > 0 && matches!(st.weight, LinearWeight::Quantized(_)) {
                return Err(Error::Lora(format!("`{path}` has a quantized weight, which an adapter cannot be merged into")));
            }
        }
        for (_, l) in &self.layers {
            let mut st = l.write();
            // The active adapters this layer carries: with several active, each layer merges
            // those that target it.
            let names: Vec<String> =
                if st.lora.disabled { Vec::new() } else { st.lora.active.iter().filter(|n| st.lora.adapters.contains_key(*n)).cloned().collect() };
            if let (LinearWeight::Dense(w), false) = (&st.weight, names.is_empty()) {
                let merged = self.shifted(w, &st.lora.adapters, &names, 1.0)?;
                st.weight = LinearWeight::Dense(merged);
                st.lora.merged = names;
            }
        }
        Ok(())
    }

    /// Subtracts the merged updates from the base weights again (`W ← W − Σ s·B·A`).
    pub fn unmerge(&self) -> crate::Result<()> {
        for (_, l) in &self.layers {
            let mut st = l.write();
            let names = std::mem::take(&mut st.lora.merged);
            if let (LinearWeight::Dense(w), false) = (&st.weight, names.is_empty()) {
                let restored = self.shifted(w, &st.lora.adapters, &names, -1.0)?;
                st.weight = LinearWeight::Dense(restored);
            }
        }
        Ok(())
    }

    /// `w + sign · Σ ΔWₙ` over `names`, computed in f32 and returned in `w`'s dtype.
    fn shifted(&self, w: &Tensor, adapters: &BTreeMap<String, LoraWeights>, names: &[String], sign: f64) -> Result<Tensor> {
        let mut acc = w.to_dtype(DType::F32)?;
        for n in names {
            acc = (acc + (adapters[n].delta()? * sign)?)?;
        }
        acc.to_dtype(w.dtype())
    }

    /// Replaces the active adapters' `A` and `B` by fresh variables with the same values and
    /// returns them, named `{path}.lora_A.{adapter}.weight`: what an optimiser trains. The
    /// base weights stay plain tensors, so no gradient reaches them.
    pub fn trainable_vars(&self) -> Result<Vec<(String, Var)>> {
        let mut out = Vec::new();
        for (path, l) in &self.layers {
            let mut st = l.write();
            let active: Vec<String> = st.lora.active.clone();
            for n in active {
                if let Some(w) = st.lora.adapters.get_mut(&n) {
                    let (a, b) = (Var::from_tensor(&w.a)?, Var::from_tensor(&w.b)?);
                    w.a = a.as_tensor().clone();
                    w.b = b.as_tensor().clone();
                    out.push((format!("{path}.lora_A.{n}.weight"), a));
                    out.push((format!("{path}.lora_B.{n}.weight"), b));
                }
            }
        }
        Ok(out)
    }

    /// Elements in the active adapters: `r · (in + out)` per targeted module.
    pub fn trainable_count(&self) -> usize {
        let mut n = 0;
        for (_, l) in &self.layers {
            let st = l.read();
            for a in &st.lora.active {
                if let Some(w) = st.lora.adapters.get(a) {
                    n += w.a.elem_count() + w.b.elem_count();
                }
            }
        }
        n
    }

    /// Each adapter's `(A, B)` per module path, as [`LoraModel::add_adapter_from`] takes them.
    pub fn adapter_tensors(&self, name: &str) -> crate::Result<BTreeMap<String, (Tensor, Tensor)>> {
        let (_, paths) = self.adapter(name)?;
        let mut out = BTreeMap::new();
        for (path, l) in self.layers.iter().filter(|(p, _)| paths.contains(p)) {
            let st = l.read();
            let w = &st.lora.adapters[name];
            out.insert(path.clone(), (w.a.clone(), w.b.clone()));
        }
        Ok(out)
    }

    fn for_each(&self, f: impl Fn(&mut crate::linear::LinearState)) {
        for (_, l) in &self.layers {
            f(&mut l.write());
        }
    }
}

impl<B: Block> Module for LoraModel<B> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.base.forward(xs)
    }
}

/// A LoRA model is its base block for a test runner: the same kind, children and inputs; its
/// parameters include the adapters' and a rebuild keeps them.
impl<B: Block> Block for LoraModel<B> {
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.base.forward_reference(xs)
    }
    fn kind(&self) -> BlockKind {
        self.base.kind()
    }
    fn children(&self) -> Vec<Child<'_>> {
        self.base.children()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.base.own_parameters()
    }
    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        rebuild_with_state(&self.base, vb)
    }
    fn input_kind(&self) -> InputKind {
        self.base.input_kind()
    }
    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        self.base.input_shape(batch, seq)
    }
    fn cost(&self, shape: &[usize]) -> Cost {
        self.base.cost(shape)
    }
    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.base.dims()
    }
    fn storage_bytes(&self) -> usize {
        self.base.storage_bytes()
    }
    fn as_linear(&self) -> Option<&Linear> {
        self.base.as_linear()
    }
}

/// Attaches adapter `name` from `vb` to each of `layers` (paths relative to `vb`; empty for
/// a layer at `vb`'s root) that `select` accepts, with rank and scaling from `cfg`, and makes
/// it active: how a spec's LoRA block gets its adapter from the same weight source as its base.
pub(crate) fn attach_from_vb(
    layers: &[(String, Linear)],
    cfg: &LoraConfig,
    name: &str,
    vb: &VarBuilder,
    select: impl Fn(&str) -> crate::Result<bool>,
) -> crate::Result<usize> {
    cfg.validate()?;
    let mut n = 0;
    for (path, l) in layers {
        if !select(path)? {
            continue;
        }
        let (r, scaling) = cfg.rank_and_scaling(path)?;
        let (i, o) = l.features();
        let vb = if path.is_empty() { vb.clone() } else { vb.pp(path) };
        let dtype = l.dtype();
        let a = vb.get((r, i), &format!("lora_A.{name}.weight"))?.to_dtype(dtype)?;
        let b = vb.get((o, r), &format!("lora_B.{name}.weight"))?.to_dtype(dtype)?;
        let mut st = l.write();
        st.lora.adapters.insert(name.to_string(), LoraWeights { a, b, scaling, dropout: cfg.lora_dropout });
        st.lora.active = vec![name.to_string()];
        n += 1;
    }
    if n == 0 {
        return Err(Error::Lora(format!("target_modules {:?} match no linear layer of the block", cfg.target_modules)));
    }
    Ok(n)
}

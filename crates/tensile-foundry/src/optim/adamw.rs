//! AdamW with decoupled weight decay (PyTorch's `torch.optim.AdamW`) and state that can be
//! saved and restored exactly: the step count and both moments of every parameter.

use super::GradSource;
use candle_core::{DType, Result, Tensor, Var};
use std::collections::HashMap;

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β₁, β₂.
    pub betas: [f64; 2],
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Whether one-dimensional parameters (norm weights, biases) decay too; usually not.
    pub decay_vectors: bool,
}

/// AdamW over named variables.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    cfg: AdamWConfig,
}

impl AdamW {
    /// An optimiser with zero moments at step 0.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let m = params.iter().map(|(_, p)| p.as_tensor().zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self { params, m, v, step: 0, cfg })
    }

    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One step at learning rate `lr`:
    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p(1 − lr·λ) − lr · m̂ / (√v̂ + ε)` with
    /// `m̂ = m / (1−β₁ᵗ)` and `v̂ = v / (1−β₂ᵗ)`. Parameters without a gradient are left as
    /// they are, moments included.
    pub fn step(&mut self, grads: &impl GradSource, lr: f64) -> Result<()> {
        self.step += 1;
        let [b1, b2] = self.cfg.betas;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.grad(p.as_tensor()) else { continue };
            let decays = self.cfg.decay_vectors || p.rank() > 1;
            let wd = if decays { self.cfg.weight_decay } else { 0.0 };
            if let Some((np, nm, nv)) = fused_cpu(p.as_tensor(), g, &self.m[i], &self.v[i], [b1, b2, c1, c2, self.cfg.eps, lr, wd])? {
                p.set(&np)?;
                (self.m[i], self.v[i]) = (nm, nv);
                continue;
            }
            let g = g.to_dtype(self.m[i].dtype())?;
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + self.cfg.eps)?)?;
            let kept = if decays { (p.as_tensor() * (1.0 - lr * self.cfg.weight_decay))? } else { p.as_tensor().clone() };
            p.set(&(kept - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The state as named tensors: `{name}.exp_avg`, `{name}.exp_avg_sq`, and `step` (f64).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![("step".to_string(), Tensor::new(self.step as f64, self.m.first().map_or(&candle_core::Device::Cpu, |t| t.device()))?)];
        for (i, (n, _)) in self.params.iter().enumerate() {
            out.push((format!("{n}.exp_avg"), self.m[i].clone()));
            out.push((format!("{n}.exp_avg_sq"), self.v[i].clone()));
        }
        Ok(out)
    }

    /// Restores a [`AdamW::state`]; every parameter's moments must be there, of its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| state.get(k).cloned().ok_or_else(|| candle_core::Error::Msg(format!("optimiser state has no `{k}`")));
        let step = get("step")?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut m = Vec::new();
        let mut v = Vec::new();
        for (n, p) in &self.params {
            let (a, b) = (get(&format!("{n}.exp_avg"))?, get(&format!("{n}.exp_avg_sq"))?);
            if a.dims() != p.dims() || b.dims() != p.dims() {
                candle_core::bail!("optimiser state for `{n}` has shape {:?}, the parameter {:?}", a.dims(), p.dims());
            }
            m.push(a);
            v.push(b);
        }
        (self.m, self.v, self.step) = (m, v, step as u64);
        Ok(())
    }
}

/// The step of one parameter in a single pass over f32 CPU tensors, where the op-by-op
/// form would take a dozen passes and as many allocations (which dominate for the small
/// tensors of a small model); `None` for other dtypes and devices. `k` holds β₁, β₂, the two
/// bias corrections, ε, the learning rate and the weight decay.
#[allow(clippy::type_complexity)]
fn fused_cpu(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, k: [f64; 7]) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let all_f32 = [p, g, m, v].iter().all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
    if !all_f32 {
        return Ok(None);
    }
    let [b1, b2, c1, c2, eps, lr, wd] = k.map(|x| x as f32);
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let (pv, gv, mut mv, mut vv) = (flat(p)?, flat(g)?, flat(m)?, flat(v)?);
    let keep = 1.0 - lr * wd;
    let mut out = pv;
    // Zipped slices have no bounds checks, so the loop vectorises.
    for (((p, &g), m), v) in out.iter_mut().zip(&gv).zip(mv.iter_mut()).zip(vv.iter_mut()) {
        *m = *m * b1 + g * (1.0 - b1);
        *v = *v * b2 + g * g * (1.0 - b2);
        let update = (*m / c1) / ((*v / c2).sqrt() + eps);
        *p = *p * keep - update * lr;
    }
    let shape = p.shape();
    let dev = p.device();
    Ok(Some((Tensor::from_vec(out, shape, dev)?, Tensor::from_vec(mv, shape, dev)?, Tensor::from_vec(vv, shape, dev)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The same steps written out in float64, element by element.
    fn reference(p0: &[f64], grads: &[Vec<f64>], lrs: &[f64], cfg: AdamWConfig, decays: bool) -> Vec<f64> {
        let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0; p0.len()], vec![0.0; p0.len()]);
        let [b1, b2] = cfg.betas;
        for (t, (g, lr)) in grads.iter().zip(lrs).enumerate() {
            let t = t as i32 + 1;
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let (mh, vh) = (m[i] / (1.0 - b1.powi(t)), v[i] / (1.0 - b2.powi(t)));
                if decays {
                    p[i] *= 1.0 - lr * cfg.weight_decay;
                }
                p[i] -= lr * mh / (vh.sqrt() + cfg.eps);
            }
        }
        p
    }

    #[test]
    fn steps_match_the_float64_reference_and_vectors_do_not_decay() {
        let cfg = AdamWConfig { betas: [0.9, 0.99], eps: 1e-8, weight_decay: 0.1, decay_vectors: false };
        let dev = Device::Cpu;
        let w0 = [0.5, -1.0, 2.0, 0.25];
        let b0 = [0.1, -0.2];
        let w = Var::from_tensor(&Tensor::new(&w0, &dev).unwrap().reshape((2, 2)).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&b0, &dev).unwrap()).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], cfg).unwrap();
        let (mut gw, mut gb, lrs) = (Vec::new(), Vec::new(), [1e-2, 2e-2, 5e-3]);
        for (k, &lr) in lrs.iter().enumerate() {
            // loss = Σ c·x²/2 with a different c each step: the gradient is c·x.
            let c = 1.0 + k as f64;
            let loss = ((w.as_tensor().sqr().unwrap().sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap() * (c / 2.0)).unwrap();
            let grads = loss.backward().unwrap();
            gw.push(w.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().map(|x| c * x).collect::<Vec<_>>());
            gb.push(b.as_tensor().to_vec1::<f64>().unwrap().iter().map(|x| c * x).collect::<Vec<_>>());
            opt.step(&grads, lr).unwrap();
        }
        let want_w = reference(&w0, &gw, &lrs, cfg, true);
        let want_b = reference(&b0, &gb, &lrs, cfg, false);
        for (a, e) in w.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().zip(&want_w) {
            assert!((a - e).abs() < 1e-12, "{a} vs {e}");
        }
        for (a, e) in b.as_tensor().to_vec1::<f64>().unwrap().iter().zip(&want_b) {
            assert!((a - e).abs() < 1e-12, "{a} vs {e}");
        }
        assert_eq!(opt.step_count(), 3);
    }

    #[test]
    fn restored_state_continues_exactly() {
        let cfg = AdamWConfig { betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01, decay_vectors: true };
        let dev = Device::Cpu;
        let run = |steps: usize, restore_after: Option<usize>| -> Vec<f32> {
            let x = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &dev).unwrap()).unwrap();
            let mut opt = AdamW::new(vec![("x".into(), x.clone())], cfg).unwrap();
            for s in 0..steps {
                if restore_after == Some(s) {
                    let saved: HashMap<String, Tensor> = opt.state().unwrap().into_iter().collect();
                    let mut fresh = AdamW::new(vec![("x".into(), x.clone())], cfg).unwrap();
                    fresh.load_state(&saved).unwrap();
                    opt = fresh;
                }
                let grads = x.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
                opt.step(&grads, 1e-2).unwrap();
            }
            x.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(6, None), run(6, Some(3)), "bit for bit after a restore");
        let x = Var::new(&[1f32, 2.0], &dev).unwrap();
        let mut opt = AdamW::new(vec![("x".into(), x)], cfg).unwrap();
        let err = opt.load_state(&HashMap::from([("step".to_string(), Tensor::new(1f64, &dev).unwrap())])).unwrap_err().to_string();
        assert!(err.contains("no `x.exp_avg`"), "{err}");
    }
}

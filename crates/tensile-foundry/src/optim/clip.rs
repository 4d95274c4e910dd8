//! Gradient clipping by global norm.

use super::{GradSource, Grads};
use candle_core::{DType, Result, Var};

/// The global L2 norm of the gradients of `vars` (those that have one), computed in f64.
pub fn global_norm(vars: &[Var], grads: &impl GradSource) -> Result<f64> {
    let mut sum = 0.0;
    for v in vars {
        if let Some(g) = grads.grad(v.as_tensor()) {
            sum += if g.dtype() == DType::F32 && g.device().is_cpu() {
                // One pass without a float64 copy; the sum is still taken in f64.
                g.flatten_all()?.to_vec1::<f32>()?.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
            } else {
                g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?
            };
        }
    }
    Ok(sum.sqrt())
}

/// Scales the gradients so that their global norm is at most `max` (as PyTorch's
/// `clip_grad_norm_`: by `max / (norm + 1e-6)` when the norm is above `max`) and returns the
/// norm before clipping.
pub fn clip_grad_norm(vars: &[Var], grads: &mut Grads, max: f64) -> Result<f64> {
    let norm = global_norm(vars, grads)?;
    clip_to_norm(grads, norm, max)?;
    Ok(norm)
}

/// [`clip_grad_norm`] for gradients whose global norm `norm` is already known (the trainer
/// computes it first, to judge finiteness), so it is not summed twice.
pub fn clip_to_norm(grads: &mut Grads, norm: f64, max: f64) -> Result<()> {
    let scale = max / (norm + 1e-6);
    if scale < 1.0 {
        grads.scale(scale)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn clipping_scales_to_the_bound_and_leaves_small_gradients_alone() {
        let a = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let b = Var::new(&[3f32], &Device::Cpu).unwrap();
        // loss = 3·a0 + 4·a1 + 12·b: gradients (3, 4) and (12), global norm 13.
        let loss = ((a.as_tensor() * &Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap().sum_all().unwrap()
            + (b.as_tensor() * 12.0).unwrap().sum_all().unwrap())
        .unwrap();
        let vars = [a.clone(), b.clone()];
        let mut grads = Grads::from_store(loss.backward().unwrap(), &vars);
        assert!((global_norm(&vars, &grads).unwrap() - 13.0).abs() < 1e-6);
        let before = clip_grad_norm(&vars, &mut grads, 1.0).unwrap();
        assert!((before - 13.0).abs() < 1e-6, "the norm before clipping is reported");
        let after = global_norm(&vars, &grads).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "clipped to the bound: {after}");
        let ga = grads.get(&a).unwrap().to_vec1::<f32>().unwrap();
        assert!((ga[0] / ga[1] - 0.75).abs() < 1e-6, "the direction is kept");
        assert!((clip_grad_norm(&vars, &mut grads, 10.0).unwrap() - after).abs() < 1e-9);
        assert!((global_norm(&vars, &grads).unwrap() - after).abs() < 1e-9, "a norm under the bound is left alone");
    }
}

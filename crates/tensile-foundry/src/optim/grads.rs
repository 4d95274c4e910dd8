//! The gradients of a step: one tensor per trained variable, summed over micro-batches.
//!
//! candle's `GradStore` has no public constructor and no way to add one store to another,
//! which gradient accumulation needs; it may also hold gradients of tensors that are not
//! trained (a frozen input). [`Grads`] keeps exactly the trained variables' gradients.

use candle_core::{backprop::GradStore, Result, Tensor, TensorId, Var};
use std::collections::HashMap;

/// Gradients by variable.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    by_id: HashMap<TensorId, Tensor>,
}

/// Anything gradients can be read from by tensor.
pub trait GradSource {
    /// The gradient of `t`, if there is one.
    fn grad(&self, t: &Tensor) -> Option<&Tensor>;
}

impl GradSource for GradStore {
    fn grad(&self, t: &Tensor) -> Option<&Tensor> {
        self.get(t)
    }
}

impl GradSource for Grads {
    fn grad(&self, t: &Tensor) -> Option<&Tensor> {
        self.by_id.get(&t.id())
    }
}

impl Grads {
    /// The gradients of `vars` taken out of a backward pass's store (the rest is dropped).
    pub fn from_store(mut store: GradStore, vars: &[Var]) -> Self {
        let by_id = vars.iter().filter_map(|v| Some((v.id(), store.remove(v.as_tensor())?))).collect();
        Self { by_id }
    }

    /// Adds `other` to these gradients, variable by variable.
    pub fn accumulate(&mut self, other: Grads) -> Result<()> {
        for (id, g) in other.by_id {
            let sum = match self.by_id.remove(&id) {
                Some(acc) => (acc + g)?,
                None => g,
            };
            self.by_id.insert(id, sum);
        }
        Ok(())
    }

    /// Sets the gradient of `var`.
    pub fn insert(&mut self, var: &Var, grad: Tensor) {
        self.by_id.insert(var.id(), grad);
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        for g in self.by_id.values_mut() {
            *g = (&*g * factor)?;
        }
        Ok(())
    }

    /// The gradient of `var`.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.by_id.get(&var.id())
    }

    /// How many variables have a gradient.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no variable has a gradient.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn only_the_variables_are_kept_and_accumulation_adds() {
        let a = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let b = Var::new(&[3f32], &Device::Cpu).unwrap();
        let mid = (a.as_tensor() * 2.0).unwrap();
        let loss = (mid.sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        let store = loss.backward().unwrap();
        let mut g = Grads::from_store(store, std::slice::from_ref(&a));
        assert_eq!(g.len(), 1, "only the listed variable is kept");
        assert!(g.get(&b).is_none() && !g.is_empty());
        g.accumulate(Grads::from_store(loss.backward().unwrap(), &[a.clone(), b.clone()])).unwrap();
        assert_eq!(g.get(&a).unwrap().to_vec1::<f32>().unwrap(), vec![4.0, 4.0]);
        assert_eq!(g.get(&b).unwrap().to_vec1::<f32>().unwrap(), vec![6.0]);
        g.scale(0.5).unwrap();
        assert_eq!(g.grad(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![2.0, 2.0]);
    }
}

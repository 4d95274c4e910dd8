//! Pooling: hand-worked values, padding that cannot leak into the result, the fast forms
//! against their float64 twins, gradients against finite differences of the twins, and
//! inputs that make a pooling undefined.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use tensile_nn::init::{randn, SeededInit};
use tensile_nn::{Block, Pooling, PoolingMode};

mod common;

const MODES: [PoolingMode; 4] = [PoolingMode::Cls, PoolingMode::Mean, PoolingMode::Max, PoolingMode::Attention];

fn vec2(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_device(&Device::Cpu).unwrap().to_vec2::<f64>().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    vec2(a).iter().flatten().zip(vec2(b).iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Attention pooling whose score is the first coordinate: `attention.weight = [[1, 0]]`.
fn first_coordinate_attention(dev: &Device) -> Pooling {
    let weights = HashMap::from([
        ("attention.weight".to_string(), Tensor::new(&[[1f64, 0.0]], dev).unwrap()),
        ("attention.bias".to_string(), Tensor::new(&[0f64], dev).unwrap()),
    ]);
    Pooling::new(PoolingMode::Attention, 2, VarBuilder::from_tensors(weights, DType::F64, dev)).unwrap()
}

fn pools_match_hand_worked_values(dev: &Device) {
    let xs = Tensor::new(&[[[1f64, 2.0], [3.0, -4.0], [5.0, 6.0]]], dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 0]], dev).unwrap();
    let vb = || SeededInit::var_builder(0, DType::F64, dev);
    let pool = |mode| Pooling::new(mode, 2, vb()).unwrap();
    assert_eq!(vec2(&pool(PoolingMode::Cls).forward_masked(&xs, Some(&mask)).unwrap()), vec![vec![1.0, 2.0]]);
    assert_eq!(vec2(&pool(PoolingMode::Mean).forward_masked(&xs, Some(&mask)).unwrap()), vec![vec![2.0, -1.0]]);
    assert_eq!(vec2(&pool(PoolingMode::Max).forward_masked(&xs, Some(&mask)).unwrap()), vec![vec![3.0, 2.0]]);
    assert_eq!(vec2(&pool(PoolingMode::Max).forward_masked(&xs, None).unwrap()), vec![vec![5.0, 6.0]]);
    // Scores 1 and 3 (the masked 5 is out): weights 1/(1+e²) and e²/(1+e²).
    let a = 1.0 / (1.0 + 2f64.exp());
    let want = [a * 1.0 + (1.0 - a) * 3.0, a * 2.0 + (1.0 - a) * -4.0];
    let attention = first_coordinate_attention(dev);
    for got in [attention.forward_masked(&xs, Some(&mask)).unwrap(), attention.forward_masked_reference(&xs, Some(&mask)).unwrap()] {
        let got = vec2(&got);
        assert!((got[0][0] - want[0]).abs() < 1e-12 && (got[0][1] - want[1]).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

fn padding_never_changes_the_result(dev: &Device) {
    // Padded positions hold huge values, which a mask applied after the fact (or a softmax
    // shifted by the maximum over all positions) would let through as inf or NaN.
    let xs = randn(1, "xs", (2, 5, 8), DType::F32, dev).unwrap();
    let mask = Tensor::new(&[[1f32, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]], dev).unwrap();
    let keep = mask.unsqueeze(2).unwrap().broadcast_as(xs.shape()).unwrap();
    let poisoned = keep.ne(0f32).unwrap().where_cond(&xs, &(xs.ones_like().unwrap() * 3e4).unwrap()).unwrap();
    for mode in MODES {
        let pool = Pooling::new(mode, 8, SeededInit::var_builder(2, DType::F32, dev)).unwrap();
        let clean = pool.forward_masked(&xs, Some(&mask)).unwrap();
        let dirty = pool.forward_masked(&poisoned, Some(&mask)).unwrap();
        assert!(vec2(&dirty).iter().flatten().all(|v| v.is_finite()), "{mode:?}");
        assert_eq!(max_diff(&clean, &dirty), 0.0, "{mode:?}: padding changed the pooled vector");
    }
}

fn fast_pools_agree_with_their_twins(dev: &Device) {
    let mask = Tensor::new(&[[1u8, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0]], dev).unwrap();
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let xs = randn(3, "xs", (3, 6, 16), dtype, dev).unwrap();
        for mode in MODES {
            let pool = Pooling::new(mode, 16, SeededInit::var_builder(4, dtype, dev)).unwrap();
            for m in [None, Some(&mask)] {
                let fast = pool.forward_masked(&xs, m).unwrap();
                assert_eq!(fast.dims(), [3, 16]);
                let d = max_diff(&fast, &pool.forward_masked_reference(&xs, m).unwrap());
                assert!(d < tol, "{mode:?} {dtype:?} masked={}: {d}", m.is_some());
            }
            // The Block interface pools every position.
            assert!(max_diff(&candle_core::Module::forward(&pool, &xs).unwrap(), &pool.forward_reference(&xs).unwrap()) < tol);
        }
    }
}

fn gradients_match_finite_differences_of_the_twins(dev: &Device) {
    let xs = randn(5, "xs", (2, 4, 3), DType::F64, dev).unwrap();
    let mask = Tensor::new(&[[1f64, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0]], dev).unwrap();
    // A fixed random projection turns the pooled (2, 3) into a scalar.
    let probe = randn(6, "probe", (2, 3), DType::F64, dev).unwrap();
    for mode in MODES {
        let pool = Pooling::new(mode, 3, SeededInit::var_builder(7, DType::F64, dev)).unwrap();
        let x = Var::from_tensor(&xs).unwrap();
        let loss = pool.forward_masked(x.as_tensor(), Some(&mask)).unwrap().mul(&probe).unwrap().sum_all().unwrap();
        let grad = loss.backward().unwrap().get(x.as_tensor()).cloned().unwrap_or_else(|| xs.zeros_like().unwrap());
        let grad = grad.flatten_all().unwrap().to_device(&Device::Cpu).unwrap().to_vec1::<f64>().unwrap();
        let base = xs.flatten_all().unwrap().to_device(&Device::Cpu).unwrap().to_vec1::<f64>().unwrap();
        let twin_loss = |v: &[f64]| {
            let x = Tensor::from_vec(v.to_vec(), (2, 4, 3), &Device::Cpu).unwrap();
            let out = pool.forward_masked_reference(&x, Some(&mask.to_device(&Device::Cpu).unwrap())).unwrap();
            out.mul(&probe.to_device(&Device::Cpu).unwrap()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        // The twin is differentiable too (gradient checks and training differentiate it).
        let xc = Var::from_tensor(&xs.to_device(&Device::Cpu).unwrap()).unwrap();
        let twin = pool.forward_masked_reference(xc.as_tensor(), Some(&mask.to_device(&Device::Cpu).unwrap())).unwrap();
        let twin_grad = twin.mul(&probe.to_device(&Device::Cpu).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        let twin_grad = twin_grad.get(xc.as_tensor()).expect("a gradient reaches the twin's input").flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let h = 1e-6;
        for i in 0..base.len() {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (twin_loss(&up) - twin_loss(&down)) / (2.0 * h);
            assert!((grad[i] - numeric).abs() < 1e-6, "{mode:?} element {i}: autograd {} vs finite difference {numeric}", grad[i]);
            assert!((twin_grad[i] - numeric).abs() < 1e-6, "{mode:?} element {i}: twin's autograd {} vs finite difference {numeric}", twin_grad[i]);
        }
    }
}

fn undefined_poolings_are_errors(dev: &Device) {
    let xs = randn(8, "xs", (2, 3, 4), DType::F32, dev).unwrap();
    let pool = |mode| Pooling::new(mode, 4, SeededInit::var_builder(0, DType::F32, dev)).unwrap();
    let all_masked = Tensor::new(&[[1f32, 0.0, 0.0], [0.0, 0.0, 0.0]], dev).unwrap();
    for mode in [PoolingMode::Mean, PoolingMode::Max, PoolingMode::Attention] {
        let e = pool(mode).forward_masked(&xs, Some(&all_masked)).unwrap_err().to_string();
        assert_eq!(e, "invalid input to pooling: sequence 1 is entirely masked, so its pooling is undefined");
        assert!(pool(mode).forward_masked_reference(&xs, Some(&all_masked)).is_err());
    }
    // The first position of every sequence is real, so cls pooling is defined.
    assert!(pool(PoolingMode::Cls).forward_masked(&xs, Some(&all_masked)).is_ok());
    let e = pool(PoolingMode::Mean).forward_masked(&xs, Some(&Tensor::ones((2, 4), DType::F32, dev).unwrap())).unwrap_err().to_string();
    assert_eq!(e, "invalid input to pooling: the mask is [2, 4], the hidden states need (2, 3)");
    let e = Pooling::new(PoolingMode::Max, 5, SeededInit::var_builder(0, DType::F32, dev)).unwrap().forward_masked(&xs, None).unwrap_err().to_string();
    assert_eq!(e, "invalid input to pooling: hidden states are 4 wide, the pooling expects 5");
    let empty = Tensor::zeros((2, 0, 4), DType::F32, dev).unwrap();
    assert_eq!(pool(PoolingMode::Cls).forward_masked(&empty, None).unwrap_err().to_string(), "invalid input to pooling: the sequence is empty");
}

fn attention_pooling_names_its_parameters(dev: &Device) {
    let pool = Pooling::new(PoolingMode::Attention, 4, SeededInit::var_builder(0, DType::F32, dev)).unwrap();
    let names: Vec<String> = pool.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["attention.weight", "attention.bias"]);
    assert!(Pooling::new(PoolingMode::Mean, 4, SeededInit::var_builder(0, DType::F32, dev)).unwrap().parameters().is_empty());
    assert_eq!(pool.input_shape(2, 5), [2, 5, 4]);
    assert_eq!(pool.dims(), [("hidden_size", 4)]);
}

per_device!(
    pools_match_hand_worked_values,
    padding_never_changes_the_result,
    fast_pools_agree_with_their_twins,
    gradients_match_finite_differences_of_the_twins,
    undefined_poolings_are_errors,
    attention_pooling_names_its_parameters
);

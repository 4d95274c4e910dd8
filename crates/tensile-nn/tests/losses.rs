//! The losses: fast forms against hand-worked values and their float64 twins, gradients
//! against the closed forms, and stability for logits around ±1e4.
//!
//! Closed-form gradients: for cross-entropy with target distribution q over n counted rows,
//! ∂L/∂x = (softmax(x) − q) / n; for BCE on logits, ∂L/∂x = (σ(x) − y) / N; for MSE,
//! ∂L/∂p = 2 (p − t) / N.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use tensile_nn::loss::{self, CrossEntropyLoss, IGNORE_INDEX};

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_device(&Device::Cpu).unwrap().to_scalar::<f64>().unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_device(&Device::Cpu).unwrap().to_vec2::<f64>().unwrap()
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol * want.abs().max(1.0), "{what}: {got} vs {want}");
}

/// Seeded logits in (−3, 3).
fn logits(rows: usize, classes: usize, seed: u64, dev: &Device) -> Tensor {
    let mut state = seed;
    let v: Vec<f64> = (0..rows * classes)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 6.0 - 3.0
        })
        .collect();
    Tensor::from_vec(v, (rows, classes), dev).unwrap()
}

fn cross_entropy_matches_hand_worked_values(dev: &Device) {
    let ce = CrossEntropyLoss::default();
    // Two equal logits: −ln(1/2).
    let x = Tensor::new(&[[0f32, 0.0]], dev).unwrap();
    close(scalar(&ce.forward(&x, &[0]).unwrap()), std::f64::consts::LN_2, 1e-6, "ln 2");
    // Logits (0, ln 3): probabilities (1/4, 3/4). Smoothing 0.2 over 2 classes with target 1
    // gives q = (0.1, 0.9).
    let x = Tensor::new(&[[0f64, 3f64.ln()]], dev).unwrap();
    let smooth = CrossEntropyLoss { label_smoothing: 0.2, ..CrossEntropyLoss::default() };
    let want = -(0.1 * 0.25f64.ln() + 0.9 * 0.75f64.ln());
    close(scalar(&smooth.forward(&x, &[1]).unwrap()), want, 1e-12, "smoothed");
    close(scalar(&smooth.forward_reference(&x, &[1]).unwrap()), want, 1e-12, "smoothed twin");
    // An ignored row counts neither in the sum nor in the mean: the loss of the other row alone.
    let x = Tensor::new(&[[0f64, 3f64.ln()], [9.0, -9.0]], dev).unwrap();
    close(scalar(&ce.forward(&x, &[1, IGNORE_INDEX]).unwrap()), -(0.75f64.ln()), 1e-12, "ignored");
    // A custom ignore index; and all rows ignored is a loss of 0, not NaN.
    let custom = CrossEntropyLoss { ignore_index: 7, ..CrossEntropyLoss::default() };
    // Row 1 alone: −ln softmax(9 | 9, −9) = ln(1 + e^−18).
    close(scalar(&custom.forward(&x, &[7, 0]).unwrap()), (-18f64).exp().ln_1p(), 1e-12, "custom ignore");
    assert_eq!(scalar(&ce.forward(&x, &[IGNORE_INDEX, IGNORE_INDEX]).unwrap()), 0.0);
    assert_eq!(scalar(&ce.forward_reference(&x, &[IGNORE_INDEX, IGNORE_INDEX]).unwrap()), 0.0);
}

fn cross_entropy_agrees_with_its_twin_and_its_gradient(dev: &Device) {
    let targets = [2, IGNORE_INDEX, 0, 4, 1, 3, IGNORE_INDEX, 4];
    for smoothing in [0.0, 0.1] {
        let ce = CrossEntropyLoss { label_smoothing: smoothing, ..CrossEntropyLoss::default() };
        // (batch 2, seq 4, classes 5): token classification flattens the leading dimensions.
        let x = Var::from_tensor(&logits(8, 5, 3, dev).reshape((2, 4, 5)).unwrap()).unwrap();
        let loss = ce.forward(x.as_tensor(), &targets).unwrap();
        close(scalar(&loss), scalar(&ce.forward_reference(x.as_tensor(), &targets).unwrap()), 1e-12, "twin");
        let grad = rows(&loss.backward().unwrap().get(x.as_tensor()).unwrap().reshape((8, 5)).unwrap());
        let x = rows(&x.as_tensor().reshape((8, 5)).unwrap());
        for (r, &t) in targets.iter().enumerate() {
            let z: f64 = x[r].iter().map(|v| v.exp()).sum();
            for c in 0..5 {
                let want = if t == IGNORE_INDEX {
                    0.0
                } else {
                    let q = smoothing / 5.0 + if c as i64 == t { 1.0 - smoothing } else { 0.0 };
                    (x[r][c].exp() / z - q) / 6.0
                };
                close(grad[r][c], want, 1e-12, &format!("gradient [{r}][{c}]"));
            }
        }
    }
}

fn losses_are_stable_for_huge_logits(dev: &Device) {
    // f32 logits of ±1e4: a naive exp overflows to inf and the loss becomes NaN.
    let x = Var::from_tensor(&Tensor::new(&[[1e4f32, -1e4, 0.0], [5e3, 5e3, -1e4]], dev).unwrap()).unwrap();
    let ce = CrossEntropyLoss::default();
    let loss = ce.forward(x.as_tensor(), &[1, 0]).unwrap();
    // Row 0: −log_softmax picks −1e4 against 1e4: 2e4. Row 1: two equal maxima: ln 2.
    let want = (2e4 + std::f64::consts::LN_2) / 2.0;
    close(scalar(&loss), want, 1e-6, "huge cross-entropy");
    close(scalar(&ce.forward_reference(x.as_tensor(), &[1, 0]).unwrap()), want, 1e-12, "huge twin");
    let grad = rows(loss.backward().unwrap().get(x.as_tensor()).unwrap());
    assert!(grad.iter().flatten().all(|g| g.is_finite()), "{grad:?}");
    close(grad[0][0], 0.5, 1e-6, "saturated gradient");

    let y = Tensor::new(&[[0f32, 1.0, 0.0], [1.0, 1.0, 0.5]], dev).unwrap();
    let bce = loss::bce_with_logits(x.as_tensor(), &y).unwrap();
    // Per element max(x,0) − x·y + ln(1 + e^−|x|): 1e4, 1e4, ln 2 | 0, 0 (+ e^−5e3), 0.5·1e4.
    let want = (2e4 + std::f64::consts::LN_2 + 5e3) / 6.0;
    close(scalar(&bce), want, 1e-6, "huge bce");
    close(scalar(&loss::bce_with_logits_reference(x.as_tensor(), &y).unwrap()), want, 1e-12, "huge bce twin");
    let grad = rows(bce.backward().unwrap().get(x.as_tensor()).unwrap());
    assert!(grad.iter().flatten().all(|g| g.is_finite()), "{grad:?}");
}

fn bce_and_mse_agree_with_their_twins_and_gradients(dev: &Device) {
    let x = Var::from_tensor(&logits(4, 3, 11, dev)).unwrap();
    let y = Tensor::new(&[[1f64, 0.0, 0.3], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.5, 0.9, 0.1]], dev).unwrap();
    let bce = loss::bce_with_logits(x.as_tensor(), &y).unwrap();
    close(scalar(&bce), scalar(&loss::bce_with_logits_reference(x.as_tensor(), &y).unwrap()), 1e-12, "bce twin");
    let grad = rows(bce.backward().unwrap().get(x.as_tensor()).unwrap());
    let (xv, yv) = (rows(x.as_tensor()), rows(&y));
    for r in 0..4 {
        for c in 0..3 {
            let sigmoid = 1.0 / (1.0 + (-xv[r][c]).exp());
            close(grad[r][c], (sigmoid - yv[r][c]) / 12.0, 1e-12, "bce gradient");
        }
    }
    let mse = loss::mse_loss(x.as_tensor(), &y).unwrap();
    let want: f64 = xv.iter().flatten().zip(yv.iter().flatten()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / 12.0;
    close(scalar(&mse), want, 1e-12, "mse");
    close(scalar(&loss::mse_loss_reference(x.as_tensor(), &y).unwrap()), want, 1e-12, "mse twin");
    let grad = rows(mse.backward().unwrap().get(x.as_tensor()).unwrap());
    for r in 0..4 {
        for c in 0..3 {
            close(grad[r][c], 2.0 * (xv[r][c] - yv[r][c]) / 12.0, 1e-12, "mse gradient");
        }
    }
}

fn bad_inputs_are_errors_that_say_why(dev: &Device) {
    let x = logits(2, 3, 1, dev);
    let ce = CrossEntropyLoss::default();
    let err = |r: tensile_nn::Result<Tensor>| r.unwrap_err().to_string();
    assert_eq!(err(ce.forward(&x, &[0])), "invalid input to cross_entropy: 1 targets for 2 rows of logits");
    assert_eq!(err(ce.forward(&x, &[0, 3])), "invalid input to cross_entropy: target 1 is 3, outside 0..3 and not the ignore index -100");
    assert_eq!(err(ce.forward_reference(&x, &[-1, 0])), "invalid input to cross_entropy: target 0 is -1, outside 0..3 and not the ignore index -100");
    let bad = CrossEntropyLoss { label_smoothing: 1.5, ..ce };
    assert_eq!(err(bad.forward(&x, &[0, 1])), "invalid input to cross_entropy: label_smoothing must lie in [0, 1], not 1.5");
    let flat = Tensor::new(&[1f32, 2.0], dev).unwrap();
    assert!(err(ce.forward(&flat, &[0, 1])).contains("logits must be (…, classes)"));
    assert_eq!(err(loss::mse_loss(&x, &flat)), "invalid input to mse: predictions [2, 3] and targets [2] differ in shape");
    assert!(err(loss::bce_with_logits_reference(&x, &flat)).contains("differ in shape"));
    let empty = Tensor::zeros((0, 3), DType::F32, dev).unwrap();
    assert_eq!(err(loss::mse_loss(&empty, &empty)), "invalid input to mse: empty input");
}

per_device!(
    cross_entropy_matches_hand_worked_values,
    cross_entropy_agrees_with_its_twin_and_its_gradient,
    losses_are_stable_for_huge_logits,
    bce_and_mse_agree_with_their_twins_and_gradients,
    bad_inputs_are_errors_that_say_why
);

//! What the model learns from a chunk: the next token (causal LM) or masked tokens (masked
//! LM, BERT's 80/10/10 recipe), and the token-level cross-entropy that scores it.
//!
//! A step's loss is the mean over every predicted token of the whole step, however the step
//! is split into micro-batches: each micro-batch contributes the sum of its token losses
//! divided by the step's token count, so that k micro-batches add up to the same gradient as
//! one k-times batch.

use crate::error::Result;
use candle_core::{Device, Tensor, D};
use rand::Rng;
use tensile_nn::loss::IGNORE_INDEX;

/// One training example: input ids and a target per position (`IGNORE_INDEX` where nothing
/// is predicted).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Input token ids.
    pub ids: Vec<u32>,
    /// The token to predict at each position.
    pub targets: Vec<i64>,
}

impl Example {
    /// Positions with a target.
    pub fn counted(&self) -> usize {
        self.targets.iter().filter(|&&t| t != IGNORE_INDEX).count()
    }
}

/// Next-token prediction: inputs `chunk[..n-1]`, targets `chunk[1..]`, padding not predicted.
pub fn causal(chunk: &[u32], pad_id: u32) -> Example {
    let n = chunk.len();
    let ids = chunk[..n.saturating_sub(1)].to_vec();
    let targets = chunk[1..].iter().map(|&t| if t == pad_id { IGNORE_INDEX } else { i64::from(t) }).collect();
    Example { ids, targets }
}

/// The ids a masked LM needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskTokens {
    /// `<mask>`.
    pub mask_id: u32,
    /// Special tokens occupy ids `0..specials` and are never masked or drawn as replacements.
    pub specials: u32,
    /// The vocabulary size.
    pub vocab: u32,
}

/// BERT's masking: each non-special token is chosen with probability `p`; a chosen token is
/// predicted, and in the input becomes `<mask>` (80%), a random ordinary token (10%), or stays
/// (10%). The choices come from `rng`, so a seed fixes them.
pub fn masked(chunk: &[u32], tokens: MaskTokens, p: f64, rng: &mut impl Rng) -> Example {
    let mut ids = chunk.to_vec();
    let mut targets = vec![IGNORE_INDEX; chunk.len()];
    for (i, &t) in chunk.iter().enumerate() {
        if t < tokens.specials || rng.random::<f64>() >= p {
            continue;
        }
        targets[i] = i64::from(t);
        let r: f64 = rng.random();
        if r < 0.8 {
            ids[i] = tokens.mask_id;
        } else if r < 0.9 && tokens.vocab > tokens.specials {
            ids[i] = rng.random_range(tokens.specials..tokens.vocab);
        }
    }
    Example { ids, targets }
}

/// Examples stacked into a `(batch, seq)` id tensor, with their targets flattened.
pub fn stack(examples: &[Example], device: &Device) -> Result<(Tensor, Vec<i64>)> {
    let seq = examples.first().map_or(0, |e| e.ids.len());
    let ids: Vec<u32> = examples.iter().flat_map(|e| e.ids.iter().copied()).collect();
    let targets = examples.iter().flat_map(|e| e.targets.iter().copied()).collect();
    Ok((Tensor::from_vec(ids, (examples.len(), seq), device)?, targets))
}

/// `Σ_t −log softmax(logits_t)[target_t] / normaliser` over the positions with a target, in
/// f32 whatever the logits' dtype: `log Σ exp(x − max) − (x_target − max)` per row, gathered
/// rather than multiplied by a one-hot matrix (which would be as large as the logits).
///
/// # Shapes
/// `logits: (batch, seq, vocab)`, `targets: batch·seq` → a scalar
pub fn token_loss(logits: &Tensor, targets: &[i64], normaliser: usize) -> Result<Tensor> {
    let vocab = logits.dim(D::Minus1)?;
    let rows = targets.len();
    let logits = logits.reshape((rows, vocab))?.to_dtype(candle_core::DType::F32)?;
    let index: Vec<u32> = targets.iter().map(|&t| if t == IGNORE_INDEX { 0 } else { t as u32 }).collect();
    let weight: Vec<f32> = targets.iter().map(|&t| if t == IGNORE_INDEX { 0.0 } else { 1.0 / normaliser.max(1) as f32 }).collect();
    if logits.device().is_cpu() {
        let op = crate::cross_entropy::TokenCrossEntropy::new(index, weight, vocab);
        return Ok(logits.contiguous()?.apply_op1(op)?.sum_all()?);
    }
    composed_loss(&logits, index, weight)
}

/// [`token_loss`] as candle operations, for devices without the fused CPU kernel; `index`
/// and `weight` per row, `logits` `(rows, vocab)` in f32.
pub(crate) fn composed_loss(logits: &Tensor, index: Vec<u32>, weight: Vec<f32>) -> Result<Tensor> {
    let rows = index.len();
    let dev = logits.device();
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?; // (rows, vocab)
    let log_sum = shifted.exp()?.sum_keepdim(1)?.log()?; // (rows, 1)
    let picked = shifted.gather(&Tensor::from_vec(index, (rows, 1), dev)?, 1)?; // (rows, 1)
    Ok((log_sum - picked)?.squeeze(1)?.mul(&Tensor::from_vec(weight, rows, dev)?)?.sum_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn causal_shifts_by_one_and_ignores_padding() {
        let e = causal(&[5, 6, 7, 0, 0], 0);
        assert_eq!(e.ids, vec![5, 6, 7, 0]);
        assert_eq!(e.targets, vec![6, 7, IGNORE_INDEX, IGNORE_INDEX]);
        assert_eq!(e.counted(), 2);
    }

    #[test]
    fn masking_follows_the_80_10_10_recipe_and_spares_special_tokens() {
        let tokens = MaskTokens { mask_id: 4, specials: 5, vocab: 100 };
        let chunk: Vec<u32> = (0..20_000).map(|i| if i % 10 == 0 { 1 } else { 5 + (i % 90) as u32 }).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let e = masked(&chunk, tokens, 0.15, &mut rng);
        let chosen: Vec<usize> = (0..chunk.len()).filter(|&i| e.targets[i] != IGNORE_INDEX).collect();
        assert!(chosen.iter().all(|&i| chunk[i] >= 5), "a special token was chosen");
        let share = chosen.len() as f64 / 18_000.0;
        assert!((share - 0.15).abs() < 0.01, "chosen share {share}");
        let masked_share = chosen.iter().filter(|&&i| e.ids[i] == 4).count() as f64 / chosen.len() as f64;
        let kept_share = chosen.iter().filter(|&&i| e.ids[i] == chunk[i]).count() as f64 / chosen.len() as f64;
        assert!((masked_share - 0.8).abs() < 0.03 && (kept_share - 0.1).abs() < 0.03, "{masked_share} {kept_share}");
        assert!(chosen.iter().all(|&i| e.targets[i] == i64::from(chunk[i])), "targets are the original tokens");
        assert!((0..chunk.len()).filter(|&i| e.targets[i] == IGNORE_INDEX).all(|i| e.ids[i] == chunk[i]), "unchosen tokens are untouched");
        let again = masked(&chunk, tokens, 0.15, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        assert_eq!(e, again, "the seed fixes the masking");
    }

    #[test]
    fn token_loss_is_cross_entropy_and_micro_batches_add_up() {
        let dev = Device::Cpu;
        let logits = tensile_nn::init::randn(1, "l", (2, 3, 7), candle_core::DType::F32, &dev).unwrap();
        let targets = vec![1, IGNORE_INDEX, 6, 0, 3, IGNORE_INDEX];
        let ours = token_loss(&logits, &targets, 4).unwrap().to_scalar::<f32>().unwrap();
        let reference = tensile_nn::loss::CrossEntropyLoss::default().forward(&logits.reshape((6, 7)).unwrap(), &targets).unwrap().to_scalar::<f32>().unwrap();
        assert!((ours - reference).abs() < 1e-5, "{ours} vs {reference}");
        let halves: f32 =
            (0..2).map(|b| token_loss(&logits.narrow(0, b, 1).unwrap(), &targets[b * 3..b * 3 + 3], 4).unwrap().to_scalar::<f32>().unwrap()).sum();
        assert!((halves - ours).abs() < 1e-6);
        let huge = (&logits * 1e4).unwrap();
        assert!(token_loss(&huge, &targets, 4).unwrap().to_scalar::<f32>().unwrap().is_finite(), "large logits stay finite");
        // The fused CPU kernel and the composed form agree in value and in gradient.
        let v = candle_core::Var::from_tensor(&logits).unwrap();
        let fused = token_loss(v.as_tensor(), &targets, 4).unwrap();
        let index: Vec<u32> = targets.iter().map(|&t| if t == IGNORE_INDEX { 0 } else { t as u32 }).collect();
        let weight: Vec<f32> = targets.iter().map(|&t| if t == IGNORE_INDEX { 0.0 } else { 0.25 }).collect();
        let composed = composed_loss(&v.as_tensor().reshape((6, 7)).unwrap(), index, weight).unwrap();
        let (a, b) = (fused.to_scalar::<f32>().unwrap(), composed.to_scalar::<f32>().unwrap());
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        let (ga, gb) = (fused.backward().unwrap(), composed.backward().unwrap());
        let (ga, gb) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
        let d = (ga - gb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "gradients differ by {d}");
    }
}

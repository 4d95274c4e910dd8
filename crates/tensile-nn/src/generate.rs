//! Text generation with a causal language model: greedy or nucleus sampling over a KV cache,
//! so each new token costs one position's forward, whatever the prompt's length.

use crate::attention::KvCache;
use crate::llama::Llama;
use candle_core::{DType, Device, Tensor};
use rand::Rng;
use std::time::Instant;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 for greedy (the most likely token, the lowest id on a tie); above 0, the logits are
    /// divided by it before the softmax.
    pub temperature: f64,
    /// Nucleus sampling: draw only among the most likely tokens whose probabilities sum to at
    /// least `top_p` (1 keeps them all).
    pub top_p: f64,
    /// Draw only among the `top_k` most likely tokens (0 keeps them all); applied before
    /// `top_p`, as transformers does.
    pub top_k: usize,
    /// Seed of the draws, so a sampled continuation can be replayed.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 1.0, top_k: 0, seed: 0 }
    }
}

impl Sampling {
    /// Rejects a negative or non-finite temperature and a `top_p` outside (0, 1].
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(crate::Error::InvalidInput { op: "generate", reason: format!("temperature {} is not a finite number ≥ 0", self.temperature) });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(crate::Error::InvalidInput { op: "generate", reason: format!("top_p {} is not in (0, 1]", self.top_p) });
        }
        Ok(())
    }

    /// The token `logits` pick, drawing from `rng` when sampling.
    pub fn pick(&self, logits: &[f32], rng: &mut impl Rng) -> u32 {
        let argmax = || logits.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0 as u32;
        if self.temperature == 0.0 {
            return argmax();
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f64)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, (f64::from(l - max) / self.temperature).exp())).collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.top_k > 0 {
            probs.truncate(self.top_k);
        }
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0.0;
        let mut n = 0;
        for (_, p) in &probs {
            kept += p / total;
            n += 1;
            if kept >= self.top_p {
                break;
            }
        }
        let mass: f64 = probs[..n].iter().map(|p| p.1).sum();
        let mut u = rng.random::<f64>() * mass;
        for (id, p) in &probs[..n] {
            if u < *p {
                return *id;
            }
            u -= p;
        }
        probs[n - 1].0
    }
}

/// What [`generate`] returns.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The new tokens, the stop token included when one ended the generation.
    pub tokens: Vec<u32>,
    /// Logits at the last prompt position, over the whole vocabulary.
    pub last_logits: Vec<f32>,
    /// Seconds spent on the prompt (one forward over all of it).
    pub prompt_seconds: f64,
    /// Seconds spent generating after the first new token.
    pub decode_seconds: f64,
}

impl Generation {
    /// Generated tokens per second after the prompt, counting the tokens each decode step made.
    pub fn tokens_per_second(&self) -> f64 {
        let steps = self.tokens.len().saturating_sub(1) as f64;
        if self.decode_seconds > 0.0 {
            steps / self.decode_seconds
        } else {
            0.0
        }
    }
}

/// Continues `prompt` with up to `max_tokens` tokens, stopping after any of `stop`. The prompt
/// runs once through the model filling one KV cache per layer; each further token is one
/// forward of a single position against the cache.
pub fn generate(model: &Llama, prompt: &[u32], max_tokens: usize, sampling: &Sampling, stop: &[u32], device: &Device) -> crate::Result<Generation> {
    sampling.validate()?;
    let cfg = model.config();
    if prompt.is_empty() {
        return Err(crate::Error::InvalidInput { op: "generate", reason: "the prompt has no tokens".into() });
    }
    if let Some(bad) = prompt.iter().find(|&&t| t as usize >= cfg.vocab_size) {
        return Err(crate::Error::InvalidInput { op: "generate", reason: format!("token id {bad} is outside the vocabulary of {}", cfg.vocab_size) });
    }
    if prompt.len() + max_tokens > cfg.max_position_embeddings {
        return Err(crate::Error::InvalidInput {
            op: "generate",
            reason: format!("{} prompt tokens + {max_tokens} new ones exceed the context of {}", prompt.len(), cfg.max_position_embeddings),
        });
    }
    let mut caches = vec![KvCache::new(); cfg.num_hidden_layers];
    let mut rng = crate::init::rng_for(sampling.seed, "generate");
    let last = |logits: &Tensor| -> crate::Result<Vec<f32>> {
        let s = logits.dim(1)?;
        Ok(logits.narrow(1, s - 1, 1)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    };
    let t0 = Instant::now();
    let ids = Tensor::new(prompt, device)?.unsqueeze(0)?;
    let last_logits = last(&model.forward_with(&ids, Some(&mut caches))?)?;
    let prompt_seconds = t0.elapsed().as_secs_f64();
    let mut tokens = Vec::new();
    let mut logits = last_logits.clone();
    let t1 = Instant::now();
    while tokens.len() < max_tokens {
        let next = sampling.pick(&logits, &mut rng);
        tokens.push(next);
        if stop.contains(&next) || tokens.len() == max_tokens {
            break;
        }
        let step = Tensor::new(&[next], device)?.unsqueeze(0)?;
        logits = last(&model.forward_with(&step, Some(&mut caches))?)?;
    }
    Ok(Generation { tokens, last_logits, prompt_seconds, decode_seconds: t1.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = crate::init::rng_for(0, "t");
        assert_eq!(Sampling::default().pick(&[0.1, 3.0, -1.0, 3.0], &mut rng), 1);
    }

    #[test]
    fn nucleus_sampling_draws_only_from_the_top_mass() {
        // Probabilities ≈ (0.665, 0.245, 0.090): top_p 0.6 keeps only token 0, 0.8 keeps two.
        let logits = [2.0f32, 1.0, 0.0];
        let mut rng = crate::init::rng_for(1, "t");
        let s = Sampling { temperature: 1.0, top_p: 0.6, top_k: 0, seed: 1 };
        assert!((0..200).all(|_| s.pick(&logits, &mut rng) == 0));
        let s = Sampling { top_p: 0.8, ..s };
        let draws: Vec<u32> = (0..2000).map(|_| s.pick(&logits, &mut rng)).collect();
        assert!(!draws.contains(&2));
        let ones = draws.iter().filter(|&&t| t == 1).count() as f64 / 2000.0;
        // Renormalised over the two kept tokens, token 1 has 0.245 / 0.910 ≈ 0.269.
        assert!((ones - 0.269).abs() < 0.04, "{ones}");
        // top_k 2 drops token 2 whatever top_p says; top_k 1 is greedy.
        let s = Sampling { top_p: 1.0, top_k: 2, ..s };
        let draws: Vec<u32> = (0..2000).map(|_| s.pick(&logits, &mut rng)).collect();
        assert!(!draws.contains(&2) && draws.contains(&1));
        let s = Sampling { top_k: 1, ..s };
        assert!((0..200).all(|_| s.pick(&logits, &mut rng) == 0));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Sampling { temperature: -1.0, ..Sampling::default() }.validate().is_err());
        assert!(Sampling { top_p: 0.0, ..Sampling::default() }.validate().is_err());
        assert!(Sampling { top_p: 1.5, ..Sampling::default() }.validate().is_err());
        assert!(Sampling::default().validate().is_ok());
    }
}

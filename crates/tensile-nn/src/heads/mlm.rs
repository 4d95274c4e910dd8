//! Masked-language-model heads: `BertForMaskedLM` and `ModernBertForMaskedLM`, an encoder
//! whose output goes through a transform (dense, activation, LayerNorm) and a decoder tied to
//! the word embeddings, plus a per-token bias.

use super::Encoder;
use crate::activation::Activation;
use crate::bert::{Bert, BertConfig};
use crate::block::{bytes_of, to_f64_cpu, Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::layer_norm::LayerNorm;
use crate::linear::Linear;
use crate::modernbert::{ModernBert, ModernBertConfig};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// An encoder with its masked-LM head, loading and naming weights as transformers does.
///
/// BERT: `cls.predictions.transform.dense`, `cls.predictions.transform.LayerNorm`,
/// `cls.predictions.bias`. ModernBERT: `head.dense`, `head.norm`, `decoder.bias`. In both
/// the decoder matrix is the word-embedding table (transformers ties them and saves it once).
///
/// # Shapes
/// `input_ids, attention_mask: (batch, seq) → logits: (batch, seq, vocab)`
#[derive(Debug, Clone)]
pub struct MaskedLm {
    encoder: Encoder,
    dense: Linear,
    activation: Activation,
    norm: LayerNorm,
    /// The word-embedding table, `(vocab, hidden)`: the same tensor as the encoder's.
    decoder: Tensor,
    bias: Tensor,
}

impl MaskedLm {
    /// `BertForMaskedLM` from the checkpoint's root.
    pub fn bert(cfg: &BertConfig, vb: VarBuilder) -> crate::Result<Self> {
        let h = cfg.hidden_size;
        let encoder = Encoder::Bert(Bert::new(cfg, false, vb.pp("bert"))?);
        let p = vb.pp("cls").pp("predictions");
        Ok(Self {
            encoder,
            dense: Linear::new(h, h, true, p.pp("transform").pp("dense"))?,
            activation: cfg.hidden_act,
            norm: LayerNorm::new(h, cfg.layer_norm_eps, true, p.pp("transform").pp("LayerNorm"))?,
            decoder: vb.get((cfg.vocab_size, h), "bert.embeddings.word_embeddings.weight")?,
            bias: p.get(cfg.vocab_size, "bias")?,
        })
    }

    /// `ModernBertForMaskedLM` from the checkpoint's root.
    pub fn modernbert(cfg: &ModernBertConfig, vb: VarBuilder) -> crate::Result<Self> {
        let h = cfg.hidden_size;
        let encoder = Encoder::ModernBert(ModernBert::new(cfg, vb.pp("model"))?);
        let head = vb.pp("head");
        Ok(Self {
            encoder,
            dense: Linear::new(h, h, cfg.classifier_bias, head.pp("dense"))?,
            activation: cfg.classifier_activation,
            norm: LayerNorm::new(h, cfg.norm_eps, cfg.norm_bias, head.pp("norm"))?,
            decoder: vb.get((cfg.vocab_size, h), "model.embeddings.tok_embeddings.weight")?,
            bias: vb.pp("decoder").get(cfg.vocab_size, "bias")?,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Transformers' class name.
    pub fn architecture(&self) -> &'static str {
        match self.encoder {
            Encoder::Bert(_) => "BertForMaskedLM",
            Encoder::ModernBert(_) => "ModernBertForMaskedLM",
        }
    }

    /// The vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bias.elem_count()
    }

    fn bias_name(&self) -> &'static str {
        match self.encoder {
            Encoder::Bert(_) => "cls.predictions.bias",
            Encoder::ModernBert(_) => "decoder.bias",
        }
    }

    fn dense_prefix(&self) -> (&'static str, &'static str) {
        match self.encoder {
            Encoder::Bert(_) => ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm"),
            Encoder::ModernBert(_) => ("head.dense", "head.norm"),
        }
    }

    /// Logits over the vocabulary at every position, with an optional padding mask
    /// `(batch, seq)` (1 = token): `norm(act(dense(h))) Eᵀ + bias`.
    pub fn forward_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.encoder.forward_with(ids, mask)?;
        let t = self.norm.forward(&self.activation.forward(&self.dense.forward(&h)?)?)?;
        crate::linear::matmul_t(&t, &self.decoder, Some(&self.bias)) // (batch, seq, vocab)
    }

    /// Float64 twin of [`MaskedLm::forward_with`].
    pub fn forward_reference_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.encoder.forward_reference_with(ids, mask)?;
        let t = self.norm.forward_reference(&self.activation.forward_reference(&self.dense.forward_reference(&h)?)?)?;
        t.broadcast_matmul(&to_f64_cpu(&self.decoder)?.t()?)?.broadcast_add(&to_f64_cpu(&self.bias)?)
    }
}

impl Module for MaskedLm {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_with(ids, None)
    }
}

impl Block for MaskedLm {
    fn kind(&self) -> BlockKind {
        BlockKind::MaskedLm
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.encoder.block().dims()
    }

    /// The decoder bias; the decoder matrix is the encoder's embedding table, listed there.
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![(self.bias_name().to_string(), self.bias.clone())]
    }

    fn children(&self) -> Vec<Child<'_>> {
        let (dense, norm) = self.dense_prefix();
        vec![Child::module(self.encoder.prefix(), self.encoder.block()), Child::part(dense, &self.dense), Child::part(norm, &self.norm)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(match &self.encoder {
            Encoder::Bert(m) => MaskedLm::bert(m.config(), vb)?,
            Encoder::ModernBert(m) => MaskedLm::modernbert(m.config(), vb)?,
        }))
    }

    fn input_kind(&self) -> InputKind {
        self.encoder.block().input_kind()
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let (h, v) = self.decoder.dims2().unwrap_or((1, 1));
        let n = (shape[0] * shape[1]) as f64;
        let hidden = [shape[0], shape[1], v];
        let decoder = Cost { flops: 2.0 * n * (h * v) as f64, bytes: bytes_of(n * h as f64 + (h * v) as f64, self.decoder.dtype()) };
        self.encoder.block().cost(shape) + self.dense.cost(&hidden) + self.norm.cost(&hidden) + decoder
    }

    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(ids, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::SeededInit;
    use candle_core::{DType, Device};

    fn bert_cfg() -> BertConfig {
        BertConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 32,
            max_position_embeddings: 16,
            ..BertConfig::default()
        }
    }

    fn modernbert_cfg() -> ModernBertConfig {
        ModernBertConfig {
            vocab_size: 50,
            hidden_size: 16,
            intermediate_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            max_position_embeddings: 16,
            pad_token_id: 0,
            cls_token_id: 1,
            sep_token_id: 2,
            ..ModernBertConfig::default()
        }
    }

    #[test]
    fn both_heads_match_their_twin_and_tie_the_decoder_to_the_embeddings() {
        let vb = || SeededInit::var_builder(3, DType::F32, &Device::Cpu);
        let ids = crate::init::random_ids(1, "ids", (2, 7), 50, &Device::Cpu).unwrap();
        for (m, bias, first) in [
            (MaskedLm::bert(&bert_cfg(), vb()).unwrap(), "cls.predictions.bias", "bert.embeddings.word_embeddings.weight"),
            (MaskedLm::modernbert(&modernbert_cfg(), vb()).unwrap(), "decoder.bias", "model.embeddings.tok_embeddings.weight"),
        ] {
            let fast = m.forward(&ids).unwrap();
            assert_eq!(fast.dims(), &[2, 7, 50]);
            let twin = m.forward_reference(&ids).unwrap();
            let d = (fast.to_dtype(DType::F64).unwrap() - twin).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(d < 1e-4, "{}: {d}", m.architecture());
            let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names[0], bias);
            assert!(names.contains(&first.to_string()));
            assert_eq!(
                names.iter().filter(|n| n.contains("embeddings.word_embeddings.weight") || n.contains("tok_embeddings")).count(),
                1,
                "tied, listed once"
            );
            assert_eq!(m.vocab_size(), 50);
            assert_eq!(m.kind(), BlockKind::MaskedLm);
            assert!(m.cost(&[2, 7]).flops > 2.0 * 14.0 * 16.0 * 50.0);
            let again = m.rebuild(vb()).unwrap();
            assert_eq!(again.parameters().len(), m.parameters().len());
        }
    }
}

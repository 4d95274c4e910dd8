//! Weight quantization: int8 per channel, int4 per group, and GGUF's block formats, applied
//! to any linear layer of the library ([`quantize_linears`]).
//!
//! A quantized linear layer keeps its weight packed and multiplies with it directly (GGUF
//! formats, through candle's quantized kernels) or after dequantizing it to f32 (int8, int4).
//! Its reference twin computes in float64 with the dequantized weight, so the correctness
//! check measures the kernel; comparing with the f32 original measures the quantization.

mod format;
mod int;
mod weight;

pub use format::QuantFormat;
pub use int::IntMatrix;
pub use weight::QuantizedWeight;

use crate::block::Block;
use crate::linear::linears;

/// Quantizes, in place, every linear layer of `block` whose path `select` accepts (the paths
/// of [`crate::linears`], e.g. `model.layers.0.mlp.up_proj`), and returns the paths
/// quantized. Clones of the block share its layers and see the change.
pub fn quantize_linears(block: &dyn Block, format: QuantFormat, select: impl Fn(&str) -> bool) -> crate::Result<Vec<String>> {
    let mut done = Vec::new();
    for (path, l) in linears(block) {
        if select(&path) {
            l.quantize(format).map_err(|e| crate::Error::Quant(format!("`{path}`: {e}")))?;
            done.push(path);
        }
    }
    Ok(done)
}

//! The documented accuracy of every quantization format (docs/quantization.md), measured with
//! the comparison code the correctness check uses: on a standard normal `(256, 1024)` weight
//! and standard normal activations, the relative Frobenius error of the round trip and the
//! Pearson correlation of the quantized matmul's output with the f32 one; and the same
//! matmul with bf16 activations (mixed precision).

use candle_core::{DType, Device, Tensor};
use tensile::metrics::compare;
use tensile_nn::init::randn;
use tensile_nn::quant::{QuantFormat, QuantizedWeight};

fn frobenius(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt()
}

fn case(dev: &Device) {
    let w = randn(0, "w", (256, 1024), DType::F32, dev).unwrap();
    let x = randn(1, "x", (2, 32, 1024), DType::F32, dev).unwrap();
    let exact = x.broadcast_matmul(&w.t().unwrap()).unwrap();
    for format in QuantFormat::DOCUMENTED {
        let q = QuantizedWeight::quantize(&w, format).unwrap();
        let back = q.dequantize().unwrap();
        let rel = frobenius(&(&back - &w).unwrap()) / frobenius(&w);
        let out = q.forward(&x).unwrap();
        let c = compare(&out, &exact).unwrap();
        let mixed = q.forward(&x.to_dtype(DType::BF16).unwrap()).unwrap();
        assert_eq!(mixed.dtype(), DType::BF16, "{format}: bf16 activations come back in bf16");
        let cm = compare(&mixed, &exact).unwrap();
        let bits = 8.0 * q.storage_bytes() as f64 / (256.0 * 1024.0);
        println!("{format:>14}: rel {rel:.5}  pcc {:.6}  bf16 pcc {:.6}  bits/weight {bits:.3}", c.pcc, cm.pcc);
        assert!(rel <= format.max_relative_error(), "{format}: relative error {rel} above {}", format.max_relative_error());
        assert!(c.pcc >= format.min_pcc(), "{format}: pcc {} below {}", c.pcc, format.min_pcc());
        assert!(cm.pcc >= format.min_pcc(), "{format} with bf16 activations: pcc {} below {}", cm.pcc, format.min_pcc());
        assert!((bits - format.bits_per_weight(1024)).abs() < 1e-9, "{format}: {bits} bits stored per weight");
        // A format is no better than its bits allow: the error is not zero.
        assert!(rel > 1e-4, "{format}: suspiciously exact ({rel})");
    }
}

#[test]
fn every_format_meets_its_documented_bounds_cpu() {
    case(&Device::Cpu);
}

#[cfg(feature = "cuda")]
#[test]
fn every_format_meets_its_documented_bounds_cuda() {
    match Device::new_cuda(0) {
        Ok(dev) => case(&dev),
        Err(e) => println!("skipped: no CUDA device ({e})"),
    }
}

#[test]
fn a_row_width_the_blocks_do_not_divide_is_refused_with_the_block_named() {
    let w = randn(0, "w", (4, 48), DType::F32, &Device::Cpu).unwrap();
    let err = QuantizedWeight::quantize(&w, "q4_k".parse().unwrap()).unwrap_err().to_string();
    assert!(err.contains("multiple of 256, got 48"), "{err}");
    assert!(QuantizedWeight::quantize(&w, "int4-g32".parse().unwrap()).unwrap_err().to_string().contains("multiple of 32"));
    assert!(QuantizedWeight::quantize(&w, QuantFormat::Int8).is_ok());
}

//! Planted faults in this crate's own CPU kernels, so that a test can show tensile's checks
//! catch a broken kernel (a wrong boundary, a wrong normaliser, a backward missing a term).
//!
//! Only with the `fault-injection` feature, which tensile's tests enable (a dev-dependency):
//! without it [`is`] is a constant `false` and every kernel compiles as if this module did
//! not exist. With it, a kernel reads one atomic per call, and no fault is ever active until a
//! test plants one.

/// A fault a kernel can be told to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// No fault: every kernel computes what it should.
    None = 0,
    /// RMSNorm divides the sum of squares by `width − 1` instead of `width`.
    RmsNormDivisor = 2,
    /// GELU's backward leaves out the `x·φ(x)` term.
    GeluBackward = 3,
    /// SwiGLU's gate backward leaves out the `a·(1 − σ(a))` term of `∂/∂a`.
    SiluMulBackward = 4,
    /// The linear kernel leaves the last output feature of every row at zero.
    LinearLastFeature = 5,
    /// The fused LayerNorm forgets to subtract the mean.
    LayerNormMean = 6,
    /// The tiled attention lets the last query of every tile see one key past its band.
    AttentionTileBoundary = 7,
}

#[cfg(feature = "fault-injection")]
static PLANTED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Makes every kernel of this process commit `fault` from now on (`Fault::None` heals them).
#[cfg(feature = "fault-injection")]
pub fn plant(fault: Fault) {
    PLANTED.store(fault as u8, std::sync::atomic::Ordering::SeqCst);
}

/// Whether `fault` is planted.
#[cfg(feature = "fault-injection")]
#[inline]
pub(crate) fn is(fault: Fault) -> bool {
    PLANTED.load(std::sync::atomic::Ordering::Relaxed) == fault as u8
}

/// Whether `fault` is planted: never, without the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn is(_fault: Fault) -> bool {
    false
}

//! The checks. Each takes a [`Ctx`] and returns a [`CheckOutcome`]; an `Err` or a panic is
//! turned into a failed outcome by the runner.

mod batch_invariance;
mod correctness;
mod determinism;
mod dtype_parity;
mod gradients;
mod memory;
mod performance;
mod scaling;
mod serial;

pub use gradients::gradient_check;
pub use memory::peak_bytes;
pub use performance::{measure, Timings};

use crate::error::Result;
use crate::event::CheckOutcome;
use crate::module::{InputKind, ModuleUnderTest};
use crate::plan::Case;
use crate::spec::Check;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Everything a check may use.
pub struct Ctx<'a> {
    /// The case.
    pub case: &'a Case,
    /// The module in the case's dtype on the case's device.
    pub module: &'a Arc<dyn ModuleUnderTest>,
    /// The case's device.
    pub device: &'a Device,
    /// The seeded input, in the case's dtype on the case's device.
    pub input: &'a Tensor,
}

/// A seeded input for `module` of `shape`: standard-normal activations or token ids.
pub fn make_input(module: &dyn ModuleUnderTest, shape: &[usize], dtype: DType, device: &Device, seed: u64) -> Result<Tensor> {
    Ok(match module.input_kind() {
        InputKind::Hidden => tensile_nn::init::randn(seed, "input", shape, dtype, device)?,
        InputKind::TokenIds { vocab } => tensile_nn::init::random_ids(seed, "input", shape, vocab, device)?,
    })
}

/// Runs `check` on `ctx`.
pub fn run(check: Check, ctx: &Ctx) -> Result<CheckOutcome> {
    match check {
        Check::Correctness => correctness::run(ctx),
        Check::Gradients => gradients::run(ctx),
        Check::Determinism => determinism::run(ctx),
        Check::BatchInvariance => batch_invariance::run(ctx),
        Check::DtypeParity => dtype_parity::run(ctx),
        Check::Performance => performance::run(ctx),
        Check::Memory => memory::run(ctx),
        Check::Scaling => scaling::run(ctx),
    }
}

/// Blocks until queued work on `device` is done, so timings cover the computation.
pub fn synchronize(device: &Device) -> Result<()> {
    Ok(device.synchronize()?)
}

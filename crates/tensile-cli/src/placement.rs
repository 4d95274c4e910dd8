//! `--device` and `--dtype`, shared by the commands that load a model directory.

use anyhow::Result;
use clap::Args;

/// Where the model runs and in which dtype its parameters are loaded.
#[derive(Args)]
pub struct Placement {
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Dtype of the model: f32, bf16, f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

impl Placement {
    /// The parsed device and dtype; a bad value is a usage error naming it.
    pub fn resolve(&self) -> Result<(candle_core::Device, candle_core::DType)> {
        Ok((tensile::device::parse_device(&self.device)?, tensile::device::parse_dtype(&self.dtype)?))
    }
}

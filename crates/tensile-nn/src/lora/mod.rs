//! LoRA adapters (PEFT-compatible) on any linear layer of the library.
//!
//! An adapter adds a low-rank update to a frozen linear layer, `y = x Wᵀ + b + s · (x Aᵀ) Bᵀ`
//! with `A: (r, in)`, `B: (out, r)` and `s = alpha / r` (or `alpha / √r` with rsLoRA).
//! [`LoraModel`] attaches named adapters to the layers a [`LoraConfig`] targets, switches,
//! combines, merges and trains them, and reads and writes PEFT's adapter directories.

mod config;
mod model;
mod peft;
mod slot;

pub use config::{LoraConfig, TargetModules};
pub(crate) use model::attach_from_vb as attach;
pub use model::{Detached, LoraModel};
pub use peft::read_adapter_config;
pub use slot::{LoraSlot, LoraWeights};

/// Whether a parameter name is a LoRA adapter's (`lora_A.{adapter}.weight`, at the root or
/// behind a module path): what a checkpoint leaves out and the memory check counts apart.
pub fn is_adapter_parameter(name: &str) -> bool {
    ["lora_A.", "lora_B."].iter().any(|k| name.starts_with(k) || name.contains(&format!(".{k}")))
}

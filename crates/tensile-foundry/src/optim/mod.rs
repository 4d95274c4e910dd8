//! Optimisation: AdamW with serialisable state, learning-rate schedules and gradient
//! clipping, each checked against closed forms or a float64 reference.

mod adamw;
mod clip;
mod grads;
mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_to_norm, global_norm};
pub use grads::{GradSource, Grads};
pub use schedule::{Decay, Schedule};

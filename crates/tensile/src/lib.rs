//! tensile: declare how each module instance of a transformer must behave, and prove it.
//!
//! This crate holds the comparison machinery every check is built on: [`metrics`] (max abs/rel
//! error, PCC, cosine, ULPs, with defined edge cases), [`Tolerance`] with per-dtype defaults,
//! and [`golden`] reference case files produced from Hugging Face transformers.
//!
//! ```
//! use candle_core::DType;
//! use tensile::{metrics::compare_slices, Tolerance};
//!
//! let cmp = compare_slices(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.5], DType::F32);
//! assert_eq!(cmp.max_abs, 0.5);
//! assert!((cmp.max_rel - 0.5 / 3.5).abs() < 1e-12);
//! let tol = Tolerance::for_dtype(DType::F32);
//! assert_eq!(tol.first_violation(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.5]), Some(2));
//! ```
#![deny(missing_docs)]

pub mod admission;
pub mod alloc;
pub mod atomic;
pub mod baseline;
pub mod bench;
pub mod checkpoint;
pub mod checks;
pub mod coverage;
pub mod device;
pub mod device_memory;
mod error;
pub mod event;
pub mod exit;
pub mod golden;
pub mod guard;
pub mod harness;
pub mod health;
pub mod inline;
pub mod input;
pub mod interrupt;
pub mod isolate;
pub mod keys;
pub mod layer_path;
pub mod lazy;
pub mod merge;
pub mod metrics;
pub mod module;
pub mod outputs;
pub mod plan;
pub mod presets;
pub mod registry;
pub mod report;
pub mod report_file;
pub mod runner;
pub mod shard;
pub mod spec;
pub mod specfile;
pub mod stats;
pub mod suite;
pub mod tags;
mod tolerance;
mod toml_fields;
pub mod validate;

pub use error::{Error, Result};
pub use event::{CheckOutcome, Event, Reporter};
#[doc(hidden)]
pub use inventory;
pub use module::{CustomModule, ModuleUnderTest, NnModule};
pub use plan::{Plan, Settings};
pub use registry::discover;
pub use spec::{latency_ms, memory_mb, Check, IntoDims, ModuleTest, Scaling, Spec, Targets};
pub use suite::{NamedModules, Suite};
pub use tensile_derive::{model_tests, Testable};
pub use tolerance::{Tolerance, ToleranceOverride};

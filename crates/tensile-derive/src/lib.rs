//! Procedural macros for tensile.
//!
//! This crate will hold `#[derive(Testable)]` and `#[tensile::model_tests]`, the declarative
//! front-ends that lower a model's module specs into tensile's spec IR. It is part of the
//! workspace from the start so the crate layout matches the architecture; the macros arrive
//! with the front-ends.
#![deny(missing_docs)]

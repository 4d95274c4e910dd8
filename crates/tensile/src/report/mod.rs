//! Reporters: render events for people (console) and machines (JSON). They never compute
//! results: everything they show arrives in an [`crate::Event`].

mod console;
mod json;

pub use console::ConsoleReporter;
pub use json::{JsonReporter, SCHEMA_VERSION};

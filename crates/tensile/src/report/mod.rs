//! Reporters: render events for people (console, HTML, Markdown) and machines (JSON, JUnit).
//! They never compute results: everything they show arrives in an [`crate::Event`]. Text that
//! came from outside (names, messages, paths) is shown through [`escape`], so no control or
//! bidirectional character reaches a terminal, a page or a CI log raw; the JSON report keeps
//! the text exact, since JSON's own escapes already keep control characters inert.

mod axis;
mod console;
pub mod coverage;
pub mod escape;
mod events;
mod figures;
mod html;
mod json;
mod junit;
mod layer_plot;
mod markdown;
mod record;
mod svg;
mod text;

pub use console::ConsoleReporter;
pub use events::EventLog;
pub use html::{Html, HtmlReporter};
pub use json::{Json, JsonReporter, SCHEMA_VERSION};
pub use junit::{Junit, JunitReporter};
pub use markdown::{Markdown, MarkdownReporter};
pub use record::{FileReporter, Format, RunRecord};

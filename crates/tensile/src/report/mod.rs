//! Reporters: render events for people (console, HTML, Markdown) and machines (JSON, JUnit).
//! They never compute results: everything they show arrives in an [`crate::Event`].

mod axis;
mod console;
pub mod coverage;
mod events;
mod figures;
mod html;
mod json;
mod junit;
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

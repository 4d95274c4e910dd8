//! A run whose module kind and error message carry terminal escapes, a bell, a NUL and a
//! right-to-left override: every human-facing report shows them as `\u{..}` escapes and
//! carries none of them raw, and the JUnit report stays well-formed XML.

use candle_core::{Module, Tensor};
use quick_xml::events::Event as Xml;
use quick_xml::Reader;
use std::sync::Arc;
use tensile::event::Reporter;

mod fixture;
use fixture::Shared;
use tensile::report::escape::is_bidi_control;
use tensile::report::{ConsoleReporter, HtmlReporter, JunitReporter, MarkdownReporter};
use tensile::spec::Spec;
use tensile::{Check, CustomModule, ModuleTest, ModuleUnderTest, Plan, Settings};

/// Clears the screen, sets the window title, rings, cuts a C string and reverses what follows.
const HOSTILE: &str = "bad \u{1b}[2J\u{1b}]0;pwned\u{7} nul\u{0} rtl\u{202e}gnp.exe";

/// A module whose forward fails with [`HOSTILE`] as its message.
struct Hostile;

impl Module for Hostile {
    fn forward(&self, _: &Tensor) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(HOSTILE.to_string()))
    }
}

/// Characters a reader must never get raw: controls other than newline and tab, and bidi
/// controls.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|&c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c)).collect()
}

#[test]
fn hostile_messages_reach_no_report_raw() {
    let module: Arc<dyn ModuleUnderTest> = Arc::new(CustomModule::new("kind\u{1b}[31m", Hostile));
    let spec = Spec { input_shape: Some(vec![1, 2, 4]), checks: vec![Check::Correctness], ..Spec::default() };
    let plan = Plan::new(&[ModuleTest { name: "hostile".into(), module, spec }], &Settings::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let console_out = Shared::default();
    let mut console = ConsoleReporter::new(Box::new(console_out.clone())).with_timings(false);
    let mut markdown = MarkdownReporter::new(dir.path().join("r.md"));
    let mut html = HtmlReporter::new(dir.path().join("r.html"));
    let mut junit = JunitReporter::new(dir.path().join("r.xml"));
    let summary = tensile::runner::run(&plan, &mut [&mut console, &mut markdown, &mut html, &mut junit]);
    assert!(summary.cases[0].checks[0].outcome.errors.iter().any(|e| e.contains(HOSTILE)), "the check keeps the message as it is");
    for r in [&mut console as &mut dyn Reporter, &mut markdown, &mut html, &mut junit] {
        r.finish().unwrap();
    }

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let console_text = String::from_utf8(console_out.0.lock().unwrap().clone()).unwrap();
    for (format, text) in [("console", console_text), ("markdown", read("r.md")), ("html", read("r.html")), ("junit", read("r.xml"))] {
        assert_eq!(raw_controls(&text), Vec::<char>::new(), "{format} carries raw control characters:\n{text}");
        for shown in ["\\u{1b}[2J\\u{1b}]0;pwned\\u{7} nul\\u{0} rtl\\u{202e}gnp.exe", "kind\\u{1b}[31m"] {
            assert!(text.contains(shown), "{format} does not show `{shown}`:\n{text}");
        }
    }

    let xml = read("r.xml");
    let mut reader = Reader::from_str(&xml);
    reader.config_mut().check_end_names = true;
    loop {
        match reader.read_event() {
            Ok(Xml::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("malformed JUnit XML at {}: {e}\n{xml}", reader.buffer_position()),
        }
    }
}

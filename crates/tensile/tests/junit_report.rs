//! The JUnit report: valid against the JUnit schema (`tests/junit/junit.xsd`, checked with
//! `xmllint` when it is installed), one testcase per check, failures that carry the metrics
//! and the target, and escaping that survives any name or message.

mod fixture;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event as Xml;
use quick_xml::{Reader, XmlVersion};
use std::collections::BTreeMap;
use std::process::Command;
use tensile::event::{CaseResult, Event, Totals};
use tensile::report::{Format, Junit, JunitReporter, RunRecord};
use tensile::Check;

const XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit/junit.xsd");

/// One parsed element: enough of a DOM to query the report.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, key: &str) -> &str {
        self.attrs.get(key).map_or_else(|| panic!("<{}> has no {key} attribute: {:?}", self.name, self.attrs), String::as_str)
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every descendant named `name`, in document order.
    fn all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.all(name, out);
        }
    }

    fn find_all(&self, name: &str) -> Vec<&Element> {
        let mut out = Vec::new();
        self.all(name, &mut out);
        out
    }
}

/// Parses a whole document into its root element, failing on anything malformed.
fn parse(xml: &str) -> Element {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = vec![Element::default()];
    let open = |e: &quick_xml::events::BytesStart| Element {
        name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), a.normalized_value(XmlVersion::Explicit1_0).expect("attribute value").into_owned())
            })
            .collect(),
        ..Element::default()
    };
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("malformed XML at {}: {e}", reader.buffer_position())) {
            Xml::Start(e) => stack.push(open(&e)),
            Xml::Empty(e) => {
                let el = open(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Xml::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Xml::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content().unwrap()),
            Xml::CData(t) => stack.last_mut().unwrap().text.push_str(&t.decode().unwrap()),
            Xml::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&r.decode().unwrap()).unwrap_or_else(|| panic!("unknown entity {r:?}")).to_string(),
                };
                stack.last_mut().unwrap().text.push_str(&resolved);
            }
            Xml::Eof => break,
            Xml::Decl(_) | Xml::Comment(_) | Xml::PI(_) | Xml::DocType(_) => {}
        }
    }
    let mut document = stack.pop().unwrap();
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.remove(0)
}

/// Validates `xml` against the JUnit schema: `None` when xmllint is not installed, else
/// whether it passed (with xmllint's complaint when not).
fn xmllint(xml: &str) -> Option<Result<(), String>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    match Command::new("xmllint").args(["--noout", "--schema", XSD]).arg(&file).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: xmllint not installed (tools/test.sh installs it)");
            None
        }
        Err(e) => panic!("cannot run xmllint: {e}"),
        Ok(out) if out.status.success() => Some(Ok(())),
        Ok(out) => Some(Err(String::from_utf8_lossy(&out.stderr).into_owned())),
    }
}

fn assert_valid(xml: &str) {
    if let Some(Err(why)) = xmllint(xml) {
        panic!("not valid against {XSD}:\n{why}\n{xml}");
    }
}

fn render(events: &[Event]) -> String {
    Junit::render(&RunRecord::from_events(events))
}

/// The events of a run of `cases` alone, with totals counted from them.
fn run_of(cases: Vec<CaseResult>) -> Vec<Event> {
    let checks: Vec<_> = cases.iter().flat_map(|c| c.checks.iter().map(|k| k.status())).collect();
    let count = |s: tensile::event::Status| checks.iter().filter(|c| **c == s).count();
    let flaky = count(tensile::event::Status::Flaky);
    let totals = Totals {
        cases: cases.len(),
        cases_passed: cases.iter().filter(|c| c.passed).count(),
        checks: checks.len(),
        checks_failed: count(tensile::event::Status::Failed) + flaky,
        checks_skipped: count(tensile::event::Status::Skipped),
        checks_flaky: flaky,
        interrupted: false,
    };
    let mut events = vec![Event::RunStarted {
        cases: cases.len(),
        checks: checks.len(),
        machine: fixture::machine(),
        devices: vec!["cpu".into()],
        coverage: Default::default(),
        plan: None,
        shard: None,
        commit: None,
        merged: Vec::new(),
    }];
    events.extend(cases.into_iter().map(Event::CaseFinished));
    events.push(Event::RunFinished { totals, elapsed_s: 0.25 });
    events
}

#[test]
fn junit_report_validates_against_the_schema() {
    let xml = fixture::written_by(JunitReporter::new, "junit.xml");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tensile\""), "{xml}");
    assert_valid(&xml);
    // A run without cases is still a valid (empty) report.
    assert_valid(&render(&run_of(Vec::new())));
}

#[test]
fn junit_report_has_one_testcase_per_check_and_failures_carry_targets() {
    let xml = render(&fixture::events());
    let root = parse(&xml);
    assert_eq!(root.name, "testsuites");
    let checks: usize = fixture::cases().iter().map(|c| c.checks.len()).sum();
    assert_eq!(root.find_all("testcase").len(), checks);
    for (key, want) in [("tests", "10"), ("failures", "3"), ("errors", "0"), ("skipped", "1"), ("time", "1.250")] {
        assert_eq!(root.attr(key), want, "testsuites {key}");
    }

    let suites = root.find_all("testsuite");
    assert_eq!(suites.len(), fixture::cases().len());
    let suite = |name: &str| *suites.iter().find(|s| s.attr("name") == name).unwrap_or_else(|| panic!("no testsuite {name}"));
    let case = |suite_name: &str, check: &str| {
        let s = suite(suite_name);
        s.find_all("testcase").into_iter().find(|t| t.attr("name") == check).unwrap_or_else(|| panic!("no testcase {check} in {suite_name}"))
    };

    // Each suite names its case and lists its identity as properties.
    let gpu = suite("tiny::decoder_layer [bf16/cuda:0]");
    assert_eq!((gpu.attr("tests"), gpu.attr("failures"), gpu.attr("skipped"), gpu.attr("time")), ("4", "1", "0", "2.000"));
    let props: BTreeMap<&str, &str> = gpu.find_all("property").iter().map(|p| (p.attr("name"), p.attr("value"))).collect();
    assert_eq!(
        props,
        BTreeMap::from([
            ("module", "llama.decoder_layer"),
            ("dtype", "bf16"),
            ("device", "cuda:0"),
            ("input_shape", "[2, 64, 256]"),
            ("tensile_version", "0.1.0")
        ])
    );

    // The GPU case misses its latency target and regresses against the baseline.
    let perf = case("tiny::decoder_layer [bf16/cuda:0]", "performance");
    assert_eq!(perf.attr("classname"), "tiny::decoder_layer.bf16_cuda:0");
    assert_eq!(perf.attr("time"), "0.500");
    let failure = perf.child("failure").expect("the performance check fails");
    assert_eq!(failure.attr("type"), "performance");
    assert_eq!(failure.attr("message"), "median 7.900 ms > target 5.000 ms");
    for want in [
        "median 7.900 ms > target 5.000 ms\n",
        "regression against baseline `main`: median 7.900 ms vs 7.000 ms",
        "median_ms = 7.9\n",
        "target_ms = 5\n",
        "target: median_ms = 7.9 ms against target_ms = 5 ms\n",
        "baseline: median_ms = 7.9 ms against baseline_median_ms = 7 ms, slowdown = +12.8% (95% CI +9.0% to +16.0%), regression_threshold = 5.0%\n",
    ] {
        assert!(failure.text.contains(want), "failure text lacks {want:?}:\n{}", failure.text);
    }

    // The flaky determinism check fails as flaky, with its failure rate.
    let flaky = case("tiny::mlp [f32/cpu]", "determinism").child("failure").expect("flaky is a failure");
    assert_eq!(flaky.attr("type"), "flaky");
    assert!(flaky.attr("message").starts_with("flaky: failed 2 of 5 runs"));
    assert!(flaky.text.contains("flaky: failed 2 of 5 runs (failure rate 40.0%, 95% CI 11.8% to 76.9%)"), "{}", flaky.text);

    // Non-finite metrics print as NaN and inf.
    let nan = case("tiny::mlp [f32/cpu]", "correctness").child("failure").expect("correctness fails");
    assert_eq!(nan.attr("type"), "correctness");
    for want in ["max_abs = NaN\n", "max_rel = inf\n", "pcc = NaN\n"] {
        assert!(nan.text.contains(want), "{want:?} missing:\n{}", nan.text);
    }

    // The skipped check is skipped with its reason, and nothing else.
    let skipped = case("tiny::attention [f32/cpu]", "memory");
    assert_eq!(skipped.child("skipped").map(|s| s.attr("message")), Some("memory counting needs the counting allocator"));
    assert!(skipped.child("failure").is_none());

    // Passing checks keep their metrics and notes in system-out, with no failure.
    let passing = case("tiny::attention [f32/cpu]", "performance");
    assert!(passing.child("failure").is_none() && passing.child("skipped").is_none());
    let out = &passing.child("system-out").expect("metrics of a passing check").text;
    assert!(out.contains("median_ms = 4.2\n") && out.contains("target_ms = 5\n"), "{out}");
    assert!(out.contains("note: GPU-class target (5 ms) measured on cpu"), "{out}");
    let tiny = &case("tiny::attention [f32/cpu]", "correctness").child("system-out").expect("metrics").text;
    assert!(tiny.contains("max_abs = 1.5e-6\n"), "{tiny}");

    // Every failing check, and only those, carries a failure.
    let failures: Vec<_> =
        root.find_all("testcase").into_iter().filter(|t| t.child("failure").is_some()).map(|t| (t.attr("classname"), t.attr("name"))).collect();
    assert_eq!(failures, [("tiny::mlp.f32_cpu", "correctness"), ("tiny::mlp.f32_cpu", "determinism"), ("tiny::decoder_layer.bf16_cuda:0", "performance")]);
}

#[test]
fn junit_escapes_names_and_messages() {
    let name = "a<b & \"c\"";
    let error = "x < y && 'z' > \"w\"\u{1}\u{1b}[0m\nsecond line ]]>";
    let kept = "x < y && 'z' > \"w\"\\u{1}\\u{1b}[0m\nsecond line ]]>";
    let mut check = fixture::result(Check::Correctness, &[("max_abs", f64::NEG_INFINITY)], &[error]);
    check.outcome.notes.push("tab\there\r\nand <![CDATA[ not cdata ]]>".into());
    let case = CaseResult { case: fixture::info(0, name, "llama.mlp", "f32", "cpu"), passed: false, checks: vec![check] };
    let xml = render(&run_of(vec![case]));
    assert!(!xml.contains('\u{1}') && !xml.contains('\u{1b}'), "control characters are written as escapes");
    assert_valid(&xml);

    let root = parse(&xml);
    let suite = &root.find_all("testsuite")[0];
    assert_eq!(suite.attr("name"), format!("{name} [f32/cpu]"));
    let testcase = &suite.find_all("testcase")[0];
    assert_eq!(testcase.attr("classname"), format!("{name}.f32_cpu"));
    let failure = testcase.child("failure").unwrap();
    // The newline inside the attribute survives as a character reference.
    assert_eq!(failure.attr("message"), kept);
    assert!(failure.text.starts_with(&format!("{kept}\n")), "{}", failure.text);
    assert!(failure.text.contains("max_abs = -inf\n"), "{}", failure.text);
    let out = &testcase.child("system-out").unwrap().text;
    assert_eq!(out, "note: tab\there\\u{d}\nand <![CDATA[ not cdata ]]>\n");
}

#[test]
fn junit_report_snapshot() {
    insta::assert_snapshot!(render(&fixture::events()));
}

#[test]
fn junit_schema_rejects_broken_documents() {
    let doc = |testcase: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"t\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"0.5\">\n  <testsuite name=\"s\" tests=\"1\">\n    {testcase}\n  </testsuite>\n</testsuites>\n"
        )
    };
    // The well-formed control shows that rejections come from the defects, not from a schema
    // that fails to load.
    let Some(control) = xmllint(&doc("<testcase name=\"c\" classname=\"k\" time=\"0.5\"><failure message=\"m\" type=\"t\">text</failure></testcase>")) else {
        return;
    };
    control.unwrap_or_else(|why| panic!("the control document must be valid: {why}"));
    for (defect, broken) in [
        ("testcase without name", doc("<testcase classname=\"k\" time=\"0.5\"/>")),
        ("time that is not a decimal", doc("<testcase name=\"c\" time=\"NaN\"/>")),
        ("time in scientific notation", doc("<testcase name=\"c\" time=\"1e-3\"/>")),
        ("skipped after failure", doc("<testcase name=\"c\"><failure message=\"m\"/><skipped/></testcase>")),
        ("unknown element", doc("<testcase name=\"c\"><verdict/></testcase>")),
        ("count that is not an integer", doc("<testcase name=\"c\"/>").replace("tests=\"1\">", "tests=\"one\">")),
        ("testsuite without name", doc("<testcase name=\"c\"/>").replace("<testsuite name=\"s\"", "<testsuite")),
    ] {
        match xmllint(&broken) {
            Some(Err(_)) => {}
            Some(Ok(())) => panic!("xmllint accepted a document with a {defect}:\n{broken}"),
            None => unreachable!("xmllint ran for the control document"),
        }
    }
}

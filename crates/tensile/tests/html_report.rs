//! The html report lays out the fixed run in one self-contained page: every case, status and
//! failure, the latency and scaling plots, escaped names, no network, and plots that a real
//! headless browser (Debian's chromium) draws.

mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tensile::report::{Format, Html, HtmlReporter, RunRecord};

fn record() -> RunRecord {
    RunRecord::from_events(&fixture::events())
}

fn page() -> String {
    Html::render(&record())
}

/// Checks that every element the report writes is closed in order (void elements, comments
/// and the script's body aside), so the page and its inline SVG are well nested.
fn assert_well_nested(html: &str) {
    const VOID: [&str; 3] = ["meta", "br", "!DOCTYPE"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap_or_else(|| panic!("unclosed tag near {:?}", &rest[..rest.len().min(80)]));
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(closing.trim()), "mismatched </{closing}>");
        } else if name == "script" {
            let close = rest.find("</script>").expect("script is closed");
            rest = &rest[close + "</script>".len()..];
        } else {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

#[test]
fn the_page_names_every_case_status_and_failure() {
    let html = page();
    assert!(html.starts_with("<!DOCTYPE html>\n") && html.ends_with("</html>\n"));
    for name in ["tiny::attention", "tiny::mlp", "tiny::decoder_layer"] {
        assert!(html.contains(name), "{name} missing");
    }
    assert!(html.contains("<p class=\"banner fail\">FAIL · 2 of 3 cases failed · 3 of 10 checks failed (1 flaky)</p>"));
    assert!(html.contains("<td class=\"st flaky\">flaky<span class=\"m\">differing_elements 3.00 · 2/5 runs failed</span></td>"));
    assert!(html.contains("<td class=\"st skipped\">skipped"));
    assert!(html.contains("regression against baseline `main`: median 7.900 ms vs 7.000 ms, +12.8%"));
    assert!(html.contains("slowdown +12.8% (95% CI +9.0% to +16.0%), regression threshold +5.0%"));
    assert!(html.contains("GPU-class target (5 ms) measured on cpu"));
    assert!(html.contains("memory counting needs the counting allocator"));
    assert_well_nested(&html);
}

#[test]
fn one_latency_plot_per_sampled_case_and_two_scaling_plots() {
    let html = page();
    assert_eq!(html.matches("class=\"plot\"").count(), 4);
    assert_eq!(html.matches("data-plot=\"latency\"").count(), 2);
    assert_eq!(html.matches("data-plot=\"scaling-time\"").count(), 1);
    assert_eq!(html.matches("data-plot=\"scaling-memory\"").count(), 1);
    assert_eq!(html.matches("role=\"img\"").count(), 4);
    assert!(html.contains("<body data-plots-total=\"4\" data-plots-rendered=\"0\">"));
    // Every sample is a dot: 20 + 6 in the latency plots, 4 + 4 points in the scaling plots.
    assert_eq!(html.matches("<circle class=\"mark\"").count(), 20 + 6 + 4 + 4);
}

#[test]
fn the_scaling_legend_shows_fitted_and_expected_exponents() {
    let html = page();
    assert!(html.contains("fitted seq^1.42 (95% CI 1.30–1.54)"));
    assert!(html.contains("expected seq^1.38 ± 0.30"));
    assert!(html.contains("<title>time against sequence length of tiny::attention</title>"));
    assert!(html.contains("(log scale)"));
}

#[test]
fn names_errors_and_notes_are_escaped() {
    let mut r = record();
    r.cases[0].case.name = "<script>alert(\"x\")</script>".to_string();
    r.cases[1].checks[0].outcome.errors.push("a < b & c > 'd'".to_string());
    r.cases[2].checks[1].outcome.notes.push("<img src=x>".to_string());
    let html = Html::render(&r);
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(html.contains("a &lt; b &amp; c &gt; &#39;d&#39;"));
    assert!(html.contains("&lt;img src=x&gt;"));
    assert_eq!(html.matches("<script").count(), 1, "only the report's own script");
    assert!(!html.contains("<img"));
    assert_well_nested(&html);
}

#[test]
fn the_page_reaches_for_no_network() {
    let html = page();
    for needle in ["http:", "https:", "src=", "href=", "@import", "url(http", "//cdn"] {
        assert!(!html.contains(needle), "found {needle}");
    }
}

#[test]
fn non_finite_metrics_print_as_nan_and_inf() {
    let html = page();
    assert!(html.contains("<td class=\"num bad\">NaN</td>"));
    assert!(html.contains("<td class=\"num bad\">inf</td>"));
    // PCC rounds down, so a near-perfect correlation never reads as exactly 1.
    assert!(html.contains("<td class=\"num\">0.999999</td>"));
    let mut r = record();
    let scaling = &mut r.cases[0].checks[3].outcome;
    scaling.metrics.insert(tensile::keys::Metric::Exponent, f64::NAN);
    scaling.series.insert(tensile::keys::Series::Ms, vec![f64::NAN, 0.0, f64::INFINITY, -1.0]);
    r.cases[2].checks[1].outcome.series.insert(tensile::keys::Series::SamplesMs, vec![f64::NAN]);
    let html = Html::render(&r);
    // The time plot and the GPU latency plot have nothing finite to draw, so they are left out.
    assert_eq!(html.matches("class=\"plot\"").count(), 2);
    assert!(html.contains("time ∝ seq^NaN"));
    assert_well_nested(&html);
}

#[test]
fn an_empty_record_renders_a_valid_page() {
    let html = Html::render(&RunRecord::default());
    assert!(html.contains("<p class=\"banner empty\">EMPTY · no cases ran</p>"));
    assert!(html.contains("<body data-plots-total=\"0\""));
    assert!(html.contains("no performance check kept its samples") && html.contains("no scaling sweep ran") && html.contains("no coverage recorded"));
    assert_well_nested(&html);
}

#[test]
fn the_coverage_section_lists_kinds_ranges_and_uncovered_modules() {
    let html = page();
    assert!(html.contains("<td>llama.attention</td>"));
    assert!(html.contains("<td>64–512 (4 values)</td>"));
    assert!(html.contains("<td>correctness, memory, performance, scaling</td>"));
    assert!(html.contains("1 preset modules of tiny-llama, tiny-bert without a spec"));
    assert!(html.contains("<td>tiny-bert.layer</td><td>bert.layer</td><td>hidden_size 128, num_attention_heads 4</td>"));
}

#[test]
fn the_reporter_writes_the_rendered_page() {
    assert_eq!(fixture::written_by(HtmlReporter::new, "report.html"), page());
    assert_eq!(page(), page(), "rendering is deterministic");
}

/// Runs chromium headless on `page` with `args`, stdout into `stdout`. A run that has not
/// finished after a minute is killed and tried once more with a fresh profile: on a loaded
/// 2-core machine chromium's start-up once stalled past the minute (while a coverage build, a
/// CI run and a mutation run shared the cores), which says nothing about the page. Two stalls
/// in a row fail the test.
fn chromium(bin: &Path, profile: &Path, page: &Path, args: &[String], stdout: &Path) {
    for attempt in 0..2 {
        let profile = profile.with_extension(attempt.to_string());
        let mut cmd = Command::new(bin);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]);
        cmd.args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=2000", "--timeout=10000"]);
        cmd.arg(format!("--user-data-dir={}", profile.display())).args(args).arg(format!("file://{}", page.display()));
        let mut child = cmd.stdout(std::fs::File::create(stdout).unwrap()).stderr(Stdio::null()).spawn().expect("chromium starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "chromium exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                eprintln!("chromium did not finish within a minute (attempt {})", attempt + 1);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("chromium did not finish within a minute, twice");
}

/// The value of `name="…"` in the first `<body` tag of `dom`.
fn body_attribute(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let start = body.find(&format!("{name}=\""))? + name.len() + 2;
    Some(body[start..start + body[start..].find('"')?].to_string())
}

#[test]
fn plots_render_in_headless_chromium() {
    let bin = std::env::var_os("TENSILE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !bin.exists() {
        println!("skipped: chromium not installed (tools/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page_path = dir.path().join("report.html");
    std::fs::write(&page_path, page()).unwrap();

    let dom_path = dir.path().join("dom.html");
    chromium(&bin, &dir.path().join("profile-dom"), &page_path, &["--dump-dom".to_string()], &dom_path);
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert_eq!(body_attribute(&dom, "data-plots-total").as_deref(), Some("4"), "{}", &dom[..dom.len().min(2000)]);
    assert_eq!(body_attribute(&dom, "data-plots-rendered").as_deref(), Some("4"), "the browser drew every plot");

    let shot = dir.path().join("report.png");
    let args = [format!("--screenshot={}", shot.display()), "--window-size=1280,2400".to_string()];
    chromium(&bin, &dir.path().join("profile-shot"), &page_path, &args, &dir.path().join("shot.log"));
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 20_000, "screenshot of {} bytes is too small to show the page", png.len());
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&target).unwrap();
    let kept = target.join("tensile-html-report.png");
    std::fs::copy(&shot, &kept).unwrap();
    std::fs::copy(&page_path, target.join("tensile-html-report.html")).unwrap();
    println!("screenshot: {}", kept.canonicalize().unwrap_or(kept).display());
}

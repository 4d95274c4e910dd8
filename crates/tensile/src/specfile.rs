//! TOML spec files: `[[test]]` tables lowered to the same spec IR as the builder.
//!
//! ```toml
//! [[test]]
//! name = "llama3_8b_attention"
//! module = "llama.attention"                      # a tensile-nn block kind
//! config = { hidden_size = 4096, num_attention_heads = 32, num_key_value_heads = 8 }
//! input_shape = [1, 2048, 4096]
//! dtype = "bf16"                                   # or a list
//! tolerance = 1e-3                                 # or { atol, rtol, min_pcc, min_cosine, atol_rms, min_snr_db }
//! expected_performance = { latency_ms = 5.0, memory_mb = 512 }
//! seq_lengths = [512, 1024, 2048]
//! expect_scaling = "quadratic"                     # constant | linear | quadratic | from_cost | { exponent, tolerance }
//! checks = ["correctness", "performance", "scaling"]
//! reference = "cases/attention.safetensors"        # optional, relative to this file
//! ```
//!
//! Every error names the file, line and column, and the field; nothing runs until the whole
//! file is valid.

use crate::device::parse_dtype;
use crate::error::{Error, Result};
use crate::lazy::LazyModule;
use crate::module::ModuleUnderTest;
use crate::plan::{Plan, Settings};
use crate::report::escape::{visible, visible_line};
use crate::spec::{Check, ModuleTest, Scaling, Spec, Target, Targets};
use crate::tolerance::Tolerance;
use crate::toml_fields::{array_of_tables, to_json, ConfigValue, ExponentEntry, OneOrMany, ScalingEntry, ToleranceEntry};
use candle_core::DType;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tensile_nn::BlockKind;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, deserialize_with = "array_of_tables")]
    test: Vec<Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Performance {
    latency_ms: Option<f64>,
    memory_mb: Option<f64>,
    margin: Option<f64>,
    #[serde(default)]
    gpu_class: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<String>,
    module: Spanned<String>,
    config: Option<Spanned<ConfigValue>>,
    input_shape: Option<Spanned<Vec<i64>>>,
    dtype: Option<Spanned<OneOrMany>>,
    device: Option<Spanned<OneOrMany>>,
    tolerance: Option<Spanned<ToleranceEntry>>,
    expected_performance: Option<Spanned<Performance>>,
    seq_lengths: Option<Spanned<Vec<i64>>>,
    expect_scaling: Option<Spanned<ScalingEntry>>,
    checks: Option<Spanned<Vec<String>>>,
    reference: Option<Spanned<String>>,
    seed: Option<u64>,
    flush_cache_mib: Option<u32>,
    tags: Option<Spanned<Vec<String>>>,
}

/// Turns byte offsets into `path:line:col` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    /// The error at `span`. The message is passed through [`visible`]: it quotes the file, and
    /// a control character in it must not reach the terminal that prints the error.
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let mut start = span.start.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let upto = &self.text[..start];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error::SpecFile { path: self.path.to_path_buf(), line, col, message: visible(&message.into()).into_owned() }
    }

    fn field<T>(&self, s: &Spanned<T>, field: &str, reason: impl std::fmt::Display) -> Error {
        self.err(s.span(), format!("field `{field}`: {reason}"))
    }
}

fn positive(loc: &Locator, s: &Spanned<Vec<i64>>, field: &str) -> Result<Vec<usize>> {
    s.get_ref().iter().map(|&d| if d > 0 { Ok(d as usize) } else { Err(loc.field(s, field, format!("dimension {d} must be positive"))) }).collect()
}

/// Reads a spec file into module tests. Nothing is allocated: each module's seeded weights are
/// built when its case runs ([`LazyModule`]).
pub fn load(path: &Path) -> Result<Vec<ModuleTest>> {
    let text = crate::input::read_to_string(path, crate::input::MAX_SPEC_BYTES)?;
    parse(&text, path)
}

/// Parses spec-file text; `path` names the file in errors and anchors relative references.
pub fn parse(text: &str, path: &Path) -> Result<Vec<ModuleTest>> {
    let loc = Locator { path, text };
    let toml_error = |e: toml::de::Error, field: String| {
        let message = e.message().trim();
        loc.err(e.span().unwrap_or(0..0), if field.is_empty() { message.to_string() } else { format!("field `{field}`: {message}") })
    };
    let document = toml::Deserializer::parse(text).map_err(|e| toml_error(e, String::new()))?;
    let file: File = serde_path_to_error::deserialize(document).map_err(|e| {
        let field = field_path(e.path());
        toml_error(e.into_inner(), field)
    })?;
    if file.test.is_empty() {
        return Err(loc.err(0..0, "no [[test]] entries"));
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut tests = Vec::new();
    for entry in file.test {
        let span = entry.span();
        let test = lower(&loc, &base, entry.into_inner())?;
        // Validate now, so plan errors also point into the file.
        if let Err(Error::Spec { field, reason, .. }) = Plan::new(std::slice::from_ref(&test), &Settings::default()) {
            return Err(loc.err(span, format!("test `{}`: field `{field}`: {reason}", visible_line(&test.name))));
        }
        if tests.iter().any(|t: &ModuleTest| t.name == test.name) {
            return Err(loc.err(span, format!("test `{}` is declared twice", test.name)));
        }
        tests.push(test);
    }
    Ok(tests)
}

/// The dotted name of the field a deserialization error is about, within its `[[test]]`
/// entry (`input_shape`, `tolerance.atol`): the line and column already say which entry and
/// which element. toml's span wrappers add private keys, which are left out.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } if !key.starts_with("$__") => Some(key.as_str()),
            // Sequence indices are left out (the column says which element); so are enum
            // variants, which the schema has none of: its enums deserialize themselves.
            _ => None,
        })
        .collect();
    match keys.as_slice() {
        ["test", rest @ ..] if !rest.is_empty() => rest.join("."),
        all => all.join("."),
    }
}

fn lower(loc: &Locator, base: &Path, e: Entry) -> Result<ModuleTest> {
    let kind: BlockKind = e.module.get_ref().parse().map_err(|err| loc.field(&e.module, "module", err))?;
    if !kind.buildable() {
        return Err(loc.field(&e.module, "module", tensile_nn::Error::NotBuildable { kind }));
    }
    let config = match &e.config {
        Some(c) if !matches!(c.get_ref(), ConfigValue::Table(_)) => return Err(loc.field(c, "config", "must be a table of config.json fields")),
        Some(c) => to_json(c, "config").map_err(|err| loc.err(err.span, format!("field `{}`: {}", err.path, err.reason)))?,
        None => serde_json::json!({}),
    };
    let seed = e.seed.unwrap_or(0);
    // No weights yet: the block is built for real, seeded, when its case runs.
    let block = LazyModule::from_config(kind, &config, seed).map_err(|err| match &e.config {
        Some(c) => loc.field(c, "config", err),
        None => loc.field(&e.module, "module", err),
    })?;
    let module: Arc<dyn ModuleUnderTest> = Arc::new(block);
    let mut spec = Spec::default();
    spec.name(e.name.get_ref().as_str()).seed(seed).flush_cache(e.flush_cache_mib.unwrap_or(0) as usize);
    if let Some(s) = &e.input_shape {
        spec.input_shape(positive(loc, s, "input_shape")?);
    }
    if let Some(d) = &e.dtype {
        let dtypes = d.get_ref().0.iter().map(|n| parse_dtype(n).map_err(|err| loc.field(d, "dtype", err))).collect::<Result<Vec<_>>>()?;
        spec.dtypes(dtypes);
    }
    if let Some(d) = e.device {
        spec.devices(d.into_inner().0);
    }
    if let Some(t) = &e.tolerance {
        spec.tolerance(match t.get_ref() {
            ToleranceEntry::Uniform(v) => Tolerance::from(*v),
            // Unset thresholds take the first dtype's defaults.
            ToleranceEntry::Full(o) => o.apply(Tolerance::for_dtype(spec.dtypes.first().copied().unwrap_or(DType::F32))),
        });
    }
    if let Some(p) = &e.expected_performance {
        let perf = p.get_ref();
        spec.expect(Targets {
            latency_ms: perf.latency_ms.map(Target::Fixed),
            memory_mb: perf.memory_mb.map(Target::Fixed),
            margin: perf.margin,
            gpu_class: perf.gpu_class,
        });
    }
    match (&e.seq_lengths, &e.expect_scaling) {
        (Some(s), _) => {
            spec.seq_lengths(positive(loc, s, "seq_lengths")?);
        }
        (None, Some(s)) => return Err(loc.field(s, "expect_scaling", "needs `seq_lengths`")),
        (None, None) => {}
    }
    if let Some(s) = &e.expect_scaling {
        spec.expect_scaling(match s.get_ref() {
            ScalingEntry::Named(n) => n.parse().map_err(|err| loc.field(s, "expect_scaling", err))?,
            ScalingEntry::Exponent(ExponentEntry { exponent, tolerance }) => {
                Scaling::Exponent { value: *exponent, tolerance: tolerance.unwrap_or(Scaling::DEFAULT_TOLERANCE) }
            }
        });
    }
    if let Some(c) = &e.checks {
        spec.checks(c.get_ref().iter().map(|n| n.parse::<Check>().map_err(|err| loc.field(c, "checks", err))).collect::<Result<Vec<_>>>()?);
    }
    if let Some(t) = &e.tags {
        if let Some(bad) = t.get_ref().iter().find(|x| !crate::tags::is_tag(x)) {
            return Err(loc.field(t, "tags", format!("`{bad}` is not a tag (letters, digits, `_`, `-` and `.`; not and/or/not)")));
        }
        spec.tags(t.get_ref().clone());
    }
    if let Some(r) = &e.reference {
        let p = PathBuf::from(r.get_ref());
        spec.reference_case(if p.is_absolute() { p } else { base.join(p) });
    }
    Ok(ModuleTest::new(None, "", module, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
[[test]]
name = "attention"
module = "llama.attention"
config = { hidden_size = 64, num_attention_heads = 4, num_key_value_heads = 2 }
input_shape = [1, 16, 64]
dtype = ["f32", "bf16"]
tolerance = 1e-3
expected_performance = { latency_ms = 5.0, memory_mb = 512 }
seq_lengths = [16, 32]
expect_scaling = { exponent = 1.5, tolerance = 0.4 }

[[test]]
name = "mlp"
module = "llama.mlp"
config = { hidden_size = 64, intermediate_size = 128 }
checks = ["correctness", "gradients"]
"#;

    fn err(text: &str) -> String {
        parse(text, Path::new("specs/x.toml")).err().expect("rejected").to_string()
    }

    #[test]
    fn a_valid_file_lowers_to_the_ir() {
        let tests = parse(GOOD, Path::new("x.toml")).unwrap();
        assert_eq!(tests.len(), 2);
        let a = &tests[0].spec;
        assert_eq!(a.input_shape, Some(vec![1, 16, 64]));
        assert_eq!(a.dtypes, vec![DType::F32, DType::BF16]);
        assert_eq!(a.tolerance.unwrap().atol, 1e-3);
        assert_eq!(a.targets.latency_ms.as_ref().unwrap().at(16), 5.0);
        assert_eq!(a.sweep.as_ref().unwrap().expect, Scaling::Exponent { value: 1.5, tolerance: 0.4 });
        assert!(a.checks.contains(&Check::Scaling) && a.checks.contains(&Check::Performance));
        assert_eq!(tests[1].spec.checks, vec![Check::Correctness, Check::Gradients]);
        assert_eq!(tests[1].module.kind(), "llama.mlp");
        assert_eq!((a.profile.flush_cache_mib, tests[1].spec.profile.flush_cache_mib), (0, 0));
    }

    #[test]
    fn flush_cache_mib_reaches_the_profile() {
        let t =
            parse("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64 }\nflush_cache_mib = 256\n", Path::new("x.toml")).unwrap();
        assert_eq!(t[0].spec.profile.flush_cache_mib, 256);
        assert!(
            err("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nflush_cache_mib = -1\n").contains("x.toml:4:"),
            "a negative size is rejected at its line"
        );
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\ncolour = 3\n");
        assert!(e.starts_with("failed to load spec at specs/x.toml:4:1:") && e.contains("unknown field `colour`"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\ninput_shape = \"wide\"\n");
        assert!(e.contains(":4:15:") && e.contains("invalid type"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nconfig = { hidden_size = 64 }\ninput_shape = [1, -4, 64]\n");
        assert!(e.contains(":5:15:") && e.contains("field `input_shape`: dimension -4 must be positive"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.attention\"\nconfig = { hidden_size = 60, num_attention_heads = 7 }\n");
        assert!(e.contains(":4:10:") && e.contains("field `config`") && e.contains("num_attention_heads"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.attn\"\n");
        assert!(e.contains(":3:10:") && e.contains("unknown block kind `llama.attn`"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"bert\"\nconfig = { hidden_size = 64 }\n");
        assert!(e.contains(":3:10:") && e.contains("block kind `bert` cannot be built from a config alone"), "{e}");
        assert!(BlockKind::BUILDABLE.iter().all(|k| e.contains(k.name())), "{e} should list the buildable kinds");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nconfig = { hidden_size = 64 }\ninput_shape = [1, 8, 32]\n");
        assert!(e.contains(":1:1:") && e.contains("field `input_shape`"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nchecks = [\"speed\"]\n");
        assert!(e.contains("unknown check `speed`"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nexpect_scaling = \"cubic\"\nseq_lengths = [8, 16]\n");
        assert!(e.contains("field `expect_scaling`"), "{e}");
        assert!(err("").contains("no [[test]] entries"));
        assert!(err("[[test]\n").contains(":1:"));
    }

    /// The head of a valid MLP test, to which each case appends one line.
    const HEAD: &str = "[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nconfig = { hidden_size = 64, intermediate_size = 128 }\n";

    #[test]
    fn a_zero_dimension_is_refused_at_its_field() {
        let e = err(&format!("{HEAD}input_shape = [1, 0, 64]\n"));
        assert!(e.contains(":5:15:") && e.contains("field `input_shape`: dimension 0 must be positive"), "{e}");
    }

    #[test]
    fn a_position_inside_a_character_is_reported_at_that_character() {
        let loc = Locator { path: Path::new("x.toml"), text: "a = 1\nb = \"é\"\n" };
        // Byte 12 is the second byte of `é` (bytes 11..13), which is at line 2, column 6.
        let Error::SpecFile { line, col, .. } = loc.err(12..13, "m") else { panic!("a spec-file error") };
        assert_eq!((line, col), (2, 6));
        // A span past the end points at the end.
        let Error::SpecFile { line, col, .. } = loc.err(99..100, "m") else { panic!("a spec-file error") };
        assert_eq!((line, col), (3, 1));
    }

    #[test]
    fn load_reads_the_file_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("specs.toml");
        std::fs::write(&path, GOOD).unwrap();
        let tests = load(&path).unwrap();
        assert_eq!(tests.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), parse(GOOD, &path).unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
        assert_eq!(tests.len(), 2);
        assert!(load(&dir.path().join("missing.toml")).is_err());
    }

    #[test]
    fn type_errors_name_their_field() {
        let e = err(&format!("{HEAD}input_shape = [1, 8.0, 64]\n"));
        assert!(e.contains(":5:19:") && e.contains("field `input_shape`: invalid type: floating point `8.0`"), "{e}");
        let e = err(&format!("{HEAD}tolerance = {{ atol = \"small\" }}\n"));
        assert!(e.contains(":5:22:") && e.contains("field `tolerance.atol`: invalid type: string"), "{e}");
        let e = err(&format!("{HEAD}tolerance = {{ atoll = 1e-3 }}\n"));
        assert!(e.contains(":5:15:") && e.contains("unknown field `atoll`"), "{e}");
        let e = err(&format!("{HEAD}tolerance = \"tight\"\n"));
        assert!(e.contains("field `tolerance`: invalid type: string \"tight\", expected a number or a table"), "{e}");
        let e = err(&format!("{HEAD}dtype = 3\n"));
        assert!(e.contains(":5:9:") && e.contains("field `dtype`: invalid type: integer `3`, expected a name or a list of names"), "{e}");
        let e = err(&format!("{HEAD}device = [\"cpu\", 0]\n"));
        assert!(e.contains(":5:18:") && e.contains("field `device`: invalid type: integer `0`, expected a string"), "{e}");
        let e = err(&format!("{HEAD}expect_scaling = {{ exponent = \"one\" }}\nseq_lengths = [8, 16]\n"));
        assert!(e.contains("field `expect_scaling.exponent`"), "{e}");
        let e = err(&format!("{HEAD}seed = -1\n"));
        assert!(e.contains(":5:8:") && e.contains("field `seed`"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\nconfig = 64\n");
        assert!(e.contains(":4:10:") && e.contains("field `config`: must be a table"), "{e}");
    }

    #[test]
    fn a_single_test_table_says_to_write_an_array_of_tables() {
        let e = err("[test]\nname = \"a\"\nmodule = \"llama.mlp\"\n");
        assert!(e.contains("x.toml:1:1:") && e.contains("field `test`") && e.contains("write `[[test]]`"), "{e}");
    }

    #[test]
    fn non_finite_config_values_are_named_at_their_place() {
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, rms_norm_eps = nan }\n");
        assert!(e.contains(":4:45:") && e.contains("field `config.rms_norm_eps`: must be finite"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\n\n[test.config]\nhidden_size = 64\nrms_norm_eps = -inf\n");
        assert!(e.contains(":7:16:") && e.contains("field `config.rms_norm_eps`: must be finite"), "{e}");
        let e = err(
            "[[test]]\nname = \"a\"\nmodule = \"llama.attention\"\nconfig = { hidden_size = 64, num_attention_heads = 4, rope_scaling = { factor = inf } }\n",
        );
        assert!(e.contains("field `config.rope_scaling.factor`: must be finite"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, eps = [1.0, nan] }\n");
        assert!(e.contains("field `config.eps[1]`: must be finite"), "{e}");
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, when = 1979-05-27 }\n");
        assert!(e.contains("field `config.when`") && e.contains("date"), "{e}");
        // Finite values, integers among them, still reach the block.
        let t = parse("[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, rms_norm_eps = 1e-5 }\n", Path::new("x.toml"));
        assert_eq!(t.unwrap()[0].module.dims().into_iter().find(|(k, _)| *k == "hidden_size").map(|(_, v)| v), Some(64));
    }

    #[test]
    fn repeated_dtypes_and_devices_are_spec_errors() {
        let e = err(&format!("{HEAD}dtype = [\"f32\", \"bf16\", \"f32\"]\n"));
        assert!(e.contains(":1:1:") && e.contains("field `dtype`: f32 is listed twice"), "{e}");
        let e = err(&format!("{HEAD}device = [\"cpu\", \"cpu\"]\n"));
        assert!(e.contains("field `device`: `cpu` is listed twice"), "{e}");
        let e = err(&format!("{HEAD}device = [\"cuda\", \"cuda:0\"]\n"));
        assert!(e.contains("field `device`: `cuda:0` is the same device as `cuda`"), "{e}");
        assert!(parse(&format!("{HEAD}device = [\"cpu\", \"cuda:1\"]\ndtype = [\"f32\", \"bf16\"]\n"), Path::new("x.toml")).is_ok());
    }

    #[test]
    fn names_with_control_or_bidi_characters_are_rejected_and_shown_escaped() {
        for (written, shown) in [("\\u001b[2J", "\\u{1b}"), ("\\u0007", "\\u{7}"), ("\\u0000", "\\u{0}"), ("\\u202E", "\\u{202e}"), ("\\t", "\\u{9}")] {
            let e = err(&format!("[[test]]\nname = \"bad{written}name\"\nmodule = \"llama.mlp\"\nconfig = {{ hidden_size = 64 }}\n"));
            assert!(e.contains("field `name`") && e.contains(&format!("character `{shown}`")), "{e}");
            assert!(!e.chars().any(crate::report::escape::forbidden_in_name), "raw control character in {e:?}");
        }
        // A control character in another field is escaped in the error too.
        let e = err("[[test]]\nname = \"a\"\nmodule = \"llama.\\u001b[31mmlp\"\n");
        assert!(e.contains("\\u{1b}[31m") && !e.contains('\u{1b}'), "{e:?}");
    }

    /// `prefix:LINE:COL: ` at the start of `message`, with positive numbers.
    fn names_a_line(message: &str, prefix: &str) -> bool {
        let Some(rest) = message.strip_prefix(prefix) else { return false };
        let mut parts = rest.splitn(3, ':');
        let number = |p: Option<&str>| p.and_then(|p| p.parse::<usize>().ok()).is_some_and(|n| n > 0);
        number(parts.next()) && number(parts.next()) && parts.next().is_some_and(|r| r.starts_with(' '))
    }

    /// Lines that make spec files, good and bad, for the property test.
    const FRAGMENTS: &[&str] = &[
        "[[test]]",
        "[test]",
        "[test.config]",
        "name = \"a\"",
        "name = \"b\\u001b\"",
        "module = \"llama.mlp\"",
        "module = \"llama.rms_norm\"",
        "config = { hidden_size = 8, intermediate_size = 16 }",
        "config = { hidden_size = 8, rms_norm_eps = nan }",
        "hidden_size = 8",
        "rms_norm_eps = inf",
        "input_shape = [1, 8.0, 8]",
        "input_shape = [1, 2, 8]",
        "dtype = [\"f32\", \"f32\"]",
        "dtype = \"bf16\"",
        "device = [\"cpu\", 1]",
        "tolerance = { atol = 1e-3, rtol = \"x\" }",
        "tolerance = 1e-3",
        "seq_lengths = [2, 4]",
        "expect_scaling = { exponent = 1.0 }",
        "checks = [\"correctness\"]",
        "seed = -3",
        "colour = 3",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Err(e) = parse(&text, Path::new("fuzz.toml")) {
                let e = e.to_string();
                prop_assert!(names_a_line(&e, "failed to load spec at fuzz.toml:"), "{}", e);
            }
        }

        #[test]
        fn every_error_names_a_line(lines in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..12)) {
            if let Err(e) = parse(&lines.join("\n"), Path::new("gen.toml")) {
                let e = e.to_string();
                prop_assert!(names_a_line(&e, "failed to load spec at gen.toml:"), "{}", e);
                prop_assert!(!e.chars().any(|c| c.is_control()), "{:?}", e);
            }
        }

        #[test]
        fn generated_valid_specs_round_trip(hidden in 1usize..8, heads in 1usize..5, batch in 1usize..4, seq in 1usize..16, tol in 1e-6f64..1e-1) {
            let hidden = hidden * heads * 2;
            let text = format!("[[test]]\nname = \"t\"\nmodule = \"llama.attention\"\nconfig = {{ hidden_size = {hidden}, num_attention_heads = {heads}, intermediate_size = 8 }}\ninput_shape = [{batch}, {seq}, {hidden}]\ntolerance = {tol:e}\n");
            let tests = parse(&text, Path::new("gen.toml")).unwrap();
            prop_assert_eq!(tests[0].spec.input_shape.clone(), Some(vec![batch, seq, hidden]));
            prop_assert!((tests[0].spec.tolerance.unwrap().atol - tol).abs() <= 1e-12 * tol.max(1.0));
        }
    }
}

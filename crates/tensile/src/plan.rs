//! Validation and expansion of module tests into cases (test × dtype × device).

use crate::coverage::{Coverage, KindCoverage, SEQ_LEN};
use crate::device::{dtype_name, DeviceSpec};
use crate::error::{Error, Result};
use crate::module::{InputKind, ModuleUnderTest};
use crate::spec::{Check, ModuleTest, Reference, Scaling, Spec, Target};
use crate::tolerance::Tolerance;
use candle_core::DType;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Suite-wide settings: defaults for specs and command-line overrides.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Batch size for inferred input shapes.
    pub batch_size: usize,
    /// Sequence length for inferred input shapes.
    pub seq_len: usize,
    /// Replace every spec's dtypes.
    pub dtypes: Option<Vec<DType>>,
    /// Replace every spec's devices.
    pub devices: Option<Vec<String>>,
    /// Replace every spec's checks.
    pub checks: Option<Vec<Check>>,
    /// Keep only tests whose name matches this glob.
    pub filter: Option<String>,
    /// Keep only cases whose tags (their own and the built-in ones) satisfy this expression.
    pub tags: Option<crate::tags::TagExpr>,
    /// Replace these thresholds of every case's resolved tolerance.
    pub tolerance: Option<crate::tolerance::ToleranceOverride>,
}

impl Default for Settings {
    fn default() -> Self {
        Self { batch_size: 1, seq_len: 128, dtypes: None, devices: None, checks: None, filter: None, tags: None, tolerance: None }
    }
}

impl Settings {
    /// These settings with `TENSILE_TAGS` (a tag expression) and `TENSILE_DEVICE` (`cpu`,
    /// `cuda`, `cuda:N`: every case on that device) applied when they are set, as the test
    /// strategy forces the CPU with an environment variable.
    ///
    /// # Errors
    /// A malformed expression or device, naming the variable.
    pub fn with_env(self) -> Result<Self> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// [`Settings::with_env`] reading variables from `get`.
    pub fn with_vars(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if let Some(expr) = get("TENSILE_TAGS").filter(|v| !v.trim().is_empty()) {
            self.tags = Some(expr.parse().map_err(|reason| Error::Setting { name: "TENSILE_TAGS".into(), reason })?);
        }
        if let Some(device) = get("TENSILE_DEVICE").filter(|v| !v.trim().is_empty()) {
            let device = device.trim().to_string();
            device.parse::<DeviceSpec>().map_err(|e| Error::Setting { name: "TENSILE_DEVICE".into(), reason: e.to_string() })?;
            self.devices = Some(vec![device]);
        }
        Ok(self)
    }
}

/// One runnable case.
#[derive(Clone)]
pub struct Case {
    /// Position in the plan.
    pub index: usize,
    /// Module test name.
    pub name: String,
    /// The module as declared (the runner converts it to `dtype` on `device`).
    pub module: Arc<dyn ModuleUnderTest>,
    /// Dtype of this case.
    pub dtype: DType,
    /// Device of this case, as written in the spec.
    pub device: String,
    /// Resolved input shape.
    pub input_shape: Vec<usize>,
    /// Sequence length of the input (dimension 1).
    pub seq_len: usize,
    /// Resolved tolerance.
    pub tolerance: Tolerance,
    /// Checks to run, in order.
    pub checks: Vec<Check>,
    /// The spec.
    pub spec: Arc<Spec>,
    /// The spec's tags and the built-in ones ([`crate::tags::case_tags`]).
    pub tags: Vec<String>,
}

/// A validated plan.
#[derive(Clone, Default)]
pub struct Plan {
    /// Cases in run order.
    pub cases: Vec<Case>,
}

fn invalid(spec: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::Spec { spec: spec.to_string(), field: field.to_string(), reason: reason.into() }
}

fn check_target(name: &str, field: &str, t: &Option<Target>, seq_len: usize) -> Result<()> {
    if let Some(t) = t {
        let v = t.at(seq_len);
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid(name, field, format!("must be a positive number, got {v}")));
        }
    }
    Ok(())
}

/// Rejects names with control or bidirectional characters: a name is printed to terminals and
/// written into reports and file names, where such a character would act (recolour, move the
/// cursor, reorder text) instead of showing. The error shows it escaped, never raw.
fn check_name(name: &str) -> Result<()> {
    use crate::report::escape::{forbidden_in_name, visible_line};
    match name.chars().find(|&c| forbidden_in_name(c)) {
        Some(c) => Err(invalid(
            &visible_line(name),
            "name",
            format!("contains the control or bidirectional character `{}`; names must be printable text", c.escape_unicode()),
        )),
        None => Ok(()),
    }
}

/// Rejects a dtype or device listed twice (`cuda` and `cuda:0` are one device): the same case
/// would run twice under one name, and its results would collide in every report.
fn no_duplicates(name: &str, dtypes: &[DType], devices: &[String]) -> Result<()> {
    for (i, d) in dtypes.iter().enumerate() {
        if dtypes[..i].contains(d) {
            return Err(invalid(name, "dtype", format!("{} is listed twice", dtype_name(*d))));
        }
    }
    let parsed: Vec<Option<DeviceSpec>> = devices.iter().map(|d| d.parse().ok()).collect();
    for (i, d) in parsed.iter().enumerate() {
        if let Some(j) = (0..i).find(|&j| d.is_some() && parsed[j] == *d) {
            let (first, again) = (&devices[j], &devices[i]);
            let what = if first == again { format!("`{again}` is listed twice") } else { format!("`{again}` is the same device as `{first}`") };
            return Err(invalid(name, "device", what));
        }
    }
    Ok(())
}

/// Resolves the input shape of `test` under `settings`.
fn input_shape(test: &ModuleTest, settings: &Settings) -> Result<Vec<usize>> {
    let name = &test.name;
    let hint = test.module.input_shape_hint(settings.batch_size, settings.seq_len);
    let shape = match (&test.spec.input_shape, &hint) {
        (Some(s), _) => s.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => return Err(invalid(name, "input_shape", "required: the module does not suggest one")),
    };
    crate::validate::shape(&shape).map_err(|r| invalid(name, "input_shape", r))?;
    if let (Some(h), InputKind::Hidden) = (&hint, test.module.input_kind()) {
        if h.last() != shape.last() {
            return Err(invalid(
                name,
                "input_shape",
                format!("last dimension {} does not match the module's hidden size {}", shape[shape.len() - 1], h[h.len() - 1]),
            ));
        }
    }
    Ok(shape)
}

fn validate(test: &ModuleTest, settings: &Settings, checks: &[Check]) -> Result<()> {
    let (name, spec) = (&test.name, &test.spec);
    if let Some(t) = &spec.tolerance {
        t.validate().map_err(|(field, reason)| invalid(name, &format!("tolerance.{field}"), reason))?;
    }
    check_target(name, "latency_ms", &spec.targets.latency_ms, settings.seq_len)?;
    check_target(name, "memory_mb", &spec.targets.memory_mb, settings.seq_len)?;
    if let Some(m) = spec.targets.margin {
        if !(m.is_finite() && m > 1.0) {
            return Err(invalid(name, "margin", format!("must be > 1, got {m}")));
        }
    }
    if let Some(sweep) = &spec.sweep {
        crate::validate::sweep(&sweep.seq_lengths).map_err(|r| invalid(name, "seq_lengths", r))?;
        if let Scaling::Exponent { value, tolerance } = sweep.expect {
            if !(value.is_finite() && tolerance.is_finite() && tolerance > 0.0) {
                return Err(invalid(name, "expect_scaling", format!("exponent {value} ± {tolerance} must be finite with a positive tolerance")));
            }
        }
    } else if checks.contains(&Check::Scaling) {
        return Err(invalid(name, "seq_lengths", "the scaling check needs a sequence-length sweep"));
    }
    if checks.is_empty() {
        return Err(invalid(name, "checks", "no checks to run"));
    }
    if spec.profile.flush_cache_mib > crate::validate::MAX_FLUSH_MIB {
        return Err(invalid(
            name,
            "flush_cache_mib",
            format!("{} MiB exceeds the limit of {} MiB", spec.profile.flush_cache_mib, crate::validate::MAX_FLUSH_MIB),
        ));
    }
    Ok(())
}

/// A reference case must be a readable case file of the test's kind and input shape: its
/// header alone says so, read before anything runs.
fn check_reference(test: &ModuleTest, shape: &[usize]) -> Result<()> {
    if let Reference::CaseFile(path) = &test.spec.reference {
        let header = crate::golden::CaseHeader::read(path).map_err(|e| invalid(&test.name, "reference", e.to_string()))?;
        if let Some(why) = header.mismatch(test.module.kind(), shape) {
            return Err(invalid(&test.name, "reference", why));
        }
    }
    Ok(())
}

impl Plan {
    /// Validates every test and expands it into cases. Nothing runs; the first invalid spec
    /// is reported with its name and field.
    pub fn new(tests: &[ModuleTest], settings: &Settings) -> Result<Plan> {
        crate::validate::dim(settings.batch_size).map_err(|r| invalid("suite", "batch_size", r))?;
        crate::validate::dim(settings.seq_len).map_err(|r| invalid("suite", "seq_len", r))?;
        let pattern = match &settings.filter {
            Some(f) => Some(glob::Pattern::new(f).map_err(|e| invalid("suite", "filter", format!("bad glob `{f}`: {e}")))?),
            None => None,
        };
        let mut seen = HashSet::new();
        let mut cases = Vec::new();
        for test in tests {
            if test.name.trim().is_empty() {
                return Err(invalid("<unnamed>", "name", "must not be empty"));
            }
            check_name(&test.name)?;
            if !seen.insert(test.name.clone()) {
                return Err(invalid(&test.name, "name", "declared twice; module test names must be unique"));
            }
            if pattern.as_ref().is_some_and(|p| !p.matches(&test.name)) {
                continue;
            }
            let checks = settings.checks.clone().unwrap_or_else(|| test.spec.checks.clone());
            let mut checks: Vec<Check> = checks.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            // A scaling check without a sweep only makes sense if the spec asked for it; a test
            // left with nothing to run by the override (`--checks scaling` on a norm) is left
            // out rather than rejected.
            if settings.checks.is_some() && test.spec.sweep.is_none() {
                checks.retain(|c| *c != Check::Scaling);
                if checks.is_empty() {
                    continue;
                }
            }
            validate(test, settings, &checks)?;
            let shape = input_shape(test, settings)?;
            check_reference(test, &shape)?;
            let dtypes = settings.dtypes.clone().unwrap_or_else(|| test.spec.dtypes.clone());
            let devices = settings.devices.clone().unwrap_or_else(|| test.spec.devices.clone());
            if dtypes.is_empty() {
                return Err(invalid(&test.name, "dtype", "no dtype to run in"));
            }
            if let Some(d) = devices.iter().find(|d| d.parse::<DeviceSpec>().is_err()) {
                return Err(invalid(&test.name, "device", format!("`{}` is not cpu, cuda or cuda:N", crate::report::escape::visible_line(d))));
            }
            if devices.is_empty() {
                return Err(invalid(&test.name, "device", "no device to run on"));
            }
            no_duplicates(&test.name, &dtypes, &devices)?;
            if let Some(bad) = test.spec.tags.iter().find(|t| !crate::tags::is_tag(t)) {
                return Err(invalid(
                    &test.name,
                    "tags",
                    format!("`{}` is not a tag (letters, digits, `_`, `-` and `.`; not and/or/not)", crate::report::escape::visible_line(bad)),
                ));
            }
            let spec = Arc::new(test.spec.clone());
            let flops = test.module.cost(&shape).flops;
            for device in &devices {
                for &dtype in &dtypes {
                    if dtype == DType::F64 {
                        return Err(invalid(
                            &test.name,
                            "dtype",
                            "f64 is the reference twins' own dtype, so a case in it would compare the twin with itself; cases run in f32, bf16 or f16",
                        ));
                    }
                    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
                        return Err(invalid(&test.name, "dtype", format!("{} is not a float dtype", dtype_name(dtype))));
                    }
                    let tags = crate::tags::case_tags(&spec.tags, test.module.kind(), device, flops);
                    if settings.tags.as_ref().is_some_and(|e| !e.matches(&tags)) {
                        continue;
                    }
                    cases.push(Case {
                        index: cases.len(),
                        name: test.name.clone(),
                        module: test.module.clone(),
                        dtype,
                        device: device.clone(),
                        seq_len: shape[1],
                        input_shape: shape.clone(),
                        tolerance: {
                            let own = spec.tolerance.or_else(|| test.module.default_tolerance(dtype)).unwrap_or_else(|| Tolerance::for_dtype(dtype));
                            settings.tolerance.map_or(own, |o| o.apply(own))
                        },
                        checks: checks.clone(),
                        spec: spec.clone(),
                        tags,
                    });
                }
            }
        }
        Ok(Plan { cases })
    }

    /// The reference case files the plan reads (inputs no output may overwrite).
    pub fn reference_files(&self) -> Vec<PathBuf> {
        self.cases
            .iter()
            .filter_map(|c| match &c.spec.reference {
                Reference::CaseFile(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Number of checks across all cases.
    pub fn check_count(&self) -> usize {
        self.cases.iter().map(|c| c.checks.len()).sum()
    }

    /// The kinds, dtypes, devices, checks and parameter values the plan exercises (with no
    /// preset compared yet: see [`crate::report::coverage::against_presets`]).
    pub fn coverage(&self) -> Coverage {
        let mut kinds: BTreeMap<String, KindCoverage> = BTreeMap::new();
        for case in &self.cases {
            let kind = case.module.kind().to_string();
            let k = kinds.entry(kind.clone()).or_insert_with(|| KindCoverage { kind, ..KindCoverage::default() });
            k.cases += 1;
            k.tests.insert(case.name.clone());
            k.dtypes.insert(dtype_name(case.dtype).to_string());
            k.devices.insert(case.device.clone());
            k.checks.extend(case.checks.iter().map(|c| c.name().to_string()));
            for (name, value) in case.module.dims() {
                k.dims.entry(name.to_string()).or_default().insert(value);
            }
            let seqs = k.dims.entry(SEQ_LEN.to_string()).or_default();
            seqs.insert(case.seq_len);
            if let Some(sweep) = &case.spec.sweep {
                seqs.extend(sweep.seq_lengths.iter().copied());
            }
        }
        Coverage { kinds: kinds.into_values().collect(), uncovered: Vec::new(), presets: Vec::new() }
    }
}

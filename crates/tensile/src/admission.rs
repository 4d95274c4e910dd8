//! Admission control: each case's peak memory is predicted from its module's parameter count
//! and cost model before anything is allocated, and a case predicted over the budget fails on
//! its own, with the prediction as its reason, while the run goes on.
//!
//! Without it, one spec with `input_shape = [64, 16384, 4096]` after a good one would abort the
//! whole process ("memory allocation failed") and every result before it would be lost.
//!
//! # The prediction
//! For an input of `shape` in dtype `d` (`s` bytes per element), with `P` parameters and the
//! cost model's bytes `B` (parameters, input, output and materialised intermediates, counted
//! in float32 by the meta build):
//! - activations `A = max(B − 4P, 2 · 4 · elements(shape))`, in float32 bytes;
//! - a fast forward holds `P·s + A·s/4`;
//! - the float64 reference twin holds `8P + 2A`, and the correctness check holds both (or,
//!   with another reference, that module and its forward, or twice the case file's size);
//! - the dtype-parity check holds a float32 copy and its forward, `4P + A`, besides;
//! - the gradient check holds three times the twin (values, gradients, the graph) at the
//!   one short sequence it differentiates;
//! - timed checks add the cache-flush buffer; the scaling check runs at the sweep's longest
//!   length.
//!
//! The case's prediction is the largest over its checks. It errs high: a case it admits
//! fits, and the healthy presets are orders of magnitude below any real budget.
//!
//! ```
//! use tensile::admission::{Budget, MemoryLimit};
//! assert_eq!("512MiB".parse::<MemoryLimit>().unwrap(), MemoryLimit::Bytes(512.0 * 1024.0 * 1024.0));
//! assert_eq!("25%".parse::<MemoryLimit>().unwrap(), MemoryLimit::Fraction(0.25));
//! let b = Budget::resolve(Some(MemoryLimit::Bytes(1e9)), Some(16e9));
//! assert_eq!(b.unwrap().bytes, 1e9);
//! ```

use crate::plan::Case;
use crate::spec::{Check, Reference};
use std::fmt;

/// The share of physical memory a run may predict for one case unless `--max-memory` says
/// otherwise: half, leaving room for the process, the OS and other work.
pub const DEFAULT_FRACTION: f64 = 0.5;
/// Largest input, in elements, whose cost is even computed: 2⁴⁰ (4 TiB of float32).
const MAX_ELEMENTS: f64 = (1u64 << 40) as f64;

/// A memory limit as given: bytes, or a fraction of physical memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryLimit {
    /// An absolute number of bytes.
    Bytes(f64),
    /// A fraction of the machine's physical memory.
    Fraction(f64),
}

/// Parses `8GiB`, `512MiB`, `2GB`, `1e9` (bytes) or `25%` (of physical memory).
impl std::str::FromStr for MemoryLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("`{s}` is not a memory size (e.g. 8GiB, 512MiB, 2GB or 50%)");
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if v > 0.0 && v <= 100.0 { Ok(Self::Fraction(v / 100.0)) } else { Err(format!("`{s}`: a percentage must lie in (0, 100]")) };
        }
        let (v, unit) = crate::validate::number_and_unit(t).ok_or_else(bad)?;
        let scale = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(bad()),
        };
        let bytes = v * scale;
        if bytes.is_finite() && bytes >= 1.0 {
            Ok(Self::Bytes(bytes))
        } else {
            Err(format!("`{s}`: a memory size must be at least one byte"))
        }
    }
}

/// The memory one case may use, and where that number came from (for the failure message).
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Bytes.
    pub bytes: f64,
    /// `--max-memory 8GiB`, or `half of this machine's 23.4 GiB`.
    pub source: String,
}

impl Budget {
    /// The budget from an explicit limit, or [`DEFAULT_FRACTION`] of `physical` bytes (the
    /// machine's memory for a CPU case); `None` when neither is known (no limit).
    pub fn resolve(limit: Option<MemoryLimit>, physical: Option<f64>) -> Option<Budget> {
        Self::resolve_for(limit, physical, "this machine's")
    }

    /// [`Budget::resolve`] for memory described as `whose` (`this machine's`, `the device's`).
    pub fn resolve_for(limit: Option<MemoryLimit>, total: Option<f64>, whose: &str) -> Option<Budget> {
        match (limit, total) {
            (Some(MemoryLimit::Bytes(b)), _) => Some(Budget { bytes: b, source: "--max-memory".into() }),
            (Some(MemoryLimit::Fraction(f)), Some(p)) => Some(Budget { bytes: f * p, source: format!("--max-memory {:.0}% of {whose} {}", f * 100.0, gib(p)) }),
            (None, Some(p)) => Some(Budget { bytes: DEFAULT_FRACTION * p, source: format!("half of {whose} {}; raise it with --max-memory", gib(p)) }),
            (_, None) => None,
        }
    }

    /// The default budget on this machine (see [`Budget::resolve`]).
    pub fn for_this_machine(limit: Option<MemoryLimit>) -> Option<Budget> {
        Self::resolve(limit, physical_memory())
    }

    /// The budget of a case on `device`: physical memory on the CPU, the device's own memory
    /// where the driver reports it.
    pub fn for_device(limit: Option<MemoryLimit>, device: &candle_core::Device) -> Option<Budget> {
        if device.is_cpu() {
            Self::for_this_machine(limit)
        } else {
            Self::resolve_for(limit, crate::device_memory::total_bytes(device).map(|b| b as f64), "the device's")
        }
    }
}

/// The memory this process may use, in bytes: the machine's physical memory (`MemTotal` of
/// `/proc/meminfo`), or the container's limit (cgroup v2 `memory.max`, v1
/// `memory.limit_in_bytes`) when that is lower, since exceeding it gets the whole run killed.
pub fn physical_memory() -> Option<f64> {
    static TOTAL: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|t| cgroup_limit(&t))
            .reduce(f64::min);
        match (read_physical_memory(), cgroup) {
            (Some(m), Some(c)) => Some(m.min(c)),
            (m, c) => m.or(c),
        }
    })
}

/// A cgroup memory limit file's value in bytes; `None` for `max` (no limit) or nonsense.
fn cgroup_limit(text: &str) -> Option<f64> {
    let v: f64 = text.trim().parse().ok()?;
    // cgroup v1 writes "no limit" as a number near 2^63.
    (v > 0.0 && v < 1e18).then_some(v)
}

fn read_physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// `bytes` as GiB with one decimal (MiB below one GiB).
pub fn gib(bytes: f64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes / GIB)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// A case's predicted peak memory and its parts, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Peak over the case's checks.
    pub total: f64,
    /// Parameters in the case's dtype.
    pub parameters: f64,
    /// Activations of the largest input the case runs, in the case's dtype.
    pub activations: f64,
    /// The largest input shape the case runs.
    pub shape: Vec<usize>,
}

impl fmt::Display for Prediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "predicted peak memory {} (parameters {}, activations {} at input shape {:?})",
            gib(self.total),
            gib(self.parameters),
            gib(self.activations),
            self.shape
        )
    }
}

/// Predicts `case`'s peak memory from its module's parameter count and cost model, allocating
/// nothing.
pub fn predict(case: &Case) -> Prediction {
    let s = case.dtype.size_in_bytes() as f64;
    let p = case.module.parameter_count() as f64;
    // Activation bytes (float32) and elements of an input of `shape`; infinite past the
    // largest input whose cost is computed at all.
    let activations = |shape: &[usize]| -> (f64, f64) {
        let elements: f64 = shape.iter().map(|&d| d as f64).product();
        if elements > MAX_ELEMENTS {
            return (f64::INFINITY, elements);
        }
        ((case.module.cost(shape).bytes - 4.0 * p).max(8.0 * elements), elements)
    };
    let fast = |a: f64| p * s + a * s / 4.0;
    let twin = |a: f64| 8.0 * p + 2.0 * a;
    let flush = case.spec.profile.flush_cache_mib as f64 * 1024.0 * 1024.0;
    // What correctness holds besides the module: the twin, another module with its own
    // forward, or a case file's weights and tensors.
    let reference = |a: f64| match &case.spec.reference {
        Reference::Twin => twin(a),
        Reference::Module(m) => m.parameter_count() as f64 * s + a * s / 4.0,
        Reference::CaseFile(path) => 2.0 * std::fs::metadata(path).map_or(0.0, |m| m.len() as f64) + a * s / 4.0,
    };
    let shape = case.input_shape.clone();
    let (a, elements) = activations(&shape);
    // The shapes other checks run at: gradients at one short sequence (see the check), the
    // scaling sweep up to its longest length.
    let mut small = shape.clone();
    small[0] = 1;
    small[1] = small[1].min(4);
    let mut longest = shape.clone();
    longest[1] = case.spec.sweep.as_ref().and_then(|w| w.seq_lengths.iter().max().copied()).unwrap_or(shape[1]).max(shape[1]);
    let mut worst = Prediction { total: fast(a), parameters: p * s, activations: a * s / 4.0, shape: shape.clone() };
    for check in &case.checks {
        let (total, at) = match check {
            Check::Correctness => (fast(a) + reference(a), None),
            Check::Gradients => (fast(a) + 3.0 * twin(activations(&small).0), None),
            Check::Performance => (fast(a) + flush, None),
            Check::Scaling => {
                let (long_a, _) = activations(&longest);
                (fast(long_a) + flush, Some((long_a, longest.clone())))
            }
            // The case's module and its float32 copy, each with a forward.
            Check::DtypeParity => (fast(a) + 4.0 * p + a, None),
            _ => (fast(a) + elements * s, None),
        };
        if total > worst.total || total.is_nan() {
            let (act, at) = at.unwrap_or((a, shape.clone()));
            worst = Prediction { total: if total.is_nan() { f64::INFINITY } else { total }, parameters: p * s, activations: act * s / 4.0, shape: at };
        }
    }
    worst
}

/// `Err(reason)` when `case` is predicted over `budget`.
pub fn admit(case: &Case, budget: Option<&Budget>) -> Result<(), String> {
    let Some(b) = budget else { return Ok(()) };
    let p = predict(case);
    if p.total > b.bytes {
        Err(format!("not run: {p} exceeds the memory budget of {} ({})", gib(b.bytes), b.source))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_parse_in_every_unit() {
        for (text, bytes) in [
            ("1", 1.0),
            ("1e9", 1e9),
            ("2.5e3 KiB", 2560000.0),
            ("2kb", 2e3),
            ("3 MB", 3e6),
            ("1.5GiB", 1.5 * 1073741824.0),
            ("1TiB", 1099511627776.0),
            ("4g", 4e9),
        ] {
            assert_eq!(text.parse::<MemoryLimit>(), Ok(MemoryLimit::Bytes(bytes)), "{text}");
        }
        assert_eq!("50%".parse::<MemoryLimit>(), Ok(MemoryLimit::Fraction(0.5)));
        for bad in ["", "lots", "0", "-1GiB", "nan", "inf", "5 parsecs", "0%", "150%", "0.1"] {
            assert!(bad.parse::<MemoryLimit>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cgroup_limits_are_read_and_unlimited_is_none() {
        assert_eq!(cgroup_limit("4294967296\n"), Some(4294967296.0));
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712"), None);
        assert_eq!(cgroup_limit(""), None);
    }

    #[test]
    fn budgets_say_where_they_come_from() {
        let b = Budget::resolve(None, Some(16.0 * 1073741824.0)).unwrap();
        assert_eq!(b.bytes, 8.0 * 1073741824.0);
        assert!(b.source.contains("16.0 GiB") && b.source.contains("--max-memory"), "{}", b.source);
        assert_eq!(Budget::resolve(Some(MemoryLimit::Fraction(0.25)), Some(8e9)).unwrap().bytes, 2e9);
        assert_eq!(Budget::resolve(Some(MemoryLimit::Fraction(0.25)), None), None);
        assert_eq!(Budget::resolve(None, None), None);
        assert!(physical_memory().is_none_or(|m| m > 1e8), "a machine has more than 100 MB");
        let d = Budget::resolve_for(None, Some(8.0 * 1073741824.0), "the device's").unwrap();
        assert!(d.source.starts_with("half of the device's 8.0 GiB"), "{}", d.source);
        assert_eq!(Budget::for_device(Some(MemoryLimit::Bytes(5.0)), &candle_core::Device::Cpu).unwrap().bytes, 5.0);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(text in "\\PC{0,20}") {
            if let Ok(MemoryLimit::Bytes(b)) = text.parse::<MemoryLimit>() {
                prop_assert!(b.is_finite() && b >= 1.0);
            }
        }
    }
}

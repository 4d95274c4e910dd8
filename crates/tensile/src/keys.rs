//! The names of everything a check measures: [`Metric`] for numbers, [`Series`] for the lists
//! of numbers behind plots. Checks, the baseline comparison, reporters and the command line
//! share these typed keys instead of matching strings.
//!
//! A key orders, hashes and borrows as its name, so an outcome's metrics read the same in
//! code (`metrics[&Metric::MedianMs]`), in a test (`metrics["median_ms"]`) and in the JSON
//! report (`"median_ms": 2.5`, in name order).
//!
//! ```
//! use tensile::keys::Metric;
//! use std::collections::BTreeMap;
//!
//! let m = BTreeMap::from([(Metric::MedianMs, 2.5), (Metric::P10Ms, 2.0)]);
//! assert_eq!(m[&Metric::MedianMs], m["median_ms"]);
//! assert_eq!("p90_ms".parse::<Metric>(), Ok(Metric::P90Ms));
//! assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"median_ms":2.5,"p10_ms":2.0}"#);
//! ```

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Defines a key enum whose variants each carry their name once, with the impls that make the
/// name its identity (order, hash, borrow, display, parse, serde).
macro_rules! keys {
    ($(#[$meta:meta])* $ty:ident { $($(#[$doc:meta])* $variant:ident = $name:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty {
            $($(#[$doc])* $variant,)*
        }

        impl $ty {
            /// Every key, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            /// The snake_case name used in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| format!("unknown {} `{s}`", stringify!($ty).to_lowercase()))
            }
        }

        impl Ord for $ty {
            fn cmp(&self, other: &Self) -> Ordering {
                self.name().cmp(other.name())
            }
        }

        impl PartialOrd for $ty {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Hash for $ty {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.name().hash(state)
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                self.name()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

keys! {
    /// A number a check measures.
    Metric {
        /// Largest absolute difference from the reference.
        MaxAbs = "max_abs",
        /// Largest relative difference from the reference.
        MaxRel = "max_rel",
        /// Mean absolute difference from the reference.
        MeanAbs = "mean_abs",
        /// Pearson correlation with the reference.
        Pcc = "pcc",
        /// Cosine similarity with the reference.
        Cosine = "cosine",
        /// Largest difference in units in the last place of the dtype.
        MaxUlp = "max_ulp",
        /// Signal-to-noise ratio of the output against the reference, in dB.
        SnrDb = "snr_db",
        /// Elements that differ between two runs on the same input.
        DifferingElements = "differing_elements",
        /// Largest difference between two runs on the same input.
        MaxAbsDiff = "max_abs_diff",
        /// 1 when row-by-row and batched outputs are bitwise equal, else 0.
        BitwiseEqual = "bitwise_equal",
        /// Rows in the batch compared row by row.
        Batch = "batch",
        /// Largest absolute error of an autograd gradient against finite differences.
        MaxAbsErr = "max_abs_err",
        /// Largest relative error of an autograd gradient against finite differences.
        MaxRelErr = "max_rel_err",
        /// Gradient coordinates checked.
        Coordinates = "coordinates",
        /// Largest difference of the fast path's f32 autograd gradient from the float64 twin's,
        /// relative to the largest magnitude of that gradient.
        FastPathGradErr = "fast_path_grad_err",
        /// bf16 output's largest difference from f32.
        Bf16MaxAbs = "bf16_max_abs",
        /// bf16 output's correlation with f32.
        Bf16Pcc = "bf16_pcc",
        /// f16 output's largest difference from f32.
        F16MaxAbs = "f16_max_abs",
        /// f16 output's correlation with f32.
        F16Pcc = "f16_pcc",
        /// Median latency.
        MedianMs = "median_ms",
        /// 10th percentile of the latency.
        P10Ms = "p10_ms",
        /// 90th percentile of the latency.
        P90Ms = "p90_ms",
        /// Fastest run.
        MinMs = "min_ms",
        /// Lower end of the 95% bootstrap interval of the median latency.
        CiLowMs = "ci_low_ms",
        /// Upper end of that interval.
        CiHighMs = "ci_high_ms",
        /// Timed runs.
        Iterations = "iterations",
        /// FLOP rate at the median latency, from the module's cost model.
        Gflops = "gflops",
        /// Memory traffic rate at the median latency, from the module's cost model.
        Gbps = "gbps",
        /// Median of the runs timed on one thread (CPU): the measure of work that baselines compare.
        WorkMedianMs = "work_median_ms",
        /// The latency target at the case's sequence length.
        TargetMs = "target_ms",
        /// Median of the baseline's samples that were compared (one-thread runs when both sides have them).
        BaselineMedianMs = "baseline_median_ms",
        /// `median / baseline median − 1`.
        Slowdown = "slowdown",
        /// Lower end of the 95% bootstrap interval of the slowdown.
        SlowdownCiLow = "slowdown_ci_low",
        /// Upper end of that interval.
        SlowdownCiHigh = "slowdown_ci_high",
        /// 1 when the slowdown's interval lies above the threshold (a regression), else 0.
        Regression = "regression",
        /// The slowdown whose interval's lower end fails the check.
        RegressionThreshold = "regression_threshold",
        /// Peak memory of one forward, MiB.
        PeakMb = "peak_mb",
        /// Memory of the parameters, MiB.
        ParamMb = "param_mb",
        /// The memory target at the case's sequence length.
        TargetMb = "target_mb",
        /// Memory of the LoRA adapters among the parameters, MiB (modules with adapters only).
        AdapterMb = "adapter_mb",
        /// Bits per parameter as stored (modules with quantized weights or adapters only).
        BitsPerParam = "bits_per_param",
        /// Judged exponent: the growing part of the time (time above the fixed overhead).
        Exponent = "exponent",
        /// Lower end of the exponent's 95% interval.
        ExponentCiLow = "exponent_ci_low",
        /// Upper end of that interval.
        ExponentCiHigh = "exponent_ci_high",
        /// Log-log slope of the whole time, overhead included (reported, not judged).
        RawExponent = "raw_exponent",
        /// Fixed overhead: the time at sequence length 1.
        OverheadMs = "overhead_ms",
        /// The exponent the declaration expects.
        ExpectedExponent = "expected_exponent",
        /// The allowed distance from the expected exponent.
        Tolerance = "tolerance",
        /// Lowest degree of the cost model's terms in the sequence length.
        CostDegreeLow = "cost_degree_low",
        /// Highest degree of the cost model's terms in the sequence length.
        CostDegreeHigh = "cost_degree_high",
        /// Goodness of the growth fit (coefficient of determination on log-log axes).
        R2 = "r2",
        /// `ln` of the growth fit's coefficient: growth ≈ `e^intercept · seq^exponent`.
        Intercept = "intercept",
        /// Log-log slope of the peak memory against the sequence length.
        MemoryExponent = "memory_exponent",
    }
}

keys! {
    /// A list of numbers a check keeps for plots.
    Series {
        /// Every timed run of a performance check, ms.
        SamplesMs = "samples_ms",
        /// Runs of a performance check timed on one thread (CPU only), ms.
        WorkSamplesMs = "work_samples_ms",
        /// The sequence lengths of a sweep.
        SeqLen = "seq_len",
        /// The fastest time at each length, ms.
        Ms = "ms",
        /// The time above the fixed overhead at each length, ms: what the scaling verdict fits.
        GrowthMs = "growth_ms",
        /// Peak memory at each length, MiB.
        Mb = "mb",
    }
}

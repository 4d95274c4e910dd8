//! Splitting a plan's cases between processes or machines: `tensile run --shard K/N`,
//! `TENSILE_SHARD=K/N` under the cargo harness, and `--shard auto` in a Slurm array job.
//!
//! A case (module test × dtype × device) is the unit: all of its checks run in one shard, so a
//! shard's report holds whole cases and the shards' reports merge back into the report of the
//! whole plan (`tensile report merge`).
//!
//! Two ways to split, both deterministic, so every shard computes the same partition on its own
//! with nothing shared but the plan (and the recorded durations):
//! - [`Balance::Hash`]: a case goes to shard `hash(case) mod N`, with a hash that never changes
//!   between runs, machines or versions of Rust (64-bit FNV-1a). A case keeps its shard when
//!   others are added or removed, which keeps CI caches and history per shard comparable.
//! - [`Balance::Time`]: the cases, longest first by the durations recorded in an earlier report
//!   or baseline, each go to the shard with the least work so far (the LPT rule, within 4/3 of
//!   the best possible longest shard). Cases without a record count as the median recorded one.

use crate::error::{Error, Result};
use crate::plan::{Case, Plan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What identifies a plan across processes and machines: a hash of every case's identity
/// and settings, so shards of one plan can be told from runs of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanIdentity {
    /// 16 hexadecimal digits ([`identity`]).
    pub fingerprint: String,
    /// Cases in the whole plan.
    pub cases: usize,
    /// Checks in the whole plan.
    pub checks: usize,
    /// Devices of the whole plan, in order of first use: a shard's report lists them all,
    /// whichever its own cases use.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// One shard of `count`, numbered from 1 as `--shard K/N` and nextest's `--partition` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, 1 ≤ index ≤ count.
    pub index: usize,
    /// How many shards the plan is split into.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `K/N` with 1 ≤ K ≤ N.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, n) = s.trim().split_once('/').ok_or_else(|| format!("`{s}` is not K/N (e.g. 1/4), nor auto"))?;
        let number = |v: &str, what: &str| v.trim().parse::<usize>().map_err(|_| format!("`{s}`: the {what} `{v}` is not a whole number"));
        let (index, count) = (number(k, "shard")?, number(n, "shard count")?);
        if count == 0 {
            return Err(format!("`{s}`: the shard count must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(format!("`{s}`: the shard must be between 1 and {count} (shards are numbered from 1)"));
        }
        Ok(Shard { index, count })
    }
}

/// How cases are spread over shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// By a stable hash of the case.
    #[default]
    Hash,
    /// By recorded durations, longest first onto the least-loaded shard.
    Time,
}

/// What a shard's report says of its place in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Which shard of how many.
    #[serde(flatten)]
    pub shard: Shard,
    /// How the cases were spread.
    pub by: Balance,
}

/// The shard asked for: `K/N`, or `auto` (from the Slurm array job's variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// This shard.
    Fixed(Shard),
    /// `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` + 1 of `SLURM_ARRAY_TASK_COUNT`.
    Auto,
}

impl std::str::FromStr for ShardArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "auto" {
            Ok(ShardArg::Auto)
        } else {
            s.parse().map(ShardArg::Fixed)
        }
    }
}

impl ShardArg {
    /// The shard, with `auto` read from the environment.
    ///
    /// # Errors
    /// `auto` outside a Slurm array job, or with malformed variables, naming them.
    pub fn resolve(self) -> Result<Shard> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// [`ShardArg::resolve`] reading variables from `var`.
    pub fn resolve_with(self, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        match self {
            ShardArg::Fixed(s) => Ok(s),
            ShardArg::Auto => slurm(var),
        }
    }
}

/// The shard of a Slurm array task. Array indices need not start at 0 or 1 (`--array=5-8`), so
/// the shard is the task's position in the array: `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN
/// + 1` of `SLURM_ARRAY_TASK_COUNT` (the minimum is taken as 0 when unset).
fn slurm(var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
    let bad = |reason: String| Error::Setting { name: "shard auto".into(), reason };
    let read = |name: &str| -> Result<Option<usize>> {
        match var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(format!("{name}=`{v}` is not a whole number"))),
        }
    };
    let (Some(id), Some(count)) = (read("SLURM_ARRAY_TASK_ID")?, read("SLURM_ARRAY_TASK_COUNT")?) else {
        return Err(bad("needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (set by `sbatch --array`); outside Slurm give --shard K/N".into()));
    };
    let min = read("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let index = id.checked_sub(min).map(|i| i + 1).filter(|&i| i <= count && count > 0);
    let index =
        index.ok_or_else(|| bad(format!("task {id} of an array from {min} with {count} tasks is not in the array (a stepped --array is not supported)")))?;
    Ok(Shard { index, count })
}

/// 64-bit FNV-1a: tiny, and fixed forever, unlike `std`'s hasher, whose output may change
/// between Rust releases and would move cases between shards with a compiler upgrade.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The identity of `plan`: a hash over each case's index, name, kind, configuration numbers,
/// dtype, device, input shape, checks and tolerance. Two processes that built the same plan
/// from the same specs and flags agree on it; a different filter, check list, tolerance or
/// sequence length gives another.
pub fn identity(plan: &Plan) -> PlanIdentity {
    use std::fmt::Write;
    let (mut text, mut devices) = (String::new(), Vec::<String>::new());
    for c in &plan.cases {
        if !devices.contains(&c.device) {
            devices.push(c.device.clone());
        }
        let dims: Vec<String> = c.module.dims().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let checks: Vec<&str> = c.checks.iter().map(|k| k.name()).collect();
        let _ = writeln!(
            text,
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{}\u{1f}{}\u{1f}{:?}",
            c.index,
            c.name,
            c.module.kind(),
            crate::device::dtype_name(c.dtype),
            c.device,
            c.input_shape,
            dims.join(","),
            checks.join(","),
            c.tolerance
        );
    }
    PlanIdentity { fingerprint: format!("{:016x}", stable_hash(text.as_bytes())), cases: plan.cases.len(), checks: plan.check_count(), devices }
}

/// The identity of a case across runs: its test name, dtype and device.
pub type CaseKey = (String, String, String);

/// The key of `case`.
pub fn case_key(case: &Case) -> CaseKey {
    (case.name.clone(), crate::device::dtype_name(case.dtype).to_string(), case.device.clone())
}

/// The shard (0-based) of each key by hash. Names cannot hold control characters, so the unit
/// separator between the fields cannot be forged by a name.
pub fn by_hash(keys: &[CaseKey], count: usize) -> Vec<usize> {
    let count = count.max(1) as u64;
    keys.iter().map(|(n, d, v)| (stable_hash(format!("{n}\u{1f}{d}\u{1f}{v}").as_bytes()) % count) as usize).collect()
}

/// The shard (0-based) of each key by recorded seconds: longest first (ties in key order),
/// each onto the shard with the least time so far (ties to the lowest shard). A case with no
/// record, or a useless one, counts as the median of the usable records (1 s when none).
pub fn by_time(keys: &[CaseKey], seconds: &Durations, count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut known: Vec<f64> = keys.iter().filter_map(|k| seconds.get(k).copied()).filter(|s| s.is_finite() && *s >= 0.0).collect();
    known.sort_by(f64::total_cmp);
    let fallback = if known.is_empty() { 1.0 } else { known[known.len() / 2] };
    let cost = |k: &CaseKey| seconds.get(k).copied().filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(fallback);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| cost(&keys[b]).total_cmp(&cost(&keys[a])).then_with(|| keys[a].cmp(&keys[b])));
    let mut load = vec![0f64; count];
    let mut out = vec![0; keys.len()];
    for i in order {
        let target = (0..count).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).unwrap_or(0);
        load[target] += cost(&keys[i]);
        out[i] = target;
    }
    out
}

/// Recorded seconds per case.
pub type Durations = BTreeMap<CaseKey, f64>;

/// How to pick this process's cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Sharding {
    /// This shard.
    pub shard: Shard,
    /// Recorded durations to balance by ([`crate::report_file::load_durations`]); by hash
    /// when absent.
    pub durations: Option<Durations>,
}

impl Sharding {
    /// What the reports say of this shard.
    pub fn info(&self) -> ShardInfo {
        ShardInfo { shard: self.shard, by: if self.durations.is_some() { Balance::Time } else { Balance::Hash } }
    }

    /// The cases of `plan` in this shard, in plan order, each keeping its index in the whole
    /// plan (reports and `--isolate` children name cases by it).
    pub fn select(&self, plan: &Plan) -> Plan {
        let keys: Vec<CaseKey> = plan.cases.iter().map(case_key).collect();
        let assigned = match &self.durations {
            Some(d) => by_time(&keys, d, self.shard.count),
            None => by_hash(&keys, self.shard.count),
        };
        let cases = plan.cases.iter().zip(assigned).filter(|(_, s)| *s + 1 == self.shard.index).map(|(c, _)| c.clone()).collect();
        Plan { cases }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(n: usize) -> Vec<CaseKey> {
        (0..n).map(|i| (format!("model::layer{i}"), "f32".to_string(), "cpu".to_string())).collect()
    }

    #[test]
    fn shards_parse_from_one_and_refuse_zero_and_overflow() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(" 1 / 1 ".parse::<Shard>(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/4", "5/4", "1/0", "a/2", "2", "", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} was accepted");
        }
        assert!("0/4".parse::<Shard>().unwrap_err().contains("numbered from 1"));
        assert_eq!("auto".parse::<ShardArg>(), Ok(ShardArg::Auto));
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }

    #[test]
    fn the_hash_is_fnv_1a() {
        // Published FNV-1a 64 test vectors: the partition must never change with the toolchain.
        assert_eq!(stable_hash(b""), 0xcbf29ce484222325);
        assert_eq!(stable_hash(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn slurm_tasks_map_to_shards_by_position_in_the_array() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let at = |pairs| ShardArg::Auto.resolve_with(env(pairs));
        assert_eq!(at(&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "4")]).unwrap(), Shard { index: 1, count: 4 });
        assert_eq!(at(&[("SLURM_ARRAY_TASK_ID", "8"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "5")]).unwrap(), Shard { index: 4, count: 4 });
        let outside = at(&[]).unwrap_err().to_string();
        assert!(outside.contains("SLURM_ARRAY_TASK_ID") && outside.contains("--shard K/N"), "{outside}");
        assert!(at(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")]).unwrap_err().to_string().contains("`x`"));
        assert!(at(&[("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "5")]).is_err());
        assert!(at(&[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "2")]).is_err());
        assert_eq!(ShardArg::Fixed(Shard { index: 1, count: 2 }).resolve_with(|_| None).unwrap(), Shard { index: 1, count: 2 });
    }

    #[test]
    fn time_balancing_puts_the_longest_first_on_the_emptiest_shard() {
        let k = keys(5);
        let d: Durations = k.iter().cloned().zip([5.0, 4.0, 3.0, 3.0, 3.0]).collect();
        // By hand: 5 → s0 (loads 5, 0); 4 → s1 (5, 4); 3 → s1 (5, 7); 3 → s0 (8, 7); 3 → s1 (8, 10).
        assert_eq!(by_time(&k, &d, 2), vec![0, 1, 1, 0, 1]);
        // Unknown cases count as the median record.
        let partial: Durations = [(k[0].clone(), 10.0), (k[1].clone(), 2.0), (k[2].clone(), 4.0)].into_iter().collect();
        // The two unknown ones count 4 s (the median of 2, 4, 10): 10 → s0; 4, 4, 4 → s1
        // (10, 12); 2 → s0 (12, 12).
        assert_eq!(by_time(&k, &partial, 2), vec![0, 0, 1, 1, 1]);
    }

    proptest! {
        #[test]
        fn every_case_lands_in_exactly_one_shard(n in 0usize..60, count in 1usize..12, secs in prop::collection::vec(0.0f64..100.0, 60)) {
            let k = keys(n);
            let d: Durations = k.iter().cloned().zip(secs.iter().copied()).filter(|(_, s)| *s > 50.0).collect();
            for assigned in [by_hash(&k, count), by_time(&k, &d, count)] {
                prop_assert_eq!(assigned.len(), n);
                prop_assert!(assigned.iter().all(|&s| s < count));
            }
            // The same inputs give the same partition: every shard computes it on its own.
            prop_assert_eq!(by_time(&k, &d, count), by_time(&k, &d, count));
        }

        #[test]
        fn time_balancing_keeps_the_longest_shard_within_grahams_bound(secs in prop::collection::vec(0.01f64..100.0, 1..40), count in 1usize..6) {
            let k = keys(secs.len());
            let d: Durations = k.iter().cloned().zip(secs.iter().copied()).collect();
            let mut load = vec![0f64; count];
            for (s, t) in by_time(&k, &d, count).into_iter().zip(&secs) {
                load[s] += t;
            }
            // Greedy list scheduling never leaves a shard longer than the mean load plus
            // (1 − 1/N) of the longest case; a partition that piles cases up breaks it.
            let total: f64 = secs.iter().sum();
            let longest_case = secs.iter().copied().fold(0.0, f64::max);
            let bound = total / count as f64 + (1.0 - 1.0 / count as f64) * longest_case;
            let worst = load.iter().copied().fold(0.0, f64::max);
            prop_assert!(worst <= bound + 1e-9, "{worst} > {bound}");
        }
    }
}

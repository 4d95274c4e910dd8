//! The one validator of numbers that users give: command-line flags, `TENSILE_*` variables
//! and spec fields all go through these rules, so `--atol nan` and `tolerance = nan` are
//! rejected alike, with the same words, before anything runs.
//!
//! Each rule returns the value when it is acceptable and the reason otherwise; the caller
//! wraps the reason into the error of its front-end (a flag, a variable or a spec field).
//!
//! ```
//! use tensile::validate;
//! assert_eq!(validate::non_negative(1e-3), Ok(1e-3));
//! assert!(validate::non_negative(f64::NAN).unwrap_err().contains("finite"));
//! assert!(validate::correlation(2.0).unwrap_err().contains("[-1, 1]"));
//! ```

/// Largest size of any one dimension (an input dimension, `hidden_size`, a sequence length):
/// 2²⁴. Larger values overflow element counts or can never fit in memory; they are spec
/// errors, not runs that abort. The same limit as a block config's sizes
/// ([`tensile_nn::MAX_DIM`]), so there is one.
pub const MAX_DIM: usize = tensile_nn::MAX_DIM;
/// Most sequence lengths in one sweep: a sweep times every length several times over.
pub const MAX_SWEEP_LENGTHS: usize = 64;
/// Largest cache-flush buffer, in MiB: 64 GiB, far above any cache it is meant to evict.
pub const MAX_FLUSH_MIB: usize = 1 << 16;
/// Most dimensions of an input shape.
pub const MAX_RANK: usize = 8;

/// A reason a value is rejected, as written after the field's name.
pub type Reason = String;

/// A finite value ≥ 0 (absolute and relative tolerances, thresholds).
pub fn non_negative(v: f64) -> Result<f64, Reason> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be finite and ≥ 0, got {v}"))
    }
}

/// Any finite value (a floor in dB, which may be negative).
pub fn finite(v: f64) -> Result<f64, Reason> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("must be finite, got {v}"))
    }
}

/// A finite value > 0 (latency and memory targets, epsilons, θ, scaling factors).
pub fn positive(v: f64) -> Result<f64, Reason> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {v}"))
    }
}

/// A value in [-1, 1] (minimum Pearson correlation, minimum cosine similarity).
pub fn correlation(v: f64) -> Result<f64, Reason> {
    if (-1.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must lie in [-1, 1], got {v}"))
    }
}

/// A finite value strictly above `floor` (a target's margin must exceed 1).
pub fn above(v: f64, floor: f64) -> Result<f64, Reason> {
    if v.is_finite() && v > floor {
        Ok(v)
    } else {
        Err(format!("must be a finite number > {floor}, got {v}"))
    }
}

/// A number followed by a unit, as sizes and durations are written (`1.5GiB`, `1e9`, `30 s`):
/// the longest prefix that parses as a number (so `1e9` is a number, not `1` and a unit `e9`)
/// and the rest, trimmed. `None` when no prefix is a number.
pub fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    let split = (1..=t.len()).rev().filter(|&i| t.is_char_boundary(i)).find(|&i| t[..i].trim().parse::<f64>().is_ok())?;
    let (num, unit) = t.split_at(split);
    Some((num.trim().parse().ok()?, unit.trim()))
}

/// A dimension in 1..=[`MAX_DIM`].
pub fn dim(v: usize) -> Result<usize, Reason> {
    if v == 0 {
        Err("must be positive".into())
    } else if v > MAX_DIM {
        Err(format!("{v} exceeds the limit of {MAX_DIM} (2^24) on any one dimension"))
    } else {
        Ok(v)
    }
}

/// An input shape: (batch, seq, …) with 2..=[`MAX_RANK`] dimensions, each a valid [`dim`].
pub fn shape(dims: &[usize]) -> Result<(), Reason> {
    if dims.len() < 2 || dims.len() > MAX_RANK {
        return Err(format!("needs 2 to {MAX_RANK} dimensions (batch, seq, …), got {dims:?}"));
    }
    for &d in dims {
        dim(d).map_err(|r| format!("dimension {r} in {dims:?}"))?;
    }
    Ok(())
}

/// A sweep: 2..=[`MAX_SWEEP_LENGTHS`] lengths, at least two distinct, each a valid [`dim`].
pub fn sweep(lengths: &[usize]) -> Result<(), Reason> {
    if lengths.len() > MAX_SWEEP_LENGTHS {
        return Err(format!("{} lengths exceed the limit of {MAX_SWEEP_LENGTHS} per sweep", lengths.len()));
    }
    let distinct: std::collections::BTreeSet<_> = lengths.iter().collect();
    if distinct.len() < 2 {
        return Err(format!("needs at least two distinct positive lengths, got {lengths:?}"));
    }
    for &l in lengths {
        dim(l).map_err(|r| format!("length {r}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_rule_names_what_it_wants() {
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert!(non_negative(bad).is_err() && positive(bad).is_err() && above(bad, 1.0).is_err(), "{bad}");
        }
        assert_eq!(non_negative(0.0), Ok(0.0));
        assert!(positive(0.0).unwrap_err().contains("> 0"));
        assert!(above(1.0, 1.0).unwrap_err().contains("> 1"));
        assert_eq!(above(1.5, 1.0), Ok(1.5));
        for bad in [f64::NAN, -5.0, 2.0, f64::NEG_INFINITY] {
            assert!(correlation(bad).is_err(), "{bad}");
        }
        assert_eq!(correlation(-1.0), Ok(-1.0));
        assert!(dim(0).is_err() && dim(MAX_DIM + 1).unwrap_err().contains("2^24"));
        assert!(shape(&[1]).is_err() && shape(&[1; 9]).is_err() && shape(&[1, 100_000_000, 4096]).is_err());
        assert!(shape(&[1, 8, 64]).is_ok());
        assert!(sweep(&[8, 8]).is_err() && sweep(&[8, 100_000_000_000]).is_err() && sweep(&(1..=100).collect::<Vec<_>>()).is_err());
        assert!(sweep(&[8, 16]).is_ok());
        assert_eq!(number_and_unit(" 1.5 GiB "), Some((1.5, "GiB")));
        assert_eq!(number_and_unit("1e9"), Some((1e9, "")));
        assert_eq!(number_and_unit("250ms"), Some((250.0, "ms")));
        assert_eq!(number_and_unit("lots"), None);
    }

    #[test]
    fn every_limit_is_inclusive() {
        assert_eq!(dim(MAX_DIM), Ok(MAX_DIM));
        assert_eq!(dim(1), Ok(1));
        assert!(shape(&[1, 2]).is_ok() && shape(&[1; MAX_RANK]).is_ok());
        assert!(shape(&[1; MAX_RANK + 1]).is_err());
        let most: Vec<usize> = (1..=MAX_SWEEP_LENGTHS).collect();
        assert!(sweep(&most).is_ok());
        assert!(sweep(&(1..=MAX_SWEEP_LENGTHS + 1).collect::<Vec<_>>()).is_err());
    }

    proptest! {
        #[test]
        fn accepted_values_satisfy_the_rule(v in proptest::num::f64::ANY) {
            if let Ok(x) = non_negative(v) { prop_assert!(x.is_finite() && x >= 0.0); }
            if let Ok(x) = positive(v) { prop_assert!(x.is_finite() && x > 0.0); }
            if let Ok(x) = correlation(v) { prop_assert!((-1.0..=1.0).contains(&x)); }
        }
    }
}

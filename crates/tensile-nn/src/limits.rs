//! Limits and rules for the numbers in a block's configuration, shared by every config type
//! so that `rms_norm_eps = -1` or `hidden_size = 1e9` is a config error naming its field, not
//! a NaN output or an allocation that aborts the process.

use crate::error::config_err;

/// The largest size of any config dimension (`hidden_size`, `intermediate_size`, head counts,
/// `head_dim`, `vocab_size`, `max_position_embeddings`, …): 2²⁴. A larger value overflows
/// element counts or can never fit in memory, so it is rejected when the config is validated,
/// before any weight is allocated.
pub const MAX_DIM: usize = 1 << 24;

/// `v` as a size in `1..=MAX_DIM`, or a config error naming `field`.
pub(crate) fn dim(field: &'static str, v: usize) -> crate::Result<()> {
    if v == 0 {
        Err(config_err(field, "must be positive"))
    } else {
        at_most_max(field, v)
    }
}

/// `v` no larger than [`MAX_DIM`] (zero allowed: a count such as `num_hidden_layers`).
pub(crate) fn at_most_max(field: &'static str, v: usize) -> crate::Result<()> {
    if v > MAX_DIM {
        Err(config_err(field, format!("{v} exceeds the limit of {MAX_DIM} (2^24) on any config dimension")))
    } else {
        Ok(())
    }
}

/// `v` finite and strictly positive (epsilons, RoPE θ, scaling factors), or a config error
/// naming `field`. A zero or negative epsilon divides by zero or takes the root of a negative
/// number; NaN or infinity poisons every output.
pub(crate) fn positive(field: &'static str, v: f64) -> crate::Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(config_err(field, format!("must be a finite number > 0, got {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_field_and_the_value() {
        assert!(dim("hidden_size", 1).is_ok() && dim("hidden_size", MAX_DIM).is_ok());
        let e = dim("hidden_size", 0).unwrap_err().to_string();
        assert!(e.contains("`hidden_size`") && e.contains("positive"), "{e}");
        let e = dim("vocab_size", MAX_DIM + 1).unwrap_err().to_string();
        assert!(e.contains("`vocab_size`") && e.contains("16777217") && e.contains("2^24"), "{e}");
        assert!(at_most_max("num_hidden_layers", 0).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = positive("rms_norm_eps", bad).unwrap_err().to_string();
            assert!(e.contains("`rms_norm_eps`") && e.contains(&format!("got {bad}")), "{e}");
        }
        assert!(positive("rms_norm_eps", 1e-12).is_ok());
    }
}

//! Number formats shared by the human-readable reports, so the console, HTML and Markdown
//! print the same value the same way.

/// A number with `digits` significant digits: fixed notation in the everyday range, scientific
/// notation for tiny or huge values (so 1.5e-6 does not print as 0.000), and `NaN`/`inf` as is.
pub(super) fn num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        format!("{v}")
    } else if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 1e-3 && v.abs() < 1e5 {
        // The magnitude is bounded by the branch condition, so the cast cannot overflow.
        let magnitude = v.abs().log10().floor() as i64;
        let decimals = (digits as i64 - 1 - magnitude).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.prec$e}", prec = digits.saturating_sub(1))
    }
}

/// A correlation with six decimals, rounding down: a PCC of 0.9999999 must not read as a
/// perfect 1.000000.
pub(super) fn corr(v: f64) -> String {
    if v.is_finite() && v < 1.0 {
        format!("{:.6}", (v * 1e6).floor() / 1e6)
    } else {
        format!("{v:.6}")
    }
}

/// A fraction as a signed percentage with one decimal (`0.128` → `+12.8%`), `NaN` as is.
pub(super) fn signed_percent(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_exact_where_it_matters() {
        assert_eq!(
            (num(1.5e-6, 3), num(4.2, 3), num(0.0, 3), num(f64::NAN, 3), num(123456.0, 3)),
            ("1.50e-6".into(), "4.20".into(), "0".into(), "NaN".into(), "1.23e5".into())
        );
        assert_eq!((corr(0.9999999), corr(1.0), corr(f64::NAN)), ("0.999999".into(), "1.000000".into(), "NaN".into()));
        assert_eq!((signed_percent(0.128), signed_percent(-0.05), signed_percent(f64::NAN)), ("+12.8%".into(), "-5.0%".into(), "NaN".into()));
    }
}

/// Escapes text for html content and attribute values: the markup characters become
/// entities, and control and bidirectional characters are written as `\u{..}`
/// ([`super::escape::visible`]): a browser would hide them or let them reorder the page's text.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::escape::visible(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// An exponent with two decimals (`1.42`), the precision its confidence interval supports.
pub(super) fn fixed2(v: f64) -> String {
    format!("{v:.2}")
}

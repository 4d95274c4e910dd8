//! Tags on module tests and the expressions that select by them (the test strategy's pytest
//! markers: `unit`, `slow`, `gpu`, `quantization`, …).
//!
//! A case carries its spec's own tags plus built-in ones:
//! - `gpu` for a CUDA device, `cpu` otherwise;
//! - `slow` when one forward at the case's input shape costs more than [`SLOW_FLOPS`];
//! - the block family (the kind up to its first dot: `llama`, `bert`, `modernbert`, `lora`,
//!   `quantized`, …) and the kind itself (`llama.attention`);
//! - `quantization` for quantized kinds.
//!
//! An expression combines tags with `and`, `or`, `not` and parentheses, `not` binding
//! tightest and `and` tighter than `or`: `quantization and not slow`, `gpu or (llama and slow)`.
//!
//! ```
//! use tensile::tags::TagExpr;
//! let e: TagExpr = "quantization and not slow".parse().unwrap();
//! assert!(e.matches(&["quantization", "cpu"]));
//! assert!(!e.matches(&["quantization", "slow"]));
//! assert!("a and (b or c".parse::<TagExpr>().unwrap_err().contains("expected `)`"));
//! ```

use std::collections::BTreeSet;
use std::fmt;

/// One forward costing more than this many FLOPs makes a case `slow` (about a tenth of a
/// second on a 2-core CPU).
pub const SLOW_FLOPS: f64 = 2e10;

/// A tag expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExpr {
    /// A tag.
    Tag(String),
    /// Both.
    And(Box<TagExpr>, Box<TagExpr>),
    /// Either.
    Or(Box<TagExpr>, Box<TagExpr>),
    /// Not.
    Not(Box<TagExpr>),
}

impl TagExpr {
    /// Whether a case with `tags` is selected.
    pub fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        match self {
            TagExpr::Tag(t) => tags.iter().any(|x| x.as_ref() == t),
            TagExpr::And(a, b) => a.matches(tags) && b.matches(tags),
            TagExpr::Or(a, b) => a.matches(tags) || b.matches(tags),
            TagExpr::Not(a) => !a.matches(tags),
        }
    }
}

/// Prints fully parenthesised, so printing then parsing gives the same expression.
impl fmt::Display for TagExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagExpr::Tag(t) => write!(f, "{t}"),
            TagExpr::And(a, b) => write!(f, "({a} and {b})"),
            TagExpr::Or(a, b) => write!(f, "({a} or {b})"),
            TagExpr::Not(a) => write!(f, "not {a}"),
        }
    }
}

/// Whether `t` is a valid tag: letters, digits, `_`, `-` and `.`, not a keyword.
pub fn is_tag(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) && !["and", "or", "not"].contains(&t)
}

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        } else if c.is_ascii_alphanumeric() || "_-.".contains(c) {
            word.push(c);
        } else {
            return Err(format!("unexpected character `{c}` (tags are letters, digits, `_`, `-` and `.`)"));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn or(&mut self) -> Result<TagExpr, String> {
        let mut e = self.and()?;
        while self.peek() == Some("or") {
            self.at += 1;
            e = TagExpr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<TagExpr, String> {
        let mut e = self.not()?;
        while self.peek() == Some("and") {
            self.at += 1;
            e = TagExpr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<TagExpr, String> {
        match self.next() {
            Some(t) if t == "not" => Ok(TagExpr::Not(Box::new(self.not()?))),
            Some(t) if t == "(" => {
                let e = self.or()?;
                match self.next() {
                    Some(t) if t == ")" => Ok(e),
                    Some(t) => Err(format!("expected `)`, found `{t}`")),
                    None => Err("expected `)` at the end".into()),
                }
            }
            Some(t) if is_tag(&t) => Ok(TagExpr::Tag(t)),
            Some(t) => Err(format!("expected a tag, `not` or `(`, found `{t}`")),
            None => Err("expected a tag at the end".into()),
        }
    }
}

impl std::str::FromStr for TagExpr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut p = Parser { tokens: tokens(s)?, at: 0 };
        let e = p.or()?;
        match p.next() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected `{t}` after a complete expression")),
        }
    }
}

/// The tags of a case: `own` (the spec's) and the built-in ones for its module `kind`,
/// `device` and the FLOPs of one forward.
pub fn case_tags(own: &[String], kind: &str, device: &str, flops: f64) -> Vec<String> {
    let mut t: BTreeSet<String> = own.iter().cloned().collect();
    t.insert(if device.starts_with("cuda") { "gpu" } else { "cpu" }.to_string());
    if flops > SLOW_FLOPS {
        t.insert("slow".into());
    }
    t.insert(kind.to_string());
    let family = kind.split('.').next().unwrap_or(kind);
    t.insert(family.to_string());
    if family == "quantized" {
        t.insert("quantization".into());
    }
    t.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag() -> impl Strategy<Value = TagExpr> {
        prop_oneof![Just("a"), Just("b"), Just("slow"), Just("gpu")].prop_map(|t| TagExpr::Tag(t.to_string()))
    }

    fn expr() -> impl Strategy<Value = TagExpr> {
        tag().prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| TagExpr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| TagExpr::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| TagExpr::Not(Box::new(a))),
            ]
        })
    }

    proptest! {
        /// Printing and parsing give back the expression.
        #[test]
        fn printing_then_parsing_is_the_identity(e in expr()) {
            prop_assert_eq!(e.to_string().parse::<TagExpr>().unwrap(), e);
        }

        /// `not (a or b)` selects exactly what `not a and not b` does (De Morgan), on every
        /// set of tags.
        #[test]
        fn de_morgan_holds(a in expr(), b in expr(), tags in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("slow"), Just("gpu")], 0..4)) {
            let left: TagExpr = format!("not ({a} or {b})").parse().unwrap();
            let right: TagExpr = format!("not {a} and not {b}").parse().unwrap();
            prop_assert_eq!(left.matches(&tags), right.matches(&tags));
        }

        /// Any string parses or fails with a message; it never panics.
        #[test]
        fn any_string_parses_or_fails_cleanly(s in ".{0,40}") {
            let _ = s.parse::<TagExpr>();
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let e: TagExpr = "a or b and not c".parse().unwrap();
        assert_eq!(e.to_string(), "(a or (b and not c))");
        assert!(e.matches(&["a", "c"]) && e.matches(&["b"]) && !e.matches(&["b", "c"]));
        for (bad, says) in
            [("", "expected a tag"), ("a and", "expected a tag"), ("(a", "expected `)`"), ("a b", "unexpected `b`"), ("a & b", "unexpected character `&`")]
        {
            let err = bad.parse::<TagExpr>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn built_in_tags_follow_device_cost_and_kind() {
        let t = case_tags(&["mine".into()], "quantized.linear", "cuda:0", 1e11);
        assert_eq!(t, ["gpu", "mine", "quantization", "quantized", "quantized.linear", "slow"]);
        let t = case_tags(&[], "llama.attention", "cpu", 1e6);
        assert_eq!(t, ["cpu", "llama", "llama.attention"]);
        assert!(is_tag("bert.layer") && !is_tag("and") && !is_tag("a b"));
    }
}

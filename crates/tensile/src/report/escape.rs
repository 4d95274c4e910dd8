//! What a reader sees of text that came from outside: test names, error and panic messages,
//! notes, skip reasons, paths, device and host names.
//!
//! Such text can carry characters that act instead of showing: an ESC starts a terminal
//! escape sequence (it can recolour, move the cursor, rewrite the title or hide the rest of a
//! line), a BEL rings, a carriage return overwrites the line it ends, a NUL cuts a C string,
//! and a bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) makes the text read
//! in another order than it is stored. Every reporter passes such text through [`visible`] or
//! [`visible_line`], which write those characters as Rust escapes (`\u{1b}`), so what is
//! printed is what is there. Names are stricter still: [`crate::Plan::new`] rejects them
//! (see [`forbidden_in_name`]).
//!
//! ```
//! use tensile::report::escape::{visible, visible_line};
//!
//! assert_eq!(visible("bell\u{7} \u{1b}[31mred\u{202e}"), "bell\\u{7} \\u{1b}[31mred\\u{202e}");
//! assert_eq!(visible("two\nlines\tkept"), "two\nlines\tkept");
//! assert_eq!(visible_line("one\nline"), "one\\u{a}line");
//! ```

use std::borrow::Cow;

/// Whether `c` is a bidirectional formatting control: the Arabic letter mark, the left-to-right
/// and right-to-left marks, the embeddings and overrides (U+202A–U+202E) and the isolates
/// (U+2066–U+2069). They are invisible and reorder the text around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether a name may not contain `c`: a control character (Unicode category Cc, which
/// includes NUL, BEL, ESC, tab, newline and the C1 controls) or a bidirectional control.
/// Names end up in terminal tables, file names, XML attributes and Markdown cells, where none
/// of these can be shown as they are.
pub fn forbidden_in_name(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `s` with every control and bidirectional character written as `\u{..}`, except tab and
/// newline, which multi-line messages (a panic's, a failure's text) need and which act on no
/// terminal state. Borrows when there is nothing to escape, which is the usual case.
pub fn visible(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| forbidden_in_name(c) && !matches!(c, '\t' | '\n'))
}

/// Like [`visible`], and tab and newline escaped too: for text that must stay on one line (a
/// table cell, a test name, an attribute).
pub fn visible_line(s: &str) -> Cow<'_, str> {
    escape_where(s, forbidden_in_name)
}

fn escape_where(s: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn controls_and_bidi_characters_are_escaped() {
        assert_eq!(visible("\u{0}\u{7}\u{1b}\r\u{7f}\u{9b}"), "\\u{0}\\u{7}\\u{1b}\\u{d}\\u{7f}\\u{9b}");
        for c in ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert_eq!(visible(&c.to_string()), format!("\\u{{{:x}}}", c as u32));
        }
        assert_eq!(visible_line("a\tb\nc"), "a\\u{9}b\\u{a}c");
        assert!(matches!(visible("plain \u{200e}"), Cow::Owned(_)));
        assert!(matches!(visible("plain ünïcode ✓ 𝄞"), Cow::Borrowed(_)));
        assert!(!forbidden_in_name('\u{200B}') && !forbidden_in_name('é') && forbidden_in_name('\u{85}'));
    }

    proptest! {
        #[test]
        fn nothing_forbidden_survives(s in any::<String>()) {
            prop_assert!(!visible_line(&s).chars().any(forbidden_in_name));
            prop_assert!(!visible(&s).chars().any(|c| forbidden_in_name(c) && !matches!(c, '\t' | '\n')));
        }
    }
}

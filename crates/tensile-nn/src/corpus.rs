//! Labelled text corpora read from local files (no network at run time).

use crate::error::{Error, Result};
use crate::files;
use std::path::Path;

/// The quotations of a `fortune` database file: entries separated by lines holding only `%`,
/// each trimmed, empty ones dropped. The files are mostly ASCII; any byte that is not UTF-8
/// (an old Latin-1 accent) becomes U+FFFD rather than an error.
pub fn fortunes(path: &Path) -> Result<Vec<String>> {
    let bytes = files::read(path, files::MAX_JSON_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    let mut entry = String::new();
    for line in text.lines() {
        if line.trim_end() == "%" {
            push_entry(&mut out, &mut entry);
        } else {
            entry.push_str(line);
            entry.push('\n');
        }
    }
    push_entry(&mut out, &mut entry);
    if out.is_empty() {
        return Err(Error::Model { path: path.to_path_buf(), reason: "holds no fortune".into() });
    }
    Ok(out)
}

fn push_entry(out: &mut Vec<String>, entry: &mut String) {
    let trimmed = entry.trim();
    if !trimmed.is_empty() {
        out.push(trimmed.to_string());
    }
    entry.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_on_percent_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first\n  line two\n%\n%\n\nsecond \xe9\n%   \nthird").unwrap();
        assert_eq!(fortunes(&path).unwrap(), ["first\n  line two", "second \u{fffd}", "third"]);
        std::fs::write(&path, "%\n \n%\n").unwrap();
        assert!(fortunes(&path).unwrap_err().to_string().contains("holds no fortune"));
        assert!(fortunes(&dir.path().join("absent")).unwrap_err().to_string().contains("absent"));
    }
}

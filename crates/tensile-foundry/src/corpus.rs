//! The raw corpus: files named by paths or globs, read one document at a time so that memory
//! does not grow with the corpus, and split into training and validation documents by a hash
//! of the seed and the document's index.

use crate::config::{LoadedConfig, NonUtf8};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The files of a corpus, in a stable order, and how their documents are delimited.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The files, sorted, each once.
    pub files: Vec<PathBuf>,
    /// A line that separates documents within a file (`%` in the fortunes files); without
    /// one, each file is one document.
    pub separator: Option<String>,
    /// What to do with bytes that are not UTF-8.
    pub non_utf8: NonUtf8,
}

/// Expands `patterns` (paths or globs, relative to `base`) into regular files, sorted and
/// without duplicates. A pattern that matches nothing is an error naming it.
pub fn expand(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in patterns {
        let full = base.join(p);
        let text = full.to_string_lossy().into_owned();
        let bad = |reason: String| Error::Invalid { field: "data.sources", reason };
        let mut matched = 0;
        for entry in glob::glob(&text).map_err(|e| bad(format!("`{p}` is not a valid glob: {e}")))? {
            let path = entry.map_err(|e| bad(e.to_string()))?;
            if path.is_file() {
                files.push(path);
                matched += 1;
            }
        }
        if matched == 0 {
            return Err(bad(format!("`{p}` matches no file (looked for {text})")));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

impl Corpus {
    /// The training corpus a config names.
    pub fn from_config(loaded: &LoadedConfig) -> Result<Self> {
        let base = loaded.path.parent().unwrap_or(Path::new("."));
        let d = &loaded.config.data;
        Ok(Self { files: expand(&d.sources, base)?, separator: d.document_separator.clone(), non_utf8: d.non_utf8 })
    }

    /// The validation corpus a config names in `validation_files`, if any.
    pub fn validation_from_config(loaded: &LoadedConfig) -> Result<Option<Self>> {
        let d = &loaded.config.data;
        if d.validation_files.is_empty() {
            return Ok(None);
        }
        let base = loaded.path.parent().unwrap_or(Path::new("."));
        Ok(Some(Self { files: expand(&d.validation_files, base)?, separator: d.document_separator.clone(), non_utf8: d.non_utf8 }))
    }

    /// Total bytes of the files (for progress and throughput).
    pub fn bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
    }

    /// Calls `f` with each non-empty document in order, and the bytes read so far. Documents
    /// are trimmed of the separator lines and of surrounding blank lines only; their text is
    /// otherwise kept exactly.
    pub fn for_each_document(&self, mut f: impl FnMut(&str, u64) -> Result<()>) -> Result<()> {
        let mut done = 0u64;
        for path in &self.files {
            let io = |source| Error::Nn(tensile_nn::Error::Io { path: path.clone(), source });
            let file = std::fs::File::open(path).map_err(io)?;
            let mut reader = BufReader::new(file);
            let mut doc = String::new();
            let mut raw = Vec::new();
            let mut offset = 0u64;
            loop {
                raw.clear();
                let n = reader.read_until(b'\n', &mut raw).map_err(io)?;
                if n == 0 {
                    break;
                }
                let line = match std::str::from_utf8(&raw) {
                    Ok(s) => std::borrow::Cow::Borrowed(s),
                    Err(e) => match self.non_utf8 {
                        NonUtf8::Lossy => String::from_utf8_lossy(&raw),
                        NonUtf8::Error => {
                            return Err(Error::Corpus {
                                path: path.clone(),
                                reason: format!("not UTF-8 at byte {} (set data.non_utf8 = \"lossy\" to replace it)", offset + e.valid_up_to() as u64),
                            })
                        }
                    },
                };
                offset += n as u64;
                let is_separator = self.separator.as_deref().is_some_and(|s| line.trim_end_matches(['\n', '\r']) == s);
                if is_separator {
                    emit(&mut doc, &mut f, done + offset)?;
                } else {
                    doc.push_str(&line);
                }
            }
            done += offset;
            emit(&mut doc, &mut f, done)?;
        }
        Ok(())
    }
}

/// Passes the collected document to `f` (unless it is blank) and clears it.
fn emit(doc: &mut String, f: &mut impl FnMut(&str, u64) -> Result<()>, done: u64) -> Result<()> {
    let text = doc.trim_matches('\n');
    if !text.trim().is_empty() {
        f(text, done)?;
    }
    doc.clear();
    Ok(())
}

/// 2⁶⁴ / φ, SplitMix64's increment.
pub(crate) const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a well-mixed 64-bit value from `z`.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether document `index` goes to validation: a hash of the seed and the index, compared
/// with `fraction`, so the split is fixed by the seed and needs no second pass.
pub fn is_validation(seed: u64, index: u64, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    // Well mixed, so consecutive documents are independent.
    let z = splitmix64(seed ^ index.wrapping_mul(GOLDEN));
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(files: Vec<PathBuf>, sep: Option<&str>, non_utf8: NonUtf8) -> Corpus {
        Corpus { files, separator: sep.map(String::from), non_utf8 }
    }

    #[test]
    fn documents_split_at_separator_lines_and_keep_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "one\ntwo  spaces\n%\n\n%\nthree\n%\n").unwrap();
        let b = dir.path().join("b");
        std::fs::write(&b, "last, no newline").unwrap();
        let mut docs = Vec::new();
        corpus(vec![a.clone(), b.clone()], Some("%"), NonUtf8::Error)
            .for_each_document(|d, _| {
                docs.push(d.to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(docs, ["one\ntwo  spaces", "three", "last, no newline"]);
        let mut whole = Vec::new();
        corpus(vec![a], None, NonUtf8::Error)
            .for_each_document(|d, _| {
                whole.push(d.to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(whole, ["one\ntwo  spaces\n%\n\n%\nthree\n%"]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.txt");
        std::fs::write(&f, b"fine\nhello \xff world\n").unwrap();
        let err = corpus(vec![f.clone()], None, NonUtf8::Error).for_each_document(|_, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("not UTF-8 at byte 11"), "{err}");
        let mut docs = Vec::new();
        corpus(vec![f], None, NonUtf8::Lossy)
            .for_each_document(|d, _| {
                docs.push(d.to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(docs, ["fine\nhello \u{fffd} world"]);
    }

    #[test]
    fn globs_expand_sorted_and_a_pattern_without_match_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.txt", "a.txt", "c.md"] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let files = expand(&["*.txt".into(), "a.txt".into()], dir.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
        let err = expand(&["*.csv".into()], dir.path()).unwrap_err().to_string();
        assert!(err.contains("`*.csv` matches no file"), "{err}");
    }

    #[test]
    fn the_split_is_fixed_by_the_seed_and_near_its_fraction() {
        let val = (0..10_000).filter(|&i| is_validation(7, i, 0.1)).count();
        assert!((900..1100).contains(&val), "{val}");
        assert_eq!((0..100).map(|i| is_validation(7, i, 0.1)).collect::<Vec<_>>(), (0..100).map(|i| is_validation(7, i, 0.1)).collect::<Vec<_>>());
        assert_ne!((0..100).map(|i| is_validation(7, i, 0.5)).collect::<Vec<_>>(), (0..100).map(|i| is_validation(8, i, 0.5)).collect::<Vec<_>>());
        assert!(!(0..1000).any(|i| is_validation(1, i, 0.0)));
    }
}

//! Bounded reads of the files in a model directory. A FIFO would block forever and
//! `/dev/zero` would grow memory without bound, so only regular files up to a stated size are
//! read; the same rules as `tensile::input`, which this crate cannot depend on.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest JSON file read (configs, `tokenizer.json`): far above any real tokenizer.
pub(crate) const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest weights file read.
pub(crate) const MAX_WEIGHTS_BYTES: u64 = 64 << 30;

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Input { path: path.to_path_buf(), reason: reason.into() }
}

/// The bytes of the regular file `path`, refused (before a byte is read) when it is a
/// directory, a FIFO, a device or larger than `limit`; the read itself stops past `limit`.
pub(crate) fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(refuse(path, "is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(refuse(path, "is not a regular file (a FIFO, a device or a socket)"));
    }
    if meta.len() > limit {
        return Err(refuse(path, format!("is {} bytes, more than the {limit} bytes read from such a file", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path).map_err(io)?.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(refuse(path, format!("grew past the {limit} bytes read from such a file while it was read")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 10).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let p = dir.path().join("config.json");
        std::fs::write(&p, b"{}").unwrap();
        assert_eq!(read(&p, 10).unwrap(), b"{}");
        let e = read(&p, 1).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("2 bytes"), "{e}");
        let e = read(Path::new("/dev/zero"), 10).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");
        assert!(matches!(read(&dir.path().join("missing"), 10), Err(Error::Io { .. })));
    }
}

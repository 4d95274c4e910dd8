//! Reading input files that a user names: spec files, reference cases, baselines, PyTorch
//! timings, model configs and tokenizers.
//!
//! Every read goes through [`read`] or [`read_to_string`], which accept only regular files and
//! only up to a stated size. A FIFO would block the run forever and `/dev/zero` would grow
//! memory without bound; both, and a directory, are refused with a one-line error before a
//! byte is read.

use crate::error::{Error, Result};
use std::path::Path;

/// Largest spec file read (TOML): far above any hand-written spec.
pub const MAX_SPEC_BYTES: u64 = 16 << 20;
/// Largest baseline, PyTorch timing file or JSON config read.
pub const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest tensor file (reference case, weights) read.
pub const MAX_TENSOR_BYTES: u64 = 64 << 30;

/// The block library's reader, which this one shares (the rules live in one place), with its
/// errors as this crate's.
fn lift(e: tensile_nn::Error) -> Error {
    match e {
        tensile_nn::Error::Input { path, reason } => Error::Input { path, reason },
        tensile_nn::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Input { path: Default::default(), reason: other.to_string() },
    }
}

/// Checks that `path` is a regular file (following symlinks) no larger than `limit` bytes,
/// and returns its size.
pub fn regular_file(path: &Path, limit: u64) -> Result<u64> {
    tensile_nn::files::regular_file(path, limit).map_err(lift)
}

/// The bytes of the regular file `path`, refused when larger than `limit`. The read itself is
/// bounded too, so a file that grows while it is read cannot exhaust memory.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    tensile_nn::files::read(path, limit).map_err(lift)
}

/// The UTF-8 text of the regular file `path`, refused when larger than `limit`.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| Error::Input { path: path.to_path_buf(), reason: format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spec.toml");
        std::fs::write(&p, "name = 1\n").unwrap();
        assert_eq!(read_to_string(&p, 100).unwrap(), "name = 1\n");
        assert_eq!(regular_file(&p, 100).unwrap(), 9);
    }

    #[test]
    fn refuses_directories_oversized_and_non_utf8_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 100).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let p = dir.path().join("big");
        std::fs::write(&p, [b'x'; 11]).unwrap();
        let e = read(&p, 10).unwrap_err().to_string();
        assert!(e.contains("11 bytes") && e.contains("10 bytes"), "{e}");
        std::fs::write(&p, [b'a', 0xff, b'b']).unwrap();
        let e = read_to_string(&p, 10).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("offset 1"), "{e}");
        let e = read(&dir.path().join("missing"), 10).unwrap_err().to_string();
        assert!(e.starts_with("failed to read") && e.contains("missing"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_fifos_and_devices_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
        if made {
            let e = read(&fifo, 100).unwrap_err().to_string();
            assert!(e.contains("a FIFO"), "{e}");
        } else {
            eprintln!("skipping the FIFO case: mkfifo is not available");
        }
        let e = read(Path::new("/dev/zero"), 100).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("character device"), "{e}");
    }
}

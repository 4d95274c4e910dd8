//! Reading input files that a user names: spec files, reference cases, baselines, PyTorch
//! timings, model configs and tokenizers.
//!
//! Every read goes through [`read`] or [`read_to_string`], which accept only regular files and
//! only up to a stated size. A FIFO would block the run forever and `/dev/zero` would grow
//! memory without bound; both, and a directory, are refused with a one-line error before a
//! byte is read.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest spec file read (TOML): far above any hand-written spec.
pub const MAX_SPEC_BYTES: u64 = 16 << 20;
/// Largest baseline, PyTorch timing file or JSON config read.
pub const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest tensor file (reference case, weights) read.
pub const MAX_TENSOR_BYTES: u64 = 64 << 30;

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Input { path: path.to_path_buf(), reason: reason.into() }
}

/// Checks that `path` is a regular file (following symlinks) no larger than `limit` bytes,
/// and returns its size.
pub fn regular_file(path: &Path, limit: u64) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(refuse(path, "is a directory, not a file"));
    }
    if !ft.is_file() {
        return Err(refuse(path, format!("is not a regular file (it is {})", special_kind(&ft))));
    }
    if meta.len() > limit {
        return Err(refuse(path, format!("is {} bytes, more than the {limit} bytes read from such a file", meta.len())));
    }
    Ok(meta.len())
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// The bytes of the regular file `path`, refused when larger than `limit`. The read itself is
/// bounded too, so a file that grows while it is read cannot exhaust memory.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = regular_file(path, limit)?;
    let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > limit {
        return Err(refuse(path, format!("grew past the {limit} bytes read from such a file while it was read")));
    }
    Ok(bytes)
}

/// The UTF-8 text of the regular file `path`, refused when larger than `limit`.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|e| refuse(path, format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
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

//! Atomic writes ([`write_atomic`]), and bounded reads of files a user names: model directories here, and, through
//! `tensile::input`, spec files, reference cases and baselines. A FIFO would block forever and
//! `/dev/zero` would grow memory without bound, so only regular files up to a stated size are
//! read, and both (and a directory) are refused before a byte is read.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest JSON file read (configs, `tokenizer.json`): far above any real tokenizer.
pub const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest weights file read.
pub const MAX_WEIGHTS_BYTES: u64 = 64 << 30;

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
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path).map_err(io)?.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(refuse(path, format!("grew past the {limit} bytes read from such a file while it was read")));
    }
    Ok(bytes)
}

/// Replaces `path` with `contents` atomically, so a reader sees the old contents or the new,
/// never a mix: they go to a temporary file beside the target, are flushed to disk, and replace
/// it by a rename. The temporary file, in the same folder (a rename
/// is atomic only within one file system), is removed again if anything fails.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    // Unique per process and call, so concurrent writers of the same target never share one.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        use std::io::Write;
        f.write_all(contents.as_ref())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
        assert_eq!(regular_file(&p, 10).unwrap(), 2);
        let e = read(&p, 1).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("2 bytes"), "{e}");
        let e = read(Path::new("/dev/zero"), 10).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("character device"), "{e}");
        assert!(matches!(read(&dir.path().join("missing"), 10), Err(Error::Io { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        if !std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
            eprintln!("skipping: mkfifo is not available");
            return;
        }
        let e = read(&fifo, 100).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
    }
}

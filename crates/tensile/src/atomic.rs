//! Writing files so that a reader sees either the old contents or the new, never a mix: the
//! new contents go to a temporary file beside the target, are flushed to disk, and replace the
//! target by a rename. A full disk or a crash mid-write leaves the previous report, baseline
//! or results file as it was.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Replaces `path` with `contents` atomically. The temporary file, in the same folder (a rename
/// is atomic only within one file system), is removed again if anything fails.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    // Unique per process and call, so concurrent writers of the same target never share one.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
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

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        write(&p, "old").unwrap();
        write(&p, b"new contents").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new contents");
        assert_eq!(names(dir.path()), ["report.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        write(&p, "old").unwrap();
        // Renaming a file over a non-empty folder fails after the temporary file was written.
        let blocker = dir.path().join("blocked");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("inside"), "x").unwrap();
        assert!(write(&blocker, "new").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(names(dir.path()), ["blocked", "report.json"]);
        // A missing folder is an error, not a panic.
        assert!(write(&dir.path().join("missing/report.json"), "x").is_err());
    }
}

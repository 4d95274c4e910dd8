//! Writing files so that a reader sees either the old contents or the new, never a mix: the
//! new contents go to a temporary file beside the target, are flushed to disk, and replace the
//! target by a rename. A full disk or a crash mid-write leaves the previous report, baseline
//! or results file as it was.

/// The one atomic writer of the workspace, shared with tensile-nn (whose model saving uses it).
pub use tensile_nn::files::write_atomic as write;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

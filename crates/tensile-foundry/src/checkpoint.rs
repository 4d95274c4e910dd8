//! Checkpoint folders: written whole or not at all, found by step, pruned to the newest few
//! plus the best.
//!
//! A checkpoint is a folder `step-{step:08}` under the run's `checkpoints/`. It is written
//! into a temporary sibling (`.tmp-…`), every file and the folder are fsynced, and only then
//! is it renamed into place (and the parent fsynced): a crash at any moment leaves either the
//! complete new checkpoint or none, never half of one, and the earlier ones untouched. A
//! folder counts as a checkpoint only with its `trainer_state.json`, written last.
//! "Latest" means the highest step, not the newest modification time, which copies and
//! clock changes can reorder.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The file that completes a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";

/// Environment variable for tests only: when set to a step, the write of that step's
/// checkpoint stops half-way (after the weights, before the rest), prints
/// `holding checkpoint write` on standard error and waits for standard input to close, so a
/// test can kill the process at exactly that point.
pub const HOLD_ENV: &str = "TENSILE_FOUNDRY_HOLD_CHECKPOINT";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() }
}

/// The folder name of step `step`.
pub fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The step a checkpoint folder name stands for.
pub fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Writes the checkpoint of `step` under `root`: `fill` writes the files into a temporary
/// folder, which is then made durable and renamed into place. Returns the final folder.
pub fn save(root: &Path, step: u64, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(io(root))?;
    let tmp = root.join(format!(".tmp-{}-{}", dir_name(step), std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    fill(&tmp)?;
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
        let path = entry.map_err(io(&tmp))?.path();
        File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
    }
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    let dest = root.join(dir_name(step));
    if dest.exists() {
        // The same step saved again (a run resumed from it and stopped there): the new one wins.
        fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    File::open(root).and_then(|f| f.sync_all()).map_err(io(root))?;
    Ok(dest)
}

/// Blocks as [`HOLD_ENV`] asks when `step` is the step it names (test hook).
pub fn hold_if_asked(step: u64) {
    if std::env::var(HOLD_ENV).ok().and_then(|v| v.parse::<u64>().ok()) == Some(step) {
        eprintln!("holding checkpoint write at step {step}");
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    }
}

/// The complete checkpoints under `root`, by ascending step.
pub fn list(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((step_of(e.file_name().to_str()?)?, e.path())))
        .filter(|(_, p)| p.join(STATE_FILE).is_file())
        .collect();
    found.sort();
    found
}

/// The checkpoint with the highest step under `root`.
pub fn latest(root: &Path) -> Option<PathBuf> {
    list(root).pop().map(|(_, p)| p)
}

/// Removes temporary folders left by writes that never finished (a killed process).
pub fn remove_unfinished(root: &Path) -> Result<usize> {
    let Ok(entries) = fs::read_dir(root) else { return Ok(0) };
    let mut n = 0;
    for e in entries.filter_map(|e| e.ok()) {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(".tmp-")) {
            fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes every checkpoint but the newest `keep` and the step `best`; returns the steps
/// removed.
pub fn prune(root: &Path, keep: usize, best: Option<u64>) -> Result<Vec<u64>> {
    let all = list(root);
    let cut = all.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (step, path) in &all[..cut] {
        if Some(*step) != best {
            fs::remove_dir_all(path).map_err(io(path))?;
            removed.push(*step);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, step: u64) -> PathBuf {
        save(dir, step, |tmp| {
            fs::write(tmp.join("model.safetensors"), step.to_le_bytes()).unwrap();
            fs::write(tmp.join(STATE_FILE), "{}").unwrap();
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn latest_is_by_step_and_incomplete_folders_do_not_count() {
        let d = tempfile::tempdir().unwrap();
        for s in [10, 2, 100] {
            write(d.path(), s);
        }
        // A folder without its state file (as a copy in progress might leave) is not a checkpoint.
        fs::create_dir(d.path().join(dir_name(500))).unwrap();
        // Modification times say nothing: touch the oldest step last.
        fs::write(d.path().join(dir_name(2)).join("extra"), "x").unwrap();
        assert_eq!(list(d.path()).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 10, 100]);
        assert_eq!(latest(d.path()).unwrap(), d.path().join("step-00000100"));
        assert_eq!(step_of("step-00000100"), Some(100));
        assert_eq!(step_of("step-x"), None);
        assert!(latest(&d.path().join("missing")).is_none());
    }

    #[test]
    fn a_failed_write_leaves_the_earlier_checkpoints_and_no_final_folder() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), 1);
        let err = save(d.path(), 2, |tmp| {
            fs::write(tmp.join("model.safetensors"), b"half").unwrap();
            Err(Error::Invalid { field: "test", reason: "disk full".into() })
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert_eq!(latest(d.path()).unwrap(), d.path().join(dir_name(1)));
        assert!(!d.path().join(dir_name(2)).exists());
        assert_eq!(remove_unfinished(d.path()).unwrap(), 1, "the temporary folder is found and removed");
        assert_eq!(remove_unfinished(d.path()).unwrap(), 0);
        // Saving a step again replaces it.
        write(d.path(), 1);
        assert_eq!(list(d.path()).len(), 1);
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_best() {
        let d = tempfile::tempdir().unwrap();
        for s in 1..=6 {
            write(d.path(), s);
        }
        assert_eq!(prune(d.path(), 2, Some(2)).unwrap(), vec![1, 3, 4]);
        assert_eq!(list(d.path()).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 5, 6]);
        assert_eq!(prune(d.path(), 5, None).unwrap(), Vec::<u64>::new());
    }
}

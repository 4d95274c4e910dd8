//! The crate reads as one flow (front-ends → plan → runner → events → reporters): no module of
//! crates/tensile imports a module that imports it back. `tools/arch/imports.py` builds the
//! import graph from the sources and lists every cycle.

use std::path::Path;
use std::process::Command;

#[test]
fn crates_tensile_has_no_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("../../tools/arch/imports.py");
    let out = match Command::new("python3").arg(&script).arg(root.join("src")).output() {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: python3 is not available to run {}: {e}", script.display());
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import cycles in crates/tensile:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let summary = text.lines().last().unwrap_or_default();
    assert!(summary.ends_with(" 0 cycles") && !summary.starts_with("0 modules"), "{text}");
}

//! `cargo test -p modernbert-example` runs every declared module check as its own test, e.g.
//! `modernbert::attention::correctness`.

use modernbert_example::ModernBertClassifier;
use tensile::ModuleTest;

/// The registry form: collected at link time.
#[tensile::model_tests("modernbert")]
fn modernbert() -> Vec<ModuleTest> {
    ModernBertClassifier::tiny().expect("builds").all_module_tests().expect("valid specs")
}

/// The repository's ModernBERT spec file, registered too.
#[tensile::model_tests("modernbert_spec")]
fn modernbert_spec() -> Vec<ModuleTest> {
    tensile::specfile::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/modernbert.toml"))).expect("valid spec file")
}

tensile::harness!();

//! `cargo test -p llama3-example` (or `cargo nextest run`) runs every declared module check
//! as its own test, e.g. `llama3::attention::correctness`.

use llama3_example::Llama3Block;
use tensile::ModuleTest;

/// The registry form: collected at link time.
#[tensile::model_tests("llama3")]
fn llama3() -> Vec<ModuleTest> {
    Llama3Block::tiny().expect("builds").all_module_tests().expect("valid specs")
}

/// The spec-file form, registered too.
#[tensile::model_tests("llama3_spec")]
fn llama3_spec() -> Vec<ModuleTest> {
    tensile::specfile::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/llama3.toml"))).expect("valid spec file")
}

tensile::harness!();

//! Fuzz target `spec_file`: the body is `tensile_fuzz::spec_file` (fuzz/src/lib.rs), which the stable
//! test crates/tensile/tests/fuzz_corpora.rs also runs on every committed corpus file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tensile_fuzz::spec_file(data);
});

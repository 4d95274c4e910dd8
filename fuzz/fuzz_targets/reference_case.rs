//! Fuzz target `reference_case`: the body is `tensile_fuzz::reference_case` (fuzz/src/lib.rs), which the stable
//! test crates/tensile/tests/fuzz_corpora.rs also runs on every committed corpus file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tensile_fuzz::reference_case(data);
});

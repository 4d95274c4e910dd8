//! Fuzz target `baseline`: the body is `tensile_fuzz::baseline` (fuzz/src/lib.rs), which the stable
//! test crates/tensile/tests/fuzz_corpora.rs also runs on every committed corpus file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tensile_fuzz::baseline(data);
});

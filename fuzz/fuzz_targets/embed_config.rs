//! Fuzz target `embed_config`: the body is `tensile_fuzz::embed_config` (fuzz/src/lib.rs), which the stable
//! test crates/tensile/tests/fuzz_corpora.rs also runs on every committed corpus file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tensile_fuzz::embed_config(data);
});

//! Fuzzes job receipts, verified against the frozen fixture's network. The body
//! is `glassbox_fuzz::receipt` (fuzz/src/lib.rs), which the corpus replay test
//! (crates/node/tests/fuzz_corpus.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glassbox_fuzz::receipt(data);
});

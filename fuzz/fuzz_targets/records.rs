//! Fuzzes the ledger's state records and proofs. The body is
//! `glassbox_fuzz::records` (fuzz/src/lib.rs), which the corpus replay test
//! (crates/node/tests/fuzz_corpus.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glassbox_fuzz::records(data);
});

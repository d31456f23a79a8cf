//! Fuzzes the block segments a follower reads from its peers. The body is
//! `glassbox_fuzz::segment` (fuzz/src/lib.rs), which the corpus replay test
//! (crates/node/tests/fuzz_corpus.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glassbox_fuzz::segment(data);
});

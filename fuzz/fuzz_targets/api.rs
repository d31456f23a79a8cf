//! Fuzzes the node's HTTP API inputs (`POST /v1/tx` bodies, path parameters,
//! the proven answers a client checks). The body is `glassbox_fuzz::api`
//! (fuzz/src/lib.rs), which the corpus replay test
//! (crates/node/tests/fuzz_corpus.rs) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glassbox_fuzz::api(data);
});

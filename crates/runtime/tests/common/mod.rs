//! What the runtime's integration tests share: where the workspace and
//! the generated ONNX test data are (`$GLASSBOX_ONNX_TESTS`, default
//! `<workspace>/target/onnx-tests`, written by `scripts/test.sh`), and
//! reading a data file with a hint when it is missing.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// How to produce the generated test data.
pub(crate) const GEN_HINT: &str = "run scripts/test.sh, which generates the test data";

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The generated ONNX test data: `$GLASSBOX_ONNX_TESTS`, default
/// `<workspace>/target/onnx-tests`.
pub(crate) fn onnx_tests() -> PathBuf {
    std::env::var_os("GLASSBOX_ONNX_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/onnx-tests"))
}

/// A data file's bytes; panics naming the file and [`GEN_HINT`].
pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} ({GEN_HINT})", path.display()))
}

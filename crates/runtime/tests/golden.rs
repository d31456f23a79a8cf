//! Golden trace roots: fixed (model, input) pairs whose trace roots are
//! checked into the repo, so every machine that runs the tests checks that
//! it computes the same bits as every other (cross-machine reproducibility).
//!
//! After a deliberate change of the canonical arithmetic, regenerate with
//! `GLASSBOX_UPDATE_GOLDEN=1 cargo test -p glassbox-runtime --test golden`
//! and say why in the commit.
// Tests report what they checked on the console.
#![allow(clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{onnx_tests, read, workspace};
use glassbox_runtime::{Cost, DType, Limits, Model, Options, Session, Tensor, formats};

/// A deterministic, input-independent test pattern in [-1, 1).
fn pattern(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 + 13) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor::from_vec(shape.to_vec(), v).expect("pattern")
}

/// (name, model path, inputs) of every golden case.
fn cases() -> Vec<(&'static str, PathBuf, Vec<Tensor>)> {
    let models = workspace().join("models");
    let json = |p: PathBuf| {
        let v: serde_json::Value = serde_json::from_slice(&read(&p)).expect("json");
        formats::json_decode(&v, DType::F32, 1 << 24).expect("decode")
    };
    let pb = |p: PathBuf| formats::pb_decode(&read(&p), 1 << 26).expect("decode");
    vec![
        (
            "mnist-cnn",
            models.join("mnist-cnn.onnx"),
            vec![json(models.join("mnist-cnn.input.json"))],
        ),
        (
            "mlp",
            models.join("mlp.onnx"),
            vec![json(models.join("mlp.input.json"))],
        ),
        (
            "light_squeezenet",
            onnx_tests().join("light/squeezenet/model.onnx"),
            vec![pb(
                onnx_tests().join("light/squeezenet/test_data_set_0/input_0.pb")
            )],
        ),
        (
            "squeezenet-random-seed0",
            onnx_tests().join("random/squeezenet-seed0.onnx"),
            vec![pattern(&[1, 3, 224, 224])],
        ),
    ]
}

#[test]
fn trace_roots_match_the_golden_file() {
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/trace-roots.txt");
    let update = std::env::var_os("GLASSBOX_UPDATE_GOLDEN").is_some();
    let golden: BTreeMap<String, String> = std::fs::read_to_string(&golden_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let mut got = BTreeMap::new();
    for (name, path, inputs) in cases() {
        let model = Arc::new(Model::load(&read(&path), Limits::default()).expect("load"));
        let session = Session::new(
            model,
            Options {
                threads: 2,
                // Small models too run on both threads.
                serial_below: Cost::default(),
                ..Options::default()
            },
        )
        .expect("session");
        let out = session.run(inputs).expect("run");
        let outputs: Vec<String> = out
            .outputs
            .iter()
            .map(|(_, t)| t.hash().to_string())
            .collect();
        let line = format!("{} outputs={}", out.trace.root(), outputs.join(","));
        println!("golden {name}: {line}");
        got.insert(name.to_string(), line);
    }
    if update {
        let mut text = String::from(
            "# name trace_root outputs=<canonical output hashes>; see tests/golden.rs\n",
        );
        for (k, v) in &got {
            text.push_str(&format!("{k} {v}\n"));
        }
        std::fs::write(&golden_path, text).expect("write golden file");
        return;
    }
    for (name, line) in &got {
        let want = golden.get(name).unwrap_or_else(|| {
            panic!("no golden root for `{name}`: run with GLASSBOX_UPDATE_GOLDEN=1 and commit")
        });
        assert_eq!(
            line, want,
            "{name}: this machine computes different bits than the golden file"
        );
    }
}

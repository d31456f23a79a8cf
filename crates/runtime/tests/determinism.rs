//! Determinism: the same model and inputs give identical outputs, leaves and
//! trace roots on the portable and SIMD kernels and on 1..N threads
//! (docs/determinism.md, "Threads and SIMD paths").
// Tests report what they checked on the console.
#![allow(clippy::print_stdout)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{onnx_tests, workspace};
use glassbox_runtime::{
    Cost, DType, Isa, KernelChoice, Limits, Model, Options, RunOutput, Session, Tensor, formats,
};

/// Kernel choices and thread counts every run is compared across: the
/// portable reference first, then every SIMD path this CPU has on one
/// thread, the best one on 2 and 3 threads, and the portable one on 4.
fn configs() -> Vec<(KernelChoice, usize)> {
    let mut c = vec![(KernelChoice::PORTABLE, 1)];
    for isa in Isa::supported().into_iter().skip(1) {
        c.push((KernelChoice::Exactly(isa), 1));
    }
    c.extend([
        (KernelChoice::Auto, 2),
        (KernelChoice::Auto, 3),
        (KernelChoice::PORTABLE, 4),
    ]);
    c
}

fn run(model: &Arc<Model>, inputs: &[Tensor], kernels: KernelChoice, threads: usize) -> RunOutput {
    let s = Session::new(
        Arc::clone(model),
        Options {
            threads,
            kernels,
            // Small models too run on the threads they are given.
            serial_below: Cost::default(),
        },
    )
    .expect("session");
    s.run(inputs.to_vec()).expect("run")
}

/// Runs in every configuration and asserts bit-identical results; returns
/// the first run.
fn assert_deterministic(name: &str, model: &Arc<Model>, inputs: &[Tensor]) -> RunOutput {
    let configs = configs();
    let base = run(model, inputs, configs[0].0, configs[0].1);
    for &(k, t) in &configs[1..] {
        let other = run(model, inputs, k, t);
        for (i, (a, b)) in base
            .trace
            .leaves
            .iter()
            .zip(&other.trace.leaves)
            .enumerate()
        {
            assert_eq!(
                a,
                b,
                "{name}: node #{i} ({}) differs between portable x1 and {k:?} x{t}",
                model.nodes()[i].op_type
            );
        }
        assert_eq!(
            base.trace.root(),
            other.trace.root(),
            "{name}: trace root, {k:?} x{t}"
        );
        for ((n, a), (_, b)) in base.outputs.iter().zip(&other.outputs) {
            assert_eq!(a.hash(), b.hash(), "{name}: output {n}, {k:?} x{t}");
        }
    }
    base
}

fn load(path: &Path) -> Arc<Model> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Arc::new(Model::load(&bytes, Limits::default()).expect("load"))
}

fn json_input(path: &Path, dtype: DType) -> Tensor {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    formats::json_decode(&v, dtype, 1 << 24).expect("decode")
}

#[test]
fn repo_models_are_bit_identical_across_kernels_and_threads() {
    for name in ["mnist-cnn", "mlp"] {
        let dir = workspace().join("models");
        let model = load(&dir.join(format!("{name}.onnx")));
        let dtype = model
            .inputs()
            .next()
            .and_then(|v| v.dtype)
            .expect("input dtype");
        let input = json_input(&dir.join(format!("{name}.input.json")), dtype);
        assert_deterministic(name, &model, &[input]);
    }
}

/// Every node-conformance case that passes is also bit-identical across
/// kernels and threads: the per-op determinism test.
#[test]
fn conformance_node_cases_are_bit_identical() {
    let root = onnx_tests();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/node-pass.txt");
    let names = std::fs::read_to_string(&manifest).expect("node-pass manifest");
    let mut checked = 0;
    for name in names
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let dir = root.join("node").join(name);
        assert!(
            dir.is_dir(),
            "{} is missing: run scripts/test.sh (it generates the conformance data)",
            dir.display()
        );
        let model = load(&dir.join("model.onnx"));
        let data = dir.join("test_data_set_0");
        let mut inputs = Vec::new();
        for i in 0.. {
            let p = data.join(format!("input_{i}.pb"));
            if !p.exists() {
                break;
            }
            let bytes = std::fs::read(&p).expect("read input");
            inputs.push(formats::pb_decode(&bytes, 1 << 26).expect("decode input"));
        }
        assert_deterministic(name, &model, &inputs);
        checked += 1;
    }
    assert!(checked > 0, "the node-pass manifest lists no cases");
    println!(
        "determinism: {checked} node cases bit-identical across {} configurations",
        configs().len()
    );
}

/// A whole CNN with real (seeded random, non-constant) weights, from the
/// test data that scripts/test.sh writes.
#[test]
fn random_weight_squeezenet_is_bit_identical_across_kernels_and_threads() {
    let root = onnx_tests();
    let path = root.join("random/squeezenet-seed0.onnx");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh",
        path.display()
    );
    let model = load(&path);
    let n = 3 * 224 * 224;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 + 13) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let input = Tensor::from_vec(vec![1, 3, 224, 224], v).expect("input");
    let out = assert_deterministic("squeezenet-seed0", &model, &[input]);
    assert_eq!(out.trace.leaves.len(), model.nodes().len());
}

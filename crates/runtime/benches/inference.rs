//! Inference benchmarks: whole models at 1 and all threads, and the cost of
//! the trace hashing on the same run (compare `hash_all_outputs` with `run`).
//!
//! The models are the ONNX wheel's light models with seeded random weights,
//! written by `bash scripts/bench_compare.sh` (or scripts/test.sh for
//! squeezenet) into target/onnx-tests/random/, and magika's trained model,
//! which bench_compare.sh extracts from its PyPI wheel into target/bench/;
//! missing models are skipped. Inputs follow bench_compare.sh's patterns.
//! Run: `cargo bench -p glassbox-runtime --bench inference`.

// A skipped model is reported on stderr.
#![allow(clippy::print_stderr)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use glassbox_runtime::{Limits, Model, Options, Session, Tensor};

fn pattern(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 + 13) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    Tensor::from_vec(shape.to_vec(), v).expect("pattern")
}

/// magika's input: int32 bytes `[1, 2048]`, the integer pattern of
/// scripts/bench_compare.sh.
fn int_pattern(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<i32> = (0..n).map(|i| ((i * 7919 + 13) % 2) as i32).collect();
    Tensor::from_vec(shape.to_vec(), v).expect("pattern")
}

fn bench_models(c: &mut Criterion) {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let all = std::thread::available_parallelism().map_or(1, usize::from);
    let models = [
        (
            "squeezenet",
            target.join("onnx-tests/random/squeezenet-seed0.onnx"),
            pattern(&[1, 3, 224, 224]),
        ),
        (
            "resnet50",
            target.join("onnx-tests/random/resnet50-seed0.onnx"),
            pattern(&[1, 3, 224, 224]),
        ),
        (
            "magika",
            target.join("bench/magika.onnx"),
            int_pattern(&[1, 2048]),
        ),
    ];
    for (name, path, input) in models {
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!(
                "skipping {name}: {} not found (run scripts/bench_compare.sh)",
                path.display()
            );
            continue;
        };
        let model = Arc::new(Model::load(&bytes, Limits::default()).expect("load"));
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for threads in [1, all] {
            let session = Session::new(
                Arc::clone(&model),
                Options {
                    threads,
                    ..Options::default()
                },
            )
            .expect("session");
            group.bench_function(format!("run/threads={threads}"), |b| {
                b.iter(|| black_box(session.run(vec![input.clone()]).expect("run")))
            });
        }
        // Trace hashing alone: hash every node output of one run.
        let session = Session::new(Arc::clone(&model), Options::default()).expect("session");
        let mut outputs: Vec<Tensor> = Vec::new();
        session
            .run_observed(vec![input.clone()], &mut |_, outs| {
                outputs.extend(outs.iter().map(|t| (*t).clone()))
            })
            .expect("run");
        group.bench_function("hash_all_outputs", |b| {
            b.iter(|| {
                for t in &outputs {
                    black_box(t.hash());
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_models);
criterion_main!(benches);

//! Kernel and operator benchmarks, each on the portable path and on every
//! SIMD path this CPU has: SGEMM on the shapes of the repo's CNNs and
//! transformers (B packed on the fly or ahead, 1 and 2 threads), MaxPool
//! (squeezenet's), element-wise unary ops, Softmax (bert's attention) and
//! the canonical tensor hash. They replace the `#[ignore]`d timing tests
//! the kernels' unit tests used to carry: speed lives here, bit-exactness
//! in the tests.
//!
//! Run: `cargo bench -p glassbox-runtime --bench kernels` (a group:
//! `-- sgemm`). Take figures when `uptime` shows a load below 1.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use glassbox_runtime::kernels::gemm::{ASrc, MatRef, Packed, sgemm_packed};
use glassbox_runtime::kernels::{Ctx, Isa};
use glassbox_runtime::ops::{self, Args, BuildCtx, Op};
use glassbox_runtime::{Attr, Attrs, Tensor};

/// A deterministic pattern in [-1, 1).
fn pattern(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 13) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn op(op_type: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> Box<dyn Op> {
    let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    ops::build(&BuildCtx {
        op_type,
        attrs: &attrs,
        opset,
        n_inputs: 1,
        n_outputs: 1,
    })
    .expect("a valid op")
}

fn sgemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(20);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool");
    let isa = Isa::detect();
    for (m, n, k) in [
        (512, 512, 512),
        (64, 3136, 576),
        (512, 49, 4608),
        (1, 4096, 1024),
        (128, 256, 1024),
        (2048, 64, 257),
    ] {
        let a = pattern(m * k, 1);
        let b = pattern(k * n, 2);
        let bmat = MatRef::row_major(&b, n);
        let packed = Packed::b(&bmat, k, n).expect("packs");
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for (threads, ctx) in [(1, Ctx::single(isa)), (2, Ctx::with_pool(isa, &pool))] {
            let shape = format!("{m}x{n}x{k}/{}T", threads);
            let run = |packed_b: bool, out: &mut [f32]| {
                let a = ASrc::Mat(MatRef::row_major(&a, k));
                let r = if packed_b {
                    sgemm_packed(&ctx, m, n, k, a, &packed, out, None)
                } else {
                    sgemm_packed(&ctx, m, n, k, a, &bmat, out, None)
                };
                r.expect("runs");
            };
            // As in a run, products start from a thread of the pool.
            g.bench_function(BenchmarkId::new("pack_b", &shape), |bench| {
                bench.iter(|| pool.install(|| run(false, &mut out)))
            });
            g.bench_function(BenchmarkId::new("b_packed_ahead", &shape), |bench| {
                bench.iter(|| pool.install(|| run(true, &mut out)))
            });
        }
    }
    g.finish();
}

fn maxpool(c: &mut Criterion) {
    let mut g = c.benchmark_group("maxpool_k3_s2");
    let pool = op(
        "MaxPool",
        12,
        vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("strides", Attr::Ints(vec![2, 2])),
            ("ceil_mode", Attr::Int(1)),
        ],
    );
    for shape in [[1, 96, 109, 109], [1, 256, 54, 54], [1, 512, 27, 27]] {
        let n = shape.iter().product();
        let x = Tensor::from_vec(shape.to_vec(), pattern(n, 3)).expect("tensor");
        for isa in Isa::supported() {
            let ctx = Ctx::single(isa);
            let id = BenchmarkId::new(isa.name(), format!("{shape:?}"));
            g.bench_function(id, |b| {
                b.iter(|| black_box(pool.run(&ctx, Args::new(&[Some(&x)])).expect("runs")))
            });
        }
    }
    g.finish();
}

fn unary(c: &mut Criterion) {
    let mut g = c.benchmark_group("unary_1M");
    let n = 1 << 20;
    let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 4.0).collect();
    let x = Tensor::from_vec(vec![n], x).expect("tensor");
    g.throughput(Throughput::Elements(n as u64));
    for name in ["Relu", "Exp", "Tanh", "Sigmoid", "Erf", "Log"] {
        let f = op(name, 13, vec![]);
        for isa in Isa::supported() {
            let ctx = Ctx::single(isa);
            g.bench_function(BenchmarkId::new(name, isa.name()), |b| {
                b.iter(|| black_box(f.run(&ctx, Args::new(&[Some(&x)])).expect("runs")))
            });
        }
    }
    g.finish();
}

fn softmax(c: &mut Criterion) {
    // bert's attention probabilities: [1, 4, 128, 128] over the last axis.
    let mut g = c.benchmark_group("softmax_1x4x128x128");
    let shape = [1, 4, 128, 128];
    let x = Tensor::from_vec(shape.to_vec(), pattern(4 * 128 * 128, 4)).expect("tensor");
    let f = op("Softmax", 13, vec![]);
    for isa in Isa::supported() {
        let ctx = Ctx::single(isa);
        g.bench_function(isa.name(), |b| {
            b.iter(|| black_box(f.run(&ctx, Args::new(&[Some(&x)])).expect("runs")))
        });
    }
    g.finish();
}

fn tensor_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("tensor_hash");
    let n = 1 << 22;
    let t = Tensor::from_vec(vec![n], (0..n).map(|i| i as f32).collect()).expect("tensor");
    g.throughput(Throughput::Bytes(4 * n as u64));
    g.bench_function("16MiB_f32", |b| b.iter(|| black_box(t.hash())));
    g.finish();
}

criterion_group!(benches, sgemm, maxpool, unary, softmax, tensor_hash);
criterion_main!(benches);

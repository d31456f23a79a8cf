//! Times a model on the runtime alone, for scripts/bench_compare.sh (which
//! then needs to build only this crate, not the CLI).
//!
//! ```text
//! cargo bench -p glassbox-runtime --bench exec -- \
//!     MODEL.onnx INPUT.npy REPEAT THREADS [--portable|--avx2] [--profile]
//! ```
//!
//! Prints one JSON line on stdout:
//! `{"load_ms", "run_median_ms", "run_min_ms", "trace_root", "kernels", "threads"}`.
//! Inputs bind in graph-input order. `--profile` adds the time per op type of
//! the last run on stderr, with what hashing the outputs costs as its own
//! row; `--nodes` the fastest time of each node.

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use glassbox_runtime::formats::npy_decode;
use glassbox_runtime::{Isa, KernelChoice, Limits, Model, Options, Session};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let usage = "usage: exec MODEL.onnx REPEAT THREADS INPUT.npy... [--portable|--avx2] [--profile] [--nodes]";
    let [model_path, repeat, threads, input_paths @ ..] = &pos[..] else {
        return Err(usage.into());
    };
    let repeat: usize = repeat.parse().map_err(|e| format!("REPEAT: {e}"))?;
    let threads: usize = threads.parse().map_err(|e| format!("THREADS: {e}"))?;
    let limits = Limits::default();

    let t0 = Instant::now();
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let model = Arc::new(Model::load(&bytes, limits).map_err(|e| e.to_string())?);
    drop(bytes);
    let mut inputs = Vec::with_capacity(input_paths.len());
    for p in input_paths {
        let b = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
        inputs.push(npy_decode(&b, limits.max_tensor_elements).map_err(|e| e.to_string())?);
    }
    let session = Session::new(
        Arc::clone(&model),
        Options {
            threads,
            kernels: if flag("--portable") {
                KernelChoice::PORTABLE
            } else if flag("--avx2") {
                KernelChoice::Exactly(Isa::Avx2Fma)
            } else {
                KernelChoice::Auto
            },
            ..Options::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let plan = session.plan(&inputs).map_err(|e| e.to_string())?;
    let mut per_node = vec![f64::MAX; model.nodes().len()];
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut times = Vec::with_capacity(repeat);
    let mut root = None;
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    // With `--profile`, the observer hashes each node's outputs again, timed
    // apart: on one thread the runtime hashes a node's outputs after the
    // observer returns, inside the next node's interval, so that time is
    // taken off the next node and shown as its own row (with threads
    // hashing is a task of its own and nothing is taken off).
    let profile = flag("--profile");
    let one_thread = session.threads() == 1;
    let (mut hashed_bytes, mut hash_ms) = (0usize, 0.0f64);
    for _ in 0..repeat.max(1) {
        by_op.clear();
        (hashed_bytes, hash_ms) = (0, 0.0);
        let mut prev_hash_ms = 0.0;
        let t = Instant::now();
        let mut last = Instant::now();
        let out = session
            .run_observed(inputs.clone(), &mut |i, outs| {
                if profile || flag("--nodes") {
                    let now = Instant::now();
                    let mut ms = (now - last).as_secs_f64() * 1e3;
                    if profile && one_thread {
                        ms = (ms - prev_hash_ms).max(0.0);
                    }
                    let e = by_op.entry(model.nodes()[i].op_type.clone()).or_default();
                    e.0 += ms;
                    e.1 += 1;
                    per_node[i] = per_node[i].min(ms);
                    if profile {
                        for t in outs {
                            hashed_bytes += t.len() * t.dtype().size_bytes();
                            std::hint::black_box(t.hash());
                        }
                        prev_hash_ms = now.elapsed().as_secs_f64() * 1e3;
                        hash_ms += prev_hash_ms;
                    }
                    last = Instant::now();
                }
            })
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let r = out.trace.root();
        if root.is_some_and(|p| p != r) {
            return Err("repeated runs gave different trace roots".into());
        }
        root = Some(r);
    }
    times.sort_by(f64::total_cmp);
    if flag("--nodes") {
        for (i, ms) in per_node.iter().enumerate() {
            let node = &model.nodes()[i];
            let flops = plan.node_costs()[i].flops as f64;
            eprintln!(
                "{i:>4} {:<20} {ms:>8.3} ms {:>8.1} GFLOP/s",
                node.op_type,
                flops / ms.max(1e-9) / 1e6
            );
        }
    }
    if flag("--profile") {
        let total: f64 = by_op.values().map(|v| v.0).sum();
        let mut rows: Vec<_> = by_op.into_iter().collect();
        rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        for (op, (ms, n)) in rows {
            eprintln!(
                "{op:<24} {n:>5} {ms:>10.3} ms {:>6.1}%",
                100.0 * ms / total.max(1e-9)
            );
        }
        eprintln!(
            "{:<24} {:>5} {hash_ms:>10.3} ms   ({:.1} MB of outputs, hashed on one thread{})",
            "(trace hashing)",
            "",
            hashed_bytes as f64 / 1e6,
            if one_thread {
                "; not in the op times"
            } else {
                "; overlaps the op times"
            }
        );
    }
    let hex = root.unwrap_or_default().to_string();
    println!(
        "{{\"load_ms\": {load_ms:.3}, \"run_median_ms\": {:.3}, \"run_min_ms\": {:.3}, \"trace_root\": \"{hex}\", \"kernels\": \"{}\", \"threads\": {}}}",
        times[times.len() / 2],
        times[0],
        session.isa().name(),
        session.threads()
    );
    Ok(())
}

//! Times tract on an ONNX model with a fixed f32 input pattern, for the
//! comparison table of scripts/bench_compare.sh. Prints one JSON line:
//! `{"load_ms": .., "run_median_ms": .., "run_min_ms": ..}`.

use std::time::Instant;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: glassbox-bench-tract MODEL.onnx REPEAT")?;
    let repeat: usize = args.next().context("missing REPEAT")?.parse()?;
    let t0 = Instant::now();
    let model = tract_onnx::onnx().model_for_path(&path)?.into_optimized()?.into_runnable()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let fact = model.model().input_fact(0)?.clone();
    let shape: Vec<usize> = fact
        .shape
        .as_concrete()
        .context("the benchmark needs a model with a concrete input shape")?
        .to_vec();
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919 + 13) % 2000) as f32 / 1000.0 - 1.0).collect();
    let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into();
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let out = model.run(tvec!(input.clone().into()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"load_ms\": {load_ms:.3}, \"run_median_ms\": {:.3}, \"run_min_ms\": {:.3}}}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}

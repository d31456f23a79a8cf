//! Times tract on an ONNX model with the given `.npy` inputs (the same files
//! glassbox and onnxruntime read), for the comparison table of
//! scripts/bench_compare.sh. Prints one JSON line:
//! `{"load_ms": .., "run_median_ms": .., "run_min_ms": ..}`.
//!
//!     glassbox-bench-tract MODEL.onnx REPEAT INPUT.npy...

use std::time::Instant;

use anyhow::{Context, Result, bail};
use tract_onnx::prelude::*;

/// A little-endian `.npy` (version 1 or 2) of f32, f64, i64, i32 or bool,
/// C order, as numpy writes them.
fn read_npy(path: &str) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{path}: not an .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen])?;
    let data = &bytes[start + hlen..];
    let field = |key: &str| -> Result<&str> {
        let at = header.find(key).with_context(|| format!("{path}: no {key}"))? + key.len();
        Ok(header[at..].trim_start_matches([' ', ':']))
    };
    if field("'fortran_order'")?.starts_with("True") {
        bail!("{path}: Fortran order");
    }
    let descr = field("'descr'")?;
    let descr = &descr[1..descr[1..].find('\'').context("descr")? + 1];
    let shape_s = field("'shape'")?;
    let shape_s = &shape_s[1..shape_s.find(')').context("shape")?];
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    macro_rules! arr {
        ($t:ty, $n:expr) => {{
            let v: Vec<$t> = data
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk")))
                .collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into()
        }};
    }
    Ok(match descr {
        "<f4" => arr!(f32, 4),
        "<f8" => arr!(f64, 8),
        "<i8" => arr!(i64, 8),
        "<i4" => arr!(i32, 4),
        "|b1" => {
            let v: Vec<bool> = data.iter().map(|&b| b != 0).collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into()
        }
        other => bail!("{path}: unsupported dtype {other}"),
    })
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: glassbox-bench-tract MODEL.onnx REPEAT INPUT.npy...";
    let path = args.next().context(usage)?;
    let repeat: usize = args.next().context(usage)?.parse()?;
    let inputs: Vec<Tensor> = args.map(|p| read_npy(&p)).collect::<Result<_>>()?;
    let t0 = Instant::now();
    let mut model = tract_onnx::onnx().model_for_path(&path)?;
    for (i, t) in inputs.iter().enumerate() {
        model.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let model = model.into_optimized()?.into_runnable()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let feed: TVec<TValue> = inputs.iter().map(|t| t.clone().into()).collect();
        let t = Instant::now();
        let out = model.run(feed)?;
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

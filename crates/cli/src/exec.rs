//! `glassbox exec`: run a model file on input files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use glassbox_runtime::{
    DType, Isa, KernelChoice, Limits, Model, Options, Session, Tensor, formats,
};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kernels {
    /// The fastest path this CPU supports.
    Auto,
    /// Portable scalar kernels (the reference; same bits, slower).
    Portable,
    /// The AVX2+FMA kernels (same bits).
    Avx2,
    /// The AVX-512 kernels (same bits).
    Avx512,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The ONNX model file.
    model: PathBuf,
    /// An input: `NAME=FILE` or `FILE` (bound in graph-input order).
    /// FILE is `.npy`, `.pb` (ONNX TensorProto) or `.json` (nested arrays).
    #[arg(short, long = "input", value_name = "[NAME=]FILE")]
    inputs: Vec<String>,
    /// Write the K-th graph output to DIR/output_K.npy.
    #[arg(short, long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Kernel path.
    #[arg(long, value_enum, env = "GLASSBOX_KERNELS", default_value = "auto")]
    kernels: Kernels,
    /// Run the model N times after one load and report timings.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    repeat: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print where the time of the last run went, by op type (to stderr).
    #[arg(long)]
    profile: bool,
    /// Largest tensor accepted or computed, in elements.
    #[arg(long, default_value_t = Limits::default().max_tensor_elements)]
    max_tensor_elements: usize,
    /// Largest total cost of one run, in flops.
    #[arg(long, default_value_t = Limits::default().max_total_flops)]
    max_total_flops: u64,
}

/// Reads a whole file, refusing one larger than `max_bytes` before reading it.
pub(crate) fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let len = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > max_bytes {
        bail!(
            "{} is {len} bytes, over the limit of {max_bytes} bytes",
            path.display()
        );
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

pub(crate) fn read_input(path: &Path, dtype: Option<DType>, max_elements: usize) -> Result<Tensor> {
    // Generous for JSON text (up to 32 bytes per element) and every binary format.
    let max_bytes = (max_elements as u64)
        .saturating_mul(32)
        .saturating_add(1 << 20);
    let bytes = read_limited(path, max_bytes)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let t = match ext.as_str() {
        "npy" => formats::npy_decode(&bytes, max_elements)?,
        "pb" => formats::pb_decode(&bytes, max_elements)?,
        "json" => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            formats::json_decode(&v, dtype.unwrap_or(DType::F32), max_elements)?
        }
        _ => bail!(
            "{}: unknown input format (use .npy, .pb or .json)",
            path.display()
        ),
    };
    Ok(t)
}

/// Binds `--input` arguments (`NAME=FILE`, or files in order) to inputs
/// named `names` and reads each with `read(slot, file)`, in input order.
pub(crate) fn bind_files<T>(
    names: &[&str],
    args: &[String],
    mut read: impl FnMut(usize, &Path) -> Result<T>,
) -> Result<Vec<T>> {
    let mut bound: Vec<Option<T>> = names.iter().map(|_| None).collect();
    let mut next_positional = 0;
    for arg in args {
        let (slot, file) = match arg.split_once('=') {
            Some((name, file)) if names.contains(&name) => {
                (names.iter().position(|n| *n == name).unwrap_or(0), file)
            }
            Some((name, _)) if !Path::new(arg).exists() => {
                bail!(
                    "the model has no input `{name}`; its inputs are: {}",
                    names.join(", ")
                )
            }
            _ => {
                while next_positional < names.len() && bound[next_positional].is_some() {
                    next_positional += 1;
                }
                if next_positional >= names.len() {
                    bail!(
                        "too many inputs: the model takes {} ({})",
                        names.len(),
                        names.join(", ")
                    );
                }
                (next_positional, arg.as_str())
            }
        };
        if bound[slot].is_some() {
            bail!("input `{}` is given twice", names[slot]);
        }
        let t = read(slot, Path::new(file)).with_context(|| format!("input `{}`", names[slot]))?;
        bound[slot] = Some(t);
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(&bound)
        .filter(|(_, t)| t.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing inputs: {} (pass --input NAME=FILE)",
            missing.join(", ")
        );
    }
    Ok(bound.into_iter().flatten().collect())
}

/// Binds `--input` arguments to the model's graph inputs.
fn bind_inputs(model: &Model, args: &[String], max_elements: usize) -> Result<Vec<Tensor>> {
    let names: Vec<&str> = model.inputs().map(|v| v.name.as_str()).collect();
    bind_files(&names, args, |slot, file| {
        let dtype = model.inputs().nth(slot).and_then(|v| v.dtype);
        read_input(file, dtype, max_elements)
    })
}

pub(crate) fn preview(t: &Tensor, n: usize) -> String {
    let v = formats::json_encode(
        &t.clone()
            .reshaped(vec![t.len()])
            .unwrap_or_else(|_| t.clone()),
    );
    let items: Vec<String> = match v {
        serde_json::Value::Array(a) => a.iter().take(n).map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    };
    let more = if t.len() > n { ", ..." } else { "" };
    format!("[{}{more}]", items.join(", "))
}

pub(crate) fn run(args: ExecArgs) -> Result<()> {
    let limits = Limits {
        max_tensor_elements: args.max_tensor_elements,
        max_total_flops: args.max_total_flops,
        ..Limits::default()
    };
    let t0 = Instant::now();
    let bytes = read_limited(&args.model, limits.max_model_bytes as u64)?;
    let model = Arc::new(
        Model::load(&bytes, limits).with_context(|| format!("loading {}", args.model.display()))?,
    );
    drop(bytes);
    let inputs = bind_inputs(&model, &args.inputs, limits.max_tensor_elements)?;
    let kernels = match args.kernels {
        Kernels::Auto => KernelChoice::Auto,
        Kernels::Portable => KernelChoice::PORTABLE,
        Kernels::Avx2 => KernelChoice::Exactly(Isa::Avx2Fma),
        Kernels::Avx512 => KernelChoice::Exactly(Isa::Avx512),
    };
    let session = Session::new(
        Arc::clone(&model),
        Options {
            threads: args.threads,
            kernels,
            ..Options::default()
        },
    )?;
    session.plan(&inputs)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut times_ms = Vec::with_capacity(args.repeat as usize);
    let mut result = None;
    let mut by_op: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for _ in 0..args.repeat {
        by_op.clear();
        let t = Instant::now();
        let mut last = Instant::now();
        let out = if args.profile {
            session.run_observed(inputs.clone(), &mut |i, _| {
                let now = Instant::now();
                let e = by_op.entry(model.nodes()[i].op_type.clone()).or_default();
                e.0 += (now - last).as_secs_f64() * 1e3;
                e.1 += 1;
                last = now;
            })?
        } else {
            session.run(inputs.clone())?
        };
        times_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(prev) = &result {
            let prev: &glassbox_runtime::RunOutput = prev;
            if prev.trace.root() != out.trace.root() {
                bail!("repeated runs gave different trace roots: the runtime is not deterministic");
            }
        }
        result = Some(out);
    }
    let out = result.context("no run")?;
    times_ms.sort_by(f64::total_cmp);
    let median = times_ms[times_ms.len() / 2];
    let min = times_ms[0];

    let mut files = Vec::new();
    if let Some(dir) = &args.output_dir {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (k, (_, t)) in out.outputs.iter().enumerate() {
            let path = dir.join(format!("output_{k}.npy"));
            write_atomic(&path, &formats::npy_encode(t))?;
            files.push(Some(path));
        }
    } else {
        files.resize(out.outputs.len(), None);
    }

    if args.profile {
        let total: f64 = by_op.values().map(|v| v.0).sum();
        let mut rows: Vec<_> = by_op.into_iter().collect();
        rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        let mut e = std::io::stderr().lock();
        writeln!(e, "{:<24} {:>6} {:>10} {:>6}", "op", "nodes", "ms", "%")?;
        for (op, (ms, n)) in rows {
            writeln!(
                e,
                "{op:<24} {n:>6} {ms:>10.3} {:>5.1}%",
                100.0 * ms / total.max(1e-9)
            )?;
        }
    }

    let model_id = model.id().to_string();
    let root = out.trace.root().to_string();
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if args.json {
        let outputs: Vec<_> = out
            .outputs
            .iter()
            .zip(&files)
            .map(|((name, t), f)| {
                json!({
                    "name": name,
                    "dtype": t.dtype().name(),
                    "shape": t.shape(),
                    "file": f.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        let mut obj = json!({
            "model_id": model_id,
            "trace_root": root,
            "cost": {"flops": out.cost.flops, "bytes": out.cost.bytes},
            "outputs": outputs,
            "nodes": model.nodes().len(),
            "kernels": session.isa().name(),
            "threads": session.threads(),
        });
        if args.repeat > 1 {
            obj["timing_ms"] = json!({"load": load_ms, "run_median": median, "run_min": min});
        }
        writeln!(w, "{obj}")?;
    } else {
        writeln!(w, "model     {model_id}")?;
        writeln!(w, "nodes     {}", model.nodes().len())?;
        writeln!(
            w,
            "kernels   {} x {} thread(s)",
            session.isa().name(),
            session.threads()
        )?;
        writeln!(
            w,
            "cost      {} flops, {} bytes",
            out.cost.flops, out.cost.bytes
        )?;
        for ((name, t), f) in out.outputs.iter().zip(&files) {
            writeln!(
                w,
                "output    {name}: {} {:?} {}",
                t.dtype(),
                t.shape(),
                preview(t, 8)
            )?;
            if let Some(p) = f {
                writeln!(w, "          -> {}", p.display())?;
            }
        }
        writeln!(w, "trace     {root} ({} leaves)", out.trace.leaves.len())?;
        if args.repeat > 1 {
            writeln!(
                w,
                "timing    load {load_ms:.2} ms, run median {median:.3} ms, min {min:.3} ms ({} runs)",
                args.repeat
            )?;
        }
    }
    Ok(())
}

/// Writes a file through a temporary sibling and a rename, so a crash never
/// leaves a half-written output.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("npy.tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

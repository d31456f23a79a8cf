//! Real packaged models end to end: magika (PyPI), silero-vad (PyPI, two
//! exports) and a BERT-layout encoder (scripts/make_bert.py), as prepared by
//! `scripts/real_models.py` in `target/onnx-tests/real/<name>/`. Each model
//! is loaded with `Model::load` and run with a `Session`; every output is
//! compared with onnxruntime's (numpy `allclose`: |a - b| <= atol + rtol * |b|,
//! tolerances from the case's meta.json; the worst element is reported), the
//! trace root must equal the golden one in `tests/golden/real_models.txt`,
//! and the trace root and outputs must be identical on 1 and 2 threads and
//! on the portable and SIMD kernels.
//!
//! A model whose package could not be downloaded has a `SKIPPED` marker and
//! is skipped with its reason; missing data fails with the command to run.
//! Models the runtime cannot run yet are listed in [`EXPECTED_UNSUPPORTED`]:
//! their test asserts that loading fails on the named op, so the list must
//! shrink when support lands.
//!
//! After a deliberate change of the canonical arithmetic, regenerate the
//! golden roots with
//! `GLASSBOX_UPDATE_GOLDEN=1 cargo test -p glassbox-runtime --test real_models`
//! and say why in the commit.
// Tests report what they checked on the console.
#![allow(clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{onnx_tests, read};
use glassbox_runtime::{
    Cost, Data, Error, Isa, KernelChoice, Limits, Model, Options, RunOutput, Session, Tensor,
    formats,
};

/// Models the runtime cannot load yet, with the op type loading must fail
/// on ("unsupported op type `If`", or an error of a node of that op type
/// about something unsupported). When one starts to load (or fails on
/// another op), its test fails: remove it from this list (or update the
/// op), and add its golden root. Every model loads today.
const EXPECTED_UNSUPPORTED: &[(&str, &str)] = &[];

/// Every case `scripts/real_models.py` writes.
const MODELS: &[&str] = &["magika", "silero-vad", "silero-vad-op18", "bert"];

const GEN_HINT: &str = "run `scripts/setup-python.sh && target/pyenv/bin/python \
     scripts/gen_conformance.py && target/pyenv/bin/python scripts/real_models.py` \
     (scripts/test.sh does all of it)";

/// Kernel choices and thread counts whose trace roots must agree; the first
/// is the one compared with onnxruntime and timed. Every path this CPU has
/// is in it: the best on 1 and 2 threads, the others (down to the portable
/// reference) on 1.
fn configs() -> Vec<(KernelChoice, usize)> {
    let mut c = vec![(KernelChoice::Auto, 1), (KernelChoice::Auto, 2)];
    let mut lesser = Isa::supported();
    lesser.pop();
    c.extend(
        lesser
            .into_iter()
            .rev()
            .map(|i| (KernelChoice::Exactly(i), 1)),
    );
    c
}

/// Serializes updates of the golden file by the parallel tests.
static GOLDEN_LOCK: Mutex<()> = Mutex::new(());

fn real_dir() -> PathBuf {
    onnx_tests().join("real")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/real_models.txt")
}

/// The `prefix_N.pb` tensors of a data set, N = 0, 1, ... until one is missing.
fn tensors(dir: &Path, prefix: &str) -> Vec<Tensor> {
    (0..)
        .map(|i| dir.join(format!("{prefix}_{i}.pb")))
        .take_while(|p| p.is_file())
        .map(|p| {
            formats::pb_decode(&read(&p), 1 << 26)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The case directory, or `None` (with the reason printed) when the case
/// was skipped at preparation.
fn case_dir(name: &str) -> Option<PathBuf> {
    let dir = real_dir().join(name);
    let skipped = dir.join("SKIPPED");
    if skipped.is_file() {
        let why = std::fs::read_to_string(&skipped).unwrap_or_default();
        println!("real model {name}: SKIPPED: {}", why.trim());
        return None;
    }
    assert!(
        dir.join("model.onnx").is_file(),
        "real model data for `{name}` not found in {} ({GEN_HINT})",
        dir.display()
    );
    Some(dir)
}

/// Checks `actual` against `expected` with numpy's allclose rule (exact for
/// integer dtypes). Returns a one-line summary with the worst element.
fn compare(name: &str, actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> String {
    assert_eq!(actual.dtype(), expected.dtype(), "{name}: dtype");
    assert_eq!(actual.shape(), expected.shape(), "{name}: shape");
    let (a, e): (Vec<f64>, Vec<f64>) = match (actual.data(), expected.data()) {
        (Data::F32(a), Data::F32(e)) => (
            a.iter().map(|&x| f64::from(x)).collect(),
            e.iter().map(|&x| f64::from(x)).collect(),
        ),
        (Data::F64(a), Data::F64(e)) => (a.clone(), e.clone()),
        _ => {
            assert!(actual.data() == expected.data(), "{name}: values differ");
            return format!("{name}: exact");
        }
    };
    // Worst element: the largest |a - b| / (atol + rtol * |b|) (> 1 fails).
    let mut worst = (0usize, 0.0f64);
    let mut bad = 0usize;
    let mut max_abs = 0.0f64;
    for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
        let ratio = if x.is_nan() || y.is_nan() {
            if x.is_nan() && y.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if x.is_infinite() || y.is_infinite() {
            if x == y { 0.0 } else { f64::INFINITY }
        } else {
            max_abs = max_abs.max((x - y).abs());
            (x - y).abs() / (atol + rtol * y.abs())
        };
        if ratio > 1.0 {
            bad += 1;
        }
        if ratio > worst.1 || i == 0 {
            worst = (i, ratio);
        }
    }
    let (i, ratio) = worst;
    let line = format!(
        "{name}: max |a-b| {max_abs:.3e}; worst at flat index {i}: {} vs onnxruntime {} \
         (|a-b| {:.3e}, allowed {:.3e}, {ratio:.3} of the tolerance; rtol {rtol}, atol {atol})",
        a[i],
        e[i],
        (a[i] - e[i]).abs(),
        atol + rtol * e[i].abs()
    );
    assert!(
        bad == 0,
        "{bad} of {} elements exceed the tolerance; {line}",
        a.len()
    );
    line
}

/// Runs once (planning included), then `timed` more times on the same
/// session; returns the first output and the median time of the timed runs
/// in ms (`None` when `timed` is 0).
fn run(
    model: &Arc<Model>,
    inputs: &[Tensor],
    (kernels, threads): (KernelChoice, usize),
    timed: usize,
) -> (RunOutput, Option<f64>) {
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
    let out = s.run(inputs.to_vec()).expect("run");
    let mut ms: Vec<f64> = (0..timed)
        .map(|_| {
            let t = Instant::now();
            s.run(inputs.to_vec()).expect("run");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (out, ms.get(ms.len() / 2).copied())
}

/// Checks the golden line of `name` (or records it under
/// `GLASSBOX_UPDATE_GOLDEN`).
fn check_golden(name: &str, line: &str) {
    let _guard = GOLDEN_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = golden_path();
    let mut golden: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    if std::env::var_os("GLASSBOX_UPDATE_GOLDEN").is_some() {
        golden.insert(name.to_string(), line.to_string());
        let mut text = String::from(
            "# name trace_root outputs=<canonical output hashes>; see tests/real_models.rs\n",
        );
        for (k, v) in &golden {
            text.push_str(&format!("{k} {v}\n"));
        }
        std::fs::write(&path, text).expect("write golden file");
        return;
    }
    let want = golden.get(name).unwrap_or_else(|| {
        panic!(
            "no golden root for `{name}` in {}: run with GLASSBOX_UPDATE_GOLDEN=1 and commit",
            path.display()
        )
    });
    assert_eq!(
        line, want,
        "{name}: this machine computes different bits than the golden file"
    );
}

fn check(name: &str) {
    assert!(MODELS.contains(&name), "unknown real model {name}");
    let Some(dir) = case_dir(name) else {
        return;
    };
    let bytes = read(&dir.join("model.onnx"));
    if let Some((_, op)) = EXPECTED_UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        // Either the op type is unknown (and no other op type is named as
        // unknown first, e.g. inside a subgraph), or a node of that op type
        // has something the loader rejects (today: `If`'s GRAPH attributes).
        let unsupported = format!("unsupported op type `{op}`");
        let blocked_by_op = |e: &Error| {
            let msg = e.to_string();
            match (msg.find("unsupported op type `"), e) {
                (Some(i), _) => msg[i..].starts_with(&unsupported),
                (None, Error::Node { op: o, reason, .. }) => {
                    o == op && (reason.contains("unsupported") || reason.contains("not supported"))
                }
                (None, _) => false,
            }
        };
        match Model::load(&bytes, Limits::default()) {
            Ok(_) => panic!(
                "`{name}` now loads: remove it from EXPECTED_UNSUPPORTED in \
                 tests/real_models.rs (its outputs and golden root are then checked)"
            ),
            Err(e) => {
                assert!(
                    blocked_by_op(&e),
                    "`{name}` is expected to fail loading on op `{op}` (\"{unsupported}\" \
                     or an unsupported feature of an `{op}` node), but: {e} \
                     (update EXPECTED_UNSUPPORTED in tests/real_models.rs)"
                );
                println!("real model {name}: expected unsupported (`{op}`): {e}");
            }
        }
        return;
    }

    let meta: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("meta.json"))).expect("meta.json");
    let tol = |k: &str| {
        meta[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: meta.json has no {k}"))
    };
    let (rtol, atol) = (tol("rtol"), tol("atol"));
    let data = dir.join("test_data_set_0");
    let inputs = tensors(&data, "input");
    let expected = tensors(&data, "output");
    assert!(
        !inputs.is_empty() && !expected.is_empty(),
        "{name}: no data"
    );

    let model = Arc::new(Model::load(&bytes, Limits::default()).expect("load"));
    let mut runs = Vec::new();
    let configs = configs();
    for &config in &configs {
        // Time the SIMD configurations (the portable one is a reference path).
        let timed = if config.0 == KernelChoice::Auto { 5 } else { 0 };
        let (out, ms) = run(&model, &inputs, config, timed);
        if let Some(ms) = ms {
            println!(
                "real model {name}: {:?} x{}: {ms:.1} ms (median of {timed} runs after the first)",
                config.0, config.1
            );
        }
        runs.push((config, out));
    }
    let (_, base) = &runs[0];
    assert_eq!(base.outputs.len(), expected.len(), "{name}: output count");
    for ((out_name, actual), want) in base.outputs.iter().zip(&expected) {
        let line = compare(&format!("{name}/{out_name}"), actual, want, rtol, atol);
        println!("real model {line}");
    }
    for ((k, t), other) in &runs[1..] {
        assert_eq!(
            base.trace.root(),
            other.trace.root(),
            "{name}: trace root differs between {:?} x{} and {k:?} x{t}",
            configs[0].0,
            configs[0].1
        );
        for ((n, a), (_, b)) in base.outputs.iter().zip(&other.outputs) {
            assert_eq!(a.hash(), b.hash(), "{name}: output {n}, {k:?} x{t}");
        }
    }
    let outputs: Vec<String> = base
        .outputs
        .iter()
        .map(|(_, t)| t.hash().to_string())
        .collect();
    let line = format!("{} outputs={}", base.trace.root(), outputs.join(","));
    println!("real model {name}: golden {line}");
    check_golden(name, &line);
}

#[test]
fn magika() {
    check("magika");
}

#[test]
fn bert() {
    check("bert");
}

#[test]
fn silero_vad() {
    check("silero-vad");
}

#[test]
fn silero_vad_op18() {
    check("silero-vad-op18");
}

#[test]
fn expected_unsupported_names_known_models() {
    for (name, _) in EXPECTED_UNSUPPORTED {
        assert!(
            MODELS.contains(name),
            "EXPECTED_UNSUPPORTED names unknown model {name}"
        );
    }
}

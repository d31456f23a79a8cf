//! ONNX backend conformance: runs the node test cases and the light model zoo
//! written by `scripts/gen_conformance.py` and compares with the reference
//! outputs (numpy `allclose` rules for floats, exact for integers and bools).
//!
//! Data: `$GLASSBOX_ONNX_TESTS`, default `<workspace>/target/onnx-tests`.
//! Manifests `tests/conformance/{node,light}-pass.txt` list the cases that
//! must pass; a listed case that fails is a regression and fails the test.
//! `GLASSBOX_UPDATE_MANIFEST=1` rewrites them with the passing set;
//! `GLASSBOX_CONFORMANCE_VERBOSE=1` prints one line per failing case.

// The harness reports its results on the console.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use common::onnx_tests;
use glassbox_runtime::proto::onnx::TensorProto;
use glassbox_runtime::proto::tensor_from_proto;
use glassbox_runtime::{Data, Limits, Model, Options, Session, Tensor};
use prost::Message;

const GEN_HINT: &str =
    "run `scripts/setup-python.sh && target/pyenv/bin/python scripts/gen_conformance.py`";

/// Prefix of the worker threads' names; their panics are reported, not printed.
const WORKER: &str = "conformance-worker";

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn data_dir() -> PathBuf {
    let dir = onnx_tests();
    assert!(
        dir.join(".stamp").is_file() && dir.join("node").is_dir() && dir.join("light").is_dir(),
        "ONNX conformance data not found in {} (set GLASSBOX_ONNX_TESTS or {GEN_HINT})",
        dir.display()
    );
    dir
}

fn manifest_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name)
}

/// Case directories under `dir`, sorted by name.
fn case_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} ({GEN_HINT})", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("model.onnx").is_file())
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                p,
            )
        })
        .collect();
    cases.sort();
    cases
}

/// Reads `"key": number` from the small flat meta.json the generator writes.
fn meta_number(json: &str, key: &str) -> Option<f64> {
    let rest = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn load_tensor(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let proto = TensorProto::decode(bytes.as_slice())
        .map_err(|e| format!("{}: bad TensorProto: {e}", path.display()))?;
    tensor_from_proto(&proto, usize::MAX).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `prefix_N.pb` files of a data set, in index order.
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(i) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".pb"))
        {
            files.push((
                i.parse()
                    .map_err(|_| format!("bad data file name {name}"))?,
                p,
            ));
        }
    }
    files.sort();
    if files.iter().enumerate().any(|(k, (i, _))| k != *i) {
        return Err(format!(
            "{}: {prefix}N.pb files are not numbered 0..",
            dir.display()
        ));
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// numpy `allclose(actual, expected, rtol, atol, equal_nan=True)` for floats,
/// exact equality otherwise; dtype and shape must match.
fn compare(actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if actual.dtype() != expected.dtype() {
        return Err(format!(
            "dtype {} != expected {}",
            actual.dtype(),
            expected.dtype()
        ));
    }
    if actual.shape() != expected.shape() {
        return Err(format!(
            "shape {:?} != expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    let close = |a: f64, e: f64| {
        if a.is_nan() || e.is_nan() {
            a.is_nan() && e.is_nan()
        } else if a.is_infinite() || e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        }
    };
    let floats: Option<(Vec<f64>, Vec<f64>)> = match (actual.data(), expected.data()) {
        (Data::F32(a), Data::F32(e)) => Some((
            a.iter().map(|&x| f64::from(x)).collect(),
            e.iter().map(|&x| f64::from(x)).collect(),
        )),
        (Data::F64(a), Data::F64(e)) => Some((a.clone(), e.clone())),
        _ => None,
    };
    match floats {
        Some((a, e)) => {
            let bad: Vec<usize> = (0..a.len()).filter(|&i| !close(a[i], e[i])).collect();
            if let Some(&i) = bad.first() {
                return Err(format!(
                    "{} of {} elements differ; first at flat index {i}: {} vs expected {} \
                     (rtol {rtol}, atol {atol})",
                    bad.len(),
                    a.len(),
                    a[i],
                    e[i]
                ));
            }
            Ok(())
        }
        None if actual.data() == expected.data() => Ok(()),
        None => {
            let (a, e) = (actual.to_le_bytes(), expected.to_le_bytes());
            let size = actual.dtype().size_bytes();
            let i = (0..actual.len())
                .find(|&i| a[i * size..(i + 1) * size] != e[i * size..(i + 1) * size])
                .unwrap_or(0);
            Err(format!(
                "{} values differ; first at flat index {i}",
                actual.dtype()
            ))
        }
    }
}

/// Loads, runs and checks one case directory (every `test_data_set_*`).
fn run_case(dir: &Path) -> Result<(), String> {
    let meta = std::fs::read_to_string(dir.join("meta.json")).map_err(|e| format!("meta: {e}"))?;
    let rtol = meta_number(&meta, "rtol").ok_or("meta.json has no rtol")?;
    let atol = meta_number(&meta, "atol").ok_or("meta.json has no atol")?;
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| format!("model: {e}"))?;
    let model = Model::load(&bytes, Limits::default()).map_err(|e| format!("load: {e}"))?;
    let session = Session::new(Arc::new(model), Options::default()).map_err(|e| e.to_string())?;
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
        })
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Err("no test_data_set_* directories".into());
    }
    for set in &sets {
        let set_name = set
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let inputs = numbered(set, "input_")?
            .iter()
            .map(|p| load_tensor(p))
            .collect::<Result<Vec<_>, _>>()?;
        let expected = numbered(set, "output_")?
            .iter()
            .map(|p| load_tensor(p))
            .collect::<Result<Vec<_>, _>>()?;
        let out = session
            .run(inputs)
            .map_err(|e| format!("{set_name}: run: {e}"))?;
        if out.outputs.len() != expected.len() {
            return Err(format!(
                "{set_name}: {} outputs, expected {}",
                out.outputs.len(),
                expected.len()
            ));
        }
        for (i, ((name, actual), want)) in out.outputs.iter().zip(&expected).enumerate() {
            compare(actual, want, rtol, atol)
                .map_err(|e| format!("{set_name}: output {i} `{name}`: {e}"))?;
        }
    }
    Ok(())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Keeps panics inside worker threads off the console (they are reported as
/// case failures); other threads keep the default hook.
fn quiet_worker_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(WORKER));
            if !worker {
                default(info);
            }
        }));
    });
}

/// Runs every case on worker threads; a panic fails only its own case.
fn run_all(
    cases: &[(String, PathBuf)],
    run: fn(&Path) -> Result<(), String>,
) -> BTreeMap<String, Result<(), String>> {
    quiet_worker_panics();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 8);
    std::thread::scope(|s| {
        for w in 0..workers {
            std::thread::Builder::new()
                .name(format!("{WORKER}-{w}"))
                .stack_size(64 << 20)
                .spawn_scoped(s, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, dir)) = cases.get(i) else {
                            break;
                        };
                        let r = catch_unwind(AssertUnwindSafe(|| run(dir)))
                            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))));
                        let r = r.map_err(|e| e.replace('\n', " "));
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone(), r);
                    }
                })
                .expect("spawn worker");
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn read_manifest(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read manifest {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Runs a suite and enforces its manifest (or rewrites it).
fn check_suite(label: &str, subdir: &str, manifest: &str) {
    let dir = data_dir().join(subdir);
    let cases = case_dirs(&dir);
    assert!(
        !cases.is_empty(),
        "no {label} cases in {} ({GEN_HINT})",
        dir.display()
    );
    let start = std::time::Instant::now();
    let results = run_all(&cases, run_case);
    let passed: BTreeSet<String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| n.clone())
        .collect();
    println!(
        "{label} conformance: {}/{} passed ({:.1}s)",
        passed.len(),
        results.len(),
        start.elapsed().as_secs_f64()
    );
    if env_flag("GLASSBOX_CONFORMANCE_VERBOSE") {
        for (name, r) in &results {
            if let Err(e) = r {
                let short: String = e.chars().take(400).collect();
                println!("FAIL {name}: {short}");
            }
        }
    }

    let path = manifest_path(manifest);
    if env_flag("GLASSBOX_UPDATE_MANIFEST") {
        let text: String = passed.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&path, text).expect("write manifest");
        println!(
            "{label} conformance: wrote {} names to {}",
            passed.len(),
            path.display()
        );
        return;
    }
    let expected = read_manifest(&path);
    let new: Vec<&String> = passed.difference(&expected).collect();
    if !new.is_empty() {
        println!(
            "{label} conformance: {} passing cases not yet in {manifest} \
             (add them, or rerun with GLASSBOX_UPDATE_MANIFEST=1):",
            new.len()
        );
        for n in &new {
            println!("  {n}");
        }
    }
    let regressions: Vec<String> = expected
        .iter()
        .filter(|n| !passed.contains(*n))
        .map(|n| match results.get(n) {
            Some(Err(e)) => format!("  {n}: {}", e.chars().take(400).collect::<String>()),
            _ => format!("  {n}: case missing from the data in {}", dir.display()),
        })
        .collect();
    assert!(
        regressions.is_empty(),
        "{label} conformance: {} cases listed in {manifest} failed:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}

#[test]
fn node_conformance() {
    check_suite("node", "node", "node-pass.txt");
}

#[test]
fn light_models() {
    let dir = data_dir().join("light");
    let found = case_dirs(&dir).len();
    assert_eq!(
        found,
        9,
        "expected the 9 light models in {} ({GEN_HINT})",
        dir.display()
    );
    check_suite("light", "light", "light-pass.txt");
}

#[test]
fn compare_follows_numpy_allclose() {
    let f = |v: Vec<f32>| Tensor::from_vec(vec![v.len()], v).expect("tensor");
    assert!(
        compare(
            &f(vec![1.0, f32::NAN, f32::INFINITY]),
            &f(vec![1.0005, f32::NAN, f32::INFINITY]),
            1e-3,
            0.0
        )
        .is_ok()
    );
    assert!(compare(&f(vec![1.0]), &f(vec![1.002]), 1e-3, 0.0).is_err());
    assert!(compare(&f(vec![f32::NAN]), &f(vec![0.0]), 1e-3, 1.0).is_err());
    assert!(
        compare(
            &f(vec![f32::INFINITY]),
            &f(vec![f32::NEG_INFINITY]),
            1e-3,
            1.0
        )
        .is_err()
    );
    assert!(compare(&f(vec![0.0]), &f(vec![1e-8]), 0.0, 1e-7).is_ok());
    let i = |v: Vec<i64>| Tensor::from_vec(vec![v.len()], v).expect("tensor");
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 2]), 0.0, 0.0).is_ok());
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 3]), 1.0, 1.0).is_err());
    assert!(compare(&i(vec![1, 2]), &f(vec![1.0, 2.0]), 1.0, 1.0).is_err());
    let r = Tensor::from_vec(vec![2, 1], vec![1i64, 2]).expect("tensor");
    assert!(compare(&r, &i(vec![1, 2]), 0.0, 0.0).is_err());
    assert_eq!(
        meta_number("{\"atol\": 1e-07, \"rtol\": 0.001}", "rtol"),
        Some(0.001)
    );
    assert_eq!(
        meta_number("{\"atol\": 1e-07, \"rtol\": 0.001}", "atol"),
        Some(1e-7)
    );
}

#[test]
fn a_panicking_case_fails_alone() {
    fn run(dir: &Path) -> Result<(), String> {
        if dir.ends_with("boom") {
            panic!("kaboom")
        } else {
            Ok(())
        }
    }
    let cases: Vec<(String, PathBuf)> = ["a", "boom", "c"]
        .iter()
        .map(|n| (n.to_string(), PathBuf::from(n)))
        .collect();
    let results = run_all(&cases, run);
    assert_eq!(results.len(), 3);
    assert_eq!(results["a"], Ok(()));
    assert_eq!(results["c"], Ok(()));
    assert_eq!(results["boom"], Err("panicked: kaboom".to_string()));
}

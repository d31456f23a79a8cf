//! End-to-end tests of `glassbox exec` through the built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn glassbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(args)
        .output()
        .expect("run glassbox")
}

#[test]
fn exec_json_reports_outputs_trace_and_writes_npy() {
    let dir = std::env::temp_dir().join(format!("glassbox-exec-test-{}", std::process::id()));
    let model = models().join("mnist-cnn.onnx");
    let input = models().join("mnist-cnn.input.json");
    let out = glassbox(&[
        "exec",
        model.to_str().expect("path"),
        "--input",
        &format!("image={}", input.display()),
        "--output-dir",
        dir.to_str().expect("path"),
        "--json",
        "--repeat",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/tests/golden/trace-roots.txt"),
    )
    .expect("golden file");
    let root = v["trace_root"].as_str().expect("trace_root");
    assert!(
        golden.contains(&format!("mnist-cnn {root}")),
        "trace root {root} is not the golden one"
    );
    assert!(
        v["model_id"]
            .as_str()
            .expect("model_id")
            .starts_with("blake3:")
    );
    assert!(v["cost"]["flops"].as_u64().expect("flops") > 0);
    let o = &v["outputs"][0];
    assert_eq!(o["dtype"], "float32");
    assert_eq!(o["shape"], serde_json::json!([1, 10]));
    let file = o["file"].as_str().expect("file");
    let npy = std::fs::read(file).expect("output npy");
    assert_eq!(&npy[..6], b"\x93NUMPY");
    for k in ["load", "run_median", "run_min"] {
        assert!(v["timing_ms"][k].as_f64().is_some(), "timing_ms.{k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn portable_kernels_and_threads_give_the_same_root() {
    let model = models().join("mnist-cnn.onnx");
    let input = models().join("mnist-cnn.input.npy");
    let root = |extra: &[&str]| {
        let mut args = vec!["exec", model.to_str().expect("path"), "--input"];
        args.push(input.to_str().expect("path"));
        args.push("--json");
        args.extend_from_slice(extra);
        let out = glassbox(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["trace_root"].as_str().expect("root").to_string()
    };
    let base = root(&[]);
    assert_eq!(base, root(&["--kernels", "portable"]));
    assert_eq!(base, root(&["--threads", "2"]));
}

#[test]
fn wrong_inputs_say_what_the_model_expects() {
    let model = models().join("mnist-cnn.onnx");
    let wrong = models().join("mlp.input.json");
    let out = glassbox(&[
        "exec",
        model.to_str().expect("path"),
        "--input",
        wrong.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expects float32 [1, 1, 28, 28]"), "{err}");
    let out = glassbox(&[
        "exec",
        model.to_str().expect("path"),
        "--input",
        "nope=x.npy",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no input `nope`") && err.contains("image"),
        "{err}"
    );
    let out = glassbox(&["exec", model.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing inputs: image"), "{err}");
}

//! Verified inference through the CLI on real local networks
//! (docs/jobs.md): the README's demo end to end, offline receipt checks
//! (and a tampered copy failing), bad requests refused without a fee, and
//! a crashed executor replaced by the ledger, and a job whose run fails
//! settled as a result.

mod common;

use std::process::{Command, Output};

use common::{DevNet, glassbox, models};
use serde_json::Value;

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn glassbox");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn glassbox");
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn demo_runs_and_its_receipt_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = run_ok(glassbox().arg("demo").arg("--data-dir").arg(&data));
    let text = String::from_utf8_lossy(&out.stdout);
    for step in [
        "1. Network",
        "2. Publish",
        "3. Infer",
        "4. Verify",
        "Re-executed locally",
    ] {
        assert!(text.contains(step), "demo output lacks `{step}`:\n{text}");
    }
    let receipt = data.join("receipt.json");
    let genesis = data.join("genesis.json");
    let out = run_ok(
        glassbox()
            .args(["receipt", "verify"])
            .arg(&receipt)
            .arg("--genesis")
            .arg(&genesis)
            .arg("--reexecute")
            .arg("--model")
            .arg(data.join("mnist-cnn.onnx"))
            .arg("--json"),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["reexecuted"], true);
    assert_eq!(v["replicas"], 3);

    // A tampered copy fails, naming the field.
    let mut r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let first = r["outputs"][0].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        &first[..first.len() - 1],
        if first.ends_with('0') { "1" } else { "0" }
    );
    r["outputs"][0] = Value::String(flipped);
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, r.to_string()).unwrap();
    let err = run_err(
        glassbox()
            .args(["receipt", "verify"])
            .arg(&bad)
            .arg("--genesis")
            .arg(&genesis),
    );
    assert!(err.contains("`outputs`"), "{err}");

    // Re-executing against another model file is refused.
    let err = run_err(
        glassbox()
            .args(["receipt", "verify"])
            .arg(&receipt)
            .arg("--genesis")
            .arg(&genesis)
            .arg("--reexecute")
            .arg("--model")
            .arg(models().join("mlp.onnx")),
    );
    assert!(err.contains("the receipt's job ran"), "{err}");
}

/// A dev network whose validator 3 is a registered executor that never
/// runs (its key is removed before start): every job assigned to it is
/// reassigned after the commit window, and still ends final.
#[test]
fn a_crashed_executor_is_replaced_and_bad_requests_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Short windows, so the test does not wait 100 blocks.
    let net = DevNet::start(dir.path(), 15, &[3]);
    let dead_key = dir.path().join("executor-3.key");
    let dead = run_ok(glassbox().args(["keys", "show", "--key"]).arg(&dead_key));
    let dead = String::from_utf8_lossy(&dead.stdout).to_string();
    let node = net.node.clone();
    let key = net.dev_key();
    net.publish_mlp();
    let dev_address = {
        let out = run_ok(glassbox().args(["keys", "show", "--key"]).arg(&key));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let api = common::api(&node);
    let dev_address: glassbox_types::PublicKey = dev_address.parse().unwrap();
    let balance = || {
        api.account(&dev_address)
            .unwrap()
            .record
            .expect("the dev account")
            .balance
    };
    let before = balance();

    // Refused before they cost anything.
    let input = models().join("mlp.input.json");
    let err = run_err(
        glassbox()
            .args(["infer", &format!("blake3:{}", "00".repeat(32)), "--input"])
            .arg(&input)
            .args(["--node", &node, "--key"])
            .arg(&key),
    );
    assert!(err.contains("not published"), "{err}");
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, "[[1.0, 2.0, 3.0]]").unwrap();
    let err = run_err(
        glassbox()
            .args(["infer", "test/mlp@1.0.0", "--input"])
            .arg(&wrong)
            .args(["--node", &node, "--key"])
            .arg(&key),
    );
    assert!(
        err.contains("bad_tensor") && err.contains("dimension"),
        "{err}"
    );
    let err = run_err(
        glassbox()
            .args(["infer", "test/mlp@1.0.0", "--replicas", "5", "--input"])
            .arg(&input)
            .args(["--node", &node, "--key"])
            .arg(&key),
    );
    assert!(err.contains("not_enough_executors"), "{err}");
    assert_eq!(balance(), before, "refused requests cost nothing");

    // Jobs until one was assigned to the dead executor (each is with
    // probability 3/4); every one ends final.
    let mut replaced = false;
    for _ in 0..8 {
        let out = run_ok(
            glassbox()
                .args(["infer", "test/mlp@1.0.0", "--json", "--input"])
                .arg(&input)
                .args(["--node", &node, "--key"])
                .arg(&key),
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "final");
        assert_eq!(v["receipt_verified"], true);
        let id: glassbox_ledger::JobId = v["job_id"].as_str().unwrap().parse().unwrap();
        let job = api.job(&id).unwrap().record.expect("the job");
        let missed: Vec<String> = job.missed.iter().map(ToString::to_string).collect();
        if !missed.is_empty() {
            assert_eq!(missed, vec![dead.trim().to_string()]);
            replaced = true;
            break;
        }
    }
    assert!(replaced, "no job was ever assigned to the dead executor");
    let dead: glassbox_types::PublicKey = dead.trim().parse().unwrap();
    let ex = api.executor(&dead).unwrap().record.expect("the executor");
    assert!(
        ex.stake < 10_000_000_000,
        "the missing executor lost stake: {ex:?}"
    );
}

/// `x` (16 floats) through Relu, then Gather at the int64 index `i`, then
/// Relu: an index out of range makes operator 1 fail.
fn gather_model() -> Vec<u8> {
    use glassbox_runtime::DType;
    use glassbox_runtime::proto::onnx::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, tensor_shape_proto, type_proto,
    };
    use prost::Message;
    let vi = |name: &str, dtype: DType, dims: &[i64]| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype.onnx_code()),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&v| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str| NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Relu", &["x"], "a"),
                node("Gather", &["a", "i"], "b"),
                node("Relu", &["b"], "y"),
            ],
            input: vec![vi("x", DType::F32, &[16]), vi("i", DType::I64, &[1])],
            output: vec![vi("y", DType::F32, &[1])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Finding "honest executors filtered out" (issue #25, P2), end to end:
/// on inputs that make an operator fail (a Gather index out of range),
/// every executor reveals the failure instead of missing its deadline;
/// the job ends final with no outputs, nobody is penalized, and the
/// receipt verifies and re-executes offline.
#[test]
fn a_job_whose_run_fails_ends_final_and_costs_no_executor() {
    let dir = tempfile::tempdir().unwrap();
    let net = DevNet::start(dir.path(), 15, &[]);
    let (node, key) = (net.node.clone(), net.dev_key());
    let model = dir.path().join("gather.onnx");
    std::fs::write(&model, gather_model()).unwrap();
    run_ok(
        glassbox()
            .args(["model", "publish"])
            .arg(&model)
            .args(["--name", "test/gather", "--version", "1.0.0", "--key"])
            .arg(&key)
            .args(["--node", &node]),
    );
    let x = dir.path().join("x.json");
    std::fs::write(
        &x,
        serde_json::to_string(&(0..16).collect::<Vec<i32>>()).unwrap(),
    )
    .unwrap();
    let i = dir.path().join("i.json");
    std::fs::write(&i, "[99]").unwrap();
    let receipt = dir.path().join("receipt.json");
    let out = run_ok(
        glassbox()
            .args([
                "infer",
                "test/gather@1.0.0",
                "--replicas",
                "3",
                "--json",
                "--input",
            ])
            .arg(format!("x={}", x.display()))
            .arg(format!("i={}", i.display()))
            .args(["--node", &node, "--key"])
            .arg(&key)
            .arg("--receipt")
            .arg(&receipt),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "final");
    assert_eq!(v["run_failed"], true, "{v}");
    assert_eq!(v["outputs"], Value::Array(Vec::new()));
    let id: glassbox_ledger::JobId = v["job_id"].as_str().unwrap().parse().unwrap();
    let api = common::api(&node);
    let job = api.job(&id).unwrap().record.expect("the job");
    assert!(job.missed.is_empty(), "nobody missed: {:?}", job.missed);
    for slot in &job.slots {
        let e = api.executor(&slot.executor).unwrap().record.unwrap();
        assert_eq!(e.stake, 10_000_000_000, "{e:?}");
    }
    let out = run_ok(
        glassbox()
            .args(["receipt", "verify"])
            .arg(&receipt)
            .arg("--genesis")
            .arg(dir.path().join("net/genesis.json"))
            .arg("--reexecute")
            .arg("--model")
            .arg(&model)
            .arg("--json"),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["verified"].as_bool(), v["reexecuted"].as_bool()),
        (Some(true), Some(true))
    );
}

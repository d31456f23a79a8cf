//! Verified inference through the CLI on real local networks
//! (docs/jobs.md): the README's demo end to end, offline receipt checks
//! (and a tampered copy failing), bad requests refused without a fee, and
//! a crashed executor replaced by the ledger.

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

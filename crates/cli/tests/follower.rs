//! A full node that executes (issue #27 item 4; docs/operations.md "Full
//! and executor-only nodes"): four validators as `glassbox node`
//! processes, validator 3 without its executor, and a fifth `glassbox
//! node` without a validator key that runs validator 3's executor. The
//! full node follows the chain through the validators' APIs (checking
//! every block against a certificate), forwards the jobs it is sent, its
//! executor's commits and reveals reach the chain through it, its
//! receipts verify offline, and after a SIGKILL it comes back from its
//! own snapshot and catches up.

use std::time::{Duration, Instant};

use glassbox_ledger::{JobId, JobStatus, TxBody};

mod common;
use common::{Nodes, api_at, glassbox, set_windows};

const VALIDATORS: usize = 4;

#[test]
#[allow(clippy::print_stderr)]
fn a_full_node_follows_runs_jobs_and_restarts_from_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let http = common::init_four_validators(&dir);
    set_windows(&dir.join("genesis.json"), 20);
    // Validator 3's executor moves to the full node.
    let (config, full_port) = common::full_node_with_validator_3s_executor(&dir, 20);

    let mut nodes = Nodes::start(&dir, VALIDATORS);
    let full = nodes.add(&dir, config);
    let full_url = format!("http://127.0.0.1:{full_port}");
    common::wait("every node healthy", Duration::from_secs(90), || {
        (0..VALIDATORS).all(|i| common::height(http + i as u16).is_some())
            && common::height(full_port).is_some_and(|h| h >= 3)
    });
    // The same blocks as the validators.
    let h = common::height(full_port).unwrap();
    assert_eq!(
        common::block_digest(full_port, h),
        common::block_digest(http, h),
        "the full node's block {h} is not validator 0's"
    );

    // Publish through validator 0 (the executors fetch the model from
    // the registered executors' endpoints, the validators' APIs), then
    // jobs through the full node.
    let model_id = common::publish_mlp_at(&dir, "full/mlp", &format!("http://127.0.0.1:{http}"));
    let input = common::mlp_input();
    let dev = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let ours = glassbox_store::keyfile::read_secret_key(&dir.join("validator-3/executor.key"))
        .unwrap()
        .public();
    let net = common::Net::connect(&full_url);
    // The publish finalized on validator 0; the full node follows.
    common::wait(
        "the full node to know the model",
        Duration::from_secs(10),
        || net.api.model(&model_id).is_ok_and(|m| m.record.is_some()),
    );
    let mut ran_here = None;
    for n in 0..8 {
        let tx = net.sign(
            &dev,
            TxBody::SubmitJob {
                model_id,
                inputs: vec![input.clone()],
                replicas: 3,
                max_fee: 1_000_000_000,
            },
        );
        net.api
            .submit_job(&tx)
            .expect("the full node takes the job");
        let id = JobId::of_tx(tx.hash());
        let job = net.wait_job(&id, "final", |j| j.status == JobStatus::Final);
        if !job.missed.is_empty() {
            let log = std::fs::read_to_string(dir.join(format!("node-{full}.log"))).unwrap();
            panic!(
                "job {n} missed slots of {:?} (the full node's executor is {ours}); its log:\n{log}",
                job.missed
            );
        }
        if job.slots.iter().any(|s| s.executor == ours) {
            ran_here = Some(id);
        }
        if ran_here.is_some() && n >= 2 {
            break;
        }
    }
    let Some(id) = ran_here else {
        let log = std::fs::read_to_string(dir.join(format!("node-{full}.log"))).unwrap();
        panic!("no job drew the full node's executor in 8; its log:\n{log}");
    };
    // Its receipt, from the full node, verifies offline (409
    // `not_certified` until a segment brings a certificate at or past the
    // job's block: Net::receipt waits).
    let receipt = net.receipt(&id);
    let path = dir.join("receipt.json");
    std::fs::write(&path, serde_json::to_vec(&receipt).unwrap()).unwrap();
    let out = glassbox()
        .args(["receipt", "verify"])
        .arg(&path)
        .arg("--genesis")
        .arg(dir.join("genesis.json"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // SIGKILL; the chain moves on; the full node comes back from its own
    // snapshot and catches up.
    let before = common::height(full_port).unwrap();
    nodes.kill(full);
    common::wait("the validators moving on", Duration::from_secs(60), || {
        common::height(http).is_some_and(|h| h >= before + 30)
    });
    let restarted = Instant::now();
    nodes.restart(&dir, full);
    common::wait("the full node caught up", Duration::from_secs(60), || {
        let tip = common::height(http).unwrap_or(u64::MAX);
        common::height(full_port).is_some_and(|h| h + 2 >= tip)
    });
    eprintln!(
        "full node caught up {} ms after its restart",
        restarted.elapsed().as_millis()
    );
    let log = std::fs::read_to_string(dir.join(format!("node-{full}.log"))).unwrap();
    assert!(
        log.contains("started from a state snapshot"),
        "the restart did not start from its snapshot:\n{log}"
    );
    let h = common::height(full_port).unwrap();
    let digest = common::block_digest(full_port, h);
    common::wait(
        "validator 0 at the same height",
        Duration::from_secs(10),
        || common::height(http).is_some_and(|t| t >= h),
    );
    assert_eq!(digest, common::block_digest(http, h));
    assert!(api_at(full_port).health().is_ok());
}

//! A Byzantine executor on a real local network (docs/jobs.md). The test
//! itself plays validator 3's registered executor (its node runs none):
//! first it commits and then withholds its reveal — it is penalized and
//! replaced, and the job ends final with the honest result; then it reveals
//! a wrong output under a trace root it cannot open — the job is disputed,
//! no receipt is served and the stakes are locked while the honest
//! executors' nodes play the dispute game; the liar never moves, loses by
//! timeout and is slashed, and the honest result is final with a receipt
//! that verifies offline (docs/disputes.md).

mod common;

use std::time::{Duration, Instant};

use common::{DevNet, Net, agent, chain_id, get, models, post_tx};

use glassbox_ledger::{JobId, Params, TxBody, commitment, outputs_hash};
use glassbox_primitives::{Salt, TraceRoot};
use glassbox_runtime::{Tensor, formats};
use glassbox_types::{ModelId, PublicKey, hex};
use serde_json::{Value, json};

fn slot_index(job: &Value, me: &PublicKey) -> Option<usize> {
    let me = me.to_string();
    job["slots"]
        .as_array()?
        .iter()
        .position(|s| s["executor"].as_str() == Some(me.as_str()))
}

/// Two zero tensors shaped like the MLP's outputs.
fn wrong_outputs() -> Vec<Vec<u8>> {
    let t = Tensor::from_vec(vec![4, 8], vec![0f32; 32]).unwrap();
    vec![formats::canonical_encode(&t), formats::canonical_encode(&t)]
}

#[test]
fn a_byzantine_executor_never_gets_a_wrong_result_finalized() {
    let dir = tempfile::tempdir().unwrap();
    // The test plays validator 3's executor: its node gets no key.
    let dev_net = DevNet::start(dir.path(), 15, &[3]);
    let byz = glassbox_store::keyfile::read_secret_key(&dir.path().join("executor-3.key")).unwrap();
    let me = byz.public();
    let node = dev_net.node.clone();
    dev_net.publish_mlp();
    let models = models();
    let dev_key_path = dev_net.dev_key();
    let (_, status) = get(&format!("{node}/v1/status"));
    let chain_id = chain_id(&status);
    let params: Params = serde_json::from_value(status["params"].clone()).unwrap();
    let net = Net {
        node: node.clone(),
        chain_id,
        params,
    };
    let dev = glassbox_store::keyfile::read_secret_key(&dev_key_path).unwrap();
    let model_id = ModelId::of(&std::fs::read(models.join("mlp.onnx")).unwrap());
    let input = {
        let v: Value =
            serde_json::from_slice(&std::fs::read(models.join("mlp.input.json")).unwrap()).unwrap();
        formats::canonical_encode(
            &formats::json_decode(&v, glassbox_runtime::DType::F32, 1 << 16).unwrap(),
        )
    };
    let stake0 = net.executor(&me)["stake"].as_u64().unwrap();

    // Submits jobs until one is assigned to the Byzantine executor.
    let job_for_me = || -> (JobId, Value) {
        for _ in 0..20 {
            let tx = net.sign(
                &dev,
                TxBody::SubmitJob {
                    model_id,
                    inputs: vec![input.clone()],
                    replicas: 3,
                    max_fee: 1_000_000_000,
                },
            );
            let id = JobId(tx.hash().0);
            post_tx(&node, &tx);
            let job = net.wait_job(&id, "assigned", |j| j["status"] != "assigning");
            if slot_index(&job, &me).is_some() {
                return (id, job);
            }
            net.wait_job(&id, "closed", |j| j["status"] == "final");
        }
        panic!("never assigned to the Byzantine executor");
    };

    // 1. Commit, then withhold the reveal: penalized, replaced, and the
    //    job ends final with the honest executors' result.
    let (id, _) = job_for_me();
    let oh = outputs_hash(
        &wrong_outputs()
            .iter()
            .map(|o| blake3::hash(o).into())
            .collect::<Vec<_>>(),
    );
    // A commitment to the wrong outputs (any trace root and salt).
    let wrong_commitment = |id: &JobId| {
        commitment(
            id,
            &me,
            &oh,
            &TraceRoot::from_bytes([1; 32]),
            &Salt::from_bytes([2; 32]),
        )
    };
    let c = wrong_commitment(&id);
    post_tx(
        &node,
        &net.sign(
            &byz,
            TxBody::CommitResult {
                job_id: id,
                commitment: c,
            },
        ),
    );
    let job = net.wait_job(&id, "final", |j| j["status"] == "final");
    assert_eq!(job["missed"], json!([me.to_string()]));
    assert!(slot_index(&job, &me).is_none(), "replaced");
    let stake1 = net.executor(&me)["stake"].as_u64().unwrap();
    assert_eq!(stake1, stake0 - net.params.miss_penalty, "penalized");
    let (code, receipt) = get(&format!("{node}/v1/jobs/{id}/receipt"));
    assert!(code == 200 || code == 409, "{receipt}");

    // 2. Reveal a wrong output: disputed, never final, stakes locked.
    let (id, job) = job_for_me();
    let c = wrong_commitment(&id);
    post_tx(
        &node,
        &net.sign(
            &byz,
            TxBody::CommitResult {
                job_id: id,
                commitment: c,
            },
        ),
    );
    net.wait_job(&id, "all committed", |j| {
        j["slots"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| !s["commitment"].is_null()))
    });
    post_tx(
        &node,
        &net.sign(
            &byz,
            TxBody::RevealResult {
                job_id: id,
                output_hash: oh,
                trace_root: TraceRoot::from_bytes([1; 32]),
                salt: Salt::from_bytes([2; 32]),
                outputs: wrong_outputs(),
            },
        ),
    );
    let job2 = net.wait_job(&id, "closed", |j| {
        j["status"] != "running" && j["status"] != "assigning"
    });
    assert_eq!(job2["status"], "disputed", "{job2}");
    assert_eq!(
        job2["outputs"],
        json!([]),
        "no result is recorded as agreed"
    );
    let (code, body) = get(&format!("{node}/v1/jobs/{id}/receipt"));
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"]["code"], "job_disputed");
    for slot in job["slots"].as_array().unwrap() {
        let owner: PublicKey = slot["executor"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            net.executor(&owner)["disputes"],
            1,
            "stake of {owner} locked"
        );
    }
    // A locked executor cannot unbond.
    let tx = net.sign(&byz, TxBody::Unbond { amount: 1 });
    let mut resp = agent()
        .post(format!("{node}/v1/tx"))
        .header("content-type", "application/json")
        .send(json!({ "tx": hex(tx.encoded()) }).to_string())
        .unwrap();
    let body: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
    // Admission passes (the lock is an execution rule); once included the
    // transaction fails with executor_locked.
    if resp.status().as_u16() == 202 {
        let hash = body["tx_hash"].as_str().unwrap().to_string();
        let start = Instant::now();
        loop {
            let (_, s) = get(&format!("{node}/v1/tx/{hash}"));
            if s["status"] == "finalized" {
                assert_eq!(s["outcome"]["error"]["code"], "executor_locked", "{s}");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "unbond never finalized"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // 3. The honest executors' nodes open their trace; the liar cannot
    //    open a trace root it made up, never moves, and loses by timeout.
    let job3 = net.wait_job(&id, "decided", |j| j["status"] != "disputed");
    assert_eq!(job3["status"], "final", "{job3}");
    assert_ne!(
        job3["outputs"],
        json!(wrong_outputs().iter().map(|o| hex(o)).collect::<Vec<_>>())
    );
    let (_, ext) = get(&format!("{node}/v1/jobs/{id}/ext"));
    let d = &ext["value"]["dispute"];
    assert_eq!(d["verdicts"][0]["reason"], "timeout in open", "{d}");
    assert_eq!(net.executor(&me)["stake"], 0, "the liar is slashed");
    for slot in job["slots"].as_array().unwrap() {
        let owner: PublicKey = slot["executor"].as_str().unwrap().parse().unwrap();
        assert_eq!(net.executor(&owner)["disputes"], 0, "{owner} released");
    }
    // Its receipt carries the dispute record and verifies offline.
    let start = Instant::now();
    let receipt = loop {
        let (code, body) = get(&format!("{node}/v1/jobs/{id}/receipt"));
        if code == 200 {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(receipt["job_ext"].is_string(), "{receipt}");
    let path = dir.path().join("receipt.json");
    std::fs::write(&path, receipt.to_string()).unwrap();
    let out = common::glassbox()
        .args(["receipt", "verify"])
        .arg(&path)
        .arg("--genesis")
        .arg(dev_net.data.join("genesis.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

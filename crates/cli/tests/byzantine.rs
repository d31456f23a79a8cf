//! A Byzantine executor on a real local network (docs/jobs.md). The test
//! itself plays validator 3's registered executor (its node runs none):
//! first it commits and then withholds its reveal after the honest ones —
//! it forfeits its stake and is replaced, and the job ends final with the
//! honest result; bonded again, it reveals
//! a wrong output under a trace root it cannot open — the job is disputed,
//! no receipt is served and the stakes are locked while the honest
//! executors' nodes play the dispute game; the liar never moves, loses by
//! timeout and is slashed, and the honest result is final with a receipt
//! that verifies offline (docs/disputes.md).

mod common;

use std::time::{Duration, Instant};

use common::{DevNet, Net, models};

use glassbox_api::wire::TxStatus;
use glassbox_ledger::{Job, JobId, JobStatus, TxBody, VerdictReason, commitment, outputs_hash};
use glassbox_primitives::{Salt, TraceRoot};
use glassbox_runtime::{Tensor, formats};
use glassbox_types::{ModelId, PublicKey};
use serde_json::Value;

fn slot_index(job: &Job, me: &PublicKey) -> Option<usize> {
    job.slots.iter().position(|s| s.executor == *me)
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
    dev_net.publish_mlp();
    let models = models();
    let net = Net::connect(&dev_net.node);
    let dev = glassbox_store::keyfile::read_secret_key(&dev_net.dev_key()).unwrap();
    let model_id = ModelId::of(&std::fs::read(models.join("mlp.onnx")).unwrap());
    let input = {
        let v: Value =
            serde_json::from_slice(&std::fs::read(models.join("mlp.input.json")).unwrap()).unwrap();
        formats::canonical_encode(
            &formats::json_decode(&v, glassbox_runtime::DType::F32, 1 << 16).unwrap(),
        )
    };
    let stake0 = net.executor(&me).stake;

    // Submits jobs until one is assigned to the Byzantine executor.
    let job_for_me = || -> (JobId, Job) {
        for _ in 0..20 {
            let tx = net.send(
                &dev,
                TxBody::SubmitJob {
                    model_id,
                    inputs: vec![input.clone()],
                    replicas: 3,
                    max_fee: 1_000_000_000,
                },
            );
            let id = JobId::of_tx(tx.hash());
            let job = net.wait_job(&id, "assigned", |j| j.status != JobStatus::Assigning);
            if slot_index(&job, &me).is_some() {
                return (id, job);
            }
            net.wait_job(&id, "closed", |j| j.status == JobStatus::Final);
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
    net.send(
        &byz,
        TxBody::CommitResult {
            job_id: id,
            commitment: c,
        },
    );
    let job = net.wait_job(&id, "final", |j| j.status == JobStatus::Final);
    assert_eq!(job.missed, vec![me]);
    assert!(slot_index(&job, &me).is_none(), "replaced");
    // It saw the honest reveals before withholding its own: that costs
    // its whole stake, as the dispute it dodged would have (issue #25).
    let e = net.executor(&me);
    assert_eq!((e.stake, e.unbonding_total()), (0, 0), "forfeited");
    // Bonded again (funded by the dev key, fees included), to be drawn for
    // the next job.
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(60), "never {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    net.send(
        &dev,
        TxBody::Transfer {
            to: me,
            amount: stake0 + 1_000_000_000,
        },
    );
    until("funded", &|| {
        net.api
            .account(&me)
            .ok()
            .and_then(|a| a.record)
            .is_some_and(|a| a.balance >= stake0)
    });
    // Slashed to nothing, it is no longer active: it registers again.
    net.send(
        &byz,
        TxBody::RegisterExecutor {
            stake: stake0,
            capacity: e.capacity,
            endpoint: e.endpoint.clone(),
        },
    );
    until("registered again", &|| net.executor(&me).stake == stake0);
    if let Err(e) = net.api.receipt::<Value>(&id) {
        assert_eq!(e.status(), Some(409), "{e}");
    }

    // 2. Reveal a wrong output: disputed, never final, stakes locked.
    let (id, job) = job_for_me();
    let c = wrong_commitment(&id);
    net.send(
        &byz,
        TxBody::CommitResult {
            job_id: id,
            commitment: c,
        },
    );
    net.wait_job(&id, "all committed", |j| {
        j.slots.iter().all(|s| s.commitment.is_some())
    });
    net.send(
        &byz,
        TxBody::RevealResult {
            job_id: id,
            output_hash: oh,
            trace_root: TraceRoot::from_bytes([1; 32]),
            salt: Salt::from_bytes([2; 32]),
            outputs: wrong_outputs(),
        },
    );
    let job2 = net.wait_job(&id, "closed", |j| {
        !matches!(j.status, JobStatus::Running | JobStatus::Assigning)
    });
    assert_eq!(job2.status, JobStatus::Disputed, "{job2:?}");
    assert!(job2.outputs.is_empty(), "no result is recorded as agreed");
    let e = net.api.receipt::<Value>(&id).expect_err("no receipt");
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("job_disputed")),
        "{e}"
    );
    for slot in &job.slots {
        let owner = slot.executor;
        assert_eq!(net.executor(&owner).disputes, 1, "stake of {owner} locked");
    }
    // A locked executor cannot unbond. Admission passes (the lock is an
    // execution rule); once included the transaction fails with
    // executor_locked.
    let tx = net.sign(&byz, TxBody::Unbond { amount: 1 });
    if let Ok(submitted) = net.api.submit_tx(&tx) {
        let start = Instant::now();
        loop {
            if let Ok(TxStatus::Finalized { outcome, .. }) = net.api.tx_status(&submitted.tx_hash) {
                let e = outcome.result.expect_err("the unbond must fail");
                assert_eq!(e.code, "executor_locked", "{e:?}");
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
    let job3 = net.wait_job(&id, "decided", |j| j.status != JobStatus::Disputed);
    assert_eq!(job3.status, JobStatus::Final, "{job3:?}");
    assert_ne!(job3.outputs, wrong_outputs());
    let d = net.job_ext(&id).and_then(|e| e.dispute).expect("dispute");
    assert_eq!(d.verdicts[0].reason, VerdictReason::TimeoutOpen, "{d:?}");
    assert_eq!(net.executor(&me).stake, 0, "the liar is slashed");
    for slot in &job.slots {
        let owner = slot.executor;
        assert_eq!(net.executor(&owner).disputes, 0, "{owner} released");
    }
    // Its receipt carries the dispute record and verifies offline.
    let receipt = net.receipt(&id);
    assert!(receipt.job_ext.is_some(), "{receipt:?}");
    let path = dir.path().join("receipt.json");
    std::fs::write(&path, serde_json::to_string(&receipt).unwrap()).unwrap();
    let out = common::glassbox()
        .args(["receipt", "verify"])
        .arg(&path)
        .arg("--genesis")
        .arg(dev_net.data.join("genesis.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

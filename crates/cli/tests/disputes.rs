//! The dispute game on a real local network (docs/disputes.md). The test
//! plays validator 3's registered executor as a liar that corrupts one
//! operator's output at a random position (`Party::run_lying`) and plays
//! its side of the game; the honest executor's node plays the other side on
//! its own. The dispute ends at exactly the corrupted operator, the liar is
//! slashed, the honest result is final, `glassbox job show` tells the story
//! and the receipt verifies offline.

// The test reports where it lied and how long the dispute took.
#![allow(clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DevNet, Net, get, hex_bytes, models, post_tx};
use glassbox_ledger::dispute::Target;
use glassbox_ledger::{JobExt, JobId, Params, TxBody, commitment};
use glassbox_node::party::Party;
use glassbox_runtime::{DType, Limits, Model, Options, Session, formats};
use glassbox_types::{ModelId, hex};
use serde_json::Value;

fn put(url: &str, bytes: &[u8]) {
    let resp = common::agent()
        .put(url)
        .header("content-type", "application/octet-stream")
        .send(bytes)
        .expect("PUT");
    assert_eq!(resp.status().as_u16(), 200, "PUT {url}");
}

#[test]
fn a_lying_executor_is_caught_at_the_operator_it_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let dev_net = DevNet::start(dir.path(), 15, &[3]);
    let liar_key =
        glassbox_store::keyfile::read_secret_key(&dir.path().join("executor-3.key")).unwrap();
    let me = liar_key.public();
    let node = dev_net.node.clone();
    dev_net.publish_mlp();
    let (_, status) = get(&format!("{node}/v1/status"));
    let params: Params = serde_json::from_value(status["params"].clone()).unwrap();
    let net = Net {
        node: node.clone(),
        chain_id: hex_bytes(status["chain_id"].as_str().unwrap()),
        params,
    };
    let dev = glassbox_store::keyfile::read_secret_key(&dev_net.dev_key()).unwrap();
    let bytes = std::fs::read(models().join("mlp.onnx")).unwrap();
    let model_id = ModelId::of(&bytes);
    let session = Arc::new(
        Session::new(
            Arc::new(Model::load(&bytes, Limits::default()).unwrap()),
            Options::default(),
        )
        .unwrap(),
    );
    let input = {
        let v: Value =
            serde_json::from_slice(&std::fs::read(models().join("mlp.input.json")).unwrap())
                .unwrap();
        formats::canonical_encode(&formats::json_decode(&v, DType::F32, 1 << 16).unwrap())
    };
    let leaves = session.model().nodes().len();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let lie_at = seed % leaves;
    let liar = Party::run_lying(
        Arc::clone(&session),
        std::slice::from_ref(&input),
        lie_at,
        seed,
    )
    .unwrap();
    eprintln!("lying at operator {lie_at} of {leaves}");

    // Jobs with 2 replicas until one goes to the liar.
    let (id, job) = (0..30)
        .find_map(|_| {
            let tx = net.sign(
                &dev,
                TxBody::SubmitJob {
                    model_id,
                    inputs: vec![input.clone()],
                    replicas: 2,
                    max_fee: 1_000_000_000,
                },
            );
            let id = JobId(tx.hash().0);
            post_tx(&node, &tx);
            let job = net.wait_job(&id, "assigned", |j| j["status"] != "assigning");
            let mine = job["slots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["executor"].as_str() == Some(me.to_string().as_str()));
            if mine {
                Some((id, job))
            } else {
                net.wait_job(&id, "final", |j| j["status"] == "final");
                None
            }
        })
        .expect("never assigned to the test's executor");
    let honest_key: glassbox_types::PublicKey = job["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["executor"].as_str())
        .find(|k| *k != me.to_string())
        .unwrap()
        .parse()
        .unwrap();

    // Commit and reveal the lie.
    let c = commitment(&id, &me, &liar.output_hash(), &liar.trace_root(), &[7; 32]);
    post_tx(
        &node,
        &net.sign(
            &liar_key,
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
            &liar_key,
            TxBody::RevealResult {
                job_id: id,
                output_hash: liar.output_hash(),
                trace_root: liar.trace_root(),
                salt: [7; 32],
                outputs: liar.outputs(),
            },
        ),
    );
    let started = Instant::now();
    net.wait_job(&id, "disputed", |j| j["status"] == "disputed");

    // Play the liar's side until the dispute is decided.
    let mut sent: Option<(usize, u32, usize)> = None;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the dispute did not end"
        );
        if net.job(&id)["status"] != "disputed" {
            break;
        }
        let (_, rec) = get(&format!("{node}/v1/jobs/{id}/ext"));
        let Some(record) = rec["record"].as_str() else {
            continue;
        };
        let ext = JobExt::decode(&glassbox_types::unhex_vec(record, 1 << 24).unwrap()).unwrap();
        let Some(d) = ext.dispute.as_ref() else {
            continue;
        };
        let Some(g) = d.game.as_ref() else {
            continue;
        };
        let pos = (d.verdicts.len(), g.rounds, g.opened.len());
        if sent != Some(pos)
            && let Some(step) = liar.next_step(&ext, &me)
        {
            for t in liar.opened_tensors(&step) {
                put(
                    &format!("{node}/v1/tensors/{}", hex(&t.hash())),
                    &formats::canonical_encode(&t),
                );
            }
            post_tx(
                &node,
                &net.sign(&liar_key, TxBody::DisputeStep { job_id: id, step }),
            );
            sent = Some(pos);
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    eprintln!("dispute decided in {:?}", started.elapsed());

    let job = net.job(&id);
    assert_eq!(job["status"], "final", "{job}");
    let honest = Party::run(Arc::clone(&session), &[input]).unwrap();
    let outputs: Vec<String> = honest.outputs().iter().map(|o| hex(o)).collect();
    assert_eq!(job["outputs"], serde_json::json!(outputs));
    let (_, rec) = get(&format!("{node}/v1/jobs/{id}/ext"));
    let ext = JobExt::decode(
        &glassbox_types::unhex_vec(rec["record"].as_str().unwrap(), 1 << 24).unwrap(),
    )
    .unwrap();
    let d = ext.dispute.unwrap();
    assert_eq!(
        d.verdicts[0].target,
        Some(Target::Node(lie_at as u64)),
        "{d:?}"
    );
    assert_eq!(net.executor(&me)["stake"], 0, "the liar is slashed");
    assert_eq!(net.executor(&honest_key)["disputes"], 0);

    // `glassbox job show` tells the story.
    let out = common::glassbox()
        .args(["job", "show", &id.to_string(), "--node", &node])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict"), "{text}");
    assert!(text.contains("stands"), "{text}");

    // The receipt carries the dispute record and verifies offline.
    let start = Instant::now();
    let receipt = loop {
        let (code, body) = get(&format!("{node}/v1/jobs/{id}/receipt"));
        if code == 200 {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
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

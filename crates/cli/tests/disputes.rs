//! The dispute game on a real local network (docs/disputes.md). The tests
//! play validator 3's registered executor as a liar that corrupts one
//! operator's output at a random position (`Party::run_lying`) and plays
//! its side of the game; the honest executor's node plays the other side on
//! its own. The dispute ends at exactly the corrupted operator, the liar is
//! slashed and the honest result is final:
//! - on a `glassbox dev` network, where `glassbox job show` tells the story
//!   and the receipt verifies offline;
//! - on four `glassbox node` processes, one of which is killed with SIGKILL
//!   in the middle of the game: the other three decide it, and the restarted
//!   validator replays the dispute (fetching the opened operands from its
//!   peers) to the same state.

// The tests report where they lied and how long the dispute took.
#![allow(clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DevNet, Net, Nodes, models};
use glassbox_ledger::{JobId, JobStatus, TxBody, commitment};
use glassbox_node::disputes::party::Party;
use glassbox_runtime::{DType, Limits, Model, Options, Session, formats};
use glassbox_types::{ModelId, PublicKey, SecretKey};
use serde_json::Value;

/// The test's lying executor on the MLP and its input.
struct Liar {
    key: SecretKey,
    me: PublicKey,
    session: Arc<Session>,
    input: Vec<u8>,
    /// The operator whose output it corrupts.
    lie_at: usize,
    party: Party,
}

impl Liar {
    fn new(key: SecretKey) -> Liar {
        let bytes = std::fs::read(models().join("mlp.onnx")).unwrap();
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
        let party = Party::run_lying(
            Arc::clone(&session),
            std::slice::from_ref(&input),
            lie_at,
            seed,
        )
        .unwrap();
        eprintln!("lying at operator {lie_at} of {leaves}");
        Liar {
            me: key.public(),
            key,
            session,
            input,
            lie_at,
            party,
        }
    }

    /// Submits jobs with 2 replicas until one goes to the liar; returns it
    /// and the other (honest) executor.
    fn get_a_job(&self, net: &Net, dev: &SecretKey) -> (JobId, PublicKey) {
        let model_id = ModelId::of(&std::fs::read(models().join("mlp.onnx")).unwrap());
        let (id, job) = (0..30)
            .find_map(|_| {
                let tx = net.send(
                    dev,
                    TxBody::SubmitJob {
                        model_id,
                        inputs: vec![self.input.clone()],
                        replicas: 2,
                        max_fee: 1_000_000_000,
                    },
                );
                let id = JobId::of_tx(tx.hash());
                let job = net.wait_job(&id, "assigned", |j| j.status != JobStatus::Assigning);
                if job.slots.iter().any(|s| s.executor == self.me) {
                    Some((id, job))
                } else {
                    net.wait_job(&id, "final", |j| j.status == JobStatus::Final);
                    None
                }
            })
            .expect("never assigned to the test's executor");
        let honest = job
            .slots
            .iter()
            .map(|s| s.executor)
            .find(|k| *k != self.me)
            .unwrap();
        (id, honest)
    }

    /// Commits to and reveals the lie; returns once the job is disputed.
    fn reveal(&self, net: &Net, id: &JobId) {
        let (p, me) = (&self.party, &self.me);
        let c = commitment(
            id,
            me,
            &p.output_hash(),
            &p.trace_root(),
            &glassbox_primitives::Salt::from_bytes([7; 32]),
        );
        net.send(
            &self.key,
            TxBody::CommitResult {
                job_id: *id,
                commitment: c,
            },
        );
        net.wait_job(id, "all committed", |j| {
            j.slots.iter().all(|s| s.commitment.is_some())
        });
        net.send(
            &self.key,
            TxBody::RevealResult {
                job_id: *id,
                output_hash: p.output_hash(),
                trace_root: p.trace_root(),
                salt: glassbox_primitives::Salt::from_bytes([7; 32]),
                outputs: p.outputs(),
            },
        );
        net.wait_job(id, "disputed", |j| j.status == JobStatus::Disputed);
    }

    /// Plays the liar's side until the job is no longer disputed, calling
    /// `after_step` with the number of steps sent so far after each one.
    fn play(&self, net: &Net, id: &JobId, mut after_step: impl FnMut(usize)) {
        let started = Instant::now();
        let mut sent: Option<(usize, u32, usize)> = None;
        let mut steps = 0;
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the dispute did not end"
            );
            if net.job(id).is_none_or(|j| j.status != JobStatus::Disputed) {
                break;
            }
            let Some(ext) = net.job_ext(id) else {
                continue;
            };
            let Some(d) = ext.dispute.as_ref() else {
                continue;
            };
            let Some(g) = d.game.as_ref() else {
                continue;
            };
            let pos = (d.verdicts.len(), g.rounds, g.opened.len());
            if sent != Some(pos)
                && let Some(step) = self.party.next_step(&ext, &self.me)
            {
                for t in self.party.opened_tensors(&step) {
                    net.api
                        .put_tensor(formats::canonical_encode(&t))
                        .expect("PUT tensor");
                }
                let tx = net.sign(&self.key, TxBody::DisputeStep { job_id: *id, step });
                match net.api.submit_tx(&tx) {
                    Ok(_) => {
                        sent = Some(pos);
                        steps += 1;
                        after_step(steps);
                    }
                    // The honest side's move may have decided the game
                    // since the status was read.
                    Err(e) => {
                        let e = e.to_string();
                        assert!(
                            e.contains("only a disputed job")
                                || e.contains("not in the current game"),
                            "{e}"
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        eprintln!("dispute decided in {:?}", started.elapsed());
    }

    /// The job ended with the honest result, the dispute at exactly the
    /// corrupted operator, and the liar slashed.
    fn check_caught(&self, net: &Net, id: &JobId, honest: &PublicKey) {
        let job = net.job(id).expect("the job");
        assert_eq!(job.status, JobStatus::Final, "{job:?}");
        let truth =
            Party::run(Arc::clone(&self.session), std::slice::from_ref(&self.input)).unwrap();
        assert_eq!(job.outputs, truth.outputs());
        let d = net.job_ext(id).unwrap().dispute.unwrap();
        assert_eq!(
            d.verdicts[0].target.and_then(|t| t.node()),
            Some(self.lie_at as u64),
            "{d:?}"
        );
        assert_eq!(net.executor(&self.me).stake, 0, "the liar is slashed");
        assert_eq!(net.executor(honest).disputes, 0);
    }
}

/// The two tests each run a network of four validators: one at a time.
static ONE_NETWORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_lying_executor_is_caught_at_the_operator_it_corrupted() {
    let _one = ONE_NETWORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let dev_net = DevNet::start(dir.path(), 15, &[3]);
    let key = glassbox_store::keyfile::read_secret_key(&dir.path().join("executor-3.key")).unwrap();
    let node = dev_net.node.clone();
    dev_net.publish_mlp();
    let net = Net::connect(&node);
    let dev = glassbox_store::keyfile::read_secret_key(&dev_net.dev_key()).unwrap();
    let liar = Liar::new(key);
    let (id, honest) = liar.get_a_job(&net, &dev);
    liar.reveal(&net, &id);
    liar.play(&net, &id, |_| {});
    liar.check_caught(&net, &id, &honest);

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
    let receipt = net.receipt(&id);
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

#[test]
fn a_dispute_resolves_across_a_validator_crash() {
    let _one = ONE_NETWORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let http = common::init_four_validators(dir);
    common::set_windows(&dir.join("genesis.json"), 15);
    // Validator 3's node runs no executor: the test plays its executor.
    let config = dir.join("validator-3/node.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let without: String = toml
        .lines()
        .filter(|l| !l.starts_with("executor_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(toml, without, "validator 3 had an executor");
    std::fs::write(&config, without).unwrap();
    let key =
        glassbox_store::keyfile::read_secret_key(&dir.join("validator-3/executor.key")).unwrap();

    let mut nodes = Nodes::start(dir, 4);
    let ports: Vec<u16> = (0..4).map(|i| http + i).collect();
    common::wait(
        "every node to finalize height 3",
        Duration::from_secs(60),
        || {
            ports
                .iter()
                .all(|&p| common::height(p).is_some_and(|h| h >= 3))
        },
    );
    let node = format!("http://127.0.0.1:{http}");
    let out = common::glassbox()
        .args(["model", "publish"])
        .arg(models().join("mlp.onnx"))
        .args(["--name", "test/mlp", "--version", "1.0.0", "--key"])
        .arg(dir.join("dev.key"))
        .args(["--node", &node])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let net = Net::connect(&node);
    let dev = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let liar = Liar::new(key);
    let (id, honest) = liar.get_a_job(&net, &dev);
    liar.reveal(&net, &id);

    // SIGKILL validator 3 once the game is under way: the other three
    // decide it.
    liar.play(&net, &id, |steps| {
        if steps == 1 {
            nodes.kill(3);
            eprintln!("killed validator 3");
        }
    });
    assert!(
        nodes.is_down(3),
        "the game ended before validator 3 was killed"
    );
    liar.check_caught(&net, &id, &honest);
    let decided_at = common::height(ports[0]).unwrap();

    // Restarted, it replays the dispute (the referee needs the opened
    // operands, which it fetches from its peers) and agrees.
    nodes.restart(dir, 3);
    let start = Instant::now();
    while common::height(ports[3]).is_none_or(|h| h < decided_at) {
        if start.elapsed() > Duration::from_secs(90) {
            let log = std::fs::read_to_string(dir.join("node-3.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "validator 3 did not catch up past height {decided_at} (at {:?}); its log ends:\n{}",
                common::height(ports[3]),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let here = net.job(&id);
    let there = common::api_at(ports[3]).job(&id).expect("job").record;
    assert_eq!(here, there, "validators 0 and 3 disagree on the job");
    assert_eq!(
        common::block_digest(ports[0], decided_at),
        common::block_digest(ports[3], decided_at),
        "validators 0 and 3 disagree at height {decided_at}"
    );
}

//! Nothing an executor owes is lost on a crash (issue #27 item 3;
//! docs/jobs.md, "Executor role"): four validators as `glassbox node`
//! processes, each with an executor; round after round, 3-replica jobs go
//! to validator 0 and validator 3 is SIGKILLed at a seeded random moment of
//! their lives (before its draw, before or after its commit, around its
//! reveal) and started again at once. Every job ends `Final` with no missed
//! slot, and validator 3's executor keeps its whole stake and is never
//! paused: a restart within the commit and reveal windows costs an honest
//! executor nothing. The rounds go on until the restarted node has read
//! back results it had written before a commitment at least twice (the
//! durable path, not a run again), so the test cannot pass without it.

use std::time::{Duration, Instant};

use glassbox_ledger::{JobId, JobStatus, SignedTx, TxBody};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

mod common;
use common::Nodes;

const VALIDATORS: usize = 4;
const VICTIM: usize = 3;
const JOBS_PER_ROUND: usize = 4;
const MAX_ROUNDS: usize = 30;
/// Restarts that read back kept results before the test stops.
const READ_BACKS: usize = 2;
const READ_BACK_LINE: &str = "read back the results kept before a restart";

#[test]
#[allow(clippy::print_stderr)]
fn an_executor_killed_at_random_points_and_restarted_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let http = common::init_four_validators(&dir);
    // The default 100-block windows: a restart must fit in them.
    let mut nodes = Nodes::start(&dir, VALIDATORS);
    common::wait("every node healthy", Duration::from_secs(90), || {
        (0..VALIDATORS).all(|i| common::height(http + i as u16).is_some_and(|h| h >= 3))
    });
    let node0 = format!("http://127.0.0.1:{http}");
    let model_id = common::publish_mlp_at(&dir, "restart/mlp", &node0);
    let input = common::mlp_input();
    let dev = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let victim = glassbox_store::keyfile::read_secret_key(
        &dir.join(format!("validator-{VICTIM}/executor.key")),
    )
    .unwrap()
    .public();
    let net = common::Net::connect(&node0);
    let before = net.executor(&victim);
    let log_path = dir.join(format!("node-{VICTIM}.log"));
    let read_backs = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches(READ_BACK_LINE)
            .count()
    };

    let mut rng = StdRng::seed_from_u64(27);
    let mut drawn = 0;
    let mut rounds = 0;
    while read_backs() < READ_BACKS {
        assert!(
            rounds < MAX_ROUNDS,
            "{rounds} rounds, {} restarts read kept results back (want {READ_BACKS})",
            read_backs()
        );
        rounds += 1;
        // A few jobs, a little apart, so the kill finds them at different
        // points of their lives.
        let first = net
            .api
            .account(&dev.public())
            .expect("account")
            .record
            .map_or(0, |a| a.nonce);
        let mut ids = Vec::new();
        for nonce in first..first + JOBS_PER_ROUND as u64 {
            let body = TxBody::SubmitJob {
                model_id,
                inputs: vec![input.clone()],
                replicas: 3,
                max_fee: 1_000_000_000,
            };
            let probe = SignedTx::sign(&net.chain_id, &dev, nonce, 0, body.clone()).unwrap();
            let fee = net.params.min_fee_for(probe.len()).unwrap();
            let tx = SignedTx::sign(&net.chain_id, &dev, nonce, fee, body).unwrap();
            net.api.submit_job(&tx).expect("validator 0 takes the job");
            ids.push(JobId::of_tx(tx.hash()));
            std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        nodes.kill(VICTIM);
        let killed = Instant::now();
        nodes.restart(&dir, VICTIM);
        for id in &ids {
            let job = net.wait_job(id, "final", |j| {
                matches!(j.status, JobStatus::Final | JobStatus::Failed)
            });
            assert_eq!(job.status, JobStatus::Final, "job {id}: {job:?}");
            assert!(
                job.missed.is_empty(),
                "job {id} missed slots of {:?} (validator {VICTIM}'s executor is {victim}); its log:\n{}",
                job.missed,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            if job.slots.iter().any(|s| s.executor == victim) {
                drawn += 1;
            }
        }
        eprintln!(
            "round {rounds}: jobs final {} ms after the kill; {} read-backs so far",
            killed.elapsed().as_millis(),
            read_backs()
        );
    }
    assert!(drawn > 0, "no job drew validator {VICTIM}'s executor");
    let after = net.executor(&victim);
    assert_eq!(
        after.stake, before.stake,
        "validator {VICTIM}'s executor lost stake across {rounds} restarts"
    );
    assert_eq!(after.paused_height, None, "it was paused");
    assert!(after.served > before.served, "{after:?}");
}

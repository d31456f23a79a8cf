//! The fault campaign across processes (issue #27 item 6; docs/operations.md
//! "Fault campaign"): four validators, each its own `glassbox node` process
//! (three with an executor), and an executor-only full node running the
//! fourth executor, under a steady load of 1- and 3-replica jobs sent to
//! any of the five, while seeded faults hit them: SIGKILL and restart of
//! one node, of two at once (two validators: the network loses its quorum
//! until they return), of a node whose storage is wiped (it comes back
//! from its peers), SIGSTOP of one or two for seconds, then SIGCONT (a
//! node cut off, or frozen, that goes on where it was), and one node
//! starved of CPU (a cgroup caps it at 5 % of a core for seconds, where
//! the kernel lets the test make one; else that roll kills it).
//! Throughout it checks:
//!
//! - no two nodes report different blocks at a height;
//! - no node's finalized height goes back after its restart (nothing
//!   finalized is lost);
//! - finalization resumes within [`MAX_RECOVERY_MS`] once the killed nodes
//!   are back;
//! - at the end, every job that reached the chain is `Final` or `Failed`
//!   with its escrow settled (0), and every accepted job reached the chain
//!   (a client resends a job whose node died before gossiping it, as a real
//!   client does): as a job, or as a transaction its block refused (too
//!   few live executors by then: `jobs_refused_in_block`).
//!
//! It prints one JSON line (`jobs_submitted`, `jobs_final`, `jobs_failed`,
//! `faults_injected`, `violations`, `max_stall_ms`, `max_recovery_ms`, ...)
//! and fails on any violation. `GLASSBOX_CHAOS_SECS` (default 120, what
//! CI runs) and `GLASSBOX_CHAOS_SEED` (default 1) set its length and seed,
//! `GLASSBOX_CHAOS_FAULTS=kill|wipe|freeze|starve` injects one kind only;
//! `bash scripts/chaos.sh [--minutes M] [--seed S]` runs it. Network
//! partitions and a full disk are not injected yet (see the note in
//! docs/operations.md).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use glassbox_api::blocking::Client;
use glassbox_ledger::{JobId, JobStatus, SignedTx, TxBody};
use glassbox_primitives::BlockDigest;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

mod common;
use common::{Nodes, api_at, glassbox, models, set_windows};

const VALIDATORS: usize = 4;
/// The validators and the full node (the last).
const NODES: usize = VALIDATORS + 1;
/// Longest finalization may take to resume once every node is back.
const MAX_RECOVERY_MS: u64 = 30_000;
/// A job accepted by a node but not on chain after this long is resent.
const RESEND_AFTER: Duration = Duration::from_secs(5);
/// A starved node's share of one core, in percent.
const STARVED_CPU_PERCENT: u64 = 5;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A job the campaign sent: its transaction, when it was last sent, and
/// whether the chain holds it.
struct Sent {
    tx: SignedTx,
    last_sent: Instant,
    on_chain: bool,
    /// Times sent again, each to the next live node.
    resends: usize,
}

/// Records an accepted job and moves to the next nonce.
fn accepted(sent: &mut Vec<Sent>, nonce: &mut u64, tx: SignedTx) {
    *nonce += 1;
    sent.push(Sent {
        tx,
        last_sent: Instant::now(),
        on_chain: false,
        resends: 0,
    });
}

/// What a fault episode does to its nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// SIGKILL, then a restart.
    Kill,
    /// SIGKILL, storage wiped, then a restart.
    Wipe,
    /// SIGSTOP, then SIGCONT: they go on where they were.
    Freeze,
    /// Capped at [`STARVED_CPU_PERCENT`] of a core, then released.
    Starve,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Wipe => "wipe",
            Fault::Freeze => "freeze",
            Fault::Starve => "starve",
        }
    }
}

/// One fault episode: the nodes down, and when they come back.
struct Episode {
    down: Vec<usize>,
    until: Instant,
    fault: Fault,
    /// When it began, and the network's height then.
    began: (Instant, u64),
}

/// A CPU cap for one process: a cgroup of the kernel's `cpu` controller
/// (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), made only where this process
/// may (root on a writable cgroup tree).
struct Throttle {
    dir: std::path::PathBuf,
    /// Where a released process goes back to.
    parent_procs: std::path::PathBuf,
}

impl Throttle {
    fn new(name: &str) -> Option<Throttle> {
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_cpu = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
        let (root, quota) = if v2_cpu {
            (v2.to_path_buf(), "cpu.max")
        } else {
            (v2.join("cpu"), "cpu.cfs_quota_us")
        };
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).ok()?;
        let period_us = 100_000;
        let quota_us = period_us * STARVED_CPU_PERCENT / 100;
        let set = if v2_cpu {
            std::fs::write(dir.join(quota), format!("{quota_us} {period_us}"))
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), period_us.to_string())
                .and_then(|()| std::fs::write(dir.join(quota), quota_us.to_string()))
        };
        let t = Throttle {
            parent_procs: root.join("cgroup.procs"),
            dir,
        };
        set.is_ok().then_some(t)
    }

    /// Caps process `pid` (all its threads).
    fn add(&self, pid: u32) -> bool {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }

    /// Lifts the cap of process `pid`.
    fn release(&self, pid: u32) {
        let _ = std::fs::write(&self.parent_procs, pid.to_string());
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(&self.parent_procs, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Campaign {
    dir: std::path::PathBuf,
    ports: Vec<u16>,
    nodes: Nodes,
    rng: StdRng,
    violations: Vec<String>,
    /// The first digest any node reported per height.
    digests: HashMap<u64, BlockDigest>,
    /// The highest finalized height each node reported.
    high: Vec<u64>,
    /// Nodes stopped by SIGSTOP.
    frozen: Vec<bool>,
    faults: u64,
    /// Faults injected, by kind.
    by_kind: HashMap<&'static str, u64>,
    /// The CPU cap, where the kernel lets the test make one.
    throttle: Option<Throttle>,
}

impl Campaign {
    fn client(&self, i: usize) -> Client {
        api_at(self.ports[i])
    }

    fn live(&self) -> Vec<usize> {
        (0..NODES)
            .filter(|&i| !self.nodes.is_down(i) && !self.frozen[i])
            .collect()
    }

    /// A node's finalized height, if it answers healthy.
    fn height(&self, i: usize) -> Option<u64> {
        common::height(self.ports[i])
    }

    /// Reads every live node's height and its newest block, checking that
    /// heights never go back and digests agree; returns the highest height.
    fn observe(&mut self) -> u64 {
        let mut top = 0;
        for i in self.live() {
            let Some(h) = self.height(i) else { continue };
            if h < self.high[i] {
                // A restarted node reports healthy only once it is past
                // its replay, so a lower height is a lost block.
                self.violations.push(format!(
                    "node {i} reports finalized height {h} after {}",
                    self.high[i]
                ));
            }
            self.high[i] = self.high[i].max(h);
            top = top.max(h);
            if let Ok(b) = self.client(i).block(h) {
                match self.digests.get(&h) {
                    Some(d) if *d != b.digest => self.violations.push(format!(
                        "node {i} finalized {} at height {h}, another node {d}",
                        b.digest
                    )),
                    Some(_) => {}
                    None => {
                        self.digests.insert(h, b.digest);
                    }
                }
            }
        }
        top
    }

    /// Caps node `i`'s CPU; false where no cap can be made.
    fn starve(&mut self, i: usize) -> bool {
        match (&self.throttle, self.nodes.pid(i)) {
            (Some(t), Some(pid)) => t.add(pid),
            _ => false,
        }
    }

    /// Ends episode `e`: its nodes restarted, resumed or released.
    fn end(&mut self, e: &Episode) {
        for &i in &e.down {
            match e.fault {
                Fault::Kill | Fault::Wipe => self.nodes.restart(&self.dir, i),
                Fault::Freeze => {
                    self.nodes.signal(i, "CONT");
                    self.frozen[i] = false;
                }
                Fault::Starve => {
                    if let (Some(t), Some(pid)) = (&self.throttle, self.nodes.pid(i)) {
                        t.release(pid);
                    }
                }
            }
        }
    }
}

#[test]
#[allow(clippy::print_stdout, clippy::print_stderr)]
fn chaos_campaign() {
    let secs = env_u64("GLASSBOX_CHAOS_SECS", 120);
    let seed = env_u64("GLASSBOX_CHAOS_SEED", 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let http = common::init_four_validators(&dir);
    set_windows(&dir.join("genesis.json"), 20);
    // Snapshots every 50 blocks, so restarts start from one.
    for i in 0..VALIDATORS {
        let path = dir.join(format!("validator-{i}/node.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("snapshot_every_blocks = 1000", "snapshot_every_blocks = 50");
        std::fs::write(&path, text).unwrap();
    }
    // Validator 3's executor runs on the full node.
    let (full_config, full_port) = common::full_node_with_validator_3s_executor(&dir, 50);
    let mut ports: Vec<u16> = (0..VALIDATORS as u16).map(|i| http + i).collect();
    ports.push(full_port);
    let mut nodes = Nodes::start(&dir, VALIDATORS);
    nodes.add(&dir, full_config);
    let mut c = Campaign {
        nodes,
        dir: dir.clone(),
        ports: ports.clone(),
        rng: StdRng::seed_from_u64(seed),
        violations: Vec::new(),
        digests: HashMap::new(),
        high: vec![0; NODES],
        frozen: vec![false; NODES],
        faults: 0,
        by_kind: HashMap::new(),
        throttle: Throttle::new(&format!("glassbox-chaos-{}", std::process::id())),
    };
    common::wait("every node healthy", Duration::from_secs(60), || {
        (0..NODES).all(|i| c.height(i).is_some())
    });
    let node0 = format!("http://127.0.0.1:{}", ports[0]);
    let model_id = common::publish_mlp_at(&dir, "chaos/mlp", &node0);
    let input = common::mlp_input();
    let dev = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let status = c.client(0).status().unwrap();
    // The publisher has its own key (and so its own nonces).
    let publisher = glassbox_types::SecretKey::from_seed(&[0x70; 32]);
    glassbox_store::keyfile::write_secret_key(&dir.join("publisher.key"), &publisher).unwrap();
    let net = common::Net::connect(&node0);
    let fund = net.send(
        &dev,
        TxBody::Transfer {
            to: publisher.public(),
            amount: 1_000_000_000_000,
        },
    );
    common::wait("the publisher's funds", Duration::from_secs(60), || {
        matches!(
            c.client(0).tx_status(&fund.hash()),
            Ok(glassbox_api::wire::TxStatus::Finalized { .. })
        )
    });
    let mut nonce = c
        .client(0)
        .account(&dev.public())
        .unwrap()
        .record
        .map_or(0, |a| a.nonce);

    let only = std::env::var("GLASSBOX_CHAOS_FAULTS").ok().map(|k| {
        [Fault::Kill, Fault::Wipe, Fault::Freeze, Fault::Starve]
            .into_iter()
            .find(|f| f.name() == k)
            .unwrap_or_else(|| {
                panic!("GLASSBOX_CHAOS_FAULTS={k}: not kill, wipe, freeze or starve")
            })
    });
    let mut sent: Vec<Sent> = Vec::new();
    let mut episode: Option<Episode> = None;
    let mut next_fault = Instant::now() + Duration::from_secs(3);
    let mut last_top = c.observe();
    let mut last_move = Instant::now();
    let (mut max_stall_ms, mut max_recovery_ms) = (0u64, 0u64);
    let mut healed_at: Option<(Instant, u64)> = None;
    // The last episode to end, and when: a stall may outlast it.
    let mut last_healed: Option<(Instant, Fault, Vec<usize>)> = None;
    let mut max_stall_cause = String::from("no fault");
    // Model publishes (a new version of the model every ~15 s), as child
    // processes: a publish waits for finality, the load must not.
    let mut publishes: Vec<std::process::Child> = Vec::new();
    let mut next_publish = Instant::now() + Duration::from_secs(15);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    // The job being submitted at `nonce`: kept, and sent again as is,
    // until a node accepts it or refuses it outright, as a careful client
    // does (a node that dies before answering may have taken it; another
    // transaction at the same nonce would race it).
    let mut current: Option<SignedTx> = None;
    // Every transaction signed per nonce: one refused by a node may still
    // have reached the chain through another that died before answering,
    // and then the one signed after it at that nonce never does.
    let mut signed: HashMap<u64, Vec<SignedTx>> = HashMap::new();
    while Instant::now() < end {
        // Load: one job per tick, k = 1 or 3, through a random live node.
        let tx = current.take().unwrap_or_else(|| {
            let replicas = if c.rng.random_range(0..3) == 0 { 1 } else { 3 };
            let body = TxBody::SubmitJob {
                model_id,
                inputs: vec![input.clone()],
                replicas,
                max_fee: 1_000_000_000,
            };
            let probe = SignedTx::sign(&status.chain_id, &dev, nonce, 0, body.clone()).unwrap();
            let fee = status.params.min_fee_for(probe.len()).unwrap();
            SignedTx::sign(&status.chain_id, &dev, nonce, fee, body).unwrap()
        });
        let alternates = signed.entry(tx.nonce()).or_default();
        if !alternates.iter().any(|t| t.hash() == tx.hash()) {
            alternates.push(tx.clone());
        }
        let live = c.live();
        let at = live[c.rng.random_range(0..live.len())];
        match c.client(at).submit_job(&tx) {
            // Accepted, or already pending there.
            Ok(_) => accepted(&mut sent, &mut nonce, tx),
            Err(e) if e.status() == Some(409) => accepted(&mut sent, &mut nonce, tx),
            // No answer, or busy: the same transaction again.
            Err(e) if e.status().is_none_or(|s| s >= 500) => current = Some(tx),
            // Refused (too few executors while nodes are down): a new one.
            Err(_) => {}
        }
        // Resend what a dead node may have taken with it.
        let live = c.live();
        for s in sent.iter_mut().filter(|s| !s.on_chain) {
            if s.last_sent.elapsed() < RESEND_AFTER {
                continue;
            }
            s.resends += 1;
            let i = live[(s.tx.nonce() as usize + s.resends) % live.len()];
            let client = api_at(ports[i]);
            if client
                .job(&JobId::of_tx(s.tx.hash()))
                .is_ok_and(|j| j.record.is_some())
            {
                s.on_chain = true;
            } else {
                let _ = client.submit_job(&s.tx);
                s.last_sent = Instant::now();
            }
        }
        if Instant::now() >= next_publish {
            let live = c.live();
            let at = live[c.rng.random_range(0..live.len())];
            // A model id is registered once: each version is the MLP with
            // its own doc string (protobuf field 6 again: the last wins).
            let k = publishes.len() + 1;
            let mut bytes = std::fs::read(models().join("mlp.onnx")).unwrap();
            let doc = format!("chaos {k}");
            bytes.extend_from_slice(&[0x32, doc.len() as u8]);
            bytes.extend_from_slice(doc.as_bytes());
            let file = dir.join(format!("mlp-{k}.onnx"));
            std::fs::write(&file, bytes).unwrap();
            let child = glassbox()
                .args(["model", "publish"])
                .arg(&file)
                .args(["--name", "chaos/published", "--license", "MIT", "--version"])
                .arg(format!("1.0.{k}"))
                .arg("--key")
                .arg(dir.join("publisher.key"))
                .args(["--node", &format!("http://127.0.0.1:{}", ports[at])])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            publishes.push(child);
            next_publish = Instant::now() + Duration::from_secs(15);
        }
        // Faults.
        let now = Instant::now();
        if let Some(e) = episode.as_ref().filter(|e| now >= e.until) {
            c.end(e);
            last_healed = Some((now, e.fault, e.down.clone()));
            let top = c.observe();
            // One line per episode (stderr): what the network did under it.
            eprintln!(
                "chaos: {} of nodes {:?} for {} ms: the network went from height {} to {}",
                e.fault.name(),
                e.down,
                now.duration_since(e.began.0).as_millis(),
                e.began.1,
                top
            );
            healed_at = Some((now, top));
            episode = None;
            next_fault = now + Duration::from_millis(2_000 + c.rng.random_range(0..4_000));
        } else if episode.is_none() && now >= next_fault {
            let mut roll = c.rng.random_range(0..100);
            if let Some(only) = only {
                // One kind of fault only (`GLASSBOX_CHAOS_FAULTS`).
                roll = match only {
                    Fault::Wipe => 25,
                    Fault::Freeze => 50,
                    Fault::Starve => 70,
                    Fault::Kill => 90,
                };
            }
            let first = c.rng.random_range(0..NODES);
            let mut down = vec![first];
            if roll < 25 {
                // Two at once: no quorum until they return (unless one
                // is the full node).
                down.push((first + 1 + c.rng.random_range(0..3usize)) % VALIDATORS);
            }
            let mut fault = match roll {
                25..40 => Fault::Wipe,
                // Frozen (SIGSTOP) instead of killed: to its peers and
                // clients a node cut off for seconds, which then goes
                // on with its old connections and timers.
                40..60 => Fault::Freeze,
                // Starved of CPU: slow, not gone (issue #27 item 10).
                60..75 => Fault::Starve,
                _ => Fault::Kill,
            };
            if fault == Fault::Starve && !c.starve(first) {
                fault = Fault::Kill;
            }
            for &i in &down {
                match fault {
                    Fault::Freeze => {
                        c.nodes.signal(i, "STOP");
                        c.frozen[i] = true;
                    }
                    Fault::Kill | Fault::Wipe => c.nodes.kill(i),
                    Fault::Starve => {}
                }
                c.faults += 1;
                *c.by_kind.entry(fault.name()).or_default() += 1;
            }
            if fault == Fault::Wipe {
                // A new machine with the same key: its heights start over.
                for sub in ["storage", "blobs", "tensors", "executor"] {
                    let _ = std::fs::remove_dir_all(node_dir(&dir, first).join(sub));
                }
                c.high[first] = 0;
            }
            // A starved node stays longer: long enough to fall behind.
            let base_ms = if fault == Fault::Starve { 3_000 } else { 1_000 };
            episode = Some(Episode {
                down,
                until: now + Duration::from_millis(base_ms + c.rng.random_range(0..4_000)),
                fault,
                began: (now, last_top),
            });
        }
        // Invariants.
        let top = c.observe();
        if top > last_top {
            last_top = top;
            last_move = Instant::now();
            if let Some((t, h)) = healed_at
                && top > h
            {
                max_recovery_ms = max_recovery_ms.max(t.elapsed().as_millis() as u64);
                healed_at = None;
            }
        }
        let stall_ms = last_move.elapsed().as_millis() as u64;
        if stall_ms > max_stall_ms {
            max_stall_ms = stall_ms;
            // What the network was going through: the episode under way,
            // or the last one if it ended within the stall.
            max_stall_cause = match (&episode, &last_healed) {
                (Some(e), _) => format!("{} of nodes {:?}", e.fault.name(), e.down),
                (None, Some((t, f, down))) if *t >= last_move => {
                    format!("after a {} of nodes {down:?}", f.name())
                }
                _ => "no fault".into(),
            };
        }
        if let Some((t, _)) = healed_at
            && t.elapsed().as_millis() as u64 > MAX_RECOVERY_MS
        {
            c.violations.push(format!(
                "finalization did not resume within {MAX_RECOVERY_MS} ms of the nodes' return"
            ));
            healed_at = None;
        }
        std::thread::sleep(Duration::from_millis(150));
    }

    // Every node back; every job closed.
    if let Some(e) = episode.take() {
        c.end(&e);
    }
    let settle = Instant::now();
    let mut stuck = String::new();
    let (final_, failed, rejected, open) = loop {
        c.observe();
        let live = c.live();
        let (mut final_, mut failed, mut rejected, mut open) = (0u64, 0u64, 0u64, 0u64);
        stuck.clear();
        // The requester's next nonce, proof-checked: every nonce below it
        // was taken by a transaction in a block.
        let next_nonce = c
            .client(live[0])
            .account(&dev.public())
            .ok()
            .and_then(|a| a.record)
            .map_or(0, |a| a.nonce);
        for s in sent.iter_mut() {
            s.resends += 1;
            let client = api_at(ports[live[(s.tx.nonce() as usize + s.resends) % live.len()]]);
            // The job of whichever transaction at this nonce made it.
            let job = signed
                .get(&s.tx.nonce())
                .into_iter()
                .flatten()
                .find_map(|t| {
                    client
                        .job(&JobId::of_tx(t.hash()))
                        .ok()
                        .and_then(|j| j.record)
                });
            match job {
                Some(j) if j.status == JobStatus::Final && j.escrow == 0 => final_ += 1,
                Some(j) if j.status == JobStatus::Failed && j.escrow == 0 => failed += 1,
                Some(_) => open += 1,
                // In a block, but refused there (too few live executors
                // by then): its fee and nonce taken, no job.
                None if s.tx.nonce() < next_nonce => rejected += 1,
                None => {
                    open += 1;
                    if s.last_sent.elapsed() >= RESEND_AFTER {
                        let answer = client.submit_job(&s.tx);
                        if stuck.is_empty() {
                            stuck = format!(
                                "; first missing: nonce {}, resent to {}: {:?}",
                                s.tx.nonce(),
                                client.base(),
                                answer.map(|_| "accepted").map_err(|e| e.to_string())
                            );
                        }
                        s.last_sent = Instant::now();
                    }
                }
            }
        }
        if open == 0 || settle.elapsed() > Duration::from_secs(180) {
            break (final_, failed, rejected, open);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if open > 0 {
        c.violations.push(format!(
            "{open} jobs still open or missing 180 s after the last fault{stuck}"
        ));
    }
    let healthy = (0..NODES).all(|i| c.height(i).is_some());
    if !healthy {
        c.violations
            .push("not every node is healthy after the campaign".into());
    }
    // A publish whose node died under it fails like any request to a dead
    // node; the rest must finish.
    let published = publishes
        .iter_mut()
        .map(|p| p.wait().is_ok_and(|s| s.success()))
        .filter(|&ok| ok)
        .count();
    let summary = json!({
        "seed": seed,
        "secs": secs,
        "jobs_submitted": sent.len(),
        "jobs_final": final_,
        "jobs_failed": failed,
        "jobs_refused_in_block": rejected,
        "publishes": publishes.len(),
        "publishes_ok": published,
        "faults_injected": c.faults,
        "faults_by_kind": c.by_kind,
        "violations": c.violations.len(),
        "max_stall_ms": max_stall_ms,
        "max_stall_cause": max_stall_cause,
        "max_recovery_ms": max_recovery_ms,
        "heights_checked": c.digests.len(),
        "height": c.high.iter().max(),
    });
    println!("{summary}");
    keep_logs(&dir);
    assert!(c.violations.is_empty(), "{:#?}", c.violations);
}

/// Node `i`'s data directory: a validator's, or the full node's (the
/// last).
fn node_dir(dir: &Path, i: usize) -> std::path::PathBuf {
    if i < VALIDATORS {
        dir.join(format!("validator-{i}"))
    } else {
        dir.join("full")
    }
}

/// Copies the nodes' logs to `GLASSBOX_CHAOS_LOGS` when set.
fn keep_logs(dir: &Path) {
    if let Ok(to) = std::env::var("GLASSBOX_CHAOS_LOGS") {
        let to = Path::new(&to);
        let _ = std::fs::create_dir_all(to);
        for i in 0..NODES {
            let name = format!("node-{i}.log");
            let _ = std::fs::copy(dir.join(&name), to.join(&name));
        }
    }
}

//! A real network on loopback: four `glassbox node` processes; one is
//! killed with SIGKILL, the others keep finalizing, and the restarted one
//! catches up from its own storage and its peers.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_ports, get_json, glassbox, hex_bytes};

const VALIDATORS: usize = 4;

/// Kills every child on drop, so a failing test leaves no process behind.
struct Nodes(Vec<Option<Child>>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &Path, i: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("node-{i}.log"))).unwrap();
    glassbox()
        .args(["node", "--config"])
        .arg(dir.join(format!("validator-{i}/node.toml")))
        .env("GLASSBOX_LOG", "warn,glassbox_node=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn glassbox node")
}

fn height(port: u16) -> Option<u64> {
    get_json(&format!("http://127.0.0.1:{port}/health"))?["finalized_height"].as_u64()
}

fn block_digest(port: u16, h: u64) -> Option<String> {
    get_json(&format!("http://127.0.0.1:{port}/v1/blocks/{h}"))?["digest"]
        .as_str()
        .map(str::to_string)
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

#[test]
fn kill_9_one_validator_the_rest_finalize_and_it_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let http = free_ports(VALIDATORS as u16);
    let status = glassbox()
        .args(["dev", "--init-only", "--validators", "4", "--data-dir"])
        .arg(dir)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .status()
        .unwrap();
    assert!(status.success(), "glassbox dev --init-only failed");
    let ports: Vec<u16> = (0..VALIDATORS as u16).map(|i| http + i).collect();
    let mut nodes = Nodes((0..VALIDATORS).map(|i| Some(start(dir, i))).collect());

    let long = Duration::from_secs(60);
    wait("every node to finalize height 5", long, || {
        ports.iter().all(|&p| height(p).is_some_and(|h| h >= 5))
    });

    // A transfer sent to validator 1's API reaches the others by gossip and
    // is finalized everywhere.
    let key = glassbox_store::keyfile::read_secret_key(&dir.join("dev.key")).unwrap();
    let status = get_json(&format!("http://127.0.0.1:{}/v1/status", ports[1])).unwrap();
    let chain_id: [u8; 32] = hex_bytes(status["chain_id"].as_str().unwrap());
    let to = glassbox_types::SecretKey::from_seed(&[5; 32]).public();
    let tx = glassbox_ledger::SignedTx::sign(
        &chain_id,
        &key,
        0,
        1_000_000,
        glassbox_ledger::TxBody::Transfer { to, amount: 42 },
    )
    .unwrap();
    let body = serde_json::json!({ "tx": glassbox_types::hex(tx.encoded()) });
    let resp = ureq::post(&format!("http://127.0.0.1:{}/v1/tx", ports[1]))
        .send_json(&body)
        .expect("submit");
    assert_eq!(resp.status(), 202);
    wait("the transfer to finalize on every node", long, || {
        ports.iter().all(|&p| {
            get_json(&format!("http://127.0.0.1:{p}/v1/tx/{}", tx.hash()))
                .is_some_and(|v| v["status"] == "finalized")
        })
    });

    // SIGKILL validator 3: no chance to flush anything.
    let mut victim = nodes.0[3].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let at_kill = height(ports[0]).unwrap();
    wait("three validators to keep finalizing", long, || {
        ports[..3]
            .iter()
            .all(|&p| height(p).is_some_and(|h| h >= at_kill + 10))
    });

    nodes.0[3] = Some(start(dir, 3));
    let target = height(ports[0]).unwrap();
    wait("the restarted validator to catch up", long, || {
        height(ports[3]).is_some_and(|h| h >= target)
    });
    // Same blocks on both sides of the restart.
    for h in [1, at_kill, target] {
        let a = block_digest(ports[0], h);
        let b = block_digest(ports[3], h);
        if a.is_some() && b.is_some() {
            assert_eq!(a, b, "validators 0 and 3 disagree at height {h}");
        }
    }
    let a = block_digest(ports[0], target).expect("validator 0 keeps recent blocks");
    let b = block_digest(ports[3], target).expect("validator 3 serves the caught-up block");
    assert_eq!(a, b, "validators 0 and 3 disagree at height {target}");
}

//! Shared helpers of the CLI's network tests: the binary, free ports, a
//! killed-on-drop child, the typed API client (proof-checked records), a
//! `glassbox dev` network and separate `glassbox node` processes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use glassbox_api::blocking::Client;
use glassbox_api::wire::HealthStatus;
use glassbox_ledger::{Executor, Job, JobExt, JobId, Params, SignedTx, TxBody};
use glassbox_node::receipt::Receipt;
use glassbox_primitives::{BlockDigest, ChainId};
use glassbox_types::{PublicKey, SecretKey};
use serde_json::Value;

pub(crate) fn glassbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
}

/// The repository's `models/`.
pub(crate) fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Kills the child on drop, so a failing test leaves no process behind.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port base for a dev network of `validators`: its HTTP and p2p ports
/// (two per validator, consecutive) are free and lie below the kernel's
/// ephemeral range, so a killed node's ports are still free for its restart.
pub(crate) fn free_ports(validators: u16) -> u16 {
    glassbox_node::run::free_port_block(2 * validators).unwrap()
}

/// A client of the API at `url` (`http://HOST:PORT`), each call bounded
/// by 5 s.
pub(crate) fn api(url: &str) -> Client {
    Client::new(url, Duration::from_secs(5)).expect("client")
}

/// A client of the API on `127.0.0.1:port`.
pub(crate) fn api_at(port: u16) -> Client {
    api(&format!("http://127.0.0.1:{port}"))
}

/// Whether the node answers healthy (its restart replay done).
pub(crate) fn healthy(client: &Client) -> bool {
    client.health().is_ok_and(|h| h.status == HealthStatus::Ok)
}

/// Sets a genesis's commit and reveal windows to `window_blocks` and its
/// dispute rounds to 4 × `window_blocks`.
pub(crate) fn set_windows(genesis_path: &Path, window_blocks: u64) {
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(genesis_path).unwrap()).unwrap();
    genesis["ledger"]["params"]["commit_window_blocks"] = window_blocks.into();
    genesis["ledger"]["params"]["reveal_window_blocks"] = window_blocks.into();
    genesis["ledger"]["params"]["dispute_round_blocks"] = (4 * window_blocks).into();
    std::fs::write(genesis_path, genesis.to_string()).unwrap();
}

/// `glassbox dev --init-only` of four validators in `dir`, their APIs on
/// free loopback ports from the one returned.
pub(crate) fn init_four_validators(dir: &Path) -> u16 {
    let http = free_ports(4);
    let out = glassbox()
        .args(["dev", "--init-only", "--validators", "4", "--data-dir"])
        .arg(dir)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    http
}

/// `glassbox node` processes, one per validator of a `dev --init-only`
/// directory (and any other node added); every one still running is
/// killed on drop.
pub(crate) struct Nodes(Vec<(PathBuf, Option<Child>)>);

impl Nodes {
    /// Starts validators `0..n` of `dir`, each logging to `dir/node-<i>.log`.
    pub(crate) fn start(dir: &Path, n: usize) -> Nodes {
        let mut nodes = Nodes(Vec::new());
        for i in 0..n {
            nodes.add(dir, dir.join(format!("validator-{i}/node.toml")));
        }
        nodes
    }

    /// Starts one more node from `config`, logging to `dir/node-<i>.log`;
    /// returns its index.
    pub(crate) fn add(&mut self, dir: &Path, config: PathBuf) -> usize {
        let i = self.0.len();
        let child = start_node(dir, &config, i);
        self.0.push((config, Some(child)));
        i
    }

    /// SIGKILLs node `i`: no chance to flush anything.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.0[i].1.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends signal `name` (`STOP`, `CONT`, ...) to node `i`, if running.
    pub(crate) fn signal(&self, i: usize, name: &str) {
        if let Some(child) = &self.0[i].1 {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{name} of node {i}: {status}");
        }
    }

    /// Node `i`'s process id, if running.
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.0[i].1.as_ref().map(Child::id)
    }

    /// Whether node `i` has been killed (and not restarted).
    pub(crate) fn is_down(&self, i: usize) -> bool {
        self.0[i].1.is_none()
    }

    /// Starts node `i` again from its data directory.
    pub(crate) fn restart(&mut self, dir: &Path, i: usize) {
        assert!(self.0[i].1.is_none(), "node {i} is running");
        let child = start_node(dir, &self.0[i].0, i);
        self.0[i].1 = Some(child);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn start_node(dir: &Path, config: &Path, i: usize) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("node-{i}.log")))
        .unwrap();
    glassbox()
        .args(["node", "--config"])
        .arg(config)
        .env("GLASSBOX_LOG", "warn,glassbox_node=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn glassbox node")
}

/// Moves validator 3's executor of a `dev --init-only` directory to a
/// full node (no validator key) in `dir/full`, snapshotting every
/// `snapshot_every_blocks`; returns its config and HTTP port.
pub(crate) fn full_node_with_validator_3s_executor(
    dir: &Path,
    snapshot_every_blocks: u64,
) -> (PathBuf, u16) {
    let v3 = dir.join("validator-3/node.toml");
    let text = std::fs::read_to_string(&v3).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("executor_key"))
        .collect();
    std::fs::write(&v3, kept.join("\n")).unwrap();
    let port = glassbox_node::run::free_port_block(1).unwrap();
    let full_dir = dir.join("full");
    std::fs::create_dir_all(&full_dir).unwrap();
    let config = full_dir.join("node.toml");
    let toml = format!(
        "genesis = {:?}\ndata_dir = {:?}\nhttp_listen = \"127.0.0.1:{port}\"\n\
         executor_key = {:?}\nsnapshot_every_blocks = {snapshot_every_blocks}\n",
        dir.join("genesis.json"),
        full_dir,
        dir.join("validator-3/executor.key"),
    );
    std::fs::write(&config, toml).unwrap();
    (config, port)
}

/// Publishes `models/mlp.onnx` as `name@1.0.0` (MIT) with the dev key of
/// `dir` through the node at `node`; returns its model id.
pub(crate) fn publish_mlp_at(dir: &Path, name: &str, node: &str) -> glassbox_primitives::ModelId {
    let out = glassbox()
        .args(["model", "publish"])
        .arg(models().join("mlp.onnx"))
        .args(["--name", name, "--version", "1.0.0", "--license", "MIT"])
        .arg("--key")
        .arg(dir.join("dev.key"))
        .args(["--node", node])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    glassbox_primitives::ModelId::of(&std::fs::read(models().join("mlp.onnx")).unwrap())
}

/// `models/mlp.input.json` in the canonical tensor encoding (a job input).
pub(crate) fn mlp_input() -> Vec<u8> {
    use glassbox_runtime::formats;
    let v: Value =
        serde_json::from_slice(&std::fs::read(models().join("mlp.input.json")).unwrap()).unwrap();
    formats::canonical_encode(
        &formats::json_decode(&v, glassbox_runtime::DType::F32, 1 << 16).unwrap(),
    )
}

/// The finalized height a healthy node's API reports.
pub(crate) fn height(port: u16) -> Option<u64> {
    let h = api_at(port).health().ok()?;
    (h.status == HealthStatus::Ok).then_some(h.finalized_height)
}

/// The digest of the block at height `h` a node's API reports.
pub(crate) fn block_digest(port: u16, h: u64) -> Option<BlockDigest> {
    api_at(port).block(h).ok().map(|b| b.digest)
}

/// Polls `done` every 100 ms; panics after `timeout`.
pub(crate) fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A `glassbox dev` network of 4 validators in a child process.
pub(crate) struct DevNet {
    /// `http://` of validator 0's API.
    pub(crate) node: String,
    /// Its data directory.
    pub(crate) data: PathBuf,
    _child: Guard,
}

impl DevNet {
    /// Initializes a network in `dir/net` with commit and reveal windows of
    /// `window_blocks` and dispute rounds of 4 × `window_blocks`; the
    /// executor key of each validator in `without`
    /// is moved to `dir/executor-<i>.key` (its node runs no executor while
    /// it stays registered), then starts it and waits until it is healthy.
    pub(crate) fn start(dir: &Path, window_blocks: u64, without: &[usize]) -> DevNet {
        let data = dir.join("net");
        let http = format!("127.0.0.1:{}", free_ports(4));
        let out = glassbox()
            .args(["dev", "--init-only", "--data-dir"])
            .arg(&data)
            .args(["--http", &http])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        set_windows(&data.join("genesis.json"), window_blocks);
        for i in without {
            let from = data.join(format!("validator-{i}/executor.key"));
            std::fs::rename(&from, dir.join(format!("executor-{i}.key"))).unwrap();
        }
        let log = std::fs::File::create(dir.join("dev.log")).unwrap();
        let child = Guard(
            glassbox()
                .args(["dev", "--data-dir"])
                .arg(&data)
                .args(["--http", &http])
                .env("GLASSBOX_LOG", "warn,glassbox_node=info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let node = format!("http://{http}");
        let start = Instant::now();
        while !healthy(&api(&node)) {
            assert!(start.elapsed() < Duration::from_secs(60), "network not up");
            std::thread::sleep(Duration::from_millis(100));
        }
        DevNet {
            node,
            data,
            _child: child,
        }
    }

    /// The funded developer key.
    pub(crate) fn dev_key(&self) -> PathBuf {
        self.data.join("dev.key")
    }

    /// Publishes `models/mlp.onnx` as `test/mlp@1.0.0`.
    pub(crate) fn publish_mlp(&self) {
        let out = glassbox()
            .args(["model", "publish"])
            .arg(models().join("mlp.onnx"))
            .args(["--name", "test/mlp", "--version", "1.0.0", "--key"])
            .arg(self.dev_key())
            .args(["--node", &self.node])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

// ---- talking to a node as a test-driven party -------------------------------

/// Submits a transaction; panics unless accepted.
pub(crate) fn post_tx(client: &Client, tx: &SignedTx) {
    if let Err(e) = client.submit_tx(tx) {
        panic!("transaction refused: {e}");
    }
}

/// The network as one node's API shows it.
pub(crate) struct Net {
    pub(crate) api: Client,
    pub(crate) chain_id: ChainId,
    pub(crate) params: Params,
}

impl Net {
    /// The network behind the API at `node`.
    pub(crate) fn connect(node: &str) -> Net {
        let api = api(node);
        let status = api.status().expect("status");
        Net {
            api,
            chain_id: status.chain_id,
            params: status.params,
        }
    }

    /// `body` signed by `key` at its account's next nonce and the least fee.
    pub(crate) fn sign(&self, key: &SecretKey, body: TxBody) -> SignedTx {
        let account = self.api.account(&key.public()).expect("account");
        let nonce = account.record.map_or(0, |a| a.nonce);
        let probe = SignedTx::sign(&self.chain_id, key, nonce, 0, body.clone()).unwrap();
        let fee = self.params.min_fee_for(probe.len()).unwrap();
        SignedTx::sign(&self.chain_id, key, nonce, fee, body).unwrap()
    }

    /// Signs and submits `body`; panics unless accepted.
    pub(crate) fn send(&self, key: &SecretKey, body: TxBody) -> SignedTx {
        let tx = self.sign(key, body);
        post_tx(&self.api, &tx);
        tx
    }

    /// The job (proof-checked), if the chain holds it.
    pub(crate) fn job(&self, id: &JobId) -> Option<Job> {
        self.api.job(id).expect("job").record
    }

    /// The job's extension record (proof-checked), if it has one.
    pub(crate) fn job_ext(&self, id: &JobId) -> Option<JobExt> {
        self.api.job_ext(id).expect("job ext").record
    }

    /// Waits until `pred` holds for the job.
    pub(crate) fn wait_job(&self, id: &JobId, what: &str, pred: impl Fn(&Job) -> bool) -> Job {
        let start = Instant::now();
        loop {
            let j = self.job(id);
            if let Some(j) = j.as_ref().filter(|j| pred(j)) {
                return j.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "job {id} never reached `{what}`: {j:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The executor record of `key`; panics when the chain holds none.
    pub(crate) fn executor(&self, key: &PublicKey) -> Executor {
        self.api
            .executor(key)
            .expect("executor")
            .record
            .unwrap_or_else(|| panic!("no executor {key}"))
    }

    /// The job's receipt, waiting up to 30 s while the node answers 409
    /// (not final or not certified yet).
    pub(crate) fn receipt(&self, id: &JobId) -> Receipt {
        let start = Instant::now();
        loop {
            match self.api.receipt::<Receipt>(id) {
                Ok(r) => return r,
                Err(e) if e.status() == Some(409) && start.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("receipt of {id}: {e}"),
            }
        }
    }
}

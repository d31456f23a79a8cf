//! What the network benchmarks share (`jobs`, `dispute_net`,
//! and the input pattern of `dispute`): statistics, the typed API
//! client, a fresh in-process `glassbox dev` network on
//! loopback, a watcher of finalized heights and block times, model
//! manifests and publication, and transaction helpers.

// Each bench uses a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use glassbox_api::wire::{HealthStatus, TxStatus};
use glassbox_ledger::{Params, SignedTx, TxBody, TxHash};
use glassbox_node::consensus::Identity;
use glassbox_node::consensus::genesis::NodeGenesis;
use glassbox_node::manifest::ModelFacts;
use glassbox_node::run::{self, DevOptions};
use glassbox_primitives::ChainId;
use glassbox_runtime::{DType, Data, Dim, Model, Tensor, ValueInfo};
use glassbox_types::{Manifest, PublicKey, SecretKey, SignedManifest};

/// Bound of every HTTP request to a node.
pub(crate) const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Bound of the network's start (validators up, APIs healthy).
pub(crate) const NETWORK_START_TIMEOUT_MS: u64 = 60_000;
/// Bound of each setup transaction (publish, funding) reaching finality.
pub(crate) const SETUP_TX_TIMEOUT_MS: u64 = 60_000;
/// Between polls of each node's finalized height.
pub(crate) const WATCH_MS: u64 = 5;
/// Between retries of a submission the node refused for now (503, or 422
/// while every executor is at capacity).
pub(crate) const RETRY_MS: u64 = 20;
/// Between polls of a setup transaction's status.
pub(crate) const SETUP_POLL_MS: u64 = 50;
/// Largest answer read from a node (a receipt is far smaller).
pub(crate) const MAX_ANSWER_BYTES: u64 = 16 << 20;
/// Validators (and executors) of the network.
pub(crate) const VALIDATORS: usize = 4;

// ---- statistics ---------------------------------------------------------------

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

// ---- HTTP ---------------------------------------------------------------------

/// One node's API (the shared typed client), every request bounded by
/// [`REQUEST_TIMEOUT_MS`].
pub(crate) use glassbox_api::blocking::Client;

/// A client of the API at `addr`.
pub(crate) fn client(addr: SocketAddr) -> Result<Client> {
    Ok(Client::new(
        &format!("http://{addr}"),
        Duration::from_millis(REQUEST_TIMEOUT_MS),
    )?)
}

/// A loopback base port with `n` free ports after it.
pub(crate) fn free_ports(n: u16) -> Result<SocketAddr> {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let base = l.local_addr()?.port();
        drop(l);
        if base.checked_add(n).is_none() {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(SocketAddr::from(([127, 0, 0, 1], base)));
        }
    }
    bail!("found no {n} consecutive free loopback ports")
}

// ---- finalized heights --------------------------------------------------------

/// What a watcher thread learns of one node: its finalized height, when
/// each height was first seen finalized there, and (node 0 only) each
/// block's header timestamp and transaction count.
#[derive(Default)]
pub(crate) struct Watch {
    pub(crate) height: AtomicU64,
    pub(crate) seen: Mutex<HashMap<u64, Instant>>,
    pub(crate) blocks: Mutex<BTreeMap<u64, (u64, usize)>>,
}

impl Watch {
    pub(crate) fn seen_at(&self, height: u64) -> Option<Instant> {
        self.seen.lock().ok()?.get(&height).copied()
    }
}

pub(crate) fn watch_node(
    client: Client,
    watch: Arc<Watch>,
    fetch_blocks: bool,
    stop: Arc<AtomicBool>,
) {
    let mut last: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(status) = client.status() {
            let h = status.finalized_height;
            let now = Instant::now();
            let from = last.map_or(h, |l| l + 1);
            if from <= h {
                if let Ok(mut seen) = watch.seen.lock() {
                    for x in from..=h {
                        seen.insert(x, now);
                    }
                }
                if fetch_blocks {
                    for x in from..=h {
                        if let Ok(b) = client.block(x)
                            && let Ok(mut blocks) = watch.blocks.lock()
                        {
                            blocks.insert(x, (b.timestamp_ms, b.tx_count as usize));
                        }
                    }
                }
                watch.height.store(h, Ordering::Release);
                last = Some(h);
            }
        }
        std::thread::sleep(Duration::from_millis(WATCH_MS));
    }
}

/// Block time between heights `from` and `to` (node 0's headers): the
/// median of the timestamp differences, and the mean.
pub(crate) fn block_time(watch: &Watch, from: u64, to: u64) -> (Duration, Duration, u64) {
    let Ok(blocks) = watch.blocks.lock() else {
        return (Duration::ZERO, Duration::ZERO, 0);
    };
    let stamps: Vec<(u64, u64)> = blocks
        .range(from..=to)
        .map(|(h, (t, _))| (*h, *t))
        .collect();
    let diffs: Vec<Duration> = stamps
        .windows(2)
        .filter(|w| w[1].0 == w[0].0 + 1)
        .map(|w| Duration::from_millis(w[1].1.saturating_sub(w[0].1)))
        .collect();
    let mean = match (stamps.first(), stamps.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            Duration::from_millis(b.1.saturating_sub(a.1)) / (b.0 - a.0) as u32
        }
        _ => Duration::ZERO,
    };
    (median(diffs), mean, to.saturating_sub(from))
}

// ---- model ----------------------------------------------------------------------

/// The signed manifest of `bytes` (as `glassbox model publish` builds it:
/// the runtime's cost for the declared shapes, symbolic dims at 1).
pub(crate) fn sign_manifest(bytes: &[u8], key: &SecretKey, name: &str) -> Result<SignedManifest> {
    let facts = ModelFacts::of(bytes)?;
    let manifest = Manifest {
        model_id: facts.model_id,
        size_bytes: facts.size_bytes,
        name: name.into(),
        version: semver::Version::new(1, 0, 0),
        description: format!("{name} benchmark model"),
        license: None,
        publisher: key.public(),
        created_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        parents: Vec::new(),
        sources: Vec::new(),
        inputs: facts.inputs,
        outputs: facts.outputs,
        opset: facts.opset,
        cost: facts.cost,
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    Ok(SignedManifest::sign(manifest, key)?)
}

// ---- transactions ---------------------------------------------------------------

/// The chain's id and parameters, from a node.
pub(crate) fn chain_info(client: &Client) -> Result<(ChainId, Params)> {
    let status = client.status()?;
    Ok((status.chain_id, status.params))
}

/// Signs `body` at the least fee for its size.
pub(crate) fn sign_min_fee(
    chain_id: &ChainId,
    params: &Params,
    key: &SecretKey,
    nonce: u64,
    body: TxBody,
) -> Result<SignedTx> {
    let probe = SignedTx::sign(chain_id, key, nonce, 0, body.clone())?;
    let fee = params.min_fee_for(probe.len()).context("fee overflow")?;
    Ok(SignedTx::sign(chain_id, key, nonce, fee, body)?)
}

/// The account's next nonce (proof-checked); 0 for an account the chain
/// does not hold.
pub(crate) fn nonce_of(client: &Client, who: &PublicKey) -> Result<u64> {
    Ok(client.account(who)?.record.map_or(0, |a| a.nonce))
}

pub(crate) fn account_nonce(client: &Client, key: &SecretKey) -> Result<u64> {
    client
        .account(&key.public())?
        .record
        .map(|a| a.nonce)
        .with_context(|| format!("account {} does not exist", key.public()))
}

/// Submits `tx`, retrying while the node answers 503, until `deadline`.
pub(crate) fn submit(client: &Client, tx: &SignedTx, deadline: Instant) -> Result<()> {
    loop {
        match client.submit_tx(tx) {
            Ok(_) => return Ok(()),
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(RETRY_MS));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for every transaction of `hashes` to be finalized successfully.
pub(crate) fn await_finalized(client: &Client, hashes: &[TxHash], deadline: Instant) -> Result<()> {
    for hash in hashes {
        loop {
            match client.tx_status(hash) {
                Ok(TxStatus::Finalized { outcome, .. }) => {
                    if let Err(e) = outcome.result {
                        bail!("transaction {hash} failed: {}: {}", e.code, e.message);
                    }
                    break;
                }
                Ok(TxStatus::Pending { .. }) => {}
                Err(e) if e.code() == Some("unknown_tx") || e.status() == Some(503) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                bail!("transaction {hash} not finalized within {SETUP_TX_TIMEOUT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(SETUP_POLL_MS));
        }
    }
    Ok(())
}

/// Lower-case hex of at most [`MAX_ANSWER_BYTES`] bytes.
pub(crate) fn unhex(s: &str) -> Result<Vec<u8>> {
    glassbox_types::unhex_vec(s, MAX_ANSWER_BYTES as usize).map_err(anyhow::Error::msg)
}
// ---- the network ----------------------------------------------------------------

/// A fresh network running in this process.
pub(crate) struct Network {
    /// One client per validator's API, in validator order.
    pub(crate) clients: Vec<Client>,
    pub(crate) chain_id: ChainId,
    pub(crate) identity: Identity,
    pub(crate) params: Params,
    /// The funded developer key.
    pub(crate) dev_key: SecretKey,
}

/// Starts a fresh `glassbox dev` network of [`VALIDATORS`] validators (each
/// also a staked executor) in this process, on free loopback ports, its
/// storage in `dir` (wiped first, refused unless it looks like a network
/// directory or is empty); `adjust` may change the directory and the
/// genesis (rewritten to `dir/genesis.json` after it) before the network
/// starts. Returns once every API is healthy; the network runs on a
/// background thread until the process exits (the process exits with an
/// error should it stop).
pub(crate) fn start_network(
    dir: &Path,
    threads: usize,
    adjust: impl FnOnce(&Path, &mut NodeGenesis) -> Result<()>,
) -> Result<Network> {
    run::wipe_network_dir(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dev = DevOptions {
        validators: VALIDATORS,
        data_dir: dir.to_path_buf(),
        http: free_ports(VALIDATORS as u16)?,
        worker_threads: threads,
    };
    let (mut genesis, keys, net) = run::prepare_dev(&dev)?;
    let before = serde_json::to_string_pretty(&genesis)?;
    adjust(dir, &mut genesis)?;
    let after = serde_json::to_string_pretty(&genesis)?;
    if after != before {
        run::write_private(&net.genesis_path, &after)?;
    }
    let chain_id = genesis.ledger.chain_id()?;
    let identity = genesis.identity()?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let run_opts = dev.clone();
    std::thread::Builder::new()
        .name("network".into())
        .spawn(move || {
            if let Err(e) = run::run_dev(&run_opts, genesis, keys, move || {
                let _ = ready_tx.send(());
            }) {
                eprintln!("error: the network stopped: {e}");
                std::process::exit(1);
            }
        })?;
    ready_rx
        .recv_timeout(Duration::from_millis(NETWORK_START_TIMEOUT_MS))
        .context("the network did not start")?;
    let clients: Vec<Client> = net.apis.iter().map(|a| client(*a)).collect::<Result<_>>()?;
    if clients.len() != VALIDATORS {
        bail!("expected {VALIDATORS} APIs, got {}", clients.len());
    }
    let start_deadline = Instant::now() + Duration::from_millis(NETWORK_START_TIMEOUT_MS);
    for c in &clients {
        while !c.health().is_ok_and(|h| h.status == HealthStatus::Ok) {
            if Instant::now() >= start_deadline {
                bail!("{} is not healthy", c.base());
            }
            std::thread::sleep(Duration::from_millis(SETUP_POLL_MS));
        }
    }
    let (chain_id_api, params) = chain_info(&clients[0])?;
    if chain_id_api != chain_id {
        bail!("the node's chain id differs from the genesis'");
    }
    let dev_key = glassbox_store::keyfile::read_secret_key(&net.dev_key_path)?;
    Ok(Network {
        clients,
        chain_id,
        identity,
        params,
        dev_key,
    })
}

/// A watcher thread on `client` (see [`Watch`]) until `stop`.
pub(crate) fn spawn_watch(
    client: &Client,
    name: String,
    fetch_blocks: bool,
    stop: &Arc<AtomicBool>,
) -> Result<Arc<Watch>> {
    let watch = Arc::new(Watch::default());
    let (c, w, stop) = (client.clone(), watch.clone(), stop.clone());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || watch_node(c, w, fetch_blocks, stop))?;
    Ok(watch)
}

/// Publishes `bytes` as model `name` 1.0.0 signed by the developer key,
/// waits until it is finalized, and uploads its bytes to the nodes of
/// `upload_to` (the others fetch them from peers when they need them).
/// Returns the manifest and the developer key's next nonce.
pub(crate) fn publish_model(
    net: &Network,
    bytes: &[u8],
    name: &str,
    upload_to: &[usize],
) -> Result<(Manifest, u64)> {
    let node = &net.clients[0];
    let signed = sign_manifest(bytes, &net.dev_key, name)?;
    let manifest = signed.manifest().clone();
    let nonce = account_nonce(node, &net.dev_key)?;
    let publish = sign_min_fee(
        &net.chain_id,
        &net.params,
        &net.dev_key,
        nonce,
        TxBody::PublishModel {
            manifest: Box::new(signed),
        },
    )?;
    let deadline = Instant::now() + Duration::from_millis(SETUP_TX_TIMEOUT_MS);
    submit(node, &publish, deadline)?;
    await_finalized(node, &[publish.hash()], deadline)?;
    for &i in upload_to {
        let c = net.clients.get(i).with_context(|| format!("no node {i}"))?;
        c.put_blob(&manifest.model_id, bytes.to_vec())
            .with_context(|| format!("uploading the model to node {i}"))?;
    }
    Ok((manifest, nonce + 1))
}

// ---- the input pattern of the dispute bench -------------------------------------------

/// The concrete input shapes: symbolic dimensions whose name contains "seq"
/// at `seq` (as in scripts/bench_compare.sh), others at 1.
pub(crate) fn input_shapes(model: &Model, seq: usize) -> Result<Vec<Vec<usize>>> {
    model
        .inputs()
        .map(|v| {
            let dims = v
                .shape
                .as_ref()
                .with_context(|| format!("input `{}` declares no shape", v.name))?;
            Ok(dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Symbol(s) if s.contains("seq") => seq,
                    Dim::Symbol(_) => 1,
                })
                .collect())
        })
        .collect()
}

/// The deterministic input pattern of scripts/bench_compare.sh (floats in
/// [-1, 1); integers 0 or 1, valid token ids, token types and masks).
pub(crate) fn pattern(v: &ValueInfo, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let f = |i: usize| ((i as i64 * 7919 + 13) % 2000) as f32 / 1000.0 - 1.0;
    let small = |i: usize| (i as i64 * 7919 + 13) % 2;
    let data = match v.dtype.unwrap_or(DType::F32) {
        DType::F32 => Data::F32((0..n).map(f).collect()),
        DType::I64 => Data::I64((0..n).map(small).collect()),
        DType::I32 => Data::I32((0..n).map(|i| small(i) as i32).collect()),
        other => bail!("input `{}` has dtype {other:?}, not supported here", v.name),
    };
    Ok(Tensor::new(shape.to_vec(), data)?)
}

/// xorshift64 from `seed` (0 is taken as 1): the benchmarks' lie positions.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.max(1);
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

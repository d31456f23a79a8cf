//! Verified inference on a local network: latency and throughput of jobs.
//!
//! Starts a fresh `glassbox dev` network of 4 validators (each also a
//! staked executor) in this process, on free loopback ports, its storage
//! in `--data-dir` (default `target/jobs-bench`, wiped first; left behind,
//! as the network runs until the process exits); publishes a small model
//! (default `models/mlp.onnx`) signed by the developer key and uploads its
//! bytes to one node (the other executors fetch them, verified, on their
//! first job); funds M requester accounts; then
//!
//! 1. **latency**: J jobs (k replicas each), one at a time, each timed from
//!    its `POST /v1/tx` to the job being final (the first moment the node
//!    it was sent to had finalized the block that closed it) and to its
//!    receipt being served by that node and verified
//!    ([`Receipt::verify`], against the genesis only);
//! 2. **throughput**: jobs offered at R per second for D seconds, signed
//!    beforehand with consecutive nonces by the M requesters and spread
//!    round robin over the 4 nodes' APIs (several submitting threads per
//!    node); every receipt is fetched as soon as the node serves it and
//!    verified after the run, so the client's checks do not take the
//!    network's cores (`--verify-inline` verifies each on arrival
//!    instead). Only jobs whose receipt verifies count. Latency is counted
//!    from the moment a job was due, so a client held back (the API
//!    refusing it: mempool full, or every executor at capacity; retried
//!    every few ms) counts as waiting, not as a faster network; jobs not
//!    accepted by the end of the window are not sent;
//! 3. beside them, the plain execution of the same model on the same input
//!    (`Session::run`, what `glassbox exec` times; measured before the
//!    network starts) and [`Receipt::verify`] on one receipt (no
//!    re-execution), each the median of many runs, with the share of its
//!    finality certificate check and of its transactions' signatures.
//!
//! Prints a markdown table. Everything (validators, executors, API
//! servers, this client) shares this machine's cores: on a small machine
//! the figures are lower bounds for a deployment with one machine per
//! validator.
//!
//! ```text
//! cargo bench -p glassbox-node --bench jobs -- \
//!     [--jobs 50] [--rate 500] [--duration 10] [--requesters 64] \
//!     [--replicas 3] [--threads 2] [--exec-runs 2000] [--verify-runs 200] \
//!     [--model models/mlp.onnx] [--input models/mlp.input.json] \
//!     [--data-dir target/jobs-bench] [--verify-inline]
//! ```
//!
//! `scripts/bench_jobs.sh` runs it. `--jobs 0` or `--rate 0` skips a phase.
//! `GLASSBOX_LOG=info` shows the nodes' logs (default `warn`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use commonware_codec::DecodeExt;
use commonware_parallel::Sequential;
use glassbox_api::wire::TxStatus;
use glassbox_ledger::{Job, JobId, Params, SignedTx, TxBody, outputs_hash};
use glassbox_node::consensus::{Finalization, Identity, NAMESPACE, Scheme};
use glassbox_node::receipt::Receipt;
use glassbox_primitives::ChainId;
use glassbox_runtime::{DType, Limits, Model, Options, Session, Tensor, ValueInfo, formats};
use glassbox_types::clip;
use glassbox_types::{Manifest, ModelId, SecretKey};
use serde_json::Value;

use common::{
    Client, RETRY_MS, SETUP_TX_TIMEOUT_MS, VALIDATORS, Watch, await_finalized, block_time, median,
    ms, percentile, sign_min_fee, submit, unhex,
};

/// Bound of one job of the latency run (and of the warm-up job, which
/// includes the executors fetching the model), submission to receipt.
const JOB_TIMEOUT_MS: u64 = 60_000;
/// How long the throughput run waits, after its submission window, for the
/// accepted jobs to close.
const DRAIN_TIMEOUT_MS: u64 = 120_000;
/// Submitting threads per node in the throughput run (each owns a share
/// of the requesters, so one requester's nonces are sent in order), each
/// with its own tracker thread following its jobs.
const SUBMIT_LANES: usize = 4;
/// Between polls of a job's receipt (latency run), and of the receipts
/// answered `not_certified` (throughput run).
const POLL_MS: u64 = 5;
/// Balance given to each requester.
const REQUESTER_FUNDS: u64 = 100_000_000_000;
/// A job closes at least this many blocks after the node's finalized tip
/// when it accepted it (inclusion ≥ tip + 1, assignment at the start of the
/// next block, commits in a later one, reveals after every commit is
/// final): no receipt poll before.
const MIN_BLOCKS_TO_FINAL: u64 = 4;
/// A node this many blocks behind the others at the end is reported as
/// stalled.
const STALL_BLOCKS: u64 = 10;
/// The goals of issue #7.
const GOAL_JOBS_PER_S: f64 = 500.0;
const GOAL_VERIFY_MS: f64 = 1.0;

// ---- options ------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Opts {
    jobs: usize,
    rate: u64,
    duration_s: u64,
    requesters: usize,
    replicas: u8,
    threads: usize,
    exec_runs: usize,
    verify_runs: usize,
    model: PathBuf,
    input: PathBuf,
    data_dir: PathBuf,
    verify_inline: bool,
}

fn parse_args() -> Result<Opts> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        jobs: 50,
        rate: 500,
        duration_s: 10,
        requesters: 64,
        replicas: 3,
        threads: 2,
        exec_runs: 2_000,
        verify_runs: 200,
        model: root.join("models/mlp.onnx"),
        input: root.join("models/mlp.input.json"),
        data_dir: root.join("target/jobs-bench"),
        verify_inline: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!(
                "jobs [--jobs J] [--rate R] [--duration S] [--requesters M] \
                 [--replicas K] [--threads T] [--exec-runs N] [--verify-runs N] \
                 [--model FILE] [--input FILE] [--data-dir DIR] [--verify-inline]"
            );
            std::process::exit(0);
        }
        if flag == "--verify-inline" {
            o.verify_inline = true;
            continue;
        }
        // `cargo bench` passes it, without a value, to every bench target.
        if flag == "--bench" {
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let num = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--jobs" => o.jobs = num()? as usize,
            "--rate" => o.rate = num()?,
            "--duration" => o.duration_s = num()?,
            "--requesters" => o.requesters = (num()? as usize).clamp(1, 4_096),
            "--replicas" => {
                o.replicas = u8::try_from(num()?).context("--replicas: at most 255")?;
            }
            "--threads" => o.threads = (num()? as usize).clamp(1, 64),
            "--exec-runs" => o.exec_runs = (num()? as usize).max(1),
            "--verify-runs" => o.verify_runs = (num()? as usize).max(1),
            "--model" => o.model = PathBuf::from(&value),
            "--input" => o.input = PathBuf::from(&value),
            "--data-dir" => o.data_dir = PathBuf::from(&value),
            _ => bail!("unknown option {flag} (see --help)"),
        }
    }
    Ok(o)
}

/// The input file as a tensor of `dtype` (.json or .npy).
fn read_input(path: &Path, dtype: DType) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let t = if path.extension().is_some_and(|e| e == "npy") {
        formats::npy_decode(&bytes, 1 << 24)?
    } else {
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        formats::json_decode(&v, dtype, 1 << 24)?
    };
    Ok(t)
}

/// Median (and minimum) of `runs` plain runs of the model on `input`, after
/// a warm-up; also the output hash, for comparing with the receipts.
fn time_exec(bytes: &[u8], input: &Tensor, runs: usize) -> Result<(Duration, Duration, String)> {
    let model = Model::load(bytes, Limits::default())?;
    let session = Session::new(Arc::new(model), Options::default())?;
    let mut times = Vec::with_capacity(runs);
    let mut hash = String::new();
    for i in 0..runs + runs / 10 + 1 {
        let t = Instant::now();
        let out = session.run(vec![input.clone()])?;
        let took = t.elapsed();
        if i == 0 {
            let hashes: Vec<_> = out.outputs.iter().map(|(_, t)| t.hash()).collect();
            hash = outputs_hash(&hashes).to_hex();
        }
        if i > runs / 10 {
            times.push(took);
        }
    }
    times.sort();
    Ok((percentile(&times, 0.5), times[0], hash))
}

/// Everything needed to sign and check jobs.
struct Setup {
    chain_id: ChainId,
    identity: Identity,
    params: Params,
    model_id: ModelId,
    inputs: Vec<Vec<u8>>,
    price: u64,
    /// The output hash of a plain local run, which every receipt must
    /// carry (the runtime is bit-reproducible).
    output_hash: String,
}

impl Setup {
    fn job(&self, key: &SecretKey, nonce: u64, replicas: u8) -> Result<SignedTx> {
        let body = TxBody::SubmitJob {
            model_id: self.model_id,
            inputs: self.inputs.clone(),
            replicas,
            max_fee: self.price * u64::from(replicas),
        };
        sign_min_fee(&self.chain_id, &self.params, key, nonce, body)
    }
}

// ---- jobs -----------------------------------------------------------------------

/// How one job ended.
#[derive(Debug, Clone, Copy)]
struct Done {
    /// Due (throughput) or posted (latency) to final.
    to_final: Duration,
    /// Due or posted to the receipt fetched (and verified, in the latency
    /// run and with `--verify-inline`).
    to_receipt: Duration,
    final_at: Instant,
    /// Blocks from the node's tip at submission to the request's block,
    /// from there to the assignment, and from there to the close.
    blocks: [u64; 3],
}

/// Where a job's steps landed, from its verified record.
#[derive(Debug, Clone, Copy)]
struct Heights {
    /// The block that included the request.
    submitted: u64,
    /// The block that assigned its last slot.
    assigned: u64,
    /// The block that closed it (the last reveal).
    closed: u64,
}

/// What a receipt poll found.
enum Poll {
    Pending,
    /// The job is final and the node holds no certificate for it yet.
    Uncertified,
    Verified(Box<Receipt>, Heights),
    Failed(String),
}

/// Polls job `id`'s receipt once (parsed, not yet verified: see
/// [`check`]). On 404 (not yet in a block, or its request failed in its
/// block) looks the request up.
fn poll_receipt(client: &Client, id: &JobId) -> Result<Poll> {
    match client.receipt::<Receipt>(id) {
        Ok(receipt) => {
            let record = unhex(&receipt.job_record).context("job_record is not hex")?;
            let job = Job::decode(&record).context("job_record does not decode")?;
            let heights = Heights {
                submitted: job.submitted_height,
                assigned: job
                    .slots
                    .iter()
                    .map(|s| s.assigned_height)
                    .max()
                    .unwrap_or(job.submitted_height),
                closed: job.closed_height.unwrap_or(receipt.height),
            };
            Ok(Poll::Verified(Box::new(receipt), heights))
        }
        Err(e) if e.status() == Some(409) => match e.code() {
            Some("not_certified") => Ok(Poll::Uncertified),
            Some("not_final") => Ok(Poll::Pending),
            Some("job_failed") => {
                // Why: slots never filled (no executor free) or misses.
                let job = client.job(id)?.record.context("the failed job is gone")?;
                Ok(Poll::Failed(format!(
                    "job_failed: {} of {} slots filled, {} missed deadlines",
                    job.slots.len(),
                    job.replicas,
                    job.missed.len()
                )))
            }
            Some(code) => Ok(Poll::Failed(code.to_string())),
            None => Ok(Poll::Failed(e.to_string())),
        },
        Err(e) if e.status() == Some(404) => {
            if let TxStatus::Finalized { outcome, .. } = client.tx_status(&id.tx())?
                && let Err(e) = outcome.result
            {
                return Ok(Poll::Failed(format!(
                    "request failed in its block: {}",
                    e.code
                )));
            }
            Ok(Poll::Pending)
        }
        Err(e) => bail!("the receipt of {id}: {e}"),
    }
}

/// Verifies `receipt` against the genesis and the local output hash.
fn check(setup: &Setup, receipt: &Receipt) -> Result<()> {
    receipt
        .verify(&setup.chain_id, &setup.identity)
        .with_context(|| format!("the receipt of {} does not verify", receipt.job_id))?;
    if receipt.output_hash != setup.output_hash {
        bail!(
            "the receipt of {} has output hash {}, the local run {}",
            receipt.job_id,
            receipt.output_hash,
            setup.output_hash
        );
    }
    Ok(())
}

fn steps(tip: u64, h: Heights) -> [u64; 3] {
    [
        h.submitted.saturating_sub(tip),
        h.assigned.saturating_sub(h.submitted),
        h.closed.saturating_sub(h.assigned),
    ]
}

/// Median of each step of `done`, in blocks.
fn median_steps(done: &[Done]) -> [u64; 3] {
    let mut out = [0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let mut v: Vec<u64> = done.iter().map(|d| d.blocks[i]).collect();
        v.sort_unstable();
        *o = v.get(v.len() / 2).copied().unwrap_or(0);
    }
    out
}

/// One job, alone: posted to `client`, followed to its verified receipt.
fn one_job(
    client: &Client,
    watch: &Watch,
    setup: &Setup,
    tx: &SignedTx,
) -> Result<(Done, Box<Receipt>)> {
    let id = JobId::of_tx(tx.hash());
    let tip = watch.height.load(Ordering::Acquire);
    let posted = Instant::now();
    let deadline = posted + Duration::from_millis(JOB_TIMEOUT_MS);
    submit(client, tx, deadline)?;
    loop {
        match poll_receipt(client, &id)? {
            Poll::Verified(receipt, h) => {
                check(setup, &receipt)?;
                let now = Instant::now();
                let final_at = watch.seen_at(h.closed).unwrap_or(now).min(now);
                let done = Done {
                    to_final: final_at.saturating_duration_since(posted),
                    to_receipt: now.saturating_duration_since(posted),
                    final_at,
                    blocks: steps(tip, h),
                };
                return Ok((done, receipt));
            }
            Poll::Failed(why) => bail!("job {id}: {why}"),
            Poll::Pending | Poll::Uncertified => {}
        }
        if Instant::now() >= deadline {
            bail!("job {id}: no verified receipt within {JOB_TIMEOUT_MS} ms");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// A job the throughput run offers.
struct Offer {
    tx: SignedTx,
    id: JobId,
    due: Instant,
}

/// A job a node accepted.
struct Accepted {
    id: JobId,
    due: Instant,
    height: u64,
}

#[derive(Default)]
struct Submitted {
    accepted: usize,
    not_submitted: usize,
    retries: usize,
    refusals: BTreeMap<String, usize>,
}

impl Submitted {
    fn add(&mut self, other: Submitted) {
        self.accepted += other.accepted;
        self.not_submitted += other.not_submitted;
        self.retries += other.retries;
        for (k, v) in other.refusals {
            *self.refusals.entry(k).or_default() += v;
        }
    }
}

/// Posts `offers` (in order: one requester's nonces ascend) to `client` at
/// their due times until `window_end`; hands each accepted one to the
/// node's tracker. A refusal for now (503, or 422 while every executor is
/// at capacity) is retried after [`RETRY_MS`]: later jobs wait behind it.
fn submitter(
    client: Client,
    watch: Arc<Watch>,
    offers: Vec<Offer>,
    window_end: Instant,
    to_tracker: mpsc::Sender<Accepted>,
) -> Submitted {
    let mut s = Submitted::default();
    let total = offers.len();
    for (n, offer) in offers.into_iter().enumerate() {
        if let Some(wait) = offer.due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let accepted = loop {
            if Instant::now() >= window_end {
                break false;
            }
            match client.submit_tx(&offer.tx) {
                Ok(_) => break true,
                Err(e) if e.code() == Some("already_pending") => break true,
                Err(e) if e.status().is_some() => {
                    let status = e.status().unwrap_or(0);
                    *s.refusals
                        .entry(format!("HTTP {status} {}", e.code().unwrap_or("?")))
                        .or_default() += 1;
                    if status != 503 && status != 422 {
                        break false;
                    }
                }
                Err(e) => {
                    *s.refusals.entry(clip(&e.to_string(), 90)).or_default() += 1;
                }
            }
            s.retries += 1;
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        };
        if !accepted {
            // The window is over (or the job was refused for good: its
            // requester's later nonces would wait behind the gap).
            s.not_submitted = total - n;
            break;
        }
        s.accepted += 1;
        let a = Accepted {
            id: offer.id,
            due: offer.due,
            height: watch.height.load(Ordering::Acquire),
        };
        if to_tracker.send(a).is_err() {
            break;
        }
    }
    s
}

#[derive(Default)]
struct Tracked {
    /// Closed jobs with their receipt (verified already when checked
    /// inline, else checked after the run).
    done: Vec<(Done, Box<Receipt>)>,
    failed: BTreeMap<String, usize>,
    unresolved: usize,
}

/// Follows the jobs one submitter got accepted by its node until each has a receipt or
/// failed, or `drain_deadline`: each open job's receipt is asked for once
/// per new finalized block (from [`MIN_BLOCKS_TO_FINAL`] blocks after its
/// acceptance), and every [`POLL_MS`] once final but not yet certified.
/// With `verify_inline` each receipt is verified here, on arrival.
fn tracker(
    client: Client,
    watch: Arc<Watch>,
    setup: Arc<Setup>,
    from_submitter: mpsc::Receiver<Accepted>,
    drain_deadline: Instant,
    verify_inline: bool,
) -> Tracked {
    let mut t = Tracked::default();
    let mut open: Vec<(Accepted, bool)> = Vec::new();
    let mut last_height = 0;
    let mut submitters_done = false;
    loop {
        loop {
            match from_submitter.try_recv() {
                Ok(a) => open.push((a, false)),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    submitters_done = true;
                    break;
                }
            }
        }
        if submitters_done && open.is_empty() {
            break;
        }
        if Instant::now() >= drain_deadline {
            t.unresolved = open.len();
            break;
        }
        let height = watch.height.load(Ordering::Acquire);
        let new_block = height != last_height;
        last_height = height;
        let mut i = 0;
        while i < open.len() {
            let (a, hot) = &mut open[i];
            let due_now = *hot || (new_block && height >= a.height + MIN_BLOCKS_TO_FINAL);
            if !due_now {
                i += 1;
                continue;
            }
            match poll_receipt(&client, &a.id) {
                Ok(Poll::Verified(receipt, h)) => {
                    let checked = if verify_inline {
                        check(&setup, &receipt)
                    } else {
                        Ok(())
                    };
                    let now = Instant::now();
                    match checked {
                        Ok(()) => {
                            let final_at = watch.seen_at(h.closed).unwrap_or(now).min(now);
                            let done = Done {
                                to_final: final_at.saturating_duration_since(a.due),
                                to_receipt: now.saturating_duration_since(a.due),
                                final_at,
                                blocks: steps(a.height, h),
                            };
                            t.done.push((done, receipt));
                        }
                        Err(e) => {
                            *t.failed.entry(clip(&format!("{e:#}"), 120)).or_default() += 1;
                        }
                    }
                    open.swap_remove(i);
                }
                Ok(Poll::Failed(why)) => {
                    *t.failed.entry(clip(&why, 120)).or_default() += 1;
                    open.swap_remove(i);
                }
                Ok(Poll::Uncertified) => {
                    *hot = true;
                    i += 1;
                }
                Ok(Poll::Pending) => i += 1,
                Err(e) => {
                    *t.failed.entry(clip(&format!("{e:#}"), 120)).or_default() += 1;
                    open.swap_remove(i);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    t
}

// ---- the benchmark --------------------------------------------------------------

struct LatencyRun {
    jobs: usize,
    to_final: Vec<Duration>,
    to_receipt: Vec<Duration>,
    block_median: Duration,
    block_mean: Duration,
    blocks: u64,
    steps: [u64; 3],
}

struct ThroughputRun {
    offered: usize,
    submitted: Submitted,
    verified: usize,
    failed: BTreeMap<String, usize>,
    unresolved: usize,
    to_final: Vec<Duration>,
    to_receipt: Vec<Duration>,
    jobs_per_s: f64,
    span: Duration,
    block_median: Duration,
    block_mean: Duration,
    blocks: u64,
    max_txs_per_block: usize,
    steps: [u64; 3],
    /// Each node's finalized height at the end, and how long before the
    /// end it was reached (a stalled network shows here).
    tips: Vec<(u64, Duration)>,
}

fn main() -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLASSBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let opts = parse_args()?;
    let result = bench(&opts);
    // The network runs on a background thread until the process ends.
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }
    }
}

fn bench(opts: &Opts) -> Result<()> {
    let model_bytes =
        std::fs::read(&opts.model).with_context(|| format!("reading {}", opts.model.display()))?;
    let probe = Model::load(&model_bytes, Limits::default()).context("loading the model")?;
    let input_specs: Vec<ValueInfo> = probe.inputs().cloned().collect();
    if input_specs.len() != 1 {
        bail!(
            "this benchmark feeds one input; the model takes {}",
            input_specs.len()
        );
    }
    let dtype = input_specs[0].dtype.unwrap_or(DType::F32);
    let input = read_input(&opts.input, dtype)?;
    drop(probe);

    // 3a. Plain execution, before anything else runs on this machine.
    eprintln!(
        "timing {} plain runs of {}",
        opts.exec_runs,
        opts.model.display()
    );
    let (exec_median, exec_min, local_hash) = time_exec(&model_bytes, &input, opts.exec_runs)?;

    // The network, fresh.
    let network = common::start_network(&opts.data_dir, opts.threads, |_, _| Ok(()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let watches: Vec<Arc<Watch>> = network
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| common::spawn_watch(c, format!("watch-{i}"), i == 0, &stop))
        .collect::<Result<_>>()?;
    eprintln!(
        "network of {VALIDATORS} validators up ({})",
        network.clients[0].base()
    );

    // Publish the model and upload its bytes to node 0.
    let (manifest, mut dev_nonce) =
        common::publish_model(&network, &model_bytes, "bench/mlp", &[0])?;
    let (chain_id, identity, params) = (network.chain_id, network.identity, network.params);
    let dev_key = network.dev_key.clone();
    let clients = network.clients;
    let node = &clients[0];
    eprintln!(
        "published {} ({} bytes, {} flops)",
        manifest.model_id, manifest.size_bytes, manifest.cost.flops
    );

    // Fund the requesters.
    let requesters: Vec<SecretKey> = (0..opts.requesters)
        .map(|_| {
            let mut seed = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
            SecretKey::from_seed(&seed)
        })
        .collect();
    let mut funding = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(SETUP_TX_TIMEOUT_MS);
    for key in &requesters {
        let tx = sign_min_fee(
            &chain_id,
            &params,
            &dev_key,
            dev_nonce,
            TxBody::Transfer {
                to: key.public(),
                amount: REQUESTER_FUNDS,
            },
        )?;
        dev_nonce += 1;
        submit(node, &tx, deadline)?;
        funding.push(tx.hash());
    }
    let deadline = Instant::now() + Duration::from_millis(SETUP_TX_TIMEOUT_MS);
    await_finalized(node, &funding, deadline)?;
    let price = params
        .job_price(manifest.cost.flops)
        .context("price overflow")?;
    let setup = Arc::new(Setup {
        chain_id,
        identity,
        params,
        model_id: manifest.model_id,
        inputs: vec![formats::canonical_encode(&input)],
        price,
        output_hash: local_hash,
    });
    let nonces = vec![0u64; requesters.len()];
    eprintln!("funded {} requesters", requesters.len());

    let mut net = Net {
        clients,
        watches,
        setup,
        requesters,
        nonces,
    };

    // Warm-up: the executors fetch the model and load it.
    let tx = net.next_job(0, opts.replicas)?;
    let (first, mut sample) = one_job(&net.clients[0], &net.watches[0], &net.setup, &tx)?;
    eprintln!(
        "first job (executors fetch the model): {:.0} ms to a verified receipt",
        ms(first.to_receipt)
    );

    // 1. Latency.
    let latency = if opts.jobs > 0 {
        let (run, last) = latency_run(&mut net, opts)?;
        sample = last;
        Some(run)
    } else {
        None
    };

    // 2. Throughput.
    let throughput = if opts.rate > 0 && opts.duration_s > 0 {
        Some(throughput_run(&mut net, opts)?)
    } else {
        None
    };
    stop.store(true, Ordering::Relaxed);

    // 3b. Receipt verification alone (the network idles meanwhile).
    eprintln!("timing {} verifications of one receipt", opts.verify_runs);
    let verify = time_verify(&net.setup, &sample, opts.verify_runs)?;

    report(
        opts,
        &manifest,
        exec_median,
        exec_min,
        first,
        latency.as_ref(),
        throughput.as_ref(),
        verify,
    );
    Ok(())
}

/// Medians of receipt verification and of two of its parts.
struct VerifyTimes {
    whole: Duration,
    certificate: Duration,
    signatures: Duration,
}

/// Times [`Receipt::verify`] on `receipt`, `runs` times, and separately
/// its finality certificate check and its transactions' signature checks
/// (the same calls `verify` makes).
fn time_verify(setup: &Setup, receipt: &Receipt, runs: usize) -> Result<VerifyTimes> {
    let mut whole = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let v = receipt.verify(&setup.chain_id, &setup.identity);
        whole.push(t.elapsed());
        v.context("the sample receipt stopped verifying")?;
    }
    let cert = unhex(&receipt.finalization)?;
    let verifier = Scheme::certificate_verifier(NAMESPACE, setup.identity);
    let mut certificate = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let f = Finalization::decode(bytes::Bytes::from(cert.clone()))
            .map_err(|e| anyhow::anyhow!("finalization: {e}"))?;
        let ok = f.verify(&mut rand::rng(), &verifier, &Sequential);
        certificate.push(t.elapsed());
        if !ok {
            bail!("the sample's certificate does not verify");
        }
    }
    let mut raw = vec![unhex(&receipt.request_tx)?];
    for t in receipt.commit_txs.iter().chain(&receipt.reveal_txs) {
        raw.push(unhex(t)?);
    }
    let mut signatures = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        // Decoded afresh: a checked signature is remembered by the value.
        for bytes in &raw {
            SignedTx::decode(bytes)?.verify_signature(&setup.chain_id)?;
        }
        signatures.push(t.elapsed());
    }
    Ok(VerifyTimes {
        whole: median(whole),
        certificate: median(certificate),
        signatures: median(signatures),
    })
}

/// The running network as the client sees it.
struct Net {
    clients: Vec<Client>,
    watches: Vec<Arc<Watch>>,
    setup: Arc<Setup>,
    requesters: Vec<SecretKey>,
    /// Each requester's next nonce.
    nonces: Vec<u64>,
}

impl Net {
    /// The next job of requester `r`.
    fn next_job(&mut self, r: usize, replicas: u8) -> Result<SignedTx> {
        let tx = self
            .setup
            .job(&self.requesters[r], self.nonces[r], replicas)?;
        self.nonces[r] += 1;
        Ok(tx)
    }
}

/// `opts.jobs` jobs one at a time, round robin over the nodes; returns the
/// figures and the last receipt.
fn latency_run(net: &mut Net, opts: &Opts) -> Result<(LatencyRun, Box<Receipt>)> {
    eprintln!("latency: {} jobs, one at a time", opts.jobs);
    let h0 = net.watches[0].height.load(Ordering::Acquire);
    let mut dones = Vec::new();
    let mut sample = None;
    for j in 0..opts.jobs {
        let tx = net.next_job(j % net.requesters.len(), opts.replicas)?;
        let n = j % VALIDATORS;
        let (done, receipt) = one_job(&net.clients[n], &net.watches[n], &net.setup, &tx)?;
        dones.push(done);
        sample = Some(receipt);
    }
    let h1 = net.watches[0].height.load(Ordering::Acquire);
    let mut to_final: Vec<Duration> = dones.iter().map(|d| d.to_final).collect();
    let mut to_receipt: Vec<Duration> = dones.iter().map(|d| d.to_receipt).collect();
    to_final.sort();
    to_receipt.sort();
    let (block_median, block_mean, blocks) = block_time(&net.watches[0], h0, h1);
    let run = LatencyRun {
        jobs: opts.jobs,
        to_final,
        to_receipt,
        block_median,
        block_mean,
        blocks,
        steps: median_steps(&dones),
    };
    Ok((run, sample.context("no job ran")?))
}

/// Jobs offered at `opts.rate` per second for `opts.duration_s` seconds
/// (see the module docs).
fn throughput_run(net: &mut Net, opts: &Opts) -> Result<ThroughputRun> {
    let total = (opts.rate * opts.duration_s) as usize;
    let m = net.requesters.len();
    eprintln!(
        "throughput: {} jobs/s offered for {} s ({total} jobs, {m} requesters)",
        opts.rate, opts.duration_s,
    );
    // Sign everything first: the run measures the network. Job i is
    // requester i mod M's, sent to node i mod 4 by one of that node's
    // submitters, chosen by requester so each one's nonces go in order.
    let t0 = Instant::now() + Duration::from_millis(500);
    let mut lanes: Vec<Vec<Offer>> = (0..VALIDATORS * SUBMIT_LANES).map(|_| Vec::new()).collect();
    for i in 0..total {
        let r = i % m;
        let tx = net.next_job(r, opts.replicas)?;
        let lane = (i % VALIDATORS) * SUBMIT_LANES + (r / VALIDATORS) % SUBMIT_LANES;
        lanes[lane].push(Offer {
            id: JobId::of_tx(tx.hash()),
            tx,
            due: t0 + Duration::from_secs_f64(i as f64 / opts.rate as f64),
        });
    }
    if Instant::now() > t0 {
        eprintln!("(signing took longer than the start delay: the first jobs start late)");
    }
    let window_end = t0 + Duration::from_secs(opts.duration_s);
    let drain_deadline = window_end + Duration::from_millis(DRAIN_TIMEOUT_MS);
    let h0 = net.watches[0].height.load(Ordering::Acquire);
    let mut submitters = Vec::new();
    let mut trackers = Vec::new();
    for (lane, offers) in lanes.into_iter().enumerate() {
        let n = lane / SUBMIT_LANES;
        let (tx, rx) = mpsc::channel();
        let (c, w) = (net.clients[n].clone(), net.watches[n].clone());
        submitters.push(
            std::thread::Builder::new()
                .name(format!("submit-{lane}"))
                .spawn(move || submitter(c, w, offers, window_end, tx))?,
        );
        let (c, w, s) = (
            net.clients[n].clone(),
            net.watches[n].clone(),
            net.setup.clone(),
        );
        let inline = opts.verify_inline;
        trackers.push(
            std::thread::Builder::new()
                .name(format!("track-{lane}"))
                .spawn(move || tracker(c, w, s, rx, drain_deadline, inline))?,
        );
    }
    let mut submitted = Submitted::default();
    for h in submitters {
        submitted.add(
            h.join()
                .map_err(|_| anyhow::anyhow!("a submitter panicked"))?,
        );
    }
    let mut tracked = Tracked::default();
    for h in trackers {
        let t = h
            .join()
            .map_err(|_| anyhow::anyhow!("a tracker panicked"))?;
        tracked.done.extend(t.done);
        tracked.unresolved += t.unresolved;
        for (k, v) in t.failed {
            *tracked.failed.entry(k).or_default() += v;
        }
    }
    let h1 = net.watches[0].height.load(Ordering::Acquire);
    // Receipts not checked on arrival are checked now.
    let mut failed = tracked.failed;
    let mut done = Vec::with_capacity(tracked.done.len());
    if !opts.verify_inline {
        eprintln!("verifying {} receipts", tracked.done.len());
    }
    for (d, receipt) in tracked.done {
        if opts.verify_inline {
            done.push(d);
            continue;
        }
        match check(&net.setup, &receipt) {
            Ok(()) => done.push(d),
            Err(e) => *failed.entry(clip(&format!("{e:#}"), 120)).or_default() += 1,
        }
    }
    let end = Instant::now();
    let tips = net
        .watches
        .iter()
        .map(|w| {
            let h = w.height.load(Ordering::Acquire);
            (
                h,
                end.saturating_duration_since(w.seen_at(h).unwrap_or(end)),
            )
        })
        .collect();
    let last_final = done.iter().map(|d| d.final_at).max().unwrap_or(t0);
    let span = last_final.saturating_duration_since(t0);
    let jobs_per_s = done.len() as f64 / span.as_secs_f64().max(1e-9);
    let mut to_final: Vec<Duration> = done.iter().map(|d| d.to_final).collect();
    let mut to_receipt: Vec<Duration> = done.iter().map(|d| d.to_receipt).collect();
    to_final.sort();
    to_receipt.sort();
    let (block_median, block_mean, blocks) = block_time(&net.watches[0], h0, h1);
    let max_txs_per_block = net.watches[0]
        .blocks
        .lock()
        .map(|b| b.range(h0..=h1).map(|(_, (_, n))| *n).max().unwrap_or(0))
        .unwrap_or(0);
    Ok(ThroughputRun {
        offered: total,
        submitted,
        verified: done.len(),
        failed,
        unresolved: tracked.unresolved,
        to_final,
        to_receipt,
        jobs_per_s,
        span,
        block_median,
        block_mean,
        blocks,
        max_txs_per_block,
        steps: median_steps(&done),
        tips,
    })
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Opts,
    manifest: &Manifest,
    exec_median: Duration,
    exec_min: Duration,
    first: Done,
    latency: Option<&LatencyRun>,
    throughput: Option<&ThroughputRun>,
    verify: VerifyTimes,
) {
    let k = opts.replicas;
    let model = opts
        .model
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    println!();
    println!("| metric | value | goal |");
    println!("| --- | --- | --- |");
    println!(
        "| network | {VALIDATORS} validators, each a staked executor (one process, loopback TCP, {} worker threads), k = {k} | |",
        opts.threads
    );
    println!(
        "| model | {model} ({} bytes, {} flops) | |",
        manifest.size_bytes, manifest.cost.flops
    );
    println!(
        "| plain execution (Session::run, median of {}) | {:.3} ms (min {:.3}) | |",
        opts.exec_runs,
        ms(exec_median),
        ms(exec_min)
    );
    println!(
        "| first job (executors fetch the model) | {:.0} ms to a verified receipt | |",
        ms(first.to_receipt)
    );
    if let Some(l) = latency {
        println!(
            "| latency run | {} jobs, one at a time, round robin over the nodes | |",
            l.jobs
        );
        println!(
            "| submit → final p50 / p99 | {:.0} / {:.0} ms | |",
            ms(percentile(&l.to_final, 0.5)),
            ms(percentile(&l.to_final, 0.99))
        );
        println!(
            "| submit → verified receipt p50 / p99 | {:.0} / {:.0} ms | |",
            ms(percentile(&l.to_receipt, 0.5)),
            ms(percentile(&l.to_receipt, 0.99))
        );
        println!(
            "| block time (median / mean) | {:.0} / {:.0} ms ({} blocks) | |",
            ms(l.block_median),
            ms(l.block_mean),
            l.blocks
        );
        println!(
            "| blocks (median): tip at submission → request's block → assigned → closed | +{} → +{} → +{} | |",
            l.steps[0], l.steps[1], l.steps[2]
        );
        let bound = exec_median + 2 * l.block_median;
        let p50 = percentile(&l.to_final, 0.5);
        let p50r = percentile(&l.to_receipt, 0.5);
        println!(
            "| p50 ≤ exec + 2 block times? | {} (final p50 {:.0} ms, receipt p50 {:.0} ms vs {:.0} ms = {:.1} block times) | ≤ exec + 2 blocks |",
            if p50 <= bound { "yes" } else { "no" },
            ms(p50),
            ms(p50r),
            ms(bound),
            p50.as_secs_f64() / l.block_median.as_secs_f64().max(1e-9)
        );
        println!(
            "| receipts verified (genesis only) and equal to the local run's output hash | {} of {} | all |",
            l.jobs, l.jobs
        );
    }
    if let Some(t) = throughput {
        let s = &t.submitted;
        println!(
            "| throughput run | {} jobs/s offered for {} s ({} jobs, {} requesters, 4 APIs) | |",
            opts.rate, opts.duration_s, t.offered, opts.requesters
        );
        println!(
            "| accepted / verified / failed / unresolved | {} / {} / {} / {} ({} not submitted in the window, {} retries) | |",
            s.accepted,
            t.verified,
            t.failed.values().sum::<usize>(),
            t.unresolved,
            s.not_submitted,
            s.retries
        );
        println!(
            "| verified jobs/s | {:.1} ({} in {:.1} s, first due to last final; receipts verified {}) | {GOAL_JOBS_PER_S:.0}: {} |",
            t.jobs_per_s,
            t.verified,
            t.span.as_secs_f64(),
            if opts.verify_inline {
                "on arrival, under load"
            } else {
                "after the run"
            },
            if t.jobs_per_s >= GOAL_JOBS_PER_S {
                "met"
            } else {
                "not met"
            }
        );
        println!(
            "| under load: due → final p50 / p99 | {:.0} / {:.0} ms | |",
            ms(percentile(&t.to_final, 0.5)),
            ms(percentile(&t.to_final, 0.99))
        );
        println!(
            "| under load: due → receipt {} p50 / p99 | {:.0} / {:.0} ms | |",
            if opts.verify_inline {
                "fetched and verified"
            } else {
                "fetched (verified after the run)"
            },
            ms(percentile(&t.to_receipt, 0.5)),
            ms(percentile(&t.to_receipt, 0.99))
        );
        println!(
            "| under load: block time (median / mean), most txs in a block | {:.0} / {:.0} ms ({} blocks), {} | |",
            ms(t.block_median),
            ms(t.block_mean),
            t.blocks,
            t.max_txs_per_block
        );
        println!(
            "| under load, blocks (median): tip at acceptance → request's block → assigned → closed | +{} → +{} → +{} | |",
            t.steps[0], t.steps[1], t.steps[2]
        );
        let top = t.tips.iter().map(|(h, _)| *h).max().unwrap_or(0);
        let tips: Vec<String> = t
            .tips
            .iter()
            .map(|(h, ago)| {
                let behind = top.saturating_sub(*h);
                let mark = if behind > STALL_BLOCKS {
                    format!(", **{behind} blocks behind: stalled**")
                } else {
                    String::new()
                };
                format!("{h} ({:.1} s ago{mark})", ago.as_secs_f64())
            })
            .collect();
        println!(
            "| finalized tip per node at the end (reached) | {} | |",
            tips.join(", ")
        );
        for (why, n) in &s.refusals {
            println!(
                "| refused at submission ×{n} | {} | |",
                why.replace('|', "/")
            );
        }
        for (why, n) in &t.failed {
            println!("| failed ×{n} | {} | |", why.replace('|', "/"));
        }
    }
    let v = ms(verify.whole);
    println!(
        "| receipt verification (Receipt::verify, no re-execution, median of {}) | {v:.3} ms | {GOAL_VERIFY_MS:.0} ms: {} |",
        opts.verify_runs,
        if v <= GOAL_VERIFY_MS {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "| of which: finality certificate (decode + threshold BLS verify) / {} transactions (decode + ed25519 verify) | {:.3} ms / {:.3} ms | |",
        1 + 2 * usize::from(k),
        ms(verify.certificate),
        ms(verify.signatures)
    );
}

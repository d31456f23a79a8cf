//! Disputes on a local network (issue #8): time from dispute to verdict.
//!
//! Starts a fresh `glassbox dev` network of 4 validators in this process,
//! on free loopback ports (storage in `--data-dir`, default
//! `target/dispute-net-bench`, wiped first) and publishes the model. Validators 0–2 run their executors;
//! validator 3's registered executor is played by this benchmark as a
//! liar, as `crates/cli/tests/disputes.rs` does: for each of N disputes it
//! draws an operator and an element from `--seed` (xorshift, the same
//! draws as the `dispute` bench), builds the lying run
//! ([`Party::run_lying`]: that operator's output corrupted in one bit,
//! everything downstream recomputed), submits k = 2 jobs until one is
//! assigned to it, commits and reveals the lie, and plays its side of the
//! game through node 0's API; the honest executor's node plays the other
//! side on its own. A slashed liar is replaced by a freshly registered
//! executor for the next dispute.
//!
//! Per dispute it reports the operator the verdict names (it must be the
//! corrupted one), the rounds, the ledger bytes of both sides' dispute
//! steps (the liar's as sent; the honest side's steps have the same shapes
//! at each position, so they are sized from the liar's run), the blocks
//! and wall time from the block that opened the dispute to the block that
//! decided it (when node 0 first reported each finalized, polled every
//! 5 ms), the median block time over those blocks (header timestamps),
//! and that time divided by rounds × median block time. The first round
//! includes the honest node re-running the whole model to build its side
//! (it keeps no trace between the reveal and a dispute).
//!
//! The input is the `dispute` bench's deterministic pattern. A job's inputs
//! travel in its `SubmitJob` transaction and its outputs in each
//! `RevealResult`, so when either exceeds the default `max_job_io_bytes`
//! (32 KiB; resnet50's 1x3x224x224 f32 input is 588 KiB, the BERT-layout
//! encoder's 1x128x256 f32 output 128 KiB) the benchmark's genesis raises
//! `max_tx_bytes` and `max_job_io_bytes` to the hard limit (1 MiB); commit,
//! reveal and dispute-round windows are set to `--round-blocks` so a loaded
//! machine does not time anyone out. The model's bytes are uploaded to
//! every node.
//!
//! ```text
//! cargo bench -p glassbox-node --bench dispute_net -- \
//!     [--model target/bench/bert.onnx] [--seq 128] [--disputes 3] [--seed 1] \
//!     [--threads 2] [--round-blocks 200] [--timeout 600] \
//!     [--data-dir target/dispute-net-bench]
//! ```
//!
//! Everything (validators, executors, this client) shares this machine's
//! cores. `GLASSBOX_LOG=info` shows the nodes' logs (default `warn`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use glassbox_ledger::dispute::{Step, Target};
use glassbox_ledger::limits::HARD_MAX_TX_BYTES;
use glassbox_ledger::{Job as LedgerJob, JobExt, JobId, JobStatus, SignedTx, TxBody, commitment};
use glassbox_node::disputes::party::Party;
use glassbox_runtime::{Limits, Model, Options, Session, Tensor, formats};
use glassbox_types::{PublicKey, SecretKey};

use common::{
    Client, Network, SETUP_TX_TIMEOUT_MS, VALIDATORS, Watch, await_finalized, block_time, ms,
    sign_min_fee, submit,
};

/// Between polls of the game by the liar.
const POLL_MS: u64 = 5;
/// Between polls of a job's assignment and commitments (its record holds
/// the inputs: large for resnet50).
const JOB_POLL_MS: u64 = 100;
/// Jobs submitted, at most, until one is assigned to the liar.
const MAX_TRIES: usize = 30;
/// Most disputes one run plays.
const MAX_DISPUTES: usize = 20;
/// Draws, at most, of an operator the lie can be told at.
const MAX_DRAWS: usize = 100;
/// Room for a `SubmitJob`'s fields besides its inputs.
const TX_OVERHEAD: usize = 4096;
/// What each replacement liar is given: a dev executor's stake and fees.
const LIAR_FUNDS: u64 = glassbox_node::run::DEV_EXECUTOR_STAKE + 100_000_000_000;

struct Opts {
    model: PathBuf,
    seq: usize,
    disputes: usize,
    seed: u64,
    threads: usize,
    round_blocks: u64,
    timeout: Duration,
    data_dir: PathBuf,
}

fn parse_args() -> Result<Opts> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        model: root.join("target/bench/bert.onnx"),
        seq: 128,
        disputes: 3,
        seed: 1,
        threads: 2,
        round_blocks: 200,
        timeout: Duration::from_secs(600),
        data_dir: root.join("target/dispute-net-bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!(
                "dispute_net [--model FILE] [--seq N] [--disputes N] [--seed S] \
                 [--threads T] [--round-blocks B] [--timeout SECONDS] [--data-dir DIR]"
            );
            std::process::exit(0);
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
            "--model" => o.model = PathBuf::from(&value),
            "--seq" => o.seq = (num()? as usize).clamp(1, 1 << 16),
            "--disputes" => o.disputes = (num()? as usize).clamp(1, MAX_DISPUTES),
            "--seed" => o.seed = num()?,
            "--threads" => o.threads = (num()? as usize).clamp(1, 64),
            "--round-blocks" => o.round_blocks = num()?.clamp(5, 10_000),
            "--timeout" => o.timeout = Duration::from_secs(num()?.clamp(10, 86_400)),
            "--data-dir" => o.data_dir = PathBuf::from(&value),
            // `cargo bench` passes it to every bench target.
            "--bench" => {}
            _ => bail!("unknown option {flag} (see --help)"),
        }
    }
    Ok(o)
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
    // The network runs on a background thread until the process ends.
    match bench(&opts) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }
    }
}

/// The model, its input and what the network needs to know of them.
struct Job {
    session: Arc<Session>,
    inputs: Vec<Vec<u8>>,
    leaves: usize,
}

fn load(o: &Opts) -> Result<(Vec<u8>, Job)> {
    let bytes =
        std::fs::read(&o.model).with_context(|| format!("reading {}", o.model.display()))?;
    let model = Arc::new(Model::load(&bytes, Limits::default()).context("loading the model")?);
    let shapes = common::input_shapes(&model, o.seq)?;
    let inputs: Vec<Tensor> = model
        .inputs()
        .zip(&shapes)
        .map(|(v, s)| common::pattern(v, s))
        .collect::<Result<_>>()?;
    let leaves = model.nodes().len();
    if leaves == 0 {
        bail!("the model has no operators to lie at");
    }
    let session = Arc::new(Session::new(model, Options::default())?);
    Ok((
        bytes,
        Job {
            session,
            inputs: inputs.iter().map(formats::canonical_encode).collect(),
            leaves,
        },
    ))
}

/// The benchmark's genesis: windows of `round_blocks`, and transactions
/// and job inputs and outputs up to the hard limit when the larger of the
/// two, `io_bytes`, needs it; validator
/// 3's executor key moved out of its directory (its node runs no
/// executor) to `dir/liar-0.key`.
fn adjust(
    dir: &Path,
    genesis: &mut glassbox_node::consensus::genesis::NodeGenesis,
    io_bytes: usize,
    round_blocks: u64,
) -> Result<()> {
    let p = &mut genesis.ledger.params;
    let need = io_bytes + TX_OVERHEAD;
    if io_bytes > p.max_job_io_bytes as usize || need > p.max_tx_bytes as usize {
        if need > HARD_MAX_TX_BYTES as usize {
            bail!(
                "the job's inputs or outputs are {io_bytes} bytes: a transaction carrying them is \
                 over the hard limit of {HARD_MAX_TX_BYTES} bytes"
            );
        }
        p.max_tx_bytes = HARD_MAX_TX_BYTES;
        p.max_job_io_bytes = HARD_MAX_TX_BYTES;
        p.max_block_bytes = p.max_block_bytes.max(4 * HARD_MAX_TX_BYTES);
    }
    p.commit_window_blocks = round_blocks;
    p.reveal_window_blocks = round_blocks;
    p.dispute_round_blocks = round_blocks;
    let from = dir
        .join("validator-3")
        .join(glassbox_node::run::EXECUTOR_KEY_FILE);
    std::fs::rename(&from, dir.join("liar-0.key"))
        .with_context(|| format!("moving {}", from.display()))?;
    Ok(())
}

/// A liar's key and its next nonce.
struct Liar {
    key: SecretKey,
    me: PublicKey,
    nonce: u64,
}

impl Liar {
    fn new(node: &Client, key: SecretKey) -> Result<Liar> {
        let nonce = common::nonce_of(node, &key.public())?;
        Ok(Liar {
            me: key.public(),
            key,
            nonce,
        })
    }

    fn send(&mut self, net: &Network, body: TxBody, deadline: Instant) -> Result<SignedTx> {
        let tx = sign_min_fee(&net.chain_id, &net.params, &self.key, self.nonce, body)?;
        submit(&net.clients[0], &tx, deadline)?;
        self.nonce += 1;
        Ok(tx)
    }
}

/// A freshly registered executor (funded by the developer key) to lie next.
fn new_liar(
    net: &Network,
    dev_nonce: &mut u64,
    n: usize,
    seed: u64,
    deadline: Instant,
) -> Result<Liar> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(n as u64).to_le_bytes());
    s[16] = 0x11;
    let key = SecretKey::from_seed(&s);
    let node = &net.clients[0];
    let fund = sign_min_fee(
        &net.chain_id,
        &net.params,
        &net.dev_key,
        *dev_nonce,
        TxBody::Transfer {
            to: key.public(),
            amount: LIAR_FUNDS,
        },
    )?;
    submit(node, &fund, deadline)?;
    *dev_nonce += 1;
    await_finalized(node, &[fund.hash()], deadline)?;
    let mut liar = Liar::new(node, key)?;
    let endpoint = net.clients[3].base().to_string();
    let reg = liar.send(
        net,
        TxBody::RegisterExecutor {
            stake: glassbox_node::run::DEV_EXECUTOR_STAKE,
            capacity: 8,
            endpoint,
        },
        deadline,
    )?;
    await_finalized(node, &[reg.hash()], deadline)?;
    Ok(liar)
}

/// Polls job `id` every [`JOB_POLL_MS`] until `done` holds for its record.
fn wait_job(
    node: &Client,
    id: &JobId,
    what: &str,
    deadline: Instant,
    done: impl Fn(&LedgerJob) -> bool,
) -> Result<LedgerJob> {
    loop {
        if let Some(j) = node.job(id)?.record
            && done(&j)
        {
            return Ok(j);
        }
        if Instant::now() >= deadline {
            bail!("job {id}: timed out waiting for it to be {what}");
        }
        std::thread::sleep(Duration::from_millis(JOB_POLL_MS));
    }
}

/// The job's extension record and the height it was read at.
fn job_ext(node: &Client, id: &JobId) -> Result<Option<(JobExt, u64)>> {
    let v = node.job_ext(id)?;
    Ok(v.record.map(|ext| (ext, v.height)))
}

/// Submits k = 2 jobs until one is assigned to the liar; returns it and its
/// other executor. Jobs assigned to two honest executors are let finish.
fn job_for(
    net: &Network,
    job: &Job,
    model_id: glassbox_types::ModelId,
    price: u64,
    liar: &Liar,
    dev_nonce: &mut u64,
    deadline: Instant,
) -> Result<(JobId, PublicKey)> {
    let node = &net.clients[0];
    for _ in 0..MAX_TRIES {
        let tx = sign_min_fee(
            &net.chain_id,
            &net.params,
            &net.dev_key,
            *dev_nonce,
            TxBody::SubmitJob {
                model_id,
                inputs: job.inputs.clone(),
                replicas: 2,
                max_fee: price * 2,
            },
        )?;
        submit(node, &tx, deadline)?;
        *dev_nonce += 1;
        let id = JobId::of_tx(tx.hash());
        let v = wait_job(node, &id, "assigned", deadline, |v| {
            v.status != JobStatus::Assigning
        })?;
        if v.slots.iter().any(|s| s.executor == liar.me) {
            let honest = v
                .slots
                .iter()
                .find(|s| s.executor != liar.me)
                .context("the job has no other executor")?
                .executor;
            return Ok((id, honest));
        }
        wait_job(node, &id, "closed", deadline, |v| {
            matches!(v.status, JobStatus::Final | JobStatus::Failed)
        })?;
    }
    bail!("no job was assigned to the liar in {MAX_TRIES} tries")
}

/// One dispute's figures.
struct Outcome {
    lie_at: usize,
    op: String,
    target: Option<Target>,
    caught: bool,
    reason: String,
    rounds: u32,
    steps: usize,
    ledger_bytes: usize,
    blocks: u64,
    first_round_blocks: u64,
    wall: Duration,
    header: Duration,
    block_median: Duration,
}

/// The liar's side of job `id`'s game, through node 0, to the verdict;
/// returns the dispute's opening and closing heights and the figures.
fn play(
    net: &Network,
    liar: &mut Liar,
    party: &Party,
    honest: &PublicKey,
    id: &JobId,
    deadline: Instant,
) -> Result<(u64, u64, u32, usize, usize, u64)> {
    let node = &net.clients[0];
    let mut sent: Option<(usize, u32, usize)> = None;
    let mut mirrored: Option<(usize, u32, usize)> = None;
    let (mut steps, mut bytes) = (0usize, 0usize);
    let mut first_round_at: Option<u64> = None;
    loop {
        if Instant::now() >= deadline {
            bail!("job {id}: the dispute did not end in time");
        }
        let Some((ext, height)) = job_ext(node, id)? else {
            std::thread::sleep(Duration::from_millis(POLL_MS));
            continue;
        };
        let Some(d) = ext.dispute.as_ref() else {
            std::thread::sleep(Duration::from_millis(POLL_MS));
            continue;
        };
        if let Some(closed) = d.closed_height {
            let first = first_round_at.unwrap_or(closed);
            let rounds = d.verdicts.first().map_or(0, |v| v.rounds);
            return Ok((
                d.opened_height,
                closed,
                rounds,
                steps,
                bytes,
                first - d.opened_height,
            ));
        }
        let Some(g) = d.game.as_ref() else {
            std::thread::sleep(Duration::from_millis(POLL_MS));
            continue;
        };
        if g.rounds >= 1 && first_round_at.is_none() {
            first_round_at = Some(height);
        }
        let pos = (d.verdicts.len(), g.rounds, g.opened.len());
        // The honest side's move at this position has the shape of the
        // liar's own (an opening, a split, the same operand openings).
        if mirrored != Some(pos) {
            let mut fresh = ext.clone();
            if let Some(g) = fresh.dispute.as_mut().and_then(|d| d.game.as_mut()) {
                g.a.moved = false;
                g.b.moved = false;
            }
            if let Some(step) = party.next_step(&fresh, honest) {
                let probe = SignedTx::sign(
                    &net.chain_id,
                    &liar.key,
                    0,
                    0,
                    TxBody::DisputeStep { job_id: *id, step },
                )?;
                bytes += probe.len();
                steps += 1;
            }
            mirrored = Some(pos);
        }
        if sent != Some(pos)
            && let Some(step) = party.next_step(&ext, &liar.me)
        {
            for t in party.opened_tensors(&step) {
                node.put_tensor(formats::canonical_encode(&t))?;
            }
            if let Step::Openings { items } = &step {
                eprintln!("  liar opens {} operand(s)", items.len());
            }
            let tx = liar.send(net, TxBody::DisputeStep { job_id: *id, step }, deadline)?;
            bytes += tx.len();
            steps += 1;
            sent = Some(pos);
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

#[allow(clippy::too_many_arguments)]
fn one_dispute(
    net: &Network,
    watch: &Watch,
    job: &Job,
    model_id: glassbox_types::ModelId,
    price: u64,
    liar: &mut Liar,
    dev_nonce: &mut u64,
    draw: &mut impl FnMut() -> u64,
    timeout: Duration,
) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let node = &net.clients[0];
    // The lie, before any job: an operator with a non-empty output.
    let t = Instant::now();
    let mut lie = None;
    for _ in 0..MAX_DRAWS {
        let at = (draw() % job.leaves as u64) as usize;
        let element = draw() as usize;
        match Party::run_lying(Arc::clone(&job.session), &job.inputs, at, element) {
            Ok(p) => {
                lie = Some((at, p));
                break;
            }
            Err(glassbox_node::disputes::party::PartyError::NoLie { .. }) => continue,
            Err(e) => bail!("the lying run: {e}"),
        }
    }
    let (lie_at, party) = lie.context("drew no operator the lie can be told at")?;
    let op = job.session.model().nodes()[lie_at].op_type.clone();
    eprintln!(
        "lying at operator {lie_at} ({op}) of {} (lying run built in {:.1} s)",
        job.leaves,
        t.elapsed().as_secs_f64()
    );
    let (id, honest) = job_for(net, job, model_id, price, liar, dev_nonce, deadline)?;
    eprintln!("  job {id}: the liar and {honest}");
    let c = commitment(
        &id,
        &liar.me,
        &party.output_hash(),
        &party.trace_root(),
        &glassbox_primitives::Salt::from_bytes([7; 32]),
    );
    liar.send(
        net,
        TxBody::CommitResult {
            job_id: id,
            commitment: c,
        },
        deadline,
    )?;
    wait_job(node, &id, "committed by both", deadline, |v| {
        v.slots.iter().all(|s| s.commitment.is_some())
    })?;
    liar.send(
        net,
        TxBody::RevealResult {
            job_id: id,
            output_hash: party.output_hash(),
            trace_root: party.trace_root(),
            salt: glassbox_primitives::Salt::from_bytes([7; 32]),
            outputs: party.outputs(),
        },
        deadline,
    )?;
    let (opened, closed, rounds, steps, ledger_bytes, first_round_blocks) =
        play(net, liar, &party, &honest, &id, deadline)?;
    // Until node 0's watcher has seen the deciding block.
    while watch.seen_at(closed).is_none() {
        if Instant::now() >= deadline {
            bail!("height {closed} never seen finalized");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    let (ext, _) = job_ext(node, &id)?.context("the job's ext record is gone")?;
    let d = ext.dispute.context("no dispute record")?;
    let v = d.verdicts.first().context("no verdict")?;
    let liar_claim = d.claim_of(&liar.me).context("the liar has no claim")?;
    let liar_lost = d.claims.get(liar_claim).is_some_and(|c| c.lost) && d.winner.is_some();
    let status = node.job(&id)?.record.map(|j| j.status);
    let stake = node.executor(&liar.me)?.record.map(|e| e.stake);
    let target = v.target;
    let caught = liar_lost
        && target.and_then(|t| t.node()) == Some(lie_at as u64)
        && status == Some(JobStatus::Final)
        && stake == Some(0);
    if !caught {
        eprintln!(
            "  NOT caught as expected: target {target:?}, liar lost {liar_lost}, job {status:?}, \
             liar stake {stake:?}, verdict: {}",
            v.reason
        );
    }
    let seen = |h: u64| watch.seen_at(h).context("a height not seen finalized");
    let wall = seen(closed)?.saturating_duration_since(seen(opened)?);
    let stamps = watch
        .blocks
        .lock()
        .map_err(|_| anyhow::anyhow!("watcher poisoned"))?
        .clone();
    let header = match (stamps.get(&opened), stamps.get(&closed)) {
        (Some(a), Some(b)) => Duration::from_millis(b.0.saturating_sub(a.0)),
        _ => Duration::ZERO,
    };
    let (block_median, _, _) = block_time(watch, opened, closed);
    Ok(Outcome {
        lie_at,
        op,
        target,
        caught,
        reason: v.reason.to_string(),
        rounds,
        steps,
        ledger_bytes,
        blocks: closed - opened,
        first_round_blocks,
        wall,
        header,
        block_median,
    })
}

fn bench(o: &Opts) -> Result<()> {
    let (model_bytes, job) = load(o)?;
    let input_bytes: usize = job.inputs.iter().map(Vec::len).sum();
    // A full run, for scale (the honest node does one at the dispute).
    let t = Instant::now();
    let honest = Party::run(Arc::clone(&job.session), &job.inputs)?;
    let full = t.elapsed();
    // The reveal carries the outputs: they must fit a transaction too.
    let output_bytes: usize = honest.outputs().iter().map(Vec::len).sum();
    drop(honest);

    let round_blocks = o.round_blocks;
    let net = common::start_network(&o.data_dir, o.threads, |dir, g| {
        adjust(dir, g, input_bytes.max(output_bytes), round_blocks)
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let watch = common::spawn_watch(&net.clients[0], "watch-0".into(), true, &stop)?;
    let liar_key = glassbox_store::keyfile::read_secret_key(&o.data_dir.join("liar-0.key"))?;
    eprintln!(
        "network of {VALIDATORS} validators up ({}); max_tx_bytes {}, max_job_io_bytes {}",
        net.clients[0].base(),
        net.params.max_tx_bytes,
        net.params.max_job_io_bytes
    );
    let (manifest, mut dev_nonce) =
        common::publish_model(&net, &model_bytes, "bench/dispute", &[0])?;
    // The others too, so that no dispute waits on a model download; a node
    // that already fetched it from a peer may cut the upload short.
    for (i, c) in net.clients.iter().enumerate().skip(1) {
        if let Err(e) = c.put_blob(&manifest.model_id, model_bytes.clone()) {
            eprintln!("(uploading the model to node {i}: {e:#})");
        }
    }
    let price = net
        .params
        .job_price(manifest.cost.flops)
        .context("price overflow")?;
    eprintln!(
        "published {} ({} bytes); input {input_bytes} bytes; full run {:.0} ms",
        manifest.model_id,
        manifest.size_bytes,
        ms(full)
    );

    let mut draw = common::xorshift(o.seed);
    let mut liar = Liar::new(&net.clients[0], liar_key)?;
    let mut outs = Vec::new();
    for n in 0..o.disputes {
        if n > 0 {
            let deadline = Instant::now() + Duration::from_millis(SETUP_TX_TIMEOUT_MS);
            liar = new_liar(&net, &mut dev_nonce, n, o.seed, deadline)?;
        }
        let out = one_dispute(
            &net,
            &watch,
            &job,
            manifest.model_id,
            price,
            &mut liar,
            &mut dev_nonce,
            &mut draw,
            o.timeout,
        )?;
        eprintln!(
            "  decided: {:?} after {} rounds, {} blocks, {:.2} s",
            out.target,
            out.rounds,
            out.blocks,
            out.wall.as_secs_f64()
        );
        outs.push(out);
    }
    stop.store(true, Ordering::Relaxed);
    report(o, &manifest, &job, input_bytes, full, &outs);
    Ok(())
}

fn report(
    o: &Opts,
    manifest: &glassbox_types::Manifest,
    job: &Job,
    input_bytes: usize,
    full: Duration,
    outs: &[Outcome],
) {
    let bound = (job.leaves as f64).log2().ceil() as u32 + 2;
    println!();
    println!(
        "model {} — {} operators, {} bytes, input {input_bytes} bytes, full run {:.0} ms; \
         {VALIDATORS} validators in one process (loopback, {} worker threads), k = 2, seed {}",
        o.model.display(),
        job.leaves,
        manifest.size_bytes,
        ms(full),
        o.threads,
        o.seed
    );
    println!(
        "| lie at | decided at | caught | rounds (≤ {bound}) | steps | ledger bytes | blocks (first round) | dispute → verdict s | header Δ s | block ms (median) | s / (rounds × block) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in outs {
        let ratio = r.wall.as_secs_f64()
            / (f64::from(r.rounds.max(1)) * r.block_median.as_secs_f64()).max(1e-9);
        println!(
            "| {} ({}) | {} | {} | {} | {} | {} | {} ({}) | {:.2} | {:.2} | {:.0} | {:.2} |",
            r.lie_at,
            r.op,
            match r.target {
                Some(Target::Chunk { node, chunk, .. }) => format!("node {node} chunk {chunk}"),
                Some(t) => format!("{t:?}"),
                None => "-".into(),
            },
            if r.caught { "yes" } else { "**no**" },
            r.rounds,
            r.steps,
            r.ledger_bytes,
            r.blocks,
            r.first_round_blocks,
            r.wall.as_secs_f64(),
            r.header.as_secs_f64(),
            ms(r.block_median),
            ratio
        );
    }
    let caught = outs.iter().filter(|r| r.caught).count();
    let mut walls: Vec<Duration> = outs.iter().map(|r| r.wall).collect();
    walls.sort();
    println!(
        "\ncaught at exactly the corrupted operator: {caught}/{}; median dispute → verdict {:.2} s; \
         verdicts: {}",
        outs.len(),
        walls
            .get(walls.len() / 2)
            .map_or(0.0, Duration::as_secs_f64),
        outs.iter()
            .map(|r| r.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
}

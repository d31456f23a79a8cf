//! `glassbox job show` and `glassbox challenge`: a job's state, assignments
//! and dispute as the network records them, and contesting an optimistic
//! result by playing the dispute game against it (docs/disputes.md).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use glassbox_api::Verified;
use glassbox_api::blocking::Client;
use glassbox_ledger::dispute::Stage;
use glassbox_ledger::{Job, JobExt, JobId, JobStatus, TxBody};
use glassbox_node::disputes::party::Party;
use glassbox_runtime::{Limits, Model, Options, Session, formats};
use glassbox_types::ModelId;
use serde_json::json;

use crate::net;

/// `glassbox job show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The job id (`job:<hex>`).
    job: String,
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    node: String,
    /// Print the job and its dispute record as JSON.
    #[arg(long)]
    json: bool,
}

/// `glassbox challenge`.
#[derive(Debug, Args)]
pub(crate) struct ChallengeArgs {
    /// The pending job (`job:<hex>`).
    job: String,
    /// The challenger's key: an executor registered with stake, holding
    /// the bond.
    #[arg(long)]
    key: PathBuf,
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    node: String,
    /// The model file (default: fetched from the node).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Give up after this long, in ms.
    #[arg(long, default_value_t = 600_000)]
    timeout_ms: u64,
}

/// `job` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobCommand {
    /// Show a job: state, executors, commitments and reveals, the pending
    /// window and auditor of an optimistic result, the dispute's claims,
    /// game and verdicts.
    Show(ShowArgs),
}

/// `glassbox job`.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
}

pub(crate) fn run(args: JobArgs) -> Result<()> {
    match args.command {
        JobCommand::Show(a) => show(a),
    }
}

fn parse_job(s: &str) -> Result<JobId> {
    s.parse::<JobId>()
        .map_err(|e| anyhow::anyhow!("job id {s:?}: {e}"))
}

fn short(s: &str) -> String {
    let body = s.split(':').next_back().unwrap_or(s);
    format!("{}…", body.chars().take(10).collect::<String>())
}

/// Tries at reading a job and its extension in one state before giving up.
const MAX_FETCH_TRIES: usize = 10;

/// The job and its extension record, proof-checked, read in one state
/// (the two reads are retried while a block lands between them).
fn fetch(client: &Client, id: &JobId) -> Result<(Verified<Job>, Verified<JobExt>)> {
    for _ in 0..MAX_FETCH_TRIES {
        let job = client.job(id)?;
        if job.record.is_none() {
            bail!("no job {id} on this network");
        }
        let ext = client.job_ext(id)?;
        if ext.state_root == job.state_root {
            return Ok((job, ext));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("job {id}: the node's answers never came from one state in {MAX_FETCH_TRIES} tries")
}

/// A value's JSON text (targets, as the API writes them).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn show(a: ShowArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let id = parse_job(&a.job)?;
    let client = net::client(&a.node, Duration::from_secs(30))?;
    let (job, ext) = fetch(&client, &id)?;
    if a.json {
        writeln!(
            w,
            "{}",
            serde_json::to_string_pretty(&json!({
                "job": job.record,
                "ext": ext.record,
                "height": job.height,
            }))?
        )?;
        return Ok(());
    }
    let Some(j) = &job.record else {
        bail!("no job {id} on this network");
    };
    writeln!(w, "job      {id}")?;
    writeln!(
        w,
        "status   {} (at height {})",
        json_text(&j.status).trim_matches('"'),
        job.height
    )?;
    writeln!(
        w,
        "model    {}  replicas {}  price/replica {}  escrow {}",
        j.model_id, j.replicas, j.price_per_replica, j.escrow
    )?;
    writeln!(
        w,
        "submitted at height {}, closed at {}",
        j.submitted_height,
        opt(j.closed_height)
    )?;
    for (i, s) in j.slots.iter().enumerate() {
        writeln!(
            w,
            "slot {i}  {}  {}  {}",
            s.executor,
            if s.commitment.is_none() {
                "uncommitted"
            } else {
                "committed"
            },
            match &s.reveal {
                None => "unrevealed".to_string(),
                Some(r) => format!(
                    "revealed output {} trace {}",
                    short(&r.output_hash.to_hex()),
                    short(&r.trace_root.to_hex())
                ),
            }
        )?;
    }
    let Some(e) = &ext.record else {
        return Ok(());
    };
    if let Some(until) = e.pending_until {
        writeln!(w, "pending  open to challenges until height {until}")?;
    }
    if let Some(auditor) = &e.auditor {
        writeln!(w, "auditor  {auditor}")?;
    }
    let Some(d) = &e.dispute else {
        return Ok(());
    };
    writeln!(w, "dispute  opened at height {}", d.opened_height)?;
    for (i, c) in d.claims.iter().enumerate() {
        let members: Vec<String> = c.members.iter().map(|m| short(&m.to_string())).collect();
        writeln!(
            w,
            "claim {i}  output {} trace {}  by {}{}{}",
            short(&c.output_hash.to_hex()),
            short(&c.trace_root.to_hex()),
            members.join(", "),
            if c.bond > 0 {
                format!("  (challenger, bond {})", c.bond)
            } else {
                String::new()
            },
            if c.lost { "  LOST" } else { "" }
        )?;
    }
    if let Some(g) = &d.game {
        let at = match &g.stage {
            Stage::Bisect { lo, hi } => format!("bisecting leaves [{lo}, {hi})"),
            Stage::Leaf { node } => format!("stating the outputs of leaf {node}"),
            Stage::Chunks {
                node,
                output,
                lo,
                hi,
                chunks,
            } => format!(
                "bisecting chunks [{lo}, {hi}) of {chunks} of output {output} of leaf {node}"
            ),
            Stage::Referee { target } => format!("referee decides {}", json_text(target)),
            Stage::Open => "open".to_string(),
        };
        writeln!(
            w,
            "game     claim {} vs claim {}: {at}; round {}, deadline height {}; moved: {} / {}",
            g.a.claim, g.b.claim, g.rounds, g.deadline, g.a.moved, g.b.moved
        )?;
    }
    for v in &d.verdicts {
        let lost = match (v.a_lost, v.b_lost) {
            (true, true) => "both lost".to_string(),
            (true, false) => format!("claim {} lost", v.a),
            (false, true) => format!("claim {} lost", v.b),
            (false, false) => "nobody lost".to_string(),
        };
        writeln!(
            w,
            "verdict  claim {} vs {} at height {} after {} rounds: {lost} ({}; {})",
            v.a,
            v.b,
            v.height,
            v.rounds,
            v.target
                .as_ref()
                .map_or_else(|| "null".to_string(), json_text),
            v.reason
        )?;
    }
    if d.closed_height.is_some() {
        match d.winner {
            Some(win) => writeln!(
                w,
                "outcome  claim {win} stands: its outputs are the job's result"
            )?,
            None => writeln!(
                w,
                "outcome  every claim lost: the job failed and was refunded"
            )?,
        }
    }
    Ok(())
}

/// Runs `glassbox challenge`: computes the job locally, challenges a
/// different pending result, then plays the game to its end.
pub(crate) fn challenge(a: ChallengeArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let id = parse_job(&a.job)?;
    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms.max(1));
    let client = net::client(&a.node, Duration::from_secs(30))?;
    let key = glassbox_store::keyfile::read_secret_key(&a.key)
        .with_context(|| format!("key {}", a.key.display()))?;
    let me = key.public();
    let status = client.status()?;
    let (job, _) = fetch(&client, &id)?;
    let Some(j) = job.record else {
        bail!("no job {id} on this network");
    };
    if j.status != JobStatus::Pending {
        bail!(
            "job {id} is {}, not pending: only an optimistic result in its window can be challenged",
            json_text(&j.status).trim_matches('"')
        );
    }
    let model_id = j.model_id;
    let bytes = match &a.model {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => client
            .blob(&model_id, crate::model::max_model_bytes())
            .with_context(|| format!("fetching model {model_id} from the node"))?,
    };
    if ModelId::of(&bytes) != model_id {
        bail!("the model bytes are not model {model_id}");
    }
    let inputs = j.inputs.clone();
    let model = Model::load(&bytes, Limits::default())?;
    let session = Arc::new(Session::new(Arc::new(model), Options::default())?);
    // A failure the referee cannot run within a block's budget would lose.
    let genesis: glassbox_node::consensus::genesis::NodeGenesis = client.genesis()?;
    let budget = genesis.ledger.params.max_referee_work_per_block;
    let party = Party::run_within(session, &inputs, budget)?;
    let revealed = j.slots.first().and_then(|s| s.reveal);
    if revealed
        .is_some_and(|r| r.output_hash == party.output_hash() && r.trace_root == party.trace_root())
    {
        writeln!(
            w,
            "the pending result is the one this machine computes: nothing to challenge"
        )?;
        return Ok(());
    }
    let body = TxBody::Challenge {
        job_id: id,
        output_hash: party.output_hash(),
        trace_root: party.trace_root(),
        outputs: party.outputs(),
    };
    let tx = net::sign(&client, &status, &key, body, None, "fund it first")?;
    net::submit_tx(&client, &tx, deadline)?;
    writeln!(
        w,
        "challenged {id} with output {} (bond {})",
        short(&party.output_hash().to_hex()),
        status.params.challenge_bond
    )?;
    let mut last_pos: Option<(usize, u32, usize)> = None;
    loop {
        if Instant::now() >= deadline {
            bail!(
                "the dispute of {id} is not decided yet (timeout); follow it with glassbox job show {id}"
            );
        }
        let (job, ext) = fetch(&client, &id)?;
        let job_status = job.record.map(|j| j.status);
        let (Some(job_status), Some(ext)) = (job_status, ext.record) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if job_status == JobStatus::Pending {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let Some(d) = ext.dispute.as_ref() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if job_status != JobStatus::Disputed {
            writeln!(
                w,
                "job {id} is {}",
                json_text(&job_status).trim_matches('"')
            )?;
            writeln!(
                w,
                "{}",
                if d.winner == Some(1) {
                    "the challenge won: the job's result is this machine's and the executor was slashed"
                } else {
                    "the challenge lost: its bond is forfeited"
                }
            )?;
            return Ok(());
        }
        let Some(g) = d.game.as_ref() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let pos = (d.verdicts.len(), g.rounds, g.opened.len());
        if last_pos != Some(pos)
            && let Some(step) = party.next_step(&ext, &me)
        {
            for t in party.opened_tensors(&step) {
                client.put_tensor(formats::canonical_encode(&t))?;
            }
            let name = step.name();
            let body = TxBody::DisputeStep { job_id: id, step };
            let tx = net::sign(&client, &status, &key, body, None, "fund it first")?;
            net::submit_tx(&client, &tx, deadline)?;
            writeln!(w, "move: {name} (round {})", g.rounds)?;
            last_pos = Some(pos);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

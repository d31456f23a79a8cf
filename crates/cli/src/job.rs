//! `glassbox job show` and `glassbox challenge`: a job's state, assignments
//! and dispute as the network records them, and contesting an optimistic
//! result by playing the dispute game against it (docs/disputes.md).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use glassbox_ledger::{JobExt, JobId, Params, SignedTx, TxBody};
use glassbox_node::party::Party;
use glassbox_primitives::ChainId;
use glassbox_runtime::{Limits, Model, Options, Session, formats};
use glassbox_types::{ModelId, SecretKey};
use serde_json::{Value, json};

use crate::model::{NodeClient, parse_chain_id, submit_tx};

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

fn fetch(client: &NodeClient, id: &JobId) -> Result<(Value, Value)> {
    let job = client.get_ok(&format!("/v1/jobs/{id}"))?;
    if job["value"].is_null() {
        bail!("no job {id} on this network");
    }
    let ext = client.get_ok(&format!("/v1/jobs/{id}/ext"))?;
    Ok((job, ext))
}

fn show(a: ShowArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let id = parse_job(&a.job)?;
    let client = NodeClient::new(&a.node, Duration::from_secs(30))?;
    let (job, ext) = fetch(&client, &id)?;
    if a.json {
        writeln!(
            w,
            "{}",
            serde_json::to_string_pretty(&json!({
                "job": job["value"],
                "ext": ext["value"],
                "height": job["height"],
            }))?
        )?;
        return Ok(());
    }
    let j = &job["value"];
    writeln!(w, "job      {id}")?;
    writeln!(
        w,
        "status   {} (at height {})",
        j["status"].as_str().unwrap_or("?"),
        job["height"]
    )?;
    writeln!(
        w,
        "model    {}  replicas {}  price/replica {}  escrow {}",
        j["model_id"].as_str().unwrap_or("?"),
        j["replicas"],
        j["price_per_replica"],
        j["escrow"]
    )?;
    writeln!(
        w,
        "submitted at height {}, closed at {}",
        j["submitted_height"], j["closed_height"]
    )?;
    for (i, s) in j["slots"].as_array().into_iter().flatten().enumerate() {
        let reveal = &s["reveal"];
        writeln!(
            w,
            "slot {i}  {}  {}  {}",
            s["executor"].as_str().unwrap_or("?"),
            if s["commitment"].is_null() {
                "uncommitted"
            } else {
                "committed"
            },
            if reveal.is_null() {
                "unrevealed".to_string()
            } else {
                format!(
                    "revealed output {} trace {}",
                    short(reveal["output_hash"].as_str().unwrap_or("")),
                    short(reveal["trace_root"].as_str().unwrap_or(""))
                )
            }
        )?;
    }
    let e = &ext["value"];
    if e.is_null() {
        return Ok(());
    }
    if !e["pending_until"].is_null() {
        writeln!(
            w,
            "pending  open to challenges until height {}",
            e["pending_until"]
        )?;
    }
    if !e["auditor"].is_null() {
        writeln!(w, "auditor  {}", e["auditor"].as_str().unwrap_or("?"))?;
    }
    let d = &e["dispute"];
    if d.is_null() {
        return Ok(());
    }
    writeln!(w, "dispute  opened at height {}", d["opened_height"])?;
    for (i, c) in d["claims"].as_array().into_iter().flatten().enumerate() {
        let members: Vec<String> = c["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(short))
            .collect();
        writeln!(
            w,
            "claim {i}  output {} trace {}  by {}{}{}",
            short(c["output_hash"].as_str().unwrap_or("")),
            short(c["trace_root"].as_str().unwrap_or("")),
            members.join(", "),
            if c["bond"].as_u64().unwrap_or(0) > 0 {
                format!("  (challenger, bond {})", c["bond"])
            } else {
                String::new()
            },
            if c["lost"].as_bool().unwrap_or(false) {
                "  LOST"
            } else {
                ""
            }
        )?;
    }
    let g = &d["game"];
    if !g.is_null() {
        let stage = &g["stage"];
        let at = match stage["stage"].as_str().unwrap_or("?") {
            "bisect" => format!("bisecting leaves [{}, {})", stage["lo"], stage["hi"]),
            "referee" => format!("referee decides {}", stage["target"]),
            other => other.to_string(),
        };
        writeln!(
            w,
            "game     claim {} vs claim {}: {at}; round {}, deadline height {}; moved: {} / {}",
            g["a"]["claim"],
            g["b"]["claim"],
            g["rounds"],
            g["deadline"],
            g["a"]["moved"],
            g["b"]["moved"]
        )?;
    }
    for v in d["verdicts"].as_array().into_iter().flatten() {
        let lost = match (v["a_lost"].as_bool(), v["b_lost"].as_bool()) {
            (Some(true), Some(true)) => "both lost".to_string(),
            (Some(true), _) => format!("claim {} lost", v["a"]),
            (_, Some(true)) => format!("claim {} lost", v["b"]),
            _ => "nobody lost".to_string(),
        };
        writeln!(
            w,
            "verdict  claim {} vs {} at height {} after {} rounds: {lost} ({}; {})",
            v["a"],
            v["b"],
            v["height"],
            v["rounds"],
            v["target"],
            v["reason"].as_str().unwrap_or("")
        )?;
    }
    if !d["closed_height"].is_null() {
        match d["winner"].as_u64() {
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

fn sign(
    client: &NodeClient,
    key: &SecretKey,
    chain_id: &ChainId,
    params: &Params,
    body: TxBody,
) -> Result<SignedTx> {
    let sender = key.public();
    let account = client.get_ok(&format!("/v1/accounts/{sender}"))?;
    let Some(nonce) = account["value"]["nonce"].as_u64() else {
        bail!("account {sender} (the key's) does not exist on this chain");
    };
    let probe = SignedTx::sign(chain_id, key, nonce, 0, body.clone())?;
    let fee = params
        .min_fee_for(probe.len())
        .context("the chain's fee parameters overflow")?;
    Ok(SignedTx::sign(chain_id, key, nonce, fee, body)?)
}

/// Runs `glassbox challenge`: computes the job locally, challenges a
/// different pending result, then plays the game to its end.
pub(crate) fn challenge(a: ChallengeArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let id = parse_job(&a.job)?;
    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms.max(1));
    let client = NodeClient::new(&a.node, Duration::from_secs(30))?;
    let key = glassbox_store::keyfile::read_secret_key(&a.key)
        .with_context(|| format!("key {}", a.key.display()))?;
    let me = key.public();
    let status = client.get_ok("/v1/status")?;
    let chain_id = parse_chain_id(status["chain_id"].as_str().unwrap_or(""))?;
    let params: Params = serde_json::from_value(status["params"].clone())
        .context("the node's /v1/status gives no chain params")?;
    let (job, _) = fetch(&client, &id)?;
    let j = &job["value"];
    if j["status"].as_str() != Some("pending") {
        bail!(
            "job {id} is {}, not pending: only an optimistic result in its window can be challenged",
            j["status"].as_str().unwrap_or("?")
        );
    }
    let model_id: ModelId =
        serde_json::from_value(j["model_id"].clone()).context("the job record has no model id")?;
    let bytes = match &a.model {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => client
            .get_bytes(
                &format!("/v1/blobs/{model_id}"),
                crate::model::max_model_bytes(),
            )
            .with_context(|| format!("fetching model {model_id} from the node"))?,
    };
    if ModelId::of(&bytes) != model_id {
        bail!("the model bytes are not model {model_id}");
    }
    let inputs: Vec<Vec<u8>> = j["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| glassbox_types::unhex_vec(v.as_str().unwrap_or(""), 1 << 20))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("the job's inputs: {e}"))?;
    let model = Model::load(&bytes, Limits::default())?;
    let session = Arc::new(Session::new(Arc::new(model), Options::default())?);
    let party = Party::run(session, &inputs)?;
    let revealed = &j["slots"][0]["reveal"];
    if revealed["output_hash"].as_str() == Some(&party.output_hash().to_hex())
        && revealed["trace_root"].as_str() == Some(&party.trace_root().to_hex())
    {
        writeln!(
            w,
            "the pending result is the one this machine computes: nothing to challenge"
        )?;
        return Ok(());
    }
    let tx = sign(
        &client,
        &key,
        &chain_id,
        &params,
        TxBody::Challenge {
            job_id: id,
            output_hash: party.output_hash(),
            trace_root: party.trace_root(),
            outputs: party.outputs(),
        },
    )?;
    submit_tx(&client, &tx, deadline)?;
    writeln!(
        w,
        "challenged {id} with output {} (bond {})",
        short(&party.output_hash().to_hex()),
        params.challenge_bond
    )?;
    let mut last_pos: Option<(usize, u32, usize)> = None;
    loop {
        if Instant::now() >= deadline {
            bail!(
                "the dispute of {id} is not decided yet (timeout); follow it with glassbox job show {id}"
            );
        }
        let (job, record) = fetch(&client, &id)?;
        let status = job["value"]["status"].as_str().unwrap_or("?").to_string();
        if status == "pending" || record["record"].is_null() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let bytes = glassbox_types::unhex_vec(record["record"].as_str().unwrap_or(""), 16 << 20)
            .map_err(|e| anyhow::anyhow!("the dispute record: {e}"))?;
        let ext = JobExt::decode(&bytes).context("the dispute record does not decode")?;
        let Some(d) = ext.dispute.as_ref() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if status != "disputed" {
            writeln!(w, "job {id} is {status}")?;
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
                let enc = formats::canonical_encode(&t);
                client.put_bytes(&format!("/v1/tensors/{}", t.hash().to_hex()), &enc)?;
            }
            let name = step.name();
            let tx = sign(
                &client,
                &key,
                &chain_id,
                &params,
                TxBody::DisputeStep { job_id: id, step },
            )?;
            submit_tx(&client, &tx, deadline)?;
            writeln!(w, "move: {name} (round {})", g.rounds)?;
            last_pos = Some(pos);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! `glassbox infer`: asks the network for a verified inference
//! (docs/jobs.md) and shows it until final, then fetches and checks its
//! receipt.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use glassbox_api::blocking::Client;
use glassbox_api::routes;
use glassbox_ledger::{JobId, JobStatus, TxBody};
use glassbox_node::receipt::Receipt;
use glassbox_runtime::{DType, formats};
use glassbox_types::{ModelId, SignedManifest, TensorSpec};
use serde_json::json;

use crate::net;

/// `glassbox infer` arguments.
#[derive(Debug, Args)]
pub(crate) struct InferArgs {
    /// The model: its id (`blake3:<hex>`) or `NAME@VERSION`.
    model: String,
    /// Inputs: `NAME=FILE` or files in the model's input order (.json,
    /// .npy or .pb).
    #[arg(long = "input", num_args = 1..)]
    inputs: Vec<String>,
    /// Executors that must agree bit for bit.
    #[arg(long, default_value_t = 3)]
    replicas: u8,
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    node: String,
    /// The requester's key file (pays the fee and the job's price).
    #[arg(long, default_value = "target/glassbox-dev/dev.key")]
    key: PathBuf,
    /// The most to escrow for the job; default: exactly its price.
    #[arg(long)]
    max_fee: Option<u64>,
    /// Write the receipt here.
    #[arg(long)]
    receipt: Option<PathBuf>,
    /// Verify the receipt against this genesis (default: the validator set
    /// the node reports, which trusts the node for it).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Give up after this long, in ms.
    #[arg(long, default_value_t = 120_000)]
    timeout_ms: u64,
    /// Print one JSON object instead of progress.
    #[arg(long)]
    json: bool,
}

impl InferArgs {
    /// The arguments `glassbox demo` infers with.
    pub(crate) fn for_demo(
        model: String,
        inputs: Vec<String>,
        replicas: u8,
        node: String,
        key: PathBuf,
        timeout_ms: u64,
    ) -> InferArgs {
        InferArgs {
            model,
            inputs,
            replicas,
            node,
            key,
            max_fee: None,
            receipt: None,
            genesis: None,
            timeout_ms,
            json: false,
        }
    }
}

/// What a finished inference gives back.
pub(crate) struct Inferred {
    pub(crate) job_id: JobId,
    pub(crate) receipt: Receipt,
    pub(crate) executors: Vec<String>,
    pub(crate) final_height: u64,
    pub(crate) submitted_height: u64,
    pub(crate) elapsed: Duration,
}

/// The model's id and signed manifest from the node (proof-checked, and
/// the manifest's signature verified).
fn resolve_model(client: &Client, model: &str) -> Result<(ModelId, SignedManifest)> {
    let record = match model.split_once('@') {
        Some((name, version)) => client
            .model_by_name(name, version)?
            .model
            .and_then(|m| m.record),
        None => {
            let id: ModelId = model
                .parse()
                .with_context(|| format!("`{model}` is neither a model id nor NAME@VERSION"))?;
            client.model(&id)?.record
        }
    };
    let Some(record) = record else {
        bail!("model {model} is not published on this network");
    };
    let signed = record.manifest;
    signed
        .verify()
        .context("the node's manifest signature does not verify")?;
    Ok((signed.manifest().model_id, signed))
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    glassbox_types::unhex_vec(s, glassbox_node::receipt::MAX_RECEIPT_BYTES as usize)
        .map_err(anyhow::Error::msg)
}

/// Reads the `--input` files in the manifest's declared input order, as
/// canonical tensor encodings.
fn read_inputs(specs: &[TensorSpec], args: &[String]) -> Result<Vec<Vec<u8>>> {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    crate::exec::bind_files(&names, args, |slot, file| {
        let dtype = specs[slot].dtype.as_deref().and_then(DType::from_name);
        let t = crate::exec::read_input(file, dtype, MAX_INPUT_ELEMENTS)?;
        Ok(formats::canonical_encode(&t))
    })
}

/// Most elements of one input file (the chain's `max_job_io_bytes` is the
/// real bound; this only stops a huge file early).
const MAX_INPUT_ELEMENTS: usize = 1 << 24;

/// Submits the job and follows it to a receipt; `progress` gets one line
/// per step.
pub(crate) fn infer(args: &InferArgs, mut progress: impl FnMut(&str)) -> Result<Inferred> {
    let start = Instant::now();
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let deadline = start + timeout;
    let client = net::client(&args.node, timeout.min(Duration::from_secs(30)))?;
    let key = glassbox_store::keyfile::read_secret_key(&args.key)
        .with_context(|| format!("key {}", args.key.display()))?;
    let status = client.status()?;
    let (model_id, manifest) = resolve_model(&client, &args.model)?;
    let m = manifest.manifest();
    let inputs = read_inputs(&m.inputs, &args.inputs)?;
    let price = status
        .params
        .job_price(m.cost.flops)
        .and_then(|p| p.checked_mul(u64::from(args.replicas)))
        .context("the job's price overflows")?;
    let max_fee = args.max_fee.unwrap_or(price);
    let body = TxBody::SubmitJob {
        model_id,
        inputs,
        replicas: args.replicas,
        max_fee,
    };
    let tx = net::sign(&client, &status, &key, body, None, "fund it first")?;
    let job_id = JobId::of_tx(tx.hash());
    net::submit_tx(&client, &tx, deadline)?;
    progress(&format!(
        "submitted {job_id}: {}@{} on {} input(s), {} replicas, price {price}",
        m.name,
        m.version,
        m.inputs.len(),
        args.replicas
    ));
    let (executors, submitted_height, final_height) =
        follow(&client, &job_id, deadline, &mut progress)?;
    let receipt = fetch_receipt(&client, &job_id, deadline)?;
    Ok(Inferred {
        job_id,
        receipt,
        executors,
        final_height,
        submitted_height,
        elapsed: start.elapsed(),
    })
}

/// Polls the job until it closes; returns its executors and the heights
/// it was submitted and closed at.
fn follow(
    client: &Client,
    id: &JobId,
    deadline: Instant,
    progress: &mut impl FnMut(&str),
) -> Result<(Vec<String>, u64, u64)> {
    let mut last = String::new();
    loop {
        if let Some(job) = client.job(id)?.record {
            let replicas = job.replicas;
            let committed = job.slots.iter().filter(|s| s.commitment.is_some()).count();
            let revealed = job.slots.iter().filter(|s| s.reveal.is_some()).count();
            let executors: Vec<String> = job.slots.iter().map(|s| s.executor.to_string()).collect();
            let line = match job.status {
                JobStatus::Assigning => "waiting for the next block to draw executors".to_string(),
                JobStatus::Running => format!(
                    "executors {}: {committed}/{replicas} committed, {revealed}/{replicas} revealed",
                    executors
                        .iter()
                        .map(|e| short(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                JobStatus::Pending => "optimistic result published (pending): open to challenges \
                                       until its window closes"
                    .to_string(),
                JobStatus::Disputed => format!(
                    "disputed: the results differ; the dispute game decides \
                     (glassbox job show {id})"
                ),
                JobStatus::Final => "job final".to_string(),
                JobStatus::Failed => "job failed".to_string(),
            };
            if line != last {
                progress(&line);
                last = line;
            }
            match job.status {
                JobStatus::Final => {
                    return Ok((
                        executors,
                        job.submitted_height,
                        job.closed_height.unwrap_or(0),
                    ));
                }
                JobStatus::Failed => bail!(
                    "job {id} failed: not enough executors could take it, or every result \
                     lost its dispute; the escrow was refunded"
                ),
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "job {id} is not final yet (timeout); follow it with GET {}",
                client.url(&routes::job(id))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches the job's receipt, waiting while its block is not certified.
fn fetch_receipt(client: &Client, id: &JobId, deadline: Instant) -> Result<Receipt> {
    loop {
        match client.receipt(id) {
            Ok(r) => return Ok(r),
            Err(e) if e.status() == Some(409) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn short(key: &str) -> String {
    // The key comes from the node: take characters, never slice bytes.
    let hex = key.strip_prefix("ed25519:").unwrap_or(key);
    format!("{}…", hex.chars().take(8).collect::<String>())
}

/// Prints each output's name, shape and first values.
pub(crate) fn describe_outputs(receipt: &Receipt, specs: &[TensorSpec]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, o) in receipt.outputs.iter().enumerate() {
        let t = formats::canonical_decode(&unhex(o)?, usize::MAX)?;
        let name = specs.get(i).map_or("output", |s| s.name.as_str());
        lines.push(format!(
            "{name} {:?} {}: {}",
            t.shape(),
            t.dtype(),
            crate::exec::preview(&t, 10)
        ));
    }
    Ok(lines)
}

pub(crate) fn run(args: InferArgs) -> Result<()> {
    let json = args.json;
    let mut err = std::io::stderr();
    let inferred = infer(&args, |line| {
        if !json {
            let _ = writeln!(err, "  {line}");
        }
    })?;
    let genesis = match &args.genesis {
        Some(p) => crate::receipt::read_genesis(p)?,
        None => fetch_genesis(&args.node)?,
    };
    let verified = crate::receipt::verify(&inferred.receipt, &genesis)
        .context("the node's receipt does not verify")?;
    if let Some(path) = &args.receipt {
        let text = serde_json::to_string_pretty(&inferred.receipt)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let client = net::client(&args.node, Duration::from_secs(30))?;
    let (_, manifest) = resolve_model(&client, &args.model)?;
    let outputs = describe_outputs(&inferred.receipt, &manifest.manifest().outputs)?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "job_id": inferred.job_id,
            "status": "final",
            "executors": inferred.executors,
            "submitted_height": inferred.submitted_height,
            "final_height": inferred.final_height,
            "latency_ms": inferred.elapsed.as_millis() as u64,
            "outputs": inferred.receipt.outputs,
            // No outputs: the model fails on these inputs, and the
            // network agreed on where (docs/disputes.md, "Runs that fail").
            "run_failed": inferred.receipt.outputs.is_empty(),
            "output_hash": inferred.receipt.output_hash,
            "trace_root": inferred.receipt.trace_root,
            "receipt": args.receipt,
            "receipt_verified": true,
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(
            w,
            "job {} final at block {}",
            inferred.job_id, verified.height
        )?;
        for line in outputs {
            writeln!(w, "  {line}")?;
        }
        if inferred.receipt.outputs.is_empty() {
            writeln!(
                w,
                "  no outputs: the model fails on these inputs (the trace root names the \
                 operator; `glassbox exec` shows the error)"
            )?;
        }
        writeln!(w, "  output hash {}", inferred.receipt.output_hash)?;
        writeln!(w, "  trace root  {}", inferred.receipt.trace_root)?;
        writeln!(
            w,
            "  receipt verified: {} executors agree, certificate and inclusion proof check out",
            inferred.executors.len()
        )?;
        if let Some(p) = &args.receipt {
            writeln!(w, "  receipt written to {}", p.display())?;
        }
    }
    Ok(())
}

/// The genesis the node serves (`GET /v1/genesis`), for checking a
/// receipt when the user gave none.
fn fetch_genesis(node: &str) -> Result<glassbox_node::consensus::genesis::NodeGenesis> {
    let client = net::client(node, Duration::from_secs(30))?;
    Ok(client.genesis()?)
}

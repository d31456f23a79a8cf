//! `glassbox infer`: asks the network for a verified inference
//! (docs/jobs.md) and shows it until final, then fetches and checks its
//! receipt.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use glassbox_ledger::{JobId, Params, SignedTx, TxBody};
use glassbox_node::receipt::Receipt;
use glassbox_primitives::ChainId;
use glassbox_runtime::{DType, formats};
use glassbox_types::{ModelId, SecretKey, SignedManifest, TensorSpec};
use serde_json::{Value, json};

use crate::model::{NodeClient, parse_chain_id, submit_tx};

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

/// The model's id and signed manifest from the node (checked: the
/// manifest's signature verifies and names that model).
fn resolve_model(client: &NodeClient, model: &str) -> Result<(ModelId, SignedManifest)> {
    let (path, by_name) = match model.split_once('@') {
        Some((name, version)) => (format!("/v1/models/by-name/{name}/{version}"), true),
        None => {
            let id: ModelId = model
                .parse()
                .with_context(|| format!("`{model}` is neither a model id nor NAME@VERSION"))?;
            (format!("/v1/models/{id}"), false)
        }
    };
    let a = client.get(&path)?;
    if !a.ok() && a.status != 404 {
        bail!("GET {path}: {}", a.error_text());
    }
    // By name, the model record comes under `model`.
    let record = if by_name {
        &a.body["model"]["value"]
    } else {
        &a.body["value"]
    };
    if a.status == 404 || record.is_null() {
        bail!("model {model} is not published on this network");
    }
    let hex = record["signed_manifest"]
        .as_str()
        .context("the node's model record has no signed_manifest")?;
    let bytes = unhex(hex).context("the node's signed_manifest is not hex")?;
    let signed = SignedManifest::decode(&bytes).context("the node's manifest does not decode")?;
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
    let client = NodeClient::new(&args.node, timeout.min(Duration::from_secs(30)))?;
    let key = glassbox_store::keyfile::read_secret_key(&args.key)
        .with_context(|| format!("key {}", args.key.display()))?;
    let status = client.get_ok("/v1/status")?;
    let chain_id = parse_chain_id(status["chain_id"].as_str().unwrap_or(""))?;
    let params: Params = serde_json::from_value(status["params"].clone())
        .context("the node's /v1/status gives no chain params")?;
    let (model_id, manifest) = resolve_model(&client, &args.model)?;
    let m = manifest.manifest();
    let inputs = read_inputs(&m.inputs, &args.inputs)?;
    let price = params
        .job_price(m.cost.flops)
        .and_then(|p| p.checked_mul(u64::from(args.replicas)))
        .context("the job's price overflows")?;
    let max_fee = args.max_fee.unwrap_or(price);
    let tx = sign_request(
        &client,
        &key,
        &chain_id,
        &params,
        model_id,
        inputs,
        args.replicas,
        max_fee,
    )?;
    let job_id = JobId(tx.hash().0);
    submit_tx(&client, &tx, deadline)?;
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

#[allow(clippy::too_many_arguments)]
fn sign_request(
    client: &NodeClient,
    key: &SecretKey,
    chain_id: &ChainId,
    params: &Params,
    model_id: ModelId,
    inputs: Vec<Vec<u8>>,
    replicas: u8,
    max_fee: u64,
) -> Result<SignedTx> {
    let sender = key.public();
    let account = client.get_ok(&format!("/v1/accounts/{sender}"))?;
    let Some(nonce) = account["value"]["nonce"].as_u64() else {
        bail!("account {sender} (the key's) does not exist on this chain: fund it first");
    };
    let body = TxBody::SubmitJob {
        model_id,
        inputs,
        replicas,
        max_fee,
    };
    let probe = SignedTx::sign(chain_id, key, nonce, 0, body.clone())?;
    let fee = params
        .min_fee_for(probe.len())
        .context("the chain's fee parameters overflow")?;
    Ok(SignedTx::sign(chain_id, key, nonce, fee, body)?)
}

/// Polls the job until it closes; returns its executors and the heights
/// it was submitted and closed at.
fn follow(
    client: &NodeClient,
    id: &JobId,
    deadline: Instant,
    progress: &mut impl FnMut(&str),
) -> Result<(Vec<String>, u64, u64)> {
    let path = format!("/v1/jobs/{id}");
    let mut last = String::new();
    loop {
        let a = client.get(&path)?;
        if a.ok() && !a.body["value"].is_null() {
            let job = &a.body["value"];
            let status = job["status"].as_str().unwrap_or("?");
            let slots = job["slots"].as_array().cloned().unwrap_or_default();
            let replicas = job["replicas"].as_u64().unwrap_or(0);
            let committed = slots.iter().filter(|s| !s["commitment"].is_null()).count();
            let revealed = slots.iter().filter(|s| !s["reveal"].is_null()).count();
            let executors: Vec<String> = slots
                .iter()
                .filter_map(|s| s["executor"].as_str().map(str::to_string))
                .collect();
            let line = match status {
                "assigning" => "waiting for the next block to draw executors".to_string(),
                "running" => format!(
                    "executors {}: {committed}/{replicas} committed, {revealed}/{replicas} revealed",
                    executors
                        .iter()
                        .map(|e| short(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "pending" => "optimistic result published (pending): open to challenges \
                              until its window closes"
                    .to_string(),
                "disputed" => format!(
                    "disputed: the results differ; the dispute game decides \
                     (glassbox job show {id})"
                ),
                other => format!("job {other}"),
            };
            if line != last {
                progress(&line);
                last = line;
            }
            let submitted = job["submitted_height"].as_u64().unwrap_or(0);
            match status {
                "final" => {
                    return Ok((
                        executors,
                        submitted,
                        job["closed_height"].as_u64().unwrap_or(0),
                    ));
                }
                "failed" => bail!(
                    "job {id} failed: not enough executors could take it, or every result \
                     lost its dispute; the escrow was refunded"
                ),
                _ => {}
            }
        } else if !(a.status == 404 || a.ok()) {
            bail!("GET {path}: {}", a.error_text());
        }
        if Instant::now() >= deadline {
            bail!("job {id} is not final yet (timeout); follow it with GET {path}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches the job's receipt, waiting while its block is not certified.
fn fetch_receipt(client: &NodeClient, id: &JobId, deadline: Instant) -> Result<Receipt> {
    let path = format!("/v1/jobs/{id}/receipt");
    loop {
        let a = client.get(&path)?;
        if a.ok() {
            return serde_json::from_value(a.body).context("the node's receipt does not parse");
        }
        if a.status != 409 || Instant::now() >= deadline {
            bail!("GET {path}: {}", a.error_text());
        }
        std::thread::sleep(Duration::from_millis(50));
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
    let client = NodeClient::new(&args.node, Duration::from_secs(30))?;
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
fn fetch_genesis(node: &str) -> Result<glassbox_node::genesis::NodeGenesis> {
    let client = NodeClient::new(node, Duration::from_secs(30))?;
    let v: Value = client.get_ok("/v1/genesis")?;
    serde_json::from_value(v).context("the node's genesis does not parse")
}

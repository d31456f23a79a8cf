//! `glassbox receipt verify`: checks a job receipt offline against a
//! network's genesis (docs/jobs.md, "Receipt"), and optionally re-runs the
//! model locally and compares bits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use glassbox_node::consensus::genesis::NodeGenesis;
use glassbox_node::receipt::{MAX_RECEIPT_BYTES, Receipt, Verified};
use glassbox_primitives::{OutputHash, TraceRoot};
use glassbox_runtime::{Limits, Model, Options, Session};
use glassbox_types::ModelId;
use serde_json::json;

use crate::exec::read_limited;

/// `glassbox receipt` arguments.
#[derive(Debug, Args)]
pub(crate) struct ReceiptArgs {
    #[command(subcommand)]
    command: ReceiptCommand,
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Verify a receipt offline: the finality certificate against the
    /// genesis validator set, the job record's inclusion proof, the
    /// quorum's signed commitments and reveals, and the outputs.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The receipt (JSON, as written by `glassbox infer --receipt`).
    receipt: PathBuf,
    /// The network's genesis file (its validator set and chain id).
    #[arg(long)]
    genesis: PathBuf,
    /// Also re-run the model locally and compare outputs and trace root.
    #[arg(long, requires = "model")]
    reexecute: bool,
    /// The model file, for --reexecute.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: ReceiptArgs) -> Result<()> {
    match args.command {
        ReceiptCommand::Verify(v) => verify_cmd(v),
    }
}

/// Reads a receipt file.
pub(crate) fn read_receipt(path: &Path) -> Result<Receipt> {
    let bytes = read_limited(path, MAX_RECEIPT_BYTES)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a receipt", path.display()))
}

/// Reads a genesis file.
pub(crate) fn read_genesis(path: &Path) -> Result<NodeGenesis> {
    glassbox_node::run::read_genesis(path).with_context(|| format!("genesis {}", path.display()))
}

/// Verifies `receipt` against `genesis`.
pub(crate) fn verify(receipt: &Receipt, genesis: &NodeGenesis) -> Result<Verified> {
    let chain_id = genesis
        .ledger
        .chain_id()
        .context("the genesis' ledger part is invalid")?;
    let identity = genesis
        .identity()
        .context("the genesis' validator polynomial is invalid")?;
    Ok(receipt.verify(&chain_id, &identity)?)
}

/// What a re-execution found.
pub(crate) struct Reexecuted {
    pub(crate) output_hash: OutputHash,
    pub(crate) trace_root: TraceRoot,
}

/// Re-runs the receipt's job on `model_path` and compares bit for bit.
pub(crate) fn reexecute(verified: &Verified, model_path: &Path) -> Result<Reexecuted> {
    let job = &verified.job;
    let max = crate::model::max_model_bytes();
    let bytes = read_limited(model_path, max)?;
    let id = ModelId::of(&bytes);
    if id != job.model_id {
        bail!(
            "{} is model {id}, the receipt's job ran {}",
            model_path.display(),
            job.model_id
        );
    }
    let model = Model::load(&bytes, Limits::default())
        .with_context(|| format!("loading {}", model_path.display()))?;
    let session = Session::new(Arc::new(model), Options::default())?;
    // A run that fails at an operator is a result too (docs/disputes.md,
    // "Runs that fail").
    // No referee budget: this checks the result, it defends nothing.
    let r = glassbox_node::disputes::party::job_result(Arc::new(session), &job.inputs, u64::MAX)
        .context("re-executing the receipt's job")?;
    let (output_hash, trace_root) = (r.output_hash, r.trace_root);
    let agreed = job
        .agreed()
        .context("the receipt's job has no agreed result")?;
    if output_hash != agreed.output_hash {
        bail!(
            "re-execution gives output hash {}, the receipt says {}",
            output_hash.to_hex(),
            agreed.output_hash.to_hex()
        );
    }
    if trace_root != agreed.trace_root {
        bail!(
            "re-execution gives trace root {}, the receipt says {}",
            trace_root.to_hex(),
            agreed.trace_root.to_hex()
        );
    }
    Ok(Reexecuted {
        output_hash,
        trace_root,
    })
}

fn verify_cmd(args: VerifyArgs) -> Result<()> {
    let receipt = read_receipt(&args.receipt)?;
    let genesis = read_genesis(&args.genesis)?;
    let verified = verify(&receipt, &genesis)
        .with_context(|| format!("{} does not verify", args.receipt.display()))?;
    let reexecuted = match (&args.model, args.reexecute) {
        (Some(m), true) => Some(reexecute(&verified, m)?),
        _ => None,
    };
    let job = &verified.job;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if args.json {
        let obj = json!({
            "verified": true,
            "job_id": job.id,
            "model_id": job.model_id,
            "replicas": job.replicas,
            "executors": job.slots.iter().map(|s| s.executor.to_string()).collect::<Vec<_>>(),
            "height": verified.height,
            "output_hash": receipt.output_hash,
            "trace_root": receipt.trace_root,
            "reexecuted": reexecuted.is_some(),
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(w, "receipt OK: {}", job.id)?;
        writeln!(w, "  model        {}", job.model_id)?;
        writeln!(
            w,
            "  quorum       {} of {} executors agree bit for bit",
            job.slots.len(),
            job.replicas
        )?;
        writeln!(w, "  output hash  {}", receipt.output_hash)?;
        writeln!(w, "  trace root   {}", receipt.trace_root)?;
        writeln!(
            w,
            "  finalized    block {} (certificate checked against the genesis validator set)",
            verified.height
        )?;
        if let Some(r) = reexecuted {
            writeln!(
                w,
                "  re-executed  locally: same output hash {} and trace root {}",
                &r.output_hash.to_hex()[..16],
                &r.trace_root.to_hex()[..16]
            )?;
        }
    }
    Ok(())
}

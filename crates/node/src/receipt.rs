//! Receipts: a self-contained proof that a job ran and was finalized
//! (docs/jobs.md, "Receipt"), checked offline with nothing but the
//! network's genesis.
//!
//! A receipt carries the job record and an inclusion proof of it under the
//! state root of a block header, that header's finalization certificate
//! (a threshold BLS signature of the validator set over the header's
//! digest), and every signed transaction behind the record: the request,
//! each executor's commitment and reveal. [`Receipt::verify`] checks all of
//! them and names the first field that fails.

use bytes::Bytes;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::Viewable;
use commonware_parallel::Sequential;
use glassbox_ledger::{
    Job, JobExt, JobId, JobStatus, Proof, SignedTx, StateKey, TxBody, commitment, outputs_hash,
    verify_proof,
};
use glassbox_primitives::{ChainId, OutputHash, TensorHash, TraceRoot};
use glassbox_types::{ModelId, PublicKey, hex};
use serde::{Deserialize, Serialize};

use crate::consensus::block::Header;
use crate::consensus::{EPOCH, Finalization, Identity, NAMESPACE, Scheme};

/// The receipt format this build writes and reads.
pub const RECEIPT_FORMAT: &str = "glassbox-receipt/1";

/// Most bytes of a receipt file.
pub const MAX_RECEIPT_BYTES: u64 = 16 << 20;

/// A receipt (JSON; binary fields are lower-case hex of their canonical
/// encodings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The chain id (BLAKE3 of the ledger genesis).
    pub chain_id: String,
    /// `job:<hex>`.
    pub job_id: String,
    /// The model's id.
    pub model_id: String,
    /// The model's manifest id.
    pub manifest_id: String,
    /// Each input's canonical tensor hash.
    pub input_hashes: Vec<String>,
    /// The agreed outputs, each a canonical tensor encoding.
    pub outputs: Vec<String>,
    /// `outputs_hash` of the outputs.
    pub output_hash: String,
    /// The agreed execution trace root.
    pub trace_root: String,
    /// The executors, in slot order.
    pub executors: Vec<String>,
    /// The signed `SubmitJob` transaction.
    pub request_tx: String,
    /// Each executor's signed `CommitResult`, in slot order.
    pub commit_txs: Vec<String>,
    /// Each executor's signed `RevealResult`, in slot order.
    pub reveal_txs: Vec<String>,
    /// The job record (its canonical encoding).
    pub job_record: String,
    /// The height of `block_header`.
    pub height: u64,
    /// The header whose state root holds the job record.
    pub block_header: String,
    /// The header's finalization certificate.
    pub finalization: String,
    /// Inclusion proof of the job record under the header's state root.
    pub state_proof: String,
    /// For a job decided by a dispute (docs/disputes.md): its extension
    /// record, whose winning claim is the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_ext: Option<String>,
    /// Inclusion proof of `job_ext` under the header's state root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proof: Option<String>,
}

/// Why a receipt does not verify; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receipt field `{field}`: {reason}")]
pub struct ReceiptError {
    /// The field (JSON name, with an index for list items).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn fail(field: impl Into<String>, reason: impl Into<String>) -> ReceiptError {
    ReceiptError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, ReceiptError> {
    glassbox_types::unhex_vec(s, MAX_RECEIPT_BYTES as usize).map_err(|e| fail(field, e))
}

fn tx_field(field: &str, s: &str) -> Result<SignedTx, ReceiptError> {
    SignedTx::decode(&unhex(field, s)?).map_err(|e| fail(field, e.to_string()))
}

fn expect_eq(field: &str, got: &str, want: &str) -> Result<(), ReceiptError> {
    if got != want {
        return Err(fail(field, format!("is {got}, the record says {want}")));
    }
    Ok(())
}

/// The claim that won a decided dispute.
fn winning_claim(ext: &JobExt) -> Option<&glassbox_ledger::dispute::Claim> {
    let d = ext.dispute.as_ref()?;
    d.closed_height?;
    d.claims.get(usize::from(d.winner?))
}

/// A final job's result (output hash, trace root): the claim that won its
/// dispute when `ext` holds a decided one, else the reveal every slot
/// agrees on. A one-replica job won by its challenger has a single reveal,
/// the executor's, which lost: only the dispute says what the result is.
/// `None` when neither gives the record's outputs.
pub fn result_of(job: &Job, ext: Option<&JobExt>) -> Option<(OutputHash, TraceRoot)> {
    if let Some(claim) = ext.and_then(winning_claim) {
        return (claim.outputs == job.outputs).then_some((claim.output_hash, claim.trace_root));
    }
    job.agreed().map(|r| (r.output_hash, r.trace_root))
}

/// What a verified receipt establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The job.
    pub job: Job,
    /// The height of the certified block.
    pub height: u64,
    /// Who asked.
    pub requester: PublicKey,
}

impl Receipt {
    /// Builds a receipt from a finalized job record, its proof under
    /// `header`'s state root, the header's certificate and the job's
    /// transactions.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        chain_id: &ChainId,
        job: &Job,
        record: &[u8],
        proof: &Proof,
        header: &Header,
        finalization: &Finalization,
        request: &SignedTx,
        commits: &[SignedTx],
        reveals: &[SignedTx],
        ext: Option<(&[u8], &Proof)>,
    ) -> Receipt {
        let ext_record = ext.and_then(|(record, _)| JobExt::decode(record).ok());
        let agreed = result_of(job, ext_record.as_ref());
        Receipt {
            format: RECEIPT_FORMAT.into(),
            chain_id: chain_id.to_hex(),
            job_id: job.id.to_string(),
            model_id: job.model_id.to_string(),
            manifest_id: job.manifest_id.to_string(),
            input_hashes: job.input_hashes.iter().map(|h| h.to_hex()).collect(),
            outputs: job.outputs.iter().map(|o| hex(o)).collect(),
            output_hash: agreed.map(|r| r.0.to_hex()).unwrap_or_default(),
            trace_root: agreed.map(|r| r.1.to_hex()).unwrap_or_default(),
            executors: job.slots.iter().map(|s| s.executor.to_string()).collect(),
            request_tx: hex(request.encoded()),
            commit_txs: commits.iter().map(|t| hex(t.encoded())).collect(),
            reveal_txs: reveals.iter().map(|t| hex(t.encoded())).collect(),
            job_record: hex(record),
            height: header.height.get(),
            block_header: hex(&header.encode()),
            finalization: hex(&finalization.encode()),
            state_proof: hex(&proof.encode()),
            job_ext: ext.map(|(record, _)| hex(record)),
            ext_proof: ext.map(|(_, proof)| hex(&proof.encode())),
        }
    }

    /// Checks everything against the network's `chain_id` and consensus
    /// `identity` (both from its genesis): the certificate over the header,
    /// the record's proof under the header's state root, the record
    /// (final, every reveal agreeing), the outputs against its hash and
    /// every transaction's signature and content against the record.
    pub fn verify(
        &self,
        chain_id: &ChainId,
        identity: &Identity,
    ) -> Result<Verified, ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(fail(
                "format",
                format!("`{}` is not {RECEIPT_FORMAT}", self.format),
            ));
        }
        expect_eq("chain_id", &self.chain_id, &chain_id.to_hex())?;
        let header = self.certified_header(identity)?;
        let job = self.proven_job(&header)?;
        self.check_summary(&job)?;
        let (output_hash, trace_root) = self.agreed_result(&job, &header)?;
        self.check_outputs(&job, &output_hash, &trace_root)?;
        self.check_request(&job, chain_id)?;
        self.check_slots(&job, chain_id)?;
        Ok(Verified {
            requester: job.requester,
            height: header.height.get(),
            job,
        })
    }

    /// `block_header`, checked to be the block `finalization` certifies
    /// under the genesis validator set `identity`.
    fn certified_header(&self, identity: &Identity) -> Result<Header, ReceiptError> {
        let header_bytes = unhex("block_header", &self.block_header)?;
        let header =
            Header::decode(header_bytes).map_err(|e| fail("block_header", e.to_string()))?;
        if header.height.get() != self.height {
            return Err(fail(
                "height",
                format!(
                    "is {}, the header's is {}",
                    self.height,
                    header.height.get()
                ),
            ));
        }
        let cert_bytes = unhex("finalization", &self.finalization)?;
        let finalization = Finalization::decode(Bytes::from(cert_bytes))
            .map_err(|e| fail("finalization", e.to_string()))?;
        if finalization.proposal.payload != header.digest() {
            return Err(fail(
                "finalization",
                "certifies another block than block_header",
            ));
        }
        if finalization.proposal.round.epoch() != EPOCH
            || finalization.view() != header.context.round.view()
        {
            return Err(fail(
                "finalization",
                "is for another round than the header's",
            ));
        }
        let verifier = Scheme::certificate_verifier(NAMESPACE, *identity);
        if !finalization.verify(&mut rand::rng(), &verifier, &Sequential) {
            return Err(fail(
                "finalization",
                "the signature does not verify against the genesis validator set",
            ));
        }

        Ok(header)
    }

    /// `job_record`, checked to be proven by `state_proof` under the
    /// header's state root.
    fn proven_job(&self, header: &Header) -> Result<Job, ReceiptError> {
        let record = unhex("job_record", &self.job_record)?;
        let job = Job::decode(&record).map_err(|e| fail("job_record", e.to_string()))?;
        let proof_bytes = unhex("state_proof", &self.state_proof)?;
        let proof = Proof::decode(&proof_bytes).map_err(|e| fail("state_proof", e.to_string()))?;
        let key = StateKey::Job(job.id).to_bytes();
        verify_proof(&header.state_root, &key, Some(&record), &proof).map_err(|e| {
            fail(
                "state_proof",
                format!("does not prove job_record under the header's state root: {e}"),
            )
        })?;

        Ok(job)
    }

    /// The summary fields say what the record says; the job is final
    /// with every slot filled.
    fn check_summary(&self, job: &Job) -> Result<(), ReceiptError> {
        expect_eq("job_id", &self.job_id, &job.id.to_string())?;
        expect_eq("model_id", &self.model_id, &job.model_id.to_string())?;
        expect_eq(
            "manifest_id",
            &self.manifest_id,
            &job.manifest_id.to_string(),
        )?;
        let hashes: Vec<String> = job.input_hashes.iter().map(|h| h.to_hex()).collect();
        if self.input_hashes != hashes {
            return Err(fail("input_hashes", "differ from the record's"));
        }
        if job.status != JobStatus::Final {
            return Err(fail(
                "job_record",
                format!("the job is {:?}, not final", job.status),
            ));
        }
        if job.slots.len() != usize::from(job.replicas) {
            return Err(fail("job_record", "fewer slots than replicas"));
        }
        Ok(())
    }

    /// The result ([`result_of`]): the claim that won the job's dispute
    /// (its extension record proven under the same root), or the agreed
    /// reveal when no dispute record is given.
    fn agreed_result(
        &self,
        job: &Job,
        header: &Header,
    ) -> Result<(OutputHash, TraceRoot), ReceiptError> {
        let (Some(ext_hex), Some(proof_hex)) = (&self.job_ext, &self.ext_proof) else {
            return job
                .agreed()
                .map(|r| (r.output_hash, r.trace_root))
                .ok_or_else(|| {
                    fail(
                        "job_ext",
                        "the reveals do not all agree and no dispute record is given",
                    )
                });
        };
        let ext_record = unhex("job_ext", ext_hex)?;
        let ext_proof = Proof::decode(&unhex("ext_proof", proof_hex)?)
            .map_err(|e| fail("ext_proof", e.to_string()))?;
        let key = StateKey::JobExt(job.id).to_bytes();
        verify_proof(&header.state_root, &key, Some(&ext_record), &ext_proof).map_err(|e| {
            fail(
                "ext_proof",
                format!("does not prove job_ext under the header's state root: {e}"),
            )
        })?;
        let ext = JobExt::decode(&ext_record).map_err(|e| fail("job_ext", e.to_string()))?;
        if ext.dispute.is_none() {
            return job
                .agreed()
                .map(|r| (r.output_hash, r.trace_root))
                .ok_or_else(|| fail("job_ext", "the reveals do not all agree and no dispute"));
        }
        let claim = winning_claim(&ext)
            .ok_or_else(|| fail("job_ext", "the dispute has no winning claim"))?;
        if claim.outputs != job.outputs {
            return Err(fail(
                "job_ext",
                "the winning claim's outputs are not the job's",
            ));
        }
        Ok((claim.output_hash, claim.trace_root))
    }

    /// `output_hash`, `trace_root`, `outputs` and `executors` are the
    /// result's and the record's; the outputs hash to `output_hash`.
    fn check_outputs(
        &self,
        job: &Job,
        output_hash: &OutputHash,
        trace_root: &TraceRoot,
    ) -> Result<(), ReceiptError> {
        expect_eq("output_hash", &self.output_hash, &output_hash.to_hex())?;
        expect_eq("trace_root", &self.trace_root, &trace_root.to_hex())?;
        let outputs: Vec<String> = job.outputs.iter().map(|o| hex(o)).collect();
        if self.outputs != outputs {
            return Err(fail("outputs", "differ from the record's"));
        }
        let output_hashes: Vec<TensorHash> =
            job.outputs.iter().map(|o| blake3::hash(o).into()).collect();
        if outputs_hash(&output_hashes) != *output_hash {
            return Err(fail("outputs", "do not hash to output_hash"));
        }
        let executors: Vec<String> = job.slots.iter().map(|s| s.executor.to_string()).collect();
        if self.executors != executors {
            return Err(fail("executors", "differ from the record's slots"));
        }

        Ok(())
    }

    /// `request_tx` is the signed request that created the job.
    fn check_request(&self, job: &Job, chain_id: &ChainId) -> Result<(), ReceiptError> {
        let request = tx_field("request_tx", &self.request_tx)?;
        if request.hash() != job.id.tx() {
            return Err(fail("request_tx", "its hash is not the job id"));
        }
        if request.sender() != &job.requester {
            return Err(fail("request_tx", "its sender is not the job's requester"));
        }
        match request.body() {
            TxBody::SubmitJob {
                model_id,
                inputs,
                replicas,
                ..
            } if model_id == &job.model_id
                && inputs == &job.inputs
                && *replicas == job.replicas => {}
            _ => return Err(fail("request_tx", "its body does not ask for this job")),
        }
        request
            .verify_signature(chain_id)
            .map_err(|e| fail("request_tx", e.to_string()))?;

        Ok(())
    }

    /// Each executor's signed commitment and reveal are the recorded ones,
    /// and each reveal opens its commitment.
    fn check_slots(&self, job: &Job, chain_id: &ChainId) -> Result<(), ReceiptError> {
        if self.commit_txs.len() != job.slots.len() {
            return Err(fail("commit_txs", "one per slot expected"));
        }
        if self.reveal_txs.len() != job.slots.len() {
            return Err(fail("reveal_txs", "one per slot expected"));
        }
        for (i, slot) in job.slots.iter().enumerate() {
            let field = format!("commit_txs[{i}]");
            let c = tx_field(&field, &self.commit_txs[i])?;
            if c.sender() != &slot.executor {
                return Err(fail(&field, "not signed by the slot's executor"));
            }
            match c.body() {
                TxBody::CommitResult {
                    job_id,
                    commitment: value,
                } if job_id == &job.id && Some(*value) == slot.commitment => {}
                _ => return Err(fail(&field, "is not the recorded commitment")),
            }
            c.verify_signature(chain_id)
                .map_err(|e| fail(&field, e.to_string()))?;

            let field = format!("reveal_txs[{i}]");
            let r = tx_field(&field, &self.reveal_txs[i])?;
            if r.sender() != &slot.executor {
                return Err(fail(&field, "not signed by the slot's executor"));
            }
            let reveal = slot
                .reveal
                .ok_or_else(|| fail("job_record", format!("slot {i} has no reveal")))?;
            match r.body() {
                TxBody::RevealResult {
                    job_id,
                    output_hash,
                    trace_root,
                    salt,
                    ..
                } if job_id == &job.id
                    && output_hash == &reveal.output_hash
                    && trace_root == &reveal.trace_root
                    && salt == &reveal.salt => {}
                _ => return Err(fail(&field, "is not the recorded reveal")),
            }
            r.verify_signature(chain_id)
                .map_err(|e| fail(&field, e.to_string()))?;
            if Some(commitment(
                &job.id,
                &slot.executor,
                &reveal.output_hash,
                &reveal.trace_root,
                &reveal.salt,
            )) != slot.commitment
            {
                return Err(fail(&field, "does not open the commitment"));
            }
        }
        Ok(())
    }

    /// The job id.
    pub fn job_id(&self) -> Result<JobId, ReceiptError> {
        self.job_id
            .parse()
            .map_err(|e: glassbox_primitives::ParseError| fail("job_id", e.to_string()))
    }

    /// The model id.
    pub fn model(&self) -> Result<ModelId, ReceiptError> {
        self.model_id
            .parse()
            .map_err(|e: glassbox_types::ParseError| fail("model_id", e.to_string()))
    }
}

//! Inference jobs: the request, executor assignment, commit–reveal, the
//! quorum and its payment (docs/jobs.md).
//!
//! A job is created by a `SubmitJob` transaction, which escrows its price.
//! At the next block the ledger assigns `replicas` distinct executors,
//! stake-weighted, with that block's public randomness. Each executor
//! commits to `H(output hash, trace root, salt)` and, once every slot has
//! committed, reveals; the job is final when all reveals agree bit for bit
//! and disputed otherwise. A slot that misses its deadline is penalized and
//! reassigned.

//!
//! The records, ids and commitments are here; the rules that move a job
//! through its lifecycle (submission, selection, deadlines, settlement) are
//! in `schedule`.

pub(crate) mod schedule;

use glassbox_types::{DimSpec, ManifestId, ModelId, PublicKey, TensorSpec};
use serde::{Deserialize, Serialize};

pub use glassbox_primitives::JobId;
use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::tensor::{self, TensorHeader};
use glassbox_primitives::{Commitment, OutputHash, Salt, TensorHash, TraceRoot, tags};

use crate::error::{DecodeError, ExecutionError};
use crate::limits;
use crate::records::RECORD_VERSION;
use crate::serde_util;

/// Domain of [`commitment`].
pub const COMMITMENT_DOMAIN: &[u8] = tags::COMMITMENT;
/// Domain of [`outputs_hash`].
pub const OUTPUTS_DOMAIN: &[u8] = tags::OUTPUTS;
/// Domain of the executor-selection draw.
pub const SELECTION_DOMAIN: &[u8] = tags::SELECTION;

/// The commitment an executor posts before revealing:
/// `BLAKE3("GBCM1" || job id || executor || output hash || trace root ||
/// salt)`. Binding the executor's key means a copied commitment cannot be
/// revealed by anyone else.
pub fn commitment(
    job: &JobId,
    executor: &PublicKey,
    output_hash: &OutputHash,
    trace_root: &TraceRoot,
    salt: &Salt,
) -> Commitment {
    let mut h = blake3::Hasher::new();
    h.update(COMMITMENT_DOMAIN);
    h.update(job.as_bytes());
    h.update(&executor.to_bytes());
    h.update(output_hash.as_bytes());
    h.update(trace_root.as_bytes());
    h.update(salt.as_bytes());
    h.finalize().into()
}

/// The hash of a run's outputs: `BLAKE3("GBOH1" || count (u32 LE) || each
/// output's canonical tensor hash)`.
pub fn outputs_hash(output_hashes: &[TensorHash]) -> OutputHash {
    let mut h = blake3::Hasher::new();
    h.update(OUTPUTS_DOMAIN);
    h.update(
        &u32::try_from(output_hashes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for o in output_hashes {
        h.update(o.as_bytes());
    }
    h.finalize().into()
}

/// Checks that `bytes` is a canonical tensor encoding and returns its
/// header; the message says what is wrong ([`glassbox_primitives::tensor`]).
pub fn parse_tensor(bytes: &[u8]) -> Result<TensorHeader, String> {
    tensor::parse(bytes).map(|(header, _)| header)
}

/// Checks a claimed result's outputs against the manifest's output specs
/// ([`check_tensors`]), except that no outputs at all is a claim that the
/// run fails (a model has at least one output; docs/disputes.md, "Runs
/// that fail"). Returns their hashes (none for a failure).
pub(crate) fn check_result_outputs(
    tensors: &[Vec<u8>],
    specs: &[TensorSpec],
) -> Result<Vec<TensorHash>, ExecutionError> {
    if tensors.is_empty() && !crate::switches::is_off(crate::switches::Fix::FailureClaims) {
        return Ok(Vec::new());
    }
    check_tensors("output", tensors, specs)
}

/// Checks tensors against a manifest's declared specs: the count, each
/// dtype and each fixed dimension (a symbolic dimension takes any size,
/// the same size wherever the same symbol appears). `what` is `input` or
/// `output`.
pub(crate) fn check_tensors(
    what: &'static str,
    tensors: &[Vec<u8>],
    specs: &[TensorSpec],
) -> Result<Vec<TensorHash>, ExecutionError> {
    let bad = |index: usize, reason: String| ExecutionError::BadTensor {
        what,
        index,
        reason,
    };
    if tensors.len() != specs.len() {
        return Err(ExecutionError::TensorCount {
            what,
            got: tensors.len(),
            expected: specs.len(),
        });
    }
    let mut symbols: Vec<(&str, u64)> = Vec::new();
    let mut hashes = Vec::with_capacity(tensors.len());
    for (i, (bytes, spec)) in tensors.iter().zip(specs).enumerate() {
        let h = parse_tensor(bytes).map_err(|r| bad(i, r))?;
        if let Some(dtype) = &spec.dtype
            && dtype != h.dtype_name()
        {
            return Err(bad(
                i,
                format!(
                    "`{}` is {}, the model takes {dtype}",
                    spec.name,
                    h.dtype_name()
                ),
            ));
        }
        if let Some(dims) = &spec.shape {
            if dims.len() != h.shape.len() {
                return Err(bad(
                    i,
                    format!(
                        "`{}` has shape {:?}, the model takes rank {}",
                        spec.name,
                        h.shape,
                        dims.len()
                    ),
                ));
            }
            for (axis, (d, got)) in dims.iter().zip(&h.shape).enumerate() {
                match d {
                    DimSpec::Fixed(want) if want != got => {
                        return Err(bad(
                            i,
                            format!(
                                "`{}` has shape {:?}: dimension {axis} is {got}, the model takes {want}",
                                spec.name, h.shape
                            ),
                        ));
                    }
                    DimSpec::Symbol(s) if !s.is_empty() => {
                        match symbols.iter().find(|(name, _)| name == s) {
                            Some((_, bound)) if bound != got => {
                                return Err(bad(
                                    i,
                                    format!(
                                        "`{}` dimension {axis} ({s}) is {got}, but {s} is {bound} elsewhere",
                                        spec.name
                                    ),
                                ));
                            }
                            Some(_) => {}
                            None => symbols.push((s, *got)),
                        }
                    }
                    _ => {}
                }
            }
        }
        hashes.push(blake3::hash(bytes).into());
    }
    Ok(hashes)
}

/// A lower bound of the bytes of the canonical encodings of a job's
/// outputs, from the manifest's declared output specs and the sizes the
/// (checked) inputs bind its symbolic dimensions to: exact for an output
/// whose dtype and every dimension are known, its header alone otherwise.
/// Admission refuses a job whose outputs cannot fit a reveal, so no honest
/// executor is drawn for a job it cannot answer (issue #25, P2).
pub(crate) fn declared_output_bytes(
    inputs: &[Vec<u8>],
    in_specs: &[TensorSpec],
    out_specs: &[TensorSpec],
) -> u64 {
    let mut symbols: Vec<(&str, u64)> = Vec::new();
    for (bytes, spec) in inputs.iter().zip(in_specs) {
        let (Ok(h), Some(dims)) = (parse_tensor(bytes), &spec.shape) else {
            continue;
        };
        for (d, got) in dims.iter().zip(&h.shape) {
            if let DimSpec::Symbol(s) = d
                && !s.is_empty()
                && !symbols.iter().any(|(n, _)| n == s)
            {
                symbols.push((s, *got));
            }
        }
    }
    out_specs.iter().fold(0u64, |total, spec| {
        let rank = spec.shape.as_ref().map_or(0, Vec::len) as u64;
        let header = 9 + 8 * rank;
        let elements = spec.shape.as_ref().and_then(|dims| {
            dims.iter().try_fold(1u64, |acc, d| {
                let n = match d {
                    DimSpec::Fixed(n) => Some(*n),
                    DimSpec::Symbol(s) => symbols
                        .iter()
                        .find(|(name, _)| !s.is_empty() && name == s)
                        .map(|(_, n)| *n),
                }?;
                Some(acc.saturating_mul(n))
            })
        });
        let size = spec
            .dtype
            .as_deref()
            .and_then(tensor::dtype_code)
            .and_then(tensor::dtype_size);
        let bytes = match (elements, size) {
            (Some(e), Some(z)) => header.saturating_add(e.saturating_mul(z)),
            _ => header,
        };
        total.saturating_add(bytes)
    })
}

/// Where a job is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Submitted; executors are assigned at the next block.
    Assigning,
    /// Executors are committing and revealing.
    Running,
    /// Every reveal agreed; the executors were paid.
    Final,
    /// Reveals disagree, or a challenger contests the optimistic result:
    /// the dispute game decides (stakes locked, escrow held).
    Disputed,
    /// Could not be served (no executors left); the escrow was refunded.
    Failed,
    /// An optimistic (`replicas = 1`) result, open to challenges until its
    /// window ends (docs/disputes.md).
    Pending,
}

impl JobStatus {
    fn code(self) -> u8 {
        match self {
            JobStatus::Assigning => 0,
            JobStatus::Running => 1,
            JobStatus::Final => 2,
            JobStatus::Disputed => 3,
            JobStatus::Failed => 4,
            JobStatus::Pending => 5,
        }
    }

    fn from_code(c: u8) -> Option<JobStatus> {
        Some(match c {
            0 => JobStatus::Assigning,
            1 => JobStatus::Running,
            2 => JobStatus::Final,
            3 => JobStatus::Disputed,
            4 => JobStatus::Failed,
            5 => JobStatus::Pending,
            _ => return None,
        })
    }

    /// Whether the job can still change (assigning or running).
    pub fn is_open(self) -> bool {
        matches!(self, JobStatus::Assigning | JobStatus::Running)
    }
}

/// What an executor revealed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reveal {
    /// [`outputs_hash`] of its outputs.
    pub output_hash: OutputHash,
    /// Its execution trace root.
    pub trace_root: TraceRoot,
    /// The salt of its commitment.
    pub salt: Salt,
    /// The height of the block that included the reveal.
    pub height: u64,
}

/// One of a job's `replicas` executor positions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// The assigned executor.
    #[serde(with = "serde_util::public_key")]
    pub executor: PublicKey,
    /// The height of the block that assigned it.
    pub assigned_height: u64,
    /// The last height at which its next step (commit, or reveal once every
    /// slot has committed) is accepted; `None` while it waits for the other
    /// slots to commit, or once it has revealed.
    pub deadline: Option<u64>,
    /// Its commitment, once posted (`null` until then; the field is
    /// required, as every field of a slot is).
    #[serde(deserialize_with = "serde_util::required")]
    pub commitment: Option<Commitment>,
    /// Its reveal, once posted.
    pub reveal: Option<Reveal>,
}

/// An inference job record (stored under `0x06 || job id`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Its id (the submitting transaction's hash).
    pub id: JobId,
    /// Who asked and paid.
    #[serde(with = "serde_util::public_key")]
    pub requester: PublicKey,
    /// The model to run.
    pub model_id: ModelId,
    /// The model's manifest at submission.
    pub manifest_id: ManifestId,
    /// The inputs, each a canonical tensor encoding.
    #[serde(with = "serde_util::hex_vec")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub inputs: Vec<Vec<u8>>,
    /// BLAKE3 of each input's encoding (the runtime's tensor hashes).
    pub input_hashes: Vec<TensorHash>,
    /// How many executors must agree.
    pub replicas: u8,
    /// What each agreeing executor is paid.
    pub price_per_replica: u64,
    /// What is still held for the job.
    pub escrow: u64,
    /// The height of the submitting block.
    pub submitted_height: u64,
    /// Where it is.
    pub status: JobStatus,
    /// The executor positions (empty while assigning).
    pub slots: Vec<Slot>,
    /// Executors that missed a deadline on this job (never reassigned to
    /// it).
    #[serde(with = "serde_util::public_key_vec")]
    pub missed: Vec<PublicKey>,
    /// The agreed outputs (canonical tensor encodings), once final.
    #[serde(with = "serde_util::hex_vec")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub outputs: Vec<Vec<u8>>,
    /// The height at which it became final, disputed or failed.
    pub closed_height: Option<u64>,
}

impl Job {
    /// Whether every slot has committed (reveals are accepted).
    pub fn all_committed(&self) -> bool {
        self.slots.len() == usize::from(self.replicas)
            && self.slots.iter().all(|s| s.commitment.is_some())
    }

    /// The slot of `executor`, if assigned.
    pub fn slot_of(&self, executor: &PublicKey) -> Option<(usize, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .find(|(_, s)| &s.executor == executor)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots.iter().filter_map(|s| s.deadline).min()
    }

    /// The agreed reveal when every slot revealed the same output hash and
    /// trace root.
    pub fn agreed(&self) -> Option<Reveal> {
        let first = self.slots.first()?.reveal?;
        self.slots
            .iter()
            .all(|s| {
                s.reveal.is_some_and(|r| {
                    r.output_hash == first.output_hash && r.trace_root == first.trace_root
                })
            })
            .then_some(first)
    }

    /// The canonical encoding (docs/jobs.md, "Job record").
    pub fn encode(&self) -> Vec<u8> {
        let io: usize = self.inputs.iter().chain(&self.outputs).map(Vec::len).sum();
        let mut w = Writer::with_capacity(256 + io + 200 * self.slots.len());
        w.u8(RECORD_VERSION);
        w.bytes(self.id.as_bytes());
        self.requester.write_to(&mut w);
        w.bytes(self.model_id.as_bytes());
        w.bytes(self.manifest_id.as_bytes());
        w.len(self.inputs.len());
        for t in &self.inputs {
            w.blob(t);
        }
        w.u8(self.replicas);
        w.u64(self.price_per_replica);
        w.u64(self.escrow);
        w.u64(self.submitted_height);
        w.u8(self.status.code());
        w.len(self.slots.len());
        for s in &self.slots {
            s.executor.write_to(&mut w);
            w.u64(s.assigned_height);
            w.option(s.deadline.as_ref(), |w, v| w.u64(*v));
            w.option(s.commitment.as_ref(), |w, c| w.digest(c));
            w.option(s.reveal.as_ref(), |w, r| {
                w.digest(&r.output_hash);
                w.digest(&r.trace_root);
                w.digest(&r.salt);
                w.u64(r.height);
            });
        }
        w.len(self.missed.len());
        for k in &self.missed {
            k.write_to(&mut w);
        }
        w.len(self.outputs.len());
        for t in &self.outputs {
            w.blob(t);
        }
        w.option(self.closed_height.as_ref(), |w, v| w.u64(*v));
        w.into_bytes()
    }

    /// Decodes [`Job::encode`]'s form, checking every count and length
    /// against its limit and every tensor's encoding (input hashes are
    /// recomputed).
    pub fn decode(bytes: &[u8]) -> Result<Job, DecodeError> {
        let mut r = Reader::new("job record", bytes);
        r.version(RECORD_VERSION)?;
        let id = JobId::from_bytes(r.array()?);
        let requester = PublicKey::read_from(&mut r, "requester")?;
        let model_id = ModelId::from_bytes(r.array()?);
        let manifest_id = ManifestId::from_bytes(r.array()?);
        let inputs = read_tensors(&mut r, "inputs")?;
        let input_hashes = inputs.iter().map(|t| blake3::hash(t).into()).collect();
        let at = r.pos();
        let replicas = r.u8()?;
        if replicas == 0 || usize::from(replicas) > limits::HARD_MAX_JOB_REPLICAS {
            return Err(r.err_at(at, format!("replicas {replicas} is out of range")));
        }
        let price_per_replica = r.u64()?;
        let escrow = r.u64()?;
        let submitted_height = r.u64()?;
        let at = r.pos();
        let status =
            JobStatus::from_code(r.u8()?).ok_or_else(|| r.err_at(at, "unknown job status"))?;
        let n = r.len("slots", usize::from(replicas))?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let executor = PublicKey::read_from(&mut r, "executor")?;
            let assigned_height = r.u64()?;
            let deadline = r.option("deadline", |r| r.u64())?;
            let commitment = r.option("commitment", |r| r.digest())?;
            let reveal = r.option("reveal", |r| {
                Ok(Reveal {
                    output_hash: r.digest()?,
                    trace_root: r.digest()?,
                    salt: r.digest()?,
                    height: r.u64()?,
                })
            })?;
            slots.push(Slot {
                executor,
                assigned_height,
                deadline,
                commitment,
                reveal,
            });
        }
        let n = r.len("missed executors", limits::MAX_JOB_MISSES)?;
        let mut missed = Vec::with_capacity(n);
        for _ in 0..n {
            missed.push(PublicKey::read_from(&mut r, "missed executor")?);
        }
        let outputs = read_tensors(&mut r, "outputs")?;
        let closed_height = r.option("closed height", |r| r.u64())?;
        r.finish()?;
        Ok(Job {
            id,
            requester,
            model_id,
            manifest_id,
            inputs,
            input_hashes,
            replicas,
            price_per_replica,
            escrow,
            submitted_height,
            status,
            slots,
            missed,
            outputs,
            closed_height,
        })
    }
}

/// Tensors (count, then each a length-prefixed canonical encoding), at most
/// [`limits::MAX_JOB_TENSORS`] of them and [`limits::HARD_MAX_JOB_IO_BYTES`]
/// in all.
pub(crate) fn read_tensors(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = r.len(field, limits::MAX_JOB_TENSORS)?;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut total = 0usize;
    for i in 0..n {
        let at = r.pos();
        let b = r.blob(field, limits::HARD_MAX_JOB_IO_BYTES)?;
        total = total.saturating_add(b.len());
        if total > limits::HARD_MAX_JOB_IO_BYTES {
            return Err(r.err_at(
                at,
                format!(
                    "{field}: over {} bytes in all",
                    limits::HARD_MAX_JOB_IO_BYTES
                ),
            ));
        }
        parse_tensor(b).map_err(|e| r.err_at(at, format!("{field}[{i}]: {e}")))?;
        out.push(b.to_vec());
    }
    Ok(out)
}

pub(crate) fn write_tensors(w: &mut Writer, tensors: &[Vec<u8>]) {
    w.len(tensors.len());
    for t in tensors {
        w.blob(t);
    }
}

//! The executor role (docs/jobs.md, "Executor"): a node whose key owns a
//! registered executor watches the finalized state for job slots assigned
//! to it, fetches the model from any peer holding it (verified chunks),
//! runs it on the deterministic runtime, and answers with commit–reveal
//! transactions through its own mempool (and so through gossip).
//!
//! A result is on disk ([`journal`], fsynced) before the commitment to it
//! is sent, and kept until the job closes, so a node killed between its
//! commit and its reveal reveals as soon as it is back. The salt is derived
//! from the executor's key and the job ([`salt_for`]) and the run is
//! deterministic, so a result lost anyway (a damaged file) is run again and
//! still opens the commitment. That matters: a committed slot that never
//! reveals while another slot of the job did forfeits its whole stake
//! (docs/jobs.md, "Deadlines": a withheld reveal is how a cheater would
//! dodge a dispute).
//!
//! `fetch` downloads a model from peers in verified slices.

pub mod fetch;
pub mod journal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glassbox_ledger::{
    AdmissionError, Job, JobExt, JobId, JobStatus, SignedTx, State, TxBody, TxError, commitment,
};
use glassbox_primitives::{Commitment, OutputHash, Salt, TraceRoot};
use glassbox_runtime::{Limits, Model, Options, Session, formats};
use glassbox_store::BlobStore;
use glassbox_types::{ModelId, PublicKey, SecretKey};
use tracing::{debug, info, warn};

use crate::chain::Chain;
use crate::chain::mempool::MempoolError;
use crate::disputes::party::{Party, job_result};
use crate::executor::fetch::{FetchOptions, fetch_blob};
use crate::executor::journal::{Journal, Stored};

/// What an executor needs besides the chain.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// The longest wait for a finalized block before the state is checked
    /// anyway, in ms (new blocks wake the executor at once).
    pub poll_ms: u64,
    /// Runtime threads per model run.
    pub threads: usize,
    /// Blocks to wait for a sent commitment or reveal to land before
    /// sending it again with a fresh nonce.
    pub resend_after_blocks: u64,
    /// Most results held between commit and reveal.
    pub max_pending_results: usize,
    /// Most loaded models kept in memory.
    pub max_sessions: usize,
    /// Blob downloads.
    pub fetch: FetchOptions,
    /// Extra nodes to fetch models from (base URLs), besides every
    /// registered executor's endpoint.
    pub blob_peers: Vec<String>,
    /// This node's own API, never asked for a blob it lacks.
    pub own_endpoint: Option<String>,
    /// The fee of each commit and reveal; 0 picks the ledger's minimum for
    /// the transaction's size.
    pub fee: u64,
    /// Where results are written before their commitments are sent
    /// (`<data>/executor`); `None` keeps them in memory only, and a
    /// restarted node runs its committed jobs again.
    pub results_dir: Option<PathBuf>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            poll_ms: 100,
            threads: 1,
            resend_after_blocks: 20,
            max_pending_results: 4096,
            max_sessions: 8,
            fetch: FetchOptions::default(),
            blob_peers: Vec::new(),
            own_endpoint: None,
            fee: 0,
            results_dir: None,
        }
    }
}

/// How an audit was left ([`Executor::disputes`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audit {
    /// The pending, unchallenged result agreed with this run: audited again
    /// only if it comes under challenge.
    Agreed,
    /// Declined: a dispute could not referee the model.
    Declined,
    /// A challenge (or an entry into the dispute) was sent at this height:
    /// sent again after `resend_after_blocks` while it has not landed.
    Entered { at_height: u64 },
}

/// Domain of [`salt_for`].
const SALT_DOMAIN: &[u8] = b"glassbox.executor.salt.v1";

/// The salt of this executor's commitment to `job`: BLAKE3 of its ed25519
/// signature over the domain and the job id. Ed25519 signatures are
/// deterministic (RFC 8032), so the same key gives the same salt after a
/// restart; without the key nobody can compute it, so the commitment still
/// hides the result until the reveal.
fn salt_for(key: &SecretKey, job: &JobId) -> Salt {
    let mut message = SALT_DOMAIN.to_vec();
    message.extend_from_slice(job.as_bytes());
    let signature = key.sign(&message);
    let mut h = blake3::Hasher::new();
    h.update(SALT_DOMAIN);
    h.update(signature.as_bytes());
    Salt::from_bytes(*h.finalize().as_bytes())
}

/// A computed result, kept from the commit to the reveal.
#[derive(Clone)]
struct Prepared {
    outputs: Vec<Vec<u8>>,
    output_hash: OutputHash,
    trace_root: TraceRoot,
    salt: Salt,
}

/// Where a slot's answer stands locally.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    Commit { at_height: u64 },
    Reveal { at_height: u64 },
}

/// The executor's loop state.
pub struct Executor {
    chain: Arc<Chain>,
    key: SecretKey,
    me: PublicKey,
    blobs: BlobStore,
    cfg: ExecutorConfig,
    results: HashMap<JobId, Prepared>,
    /// The results on disk (with `cfg.results_dir`).
    journal: Option<Arc<Mutex<Journal>>>,
    /// Results whose write failed: not committed to until a write of
    /// them succeeds (tried again each pass, without running the job).
    unsaved: Vec<JobId>,
    /// Jobs this executor cannot answer (its run failed, or its result
    /// could not be revealed): not run again while they stay open.
    declined: std::collections::HashSet<JobId>,
    sent: HashMap<JobId, Sent>,
    sessions: Vec<(ModelId, Arc<Session>)>,
    next_nonce: u64,
    last_height: u64,
    /// Its runs of jobs in dispute (at most [`MAX_PARTIES`]).
    parties: HashMap<JobId, Arc<Party>>,
    /// The last dispute move sent per job: (the move's position, height).
    moves: HashMap<JobId, (MovePos, u64)>,
    /// Results this executor audited: when, and how it left it.
    audited: HashMap<JobId, Audit>,
    /// The height its last heartbeat (resuming it after a missed slot) was
    /// sent at.
    heartbeat_at: Option<u64>,
}

/// Longest a pass holds computed commitments before writing their results
/// and sending them.
const FLUSH_AFTER: Duration = Duration::from_millis(250);

/// A heartbeat waits until the node is at most this many blocks behind
/// the network's finalized tip.
const HEARTBEAT_MAX_LAG_BLOCKS: u64 = 4;

/// Most job runs kept for disputes and audits.
const MAX_PARTIES: usize = 8;

/// Where a game stands when a move is sent: (verdicts so far, rounds,
/// openings, whether this side has moved this round): a new position asks
/// for a new move.
type MovePos = (usize, u32, usize, bool);

/// Why a job could not be computed (logged; the slot then misses its
/// deadline).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The model is not published (cannot happen for an assigned job).
    #[error("model {0} is not published")]
    UnknownModel(ModelId),
    /// No peer could serve the model.
    #[error("fetching model {model}: {reason}")]
    Fetch {
        /// The model.
        model: ModelId,
        /// Why.
        reason: String,
    },
    /// The blob store failed.
    #[error("blob store: {0}")]
    Store(String),
    /// The runtime refused the model or inputs.
    #[error("runtime: {0}")]
    Runtime(String),
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("owner", &self.me)
            .field("pending_results", &self.results.len())
            .finish()
    }
}

impl Executor {
    /// An executor for `key` over `chain`, keeping models in `blobs`.
    pub fn new(chain: Arc<Chain>, key: SecretKey, blobs: BlobStore, cfg: ExecutorConfig) -> Self {
        let me = key.public();
        Executor {
            chain,
            key,
            me,
            blobs,
            cfg,
            results: HashMap::new(),
            journal: None,
            unsaved: Vec::new(),
            declined: std::collections::HashSet::new(),
            sent: HashMap::new(),
            sessions: Vec::new(),
            next_nonce: 0,
            last_height: 0,
            parties: HashMap::new(),
            moves: HashMap::new(),
            audited: HashMap::new(),
            heartbeat_at: None,
        }
    }

    /// The executor's owner key.
    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// Runs until the task is dropped.
    pub async fn run(mut self) {
        info!(executor = %self.me, "executor started");
        let mut finalized = self.chain.watch_finalized();
        loop {
            // Wake at each finalized block, or after `poll_ms` at the latest
            // (a resend may be due without a new block).
            let _ =
                tokio::time::timeout(Duration::from_millis(self.cfg.poll_ms), finalized.changed())
                    .await;
            if !self.chain.is_ready() {
                continue;
            }
            let state = self.chain.finalized_state();
            if state.height() == self.last_height {
                continue;
            }
            self.last_height = state.height();
            self.step(&state).await;
        }
    }

    /// One pass over the jobs of `state`.
    async fn step(&mut self, state: &State) {
        if let Some(a) = state.account(&self.me) {
            self.next_nonce = self.next_nonce.max(a.nonce);
        }
        self.heartbeat(state);
        self.disputes(state).await;
        let mine: Vec<Job> = state
            .open_jobs()
            .filter(|j| j.status == JobStatus::Running && j.slot_of(&self.me).is_some())
            .cloned()
            .collect();
        // Forget jobs that are no longer ours and open.
        self.results
            .retain(|id, _| mine.iter().any(|j| &j.id == id));
        if let Some(Ok(mut journal)) = self.journal.as_ref().map(|j| j.lock()) {
            for e in journal.retain(|id| self.results.contains_key(id)) {
                warn!(error = %e, "cannot remove a results file");
            }
        }
        // Commitments go out after the results they bind are on disk.
        let mut commits: Vec<(JobId, Commitment)> = Vec::new();
        let mut fresh: Vec<JobId> = Vec::new();
        let mut last_flush = std::time::Instant::now();
        self.sent.retain(|id, _| mine.iter().any(|j| &j.id == id));
        self.declined.retain(|id| mine.iter().any(|j| &j.id == id));
        for job in mine {
            let Some((_, slot)) = job.slot_of(&self.me) else {
                continue;
            };
            let slot = slot.clone();
            let height = state.height();
            if slot.commitment.is_none() {
                if let Some(Sent::Commit { at_height }) = self.sent.get(&job.id)
                    && height < at_height.saturating_add(self.cfg.resend_after_blocks)
                {
                    continue;
                }
                if !self.results.contains_key(&job.id) {
                    if self.declined.contains(&job.id) {
                        continue;
                    }
                    if self.results.len() >= self.cfg.max_pending_results {
                        warn!(job = %job.id, "too many pending results; skipping");
                        continue;
                    }
                    match self.compute(state, &job).await {
                        Ok(p) => {
                            self.results.insert(job.id, p);
                            fresh.push(job.id);
                        }
                        // A run or a result that fails fails again (it is
                        // deterministic): declined; a fetch is retried.
                        Err(e @ ExecError::Runtime(_)) => {
                            warn!(job = %job.id, error = %e, "cannot answer the job; declining it");
                            self.declined.insert(job.id);
                            continue;
                        }
                        Err(e) => {
                            warn!(job = %job.id, error = %e, "cannot run the job");
                            continue;
                        }
                    }
                }
                let Some(p) = self.results.get(&job.id).cloned() else {
                    continue;
                };
                let c = commitment(&job.id, &self.me, &p.output_hash, &p.trace_root, &p.salt);
                commits.push((job.id, c));
                // Many runs in one pass: the first results do not wait for
                // the last (one fsync per FLUSH_AFTER at most).
                if last_flush.elapsed() >= FLUSH_AFTER {
                    self.flush(state, &mut commits, &mut fresh).await;
                    last_flush = std::time::Instant::now();
                }
            } else if slot.reveal.is_none() && job.all_committed() {
                if let Some(Sent::Reveal { at_height }) = self.sent.get(&job.id)
                    && height < at_height.saturating_add(self.cfg.resend_after_blocks)
                {
                    continue;
                }
                // A result read back from disk must open the commitment
                // on chain; one that does not is run again.
                if self.results.get(&job.id).is_some_and(|p| {
                    slot.commitment
                        != Some(commitment(
                            &job.id,
                            &self.me,
                            &p.output_hash,
                            &p.trace_root,
                            &p.salt,
                        ))
                }) {
                    warn!(job = %job.id, "the kept result does not open the commitment; running the job again");
                    self.results.remove(&job.id);
                }
                if !self.results.contains_key(&job.id) {
                    // Committed before a restart: the same run and salt
                    // give the same commitment.
                    match self.compute(state, &job).await {
                        Ok(p)
                            if slot.commitment
                                == Some(commitment(
                                    &job.id,
                                    &self.me,
                                    &p.output_hash,
                                    &p.trace_root,
                                    &p.salt,
                                )) =>
                        {
                            info!(job = %job.id, "recomputed a committed result after a restart");
                            self.results.insert(job.id, p);
                            fresh.push(job.id);
                        }
                        Ok(_) => {
                            warn!(job = %job.id, "the recomputed result does not open the commitment; cannot reveal");
                            continue;
                        }
                        Err(e) => {
                            warn!(job = %job.id, error = %e, "cannot recompute a committed result");
                            continue;
                        }
                    }
                }
                let Some(p) = self.results.get(&job.id).cloned() else {
                    continue;
                };
                let body = TxBody::RevealResult {
                    job_id: job.id,
                    output_hash: p.output_hash,
                    trace_root: p.trace_root,
                    salt: p.salt,
                    outputs: p.outputs.clone(),
                };
                if self.send(state, body) {
                    self.sent.insert(job.id, Sent::Reveal { at_height: height });
                    debug!(job = %job.id, "revealed");
                }
            }
        }
        self.flush(state, &mut commits, &mut fresh).await;
    }

    /// Writes the results of `fresh` (and of earlier failed writes), then
    /// sends `commits`. Never commits to a result a crash could lose: while
    /// its write fails the slot waits, and at worst misses its commit
    /// deadline (a miss penalty, not the stake).
    async fn flush(
        &mut self,
        state: &State,
        commits: &mut Vec<(JobId, Commitment)>,
        fresh: &mut Vec<JobId>,
    ) {
        let mut batch = std::mem::take(fresh);
        let mut unsaved = std::mem::take(&mut self.unsaved);
        unsaved.retain(|id| self.results.contains_key(id) && !batch.contains(id));
        batch.extend(unsaved);
        if !self.persist(&batch).await {
            commits.retain(|(id, _)| !batch.contains(id));
            self.unsaved = batch;
        }
        let height = state.height();
        for (job_id, commitment) in commits.drain(..) {
            if self.send(state, TxBody::CommitResult { job_id, commitment }) {
                self.sent.insert(job_id, Sent::Commit { at_height: height });
                debug!(job = %job_id, "committed");
            }
        }
    }

    /// Opens `cfg.results_dir` and reads back the results a previous run
    /// of this node left there (before [`Executor::run`]); without a
    /// results directory, results stay in memory only.
    pub fn open_results(&mut self) -> Result<(), journal::JournalError> {
        let Some(dir) = self.cfg.results_dir.clone() else {
            return Ok(());
        };
        let (journal, stored, problems) = Journal::open(&dir)?;
        for e in problems {
            warn!(error = %e, "a results file was unreadable and is removed; its jobs run again");
        }
        if !stored.is_empty() {
            info!(
                results = stored.len(),
                "read back the results kept before a restart"
            );
        }
        for s in stored {
            let salt = salt_for(&self.key, &s.job);
            self.results.insert(
                s.job,
                Prepared {
                    outputs: s.outputs,
                    output_hash: s.output_hash,
                    trace_root: s.trace_root,
                    salt,
                },
            );
        }
        self.journal = Some(Arc::new(Mutex::new(journal)));
        Ok(())
    }

    /// Writes the results of `jobs` durably in one batch; false when that
    /// failed (they must not be committed to).
    async fn persist(&mut self, jobs: &[JobId]) -> bool {
        if jobs.is_empty() {
            return true;
        }
        let Some(journal) = self.journal.clone() else {
            // No results directory: in memory only, by configuration.
            return true;
        };
        let batch: Vec<Stored> = jobs
            .iter()
            .filter_map(|id| {
                self.results.get(id).map(|p| Stored {
                    job: *id,
                    outputs: p.outputs.clone(),
                    output_hash: p.output_hash,
                    trace_root: p.trace_root,
                })
            })
            .collect();
        let written = tokio::task::spawn_blocking(move || {
            journal
                .lock()
                .map_err(|_| "an earlier write panicked".to_string())?
                .write(&batch)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the write panicked: {e}")));
        if let Err(e) = written {
            warn!(error = %e, results = jobs.len(), "cannot store results durably; not committing to them");
            return false;
        }
        true
    }

    /// Resumes this executor when a missed slot paused it (docs/jobs.md,
    /// "Liveness"): a `Resume`, sent again after `resend_after_blocks`
    /// while it has not landed. A node that runs is alive; one that is dead
    /// sends nothing and is not drawn.
    fn heartbeat(&mut self, state: &State) {
        let Some(e) = state.executor(&self.me) else {
            return;
        };
        let Some(paused) = e.paused_height.filter(|_| e.is_active()) else {
            self.heartbeat_at = None;
            return;
        };
        let height = state.height();
        // A node still catching up would send one per replayed stretch of
        // blocks, with nonces from the past.
        if self.chain.network_height() > height.saturating_add(HEARTBEAT_MAX_LAG_BLOCKS) {
            return;
        }
        if self
            .heartbeat_at
            .is_some_and(|at| height < at.saturating_add(self.cfg.resend_after_blocks))
        {
            return;
        }
        if self.send(state, TxBody::Resume) {
            info!(
                paused_height = paused,
                "paused after a missed slot; sent a heartbeat to resume"
            );
            self.heartbeat_at = Some(height);
        }
    }

    /// Plays this executor's side of every dispute it is in, and audits the
    /// pending results it was drawn for (challenging a wrong one).
    async fn disputes(&mut self, state: &State) {
        let height = state.height();
        let live: Vec<(JobId, JobExt)> = state
            .live_job_exts()
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        self.parties
            .retain(|id, _| live.iter().any(|(j, _)| j == id));
        self.moves.retain(|id, _| live.iter().any(|(j, _)| j == id));
        self.audited
            .retain(|id, _| live.iter().any(|(j, _)| j == id));
        for (id, ext) in live {
            let Some(job) = state.job(&id) else { continue };
            let in_game = ext
                .dispute
                .as_ref()
                .filter(|d| d.game.is_some())
                .and_then(|d| d.claim_of(&self.me))
                .is_some();
            // A drawn auditor re-runs a pending result, or one already
            // under challenge (a challenge must not pre-empt the audit).
            let challenged = job.status == JobStatus::Disputed
                && ext
                    .dispute
                    .as_ref()
                    .is_some_and(|d| d.closed_height.is_none() && d.claim_of(&self.me).is_none());
            // Audited again when a result it agreed with comes under
            // challenge, or when its challenge has not landed after
            // `resend_after_blocks` (refused, dropped, or out-bid).
            let again = match self.audited.get(&id) {
                None => true,
                Some(Audit::Agreed) => challenged,
                Some(Audit::Declined) => false,
                Some(Audit::Entered { at_height }) => {
                    height >= at_height.saturating_add(self.cfg.resend_after_blocks)
                }
            };
            let auditing = (job.status == JobStatus::Pending || challenged)
                && ext.auditor == Some(self.me)
                && again;
            if !in_game && !auditing {
                continue;
            }
            let party = match self.party(state, &job).await {
                Ok(p) => p,
                Err(e) => {
                    warn!(job = %id, error = %e, "cannot run the disputed job");
                    // An audit it cannot run (such as a failure the referee
                    // could not check) is declined once, not retried every
                    // block.
                    if auditing {
                        self.audited.insert(id, Audit::Declined);
                    }
                    continue;
                }
            };
            if auditing {
                if let Err(e) = crate::disputes::referee::refereeable(
                    party.session().model(),
                    state.params().max_tx_bytes,
                ) {
                    warn!(job = %id, error = %e, "not auditing: a dispute could not referee the model");
                    self.audited.insert(id, Audit::Declined);
                    continue;
                }
                let Some(reveal) = job.slots.first().and_then(|s| s.reveal) else {
                    continue;
                };
                let agrees = reveal.output_hash == party.output_hash()
                    && reveal.trace_root == party.trace_root();
                if agrees && !challenged {
                    debug!(job = %id, "audit agrees");
                    self.audited.insert(id, Audit::Agreed);
                    continue;
                }
                // Under challenge the auditor enters with its own result
                // either way: it joins the claim it agrees with (defending
                // it even if that claim's other members stop moving) or
                // adds its own.
                if challenged {
                    warn!(job = %id, agrees, "auditing a challenged result: entering the dispute");
                } else {
                    warn!(job = %id, "audit disagrees: challenging the result");
                }
                let body = TxBody::Challenge {
                    job_id: id,
                    output_hash: party.output_hash(),
                    trace_root: party.trace_root(),
                    outputs: party.outputs(),
                };
                self.send(state, body);
                self.audited
                    .insert(id, Audit::Entered { at_height: height });
                continue;
            }
            let Some(d) = ext.dispute.as_ref() else {
                continue;
            };
            let Some(game) = d.game.as_ref() else {
                continue;
            };
            // Whether this executor's side has made the round's move: once
            // it lands, the openings are owed at once.
            let moved = d.claim_of(&self.me).is_some_and(|c| {
                [&game.a, &game.b]
                    .iter()
                    .any(|s| usize::from(s.claim) == c && s.moved)
            });
            let pos: MovePos = (d.verdicts.len(), game.rounds, game.opened.len(), moved);
            if let Some((sent, at)) = self.moves.get(&id)
                && *sent == pos
                && height < at.saturating_add(self.cfg.resend_after_blocks)
            {
                continue;
            }
            let room = usize::try_from(state.params().max_tx_bytes)
                .unwrap_or(usize::MAX)
                .saturating_sub(crate::disputes::party::step_overhead());
            let Some(step) = party.next_step_within(&ext, &self.me, room) else {
                continue;
            };
            // The operands travel off-ledger: hold them here (peers and
            // validators fetch them from this node) before the step lands.
            let off = self.chain.offchain();
            for t in party.opened_tensors(&step) {
                if let Err(e) = off.put_tensor(formats::canonical_encode(&t)) {
                    warn!(job = %id, error = %e, "cannot hold an opened tensor");
                }
            }
            let name = step.name();
            if self.send(state, TxBody::DisputeStep { job_id: id, step }) {
                debug!(job = %id, step = name, "dispute move sent");
                self.moves.insert(id, (pos, height));
            }
        }
    }

    /// This executor's run of `job`, kept while the job is in play.
    async fn party(&mut self, state: &State, job: &Job) -> Result<Arc<Party>, ExecError> {
        if let Some(p) = self.parties.get(&job.id) {
            return Ok(Arc::clone(p));
        }
        let session = self.session(state, &job.model_id).await?;
        let inputs = job.inputs.clone();
        let budget = state.params().max_referee_work_per_block;
        let party =
            tokio::task::spawn_blocking(move || Party::run_within(session, &inputs, budget))
                .await
                .map_err(|e| ExecError::Runtime(format!("the run panicked: {e}")))?
                .map_err(|e| ExecError::Runtime(e.to_string()))?;
        let party = Arc::new(party);
        if self.parties.len() >= MAX_PARTIES
            && let Some(old) = self.parties.keys().next().copied()
        {
            self.parties.remove(&old);
        }
        self.parties.insert(job.id, Arc::clone(&party));
        Ok(party)
    }

    /// Signs and submits `body` with the next nonce; on a refused nonce
    /// resynchronizes with the finalized account.
    fn send(&mut self, state: &State, body: TxBody) -> bool {
        let chain_id = state.chain_id();
        let mut fee = self.cfg.fee;
        // One pass to price it (`fee` 0), and a few more past nonces the
        // chain or this node's own pending transactions already hold.
        for _ in 0..6 {
            let tx = match SignedTx::sign(&chain_id, &self.key, self.next_nonce, fee, body.clone())
            {
                Ok(tx) => tx,
                Err(e) => {
                    warn!(error = %e, "cannot sign");
                    return false;
                }
            };
            if fee == 0 {
                fee = state.params().min_fee_for(tx.len()).unwrap_or(u64::MAX);
                continue;
            }
            match self.chain.submit(tx) {
                Ok(_) => {
                    self.next_nonce = self.next_nonce.saturating_add(1);
                    return true;
                }
                // A pass that awaited runs or fetches works from a state
                // the chain has moved past: go on from the chain's nonce.
                Err(MempoolError::Invalid(TxError::Admission(AdmissionError::NonceTooLow {
                    expected,
                    ..
                }))) if expected > self.next_nonce => {
                    debug!(
                        from = self.next_nonce,
                        to = expected,
                        "nonce behind the chain; moving on"
                    );
                    self.next_nonce = expected;
                }
                // Its own earlier transaction holds the nonce (pending):
                // the next one.
                Err(MempoolError::NonceTaken { nonce, .. }) if nonce == self.next_nonce => {
                    self.next_nonce = nonce.saturating_add(1);
                }
                // Far ahead of the chain: earlier ones were lost (a gap);
                // start again from the chain's nonce.
                Err(e @ MempoolError::NonceAhead { .. }) => {
                    warn!(error = %e, "transaction refused; going back to the chain's nonce");
                    if let Some(a) = self.chain.finalized_state().account(&self.me) {
                        self.next_nonce = a.nonce;
                    }
                    return false;
                }
                // Refused for itself (its body, the pool's room, the
                // balance): it used no nonce.
                Err(e) => {
                    warn!(error = %e, "transaction refused");
                    return false;
                }
            }
        }
        false
    }

    /// Runs `job` (fetching its model first if needed).
    async fn compute(&mut self, state: &State, job: &Job) -> Result<Prepared, ExecError> {
        let session = self.session(state, &job.model_id).await?;
        crate::disputes::referee::refereeable(session.model(), state.params().max_tx_bytes)
            .map_err(|e| {
                ExecError::Runtime(format!("a dispute could not referee the model: {e}"))
            })?;
        let inputs = job.inputs.clone();
        // A run that fails at an operator is a result too (docs/disputes.md,
        // "Runs that fail"); any other failure declines the job.
        let budget = state.params().max_referee_work_per_block;
        let r = tokio::task::spawn_blocking(move || job_result(session, &inputs, budget))
            .await
            .map_err(|e| ExecError::Runtime(format!("the run panicked: {e}")))?
            .map_err(|e| ExecError::Runtime(e.to_string()))?;
        if let Some(node) = r.failed {
            info!(job = %job.id, node, "the run fails at an operator: revealing the failure");
        }
        let (outputs, output_hash, trace_root) = (r.outputs, r.output_hash, r.trace_root);
        let p = Prepared {
            outputs,
            output_hash,
            trace_root,
            salt: salt_for(&self.key, &job.id),
        };
        // Never commit what could not be revealed: a committed slot that
        // withholds its reveal forfeits its stake.
        state
            .check_outputs(job, &p.outputs)
            .map_err(|e| ExecError::Runtime(format!("the result could not be revealed: {e}")))?;
        let reveal = TxBody::RevealResult {
            job_id: job.id,
            output_hash: p.output_hash,
            trace_root: p.trace_root,
            salt: p.salt,
            outputs: p.outputs.clone(),
        };
        let len = SignedTx::sign(&state.chain_id(), &self.key, 0, u64::MAX, reveal)
            .map_err(|e| ExecError::Runtime(e.to_string()))?
            .len();
        if len > state.params().max_tx_bytes as usize {
            return Err(ExecError::Runtime(format!(
                "the reveal would be {len} bytes, over max_tx_bytes {}",
                state.params().max_tx_bytes
            )));
        }
        // And pay for it: the commit's and the reveal's fees, at least the
        // minimum for each (`send` pays the minimum when `fee` is 0).
        let min = state.params().min_fee_for(len).unwrap_or(u64::MAX);
        if self.cfg.fee != 0 && self.cfg.fee < min {
            return Err(ExecError::Runtime(format!(
                "the configured fee {} is below the reveal's minimum {min}",
                self.cfg.fee
            )));
        }
        let fees = self.cfg.fee.max(min).saturating_mul(2);
        let balance = state.account(&self.me).map_or(0, |a| a.balance);
        if balance < fees {
            return Err(ExecError::Runtime(format!(
                "balance {balance} cannot pay the commit and reveal fees ({fees})"
            )));
        }
        Ok(p)
    }

    /// The loaded model `id`, fetched from peers when the store lacks it.
    async fn session(&mut self, state: &State, id: &ModelId) -> Result<Arc<Session>, ExecError> {
        if let Some((_, s)) = self.sessions.iter().find(|(m, _)| m == id) {
            return Ok(s.clone());
        }
        let record = state.model(id).ok_or(ExecError::UnknownModel(*id))?;
        let size = record.manifest.manifest().size_bytes;
        if !self.blobs.contains(id) {
            let peers = self.peers(state);
            fetch_blob(&self.blobs, id, size, &peers, self.cfg.fetch.clone())
                .await
                .map_err(|e| ExecError::Fetch {
                    model: *id,
                    reason: e.to_string(),
                })?;
        }
        let blobs = self.blobs.clone();
        let threads = self.cfg.threads;
        let id_copy = *id;
        let session = tokio::task::spawn_blocking(move || -> Result<Session, ExecError> {
            let bytes = blobs
                .get(&id_copy)
                .map_err(|e| ExecError::Store(e.to_string()))?;
            let model = Model::load(&bytes, Limits::default())
                .map_err(|e| ExecError::Runtime(e.to_string()))?;
            Session::new(
                Arc::new(model),
                Options {
                    threads,
                    ..Options::default()
                },
            )
            .map_err(|e| ExecError::Runtime(e.to_string()))
        })
        .await
        .map_err(|e| ExecError::Runtime(format!("loading panicked: {e}")))??;
        let session = Arc::new(session);
        if self.sessions.len() >= self.cfg.max_sessions {
            self.sessions.remove(0);
        }
        self.sessions.push((*id, session.clone()));
        Ok(session)
    }

    /// Nodes to fetch models from: configured peers, then every other
    /// executor's endpoint.
    fn peers(&self, state: &State) -> Vec<String> {
        let mut peers = self.cfg.blob_peers.clone();
        for e in state.executors() {
            if e.owner != self.me && !peers.contains(&e.endpoint) {
                peers.push(e.endpoint.clone());
            }
        }
        if let Some(own) = &self.cfg.own_endpoint {
            peers.retain(|p| p != own);
        }
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The salt survives a restart (the same key and job give the same
    /// salt, so a recomputed result opens the commitment) and hides the
    /// result (another key, or another job, gives another salt).
    #[test]
    fn the_commitment_salt_is_a_function_of_the_key_and_the_job() {
        let key = SecretKey::from_seed(&[7; 32]);
        let (a, b) = (
            JobId::of_tx(glassbox_primitives::TxHash::of(b"a")),
            JobId::of_tx(glassbox_primitives::TxHash::of(b"b")),
        );
        assert_eq!(
            salt_for(&key, &a),
            salt_for(&SecretKey::from_seed(&[7; 32]), &a)
        );
        assert_ne!(salt_for(&key, &a), salt_for(&key, &b));
        assert_ne!(
            salt_for(&key, &a),
            salt_for(&SecretKey::from_seed(&[8; 32]), &a)
        );
    }
}

//! Job execution in the ledger: submission and escrow, executor
//! selection, deadlines, commit–reveal and settlement (docs/jobs.md).

use glassbox_primitives::{Commitment, OutputHash, TensorHash};
use glassbox_types::{ModelId, PublicKey};

use crate::accounts::Account;
use crate::apply::{BlockContext, Event};
use crate::error::ExecutionError;
use crate::jobs::{
    Job, JobId, JobStatus, Reveal, SELECTION_DOMAIN, Slot, check_result_outputs, check_tensors,
    commitment, declared_output_bytes, outputs_hash,
};
use crate::limits;
use crate::staking::Executor;
use crate::state::State;
use crate::switches;

/// What a valid `SubmitJob` will escrow.
pub(crate) struct JobTerms {
    pub(crate) price_per_replica: u64,
    pub(crate) escrow: u64,
    pub(crate) input_hashes: Vec<TensorHash>,
}

pub(crate) fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Assigning => "assigning",
        JobStatus::Running => "running",
        JobStatus::Final => "final",
        JobStatus::Disputed => "disputed",
        JobStatus::Failed => "failed",
        JobStatus::Pending => "pending",
    }
}

fn io_bytes(tensors: &[Vec<u8>]) -> u64 {
    tensors.iter().fold(0u64, |a, t| {
        a.saturating_add(u64::try_from(t.len()).unwrap_or(u64::MAX))
    })
}

/// The draw for slot `slot` of `job` after `attempt` misses: a number
/// below `total` from `BLAKE3("GBSL1" || randomness || job id || slot ||
/// attempt)` (the first 16 bytes, little-endian, reduced mod `total`; the
/// bias is below 2^-64 because `total` < 2^64).
fn draw(randomness: &[u8; 32], job: &JobId, slot: usize, attempt: usize, total: u128) -> u128 {
    let mut h = blake3::Hasher::new();
    h.update(SELECTION_DOMAIN);
    h.update(randomness);
    h.update(job.as_bytes());
    h.update(&u32::try_from(slot).unwrap_or(u32::MAX).to_le_bytes());
    h.update(&u32::try_from(attempt).unwrap_or(u32::MAX).to_le_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.finalize().as_bytes()[..16]);
    u128::from_le_bytes(b) % total.max(1)
}

/// The entry of `pool` where `r` (below the sum of `weights`) falls.
fn pick(pool: &[&Executor], weights: &[u128], mut r: u128) -> Option<PublicKey> {
    for (e, w) in pool.iter().zip(weights) {
        if r < *w {
            return Some(e.owner);
        }
        r -= w;
    }
    None
}

/// Shares of a quantity held by the largest holders.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shares {
    /// The total.
    pub total: u128,
    /// Share of the largest holder, in basis points.
    pub top1_bps: u32,
    /// Share of the three largest, in basis points.
    pub top3_bps: u32,
    /// Share of the ten largest, in basis points.
    pub top10_bps: u32,
    /// The fewest holders with more than half of the total (0 when the
    /// total is 0).
    pub nakamoto: usize,
}

impl Shares {
    /// The shares of `amounts`.
    pub fn of(amounts: &[u64]) -> Shares {
        let mut v: Vec<u128> = amounts.iter().map(|a| u128::from(*a)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        let total: u128 = v.iter().sum();
        let top = |n: usize| -> u32 {
            if total == 0 {
                return 0;
            }
            let s: u128 = v.iter().take(n).sum();
            u32::try_from(s * 10_000 / total).unwrap_or(10_000)
        };
        let mut nakamoto = 0;
        let mut acc = 0u128;
        for a in &v {
            if total == 0 || acc * 2 > total {
                break;
            }
            acc += a;
            nakamoto += 1;
        }
        Shares {
            total,
            top1_bps: top(1),
            top3_bps: top(3),
            top10_bps: top(10),
            nakamoto,
        }
    }
}

/// The concentration report ([`State::concentration`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Concentration {
    /// Executor records.
    pub executors: usize,
    /// Executors with stake.
    pub active: usize,
    /// Paid jobs served, by executor.
    pub jobs: Shares,
    /// Stake of the active executors: their selection weight.
    pub weight: Shares,
}

impl State {
    /// Whether `e` could serve jobs: at least `min_executor_stake` bonded
    /// (a penalty can leave an active executor below it; until it adds
    /// stake it is not drawn, so what it can lose stays at least the
    /// minimum) and no open dispute.
    fn can_serve(&self, e: &Executor) -> bool {
        e.is_active() && e.stake >= self.params.min_executor_stake && e.disputes == 0
    }

    /// Whether `e` could serve and is not paused, or was paused within the
    /// last `commit_window_blocks` (a live executor resumes within a couple
    /// of blocks; one paused longer is taken for dead).
    fn could_be_alive(&self, e: &Executor) -> bool {
        let height = self.height();
        self.can_serve(e)
            && e.paused_height
                .is_none_or(|h| h.saturating_add(self.params.commit_window_blocks) >= height)
    }

    /// Whether `e` may be drawn now: it could serve and is not paused by
    /// a missed slot (docs/jobs.md, "Liveness": an executor that stopped
    /// answering is not drawn again until its owner's heartbeat).
    fn drawable(&self, e: &Executor) -> bool {
        self.can_serve(e) && e.paused_height.is_none()
    }

    /// Whether `e` may be given a new slot of `job`: drawable, spare
    /// capacity, not the requester, not already on the job and never a
    /// misser of it.
    fn eligible(&self, e: &Executor, job_requester: &PublicKey, taken: &[PublicKey]) -> bool {
        self.drawable(e)
            && e.active_jobs < e.capacity
            && &e.owner != job_requester
            && !taken.contains(&e.owner)
    }

    /// How many executors could take a new job of `requester` now (spare
    /// capacity included).
    pub(crate) fn eligible_count(&self, requester: &PublicKey) -> usize {
        self.executors()
            .filter(|e| self.eligible(e, requester, &[]))
            .count()
    }

    /// How many executors could ever serve a job of `requester`: not the
    /// requester, and able to serve (busy ones count: a job waits in the
    /// queue for capacity; paused ones while their pause is younger than
    /// the queue's wait, `commit_window_blocks`, so one dead for longer
    /// does not get jobs admitted that only it could take).
    pub(crate) fn serving_count(&self, requester: &PublicKey) -> usize {
        self.executors()
            .filter(|e| self.could_be_alive(e) && &e.owner != requester)
            .count()
    }

    /// Stake-weighted choice among the eligible executors (in owner-key
    /// order), or `None` when there is none. The weight is the stake, with
    /// no cap per identity: a cap can be evaded by splitting stake and then
    /// raises the splitter's share (docs/disputes.md, "Selection").
    /// `paused_too` also admits executors paused within the last
    /// `commit_window_blocks` (a missed slot's replacement: whoever can
    /// make honest executors miss together must not choose who replaces a
    /// slot, nor fail the job).
    fn select(
        &self,
        job: &Job,
        randomness: &[u8; 32],
        slot: usize,
        taken: &[PublicKey],
        paused_too: bool,
    ) -> Option<PublicKey> {
        let pool: Vec<&Executor> = self
            .executors()
            .filter(|e| {
                if paused_too {
                    self.could_be_alive(e)
                        && e.active_jobs < e.capacity
                        && e.owner != job.requester
                        && !taken.contains(&e.owner)
                } else {
                    self.eligible(e, &job.requester, taken)
                }
            })
            .collect();
        let weights: Vec<u128> = pool.iter().map(|e| u128::from(e.stake)).collect();
        let total: u128 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let r = draw(randomness, &job.id, slot, job.missed.len(), total);
        pick(&pool, &weights, r)
    }

    /// The auditor of a pending result: an executor that could serve
    /// outside `exclude`, stake-weighted, drawn from `seed`. Executors
    /// paused within the last `commit_window_blocks` are drawn too:
    /// whoever can make honest executors miss at a chosen block (jobs they
    /// must decline) must not thereby choose who audits (docs/jobs.md,
    /// "Liveness").
    pub(crate) fn select_auditor(
        &self,
        seed: &[u8; 32],
        exclude: &[PublicKey],
    ) -> Option<PublicKey> {
        let pool: Vec<&Executor> = self
            .executors()
            .filter(|e| self.could_be_alive(e) && !exclude.contains(&e.owner))
            .collect();
        let weights: Vec<u128> = pool.iter().map(|e| u128::from(e.stake)).collect();
        let total: u128 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&seed[16..32]);
        pick(&pool, &weights, u128::from_le_bytes(b) % total)
    }

    /// How concentrated the network is (docs/disputes.md, "Against
    /// consolidation"): shares of the paid jobs served by the top 1, 3 and
    /// 10 executors, and of the stake (the selection weight), with the Nakamoto
    /// coefficients (the fewest executors holding more than half).
    pub fn concentration(&self) -> Concentration {
        let served: Vec<u64> = self.executors().map(|e| e.served).collect();
        let stakes: Vec<u64> = self
            .executors()
            .filter(|e| e.is_active())
            .map(|e| e.stake)
            .collect();
        Concentration {
            executors: self.executor_count(),
            active: stakes.len(),
            jobs: Shares::of(&served),
            weight: Shares::of(&stakes),
        }
    }

    /// The checks of a `SubmitJob` that do not change the state: the model,
    /// the inputs against its manifest, replicas, the price against
    /// `max_fee` and `balance`, and enough executors.
    pub(crate) fn job_terms(
        &self,
        requester: &PublicKey,
        balance: u64,
        model_id: &ModelId,
        inputs: &[Vec<u8>],
        replicas: u8,
        max_fee: u64,
    ) -> Result<JobTerms, ExecutionError> {
        let p = &self.params;
        if replicas == 0 || replicas > p.max_job_replicas {
            return Err(ExecutionError::BadReplicas {
                replicas,
                max: p.max_job_replicas,
            });
        }
        let model = self.model(model_id).ok_or(ExecutionError::UnknownModel {
            model_id: *model_id,
        })?;
        let manifest = model.manifest.manifest();
        let bytes = io_bytes(inputs);
        if bytes > u64::from(p.max_job_io_bytes) {
            return Err(ExecutionError::JobIoTooLarge {
                what: "input",
                bytes,
                max: p.max_job_io_bytes,
            });
        }
        let input_hashes = check_tensors("input", inputs, &manifest.inputs)?;
        let outputs = declared_output_bytes(inputs, &manifest.inputs, &manifest.outputs);
        if outputs > u64::from(p.max_job_io_bytes) {
            return Err(ExecutionError::JobIoTooLarge {
                what: "declared output",
                bytes: outputs,
                max: p.max_job_io_bytes,
            });
        }
        let price_per_replica = p
            .job_price(manifest.cost.flops)
            .ok_or(ExecutionError::PriceOverflow)?;
        let escrow = price_per_replica
            .checked_mul(u64::from(replicas))
            .ok_or(ExecutionError::PriceOverflow)?;
        if escrow > max_fee {
            return Err(ExecutionError::PriceAboveMax {
                price: escrow,
                replicas,
                per_replica: price_per_replica,
                max_fee,
            });
        }
        if balance < escrow {
            return Err(ExecutionError::InsufficientBalance {
                field: "max_fee (job escrow)",
                balance,
                needed: escrow,
            });
        }
        let available = self.serving_count(requester);
        if available < usize::from(replicas) {
            return Err(ExecutionError::NotEnoughExecutors {
                needed: replicas,
                available,
            });
        }
        Ok(JobTerms {
            price_per_replica,
            escrow,
            input_hashes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_job(
        &mut self,
        requester: &PublicKey,
        account: &mut Account,
        id: JobId,
        model_id: &ModelId,
        inputs: &[Vec<u8>],
        replicas: u8,
        max_fee: u64,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let terms = self.job_terms(
            requester,
            account.balance,
            model_id,
            inputs,
            replicas,
            max_fee,
        )?;
        let manifest_id =
            self.model(model_id)
                .map(|m| m.manifest_id)
                .ok_or(ExecutionError::UnknownModel {
                    model_id: *model_id,
                })?;
        let escrowed = self
            .escrowed
            .checked_add(terms.escrow)
            .ok_or(ExecutionError::PriceOverflow)?;
        account.balance = account.balance.checked_sub(terms.escrow).ok_or(
            ExecutionError::InsufficientBalance {
                field: "max_fee (job escrow)",
                balance: account.balance,
                needed: terms.escrow,
            },
        )?;
        self.put_job(Job {
            id,
            requester: *requester,
            model_id: *model_id,
            manifest_id,
            inputs: inputs.to_vec(),
            input_hashes: terms.input_hashes,
            replicas,
            price_per_replica: terms.price_per_replica,
            escrow: terms.escrow,
            submitted_height: height,
            status: JobStatus::Assigning,
            slots: Vec::new(),
            missed: Vec::new(),
            outputs: Vec::new(),
            closed_height: None,
        })?;
        self.escrowed = escrowed;
        Ok(vec![Event::JobSubmitted {
            job_id: id,
            model_id: *model_id,
            replicas,
            escrow: terms.escrow,
        }])
    }

    /// The open job `id` and the sender's slot in it.
    fn job_slot(&self, id: &JobId, executor: &PublicKey) -> Result<(Job, usize), ExecutionError> {
        let job = self
            .job(id)
            .ok_or(ExecutionError::UnknownJob { job_id: *id })?;
        if job.status != JobStatus::Running {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: status_name(job.status),
                reason: "only a running job takes commitments and reveals",
            });
        }
        let (i, _) = job.slot_of(executor).ok_or(ExecutionError::NotAssigned {
            job_id: *id,
            executor: executor.to_string(),
        })?;
        Ok((job, i))
    }

    /// The checks of a `CommitResult`, without changing anything; returns
    /// the job and the sender's slot.
    pub(crate) fn check_commit(
        &self,
        sender: &PublicKey,
        id: &JobId,
    ) -> Result<(Job, usize), ExecutionError> {
        let (job, i) = self.job_slot(id, sender)?;
        if job.slots.get(i).is_some_and(|s| s.commitment.is_some()) {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: "running",
                reason: "this executor has already committed",
            });
        }
        Ok((job, i))
    }

    pub(crate) fn commit_result(
        &mut self,
        sender: &PublicKey,
        id: &JobId,
        c: Commitment,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let (mut job, i) = self.check_commit(sender, id)?;
        if let Some(slot) = job.slots.get_mut(i) {
            slot.commitment = Some(c);
            slot.deadline = None;
        }
        if job.all_committed() {
            let deadline = height.checked_add(self.params.reveal_window_blocks).ok_or(
                ExecutionError::ReleaseHeightOverflow {
                    height,
                    blocks: self.params.reveal_window_blocks,
                },
            )?;
            for s in job.slots.iter_mut().filter(|s| s.reveal.is_none()) {
                s.deadline = Some(deadline);
            }
        }
        self.put_job(job)?;
        Ok(vec![Event::ResultCommitted {
            job_id: *id,
            executor: *sender,
        }])
    }

    /// The checks of a `RevealResult`, without changing anything; returns
    /// the job and the sender's slot.
    pub(crate) fn check_reveal(
        &self,
        sender: &PublicKey,
        id: &JobId,
        reveal: &Reveal,
        outputs: &[Vec<u8>],
    ) -> Result<(Job, usize), ExecutionError> {
        let (job, i) = self.job_slot(id, sender)?;
        if !job.all_committed() {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: "running",
                reason: "reveals open once every slot has committed",
            });
        }
        let slot = job.slots.get(i).ok_or(ExecutionError::Internal {
            reason: "slot index out of range".into(),
        })?;
        if slot.reveal.is_some() {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: "running",
                reason: "this executor has already revealed",
            });
        }
        let expected = commitment(
            id,
            sender,
            &reveal.output_hash,
            &reveal.trace_root,
            &reveal.salt,
        );
        if slot.commitment != Some(expected) {
            return Err(ExecutionError::CommitmentMismatch {
                job_id: *id,
                executor: sender.to_string(),
            });
        }
        if self.check_outputs(&job, outputs)? != reveal.output_hash {
            return Err(ExecutionError::OutputHashMismatch);
        }
        Ok((job, i))
    }

    /// The checks a reveal's outputs pass, whoever sends them: at most
    /// `max_job_io_bytes`, and the model's declared outputs (or none, a
    /// claim that the run fails: docs/disputes.md, "Runs that fail").
    /// Returns their
    /// [`outputs_hash`]. An executor checks its result with it before it
    /// commits: a result it could not reveal must not be committed (a
    /// committed slot that withholds its reveal forfeits its stake).
    pub fn check_outputs(
        &self,
        job: &Job,
        outputs: &[Vec<u8>],
    ) -> Result<OutputHash, ExecutionError> {
        let bytes = io_bytes(outputs);
        if bytes > u64::from(self.params.max_job_io_bytes) {
            return Err(ExecutionError::JobIoTooLarge {
                what: "output",
                bytes,
                max: self.params.max_job_io_bytes,
            });
        }
        let model = self
            .model(&job.model_id)
            .ok_or(ExecutionError::UnknownModel {
                model_id: job.model_id,
            })?;
        let hashes = check_result_outputs(outputs, &model.manifest.manifest().outputs)?;
        Ok(outputs_hash(&hashes))
    }

    pub(crate) fn reveal_result(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        id: &JobId,
        reveal: Reveal,
        outputs: &[Vec<u8>],
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let (mut job, i) = self.check_reveal(sender, id, &reveal, outputs)?;
        self.keep_outputs(&job, &reveal.output_hash, outputs)?;
        if let Some(slot) = job.slots.get_mut(i) {
            slot.reveal = Some(Reveal { height, ..reveal });
            slot.deadline = None;
        }
        if job.outputs.is_empty() {
            job.outputs = outputs.to_vec();
        }
        let mut events = vec![Event::ResultRevealed {
            job_id: *id,
            executor: *sender,
        }];
        if job.slots.iter().all(|s| s.reveal.is_some()) {
            events.push(self.settle(&mut job, height, sender, account)?);
        }
        self.put_job(job)?;
        Ok(events)
    }

    /// Closes a job whose every slot revealed: an agreed optimistic result
    /// (one replica) becomes pending for its challenge window; an agreed
    /// quorum is final (pay each executor, refund the rest); disagreeing
    /// reveals open a dispute (lock the executors' stakes, keep the
    /// escrow; docs/disputes.md).
    ///
    /// `sender` is the revealing executor, whose account the transaction
    /// holds in `account` (stored after the body), so its pay goes there.
    fn settle(
        &mut self,
        job: &mut Job,
        height: u64,
        sender: &PublicKey,
        account: &mut Account,
    ) -> Result<Event, ExecutionError> {
        let executors: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        match job.agreed() {
            Some(agreed) if job.replicas == 1 => {
                // The slot stays taken until the window closes.
                let until = height
                    .checked_add(self.params.challenge_window_blocks)
                    .ok_or(ExecutionError::ReleaseHeightOverflow {
                        height,
                        blocks: self.params.challenge_window_blocks,
                    })?;
                let mut ext = self.job_ext(&job.id).unwrap_or_default();
                ext.pending_until = Some(until);
                self.put_ext(job.id, ext)?;
                self.audit_queue.insert(job.id);
                job.status = JobStatus::Pending;
                Ok(Event::JobPending {
                    job_id: job.id,
                    output_hash: agreed.output_hash,
                    trace_root: agreed.trace_root,
                    until,
                })
            }
            Some(agreed) => {
                job.closed_height = Some(height);
                let mut paid = 0u64;
                for owner in &executors {
                    self.release_slot(owner, false)?;
                    let credit = |a: &mut Account| {
                        a.balance = a.balance.checked_add(job.price_per_replica).ok_or(
                            ExecutionError::BalanceOverflow {
                                account: owner.to_string(),
                            },
                        )?;
                        Ok::<(), ExecutionError>(())
                    };
                    if owner == sender {
                        credit(account)?;
                    } else {
                        let mut a = self.load_account(owner)?.unwrap_or_default();
                        credit(&mut a)?;
                        self.put_account(owner, &a)?;
                    }
                    if let Some(e) = self.executor(owner) {
                        let mut e = e.clone();
                        e.served = e.served.saturating_add(1);
                        self.put_executor(e)?;
                    }
                    paid = paid.saturating_add(job.price_per_replica);
                }
                self.refund(job, paid)?;
                job.status = JobStatus::Final;
                Ok(Event::JobFinal {
                    job_id: job.id,
                    output_hash: agreed.output_hash,
                    trace_root: agreed.trace_root,
                })
            }
            None => {
                for owner in &executors {
                    self.release_slot(owner, true)?;
                }
                self.open_dispute(job, height)?;
                job.outputs.clear();
                job.status = JobStatus::Disputed;
                Ok(Event::JobDisputed { job_id: job.id })
            }
        }
    }

    /// Pays `paid` out of the job's escrow and returns the rest to the
    /// requester.
    pub(crate) fn refund(&mut self, job: &mut Job, paid: u64) -> Result<(), ExecutionError> {
        let rest = job.escrow.saturating_sub(paid);
        if rest > 0 {
            let mut a = self.load_account(&job.requester)?.unwrap_or_default();
            a.balance = a
                .balance
                .checked_add(rest)
                .ok_or(ExecutionError::BalanceOverflow {
                    account: job.requester.to_string(),
                })?;
            self.put_account(&job.requester, &a)?;
        }
        self.escrowed = self.escrowed.saturating_sub(job.escrow);
        job.escrow = 0;
        Ok(())
    }

    /// One slot of `owner` is closed; with `dispute` its stake is locked.
    fn release_slot(&mut self, owner: &PublicKey, dispute: bool) -> Result<(), ExecutionError> {
        if let Some(e) = self.executor(owner) {
            let mut e = e.clone();
            e.active_jobs = e.active_jobs.saturating_sub(1);
            if dispute {
                e.disputes = e.disputes.saturating_add(1);
            }
            self.put_executor(e)?;
        }
        Ok(())
    }

    fn take_slot(&mut self, owner: &PublicKey) -> Result<(), ExecutionError> {
        if let Some(e) = self.executor(owner) {
            let mut e = e.clone();
            e.active_jobs = e.active_jobs.saturating_add(1);
            self.put_executor(e)?;
        }
        Ok(())
    }

    /// Takes the miss penalty (at most the stake) from `owner` into the fee
    /// pool and pauses it at `height` (docs/jobs.md, "Liveness").
    fn penalize(&mut self, owner: &PublicKey, height: u64) -> Result<(), ExecutionError> {
        let Some(e) = self.executor(owner) else {
            return Ok(());
        };
        let mut e = e.clone();
        let amount = self.params.miss_penalty.min(e.stake);
        e.stake -= amount;
        e.active_jobs = e.active_jobs.saturating_sub(1);
        e.paused_height = Some(height);
        self.put_executor(e)?;
        let pool = self
            .fee_pool
            .checked_add(amount)
            .ok_or(ExecutionError::BalanceOverflow {
                account: "fee pool".into(),
            })?;
        self.put_fee_pool(pool).map_err(crate::state::internal)
    }

    /// Takes the whole stake (bonded and unbonding) of `owner`, who
    /// withheld a committed reveal after another slot revealed, and burns
    /// it: a withheld reveal costs what a lost dispute would, and more than
    /// its burned part (docs/jobs.md, "Deadlines").
    fn slash_withheld(&mut self, owner: &PublicKey) -> Result<(), ExecutionError> {
        let Some(e) = self.executor(owner) else {
            return Ok(());
        };
        let mut e = e.clone();
        let taken = e.stake.saturating_add(e.unbonding_total());
        e.stake = 0;
        e.unbonding.clear();
        e.active_jobs = e.active_jobs.saturating_sub(1);
        self.put_executor(e)?;
        self.burn(taken)
    }

    /// The job cannot be served: release its executors and refund it.
    fn fail(&mut self, job: &mut Job, height: u64) -> Result<(), ExecutionError> {
        for owner in job.slots.iter().map(|s| s.executor).collect::<Vec<_>>() {
            self.release_slot(&owner, false)?;
        }
        self.refund(job, 0)?;
        job.status = JobStatus::Failed;
        job.closed_height = Some(height);
        // Outputs kept for a dispute that will not happen.
        if let Some(mut ext) = self.job_ext(&job.id)
            && !ext.extra_outputs.is_empty()
        {
            ext.extra_outputs.clear();
            self.put_ext(job.id, ext)?;
        }
        Ok(())
    }

    /// Block-start work (docs/jobs.md, "Block schedule"): slots whose
    /// deadline passed before `ctx.height` are penalized and reassigned,
    /// then every queued job gets its executors, all with
    /// `ctx.randomness`.
    pub(crate) fn run_schedule(&mut self, ctx: &BlockContext) -> Result<(), ExecutionError> {
        let height = ctx.height;
        let commit_deadline = height.checked_add(self.params.commit_window_blocks).ok_or(
            ExecutionError::ReleaseHeightOverflow {
                height,
                blocks: self.params.commit_window_blocks,
            },
        )?;
        // Missed deadlines.
        while let Some(&(deadline, id)) = self.deadlines.get_min() {
            if deadline >= height {
                break;
            }
            self.deadlines.remove(&(deadline, id));
            let Some(mut job) = self.open_jobs.get(&id).map(|j| (**j).clone()) else {
                continue;
            };
            let late: Vec<usize> = job
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.deadline.is_some_and(|d| d < height))
                .map(|(i, _)| i)
                .collect();
            // A committed slot that did not reveal although another slot
            // did saw that reveal: withholding its own is how a cheater
            // would dodge the dispute it would lose, so it costs what
            // losing would (issue #25, P4). Read before any slot changes.
            let revealed = job.slots.iter().any(|s| s.reveal.is_some());
            for i in late {
                let Some((owner, committed)) = job
                    .slots
                    .get(i)
                    .map(|s| (s.executor, s.commitment.is_some()))
                else {
                    continue;
                };
                if committed && revealed && !switches::is_off(switches::Fix::Withholding) {
                    self.slash_withheld(&owner)?;
                } else {
                    self.penalize(&owner, height)?;
                }
                if job.missed.len() >= limits::MAX_JOB_MISSES {
                    job.slots.remove(i);
                    self.fail(&mut job, height)?;
                    break;
                }
                job.missed.push(owner);
                let taken: Vec<PublicKey> = job
                    .slots
                    .iter()
                    .map(|s| s.executor)
                    .chain(job.missed.iter().copied())
                    .collect();
                match self.select(&job, &ctx.randomness, i, &taken, true) {
                    Some(next) => {
                        self.take_slot(&next)?;
                        if let Some(s) = job.slots.get_mut(i) {
                            *s = Slot {
                                executor: next,
                                assigned_height: height,
                                deadline: Some(commit_deadline),
                                commitment: None,
                                reveal: None,
                            };
                        }
                        // Revealed or committed slots wait for the new one.
                        for s in job.slots.iter_mut() {
                            if s.commitment.is_some() {
                                s.deadline = None;
                            }
                        }
                    }
                    None => {
                        job.slots.remove(i);
                        self.fail(&mut job, height)?;
                        break;
                    }
                }
            }
            self.put_job(job)?;
        }
        // Assignment of the jobs submitted before this block, oldest
        // first. A job finding too few executors with spare capacity waits
        // for the next block, for at most `commit_window_blocks`, then
        // fails and is refunded.
        let queued: Vec<(u64, JobId)> = self.queued.iter().copied().collect();
        for (_, id) in queued {
            let Some(mut job) = self.open_jobs.get(&id).map(|j| (**j).clone()) else {
                continue;
            };
            if self.eligible_count(&job.requester) < usize::from(job.replicas) {
                let waited = height.saturating_sub(job.submitted_height);
                if waited > self.params.commit_window_blocks {
                    self.fail(&mut job, height)?;
                    self.put_job(job)?;
                }
                continue;
            }
            let mut taken: Vec<PublicKey> = Vec::with_capacity(usize::from(job.replicas));
            for slot in 0..usize::from(job.replicas) {
                // Cannot miss (enough were counted); if it did, `fail`
                // releases the slots taken so far.
                let Some(owner) = self.select(&job, &ctx.randomness, slot, &taken, false) else {
                    break;
                };
                self.take_slot(&owner)?;
                taken.push(owner);
                job.slots.push(Slot {
                    executor: owner,
                    assigned_height: height,
                    deadline: Some(commit_deadline),
                    commitment: None,
                    reveal: None,
                });
            }
            if job.slots.len() == usize::from(job.replicas) {
                job.status = JobStatus::Running;
            } else {
                self.fail(&mut job, height)?;
            }
            self.put_job(job)?;
        }
        Ok(())
    }
}

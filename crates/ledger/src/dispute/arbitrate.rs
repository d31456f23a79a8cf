//! The dispute game, optimistic results, challenges and audits in the
//! ledger (docs/disputes.md).
//!
//! Disagreeing reveals (or a challenge of an optimistic result) open a
//! [`Dispute`] whose claims play games two at a time: both sides open
//! their trace roots, bisect the leaf range one split per round down to
//! the first leaf where they differ, state that leaf's outputs, bisect the
//! chunk tree of the first output where they differ down to one chunk,
//! open the operands of that operator, and the [`Referee`] computes that
//! chunk. A side
//! with a wrong leaf, or that misses a deadline, loses: its members' stake
//! (or its bond) is slashed, part to the winners and the rest burned. The
//! last claim standing is the job's result.

use glassbox_types::PublicKey;

use glassbox_primitives::{MerkleNode, OutputHash, TensorHash, TraceRoot, tags};
use glassbox_primitives::{chunks, trace};

use crate::accounts::Account;
use crate::apply::{BlockContext, Event};
use crate::dispute::{
    Claim, Dispute, Game, JobExt, LeafOutput, MAX_CLAIM_MEMBERS, MAX_CLAIMS, MAX_OPENINGS,
    MAX_OPENINGS_PER_SIDE, MAX_OUTPUT_BYTES, MAX_TRACE_LEAVES, OutputSource, Referee, RefereeError,
    Side, Stage, Step, Target, Verdict, VerdictReason, hash_leaf, hash_node, root_from_path, split,
};
use crate::error::ExecutionError;
use crate::jobs::schedule::status_name;
use crate::jobs::{Job, JobId, JobStatus, check_result_outputs, outputs_hash};
use crate::state::State;
use crate::switches;

/// Domain of the audit draw.
pub const AUDIT_DOMAIN: &[u8] = tags::AUDIT;

/// What the referee may need for a dispute step ([`State::referee_needs`]),
/// so a replica can fetch the model and the opened tensors first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefereeWork {
    /// The disputed job.
    pub job_id: JobId,
    /// Its model.
    pub model_id: glassbox_types::ModelId,
    /// Hashes of every opened operand tensor (sorted, distinct).
    pub tensors: Vec<TensorHash>,
}

/// Where a challenge's claim goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimPlace {
    /// It opens the dispute of a pending result.
    Open,
    /// It joins standing claim `i`, equal to it.
    Join(usize),
    /// It is a new claim of an open dispute.
    Add,
}

fn dispute_err(job_id: JobId, reason: impl Into<String>) -> ExecutionError {
    ExecutionError::Dispute {
        job_id,
        reason: reason.into(),
    }
}

fn deadline_after(height: u64, blocks: u64) -> Result<u64, ExecutionError> {
    height
        .checked_add(blocks)
        .ok_or(ExecutionError::ReleaseHeightOverflow { height, blocks })
}

/// `amount × bps / 10,000`, rounded down.
fn share(amount: u64, bps: u32) -> u64 {
    u64::try_from(u128::from(amount) * u128::from(bps) / 10_000).unwrap_or(u64::MAX)
}

impl State {
    /// The extension record of `id` (empty if none).
    fn ext_or_default(&self, id: &JobId) -> JobExt {
        self.job_ext(id).unwrap_or_default()
    }

    // ---- opening ---------------------------------------------------------

    /// Keeps the outputs of a reveal whose output hash no earlier reveal
    /// had (the job record keeps only the first reveal's), so a dispute
    /// can name every claim's outputs.
    pub(crate) fn keep_outputs(
        &mut self,
        job: &Job,
        output_hash: &OutputHash,
        outputs: &[Vec<u8>],
    ) -> Result<(), ExecutionError> {
        let seen = job
            .slots
            .iter()
            .filter_map(|s| s.reveal)
            .any(|r| &r.output_hash == output_hash);
        if seen || job.outputs.is_empty() {
            return Ok(());
        }
        let mut ext = self.ext_or_default(&job.id);
        ext.extra_outputs.push(outputs.to_vec());
        self.put_ext(job.id, ext)
    }

    /// Opens the dispute of a job whose reveals disagree: one claim per
    /// distinct `(output hash, trace root)`, in slot order; the first two
    /// play first.
    pub(crate) fn open_dispute(
        &mut self,
        job: &mut Job,
        height: u64,
    ) -> Result<(), ExecutionError> {
        let mut ext = self.ext_or_default(&job.id);
        // `job.outputs` are the first revealed (in time, not slot order).
        let first_hash = (!job.outputs.is_empty()).then(|| outputs_hash(&hashes(&job.outputs)));
        let mut claims: Vec<Claim> = Vec::new();
        for slot in &job.slots {
            let Some(r) = slot.reveal else { continue };
            if let Some(c) = claims
                .iter_mut()
                .find(|c| c.output_hash == r.output_hash && c.trace_root == r.trace_root)
            {
                c.members.push(slot.executor);
                continue;
            }
            let outputs = if Some(r.output_hash) == first_hash {
                job.outputs.clone()
            } else {
                ext.extra_outputs
                    .iter()
                    .find(|o| outputs_hash(&hashes(o)) == r.output_hash)
                    .cloned()
                    .unwrap_or_default()
            };
            claims.push(Claim {
                output_hash: r.output_hash,
                trace_root: r.trace_root,
                outputs,
                members: vec![slot.executor],
                bond: 0,
                lost: false,
            });
        }
        ext.extra_outputs.clear();
        let mut dispute = Dispute::open(height, claims);
        dispute.game = self.next_game(&dispute, height)?;
        ext.dispute = Some(dispute);
        self.put_ext(job.id, ext)
    }

    /// The game between the first two claims still standing, if two are.
    fn next_game(&self, d: &Dispute, height: u64) -> Result<Option<Game>, ExecutionError> {
        let mut alive = d.alive().map(|(i, _)| i);
        let (Some(a), Some(b)) = (alive.next(), alive.next()) else {
            return Ok(None);
        };
        let side = |i: usize| Side {
            claim: u8::try_from(i).unwrap_or(u8::MAX),
            ..Side::default()
        };
        Ok(Some(Game {
            a: side(a),
            b: side(b),
            stage: Stage::Open,
            rounds: 0,
            deadline: deadline_after(height, self.params.dispute_round_blocks)?,
            leaves: 0,
            opened: Vec::new(),
            queued: None,
        }))
    }

    // ---- challenges --------------------------------------------------------

    /// The checks of a `Challenge`, without changing anything
    /// (docs/disputes.md, "Challenges"): the job has one replica, its
    /// result is pending or disputed by earlier challenges, and the window
    /// counted from its reveal is open; the sender is an active executor
    /// other than the job's and not yet in the dispute; the claim is
    /// well-formed, differs from a pending result, and, in a dispute,
    /// joins the standing claim it equals or adds a new one, within the
    /// bounds (the last place of each kept for the drawn auditor); the bond
    /// is affordable. Returns the job, its extension and where the claim
    /// goes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_challenge(
        &self,
        sender: &PublicKey,
        balance: u64,
        id: &JobId,
        output_hash: &OutputHash,
        trace_root: &TraceRoot,
        outputs: &[Vec<u8>],
        height: u64,
    ) -> Result<(Job, JobExt, ClaimPlace), ExecutionError> {
        let job = self
            .job(id)
            .ok_or(ExecutionError::UnknownJob { job_id: *id })?;
        let ext = self.ext_or_default(id);
        let open_dispute = ext.dispute.as_ref().filter(|d| d.closed_height.is_none());
        let challengeable = job.replicas == 1
            && match job.status {
                JobStatus::Pending => true,
                JobStatus::Disputed => {
                    open_dispute.is_some() && !switches::is_off(switches::Fix::Preemption)
                }
                _ => false,
            };
        if !challengeable {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: status_name(job.status),
                reason: "only an optimistic result, pending or under challenge, can be challenged",
            });
        }
        let slot = job
            .slots
            .first()
            .ok_or_else(|| dispute_err(*id, "the job has no executor"))?;
        let reveal = slot
            .reveal
            .ok_or_else(|| dispute_err(*id, "the job has no revealed result"))?;
        let until = reveal
            .height
            .saturating_add(self.params.challenge_window_blocks);
        if height > until {
            return Err(dispute_err(*id, "the challenge window has closed"));
        }
        let executor = self
            .executor(sender)
            .filter(|e| e.is_active())
            .ok_or_else(|| dispute_err(*id, "only an active (staked) executor may challenge"))?;
        if slot.executor == executor.owner {
            return Err(dispute_err(
                *id,
                "an executor cannot challenge its own result",
            ));
        }
        let auditor = ext.auditor == Some(*sender);
        let place = match open_dispute {
            None => {
                if &reveal.output_hash == output_hash && &reveal.trace_root == trace_root {
                    return Err(dispute_err(*id, "the challenge claims the same result"));
                }
                ClaimPlace::Open
            }
            Some(d) => {
                if d.claim_of(sender).is_some() {
                    return Err(dispute_err(*id, "the sender is already in the dispute"));
                }
                // A result equal to a claim that lost comes back as a new
                // claim: whoever lost it may not have defended it.
                let same = d.claims.iter().position(|c| {
                    !c.lost && &c.output_hash == output_hash && &c.trace_root == trace_root
                });
                match same {
                    Some(i) => {
                        let c = d
                            .claims
                            .get(i)
                            .ok_or_else(|| dispute_err(*id, "no claim"))?;
                        let room = if auditor {
                            MAX_CLAIM_MEMBERS
                        } else {
                            MAX_CLAIM_MEMBERS - 1
                        };
                        if c.members.len() >= room {
                            return Err(dispute_err(
                                *id,
                                "the claim has no room for another member",
                            ));
                        }
                        ClaimPlace::Join(i)
                    }
                    None => {
                        let room = if auditor { MAX_CLAIMS } else { MAX_CLAIMS - 1 };
                        if d.claims.len() >= room {
                            return Err(dispute_err(
                                *id,
                                "the dispute has no room for another claim",
                            ));
                        }
                        ClaimPlace::Add
                    }
                }
            }
        };
        let model = self
            .model(&job.model_id)
            .ok_or(ExecutionError::UnknownModel {
                model_id: job.model_id,
            })?;
        let got = check_result_outputs(outputs, &model.manifest.manifest().outputs)?;
        if &outputs_hash(&got) != output_hash {
            return Err(ExecutionError::OutputHashMismatch);
        }
        if balance < self.params.challenge_bond {
            return Err(ExecutionError::InsufficientBalance {
                field: "challenge bond",
                balance,
                needed: self.params.challenge_bond,
            });
        }
        Ok((job, ext, place))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn challenge(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        id: &JobId,
        output_hash: OutputHash,
        trace_root: TraceRoot,
        outputs: &[Vec<u8>],
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let (mut job, mut ext, place) = self.check_challenge(
            sender,
            account.balance,
            id,
            &output_hash,
            &trace_root,
            outputs,
            height,
        )?;
        let bond = self.params.challenge_bond;
        let escrowed = self
            .escrowed
            .checked_add(bond)
            .ok_or(ExecutionError::PriceOverflow)?;
        let challenger_claim = || Claim {
            output_hash,
            trace_root,
            outputs: outputs.to_vec(),
            members: vec![*sender],
            bond,
            lost: false,
        };
        match place {
            ClaimPlace::Open => {
                let slot = job
                    .slots
                    .first()
                    .ok_or_else(|| dispute_err(*id, "the job has no executor"))?;
                let reveal = slot
                    .reveal
                    .ok_or_else(|| dispute_err(*id, "the job has no revealed result"))?;
                let executor = slot.executor;
                let mut dispute = Dispute::open(
                    height,
                    vec![
                        Claim {
                            output_hash: reveal.output_hash,
                            trace_root: reveal.trace_root,
                            outputs: std::mem::take(&mut job.outputs),
                            members: vec![executor],
                            bond: 0,
                            lost: false,
                        },
                        challenger_claim(),
                    ],
                );
                dispute.game = self.next_game(&dispute, height)?;
                // The window stays: challenges keep coming until it
                // closes, and the dispute is decided no earlier.
                ext.dispute = Some(dispute);
                job.status = JobStatus::Disputed;
                self.adjust_executor(&executor, |e| {
                    e.active_jobs = e.active_jobs.saturating_sub(1);
                    e.disputes = e.disputes.saturating_add(1);
                })?;
            }
            ClaimPlace::Join(i) => {
                let c = ext
                    .dispute
                    .as_mut()
                    .and_then(|d| d.claims.get_mut(i))
                    .ok_or_else(|| dispute_err(*id, "no such claim"))?;
                c.members.push(*sender);
                c.bond = c
                    .bond
                    .checked_add(bond)
                    .ok_or(ExecutionError::PriceOverflow)?;
            }
            ClaimPlace::Add => {
                let d = ext
                    .dispute
                    .as_mut()
                    .ok_or_else(|| dispute_err(*id, "no dispute"))?;
                d.claims.push(challenger_claim());
                if d.game.is_none() {
                    d.game = self.next_game(d, height)?;
                }
            }
        }
        account.balance -= bond;
        self.escrowed = escrowed;
        self.adjust_executor(sender, |e| e.disputes = e.disputes.saturating_add(1))?;
        self.put_ext(*id, ext)?;
        self.put_job(job)?;
        Ok(vec![Event::JobChallenged {
            job_id: *id,
            challenger: *sender,
            bond,
        }])
    }

    fn adjust_executor(
        &mut self,
        owner: &PublicKey,
        f: impl FnOnce(&mut crate::staking::Executor),
    ) -> Result<(), ExecutionError> {
        if let Some(e) = self.executor(owner) {
            let mut e = e.clone();
            f(&mut e);
            self.put_executor(e)?;
        }
        Ok(())
    }

    // ---- moves -------------------------------------------------------------

    /// The checks of a `DisputeStep`; returns the job, its extension with
    /// the move applied, and whether the move completed the round.
    pub(crate) fn check_step(
        &self,
        sender: &PublicKey,
        id: &JobId,
        step: &Step,
        height: u64,
    ) -> Result<(Job, JobExt), ExecutionError> {
        let job = self
            .job(id)
            .ok_or(ExecutionError::UnknownJob { job_id: *id })?;
        if job.status != JobStatus::Disputed {
            return Err(ExecutionError::JobState {
                job_id: *id,
                status: status_name(job.status),
                reason: "only a disputed job takes dispute steps",
            });
        }
        let mut ext = self.ext_or_default(id);
        let dispute = ext
            .dispute
            .as_mut()
            .ok_or_else(|| dispute_err(*id, "the job has no dispute record"))?;
        let claim = dispute
            .claim_of(sender)
            .ok_or_else(|| dispute_err(*id, "the sender stands behind no claim"))?;
        let claims = dispute.claims.clone();
        let game = dispute.game.as_mut().ok_or_else(|| {
            dispute_err(
                *id,
                "no game is in play (the claim is not in the current game)",
            )
        })?;
        if game.queued.is_some() {
            return Err(dispute_err(
                *id,
                "every operand is opened: the game waits for the referee",
            ));
        }
        if height > game.deadline {
            return Err(dispute_err(*id, "the round's deadline has passed"));
        }
        let is_a = usize::from(game.a.claim) == claim;
        if !is_a && usize::from(game.b.claim) != claim {
            return Err(dispute_err(
                *id,
                "the sender's claim is not in the current game",
            ));
        }
        let leaves = game.leaves;
        let mut side = if is_a { game.a.clone() } else { game.b.clone() };
        let complete = match (&game.stage, step) {
            (
                Stage::Open,
                Step::Open {
                    leaves,
                    leaves_root,
                },
            ) => {
                if side.moved {
                    return Err(dispute_err(*id, "this side has already opened its trace"));
                }
                if *leaves > MAX_TRACE_LEAVES {
                    return Err(dispute_err(
                        *id,
                        format!("{leaves} trace leaves is over the limit of {MAX_TRACE_LEAVES}"),
                    ));
                }
                if *leaves == 0 && *leaves_root != trace::merkle_root(&[]) {
                    return Err(dispute_err(*id, "an empty trace has the empty root"));
                }
                let claimed = claims.get(claim).map(|c| c.trace_root).unwrap_or_default();
                if trace::root(&job.model_id, &job.input_hashes, *leaves, leaves_root) != claimed {
                    return Err(dispute_err(
                        *id,
                        "the leaf count and root do not open the claimed trace root",
                    ));
                }
                side.leaves = Some(*leaves);
                side.root = Some(*leaves_root);
                true
            }
            (Stage::Bisect { .. }, Step::Split { left, right }) => {
                if side.moved {
                    return Err(dispute_err(*id, "this side has already split this range"));
                }
                if side.hash != Some(hash_node(left, right)) {
                    return Err(dispute_err(
                        *id,
                        "the halves do not hash to this side's hash of the range",
                    ));
                }
                side.split = Some((*left, *right));
                true
            }
            (Stage::Leaf { node }, Step::Leaf { outputs }) => {
                if side.moved {
                    return Err(dispute_err(*id, "this side has already stated its leaf"));
                }
                if let Some(o) = outputs.iter().find(|o| o.len > MAX_OUTPUT_BYTES) {
                    return Err(dispute_err(
                        *id,
                        format!(
                            "an output of {} bytes is over the limit of {MAX_OUTPUT_BYTES}",
                            o.len
                        ),
                    ));
                }
                let leaf = trace::leaf(*node, outputs.iter().map(|o| o.hash));
                if side.hash != Some(hash_leaf(&leaf)) {
                    return Err(dispute_err(
                        *id,
                        "the outputs do not hash to this side's leaf",
                    ));
                }
                side.outputs = outputs.clone();
                true
            }
            (Stage::Chunks { lo, hi, chunks, .. }, Step::Split { left, right }) => {
                if side.moved {
                    return Err(dispute_err(*id, "this side has already split this range"));
                }
                let whole = *lo == 0 && hi == chunks;
                if side.hash != Some(chunks::parent(left, right, whole)) {
                    return Err(dispute_err(
                        *id,
                        "the halves do not hash to this side's hash of the chunks",
                    ));
                }
                side.split = Some((*left, *right));
                true
            }
            (stage, Step::Openings { items }) => {
                // Openings are taken from the leaf where the traces part
                // on, beside the round's moves.
                let below = match stage {
                    Stage::Leaf { node } | Stage::Chunks { node, .. } => *node,
                    Stage::Referee {
                        target: Target::Output(_) | Target::Failure,
                    } => leaves,
                    Stage::Referee { target } => target
                        .node()
                        .ok_or_else(|| dispute_err(*id, "the leaf count needs no openings"))?,
                    Stage::Open | Stage::Bisect { .. } => {
                        return Err(dispute_err(
                            *id,
                            "openings come once the traces' point of difference is found",
                        ));
                    }
                };
                let root = side.root.unwrap_or_default();
                for o in items {
                    if o.node >= below {
                        return Err(dispute_err(
                            *id,
                            format!("node {} is not before node {below}", o.node),
                        ));
                    }
                    let leaf = trace::leaf(o.node, o.outputs.iter().copied());
                    if root_from_path(&leaf, o.node, leaves, &o.path) != Some(root) {
                        return Err(dispute_err(
                            *id,
                            format!(
                                "the opening of node {} does not prove into this side's root",
                                o.node
                            ),
                        ));
                    }
                }
                for o in items {
                    if !game.opened.iter().any(|k| k.node == o.node) {
                        // The record keeps at most MAX_OPENINGS in all.
                        if game.opened.len() >= MAX_OPENINGS {
                            return Err(dispute_err(
                                *id,
                                format!("over {MAX_OPENINGS} openings in one dispute game"),
                            ));
                        }
                        // Each side spends its own budget (the total stays
                        // within MAX_OPENINGS).
                        if side.openings as usize >= MAX_OPENINGS_PER_SIDE {
                            return Err(dispute_err(
                                *id,
                                format!(
                                    "over {MAX_OPENINGS_PER_SIDE} openings by one side in one \
                                     dispute game"
                                ),
                            ));
                        }
                        side.openings += 1;
                        game.opened.push(o.clone());
                    }
                }
                game.opened.sort_by_key(|o| o.node);
                if is_a {
                    game.a = side;
                } else {
                    game.b = side;
                }
                return Ok((job, ext));
            }
            (stage, step) => {
                let expected = match stage {
                    Stage::Open => "open",
                    Stage::Bisect { .. } | Stage::Chunks { .. } => "split",
                    Stage::Leaf { .. } => "leaf",
                    Stage::Referee { .. } => "openings",
                };
                return Err(dispute_err(
                    *id,
                    format!("the game expects `{expected}`, not `{}`", step.name()),
                ));
            }
        };
        side.moved = true;
        if is_a {
            game.a = side;
        } else {
            game.b = side;
        }
        if complete && game.a.moved && game.b.moved {
            advance(game, &claims, height, self.params.dispute_round_blocks)
                .map_err(|r| dispute_err(*id, r))?;
        }
        Ok((job, ext))
    }

    /// Applies a move. A move that leaves the game at the referee stage
    /// (the point of difference reached, or operands opened) asks the
    /// referee at once: a verdict ends the game, a missing operand waits
    /// for more openings, and a referee without the data fails the
    /// transaction's block on this replica before anything is written
    /// ([`ExecutionError::RefereeUnavailable`]).
    pub(crate) fn dispute_step(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        id: &JobId,
        step: &Step,
        height: u64,
        referee: &dyn Referee,
    ) -> Result<Vec<Event>, ExecutionError> {
        let (mut job, mut ext) = self.check_step(sender, id, step, height)?;
        if let Step::Openings { items } = step {
            check_operands(&job, &ext, items, referee)?;
        }
        let verdict = match self.referee_verdict(&job, &mut ext, height, referee)? {
            Adjudication::Decided(a, b, reason) => Some((a, b, reason)),
            Adjudication::Missing | Adjudication::Queued => None,
        };
        let mut events = vec![Event::DisputeStep {
            job_id: *id,
            executor: *sender,
            step: step.kind(),
        }];
        if let Some((a_lost, b_lost, reason)) = verdict {
            // The verdict may pay the sender: its account goes through the
            // state (the transaction stores `account` after the body).
            self.put_account(sender, account)?;
            self.finish_game(&mut job, &mut ext, a_lost, b_lost, reason, height)?;
            *account = self.load_account(sender)?.unwrap_or(*account);
            if let Some(d) = &ext.dispute
                && d.closed_height.is_some()
            {
                events.push(Event::DisputeDecided {
                    job_id: *id,
                    winner: d.winner,
                });
            }
            self.put_job(job)?;
        }
        self.put_ext(*id, ext)?;
        Ok(events)
    }

    /// Asks the referee about the game of `ext` if it is at the referee
    /// stage, within what is left of the block's referee budget
    /// (docs/disputes.md, "Referee budget"): a chunk over the whole
    /// per-block budget is unrefereeable, one over what is left queues the
    /// game (`Game::queued`) for a later block.
    fn referee_verdict(
        &mut self,
        job: &Job,
        ext: &mut JobExt,
        height: u64,
        referee: &dyn Referee,
    ) -> Result<Adjudication, ExecutionError> {
        let Some(game) = ext.dispute.as_ref().and_then(|d| d.game.as_ref()) else {
            return Ok(Adjudication::Missing);
        };
        let left = self.referee_work_left;
        let answer = match adjudicate(game, job, ext.dispute.as_ref(), referee, left) {
            Ok(Some((a, b, reason, work))) => {
                self.referee_work_left = left.saturating_sub(work);
                Adjudication::Decided(a, b, reason)
            }
            Ok(None) => Adjudication::Missing,
            Err(RefereeError::Unavailable(what)) => {
                return Err(ExecutionError::RefereeUnavailable {
                    job_id: job.id,
                    what,
                });
            }
            Err(RefereeError::Missing { .. }) => Adjudication::Missing,
            // The runtime's message is not consensus state: it may be
            // unbounded (node names) and differ between versions.
            // A failing run's work is not known: it is charged what the
            // block had left, which its price fitted within.
            Err(RefereeError::Failed(_)) => {
                self.referee_work_left = 0;
                Adjudication::Decided(true, true, VerdictReason::OperatorFails)
            }
            Err(RefereeError::OverBudget { work, .. })
                if work > self.params.max_referee_work_per_block =>
            {
                match failing_sides(game) {
                    // The failing side carries the burden of a failure it
                    // claims: one the referee cannot check loses.
                    Some((a_fails, b_fails)) => {
                        Adjudication::Decided(a_fails, b_fails, VerdictReason::FailureOverBudget)
                    }
                    None => Adjudication::Decided(false, false, VerdictReason::Unrefereeable),
                }
            }
            Err(RefereeError::OverBudget { .. }) => Adjudication::Queued,
        };
        if let Adjudication::Queued = answer
            && let Some(game) = ext.dispute.as_mut().and_then(|d| d.game.as_mut())
        {
            game.queued.get_or_insert(height);
        }
        Ok(answer)
    }

    /// Block start: games queued for the referee, oldest first (then by
    /// job), while the block's budget lasts. A queued chunk is never over
    /// the whole budget, so the first one always fits.
    fn run_queued_games(
        &mut self,
        height: u64,
        referee: &dyn Referee,
    ) -> Result<(), ExecutionError> {
        let mut queued: Vec<(u64, JobId)> = self
            .live_exts
            .iter()
            .filter_map(|(id, e)| Some((e.dispute.as_ref()?.game.as_ref()?.queued?, *id)))
            .collect();
        queued.sort_unstable();
        for (_, id) in queued {
            let (Some(mut job), Some(mut ext)) = (self.job(&id), self.job_ext(&id)) else {
                continue;
            };
            match self.referee_verdict(&job, &mut ext, height, referee)? {
                Adjudication::Decided(a_lost, b_lost, reason) => {
                    self.finish_game(&mut job, &mut ext, a_lost, b_lost, reason, height)?;
                    self.put_ext(id, ext)?;
                    self.put_job(job)?;
                }
                // What is left of the budget is too little for this one;
                // a smaller one later in the queue may still fit.
                Adjudication::Queued => {}
                Adjudication::Missing => {
                    return Err(ExecutionError::Internal {
                        reason: format!("queued game of job {id} misses an operand"),
                    });
                }
            }
        }
        Ok(())
    }

    // ---- block start -------------------------------------------------------

    /// What the referee may need to apply `tx` here: for a dispute step,
    /// the job's model and every tensor opened in its game so far or by
    /// the step. A replica fetches these before applying a block that
    /// holds the transaction (or a proposer before including it). A game
    /// that the same block opens (its job's last reveal comes earlier in
    /// the block) is not in this state yet: the step still needs the model,
    /// and has opened no tensor but its own.
    pub fn referee_needs(&self, tx: &crate::SignedTx) -> Option<RefereeWork> {
        let crate::TxBody::DisputeStep { job_id, step } = tx.body() else {
            return None;
        };
        let job = self.job(job_id)?;
        let ext = self.job_ext(job_id);
        let game = ext
            .as_ref()
            .and_then(|ext| ext.dispute.as_ref())
            .and_then(|dispute| dispute.game.as_ref());
        let mut tensors: Vec<TensorHash> = game
            .iter()
            .flat_map(|game| game.opened.iter())
            .flat_map(|o| o.outputs.iter().copied())
            .collect();
        if let Step::Openings { items } = step {
            tensors.extend(items.iter().flat_map(|o| o.outputs.iter().copied()));
        }
        tensors.sort_unstable();
        tensors.dedup();
        Some(RefereeWork {
            job_id: *job_id,
            model_id: job.model_id,
            tensors,
        })
    }

    /// What the referee may need at the next block's start: the model and
    /// opened tensors of every game queued for the referee's budget
    /// (docs/disputes.md, "Referee budget"). A replica holds them already
    /// (it applied the steps that opened them) unless it lost them.
    pub fn queued_referee_needs(&self) -> Vec<RefereeWork> {
        self.live_exts
            .iter()
            .filter_map(|(id, e)| {
                let game = e.dispute.as_ref()?.game.as_ref()?;
                game.queued?;
                let mut tensors: Vec<TensorHash> = game
                    .opened
                    .iter()
                    .flat_map(|o| o.outputs.iter().copied())
                    .collect();
                tensors.sort_unstable();
                tensors.dedup();
                Some(RefereeWork {
                    job_id: *id,
                    model_id: self.job(id)?.model_id,
                    tensors,
                })
            })
            .collect()
    }

    /// Block-start work of disputes and optimistic jobs (docs/disputes.md,
    /// "Block schedule"), after the job schedule: games past their deadline
    /// end by timeout, pending results whose window closed become final,
    /// and the results that became pending in the last block are drawn for
    /// audits with this block's randomness.
    pub(crate) fn run_disputes(
        &mut self,
        ctx: &BlockContext,
        referee: &dyn Referee,
    ) -> Result<(), ExecutionError> {
        let height = ctx.height;
        self.referee_work_left = self.params.max_referee_work_per_block;
        self.run_queued_games(height, referee)?;
        let late: Vec<JobId> = self
            .live_exts
            .iter()
            .filter(|(_, e)| {
                e.dispute
                    .as_ref()
                    .and_then(|d| d.game.as_ref())
                    .is_some_and(|g| g.deadline < height && g.queued.is_none())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let (Some(mut job), Some(mut ext)) = (self.job(&id), self.job_ext(&id)) else {
                continue;
            };
            let Some(game) = ext.dispute.as_ref().and_then(|d| d.game.clone()) else {
                continue;
            };
            let claims = ext.dispute.as_ref().map(|d| d.claims.as_slice());
            let (a_lost, b_lost, reason) = timeout(&game, claims.unwrap_or_default());
            self.finish_game(&mut job, &mut ext, a_lost, b_lost, reason, height)?;
            self.put_ext(id, ext)?;
            self.put_job(job)?;
        }
        // Pending results whose window closed.
        while let Some(&(until, id)) = self.pending.get_min() {
            if until >= height {
                break;
            }
            self.finalize_pending(&id, height)?;
        }
        // Audit draws for the results that became pending last block.
        let queued: Vec<JobId> = self.audit_queue.iter().copied().collect();
        self.audit_queue.clear();
        for id in queued {
            self.draw_audit(&id, &ctx.randomness)?;
        }
        Ok(())
    }

    fn finalize_pending(&mut self, id: &JobId, height: u64) -> Result<(), ExecutionError> {
        let mut ext = self.ext_or_default(id);
        ext.pending_until = None;
        let Some(mut job) = self.job(id) else {
            return self.put_ext(*id, ext);
        };
        // A challenged result whose games are over: decided now that its
        // window has closed (a game still in play decides at its end).
        if job.status == JobStatus::Disputed
            && let Some(mut dispute) = ext.dispute.take()
        {
            if dispute.game.is_none() && dispute.closed_height.is_none() {
                self.decide(&mut job, &mut dispute, height)?;
                self.put_job(job)?;
            }
            ext.dispute = Some(dispute);
            return self.put_ext(*id, ext);
        }
        self.put_ext(*id, ext)?;
        if job.status != JobStatus::Pending {
            return Ok(());
        }
        let winners: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        for w in &winners {
            self.adjust_executor(w, |e| e.active_jobs = e.active_jobs.saturating_sub(1))?;
        }
        self.pay_winners(&mut job, &winners)?;
        job.status = JobStatus::Final;
        job.closed_height = Some(height);
        self.put_job(job)
    }

    /// Draws whether a pending result is audited (`audit_rate_bps` of
    /// them) and by whom (stake-weighted, never its executor, requester or
    /// a party of its dispute). A result challenged before the draw is
    /// drawn for all the same: a challenge cannot pre-empt the audit.
    fn draw_audit(&mut self, id: &JobId, randomness: &[u8; 32]) -> Result<(), ExecutionError> {
        let Some(job) = self.job(id) else {
            return Ok(());
        };
        let ext = self.ext_or_default(id);
        let parties: Vec<PublicKey> = match (&job.status, &ext.dispute) {
            (JobStatus::Pending, _) => Vec::new(),
            (JobStatus::Disputed, Some(d)) if d.closed_height.is_none() => d
                .claims
                .iter()
                .flat_map(|c| c.members.iter().copied())
                .collect(),
            _ => return Ok(()),
        };
        let mut h = blake3::Hasher::new();
        h.update(AUDIT_DOMAIN);
        h.update(randomness);
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest.as_bytes()[..8]);
        if u64::from_le_bytes(b) % 10_000 >= u64::from(self.params.audit_rate_bps) {
            return Ok(());
        }
        let exclude: Vec<PublicKey> = job
            .slots
            .iter()
            .map(|s| s.executor)
            .chain(std::iter::once(job.requester))
            .chain(parties)
            .collect();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest.as_bytes()[..32]);
        if let Some(auditor) = self.select_auditor(&seed, &exclude) {
            let mut ext = ext;
            ext.auditor = Some(auditor);
            self.put_ext(*id, ext)?;
        }
        Ok(())
    }

    // ---- outcomes ----------------------------------------------------------

    /// Ends the current game: slashes the losers, records the verdict,
    /// starts the next game or decides the dispute.
    fn finish_game(
        &mut self,
        job: &mut Job,
        ext: &mut JobExt,
        a_lost: bool,
        b_lost: bool,
        reason: VerdictReason,
        height: u64,
    ) -> Result<(), ExecutionError> {
        let Some(mut dispute) = ext.dispute.take() else {
            return Ok(());
        };
        let Some(game) = dispute.game.take() else {
            ext.dispute = Some(dispute);
            return Ok(());
        };
        let target = match game.stage {
            Stage::Referee { target, .. } => Some(target),
            _ => None,
        };
        if reason == VerdictReason::Unrefereeable {
            dispute.verdicts.push(Verdict {
                a: game.a.claim,
                b: game.b.claim,
                target,
                a_lost: false,
                b_lost: false,
                reason,
                rounds: game.rounds,
                height,
            });
            self.abandon(job, &mut dispute, height)?;
            ext.dispute = Some(dispute);
            return Ok(());
        }
        let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        let mut forfeited = 0u64;
        for (claim, lost) in [(game.a.claim, a_lost), (game.b.claim, b_lost)] {
            if !lost {
                continue;
            }
            if let Some(c) = dispute.claims.get_mut(usize::from(claim)) {
                c.lost = true;
                forfeited = forfeited.saturating_add(self.forfeit(c, &slots)?);
            }
        }
        let winner = match (a_lost, b_lost) {
            (true, false) => Some(game.b.claim),
            (false, true) => Some(game.a.claim),
            _ => None,
        };
        let reward = match winner {
            Some(_) => share(forfeited, self.params.dispute_reward_bps),
            None => 0,
        };
        let mut paid = 0u64;
        if let Some(w) = winner
            && let Some(c) = dispute.claims.get(usize::from(w))
            && let Ok(n) = u64::try_from(c.members.len())
            && n > 0
        {
            let each = reward / n;
            for m in c.members.clone() {
                self.credit(&m, each)?;
                paid = paid.saturating_add(each);
            }
        }
        self.burn(forfeited.saturating_sub(paid))?;
        dispute.verdicts.push(Verdict {
            a: game.a.claim,
            b: game.b.claim,
            target,
            a_lost,
            b_lost,
            reason,
            rounds: game.rounds,
            height,
        });
        dispute.game = self.next_game(&dispute, height)?;
        // A challenged one-replica result is decided no earlier than its
        // window's end: a claim that loses at once (or stays silent) must
        // not end the dispute before an honest challenger or the audit
        // can enter (docs/disputes.md, "Challenges").
        let window_open = ext.pending_until.is_some_and(|until| height <= until);
        if dispute.game.is_none() && !window_open {
            self.decide(job, &mut dispute, height)?;
        }
        ext.dispute = Some(dispute);
        Ok(())
    }

    /// Takes a losing claim's challenge bonds and the stakes (bonded and
    /// unbonding) of its members who hold a slot of the job; returns the
    /// amount.
    fn forfeit(&mut self, claim: &Claim, slots: &[PublicKey]) -> Result<u64, ExecutionError> {
        self.escrowed = self.escrowed.saturating_sub(claim.bond);
        let mut total = claim.bond;
        for m in claim.members.iter().filter(|m| slots.contains(m)) {
            let mut taken = 0u64;
            self.adjust_executor(m, |e| {
                taken = e.stake.saturating_add(e.unbonding_total());
                e.stake = 0;
                e.unbonding.clear();
            })?;
            total = total.saturating_add(taken);
        }
        Ok(total)
    }

    fn credit(&mut self, owner: &PublicKey, amount: u64) -> Result<(), ExecutionError> {
        if amount == 0 {
            return Ok(());
        }
        let mut a = self.load_account(owner)?.unwrap_or_default();
        a.balance = a
            .balance
            .checked_add(amount)
            .ok_or(ExecutionError::BalanceOverflow {
                account: owner.to_string(),
            })?;
        self.put_account(owner, &a)
    }

    pub(crate) fn burn(&mut self, amount: u64) -> Result<(), ExecutionError> {
        if amount == 0 {
            return Ok(());
        }
        self.burned = self.burned.saturating_add(amount);
        let pool = self.fee_pool;
        self.put_fee_pool(pool).map_err(crate::state::internal)
    }

    /// Pays each winner the job's price out of its escrow (at most the
    /// escrow), counts the job as served by them and refunds the rest.
    fn pay_winners(&mut self, job: &mut Job, winners: &[PublicKey]) -> Result<(), ExecutionError> {
        let mut paid = 0u64;
        for w in winners {
            let pay = job.price_per_replica.min(job.escrow.saturating_sub(paid));
            self.credit(w, pay)?;
            paid = paid.saturating_add(pay);
            self.adjust_executor(w, |e| e.served = e.served.saturating_add(1))?;
        }
        self.refund(job, paid)
    }

    /// The dispute has one claim left (the job's result) or none (the job
    /// failed and is refunded); every party's lock is released and a
    /// winning challenger's bond returned.
    fn decide(
        &mut self,
        job: &mut Job,
        d: &mut Dispute,
        height: u64,
    ) -> Result<(), ExecutionError> {
        let winner = d.alive().map(|(i, _)| i).next();
        for c in &d.claims {
            for m in &c.members {
                self.adjust_executor(m, |e| e.disputes = e.disputes.saturating_sub(1))?;
            }
        }
        match winner.and_then(|w| d.claims.get(w).map(|c| (w, c.clone()))) {
            Some((w, claim)) => {
                // Each challenger in the claim gets its bond back: the
                // members who hold no slot, `challenge_bond` each.
                let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
                let challengers: Vec<PublicKey> = claim
                    .members
                    .iter()
                    .filter(|m| !slots.contains(m))
                    .copied()
                    .collect();
                if let Ok(n) = u64::try_from(challengers.len())
                    && n > 0
                {
                    let each = claim.bond / n;
                    self.escrowed = self.escrowed.saturating_sub(each * n);
                    for m in &challengers {
                        self.credit(m, each)?;
                    }
                }
                // The price pays the work: the claim's slot holders, never
                // a challenger (paid by its bond back and the reward), so
                // a sybil that joined the true claim first takes no price
                // and counts no service (issue #25, P4).
                let holders: Vec<PublicKey> = claim
                    .members
                    .iter()
                    .filter(|m| slots.contains(m))
                    .copied()
                    .collect();
                self.pay_winners(job, &holders)?;
                job.outputs = claim.outputs.clone();
                job.status = JobStatus::Final;
                d.winner = u8::try_from(w).ok();
            }
            None => {
                self.refund(job, 0)?;
                job.status = JobStatus::Failed;
            }
        }
        d.closed_height = Some(height);
        job.closed_height = Some(height);
        Ok(())
    }

    /// The referee cannot decide the dispute (a chunk over its budget):
    /// nobody is slashed, every challenger's bond and every lock is
    /// released, the job fails and its escrow goes back to the requester.
    fn abandon(
        &mut self,
        job: &mut Job,
        d: &mut Dispute,
        height: u64,
    ) -> Result<(), ExecutionError> {
        let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        for c in &d.claims {
            for m in &c.members {
                self.adjust_executor(m, |e| e.disputes = e.disputes.saturating_sub(1))?;
            }
            let challengers: Vec<PublicKey> = c
                .members
                .iter()
                .filter(|m| !slots.contains(m))
                .copied()
                .collect();
            if let Ok(n) = u64::try_from(challengers.len())
                && n > 0
                && !c.lost
            {
                let each = c.bond / n;
                self.escrowed = self.escrowed.saturating_sub(each * n);
                for m in &challengers {
                    self.credit(m, each)?;
                }
            }
        }
        d.game = None;
        self.refund(job, 0)?;
        job.status = JobStatus::Failed;
        d.closed_height = Some(height);
        job.closed_height = Some(height);
        Ok(())
    }
}

/// What the referee said about a game at its stage.
enum Adjudication {
    /// Which sides lost, and why.
    Decided(bool, bool, VerdictReason),
    /// Not at the referee stage, or an operand is not opened yet.
    Missing,
    /// Every operand is opened but the block's budget is spent.
    Queued,
}

/// The output hashes of canonical tensors.
/// At a [`Target::Fails`] question, which side states the failure.
fn failing_sides(game: &Game) -> Option<(bool, bool)> {
    match game.stage {
        Stage::Referee {
            target: Target::Fails { .. },
        } => Some((game.a.outputs.is_empty(), game.b.outputs.is_empty())),
        _ => None,
    }
}

/// Whether claim `i` is a failure: no outputs (docs/disputes.md, "Runs
/// that fail").
fn claims_failure(claims: &[Claim], i: u8) -> bool {
    claims
        .get(usize::from(i))
        .is_some_and(|c| c.outputs.is_empty())
}

fn hashes(tensors: &[Vec<u8>]) -> Vec<TensorHash> {
    tensors.iter().map(|t| blake3::hash(t).into()).collect()
}

/// Both sides moved: the next stage of the game.
fn advance(
    game: &mut Game,
    claims: &[Claim],
    height: u64,
    round_blocks: u64,
) -> Result<(), String> {
    match game.stage {
        Stage::Open => {
            let (la, lb) = (game.a.leaves.unwrap_or(0), game.b.leaves.unwrap_or(0));
            let (ra, rb) = (
                game.a.root.unwrap_or_default(),
                game.b.root.unwrap_or_default(),
            );
            if la != lb {
                game.stage = Stage::Referee {
                    target: Target::LeafCount,
                };
            } else if ra != rb {
                game.leaves = la;
                enter_range(game, 0, la, ra, rb);
            } else if claims_failure(claims, game.a.claim) != claims_failure(claims, game.b.claim) {
                // One trace, one claim failing: only a trace with a failed
                // leaf can back a failure, and none can back outputs.
                game.leaves = la;
                game.stage = Stage::Referee {
                    target: Target::Failure,
                };
            } else {
                game.leaves = la;
                let outs = |i: u8| {
                    claims
                        .get(usize::from(i))
                        .map(|c| hashes(&c.outputs))
                        .unwrap_or_default()
                };
                let (oa, ob) = (outs(game.a.claim), outs(game.b.claim));
                let o = oa.iter().zip(&ob).position(|(x, y)| x != y).unwrap_or(0);
                game.stage = Stage::Referee {
                    target: Target::Output(u32::try_from(o).unwrap_or(u32::MAX)),
                };
            }
        }
        Stage::Bisect { lo, hi } => {
            let (lo, hi, ha, hb) = half_that_differs(game, lo, hi)?;
            enter_range(game, lo, hi, ha, hb);
        }
        Stage::Leaf { node } => part_outputs(game, node),
        Stage::Chunks {
            node,
            output,
            lo,
            hi,
            chunks,
        } => {
            let (lo, hi, ha, hb) = half_that_differs(game, lo, hi)?;
            enter_chunks(game, node, output, lo, hi, chunks, ha, hb);
        }
        Stage::Referee { .. } => return Err("the referee stage has no rounds".into()),
    }
    game.rounds = game.rounds.saturating_add(1);
    game.deadline = height
        .checked_add(round_blocks)
        .ok_or("the deadline overflows")?;
    for s in [&mut game.a, &mut game.b] {
        s.moved = false;
        s.split = None;
    }
    Ok(())
}

/// Both sides split `[lo, hi)` (leaves or chunks, the same tree shape):
/// the half where they first differ, and each side's hash of it.
fn half_that_differs(
    game: &Game,
    lo: u64,
    hi: u64,
) -> Result<(u64, u64, MerkleNode, MerkleNode), String> {
    let (Some((la, ra)), Some((lb, rb))) = (game.a.split, game.b.split) else {
        return Err("a split is missing".into());
    };
    let k = split(hi - lo);
    Ok(if la != lb {
        (lo, lo + k, la, lb)
    } else {
        (lo + k, hi, ra, rb)
    })
}

/// Bisection continues on `[lo, hi)` where the sides hash to `ha`, `hb`;
/// a one-leaf range goes to the leaf stage.
fn enter_range(game: &mut Game, lo: u64, hi: u64, ha: MerkleNode, hb: MerkleNode) {
    game.a.hash = Some(ha);
    game.b.hash = Some(hb);
    game.stage = if hi - lo <= 1 {
        Stage::Leaf { node: lo }
    } else {
        Stage::Bisect { lo, hi }
    };
}

/// Both sides stated the outputs of `node`, the leaf where their traces
/// part: a different count goes to the referee; else the first output
/// where they differ is bisected by chunks (its length first, when they
/// state different ones).
fn part_outputs(game: &mut Game, node: u64) {
    let (oa, ob) = (&game.a.outputs, &game.b.outputs);
    if oa.is_empty() != ob.is_empty() {
        // A side states that the operator fails (an operator has at least
        // one output): the referee runs it.
        game.stage = Stage::Referee {
            target: Target::Fails { node },
        };
        return;
    }
    if oa.len() != ob.len() {
        game.stage = Stage::Referee {
            target: Target::Outputs { node },
        };
        return;
    }
    // The leaves differ, so some output hash does; `0` only if neither
    // side is honest about its leaf (unreachable: each list hashes to its
    // side's leaf, and those differ).
    let o = oa
        .iter()
        .zip(ob.iter())
        .position(|(x, y)| x.hash != y.hash)
        .unwrap_or(0);
    let output = u32::try_from(o).unwrap_or(u32::MAX);
    let pick = |v: &[LeafOutput]| {
        v.get(o).copied().unwrap_or(LeafOutput {
            hash: TensorHash::default(),
            len: 0,
        })
    };
    let (a, b) = (pick(oa), pick(ob));
    if a.len != b.len {
        game.stage = Stage::Referee {
            target: Target::Length { node, output },
        };
        return;
    }
    let n = chunks::chunk_count(a.len);
    enter_chunks(
        game,
        node,
        output,
        0,
        n,
        n,
        MerkleNode::from_bytes(*a.hash.as_bytes()),
        MerkleNode::from_bytes(*b.hash.as_bytes()),
    );
}

/// Chunk bisection continues on `[lo, hi)` where the sides hash to `ha`,
/// `hb`; a one-chunk range goes to the referee.
#[allow(clippy::too_many_arguments)]
fn enter_chunks(
    game: &mut Game,
    node: u64,
    output: u32,
    lo: u64,
    hi: u64,
    chunks: u64,
    ha: MerkleNode,
    hb: MerkleNode,
) {
    game.a.hash = Some(ha);
    game.b.hash = Some(hb);
    game.stage = if hi - lo <= 1 {
        Stage::Referee {
            target: Target::Chunk {
                node,
                output,
                chunk: lo,
            },
        }
    } else {
        Stage::Chunks {
            node,
            output,
            lo,
            hi,
            chunks,
        }
    };
}

/// Openings must be of the operands of the operator the game is about
/// (or of a disputed graph output's source), so nobody, a member of the
/// other claim or of one's own, can spend a side's openings on nodes the
/// referee does not need (issue #25).
fn check_operands(
    job: &Job,
    ext: &JobExt,
    items: &[crate::dispute::LeafOpening],
    referee: &dyn Referee,
) -> Result<(), ExecutionError> {
    let Some(game) = ext.dispute.as_ref().and_then(|d| d.game.as_ref()) else {
        return Ok(());
    };
    if let Stage::Referee {
        target: Target::Failure,
    } = game.stage
    {
        // The failing side shows a failed leaf of the trace: any node's.
        return match items.iter().find(|o| !o.outputs.is_empty()) {
            Some(o) => Err(dispute_err(
                job.id,
                format!(
                    "node {}: at a failure question only a failed leaf (no outputs) is opened",
                    o.node
                ),
            )),
            None => Ok(()),
        };
    }
    let node = match &game.stage {
        Stage::Leaf { node } | Stage::Chunks { node, .. } => Some(*node),
        Stage::Referee { target } => target.node(),
        Stage::Open | Stage::Bisect { .. } => None,
    };
    let allowed = match (node, &game.stage) {
        (Some(node), _) => referee.operands(&job.model_id, node),
        (
            None,
            Stage::Referee {
                target: Target::Output(o),
            },
        ) => referee.output_source(&job.model_id, *o).map(|s| match s {
            OutputSource::Node { node, .. } => vec![node],
            OutputSource::Input(_) | OutputSource::Constant(_) => Vec::new(),
        }),
        _ => Ok(Vec::new()),
    };
    let allowed = match allowed {
        // The leaf before the one where the traces part is always taken:
        // a `fails` question needs it (Runs that fail).
        Ok(mut a) => {
            if let Some(prev) = node.and_then(|n| n.checked_sub(1)) {
                a.push(prev);
                a.sort_unstable();
                a.dedup();
            }
            a
        }
        Err(RefereeError::Unavailable(what)) => {
            return Err(ExecutionError::RefereeUnavailable {
                job_id: job.id,
                what,
            });
        }
        Err(_) => Vec::new(),
    };
    // A failed leaf (no outputs) below the leaf where the traces part is
    // always taken: it shows the run failed earlier (Runs that fail).
    match items
        .iter()
        .find(|o| !o.outputs.is_empty() && allowed.binary_search(&o.node).is_err())
    {
        Some(o) => Err(dispute_err(
            job.id,
            format!("node {} is not an operand the referee needs", o.node),
        )),
        None => Ok(()),
    }
}

/// The game's deadline passed: sides that did not move lose; at the
/// referee stage, nobody gave it what it needs, so both lose, except at a
/// failure question, where only the failing side could open a failed
/// leaf, and it loses alone.
fn timeout(game: &Game, claims: &[Claim]) -> (bool, bool, VerdictReason) {
    let (a, b) = (!game.a.moved, !game.b.moved);
    match game.stage {
        Stage::Referee {
            target: Target::Failure,
        } => (
            claims_failure(claims, game.a.claim),
            claims_failure(claims, game.b.claim),
            VerdictReason::TimeoutOpenings,
        ),
        Stage::Referee { .. } => (true, true, VerdictReason::TimeoutOpenings),
        Stage::Open => (a, b, VerdictReason::TimeoutOpen),
        Stage::Bisect { .. } | Stage::Chunks { .. } => (a, b, VerdictReason::TimeoutSplit),
        Stage::Leaf { .. } => (a, b, VerdictReason::TimeoutLeaf),
    }
}

/// The length a side stated for `output` of the leaf where the traces
/// part.
fn stated_len(side: &Side, output: u32) -> Option<u64> {
    side.outputs
        .get(usize::try_from(output).ok()?)
        .map(|o| o.len)
}

/// Asks the referee about a game at the referee stage (`Ok(None)` at any
/// other stage): which sides lost, why, and the referee work it cost (at
/// most `max_work`, else [`RefereeError::OverBudget`]).
fn adjudicate(
    game: &Game,
    job: &Job,
    dispute: Option<&Dispute>,
    referee: &dyn Referee,
    max_work: u64,
) -> Result<Option<(bool, bool, VerdictReason, u64)>, RefereeError> {
    let Stage::Referee { target } = game.stage else {
        return Ok(None);
    };
    let opened = |node: u64, slot: u32| {
        game.opened
            .iter()
            .find(|o| o.node == node)
            .and_then(|o| o.outputs.get(usize::try_from(slot).ok()?).copied())
    };
    let failure = |i: u8| dispute.is_some_and(|d| claims_failure(&d.claims, i));
    match target {
        Target::Failure => {
            // A failed leaf opened (into the one root both sides opened)
            // shows the trace is a failed run's: no outputs can be its.
            if game.opened.iter().any(|o| o.outputs.is_empty()) {
                return Ok(Some((
                    !failure(game.a.claim),
                    !failure(game.b.claim),
                    VerdictReason::FailedLeaf,
                    0,
                )));
            }
            Ok(None)
        }
        Target::Fails { node } => {
            // Exactly one side stated no outputs (else the game would
            // have gone to `Outputs` or chunks).
            let (a_fails, b_fails) = (game.a.outputs.is_empty(), game.b.outputs.is_empty());
            // The leaves below `node` are both sides': a failed one there
            // (opened by the failing side) means the run failed before,
            // whatever `node` does on its operands (issue #25 review).
            if game
                .opened
                .iter()
                .any(|o| o.node < node && o.outputs.is_empty())
            {
                return Ok(Some((!a_fails, !b_fails, VerdictReason::FailedLeaf, 0)));
            }
            // Leaf `node − 1` says which: failed, the run failed before
            // (above); true, the failure is claimed at `node` itself. It
            // must be opened first, by either side, so no order of moves
            // (a member of the failing claim stating its leaf before the
            // honest one opens anything) reaches the referee without it.
            if node > 0 && !game.opened.iter().any(|o| o.node == node - 1) {
                return Ok(None);
            }
            let run = referee.run_whole(&job.model_id, node, &job.inputs, &opened, max_work)?;
            Ok(Some(if run.fails {
                (!a_fails, !b_fails, VerdictReason::Fails, run.work)
            } else {
                (a_fails, b_fails, VerdictReason::Fails, run.work)
            }))
        }
        Target::LeafCount => {
            let n = referee.leaf_count(&job.model_id)?;
            Ok(Some((
                game.a.leaves != Some(n),
                game.b.leaves != Some(n),
                VerdictReason::LeafCount,
                0,
            )))
        }
        Target::Outputs { node } => {
            let n = referee.output_count(&job.model_id, node)?;
            let wrong = |s: &Side| u32::try_from(s.outputs.len()).ok() != Some(n);
            Ok(Some((
                wrong(&game.a),
                wrong(&game.b),
                VerdictReason::OutputCount,
                0,
            )))
        }
        Target::Length { node, output } => {
            let c = referee.output_bytes(
                &job.model_id,
                node,
                output,
                (0, 0),
                &job.inputs,
                &opened,
                max_work,
            )?;
            let wrong = |s: &Side| stated_len(s, output) != Some(c.len);
            Ok(Some((
                wrong(&game.a),
                wrong(&game.b),
                VerdictReason::Length,
                c.work,
            )))
        }
        Target::Chunk {
            node,
            output,
            chunk,
        } => {
            // Both sides stated this length (else the game would have
            // gone to `Length`).
            let Some(len) = stated_len(&game.a, output) else {
                return Ok(Some((true, true, VerdictReason::Length, 0)));
            };
            let Some(range) = chunks::chunk_range(len, chunk) else {
                return Ok(Some((true, true, VerdictReason::Length, 0)));
            };
            let c = referee.output_bytes(
                &job.model_id,
                node,
                output,
                range,
                &job.inputs,
                &opened,
                max_work,
            )?;
            if c.len != len {
                // Two sides that agree on a wrong length are both wrong.
                return Ok(Some((true, true, VerdictReason::Length, c.work)));
            }
            let whole = chunks::chunk_count(len) == 1;
            let Some(right) = chunks::subtree_hash(&c.bytes, chunk, whole) else {
                return Ok(Some((true, true, VerdictReason::Length, c.work)));
            };
            Ok(Some((
                game.a.hash != Some(right),
                game.b.hash != Some(right),
                VerdictReason::Operator,
                c.work,
            )))
        }
        Target::Output(o) => {
            let truth = match referee.output_source(&job.model_id, o)? {
                OutputSource::Node { node, slot } => {
                    opened(node, slot).ok_or(RefereeError::Missing { node, slot })?
                }
                OutputSource::Input(k) => *usize::try_from(k)
                    .ok()
                    .and_then(|k| job.input_hashes.get(k))
                    .ok_or_else(|| RefereeError::Failed(format!("graph input {k} is missing")))?,
                OutputSource::Constant(h) => h,
            };
            let claim_out = |i: u8| {
                dispute
                    .and_then(|d| d.claims.get(usize::from(i)))
                    .and_then(|c| c.outputs.get(usize::try_from(o).ok()?))
                    .map(|t| blake3::hash(t).into())
            };
            Ok(Some((
                claim_out(game.a.claim) != Some(truth),
                claim_out(game.b.claim) != Some(truth),
                VerdictReason::Output,
                0,
            )))
        }
    }
}

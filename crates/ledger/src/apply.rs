//! Transaction admission and block application (docs/ledger.md,
//! "Admission and execution").

use glassbox_primitives::{OutputHash, TraceRoot};
use glassbox_types::{ManifestId, ModelId, PublicKey, SignedManifest};
use serde::{Deserialize, Serialize};

use crate::dispute::{NoReferee, Referee, StepKind};
use crate::error::{AdmissionError, BlockError, ExecutionError, TxError};
use crate::jobs::{JobId, Reveal};
use crate::limits;
use crate::records::{
    Account, Executor, Head, ModelRecord, Unbonding, capacity_ok, validate_endpoint,
};
use crate::serde_util;
use crate::state::State;
use crate::tx::{SignedTx, TxBody, TxHash};

/// What consensus says about the block being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockContext {
    /// The block's height: the state's height + 1.
    pub height: u64,
    /// The block's timestamp in ms since the Unix epoch; not earlier than
    /// the previous block's (the genesis time for the first block).
    pub timestamp_ms: u64,
    /// Public randomness nobody could predict or bias before the previous
    /// block was final: BLAKE3 of the consensus threshold seed of the
    /// parent's round (docs/jobs.md, "Executor selection"). Assigns the
    /// executors of the jobs submitted up to the previous block.
    pub randomness: [u8; 32],
}

/// Something a successful transaction did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Funds moved between accounts.
    Transferred {
        /// The sender.
        #[serde(with = "serde_util::public_key")]
        from: PublicKey,
        /// The recipient.
        #[serde(with = "serde_util::public_key")]
        to: PublicKey,
        /// The amount.
        amount: u64,
    },
    /// An executor registered (or re-registered).
    ExecutorRegistered {
        /// Its owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// Its bonded stake.
        stake: u64,
        /// Its declared capacity.
        capacity: u32,
        /// Its endpoint.
        endpoint: String,
    },
    /// An executor changed its capacity or endpoint.
    ExecutorUpdated {
        /// Its owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// The new capacity.
        capacity: u32,
        /// The new endpoint.
        endpoint: String,
    },
    /// An executor's bonded stake changed.
    StakeChanged {
        /// Its owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// The new bonded stake.
        stake: u64,
    },
    /// Stake started unbonding.
    Unbonding {
        /// The executor's owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// The amount.
        amount: u64,
        /// When it can be withdrawn.
        release_height: u64,
    },
    /// An executor deregistered (all its stake is unbonding).
    ExecutorDeregistered {
        /// Its owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
    },
    /// Released unbonding returned to the owner's balance.
    Withdrawn {
        /// The owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// The amount.
        amount: u64,
    },
    /// A model was published.
    ModelPublished {
        /// Its id.
        model_id: ModelId,
        /// Its manifest's id.
        manifest_id: ManifestId,
        /// Its name.
        name: String,
        /// Its version.
        version: String,
        /// Its publisher.
        #[serde(with = "serde_util::public_key")]
        publisher: PublicKey,
    },
    /// An inference job was submitted and its price escrowed.
    JobSubmitted {
        /// The job (the transaction's hash).
        job_id: JobId,
        /// The model.
        model_id: ModelId,
        /// Replicas.
        replicas: u8,
        /// The escrowed price.
        escrow: u64,
    },
    /// An executor committed to its result.
    ResultCommitted {
        /// The job.
        job_id: JobId,
        /// The executor.
        #[serde(with = "serde_util::public_key")]
        executor: PublicKey,
    },
    /// An executor revealed its result.
    ResultRevealed {
        /// The job.
        job_id: JobId,
        /// The executor.
        #[serde(with = "serde_util::public_key")]
        executor: PublicKey,
    },
    /// Every reveal agreed: the job is final and its executors were paid.
    JobFinal {
        /// The job.
        job_id: JobId,
        /// The agreed outputs' hash.
        output_hash: OutputHash,
        /// The agreed trace root.
        trace_root: TraceRoot,
    },
    /// Reveals disagree: the job is disputed and its executors' stakes
    /// locked.
    JobDisputed {
        /// The job.
        job_id: JobId,
    },
    /// An optimistic result was revealed: pending until `until`, open to
    /// challenges.
    JobPending {
        /// The job.
        job_id: JobId,
        /// The revealed output hash.
        output_hash: OutputHash,
        /// The revealed trace root.
        trace_root: TraceRoot,
        /// The last height a challenge is accepted.
        until: u64,
    },
    /// A staked executor contested a pending result.
    JobChallenged {
        /// The job.
        job_id: JobId,
        /// The challenger.
        #[serde(with = "serde_util::public_key")]
        challenger: PublicKey,
        /// Its bond.
        bond: u64,
    },
    /// A dispute was decided: `winner` is the claim that stands (`None`
    /// when every claim lost and the job failed).
    DisputeDecided {
        /// The job.
        job_id: JobId,
        /// The winning claim's index.
        winner: Option<u8>,
    },
    /// A party moved in a dispute game.
    DisputeStep {
        /// The job.
        job_id: JobId,
        /// The moving executor.
        #[serde(with = "serde_util::public_key")]
        executor: PublicKey,
        /// `open`, `split` or `openings`.
        step: StepKind,
    },
}

/// A transaction's result in a block: its events, or the execution error
/// that left only its fee and nonce applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// The transaction's hash.
    pub tx_hash: TxHash,
    /// Its events, or why its body failed.
    pub result: Result<Vec<Event>, ExecutionError>,
}

impl Serialize for TxOutcome {
    /// `{"tx_hash", "ok": true, "events": [...]}` or `{"tx_hash", "ok":
    /// false, "error": {"code", "message"}}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TxOutcome", 3)?;
        st.serialize_field("tx_hash", &self.tx_hash)?;
        match &self.result {
            Ok(events) => {
                st.serialize_field("ok", &true)?;
                st.serialize_field("events", events)?;
            }
            Err(e) => {
                st.serialize_field("ok", &false)?;
                st.serialize_field("error", e)?;
            }
        }
        st.end()
    }
}

impl State {
    /// Mempool admission against this state: size, fee floor, sender
    /// account, nonce at least the account's next one, balance covering the
    /// fee, and the signature for this chain. A transaction passing it may
    /// still fail admission in a block (another transaction spent the
    /// balance or used the nonce first).
    ///
    /// Job transactions also get their body's checks here (the model and
    /// inputs, replicas, price and balance of a `SubmitJob`; the job and
    /// slot of a commitment or reveal), so a request that would fail is
    /// refused before it costs a fee. In a block those failures are
    /// execution errors, as for every body.
    pub fn check_tx(&self, tx: &SignedTx) -> Result<(), TxError> {
        let account = self.admit(tx, false)?;
        let sender = tx.sender();
        let body = match tx.body() {
            TxBody::SubmitJob {
                model_id,
                inputs,
                replicas,
                max_fee,
            } => self
                .job_terms(
                    sender,
                    account.balance.saturating_sub(tx.fee()),
                    model_id,
                    inputs,
                    *replicas,
                    *max_fee,
                )
                .map(|_| ()),
            TxBody::CommitResult { job_id, .. } => self.check_commit(sender, job_id).map(|_| ()),
            TxBody::Challenge {
                job_id,
                output_hash,
                trace_root,
                outputs,
            } => self
                .check_challenge(
                    sender,
                    account.balance.saturating_sub(tx.fee()),
                    job_id,
                    output_hash,
                    trace_root,
                    outputs,
                    self.head.height.saturating_add(1),
                )
                .map(|_| ()),
            TxBody::DisputeStep { job_id, step } => self
                .check_step(sender, job_id, step, self.head.height.saturating_add(1))
                .map(|_| ()),
            TxBody::RevealResult {
                job_id,
                output_hash,
                trace_root,
                salt,
                outputs,
            } => self
                .check_reveal(
                    sender,
                    job_id,
                    &Reveal {
                        output_hash: *output_hash,
                        trace_root: *trace_root,
                        salt: *salt,
                        height: 0,
                    },
                    outputs,
                )
                .map(|_| ()),
            _ => Ok(()),
        };
        Ok(body?)
    }

    /// The admission checks; returns the sender's account. In a block
    /// (`exact_nonce`) the nonce must be exactly the account's.
    fn admit(&self, tx: &SignedTx, exact_nonce: bool) -> Result<Account, AdmissionError> {
        let p = &self.params;
        let size = tx.len();
        if u64::try_from(size).unwrap_or(u64::MAX) > u64::from(p.max_tx_bytes) {
            return Err(AdmissionError::TxTooLarge {
                size,
                max: u64::from(p.max_tx_bytes),
            });
        }
        let min = p.min_fee_for(size).unwrap_or(u64::MAX);
        if tx.fee() < min {
            return Err(AdmissionError::FeeTooLow {
                fee: tx.fee(),
                min,
                size,
            });
        }
        let account = self
            .load_account(tx.sender())
            .map_err(|e| AdmissionError::Internal {
                reason: e.to_string(),
            })?
            .ok_or(AdmissionError::UnknownSender {
                sender: tx.sender().to_string(),
            })?;
        if exact_nonce && tx.nonce() != account.nonce {
            return Err(AdmissionError::NonceMismatch {
                expected: account.nonce,
                got: tx.nonce(),
            });
        }
        if tx.nonce() < account.nonce {
            return Err(AdmissionError::NonceTooLow {
                expected: account.nonce,
                got: tx.nonce(),
            });
        }
        if tx.nonce() == u64::MAX {
            return Err(AdmissionError::NonceExhausted);
        }
        if account.balance < tx.fee() {
            return Err(AdmissionError::InsufficientFeeBalance {
                balance: account.balance,
                fee: tx.fee(),
            });
        }
        tx.verify_signature(&self.chain.chain_id)?;
        Ok(account)
    }

    /// Applies the block `txs` at `ctx` to a copy of this state and
    /// returns it with each transaction's outcome; `self` is unchanged.
    ///
    /// Fails when the height is not the next one, the timestamp goes back,
    /// the block is over `max_block_txs` or `max_block_bytes`, or any
    /// transaction fails admission (checked against the state left by the
    /// transactions before it, with the nonce exactly the account's).
    /// Otherwise each transaction's fee is charged and its nonce bumped,
    /// then its body runs: a body that fails is recorded in its outcome and
    /// changes nothing else. The block's fees go to the fee pool.
    ///
    /// With [`NoReferee`]: a block at which a dispute waits for the
    /// referee fails with [`BlockError::RefereeUnavailable`]; replicas
    /// use [`State::apply_block_with`].
    pub fn apply_block(
        &self,
        ctx: BlockContext,
        txs: &[SignedTx],
    ) -> Result<(State, Vec<TxOutcome>), BlockError> {
        self.apply_block_with(ctx, txs, &NoReferee)
    }

    /// [`State::apply_block`] with the referee that decides the disputes
    /// waiting for it at the block start ([`State::referee_work`] lists
    /// what it will be asked); a referee that lacks the data fails the
    /// block with [`BlockError::RefereeUnavailable`], which says nothing
    /// about the block's validity.
    pub fn apply_block_with(
        &self,
        ctx: BlockContext,
        txs: &[SignedTx],
        referee: &dyn Referee,
    ) -> Result<(State, Vec<TxOutcome>), BlockError> {
        // The limits first, before any work.
        let max_txs = self.params.max_block_txs;
        if u64::try_from(txs.len()).unwrap_or(u64::MAX) > u64::from(max_txs) {
            return Err(BlockError::TooManyTxs {
                count: txs.len(),
                max: max_txs,
            });
        }
        let bytes = txs.iter().fold(0u64, |acc, tx| {
            acc.saturating_add(u64::try_from(tx.len()).unwrap_or(u64::MAX))
        });
        if bytes > u64::from(self.params.max_block_bytes) {
            return Err(BlockError::TooManyBytes {
                bytes,
                max: self.params.max_block_bytes,
            });
        }
        let mut block = self.begin_block_with(ctx, referee)?;
        block.outcomes.reserve(txs.len());
        for tx in txs {
            block.push(tx)?;
        }
        block.finish()
    }

    /// Starts building the block at `ctx` on a copy of this state (checks
    /// the height and timestamp as [`State::apply_block`] does). Pushing
    /// transactions one by one and finishing gives exactly what
    /// `apply_block` gives for the pushed ones; a proposer uses it to skip
    /// inadmissible transactions without re-applying the others.
    pub fn begin_block(&self, ctx: BlockContext) -> Result<BlockBuilder<'static>, BlockError> {
        self.begin_block_with(ctx, &NoReferee)
    }

    /// [`State::begin_block`] with a referee (see
    /// [`State::apply_block_with`]).
    pub fn begin_block_with<'r>(
        &self,
        ctx: BlockContext,
        referee: &'r dyn Referee,
    ) -> Result<BlockBuilder<'r>, BlockError> {
        let expected = self
            .head
            .height
            .checked_add(1)
            .ok_or(BlockError::HeightOverflow)?;
        if ctx.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: ctx.height,
            });
        }
        if ctx.timestamp_ms < self.head.timestamp_ms {
            return Err(BlockError::TimestampDecreased {
                previous: self.head.timestamp_ms,
                got: ctx.timestamp_ms,
            });
        }
        let mut state = self.clone();
        state
            .put_head(Head {
                height: ctx.height,
                timestamp_ms: ctx.timestamp_ms,
            })
            .map_err(block_internal)?;
        state.run_schedule(&ctx).map_err(|e| BlockError::Internal {
            reason: format!("job schedule: {e}"),
        })?;
        state.run_disputes(&ctx).map_err(|e| BlockError::Internal {
            reason: format!("disputes: {e}"),
        })?;
        Ok(BlockBuilder {
            state,
            referee,
            ctx,
            bytes: 0,
            fees: 0,
            outcomes: Vec::new(),
            failed: None,
        })
    }

    /// One transaction: admission (the outer error, which invalidates the
    /// block), fee and nonce, then the body (the inner result).
    fn apply_tx(
        &mut self,
        tx: &SignedTx,
        height: u64,
        referee: &dyn Referee,
    ) -> Result<Result<Vec<Event>, ExecutionError>, TxError> {
        let account = self.admit(tx, true)?;
        let charged = Account {
            balance: account.balance.checked_sub(tx.fee()).ok_or(
                AdmissionError::InsufficientFeeBalance {
                    balance: account.balance,
                    fee: tx.fee(),
                },
            )?,
            nonce: account
                .nonce
                .checked_add(1)
                .ok_or(AdmissionError::NonceExhausted)?,
        };
        // Bodies change the sender's account only through `working`, which
        // is stored once below (or dropped when the body fails); they check
        // everything before their first write, so an error leaves no trace.
        let mut working = charged;
        let result = self.execute(
            tx.sender(),
            &mut working,
            tx.body(),
            tx.hash(),
            height,
            referee,
        );
        match result {
            Ok(events) => {
                self.put_account(tx.sender(), &working)?;
                Ok(Ok(events))
            }
            Err(
                e @ (ExecutionError::Internal { .. } | ExecutionError::RefereeUnavailable { .. }),
            ) => Err(e.into()),
            Err(e) => {
                self.put_account(tx.sender(), &charged)?;
                Ok(Err(e))
            }
        }
    }

    fn execute(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        body: &TxBody,
        tx_hash: TxHash,
        height: u64,
        referee: &dyn Referee,
    ) -> Result<Vec<Event>, ExecutionError> {
        match body {
            TxBody::Transfer { to, amount } => self.transfer(sender, account, to, *amount),
            TxBody::RegisterExecutor {
                stake,
                capacity,
                endpoint,
            } => self.register_executor(sender, account, *stake, *capacity, endpoint, height),
            TxBody::AddStake { amount } => self.add_stake(sender, account, *amount),
            TxBody::Unbond { amount } => self.unbond(sender, *amount, height),
            TxBody::Withdraw => self.withdraw(sender, account, height),
            TxBody::Deregister => self.deregister(sender, height),
            TxBody::UpdateExecutor { capacity, endpoint } => {
                self.update_executor(sender, *capacity, endpoint)
            }
            TxBody::PublishModel { manifest } => self.publish_model(manifest, height),
            TxBody::SubmitJob {
                model_id,
                inputs,
                replicas,
                max_fee,
            } => self.submit_job(
                sender,
                account,
                JobId::of_tx(tx_hash),
                model_id,
                inputs,
                *replicas,
                *max_fee,
                height,
            ),
            TxBody::CommitResult { job_id, commitment } => {
                self.commit_result(sender, job_id, *commitment, height)
            }
            TxBody::RevealResult {
                job_id,
                output_hash,
                trace_root,
                salt,
                outputs,
            } => self.reveal_result(
                sender,
                account,
                job_id,
                Reveal {
                    output_hash: *output_hash,
                    trace_root: *trace_root,
                    salt: *salt,
                    height,
                },
                outputs,
                height,
            ),
            TxBody::Challenge {
                job_id,
                output_hash,
                trace_root,
                outputs,
            } => self.challenge(
                sender,
                account,
                job_id,
                *output_hash,
                *trace_root,
                outputs,
                height,
            ),
            TxBody::DisputeStep { job_id, step } => {
                self.dispute_step(sender, account, job_id, step, height, referee)
            }
        }
    }

    fn transfer(
        &mut self,
        sender: &PublicKey,
        account: &mut Account,
        to: &PublicKey,
        amount: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let balance =
            account
                .balance
                .checked_sub(amount)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "amount",
                    balance: account.balance,
                    needed: amount,
                })?;
        if to != sender {
            let mut recipient = self.load_account(to)?.unwrap_or_default();
            recipient.balance =
                recipient
                    .balance
                    .checked_add(amount)
                    .ok_or(ExecutionError::BalanceOverflow {
                        account: to.to_string(),
                    })?;
            self.put_account(to, &recipient)?;
            account.balance = balance;
        }
        Ok(vec![Event::Transferred {
            from: *sender,
            to: *to,
            amount,
        }])
    }

    fn register_executor(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        stake: u64,
        capacity: u32,
        endpoint: &str,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        check_capacity(capacity)?;
        validate_endpoint(endpoint).map_err(|reason| ExecutionError::InvalidEndpoint { reason })?;
        let min = self.params.min_executor_stake;
        if stake < min {
            return Err(ExecutionError::StakeBelowMinimum {
                field: "stake",
                stake,
                min,
            });
        }
        let (unbonding, active_jobs, disputes, served) = match self.executor(owner) {
            Some(e) if e.is_active() => {
                return Err(ExecutionError::AlreadyRegistered {
                    owner: owner.to_string(),
                });
            }
            Some(e) => (e.unbonding.clone(), e.active_jobs, e.disputes, e.served),
            None => (Vec::new(), 0, 0, 0),
        };
        account.balance =
            account
                .balance
                .checked_sub(stake)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "stake",
                    balance: account.balance,
                    needed: stake,
                })?;
        self.put_executor(Executor {
            owner: *owner,
            stake,
            capacity,
            endpoint: endpoint.to_string(),
            registered_height: height,
            unbonding,
            active_jobs,
            disputes,
            served,
        })?;
        Ok(vec![Event::ExecutorRegistered {
            owner: *owner,
            stake,
            capacity,
            endpoint: endpoint.to_string(),
        }])
    }

    /// The sender's active executor, cloned for modification.
    fn active_executor(&self, owner: &PublicKey) -> Result<Executor, ExecutionError> {
        match self.executor(owner) {
            None => Err(ExecutionError::NotAnExecutor {
                owner: owner.to_string(),
            }),
            Some(e) if !e.is_active() => Err(ExecutionError::ExecutorInactive {
                owner: owner.to_string(),
            }),
            Some(e) => Ok(e.clone()),
        }
    }

    fn add_stake(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        amount: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let mut e = self.active_executor(owner)?;
        let balance =
            account
                .balance
                .checked_sub(amount)
                .ok_or(ExecutionError::InsufficientBalance {
                    field: "amount",
                    balance: account.balance,
                    needed: amount,
                })?;
        e.stake = e
            .stake
            .checked_add(amount)
            .ok_or(ExecutionError::StakeOverflow {
                owner: owner.to_string(),
                field: "stake",
            })?;
        let stake = e.stake;
        account.balance = balance;
        self.put_executor(e)?;
        Ok(vec![Event::StakeChanged {
            owner: *owner,
            stake,
        }])
    }

    fn release_height(&self, height: u64) -> Result<u64, ExecutionError> {
        height.checked_add(self.params.unbonding_blocks).ok_or(
            ExecutionError::ReleaseHeightOverflow {
                height,
                blocks: self.params.unbonding_blocks,
            },
        )
    }

    fn unbond(
        &mut self,
        owner: &PublicKey,
        amount: u64,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        if amount == 0 {
            return Err(ExecutionError::ZeroAmount { field: "amount" });
        }
        let mut e = self.active_executor(owner)?;
        check_unlocked(&e)?;
        let remaining = e
            .stake
            .checked_sub(amount)
            .ok_or(ExecutionError::InsufficientStake {
                stake: e.stake,
                amount,
            })?;
        let min = self.params.min_executor_stake;
        if remaining < min {
            return Err(ExecutionError::StakeBelowMinimum {
                field: "remaining stake (deregister to unbond all of it)",
                stake: remaining,
                min,
            });
        }
        let release_height = self.release_height(height)?;
        add_unbonding(&mut e, amount, release_height)?;
        e.stake = remaining;
        self.put_executor(e)?;
        Ok(vec![
            Event::Unbonding {
                owner: *owner,
                amount,
                release_height,
            },
            Event::StakeChanged {
                owner: *owner,
                stake: remaining,
            },
        ])
    }

    fn deregister(&mut self, owner: &PublicKey, height: u64) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self.active_executor(owner)?;
        check_unlocked(&e)?;
        if e.active_jobs > 0 {
            return Err(ExecutionError::ExecutorBusy {
                owner: owner.to_string(),
                active_jobs: e.active_jobs,
            });
        }
        let amount = e.stake;
        let release_height = self.release_height(height)?;
        add_unbonding(&mut e, amount, release_height)?;
        e.stake = 0;
        self.put_executor(e)?;
        Ok(vec![
            Event::Unbonding {
                owner: *owner,
                amount,
                release_height,
            },
            Event::StakeChanged {
                owner: *owner,
                stake: 0,
            },
            Event::ExecutorDeregistered { owner: *owner },
        ])
    }

    fn withdraw(
        &mut self,
        owner: &PublicKey,
        account: &mut Account,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self
            .executor(owner)
            .cloned()
            .ok_or(ExecutionError::NotAnExecutor {
                owner: owner.to_string(),
            })?;
        check_unlocked(&e)?;
        let (released, pending): (Vec<Unbonding>, Vec<Unbonding>) =
            e.unbonding.iter().partition(|u| u.release_height <= height);
        if released.is_empty() {
            return Err(ExecutionError::NothingToWithdraw {
                height,
                next_release: pending.first().map(|u| u.release_height),
            });
        }
        let amount = released
            .iter()
            .try_fold(0u64, |acc, u| acc.checked_add(u.amount))
            .ok_or(ExecutionError::StakeOverflow {
                owner: owner.to_string(),
                field: "unbonding",
            })?;
        let balance =
            account
                .balance
                .checked_add(amount)
                .ok_or(ExecutionError::BalanceOverflow {
                    account: owner.to_string(),
                })?;
        e.unbonding = pending;
        if e.stake == 0 && e.unbonding.is_empty() {
            self.remove_executor(owner);
        } else {
            self.put_executor(e)?;
        }
        account.balance = balance;
        Ok(vec![Event::Withdrawn {
            owner: *owner,
            amount,
        }])
    }

    fn update_executor(
        &mut self,
        owner: &PublicKey,
        capacity: u32,
        endpoint: &str,
    ) -> Result<Vec<Event>, ExecutionError> {
        let mut e = self.active_executor(owner)?;
        check_capacity(capacity)?;
        validate_endpoint(endpoint).map_err(|reason| ExecutionError::InvalidEndpoint { reason })?;
        e.capacity = capacity;
        e.endpoint = endpoint.to_string();
        self.put_executor(e)?;
        Ok(vec![Event::ExecutorUpdated {
            owner: *owner,
            capacity,
            endpoint: endpoint.to_string(),
        }])
    }

    fn publish_model(
        &mut self,
        manifest: &SignedManifest,
        height: u64,
    ) -> Result<Vec<Event>, ExecutionError> {
        let m = manifest.manifest();
        manifest
            .verify()
            .map_err(|_| ExecutionError::BadManifestSignature {
                publisher: m.publisher.to_string(),
            })?;
        if self.models.contains_key(&m.model_id) {
            return Err(ExecutionError::ModelExists {
                model_id: m.model_id,
            });
        }
        let version = m.version.to_string();
        if let Some(entry) = self.names.get(&m.name) {
            if entry.owner != m.publisher {
                return Err(ExecutionError::NameTaken {
                    name: m.name.clone(),
                    owner: entry.owner.to_string(),
                });
            }
            if entry.versions.contains_key(&version) {
                return Err(ExecutionError::VersionExists {
                    name: m.name.clone(),
                    version,
                });
            }
        }
        let record = ModelRecord::new(manifest.clone(), height);
        let event = Event::ModelPublished {
            model_id: record.model_id,
            manifest_id: record.manifest_id,
            name: m.name.clone(),
            version,
            publisher: record.publisher,
        };
        self.put_model(record)?;
        Ok(vec![event])
    }
}

fn block_internal(e: crate::smt::SmtError) -> BlockError {
    BlockError::Internal {
        reason: format!("storing a record: {e}"),
    }
}

/// A block being built on a copy of a state ([`State::begin_block`]).
pub struct BlockBuilder<'r> {
    state: State,
    referee: &'r dyn Referee,
    ctx: BlockContext,
    bytes: u64,
    fees: u64,
    outcomes: Vec<TxOutcome>,
    /// Set by an internal error, after which the builder refuses to go on.
    failed: Option<BlockError>,
}

impl std::fmt::Debug for BlockBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder")
            .field("state", &self.state)
            .field("ctx", &self.ctx)
            .field("txs", &self.outcomes.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl BlockBuilder<'_> {
    /// Appends `tx`: checks the block limits and the transaction's
    /// admission against the state so far, then applies it and returns its
    /// outcome. On an error the builder is unchanged (`TooManyTxs`,
    /// `TooManyBytes`, `InvalidTx` with the index it would have had), so
    /// the caller can skip the transaction and go on.
    pub fn push(&mut self, tx: &SignedTx) -> Result<&TxOutcome, BlockError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let index = self.outcomes.len();
        let params = self.state.params;
        let count = index.saturating_add(1);
        if u64::try_from(count).unwrap_or(u64::MAX) > u64::from(params.max_block_txs) {
            return Err(BlockError::TooManyTxs {
                count,
                max: params.max_block_txs,
            });
        }
        let bytes = self
            .bytes
            .saturating_add(u64::try_from(tx.len()).unwrap_or(u64::MAX));
        if bytes > u64::from(params.max_block_bytes) {
            return Err(BlockError::TooManyBytes {
                bytes,
                max: params.max_block_bytes,
            });
        }
        let fees = self
            .fees
            .checked_add(tx.fee())
            .ok_or(BlockError::FeeOverflow { index })?;
        // Admission is read-only: a refused transaction changes nothing.
        let result = match self.state.apply_tx(tx, self.ctx.height, self.referee) {
            Ok(result) => result,
            Err(TxError::Execution(ExecutionError::RefereeUnavailable { job_id, what })) => {
                // Nothing was written: the transaction can be skipped.
                return Err(BlockError::RefereeUnavailable {
                    index,
                    tx_hash: tx.hash(),
                    job_id,
                    what,
                });
            }
            Err(
                TxError::Execution(ExecutionError::Internal { reason })
                | TxError::Admission(AdmissionError::Internal { reason }),
            ) => {
                let e = BlockError::Internal {
                    reason: format!("transaction {index}: {reason}"),
                };
                self.failed = Some(e.clone());
                return Err(e);
            }
            Err(error) => {
                return Err(BlockError::InvalidTx {
                    index,
                    tx_hash: tx.hash(),
                    error,
                });
            }
        };
        self.bytes = bytes;
        self.fees = fees;
        self.outcomes.push(TxOutcome {
            tx_hash: tx.hash(),
            result,
        });
        self.outcomes.last().ok_or(BlockError::Internal {
            reason: "outcome missing".into(),
        })
    }

    /// The number of transactions pushed.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether none was pushed.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// The encoded bytes of the transactions pushed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The state so far (fees not yet in the fee pool).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Credits the block's fees to the fee pool and returns the new state
    /// with the outcomes.
    pub fn finish(mut self) -> Result<(State, Vec<TxOutcome>), BlockError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.fees > 0 {
            let pool =
                self.state
                    .fee_pool
                    .checked_add(self.fees)
                    .ok_or(BlockError::FeeOverflow {
                        index: self.outcomes.len(),
                    })?;
            self.state.put_fee_pool(pool).map_err(block_internal)?;
        }
        Ok((self.state, self.outcomes))
    }
}

/// Refuses to move stake of an executor locked by disputes.
fn check_unlocked(e: &Executor) -> Result<(), ExecutionError> {
    if e.disputes > 0 {
        return Err(ExecutionError::ExecutorLocked {
            owner: e.owner.to_string(),
            disputes: e.disputes,
        });
    }
    Ok(())
}

fn check_capacity(capacity: u32) -> Result<(), ExecutionError> {
    if capacity_ok(capacity) {
        Ok(())
    } else {
        Err(ExecutionError::InvalidCapacity {
            capacity,
            max: limits::MAX_CAPACITY,
        })
    }
}

/// Adds an unbonding entry, merging with an entry of the same release
/// height and keeping the list sorted by release height.
fn add_unbonding(e: &mut Executor, amount: u64, release_height: u64) -> Result<(), ExecutionError> {
    match e
        .unbonding
        .binary_search_by_key(&release_height, |u| u.release_height)
    {
        Ok(i) => {
            let owner = e.owner.to_string();
            let u = e.unbonding.get_mut(i).ok_or(ExecutionError::Internal {
                reason: "unbonding index out of range".into(),
            })?;
            u.amount = u
                .amount
                .checked_add(amount)
                .ok_or(ExecutionError::StakeOverflow {
                    owner,
                    field: "unbonding",
                })?;
        }
        Err(i) => {
            if e.unbonding.len() >= limits::MAX_UNBONDING_ENTRIES {
                return Err(ExecutionError::TooManyUnbonding {
                    max: limits::MAX_UNBONDING_ENTRIES,
                });
            }
            e.unbonding.insert(
                i,
                Unbonding {
                    amount,
                    release_height,
                },
            );
        }
    }
    Ok(())
}

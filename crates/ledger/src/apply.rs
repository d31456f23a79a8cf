//! Transaction admission and block application (docs/ledger.md,
//! "Admission and execution").

use glassbox_primitives::{OutputHash, TraceRoot};
use glassbox_types::{ManifestId, ModelId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::accounts::Account;
use crate::dispute::{NoReferee, Referee, StepKind};
use crate::error::{AdmissionError, BlockError, ExecutionError, TxError};
use crate::jobs::{JobId, Reveal};
use crate::records::Head;
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
    /// A paused executor resumed (docs/jobs.md, "Liveness").
    ExecutorResumed {
        /// Its owner.
        #[serde(with = "serde_util::public_key")]
        owner: PublicKey,
        /// The height of the miss that had paused it.
        paused_height: u64,
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
            TxBody::Resume => self.check_resume(sender).map(|_| ()),
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
        state.run_disputes(&ctx, referee).map_err(|e| match e {
            ExecutionError::RefereeUnavailable { job_id, what } => {
                BlockError::QueuedRefereeUnavailable { job_id, what }
            }
            e => BlockError::Internal {
                reason: format!("disputes: {e}"),
            },
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
            TxBody::Resume => self.resume(sender),
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

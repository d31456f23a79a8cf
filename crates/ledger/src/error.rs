//! The crate's error types (keys appear in their `ed25519:<hex>` text
//! form). Every message says what was wrong and where;
//! all of them are deterministic (no addresses, no timing), so replicas
//! report the same errors for the same inputs.

use glassbox_types::ModelId;

use crate::jobs::JobId;
use crate::smt::{ProofError, SmtError};
use crate::tx::TxHash;

pub use glassbox_primitives::DecodeError;

/// Why a transaction cannot enter a block at all: size, fee, sender,
/// nonce, fee balance or signature. A block containing one is invalid
/// ([`BlockError::InvalidTx`]); the mempool refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The encoded transaction is over the `max_tx_bytes` parameter.
    #[error("transaction is {size} bytes, over max_tx_bytes = {max}")]
    TxTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// The fee is under `min_fee + fee_per_byte × encoded size`.
    #[error("fee {fee} is below the minimum {min} (min_fee + fee_per_byte × {size} bytes)")]
    FeeTooLow {
        /// The transaction's fee.
        fee: u64,
        /// The minimum for its size.
        min: u64,
        /// Encoded size.
        size: usize,
    },
    /// The sender has no account (never received funds).
    #[error("sender {sender} has no account")]
    UnknownSender {
        /// The sender.
        sender: String,
    },
    /// The nonce was already used (mempool admission).
    #[error("nonce {got} is below the sender's next nonce {expected}")]
    NonceTooLow {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce is not exactly the account's next nonce (block execution).
    #[error("nonce {got} is not the sender's next nonce {expected}")]
    NonceMismatch {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The account's nonce is `u64::MAX`: it cannot send again.
    #[error("the sender's nonce is exhausted (u64::MAX)")]
    NonceExhausted,
    /// The balance does not cover the fee.
    #[error("sender balance {balance} cannot pay the fee {fee}")]
    InsufficientFeeBalance {
        /// The sender's balance.
        balance: u64,
        /// The fee.
        fee: u64,
    },
    /// The signature does not verify.
    #[error(
        "signature does not verify for sender {sender} on this chain \
         (wrong key, tampered transaction, or signed for another chain id)"
    )]
    BadSignature {
        /// The claimed sender.
        sender: String,
    },
    /// A field is over its encoding limit (when building a transaction).
    #[error("{field} is {len} bytes, over the limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A record could not be read (a ledger bug, never input-dependent).
    #[error("internal: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// Why an admitted transaction's body failed in a block: recorded in its
/// [`TxOutcome`](crate::TxOutcome), with no effect besides the fee and the
/// nonce. Two variants are never recorded: [`ExecutionError::Internal`]
/// (a ledger bug fails the block) and [`ExecutionError::RefereeUnavailable`]
/// (this replica lacks referee data, [`BlockError::RefereeUnavailable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// An amount that must be positive is zero.
    #[error("{field} must be positive")]
    ZeroAmount {
        /// The field.
        field: &'static str,
    },
    /// The balance (after the fee) does not cover an amount.
    #[error("balance {balance} (after the fee) is less than the {field} {needed}")]
    InsufficientBalance {
        /// What needed the funds (`amount`, `stake`).
        field: &'static str,
        /// The sender's balance after the fee.
        balance: u64,
        /// The amount needed.
        needed: u64,
    },
    /// Crediting an account would overflow `u64`.
    #[error("the balance of {account} would overflow u64")]
    BalanceOverflow {
        /// The account credited.
        account: String,
    },
    /// Adding to a stake or an unbonding entry would overflow `u64`.
    #[error("{field} of executor {owner} would overflow u64")]
    StakeOverflow {
        /// The executor.
        owner: String,
        /// `stake` or `unbonding`.
        field: &'static str,
    },
    /// `height + unbonding_blocks` overflows `u64`.
    #[error("the release height {height} + unbonding_blocks {blocks} overflows u64")]
    ReleaseHeightOverflow {
        /// The current height.
        height: u64,
        /// The unbonding period.
        blocks: u64,
    },
    /// The sender already has an active executor.
    #[error("executor {owner} is already registered")]
    AlreadyRegistered {
        /// The owner.
        owner: String,
    },
    /// The sender has no executor record.
    #[error("{owner} is not a registered executor")]
    NotAnExecutor {
        /// The sender.
        owner: String,
    },
    /// The executor deregistered (stake 0); it may register again.
    #[error("executor {owner} is deregistered; register it again first")]
    ExecutorInactive {
        /// The owner.
        owner: String,
    },
    /// A `Resume` from an executor that is not paused.
    #[error("executor {owner} is not paused; there is nothing to resume")]
    NotPaused {
        /// The owner.
        owner: String,
    },
    /// A stake would be below `min_executor_stake`.
    #[error("{field}: the stake would be {stake}, below min_executor_stake = {min}")]
    StakeBelowMinimum {
        /// `stake` (registration) or `remaining stake` (unbond).
        field: &'static str,
        /// The resulting stake.
        stake: u64,
        /// The minimum.
        min: u64,
    },
    /// Unbonding more than is staked.
    #[error("cannot unbond {amount}: the stake is {stake}")]
    InsufficientStake {
        /// The current stake.
        stake: u64,
        /// The amount requested.
        amount: u64,
    },
    /// The executor has the maximum number of unbonding entries.
    #[error(
        "executor already has {max} unbonding entries (the limit); withdraw matured ones first"
    )]
    TooManyUnbonding {
        /// The limit.
        max: usize,
    },
    /// No unbonding entry has reached its release height.
    #[error("nothing to withdraw at height {height}{}", next_release_text(.next_release))]
    NothingToWithdraw {
        /// The current height.
        height: u64,
        /// The earliest release height still pending, if any.
        next_release: Option<u64>,
    },
    /// The declared capacity is out of range.
    #[error("capacity {capacity} must be between 1 and {max}")]
    InvalidCapacity {
        /// The capacity.
        capacity: u32,
        /// The limit.
        max: u32,
    },
    /// The endpoint is not an acceptable URL.
    #[error("endpoint: {reason}")]
    InvalidEndpoint {
        /// Why.
        reason: String,
    },
    /// The manifest's signature does not verify against its publisher.
    #[error("manifest signature does not verify against its publisher {publisher}")]
    BadManifestSignature {
        /// The manifest's publisher.
        publisher: String,
    },
    /// The model is already published.
    #[error("model {model_id} is already published")]
    ModelExists {
        /// The model id.
        model_id: ModelId,
    },
    /// The name@version is already published.
    #[error("{name}@{version} is already published")]
    VersionExists {
        /// The name.
        name: String,
        /// The version.
        version: String,
    },
    /// The name belongs to another publisher.
    #[error("the name {name} belongs to publisher {owner}")]
    NameTaken {
        /// The name.
        name: String,
        /// Its owner.
        owner: String,
    },
    /// A job tensor is not a canonical encoding or does not fit the
    /// model's declared spec.
    #[error("{what} {index}: {reason}")]
    BadTensor {
        /// `input` or `output`.
        what: &'static str,
        /// Its position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A job has the wrong number of inputs or outputs.
    #[error("{got} {what}s given, the model declares {expected}")]
    TensorCount {
        /// `input` or `output`.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// How many the manifest declares.
        expected: usize,
    },
    /// A job's inputs or outputs are over `max_job_io_bytes`.
    #[error("{what}s are {bytes} bytes, over max_job_io_bytes = {max}")]
    JobIoTooLarge {
        /// `input` or `output`.
        what: &'static str,
        /// Their canonical bytes in all.
        bytes: u64,
        /// The limit.
        max: u32,
    },
    /// The model is not published.
    #[error("model {model_id} is not published")]
    UnknownModel {
        /// The model.
        model_id: ModelId,
    },
    /// `replicas` is 0 or over `max_job_replicas`.
    #[error("replicas {replicas} is not between 1 and max_job_replicas = {max}")]
    BadReplicas {
        /// The requested replicas.
        replicas: u8,
        /// The limit.
        max: u8,
    },
    /// The job's price is over the sender's `max_fee`.
    #[error("the job costs {price} ({replicas} × {per_replica}), over max_fee = {max_fee}")]
    PriceAboveMax {
        /// replicas × per replica.
        price: u64,
        /// Replicas.
        replicas: u8,
        /// Price per replica.
        per_replica: u64,
        /// The sender's limit.
        max_fee: u64,
    },
    /// The job's price overflows `u64`.
    #[error("the job's price overflows")]
    PriceOverflow,
    /// Fewer eligible executors than replicas.
    #[error("{needed} executors needed, {available} can take the job")]
    NotEnoughExecutors {
        /// Replicas.
        needed: u8,
        /// Active executors with spare capacity, other than the sender's.
        available: usize,
    },
    /// No such job.
    #[error("job {job_id} does not exist")]
    UnknownJob {
        /// The job.
        job_id: JobId,
    },
    /// The job is not in a state that accepts this transaction.
    #[error("job {job_id} is {status}: {reason}")]
    JobState {
        /// The job.
        job_id: JobId,
        /// Its status.
        status: &'static str,
        /// Why the transaction does not apply.
        reason: &'static str,
    },
    /// The sender holds no slot of the job.
    #[error("{executor} is not assigned to job {job_id}")]
    NotAssigned {
        /// The job.
        job_id: JobId,
        /// The sender.
        executor: String,
    },
    /// The reveal does not open the sender's commitment.
    #[error("the reveal does not match {executor}'s commitment on job {job_id}")]
    CommitmentMismatch {
        /// The job.
        job_id: JobId,
        /// The sender.
        executor: String,
    },
    /// `output_hash` is not the hash of the revealed outputs.
    #[error("output_hash is not the hash of the revealed outputs")]
    OutputHashMismatch,
    /// The executor still holds jobs.
    #[error("executor {owner} holds {active_jobs} open job(s)")]
    ExecutorBusy {
        /// The owner.
        owner: String,
        /// Its open assignments.
        active_jobs: u32,
    },
    /// The executor's stake is locked by disputes.
    #[error("executor {owner}'s stake is locked by {disputes} dispute(s)")]
    ExecutorLocked {
        /// The owner.
        owner: String,
        /// Its open disputes.
        disputes: u32,
    },
    /// The referee lacks the data to decide (never recorded as an outcome:
    /// it fails the block on this replica, see
    /// [`BlockError::RefereeUnavailable`]).
    #[error("the referee lacks {what} for job {job_id}")]
    RefereeUnavailable {
        /// The job.
        job_id: JobId,
        /// What is missing.
        what: String,
    },
    /// A dispute move or challenge that does not apply (docs/disputes.md).
    #[error("dispute on job {job_id}: {reason}")]
    Dispute {
        /// The job.
        job_id: JobId,
        /// What is wrong.
        reason: String,
    },
    /// A record could not be stored (a ledger bug, never input-dependent).
    #[error("internal: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// Why a transaction was refused: at admission, or (for the checks the
/// mempool runs on job bodies, [`crate::State::check_tx`]) by its body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Refused at admission.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// Its body fails.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
}

fn next_release_text(next: &Option<u64>) -> String {
    match next {
        Some(h) => format!(" (next release at height {h})"),
        None => " (nothing is unbonding)".to_string(),
    }
}

impl AdmissionError {
    /// A stable snake_case code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::TxTooLarge { .. } => "tx_too_large",
            AdmissionError::FeeTooLow { .. } => "fee_too_low",
            AdmissionError::UnknownSender { .. } => "unknown_sender",
            AdmissionError::NonceTooLow { .. } => "nonce_too_low",
            AdmissionError::NonceMismatch { .. } => "nonce_mismatch",
            AdmissionError::NonceExhausted => "nonce_exhausted",
            AdmissionError::InsufficientFeeBalance { .. } => "insufficient_fee_balance",
            AdmissionError::BadSignature { .. } => "bad_signature",
            AdmissionError::FieldTooLong { .. } => "field_too_long",
            AdmissionError::Internal { .. } => "internal",
        }
    }
}

impl ExecutionError {
    /// A stable snake_case code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            ExecutionError::ZeroAmount { .. } => "zero_amount",
            ExecutionError::InsufficientBalance { .. } => "insufficient_balance",
            ExecutionError::BalanceOverflow { .. } => "balance_overflow",
            ExecutionError::StakeOverflow { .. } => "stake_overflow",
            ExecutionError::ReleaseHeightOverflow { .. } => "release_height_overflow",
            ExecutionError::AlreadyRegistered { .. } => "already_registered",
            ExecutionError::NotAnExecutor { .. } => "not_an_executor",
            ExecutionError::ExecutorInactive { .. } => "executor_inactive",
            ExecutionError::NotPaused { .. } => "not_paused",
            ExecutionError::StakeBelowMinimum { .. } => "stake_below_minimum",
            ExecutionError::InsufficientStake { .. } => "insufficient_stake",
            ExecutionError::TooManyUnbonding { .. } => "too_many_unbonding",
            ExecutionError::NothingToWithdraw { .. } => "nothing_to_withdraw",
            ExecutionError::InvalidCapacity { .. } => "invalid_capacity",
            ExecutionError::InvalidEndpoint { .. } => "invalid_endpoint",
            ExecutionError::BadManifestSignature { .. } => "bad_manifest_signature",
            ExecutionError::ModelExists { .. } => "model_exists",
            ExecutionError::VersionExists { .. } => "version_exists",
            ExecutionError::NameTaken { .. } => "name_taken",
            ExecutionError::BadTensor { .. } => "bad_tensor",
            ExecutionError::TensorCount { .. } => "tensor_count",
            ExecutionError::JobIoTooLarge { .. } => "job_io_too_large",
            ExecutionError::UnknownModel { .. } => "unknown_model",
            ExecutionError::BadReplicas { .. } => "bad_replicas",
            ExecutionError::PriceAboveMax { .. } => "price_above_max",
            ExecutionError::PriceOverflow => "price_overflow",
            ExecutionError::NotEnoughExecutors { .. } => "not_enough_executors",
            ExecutionError::UnknownJob { .. } => "unknown_job",
            ExecutionError::JobState { .. } => "job_state",
            ExecutionError::NotAssigned { .. } => "not_assigned",
            ExecutionError::CommitmentMismatch { .. } => "commitment_mismatch",
            ExecutionError::OutputHashMismatch => "output_hash_mismatch",
            ExecutionError::ExecutorBusy { .. } => "executor_busy",
            ExecutionError::ExecutorLocked { .. } => "executor_locked",
            ExecutionError::Dispute { .. } => "dispute",
            ExecutionError::RefereeUnavailable { .. } => "referee_unavailable",
            ExecutionError::Internal { .. } => "internal",
        }
    }
}

impl TxError {
    /// Whether this error makes a block containing the transaction invalid
    /// (an admission error) rather than failing its body.
    pub fn is_admission(&self) -> bool {
        matches!(self, TxError::Admission(_))
    }

    /// A stable snake_case code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Admission(e) => e.code(),
            TxError::Execution(e) => e.code(),
        }
    }
}

/// `Serialize` as `{"code": "...", "message": "..."}`.
macro_rules! code_and_message {
    ($($ty:ty),*) => {
        $(impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("TxError", 2)?;
                st.serialize_field("code", self.code())?;
                st.serialize_field("message", &self.to_string())?;
                st.end()
            }
        })*
    };
}

code_and_message!(AdmissionError, ExecutionError, TxError);

/// Why a block cannot be applied. A proposer must never produce one of
/// these; a replica rejects the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Transaction `index` needs the referee, which lacks the data (the
    /// model or an opened tensor): not a verdict on the block, which this
    /// replica cannot apply until it fetches the data
    /// ([`crate::State::referee_needs`]). A builder is unchanged by it.
    #[error(
        "transaction {index} ({tx_hash}) needs the referee for job {job_id}, which lacks {what}"
    )]
    RefereeUnavailable {
        /// The transaction's index in the block.
        index: usize,
        /// Its hash.
        tx_hash: TxHash,
        /// The disputed job.
        job_id: JobId,
        /// What is missing.
        what: String,
    },
    /// The block's start decides games queued for the referee
    /// ([`crate::State::queued_referee_needs`]) and this replica lacks
    /// their data: as [`BlockError::RefereeUnavailable`], not a verdict on
    /// the block.
    #[error("the block's start needs the referee for job {job_id}, which lacks {what}")]
    QueuedRefereeUnavailable {
        /// The disputed job.
        job_id: JobId,
        /// What is missing.
        what: String,
    },
    /// The block's height is not the state's height + 1.
    #[error("block height {got} is not the next height {expected}")]
    WrongHeight {
        /// The state's height + 1.
        expected: u64,
        /// The block's height.
        got: u64,
    },
    /// The state is at `u64::MAX`.
    #[error("the chain height is exhausted (u64::MAX)")]
    HeightOverflow,
    /// The block's timestamp is earlier than the previous block's.
    #[error("block timestamp {got} ms is earlier than the previous block's {previous} ms")]
    TimestampDecreased {
        /// The previous block's timestamp.
        previous: u64,
        /// This block's.
        got: u64,
    },
    /// Too many transactions.
    #[error("block has {count} transactions, over max_block_txs = {max}")]
    TooManyTxs {
        /// The count.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// Too many bytes of transactions.
    #[error("block has {bytes} bytes of transactions, over max_block_bytes = {max}")]
    TooManyBytes {
        /// The sum of the encoded sizes.
        bytes: u64,
        /// The limit.
        max: u32,
    },
    /// A transaction fails admission.
    #[error("transaction {index} ({tx_hash}) is not admissible: {error}")]
    InvalidTx {
        /// Its index in the block.
        index: usize,
        /// Its hash.
        tx_hash: TxHash,
        /// Why.
        error: TxError,
    },
    /// The block's fee total or the fee pool would overflow `u64` (not
    /// reachable with a supply that fits in `u64`).
    #[error("fee total overflows u64 at transaction {index}")]
    FeeOverflow {
        /// The transaction's index.
        index: usize,
    },
    /// A record could not be stored (a ledger bug, never input-dependent).
    #[error("internal: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// Why a genesis is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The chain name is empty, too long or has other characters.
    #[error("chain_name `{name}`: {reason}")]
    ChainName {
        /// The name (clipped).
        name: String,
        /// Why.
        reason: String,
    },
    /// A parameter is out of range.
    #[error("params.{field}: {reason}")]
    Params {
        /// The parameter.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Too many accounts.
    #[error("{count} genesis accounts, over the limit of {max}")]
    TooManyAccounts {
        /// The count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Too many executors.
    #[error("{count} genesis executors, over the limit of {max}")]
    TooManyExecutors {
        /// The count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An address is listed twice.
    #[error("accounts[{index}]: address {address} is listed twice")]
    DuplicateAccount {
        /// The second occurrence.
        index: usize,
        /// The address.
        address: String,
    },
    /// An executor owner is listed twice.
    #[error("executors[{index}]: owner {owner} is listed twice")]
    DuplicateExecutor {
        /// The second occurrence.
        index: usize,
        /// The owner.
        owner: String,
    },
    /// An executor is invalid.
    #[error("executors[{index}] ({owner}): {reason}")]
    Executor {
        /// Its index.
        index: usize,
        /// Its owner.
        owner: String,
        /// Why.
        reason: String,
    },
    /// The balances and stakes add up to more than `u64::MAX`.
    #[error("the total supply (balances + stakes) overflows u64 at {at}")]
    SupplyOverflow {
        /// Where (`accounts[i]` or `executors[i]`).
        at: String,
    },
    /// A record could not be stored (a ledger bug).
    #[error("internal: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// Any error of this crate, for callers that propagate with `?`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`ProofError`].
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// See [`SmtError`].
    #[error(transparent)]
    Smt(#[from] SmtError),
    /// See [`TxError`].
    #[error(transparent)]
    Tx(#[from] TxError),
    /// See [`BlockError`].
    #[error(transparent)]
    Block(#[from] BlockError),
    /// See [`GenesisError`].
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}

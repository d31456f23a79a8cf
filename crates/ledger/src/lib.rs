//! Glassbox's ledger: the pure, deterministic state machine that consensus
//! replicates (docs/ledger.md).
//!
//! - [`State`]: accounts, executors and their stakes, published models and
//!   the chain's parameters, every record stored in an authenticated map
//!   ([`smt::Smt`], a persistent compressed sparse Merkle trie) under a
//!   typed [`StateKey`], so the 32-byte [`State::root`] commits to all of it
//!   and any record can be proven present or absent ([`Proof`],
//!   [`verify_proof`]). `Clone` is O(1); applying a block returns a new
//!   state and leaves the old one untouched.
//! - [`SignedTx`]: ed25519-signed transactions with a canonical, versioned
//!   encoding and a bounded decoder; [`TxBody`] lists what they do.
//! - [`State::check_tx`] (mempool admission) and [`State::apply_block`]
//!   (execution): a transaction failing admission makes its block invalid
//!   ([`BlockError`]); one failing execution is recorded in its
//!   [`TxOutcome`] and costs only its fee and nonce.
//! - [`GenesisState`]: the JSON genesis, validated, hashed into the chain
//!   id and turned into the height-0 state by [`State::genesis`].
//!
//! Pure and deterministic: no I/O, clocks, randomness or threads; no
//! floating point; every arithmetic step checked; every length and count
//! bounded by a named limit ([`limits`]); no panics on any input.

mod accounts;
mod apply;
pub mod dispute;
mod error;
mod genesis;
mod jobs;
mod records;
mod registry;
mod serde_util;
pub mod smt;
mod snapshot;
mod staking;
mod state;
pub mod switches;
mod tx;

pub use accounts::Account;
pub use apply::{BlockBuilder, BlockContext, Event, TxOutcome};
pub use dispute::arbitrate::{AUDIT_DOMAIN, RefereeWork};
pub use dispute::{JobExt, NoReferee, Referee, RefereeError, VerdictReason};
pub use error::{
    AdmissionError, BlockError, DecodeError, Error, ExecutionError, GenesisError, TxError,
};
pub use genesis::{GENESIS_VERSION, GenesisAccount, GenesisExecutor, GenesisState};
pub use glassbox_primitives::tensor::TensorHeader;
pub use jobs::schedule::{Concentration, Shares};
pub use jobs::{
    COMMITMENT_DOMAIN, Job, JobId, JobStatus, OUTPUTS_DOMAIN, Reveal, SELECTION_DOMAIN, Slot,
    commitment, outputs_hash, parse_tensor,
};
pub use records::{
    ChainInfo, DEFAULT_REFEREE_WORK, FeePool, Head, MIN_REFEREE_WORK, Params, RECORD_VERSION,
    StateKey, tags,
};
pub use registry::{
    ModelRecord, decode_model_version, decode_name_owner, encode_model_version, encode_name_owner,
};
pub use smt::{Proof, ProofError, SmtError, Terminal};
pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};
pub use staking::{Executor, Unbonding, validate_endpoint};

/// Checks that `proof` shows state key `key` holding `value` (`Some`) or
/// being absent (`None`) under the state root `root`: the light client's
/// check ([`smt::verify`]).
pub fn verify_proof(
    root: &glassbox_primitives::StateRoot,
    key: &[u8],
    value: Option<&[u8]>,
    proof: &Proof,
) -> Result<(), ProofError> {
    smt::verify(root.as_bytes(), key, value, proof)
}
pub use state::State;
pub use tx::{SignedTx, TX_SIGNING_DOMAIN, TX_VERSION, TxBody, TxHash};

/// Every limit on a length or count the ledger enforces. Those marked
/// *hard* bound what any parameter set may allow.
pub mod limits {
    /// Hard ceiling of `Params::max_tx_bytes` and of any decodable
    /// transaction.
    pub const HARD_MAX_TX_BYTES: u32 = 1 << 20;
    /// [`HARD_MAX_TX_BYTES`] as a `usize`.
    pub const HARD_MAX_TX_BYTES_USIZE: usize = HARD_MAX_TX_BYTES as usize;
    /// Floor of `Params::max_tx_bytes` (every body kind fits, bar large
    /// manifests).
    pub const MIN_MAX_TX_BYTES: u32 = 1024;
    /// Hard ceiling of `Params::max_block_txs`.
    pub const HARD_MAX_BLOCK_TXS: u32 = 100_000;
    /// Hard ceiling of `Params::max_block_bytes`.
    pub const HARD_MAX_BLOCK_BYTES: u32 = 64 << 20;
    /// Ceiling of `Params::unbonding_blocks`.
    pub const MAX_UNBONDING_BLOCKS: u64 = 100_000_000;
    /// Executor endpoint URL, in bytes.
    pub const MAX_ENDPOINT_BYTES: usize = 256;
    /// Executor capacity (declared concurrent jobs).
    pub const MAX_CAPACITY: u32 = 4096;
    /// Pending unbonding entries per executor.
    pub const MAX_UNBONDING_ENTRIES: usize = 16;
    /// A signed manifest carried by a transaction or a model record (the
    /// transaction size limit usually binds first).
    pub const MAX_SIGNED_MANIFEST_BYTES: usize = HARD_MAX_TX_BYTES_USIZE;
    /// Chain name, in bytes.
    pub const MAX_CHAIN_NAME_BYTES: usize = 64;
    /// Genesis accounts.
    pub const MAX_GENESIS_ACCOUNTS: usize = 1_000_000;
    /// Genesis executors.
    pub const MAX_GENESIS_EXECUTORS: usize = 10_000;
    /// Hard ceiling of `Params::max_job_replicas`.
    pub const HARD_MAX_JOB_REPLICAS: usize = 16;
    /// Hard ceiling of `Params::max_job_io_bytes` and of any job's inputs
    /// or outputs (canonical tensor bytes, in all).
    pub const HARD_MAX_JOB_IO_BYTES: usize = HARD_MAX_TX_BYTES_USIZE;
    /// Input or output tensors of one job.
    pub const MAX_JOB_TENSORS: usize = 64;
    /// Executors that may miss a deadline on one job before it fails.
    pub const MAX_JOB_MISSES: usize = 16;
    /// Ceiling of the commit and reveal windows, in blocks.
    pub const MAX_JOB_WINDOW_BLOCKS: u64 = 100_000;
}

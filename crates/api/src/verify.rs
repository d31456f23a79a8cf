//! Proof-checked reads: a [`Proven`] answer becomes a typed record only
//! after its key is the one asked for, its proof verifies against the
//! answer's state root, and its canonical bytes decode. The JSON `value`
//! beside them is never read here.
//!
//! What this proves is that the record is in (or absent from) the state
//! under `state_root`; that the root itself is the network's is a separate
//! check against the block's finalization certificate (a job receipt
//! carries one, docs/jobs.md "Receipt").

use glassbox_ledger::{
    Account, DecodeError, Executor, Job, JobExt, ModelRecord, ProofError, StateKey,
    decode_model_version, verify_proof,
};
use glassbox_primitives::{BlockDigest, ModelId, StateRoot, hex, unhex_vec};

use crate::wire::Proven;

/// Largest record a proven answer may carry, in bytes (the client bounds
/// the whole answer anyway).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// A ledger record a client can read from its canonical bytes.
pub trait Record: Sized {
    /// What the record is, for errors.
    const WHAT: &'static str;
    /// Decodes the canonical encoding.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! record {
    ($($ty:ty => $what:literal),* $(,)?) => {
        $(impl Record for $ty {
            const WHAT: &'static str = $what;
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                <$ty>::decode(bytes)
            }
        })*
    };
}

record!(
    Account => "account",
    Executor => "executor",
    ModelRecord => "model record",
    Job => "job",
    JobExt => "job extension",
);

/// A `name@version` index entry: the model registered under them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionEntry(pub ModelId);

impl Record for VersionEntry {
    const WHAT: &'static str = "name@version entry";
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_model_version(bytes).map(VersionEntry)
    }
}

/// A record read at a finalized block, its proof checked against
/// `state_root`. `height` and `block` are the node's word: what binds them
/// to the root is the block's header and its finalization certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<R> {
    /// Height of the block whose state was read (as the node says).
    pub height: u64,
    /// Its digest (as the node says).
    pub block: BlockDigest,
    /// Its state root, which the record's proof verifies against.
    pub state_root: StateRoot,
    /// The record; `None` when the state proves it absent.
    pub record: Option<R>,
}

/// Why a proven answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The answer proves another key than the one asked for.
    #[error("the answer proves key {found}, not the {what} key {expected}")]
    Key {
        /// The record asked for.
        what: &'static str,
        /// The key asked for, hex.
        expected: String,
        /// The answer's key.
        found: String,
    },
    /// `record` is not hex of at most [`MAX_RECORD_BYTES`].
    #[error("the {what}'s `record`: {reason}")]
    Hex {
        /// The record asked for.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The proof does not show `record` under `state_root`.
    #[error("the {what}'s proof does not verify against state root {state_root}: {source}")]
    Proof {
        /// The record asked for.
        what: &'static str,
        /// The answer's state root.
        state_root: StateRoot,
        /// Why.
        source: ProofError,
    },
    /// The proven bytes are not a valid record.
    #[error("the proven {what} does not decode: {source}")]
    Decode {
        /// The record asked for.
        what: &'static str,
        /// Why.
        source: DecodeError,
    },
}

impl<V> Proven<V> {
    /// The record under `key`, after checking that the answer is about
    /// `key`, that its proof verifies against its state root, and that the
    /// proven bytes decode as an `R`.
    pub fn verify<R: Record>(&self, key: &StateKey) -> Result<Verified<R>, VerifyError> {
        let what = R::WHAT;
        let key_bytes = key.to_bytes();
        let expected = hex(&key_bytes);
        if self.key != expected {
            return Err(VerifyError::Key {
                what,
                expected,
                found: glassbox_primitives::clip(&self.key, 80),
            });
        }
        let bytes = self
            .record
            .as_deref()
            .map(|h| unhex_vec(h, MAX_RECORD_BYTES))
            .transpose()
            .map_err(|reason| VerifyError::Hex { what, reason })?;
        verify_proof(&self.state_root, &key_bytes, bytes.as_deref(), &self.proof).map_err(
            |source| VerifyError::Proof {
                what,
                state_root: self.state_root,
                source,
            },
        )?;
        let record = bytes
            .as_deref()
            .map(R::decode)
            .transpose()
            .map_err(|source| VerifyError::Decode { what, source })?;
        Ok(Verified {
            height: self.height,
            block: self.block,
            state_root: self.state_root,
            record,
        })
    }
}

//! Glassbox's byte-level contracts, each defined once: typed 32-byte
//! digests ([`TensorHash`], [`TraceRoot`], [`OutputHash`], ...), the
//! `blake3:<hex>` text ids ([`ModelId`], [`ManifestId`], [`Hash`]), lower-case
//! hex, the canonical little-endian encoder and decoder ([`codec`]), every
//! domain-separation tag ([`tags`]), the canonical tensor encoding's
//! check ([`tensor`]) and the execution-trace commitment ([`trace`]).
//!
//! Every other crate (runtime, types, ledger, node, CLI) takes these from
//! here, so a consensus byte changes in one place only; the frozen-format
//! fixtures in `tests/golden.rs` make any such change a failing test.
//! Pure: no I/O, no allocation beyond what a caller's input bounds.

pub mod chunks;
pub mod codec;
mod digest;
mod error;
pub mod hex;
mod id;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod tags;
pub mod tensor;
pub mod trace;

pub use digest::{
    BlockDigest, ChainId, Commitment, Digest, MerkleNode, OutputHash, Salt, StateRoot, TensorHash,
    TraceLeaf, TraceRoot,
};
pub use error::{DecodeError, ParseError};
pub use hex::{clip, hex, unhex, unhex_vec};
pub use id::{Hash, JobId, ManifestId, ModelId, TxHash};

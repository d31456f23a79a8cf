//! Glassbox's on-disk storage, shared by the CLI and the node:
//!
//! - [`BlobStore`]: content-addressed files named by their BLAKE3 hash,
//!   written through a temp file, fsync and atomic rename, verified on read.
//! - [`Registry`]: signed manifests stored by manifest id and an index
//!   `name@version -> manifest id` that never lets one publisher take over
//!   another's name@version.
//! - [`keyfile`]: secret key files created `0600`, never overwritten.
//! - [`stream`]: verified streaming; each blob's BLAKE3 tree outboard and
//!   slices a downloader checks chunk by chunk against the model id.
//! - [`DirLock`]: an exclusive lock on a data directory (one node per
//!   directory, no wipe under a running one).
//! - [`write_private`]: a durable, owner-only atomic file replacement
//!   (genesis, configuration and key files of a node).
//!
//! Synchronous `std::fs` only (no async runtime).

mod blob;
mod fsutil;
pub mod keyfile;
mod lock;
mod registry;
pub mod stream;

use std::path::PathBuf;

pub use blob::{BlobStore, STALE_TEMP_AGE};
pub use fsutil::write_private;
pub use lock::{DirLock, LOCK_FILE};
pub use registry::{Entry, Published, Registry};
pub use stream::{SliceError, SliceRequest};

use glassbox_types::{ManifestId, ModelId};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A manifest, id or key did not parse or verify.
    #[error(transparent)]
    Types(#[from] glassbox_types::Error),
    /// Content over a size limit.
    #[error("{what} is over the limit of {max_bytes} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        max_bytes: u64,
    },
    /// Stored content does not match its name or expected hash.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The stored file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Content hashed to something other than expected.
    #[error("content hash {actual} does not match the expected {expected}")]
    HashMismatch {
        /// The expected id.
        expected: ModelId,
        /// The content's actual id.
        actual: ModelId,
    },
    /// Another process holds a directory's lock.
    #[error(
        "{} is in use by process {}: stop it, or use another directory",
        dir.display(),
        holder.map_or_else(|| "(unknown)".to_string(), |p| p.to_string())
    )]
    Locked {
        /// The locked directory.
        dir: PathBuf,
        /// The holder's process id, when its lock file names one.
        holder: Option<u32>,
    },
    /// Nothing matches a lookup.
    #[error("not found: {0}")]
    NotFound(String),
    /// A model's blob is not in the store.
    #[error("the blob of model {0} is not in the store")]
    MissingBlob(ModelId),
    /// The name@version belongs to another publisher.
    #[error(
        "{name}@{version} is already published by another publisher ({publisher}); it was not overwritten"
    )]
    NameTaken {
        /// The model name.
        name: String,
        /// The version.
        version: String,
        /// The owner of that name@version.
        publisher: String,
    },
    /// The publisher already published this name@version with other content.
    #[error(
        "{name}@{version} is already published with a different manifest ({existing}); publish a new version"
    )]
    VersionExists {
        /// The model name.
        name: String,
        /// The version.
        version: String,
        /// The manifest already there.
        existing: ManifestId,
    },
    /// A key file is unsafe or malformed.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A slice request is invalid or over its limit.
    #[error(transparent)]
    Slice(#[from] SliceError),
    /// The OS random source failed.
    #[error("no randomness from the OS: {0}")]
    Random(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

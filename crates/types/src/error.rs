//! The crate's error type.

use glassbox_primitives::{DecodeError, ParseError};

/// Why a value could not be parsed, encoded, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A text form (id, key, signature) did not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A manifest field is out of its allowed range or form.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// Bytes are not a canonical encoding.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A signature did not verify against the publisher's key.
    #[error("signature does not verify against the publisher key {0}")]
    BadSignature(String),
    /// The signing key is not the manifest's publisher key.
    #[error("the signing key {signer} is not the manifest's publisher {publisher}")]
    WrongSigner {
        /// The key that tried to sign.
        signer: String,
        /// The manifest's publisher.
        publisher: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

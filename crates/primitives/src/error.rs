//! The crate's errors: bytes that are not a canonical encoding, text that
//! is not a canonical form.

/// Bytes that are not a canonical encoding of `what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} at byte {offset}: {reason}")]
pub struct DecodeError {
    /// What was being decoded (`transaction`, `manifest`, `proof`, ...).
    pub what: &'static str,
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// Why.
    pub reason: String,
}

/// A text form (id, digest, key, signature) that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct ParseError {
    /// What was being parsed.
    pub what: &'static str,
    /// The input, clipped to 80 characters.
    pub input: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ParseError {
    /// The error for untrusted `input`, which is clipped.
    pub fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        ParseError {
            what,
            input: crate::clip(input, 80),
            reason: reason.into(),
        }
    }
}

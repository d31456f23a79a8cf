//! Glassbox's shared data types: content ids, ed25519 keys and signatures,
//! model manifests and their canonical binary encoding (docs/manifest.md).
//!
//! Pure: no file or network I/O. Key generation takes its 32 random bytes
//! from the caller ([`SecretKey::from_seed`]).

mod codec;
mod error;
mod id;
mod keys;
mod manifest;

pub use error::{Error, Result};
pub use id::{Hash, ManifestId, ModelId};
pub use keys::{PublicKey, SecretKey, Signature};
pub use manifest::{
    CostSpec, DimSpec, FORMAT_VERSION, Limits, Manifest, Parent, Relation, SIGNING_DOMAIN,
    SignedManifest, Source, TensorSpec, validate_name,
};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Decodes lower-case hex of at most `max_bytes` bytes; the message says
/// what is wrong (odd length, over the limit, a character that is not a
/// lower-case hex digit).
pub fn unhex_vec(s: &str, max_bytes: usize) -> std::result::Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    if s.len() / 2 > max_bytes {
        return Err(format!(
            "{} bytes of hex, over the limit of {max_bytes}",
            s.len() / 2
        ));
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Ok((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect()
}

fn hex_digit(c: u8) -> std::result::Result<u8, String> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!(
            "`{}` is not a lower-case hex digit",
            char::from(c).escape_default()
        )),
    }
}

/// Decodes exactly `N` bytes of lower-case hex.
pub(crate) fn unhex<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(format!(
            "expected {} hex digits, found {}",
            2 * N,
            s.chars().count()
        ));
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Ok(out)
}

/// At most `max_chars` characters of untrusted text, for error messages.
pub(crate) fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

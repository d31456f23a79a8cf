//! ed25519 keys and signatures with text forms:
//! `ed25519:<64 hex>` (public key), `ed25519-secret:<64 hex>` (secret seed),
//! `ed25519:<128 hex>` (signature).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::{DecodeError, ParseError, hex, unhex};

use crate::Error;

/// An ed25519 public key (a valid, canonically encoded curve point).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

/// An ed25519 secret key. Its `Debug` is redacted and it has no `Display`;
/// the text form is only reachable through [`SecretKey::to_secret_text`].
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl PublicKey {
    /// The text prefix.
    pub const PREFIX: &'static str = "ed25519:";

    /// Parses 32 bytes as a point; fails when they are not a valid point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|e| ParseError::new("public key", &hex(bytes), e.to_string()))?;
        if key.is_weak() {
            return Err(
                ParseError::new("public key", &hex(bytes), "a small-order (weak) key").into(),
            );
        }
        Ok(PublicKey(key))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Writes the 32-byte encoding.
    pub fn write_to(&self, w: &mut Writer) {
        w.bytes(&self.to_bytes());
    }

    /// Reads a 32-byte encoding that must be a valid, non-small-order
    /// point; `field` names it in the error.
    pub fn read_from(r: &mut Reader<'_>, field: &str) -> Result<Self, DecodeError> {
        let at = r.pos();
        let bytes = r.array::<32>()?;
        PublicKey::from_bytes(&bytes).map_err(|e| r.err_at(at, format!("{field}: {e}")))
    }

    /// Verifies `signature` over `message` (strict: no malleable or
    /// small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), Error> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| Error::BadSignature(self.to_string()))
    }
}

impl SecretKey {
    /// The text prefix of [`SecretKey::to_secret_text`].
    pub const PREFIX: &'static str = "ed25519-secret:";

    /// The key whose 32-byte seed is `seed`. Callers take the seed from a
    /// cryptographically secure source (the OS) for real keys.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// The secret text form `ed25519-secret:<hex seed>`, for key files only.
    pub fn to_secret_text(&self) -> String {
        format!("{}{}", Self::PREFIX, hex(self.0.as_bytes()))
    }

    /// Parses [`SecretKey::to_secret_text`]'s form. Errors never echo the input.
    pub fn from_secret_text(s: &str) -> Result<Self, Error> {
        let err = |reason: String| ParseError::new("secret key", "<redacted>", reason);
        let rest = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| err(format!("expected the prefix `{}`", Self::PREFIX)))?;
        let seed =
            unhex::<32>(rest).map_err(|_| err("expected 64 lower-case hex digits".into()))?;
        Ok(SecretKey::from_seed(&seed))
    }
}

impl Signature {
    /// The text prefix.
    pub const PREFIX: &'static str = "ed25519:";

    /// Wraps 64 signature bytes (checked only when verified).
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The 64 bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, public {})", self.public())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex(&self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::from(ParseError::new("public key", s, reason));
        let rest = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| err(format!("expected the prefix `{}`", Self::PREFIX)))?;
        PublicKey::from_bytes(&unhex::<32>(rest).map_err(err)?)
    }
}

impl FromStr for Signature {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::from(ParseError::new("signature", s, reason));
        let rest = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| err(format!("expected the prefix `{}`", Self::PREFIX)))?;
        unhex::<64>(rest).map(Signature).map_err(err)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    /// `ed25519:<hex>`, as [`PublicKey::from_str`] reads it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Signature {
    /// `ed25519:<hex>`, as [`Signature::from_str`] reads it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
glassbox_primitives::text_schema!(
    PublicKey,
    glassbox_primitives::schema::text(
        "An ed25519 public key (an account address): `ed25519:<64 lower-case hex digits>`.",
        "^ed25519:[0-9a-f]{64}$",
    )
);

#[cfg(feature = "openapi")]
glassbox_primitives::text_schema!(
    Signature,
    glassbox_primitives::schema::text(
        "An ed25519 signature: `ed25519:<128 lower-case hex digits>`.",
        "^ed25519:[0-9a-f]{128}$",
    )
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_text_forms_and_redaction() {
        let sk = SecretKey::from_seed(&[7; 32]);
        let pk = sk.public();
        let sig = sk.sign(b"hello");
        assert_eq!(pk.verify(b"hello", &sig), Ok(()));
        assert!(pk.verify(b"hellO", &sig).is_err());
        let other = SecretKey::from_seed(&[8; 32]).public();
        assert!(other.verify(b"hello", &sig).is_err());

        assert_eq!(pk.to_string().parse::<PublicKey>(), Ok(pk));
        assert_eq!(sig.to_string().parse::<Signature>(), Ok(sig));
        let text = sk.to_secret_text();
        let back = SecretKey::from_secret_text(&text).expect("parses");
        assert_eq!(back.public(), pk);

        let dbg = format!("{sk:?}");
        assert!(!dbg.contains(&text[SecretKey::PREFIX.len()..]), "{dbg}");
        assert!(dbg.contains("redacted"));
        let e = SecretKey::from_secret_text(&format!("{text}0")).expect_err("too long");
        assert!(!e.to_string().contains(&text[SecretKey::PREFIX.len()..]));

        // Identity point (small order) is rejected as a publisher key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PublicKey::from_bytes(&ident).is_err());
        assert!("ed25519:zz".parse::<PublicKey>().is_err());
    }
}

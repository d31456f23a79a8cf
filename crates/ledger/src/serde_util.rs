//! serde helpers for the JSON API: bytes as lower-case hex, keys and
//! signatures in their `ed25519:<hex>` text forms.

use std::borrow::Cow;

use glassbox_types::{PublicKey, Signature};
use serde::{Deserialize, Deserializer, Serializer};

/// Decodes lower-case hex of at most `max_bytes` bytes.
pub(crate) fn unhex(s: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    glassbox_types::unhex_vec(s, max_bytes)
}

/// Decodes exactly 32 bytes of lower-case hex.
pub(crate) fn unhex32(s: &str) -> Result<[u8; 32], String> {
    glassbox_types::unhex::<32>(s)
}

/// 32 bytes as 64 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hex32(pub(crate) [u8; 32]);

impl serde::Serialize for Hex32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&glassbox_types::hex(&self.0))
    }
}

#[cfg(feature = "openapi")]
glassbox_primitives::text_schema!(
    Hex32,
    glassbox_primitives::schema::hex("32 bytes, lower-case hex.", Some(32))
);

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        unhex32(&s).map(Hex32).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for a [`PublicKey`] as `ed25519:<hex>`.
pub(crate) mod public_key {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for a [`Signature`] as `ed25519:<hex>`.
pub(crate) mod signature {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Signature, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for a `SignedManifest` as hex of its canonical encoding.
pub(crate) mod signed_manifest {
    use glassbox_types::SignedManifest;

    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &SignedManifest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&glassbox_types::hex(&v.encode()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Box<SignedManifest>, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        let bytes = unhex(&s, crate::limits::MAX_SIGNED_MANIFEST_BYTES)
            .map_err(serde::de::Error::custom)?;
        SignedManifest::decode(&bytes)
            .map(Box::new)
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with)]` for a list of byte strings (tensor encodings) as hex,
/// at most [`crate::limits::MAX_JOB_TENSORS`] of at most
/// [`crate::limits::HARD_MAX_JOB_IO_BYTES`] each.
pub(crate) mod hex_vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| glassbox_types::hex(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<Cow<'de, str>>::deserialize(d)?;
        if v.len() > crate::limits::MAX_JOB_TENSORS {
            return Err(serde::de::Error::custom(format!(
                "{} tensors, over the limit of {}",
                v.len(),
                crate::limits::MAX_JOB_TENSORS
            )));
        }
        v.iter()
            .map(|s| unhex(s, crate::limits::HARD_MAX_JOB_IO_BYTES))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(deserialize_with)]` that decodes `T` as usual but, unlike a
/// plain `Option` field, makes the field required (serde fills a missing
/// `Option` field with `None` unless `deserialize_with` is given).
pub(crate) fn required<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    T::deserialize(d)
}

/// `#[serde(deserialize_with)]` for a list of at most [`max_64::MAX`]
/// items (the longest list of hashes a dispute step carries), refused
/// at the 65th, before any further item is read.
pub(crate) mod max_64 {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{SeqAccess, Visitor};

    use super::*;

    /// The most items.
    pub(crate) const MAX: usize = 64;

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct Bounded<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
            type Value = Vec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {MAX} items")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if v.len() == MAX {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX} items, over the limit"
                        )));
                    }
                    v.push(item);
                }
                Ok(v)
            }
        }

        d.deserialize_seq(Bounded(PhantomData))
    }
}

/// `#[serde(with)]` for a list of public keys as `ed25519:<hex>`.
pub(crate) mod public_key_vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[PublicKey], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|k| k.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(unhex("00ff10", 3), Ok(vec![0, 255, 16]));
        assert!(unhex("0", 3).is_err());
        assert!(unhex("FF", 3).is_err(), "upper case is not canonical");
        assert!(unhex("0000", 1).is_err(), "limit");
        assert!(unhex("é0", 3).is_err());
        assert!(unhex32(&"ab".repeat(32)).is_ok());
        assert!(unhex32(&"ab".repeat(31)).is_err());
    }
}

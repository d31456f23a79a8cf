//! 32-byte BLAKE3 content ids with the text form `blake3:<64 hex>`.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, ParseError, hex, unhex};

macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The text prefix.
            pub const PREFIX: &'static str = "blake3:";

            /// Wraps raw hash bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The id of `bytes`: their BLAKE3 hash.
            pub fn of(bytes: &[u8]) -> Self {
                $name(*blake3::hash(bytes).as_bytes())
            }

            /// The raw hash bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex without the prefix (e.g. for file names).
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
        }

        impl Digest for $name {
            fn from_array(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }
            fn as_array(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                $name(*h.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let err = |reason: String| ParseError::new($what, s, reason);
                let rest = s
                    .strip_prefix(Self::PREFIX)
                    .ok_or_else(|| err(format!("expected the prefix `{}`", Self::PREFIX)))?;
                unhex::<32>(rest).map($name).map_err(err)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

blake3_id!(
    /// A BLAKE3 hash of arbitrary content (e.g. a training-data source).
    Hash,
    "hash"
);
blake3_id!(
    /// A model's id: the BLAKE3 hash of the model file's exact bytes.
    ModelId,
    "model id"
);
blake3_id!(
    /// A manifest's id: the BLAKE3 hash of the encoded signed manifest.
    ManifestId,
    "manifest id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let id = ModelId::of(b"abc");
        let s = id.to_string();
        assert_eq!(s, format!("blake3:{}", blake3::hash(b"abc").to_hex()));
        assert_eq!(s.parse::<ModelId>(), Ok(id));
        for bad in [
            "",
            "blake3:",
            "sha256:00",
            &s[..s.len() - 1],
            &format!("{s}0"),
            &s.to_uppercase(),
            &s.replace("blake3:", "BLAKE3:"),
        ] {
            let e = bad.parse::<ModelId>().expect_err(bad);
            assert!(e.to_string().contains("invalid model id"), "{e}");
        }
        let upper = format!("blake3:{}", id.to_hex().to_uppercase());
        assert!(
            upper.parse::<ModelId>().is_err(),
            "upper-case hex is not canonical"
        );
        // Multibyte input must not panic on slicing.
        assert!("blake3:é".parse::<Hash>().is_err());
        assert!(
            format!("blake3:{}", "é".repeat(32))
                .parse::<Hash>()
                .is_err()
        );
    }
}

//! Typed 32-byte digests. Each kind of hash the protocol commits to has
//! its own type, so a function that takes a [`TraceRoot`] and an
//! [`OutputHash`] cannot be handed them swapped. The text form (Display,
//! `FromStr`, JSON) is 64 lower-case hex digits without a prefix; the
//! byte form is the 32 bytes. What each digest is the hash of is defined
//! where it is computed ([`crate::trace`], the ledger's jobs) and named in
//! [`crate::tags`].

use std::fmt;

/// What every 32-byte digest type offers, for code generic over them
/// (the codec's [`Writer::digest`](crate::codec::Writer::digest) and
/// [`Reader::digest`](crate::codec::Reader::digest)).
pub trait Digest: Copy + Eq + fmt::Debug + fmt::Display {
    /// Wraps 32 bytes.
    fn from_array(bytes: [u8; 32]) -> Self;
    /// The 32 bytes.
    fn as_array(&self) -> &[u8; 32];
}

/// A 32-byte hash type `$name` whose text form is `$prefix` then 64
/// lower-case hex digits (`$what` names it in parse errors).
macro_rules! hash32 {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 32 bytes, by value.
            pub const fn to_bytes(self) -> [u8; 32] {
                self.0
            }

            /// Lower-case hex, without any prefix (e.g. for file names).
            pub fn to_hex(&self) -> String {
                $crate::hex(&self.0)
            }
        }

        impl $crate::Digest for $name {
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

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", $prefix, $crate::hex(&self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ParseError;
            fn from_str(s: &str) -> Result<Self, $crate::ParseError> {
                let err = |reason: String| $crate::ParseError::new($what, s, reason);
                let rest = s
                    .strip_prefix($prefix)
                    .ok_or_else(|| err(format!("expected the prefix `{}`", $prefix)))?;
                $crate::unhex::<32>(rest).map($name).map_err(err)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        #[cfg(feature = "openapi")]
        $crate::text_schema!(
            $name,
            $crate::schema::text(
                concat!("A ", $what, ": `", $prefix, "<64 lower-case hex digits>`."),
                concat!("^", $prefix, "[0-9a-f]{64}$"),
            )
        );

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hash32;

/// A digest: a [`hash32!`] without a text prefix, zero by default.
macro_rules! digest {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        hash32!($(#[$doc])* $name, $what, "");

        impl Default for $name {
            fn default() -> Self {
                $name([0; 32])
            }
        }
    };
}

digest!(
    /// The canonical hash of one tensor: BLAKE3 of its canonical encoding
    /// ([`crate::tags::TENSOR`]; docs/determinism.md, "Tensor hashing").
    TensorHash,
    "tensor hash"
);
digest!(
    /// The hash of a job's output tensor hashes, in order
    /// ([`crate::tags::OUTPUTS`]; docs/jobs.md).
    OutputHash,
    "output hash"
);
digest!(
    /// One trace leaf: an operator's index and its output hashes
    /// ([`crate::tags::TRACE_LEAF`]; [`crate::trace::leaf`]).
    TraceLeaf,
    "trace leaf"
);
digest!(
    /// A node of the trace's Merkle tree: the root over a range of leaves,
    /// or a sibling on an audit path ([`crate::trace`]).
    MerkleNode,
    "merkle node"
);
digest!(
    /// A run's trace root: the Merkle root of its leaves bound to the
    /// model and the input hashes ([`crate::tags::TRACE_ROOT`];
    /// [`crate::trace::root`]).
    TraceRoot,
    "trace root"
);
digest!(
    /// An executor's sealed commitment to its result
    /// ([`crate::tags::COMMITMENT`]; docs/jobs.md, "Commit and reveal").
    Commitment,
    "commitment"
);
digest!(
    /// A chain's id: the BLAKE3 of its canonical genesis encoding
    /// (docs/ledger.md, "Genesis"). Every transaction signature binds it.
    ChainId,
    "chain id"
);
digest!(
    /// The root of the ledger's authenticated state (its sparse Merkle
    /// trie, docs/ledger.md), which block headers and proofs carry.
    StateRoot,
    "state root"
);
digest!(
    /// A block's digest: SHA-256 of its encoded header, the value a
    /// finalization certificate signs (docs/consensus.md).
    BlockDigest,
    "block digest"
);
digest!(
    /// 32 random bytes an executor mixes into its commitment so that the
    /// commitment reveals nothing before the reveal.
    Salt,
    "salt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_forms_are_bare_lower_case_hex() {
        let d = TraceRoot::from_bytes([0xab; 32]);
        assert_eq!(d.to_string(), "ab".repeat(32));
        assert_eq!(format!("{d:?}"), format!("TraceRoot({})", "ab".repeat(32)));
        assert_eq!(d.to_string().parse::<TraceRoot>(), Ok(d));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<TraceRoot>(&json).unwrap(), d);
        for bad in [
            "",
            "ab",
            &"AB".repeat(32),
            &"ab".repeat(33),
            &"é".repeat(32),
        ] {
            let e = bad.parse::<TraceRoot>().unwrap_err();
            assert!(e.to_string().starts_with("invalid trace root"), "{e}");
        }
        assert!(serde_json::from_str::<TensorHash>("[1,2]").is_err());
    }
}

//! Glassbox's shared data types: ed25519 keys and signatures, model
//! manifests and their canonical binary encoding (docs/manifest.md). The
//! content ids, hex and the codec are `glassbox-primitives`', re-exported.
//!
//! Pure: no file or network I/O. Key generation takes its 32 random bytes
//! from the caller ([`SecretKey::from_seed`]).

mod error;
mod keys;
mod manifest;

pub use error::{Error, Result};
pub use glassbox_primitives::{
    DecodeError, Hash, ManifestId, ModelId, ParseError, clip, hex, unhex, unhex_vec,
};
pub use keys::{PublicKey, SecretKey, Signature};
pub use manifest::{
    CostSpec, DimSpec, FORMAT_VERSION, Limits, Manifest, Parent, Relation, SIGNING_DOMAIN,
    SignedManifest, Source, TensorSpec, validate_name,
};

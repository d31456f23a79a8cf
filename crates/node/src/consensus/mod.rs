//! The consensus types Glassbox instantiates Commonware with: threshold
//! BLS12-381 (MinSig) simplex with an embedded VRF, ed25519 p2p identities,
//! SHA-256 block digests. Everything engine-specific is named here so the
//! rest of the node (and nothing in the ledger) depends on these aliases.

//!
//! Here too: the engine wiring (`engine`), the application that builds
//! and verifies blocks on the ledger (`application`), the block format
//! (`block`), the genesis file (`genesis`), state snapshots
//! (`snapshots`), state sync from peers' APIs (`sync`) and the follower
//! that full and executor-only nodes run instead of consensus (`follow`).

pub mod application;
pub mod block;
pub mod engine;
pub mod follow;
pub mod genesis;
pub mod snapshots;
pub mod sync;

use commonware_consensus::simplex::scheme::bls12381_threshold::vrf;
use commonware_consensus::simplex::types::{
    Activity as CActivity, Context as CContext, Finalization as CFinalization,
};
use commonware_consensus::types::Epoch;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use commonware_cryptography::{ed25519, sha256};

/// Namespace of every consensus signature: a signature made for Glassbox
/// cannot be replayed in another Commonware application.
pub const NAMESPACE: &[u8] = glassbox_primitives::tags::CONSENSUS_NAMESPACE;

/// Glassbox has one validator set and never reshares: one epoch forever.
pub const EPOCH: Epoch = Epoch::zero();

/// A validator's p2p and vote identity.
pub type PublicKey = ed25519::PublicKey;
/// A validator's p2p signing key.
pub type PrivateKey = ed25519::PrivateKey;
/// Block digest.
pub type Digest = sha256::Digest;
/// The signing scheme: threshold BLS with a VRF seed in every certificate.
pub type Scheme = vrf::Scheme<PublicKey, MinSig>;
/// Consensus context a block is proposed in.
pub type Context = CContext<Digest, PublicKey>;
/// A finalization certificate.
pub type Finalization = CFinalization<Scheme, Digest>;
/// Consensus activity (votes and certificates).
pub type Activity = CActivity<Scheme, Digest>;
/// A view's threshold VRF seed: the group's unique BLS signature over the
/// round, carried by every certificate of that view.
pub type Seed = vrf::Seed<MinSig>;
/// The group public key every certificate verifies against.
pub type Identity = <MinSig as Variant>::Public;

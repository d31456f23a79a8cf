//! A network's genesis file and a validator's key file (docs/consensus.md).
//!
//! `genesis.json` holds the ledger's genesis, the validators (p2p identity
//! and addresses) and the group's public BLS polynomial: everything needed
//! to join the network or to verify its finality certificates offline.
//! `validator.json` holds one validator's ed25519 p2p key and its share of
//! the group key, and never leaves that validator.

use std::net::SocketAddr;

use commonware_codec::{Copying, Decode, DecodeExt, Encode};
use commonware_consensus::types::{Round, View};
use commonware_cryptography::bls12381::dkg;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion, Sharing};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::{Digest as _, Signer, ed25519};
use commonware_utils::N3f1;
use commonware_utils::ordered::Set;
use glassbox_ledger::{GenesisState, State};
use glassbox_primitives::StateRoot;
use glassbox_types::{hex, unhex_vec};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::consensus::block::Block;
use crate::consensus::{Context, Digest, EPOCH, Identity, PrivateKey, PublicKey};

/// Most validators a genesis may list.
pub const MAX_VALIDATORS: usize = 256;

/// Why a genesis or key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// A field does not parse.
    #[error("{field}: {reason}")]
    Field {
        /// Which field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The ledger refuses its genesis.
    #[error("ledger genesis: {0}")]
    Ledger(#[from] glassbox_ledger::GenesisError),
}

/// Most bytes of one hex field of a genesis or key file (a polynomial of
/// [`MAX_VALIDATORS`] is ~16 KiB).
const MAX_HEX_FIELD_BYTES: usize = 64 << 10;

/// Decodes a lower-case hex field; `name` names it in the error.
fn unhex(s: &str, name: impl FnOnce() -> String) -> Result<Vec<u8>, GenesisError> {
    unhex_vec(s, MAX_HEX_FIELD_BYTES).map_err(|e| field(name(), e))
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One validator as the genesis lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    /// Its ed25519 p2p identity, hex.
    pub public_key: String,
    /// Where peers dial it.
    #[schema(value_type = String, examples("127.0.0.1:30300"))]
    pub p2p_address: SocketAddr,
    /// Where it serves the HTTP API, if it does.
    #[serde(default)]
    #[schema(value_type = Option<String>, examples("127.0.0.1:8545"))]
    pub http_address: Option<SocketAddr>,
}

/// The network's genesis file.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeGenesis {
    /// The ledger's initial state.
    pub ledger: GenesisState,
    /// The validator set, in any order (consensus sorts it).
    pub validators: Vec<ValidatorEntry>,
    /// The group's public polynomial (threshold BLS12-381, MinSig), hex.
    pub polynomial: String,
}

/// One validator's secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorKey {
    /// ed25519 p2p private key, hex.
    pub private_key: String,
    /// Its share of the group key, hex.
    pub share: String,
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidatorKey(<redacted>)")
    }
}

impl ValidatorKey {
    /// The p2p private key.
    pub fn private_key(&self) -> Result<PrivateKey, GenesisError> {
        let bytes = unhex(&self.private_key, || "private_key".into())?;
        PrivateKey::decode(bytes).map_err(|e| field("private_key", e.to_string()))
    }

    /// The group key share.
    pub fn share(&self) -> Result<Share, GenesisError> {
        let bytes = unhex(&self.share, || "share".into())?;
        Share::decode(bytes).map_err(|e| field("share", e.to_string()))
    }
}

impl NodeGenesis {
    /// The validators' identities.
    pub fn participants(&self) -> Result<Set<PublicKey>, GenesisError> {
        if self.validators.is_empty() || self.validators.len() > MAX_VALIDATORS {
            return Err(field(
                "validators",
                format!(
                    "needs 1 to {MAX_VALIDATORS} validators, has {}",
                    self.validators.len()
                ),
            ));
        }
        let mut keys = Vec::with_capacity(self.validators.len());
        for (i, v) in self.validators.iter().enumerate() {
            let bytes = unhex(&v.public_key, || format!("validators[{i}].public_key"))?;
            let key = PublicKey::decode(bytes)
                .map_err(|e| field(format!("validators[{i}].public_key"), e.to_string()))?;
            keys.push(key);
        }
        let n = keys.len();
        let set = Set::from_iter_dedup(keys);
        if set.len() != n {
            return Err(field("validators", "a public key is listed twice"));
        }
        Ok(set)
    }

    /// The group's public polynomial.
    pub fn polynomial(&self) -> Result<Sharing<MinSig>, GenesisError> {
        let n = u32::try_from(self.validators.len())
            .ok()
            .and_then(std::num::NonZeroU32::new)
            .ok_or_else(|| field("validators", "must not be empty"))?;
        let bytes = unhex(&self.polynomial, || "polynomial".into())?;
        Sharing::<MinSig>::decode_cfg(bytes, &(n, ModeVersion::v0()))
            .map_err(|e| field("polynomial", e.to_string()))
    }

    /// The group public key every finality certificate verifies against.
    pub fn identity(&self) -> Result<Identity, GenesisError> {
        Ok(*self.polynomial()?.public())
    }

    /// The ledger's genesis state and the genesis block over it.
    pub fn genesis(&self) -> Result<(State, Block), GenesisError> {
        let state = State::genesis(&self.ledger)?;
        let block = genesis_block(self.ledger.genesis_time_ms, state.root());
        Ok((state, block))
    }

    /// The validator listed with `key`.
    pub fn validator(&self, key: &PublicKey) -> Option<&ValidatorEntry> {
        let hexed = hex(key.encode().as_ref());
        self.validators.iter().find(|v| v.public_key == hexed)
    }
}

/// The height-0 block: no transactions, the genesis state root, a fixed
/// context (view 0 is implicitly finalized in simplex).
pub fn genesis_block(genesis_time_ms: u64, state_root: StateRoot) -> Block {
    let context = Context {
        round: Round::new(EPOCH, View::zero()),
        leader: ed25519::PrivateKey::from_seed(0).public_key(),
        parent: (View::zero(), Digest::EMPTY),
    };
    Block::new(
        context,
        Digest::EMPTY,
        commonware_consensus::types::Height::zero(),
        genesis_time_ms,
        Vec::new(),
        state_root,
    )
}

/// A fresh validator set of `addresses.len()` validators with a trusted
/// dealer's key shares: for development networks and tests. Production
/// networks run a DKG instead (Commonware's `bls12381::dkg`).
pub fn deal_validators(
    rng: &mut impl CryptoRng,
    ledger: GenesisState,
    addresses: &[(SocketAddr, Option<SocketAddr>)],
) -> Result<(NodeGenesis, Vec<ValidatorKey>), GenesisError> {
    if addresses.is_empty() || addresses.len() > MAX_VALIDATORS {
        return Err(field("validators", "needs 1 to 256 validators"));
    }
    let keys: Vec<PrivateKey> = addresses
        .iter()
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            private_key_from_seed(&seed)
        })
        .collect();
    let participants = Set::from_iter_dedup(keys.iter().map(|k| k.public_key()));
    let (output, shares) = dkg::feldman_desmedt::deal::<MinSig, _, N3f1>(
        &mut *rng,
        Mode::NonZeroCounter,
        participants,
    )
    .map_err(|e| field("validators", format!("dealing shares: {e}")))?;
    let mut entries = Vec::with_capacity(keys.len());
    let mut secrets = Vec::with_capacity(keys.len());
    for (key, (p2p, http)) in keys.iter().zip(addresses) {
        let public = key.public_key();
        let share = shares
            .get_value(&public)
            .ok_or_else(|| field("validators", "the dealer skipped a validator"))?;
        entries.push(ValidatorEntry {
            public_key: hex(public.encode().as_ref()),
            p2p_address: *p2p,
            http_address: *http,
        });
        secrets.push(ValidatorKey {
            private_key: hex(key.encode().as_ref()),
            share: hex(share.encode().as_ref()),
        });
    }
    Ok((
        NodeGenesis {
            ledger,
            validators: entries,
            polynomial: hex(output.public().encode().as_ref()),
        },
        secrets,
    ))
}

/// An ed25519 p2p key from 32 secret bytes (the key's RFC 8032 seed).
pub fn private_key_from_seed(seed: &[u8; 32]) -> PrivateKey {
    // Any 32 bytes are a valid ed25519 seed: decoding cannot fail.
    match PrivateKey::decode(Copying(seed)) {
        Ok(key) => key,
        Err(e) => unreachable!("a 32-byte ed25519 seed always decodes: {e}"),
    }
}

//! The block that consensus orders: a header that commits to the
//! transactions, to the ledger's state root after them and to the
//! threshold VRF seed its randomness comes from, plus the transactions
//! themselves (docs/consensus.md).
//!
//! The block's digest is SHA-256 of the encoded header, so a finalization
//! certificate over the digest commits to the state root: a light client
//! holding the header, the certificate and an SMT proof can check any
//! account, executor or model record without the transactions.
//!
//! Every block's public randomness ([`Header::randomness`]) is derived from
//! the consensus seed of its parent's round, which the header carries and
//! validators check ([`check_seed`]).

use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::types::{Height, Round, View};
use commonware_consensus::{CertifiableBlock, Heightable};
use commonware_cryptography::{Digestible, Hasher, Sha256};
use glassbox_ledger::SignedTx;
use glassbox_primitives::StateRoot;

use crate::consensus::{Context, Digest, EPOCH, Scheme, Seed};

/// Domain of the transactions root.
const TXS_ROOT_DOMAIN: &[u8] = glassbox_primitives::tags::TXS_ROOT;

/// Domain of a block's randomness ([`randomness`]).
pub const RANDOMNESS_DOMAIN: &[u8] = glassbox_primitives::tags::RANDOMNESS;

/// Codec bound on transactions in one block; the ledger's `max_block_txs`
/// parameter is the (lower) limit a block must meet to be valid.
pub const MAX_BLOCK_TXS: usize = 1 << 16;

/// Codec bound on one encoded transaction; the ledger's `max_tx_bytes`
/// parameter is the (lower) limit a valid block meets.
pub const MAX_TX_BYTES: usize = 1 << 20;

/// The part of a block that its digest covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Consensus context the block was proposed in (round, leader, parent).
    pub context: Context,
    /// Digest of the parent block.
    pub parent: Digest,
    /// Height: the parent's plus one; genesis is 0.
    pub height: Height,
    /// Proposer's clock, in milliseconds since the Unix epoch; strictly
    /// greater than the parent's.
    pub timestamp_ms: u64,
    /// [`txs_root`] of the block's transactions.
    pub txs_root: [u8; 32],
    /// The ledger's state root after applying the transactions.
    pub state_root: StateRoot,
    /// The threshold VRF seed of the parent's round (`(EPOCH,
    /// context.parent.0)`), taken from the parent's notarization or
    /// finalization certificate; `None` exactly when the parent is the
    /// genesis block (height 1), whose view 0 has no certificate.
    pub seed: Option<Seed>,
}

impl Header {
    /// SHA-256 of the encoded header: the block's id in consensus.
    pub fn digest(&self) -> Digest {
        Sha256::hash(&[&self.encode()])
    }

    /// The block's public randomness: [`randomness`] of its seed and parent.
    pub fn randomness(&self) -> [u8; 32] {
        randomness(self.seed.as_ref(), &self.parent)
    }

    /// The round whose seed this block must carry: the parent's round,
    /// `(EPOCH, context.parent.0)`.
    pub fn seed_round(&self) -> Round {
        Round::new(EPOCH, self.context.parent.0)
    }
}

/// A block's public randomness (the ledger's `BlockContext::randomness`):
///
/// - with a seed: `BLAKE3("GBRN1" ‖ seed signature)`, the signature in its
///   48-byte compressed encoding (a G1 point, MinSig);
/// - without one (only the block at height 1, whose parent is genesis):
///   `BLAKE3("GBRN1" ‖ parent digest)`, the 32-byte genesis block digest.
///
/// The two inputs differ in length, so they cannot collide.
pub fn randomness(seed: Option<&Seed>, parent: &Digest) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(RANDOMNESS_DOMAIN);
    match seed {
        Some(seed) => h.update(&seed.signature.encode()),
        None => h.update(parent.as_ref()),
    };
    *h.finalize().as_bytes()
}

/// Why a header's seed is not the one its round calls for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The parent is genesis, which has no seed, but the header has one.
    #[error("the parent is genesis, so the header must carry no seed")]
    Unexpected,
    /// The parent is not genesis and the header carries no seed.
    #[error("the header carries no seed of its parent's round")]
    Missing,
    /// The header's context names another view for the parent than the
    /// one the parent block was proposed in.
    #[error("the context names parent view {context}, the parent was proposed in view {parent}")]
    ParentView {
        /// In the header's context.
        context: View,
        /// The parent header's round.
        parent: View,
    },
    /// The seed is for another round than the parent's.
    #[error("the seed is for round {found}, the parent's round is {expected}")]
    WrongRound {
        /// The parent's round.
        expected: Round,
        /// The seed's round.
        found: Round,
    },
    /// The seed's signature is not the group's over its round.
    #[error("the seed signature does not verify against the group public key")]
    BadSignature,
}

/// Checks `header`'s seed against its `parent` block's header: none when
/// the parent is genesis; otherwise the seed of round `(EPOCH,
/// context.parent.0)` (the parent's own round), its threshold signature
/// valid under `verifier`'s group key. `known` is a seed this node already
/// holds from a verified certificate of that view: when it equals the
/// header's, the pairing check is skipped.
pub fn check_seed(
    header: &Header,
    parent: &Header,
    known: Option<&Seed>,
    verifier: &Scheme,
) -> Result<(), SeedError> {
    if parent.height.get() == 0 {
        return match header.seed {
            None => Ok(()),
            Some(_) => Err(SeedError::Unexpected),
        };
    }
    let seed = header.seed.as_ref().ok_or(SeedError::Missing)?;
    let parent_view = parent.context.round.view();
    if header.context.parent.0 != parent_view {
        return Err(SeedError::ParentView {
            context: header.context.parent.0,
            parent: parent_view,
        });
    }
    let expected = header.seed_round();
    if seed.round != expected {
        return Err(SeedError::WrongRound {
            expected,
            found: seed.round,
        });
    }
    if known == Some(seed) || seed.verify(verifier) {
        Ok(())
    } else {
        Err(SeedError::BadSignature)
    }
}

impl Write for Header {
    fn write(&self, w: &mut impl BufMut) {
        self.context.write(w);
        self.parent.write(w);
        self.height.write(w);
        self.timestamp_ms.write(w);
        self.txs_root.write(w);
        self.state_root.as_bytes().write(w);
        self.seed.write(w);
    }
}

impl EncodeSize for Header {
    fn encode_size(&self) -> usize {
        self.context.encode_size()
            + self.parent.encode_size()
            + self.height.encode_size()
            + self.timestamp_ms.encode_size()
            + 64
            + self.seed.encode_size()
    }
}

impl Read for Header {
    type Cfg = ();

    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Header {
            context: Context::read(r)?,
            parent: Digest::read(r)?,
            height: Height::read(r)?,
            timestamp_ms: u64::read(r)?,
            txs_root: <[u8; 32]>::read(r)?,
            state_root: StateRoot::from_bytes(<[u8; 32]>::read(r)?),
            // A presence byte (0 or 1), then a fixed-size seed: the round
            // (two varints) and a 48-byte signature checked to be a valid
            // G1 point.
            seed: Option::<Seed>::read(r)?,
        })
    }
}

/// blake3("GBTR1" || count as u64 LE || tx hash...) over the block's
/// transactions in order.
pub fn txs_root(txs: &[SignedTx]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(TXS_ROOT_DOMAIN);
    h.update(&(txs.len() as u64).to_le_bytes());
    for tx in txs {
        h.update(tx.hash().as_bytes());
    }
    *h.finalize().as_bytes()
}

/// A header and its transactions, with the digest cached.
#[derive(Clone, Debug)]
pub struct Block {
    header: Header,
    txs: Vec<SignedTx>,
    digest: Digest,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.txs == other.txs
    }
}
impl Eq for Block {}

impl Block {
    /// A block over `txs` without a seed (the genesis block, and blocks
    /// whose parent is genesis); see [`Block::with_seed`].
    pub fn new(
        context: Context,
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        txs: Vec<SignedTx>,
        state_root: StateRoot,
    ) -> Self {
        Self::with_seed(context, parent, height, timestamp_ms, None, txs, state_root)
    }

    /// A block over `txs` carrying `seed` (its parent round's seed);
    /// computes the transactions root and the digest.
    pub fn with_seed(
        context: Context,
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        seed: Option<Seed>,
        txs: Vec<SignedTx>,
        state_root: StateRoot,
    ) -> Self {
        let header = Header {
            context,
            parent,
            height,
            timestamp_ms,
            txs_root: txs_root(&txs),
            state_root,
            seed,
        };
        let digest = header.digest();
        Block {
            header,
            txs,
            digest,
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The transactions, in execution order.
    pub fn txs(&self) -> &[SignedTx] {
        &self.txs
    }
}

impl Write for Block {
    fn write(&self, w: &mut impl BufMut) {
        self.header.write(w);
        (self.txs.len() as u32).write(w);
        for tx in &self.txs {
            Bytes::copy_from_slice(tx.encoded()).write(w);
        }
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.header.encode_size()
            + 4
            + self
                .txs
                .iter()
                .map(|tx| Bytes::copy_from_slice(tx.encoded()).encode_size())
                .sum::<usize>()
    }
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let header = Header::read(r)?;
        let count = u32::read(r)? as usize;
        if count > MAX_BLOCK_TXS {
            return Err(CodecError::InvalidLength(count));
        }
        let mut txs = Vec::with_capacity(count.min(r.remaining() / 64 + 1));
        for _ in 0..count {
            let raw = Bytes::read_cfg(r, &(..=MAX_TX_BYTES).into())?;
            let tx = SignedTx::decode(&raw)
                .map_err(|_| CodecError::Invalid("glassbox::Block", "undecodable transaction"))?;
            txs.push(tx);
        }
        if txs_root(&txs) != header.txs_root {
            return Err(CodecError::Invalid(
                "glassbox::Block",
                "transactions do not match the header's txs_root",
            ));
        }
        let digest = header.digest();
        Ok(Block {
            header,
            txs,
            digest,
        })
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        self.header.height
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.header.parent
    }
}

impl CertifiableBlock for Block {
    type Context = Context;

    fn context(&self) -> Context {
        self.header.context.clone()
    }
}

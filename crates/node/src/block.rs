//! The block that consensus orders: a header that commits to the
//! transactions and to the ledger's state root after them, plus the
//! transactions themselves (docs/consensus.md).
//!
//! The block's digest is SHA-256 of the encoded header, so a finalization
//! certificate over the digest commits to the state root: a light client
//! holding the header, the certificate and an SMT proof can check any
//! account, executor or model record without the transactions.

use bytes::{Buf, BufMut, Bytes};
use commonware_codec::{Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::types::Height;
use commonware_consensus::{CertifiableBlock, Heightable};
use commonware_cryptography::{Digestible, Hasher, Sha256};
use glassbox_ledger::SignedTx;

use crate::consensus::{Context, Digest};

/// Domain of the transactions root.
const TXS_ROOT_DOMAIN: &[u8] = b"GBTR1";

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
    pub state_root: [u8; 32],
}

impl Header {
    /// SHA-256 of the encoded header: the block's id in consensus.
    pub fn digest(&self) -> Digest {
        Sha256::hash(&self.encode())
    }
}

impl Write for Header {
    fn write(&self, w: &mut impl BufMut) {
        self.context.write(w);
        self.parent.write(w);
        self.height.write(w);
        self.timestamp_ms.write(w);
        self.txs_root.write(w);
        self.state_root.write(w);
    }
}

impl EncodeSize for Header {
    fn encode_size(&self) -> usize {
        self.context.encode_size()
            + self.parent.encode_size()
            + self.height.encode_size()
            + self.timestamp_ms.encode_size()
            + 64
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
            state_root: <[u8; 32]>::read(r)?,
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
        h.update(&tx.hash().0);
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
    /// A block over `txs`; computes the transactions root and the digest.
    pub fn new(
        context: Context,
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        txs: Vec<SignedTx>,
        state_root: [u8; 32],
    ) -> Self {
        let header = Header {
            context,
            parent,
            height,
            timestamp_ms,
            txs_root: txs_root(&txs),
            state_root,
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

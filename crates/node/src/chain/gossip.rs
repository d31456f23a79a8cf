//! Transaction gossip: transactions a node admits from its API are batched
//! and sent to every validator on a dedicated p2p channel, so whichever
//! validator leads the next view can include them. Received transactions
//! go through the same mempool admission (signature, nonce, fee) and are
//! not forwarded again.
//!
//! Batch encoding: u32 LE count, then per transaction a u32 LE length and
//! its canonical bytes. At most [`MAX_BATCH_TXS`] transactions and
//! [`MAX_BATCH_BYTES`] bytes; anything else is dropped whole.

use std::sync::Arc;
use std::time::Duration;

use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::Clock;
use glassbox_ledger::SignedTx;
use tracing::debug;

use crate::chain::Chain;
use crate::consensus::PublicKey;

/// Most transactions in one gossip message.
pub const MAX_BATCH_TXS: usize = 4_096;
/// Most bytes in one gossip message.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// How often the outbox is flushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// Encodes `txs` as one batch (the caller keeps within the bounds).
pub fn encode_batch(txs: &[SignedTx]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + txs.iter().map(|t| 4 + t.len()).sum::<usize>());
    out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for tx in txs {
        out.extend_from_slice(&(tx.len() as u32).to_le_bytes());
        out.extend_from_slice(tx.encoded());
    }
    out
}

/// Decodes a batch; `None` when it is malformed or over the bounds.
pub fn decode_batch(bytes: &[u8]) -> Option<Vec<SignedTx>> {
    if bytes.len() > MAX_BATCH_BYTES {
        return None;
    }
    let (count, mut rest) = bytes.split_first_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    if count > MAX_BATCH_TXS {
        return None;
    }
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return None;
        }
        let (tx, tail) = tail.split_at(len);
        txs.push(SignedTx::decode(tx).ok()?);
        rest = tail;
    }
    rest.is_empty().then_some(txs)
}

/// Sends the chain's outbox to every peer, in batches, until the channel
/// closes.
pub async fn send_loop<E: Clock>(
    context: E,
    chain: Arc<Chain>,
    mut sender: impl Sender<PublicKey = PublicKey>,
) {
    loop {
        context.sleep(FLUSH_INTERVAL).await;
        loop {
            let batch = chain.take_outbox(MAX_BATCH_TXS, MAX_BATCH_BYTES - 4);
            if batch.is_empty() {
                break;
            }
            if sender
                .send(Recipients::All, encode_batch(&batch), false)
                .is_empty()
            {
                debug!("gossip batch reached no peer");
            }
        }
    }
}

/// Admits every transaction peers gossip, until the channel closes.
pub async fn receive_loop(chain: Arc<Chain>, mut receiver: impl Receiver<PublicKey = PublicKey>) {
    while let Ok((peer, message)) = receiver.recv().await {
        let Some(txs) = decode_batch(message.as_ref()) else {
            debug!(?peer, "malformed gossip batch");
            continue;
        };
        for tx in txs {
            // Already known or inadmissible: nothing to do.
            let _ = chain.admit_gossiped(tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glassbox_ledger::TxBody;
    use glassbox_types::SecretKey;

    fn tx(n: u64) -> SignedTx {
        let key = SecretKey::from_seed(&[3; 32]);
        let to = SecretKey::from_seed(&[4; 32]).public();
        SignedTx::sign(
            &glassbox_primitives::ChainId::from_bytes([7; 32]),
            &key,
            n,
            5_000,
            TxBody::Transfer { to, amount: n },
        )
        .unwrap()
    }

    #[test]
    fn batches_round_trip_and_malformed_ones_are_refused() {
        let txs: Vec<_> = (0..5).map(tx).collect();
        let bytes = encode_batch(&txs);
        assert_eq!(decode_batch(&bytes).unwrap(), txs);
        assert!(decode_batch(&bytes[..bytes.len() - 1]).is_none());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_batch(&extra).is_none());
        let mut huge = bytes;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_batch(&huge).is_none());
        assert_eq!(decode_batch(&0u32.to_le_bytes()).unwrap(), vec![]);
        assert!(decode_batch(&[]).is_none());
    }
}

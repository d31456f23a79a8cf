//! A bounded pool of admitted transactions waiting for a block.
//!
//! Transactions are kept per sender in nonce order. A proposal takes, for
//! each sender, the run of consecutive nonces starting at the sender's
//! nonce in the parent state, so transactions already included in an
//! unfinalized ancestor are skipped without being removed; they leave the
//! pool when a block that includes them is finalized.

use std::collections::{BTreeMap, HashMap};

use glassbox_ledger::{SignedTx, State, TxError, TxHash};
use glassbox_types::PublicKey;

/// Bounds on the pool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most transactions held for one sender.
    pub max_per_sender: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 100_000,
            max_bytes: 256 << 20,
            max_per_sender: 1_024,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The ledger refuses it against the latest finalized state.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The same transaction is already pending.
    #[error("transaction {0} is already pending")]
    Duplicate(TxHash),
    /// Another transaction with this sender and nonce is pending.
    #[error("sender {sender} already has a pending transaction with nonce {nonce}")]
    NonceTaken {
        /// The sender (`ed25519:<hex>`).
        sender: String,
        /// The nonce.
        nonce: u64,
    },
    /// The pool is full.
    #[error("mempool is full ({what}); try again later")]
    Full {
        /// Which bound.
        what: &'static str,
    },
}

#[derive(Debug)]
struct Entry {
    tx: SignedTx,
    hash: TxHash,
    bytes: usize,
}

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    /// Per sender: its place in `order` and its transactions by nonce.
    by_sender: HashMap<PublicKey, (u64, BTreeMap<u64, Entry>)>,
    /// Senders in the order their first pending transaction arrived: the
    /// order proposals take them in.
    order: BTreeMap<u64, PublicKey>,
    next_seq: u64,
    by_hash: HashMap<TxHash, (PublicKey, u64)>,
    bytes: usize,
}

impl Mempool {
    /// An empty pool.
    pub fn new(limits: MempoolLimits) -> Self {
        Mempool {
            limits,
            by_sender: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            by_hash: HashMap::new(),
            bytes: 0,
        }
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no transaction is held.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Up to `max` pending dispute steps (a scan of the pool: they are rare
    /// and proposals ask once per block).
    pub fn dispute_steps(&self, max: usize) -> Vec<SignedTx> {
        self.by_sender
            .values()
            .flat_map(|(_, q)| q.values())
            .filter(|e| matches!(e.tx.body(), glassbox_ledger::TxBody::DisputeStep { .. }))
            .take(max)
            .map(|e| e.tx.clone())
            .collect()
    }

    /// The pending transaction `hash`.
    pub fn get(&self, hash: &TxHash) -> Option<&SignedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.1.get(nonce).map(|e| &e.tx)
    }

    /// Whether `hash` is pending.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Admits `tx` after the ledger's admission check against `state`
    /// (the latest finalized state).
    pub fn insert(&mut self, tx: SignedTx, state: &State) -> Result<TxHash, MempoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate(hash));
        }
        state.check_tx(&tx)?;
        let bytes = tx.encoded().len();
        if self.by_hash.len() >= self.limits.max_txs {
            return Err(MempoolError::Full {
                what: "max_txs transactions",
            });
        }
        if self.bytes.saturating_add(bytes) > self.limits.max_bytes {
            return Err(MempoolError::Full { what: "max_bytes" });
        }
        let sender = *tx.sender();
        let nonce = tx.nonce();
        let seq = self.next_seq;
        let (_, queue) = self
            .by_sender
            .entry(sender)
            .or_insert_with(|| (seq, BTreeMap::new()));
        if queue.contains_key(&nonce) {
            return Err(MempoolError::NonceTaken {
                sender: sender.to_string(),
                nonce,
            });
        }
        if queue.len() >= self.limits.max_per_sender {
            return Err(MempoolError::Full {
                what: "max_per_sender transactions for this sender",
            });
        }
        if queue.is_empty() {
            self.order.insert(seq, sender);
            self.next_seq += 1;
        }
        queue.insert(nonce, Entry { tx, hash, bytes });
        self.by_hash.insert(hash, (sender, nonce));
        self.bytes += bytes;
        Ok(hash)
    }

    /// Up to `max_txs` transactions of at most `max_bytes` encoded bytes in
    /// all that can follow `state`: per sender, consecutive nonces from the
    /// sender's nonce in `state`, senders in arrival order.
    pub fn select(&self, state: &State, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        'senders: for sender in self.order.values() {
            let Some((_, queue)) = self.by_sender.get(sender) else {
                continue;
            };
            let mut next = state.account(sender).map_or(0, |a| a.nonce);
            for (&nonce, entry) in queue.range(next..) {
                if nonce != next {
                    break;
                }
                if out.len() >= max_txs {
                    break 'senders;
                }
                if bytes + entry.bytes > max_bytes {
                    continue 'senders;
                }
                bytes += entry.bytes;
                out.push(entry.tx.clone());
                next = match next.checked_add(1) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        out
    }

    /// Drops `hash` (a transaction a proposal found inadmissible).
    pub fn remove(&mut self, hash: &TxHash) {
        if let Some((sender, nonce)) = self.by_hash.remove(hash) {
            self.remove_entry(&sender, nonce);
        }
    }

    /// After a block is finalized: drops every pending transaction of these
    /// senders whose nonce is below the sender's nonce in `state`.
    pub fn prune<'a>(&mut self, senders: impl IntoIterator<Item = &'a PublicKey>, state: &State) {
        for sender in senders {
            let nonce = state.account(sender).map_or(0, |a| a.nonce);
            let stale: Vec<u64> = match self.by_sender.get(sender) {
                Some((_, queue)) => queue.range(..nonce).map(|(&n, _)| n).collect(),
                None => continue,
            };
            for n in stale {
                self.remove_entry(sender, n);
            }
        }
    }

    fn remove_entry(&mut self, sender: &PublicKey, nonce: u64) {
        let Some((seq, queue)) = self.by_sender.get_mut(sender) else {
            return;
        };
        if let Some(entry) = queue.remove(&nonce) {
            self.by_hash.remove(&entry.hash);
            self.bytes -= entry.bytes;
        }
        if queue.is_empty() {
            let seq = *seq;
            self.by_sender.remove(sender);
            self.order.remove(&seq);
        }
    }
}

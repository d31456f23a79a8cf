//! A bounded pool of admitted transactions waiting for a block.
//!
//! Transactions are kept per sender in nonce order. A proposal takes, for
//! each sender, the run of consecutive nonces starting at the sender's
//! nonce in the parent state, so transactions already included in an
//! unfinalized ancestor are skipped without being removed; they leave the
//! pool when a block that includes them is finalized.
//!
//! Nothing in the pool is paid for until a block includes it, so every way
//! of holding room without being included is bounded (docs/consensus.md,
//! "Mempool"): a nonce at most `max_nonce_ahead` past the sender's next
//! one, pending fees within the sender's balance, an age limit after which
//! a transaction is dropped, and room reserved for the job protocol's own
//! transactions (commits, reveals, dispute steps, challenges), whose
//! admission the ledger checks against the job, so a flood of ordinary
//! transactions cannot make executors miss their deadlines.

use std::collections::{BTreeMap, HashMap};

use glassbox_ledger::{SignedTx, State, TxBody, TxError, TxHash};
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
    /// How far past the sender's next nonce (in the latest finalized
    /// state) a transaction's nonce may be: `nonce < next + max_nonce_ahead`.
    pub max_nonce_ahead: u64,
    /// Finalized blocks a transaction may wait before it is dropped.
    pub max_age_blocks: u64,
    /// Of `max_txs`, how many only job-protocol transactions may use.
    pub reserved_txs: usize,
    /// Of `max_bytes`, how many only job-protocol transactions may use.
    pub reserved_bytes: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 100_000,
            max_bytes: 256 << 20,
            max_per_sender: 256,
            max_nonce_ahead: 256,
            max_age_blocks: 1_000,
            reserved_txs: 12_500,
            reserved_bytes: 32 << 20,
        }
    }
}

/// Whether `body` is one of the job protocol's own transactions, which the
/// ledger admits only from a party of the job (an assigned executor, a
/// side of the dispute, a bonded challenger of a pending result).
pub fn is_job_protocol(body: &TxBody) -> bool {
    matches!(
        body,
        TxBody::CommitResult { .. }
            | TxBody::RevealResult { .. }
            | TxBody::DisputeStep { .. }
            | TxBody::Challenge { .. }
            | TxBody::Resume
    )
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
    /// The sender already has a `Resume` pending (one at a time).
    #[error("sender {sender} already has a pending resume")]
    ResumePending {
        /// The sender (`ed25519:<hex>`).
        sender: String,
    },
    /// The pool is full.
    #[error("mempool is full ({what}); try again later")]
    Full {
        /// Which bound.
        what: &'static str,
    },
    /// The nonce is too far past the sender's next one: earlier
    /// transactions must be finalized first.
    #[error(
        "nonce {nonce} is more than {max_ahead} past sender {sender}'s next nonce {next}; \
         retry once its earlier transactions are finalized"
    )]
    NonceAhead {
        /// The sender (`ed25519:<hex>`).
        sender: String,
        /// The transaction's nonce.
        nonce: u64,
        /// The sender's next nonce in the latest finalized state.
        next: u64,
        /// [`MempoolLimits::max_nonce_ahead`].
        max_ahead: u64,
    },
    /// The fees of the sender's pending transactions and this one exceed
    /// its balance.
    #[error(
        "sender {sender} has {balance} but its pending transactions and this one \
         carry {fees} in fees"
    )]
    FeesOverBalance {
        /// The sender (`ed25519:<hex>`).
        sender: String,
        /// Its balance in the latest finalized state.
        balance: u64,
        /// The fees of its pending transactions and this one.
        fees: u64,
    },
}

#[derive(Debug)]
struct Entry {
    tx: SignedTx,
    hash: TxHash,
    bytes: usize,
    /// Its key in `by_age`.
    age: (u64, u64),
    protocol: bool,
}

/// A sender's pending transactions.
#[derive(Debug)]
struct Queue {
    /// Its place in `Mempool::order`.
    seq: u64,
    by_nonce: BTreeMap<u64, Entry>,
    /// The fees of `by_nonce`.
    fees: u64,
}

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: HashMap<PublicKey, Queue>,
    /// Senders in the order their first pending transaction arrived: the
    /// order proposals take them in.
    order: BTreeMap<u64, PublicKey>,
    next_seq: u64,
    by_hash: HashMap<TxHash, (PublicKey, u64)>,
    /// Every transaction by (finalized height at admission, arrival).
    by_age: BTreeMap<(u64, u64), TxHash>,
    bytes: usize,
    /// Job-protocol transactions held, and their bytes.
    protocol_txs: usize,
    protocol_bytes: usize,
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
            by_age: BTreeMap::new(),
            bytes: 0,
            protocol_txs: 0,
            protocol_bytes: 0,
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
            .flat_map(|q| q.by_nonce.values())
            .filter(|e| matches!(e.tx.body(), TxBody::DisputeStep { .. }))
            .take(max)
            .map(|e| e.tx.clone())
            .collect()
    }

    /// The pending transaction `hash`.
    pub fn get(&self, hash: &TxHash) -> Option<&SignedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender
            .get(sender)?
            .by_nonce
            .get(nonce)
            .map(|e| &e.tx)
    }

    /// Whether `hash` is pending.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Admits `tx` after the ledger's admission check against `state`
    /// (the latest finalized state) and the pool's own bounds.
    pub fn insert(&mut self, tx: SignedTx, state: &State) -> Result<TxHash, MempoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate(hash));
        }
        state.check_tx(&tx)?;
        let bytes = tx.encoded().len();
        let protocol = is_job_protocol(tx.body());
        self.check_room(bytes, protocol)?;
        let sender = *tx.sender();
        let nonce = tx.nonce();
        let account = state.account(&sender).unwrap_or_default();
        let max_ahead = self.limits.max_nonce_ahead;
        if nonce.saturating_sub(account.nonce) >= max_ahead {
            return Err(MempoolError::NonceAhead {
                sender: sender.to_string(),
                nonce,
                next: account.nonce,
                max_ahead,
            });
        }
        let (held, pending_fees, taken) = self.by_sender.get(&sender).map_or((0, 0, false), |q| {
            (q.by_nonce.len(), q.fees, q.by_nonce.contains_key(&nonce))
        });
        if taken {
            return Err(MempoolError::NonceTaken {
                sender: sender.to_string(),
                nonce,
            });
        }
        // A paused executor could otherwise park up to max_nonce_ahead
        // Resumes (refused by nobody while it stays paused) in the space
        // reserved for the job protocol.
        if matches!(tx.body(), TxBody::Resume)
            && self.by_sender.get(&sender).is_some_and(|q| {
                q.by_nonce
                    .values()
                    .any(|e| matches!(e.tx.body(), TxBody::Resume))
            })
        {
            return Err(MempoolError::ResumePending {
                sender: sender.to_string(),
            });
        }
        if held >= self.limits.max_per_sender {
            return Err(MempoolError::Full {
                what: "max_per_sender transactions for this sender",
            });
        }
        let fees = pending_fees.saturating_add(tx.fee());
        if fees > account.balance {
            return Err(MempoolError::FeesOverBalance {
                sender: sender.to_string(),
                balance: account.balance,
                fees,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let queue = self.by_sender.entry(sender).or_insert_with(|| Queue {
            seq,
            by_nonce: BTreeMap::new(),
            fees: 0,
        });
        if queue.by_nonce.is_empty() {
            self.order.insert(queue.seq, sender);
        }
        let age = (state.height(), seq);
        queue.fees = fees;
        queue.by_nonce.insert(
            nonce,
            Entry {
                tx,
                hash,
                bytes,
                age,
                protocol,
            },
        );
        self.by_hash.insert(hash, (sender, nonce));
        self.by_age.insert(age, hash);
        self.bytes += bytes;
        if protocol {
            self.protocol_txs += 1;
            self.protocol_bytes += bytes;
        }
        Ok(hash)
    }

    /// Whether a transaction of `bytes` fits: job-protocol transactions may
    /// use the whole pool, others all but the reserved room (what the
    /// protocol's transactions already use of the reserve counts as used).
    fn check_room(&self, bytes: usize, protocol: bool) -> Result<(), MempoolError> {
        let l = &self.limits;
        let (max_txs, max_bytes, txs, held) = if protocol {
            (l.max_txs, l.max_bytes, self.by_hash.len(), self.bytes)
        } else {
            // Ordinary transactions share what is left once the reserve is
            // set aside, with any protocol transactions beyond the reserve.
            let others = self.by_hash.len() - self.protocol_txs;
            let other_bytes = self.bytes - self.protocol_bytes;
            let used_txs = others + self.protocol_txs.saturating_sub(l.reserved_txs);
            let used_bytes = other_bytes + self.protocol_bytes.saturating_sub(l.reserved_bytes);
            (
                l.max_txs.saturating_sub(l.reserved_txs),
                l.max_bytes.saturating_sub(l.reserved_bytes),
                used_txs,
                used_bytes,
            )
        };
        if txs >= max_txs {
            return Err(MempoolError::Full {
                what: if protocol {
                    "max_txs transactions"
                } else {
                    "max_txs transactions, less the room reserved for job transactions"
                },
            });
        }
        if held.saturating_add(bytes) > max_bytes {
            return Err(MempoolError::Full {
                what: if protocol {
                    "max_bytes"
                } else {
                    "max_bytes, less the room reserved for job transactions"
                },
            });
        }
        Ok(())
    }

    /// Up to `max_txs` transactions of at most `max_bytes` encoded bytes in
    /// all that can follow `state`: per sender, consecutive nonces from the
    /// sender's nonce in `state`, senders in arrival order.
    pub fn select(&self, state: &State, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        'senders: for sender in self.order.values() {
            let Some(queue) = self.by_sender.get(sender) else {
                continue;
            };
            let mut next = state.account(sender).map_or(0, |a| a.nonce);
            for (&nonce, entry) in queue.by_nonce.range(next..) {
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

    /// After a block is finalized (`state` after it): drops every pending
    /// transaction of these senders whose nonce is below the sender's nonce
    /// in `state`, and every transaction admitted `max_age_blocks` or more
    /// blocks before `state`'s height.
    /// [`Mempool::prune`] for every sender it holds (after the node
    /// moved forward to a snapshot: any of them may have moved on).
    pub fn prune_all(&mut self, state: &State) {
        let senders: Vec<PublicKey> = self.by_sender.keys().copied().collect();
        self.prune(&senders, state);
    }

    pub fn prune<'a>(&mut self, senders: impl IntoIterator<Item = &'a PublicKey>, state: &State) {
        for sender in senders {
            let nonce = state.account(sender).map_or(0, |a| a.nonce);
            let stale: Vec<u64> = match self.by_sender.get(sender) {
                Some(queue) => queue.by_nonce.range(..nonce).map(|(&n, _)| n).collect(),
                None => continue,
            };
            for n in stale {
                self.remove_entry(sender, n);
            }
        }
        while let Some((&(admitted, _), &hash)) = self.by_age.first_key_value() {
            if admitted.saturating_add(self.limits.max_age_blocks) > state.height() {
                break;
            }
            self.remove(&hash);
        }
    }

    fn remove_entry(&mut self, sender: &PublicKey, nonce: u64) {
        let Some(queue) = self.by_sender.get_mut(sender) else {
            return;
        };
        if let Some(entry) = queue.by_nonce.remove(&nonce) {
            queue.fees = queue.fees.saturating_sub(entry.tx.fee());
            self.by_hash.remove(&entry.hash);
            self.by_age.remove(&entry.age);
            self.bytes -= entry.bytes;
            if entry.protocol {
                self.protocol_txs -= 1;
                self.protocol_bytes -= entry.bytes;
            }
        }
        if queue.by_nonce.is_empty() {
            let seq = queue.seq;
            self.by_sender.remove(sender);
            self.order.remove(&seq);
        }
    }
}

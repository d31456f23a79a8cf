//! The node's view of the ledger: the latest finalized state, the states
//! after unfinalized (notarized or proposed) blocks, the mempool and an
//! index of transaction outcomes. Shared by the consensus application, the
//! finalizer task and the HTTP API.
//!
//! Every state here is derived from finalized blocks by the pure ledger;
//! nothing is persisted by this module. On restart the finalizer starts
//! from the newest state snapshot ([`Chain::restore`]) and replays the
//! finalized blocks after it that marshal archived (docs/consensus.md,
//! docs/operations.md "Snapshots").

//!
//! Its parts: the mempool (`mempool`), transaction gossip between
//! validators (`gossip`) and the index of each job's transactions
//! (`jobindex`).

pub mod gossip;
pub mod jobindex;
pub mod mempool;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use commonware_consensus::Heightable;
use commonware_cryptography::Digestible;
use glassbox_ledger::{
    BlockContext, BlockError, JobId, Referee, SignedTx, State, TxError, TxHash, TxOutcome,
};

use tracing::{debug, warn};

use crate::chain::jobindex::{JobIndex, JobTxs};
use crate::chain::mempool::{Mempool, MempoolError, MempoolLimits};
use crate::consensus::block::Block;
use crate::consensus::{Digest, Finalization};
use crate::disputes::offchain::{OffChain, OffChainLimits};
use crate::disputes::referee::RuntimeReferee;

/// Most unfinalized block states kept; proposals beyond this many blocks
/// ahead of finality are not built on.
pub const MAX_PENDING_STATES: usize = 4_096;

/// Most transactions this node puts in a block it proposes (the ledger's
/// `max_block_txs` may allow more). Keeping blocks small keeps each view's
/// verification well inside consensus timeouts: a flood then makes more
/// blocks instead of a few huge ones that time out and are thrown away.
pub const MAX_PROPOSAL_TXS: usize = 2_000;

/// Most transactions waiting to be gossiped; the oldest are dropped beyond.
pub const MAX_OUTBOX: usize = 100_000;

/// Most transaction outcomes kept for status queries.
pub const MAX_INDEXED_TXS: usize = 1_000_000;

/// Most recent finalized blocks kept in memory (for the HTTP API), besides
/// genesis.
pub const MAX_RECENT_BLOCKS: usize = 1_024;

/// Most encoded transaction bytes the recent finalized blocks may hold:
/// fewer than [`MAX_RECENT_BLOCKS`] are kept when blocks are large.
pub const MAX_RECENT_BLOCK_BYTES: usize = 128 << 20;

/// Where a transaction stands, as far as this node knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// In the mempool.
    Pending,
    /// In a finalized block.
    Finalized {
        /// The block's height.
        height: u64,
        /// Its index in the block.
        index: usize,
        /// What it did.
        outcome: TxOutcome,
    },
}

/// Why a block cannot be applied on top of what this node has.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The ledger rejects the block.
    #[error("block {height} is invalid: {error}")]
    Invalid {
        /// The block's height.
        height: u64,
        /// Why.
        error: BlockError,
    },
    /// The header's state root is not the root the ledger computes.
    #[error("block {height} claims state root {claimed} but applying it gives {computed}")]
    StateRoot {
        /// The block's height.
        height: u64,
        /// In the header.
        claimed: String,
        /// Computed.
        computed: String,
    },
    /// A block marshal reported as processed is not in its archive.
    #[error("finalized block {height} is missing from the local archive")]
    MissingArchived {
        /// Its height.
        height: u64,
    },
    /// Marshal delivered, at a height this node already finalized, a
    /// block other than the one it finalized there.
    #[error("finalized block {height} differs from the block this node finalized there")]
    Conflicting {
        /// Its height.
        height: u64,
    },
    /// A finalized block does not extend the finalized chain.
    #[error("finalized block {height} does not extend the finalized tip {tip}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The finalized tip's height.
        tip: u64,
    },
}

/// The latest finalized block and the state after it; cheap to clone.
#[derive(Clone, Debug)]
pub struct Finalized {
    /// The block (the genesis block at height 0).
    pub block: Arc<Block>,
    /// The ledger state after it.
    pub state: State,
}

/// A finalized block with its finalization certificate and the state after
/// it: what receipts prove against.
#[derive(Clone, Debug)]
pub struct Certified {
    /// The block.
    pub block: Arc<Block>,
    /// The state after it (its root is the header's state root).
    pub state: State,
    /// The certificate over the block's digest.
    pub finalization: Finalization,
}

/// A block applied on its parent: its height, the state after it and
/// what each transaction did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The block's height.
    pub height: u64,
    /// The state after the block.
    pub state: State,
    /// One outcome per transaction.
    pub outcomes: Arc<Vec<TxOutcome>>,
}

/// Everything the finalizer writes, behind one lock so that readers see
/// one consistent finalized tip: its state, the outcomes and job index up
/// to it, and its certificate.
#[derive(Debug)]
struct Finality {
    finalized: Finalized,
    /// State after each known unfinalized block, by digest.
    pending: HashMap<Digest, Applied>,
    statuses: HashMap<TxHash, TxStatus>,
    status_order: VecDeque<TxHash>,
    /// The most recent finalized blocks after genesis, consecutive
    /// heights, the tip last.
    recent: VecDeque<Block>,
    /// Encoded transaction bytes in `recent`.
    recent_bytes: usize,
    /// The transactions behind each job, for receipts.
    jobs: JobIndex,
    /// The latest finalized block whose certificate this node holds.
    certified: Option<Certified>,
}

/// Transactions waiting: the mempool and, when gossip is on, the
/// API-submitted ones still to be gossiped.
#[derive(Debug)]
struct Pool {
    mempool: Mempool,
    outbox: VecDeque<SignedTx>,
}

impl ChainError {
    /// Whether the block could not be applied only because a dispute step
    /// in it needs referee data (a model, opened tensors) this node does
    /// not hold yet: says nothing about the block's validity.
    pub fn waits_for_referee(&self) -> bool {
        matches!(
            self,
            ChainError::Invalid {
                error: BlockError::RefereeUnavailable { .. }
                    | BlockError::QueuedRefereeUnavailable { .. },
                ..
            }
        )
    }
}

/// See the module docs.
///
/// Shared state is two locks, never held together: `finality` (written
/// by the finalizer, read by the API and consensus) and `pool` (the
/// mempool and gossip outbox). Neither is held across a ledger
/// application or a signature check.
#[derive(Debug)]
pub struct Chain {
    genesis: Block,
    finality: Mutex<Finality>,
    pool: Mutex<Pool>,
    gossip: AtomicBool,
    ready: AtomicBool,
    /// The height of the snapshot this node started from (0: genesis).
    restored_from: AtomicU64,
    /// The highest height marshal reported finalized by the network.
    network_tip: AtomicU64,
    /// When the finalized tip last moved (or the chain was created).
    last_finalized: Mutex<Instant>,
    /// The finalized height, for tasks that react to finalization.
    height_tx: tokio::sync::watch::Sender<u64>,
    /// Models and tensors the referee of disputes needs, set once when
    /// the node's services start ([`Chain::set_offchain`]).
    offchain: OnceLock<Arc<OffChain>>,
    /// What the referee has before then: no blob store, no peers.
    no_offchain: Arc<OffChain>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind (no
    // invariant spans an unwind point), so keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Applies `block` on `parent` and checks the header's state root.
/// Signatures not yet checked are checked in parallel first. Dispute steps
/// that reach the referee are decided with `referee` (docs/disputes.md).
pub fn apply(
    parent: &State,
    block: &Block,
    referee: &dyn Referee,
) -> Result<(State, Vec<TxOutcome>), ChainError> {
    use rayon::prelude::*;
    let chain_id = parent.chain_id();
    block.txs().par_iter().for_each(|tx| {
        // A failure is reported, with its index, by `apply_block`.
        let _ = tx.verify_signature(&chain_id);
    });
    let height = block.height().get();
    // The header's seed (checked when the block was verified; finalized
    // blocks replayed at restart are trusted), so no seed cache is needed.
    let ctx = BlockContext {
        randomness: block.header().randomness(),
        height,
        timestamp_ms: block.header().timestamp_ms,
    };
    let (state, outcomes) = parent
        .apply_block_with(ctx, block.txs(), referee)
        .map_err(|error| ChainError::Invalid { height, error })?;
    let computed = state.root();
    if computed != block.header().state_root {
        return Err(ChainError::StateRoot {
            height,
            claimed: block.header().state_root.to_hex(),
            computed: computed.to_hex(),
        });
    }
    Ok((state, outcomes))
}

impl Chain {
    /// A chain at genesis.
    pub fn new(genesis: Block, state: State, limits: MempoolLimits) -> Self {
        Chain {
            genesis: genesis.clone(),
            finality: Mutex::new(Finality {
                finalized: Finalized {
                    block: Arc::new(genesis),
                    state,
                },
                pending: HashMap::new(),
                statuses: HashMap::new(),
                status_order: VecDeque::new(),
                recent: VecDeque::new(),
                recent_bytes: 0,
                jobs: JobIndex::default(),
                certified: None,
            }),
            pool: Mutex::new(Pool {
                mempool: Mempool::new(limits),
                outbox: VecDeque::new(),
            }),
            gossip: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            restored_from: AtomicU64::new(0),
            network_tip: AtomicU64::new(0),
            last_finalized: Mutex::new(Instant::now()),
            height_tx: tokio::sync::watch::Sender::new(0),
            offchain: OnceLock::new(),
            no_offchain: Arc::new(OffChain::new(
                None,
                Vec::new(),
                None,
                OffChainLimits::default(),
            )),
        }
    }

    /// Sets where the referee finds models and tensors, once; a second
    /// call is refused and gives its argument back.
    pub fn set_offchain(&self, offchain: Arc<OffChain>) -> Result<(), Arc<OffChain>> {
        self.offchain.set(offchain)
    }

    /// The referee's models and tensors.
    pub fn offchain(&self) -> Arc<OffChain> {
        Arc::clone(self.offchain.get().unwrap_or(&self.no_offchain))
    }

    /// The genesis block.
    pub fn genesis(&self) -> &Block {
        &self.genesis
    }

    /// The latest finalized block and state.
    pub fn finalized(&self) -> Finalized {
        lock(&self.finality).finalized.clone()
    }

    /// The latest finalized state (an O(1) clone).
    pub fn finalized_state(&self) -> State {
        lock(&self.finality).finalized.state.clone()
    }

    /// Whether the finalized blocks archived before a restart have been
    /// replayed; proposals and verification wait for it.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the restart replay as done.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The state after `digest`, if known (finalized tip or unfinalized).
    pub fn state_after(&self, digest: &Digest) -> Option<State> {
        let inner = lock(&self.finality);
        if inner.finalized.block.digest() == *digest {
            return Some(inner.finalized.state.clone());
        }
        inner.pending.get(digest).map(|a| a.state.clone())
    }

    /// The index and state of the first of `digests` whose state is known
    /// (the finalized tip's, or a remembered unfinalized block's); when
    /// none is, the finalized height, read under the same lock (so a tip
    /// that moves meanwhile cannot slip between the two reads).
    pub fn first_known_state(
        &self,
        digests: impl IntoIterator<Item = Digest>,
    ) -> Result<(usize, State), u64> {
        let inner = lock(&self.finality);
        let tip = inner.finalized.block.digest();
        for (i, digest) in digests.into_iter().enumerate() {
            if digest == tip {
                return Ok((i, inner.finalized.state.clone()));
            }
            if let Some(applied) = inner.pending.get(&digest) {
                return Ok((i, applied.state.clone()));
            }
        }
        Err(inner.finalized.block.height().get())
    }

    /// The finalized height.
    pub fn finalized_height(&self) -> u64 {
        lock(&self.finality).finalized.block.height().get()
    }

    /// Remembers the state after an unfinalized block.
    pub fn remember(&self, block: &Block, applied: Applied) {
        let mut inner = lock(&self.finality);
        let height = applied.height;
        if height <= inner.finalized.block.height().get() {
            return;
        }
        if inner.pending.len() >= MAX_PENDING_STATES {
            // Keep the ones nearest finality: they are the ones consensus
            // can still finalize.
            if let Some((&far, _)) = inner.pending.iter().max_by_key(|(_, a)| a.height) {
                inner.pending.remove(&far);
            }
        }
        inner.pending.insert(block.digest(), applied);
    }

    /// Records a finalized block: advances the finalized tip, prunes states
    /// at or below it, indexes outcomes and prunes the mempool. Blocks at or
    /// below the tip (redelivered after a restart) are ignored.
    pub fn finalize(&self, block: &Block) -> Result<(), ChainError> {
        let height = block.height().get();
        let (tip, known) = {
            let inner = lock(&self.finality);
            let tip = inner.finalized.block.height().get();
            if height <= tip {
                return Ok(());
            }
            if height != tip + 1 || block.header().parent != inner.finalized.block.digest() {
                return Err(ChainError::NotNext { height, tip });
            }
            (
                inner.finalized.state.clone(),
                inner.pending.get(&block.digest()).cloned(),
            )
        };
        let (state, outcomes) = match known {
            Some(applied) => (applied.state, applied.outcomes),
            None => {
                let off = self.offchain();
                let (state, outcomes) = apply(&tip, block, &RuntimeReferee { data: &*off })?;
                (state, Arc::new(outcomes))
            }
        };
        {
            let mut inner = lock(&self.finality);
            inner.pending.retain(|_, a| a.height > height);
            for (index, outcome) in outcomes.iter().cloned().enumerate() {
                let hash = outcome.tx_hash;
                if inner.statuses.len() >= MAX_INDEXED_TXS
                    && let Some(old) = inner.status_order.pop_front()
                {
                    inner.statuses.remove(&old);
                }
                inner.statuses.insert(
                    hash,
                    TxStatus::Finalized {
                        height,
                        index,
                        outcome,
                    },
                );
                inner.status_order.push_back(hash);
            }
            inner.finalized = Finalized {
                block: Arc::new(block.clone()),
                state: state.clone(),
            };
            inner.push_recent(block);
            for (tx, outcome) in block.txs().iter().zip(outcomes.iter()) {
                inner.jobs.record(tx, outcome);
            }
        }
        let senders: Vec<_> = block.txs().iter().map(|tx| *tx.sender()).collect();
        lock(&self.pool).mempool.prune(&senders, &state);
        *lock(&self.last_finalized) = Instant::now();
        self.height_tx.send_replace(height);
        Ok(())
    }

    /// Notes that the network finalized `height` (marshal's tip: a
    /// certificate this node holds, whose block it may not have yet).
    pub fn note_network_tip(&self, height: u64) {
        self.network_tip.fetch_max(height, Ordering::AcqRel);
    }

    /// The highest finalized height known: the network's, or this node's
    /// own when that is higher.
    pub fn network_height(&self) -> u64 {
        self.network_tip
            .load(Ordering::Acquire)
            .max(self.finalized_height())
    }

    /// Time since the finalized tip last moved (or since start).
    pub fn since_finalized(&self) -> Duration {
        lock(&self.last_finalized).elapsed()
    }

    /// Starts this chain from a snapshot: `block` was finalized and
    /// `state` is the state after it (its root checked against the
    /// header). Only before the restart replay is done ([`Chain::set_ready`])
    /// and only forward: a snapshot at or below the finalized height is
    /// not taken. The recent blocks start again from `block`. Returns
    /// whether it was taken.
    pub fn restore(&self, block: Block, state: State) -> bool {
        if self.is_ready() {
            return false;
        }
        self.restore_ahead(block, state)
    }

    /// [`Chain::restore`], also while the node serves: a full node that
    /// fell out of its peers' block range moves forward to a verified
    /// snapshot (its API then answers from the newer state).
    pub fn restore_ahead(&self, block: Block, state: State) -> bool {
        let height = block.height().get();
        {
            let mut inner = lock(&self.finality);
            if height <= inner.finalized.block.height().get() {
                return false;
            }
            inner.pending.clear();
            inner.recent.clear();
            inner.recent_bytes = 0;
            inner.certified = None;
            inner.finalized = Finalized {
                block: Arc::new(block),
                state,
            };
        }
        self.restored_from.store(height, Ordering::Release);
        // Transactions settled in the blocks skipped leave the mempool.
        let state = self.finalized_state();
        lock(&self.pool).mempool.prune_all(&state);
        *lock(&self.last_finalized) = Instant::now();
        self.height_tx.send_replace(height);
        true
    }

    /// The height of the state snapshot this node started from, if it
    /// did not start from genesis.
    pub fn restored_from(&self) -> Option<u64> {
        Some(self.restored_from.load(Ordering::Acquire)).filter(|&h| h > 0)
    }

    /// Indexes finalized `block`, at or below the restored tip, for the
    /// API and receipts: kept among the recent blocks, and its job
    /// transactions that the finalized state shows took effect
    /// ([`JobIndex::record_applied`]). Blocks are given oldest first.
    pub fn reindex(&self, block: &Block) {
        let mut inner = lock(&self.finality);
        if block.height().get() > inner.finalized.block.height().get() {
            return;
        }
        inner.push_recent(block);
        let state = inner.finalized.state.clone();
        for tx in block.txs() {
            inner.jobs.record_applied(tx, &state);
        }
    }

    /// Records `finalization` when it certifies the finalized tip (the
    /// finalizer passes each finalized block's certificate, when marshal
    /// holds one).
    pub fn certify(&self, finalization: Finalization) {
        let mut inner = lock(&self.finality);
        let f = &inner.finalized;
        if finalization.proposal.payload != f.block.digest() {
            return;
        }
        inner.certified = Some(Certified {
            block: Arc::clone(&f.block),
            state: f.state.clone(),
            finalization,
        });
        drop(inner);
        // Wakes whoever waits for a certified block (`GET /v1/segment`).
        self.height_tx.send_modify(|_| {});
    }

    /// A receiver of the finalized height, marked changed at every
    /// finalized block and every certificate recorded.
    pub fn watch_finalized(&self) -> tokio::sync::watch::Receiver<u64> {
        self.height_tx.subscribe()
    }

    /// The latest certified finalized block, if any.
    pub fn certified(&self) -> Option<Certified> {
        lock(&self.finality).certified.clone()
    }

    /// The latest certified finalized block and, read under the same
    /// lock, the finalized transactions of job `id` if still indexed.
    pub fn certified_job(&self, id: &JobId) -> (Option<Certified>, Option<JobTxs>) {
        let inner = lock(&self.finality);
        (inner.certified.clone(), inner.jobs.get(id))
    }

    /// Admits a transaction to the mempool, checked against the latest
    /// finalized state.
    pub fn submit(&self, tx: SignedTx) -> Result<TxHash, MempoolError> {
        let gossip = self.gossip.load(Ordering::Relaxed);
        self.admit(tx, gossip)
    }

    /// Admits a transaction received from a peer: like [`Chain::submit`],
    /// but it is not gossiped again.
    pub fn admit_gossiped(&self, tx: SignedTx) -> Result<TxHash, MempoolError> {
        self.admit(tx, false)
    }

    fn admit(&self, tx: SignedTx, gossip: bool) -> Result<TxHash, MempoolError> {
        let state = self.finalized_state();
        // The signature check is the expensive part: outside the lock (the
        // result is remembered in `tx`).
        if !lock(&self.pool).mempool.contains(&tx.hash()) {
            tx.verify_signature(&state.chain_id())
                .map_err(TxError::from)?;
        }
        let mut pool = lock(&self.pool);
        let hash = pool.mempool.insert(tx.clone(), &state)?;
        if gossip {
            if pool.outbox.len() >= MAX_OUTBOX {
                pool.outbox.pop_front();
            }
            pool.outbox.push_back(tx);
        }
        Ok(hash)
    }

    /// Turns on gossip of API-submitted transactions (the p2p runner does).
    pub fn enable_gossip(&self) {
        self.gossip.store(true, Ordering::Relaxed);
    }

    /// Up to `max_txs` transactions of at most `max_bytes` (encoded, plus
    /// 4 bytes each) from the gossip outbox.
    pub fn take_outbox(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let outbox = &mut lock(&self.pool).outbox;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(tx) = outbox.front() {
            if out.len() >= max_txs || bytes + 4 + tx.len() > max_bytes {
                break;
            }
            bytes += 4 + tx.len();
            if let Some(tx) = outbox.pop_front() {
                out.push(tx);
            }
        }
        out
    }

    /// What this node knows of `hash`.
    pub fn tx_status(&self, hash: &TxHash) -> Option<TxStatus> {
        if let Some(s) = lock(&self.finality).statuses.get(hash) {
            return Some(s.clone());
        }
        lock(&self.pool)
            .mempool
            .contains(hash)
            .then_some(TxStatus::Pending)
    }

    /// Marks the signatures of `block`'s transactions that this node
    /// already checked at mempool admission as checked.
    pub fn adopt_checked(&self, block: &Block) {
        let pool = lock(&self.pool);
        for tx in block.txs() {
            if let Some(known) = pool.mempool.get(&tx.hash()) {
                tx.adopt_verification(known);
            }
        }
    }

    /// Pending dispute steps (at most 64), whose referee data a proposer
    /// fetches ahead.
    pub fn pending_dispute_steps(&self) -> Vec<SignedTx> {
        lock(&self.pool).mempool.dispute_steps(64)
    }

    /// Transactions in the mempool.
    pub fn mempool_len(&self) -> usize {
        lock(&self.pool).mempool.len()
    }

    /// Transactions for a block on top of `parent`, within the ledger's
    /// block limits, each admissible in order (inadmissible ones are
    /// dropped from the mempool). Returns them with the resulting state.
    pub fn build(
        &self,
        parent: &State,
        ctx: BlockContext,
    ) -> Result<(Vec<SignedTx>, Applied), ChainError> {
        let params = parent.params();
        let candidates = lock(&self.pool).mempool.select(
            parent,
            (params.max_block_txs as usize).min(MAX_PROPOSAL_TXS),
            params.max_block_bytes as usize,
        );
        let invalid = |error| ChainError::Invalid {
            height: ctx.height,
            error,
        };
        let off = self.offchain();
        let referee = RuntimeReferee { data: &*off };
        let mut builder = parent.begin_block_with(ctx, &referee).map_err(invalid)?;
        let mut txs = Vec::with_capacity(candidates.len());
        let mut dropped: Vec<SignedTx> = Vec::new();
        let mut dropped_later: Vec<SignedTx> = Vec::new();
        for tx in candidates {
            // A sender's later nonces cannot follow a dropped or skipped one.
            if dropped
                .iter()
                .chain(&dropped_later)
                .any(|d| d.sender() == tx.sender() && d.nonce() < tx.nonce())
            {
                continue;
            }
            match builder.push(&tx) {
                Ok(_) => txs.push(tx),
                Err(BlockError::InvalidTx { error, .. }) => {
                    warn!(tx = %tx.hash(), %error, "dropping an inadmissible transaction from the mempool");
                    dropped.push(tx);
                }
                // Block limits: the block is full.
                Err(BlockError::TooManyTxs { .. } | BlockError::TooManyBytes { .. }) => break,
                // A dispute step whose data this node lacks waits in the
                // mempool (the node fetches it meanwhile); the sender's
                // later nonces wait with it.
                Err(BlockError::RefereeUnavailable { what, .. }) => {
                    debug!(tx = %tx.hash(), %what, "skipping a dispute step until its data is here");
                    dropped_later.push(tx);
                }
                Err(error) => return Err(invalid(error)),
            }
        }
        if !dropped.is_empty() {
            let mut pool = lock(&self.pool);
            for tx in &dropped {
                pool.mempool.remove(&tx.hash());
            }
        }
        let (state, outcomes) = builder.finish().map_err(invalid)?;
        Ok((
            txs,
            Applied {
                height: ctx.height,
                state,
                outcomes: Arc::new(outcomes),
            },
        ))
    }

    /// The finalized block at `height` while it is among the most recent
    /// ones kept in memory ([`MAX_RECENT_BLOCKS`],
    /// [`MAX_RECENT_BLOCK_BYTES`]); genesis is always kept.
    pub fn finalized_block(&self, height: u64) -> Option<Block> {
        if height == self.genesis.height().get() {
            return Some(self.genesis.clone());
        }
        let inner = lock(&self.finality);
        let first = inner.recent.front()?.height().get();
        let i = usize::try_from(height.checked_sub(first)?).ok()?;
        inner
            .recent
            .get(i)
            .filter(|b| b.height().get() == height)
            .cloned()
    }
}

impl Finality {
    /// Keeps `block` (just finalized) among the recent blocks, dropping the
    /// oldest beyond [`MAX_RECENT_BLOCKS`] and [`MAX_RECENT_BLOCK_BYTES`].
    fn push_recent(&mut self, block: &Block) {
        let bytes = |b: &Block| b.txs().iter().map(SignedTx::len).sum::<usize>();
        self.recent_bytes = self.recent_bytes.saturating_add(bytes(block));
        self.recent.push_back(block.clone());
        while self.recent.len() > MAX_RECENT_BLOCKS
            || (self.recent.len() > 1 && self.recent_bytes > MAX_RECENT_BLOCK_BYTES)
        {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes = self.recent_bytes.saturating_sub(bytes(&old));
        }
    }
}

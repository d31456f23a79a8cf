//! The consensus application: builds blocks from the mempool, verifies
//! peers' blocks (their parent's seed, then re-execution on the pure
//! ledger), and hands finalized blocks to the finalizer task
//! (docs/consensus.md). [`SeedCache`] collects the threshold VRF seeds of
//! the certificates consensus reports, so a proposer can put its parent's
//! seed in the header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use commonware_consensus::Heightable;
use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::{AncestorStream, BlockProvider};
use commonware_consensus::simplex::types::Activity as CActivity;
use commonware_consensus::types::{Height, View};
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Metrics, Spawner};
use commonware_utils::SystemTimeExt;
use futures::SinkExt;
use futures::StreamExt;
use futures::channel::mpsc;
use glassbox_ledger::{BlockContext, State};
use rand::Rng;
use tracing::{debug, warn};

use crate::block::{Block, SeedError, check_seed, randomness};
use crate::chain::{Applied, Chain, MAX_PENDING_STATES, apply};
use crate::consensus::{Activity, Context, EPOCH, Scheme, Seed};
use crate::referee::RuntimeReferee;

/// How far ahead of a validator's clock a block's timestamp may be.
pub const MAX_CLOCK_SKEW_MS: u64 = 500;

/// How often a proposal or verification checks whether the restart replay
/// has finished.
const READY_POLL: Duration = Duration::from_millis(10);

/// Most views whose seeds [`SeedCache`] keeps (the most recent ones).
pub const SEED_CACHE_VIEWS: usize = 1_024;

/// How long a proposer waits for its parent's seed to reach the
/// [`SeedCache`] before declining to propose.
pub const PARENT_SEED_WAIT: Duration = Duration::from_millis(500);

/// How often a waiting proposer looks for its parent's seed.
const SEED_POLL: Duration = Duration::from_millis(5);

/// Longest wait of a verifier for the model and tensors of a block's
/// dispute steps.
pub const REFEREE_FETCH_WAIT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data, no invariant spans an unwind point.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The seeds of the most recent [`SEED_CACHE_VIEWS`] views, by view, from
/// the notarizations, certifications and finalizations simplex reports
/// (each verified by consensus before it is reported). A reporter: the
/// engine hands it every consensus activity next to marshal. Cheap to
/// clone (shared).
#[derive(Clone, Debug, Default)]
pub struct SeedCache {
    seeds: Arc<Mutex<BTreeMap<View, Seed>>>,
}

impl SeedCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `seed` (which must come from a verified certificate or pass
    /// `Seed::verify`), dropping the lowest views beyond
    /// [`SEED_CACHE_VIEWS`]. Seeds of other epochs are ignored.
    pub fn insert(&self, seed: Seed) {
        if seed.round.epoch() != EPOCH {
            return;
        }
        let mut seeds = lock(&self.seeds);
        seeds.insert(seed.round.view(), seed);
        while seeds.len() > SEED_CACHE_VIEWS {
            seeds.pop_first();
        }
    }

    /// The seed of `view`, if known.
    pub fn get(&self, view: View) -> Option<Seed> {
        lock(&self.seeds).get(&view).cloned()
    }

    /// Views held.
    pub fn len(&self) -> usize {
        lock(&self.seeds).len()
    }

    /// Whether no seed is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl commonware_consensus::Reporter for SeedCache {
    type Activity = Activity;

    async fn report(&mut self, activity: Activity) {
        // `Seedable::seed` would panic on an undecodable certificate;
        // consensus only reports verified ones, but do not rely on it.
        let (round, certificate) = match &activity {
            CActivity::Notarization(n) | CActivity::Certification(n) => {
                (n.proposal.round, &n.certificate)
            }
            CActivity::Finalization(f) => (f.proposal.round, &f.certificate),
            _ => return,
        };
        if let Some(signature) = certificate.get() {
            self.insert(Seed::new(round, signature.seed_signature));
        }
    }
}

/// Runs CPU-heavy ledger work (signature checks, block execution) on the
/// runtime's blocking pool, so consensus tasks keep their threads.
async fn off_thread<E: Spawner, T: Send + 'static>(
    rt: &E,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    rt.clone()
        .shared(true)
        .spawn(move |_| async move { work() })
        .await
        .ok()
}

/// Why a block is rejected before it is re-executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The block does not name the given parent, or its height is not the
    /// parent's plus one.
    #[error("the block does not extend its parent")]
    NotChild,
    /// The timestamp is not after the parent's.
    #[error("timestamp {timestamp_ms} is not after the parent's {parent_ms}")]
    TimestampNotAfterParent {
        /// The block's.
        timestamp_ms: u64,
        /// The parent's.
        parent_ms: u64,
    },
    /// The timestamp is too far ahead of this node's clock.
    #[error(
        "timestamp {timestamp_ms} is more than {MAX_CLOCK_SKEW_MS} ms ahead of the clock ({now_ms})"
    )]
    TimestampAhead {
        /// The block's.
        timestamp_ms: u64,
        /// This node's clock.
        now_ms: u64,
    },
    /// The header's seed is not its parent round's.
    #[error("seed: {0}")]
    Seed(#[from] SeedError),
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Application {
    chain: Arc<Chain>,
    finalized: mpsc::Sender<Update<Block>>,
    seeds: SeedCache,
    verifier: Scheme,
}

impl Application {
    /// An application over `chain` that forwards finalized blocks to
    /// `finalized` (the finalizer task's inbox), takes parents' seeds from
    /// `seeds` and checks peers' seeds with `verifier` (a certificate
    /// verifier of the genesis group key).
    pub fn new(
        chain: Arc<Chain>,
        finalized: mpsc::Sender<Update<Block>>,
        seeds: SeedCache,
        verifier: Scheme,
    ) -> Self {
        Application {
            chain,
            finalized,
            seeds,
            verifier,
        }
    }

    /// The checks of `block`'s header that come before any ledger work
    /// (verification runs them, then re-executes the block on `parent`'s
    /// state): it extends `parent`, its timestamp is after the parent's
    /// and at most [`MAX_CLOCK_SKEW_MS`] ahead of `now_ms`, and it carries
    /// its parent round's seed ([`check_seed`]; no pairing when the seed
    /// cache holds the same seed). A seed that passes the pairing check is
    /// added to the cache.
    pub fn check_header(
        &self,
        block: &Block,
        parent: &Block,
        now_ms: u64,
    ) -> Result<(), HeaderError> {
        let header = block.header();
        if header.parent != parent.digest() || header.height != parent.height().next() {
            return Err(HeaderError::NotChild);
        }
        let (timestamp_ms, parent_ms) = (header.timestamp_ms, parent.header().timestamp_ms);
        if timestamp_ms <= parent_ms {
            return Err(HeaderError::TimestampNotAfterParent {
                timestamp_ms,
                parent_ms,
            });
        }
        if timestamp_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(HeaderError::TimestampAhead {
                timestamp_ms,
                now_ms,
            });
        }
        let known = header
            .seed
            .as_ref()
            .and_then(|seed| self.seeds.get(seed.round.view()));
        check_seed(header, parent.header(), known.as_ref(), &self.verifier)?;
        if known.is_none()
            && let Some(seed) = &header.seed
        {
            self.seeds.insert(seed.clone());
        }
        Ok(())
    }

    /// The seed of `view` from the cache, waiting up to
    /// [`PARENT_SEED_WAIT`] for consensus to report it.
    async fn parent_seed<E: Clock>(&self, rt: &E, view: View) -> Option<Seed> {
        let deadline = rt.current() + PARENT_SEED_WAIT;
        loop {
            if let Some(seed) = self.seeds.get(view) {
                return Some(seed);
            }
            if rt.current() >= deadline {
                return None;
            }
            rt.sleep(SEED_POLL).await;
        }
    }

    async fn wait_ready<E: Clock>(&self, rt: &E) {
        while !self.chain.is_ready() {
            rt.sleep(READY_POLL).await;
        }
    }

    /// The state after `block`, applying any unfinalized ancestors this
    /// node has not applied yet (after a restart, or blocks it missed).
    async fn state_after<A: BlockProvider<Block = Block>>(
        &self,
        block: &Block,
        ancestry: &mut AncestorStream<A, Block>,
    ) -> Option<State> {
        if let Some(state) = self.chain.state_after(&block.digest()) {
            return Some(state);
        }
        let mut missing = vec![block.clone()];
        let mut base = loop {
            let last = missing.last()?;
            if last.height().get() <= self.chain.finalized_height()
                || missing.len() > MAX_PENDING_STATES
            {
                debug!(
                    height = last.height().get(),
                    "ancestry does not reach a known state"
                );
                return None;
            }
            let next = ancestry.next().await?;
            if let Some(state) = self.chain.state_after(&next.digest()) {
                break state;
            }
            missing.push(next);
        };
        for b in missing.iter().rev() {
            let off = self.chain.offchain();
            if let Err(e) = off.ensure_block(&base, b.txs()).await {
                warn!(error = %e, "ancestor's referee data is unavailable");
                return None;
            }
            let (state, outcomes) = match apply(&base, b, &RuntimeReferee { data: &*off }) {
                Ok(ok) => ok,
                Err(e) => {
                    warn!(error = %e, "ancestor does not apply");
                    return None;
                }
            };
            self.chain.remember(
                b,
                Applied {
                    height: b.height().get(),
                    state: state.clone(),
                    outcomes: Arc::new(outcomes),
                },
            );
            base = state;
        }
        Some(base)
    }
}

impl<E> commonware_consensus::Application<E> for Application
where
    E: Rng + Spawner + Metrics + Clock,
{
    type SigningScheme = Scheme;
    type Context = Context;
    type Block = Block;

    async fn genesis(&mut self) -> Block {
        self.chain.genesis().clone()
    }

    async fn propose<A: BlockProvider<Block = Block>>(
        &mut self,
        (rt, context): (E, Context),
        mut ancestry: AncestorStream<A, Block>,
    ) -> Option<Block> {
        self.wait_ready(&rt).await;
        let parent = ancestry.next().await?;
        // The parent round's seed: none for genesis, otherwise from a
        // certificate of that view. Never guess: without it, do not propose.
        let seed = if parent.height().get() == 0 {
            None
        } else {
            let view = context.parent.0;
            match self.parent_seed(&rt, view).await {
                Some(seed) => Some(seed),
                None => {
                    warn!(%view, "no seed for the parent's view; not proposing");
                    return None;
                }
            }
        };
        let parent_state = self.state_after(&parent, &mut ancestry).await?;
        let timestamp_ms = rt
            .current()
            .epoch_millis()
            .max(parent.header().timestamp_ms.saturating_add(1));
        let height = parent.height().next();
        let ctx = BlockContext {
            randomness: randomness(seed.as_ref(), &parent.digest()),
            height: height.get(),
            timestamp_ms,
        };
        // Fetch, in the background, what pending dispute steps need; a step
        // whose data is missing now waits for a later block.
        let steps = self.chain.pending_dispute_steps();
        if !steps.is_empty() {
            let off = self.chain.offchain();
            let state = parent_state.clone();
            tokio::spawn(async move {
                if let Err(e) = off.ensure_block(&state, &steps).await {
                    debug!(error = %e, "referee data not fetched yet");
                }
            });
        }
        let chain = self.chain.clone();
        let built = off_thread(&rt, move || chain.build(&parent_state, ctx)).await?;
        let (txs, applied) = match built {
            Ok(built) => built,
            Err(e) => {
                warn!(error = %e, "cannot build a block");
                return None;
            }
        };
        let block = Block::with_seed(
            context,
            parent.digest(),
            Height::new(ctx.height),
            timestamp_ms,
            seed,
            txs,
            applied.state.root(),
        );
        debug!(height = ctx.height, txs = block.txs().len(), "proposed");
        self.chain.remember(&block, applied);
        Some(block)
    }
}

impl<E> commonware_consensus::VerifyingApplication<E> for Application
where
    E: Rng + Spawner + Metrics + Clock,
{
    async fn verify<A: BlockProvider<Block = Block>>(
        &mut self,
        (rt, _): (E, Context),
        mut ancestry: AncestorStream<A, Block>,
    ) -> bool {
        self.wait_ready(&rt).await;
        let Some(block) = ancestry.next().await else {
            return false;
        };
        if self.chain.state_after(&block.digest()).is_some() {
            return true;
        }
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        let now_ms = rt.current().epoch_millis();
        if let Err(e) = self.check_header(&block, &parent, now_ms) {
            warn!(height = block.height().get(), error = %e, "rejecting block");
            return false;
        }
        let Some(parent_state) = self.state_after(&parent, &mut ancestry).await else {
            return false;
        };
        self.chain.adopt_checked(&block);
        // Data availability: the model and tensors of the block's dispute
        // steps must be here before it can be checked (docs/disputes.md).
        let off = self.chain.offchain();
        let needs_data = block
            .txs()
            .iter()
            .any(|t| parent_state.referee_needs(t).is_some());
        if needs_data
            && let Err(e) = tokio::time::timeout(
                REFEREE_FETCH_WAIT,
                off.ensure_block(&parent_state, block.txs()),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
        {
            warn!(height = block.height().get(), error = %e, "rejecting block: referee data unavailable");
            return false;
        }
        let candidate = block.clone();
        let Some(result) = off_thread(&rt, move || {
            apply(&parent_state, &candidate, &RuntimeReferee { data: &*off })
        })
        .await
        else {
            return false;
        };
        match result {
            Ok((state, outcomes)) => {
                self.chain.remember(
                    &block,
                    Applied {
                        height: block.height().get(),
                        state,
                        outcomes: Arc::new(outcomes),
                    },
                );
                true
            }
            Err(e) => {
                warn!(error = %e, "rejecting block");
                false
            }
        }
    }
}

impl commonware_consensus::Reporter for Application {
    type Activity = Update<Block>;

    async fn report(&mut self, update: Update<Block>) {
        // Marshal calls this from its own loop, so the finalizer (which may
        // ask marshal for archived blocks) runs as a separate task.
        if let Update::Block(..) = update
            && self.finalized.send(update).await.is_err()
        {
            warn!("finalizer stopped; dropping a finalized block");
        }
    }
}

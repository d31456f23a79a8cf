//! The consensus application: builds blocks from the mempool, verifies
//! peers' blocks (their parent's seed, then re-execution on the pure
//! ledger), and hands finalized blocks to the finalizer task
//! (docs/consensus.md). [`SeedCache`] collects the threshold VRF seeds of
//! the certificates consensus reports, so a proposer can put its parent's
//! seed in the header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use commonware_actor::Feedback;
use commonware_consensus::Heightable;
use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Activity as CActivity;
use commonware_consensus::types::{Height, View};
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::{Clock, Metrics, Spawner};
use commonware_utils::SystemTimeExt;
use futures::StreamExt;
use futures::channel::mpsc;
use glassbox_ledger::{BlockContext, State};
use tracing::{debug, warn};

use crate::chain::{Applied, Chain, MAX_PENDING_STATES, apply};
use crate::consensus::block::{Block, SeedError, check_seed, randomness};
use crate::consensus::{Activity, Context, EPOCH, Scheme, Seed};
use crate::disputes::referee::RuntimeReferee;

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

/// Pause between fetches of the model and tensors of a block's dispute
/// steps while they are missing.
const REFEREE_RETRY: Duration = Duration::from_millis(500);

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

    fn report(&mut self, activity: Activity) -> Feedback {
        // `Seedable::seed` would panic on an undecodable certificate;
        // consensus only reports verified ones, but do not rely on it.
        let (round, certificate) = match &activity {
            CActivity::Notarization(n) | CActivity::Certification(n) => {
                (n.proposal.round, &n.certificate)
            }
            CActivity::Finalization(f) => (f.proposal.round, &f.certificate),
            _ => return Feedback::Ok,
        };
        if let Some(signature) = certificate.get() {
            self.insert(Seed::new(round, signature.seed_signature));
        }
        Feedback::Ok
    }
}

/// Runs CPU-heavy ledger work (signature checks, block execution) on the
/// runtime's blocking pool, so consensus tasks keep their threads.
async fn off_thread<E: Spawner, T: Send + 'static>(
    rt: &E,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    rt.child("off_thread")
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
    finalized: mpsc::UnboundedSender<Update<Block>>,
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
        finalized: mpsc::UnboundedSender<Update<Block>>,
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
    ///
    /// `None` only when that state can never be known here: the ancestry
    /// ends, leaves the finalized chain, or an ancestor does not apply.
    /// What time cures is waited out instead (consensus drops the future
    /// when it moves on): a finalizer still catching up, referee data not
    /// fetched yet. A verdict on a block must not depend on timing: with
    /// deferred verification a validator that wrongly finds a block
    /// invalid nullifies a view its peers voted to finalize, and with one
    /// validator down that view can neither finalize nor nullify
    /// (docs/consensus.md, "Building and verifying").
    async fn state_after<E: Clock + Spawner>(
        &self,
        rt: &E,
        block: &Digested<Block>,
        ancestry: &mut impl Ancestry<Block>,
    ) -> Option<State> {
        // Newest first: `block`, then its ancestors as far as fetched.
        let mut unapplied = vec![block.clone()];
        let (known, mut base) = loop {
            let finalized = match self
                .chain
                .first_known_state(unapplied.iter().map(|b| b.digest()))
            {
                Ok(found) => break found,
                Err(finalized) => finalized,
            };
            let oldest = unapplied.last()?.height().get();
            if oldest <= finalized {
                // Every height from `oldest` up to `block` was looked at:
                // the finalized tip is not among them, so this ancestry is
                // a fork, or `block` is already below the tip (callers
                // that care check `finalized_verdict`).
                debug!(
                    height = oldest,
                    finalized, "the ancestry leaves the finalized chain"
                );
                return None;
            }
            if unapplied.len() >= MAX_PENDING_STATES {
                // Too far ahead of this node's finality to apply at once:
                // wait for the finalizer to come within reach.
                rt.sleep(READY_POLL).await;
                continue;
            }
            unapplied.push(ancestry.next().await?);
        };
        for b in unapplied[..known].iter().rev() {
            let (state, outcomes) = self.apply_waiting(rt, &base, b.inner_shared()).await?;
            self.chain.remember(
                b.inner(),
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

    /// `block` applied on `parent` (off the consensus threads), or `None`
    /// when the ledger rejects it. While the ledger finds referee data
    /// missing, the data is fetched and the block applied again: missing
    /// data says nothing about the block. Stays pending if the runtime
    /// shuts down.
    async fn apply_waiting<E: Clock + Spawner>(
        &self,
        rt: &E,
        parent: &State,
        block: Arc<Block>,
    ) -> Option<(State, Vec<glassbox_ledger::TxOutcome>)> {
        let mut warned = false;
        loop {
            let off = self.referee_data(rt, parent, &block).await;
            let (parent, candidate) = (parent.clone(), Arc::clone(&block));
            let Some(result) = off_thread(rt, move || {
                apply(&parent, &candidate, &RuntimeReferee { data: &*off })
            })
            .await
            else {
                return std::future::pending().await;
            };
            match result {
                Ok(applied) => return Some(applied),
                Err(e) if e.waits_for_referee() => {
                    if !warned {
                        warn!(height = block.height().get(), error = %e, "waiting for referee data");
                        warned = true;
                    }
                    rt.sleep(REFEREE_RETRY).await;
                }
                Err(e) => {
                    warn!(height = block.height().get(), error = %e, "rejecting block");
                    return None;
                }
            }
        }
    }

    /// The verdict on a block at or below the finalized height (valid
    /// exactly when it is the block finalized there), `None` above it.
    /// Stays pending when that height's block has left memory: unknown is
    /// not invalid, and consensus drops the question when it moves on.
    async fn finalized_verdict(&self, block: &Digested<Block>) -> Option<bool> {
        let height = block.height().get();
        if height > self.chain.finalized_height() {
            return None;
        }
        match self.chain.finalized_block(height) {
            Some(finalized) => Some(finalized.digest() == block.digest()),
            None => std::future::pending().await,
        }
    }

    /// The off-chain store once it holds the model and operand tensors of
    /// `block`'s dispute steps on `parent` (docs/disputes.md, data
    /// availability); fetches them from peers until they are there (at
    /// once when the block has no dispute step).
    async fn referee_data<E: Clock>(
        &self,
        rt: &E,
        parent: &State,
        block: &Block,
    ) -> Arc<crate::disputes::offchain::OffChain> {
        let mut warned = false;
        loop {
            let off = self.chain.offchain();
            match off.ensure_block(parent, block.txs()).await {
                Ok(()) => return off,
                Err(e) => {
                    if !warned {
                        warn!(height = block.height().get(), error = %e, "waiting for referee data");
                        warned = true;
                    }
                    rt.sleep(REFEREE_RETRY).await;
                }
            }
        }
    }

    /// Waits until `block`'s header passes [`Application::check_header`]
    /// on `parent`, or fails it for good: a timestamp ahead of this node's
    /// clock only waits for the clock.
    async fn header_checks<E: Clock>(
        &self,
        rt: &E,
        block: &Block,
        parent: &Block,
    ) -> Result<(), HeaderError> {
        loop {
            match self.check_header(block, parent, rt.current().epoch_millis()) {
                Err(HeaderError::TimestampAhead {
                    timestamp_ms,
                    now_ms,
                }) => {
                    let ahead_ms = timestamp_ms - now_ms - MAX_CLOCK_SKEW_MS;
                    rt.sleep(Duration::from_millis(ahead_ms.clamp(1, 1_000)))
                        .await;
                }
                checked => return checked,
            }
        }
    }
}

impl<E> commonware_consensus::Application<E> for Application
where
    E: Spawner + Metrics + Clock,
{
    type SigningScheme = Scheme;
    type Context = Context;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (rt, context): (E, Context),
        mut ancestry: impl Ancestry<Block>,
        (): (),
    ) -> Option<Digested<Block>> {
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
        let parent_state = self.state_after(&rt, &parent, &mut ancestry).await?;
        let timestamp_ms = rt
            .current()
            .epoch_millis()
            .max(parent.inner().header().timestamp_ms.saturating_add(1));
        let height = parent.height().next();
        let ctx = BlockContext {
            randomness: randomness(seed.as_ref(), &parent.digest()),
            height: height.get(),
            timestamp_ms,
        };
        // Fetch, in the background, what pending dispute steps and games
        // queued for the referee need; a step whose data is missing now
        // waits for a later block.
        let steps = self.chain.pending_dispute_steps();
        if !steps.is_empty() || !parent_state.queued_referee_needs().is_empty() {
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
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, (rt, _): (E, Context), mut ancestry: impl Ancestry<Block>) -> bool {
        self.wait_ready(&rt).await;
        let Some(block) = ancestry.next().await else {
            return false;
        };
        if self.chain.state_after(&block.digest()).is_some() {
            return true;
        }
        if let Some(verdict) = self.finalized_verdict(&block).await {
            return verdict;
        }
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        if let Err(e) = self.header_checks(&rt, block.inner(), parent.inner()).await {
            warn!(height = block.height().get(), error = %e, "rejecting block");
            return false;
        }
        let Some(parent_state) = self.state_after(&rt, &parent, &mut ancestry).await else {
            // The finalizer may have passed this block meanwhile.
            return self.finalized_verdict(&block).await.unwrap_or(false);
        };
        let block = block.inner_shared();
        self.chain.adopt_checked(&block);
        let Some((state, outcomes)) = self
            .apply_waiting(&rt, &parent_state, Arc::clone(&block))
            .await
        else {
            return false;
        };
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
}

impl commonware_consensus::Reporter for Application {
    type Activity = Update<Block>;

    fn report(&mut self, update: Update<Block>) -> Feedback {
        // Marshal calls this from its own loop, so the finalizer (which may
        // ask marshal for archived blocks) runs as a separate task.
        if let Update::Tip(_, height, _) = update {
            // The network's finalized tip, for `/health`'s lag.
            self.chain.note_network_tip(height.get());
            return Feedback::Ok;
        }
        if self.finalized.unbounded_send(update).is_err() {
            warn!("finalizer stopped; dropping a finalized block");
            return Feedback::Closed;
        }
        Feedback::Ok
    }
}

//! The consensus application: builds blocks from the mempool, verifies
//! peers' blocks by re-executing them on the pure ledger, and hands
//! finalized blocks to the finalizer task (docs/consensus.md).

use std::sync::Arc;
use std::time::Duration;

use commonware_consensus::Heightable;
use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::{AncestorStream, BlockProvider};
use commonware_consensus::types::Height;
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Metrics, Spawner};
use commonware_utils::SystemTimeExt;
use futures::SinkExt;
use futures::StreamExt;
use futures::channel::mpsc;
use glassbox_ledger::{BlockContext, State};
use rand::Rng;
use tracing::{debug, warn};

use crate::block::Block;
use crate::chain::{Applied, Chain, MAX_PENDING_STATES, apply};
use crate::consensus::{Context, Scheme};

/// How far ahead of a validator's clock a block's timestamp may be.
pub const MAX_CLOCK_SKEW_MS: u64 = 500;

/// How often a proposal or verification checks whether the restart replay
/// has finished.
const READY_POLL: Duration = Duration::from_millis(10);

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

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Application {
    chain: Arc<Chain>,
    finalized: mpsc::Sender<Update<Block>>,
}

impl Application {
    /// An application over `chain` that forwards finalized blocks to
    /// `finalized` (the finalizer task's inbox).
    pub fn new(chain: Arc<Chain>, finalized: mpsc::Sender<Update<Block>>) -> Self {
        Application { chain, finalized }
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
            let (state, outcomes) = match apply(&base, b) {
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
        let parent_state = self.state_after(&parent, &mut ancestry).await?;
        let timestamp_ms = rt
            .current()
            .epoch_millis()
            .max(parent.header().timestamp_ms.saturating_add(1));
        let height = parent.height().next();
        let ctx = BlockContext {
            randomness: [0; 32],
            height: height.get(),
            timestamp_ms,
        };
        let chain = self.chain.clone();
        let built = off_thread(&rt, move || chain.build(&parent_state, ctx)).await?;
        let (txs, applied) = match built {
            Ok(built) => built,
            Err(e) => {
                warn!(error = %e, "cannot build a block");
                return None;
            }
        };
        let block = Block::new(
            context,
            parent.digest(),
            Height::new(ctx.height),
            timestamp_ms,
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
        // Marshal has checked the height and parent digest.
        let ts = block.header().timestamp_ms;
        if ts <= parent.header().timestamp_ms {
            warn!(
                height = block.height().get(),
                "timestamp not after the parent's"
            );
            return false;
        }
        if ts
            > rt.current()
                .epoch_millis()
                .saturating_add(MAX_CLOCK_SKEW_MS)
        {
            warn!(
                height = block.height().get(),
                "timestamp too far in the future"
            );
            return false;
        }
        let Some(parent_state) = self.state_after(&parent, &mut ancestry).await else {
            return false;
        };
        self.chain.adopt_checked(&block);
        let candidate = block.clone();
        let Some(result) = off_thread(&rt, move || apply(&parent_state, &candidate)).await else {
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

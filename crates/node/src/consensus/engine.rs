//! Wires Commonware's simplex consensus, marshal (block dissemination,
//! backfill and ordered delivery of finalized blocks) and buffered
//! broadcast around the Glassbox [`Application`]. The shape follows
//! Commonware's `alto` chain.

use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::{
    self, Start,
    core::{Actor as MarshalActor, Mailbox as MarshalMailbox, Processed},
    resolver::{handler, p2p as backfill_p2p},
    standard::{Deferred, Standard},
};
use commonware_consensus::simplex::{
    self, Engine as Consensus,
    config::{Floor, ForwardPolicy, SkipBudget, SkipPolicy},
    elector::{Random, RandomVersion},
};
use commonware_consensus::types::{Epoch, FixedEpocher, Height, ViewDelta};
use commonware_consensus::{Heightable, Reporters};
use commonware_cryptography::bls12381::primitives::{group, sharing::Sharing, variant::MinSig};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::{Digested, Digestible};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Strategy;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, ContextCell, Handle, Metrics, Spawner, Storage, spawn_cell};
use commonware_storage::archive::prunable;
use commonware_storage::translator::EightCap;
use commonware_utils::ordered::Set;
use commonware_utils::{Acknowledgement, NZDuration, NZU16, NZU64, NZUsize};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{BoxFuture, try_join_all};
use rand::CryptoRng;
use tracing::{debug, error, info, warn};

use crate::chain::{Chain, ChainError, MAX_RECENT_BLOCKS};
use crate::consensus::application::{Application, SeedCache};
use crate::consensus::block::Block;
use crate::consensus::follow::Archive;
use crate::consensus::snapshots::{
    NewestSnapshot, Snapshot, SnapshotPolicy, SnapshotSource, Snapshots,
};
use crate::consensus::{Digest, EPOCH, Finalization, NAMESPACE, PublicKey, Scheme};

const PRUNABLE_ITEMS_PER_SECTION: NonZero<u64> = NZU64!(4_096);
/// Finalized blocks (and certificates) per section of a node's archives:
/// what pruning removes at once (docs/operations.md, "Block retention").
/// Fixed for the life of a storage directory.
pub const ARCHIVE_SECTION_BLOCKS: NonZero<u64> = NZU64!(1_024);
/// zstd level of archived blocks and certificates.
const ARCHIVE_COMPRESSION: Option<u8> = Some(3);
const REPLAY_BUFFER: NonZero<usize> = NZUsize!(8 << 20);
const WRITE_BUFFER: NonZero<usize> = NZUsize!(1 << 20);
const PAGE_CACHE_PAGE_SIZE: NonZero<u16> = NZU16!(4_096);
const PAGE_CACHE_CAPACITY: NonZero<usize> = NZUsize!(8_192);
const MAX_REPAIR: NonZero<usize> = NZUsize!(20);
/// Finalized blocks marshal hands the finalizer before it waits for their
/// acknowledgements: the bound of the finalizer's inbox.
const MAX_PENDING_ACKS: NonZero<usize> = NZUsize!(16);
/// Marshal keeps notarized blocks this many times consensus's view
/// retention, so peers near the tip can still fetch them.
const MARSHAL_RETENTION_MULTIPLIER: u64 = 10;

/// Consensus timing and sizing.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How long to wait for a leader's proposal.
    pub leader_timeout: Duration,
    /// How long to wait for certification after a proposal (more than
    /// `leader_timeout`).
    pub certification_timeout: Duration,
    /// How often to rebroadcast a nullify vote while stuck in a view.
    pub nullify_retry: Duration,
    /// How long to wait for a peer to answer a certificate fetch.
    pub fetch_timeout: Duration,
    /// Views behind the finalized tip whose votes and certificates are
    /// kept (in memory and in the consensus journal).
    pub view_retention: u64,
    /// How long a leader may stay inactive, while a quorum is active,
    /// before its views are skipped at once instead of timing out (more
    /// than `certification_timeout` and `nullify_retry`).
    pub skip_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_millis(1_000),
            certification_timeout: Duration::from_millis(2_000),
            nullify_retry: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(2),
            view_retention: 256,
            skip_timeout: Duration::from_secs(15),
        }
    }
}

/// Everything one validator's engine needs.
#[allow(missing_debug_implementations)]
pub struct Config<B, P, S>
where
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Strategy,
{
    /// Blocks misbehaving peers.
    pub blocker: B,
    /// The peer set.
    pub provider: P,
    /// Prefix of every storage partition of this validator.
    pub partition_prefix: String,
    /// Blocks per archive section ([`ARCHIVE_SECTION_BLOCKS`] for a node;
    /// fixed for the life of its storage).
    pub archive_section_blocks: NonZero<u64>,
    /// This validator's identity.
    pub me: PublicKey,
    /// The group's public polynomial.
    pub polynomial: Sharing<MinSig>,
    /// This validator's share of the group key.
    pub share: group::Share,
    /// Every validator.
    pub participants: Set<PublicKey>,
    /// Bound of every actor's inbox.
    pub mailbox_size: NonZero<usize>,
    /// Messages per peer the broadcast buffer keeps.
    pub deque_size: usize,
    /// Timeouts.
    pub timing: Timing,
    /// Signature verification parallelism.
    pub strategy: S,
    /// The node's ledger view.
    pub chain: Arc<Chain>,
    /// When to snapshot the finalized state.
    pub snapshots: SnapshotPolicy,
    /// Peers' snapshots to start from when this node is far behind
    /// (state sync); `None` replays every block instead.
    pub sync: Option<Arc<dyn SnapshotSource>>,
}

type Marshaled<E> = Deferred<E, Scheme, Application, Block, FixedEpocher>;
type Marshal<E, S> = MarshalActor<
    E,
    Standard<Block>,
    ConstantProvider<Scheme, Epoch>,
    prunable::Archive<EightCap, E, Digest, Finalization>,
    prunable::Archive<EightCap, E, Digest, Arc<Block>>,
    FixedEpocher,
    S,
>;
type MarshalInbox = MarshalMailbox<Scheme, Standard<Block>>;
/// Consensus activity goes to marshal (through the deferred-verification
/// wrapper, which also releases its per-round state) and to the
/// application's seed cache.
type Reporter<E> = Reporters<Marshaled<E>, SeedCache>;
type Simplex<E, B, S> =
    Consensus<E, Scheme, Random, B, Digest, Marshaled<E>, Marshaled<E>, Reporter<E>, S>;

/// The trait bounds of a runtime context the engine runs on.
pub trait Runtime: Clock + CryptoRng + Spawner + Storage + Metrics {}
impl<E: Clock + CryptoRng + Spawner + Storage + Metrics> Runtime for E {}

/// One validator: consensus, marshal, broadcast buffer, backfill resolver
/// and finalizer.
#[allow(missing_debug_implementations)]
pub struct Engine<E, B, P, S>
where
    E: Runtime,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Strategy,
{
    context: ContextCell<E>,
    chain: Arc<Chain>,
    me: PublicKey,
    blocker: B,
    provider: P,
    mailbox_size: NonZero<usize>,
    processed: Option<Processed>,
    snapshots: Snapshots,
    sync: Option<Arc<dyn SnapshotSource>>,
    verifier: Scheme,
    app: Application,
    finalized_rx: mpsc::UnboundedReceiver<marshal::Update<Block>>,
    buffer: buffered::Engine<E, PublicKey, Block, P, S>,
    buffer_mailbox: buffered::Mailbox<PublicKey, Block>,
    marshal: Marshal<E, S>,
    marshal_mailbox: MarshalInbox,
    consensus: Simplex<E, B, S>,
}

fn archive_config<C>(
    prefix: &str,
    name: &str,
    section_blocks: NonZero<u64>,
    page_cache: &CacheRef,
    codec_config: C,
) -> prunable::Config<EightCap, C> {
    prunable::Config {
        translator: EightCap,
        metadata_partition: format!("{prefix}-{name}-archive-metadata"),
        key_partition: format!("{prefix}-{name}-archive-key"),
        key_page_cache: page_cache.clone(),
        value_partition: format!("{prefix}-{name}-archive-value"),
        compression: ARCHIVE_COMPRESSION,
        codec_config,
        items_per_section: section_blocks,
        key_write_buffer: WRITE_BUFFER,
        value_write_buffer: WRITE_BUFFER,
        replay_buffer: REPLAY_BUFFER,
    }
}

/// Refuses a storage directory laid out by a node from before prunable
/// archives (its freezer partitions): it cannot be read as it is.
pub async fn refuse_old_layout<E: Storage>(context: &E, prefix: &str) -> Result<(), String> {
    for name in ["blocks", "finalizations"] {
        let partition = format!("{prefix}-{name}-freezer-table");
        if context.scan(&partition).await.is_ok_and(|b| !b.is_empty()) {
            return Err(format!(
                "this storage directory holds finalized blocks in the layout of an older \
                 glassbox (partition {partition}); stop the node, move storage/ away and \
                 start it again: it syncs from its peers (docs/operations.md, \
                 \"Block retention\")"
            ));
        }
    }
    Ok(())
}

impl<E, B, P, S> Engine<E, B, P, S>
where
    E: Runtime,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Strategy,
{
    /// Opens (or recovers) the validator's storage and builds its actors.
    pub async fn new(context: E, cfg: Config<B, P, S>) -> Result<Self, String> {
        let (buffer, buffer_mailbox) = buffered::Engine::new(
            context.child("buffer"),
            buffered::Config {
                public_key: cfg.me.clone(),
                mailbox_size: cfg.mailbox_size,
                deque_size: cfg.deque_size,
                priority: true,
                codec_config: (),
                peer_provider: cfg.provider.clone(),
                strategy: cfg.strategy.clone(),
            },
        );
        let page_cache = CacheRef::new(PAGE_CACHE_PAGE_SIZE, PAGE_CACHE_CAPACITY);
        let prefix = &cfg.partition_prefix;
        refuse_old_layout(&context, prefix).await?;
        let finalizations = prunable::Archive::init(
            context.child("finalizations_by_height"),
            archive_config(
                prefix,
                "finalizations",
                cfg.archive_section_blocks,
                &page_cache,
                // The threshold scheme's certificates decode without a
                // participant-count config.
                (),
            ),
        )
        .await
        .map_err(|e| format!("opening the finalizations archive: {e}"))?;
        let blocks = prunable::Archive::init(
            context.child("finalized_blocks"),
            archive_config(
                prefix,
                "blocks",
                cfg.archive_section_blocks,
                &page_cache,
                (),
            ),
        )
        .await
        .map_err(|e| format!("opening the finalized blocks archive: {e}"))?;

        // Peers' seeds are checked against the group key alone.
        let verifier = Scheme::certificate_verifier(NAMESPACE, *cfg.polynomial.public());
        let snapshot_verifier = verifier.clone();
        let scheme = Scheme::signer(NAMESPACE, cfg.participants, cfg.polynomial, cfg.share)
            .ok_or("this validator's share does not belong to the group polynomial")?;
        let epocher = FixedEpocher::new(NZU64!(u64::MAX));
        let genesis = cfg.chain.genesis().clone();
        let genesis_digest = genesis.digest();
        let view_retention = ViewDelta::new(cfg.timing.view_retention);
        let (marshal, marshal_mailbox, floor) = MarshalActor::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: ConstantProvider::new(scheme.clone()),
                epocher: epocher.clone(),
                start: Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
                partition_prefix: prefix.clone(),
                mailbox_size: cfg.mailbox_size,
                view_retention: ViewDelta::new(
                    cfg.timing
                        .view_retention
                        .saturating_mul(MARSHAL_RETENTION_MULTIPLIER),
                ),
                prunable_items_per_section: PRUNABLE_ITEMS_PER_SECTION,
                replay_buffer: REPLAY_BUFFER,
                key_write_buffer: WRITE_BUFFER,
                value_write_buffer: WRITE_BUFFER,
                block_codec_config: (),
                max_repair: MAX_REPAIR,
                max_pending_acks: MAX_PENDING_ACKS,
                page_cache: page_cache.clone(),
                strategy: cfg.strategy.clone(),
            },
        )
        .await;

        // Unbounded in type only: marshal hands over at most
        // MAX_PENDING_ACKS blocks before it waits for their
        // acknowledgements, and a block it hands over must not be dropped
        // (marshal would wait for its acknowledgement forever).
        let (finalized_tx, finalized_rx) = mpsc::unbounded();
        let seeds = SeedCache::new();
        let app = Application::new(cfg.chain.clone(), finalized_tx, seeds.clone(), verifier);
        let marshaled = Marshaled::new(
            context.child("marshaled"),
            app.clone(),
            marshal_mailbox.clone(),
            epocher,
        );
        let timing = &cfg.timing;
        let consensus = Consensus::new(
            context.child("consensus"),
            simplex::Config {
                epoch: EPOCH,
                floor: Floor::Genesis(genesis_digest),
                scheme,
                elector: Random::new(RandomVersion::V1),
                blocker: cfg.blocker.clone(),
                automaton: marshaled.clone(),
                relay: marshaled.clone(),
                reporter: Reporter::from((marshaled, seeds)),
                track_historical_votes: false,
                strategy: cfg.strategy,
                partition: format!("{prefix}-consensus"),
                mailbox_size: cfg.mailbox_size,
                replay_buffer: REPLAY_BUFFER,
                write_buffer: WRITE_BUFFER,
                page_cache,
                leader_timeout: timing.leader_timeout,
                certification_timeout: timing.certification_timeout,
                timeout_retry: timing.nullify_retry,
                view_retention,
                skip: SkipPolicy::Enabled {
                    timeout: timing.skip_timeout,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(timing.fetch_timeout),
                fetch_retry_delay: FETCH_RETRY_DELAY,
                forward: ForwardPolicy::Disabled,
            },
        );
        Ok(Engine {
            context: ContextCell::new(context),
            chain: cfg.chain,
            me: cfg.me,
            blocker: cfg.blocker,
            provider: cfg.provider,
            mailbox_size: cfg.mailbox_size,
            processed: floor.processed(),
            snapshots: Snapshots::new(&cfg.partition_prefix, cfg.snapshots),
            sync: cfg.sync,
            verifier: snapshot_verifier,
            app,
            finalized_rx,
            buffer,
            buffer_mailbox,
            marshal,
            marshal_mailbox,
            consensus,
        })
    }

    /// The newest snapshot blob this validator holds, for its API to
    /// serve (`GET /v1/snapshot`).
    pub fn served_snapshot(&self) -> Arc<NewestSnapshot> {
        self.snapshots.served()
    }

    /// The validator's archive of finalized blocks and certificates, for
    /// its API to serve segments to followers (`GET /v1/segment`).
    pub fn archive(&self) -> Arc<dyn Archive> {
        Arc::new(MarshalArchive(self.marshal_mailbox.clone()))
    }

    /// Starts every actor on the given p2p channels.
    pub fn start(
        mut self,
        votes: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        certificates: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        resolver: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        broadcast: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        backfill: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
    ) -> Handle<()> {
        spawn_cell!(
            self.context,
            self.run(votes, certificates, resolver, broadcast, backfill)
        )
    }

    async fn run(
        self,
        votes: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        certificates: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        resolver: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        broadcast: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
        backfill: (
            impl Sender<PublicKey = PublicKey>,
            impl Receiver<PublicKey = PublicKey>,
        ),
    ) {
        let backfill: (handler::Receiver<Digest>, _) = backfill_p2p::init(
            self.context.child("backfill"),
            backfill_p2p::Config {
                public_key: self.me.clone(),
                peer_provider: self.provider.clone(),
                blocker: self.blocker.clone(),
                mailbox_size: self.mailbox_size,
                fetch_timeout: NZDuration!(BACKFILL_TIMEOUT),
                fetch_retry_delay: FETCH_RETRY_DELAY,
                priority_requests: false,
                priority_responses: false,
            },
            backfill,
        );
        let finalizer = self.context.child("finalizer").spawn({
            let chain = self.chain.clone();
            let marshal = self.marshal_mailbox.clone();
            let processed = self.processed.map_or(0, |p| p.height().get());
            let rx = self.finalized_rx;
            let snapshots = self.snapshots;
            let sync = self.sync;
            let verifier = self.verifier;
            move |context| async move {
                let finalizer = Finalizer {
                    context,
                    chain,
                    marshal,
                    snapshots,
                    next_snapshot: u64::MAX,
                    sync,
                    verifier,
                };
                if let Err(e) = finalizer.run(processed, rx).await {
                    // A finalized block the ledger rejects (this replica's
                    // ledger disagrees with a quorum) or a hole in the
                    // archive: stop rather than serve a diverged state.
                    error!(error = %e, "finalizer stopped");
                    panic!("cannot follow the finalized chain: {e}");
                }
            }
        });
        let buffer = self.buffer.start(broadcast);
        let marshal = self.marshal.start(self.app, self.buffer_mailbox, backfill);
        let consensus = self.consensus.start(votes, certificates, resolver);
        if let Err(e) = try_join_all(vec![finalizer, buffer, marshal, consensus]).await {
            error!(?e, "engine failed");
        } else {
            warn!("engine stopped");
        }
    }
}

/// Marshal's archive, read by height.
struct MarshalArchive(MarshalInbox);

impl Archive for MarshalArchive {
    fn block(&self, height: u64) -> BoxFuture<'_, Option<Block>> {
        Box::pin(async move {
            self.0
                .get_block(Height::new(height))
                .await
                .map(|b| b.inner().clone())
        })
    }

    fn finalization(&self, height: u64) -> BoxFuture<'_, Option<Finalization>> {
        Box::pin(async move { self.0.get_finalization(Height::new(height)).await })
    }
}

/// How long marshal waits for a peer to answer a block fetch.
const BACKFILL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after an unanswered fetch (a certificate or a block) before it is
/// retried.
const FETCH_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Pause between fetches of missing referee data by the finalizer.
const REFEREE_RETRY: Duration = Duration::from_millis(500);

/// Applies finalized `block` to `chain`: first fetches what its dispute
/// steps need from peers, and while the ledger still finds referee data
/// missing, fetches and tries again (missing data says nothing about a
/// finalized block's validity; any other failure is returned).
pub(crate) async fn finalize_block(chain: &Chain, block: &Block) -> Result<(), ChainError> {
    let mut warned = false;
    loop {
        // Read again on every try: the store is replaced once the node's
        // services start.
        let off = chain.offchain();
        let fetched = off
            .ensure_block(&chain.finalized_state(), block.txs())
            .await;
        match chain.finalize(block) {
            Err(e) if e.waits_for_referee() => {
                if !warned {
                    warn!(height = block.height().get(), error = %e, fetch = ?fetched.err(), "waiting for referee data");
                    warned = true;
                }
                tokio::time::sleep(REFEREE_RETRY).await;
            }
            done => return done,
        }
    }
}

/// Applies finalized blocks to the chain, in order, and snapshots the
/// state now and then.
struct Finalizer<E> {
    context: E,
    chain: Arc<Chain>,
    marshal: MarshalInbox,
    snapshots: Snapshots,
    /// The first height at which the next snapshot is written.
    next_snapshot: u64,
    /// Peers' snapshots, for a node far behind.
    sync: Option<Arc<dyn SnapshotSource>>,
    /// Checks peers' snapshot certificates against the group key.
    verifier: Scheme,
}

impl<E: Storage + Spawner + CryptoRng> Finalizer<E> {
    /// Starts from the newest usable state snapshot (its own, or a peer's
    /// when that one is further ahead: state sync), replays the finalized
    /// blocks archived after it before a restart, then applies each newly
    /// finalized block and acknowledges it to marshal.
    async fn run(
        mut self,
        processed: u64,
        mut rx: mpsc::UnboundedReceiver<marshal::Update<Block>>,
    ) -> Result<(), ChainError> {
        self.restore().await;
        let have = self.chain.finalized_height().max(processed);
        let mut processed = processed;
        if let Some(synced) = self
            .sync(have.saturating_add(self.snapshots.sync_ahead_blocks()))
            .await
        {
            processed = processed.max(synced);
        }
        let chain = self.chain.clone();
        let marshal = self.marshal.clone();
        let from = chain.finalized_height() + 1;
        self.next_snapshot = self.due_after(from - 1);
        let mut h = from;
        while h <= processed {
            let Some(block) = marshal.get_block(Height::new(h)).await else {
                // Not in the archive (a node that started from a peer's
                // snapshot and lost its own): a peer's snapshot at or
                // past it, then the blocks after that.
                match self.sync(h - 1).await {
                    Some(synced) => {
                        processed = processed.max(synced);
                        h = synced + 1;
                        self.next_snapshot = self.due_after(synced);
                        continue;
                    }
                    None => return Err(ChainError::MissingArchived { height: h }),
                }
            };
            self.apply(block.inner(), true).await?;
            h += 1;
        }
        if processed >= from
            && let Some(f) = marshal.get_finalization(Height::new(processed)).await
        {
            chain.certify(f);
        }
        if processed >= from {
            info!(from, height = processed, "replayed finalized blocks");
        }
        chain.set_ready();
        while let Some(update) = rx.next().await {
            let marshal::Update::Block(block, ack) = update else {
                continue;
            };
            let height = block.height().get();
            // Marshal delivers at least once: a block at or below the
            // finalized height was applied before (or replayed above, or
            // is in the snapshot the node started from). It must be the
            // same block.
            if height <= chain.finalized_height() {
                match chain.finalized_block(height) {
                    Some(ours) if ours.digest() != block.digest() => {
                        return Err(ChainError::Conflicting { height });
                    }
                    Some(_) => {}
                    None => debug!(height, "redelivered block is no longer in memory"),
                }
                ack.acknowledge();
                continue;
            }
            self.apply(block.inner(), false).await?;
            if block.inner().txs().is_empty() {
                debug!(height, "finalized an empty block");
            } else {
                info!(height, txs = block.inner().txs().len(), "finalized");
            }
            ack.acknowledge();
        }
        Ok(())
    }

    /// The first height above `height` at which a snapshot is due.
    fn due_after(&self, height: u64) -> u64 {
        match self.snapshots.every_blocks() {
            0 => u64::MAX,
            every => (height / every + 1).saturating_mul(every),
        }
    }

    /// Applies finalized `block`, records its certificate (the one
    /// receipts carry; absent for a block finalized only through a
    /// descendant's) and writes a snapshot when one is due: at the first
    /// block from the due height on that has its own certificate, which
    /// the snapshot carries for peers to check. While `replaying` the
    /// archive, certificates are read only when a snapshot is due (the
    /// replay certifies its last block once).
    async fn apply(&mut self, block: &Block, replaying: bool) -> Result<(), ChainError> {
        finalize_block(&self.chain, block).await?;
        let height = block.height().get();
        let due = height >= self.next_snapshot;
        if replaying && !due {
            return Ok(());
        }
        if let Some(f) = self.marshal.get_finalization(Height::new(height)).await {
            self.chain.certify(f.clone());
            let tip = self.chain.finalized();
            if due && tip.block.height().get() == height {
                // Bounded disk: once this snapshot is durable, blocks and
                // certificates more than `retain_blocks` below it go, never
                // above the oldest snapshot kept (a restart replays the
                // blocks after it); whole archive sections, and marshal
                // keeps what it has not processed.
                let prune = self
                    .snapshots
                    .retain_blocks()
                    .map(|retain| (retain, self.marshal.clone()));
                self.snapshots.spawn_write(
                    &self.context,
                    tip.block,
                    f,
                    tip.state,
                    move |oldest_kept| {
                        if let Some((retain, marshal)) = prune {
                            let floor = height.saturating_sub(retain).min(oldest_kept);
                            if floor > 0 {
                                debug!(floor, "pruning archived blocks below the retention floor");
                                marshal.prune(Height::new(floor));
                            }
                        }
                    },
                );
                self.next_snapshot = self.due_after(height);
            }
        }
        Ok(())
    }

    /// Starts the chain from `snapshot` and re-reads the archived blocks
    /// before it that the API and receipts keep ([`MAX_RECENT_BLOCKS`]).
    async fn start_from(&self, snapshot: Snapshot) -> bool {
        let height = snapshot.height();
        let Snapshot {
            block,
            finalization,
            state,
        } = snapshot;
        if !self.chain.restore(block, state) {
            return false;
        }
        let first = height.saturating_sub(MAX_RECENT_BLOCKS as u64 - 1).max(1);
        for h in first..=height {
            if let Some(b) = self.marshal.get_block(Height::new(h)).await {
                self.chain.reindex(b.inner());
            }
        }
        self.chain.certify(finalization);
        true
    }

    /// Starts the chain from the newest usable snapshot of its own
    /// ([`Snapshots::newest`]); one whose block marshal does not hold (the
    /// node started from a peer's snapshot) is installed as marshal's
    /// floor again.
    async fn restore(&mut self) {
        if self.chain.finalized_height() != 0 {
            return;
        }
        let chain_id = self.chain.finalized_state().chain_id();
        let marshal = self.marshal.clone();
        let archived = |h: u64| {
            let marshal = marshal.clone();
            async move {
                marshal
                    .get_block(Height::new(h))
                    .await
                    .map(|b| b.inner().clone())
            }
        };
        let snapshots = self.snapshots.clone();
        let Some((snapshot, in_archive)) = snapshots
            .newest(&mut self.context, archived, &self.verifier, &chain_id)
            .await
        else {
            return;
        };
        let height = snapshot.height();
        let finalization = snapshot.finalization.clone();
        if self.start_from(snapshot).await {
            if !in_archive {
                self.marshal.set_floor(finalization);
            }
            info!(height, in_archive, "started from a state snapshot");
        }
    }

    /// State sync: starts from a peer's snapshot above height `above`
    /// ([`crate::consensus::sync::fetch`]) and tells marshal to deliver
    /// blocks from there on. Returns the snapshot's height.
    async fn sync(&mut self, above: u64) -> Option<u64> {
        let source = self.sync.clone()?;
        let snapshot = crate::consensus::sync::fetch(
            &mut self.context,
            &*source,
            &self.snapshots,
            &self.verifier,
            &self.chain,
            above,
        )
        .await?;
        let height = snapshot.height();
        let Snapshot {
            block,
            finalization,
            state,
        } = snapshot;
        if !self.chain.restore(block.clone(), state) {
            return None;
        }
        self.chain.reindex(&block);
        self.chain.certify(finalization.clone());
        self.marshal.set_floor(finalization);
        info!(height, "started from a peer's state snapshot (state sync)");
        Some(height)
    }
}

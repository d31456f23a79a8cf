//! Wires Commonware's simplex consensus, marshal (block dissemination,
//! backfill and ordered delivery of finalized blocks) and buffered
//! broadcast around the Glassbox [`Application`]. The shape follows
//! Commonware's `alto` chain.

use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::{
    self,
    core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
    resolver::handler,
    standard::{Deferred, Standard},
};
use commonware_consensus::simplex::{self, Engine as Consensus, elector::Random};
use commonware_consensus::types::{Epoch, FixedEpocher, Height, ViewDelta};
use commonware_consensus::{Heightable, Reporters};
use commonware_cryptography::bls12381::primitives::{group, sharing::Sharing, variant::MinSig};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Strategy;
use commonware_resolver::Resolver;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{
    BufferPooler, Clock, ContextCell, Handle, Metrics, Spawner, Storage, ThreadPooler, spawn_cell,
};
use commonware_storage::archive::immutable;
use commonware_utils::channel::mpsc as cw_mpsc;
use commonware_utils::ordered::Set;
use commonware_utils::{Acknowledgement, NZU16, NZU64, NZUsize};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::try_join_all;
use governor::clock::Clock as GClock;
use rand::{CryptoRng, Rng};
use tracing::{debug, error, info, warn};

use crate::application::{Application, SeedCache};
use crate::block::Block;
use crate::chain::{Chain, ChainError};
use crate::consensus::{Activity, Digest, EPOCH, Finalization, NAMESPACE, PublicKey, Scheme};

const PRUNABLE_ITEMS_PER_SECTION: NonZero<u64> = NZU64!(4_096);
const IMMUTABLE_ITEMS_PER_SECTION: NonZero<u64> = NZU64!(262_144);
const FREEZER_TABLE_RESIZE_FREQUENCY: u8 = 4;
const FREEZER_TABLE_RESIZE_CHUNK_SIZE: u32 = 1 << 16;
const FREEZER_JOURNAL_TARGET_SIZE: u64 = 1 << 30;
const FREEZER_JOURNAL_COMPRESSION: Option<u8> = Some(3);
const REPLAY_BUFFER: NonZero<usize> = NZUsize!(8 << 20);
const WRITE_BUFFER: NonZero<usize> = NZUsize!(1 << 20);
const PAGE_CACHE_PAGE_SIZE: NonZero<u16> = NZU16!(4_096);
const PAGE_CACHE_CAPACITY: NonZero<usize> = NZUsize!(8_192);
const MAX_REPAIR: NonZero<usize> = NZUsize!(20);
const MAX_PENDING_ACKS: NonZero<usize> = NZUsize!(16);
/// Finalized blocks queued between marshal and the finalizer.
const FINALIZER_QUEUE: usize = 64;
/// Marshal keeps notarized blocks this many times consensus's activity
/// window, so peers near the tip can still fetch them.
const MARSHAL_RETENTION_MULTIPLIER: u64 = 10;

/// Consensus timing and sizing.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How long to wait for a leader's proposal.
    pub leader_timeout: Duration,
    /// How long to wait for certification after a proposal.
    pub certification_timeout: Duration,
    /// How often to rebroadcast a nullify vote.
    pub nullify_retry: Duration,
    /// How long to wait for a fetched certificate.
    pub fetch_timeout: Duration,
    /// Views of activity kept.
    pub activity_timeout: u64,
    /// Views of leader inactivity before skipping it.
    pub skip_timeout: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_millis(1_000),
            certification_timeout: Duration::from_millis(2_000),
            nullify_retry: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(2),
            activity_timeout: 256,
            skip_timeout: 32,
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
    /// Initial freezer table size of the block archives (a power of two).
    pub freezer_table_initial_size: u32,
    /// This validator's identity.
    pub me: PublicKey,
    /// The group's public polynomial.
    pub polynomial: Sharing<MinSig>,
    /// This validator's share of the group key.
    pub share: group::Share,
    /// Every validator.
    pub participants: Set<PublicKey>,
    /// Bound of every actor's inbox.
    pub mailbox_size: usize,
    /// Messages per peer the broadcast buffer keeps.
    pub deque_size: usize,
    /// Timeouts.
    pub timing: Timing,
    /// Most certificates fetched at once.
    pub fetch_concurrent: usize,
    /// Signature verification parallelism.
    pub strategy: S,
    /// The node's ledger view.
    pub chain: Arc<Chain>,
}

type Marshaled<E> = Deferred<E, Scheme, Application, Block, FixedEpocher>;
type Marshal<E, S> = MarshalActor<
    E,
    Standard<Block>,
    ConstantProvider<Scheme, Epoch>,
    immutable::Archive<E, Digest, Finalization>,
    immutable::Archive<E, Digest, Block>,
    FixedEpocher,
    S,
>;
type MarshalInbox = MarshalMailbox<Scheme, Standard<Block>>;
/// Consensus activity goes to marshal and to the application's seed cache.
type Reporter = Reporters<Activity, MarshalInbox, SeedCache>;
type Simplex<E, B, S> =
    Consensus<E, Scheme, Random, B, Digest, Marshaled<E>, Marshaled<E>, Reporter, S>;

/// One validator: consensus, marshal, broadcast buffer and finalizer.
#[allow(missing_debug_implementations)]
pub struct Engine<E, B, P, S>
where
    E: BufferPooler + Clock + GClock + Rng + CryptoRng + Spawner + Storage + Metrics,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Strategy,
{
    context: ContextCell<E>,
    chain: Arc<Chain>,
    processed: Height,
    finalized_rx: mpsc::Receiver<marshal::Update<Block>>,
    buffer: buffered::Engine<E, PublicKey, Block, P>,
    buffer_mailbox: buffered::Mailbox<PublicKey, Block>,
    marshal: Marshal<E, S>,
    marshal_mailbox: MarshalMailbox<Scheme, Standard<Block>>,
    marshaled: Marshaled<E>,
    consensus: Simplex<E, B, S>,
}

fn archive_config<C>(
    prefix: &str,
    name: &str,
    initial: u32,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: initial,
        freezer_table_resize_frequency: FREEZER_TABLE_RESIZE_FREQUENCY,
        freezer_table_resize_chunk_size: FREEZER_TABLE_RESIZE_CHUNK_SIZE,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_key_write_buffer: WRITE_BUFFER,
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_write_buffer: WRITE_BUFFER,
        freezer_value_target_size: FREEZER_JOURNAL_TARGET_SIZE,
        freezer_value_compression: FREEZER_JOURNAL_COMPRESSION,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        ordinal_write_buffer: WRITE_BUFFER,
        items_per_section: IMMUTABLE_ITEMS_PER_SECTION,
        codec_config,
        replay_buffer: REPLAY_BUFFER,
    }
}

impl<E, B, P, S> Engine<E, B, P, S>
where
    E: BufferPooler + Clock + GClock + Rng + CryptoRng + Spawner + ThreadPooler + Storage + Metrics,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Strategy,
{
    /// Opens (or recovers) the validator's storage and builds its actors.
    pub async fn new(context: E, cfg: Config<B, P, S>) -> Result<Self, String> {
        let (buffer, buffer_mailbox) = buffered::Engine::new(
            context.with_label("buffer"),
            buffered::Config {
                public_key: cfg.me.clone(),
                mailbox_size: cfg.mailbox_size,
                deque_size: cfg.deque_size,
                priority: true,
                codec_config: (),
                peer_provider: cfg.provider,
            },
        );
        let page_cache = CacheRef::from_pooler(&context, PAGE_CACHE_PAGE_SIZE, PAGE_CACHE_CAPACITY);
        let prefix = &cfg.partition_prefix;
        let finalizations = immutable::Archive::init(
            context.with_label("finalizations_by_height"),
            archive_config(
                prefix,
                "finalizations",
                cfg.freezer_table_initial_size,
                &page_cache,
                // The threshold scheme's certificates decode without a
                // participant-count config.
                (),
            ),
        )
        .await
        .map_err(|e| format!("opening the finalizations archive: {e}"))?;
        let blocks = immutable::Archive::init(
            context.with_label("finalized_blocks"),
            archive_config(
                prefix,
                "blocks",
                cfg.freezer_table_initial_size,
                &page_cache,
                (),
            ),
        )
        .await
        .map_err(|e| format!("opening the finalized blocks archive: {e}"))?;

        // Peers' seeds are checked against the group key alone.
        let verifier = Scheme::certificate_verifier(NAMESPACE, *cfg.polynomial.public());
        let scheme = Scheme::signer(NAMESPACE, cfg.participants, cfg.polynomial, cfg.share)
            .ok_or("this validator's share does not belong to the group polynomial")?;
        let epocher = FixedEpocher::new(NZU64!(u64::MAX));
        let (marshal, marshal_mailbox, processed) = MarshalActor::init(
            context.with_label("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: ConstantProvider::new(scheme.clone()),
                epocher: epocher.clone(),
                partition_prefix: prefix.clone(),
                mailbox_size: cfg.mailbox_size,
                view_retention_timeout: ViewDelta::new(
                    cfg.timing
                        .activity_timeout
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

        let (finalized_tx, finalized_rx) = mpsc::channel(FINALIZER_QUEUE);
        let seeds = SeedCache::new();
        let app = Application::new(cfg.chain.clone(), finalized_tx, seeds.clone(), verifier);
        let marshaled = Marshaled::new(
            context.with_label("marshaled"),
            app,
            marshal_mailbox.clone(),
            epocher,
        );
        let consensus = Consensus::new(
            context.with_label("consensus"),
            simplex::Config {
                epoch: EPOCH,
                scheme,
                automaton: marshaled.clone(),
                relay: marshaled.clone(),
                reporter: Reporter::from((marshal_mailbox.clone(), seeds)),
                partition: format!("{prefix}-consensus"),
                mailbox_size: cfg.mailbox_size,
                leader_timeout: cfg.timing.leader_timeout,
                certification_timeout: cfg.timing.certification_timeout,
                timeout_retry: cfg.timing.nullify_retry,
                fetch_timeout: cfg.timing.fetch_timeout,
                activity_timeout: ViewDelta::new(cfg.timing.activity_timeout),
                skip_timeout: ViewDelta::new(cfg.timing.skip_timeout),
                fetch_concurrent: cfg.fetch_concurrent,
                replay_buffer: REPLAY_BUFFER,
                write_buffer: WRITE_BUFFER,
                blocker: cfg.blocker,
                page_cache,
                elector: Random,
                strategy: cfg.strategy,
            },
        );
        Ok(Engine {
            context: ContextCell::new(context),
            chain: cfg.chain,
            processed,
            finalized_rx,
            buffer,
            buffer_mailbox,
            marshal,
            marshal_mailbox,
            marshaled,
            consensus,
        })
    }

    /// Starts every actor on the given p2p channels.
    #[allow(clippy::too_many_arguments)]
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
            cw_mpsc::Receiver<handler::Message<Digest>>,
            impl Resolver<Key = handler::Request<Digest>, PublicKey = PublicKey>,
        ),
    ) -> Handle<()> {
        spawn_cell!(
            self.context,
            self.run(votes, certificates, resolver, broadcast, backfill)
                .await
        )
    }

    #[allow(clippy::too_many_arguments)]
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
            cw_mpsc::Receiver<handler::Message<Digest>>,
            impl Resolver<Key = handler::Request<Digest>, PublicKey = PublicKey>,
        ),
    ) {
        let finalizer = self.context.with_label("finalizer").spawn({
            let chain = self.chain.clone();
            let marshal = self.marshal_mailbox.clone();
            let processed = self.processed;
            let rx = self.finalized_rx;
            move |_| async move {
                if let Err(e) = finalizer(chain, marshal, processed, rx).await {
                    // A finalized block the ledger rejects (this replica's
                    // ledger disagrees with a quorum) or a hole in the
                    // archive: stop rather than serve a diverged state.
                    error!(error = %e, "finalizer stopped");
                    panic!("cannot follow the finalized chain: {e}");
                }
            }
        });
        let buffer = self.buffer.start(broadcast);
        let marshal = self
            .marshal
            .start(self.marshaled, self.buffer_mailbox, backfill);
        let consensus = self.consensus.start(votes, certificates, resolver);
        if let Err(e) = try_join_all(vec![finalizer, buffer, marshal, consensus]).await {
            error!(?e, "engine failed");
        } else {
            warn!("engine stopped");
        }
    }
}

/// Pause between fetches of missing referee data by the finalizer.
const REFEREE_RETRY: Duration = Duration::from_millis(500);

/// Replays the finalized blocks archived before a restart, then applies
/// each newly finalized block and acknowledges it to marshal.
async fn finalizer(
    chain: Arc<Chain>,
    marshal: MarshalMailbox<Scheme, Standard<Block>>,
    processed: Height,
    mut rx: mpsc::Receiver<marshal::Update<Block>>,
) -> Result<(), ChainError> {
    let from = chain.finalized_height() + 1;
    for h in from..=processed.get() {
        let Some(block) = marshal.get_block(Height::new(h)).await else {
            return Err(ChainError::MissingArchived { height: h });
        };
        let off = chain.offchain();
        let parent = chain.finalized_state();
        while let Err(e) = off.ensure_block(&parent, block.txs()).await {
            warn!(height = h, error = %e, "replay waits for referee data");
            tokio::time::sleep(REFEREE_RETRY).await;
        }
        chain.finalize(&block)?;
    }
    if processed.get() >= from
        && let Some(f) = marshal.get_finalization(processed).await
    {
        chain.certify(f);
    }
    if processed.get() >= from {
        info!(height = processed.get(), "replayed finalized blocks");
    }
    chain.set_ready();
    while let Some(update) = rx.next().await {
        if let marshal::Update::Block(block, ack) = update {
            // A block this node did not verify may hold dispute steps
            // whose data it lacks: fetch until it is here (a no-op when it
            // holds the data or the block has no dispute step).
            let off = chain.offchain();
            let parent = chain.finalized_state();
            while let Err(e) = off.ensure_block(&parent, block.txs()).await {
                warn!(height = block.height().get(), error = %e, "waiting for referee data");
                tokio::time::sleep(REFEREE_RETRY).await;
            }
            chain.finalize(&block)?;
            // The certificate receipts carry (absent for a block finalized
            // only through a descendant's certificate).
            if let Some(f) = marshal.get_finalization(block.height()).await {
                chain.certify(f);
            }
            if block.txs().is_empty() {
                debug!(height = block.height().get(), "finalized an empty block");
            } else {
                info!(
                    height = block.height().get(),
                    txs = block.txs().len(),
                    "finalized"
                );
            }
            ack.acknowledge();
        }
    }
    Ok(())
}

//! Running validators on Commonware's tokio runtime with authenticated p2p
//! over TCP: one validator for `glassbox node`, several in one process for
//! `glassbox dev`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use commonware_consensus::marshal;
use commonware_cryptography::Signer;
use commonware_p2p::authenticated::discovery;
use commonware_p2p::{Ingress, Manager};
use commonware_parallel::Sequential;
use commonware_runtime::{Handle, Metrics, tokio as cw_tokio};
use commonware_utils::union_unique;
use governor::Quota;
use tracing::info;

use crate::chain::Chain;
use crate::consensus::NAMESPACE;
use crate::engine::{Config, Engine, Timing};
use crate::genesis::{GenesisError, NodeGenesis, ValidatorKey};
use crate::mempool::MempoolLimits;

/// Channel ids on the p2p network.
pub mod channels {
    /// Consensus votes.
    pub const VOTES: u64 = 0;
    /// Consensus certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Consensus certificate fetches.
    pub const RESOLVER: u64 = 2;
    /// Block broadcast.
    pub const BROADCAST: u64 = 3;
    /// Marshal's block backfill.
    pub const BACKFILL: u64 = 4;
}

/// Largest p2p message, in bytes (a full block plus framing).
pub const MAX_MESSAGE_BYTES: u32 = 8 << 20;
/// Messages queued per p2p channel.
pub const MESSAGE_BACKLOG: usize = 1_024;
/// Bound of every actor's inbox.
pub const MAILBOX_SIZE: usize = 1_024;
/// Initial freezer table size of the block archives.
pub const FREEZER_TABLE_INITIAL_SIZE: u32 = 1 << 16;

/// Why a validator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The genesis or key file is unusable.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The key is not one of the genesis validators.
    #[error("validator key {0} is not in the genesis validator set")]
    NotAValidator(String),
    /// The engine could not open its storage.
    #[error("starting the engine: {0}")]
    Engine(String),
}

/// One validator to run.
#[derive(Clone, Debug)]
pub struct ValidatorRun {
    /// Its secrets.
    pub key: ValidatorKey,
    /// Where its p2p endpoint listens.
    pub p2p_listen: SocketAddr,
    /// Prefix of its storage partitions (unique per validator sharing a
    /// storage directory).
    pub partition_prefix: String,
    /// Consensus timing.
    pub timing: Timing,
}

/// A started validator.
#[derive(Debug)]
pub struct Started {
    /// Its view of the ledger (for the HTTP API).
    pub chain: Arc<Chain>,
    /// Its p2p identity, hex.
    pub public_key: String,
}

/// Starts one validator's p2p network and engine on `context`; returns
/// its chain and the handles that run until shutdown.
pub async fn start_validator(
    context: cw_tokio::Context,
    genesis: &NodeGenesis,
    run: ValidatorRun,
) -> Result<(Started, Vec<Handle<()>>), NodeError> {
    let signer = run.key.private_key()?;
    let share = run.key.share()?;
    let me = signer.public_key();
    let participants = genesis.participants()?;
    let polynomial = genesis.polynomial()?;
    let me_hex = commonware_utils::hex(commonware_codec::Encode::encode(&me).as_ref());
    if genesis.validator(&me).is_none() {
        return Err(NodeError::NotAValidator(me_hex));
    }
    let (state, block) = genesis.genesis()?;
    let chain = Arc::new(Chain::new(block, state, MempoolLimits::default()));

    let bootstrappers = participants
        .iter()
        .filter(|k| **k != me)
        .filter_map(|k| {
            genesis
                .validator(k)
                .map(|v| (k.clone(), Ingress::Socket(v.p2p_address)))
        })
        .collect();
    let dialable = genesis
        .validator(&me)
        .map(|v| v.p2p_address)
        .unwrap_or(run.p2p_listen);
    let namespace = union_unique(NAMESPACE, b"_P2P");
    let mut p2p_cfg = discovery::Config::local(
        signer.clone(),
        &namespace,
        run.p2p_listen,
        dialable,
        bootstrappers,
        MAX_MESSAGE_BYTES,
    );
    p2p_cfg.mailbox_size = MAILBOX_SIZE;
    let (mut network, mut oracle) = discovery::Network::new(context.with_label("network"), p2p_cfg);
    oracle.track(0, participants.clone()).await;

    let quota =
        |per_second: u32| Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN));
    let votes = network.register(channels::VOTES, quota(1_024), MESSAGE_BACKLOG);
    let certificates = network.register(channels::CERTIFICATES, quota(1_024), MESSAGE_BACKLOG);
    let resolver = network.register(channels::RESOLVER, quota(256), MESSAGE_BACKLOG);
    let broadcast = network.register(channels::BROADCAST, quota(64), MESSAGE_BACKLOG);
    let backfill = network.register(channels::BACKFILL, quota(64), MESSAGE_BACKLOG);
    let p2p = network.start();

    let engine = Engine::new(
        context.with_label("engine"),
        Config {
            blocker: oracle.clone(),
            provider: oracle.clone(),
            partition_prefix: run.partition_prefix.clone(),
            freezer_table_initial_size: FREEZER_TABLE_INITIAL_SIZE,
            me: me.clone(),
            polynomial,
            share,
            participants,
            mailbox_size: MAILBOX_SIZE,
            deque_size: 16,
            timing: run.timing.clone(),
            fetch_concurrent: 4,
            strategy: Sequential,
            chain: chain.clone(),
        },
    )
    .await
    .map_err(NodeError::Engine)?;
    let backfill = marshal::resolver::p2p::init(
        &context.with_label("backfill"),
        marshal::resolver::p2p::Config {
            public_key: me.clone(),
            peer_provider: oracle.clone(),
            blocker: oracle,
            mailbox_size: MAILBOX_SIZE,
            initial: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            fetch_retry_timeout: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        backfill,
    );
    let engine = engine.start(votes, certificates, resolver, broadcast, backfill);
    info!(validator = %me_hex, p2p = %run.p2p_listen, "validator started");
    Ok((
        Started {
            chain,
            public_key: me_hex,
        },
        vec![p2p, engine],
    ))
}

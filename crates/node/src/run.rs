//! Running validators on Commonware's tokio runtime with authenticated p2p
//! over TCP: one validator for `glassbox node`, several in one process for
//! `glassbox dev`.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::ChaCha20Poly1305;
use commonware_cryptography::Signer;
use commonware_p2p::authenticated::discovery;
use commonware_p2p::{Ingress, Manager};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Handle, Metrics, Runner as _, Spawner, Supervisor as _, tokio as cw_tokio,
};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::union_unique;
use governor::Quota;
use tracing::info;

use crate::chain::Chain;
use crate::chain::mempool::MempoolLimits;
use crate::consensus::NAMESPACE;
use crate::consensus::engine::{Config, Engine, Timing};
use crate::consensus::genesis::{GenesisError, NodeGenesis, ValidatorKey};
use crate::consensus::snapshots::{NewestSnapshot, SnapshotPolicy, SnapshotSource};
use crate::consensus::sync::HttpSnapshots;

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
    /// Transaction gossip.
    pub const TXS: u64 = 5;
}

/// Largest p2p message, in bytes (a full block plus framing).
pub const MAX_MESSAGE_BYTES: u32 = 16 << 20;
/// Bound of every actor's inbox.
pub const MAILBOX_SIZE: NonZeroUsize = NonZeroUsize::new(1_024).unwrap();
/// How far a peer's handshake timestamp may be ahead of this node's clock.
const HANDSHAKE_SYNCHRONY_BOUND: Duration = Duration::from_secs(5);
/// How old a peer's handshake may be.
const HANDSHAKE_MAX_AGE: Duration = Duration::from_secs(10);

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
    /// A file or socket problem.
    #[error("{0}")]
    File(String),
    /// The node's services were started twice on one chain.
    #[error("the node's services are already running on this chain")]
    AlreadyStarted,
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
    /// When to snapshot the finalized state.
    pub snapshots: SnapshotPolicy,
    /// Peers' APIs (base URLs) to state-sync from when this validator is
    /// far behind them; none: it replays every block instead.
    pub sync_peers: Vec<String>,
}

/// A started validator.
#[derive(Debug)]
pub struct Started {
    /// Its view of the ledger (for the HTTP API).
    pub chain: Arc<Chain>,
    /// Its p2p identity, hex.
    pub public_key: String,
    /// Its newest state snapshot (served to peers that sync).
    pub snapshots: Arc<NewestSnapshot>,
    /// Its archive of finalized blocks (served to full nodes).
    pub archive: Arc<dyn crate::consensus::follow::Archive>,
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
    let me_hex = glassbox_types::hex(commonware_codec::Encode::encode(&me).as_ref());
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
    let upgrader = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: signer.clone(),
            synchrony_bound: HANDSHAKE_SYNCHRONY_BOUND,
            max_handshake_age: HANDSHAKE_MAX_AGE,
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let p2p_cfg = discovery::Config::local(
        upgrader,
        &namespace,
        run.p2p_listen,
        dialable,
        bootstrappers,
        NonZeroUsize::new(participants.len()).unwrap_or(NonZeroUsize::MIN),
        MAX_MESSAGE_BYTES,
        MAILBOX_SIZE,
    );
    let (mut network, mut oracle) = discovery::Network::new(context.child("network"), p2p_cfg);
    oracle.track(0, participants.clone());

    let quota =
        |per_second: u32| Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN));
    let votes = network.register(channels::VOTES, quota(1_024));
    let certificates = network.register(channels::CERTIFICATES, quota(1_024));
    let resolver = network.register(channels::RESOLVER, quota(256));
    let broadcast = network.register(channels::BROADCAST, quota(64));
    let backfill = network.register(channels::BACKFILL, quota(64));
    let (tx_sender, tx_receiver) = network.register(channels::TXS, quota(256));
    let p2p = network.start();
    chain.enable_gossip();
    let gossip_out = context.child("gossip_out").spawn({
        let chain = chain.clone();
        move |context| crate::chain::gossip::send_loop(context, chain, tx_sender)
    });
    let gossip_in = context.child("gossip_in").spawn({
        let chain = chain.clone();
        move |_| crate::chain::gossip::receive_loop(chain, tx_receiver)
    });

    let sync = if run.sync_peers.is_empty() {
        None
    } else {
        let source = HttpSnapshots::new(
            run.sync_peers.clone(),
            participants.len(),
            run.snapshots.max_bytes,
        )
        .map_err(NodeError::File)?;
        Some(Arc::new(source) as Arc<dyn SnapshotSource>)
    };
    let engine = Engine::new(
        context.child("engine"),
        Config {
            blocker: oracle.clone(),
            provider: oracle.clone(),
            partition_prefix: run.partition_prefix.clone(),
            archive_section_blocks: crate::consensus::engine::ARCHIVE_SECTION_BLOCKS,
            me: me.clone(),
            polynomial,
            share,
            participants,
            mailbox_size: MAILBOX_SIZE,
            deque_size: 16,
            timing: run.timing.clone(),
            strategy: Sequential,
            chain: chain.clone(),
            snapshots: run.snapshots.clone(),
            sync,
        },
    )
    .await
    .map_err(NodeError::Engine)?;
    let snapshots = engine.served_snapshot();
    let archive = engine.archive();
    let engine = engine.start(votes, certificates, resolver, broadcast, backfill);
    info!(validator = %me_hex, p2p = %run.p2p_listen, "validator started");
    Ok((
        Started {
            chain,
            public_key: me_hex,
            snapshots,
            archive,
        },
        vec![p2p, engine, gossip_out, gossip_in],
    ))
}

/// `node.toml`: one node joining a network: a validator (with `key`), or
/// a full node that follows the chain through its peers' APIs (without;
/// docs/operations.md, "Full and executor-only nodes"). Either runs an
/// executor when `executor_key` is set.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The network's genesis file.
    pub genesis: std::path::PathBuf,
    /// This validator's key file (`validator.json`); absent: a full node.
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// Where the node keeps its storage.
    pub data_dir: std::path::PathBuf,
    /// p2p listen address (a validator's; a full node has none).
    #[serde(default)]
    pub p2p_listen: Option<SocketAddr>,
    /// A full node's peers: API base URLs (`http://host:port` or
    /// `https://...`) it takes finalized blocks from and forwards
    /// transactions to; empty: every genesis validator's API.
    #[serde(default)]
    pub follow: Vec<String>,
    /// HTTP API listen address; no API when absent.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    /// Runtime worker threads.
    #[serde(default = "default_threads")]
    pub worker_threads: usize,
    /// The key of a registered executor this node runs jobs for
    /// (docs/jobs.md, "Executor role"); no executor role when absent.
    #[serde(default)]
    pub executor_key: Option<std::path::PathBuf>,
    /// Extra nodes (base URLs) to fetch models from, besides the
    /// registered executors' endpoints.
    #[serde(default)]
    pub blob_peers: Vec<String>,
    /// Finalized blocks between two state snapshots; 0 turns them off
    /// (docs/operations.md, "Snapshots").
    #[serde(default = "default_snapshot_every_blocks")]
    pub snapshot_every_blocks: u64,
    /// State snapshots kept.
    #[serde(default = "default_snapshots_kept")]
    pub snapshots_kept: usize,
    /// Largest snapshot read at start or downloaded from a peer, in bytes
    /// (held in memory whole).
    #[serde(default = "default_snapshot_max_bytes")]
    pub snapshot_max_bytes: u64,
    /// Keep every finalized block (an archive node) instead of pruning
    /// those more than `retain_blocks` below the newest snapshot
    /// (docs/operations.md, "Block retention").
    #[serde(default)]
    pub archive: bool,
    /// Finalized blocks a pruning node keeps below its newest snapshot.
    #[serde(default = "default_retain_blocks")]
    pub retain_blocks: u64,
    /// Start from a peer's snapshot (every other genesis validator's API)
    /// when this node is far behind, instead of replaying every block
    /// (docs/operations.md, "State sync").
    #[serde(default = "default_state_sync")]
    pub state_sync: bool,
    /// The HTTP server's bounds on clients (docs/operations.md, "HTTP
    /// limits").
    #[serde(default)]
    pub http: crate::api::HttpLimits,
}

fn default_threads() -> usize {
    2
}

fn default_snapshot_every_blocks() -> u64 {
    SnapshotPolicy::default().every_blocks
}

fn default_snapshots_kept() -> usize {
    SnapshotPolicy::default().keep
}

fn default_snapshot_max_bytes() -> u64 {
    SnapshotPolicy::default().max_bytes
}

fn default_retain_blocks() -> u64 {
    crate::consensus::snapshots::DEFAULT_RETAIN_BLOCKS
}

fn default_state_sync() -> bool {
    true
}

/// Most bytes of a genesis, key or config file.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a JSON or TOML file of at most [`MAX_CONFIG_BYTES`].
pub fn read_small(path: &std::path::Path) -> Result<String, NodeError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| NodeError::File(format!("{}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| NodeError::File(format!("{}: {e}", path.display())))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(NodeError::File(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// Locks `dir` for this process's node or network (created if missing):
/// refused while another process holds it. Two nodes on one storage
/// would corrupt it, and a journal file removed under a running node
/// stops it (docs/operations.md, "One process per data directory").
pub fn lock_data_dir(dir: &std::path::Path) -> Result<glassbox_store::DirLock, NodeError> {
    glassbox_store::DirLock::acquire(dir).map_err(|e| NodeError::File(e.to_string()))
}

/// Empties `dir` for a fresh network: only an empty directory or an
/// earlier dev network's (it holds a `genesis.json` and a `dev.key`), and
/// never while a node runs on it or on one of its subdirectories (a lock
/// is held).
pub fn wipe_network_dir(dir: &std::path::Path) -> Result<(), NodeError> {
    let err = |e: std::io::Error| NodeError::File(format!("wiping {}: {e}", dir.display()));
    if !dir.exists() {
        return Ok(());
    }
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    // A dev network's directory (its genesis and developer key, written
    // by `prepare_dev`), or one holding only a lock file: never a
    // production node's, which has no developer key.
    let ours = (dir.join("genesis.json").exists() && dir.join("dev.key").exists())
        || entries
            .iter()
            .all(|e| e.file_name() == glassbox_store::LOCK_FILE);
    if !ours {
        return Err(NodeError::File(format!(
            "{} exists and is not a Glassbox network directory: refusing to wipe it",
            dir.display()
        )));
    }
    // The network's own lock, and every subdirectory's: a validator run
    // as its own `glassbox node` process there holds one (locking one
    // nobody held only creates a lock file about to be removed).
    let mut locks = vec![lock_data_dir(dir)?];
    for entry in &entries {
        if entry.file_type().map_err(err)?.is_dir() {
            locks.push(lock_data_dir(&entry.path())?);
        }
    }
    for entry in entries {
        if entry.file_name() == glassbox_store::LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().map_err(err)?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(err)?;
    }
    drop(locks);
    Ok(())
}

/// Reads a genesis file.
pub fn read_genesis(path: &std::path::Path) -> Result<NodeGenesis, NodeError> {
    serde_json::from_str(&read_small(path)?)
        .map_err(|e| NodeError::File(format!("{}: {e}", path.display())))
}

/// Reads a validator key file.
pub fn read_key(path: &std::path::Path) -> Result<ValidatorKey, NodeError> {
    serde_json::from_str(&read_small(path)?)
        .map_err(|e| NodeError::File(format!("{}: {e}", path.display())))
}

/// Writes `text` to `path` atomically and durably, mode 0600 on Unix
/// ([`glassbox_store::write_private`]: temp file, fsync, rename, fsync of
/// the directory).
pub fn write_private(path: &std::path::Path, text: &str) -> Result<(), NodeError> {
    glassbox_store::write_private(path, text.as_bytes()).map_err(|e| NodeError::File(e.to_string()))
}

fn runner(storage: &std::path::Path, worker_threads: usize) -> cw_tokio::Runner {
    cw_tokio::Runner::new(
        cw_tokio::Config::default()
            .with_tcp_nodelay(Some(true))
            .with_worker_threads(worker_threads.clamp(1, 64))
            .with_storage_directory(storage.to_path_buf())
            .with_catch_panics(false),
    )
}

/// Opens a validator's model blob store at `dir` (`DATA_DIR/blobs`).
fn open_blobs(dir: &std::path::Path) -> Result<crate::api::Blobs, NodeError> {
    crate::api::Blobs::open(dir, crate::api::DEFAULT_MAX_BLOB_BYTES)
        .map_err(|e| NodeError::File(format!("opening the blob store {}: {e}", dir.display())))
}

/// The API's bounds for a chain with `params`: a transaction travels as
/// hex in JSON, so the body limit is at least twice `max_tx_bytes` plus
/// room for the JSON around it (never below the default).
fn api_limits(params: &glassbox_ledger::Params) -> crate::api::ApiLimits {
    let tx = usize::try_from(params.max_tx_bytes).unwrap_or(usize::MAX);
    crate::api::ApiLimits {
        max_body_bytes: crate::api::DEFAULT_MAX_BODY_BYTES
            .max(tx.saturating_mul(2).saturating_add(4096)),
        ..crate::api::ApiLimits::default()
    }
}

/// Binds the HTTP API's listener on `addr`: a node whose API cannot listen
/// does not start.
async fn bind_api(addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::File(format!("binding the HTTP API on {addr}: {e}")))
}

/// Serves `api` and `blobs` on `listener` until `stop` says so (then
/// finishing the requests in flight).
async fn serve_api(
    listener: tokio::net::TcpListener,
    api: crate::api::Api,
    blobs: crate::api::Blobs,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let shutdown = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    crate::api::serve_with_blobs(listener, api, Some(blobs), shutdown)
        .await
        .map_err(|e| NodeError::File(format!("HTTP API: {e}")))
}

/// What runs beside consensus: the HTTP API and the executor role.
struct Services {
    http: Option<SocketAddr>,
    data_dir: std::path::PathBuf,
    genesis: Arc<NodeGenesis>,
    executor_key: Option<glassbox_types::SecretKey>,
    blob_peers: Vec<String>,
    /// The node's newest snapshot, served to peers.
    snapshots: Option<Arc<NewestSnapshot>>,
    /// A validator's block archive, served to full nodes.
    archive: Option<Arc<dyn crate::consensus::follow::Archive>>,
    /// The HTTP server's bounds.
    http_limits: crate::api::HttpLimits,
    /// Set to `true` at shutdown.
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Starts the API (when `http` is set; its task's handle is returned) and
/// the executor (when a key is given) for `chain`.
async fn start_services<E: Spawner + Metrics>(
    context: &E,
    chain: &Arc<Chain>,
    s: Services,
) -> Result<Option<Handle<()>>, NodeError> {
    let blobs = open_blobs(&s.data_dir.join("blobs"))?;
    let own_endpoint = s.http.map(|a| format!("http://{a}"));
    let tensors_dir = s.data_dir.join("tensors");
    let tensors = glassbox_store::BlobStore::open(
        &tensors_dir,
        crate::disputes::offchain::OffChainLimits::default().max_tensor_bytes as u64,
    )
    .map_err(|e| {
        NodeError::File(format!(
            "opening the referee tensor store {}: {e}",
            tensors_dir.display()
        ))
    })?;
    chain
        .set_offchain(Arc::new(
            crate::disputes::offchain::OffChain::new(
                Some(blobs.store().clone()),
                s.blob_peers.clone(),
                own_endpoint.clone(),
                crate::disputes::offchain::OffChainLimits::default(),
            )
            .with_durable_tensors(tensors),
        ))
        .map_err(|_| NodeError::AlreadyStarted)?;
    let mut api = None;
    if let Some(addr) = s.http {
        let listener = bind_api(addr).await?;
        let mut served = crate::api::Api::new(chain.clone());
        served.limits = crate::api::ApiLimits {
            http: s.http_limits.clone(),
            ..api_limits(&s.genesis.ledger.params)
        };
        served.snapshots = s.snapshots.clone();
        served.archive = s.archive.clone();
        let served = served.with_genesis(s.genesis.clone());
        let (blobs, stop) = (blobs.clone(), s.stop.clone());
        api = Some(context.child("api").spawn(move |_| async move {
            if let Err(e) = serve_api(listener, served, blobs, stop).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        }));
        info!(%addr, "HTTP API listening");
    }
    if let Some(key) = s.executor_key {
        let cfg = crate::executor::ExecutorConfig {
            blob_peers: s.blob_peers,
            own_endpoint,
            results_dir: Some(s.data_dir.join("executor")),
            ..crate::executor::ExecutorConfig::default()
        };
        let mut executor =
            crate::executor::Executor::new(chain.clone(), key, blobs.store().clone(), cfg);
        executor
            .open_results()
            .map_err(|e| NodeError::File(format!("executor results: {e}")))?;
        info!(executor = %executor.public_key(), "executor role on");
        context.child("executor").spawn(move |_| executor.run());
    }
    Ok(api)
}

/// Reads an executor key file.
fn read_executor_key(path: &std::path::Path) -> Result<glassbox_types::SecretKey, NodeError> {
    glassbox_store::keyfile::read_secret_key(path)
        .map_err(|e| NodeError::File(format!("executor key {}: {e}", path.display())))
}

/// Runs one node (a validator, or a full node without a validator key)
/// until Ctrl-C or SIGTERM.
pub fn run_node(cfg: NodeConfig) -> Result<(), NodeError> {
    cfg.http.check().map_err(NodeError::File)?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let genesis = read_genesis(&cfg.genesis)?;
    let key = cfg.key.as_deref().map(read_key).transpose()?;
    let executor_key = cfg
        .executor_key
        .as_deref()
        .map(read_executor_key)
        .transpose()?;
    let storage = cfg.data_dir.join("storage");
    let me = match &key {
        Some(key) => Some(glassbox_types::hex(
            commonware_codec::Encode::encode(&key.private_key()?.public_key()).as_ref(),
        )),
        None => None,
    };
    // The other genesis validators' APIs: state sync for both roles, and
    // a full node's peers unless `follow` names others.
    let validator_apis: Vec<String> = genesis
        .validators
        .iter()
        .filter(|v| {
            me.as_deref()
                .is_none_or(|me| !v.public_key.eq_ignore_ascii_case(me))
        })
        .filter_map(|v| v.http_address.map(|a| format!("http://{a}")))
        .collect();
    let sync_peers = if cfg.state_sync {
        validator_apis.clone()
    } else {
        Vec::new()
    };
    let policy = SnapshotPolicy {
        every_blocks: cfg.snapshot_every_blocks,
        keep: cfg.snapshots_kept,
        max_bytes: cfg.snapshot_max_bytes,
        retain_blocks: (!cfg.archive).then_some(cfg.retain_blocks),
        ..SnapshotPolicy::default()
    };
    // A full node keeps no block archive: nothing to prune.
    if key.is_some() {
        policy.check().map_err(NodeError::File)?;
    }
    let p2p_listen = match (&key, cfg.p2p_listen) {
        (Some(_), None) => {
            return Err(NodeError::File(
                "a validator (with `key`) needs `p2p_listen` in its config".into(),
            ));
        }
        (_, p2p) => p2p,
    };
    runner(&storage, cfg.worker_threads).start(|context| async move {
        let genesis = Arc::new(genesis);
        let (chain, snapshots, archive, handles) = match (key, p2p_listen) {
            (Some(key), Some(p2p_listen)) => {
                let run = ValidatorRun {
                    key,
                    p2p_listen,
                    partition_prefix: "validator".into(),
                    timing: Timing::default(),
                    snapshots: policy,
                    sync_peers,
                };
                let (started, handles) =
                    start_validator(context.child("validator"), &genesis, run).await?;
                (
                    started.chain,
                    started.snapshots,
                    Some(started.archive),
                    handles,
                )
            }
            _ => {
                let peers = if cfg.follow.is_empty() {
                    validator_apis
                } else {
                    cfg.follow.clone()
                };
                let f = start_follower(
                    context.child("follower"),
                    &genesis,
                    peers,
                    sync_peers,
                    policy,
                )?;
                (f.chain, f.snapshots, None, vec![f.handle])
            }
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let api = start_services(
            &context,
            &chain,
            Services {
                http: cfg.http_listen,
                data_dir: cfg.data_dir.clone(),
                genesis,
                executor_key,
                blob_peers: cfg.blob_peers.clone(),
                snapshots: Some(snapshots),
                archive,
                http_limits: cfg.http.clone(),
                stop: stopped,
            },
        )
        .await?;
        wait_for_shutdown(handles, &stop, api.into_iter().collect(), &cfg.http).await;
        Ok(())
    })
}

/// How long a full node's segment requests wait for a new block.
pub const FOLLOW_WAIT_MS: u64 = 5_000;

/// Starts a full node on `context`: a chain at genesis that a
/// [`Follower`](crate::consensus::follow::Follower) advances from
/// `peers`' segments (state-syncing from `sync_peers` when far behind),
/// writing its own snapshots by `policy`.
pub fn start_follower(
    context: cw_tokio::Context,
    genesis: &NodeGenesis,
    peers: Vec<String>,
    sync_peers: Vec<String>,
    policy: SnapshotPolicy,
) -> Result<Following, NodeError> {
    use crate::consensus::follow::{FollowConfig, Follower, HttpSegments};
    let (state, block) = genesis.genesis()?;
    let chain = Arc::new(Chain::new(block, state, MempoolLimits::default()));
    let validators = genesis.participants()?.len();
    let sync = if sync_peers.is_empty() {
        None
    } else {
        let source = HttpSnapshots::new(sync_peers, validators, policy.max_bytes)
            .map_err(NodeError::File)?;
        Some(Arc::new(source) as Arc<dyn SnapshotSource>)
    };
    let verifier =
        crate::consensus::Scheme::certificate_verifier(NAMESPACE, *genesis.polynomial()?.public());
    let snapshots = crate::consensus::snapshots::Snapshots::new("follower", policy);
    let served = snapshots.served();
    let cfg = FollowConfig {
        peers: peers
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect(),
        segments: Arc::new(HttpSegments::new().map_err(NodeError::File)?),
        sync,
        snapshots,
        verifier,
        wait_ms: FOLLOW_WAIT_MS,
        faulty: validators.saturating_sub(1) / 3,
    };
    let follower = Follower::new(context.child("follow"), chain.clone(), cfg);
    let handle = context.spawn(move |_| async move {
        if let Err(e) = follower.run().await {
            tracing::error!(error = %e, "the follower stopped: this node's ledger disagrees with a certified block");
        }
    });
    info!("full node started (following the chain through its peers' APIs)");
    Ok(Following {
        chain,
        snapshots: served,
        handle,
    })
}

/// A started full node.
pub struct Following {
    /// Its view of the ledger (for the HTTP API and its executor).
    pub chain: Arc<Chain>,
    /// Its newest state snapshot (served to peers that sync).
    pub snapshots: Arc<NewestSnapshot>,
    /// The follower's task.
    pub handle: Handle<()>,
}

impl std::fmt::Debug for Following {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Following")
            .field("height", &self.chain.finalized_height())
            .finish_non_exhaustive()
    }
}

/// Waits for Ctrl-C, SIGTERM or the end of the validator's tasks, then
/// stops the HTTP APIs (`stop`) and gives their requests in flight up to
/// `http.shutdown_grace_ms` to finish.
async fn wait_for_shutdown(
    handles: Vec<Handle<()>>,
    stop: &tokio::sync::watch::Sender<bool>,
    apis: Vec<Handle<()>>,
    http: &crate::api::HttpLimits,
) {
    let all = futures::future::join_all(handles);
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("Ctrl-C: shutting down"),
        () = term => info!("SIGTERM: shutting down"),
        _ = all => tracing::warn!("validator tasks ended"),
    }
    let _ = stop.send(true);
    // The server waits `shutdown_grace_ms` itself; a little more here.
    let grace = Duration::from_millis(http.shutdown_grace_ms.saturating_add(1_000));
    let _ = tokio::time::timeout(grace, futures::future::join_all(apis)).await;
}

/// `glassbox dev` options.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Validators to run (all in this process).
    pub validators: usize,
    /// Where genesis, keys and storage live.
    pub data_dir: std::path::PathBuf,
    /// HTTP API address of validator 0; validator i serves HTTP on
    /// port + i and p2p on port + validators + i.
    pub http: SocketAddr,
    /// Runtime worker threads.
    pub worker_threads: usize,
}

/// What `glassbox dev` set up.
#[derive(Clone, Debug)]
pub struct DevNetwork {
    /// The genesis file.
    pub genesis_path: std::path::PathBuf,
    /// The funded developer key file.
    pub dev_key_path: std::path::PathBuf,
    /// The developer account's address.
    pub dev_address: String,
    /// HTTP API addresses, one per validator.
    pub apis: Vec<SocketAddr>,
    /// Whether an existing network was resumed.
    pub resumed: bool,
}

/// Balance of the developer account at genesis.
pub const DEV_BALANCE: u64 = 1_000_000_000_000_000;

/// Lowest port [`free_port_block`] draws.
const MIN_DRAWN_PORT: u16 = 10_000;

/// The first port of the kernel's ephemeral range (Linux's
/// `ip_local_port_range`; 32768, its default, where it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The first of `n` consecutive free loopback ports, drawn at random below
/// the kernel's ephemeral range: a port a stopped node frees is then not
/// handed to some outgoing connection before the node starts again.
pub fn free_port_block(n: u16) -> Result<u16, NodeError> {
    use rand::RngExt;
    let top = ephemeral_start().saturating_sub(n);
    // An ephemeral range that starts too low leaves no room below it.
    let top = if top > MIN_DRAWN_PORT + 1_000 {
        top
    } else {
        u16::MAX - n
    };
    let mut rng = rand::rng();
    for _ in 0..200 {
        let base = rng.random_range(MIN_DRAWN_PORT..top);
        if (base..base + n).all(|p| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return Ok(base);
        }
    }
    Err(NodeError::File(format!(
        "found no {n} consecutive free loopback ports in {MIN_DRAWN_PORT}..{top}"
    )))
}

/// Validator `i`'s HTTP and p2p addresses in a dev network of `n` whose
/// validator 0 serves HTTP on `http`: HTTP on port + i, p2p on
/// port + n + i, each checked free.
fn dev_addresses(
    http: SocketAddr,
    n: usize,
) -> Result<Vec<(SocketAddr, Option<SocketAddr>)>, NodeError> {
    let port = |k: usize| {
        u16::try_from(usize::from(http.port()) + k)
            .map(|p| SocketAddr::new(http.ip(), p))
            .map_err(|_| {
                NodeError::File(format!(
                    "--http {http} leaves no room for {n} validators' HTTP and p2p ports (2 each, consecutive)"
                ))
            })
    };
    let mut addresses = Vec::with_capacity(n);
    for i in 0..n {
        let (h, p) = (port(i)?, port(n + i)?);
        for (what, addr) in [("HTTP", h), ("p2p", p)] {
            std::net::TcpListener::bind(addr).map_err(|e| {
                NodeError::File(format!(
                    "validator {i}'s {what} address {addr} is not free ({e}); choose another --http"
                ))
            })?;
        }
        addresses.push((p, Some(h)));
    }
    Ok(addresses)
}

/// Creates (first run) or loads (later runs) a local network in
/// `opts.data_dir`: `genesis.json`, `validator-<i>/validator.json` and the
/// funded `dev.key`.
pub fn prepare_dev(
    opts: &DevOptions,
) -> Result<(NodeGenesis, Vec<ValidatorKey>, DevNetwork), NodeError> {
    let dir = &opts.data_dir;
    let _lock = lock_data_dir(dir)?;
    let genesis_path = dir.join("genesis.json");
    let dev_key_path = dir.join("dev.key");
    let resumed = genesis_path.exists();
    let (genesis, keys) = if resumed {
        let genesis = read_genesis(&genesis_path)?;
        let keys = (0..genesis.validators.len())
            .map(|i| read_key(&dir.join(format!("validator-{i}")).join("validator.json")))
            .collect::<Result<Vec<_>, _>>()?;
        (genesis, keys)
    } else {
        if !(1..=MAX_DEV_VALIDATORS).contains(&opts.validators) {
            return Err(NodeError::File(format!(
                "--validators must be 1 to {MAX_DEV_VALIDATORS}, got {}",
                opts.validators
            )));
        }
        let addresses = dev_addresses(opts.http, opts.validators)?;
        let dev_key = glassbox_store::keyfile::generate_secret_key()
            .map_err(|e| NodeError::File(format!("generating the developer key: {e}")))?;
        glassbox_store::keyfile::write_secret_key(&dev_key_path, &dev_key)
            .map_err(|e| NodeError::File(format!("{}: {e}", dev_key_path.display())))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // Every validator also runs a staked executor with its own key.
        let mut accounts = vec![glassbox_ledger::GenesisAccount {
            address: dev_key.public(),
            balance: DEV_BALANCE,
        }];
        let mut executors = Vec::with_capacity(opts.validators);
        for (i, (_, http)) in addresses.iter().enumerate() {
            let path = dir.join(format!("validator-{i}")).join(EXECUTOR_KEY_FILE);
            let key = glassbox_store::keyfile::generate_secret_key()
                .map_err(|e| NodeError::File(format!("generating an executor key: {e}")))?;
            glassbox_store::keyfile::write_secret_key(&path, &key)
                .map_err(|e| NodeError::File(format!("{}: {e}", path.display())))?;
            accounts.push(glassbox_ledger::GenesisAccount {
                address: key.public(),
                balance: DEV_EXECUTOR_BALANCE,
            });
            let endpoint = http.map_or_else(
                || "http://127.0.0.1:1".to_string(),
                |a| format!("http://{a}"),
            );
            executors.push(glassbox_ledger::GenesisExecutor {
                owner: key.public(),
                stake: DEV_EXECUTOR_STAKE,
                capacity: DEV_EXECUTOR_CAPACITY,
                endpoint,
            });
        }
        let ledger = glassbox_ledger::GenesisState {
            chain_name: "glassbox-dev".into(),
            genesis_time_ms: now_ms,
            params: glassbox_ledger::Params::default(),
            accounts,
            executors,
        };
        let mut rng = rand::rng();
        let (genesis, keys) =
            crate::consensus::genesis::deal_validators(&mut rng, ledger, &addresses)?;
        for (i, key) in keys.iter().enumerate() {
            let text =
                serde_json::to_string_pretty(key).map_err(|e| NodeError::File(e.to_string()))?;
            write_private(
                &dir.join(format!("validator-{i}")).join("validator.json"),
                &text,
            )?;
        }
        let text =
            serde_json::to_string_pretty(&genesis).map_err(|e| NodeError::File(e.to_string()))?;
        write_private(&genesis_path, &text)?;
        // A config per validator, to run them as separate processes with
        // `glassbox node --config validator-<i>/node.toml`.
        for (i, v) in genesis.validators.iter().enumerate() {
            let vdir = std::path::absolute(dir.join(format!("validator-{i}")))
                .map_err(|e| NodeError::File(format!("{}: {e}", dir.display())))?;
            let genesis_path = std::path::absolute(&genesis_path)
                .map_err(|e| NodeError::File(format!("{}: {e}", dir.display())))?;
            let cfg = NodeConfig {
                genesis: genesis_path.clone(),
                key: Some(vdir.join("validator.json")),
                data_dir: vdir.clone(),
                p2p_listen: Some(v.p2p_address),
                follow: Vec::new(),
                http_listen: v.http_address,
                worker_threads: default_threads(),
                executor_key: Some(vdir.join(EXECUTOR_KEY_FILE)),
                blob_peers: Vec::new(),
                snapshot_every_blocks: default_snapshot_every_blocks(),
                snapshots_kept: default_snapshots_kept(),
                snapshot_max_bytes: default_snapshot_max_bytes(),
                archive: false,
                retain_blocks: default_retain_blocks(),
                state_sync: default_state_sync(),
                http: crate::api::HttpLimits::default(),
            };
            let text = toml::to_string(&cfg).map_err(|e| NodeError::File(e.to_string()))?;
            write_private(&vdir.join("node.toml"), &text)?;
        }
        (genesis, keys)
    };
    let dev_address = glassbox_store::keyfile::read_secret_key(&dev_key_path)
        .map(|k| k.public().to_string())
        .map_err(|e| NodeError::File(format!("{}: {e}", dev_key_path.display())))?;
    let apis = genesis
        .validators
        .iter()
        .filter_map(|v| v.http_address)
        .collect();
    Ok((
        genesis,
        keys,
        DevNetwork {
            genesis_path,
            dev_key_path,
            dev_address,
            apis,
            resumed,
        },
    ))
}

/// The executor key file in each dev validator's directory.
pub const EXECUTOR_KEY_FILE: &str = "executor.key";
/// Balance of each dev executor's account (for its commit and reveal fees).
pub const DEV_EXECUTOR_BALANCE: u64 = 1_000_000_000_000;
/// Stake each dev executor bonds at genesis.
pub const DEV_EXECUTOR_STAKE: u64 = 10_000_000_000;
/// Concurrent jobs each dev executor declares.
pub const DEV_EXECUTOR_CAPACITY: u32 = 256;

/// Most validators `glassbox dev` runs.
pub const MAX_DEV_VALIDATORS: usize = 16;

/// Runs every validator of a prepared dev network in this process until
/// Ctrl-C. `ready` is called once all are started.
pub fn run_dev(
    opts: &DevOptions,
    genesis: NodeGenesis,
    keys: Vec<ValidatorKey>,
    ready: impl FnOnce() + Send + 'static,
) -> Result<(), NodeError> {
    // The network's directory, and each validator's (a `glassbox node`
    // on one of them would share its blobs and executor key).
    let _locks = std::iter::once(opts.data_dir.clone())
        .chain((0..keys.len()).map(|i| opts.data_dir.join(format!("validator-{i}"))))
        .map(|dir| lock_data_dir(&dir))
        .collect::<Result<Vec<_>, _>>()?;
    let storage = opts.data_dir.join("storage");
    let shared = Arc::new(genesis.clone());
    runner(&storage, opts.worker_threads).start(|context| async move {
        let mut handles = Vec::new();
        let mut apis = Vec::new();
        let http = crate::api::HttpLimits::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        for (i, key) in keys.into_iter().enumerate() {
            let entry = genesis
                .validators
                .get(i)
                .cloned()
                .ok_or_else(|| NodeError::File(format!("genesis lists no validator {i}")))?;
            let run = ValidatorRun {
                key,
                p2p_listen: entry.p2p_address,
                partition_prefix: format!("validator-{i}"),
                timing: Timing::default(),
                snapshots: SnapshotPolicy::default(),
                // One process: its validators start and stop together.
                sync_peers: Vec::new(),
            };
            let ctx = context.child("validator").with_attribute("index", i);
            let (started, hs) = start_validator(ctx.child("chain"), &genesis, run).await?;
            handles.extend(hs);
            let vdir = opts.data_dir.join(format!("validator-{i}"));
            let key_path = vdir.join(EXECUTOR_KEY_FILE);
            let executor_key = if key_path.exists() {
                Some(read_executor_key(&key_path)?)
            } else {
                None
            };
            apis.extend(
                start_services(
                    &ctx,
                    &started.chain,
                    Services {
                        http: entry.http_address,
                        data_dir: vdir,
                        genesis: shared.clone(),
                        executor_key,
                        blob_peers: Vec::new(),
                        snapshots: Some(started.snapshots.clone()),
                        archive: Some(started.archive.clone()),
                        http_limits: http.clone(),
                        stop: stopped.clone(),
                    },
                )
                .await?,
            );
        }
        ready();
        wait_for_shutdown(handles, &stop, apis, &http).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{
        api_limits, dev_addresses, ephemeral_start, free_port_block, lock_data_dir,
        wipe_network_dir,
    };
    use crate::api::DEFAULT_MAX_BODY_BYTES;

    #[test]
    fn a_network_directory_is_wiped_only_while_no_node_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        // Nothing there: nothing to do.
        wipe_network_dir(&dir).unwrap();
        std::fs::create_dir_all(dir.join("validator-0").join("storage")).unwrap();
        std::fs::write(dir.join("genesis.json"), "{}").unwrap();
        std::fs::write(dir.join("dev.key"), "").unwrap();

        // A network running on it: refused, nothing removed.
        let running = lock_data_dir(&dir).unwrap();
        let e = wipe_network_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("in use by process"), "{e}");
        assert!(dir.join("genesis.json").exists());
        // A second node on it: refused the same way.
        assert!(lock_data_dir(&dir).is_err());
        drop(running);

        // One validator run as its own process in a subdirectory: refused.
        let validator = lock_data_dir(&dir.join("validator-0")).unwrap();
        let e = wipe_network_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("validator-0"), "{e}");
        assert!(dir.join("validator-0").join("storage").exists());
        drop(validator);

        // Stopped: wiped, the lock file kept.
        wipe_network_dir(&dir).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from(glassbox_store::LOCK_FILE)]
        );

        // A directory that is not a dev network's is never wiped: other
        // files, or a production node's genesis without a developer key.
        for (name, file) in [("other", "notes.txt"), ("node", "genesis.json")] {
            let other = tmp.path().join(name);
            std::fs::create_dir_all(&other).unwrap();
            std::fs::write(other.join(file), "mine").unwrap();
            let e = wipe_network_dir(&other).unwrap_err().to_string();
            assert!(e.contains("not a Glassbox network directory"), "{e}");
            assert!(other.join(file).exists());
        }
    }

    #[test]
    fn api_body_limit_fits_the_largest_transaction_as_hex() {
        let mut params = glassbox_ledger::Params::default();
        // The default chain keeps the default limit.
        assert_eq!(api_limits(&params).max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        // A 1 MiB transaction is 2 MiB of hex plus its JSON.
        params.max_tx_bytes = 1 << 20;
        assert_eq!(api_limits(&params).max_body_bytes, (2 << 20) + 4096);
        params.max_tx_bytes = u32::MAX;
        assert!(api_limits(&params).max_body_bytes >= 2 * u32::MAX as usize);
    }

    #[test]
    fn dev_ports_lie_below_the_ephemeral_range_and_taken_ones_are_named() {
        let base = free_port_block(8).unwrap();
        if ephemeral_start() > 11_000 {
            assert!(base + 8 <= ephemeral_start(), "{base}");
        }
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], base));
        let addresses = dev_addresses(http, 4).unwrap();
        let ports: Vec<(u16, u16)> = addresses
            .iter()
            .map(|(p2p, http)| (http.unwrap().port(), p2p.port()))
            .collect();
        assert_eq!(
            ports,
            (0..4).map(|i| (base + i, base + 4 + i)).collect::<Vec<_>>()
        );
        // Validator 2's p2p port taken: init refuses, naming it.
        let _taken = std::net::TcpListener::bind(("127.0.0.1", base + 6)).unwrap();
        let err = dev_addresses(http, 4).unwrap_err().to_string();
        assert!(
            err.contains(&format!("validator 2's p2p address 127.0.0.1:{}", base + 6)),
            "{err}"
        );
        // No room above the base port.
        let top = std::net::SocketAddr::from(([127, 0, 0, 1], u16::MAX - 3));
        assert!(
            dev_addresses(top, 4)
                .unwrap_err()
                .to_string()
                .contains("no room")
        );
    }
}

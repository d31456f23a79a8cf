//! Seeded, deterministic simulations of a 4-validator network on
//! Commonware's deterministic runtime and simulated p2p network: safety
//! (one block per height everywhere), identical state roots, liveness with
//! one faulty validator (crashed and restarted, partitioned and healed, or
//! Byzantine), and replay (same seed, same run).

use std::collections::BTreeMap;
use std::num::NonZero;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_consensus::Heightable;
use commonware_consensus::simplex::elector::{Random, RandomVersion};
use commonware_consensus::simplex::mocks::equivocator::{self, Equivocator};
use commonware_consensus::simplex::mocks::relay::Relay;
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf;
use commonware_consensus::types::Round;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::certificate::mocks::Fixture;
use commonware_cryptography::{Digestible, Sha256};
use commonware_p2p::Manager;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Blob as _, Clock, Handle, Runner as _, Spawner, Storage as _, Supervisor as _, WriteOptions,
    deterministic,
};
use commonware_utils::ordered::Set;
use commonware_utils::{NZUsize, Probability};
use glassbox_ledger::{GenesisAccount, GenesisState, Params, SignedTx, State, TxBody};
use glassbox_node::chain::Chain;
use glassbox_node::chain::mempool::MempoolLimits;
use glassbox_node::consensus::block::Block;
use glassbox_node::consensus::engine::{self, Config, Engine, Timing};
use glassbox_node::consensus::follow::{self, Archive, FollowConfig, Follower, SegmentSource};
use glassbox_node::consensus::genesis::genesis_block;
use glassbox_node::consensus::snapshots::{
    SnapshotPolicy, SnapshotSource, Snapshots, decode, encode,
};
use glassbox_node::consensus::{Digest, EPOCH, NAMESPACE, PublicKey, Scheme};
use glassbox_primitives::StateRoot;
use glassbox_types::SecretKey;
use governor::Quota;

const VALIDATORS: usize = 4;
const USERS: usize = 8;

type Ctx = deterministic::Context;

/// Per-peer rate of every channel: far above what 4 validators send, and
/// small enough that the inboxes sized from it (one burst per peer) stay
/// small.
fn quota() -> Quota {
    Quota::per_second(commonware_utils::NZU32!(10_000))
}

fn link() -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: Probability::from_f64(1.0).expect("a probability"),
    }
}

fn users() -> Vec<SecretKey> {
    (0..USERS)
        .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]))
        .collect()
}

fn ledger_genesis() -> (State, Block) {
    let genesis = GenesisState {
        chain_name: "glassbox-sim".into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: users()
            .iter()
            .map(|k| GenesisAccount {
                address: k.public(),
                balance: 1_000_000_000_000,
            })
            .collect(),
        executors: Vec::new(),
    };
    let state = State::genesis(&genesis).expect("valid genesis");
    let block = genesis_block(0, state.root());
    (state, block)
}

/// What every validator finalized, as seen by polling its chain.
#[derive(Default)]
struct Observed {
    /// height -> (digest, state root) first seen.
    blocks: Seen,
    /// Heights at which two validators finalized different blocks.
    conflicts: Vec<u64>,
}

struct Sim {
    fixture: Fixture<Scheme>,
    state: State,
    genesis: Block,
    chains: Vec<Option<Arc<Chain>>>,
    handles: Vec<Option<Handle<()>>>,
    observed: Arc<Mutex<Observed>>,
    /// Every validator's consensus timing.
    timing: Timing,
    /// Every validator's snapshot policy (off unless a test turns it on).
    snapshots: SnapshotPolicy,
    /// Each validator's storage partition prefix.
    prefixes: Vec<String>,
    /// Where a (re)started validator state-syncs from (none by default).
    sync: Option<Arc<dyn SnapshotSource>>,
    /// Each running validator's block archive, once its engine is up.
    archives: Vec<ArchiveSlot>,
    /// Blocks per archive section (what pruning removes at once).
    archive_section_blocks: NonZero<u64>,
}

/// A validator's block archive, set once its engine is up.
type ArchiveSlot = Arc<Mutex<Option<Arc<dyn Archive>>>>;

impl Sim {
    fn new(context: &mut Ctx) -> Self {
        let fixture = vrf::fixture::<MinSig, _>(context, NAMESPACE, VALIDATORS as u32);
        let (state, genesis) = ledger_genesis();
        Sim {
            fixture,
            state,
            genesis,
            chains: vec![None; VALIDATORS],
            handles: (0..VALIDATORS).map(|_| None).collect(),
            observed: Arc::default(),
            timing: Timing {
                leader_timeout: Duration::from_millis(500),
                certification_timeout: Duration::from_secs(1),
                nullify_retry: Duration::from_secs(2),
                fetch_timeout: Duration::from_secs(1),
                view_retention: 20,
                skip_timeout: Duration::from_secs(5),
            },
            snapshots: SnapshotPolicy {
                every_blocks: 0,
                ..SnapshotPolicy::default()
            },
            prefixes: (0..VALIDATORS).map(|i| format!("validator_{i}")).collect(),
            sync: None,
            archives: (0..VALIDATORS).map(|_| ArchiveSlot::default()).collect(),
            archive_section_blocks: engine::ARCHIVE_SECTION_BLOCKS,
        }
    }

    fn key(&self, i: usize) -> PublicKey {
        self.fixture.participants[i].clone()
    }

    /// Starts (or restarts, on the same storage) validator `i`.
    async fn start(
        &mut self,
        context: &Ctx,
        oracle: &mut Oracle<PublicKey, Ctx>,
        i: usize,
        incarnation: u32,
    ) {
        let me = self.key(i);
        let control = oracle.control(me.clone());
        let votes = control.register(0, quota()).await.unwrap();
        let certificates = control.register(1, quota()).await.unwrap();
        let resolver = control.register(2, quota()).await.unwrap();
        let broadcast = control.register(3, quota()).await.unwrap();
        let backfill = control.register(4, quota()).await.unwrap();
        let chain = Arc::new(Chain::new(
            self.genesis.clone(),
            self.state.clone(),
            MempoolLimits::default(),
        ));
        let scheme = self.fixture.schemes[i].clone();
        let participants = Set::from_iter_dedup(self.fixture.participants.iter().cloned());
        let manager = oracle.manager();
        let cfg = Config {
            blocker: control.clone(),
            provider: manager.clone(),
            partition_prefix: self.prefixes[i].clone(),
            archive_section_blocks: self.archive_section_blocks,
            me: me.clone(),
            polynomial: scheme.polynomial().clone(),
            share: scheme.share().cloned().expect("signer"),
            participants,
            mailbox_size: NZUsize!(1_024),
            deque_size: 10,
            timing: self.timing.clone(),
            strategy: Sequential,
            chain: chain.clone(),
            snapshots: self.snapshots.clone(),
            sync: self.sync.clone(),
        };
        let archive = ArchiveSlot::default();
        self.archives[i] = archive.clone();
        let handle = context
            .child("validator")
            .with_attribute("index", i)
            .with_attribute("incarnation", incarnation)
            .spawn(move |context| async move {
                let engine = Engine::new(context.child("engine"), cfg)
                    .await
                    .expect("engine starts");
                *archive.lock().unwrap() = Some(engine.archive());
                let _ = engine
                    .start(votes, certificates, resolver, broadcast, backfill)
                    .await;
            });
        self.chains[i] = Some(chain);
        self.handles[i] = Some(handle);
    }

    /// Kills validator `i` and every task it spawned.
    fn crash(&mut self, i: usize) {
        if let Some(h) = self.handles[i].take() {
            h.abort();
        }
        self.chains[i] = None;
    }

    fn chain(&self, i: usize) -> &Arc<Chain> {
        self.chains[i].as_ref().expect("validator running")
    }

    fn height(&self, i: usize) -> u64 {
        self.chain(i).finalized_height()
    }

    /// Records every running validator's finalized tip; flags two different
    /// blocks at one height.
    fn observe(&self) {
        let mut seen = self.observed.lock().unwrap();
        for chain in self.chains.iter().flatten() {
            let tip = chain.finalized();
            let height = tip.block.height().get();
            let entry = (tip.block.digest(), tip.state.root());
            match seen.blocks.get(&height) {
                Some(existing) if *existing != entry => seen.conflicts.push(height),
                Some(_) => {}
                None => {
                    seen.blocks.insert(height, entry);
                }
            }
        }
    }

    /// The view of validator `i`'s finalized tip.
    fn view(&self, i: usize) -> u64 {
        self.chain(i)
            .finalized()
            .block
            .header()
            .context
            .round
            .view()
            .get()
    }

    /// Runs until `done` holds, observing every 10 ms of simulated time,
    /// for at most 600 s of it.
    async fn run_until(&self, context: &Ctx, what: &str, done: impl FnMut(&Sim) -> bool) {
        self.run_until_within(context, what, Duration::from_secs(600), done)
            .await;
    }

    /// Runs until `done` holds, observing every 10 ms of simulated time,
    /// for at most `within` of it.
    async fn run_until_within(
        &self,
        context: &Ctx,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) {
        let deadline = context.current() + within;
        while context.current() < deadline {
            self.observe();
            if done(self) {
                return;
            }
            context.sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

async fn link_all(oracle: &mut Oracle<PublicKey, Ctx>, keys: &[PublicKey], skip: Option<usize>) {
    for (a, ka) in keys.iter().enumerate() {
        for (b, kb) in keys.iter().enumerate() {
            if a == b || skip == Some(a) || skip == Some(b) {
                continue;
            }
            let _ = oracle.add_link(ka.clone(), kb.clone(), link()).await;
        }
    }
}

async fn unlink(oracle: &mut Oracle<PublicKey, Ctx>, keys: &[PublicKey], who: usize) {
    for (b, kb) in keys.iter().enumerate() {
        if b != who {
            let _ = oracle.remove_link(keys[who].clone(), kb.clone()).await;
            let _ = oracle.remove_link(kb.clone(), keys[who].clone()).await;
        }
    }
}

async fn network(context: &Ctx, keys: &[PublicKey]) -> Oracle<PublicKey, Ctx> {
    let (network, oracle) = Network::new(
        context.child("network"),
        simulated::Config {
            max_size: 16 << 20,
            max_peers_per_set: NZUsize!(VALIDATORS),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
    );
    network.start();
    oracle
        .manager()
        .track(0, Set::from_iter_dedup(keys.iter().cloned()));
    oracle
}

/// A simulated network of [`VALIDATORS`] linked validators, all started;
/// `view_retention` replaces the simulation's short default, and each
/// validator snapshots its state every `snapshot_every_blocks` (0: never).
async fn launch(
    context: &mut Ctx,
    view_retention: Option<u64>,
    snapshot_every_blocks: u64,
) -> (Sim, Oracle<PublicKey, Ctx>, Vec<PublicKey>) {
    let mut sim = Sim::new(context);
    if let Some(views) = view_retention {
        sim.timing.view_retention = views;
    }
    sim.snapshots.every_blocks = snapshot_every_blocks;
    let keys = sim.fixture.participants.clone();
    let mut oracle = network(context, &keys).await;
    link_all(&mut oracle, &keys, None).await;
    for i in 0..VALIDATORS {
        sim.start(context, &mut oracle, i, 0).await;
    }
    (sim, oracle, keys)
}

/// Signed transfers: each user sends `per_user` transfers to the next user.
fn transfers(state: &State, per_user: u64) -> Vec<SignedTx> {
    let users = users();
    let chain_id = state.chain_id();
    let mut txs = Vec::new();
    for nonce in 0..per_user {
        for (i, key) in users.iter().enumerate() {
            let to = users[(i + 1) % users.len()].public();
            let tx = SignedTx::sign(
                &chain_id,
                key,
                nonce,
                10_000,
                TxBody::Transfer {
                    to,
                    amount: 1 + nonce,
                },
            )
            .expect("sign");
            txs.push(tx);
        }
    }
    txs
}

/// Gives `txs` to every running validator but `skip` (a client would
/// send to one; gossip of transactions is not part of this layer), so any
/// leader can include them.
fn submit(sim: &Sim, txs: &[SignedTx], skip: Option<usize>) {
    for (i, chain) in sim.chains.iter().enumerate() {
        let Some(chain) = chain else { continue };
        if Some(i) == skip {
            continue;
        }
        for tx in txs {
            chain.submit(tx.clone()).expect("admissible transaction");
        }
    }
}

fn all_finalized(sim: &Sim, txs: &[SignedTx], validators: &[usize]) -> bool {
    validators.iter().all(|&i| {
        txs.iter().all(|tx| {
            matches!(
                sim.chain(i).tx_status(&tx.hash()),
                Some(glassbox_node::chain::TxStatus::Finalized { .. })
            )
        })
    })
}

/// Height -> (digest, state root) of the finalized blocks observed.
type Seen = BTreeMap<u64, (Digest, StateRoot)>;

fn assert_safe(sim: &Sim) -> Seen {
    let seen = sim.observed.lock().unwrap();
    assert!(
        seen.conflicts.is_empty(),
        "two different blocks finalized at heights {:?}",
        seen.conflicts
    );
    seen.blocks.clone()
}

/// Every validator's finalized blocks 1..=`up_to` carry the seed of their
/// parent's round (none at height 1), each a valid threshold signature of
/// the group; the randomness is the same on every validator and differs
/// from block to block.
fn check_randomness(sim: &Sim, validators: &[usize], up_to: u64) {
    let verifier = Scheme::certificate_verifier(NAMESPACE, *sim.fixture.schemes[0].identity());
    let mut previous: Option<[u8; 32]> = None;
    for height in 1..=up_to {
        let blocks: Vec<Block> = validators
            .iter()
            .map(|&i| {
                sim.chain(i)
                    .finalized_block(height)
                    .unwrap_or_else(|| panic!("validator {i} keeps block {height}"))
            })
            .collect();
        let header = blocks[0].header();
        let randomness = header.randomness();
        for b in &blocks {
            assert_eq!(b.header().randomness(), randomness, "height {height}");
        }
        match &header.seed {
            None => assert_eq!(height, 1, "only the first block has no seed"),
            Some(seed) => {
                assert_eq!(seed.round, Round::new(EPOCH, header.context.parent.0));
                assert!(seed.verify(&verifier), "seed at height {height}");
            }
        }
        assert_ne!(previous, Some(randomness), "height {height} repeats");
        previous = Some(randomness);
    }
}

/// A deterministic runtime seeded with `seed`, with a 10-minute
/// simulated-time limit.
fn runner(seed: u64) -> deterministic::Runner {
    runner_for(seed, Duration::from_secs(600))
}

/// A deterministic runtime seeded with `seed` that stops the test after
/// `limit` of simulated time.
fn runner_for(seed: u64, limit: Duration) -> deterministic::Runner {
    deterministic::Runner::from(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(limit)),
    )
}

/// All four honest; transfers finalize everywhere with equal roots.
fn honest_run(seed: u64) -> (String, Seen, StateRoot) {
    runner(seed).start(|mut context| async move {
        let (sim, _oracle, _keys) = launch(&mut context, None, 5).await;
        let txs = transfers(&sim.state, 5);
        submit(&sim, &txs, None);
        let all: Vec<usize> = (0..VALIDATORS).collect();
        sim.run_until(&context, "all transfers to finalize", |s| {
            all_finalized(s, &txs, &all) && all.iter().all(|&i| s.height(i) >= 10)
        })
        .await;
        let blocks = assert_safe(&sim);
        // Every validator reaches the same state at the lowest tip.
        let low = all.iter().map(|&i| sim.height(i)).min().unwrap();
        sim.run_until(&context, "equal tips", |s| {
            all.iter().all(|&i| s.height(i) >= low)
        })
        .await;
        check_randomness(&sim, &all, low);
        let root = sim.chain(0).finalized().state.root();
        (context.auditor().state(), blocks, root)
    })
}

#[test]
fn four_honest_validators_agree_and_replay_identically() {
    let (audit_a, blocks_a, _) = honest_run(7);
    let (audit_b, blocks_b, _) = honest_run(7);
    assert!(blocks_a.len() >= 2, "observed too few blocks: {blocks_a:?}");
    assert_eq!(blocks_a, blocks_b, "same seed, different finalized blocks");
    assert_eq!(audit_a, audit_b, "same seed, different run");
}

#[test]
fn a_crashed_validator_restarts_from_storage_and_catches_up() {
    runner(11).start(|mut context| async move {
        let (mut sim, mut oracle, _keys) = launch(&mut context, None, 0).await;
        let first = transfers(&sim.state, 3);
        submit(&sim, &first, None);
        sim.run_until(&context, "height 5 everywhere", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 5)
        })
        .await;
        let crashed_at = sim.height(3);
        sim.crash(3);
        // Three of four keep finalizing.
        let others = [0, 1, 2];
        sim.run_until(&context, "progress without validator 3", |s| {
            others.iter().all(|&i| s.height(i) >= crashed_at + 10)
        })
        .await;
        sim.start(&context, &mut oracle, 3, 1).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 3 to catch up", |s| {
            s.chain(3).is_ready() && s.height(3) >= target
        })
        .await;
        let blocks = assert_safe(&sim);
        let h = sim.height(3);
        assert!(h >= target);
        assert_eq!(
            blocks.get(&h).map(|b| b.1),
            Some(sim.chain(3).finalized().state.root()),
            "restarted validator's state root differs at height {h}"
        );
        // Replayed from the archive with each header's own seed.
        check_randomness(&sim, &[0, 1, 2, 3], h);
        // It serves transactions again.
        let more: Vec<SignedTx> = transfers(&sim.chain(0).finalized().state, 4)
            .into_iter()
            .skip(3 * USERS)
            .collect();
        submit(&sim, &more, None);
        sim.run_until(&context, "later transfers", |s| {
            all_finalized(s, &more, &[0, 1, 2, 3])
        })
        .await;
        assert_safe(&sim);
    });
}

#[test]
fn a_restarted_validator_starts_from_its_newest_snapshot_and_replays_only_the_tail() {
    runner(12).start(|mut context| async move {
        let every = 10;
        let (mut sim, mut oracle, _keys) = launch(&mut context, None, every).await;
        let first = transfers(&sim.state, 3);
        submit(&sim, &first, None);
        sim.run_until(&context, "height 35 everywhere", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 35)
        })
        .await;
        // Let the background snapshot writes land, then crash.
        context.sleep(Duration::from_millis(200)).await;
        let crashed_at = sim.height(3);
        sim.crash(3);
        let partition = "validator_3-snapshots";
        let mut stored: Vec<u64> = context
            .scan(partition)
            .await
            .unwrap()
            .iter()
            .map(|n| u64::from_be_bytes(n.as_slice().try_into().unwrap()))
            .collect();
        stored.sort_unstable();
        // The two newest are kept; older ones were removed.
        assert_eq!(stored.len(), 2, "snapshots kept: {stored:?}");
        let newest = stored[1];
        assert_eq!(newest % every, 0);
        assert!(newest + 2 * every > crashed_at, "{newest} vs {crashed_at}");
        let others = [0, 1, 2];
        sim.run_until(&context, "progress without validator 3", |s| {
            others.iter().all(|&i| s.height(i) >= crashed_at + 10)
        })
        .await;
        sim.start(&context, &mut oracle, 3, 1).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 3 to catch up", |s| {
            s.chain(3).is_ready() && s.height(3) >= target
        })
        .await;
        assert_eq!(sim.chain(3).restored_from(), Some(newest));
        // The blocks before the snapshot that the API keeps are back.
        assert!(sim.chain(3).finalized_block(newest - 1).is_some());
        let blocks = assert_safe(&sim);
        let h = sim.height(3);
        assert_eq!(
            blocks.get(&h).map(|b| b.1),
            Some(sim.chain(3).finalized().state.root()),
            "restarted validator's state root differs at height {h}"
        );
        check_randomness(&sim, &[0, 1, 2, 3], h);

        // A torn newest snapshot: the node falls back to the older one.
        let crashed_at = sim.height(3);
        sim.crash(3);
        let mut stored: Vec<u64> = context
            .scan(partition)
            .await
            .unwrap()
            .iter()
            .map(|n| u64::from_be_bytes(n.as_slice().try_into().unwrap()))
            .collect();
        stored.sort_unstable();
        let (older, newest) = (stored[0], stored[1]);
        let (blob, len) = context
            .open(partition, &newest.to_be_bytes())
            .await
            .unwrap();
        blob.resize(len / 2).await.unwrap();
        blob.sync().await.unwrap();
        drop(blob);
        sim.run_until(&context, "progress without validator 3", |s| {
            others.iter().all(|&i| s.height(i) >= crashed_at + 5)
        })
        .await;
        sim.start(&context, &mut oracle, 3, 2).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 3 to catch up again", |s| {
            s.chain(3).is_ready() && s.height(3) >= target
        })
        .await;
        assert_eq!(sim.chain(3).restored_from(), Some(older));
        let more: Vec<SignedTx> = transfers(&sim.chain(0).finalized().state, 4)
            .into_iter()
            .skip(3 * USERS)
            .collect();
        submit(&sim, &more, None);
        sim.run_until(&context, "later transfers", |s| {
            all_finalized(s, &more, &[0, 1, 2, 3])
        })
        .await;
        assert_safe(&sim);
    });
}

/// How a simulated peer serves its snapshot.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Honest,
    /// One byte flipped (the checksum fails).
    Flipped,
    /// The newest block and state with the certificate of the peer's
    /// older snapshot (whole and checksummed; the certificate certifies
    /// another block).
    WrongCertificate,
}

/// Peers' snapshots, read from their storage in the simulation (the
/// node's own source speaks HTTP to peers' APIs).
struct PeerSnapshots {
    context: Ctx,
    peers: Vec<(String, Snapshots, Serve)>,
    /// (peer, height) of every blob handed out.
    served: Arc<Mutex<Vec<(String, u64)>>>,
}

impl PeerSnapshots {
    async fn blob(&self, snapshots: &Snapshots, serve: Serve) -> Option<(u64, Vec<u8>)> {
        let heights = snapshots.heights(&self.context).await.ok()?;
        let newest = *heights.first()?;
        let mut blob = snapshots.read(&self.context, newest).await.ok()?;
        match serve {
            Serve::Honest => {}
            Serve::Flipped => {
                let at = blob.len() / 2;
                blob[at] ^= 1;
            }
            Serve::WrongCertificate => {
                let older = snapshots.read(&self.context, *heights.get(1)?).await.ok()?;
                let older = decode(&older, None).ok()?;
                let newest = decode(&blob, None).ok()?;
                blob = encode(&newest.block, &older.finalization, &newest.state);
            }
        }
        Some((newest, blob))
    }
}

impl SnapshotSource for PeerSnapshots {
    fn offers(&self, above: u64) -> futures::future::BoxFuture<'_, Option<(u64, Vec<String>)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut top = 0;
            for (name, snapshots, serve) in &self.peers {
                if let Some((h, _)) = self.blob(snapshots, *serve).await
                    && h > above
                {
                    top = top.max(h);
                    out.push(name.clone());
                }
            }
            (!out.is_empty()).then_some((top, out))
        })
    }

    fn download<'a>(
        &'a self,
        peer: &'a str,
        above: u64,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let (_, snapshots, serve) = self
                .peers
                .iter()
                .find(|(n, _, _)| n == peer)
                .ok_or("no such peer")?;
            let (h, blob) = self.blob(snapshots, *serve).await.ok_or("no snapshot")?;
            if h <= above {
                return Err("not ahead".into());
            }
            self.served.lock().unwrap().push((peer.to_string(), h));
            Ok(blob)
        })
    }
}

/// Bounded disk (docs/operations.md, "Block retention"): with snapshots
/// every 20 blocks and a retention of 60, each snapshot prunes the
/// archives' sections (16 blocks) below its height − 60, on every
/// validator; a validator crashed and restarted still starts from its
/// snapshot, replays its tail and catches up from its peers' retained
/// blocks; pruning keeps every snapshot's successors.
#[test]
fn pruning_validators_keep_only_their_retention_and_still_restart() {
    runner(31).start(|mut context| async move {
        let mut sim = Sim::new(&mut context);
        sim.snapshots = SnapshotPolicy {
            every_blocks: 20,
            keep: 2,
            sync_ahead_blocks: 40,
            retain_blocks: Some(60),
            ..SnapshotPolicy::default()
        };
        sim.snapshots.check().expect("a valid retention");
        sim.archive_section_blocks = NonZero::new(16).unwrap();
        let keys = sim.fixture.participants.clone();
        let mut oracle = network(&context, &keys).await;
        link_all(&mut oracle, &keys, None).await;
        for i in 0..VALIDATORS {
            sim.start(&context, &mut oracle, i, 0).await;
        }
        submit(&sim, &transfers(&sim.state, 3), None);
        sim.run_until(&context, "height 240 everywhere", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 240)
        })
        .await;
        context.sleep(Duration::from_millis(200)).await;
        for i in 0..VALIDATORS {
            let archive = sim.archives[i].lock().unwrap().clone().expect("engine up");
            let tip = sim.height(i);
            // Snapshot at 240 at the latest: floor 180, sections below 176
            // gone.
            assert!(
                archive.block(100).await.is_none(),
                "validator {i} still holds block 100 at height {tip}"
            );
            assert!(archive.finalization(100).await.is_none());
            for h in [tip - 50, tip - 1] {
                assert!(
                    archive.block(h).await.is_some(),
                    "validator {i} lost block {h} at height {tip}"
                );
            }
        }
        // A crash and a restart: from its snapshot, its tail replayed,
        // caught up from its peers.
        let crashed_at = sim.height(3);
        sim.crash(3);
        sim.run_until(&context, "progress without validator 3", |s| {
            [0, 1, 2].iter().all(|&i| s.height(i) >= crashed_at + 30)
        })
        .await;
        sim.start(&context, &mut oracle, 3, 1).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 3 to catch up", |s| {
            s.chain(3).is_ready() && s.height(3) >= target
        })
        .await;
        assert!(
            sim.chain(3)
                .restored_from()
                .is_some_and(|h| h + 60 >= crashed_at)
        );
        let blocks = assert_safe(&sim);
        let h = sim.height(3);
        assert_eq!(
            blocks.get(&h).map(|b| b.1),
            Some(sim.chain(3).finalized().state.root())
        );
    });
}

/// Storage written by a node from before prunable archives is refused
/// with what to do, not misread.
#[test]
fn storage_in_the_old_archive_layout_is_refused() {
    runner(32).start(|context| async move {
        assert!(
            engine::refuse_old_layout(&context, "validator_0")
                .await
                .is_ok()
        );
        let (blob, _) = context
            .open("validator_0-blocks-freezer-table", b"table")
            .await
            .unwrap();
        blob.write_at(0, vec![1u8; 8], WriteOptions::SYNC)
            .await
            .unwrap();
        blob.sync().await.unwrap();
        let e = engine::refuse_old_layout(&context, "validator_0")
            .await
            .unwrap_err();
        assert!(
            e.contains("older glassbox") && e.contains("storage/"),
            "{e}"
        );
        // Another validator's prefix is not concerned.
        assert!(
            engine::refuse_old_layout(&context, "validator_1")
                .await
                .is_ok()
        );
    });
}

#[test]
fn a_new_validator_state_syncs_from_a_peers_snapshot_and_follows() {
    runner(13).start(|mut context| async move {
        let every = 10;
        let (mut sim, mut oracle, _keys) = launch(&mut context, None, every).await;
        sim.snapshots.sync_ahead_blocks = 15;
        let first = transfers(&sim.state, 3);
        submit(&sim, &first, None);
        sim.run_until(&context, "height 45 everywhere", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 45)
        })
        .await;
        sim.crash(3);
        // Validator 3 comes back on empty storage (a new machine). Two
        // lying peers answer first: a torn blob, then a whole one with
        // the certificate of another block. The third is honest.
        let served = Arc::new(Mutex::new(Vec::new()));
        let policy = sim.snapshots.clone();
        let peer = |i: usize| Snapshots::new(&format!("validator_{i}"), policy.clone());
        let source = |peers: Vec<(String, Snapshots, Serve)>| {
            Arc::new(PeerSnapshots {
                context: context.child("peer_snapshots"),
                peers,
                served: served.clone(),
            }) as Arc<dyn SnapshotSource>
        };
        sim.prefixes[3] = "validator_3_new".into();
        sim.sync = Some(source(vec![
            ("flipped".into(), peer(0), Serve::Flipped),
            ("wrong certificate".into(), peer(1), Serve::WrongCertificate),
            ("honest".into(), peer(2), Serve::Honest),
        ]));
        let before = sim.height(0);
        sim.start(&context, &mut oracle, 3, 1).await;
        sim.run_until(&context, "validator 3 to sync", |s| {
            s.chain(3).restored_from().is_some()
        })
        .await;
        let tried: Vec<String> = served
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(tried, ["flipped", "wrong certificate", "honest"]);
        let synced = served.lock().unwrap()[2].1;
        assert_eq!(sim.chain(3).restored_from(), Some(synced));
        assert!(synced + 2 * every > before, "{synced} vs {before}");

        // Killed at once, before it writes a snapshot of its own (and
        // maybe before marshal fetched the synced block), and restarted
        // with no peer to sync from: it starts from the synced snapshot it
        // stored, whose certificate it checks again, and catches up.
        sim.crash(3);
        sim.sync = None;
        sim.start(&context, &mut oracle, 3, 2).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 3 to restart after the sync", |s| {
            s.chain(3).is_ready() && s.height(3) >= target
        })
        .await;
        assert_eq!(sim.chain(3).restored_from(), Some(synced));
        let blocks = assert_safe(&sim);
        let h = sim.height(3);
        assert_eq!(
            blocks.get(&h).map(|b| b.1),
            Some(sim.chain(3).finalized().state.root()),
            "synced validator's state root differs at height {h}"
        );

        // It follows: later transfers finalize everywhere, and it writes
        // snapshots of its own.
        let more: Vec<SignedTx> = transfers(&sim.chain(0).finalized().state, 4)
            .into_iter()
            .skip(3 * USERS)
            .collect();
        submit(&sim, &more, None);
        sim.run_until(&context, "later transfers", |s| {
            all_finalized(s, &more, &[0, 1, 2, 3])
        })
        .await;
        assert_safe(&sim);
        let own = Snapshots::new("validator_3_new", sim.snapshots.clone());
        let wrote_own = sim.height(3) + 2 * every;
        sim.run_until(&context, "validator 3's own snapshots", |s| {
            s.height(3) >= wrote_own
        })
        .await;
        let heights = own.heights(&context).await.unwrap();
        assert!(heights.iter().any(|&h| h > synced), "{heights:?}");
    });
}

/// How a simulated peer serves segments to a follower.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Lie {
    Honest,
    /// One byte in the middle flipped.
    Flipped,
    /// The last block dropped (the certificate names a block not sent).
    DropLast,
    /// The first block dropped (the rest does not extend the tip).
    SkipFirst,
    /// Nothing new, ever (after the whole wait), and a height nobody
    /// reached.
    Withhold,
}

/// Validators' segments, served from their chains and archives in the
/// simulation (the node's own source speaks HTTP to peers' APIs), and
/// their mempools for forwarded transactions.
struct PeerSegments {
    context: Ctx,
    peers: Vec<(String, Arc<Chain>, ArchiveSlot, Lie)>,
    /// Peers whose segment was handed out, in order.
    served: Arc<Mutex<Vec<String>>>,
}

impl SegmentSource for PeerSegments {
    fn segment<'a>(
        &'a self,
        peer: &'a str,
        after: u64,
        wait_ms: u64,
    ) -> futures::future::BoxFuture<'a, Result<follow::Answer, String>> {
        Box::pin(async move {
            let (name, chain, archive, lie) = self
                .peers
                .iter()
                .find(|(n, ..)| n == peer)
                .ok_or("no such peer")?;
            if *lie == Lie::Withhold {
                // Never anything new, after the whole wait.
                self.context.sleep(Duration::from_millis(wait_ms)).await;
                return Ok(follow::Answer::Nothing);
            }
            let archive = archive.lock().unwrap().clone();
            // As the API does: nothing new, or nothing certified yet, is
            // a wait and an empty answer.
            let bytes = match follow::serve(chain, archive.as_deref(), after).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) | Err(follow::SegmentError::Uncertified(_)) => {
                    self.context
                        .sleep(Duration::from_millis(wait_ms.min(50)))
                        .await;
                    return Ok(follow::Answer::Nothing);
                }
                Err(follow::SegmentError::Pruned(_)) => return Ok(follow::Answer::Pruned),
                Err(e) => return Err(e.to_string()),
            };
            self.served.lock().unwrap().push(name.clone());
            let bytes = match lie {
                Lie::Honest | Lie::Withhold => bytes,
                Lie::Flipped => {
                    let mut b = bytes;
                    let at = b.len() / 2;
                    b[at] ^= 1;
                    b
                }
                Lie::DropLast | Lie::SkipFirst => {
                    let (mut blocks, f) = follow::decode(&bytes).map_err(|e| e.to_string())?;
                    if *lie == Lie::DropLast {
                        blocks.pop();
                    } else {
                        blocks.remove(0);
                    }
                    follow::encode(&blocks, &f)
                }
            };
            Ok(follow::Answer::Segment(bytes))
        })
    }

    fn height<'a>(&'a self, peer: &'a str) -> futures::future::BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let (_, chain, _, lie) = self.peers.iter().find(|(n, ..)| n == peer)?;
            // The withholding peer also claims a height nobody reached.
            Some(match lie {
                Lie::Withhold => u64::MAX,
                _ => chain.finalized_height(),
            })
        })
    }

    fn submit<'a>(
        &'a self,
        peer: &'a str,
        tx: &'a SignedTx,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (_, chain, ..) = self
                .peers
                .iter()
                .find(|(n, ..)| n == peer)
                .ok_or("no such peer")?;
            // Taken, or already held (the follower sends to two peers).
            match chain.submit(tx.clone()) {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Starts a follower of `sim`'s validators 0..=3 on `chain` (liars first),
/// snapshotting every 10 blocks under `prefix`.
fn start_follower(
    context: &Ctx,
    sim: &Sim,
    chain: Arc<Chain>,
    prefix: &str,
    served: Arc<Mutex<Vec<String>>>,
) -> Handle<()> {
    let lies = [Lie::Flipped, Lie::DropLast, Lie::SkipFirst, Lie::Withhold];
    let mut peers: Vec<_> = lies
        .iter()
        .enumerate()
        .map(|(i, lie)| {
            (
                format!("{lie:?}"),
                sim.chain(i).clone(),
                sim.archives[i].clone(),
                *lie,
            )
        })
        .collect();
    peers.push((
        "Honest".into(),
        sim.chain(1).clone(),
        sim.archives[1].clone(),
        Lie::Honest,
    ));
    let source = Arc::new(PeerSegments {
        context: context.child("peer_segments"),
        peers: peers.clone(),
        served,
    });
    let cfg = FollowConfig {
        peers: peers.iter().map(|(n, ..)| n.clone()).collect(),
        segments: source,
        sync: None,
        snapshots: Snapshots::new(
            prefix,
            SnapshotPolicy {
                every_blocks: 10,
                ..SnapshotPolicy::default()
            },
        ),
        verifier: Scheme::certificate_verifier(NAMESPACE, *sim.fixture.schemes[0].identity()),
        wait_ms: 200,
        // Four validators behind five peers (one serves twice): f = 1.
        faulty: 1,
    };
    let follower = Follower::new(context.child("follower"), chain, cfg);
    context.child("follower_task").spawn(move |_| async move {
        follower.run().await.expect("the follower's blocks apply");
    })
}

#[test]
fn a_follower_checks_every_segment_forwards_transactions_and_restarts() {
    runner(29).start(|mut context| async move {
        let (sim, _oracle, _keys) = launch(&mut context, None, 0).await;
        let first = transfers(&sim.state, 2);
        submit(&sim, &first, None);
        sim.run_until(&context, "height 15 everywhere", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 15)
        })
        .await;
        // A follower at genesis: its first four peers lie, each its own
        // way; the fifth is honest.
        let new_chain = || {
            Arc::new(Chain::new(
                sim.genesis.clone(),
                sim.state.clone(),
                MempoolLimits::default(),
            ))
        };
        let served = Arc::new(Mutex::new(Vec::new()));
        let chain = new_chain();
        let handle = start_follower(&context, &sim, chain.clone(), "follower", served.clone());
        let target = sim.height(0);
        // Ready (it serves) once at the honest height, which the peer
        // claiming u64::MAX does not set; never before it got there.
        let mut early = None;
        sim.run_until(&context, "the follower to catch up", |_| {
            let h = chain.finalized_height();
            if chain.is_ready() && h + 3 < target {
                early.get_or_insert(h);
            }
            h >= target && chain.is_ready()
        })
        .await;
        assert_eq!(
            early, None,
            "ready at height {early:?}, the network at {target}"
        );
        let tried = served.lock().unwrap().clone();
        for liar in ["Flipped", "DropLast", "SkipFirst"] {
            assert!(
                tried.iter().any(|p| p == liar),
                "{liar} never asked: {tried:?}"
            );
        }
        // Its blocks and states are the validators'.
        let seen = assert_safe(&sim);
        for h in 1..=chain.finalized_height() {
            let Some(block) = chain.finalized_block(h) else {
                continue;
            };
            if let Some((digest, _)) = seen.get(&h) {
                assert_eq!(*digest, block.digest(), "height {h}");
            }
        }
        let h = chain.finalized_height();
        sim.run_until(&context, "validator 1 at the follower's height", |s| {
            s.height(1) >= h
        })
        .await;
        assert_eq!(
            sim.chain(1)
                .finalized_block(h)
                .map(|b| b.header().state_root),
            Some(chain.finalized().state.root()),
        );

        // Transactions sent to the follower reach the chain through it.
        let more: Vec<SignedTx> = transfers(&chain.finalized().state, 3)
            .into_iter()
            .skip(2 * USERS)
            .collect();
        for tx in &more {
            chain.submit(tx.clone()).expect("the follower admits it");
        }
        sim.run_until(&context, "the forwarded transfers", |s| {
            all_finalized(s, &more, &[0, 1, 2, 3])
                && more.iter().all(|tx| {
                    matches!(
                        chain.tx_status(&tx.hash()),
                        Some(glassbox_node::chain::TxStatus::Finalized { .. })
                    )
                })
        })
        .await;

        // Killed and restarted on its storage: it starts from its own
        // snapshot (certificate checked) and follows on.
        let snapshotted = chain.finalized_height();
        sim.run_until(&context, "a follower snapshot", |_| {
            chain.finalized_height() >= snapshotted + 10
        })
        .await;
        handle.abort();
        let chain = new_chain();
        let _handle = start_follower(&context, &sim, chain.clone(), "follower", served);
        sim.run_until(&context, "the restarted follower", |_| {
            chain.restored_from().is_some_and(|h| h >= snapshotted)
        })
        .await;
        let target = sim.height(0) + 5;
        sim.run_until(&context, "the restarted follower to follow", |_| {
            chain.finalized_height() >= target
        })
        .await;
    });
}

#[test]
fn a_partitioned_validator_rejoins_after_the_partition_heals() {
    runner(23).start(|mut context| async move {
        let (sim, mut oracle, keys) = launch(&mut context, None, 0).await;
        sim.run_until(&context, "height 3", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= 3)
        })
        .await;
        unlink(&mut oracle, &keys, 2).await;
        let cut = sim.height(0);
        let txs = transfers(&sim.state, 2);
        submit(&sim, &txs, Some(2));
        sim.run_until(&context, "the majority side to finalize", |s| {
            all_finalized(s, &txs, &[0, 1, 3]) && s.height(0) >= cut + 8
        })
        .await;
        // The isolated validator cannot finalize anything alone.
        assert!(
            sim.height(2) <= cut + 1,
            "a partitioned validator finalized alone"
        );
        link_all(&mut oracle, &keys, None).await;
        let target = sim.height(0);
        sim.run_until(&context, "validator 2 to catch up", |s| {
            s.height(2) >= target
        })
        .await;
        assert!(all_finalized(&sim, &txs, &[2]));
        assert_safe(&sim);
    });
}

#[test]
fn an_equivocating_validator_cannot_break_safety_or_liveness() {
    runner(31).start(|mut context| async move {
        let mut sim = Sim::new(&mut context);
        let keys = sim.fixture.participants.clone();
        let mut oracle = network(&context, &keys).await;
        link_all(&mut oracle, &keys, None).await;
        let byzantine = 0;
        for i in 1..VALIDATORS {
            sim.start(&context, &mut oracle, i, 0).await;
        }
        // Validator 0 runs Commonware's equivocator: as leader it sends
        // conflicting proposals to different peers.
        let control = oracle.control(keys[byzantine].clone());
        let votes = control.register(0, quota()).await.unwrap();
        let certificates = control.register(1, quota()).await.unwrap();
        let _resolver = control.register(2, quota()).await.unwrap();
        let _broadcast = control.register(3, quota()).await.unwrap();
        let _backfill = control.register(4, quota()).await.unwrap();
        let liar = Equivocator::<_, _, _, Sha256>::new(
            context.child("equivocator"),
            equivocator::Config {
                scheme: sim.fixture.schemes[byzantine].clone(),
                elector: Random::<Sha256>::new(RandomVersion::V1),
                epoch: EPOCH,
                relay: Arc::new(Relay::default()),
            },
        );
        liar.start(votes, certificates);
        let honest = [1, 2, 3];
        let txs = transfers(&sim.state, 3);
        submit(&sim, &txs, Some(byzantine));
        sim.run_until(&context, "honest validators to finalize", |s| {
            all_finalized(s, &txs, &honest) && honest.iter().all(|&i| s.height(i) >= 10)
        })
        .await;
        assert_safe(&sim);
    });
}

/// Views a [`long_run`] reaches: `GLASSBOX_SIM_VIEWS`, or a short run for
/// CI (`scripts/long_sim.sh` runs 20,000 and more).
fn long_run_views() -> u64 {
    std::env::var("GLASSBOX_SIM_VIEWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_200)
}

/// Consensus journal sections (one blob per view with votes) validator `i`
/// holds.
async fn journal_sections(context: &Ctx, i: usize) -> Vec<u64> {
    let names = context
        .scan(&format!("validator_{i}-consensus"))
        .await
        .unwrap_or_default();
    names
        .iter()
        .filter_map(|n| Some(u64::from_be_bytes(n.as_slice().try_into().ok()?)))
        .collect()
}

/// A steady stream of transfers: every user sends one every 50 ms of
/// simulated time, to every running validator.
struct Load {
    users: Vec<SecretKey>,
    nonces: Vec<u64>,
    polls: u64,
    sent: u64,
}

impl Load {
    fn new() -> Self {
        let users = users();
        let nonces = vec![0; users.len()];
        Load {
            users,
            nonces,
            polls: 0,
            sent: 0,
        }
    }

    /// Called every 10 ms of simulated time by `run_until`.
    fn tick(&mut self, sim: &Sim) {
        self.polls += 1;
        if !self.polls.is_multiple_of(5) {
            return;
        }
        let chain_id = sim.state.chain_id();
        for (i, key) in self.users.iter().enumerate() {
            let to = self.users[(i + 1) % self.users.len()].public();
            let tx = SignedTx::sign(
                &chain_id,
                key,
                self.nonces[i],
                10_000,
                TxBody::Transfer { to, amount: 1 },
            )
            .expect("sign");
            self.nonces[i] += 1;
            self.sent += 1;
            for chain in sim.chains.iter().flatten() {
                // A validator that is behind may refuse a nonce ahead of its
                // state; the others include it.
                let _ = chain.submit(tx.clone());
            }
        }
    }
}

/// Drives 4 validators with production view retention (256) through
/// `views` views under a steady transfer load, with a fault in two of
/// every three phases: a validator crashed and restarted from storage (its
/// journal replayed, its views as leader nullified meanwhile), or
/// partitioned and healed. Checks safety throughout and that the consensus
/// journal stays pruned to the retained views. Returns the number of
/// transfers sent.
fn long_run(seed: u64, views: u64) -> u64 {
    // ~80 ms of simulated time per view, and the faults' timeouts on top.
    let limit = Duration::from_millis(views.saturating_mul(200)) + Duration::from_secs(600);
    runner_for(seed, limit).start(|mut context| async move {
        let retention = Timing::default().view_retention;
        let (mut sim, mut oracle, keys) = launch(&mut context, Some(retention), 100).await;
        let mut load = Load::new();
        let phases = 12u64;
        let mut incarnation = 1;
        for phase in 0..phases {
            let end = views * (phase + 1) / phases;
            let who = (phase as usize) % VALIDATORS;
            let fault = phase % 3;
            match fault {
                1 => sim.crash(who),
                2 => unlink(&mut oracle, &keys, who).await,
                _ => {}
            }
            let live: Vec<usize> = (0..VALIDATORS)
                .filter(|&i| fault == 0 || i != who)
                .collect();
            sim.run_until_within(&context, "the views of a phase", limit, |s| {
                load.tick(s);
                live.iter().all(|&i| s.view(i) >= end)
            })
            .await;
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "phase {phase} (fault {fault} on validator {who}): views {:?}, heights {:?}, {} s simulated, {} transfers sent",
                    live.iter().map(|&i| sim.view(i)).collect::<Vec<_>>(),
                    live.iter().map(|&i| sim.height(i)).collect::<Vec<_>>(),
                    context.current().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    load.sent,
                );
            }
            match fault {
                1 => {
                    sim.start(&context, &mut oracle, who, incarnation).await;
                    incarnation += 1;
                }
                2 => link_all(&mut oracle, &keys, None).await,
                _ => {}
            }
            // Every live validator's journal holds only the views it still
            // keeps: at most the retention behind its finalized view, plus
            // the views in flight above it.
            for &i in &live {
                let sections = journal_sections(&context, i).await;
                let low = sections.iter().min().copied().unwrap_or(0);
                assert!(
                    low + retention + 64 >= sim.view(i),
                    "validator {i} keeps journal section {low} at view {}",
                    sim.view(i)
                );
            }
        }
        let target = (0..VALIDATORS).map(|i| sim.height(i)).max().unwrap_or(0);
        sim.run_until(&context, "every validator at the same height", |s| {
            (0..VALIDATORS).all(|i| s.height(i) >= target)
        })
        .await;
        assert_safe(&sim);
        assert!(
            (0..VALIDATORS).all(|i| sim.view(i) >= views),
            "views reached: {:?}",
            (0..VALIDATORS).map(|i| sim.view(i)).collect::<Vec<_>>()
        );
        load.sent
    })
}

#[test]
fn consensus_runs_through_many_views_under_load_and_faults_without_a_journal_panic() {
    let views = long_run_views();
    let sent = long_run(41, views);
    assert!(
        sent > views,
        "only {sent} transfers sent over {views} views"
    );
}

/// Validator 1 restarts from storage under load and validator 2 is cut
/// off at once: the three left can finalize only with the restarted one,
/// which must verify the blocks its peers already voted to finalize while
/// its finalizer is still catching up. A verifier that refused such a
/// block for a moment (its ancestry walk raced the finalizer) nullified a
/// view the others had voted to finalize: with one validator down, that
/// view could neither finalize nor nullify, and the network stopped.
#[test]
fn a_restarted_validator_completes_a_quorum_at_once_under_load() {
    runner(47).start(|mut context| async move {
        let (mut sim, mut oracle, keys) = launch(&mut context, None, 0).await;
        let mut load = Load::new();
        sim.run_until(&context, "views under load", |s| {
            load.tick(s);
            (0..VALIDATORS).all(|i| s.view(i) >= 50)
        })
        .await;
        sim.crash(1);
        sim.run_until(&context, "views without validator 1", |s| {
            load.tick(s);
            [0, 2, 3].iter().all(|&i| s.view(i) >= 150)
        })
        .await;
        sim.start(&context, &mut oracle, 1, 1).await;
        unlink(&mut oracle, &keys, 2).await;
        let from = sim.height(0);
        sim.run_until_within(
            &context,
            "validators 0, 1 and 3 to finalize",
            Duration::from_secs(120),
            |s| {
                load.tick(s);
                [0, 1, 3].iter().all(|&i| s.height(i) >= from + 50)
            },
        )
        .await;
        assert_safe(&sim);
    });
}

/// The panic `unable to prune journal: BlobMissing` (seen once after
/// ~4,000 views under load): the simplex voter prunes its journal's old
/// views by removing their blobs, and panics when a removal fails. It
/// fails when something else removed the blob first; on disk, a second
/// process wiping or reusing a running node's data directory (the tokio
/// runtime reports any failed unlink as `BlobMissing`). Here a section is
/// removed from under a running validator, as such a process would: the
/// validator panics at its next prune. `glassbox node`, `glassbox dev`,
/// the demo and the benches therefore hold a lock on their data
/// directory and refuse to start, or to wipe it, while another holds it.
#[test]
#[should_panic(expected = "unable to prune journal")]
fn a_journal_section_removed_under_a_running_validator_panics_at_its_next_prune() {
    runner(43).start(|mut context| async move {
        let (sim, _oracle, _keys) = launch(&mut context, None, 0).await;
        let retention = sim.timing.view_retention;
        sim.run_until(&context, "views past the retention", |s| {
            (0..VALIDATORS).all(|i| s.view(i) >= 2 * retention)
        })
        .await;
        let sections = journal_sections(&context, 3).await;
        let oldest = sections.iter().min().copied().expect("a journal section");
        context
            .remove("validator_3-consensus", Some(&oldest.to_be_bytes()))
            .await
            .expect("remove");
        let view = sim.view(0);
        sim.run_until(&context, "the retention to pass the removed view", |s| {
            s.view(0) >= view + 2 * retention
        })
        .await;
    });
}

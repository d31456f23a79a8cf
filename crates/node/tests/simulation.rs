//! Seeded, deterministic simulations of a 4-validator network on
//! Commonware's deterministic runtime and simulated p2p network: safety
//! (one block per height everywhere), identical state roots, liveness with
//! one faulty validator (crashed and restarted, partitioned and healed, or
//! Byzantine), and replay (same seed, same run).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_consensus::Heightable;
use commonware_consensus::marshal;
use commonware_consensus::simplex::elector::Random;
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
use commonware_runtime::{Clock, Handle, Metrics, Runner as _, Spawner, deterministic};
use commonware_utils::ordered::Set;
use glassbox_ledger::{GenesisAccount, GenesisState, Params, SignedTx, State, TxBody};
use glassbox_node::block::Block;
use glassbox_node::chain::Chain;
use glassbox_node::consensus::{Digest, EPOCH, NAMESPACE, PublicKey, Scheme};
use glassbox_node::engine::{Config, Engine, Timing};
use glassbox_node::genesis::genesis_block;
use glassbox_node::mempool::MempoolLimits;
use glassbox_types::SecretKey;
use governor::Quota;

const VALIDATORS: usize = 4;
const USERS: usize = 8;

type Ctx = deterministic::Context;

fn quota() -> Quota {
    Quota::per_second(std::num::NonZeroU32::MAX)
}

fn link() -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: 1.0,
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
}

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
            partition_prefix: format!("validator_{i}"),
            freezer_table_initial_size: 1 << 12,
            me: me.clone(),
            polynomial: scheme.polynomial().clone(),
            share: scheme.share().cloned().expect("signer"),
            participants,
            mailbox_size: 1_024,
            deque_size: 10,
            timing: Timing {
                leader_timeout: Duration::from_millis(500),
                certification_timeout: Duration::from_secs(1),
                nullify_retry: Duration::from_secs(2),
                fetch_timeout: Duration::from_secs(1),
                activity_timeout: 20,
                skip_timeout: 5,
            },
            fetch_concurrent: 4,
            strategy: Sequential,
            chain: chain.clone(),
        };
        let handle = context
            .with_label(&format!("validator_{i}_{incarnation}"))
            .spawn(move |context| async move {
                let engine = Engine::new(context.with_label("engine"), cfg)
                    .await
                    .expect("engine starts");
                let backfill = marshal::resolver::p2p::init(
                    &context.with_label("backfill"),
                    marshal::resolver::p2p::Config {
                        public_key: me.clone(),
                        peer_provider: manager,
                        blocker: control,
                        mailbox_size: 1_024,
                        initial: Duration::from_secs(1),
                        timeout: Duration::from_secs(2),
                        fetch_retry_timeout: Duration::from_millis(100),
                        priority_requests: false,
                        priority_responses: false,
                    },
                    backfill,
                );
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

    /// Runs until `done` holds, observing every 10 ms of simulated time.
    async fn run_until(&self, context: &Ctx, what: &str, mut done: impl FnMut(&Sim) -> bool) {
        for _ in 0..60_000 {
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
        context.with_label("network"),
        simulated::Config {
            max_size: 16 << 20,
            disconnect_on_block: true,
            tracked_peer_sets: Some(1),
        },
    );
    network.start();
    oracle
        .manager()
        .track(0, Set::from_iter_dedup(keys.iter().cloned()))
        .await;
    oracle
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
type Seen = BTreeMap<u64, (Digest, [u8; 32])>;

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
    deterministic::Runner::from(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

/// All four honest; transfers finalize everywhere with equal roots.
fn honest_run(seed: u64) -> (String, Seen, [u8; 32]) {
    runner(seed).start(|mut context| async move {
        let mut sim = Sim::new(&mut context);
        let keys = sim.fixture.participants.clone();
        let mut oracle = network(&context, &keys).await;
        link_all(&mut oracle, &keys, None).await;
        for i in 0..VALIDATORS {
            sim.start(&context, &mut oracle, i, 0).await;
        }
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
        let mut sim = Sim::new(&mut context);
        let keys = sim.fixture.participants.clone();
        let mut oracle = network(&context, &keys).await;
        link_all(&mut oracle, &keys, None).await;
        for i in 0..VALIDATORS {
            sim.start(&context, &mut oracle, i, 0).await;
        }
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
fn a_partitioned_validator_rejoins_after_the_partition_heals() {
    runner(23).start(|mut context| async move {
        let mut sim = Sim::new(&mut context);
        let keys = sim.fixture.participants.clone();
        let mut oracle = network(&context, &keys).await;
        link_all(&mut oracle, &keys, None).await;
        for i in 0..VALIDATORS {
            sim.start(&context, &mut oracle, i, 0).await;
        }
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
        let liar = Equivocator::new(
            context.with_label("equivocator"),
            equivocator::Config {
                scheme: sim.fixture.schemes[byzantine].clone(),
                elector: Random,
                epoch: EPOCH,
                relay: Arc::new(Relay::new()),
                hasher: Sha256::default(),
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

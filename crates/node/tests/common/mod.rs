//! What the node's API tests share: a one-validator chain over a small
//! genesis (funded accounts, staked executors), blocks finalized directly
//! on it, signed transfers and test manifests.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use commonware_consensus::Heightable;
use commonware_consensus::types::{Epoch, Height, Round, View};
use commonware_cryptography::{Digestible, Signer, ed25519, sha256};
use glassbox_ledger::{
    BlockContext, GenesisAccount, GenesisExecutor, GenesisState, Params, SignedTx, State, TxBody,
    TxOutcome,
};
use glassbox_node::api::{Api, ApiLimits, router};
use glassbox_node::chain::Chain;
use glassbox_node::chain::mempool::MempoolLimits;
use glassbox_node::consensus::Context;
use glassbox_node::consensus::block::{Block, randomness};
use glassbox_types::{Manifest, ModelId, PublicKey, SecretKey, SignedManifest};

pub(crate) const GENESIS_TIME: u64 = 1_700_000_000_000;
pub(crate) const FEE: u64 = 100_000;
pub(crate) const BALANCE: u64 = 1_000_000_000;

pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub(crate) fn addr(n: u8) -> PublicKey {
    key(n).public()
}

/// Accounts 1..=3 funded; executors 7, 8 and 9 (funded too).
pub(crate) fn genesis() -> GenesisState {
    GenesisState {
        chain_name: "api-test".into(),
        genesis_time_ms: GENESIS_TIME,
        params: Params {
            min_executor_stake: 1_000_000,
            ..Params::default()
        },
        accounts: [1, 2, 3, 7, 8, 9]
            .into_iter()
            .map(|n| GenesisAccount {
                address: addr(n),
                balance: BALANCE,
            })
            .collect(),
        executors: [7, 8, 9]
            .into_iter()
            .map(|n| GenesisExecutor {
                owner: addr(n),
                stake: 5_000_000,
                capacity: 4,
                endpoint: format!("https://executor-{n}.example.org"),
            })
            .collect(),
    }
}

pub(crate) fn context(view: u64, parent: sha256::Digest) -> Context {
    Context {
        round: Round::new(Epoch::zero(), View::new(view)),
        leader: ed25519::PrivateKey::from_seed(0).public_key(),
        parent: (View::new(view.saturating_sub(1)), parent),
    }
}

pub(crate) struct Node {
    pub(crate) chain: Arc<Chain>,
    pub(crate) app: Router,
}

/// A chain at the genesis block of `genesis` (ready when `ready`: its
/// restart replay done).
pub(crate) fn chain_of(genesis: &GenesisState, ready: bool) -> Arc<Chain> {
    let state = State::genesis(genesis).expect("valid genesis");
    let block = Block::new(
        context(0, sha256::Digest::from([0u8; 32])),
        sha256::Digest::from([0u8; 32]),
        Height::zero(),
        genesis.genesis_time_ms,
        Vec::new(),
        state.root(),
    );
    let chain = Arc::new(Chain::new(block, state, MempoolLimits::default()));
    if ready {
        chain.set_ready();
    }
    chain
}

pub(crate) fn node_with(limits: ApiLimits, ready: bool) -> Node {
    let chain = chain_of(&genesis(), ready);
    let app = router(Api {
        chain: chain.clone(),
        limits,
        genesis: None,
        snapshots: None,
        archive: None,
    });
    Node { chain, app }
}

pub(crate) fn node() -> Node {
    node_with(ApiLimits::default(), true)
}

pub(crate) fn transfer(from: u8, nonce: u64, to: u8, amount: u64) -> SignedTx {
    let chain_id = State::genesis(&genesis()).expect("genesis").chain_id();
    SignedTx::sign(
        &chain_id,
        &key(from),
        nonce,
        FEE,
        TxBody::Transfer {
            to: addr(to),
            amount,
        },
    )
    .expect("sign")
}

/// The next block on the finalized tip with `txs`, its state root computed
/// by the ledger, and the transactions' outcomes.
pub(crate) fn next_block_with_outcomes(
    chain: &Chain,
    txs: Vec<SignedTx>,
) -> (Block, Vec<TxOutcome>) {
    let f = chain.finalized();
    let height = f.block.height().get() + 1;
    let timestamp_ms = f.block.header().timestamp_ms + 1_000;
    let (state, outcomes) = f
        .state
        .apply_block(
            BlockContext {
                // Seedless blocks (finalized directly, never verified).
                randomness: randomness(None, &f.block.digest()),
                height,
                timestamp_ms,
            },
            &txs,
        )
        .expect("block applies");
    let block = Block::new(
        context(height, f.block.digest()),
        f.block.digest(),
        Height::new(height),
        timestamp_ms,
        txs,
        state.root(),
    );
    (block, outcomes)
}

/// The next block on the finalized tip with `txs`.
pub(crate) fn next_block(chain: &Chain, txs: Vec<SignedTx>) -> Block {
    next_block_with_outcomes(chain, txs).0
}

pub(crate) fn finalize(chain: &Chain, txs: Vec<SignedTx>) -> Block {
    let block = next_block(chain, txs);
    chain.finalize(&block).expect("finalizes");
    block
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A minimal manifest (docs/manifest.md) for `model` as `name@version`.
pub(crate) fn manifest(model: &[u8], name: &str, version: &str, by: &SecretKey) -> SignedManifest {
    let mut b = Vec::new();
    b.extend_from_slice(b"GBMF");
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(ModelId::of(model).as_bytes());
    b.extend_from_slice(&(model.len() as u64).to_le_bytes());
    put_str(&mut b, name);
    put_str(&mut b, version);
    put_str(&mut b, "a test model");
    b.push(0); // no license
    b.extend_from_slice(&by.public().to_bytes());
    b.extend_from_slice(&1_700_000_000u64.to_le_bytes());
    for _ in 0..4 {
        b.extend_from_slice(&0u32.to_le_bytes()); // parents, sources, inputs, outputs
    }
    b.extend_from_slice(&17u32.to_le_bytes());
    b.extend_from_slice(&1000u64.to_le_bytes());
    b.extend_from_slice(&2000u64.to_le_bytes());
    put_str(&mut b, "0.1.0");
    let m = Manifest::decode(&b).expect("test manifest decodes");
    SignedManifest::sign(m, by).expect("sign manifest")
}

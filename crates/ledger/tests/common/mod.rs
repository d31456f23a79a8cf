//! Shared fixtures: seeded keys, a genesis, signing and manifest helpers.

#![allow(dead_code)]

use glassbox_ledger::{
    BlockContext, GenesisAccount, GenesisExecutor, GenesisState, Params, SignedTx, State, TxBody,
    TxOutcome,
};
use glassbox_types::{Manifest, ModelId, PublicKey, SecretKey, SignedManifest};

pub(crate) const GENESIS_TIME: u64 = 1_700_000_000_000;
pub(crate) const FEE: u64 = 100_000;

/// The key with seed `[n; 32]`.
pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub(crate) fn addr(n: u8) -> PublicKey {
    key(n).public()
}

pub(crate) fn test_params() -> Params {
    Params {
        min_fee: 1_000,
        fee_per_byte: 10,
        min_executor_stake: 1_000_000,
        unbonding_blocks: 3,
        max_tx_bytes: 16 << 10,
        max_block_txs: 1_000,
        max_block_bytes: 1 << 20,
        max_job_io_bytes: 8 << 10,
        commit_window_blocks: 5,
        reveal_window_blocks: 5,
        miss_penalty: 100_000,
        ..Params::default()
    }
}

/// Accounts 1..=4 and 9 with 10^9 each; executor 9 at genesis.
pub(crate) fn genesis() -> GenesisState {
    GenesisState {
        chain_name: "glassbox-test".into(),
        genesis_time_ms: GENESIS_TIME,
        params: test_params(),
        accounts: [1, 2, 3, 4, 9]
            .into_iter()
            .map(|n| GenesisAccount {
                address: addr(n),
                balance: 1_000_000_000,
            })
            .collect(),
        executors: vec![GenesisExecutor {
            owner: addr(9),
            stake: 5_000_000,
            capacity: 8,
            endpoint: "https://executor-9.example.org".into(),
        }],
    }
}

pub(crate) fn genesis_state() -> State {
    State::genesis(&genesis()).expect("valid genesis")
}

/// A signed transaction from key `n` with the state's next nonce + `ahead`.
pub(crate) fn tx_ahead(state: &State, n: u8, ahead: u64, body: TxBody) -> SignedTx {
    let nonce = state.account(&addr(n)).map_or(0, |a| a.nonce) + ahead;
    SignedTx::sign(&state.chain_id(), &key(n), nonce, FEE, body).expect("sign")
}

/// A signed transaction from key `n` with its next nonce in `state`.
pub(crate) fn tx(state: &State, n: u8, body: TxBody) -> SignedTx {
    tx_ahead(state, n, 0, body)
}

pub(crate) fn ctx(state: &State) -> BlockContext {
    BlockContext {
        randomness: [0; 32],
        height: state.height() + 1,
        timestamp_ms: state.timestamp_ms() + 1_000,
    }
}

/// Applies `txs` as the next block; panics on a block error. Every state
/// it returns has been rebuilt from its snapshot and found equal.
pub(crate) fn apply(state: &State, txs: &[SignedTx]) -> (State, Vec<TxOutcome>) {
    let (next, outcomes) = state
        .apply_block(ctx(state), txs)
        .unwrap_or_else(|e| panic!("block rejected: {e}"));
    assert_restores(&next);
    (next, outcomes)
}

/// Panics unless `state` rebuilt from its snapshot is `state` (every
/// derived index included: docs/ledger.md, "Snapshots").
pub(crate) fn assert_restores(state: &State) {
    let restored = State::from_snapshot(&state.snapshot(), &state.root())
        .unwrap_or_else(|e| panic!("snapshot at height {}: {e}", state.height()));
    assert!(
        restored == *state,
        "snapshot at height {} restores another state:\n{restored:?}\n{state:?}",
        state.height()
    );
}

/// Applies one transaction as a block; returns the new state and its
/// outcome.
pub(crate) fn apply_one(state: &State, tx: SignedTx) -> (State, TxOutcome) {
    let (s, mut o) = apply(state, &[tx]);
    let outcome = o.pop().expect("one outcome");
    (s, outcome)
}

/// Empty blocks until `height`.
pub(crate) fn advance_to(mut state: State, height: u64) -> State {
    while state.height() < height {
        state = apply(&state, &[]).0;
    }
    state
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A minimal manifest (docs/manifest.md encoding, decoded by
/// glassbox-types) for `model` bytes, `name@version`, published by `by`.
pub(crate) fn manifest(model: &[u8], name: &str, version: &str, by: &SecretKey) -> Manifest {
    manifest_with(model, name, version, "a test model", by)
}

/// [`manifest`] with a description.
pub(crate) fn manifest_with(
    model: &[u8],
    name: &str,
    version: &str,
    description: &str,
    by: &SecretKey,
) -> Manifest {
    let mut b = Vec::new();
    b.extend_from_slice(b"GBMF");
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(ModelId::of(model).as_bytes());
    b.extend_from_slice(&(model.len() as u64).to_le_bytes());
    put_str(&mut b, name);
    put_str(&mut b, version);
    put_str(&mut b, description);
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
    Manifest::decode(&b).expect("test manifest decodes")
}

pub(crate) fn signed_manifest(
    model: &[u8],
    name: &str,
    version: &str,
    by: &SecretKey,
) -> SignedManifest {
    SignedManifest::sign(manifest(model, name, version, by), by).expect("sign manifest")
}

pub(crate) fn publish(model: &[u8], name: &str, version: &str, by: &SecretKey) -> TxBody {
    TxBody::PublishModel {
        manifest: Box::new(signed_manifest(model, name, version, by)),
    }
}

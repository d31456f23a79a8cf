//! Throughput of block application with simple transfers:
//! `cargo bench -p glassbox-ledger --bench apply -- [ACCOUNTS] [BLOCK_TXS] [BLOCKS]`.
//!
//! Prints the time per transaction of decoding, of signature checks alone, of
//! `apply_block` (admission including the signature, fee, nonce, body) and
//! of computing the new root, on one thread.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use glassbox_ledger::{
    BlockContext, GenesisAccount, GenesisState, Params, SignedTx, State, TxBody,
};
use glassbox_types::SecretKey;

fn seed(i: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s[8] = 0xAB;
    s
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(100_000);
    let block_txs = args.get(1).copied().unwrap_or(5_000);
    let blocks = args.get(2).copied().unwrap_or(4);

    let t = Instant::now();
    let keys: Vec<SecretKey> = (0..accounts)
        .map(|i| SecretKey::from_seed(&seed(i)))
        .collect();
    let params = Params {
        max_block_txs: 100_000,
        max_block_bytes: 64 << 20,
        ..Params::default()
    };
    let genesis = GenesisState {
        chain_name: "bench".into(),
        genesis_time_ms: 0,
        params,
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.public(),
                balance: 1_000_000_000_000,
            })
            .collect(),
        executors: vec![],
    };
    let mut state = State::genesis(&genesis).expect("genesis");
    let root = state.root();
    println!(
        "genesis: {accounts} accounts in {:.2?} (root {})",
        t.elapsed(),
        root.to_hex()
    );

    // Deterministic pseudo-random senders and recipients.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut nonces = vec![0u64; keys.len()];
    let chain = state.chain_id();
    for b in 0..blocks {
        let mut txs = Vec::with_capacity(block_txs as usize);
        let mut used = std::collections::BTreeSet::new();
        while (txs.len() as u64) < block_txs {
            let from = (next() % accounts) as usize;
            if !used.insert(from) {
                continue; // one transaction per sender per block, for simplicity
            }
            let to = (next() % accounts) as usize;
            let tx = SignedTx::sign(
                &chain,
                &keys[from],
                nonces[from],
                10_000,
                TxBody::Transfer {
                    to: keys[to].public(),
                    amount: 1 + next() % 1000,
                },
            )
            .expect("sign");
            nonces[from] += 1;
            txs.push(tx);
        }
        let t = Instant::now();
        for tx in &txs {
            SignedTx::decode(tx.encoded()).expect("decodes");
        }
        let decode = t.elapsed();
        let t = Instant::now();
        for tx in &txs {
            tx.verify_signature(&chain).expect("valid");
        }
        let verify = t.elapsed();
        let ctx = BlockContext {
            randomness: [0; 32],
            height: state.height() + 1,
            timestamp_ms: state.timestamp_ms() + 1000,
        };
        let t = Instant::now();
        let (next_state, outcomes) = state.apply_block(ctx, &txs).expect("block");
        let apply = t.elapsed();
        let t = Instant::now();
        let root = next_state.root();
        let hashing = t.elapsed();
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / block_txs as f64;
        println!(
            "block {}: {block_txs} transfers: decode {:.1} µs/tx, signatures alone {:.1} µs/tx, apply_block {:.1} µs/tx, root {:.1} µs/tx → {:.0} tx/s (root {})",
            b + 1,
            per(decode),
            per(verify),
            per(apply),
            per(hashing),
            block_txs as f64 / (apply + hashing).as_secs_f64(),
            &root.to_hex()[..16],
        );
        state = next_state;
    }
}

//! Golden values: a fixed genesis, fixed seeded keys and a fixed sequence
//! of blocks give exactly these chain id and state roots on every machine.
//! A change to any encoding, hashing or rule changes them; update them only
//! with a deliberate format change (and docs/ledger.md).

mod common;

use common::*;
use glassbox_ledger::{State, TxBody};

const GOLDEN_CHAIN_ID: &str = "637edf8ceb2bbc59334eb2bd2af8fbcedd220fe8561e4694f8a6eb95a401ef27";
const GOLDEN_GENESIS_ROOT: &str =
    "e73e7fb242e434a96ac3d7841580db2e0196e348dcf32c2f484cf107b0999934";
const GOLDEN_FINAL_ROOT: &str = "5b18ef626cc74bd2fbe7f651677469ec0025bc4c48b9a26f92e63fa486acd17a";

fn transfer(to: u8, amount: u64) -> TxBody {
    TxBody::Transfer {
        to: addr(to),
        amount,
    }
}

/// Applies `blocks` (each a list of (sender, body)) from `s`; returns the
/// final state and each block's outcome codes ("ok" or the error code).
fn run(mut s: State, blocks: Vec<Vec<(u8, TxBody)>>) -> (State, Vec<Vec<String>>) {
    let mut codes = Vec::new();
    for block in blocks {
        let mut pending: Vec<u8> = Vec::new();
        let txs: Vec<_> = block
            .into_iter()
            .map(|(n, body)| {
                let ahead = pending.iter().filter(|&&m| m == n).count() as u64;
                pending.push(n);
                tx_ahead(&s, n, ahead, body)
            })
            .collect();
        let (next, outcomes) = apply(&s, &txs);
        codes.push(
            outcomes
                .iter()
                .map(|o| match &o.result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.code().to_string(),
                })
                .collect(),
        );
        s = next;
    }
    (s, codes)
}

fn blocks() -> Vec<Vec<(u8, TxBody)>> {
    vec![
        // 1
        vec![
            (1, transfer(2, 1_000)),
            (
                2,
                TxBody::RegisterExecutor {
                    stake: 3_000_000,
                    capacity: 4,
                    endpoint: "https://executor-2.example.org".into(),
                },
            ),
            (
                3,
                publish(b"golden-model-1", "org/golden", "1.0.0", &key(3)),
            ),
            (4, transfer(1, 0)),
            (1, transfer(5, 77)),
        ],
        // 2
        vec![
            (9, TxBody::Unbond { amount: 2_000_000 }),
            (
                2,
                TxBody::UpdateExecutor {
                    capacity: 16,
                    endpoint: "http://10.1.2.3:8080".into(),
                },
            ),
            (
                1,
                publish(b"golden-model-2", "org/golden", "1.1.0", &key(3)),
            ),
            (
                3,
                publish(b"golden-model-3", "org/golden", "1.1.0", &key(3)),
            ),
            (
                4,
                publish(b"golden-model-4", "org/golden", "2.0.0", &key(4)),
            ),
        ],
        // 3
        vec![],
        // 4
        vec![(9, TxBody::Withdraw), (2, TxBody::AddStake { amount: 500 })],
        // 5
        vec![(9, TxBody::Withdraw), (2, TxBody::Deregister)],
        // 6
        vec![(4, transfer(1, 999_999)), (4, transfer(3, 1))],
    ]
}

#[test]
fn golden_roots() {
    let g = genesis();
    let s0 = State::genesis(&g).unwrap();
    let supply = s0.total_supply().unwrap();
    let (s, codes) = run(s0.clone(), blocks());
    assert_eq!(
        codes,
        vec![
            vec!["ok", "ok", "ok", "zero_amount", "ok"],
            vec!["ok", "ok", "ok", "version_exists", "name_taken"],
            vec![],
            vec!["nothing_to_withdraw", "ok"],
            vec!["ok", "ok"],
            vec!["ok", "ok"],
        ]
    );
    assert_eq!(s.height(), 6);
    assert_eq!(s.total_supply(), Some(supply));

    let chain_id = s0.chain_id().to_hex();
    let genesis_root = s0.root().to_hex();
    let final_root = s.root().to_hex();
    let report =
        format!("chain id {chain_id}\ngenesis root {genesis_root}\nfinal root {final_root}");
    assert_eq!(chain_id, GOLDEN_CHAIN_ID, "{report}");
    assert_eq!(genesis_root, GOLDEN_GENESIS_ROOT, "{report}");
    assert_eq!(final_root, GOLDEN_FINAL_ROOT, "{report}");

    // Replaying gives the same root.
    let (again, _) = run(s0, blocks());
    assert_eq!(again.root().to_hex(), final_root);
}

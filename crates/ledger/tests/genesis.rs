//! The genesis: JSON form, validation errors, chain id, height-0 state.

mod common;

use common::*;
use glassbox_ledger::{
    Account, GenesisError, GenesisExecutor, GenesisState, Params, State, StateKey, limits,
    verify_proof,
};

#[test]
fn json_form_uses_key_text_and_default_params() {
    let j = format!(
        r#"{{
            "chain_name": "glassbox-dev",
            "genesis_time_ms": 5,
            "accounts": [{{"address": "{}", "balance": 10}}],
            "executors": [{{"owner": "{}", "stake": 1000000000, "capacity": 2,
                            "endpoint": "http://127.0.0.1:9000"}}]
        }}"#,
        addr(1),
        addr(2)
    );
    assert!(j.contains("ed25519:"));
    let g: GenesisState = serde_json::from_str(&j).unwrap();
    assert_eq!(g.params, Params::default());
    assert_eq!(g.accounts[0].address, addr(1));
    let s = State::genesis(&g).unwrap();
    assert_eq!(s.height(), 0);
    assert_eq!(s.timestamp_ms(), 5);
    assert_eq!(s.chain().chain_name, "glassbox-dev");
    assert_eq!(
        s.account(&addr(1)),
        Some(Account {
            balance: 10,
            nonce: 0
        })
    );
    assert_eq!(s.executor(&addr(2)).unwrap().capacity, 2);
    assert_eq!(s.total_supply(), Some(1_000_000_010));
    // Round trip through JSON.
    let back: GenesisState = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(back, g);
    // Unknown fields and bad key text are refused.
    assert!(serde_json::from_str::<GenesisState>(&j.replacen('{', "{\"extra\": 1,", 1)).is_err());
    assert!(
        serde_json::from_str::<GenesisState>(&j.replace(&addr(1).to_string(), "ed25519:00"))
            .is_err()
    );
}

#[test]
fn chain_id_commits_to_every_field() {
    let g = genesis();
    let id = g.chain_id().unwrap();
    assert_eq!(State::genesis(&g).unwrap().chain_id(), id);
    let mut variants = Vec::new();
    let mut v = g.clone();
    v.chain_name.push('x');
    variants.push(v);
    let mut v = g.clone();
    v.genesis_time_ms += 1;
    variants.push(v);
    let mut v = g.clone();
    v.params.min_fee += 1;
    variants.push(v);
    // Each dispute parameter (encoded only when not at its default).
    for f in [
        |p: &mut Params| p.dispute_round_blocks += 1,
        |p: &mut Params| p.dispute_reward_bps += 1,
        |p: &mut Params| p.challenge_window_blocks += 1,
        |p: &mut Params| p.challenge_bond += 1,
        |p: &mut Params| p.audit_rate_bps += 1,
        |p: &mut Params| p.max_selection_share_bps += 1,
    ] {
        let mut v = g.clone();
        f(&mut v.params);
        variants.push(v);
    }
    let mut v = g.clone();
    v.accounts[0].balance += 1;
    variants.push(v);
    let mut v = g.clone();
    v.accounts.swap(0, 1);
    variants.push(v);
    let mut v = g.clone();
    v.executors[0].endpoint.push('x');
    variants.push(v);
    for v in variants {
        assert_ne!(v.chain_id().unwrap(), id, "{v:?}");
    }
}

#[test]
fn genesis_records_are_provable() {
    let s = genesis_state();
    let root = s.root();
    for n in [1, 9] {
        let (b, p) = s.prove_account(&addr(n));
        let k = StateKey::Account(addr(n)).to_bytes();
        assert_eq!(verify_proof(&root, &k, b.as_deref(), &p), Ok(()));
        assert_eq!(Account::decode(&b.unwrap()).unwrap().balance, 1_000_000_000);
    }
    let (b, p) = s.prove_params();
    assert_eq!(
        verify_proof(&root, &StateKey::Params.to_bytes(), b.as_deref(), &p),
        Ok(())
    );
    assert_eq!(Params::decode(&b.unwrap()).unwrap(), test_params());
}

fn err(g: &GenesisState) -> GenesisError {
    let e = State::genesis(g).unwrap_err();
    assert_eq!(g.validate().unwrap_err(), e);
    e
}

#[test]
fn validation_errors() {
    let g = genesis();
    assert_eq!(g.validate(), Ok(()));

    for name in ["", "Caps", "-lead", "a b", &"x".repeat(65)] {
        let mut v = g.clone();
        v.chain_name = name.into();
        assert!(matches!(err(&v), GenesisError::ChainName { .. }), "{name}");
    }

    let mut v = g.clone();
    v.accounts.push(v.accounts[1].clone());
    let e = err(&v);
    assert!(
        matches!(e, GenesisError::DuplicateAccount { index: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("accounts[5]"), "{e}");

    let mut v = g.clone();
    v.executors.push(v.executors[0].clone());
    assert!(matches!(
        err(&v),
        GenesisError::DuplicateExecutor { index: 1, .. }
    ));

    let exec = |stake, capacity, endpoint: &str| {
        let mut v = g.clone();
        v.executors.push(GenesisExecutor {
            owner: addr(30),
            stake,
            capacity,
            endpoint: endpoint.into(),
        });
        err(&v)
    };
    let e = exec(10, 1, "http://a");
    assert!(e.to_string().contains("min_executor_stake"), "{e}");
    let e = exec(1_000_000, 0, "http://a");
    assert!(e.to_string().contains("capacity 0"), "{e}");
    let e = exec(1_000_000, 1, "gopher://a");
    assert!(e.to_string().contains("endpoint"), "{e}");
    assert!(e.to_string().contains("executors[1]"), "{e}");

    let mut v = g.clone();
    v.accounts[0].balance = u64::MAX;
    assert!(matches!(err(&v), GenesisError::SupplyOverflow { .. }));

    let mut v = g.clone();
    v.params.max_tx_bytes = limits::HARD_MAX_TX_BYTES + 1;
    let e = err(&v);
    assert!(
        matches!(
            e,
            GenesisError::Params {
                field: "max_tx_bytes",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("params.max_tx_bytes"), "{e}");

    let mut v = g.clone();
    v.params.max_block_txs = 0;
    assert!(matches!(
        err(&v),
        GenesisError::Params {
            field: "max_block_txs",
            ..
        }
    ));
    let mut v = g;
    v.params.unbonding_blocks = limits::MAX_UNBONDING_BLOCKS + 1;
    assert!(matches!(
        err(&v),
        GenesisError::Params {
            field: "unbonding_blocks",
            ..
        }
    ));
}

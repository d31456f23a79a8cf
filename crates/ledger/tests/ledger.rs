//! Block application: admission vs execution, fees, determinism,
//! persistence, executors and unbonding, models and name ownership, proofs.

mod common;

use std::collections::BTreeMap;

use common::*;
use glassbox_ledger::{
    Account, AdmissionError, BlockContext, BlockError, Event, ExecutionError, Executor,
    GenesisState, Head, ModelRecord, Params, Proof, SignedTx, State, StateKey, TxBody, TxError,
    decode_model_version, decode_name_owner, limits, verify_proof,
};
use glassbox_primitives::StateRoot;
use glassbox_types::{ModelId, SignedManifest};

fn transfer(to: u8, amount: u64) -> TxBody {
    TxBody::Transfer {
        to: addr(to),
        amount,
    }
}

fn register(stake: u64) -> TxBody {
    TxBody::RegisterExecutor {
        stake,
        capacity: 4,
        endpoint: "https://exec.example.org/blobs".into(),
    }
}

fn balance(s: &State, n: u8) -> u64 {
    s.account(&addr(n)).map_or(0, |a| a.balance)
}

fn nonce(s: &State, n: u8) -> u64 {
    s.account(&addr(n)).map_or(0, |a| a.nonce)
}

fn records(s: &State) -> BTreeMap<Vec<u8>, Vec<u8>> {
    s.smt()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// `after` differs from `before` only by the sender's fee and nonce, the
/// fee pool and the head.
fn assert_only_fee_and_nonce(before: &State, after: &State, sender: u8, fee: u64) {
    let a = before.account(&addr(sender)).unwrap();
    assert_eq!(
        after.account(&addr(sender)),
        Some(Account {
            balance: a.balance - fee,
            nonce: a.nonce + 1
        })
    );
    assert_eq!(after.fee_pool(), before.fee_pool() + fee);
    let skip = [
        StateKey::Account(addr(sender)).to_bytes(),
        StateKey::FeePool.to_bytes(),
        StateKey::Head.to_bytes(),
    ];
    let strip = |s: &State| {
        let mut r = records(s);
        for k in &skip {
            r.remove(k);
        }
        r
    };
    assert_eq!(strip(before), strip(after), "other records changed");
    assert_eq!(
        before.executors().collect::<Vec<_>>(),
        after.executors().collect::<Vec<_>>()
    );
    assert_eq!(
        before.models().collect::<Vec<_>>(),
        after.models().collect::<Vec<_>>()
    );
}

#[test]
fn transfer_charges_fee_and_moves_funds() {
    let s0 = genesis_state();
    let supply = s0.total_supply().unwrap();
    let t = tx(&s0, 1, transfer(7, 12_345));
    let (s1, o) = apply_one(&s0, t.clone());
    assert_eq!(
        o.result,
        Ok(vec![Event::Transferred {
            from: addr(1),
            to: addr(7),
            amount: 12_345
        }])
    );
    assert_eq!(o.tx_hash, t.hash());
    assert_eq!(balance(&s1, 1), 1_000_000_000 - FEE - 12_345);
    assert_eq!(nonce(&s1, 1), 1);
    assert_eq!(
        s1.account(&addr(7)),
        Some(Account {
            balance: 12_345,
            nonce: 0
        })
    );
    assert_eq!(s1.fee_pool(), FEE);
    assert_eq!(s1.height(), 1);
    assert_eq!(s1.total_supply(), Some(supply));
    // A transfer to oneself costs only the fee.
    let (s2, o) = apply_one(&s1, tx(&s1, 1, transfer(1, 5)));
    assert!(o.result.is_ok());
    assert_eq!(balance(&s2, 1), balance(&s1, 1) - FEE);
}

#[test]
fn old_state_is_unchanged_and_application_is_deterministic() {
    let s0 = genesis_state();
    let root0 = s0.root();
    let records0 = records(&s0);
    let block = vec![
        tx(&s0, 1, transfer(2, 10)),
        tx(&s0, 2, register(2_000_000)),
        tx(&s0, 3, publish(b"m1", "org/m", "1.0.0", &key(3))),
    ];
    let c = ctx(&s0);
    let (a, oa) = s0.apply_block(c, &block).unwrap();
    let (b, ob) = s0.clone().apply_block(c, &block).unwrap();
    assert_eq!(a.root(), b.root());
    assert_eq!(oa, ob);
    assert_eq!(s0.root(), root0, "the parent state is untouched");
    assert_eq!(records(&s0), records0);
    assert_eq!(s0.height(), 0);
    assert!(s0.executor(&addr(2)).is_none());
    assert_ne!(a.root(), root0);
    // A rejected block leaves it untouched too.
    let mut bad = block.clone();
    bad.push(tx(&s0, 1, transfer(2, 10))); // reused nonce
    assert!(s0.apply_block(c, &bad).is_err());
    assert_eq!(s0.root(), root0);
    // Same root when the state's records are rebuilt in another order.
    let mut fresh = glassbox_ledger::smt::Smt::new();
    for (k, v) in records(&a).iter().rev() {
        fresh.insert(k, v).unwrap();
    }
    assert_eq!(fresh.root(), *a.root().as_bytes());
    // And the next block on either copy agrees.
    let next = vec![tx(&a, 1, transfer(3, 1))];
    assert_eq!(
        a.apply_block(ctx(&a), &next).unwrap().0.root(),
        b.apply_block(ctx(&b), &next).unwrap().0.root()
    );
}

#[test]
fn block_level_checks() {
    let s0 = genesis_state();
    let t = tx(&s0, 1, transfer(2, 1));
    let wrong = |height, timestamp_ms| {
        s0.apply_block(
            BlockContext {
                randomness: [0; 32],
                height,
                timestamp_ms,
            },
            std::slice::from_ref(&t),
        )
        .unwrap_err()
    };
    assert_eq!(
        wrong(2, GENESIS_TIME),
        BlockError::WrongHeight {
            expected: 1,
            got: 2
        }
    );
    assert!(matches!(
        wrong(0, GENESIS_TIME),
        BlockError::WrongHeight { .. }
    ));
    assert_eq!(
        wrong(1, GENESIS_TIME - 1),
        BlockError::TimestampDecreased {
            previous: GENESIS_TIME,
            got: GENESIS_TIME - 1
        }
    );
    // An equal timestamp is fine.
    assert!(
        s0.apply_block(
            BlockContext {
                randomness: [0; 32],
                height: 1,
                timestamp_ms: GENESIS_TIME
            },
            &[]
        )
        .is_ok()
    );

    let mut g = genesis();
    g.params.max_block_txs = 2;
    g.params.max_tx_bytes = 1024;
    g.params.max_job_io_bytes = 512;
    g.params.max_block_bytes = 1024;
    let s = State::genesis(&g).unwrap();
    let three: Vec<_> = (0..3).map(|i| tx_ahead(&s, 1, i, transfer(2, 1))).collect();
    assert_eq!(
        s.apply_block(ctx(&s), &three).unwrap_err(),
        BlockError::TooManyTxs { count: 3, max: 2 }
    );
    assert!(s.apply_block(ctx(&s), &three[..2]).is_ok());
    let desc = "d".repeat(600);
    let big = |n: u8, nonce_ahead| {
        let m = SignedManifest::sign(
            manifest_with(&[n], "org/x", &format!("1.0.{n}"), &desc, &key(n)),
            &key(n),
        )
        .unwrap();
        tx_ahead(
            &s,
            n,
            nonce_ahead,
            TxBody::PublishModel {
                manifest: Box::new(m),
            },
        )
    };
    let pair = [big(1, 0), big(2, 0)];
    assert!(pair[0].len() <= 1024 && pair[0].len() > 512);
    assert!(matches!(
        s.apply_block(ctx(&s), &pair).unwrap_err(),
        BlockError::TooManyBytes { max: 1024, .. }
    ));
}

/// Every admission failure makes the whole block invalid, naming the
/// transaction; `check_tx` refuses the same transactions.
#[test]
fn admission_failures_invalidate_the_block() {
    let s0 = genesis_state();
    let chain = s0.chain_id();
    let good = tx(&s0, 2, transfer(1, 1));
    type Check = fn(&TxError) -> bool;
    let mut cases: Vec<(&str, SignedTx, Check)> = Vec::new();

    let t = tx(&s0, 1, transfer(2, 1));
    let mut sig = *t.signature().as_bytes();
    sig[10] ^= 1;
    let bad_sig = SignedTx::from_parts(
        *t.sender(),
        t.nonce(),
        t.fee(),
        t.body().clone(),
        glassbox_types::Signature::from_bytes(sig),
    )
    .unwrap();
    cases.push(("bad signature", bad_sig, |e| {
        matches!(e, TxError::Admission(AdmissionError::BadSignature { .. }))
    }));
    let mut other_chain = chain.to_bytes();
    other_chain[0] ^= 1;
    let other_chain = glassbox_primitives::ChainId::from_bytes(other_chain);
    let wrong_chain = SignedTx::sign(&other_chain, &key(1), 0, FEE, transfer(2, 1)).unwrap();
    cases.push(("wrong chain", wrong_chain, |e| {
        matches!(e, TxError::Admission(AdmissionError::BadSignature { .. }))
    }));
    // Another key's signature over the same fields.
    let stolen = SignedTx::from_parts(
        addr(1),
        0,
        FEE,
        transfer(2, 1),
        *SignedTx::sign(&chain, &key(3), 0, FEE, transfer(2, 1))
            .unwrap()
            .signature(),
    )
    .unwrap();
    cases.push(("another key's signature", stolen, |e| {
        matches!(e, TxError::Admission(AdmissionError::BadSignature { .. }))
    }));
    let low_fee = SignedTx::sign(&chain, &key(1), 0, 1_500, transfer(2, 1)).unwrap();
    cases.push(("fee below minimum", low_fee, |e| {
        matches!(
            e,
            TxError::Admission(AdmissionError::FeeTooLow { fee: 1_500, .. })
        )
    }));
    let unknown = SignedTx::sign(&chain, &key(50), 0, FEE, transfer(2, 1)).unwrap();
    cases.push(("unknown sender", unknown, |e| {
        matches!(e, TxError::Admission(AdmissionError::UnknownSender { .. }))
    }));
    let broke = SignedTx::sign(&chain, &key(1), 0, 2_000_000_000, transfer(2, 1)).unwrap();
    cases.push(("balance below fee", broke, |e| {
        matches!(
            e,
            TxError::Admission(AdmissionError::InsufficientFeeBalance {
                fee: 2_000_000_000,
                ..
            })
        )
    }));
    let big_desc = "x".repeat(4000);
    // The test genesis allows 16 KiB: build a larger transaction.
    let huge = SignedTx::sign(
        &chain,
        &key(1),
        0,
        FEE,
        TxBody::PublishModel {
            manifest: Box::new(
                SignedManifest::sign(
                    {
                        let mut m = manifest_with(b"h", "org/h", "1.0.0", &big_desc, &key(1));
                        m.sources = (0..8)
                            .map(|i| glassbox_types::Source {
                                hash: glassbox_types::Hash::of(&[i]),
                                uri: format!("https://example.org/{}", "u".repeat(1500)),
                            })
                            .collect();
                        m
                    },
                    &key(1),
                )
                .unwrap(),
            ),
        },
    )
    .unwrap();
    assert!(huge.len() > 16 << 10);
    cases.push(("too large", huge, |e| {
        matches!(
            e,
            TxError::Admission(AdmissionError::TxTooLarge { max: 16384, .. })
        )
    }));

    for (what, bad, check) in &cases {
        let e = s0.check_tx(bad).unwrap_err();
        assert!(check(&e), "{what}: check_tx gave {e}");
        assert!(e.is_admission(), "{what}");
        let block = [good.clone(), bad.clone()];
        match s0.apply_block(ctx(&s0), &block) {
            Err(BlockError::InvalidTx {
                index: 1,
                tx_hash,
                error,
            }) => {
                assert_eq!(tx_hash, bad.hash(), "{what}");
                assert!(check(&error), "{what}: {error}");
                let msg = BlockError::InvalidTx {
                    index: 1,
                    tx_hash,
                    error,
                }
                .to_string();
                assert!(msg.contains("transaction 1"), "{msg}");
            }
            other => panic!("{what}: expected an invalid block, got {other:?}"),
        }
    }

    // Nonces: the mempool takes future nonces, a block only the next one.
    let ahead = tx_ahead(&s0, 1, 1, transfer(2, 1));
    assert_eq!(s0.check_tx(&ahead), Ok(()));
    assert!(matches!(
        s0.apply_block(ctx(&s0), std::slice::from_ref(&ahead)),
        Err(BlockError::InvalidTx {
            index: 0,
            error: TxError::Admission(AdmissionError::NonceMismatch {
                expected: 0,
                got: 1
            }),
            ..
        })
    ));
    let first = tx(&s0, 1, transfer(2, 1));
    let (s1, _) = apply_one(&s0, first.clone());
    assert_eq!(
        s1.check_tx(&first),
        Err(TxError::Admission(AdmissionError::NonceTooLow {
            expected: 1,
            got: 0
        }))
    );
    assert!(matches!(
        s1.apply_block(ctx(&s1), &[first]),
        Err(BlockError::InvalidTx {
            error: TxError::Admission(AdmissionError::NonceMismatch { .. }),
            ..
        })
    ));
    // Two transactions of one sender in one block: in nonce order only.
    assert!(
        s0.apply_block(ctx(&s0), &[tx(&s0, 1, transfer(2, 1)), ahead.clone()])
            .is_ok()
    );
    assert!(
        s0.apply_block(ctx(&s0), &[ahead, tx(&s0, 1, transfer(2, 1))])
            .is_err()
    );
    // A balance spent earlier in the block cannot pay a later fee.
    let (s, _) = apply_one(&s0, tx(&s0, 1, transfer(20, FEE + 10)));
    let spend = SignedTx::sign(&s.chain_id(), &key(20), 0, FEE, transfer(1, 10)).unwrap();
    let again = SignedTx::sign(&s.chain_id(), &key(20), 1, FEE, transfer(1, 1)).unwrap();
    assert_eq!(
        s.check_tx(&again.clone()).err(),
        None,
        "mempool sees the balance"
    );
    assert!(matches!(
        s.apply_block(ctx(&s), &[spend, again]),
        Err(BlockError::InvalidTx {
            index: 1,
            error: TxError::Admission(AdmissionError::InsufficientFeeBalance { balance: 0, .. }),
            ..
        })
    ));
}

/// A state with executor 1 (stake 2M), model org/a@1.0.0 by 2, for the
/// execution-failure cases.
fn prepared() -> State {
    let s0 = genesis_state();
    let (s1, o) = apply(
        &s0,
        &[
            tx(&s0, 1, register(2_000_000)),
            tx(&s0, 2, publish(b"model-a", "org/a", "1.0.0", &key(2))),
        ],
    );
    assert!(o.iter().all(|o| o.result.is_ok()), "{o:?}");
    s1
}

/// Every execution failure is recorded in the outcome and has no effect
/// besides the fee and the nonce.
#[test]
fn execution_failures_only_cost_the_fee() {
    let s = prepared();
    let mut bad_manifest_sig = signed_manifest(b"model-z", "org/z", "1.0.0", &key(3));
    bad_manifest_sig = SignedManifest::from_parts(
        bad_manifest_sig.manifest().clone(),
        *signed_manifest(b"model-z", "org/z", "1.0.0", &key(4)).signature(),
    )
    .unwrap();
    let cases: Vec<(u8, TxBody, &str)> = vec![
        (3, transfer(4, 0), "zero_amount"),
        (3, transfer(4, 2_000_000_000), "insufficient_balance"),
        (3, register(999_999), "stake_below_minimum"),
        (3, register(2_000_000_000), "insufficient_balance"),
        (1, register(2_000_000), "already_registered"),
        (
            3,
            TxBody::RegisterExecutor {
                stake: 2_000_000,
                capacity: 0,
                endpoint: "http://x".into(),
            },
            "invalid_capacity",
        ),
        (
            3,
            TxBody::RegisterExecutor {
                stake: 2_000_000,
                capacity: 1,
                endpoint: "ftp://x".into(),
            },
            "invalid_endpoint",
        ),
        (3, TxBody::AddStake { amount: 5 }, "not_an_executor"),
        (1, TxBody::AddStake { amount: 0 }, "zero_amount"),
        (
            1,
            TxBody::AddStake {
                amount: 5_000_000_000,
            },
            "insufficient_balance",
        ),
        (
            1,
            TxBody::Unbond { amount: 3_000_000 },
            "insufficient_stake",
        ),
        (
            1,
            TxBody::Unbond { amount: 1_500_000 },
            "stake_below_minimum",
        ),
        (1, TxBody::Unbond { amount: 0 }, "zero_amount"),
        (3, TxBody::Unbond { amount: 1 }, "not_an_executor"),
        (1, TxBody::Withdraw, "nothing_to_withdraw"),
        (3, TxBody::Withdraw, "not_an_executor"),
        (3, TxBody::Deregister, "not_an_executor"),
        (
            3,
            TxBody::UpdateExecutor {
                capacity: 1,
                endpoint: "http://x".into(),
            },
            "not_an_executor",
        ),
        (
            1,
            TxBody::UpdateExecutor {
                capacity: limits::MAX_CAPACITY + 1,
                endpoint: "http://x".into(),
            },
            "invalid_capacity",
        ),
        (
            1,
            TxBody::UpdateExecutor {
                capacity: 2,
                endpoint: "http:///nohost".into(),
            },
            "invalid_endpoint",
        ),
        (
            2,
            publish(b"model-b", "org/a", "1.0.0", &key(2)),
            "version_exists",
        ),
        (
            2,
            publish(b"model-a", "org/a", "2.0.0", &key(2)),
            "model_exists",
        ),
        (
            3,
            publish(b"model-c", "org/a", "3.0.0", &key(3)),
            "name_taken",
        ),
        (
            3,
            TxBody::PublishModel {
                manifest: Box::new(bad_manifest_sig),
            },
            "bad_manifest_signature",
        ),
    ];
    // A Resume is refused already at admission (so a resent heartbeat
    // costs nothing).
    for (sender, code) in [(3, "not_an_executor"), (1, "not_paused")] {
        let t = tx(&s, sender, TxBody::Resume);
        assert_eq!(s.check_tx(&t).unwrap_err().code(), code);
    }
    for (sender, body, code) in cases {
        let t = tx(&s, sender, body);
        assert_eq!(s.check_tx(&t), Ok(()), "{code}: admissible");
        let (after, o) = apply_one(&s, t);
        let e = o
            .result
            .expect_err(&format!("{code}: expected an execution error"));
        assert_eq!(e.code(), code, "{e}");
        assert!(!matches!(
            e,
            ExecutionError::Internal { .. } | ExecutionError::RefereeUnavailable { .. }
        ));
        assert!(!e.to_string().is_empty());
        assert_only_fee_and_nonce(&s, &after, sender, FEE);
    }
}

#[test]
fn executor_lifecycle_and_unbonding_timing() {
    let s0 = genesis_state();
    let nine = addr(9);
    assert_eq!(s0.executor(&nine).unwrap().stake, 5_000_000);
    assert_eq!(s0.executor_count(), 1);
    let supply = s0.total_supply().unwrap();

    // Height 1: unbond 1M, released at 1 + 3 = 4.
    let (s1, o) = apply_one(&s0, tx(&s0, 9, TxBody::Unbond { amount: 1_000_000 }));
    assert_eq!(
        o.result.unwrap(),
        vec![
            Event::Unbonding {
                owner: nine,
                amount: 1_000_000,
                release_height: 4
            },
            Event::StakeChanged {
                owner: nine,
                stake: 4_000_000
            }
        ]
    );
    // Height 2: two more unbonds in one block merge into one entry at 5.
    let (s2, o) = apply(
        &s1,
        &[
            tx(&s1, 9, TxBody::Unbond { amount: 500_000 }),
            tx_ahead(&s1, 9, 1, TxBody::Unbond { amount: 500_000 }),
        ],
    );
    assert!(o.iter().all(|o| o.result.is_ok()));
    let e = s2.executor(&nine).unwrap();
    assert_eq!(e.stake, 3_000_000);
    assert_eq!(
        e.unbonding
            .iter()
            .map(|u| (u.amount, u.release_height))
            .collect::<Vec<_>>(),
        vec![(1_000_000, 4), (1_000_000, 5)]
    );
    // Height 3: too early.
    let (s3, o) = apply_one(&s2, tx(&s2, 9, TxBody::Withdraw));
    assert_eq!(
        o.result,
        Err(ExecutionError::NothingToWithdraw {
            height: 3,
            next_release: Some(4)
        })
    );
    // Height 4: the first entry is released.
    let before = balance(&s3, 9);
    let (s4, o) = apply_one(&s3, tx(&s3, 9, TxBody::Withdraw));
    assert_eq!(
        o.result.unwrap(),
        vec![Event::Withdrawn {
            owner: nine,
            amount: 1_000_000
        }]
    );
    assert_eq!(balance(&s4, 9), before - FEE + 1_000_000);
    assert_eq!(s4.executor(&nine).unwrap().unbonding.len(), 1);

    // Deregister: all stake unbonds, the executor becomes inactive.
    let (s5, o) = apply_one(&s4, tx(&s4, 9, TxBody::Deregister));
    assert!(
        o.result
            .unwrap()
            .contains(&Event::ExecutorDeregistered { owner: nine })
    );
    let e = s5.executor(&nine).unwrap();
    assert!(!e.is_active());
    assert_eq!(e.stake, 0);
    assert_eq!(
        e.unbonding_total(),
        4_000_000,
        "1M (release 5) + 3M (release 8)"
    );
    let (_, o) = apply_one(&s5, tx(&s5, 9, TxBody::AddStake { amount: 1 }));
    assert_eq!(o.result.unwrap_err().code(), "executor_inactive");
    let (_, o) = apply_one(&s5, tx(&s5, 9, TxBody::Deregister));
    assert_eq!(o.result.unwrap_err().code(), "executor_inactive");

    // Re-registering keeps the pending unbonding.
    let (s6, o) = apply_one(&s5, tx(&s5, 9, register(1_000_000)));
    assert!(o.result.is_ok());
    let e = s6.executor(&nine).unwrap();
    assert!(e.is_active());
    assert_eq!(e.registered_height, 6);
    assert_eq!(e.unbonding_total(), 4_000_000);
    let (s7, _) = apply_one(&s6, tx(&s6, 9, TxBody::Deregister));

    // Withdrawing everything once released removes the record.
    let s = advance_to(s7, 9);
    let (s10, o) = apply_one(&s, tx(&s, 9, TxBody::Withdraw));
    assert_eq!(
        o.result,
        Ok(vec![Event::Withdrawn {
            owner: nine,
            amount: 5_000_000
        }])
    );
    assert!(s10.executor(&nine).is_none());
    assert_eq!(s10.executor_count(), 0);
    assert!(s10.get_raw(&StateKey::Executor(nine)).is_none());
    assert_eq!(s10.total_supply(), Some(supply));
}

#[test]
fn unbonding_entries_are_bounded() {
    let mut s = genesis_state();
    for i in 0..limits::MAX_UNBONDING_ENTRIES {
        let (n, o) = apply_one(&s, tx(&s, 9, TxBody::Unbond { amount: 1 }));
        assert!(o.result.is_ok(), "unbond {i}: {o:?}");
        s = n;
    }
    let (_, o) = apply_one(&s, tx(&s, 9, TxBody::Unbond { amount: 1 }));
    assert_eq!(
        o.result,
        Err(ExecutionError::TooManyUnbonding {
            max: limits::MAX_UNBONDING_ENTRIES
        })
    );
    // Withdrawing frees entries.
    let (s, o) = apply_one(&s, tx(&s, 9, TxBody::Withdraw));
    assert!(o.result.is_ok());
    let (_, o) = apply_one(&s, tx(&s, 9, TxBody::Unbond { amount: 1 }));
    assert!(o.result.is_ok());
}

#[test]
fn executor_update_and_add_stake() {
    let s = prepared();
    let (s, o) = apply_one(&s, tx(&s, 1, TxBody::AddStake { amount: 7 }));
    assert_eq!(
        o.result.unwrap(),
        vec![Event::StakeChanged {
            owner: addr(1),
            stake: 2_000_007
        }]
    );
    let (s, o) = apply_one(
        &s,
        tx(
            &s,
            1,
            TxBody::UpdateExecutor {
                capacity: 9,
                endpoint: "http://10.0.0.1:7000".into(),
            },
        ),
    );
    assert!(o.result.is_ok());
    let e = s.executor(&addr(1)).unwrap();
    assert_eq!(
        (e.capacity, e.endpoint.as_str()),
        (9, "http://10.0.0.1:7000")
    );
    let owners: Vec<_> = s.executors().map(|e| e.owner.to_bytes()).collect();
    let mut sorted = owners.clone();
    sorted.sort();
    assert_eq!(owners, sorted, "listing is in owner order");
    assert_eq!(owners.len(), 2);
}

#[test]
fn model_names_belong_to_their_first_publisher() {
    let s = prepared();
    let a = ModelId::of(b"model-a");
    let rec = s.model(&a).unwrap();
    assert_eq!(rec.publisher, addr(2));
    assert_eq!(rec.height, 1);
    assert_eq!(s.name_owner("org/a"), Some(addr(2)));
    assert_eq!(s.model_by_name("org/a", "1.0.0").unwrap().model_id, a);

    // The owner publishes another version; another publisher cannot.
    let (s, o) = apply_one(
        &s,
        tx(&s, 2, publish(b"model-b", "org/a", "1.1.0", &key(2))),
    );
    match o.result.unwrap().as_slice() {
        [
            Event::ModelPublished {
                model_id,
                name,
                version,
                publisher,
                manifest_id,
            },
        ] => {
            assert_eq!(*model_id, ModelId::of(b"model-b"));
            assert_eq!((name.as_str(), version.as_str()), ("org/a", "1.1.0"));
            assert_eq!(*publisher, addr(2));
            assert_eq!(*manifest_id, s.model(model_id).unwrap().manifest_id);
        }
        other => panic!("unexpected events {other:?}"),
    }
    let (_, o) = apply_one(
        &s,
        tx(&s, 3, publish(b"model-c", "org/a", "9.0.0", &key(3))),
    );
    assert_eq!(
        o.result.unwrap_err(),
        ExecutionError::NameTaken {
            name: "org/a".into(),
            owner: addr(2).to_string()
        }
    );
    // Any sender may pay for a publisher's manifest: 1 pays for 3's.
    let (s, o) = apply_one(
        &s,
        tx(&s, 1, publish(b"model-d", "org/d", "1.0.0", &key(3))),
    );
    assert!(o.result.is_ok());
    assert_eq!(s.name_owner("org/d"), Some(addr(3)));
    assert_eq!(
        s.model(&ModelId::of(b"model-d")).unwrap().publisher,
        addr(3)
    );
    let versions: Vec<_> = s.model_versions("org/a").map(|(v, _)| v).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    assert_eq!(s.model_count(), 3);
    let ids: Vec<_> = s.models().map(|m| m.model_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "listing is in model id order");
}

fn flip_bit(b: &[u8], bit: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

/// Checks a record proof and that tampering with the bytes fails.
fn check_proof(root: &StateRoot, key: &StateKey, bytes: &Option<Vec<u8>>, proof: &Proof) {
    let k = key.to_bytes();
    assert_eq!(verify_proof(root, &k, bytes.as_deref(), proof), Ok(()));
    let round = Proof::decode(&proof.encode()).unwrap();
    assert_eq!(verify_proof(root, &k, bytes.as_deref(), &round), Ok(()));
    match bytes {
        Some(b) => {
            for bit in (0..b.len() * 8).step_by(7) {
                assert!(verify_proof(root, &k, Some(&flip_bit(b, bit)), proof).is_err());
            }
            assert!(verify_proof(root, &k, None, proof).is_err());
        }
        None => assert!(verify_proof(root, &k, Some(b"x"), proof).is_err()),
    }
    let enc = proof.encode();
    for bit in (0..enc.len() * 8).step_by(5) {
        if let Ok(p) = Proof::decode(&flip_bit(&enc, bit)) {
            assert!(verify_proof(root, &k, bytes.as_deref(), &p).is_err());
        }
    }
}

#[test]
fn record_proofs_verify_and_decode() {
    let s = prepared();
    let root = s.root();

    let (b, p) = s.prove_account(&addr(1));
    check_proof(&root, &StateKey::Account(addr(1)), &b, &p);
    assert_eq!(Account::decode(&b.unwrap()).ok(), s.account(&addr(1)));

    let (b, p) = s.prove_account(&addr(77));
    assert!(b.is_none());
    check_proof(&root, &StateKey::Account(addr(77)), &b, &p);

    let (b, p) = s.prove_executor(&addr(1));
    check_proof(&root, &StateKey::Executor(addr(1)), &b, &p);
    assert_eq!(
        Executor::decode(&b.unwrap()).ok().as_ref(),
        s.executor(&addr(1))
    );

    let id = ModelId::of(b"model-a");
    let (b, p) = s.prove_model(&id);
    check_proof(&root, &StateKey::Model(id), &b, &p);
    assert_eq!(ModelRecord::decode(&b.unwrap()).ok().as_ref(), s.model(&id));

    let (b, p) = s.prove_model_name("org/a", "1.0.0");
    check_proof(
        &root,
        &StateKey::ModelVersion {
            name: "org/a".into(),
            version: "1.0.0".into(),
        },
        &b,
        &p,
    );
    assert_eq!(decode_model_version(&b.unwrap()), Ok(id));
    let (b, p) = s.prove_model_name("org/a", "9.9.9");
    assert!(b.is_none());
    check_proof(
        &root,
        &StateKey::ModelVersion {
            name: "org/a".into(),
            version: "9.9.9".into(),
        },
        &b,
        &p,
    );

    let (b, p) = s.prove_name_owner("org/a");
    check_proof(&root, &StateKey::NameOwner("org/a".into()), &b, &p);
    assert_eq!(decode_name_owner(&b.unwrap()), Ok(addr(2)));

    let (b, p) = s.prove_params();
    check_proof(&root, &StateKey::Params, &b, &p);
    assert_eq!(Params::decode(&b.unwrap()), Ok(*s.params()));

    let (b, p) = s.prove_head();
    check_proof(&root, &StateKey::Head, &b, &p);
    assert_eq!(
        Head::decode(&b.unwrap()),
        Ok(Head {
            height: 1,
            timestamp_ms: GENESIS_TIME + 1000
        })
    );

    let (b, p) = s.prove_chain();
    check_proof(&root, &StateKey::Chain, &b, &p);
    let chain = glassbox_ledger::ChainInfo::decode(&b.unwrap()).unwrap();
    assert_eq!(chain.chain_id, s.chain_id());
    assert_eq!(chain.chain_id, genesis().chain_id().unwrap());

    // A proof from an older state does not verify against a newer root
    // when the record changed.
    let (old_bytes, old_proof) = s.prove_account(&addr(1));
    let (s2, _) = apply_one(&s, tx(&s, 1, transfer(2, 1)));
    let k = StateKey::Account(addr(1)).to_bytes();
    assert!(verify_proof(&s2.root(), &k, old_bytes.as_deref(), &old_proof).is_err());
    // The root commits to the height: even an empty block changes it.
    let (s3, _) = apply(&s2, &[]);
    assert_ne!(s3.root(), s2.root());
    let _ = s3.root().to_hex();
}

#[test]
fn fee_minimum_scales_with_size() {
    let s = genesis_state();
    let t = tx(&s, 1, transfer(2, 1));
    let min = s.params().min_fee_for(t.len()).unwrap();
    assert_eq!(min, 1_000 + 10 * t.len() as u64);
    let exact = SignedTx::sign(&s.chain_id(), &key(1), 0, min, transfer(2, 1)).unwrap();
    assert_eq!(s.check_tx(&exact), Ok(()));
    let below = SignedTx::sign(&s.chain_id(), &key(1), 0, min - 1, transfer(2, 1)).unwrap();
    assert!(matches!(
        s.check_tx(&below),
        Err(TxError::Admission(AdmissionError::FeeTooLow { .. }))
    ));
}

#[test]
fn outcomes_serialize_for_the_api() {
    let s = prepared();
    let (_, o) = apply(&s, &[tx(&s, 3, transfer(4, 0)), tx(&s, 1, transfer(4, 5))]);
    let j = serde_json::to_value(&o).unwrap();
    assert_eq!(j[0]["ok"], false);
    assert_eq!(j[0]["error"]["code"], "zero_amount");
    assert_eq!(j[1]["ok"], true);
    assert_eq!(j[1]["events"][0]["type"], "transferred");
    assert_eq!(j[1]["events"][0]["to"], addr(4).to_string());
    assert!(j[1]["tx_hash"].as_str().unwrap().starts_with("tx:"));
    let m = serde_json::to_value(s.model(&ModelId::of(b"model-a")).unwrap()).unwrap();
    assert_eq!(m["name"], "org/a");
    assert_eq!(m["manifest"]["name"], "org/a");
    let g: GenesisState = serde_json::from_value(serde_json::to_value(genesis()).unwrap()).unwrap();
    assert_eq!(g, genesis());
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<State>();
    check::<SignedTx>();
    check::<Proof>();
    check::<glassbox_ledger::smt::Smt>();
}

mod random_blocks {
    use super::*;
    use glassbox_ledger::tags;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = TxBody> {
        let amount = prop_oneof![0u64..3, 1u64..5_000_000, Just(u64::MAX)];
        prop_oneof![
            (prop_oneof![1u8..5, Just(9u8), 20u8..23], amount.clone())
                .prop_map(|(to, amount)| transfer(to, amount)),
            (amount.clone(), 0u32..6).prop_map(|(stake, capacity)| {
                TxBody::RegisterExecutor {
                    stake,
                    capacity,
                    endpoint: "https://e.example.org".into(),
                }
            }),
            amount
                .clone()
                .prop_map(|amount| TxBody::AddStake { amount }),
            amount.prop_map(|amount| TxBody::Unbond { amount }),
            Just(TxBody::Withdraw),
            Just(TxBody::Deregister),
            (0u32..6).prop_map(|capacity| TxBody::UpdateExecutor {
                capacity,
                endpoint: "http://u".into(),
            }),
            (0u8..4, 0u8..3, 1u8..4).prop_map(|(m, v, by)| publish(
                &[m, v],
                &format!("n/{}", m % 2),
                &format!("1.{v}.0"),
                &key(by)
            )),
        ]
    }

    /// Side indexes agree with the committed records; the root is the
    /// root of the records in any order.
    fn check_consistency(s: &State) {
        let recs = records(s);
        let tagged = |t: u8| recs.keys().filter(|k| k.first() == Some(&t)).count();
        assert_eq!(tagged(tags::EXECUTOR), s.executor_count());
        assert_eq!(tagged(tags::MODEL), s.model_count());
        for e in s.executors() {
            let raw = s.get_raw(&StateKey::Executor(e.owner)).unwrap();
            assert_eq!(&Executor::decode(raw).unwrap(), e);
            assert!(e.unbonding.len() <= limits::MAX_UNBONDING_ENTRIES);
            assert!(e.stake == 0 || e.stake >= s.params().min_executor_stake);
            assert!(e.stake > 0 || !e.unbonding.is_empty());
        }
        for m in s.models() {
            let raw = s.get_raw(&StateKey::Model(m.model_id)).unwrap();
            assert_eq!(&ModelRecord::decode(raw).unwrap(), m);
            let name = &m.manifest.manifest().name;
            assert_eq!(s.name_owner(name), Some(m.publisher));
        }
        let mut fresh = glassbox_ledger::smt::Smt::new();
        for (k, v) in recs.iter().rev() {
            fresh.insert(k, v).unwrap();
        }
        assert_eq!(fresh.root(), *s.root().as_bytes());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_blocks_conserve_supply_and_stay_consistent(
            blocks in prop::collection::vec(
                prop::collection::vec((prop_oneof![1u8..5, Just(9u8)], body()), 0..8),
                1..8,
            )
        ) {
            let mut s = genesis_state();
            let supply = s.total_supply().unwrap();
            for block in blocks {
                let mut ahead: BTreeMap<u8, u64> = BTreeMap::new();
                let txs: Vec<_> = block
                    .into_iter()
                    .map(|(n, b)| {
                        let a = ahead.entry(n).or_default();
                        let t = tx_ahead(&s, n, *a, b);
                        *a += 1;
                        t
                    })
                    .collect();
                let (next, outcomes) = s.apply_block(ctx(&s), &txs).unwrap();
                prop_assert_eq!(outcomes.len(), txs.len());
                for o in &outcomes {
                    if let Err(e) = &o.result {
                        prop_assert!(
                            !matches!(
                                e,
                                ExecutionError::Internal { .. }
                                    | ExecutionError::RefereeUnavailable { .. }
                            ),
                            "{}",
                            e
                        );
                    }
                }
                // Deterministic on a clone, and the parent is untouched.
                let root = s.root();
                let (again, _) = s.clone().apply_block(ctx(&s), &txs).unwrap();
                prop_assert_eq!(again.root(), next.root());
                prop_assert_eq!(s.root(), root);
                prop_assert_eq!(next.total_supply(), Some(supply));
                check_consistency(&next);
                s = next;
            }
        }
    }
}

/// Building a block incrementally, skipping refused transactions, gives
/// what `apply_block` gives for the accepted ones.
#[test]
fn block_builder_skips_refused_transactions() {
    let s = genesis_state();
    let good1 = tx(&s, 1, transfer(2, 10));
    let bad_nonce = tx_ahead(&s, 2, 5, transfer(1, 1));
    let failing = tx(&s, 3, transfer(4, 0)); // execution error: kept
    let unknown = SignedTx::sign(&s.chain_id(), &key(60), 0, FEE, transfer(1, 1)).unwrap();
    let good2 = tx_ahead(&s, 1, 1, transfer(3, 7));
    let mut b = s.begin_block(ctx(&s)).unwrap();
    let mut accepted = Vec::new();
    for t in [&good1, &bad_nonce, &failing, &unknown, &good2] {
        let root_before = b.state().root();
        match b.push(t) {
            Ok(o) => {
                assert_eq!(o.tx_hash, t.hash());
                accepted.push(t.clone());
            }
            Err(BlockError::InvalidTx { index, error, .. }) => {
                assert_eq!(index, accepted.len());
                assert!(error.is_admission());
                assert_eq!(
                    b.state().root(),
                    root_before,
                    "a refused push changes nothing"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, vec![good1, failing, good2]);
    assert_eq!(b.len(), 3);
    let (built, outcomes) = b.finish().unwrap();
    let (applied, expected) = s.apply_block(ctx(&s), &accepted).unwrap();
    assert_eq!(built.root(), applied.root());
    assert_eq!(outcomes, expected);
    assert_eq!(built.fee_pool(), 3 * FEE);

    // Block limits are checked per push.
    let mut g = genesis();
    g.params.max_block_txs = 1;
    let s = State::genesis(&g).unwrap();
    let mut b = s.begin_block(ctx(&s)).unwrap();
    b.push(&tx(&s, 1, transfer(2, 1))).unwrap();
    assert_eq!(
        b.push(&tx(&s, 2, transfer(1, 1))).unwrap_err(),
        BlockError::TooManyTxs { count: 2, max: 1 }
    );
    assert_eq!(b.finish().unwrap().1.len(), 1);
    assert!(matches!(
        s.begin_block(BlockContext {
            randomness: [0; 32],
            height: 5,
            timestamp_ms: GENESIS_TIME
        }),
        Err(BlockError::WrongHeight { .. })
    ));
}

#[test]
fn a_remembered_signature_check_is_bound_to_the_chain_and_the_bytes() {
    let key = glassbox_types::SecretKey::from_seed(&[9; 32]);
    let to = glassbox_types::SecretKey::from_seed(&[8; 32]).public();
    let chain = glassbox_primitives::ChainId::from_bytes([1; 32]);
    let other_chain = glassbox_primitives::ChainId::from_bytes([2; 32]);
    let tx = SignedTx::sign(&chain, &key, 0, 5_000, TxBody::Transfer { to, amount: 1 }).unwrap();
    tx.verify_signature(&chain).unwrap();
    // Checked once for `chain`: still refused for another chain.
    assert!(tx.verify_signature(&other_chain).is_err());
    // A decoded copy adopts the check only when the bytes are identical.
    let copy = SignedTx::decode(tx.encoded()).unwrap();
    copy.adopt_verification(&tx);
    copy.verify_signature(&chain).unwrap();
    let mut forged_bytes = tx.encoded().to_vec();
    let last = forged_bytes.len() - 1;
    forged_bytes[last] ^= 1;
    if let Ok(forged) = SignedTx::decode(&forged_bytes) {
        forged.adopt_verification(&tx);
        assert!(forged.verify_signature(&chain).is_err());
    }
}

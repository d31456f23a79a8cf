//! The mempool's bounds against a sender who wants room without paying for
//! it (issue #25, docs/consensus.md "Mempool"): future nonces, fees beyond
//! the balance, age, and room reserved for the job protocol, on a real
//! ledger state with a real job.

mod common;

use common::*;
use glassbox_ledger::{BlockContext, JobId, SignedTx, State, TxBody, commitment};
use glassbox_node::chain::mempool::{Mempool, MempoolError, MempoolLimits};
use glassbox_primitives::{OutputHash, Salt, TraceRoot};
use glassbox_types::SecretKey;

fn genesis_state() -> State {
    State::genesis(&genesis()).expect("genesis")
}

fn signed(s: &State, who: &SecretKey, nonce: u64, fee: u64, body: TxBody) -> SignedTx {
    SignedTx::sign(&s.chain_id(), who, nonce, fee, body).expect("sign")
}

fn pay(s: &State, from: u8, nonce: u64, to: &SecretKey, amount: u64) -> SignedTx {
    signed(
        s,
        &key(from),
        nonce,
        FEE,
        TxBody::Transfer {
            to: to.public(),
            amount,
        },
    )
}

fn block(s: &State, txs: &[SignedTx]) -> State {
    let ctx = BlockContext {
        randomness: [s.height() as u8; 32],
        height: s.height() + 1,
        timestamp_ms: GENESIS_TIME + 1_000 * (s.height() + 1),
    };
    let (next, outcomes) = s.apply_block(ctx, txs).expect("block applies");
    for o in outcomes {
        assert!(o.result.is_ok(), "{:?}", o.result);
    }
    next
}

fn limits() -> MempoolLimits {
    MempoolLimits {
        max_txs: 40,
        max_bytes: 1 << 20,
        max_per_sender: 64,
        max_nonce_ahead: 16,
        max_age_blocks: 5,
        reserved_txs: 8,
        reserved_bytes: 64 << 10,
    }
}

#[test]
fn nonces_far_ahead_are_refused_not_held() {
    let s = genesis_state();
    let mut pool = Mempool::new(limits());
    let to = key(2);
    // Nonces 1..16 wait for nonce 0 (a gap the sender may fill).
    assert!(pool.insert(pay(&s, 1, 15, &to, 1), &s).is_ok());
    match pool.insert(pay(&s, 1, 16, &to, 1), &s) {
        Err(MempoolError::NonceAhead {
            nonce: 16,
            next: 0,
            max_ahead: 16,
            ..
        }) => {}
        other => panic!("expected NonceAhead, got {other:?}"),
    }
    assert_eq!(pool.len(), 1);
}

#[test]
fn pending_fees_stay_within_the_balance() {
    let s = genesis_state();
    let poor = key(40);
    let s = block(&s, &[pay(&s, 1, 0, &poor, 3 * FEE)]);
    let mut pool = Mempool::new(limits());
    for nonce in 0..3 {
        pool.insert(pay(&s, 40, nonce, &key(2), 1), &s)
            .expect("within the balance");
    }
    match pool.insert(pay(&s, 40, 3, &key(2), 1), &s) {
        Err(MempoolError::FeesOverBalance { balance, fees, .. }) => {
            assert_eq!((balance, fees), (3 * FEE, 4 * FEE));
        }
        other => panic!("expected FeesOverBalance, got {other:?}"),
    }
}

#[test]
fn stale_transactions_expire() {
    let mut s = genesis_state();
    let mut pool = Mempool::new(limits());
    // Nonce 1 waits behind a nonce 0 that never comes.
    pool.insert(pay(&s, 1, 1, &key(2), 1), &s).unwrap();
    for _ in 0..4 {
        s = block(&s, &[]);
        pool.prune([], &s);
        assert_eq!(pool.len(), 1, "kept at height {}", s.height());
    }
    s = block(&s, &[]);
    pool.prune([], &s);
    assert_eq!(pool.len(), 0, "dropped after max_age_blocks");
}

/// A job of one replica, assigned: returns the state, the job and its
/// executor's key.
fn assigned_job() -> (State, JobId, SecretKey) {
    let s = genesis_state();
    let m = manifest(b"a model", "m", "1.0.0", &key(1));
    let model_id = m.manifest().model_id;
    let s = block(
        &s,
        &[signed(
            &s,
            &key(1),
            0,
            FEE,
            TxBody::PublishModel {
                manifest: Box::new(m),
            },
        )],
    );
    let submit = signed(
        &s,
        &key(2),
        0,
        FEE,
        TxBody::SubmitJob {
            model_id,
            inputs: vec![],
            replicas: 1,
            max_fee: 1_000_000,
        },
    );
    let id = JobId::of_tx(submit.hash());
    let s = block(&s, &[submit]);
    let s = block(&s, &[]);
    let job = s.job(&id).expect("the job");
    let exec = [7, 8, 9]
        .into_iter()
        .map(key)
        .find(|k| {
            job.slots
                .first()
                .is_some_and(|slot| slot.executor == k.public())
        })
        .expect("an assigned executor");
    (s, id, exec)
}

/// Finding "the mempool accepts any future nonce and never expires
/// anything: a few senders pin it full; executors' commits are then
/// refused and they are penalized" (issue #25).
#[test]
fn a_flood_cannot_crowd_out_an_executors_commit() {
    let (s, id, exec) = assigned_job();
    let mut pool = Mempool::new(limits());
    // Three senders fill every ordinary place (40 - 8 reserved).
    let mut n = 0;
    'flood: for from in [1u8, 2, 3] {
        let next = s.account(&key(from).public()).unwrap().nonce;
        for nonce in next..next + 16 {
            match pool.insert(pay(&s, from, nonce, &key(4), 1), &s) {
                Ok(_) => n += 1,
                Err(MempoolError::Full { .. }) => break 'flood,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(n, 32);
    assert!(matches!(
        pool.insert(pay(&s, 3, 15, &key(4), 1), &s),
        Err(MempoolError::Full { .. })
    ));
    // The executor's commit still enters.
    let c = commitment(
        &id,
        &exec.public(),
        &OutputHash::from_bytes([1; 32]),
        &TraceRoot::from_bytes([2; 32]),
        &Salt::from_bytes([3; 32]),
    );
    let nonce = s.account(&exec.public()).unwrap().nonce;
    let commit = signed(
        &s,
        &exec,
        nonce,
        FEE,
        TxBody::CommitResult {
            job_id: id,
            commitment: c,
        },
    );
    pool.insert(commit, &s)
        .expect("the reserve admits the commit");
    assert_eq!(pool.len(), 33);
}

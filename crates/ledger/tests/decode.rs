//! Decoders on untrusted bytes: never panic, accept only canonical
//! encodings, and every tampered byte of a signed transaction is refused.

mod common;

use common::*;
use glassbox_ledger::{
    Account, ChainInfo, Executor, FeePool, Head, ModelRecord, Params, Proof, SignedTx, TxBody,
    decode_model_version, decode_name_owner, limits,
};
use glassbox_primitives::ChainId;
use proptest::prelude::*;

fn body() -> impl Strategy<Value = TxBody> {
    let endpoint = "[a-z0-9./:-]{0,40}".prop_map(|s| format!("http://{s}"));
    prop_oneof![
        (1u8..20, any::<u64>()).prop_map(|(n, amount)| TxBody::Transfer {
            to: addr(n),
            amount
        }),
        (any::<u64>(), any::<u32>(), endpoint.clone()).prop_map(|(stake, capacity, endpoint)| {
            TxBody::RegisterExecutor {
                stake,
                capacity,
                endpoint,
            }
        }),
        any::<u64>().prop_map(|amount| TxBody::AddStake { amount }),
        any::<u64>().prop_map(|amount| TxBody::Unbond { amount }),
        Just(TxBody::Withdraw),
        Just(TxBody::Deregister),
        Just(TxBody::Resume),
        (any::<u32>(), endpoint)
            .prop_map(|(capacity, endpoint)| TxBody::UpdateExecutor { capacity, endpoint }),
        ("[a-z]{1,12}", 0u8..5, 1u8..5).prop_map(|(name, v, n)| publish(
            name.as_bytes(),
            &name,
            &format!("1.{v}.0"),
            &key(n)
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn signed_tx_round_trips(b in body(), n in 1u8..10, nonce: u64, fee: u64, chain: [u8; 32]) {
        let chain = ChainId::from_bytes(chain);
        let tx = SignedTx::sign(&chain, &key(n), nonce, fee, b).unwrap();
        let back = SignedTx::decode(tx.encoded()).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert_eq!(back.body(), tx.body());
        prop_assert_eq!(back.hash(), tx.hash());
        prop_assert_eq!(back.verify_signature(&chain), Ok(()));
        let j = serde_json::to_string(&tx).unwrap();
        let from_json: SignedTx = serde_json::from_str(&j).unwrap();
        prop_assert_eq!(from_json, tx);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(tx) = SignedTx::decode(&bytes) {
            prop_assert_eq!(tx.encoded(), &bytes[..]);
        }
        if let Ok(a) = Account::decode(&bytes) {
            prop_assert_eq!(a.encode(), bytes.clone());
        }
        if let Ok(e) = Executor::decode(&bytes) {
            prop_assert_eq!(e.encode(), bytes.clone());
        }
        if let Ok(p) = Params::decode(&bytes) {
            prop_assert_eq!(p.encode(), bytes.clone());
        }
        if let Ok(m) = ModelRecord::decode(&bytes) {
            prop_assert_eq!(m.encode(), bytes.clone());
        }
        if let Ok(c) = ChainInfo::decode(&bytes) {
            prop_assert_eq!(c.encode(), bytes.clone());
        }
        let _ = Head::decode(&bytes);
        let _ = FeePool::decode(&bytes);
        let _ = decode_model_version(&bytes);
        let _ = decode_name_owner(&bytes);
        let _ = Proof::decode(&bytes);
        let _ = SignedTx::from_hex(&glassbox_types::hex(&bytes));
    }

    /// Random mutations of a valid transaction: decoding fails, or the
    /// result is canonical and its signature no longer verifies.
    #[test]
    fn mutated_tx_is_refused(b in body(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let chain = ChainId::from_bytes([3; 32]);
        let tx = SignedTx::sign(&chain, &key(1), 0, 10, b).unwrap();
        let mut bytes = tx.encoded().to_vec();
        for (i, v) in &edits {
            let i = i.index(bytes.len());
            bytes[i] ^= v | 1;
        }
        if bytes == tx.encoded() {
            return Ok(()); // two edits cancelled out
        }
        if let Ok(t) = SignedTx::decode(&bytes) {
            prop_assert_eq!(t.encoded(), &bytes[..]);
            prop_assert!(t.verify_signature(&chain).is_err());
        }
    }

    #[test]
    fn truncated_or_extended_tx_is_refused(b in body(), cut in any::<prop::sample::Index>(), extra in 1usize..4) {
        let tx = SignedTx::sign(&ChainId::from_bytes([0; 32]), &key(1), 0, 10, b).unwrap();
        let bytes = tx.encoded();
        let cut = cut.index(bytes.len());
        prop_assert!(SignedTx::decode(&bytes[..cut]).is_err());
        let mut longer = bytes.to_vec();
        longer.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(SignedTx::decode(&longer).is_err());
    }
}

/// Every single-bit flip of a signed transfer is refused.
#[test]
fn every_bit_flip_of_a_transfer_is_refused() {
    let s = genesis_state();
    let tx = tx(
        &s,
        1,
        TxBody::Transfer {
            to: addr(2),
            amount: 5,
        },
    );
    assert_eq!(s.check_tx(&tx), Ok(()));
    let bytes = tx.encoded();
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(t) = SignedTx::decode(&b) {
            assert!(
                s.check_tx(&t).is_err(),
                "bit {bit} flipped still admissible"
            );
        }
    }
}

#[test]
fn decode_errors_name_the_place() {
    let tx = SignedTx::sign(
        &ChainId::from_bytes([0; 32]),
        &key(1),
        0,
        10,
        TxBody::Withdraw,
    )
    .unwrap();
    let mut b = tx.encoded().to_vec();
    b[0] = 2;
    let e = SignedTx::decode(&b).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("format version 2"), "{e}");
    let mut b = tx.encoded().to_vec();
    b[1 + 32 + 16] = 200; // body kind
    let e = SignedTx::decode(&b).unwrap_err();
    assert_eq!(e.offset, 49);
    assert!(
        e.to_string().contains("unknown transaction kind 200"),
        "{e}"
    );
    let mut b = tx.encoded().to_vec();
    b.push(0);
    assert!(
        SignedTx::decode(&b)
            .unwrap_err()
            .to_string()
            .contains("trailing")
    );
    // An over-limit endpoint length is refused before allocating.
    let mut b = vec![1u8];
    b.extend_from_slice(&addr(1).to_bytes());
    b.extend_from_slice(&[0; 16]);
    b.push(6);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = SignedTx::decode(&b).unwrap_err();
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    // Over the hard size limit.
    let big = vec![0u8; limits::HARD_MAX_TX_BYTES_USIZE + 1];
    assert!(SignedTx::decode(&big).is_err());
    // Hex with upper case or odd length.
    let h = glassbox_types::hex(tx.encoded());
    assert!(SignedTx::from_hex(&h.to_uppercase()).is_err());
    assert!(SignedTx::from_hex(&h[1..]).is_err());
    assert_eq!(SignedTx::from_hex(&h).unwrap(), tx);
}

#[test]
fn a_slot_in_json_requires_its_commitment_field() {
    let executor = key(1).public();
    let full = serde_json::json!({
        "executor": executor.to_string(),
        "assigned_height": 1,
        "deadline": null,
        "commitment": null,
        "reveal": null,
    });
    let slot: glassbox_ledger::Slot = serde_json::from_value(full.clone()).unwrap();
    assert_eq!(slot.commitment, None);
    let mut with = full.clone();
    with["commitment"] = serde_json::json!("ab".repeat(32));
    let slot: glassbox_ledger::Slot = serde_json::from_value(with).unwrap();
    assert_eq!(slot.commitment.map(|c| c.to_hex()), Some("ab".repeat(32)));
    let mut missing = full;
    missing.as_object_mut().unwrap().remove("commitment");
    let err = serde_json::from_value::<glassbox_ledger::Slot>(missing).unwrap_err();
    assert!(
        err.to_string().contains("missing field `commitment`"),
        "{err}"
    );
}

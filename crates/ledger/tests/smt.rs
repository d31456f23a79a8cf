//! The authenticated map against a BTreeMap model and a naive reference
//! implementation of the hashing rules; proofs, tampering, golden root.

use std::collections::BTreeMap;

use glassbox_ledger::smt::{
    EMPTY_HASH, MAX_DEPTH, Proof, ProofError, Smt, Terminal, key_path, verify,
};
use glassbox_types::hex;
use proptest::prelude::*;

/// The root of `entries` computed straight from the written definition,
/// with its own hashing (literal domains): split the leaves by path bit
/// until one (its leaf hash) or none (32 zero bytes) is left.
fn reference_root(entries: &BTreeMap<Vec<u8>, Vec<u8>>) -> [u8; 32] {
    fn h(parts: &[&[u8]]) -> [u8; 32] {
        let mut x = blake3::Hasher::new();
        for p in parts {
            x.update(p);
        }
        *x.finalize().as_bytes()
    }
    fn bit(p: &[u8; 32], d: usize) -> bool {
        (p[d / 8] >> (7 - d % 8)) & 1 == 1
    }
    fn go(leaves: &[([u8; 32], [u8; 32])], depth: usize) -> [u8; 32] {
        match leaves {
            [] => [0; 32],
            [(p, v)] => h(&[b"GBL2", p, v]),
            _ => {
                let (r, l): (Vec<_>, Vec<_>) = leaves.iter().partition(|(p, _)| bit(p, depth));
                h(&[b"GBN1", &go(&l, depth + 1), &go(&r, depth + 1)])
            }
        }
    }
    let leaves: Vec<_> = entries
        .iter()
        .map(|(k, v)| (h(&[b"GBK1", k]), *blake3::hash(v).as_bytes()))
        .collect();
    go(&leaves, 0)
}

fn build<'a>(entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>) -> Smt {
    let mut t = Smt::new();
    for (k, v) in entries {
        t.insert(k, v).expect("insert");
    }
    t
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, Vec<u8>),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => any::<u8>().prop_map(Op::Remove),
    ]
}

/// Keys from a small space so that inserts overwrite and removes hit.
fn key_of(k: u8) -> Vec<u8> {
    vec![b'k', k % 48]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_a_btreemap_model(ops in prop::collection::vec(op(), 0..120)) {
        let mut t = Smt::new();
        let mut model = BTreeMap::new();
        let mut snapshots = Vec::new();
        for op in &ops {
            snapshots.push((t.clone(), model.clone()));
            match op {
                Op::Insert(k, v) => {
                    let new = t.insert(&key_of(*k), v).expect("insert");
                    prop_assert_eq!(new, model.insert(key_of(*k), v.clone()).is_none());
                }
                Op::Remove(k) => {
                    prop_assert_eq!(t.remove(&key_of(*k)), model.remove(&key_of(*k)).is_some());
                }
            }
            prop_assert_eq!(t.len(), model.len());
        }
        // Contents, root (against the naive reference), insertion order.
        for k in 0..48u8 {
            prop_assert_eq!(t.get(&key_of(k)), model.get(&key_of(k)).map(|v| &v[..]));
        }
        let mut listed: Vec<_> = t.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        listed.sort();
        prop_assert_eq!(listed, model.clone().into_iter().collect::<Vec<_>>());
        let root = t.root();
        prop_assert_eq!(root, reference_root(&model));
        prop_assert_eq!(build(model.iter()).root(), root);
        prop_assert_eq!(build(model.iter().rev()).root(), root);
        // Every key provable present or absent; wrong claims fail.
        for k in 0..48u8 {
            let key = key_of(k);
            let p = t.prove(&key);
            let v = model.get(&key).map(|v| &v[..]);
            prop_assert_eq!(verify(&root, &key, v, &p), Ok(()));
            prop_assert_eq!(Proof::decode(&p.encode()), Ok(p.clone()));
            match v {
                Some(v) => {
                    prop_assert_eq!(verify(&root, &key, None, &p), Err(ProofError::KeyPresent));
                    let mut other = v.to_vec();
                    other.push(0);
                    prop_assert_eq!(verify(&root, &key, Some(&other), &p), Err(ProofError::ValueMismatch));
                }
                None => {
                    prop_assert_eq!(verify(&root, &key, Some(b"x"), &p), Err(ProofError::KeyAbsent));
                }
            }
        }
        // Snapshots (clones taken along the way) were never disturbed.
        for (snap, m) in snapshots {
            prop_assert_eq!(snap.len(), m.len());
            prop_assert_eq!(snap.root(), reference_root(&m));
        }
    }

    #[test]
    fn proof_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(p) = Proof::decode(&bytes) {
            prop_assert_eq!(p.encode(), bytes, "accepted bytes are canonical");
        }
    }
}

fn fixed_entries() -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..100u32)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                format!("value-{i}").into_bytes(),
            )
        })
        .collect()
}

/// The root of 100 fixed entries: a frozen commitment format. Changing it
/// changes every state root.
#[test]
fn golden_root() {
    const GOLDEN: &str = "65ab7486a493a44eda8498eb114d6338862d899e37678382cbbba749ec6b8c8a";
    let entries = fixed_entries();
    let root = hex(&build(entries.iter()).root());
    assert_eq!(root, hex(&reference_root(&entries)));
    assert_eq!(
        root, GOLDEN,
        "golden SMT root changed: got {root}, expected {GOLDEN}"
    );
    assert_eq!(Smt::new().root(), EMPTY_HASH);
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

/// Any flipped bit in a proof's encoding, the value or the root fails.
#[test]
fn tampering_fails() {
    let entries = fixed_entries();
    let t = build(entries.iter());
    let root = t.root();
    let mut cases: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"key-7".to_vec(), Some(b"value-7".to_vec())),
        (b"key-63".to_vec(), Some(b"value-63".to_vec())),
    ];
    // The first absent key of each non-membership kind.
    for want_leaf in [false, true] {
        let key = (0..1000)
            .map(|i| format!("absent-{i}").into_bytes())
            .find(|k| matches!(t.prove(k).terminal, Terminal::Leaf { .. }) == want_leaf)
            .expect("an absent key of each kind");
        cases.push((key, None));
    }
    let mut saw_leaf_nonmembership = false;
    let mut saw_empty_nonmembership = false;
    for (key, value) in cases {
        let p = t.prove(&key);
        match (&value, p.terminal) {
            (None, Terminal::Leaf { .. }) => saw_leaf_nonmembership = true,
            (None, Terminal::Empty) => saw_empty_nonmembership = true,
            _ => {}
        }
        assert_eq!(verify(&root, &key, value.as_deref(), &p), Ok(()));
        let enc = p.encode();
        for bit in 0..enc.len() * 8 {
            let bad = flip(&enc, bit);
            if let Ok(bp) = Proof::decode(&bad) {
                assert!(
                    verify(&root, &key, value.as_deref(), &bp).is_err(),
                    "flipped proof bit {bit} still verifies for {key:?}"
                );
            }
        }
        for bit in 0..256 {
            let bad_root: [u8; 32] = flip(&root, bit).try_into().unwrap();
            assert!(verify(&bad_root, &key, value.as_deref(), &p).is_err());
        }
        if let Some(v) = &value {
            for bit in 0..v.len() * 8 {
                assert!(verify(&root, &key, Some(&flip(v, bit)), &p).is_err());
            }
        }
        for bit in 0..key.len() * 8 {
            // Another key with the same proof and claim does not verify
            // (the claim "absent" may coincidentally hold for it, but then
            // only if its path runs through the same terminal).
            let other = flip(&key, bit);
            if entries.contains_key(&other) {
                continue;
            }
            if value.is_some() {
                assert!(verify(&root, &other, value.as_deref(), &p).is_err());
            }
        }
    }
    assert!(
        saw_leaf_nonmembership && saw_empty_nonmembership,
        "both kinds of non-membership proof were exercised"
    );
}

#[test]
fn proof_json_round_trip_and_bounds() {
    let t = build(fixed_entries().iter());
    for key in [&b"key-1"[..], b"nope"] {
        let p = t.prove(key);
        let j = serde_json::to_string(&p).unwrap();
        let back: Proof = serde_json::from_str(&j).unwrap();
        assert_eq!(back, p);
    }
    let too_many = format!(
        "{{\"siblings\":[{}],\"leaf\":null}}",
        vec![format!("\"{}\"", "00".repeat(32)); MAX_DEPTH + 1].join(",")
    );
    assert!(serde_json::from_str::<Proof>(&too_many).is_err());
    assert!(serde_json::from_str::<Proof>("{\"siblings\":[\"zz\"],\"leaf\":null}").is_err());
}

#[test]
fn clone_is_independent() {
    let mut a = build(fixed_entries().iter());
    let root = a.root();
    let b = a.clone();
    a.insert(b"key-1", b"changed").unwrap();
    a.remove(b"key-2");
    assert_eq!(b.root(), root);
    assert_eq!(b.get(b"key-1"), Some(&b"value-1"[..]));
    assert_ne!(a.root(), root);
    // Removing a key that is absent changes nothing.
    let r = a.root();
    assert!(!a.remove(b"absent"));
    assert_eq!(a.root(), r);
}

/// Keys whose paths share long prefixes (chains of single-child nodes)
/// still prove and collapse correctly.
#[test]
fn deep_paths() {
    // Find two keys whose paths share at least 12 bits.
    let base = key_path(b"deep-0");
    let mut twin = None;
    for i in 1..200_000u32 {
        let k = format!("deep-{i}").into_bytes();
        let p = key_path(&k);
        if p[0] == base[0] && (p[1] >> 4) == (base[1] >> 4) {
            twin = Some(k);
            break;
        }
    }
    let twin = twin.expect("a 12-bit prefix twin among 200k keys");
    let mut t = Smt::new();
    t.insert(b"deep-0", b"a").unwrap();
    t.insert(&twin, b"b").unwrap();
    let root = t.root();
    let p = t.prove(&twin);
    assert!(p.siblings.len() >= 13, "depth {}", p.siblings.len());
    assert_eq!(verify(&root, &twin, Some(b"b"), &p), Ok(()));
    assert_eq!(
        verify(&root, b"deep-0", Some(b"a"), &t.prove(b"deep-0")),
        Ok(())
    );
    t.remove(&twin);
    let mut single = Smt::new();
    single.insert(b"deep-0", b"a").unwrap();
    assert_eq!(t.root(), single.root());
    assert_eq!(t.prove(b"deep-0").siblings.len(), 0);
}

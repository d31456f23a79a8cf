//! Frozen formats: every tag, the codec's bytes and the trace commitment
//! pinned to golden values computed before this crate existed (by the
//! runtime's and the ledger's own copies). A change to any consensus byte
//! fails here first; such a change needs a new tag or format version, not
//! a new golden value.

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::trace::{self, Trace};
use glassbox_primitives::{ModelId, TensorHash, hex, tags};

#[test]
fn tags_are_frozen() {
    let pinned: [(&[u8], &str); 24] = [
        (tags::TENSOR, "GBT1"),
        (tags::TRACE_LEAF, "GBL1"),
        (tags::TRACE_ROOT, "GBR1"),
        (tags::SUBGRAPH, "GBS1"),
        (tags::MANIFEST, "GBMF"),
        (tags::SIGNED_MANIFEST, "GBSM"),
        (tags::MANIFEST_SIGNING, "glassbox.manifest.v1"),
        (tags::TX_SIGNING, "GBTX1"),
        (tags::GENESIS, "GBGN"),
        (tags::GENESIS_DISPUTES, "GBD1"),
        (tags::SMT_PATH, "GBK1"),
        (tags::SMT_LEAF, "GBL2"),
        (tags::SMT_NODE, "GBN1"),
        (tags::COMMITMENT, "GBCM1"),
        (tags::OUTPUTS, "GBOH1"),
        (tags::SELECTION, "GBSL1"),
        (tags::AUDIT, "GBAU1"),
        (tags::SNAPSHOT, "GBSS"),
        (tags::NODE_SNAPSHOT, "GBNS"),
        (tags::NODE_SEGMENT, "GBSG"),
        (tags::EXECUTOR_RESULTS, "GBXR"),
        (tags::TXS_ROOT, "GBTR1"),
        (tags::RANDOMNESS, "GBRN1"),
        (tags::CONSENSUS_NAMESPACE, "_GLASSBOX"),
    ];
    for (tag, text) in pinned {
        assert_eq!(tag, text.as_bytes());
    }
    assert_eq!(pinned.len(), tags::ALL.len());
    assert_eq!((tags::MERKLE_LEAF, tags::MERKLE_NODE), (0x00, 0x01));
}

#[test]
fn codec_bytes_are_frozen() {
    let mut w = Writer::new();
    w.u8(1);
    w.u16(0x0203);
    w.u32(0x0405_0607);
    w.u64(0x0809_0a0b_0c0d_0e0f);
    w.flag(true);
    w.flag(false);
    w.str("gb");
    w.blob(&[0xff]);
    w.len(3);
    let bytes = w.into_bytes();
    assert_eq!(
        hex(&bytes),
        "01030207060504 0f0e0d0c0b0a0908 01 00 0200000067 62 01000000ff 03000000".replace(' ', "")
    );
    let mut r = Reader::new("fixture", &bytes);
    assert_eq!(r.u8(), Ok(1));
    assert_eq!(r.u16(), Ok(0x0203));
    assert_eq!(r.u32(), Ok(0x0405_0607));
    assert_eq!(r.u64(), Ok(0x0809_0a0b_0c0d_0e0f));
    assert_eq!((r.flag("a"), r.flag("b")), (Ok(true), Ok(false)));
    assert_eq!(r.str("s", 2).as_deref(), Ok("gb"));
    assert_eq!(r.blob("b", 1), Ok(&[0xffu8][..]));
    assert_eq!(r.len("n", 3), Ok(3));
    assert_eq!(r.finish(), Ok(()));
}

fn fixture() -> Trace {
    Trace {
        model_id: ModelId::from_bytes([9; 32]),
        input_hashes: vec![
            TensorHash::from_bytes([1; 32]),
            TensorHash::from_bytes([2; 32]),
        ],
        leaves: (0..7u8)
            .map(|i| {
                let outputs = [[i; 32], [i + 1; 32]].map(TensorHash::from_bytes);
                trace::leaf(u64::from(i), outputs.into_iter())
            })
            .collect(),
    }
}

#[test]
fn the_trace_commitment_is_frozen() {
    let t = fixture();
    let h = |s: &str| s.to_string();
    assert_eq!(
        t.leaves[0].to_string(),
        h("c1bf361f783e0257ec9c08b7ba2d5d8eda47987fdf6caac39de73a2779ba991b")
    );
    assert_eq!(
        t.leaves[6].to_string(),
        h("58abe1505317121c327451d2a5f64644ec323b7c215f230588aca713611490a8")
    );
    let leaves_root = t.leaves_root();
    assert_eq!(
        leaves_root.to_string(),
        h("15d308a81936773aa7c0712cd7ffb9aff3472f7662334fac7090604200e642a7")
    );
    let path: Vec<String> = t
        .audit_path(5)
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        path,
        [
            "8c8a1d30eb40d8ab273cdda35781bc3217b61eb5856036b68d819c45734ba82e",
            "2fc5fc0374142227c9399913a6096f33ae8b9f0a9051be3d1939f440961a7196",
            "d955309d3815d6dad5ddfdf8ed841a378c2212138b39b3d1b601877204526cbd",
        ]
    );
    assert_eq!(
        trace::root_from_path(&t.leaves[5], 5, 7, &t.audit_path(5).unwrap()),
        Some(leaves_root)
    );
    assert_eq!(
        t.root().to_string(),
        h("736885b64f3cdd4bec0753abcd0a85176099b455b5ecec47fdcf6725b3f7b739")
    );
    assert_eq!(
        trace::merkle_root(&[]).to_string(),
        h("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    );
}

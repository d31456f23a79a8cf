//! Frozen-format fixtures, round trips, tamper and limit tests for manifests.

use std::path::PathBuf;

use glassbox_types::{
    CostSpec, DimSpec, Error, Hash, Limits, Manifest, ManifestId, ModelId, Parent, Relation,
    SecretKey, SignedManifest, Source, TensorSpec, hex,
};
use proptest::prelude::*;

fn fixture_key() -> SecretKey {
    SecretKey::from_seed(&[0x42; 32])
}

/// A manifest exercising every field.
fn full_manifest() -> Manifest {
    Manifest {
        model_id: ModelId::of(b"model bytes"),
        size_bytes: 11,
        name: "glassbox/mnist-cnn".into(),
        version: semver::Version::parse("1.2.3-rc.1+build.5").expect("semver"),
        description: "A small CNN.\nTwo lines.".into(),
        license: Some("Apache-2.0 OR MIT".into()),
        publisher: fixture_key().public(),
        created_at_unix_s: 1_700_000_000,
        parents: vec![
            Parent {
                id: ModelId::of(b"base"),
                relation: Relation::Finetune,
            },
            Parent {
                id: ModelId::of(b"fp32"),
                relation: Relation::Quantization,
            },
        ],
        sources: vec![Source {
            hash: Hash::of(b"training data"),
            uri: "https://example.org/mnist.tar.gz".into(),
        }],
        inputs: vec![TensorSpec {
            name: "image".into(),
            dtype: Some("float32".into()),
            shape: Some(vec![
                DimSpec::Symbol("N".into()),
                DimSpec::Fixed(1),
                DimSpec::Fixed(28),
                DimSpec::Symbol(String::new()),
            ]),
        }],
        outputs: vec![TensorSpec {
            name: "logits".into(),
            dtype: None,
            shape: None,
        }],
        opset: 17,
        cost: CostSpec {
            flops: 123_456,
            bytes: 7_890,
        },
        runtime_version: "0.1.0".into(),
    }
}

/// A manifest with every optional part empty.
fn minimal_manifest() -> Manifest {
    Manifest {
        model_id: ModelId::from_bytes([0; 32]),
        size_bytes: 0,
        name: "m".into(),
        version: semver::Version::new(0, 0, 0),
        description: String::new(),
        license: None,
        publisher: fixture_key().public(),
        created_at_unix_s: 0,
        parents: vec![],
        sources: vec![],
        inputs: vec![],
        outputs: vec![],
        opset: 0,
        cost: CostSpec::default(),
        runtime_version: "0".into(),
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The encoding is frozen: these bytes are checked in. Regenerate only for a
/// deliberate format change (which also bumps FORMAT_VERSION) with
/// `GLASSBOX_BLESS=1 cargo test -p glassbox-types --test manifest`.
#[test]
fn frozen_fixtures() {
    for (name, m) in [("full", full_manifest()), ("minimal", minimal_manifest())] {
        let signed = SignedManifest::sign(m.clone(), &fixture_key()).expect("sign");
        let bytes = signed.encode();
        let bin = fixtures().join(format!("signed-manifest-{name}.v1.bin"));
        let hex_path = fixtures().join(format!("signed-manifest-{name}.v1.hex"));
        let id_path = fixtures().join(format!("signed-manifest-{name}.v1.id"));
        if std::env::var_os("GLASSBOX_BLESS").is_some() {
            std::fs::write(&bin, &bytes).expect("write fixture");
            std::fs::write(&hex_path, format!("{}\n", hex(&bytes))).expect("write fixture");
            std::fs::write(&id_path, format!("{}\n", signed.id())).expect("write fixture");
        }
        let frozen = std::fs::read(&bin).expect("fixture .bin");
        assert_eq!(
            hex(&bytes),
            hex(&frozen),
            "{name}: the encoding changed; see docs/manifest.md"
        );
        let frozen_hex = std::fs::read_to_string(&hex_path).expect("fixture .hex");
        assert_eq!(
            frozen_hex.trim(),
            hex(&frozen),
            "{name}: .hex and .bin differ"
        );
        let frozen_id = std::fs::read_to_string(&id_path).expect("fixture .id");
        assert_eq!(frozen_id.trim().parse::<ManifestId>(), Ok(signed.id()));
        assert_eq!(signed.id(), ManifestId::of(&frozen));
        // And the frozen bytes decode, verify and re-encode identically.
        let back = SignedManifest::decode_verified(&frozen).expect("fixture decodes");
        assert_eq!(back.manifest(), &m);
        assert_eq!(back.encode(), frozen);
    }
}

#[test]
fn signature_is_domain_separated() {
    let m = minimal_manifest();
    let key = fixture_key();
    let signed = SignedManifest::sign(m.clone(), &key).expect("sign");
    // A raw signature over the manifest bytes (no domain) must not verify.
    let raw = key.sign(&m.encode().expect("encode"));
    let forged = SignedManifest::from_parts(m, raw).expect("parts");
    assert!(matches!(forged.verify(), Err(Error::BadSignature(_))));
    assert_eq!(signed.verify(), Ok(()));
}

#[test]
fn every_flipped_byte_is_detected() {
    let signed = SignedManifest::sign(full_manifest(), &fixture_key()).expect("sign");
    let bytes = signed.encode();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = bytes.clone();
            t[i] ^= bit;
            if let Ok(s) = SignedManifest::decode(&t) {
                assert!(
                    s.verify().is_err(),
                    "flipping bit {bit:#x} of byte {i} still verifies"
                );
            }
        }
    }
}

#[test]
fn changed_fields_and_wrong_keys_are_rejected() {
    let key = fixture_key();
    let signed = SignedManifest::sign(full_manifest(), &key).expect("sign");
    let sig = *signed.signature();
    type Edit = Box<dyn Fn(&mut Manifest)>;
    let edits: Vec<Edit> = vec![
        Box::new(|m| m.size_bytes += 1),
        Box::new(|m| m.name.push('x')),
        Box::new(|m| m.version.patch += 1),
        Box::new(|m| m.license = None),
        Box::new(|m| m.created_at_unix_s += 1),
        Box::new(|m| m.parents[0].relation = Relation::Other),
        Box::new(|m| m.parents.reverse()),
        Box::new(|m| m.sources[0].uri.push('/')),
        Box::new(|m| m.inputs[0].shape = None),
        Box::new(|m| m.cost.flops -= 1),
        Box::new(|m| m.model_id = ModelId::of(b"other")),
        Box::new(|m| m.runtime_version = "0.1.1".into()),
    ];
    for (k, edit) in edits.iter().enumerate() {
        let mut m = full_manifest();
        edit(&mut m);
        let t = SignedManifest::from_parts(m, sig).expect("valid edit");
        assert!(t.verify().is_err(), "edit {k} still verifies");
    }
    // Signed by another key, claiming the fixture publisher.
    let other = SecretKey::from_seed(&[0x43; 32]);
    let forged = SignedManifest::from_parts(
        full_manifest(),
        other.sign(
            &SignedManifest::sign(full_manifest(), &key)
                .expect("sign")
                .encode(),
        ),
    )
    .expect("parts");
    assert!(forged.verify().is_err());
    // A key may not sign for another publisher.
    assert!(matches!(
        SignedManifest::sign(full_manifest(), &other),
        Err(Error::WrongSigner { .. })
    ));
    // Re-pointing the publisher at the other key breaks the signature.
    let mut m = full_manifest();
    m.publisher = other.public();
    assert!(
        SignedManifest::from_parts(m, sig)
            .expect("parts")
            .verify()
            .is_err()
    );
}

#[test]
fn non_canonical_and_oversized_encodings_are_rejected() {
    let signed = SignedManifest::sign(full_manifest(), &fixture_key()).expect("sign");
    let bytes = signed.encode();
    // Trailing bytes.
    let mut t = bytes.clone();
    t.push(0);
    assert!(SignedManifest::decode(&t).is_err());
    // Truncation anywhere.
    for n in 0..bytes.len() {
        assert!(SignedManifest::decode(&bytes[..n]).is_err(), "prefix {n}");
    }
    // Another format version.
    let mut t = bytes.clone();
    t[4] = 2;
    let e = SignedManifest::decode(&t).expect_err("version 2");
    assert!(e.to_string().contains("format version 2"), "{e}");
    // A huge declared length is refused before allocating.
    let mut t = bytes[..6].to_vec();
    t.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(SignedManifest::decode(&t).is_err());

    let m = full_manifest();
    let enc = m.encode().expect("encode");
    // The license option tag (0 or 1) sits right before the license string;
    // 2 is non-canonical.
    let lic = b"Apache-2.0 OR MIT";
    let at = enc
        .windows(lic.len())
        .position(|w| w == lic)
        .expect("license bytes")
        - 5;
    assert_eq!(enc[at], 1);
    let mut t = enc.clone();
    t[at] = 2;
    assert!(Manifest::decode(&t).is_err());
    // Non-canonical semver text ("1.2.3-rc.1+build.5" -> "01.2.3-rc.1+build" is
    // not semver); same-length edit keeps the framing intact.
    let v = b"1.2.3-rc.1+build.5";
    let at = enc.windows(v.len()).position(|w| w == v).expect("version");
    let mut t = enc.clone();
    t[at..at + v.len()].copy_from_slice(b"01.2.3-rc.1+build5");
    assert!(Manifest::decode(&t).is_err());
}

#[test]
fn validation_limits() {
    let mut m = minimal_manifest();
    m.name = "a".repeat(Limits::MAX_NAME_BYTES + 1);
    assert!(m.encode().is_err());
    for bad in ["", "Upper", "-x", "a//b", "a/", "a/../b", "a b", "a@1"] {
        let mut m = minimal_manifest();
        m.name = bad.into();
        assert!(m.validate().is_err(), "name {bad:?}");
    }
    for bad in ["", "NotALicense-1.0", "MIT AND", "MIT; rm -rf /"] {
        let mut m = minimal_manifest();
        m.license = Some(bad.into());
        assert!(m.validate().is_err(), "license {bad:?}");
    }
    let mut m = minimal_manifest();
    m.license = Some("MIT OR Apache-2.0".into());
    assert_eq!(m.validate(), Ok(()));
    let mut m = minimal_manifest();
    m.sources = vec![Source {
        hash: Hash::of(b""),
        uri: "no scheme".into(),
    }];
    assert!(m.validate().is_err());
    let mut m = minimal_manifest();
    let p = Parent {
        id: ModelId::of(b"p"),
        relation: Relation::Other,
    };
    m.parents = vec![p.clone(), p];
    assert!(m.validate().is_err(), "duplicate parent");
    let mut m = minimal_manifest();
    m.parents = vec![
        Parent {
            id: ModelId::of(b"x"),
            relation: Relation::Other
        };
        Limits::MAX_PARENTS + 1
    ];
    assert!(m.validate().is_err());
    let mut m = minimal_manifest();
    m.inputs = vec![TensorSpec {
        name: "x".into(),
        dtype: None,
        shape: Some(vec![DimSpec::Fixed(1); Limits::MAX_RANK + 1]),
    }];
    assert!(m.validate().is_err());
}

fn arb_tensor() -> impl Strategy<Value = TensorSpec> {
    (
        "[a-zA-Z_][a-zA-Z0-9_:./ ]{0,20}",
        proptest::option::of("[a-z0-9]{1,10}"),
        proptest::option::of(proptest::collection::vec(
            prop_oneof![
                any::<u64>().prop_map(DimSpec::Fixed),
                "[a-zA-Z_]{0,8}".prop_map(DimSpec::Symbol),
            ],
            0..6,
        )),
    )
        .prop_map(|(name, dtype, shape)| TensorSpec { name, dtype, shape })
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let head = (
        any::<[u8; 32]>(),
        any::<u64>(),
        "[a-z0-9][a-z0-9_.-]{0,20}(/[a-z0-9][a-z0-9_-]{0,10})?",
        (any::<u16>(), any::<u16>(), any::<u16>()),
        proptest::option::of("[a-z]{1,5}(\\.[0-9]{1,3})?"),
        "\\PC{0,40}",
        proptest::option::of(proptest::sample::select(vec![
            "MIT",
            "Apache-2.0",
            "MIT OR Apache-2.0",
            "GPL-2.0-or-later",
            "CC-BY-4.0",
        ])),
        any::<[u8; 32]>(),
        any::<u64>(),
    );
    let tail = (
        proptest::collection::btree_map(any::<[u8; 32]>(), 0usize..4, 0..4),
        proptest::collection::vec((any::<[u8; 32]>(), "[a-z]{1,5}:[!-~]{0,30}"), 0..4),
        proptest::collection::vec(arb_tensor(), 0..4),
        proptest::collection::vec(arb_tensor(), 0..4),
        any::<u32>(),
        (any::<u64>(), any::<u64>()),
        "[0-9a-z.+-]{1,12}",
    );
    (head, tail).prop_filter_map(
        "model is its own parent",
        |(
            (id, size, name, (ma, mi, pa), pre, desc, license, seed, created),
            (parents, sources, inputs, outputs, opset, (flops, bytes), rt),
        )| {
            let mut version = semver::Version::new(u64::from(ma), u64::from(mi), u64::from(pa));
            if let Some(p) = pre {
                version.pre = semver::Prerelease::new(&p).ok()?;
            }
            let model_id = ModelId::from_bytes(id);
            let parents: Vec<Parent> = parents
                .into_iter()
                .map(|(p, r)| Parent {
                    id: ModelId::from_bytes(p),
                    relation: Relation::ALL[r],
                })
                .collect();
            if parents.iter().any(|p| p.id == model_id) {
                return None;
            }
            Some(Manifest {
                model_id,
                size_bytes: size,
                name,
                version,
                description: desc,
                license: license.map(String::from),
                publisher: SecretKey::from_seed(&seed).public(),
                created_at_unix_s: created,
                parents,
                sources: sources
                    .into_iter()
                    .map(|(h, uri)| Source {
                        hash: Hash::from_bytes(h),
                        uri,
                    })
                    .collect(),
                inputs,
                outputs,
                opset,
                cost: CostSpec { flops, bytes },
                runtime_version: rt,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn manifest_round_trips(m in arb_manifest()) {
        let bytes = m.encode().expect("valid manifest encodes");
        let back = Manifest::decode(&bytes).expect("decodes");
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode().expect("re-encodes"), bytes);
    }

    #[test]
    fn signed_manifest_round_trips(m in arb_manifest(), seed in any::<[u8; 32]>()) {
        let key = SecretKey::from_seed(&seed);
        let mut m = m;
        m.publisher = key.public();
        let s = SignedManifest::sign(m, &key).expect("sign");
        let bytes = s.encode();
        let back = SignedManifest::decode_verified(&bytes).expect("decodes and verifies");
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.id(), s.id());
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedManifest::decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn ids_parse_their_display(b in any::<[u8; 32]>(), s in "\\PC{0,80}") {
        let id = ModelId::from_bytes(b);
        prop_assert_eq!(id.to_string().parse::<ModelId>(), Ok(id));
        let _ = s.parse::<ModelId>();
        let _ = s.parse::<glassbox_types::PublicKey>();
        let _ = s.parse::<glassbox_types::Signature>();
    }
}

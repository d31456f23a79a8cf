//! Blob store, registry and key file tests on temp directories.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use glassbox_store::keyfile::{generate_secret_key, read_secret_key, write_secret_key};
use glassbox_store::{BlobStore, Error, Published, Registry};
use glassbox_types::{CostSpec, Manifest, ModelId, SecretKey, SignedManifest};

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn blobs_round_trip_and_corruption_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1 << 20).expect("open");
    let id = store.put_bytes(b"hello model").expect("put");
    assert_eq!(id, ModelId::of(b"hello model"));
    assert_eq!(store.get(&id).expect("get"), b"hello model");
    assert_eq!(
        files_under(dir.path()),
        vec![id.to_hex(), format!("{}.obao", id.to_hex())],
        "the blob and its outboard, no temp files left"
    );

    let out = dir.path().join("out.bin");
    assert_eq!(store.export(&id, &out).expect("export"), 11);
    assert_eq!(fs::read(&out).expect("read"), b"hello model");

    // Flip one byte of the stored blob: reads and exports refuse it, and the
    // export destination keeps its previous content.
    let path = store.path(&id);
    let mut bytes = fs::read(&path).expect("read");
    bytes[3] ^= 1;
    fs::write(&path, &bytes).expect("tamper");
    assert!(matches!(store.get(&id), Err(Error::Corrupt { .. })));
    assert!(matches!(
        store.export(&id, &out),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(fs::read(&out).expect("read"), b"hello model");

    let missing = ModelId::of(b"nothing");
    assert!(matches!(store.get(&missing), Err(Error::MissingBlob(_))));
}

#[test]
fn size_limit_and_expected_hash_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 10).expect("open");
    assert!(matches!(
        store.put_bytes(&[0u8; 11]),
        Err(Error::TooLarge { .. })
    ));
    assert!(store.put_bytes(&[0u8; 10]).is_ok());
    let wrong = ModelId::of(b"something else");
    assert!(matches!(
        store.put_reader(&b"abc"[..], Some(&wrong)),
        Err(Error::HashMismatch { .. })
    ));
    assert_eq!(
        files_under(dir.path()).len(),
        2,
        "only the 10-byte blob and its outboard"
    );
}

#[test]
fn interrupted_writes_leave_no_blob_and_are_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1 << 20).expect("open");
    // A writer that crashed mid-write leaves only its temp file: a prefix of
    // the content, never under the blob's final name.
    let content = b"a complete model file";
    let id = ModelId::of(content);
    let stale = dir.path().join(".tmp-999-1-0");
    fs::write(&stale, &content[..7]).expect("partial");
    let f = fs::File::options().write(true).open(&stale).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("age it");
    drop(f);
    let young = dir.path().join(".tmp-999-2-0");
    fs::write(&young, &content[..3]).expect("partial");
    assert!(!store.contains(&id));
    assert!(matches!(store.get(&id), Err(Error::MissingBlob(_))));

    // Reopening removes the stale temp file but not one a live writer may own.
    let store = BlobStore::open(dir.path(), 1 << 20).expect("reopen");
    assert!(!stale.exists());
    assert!(young.exists());
    assert_eq!(store.clean_temp(Duration::ZERO).expect("clean"), 1);
    assert!(files_under(dir.path()).is_empty());
    // The write then succeeds normally.
    assert_eq!(store.put_bytes(content).expect("put"), id);
}

#[test]
fn concurrent_writers_of_one_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1 << 24).expect("open");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let ids: Vec<ModelId> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.put_bytes(&content).expect("put")))
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    assert!(ids.iter().all(|i| *i == ModelId::of(&content)));
    assert_eq!(store.get(&ids[0]).expect("get"), content);
    assert_eq!(files_under(dir.path()).len(), 2, "one blob, one outboard");
}

fn manifest(key: &SecretKey, model: &[u8], name: &str, version: &str, t: u64) -> Manifest {
    Manifest {
        model_id: ModelId::of(model),
        size_bytes: model.len() as u64,
        name: name.into(),
        version: semver::Version::parse(version).expect("semver"),
        description: String::new(),
        license: Some("MIT".into()),
        publisher: key.public(),
        created_at_unix_s: t,
        parents: vec![],
        sources: vec![],
        inputs: vec![],
        outputs: vec![],
        opset: 17,
        cost: CostSpec::default(),
        runtime_version: "0.1.0".into(),
    }
}

fn publish(
    reg: &Registry,
    key: &SecretKey,
    model: &[u8],
    name: &str,
    version: &str,
    t: u64,
) -> Result<Published, Error> {
    reg.blobs().put_bytes(model)?;
    let s = SignedManifest::sign(manifest(key, model, name, version, t), key)?;
    reg.publish(&s)
}

#[test]
fn registry_publish_lookup_and_ownership() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path(), 1 << 20).expect("open");
    let alice = SecretKey::from_seed(&[1; 32]);
    let mallory = SecretKey::from_seed(&[2; 32]);

    let p1 = publish(&reg, &alice, b"v1 bytes", "org/net", "1.0.0", 10).expect("publish");
    let Published::New(id1) = p1 else {
        panic!("expected new: {p1:?}")
    };
    // Identical, and identical but for the creation time: idempotent.
    assert_eq!(
        publish(&reg, &alice, b"v1 bytes", "org/net", "1.0.0", 10).expect("again"),
        Published::Existing(id1)
    );
    assert_eq!(
        publish(&reg, &alice, b"v1 bytes", "org/net", "1.0.0", 99).expect("again"),
        Published::Existing(id1)
    );
    // Another publisher cannot take the name@version, with any bytes.
    for model in [&b"v1 bytes"[..], b"evil bytes"] {
        let e = publish(&reg, &mallory, model, "org/net", "1.0.0", 11).expect_err("taken");
        assert!(matches!(e, Error::NameTaken { .. }), "{e}");
    }
    // The owner cannot silently change what 1.0.0 is.
    let e = publish(&reg, &alice, b"other bytes", "org/net", "1.0.0", 12).expect_err("exists");
    assert!(matches!(e, Error::VersionExists { .. }), "{e}");
    assert_eq!(reg.resolve("org/net@1.0.0").expect("resolve").id, id1);

    let id2 = publish(&reg, &alice, b"v2 bytes", "org/net", "1.10.0", 20)
        .expect("v1.10")
        .id();
    let id3 = publish(&reg, &alice, b"v3 bytes", "org/net", "2.0.0-beta.1", 30)
        .expect("beta")
        .id();
    publish(&reg, &mallory, b"m", "mallory/net", "0.1.0", 1).expect("mallory's own");
    // Latest release by semver (1.10.0 > 1.0.0, and releases before betas).
    assert_eq!(reg.resolve("org/net").expect("latest").id, id2);
    assert_eq!(
        reg.resolve(&id3.to_string()).expect("by manifest id").id,
        id3
    );
    let by_model = reg
        .resolve(&ModelId::of(b"v2 bytes").to_string())
        .expect("by model id");
    assert_eq!(by_model.id, id2);
    assert!(matches!(
        reg.resolve("org/net@9.9.9"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(reg.resolve("nobody"), Err(Error::NotFound(_))));
    assert!(reg.resolve("Bad Name").is_err());

    let list: Vec<String> = reg
        .list()
        .expect("list")
        .iter()
        .map(|e| {
            format!(
                "{}@{}",
                e.signed.manifest().name,
                e.signed.manifest().version
            )
        })
        .collect();
    assert_eq!(
        list,
        [
            "mallory/net@0.1.0",
            "org/net@1.0.0",
            "org/net@1.10.0",
            "org/net@2.0.0-beta.1"
        ]
    );
}

#[test]
fn registry_refuses_bad_signatures_missing_blobs_and_tampered_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path(), 1 << 20).expect("open");
    let key = SecretKey::from_seed(&[1; 32]);
    let other = SecretKey::from_seed(&[3; 32]);

    // Not stored blob.
    let s = SignedManifest::sign(manifest(&key, b"absent", "a", "1.0.0", 0), &key).expect("sign");
    assert!(matches!(reg.publish(&s), Err(Error::MissingBlob(_))));
    // Wrong key's signature.
    reg.blobs().put_bytes(b"present").expect("put");
    let m = manifest(&key, b"present", "a", "1.0.0", 0);
    let forged = SignedManifest::from_parts(m.clone(), other.sign(&m.encode().expect("encode")))
        .expect("parts");
    assert!(matches!(reg.publish(&forged), Err(Error::Types(_))));
    // Wrong size.
    let mut m2 = m.clone();
    m2.size_bytes += 1;
    let s2 = SignedManifest::sign(m2, &key).expect("sign");
    assert!(matches!(reg.publish(&s2), Err(Error::Corrupt { .. })));
    assert!(reg.list().expect("list").is_empty());

    // A stored manifest tampered on disk is detected on read.
    let s = SignedManifest::sign(m, &key).expect("sign");
    let id = reg.publish(&s).expect("publish").id();
    let path = dir
        .path()
        .join("manifests")
        .join(format!("{}.gbm", id.to_hex()));
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).expect("tamper");
    assert!(matches!(reg.get(&id), Err(Error::Corrupt { .. })));
    assert!(reg.resolve("a@1.0.0").is_err());
}

#[cfg(unix)]
#[test]
fn key_files_are_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/key");
    let key = generate_secret_key().expect("key");
    write_secret_key(&path, &key).expect("write");
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(read_secret_key(&path).expect("read").public(), key.public());

    let other = generate_secret_key().expect("key");
    assert_ne!(other.public(), key.public());
    assert!(matches!(
        write_secret_key(&path, &other),
        Err(Error::KeyFile { .. })
    ));
    assert_eq!(read_secret_key(&path).expect("read").public(), key.public());

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = read_secret_key(&path).expect_err("too open");
    assert!(e.to_string().contains("chmod 600"), "{e}");

    let bad = dir.path().join("bad");
    write_secret_key(&bad, &key).expect("write");
    fs::write(&bad, "ed25519-secret:nothex\n").expect("garble");
    let e = read_secret_key(&bad).expect_err("malformed");
    assert!(
        !e.to_string().contains("nothex"),
        "errors do not echo key text: {e}"
    );
}

#[test]
fn private_files_are_replaced_whole_and_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("genesis.json");
    glassbox_store::write_private(&path, b"first").unwrap();
    glassbox_store::write_private(&path, b"second, longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
    assert_eq!(
        files_under(dir.path()),
        ["genesis.json"],
        "no temp file left"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A directory in the way is an error naming the path, not a panic.
    let blocked = dir.path().join("sub");
    let err = glassbox_store::write_private(&blocked, b"x").unwrap_err();
    assert!(err.to_string().contains("sub"), "{err}");
}

//! Verified streaming: outboards on put, encoded slices verified against the
//! blob's id, tampering detected.

use glassbox_store::stream::{CHUNK_GROUP_BYTES, max_encoded_len, verify_slice};
use glassbox_store::{BlobStore, Error, SliceError, SliceRequest};
use glassbox_types::ModelId;

const SIZE: usize = (1 << 20) + 123;
const MAX: u64 = 1 << 21;

fn data(size: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn store_with(bytes: &[u8]) -> (tempfile::TempDir, BlobStore, ModelId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1 << 24).expect("open");
    let id = store.put_bytes(bytes).expect("put");
    (dir, store, id)
}

fn requests() -> Vec<SliceRequest> {
    let size = SIZE as u64;
    let g = CHUNK_GROUP_BYTES;
    vec![
        SliceRequest { offset: 0, len: 1 },
        SliceRequest { offset: 0, len: g },
        SliceRequest {
            offset: g,
            len: 4 * g,
        },
        SliceRequest {
            offset: 1000,
            len: 5000,
        },
        SliceRequest {
            offset: 3 * g - 7,
            len: 2 * g + 13,
        },
        SliceRequest {
            offset: size - 123,
            len: 123,
        },
        SliceRequest {
            offset: size - 40_000,
            len: 40_000,
        },
        SliceRequest {
            offset: 0,
            len: size,
        },
    ]
}

#[test]
fn slices_round_trip() {
    let bytes = data(SIZE);
    let (_dir, store, id) = store_with(&bytes);
    for req in requests() {
        let enc = store.encode_slice(&id, req, MAX).expect("encode");
        assert!(enc.len() as u64 <= max_encoded_len(req.len), "{req:?}");
        let got = verify_slice(&id, SIZE as u64, req, &enc, MAX).expect("verify");
        let (a, b) = (req.offset as usize, (req.offset + req.len) as usize);
        assert_eq!(got, bytes[a..b], "{req:?}");
    }
}

#[test]
fn flipping_any_byte_of_a_slice_is_detected() {
    let bytes = data(SIZE);
    let (_dir, store, id) = store_with(&bytes);
    for req in [
        SliceRequest {
            offset: 3 * CHUNK_GROUP_BYTES - 7,
            len: 2 * CHUNK_GROUP_BYTES + 13,
        },
        SliceRequest {
            offset: SIZE as u64 - 123,
            len: 123,
        },
    ] {
        let enc = store.encode_slice(&id, req, MAX).expect("encode");
        let step = (enc.len() / 257).max(1);
        let mut positions: Vec<usize> = (0..enc.len()).step_by(step).collect();
        // Every byte of the hash pairs that open the encoding, and the last.
        positions.extend(0..enc.len().min(64 * 8));
        positions.push(enc.len() - 1);
        for pos in positions {
            let mut bad = enc.clone();
            bad[pos] ^= 0x01;
            let err = verify_slice(&id, SIZE as u64, req, &bad, MAX)
                .expect_err("a flipped byte must fail verification");
            assert!(
                matches!(
                    err,
                    SliceError::ParentMismatch { .. } | SliceError::DataMismatch { .. }
                ),
                "byte {pos}: {err}"
            );
        }
        // Truncated and extended encodings fail too.
        let short = &enc[..enc.len() - 1];
        assert!(matches!(
            verify_slice(&id, SIZE as u64, req, short, MAX),
            Err(SliceError::Truncated { .. })
        ));
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(
            verify_slice(&id, SIZE as u64, req, &long, MAX),
            Err(SliceError::TrailingBytes { extra: 1 })
        );
    }
}

#[test]
fn slice_against_the_wrong_root_or_size_fails() {
    let bytes = data(SIZE);
    let (_dir, store, id) = store_with(&bytes);
    let other = ModelId::of(b"some other model");
    for req in requests() {
        let enc = store.encode_slice(&id, req, MAX).expect("encode");
        assert!(verify_slice(&other, SIZE as u64, req, &enc, MAX).is_err());
    }
    // A size with a different tree shape fails.
    let req = SliceRequest {
        offset: 0,
        len: 1000,
    };
    let enc = store.encode_slice(&id, req, MAX).expect("encode");
    assert!(verify_slice(&id, 4 * SIZE as u64, req, &enc, MAX).is_err());
    // A request for different bytes than were encoded fails.
    let shifted = SliceRequest {
        offset: 2 * CHUNK_GROUP_BYTES,
        len: 1000,
    };
    assert!(verify_slice(&id, SIZE as u64, shifted, &enc, MAX).is_err());
}

#[test]
fn limits_are_enforced() {
    let bytes = data(SIZE);
    let (_dir, store, id) = store_with(&bytes);
    let req = SliceRequest {
        offset: 0,
        len: 100_000,
    };
    assert!(matches!(
        store.encode_slice(&id, req, 50_000),
        Err(Error::Slice(SliceError::TooLarge { .. }))
    ));
    let past_end = SliceRequest {
        offset: SIZE as u64 - 10,
        len: 11,
    };
    assert!(matches!(
        store.encode_slice(&id, past_end, MAX),
        Err(Error::Slice(SliceError::BadRange { .. }))
    ));
    let huge = vec![0u8; max_encoded_len(req.len) as usize + 1];
    assert!(matches!(
        verify_slice(&id, SIZE as u64, req, &huge, MAX),
        Err(SliceError::EncodedTooLarge { .. })
    ));
    assert!(matches!(
        verify_slice(&id, SIZE as u64, req, &[], MAX),
        Err(SliceError::Truncated { .. })
    ));
}

#[test]
fn outboard_is_written_on_put_and_stable() {
    let bytes = data(SIZE);
    let (dir, store, id) = store_with(&bytes);
    let path = store.outboard_path(&id);
    assert!(path.is_file(), "outboard written on put");
    let first = std::fs::read(&path).expect("read outboard");
    assert_eq!(store.outboard(&id).expect("outboard"), first);
    // Pairs of 64 bytes, one per chunk-group node: n groups have n - 1.
    let groups = (SIZE as u64).div_ceil(CHUNK_GROUP_BYTES);
    assert_eq!(first.len() as u64, 64 * (groups - 1));

    // A second put of the same blob (another store, and the same store).
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = BlobStore::open(dir2.path(), 1 << 24).expect("open");
    assert_eq!(store2.put_bytes(&bytes).expect("put"), id);
    assert_eq!(store2.outboard(&id).expect("outboard"), first);
    assert_eq!(store.put_bytes(&bytes).expect("put again"), id);
    assert_eq!(std::fs::read(&path).expect("read"), first);

    // A missing outboard is rebuilt; a truncated one is corrupt.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(store.outboard(&id).expect("rebuilt"), first);
    std::fs::write(&path, &first[..64]).expect("truncate");
    assert!(matches!(store.outboard(&id), Err(Error::Corrupt { .. })));
    drop(dir);
}

#[test]
fn corrupt_blob_is_not_served() {
    let bytes = data(SIZE);
    let (_dir, store, id) = store_with(&bytes);
    let mut bad = bytes.clone();
    bad[5 * CHUNK_GROUP_BYTES as usize + 3] ^= 0xff;
    std::fs::write(store.path(&id), &bad).expect("tamper");
    let req = SliceRequest {
        offset: 4 * CHUNK_GROUP_BYTES,
        len: 3 * CHUNK_GROUP_BYTES,
    };
    assert!(matches!(
        store.encode_slice(&id, req, MAX),
        Err(Error::Corrupt { .. })
    ));
    // Untouched ranges are still served and verify.
    let ok = SliceRequest {
        offset: 0,
        len: 100,
    };
    let enc = store.encode_slice(&id, ok, MAX).expect("encode");
    assert_eq!(
        verify_slice(&id, SIZE as u64, ok, &enc, MAX).expect("verify"),
        bytes[..100]
    );
}

#[test]
fn small_blobs_stream_too() {
    for size in [1usize, 1024, 1025, CHUNK_GROUP_BYTES as usize, 20_000] {
        let bytes = data(size);
        let (_dir, store, id) = store_with(&bytes);
        let req = SliceRequest {
            offset: 0,
            len: size as u64,
        };
        let enc = store.encode_slice(&id, req, MAX).expect("encode");
        let got = verify_slice(&id, size as u64, req, &enc, MAX).expect("verify");
        assert_eq!(got, bytes);
    }
}

//! Verified streaming: BLAKE3 tree ("bao") outboards and slices, via the
//! `bao-tree` crate's synchronous API.
//!
//! Every blob has an outboard `<hash>.obao` next to it: the BLAKE3 tree's
//! hash pairs in pre-order (64 bytes per pair, no size prefix) over chunk
//! groups of [`CHUNK_GROUP_BYTES`]. The tree's root is the blob's ordinary
//! BLAKE3 hash, i.e. its [`ModelId`].
//!
//! A peer serving a blob answers a [`SliceRequest`] with
//! [`BlobStore::encode_slice`](crate::BlobStore::encode_slice): the chunk
//! groups covering the range plus the hash pairs on their paths to the root.
//! The downloader checks it with [`verify_slice`] against the model id and
//! size from the signed manifest and gets back only verified bytes.

use std::io::Cursor;

use bao_tree::io::DecodeError;
use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{CreateOutboard, DecodeResponseIter};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use glassbox_types::ModelId;

/// Chunk groups of 16 BLAKE3 chunks: the outboard holds one hash pair per
/// group, 64 bytes per 16 KiB (0.4 %).
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// Bytes in a chunk group, the unit a slice is verified in.
pub const CHUNK_GROUP_BYTES: u64 = 1024 << 4;

/// A byte range of a blob: `len` bytes from `offset`. The encoded slice
/// covers the chunk groups around it; [`verify_slice`] returns exactly the
/// requested bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceRequest {
    /// First byte.
    pub offset: u64,
    /// Number of bytes (at least 1).
    pub len: u64,
}

/// Why a slice could not be produced or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SliceError {
    /// The range is empty or does not lie within the blob.
    #[error("bad slice request: {len} bytes at offset {offset} of a {size}-byte blob")]
    BadRange {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Blob size.
        size: u64,
    },
    /// The requested range is over the caller's limit.
    #[error("slice of {len} bytes is over the limit of {max_bytes} bytes")]
    TooLarge {
        /// Requested length.
        len: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The encoded slice is longer than any valid encoding of the request.
    #[error("encoded slice of {len} bytes is over the bound of {max_bytes} bytes")]
    EncodedTooLarge {
        /// Encoded length.
        len: u64,
        /// The bound for this request.
        max_bytes: u64,
    },
    /// A hash pair on the path to the root does not match.
    #[error("hash pair at tree level {level} (covering bytes from offset {offset}) does not match")]
    ParentMismatch {
        /// Level in the tree (0 = just above chunk groups).
        level: u32,
        /// First byte covered by the node.
        offset: u64,
    },
    /// Data of a chunk group does not match its hash.
    #[error("data of chunk {chunk} (byte offset {offset}) does not match its hash")]
    DataMismatch {
        /// First BLAKE3 chunk (1 KiB) of the group.
        chunk: u64,
        /// Its byte offset.
        offset: u64,
    },
    /// The encoded slice ended early.
    #[error("encoded slice is truncated at the data or hashes for byte offset {offset}")]
    Truncated {
        /// Byte offset of the missing part.
        offset: u64,
    },
    /// Bytes are left over after the encoding.
    #[error("{extra} unexpected bytes after the encoded slice")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The verified data did not cover the requested range.
    #[error("verified data stops at byte {at}, before the end of the request")]
    Incomplete {
        /// Where coverage stopped.
        at: u64,
    },
}

impl SliceRequest {
    /// Checks the request against a blob of `size` bytes and `max_bytes`,
    /// returning its end.
    pub fn check(&self, size: u64, max_bytes: u64) -> Result<u64, SliceError> {
        let bad = || SliceError::BadRange {
            offset: self.offset,
            len: self.len,
            size,
        };
        let end = self.offset.checked_add(self.len).ok_or_else(bad)?;
        if self.len == 0 || end > size {
            return Err(bad());
        }
        if self.len > max_bytes {
            return Err(SliceError::TooLarge {
                len: self.len,
                max_bytes,
            });
        }
        Ok(end)
    }

    /// The chunk ranges the encoding covers: the request rounded out to
    /// whole chunk groups (so leaves are always complete groups).
    pub(crate) fn chunk_ranges(&self) -> ChunkRanges {
        let group = CHUNK_GROUP_BYTES;
        let start = self.offset / group * (group / 1024);
        let end = self.offset.saturating_add(self.len).div_ceil(group) * (group / 1024);
        ChunkRanges::from(ChunkNum(start)..ChunkNum(end))
    }
}

/// The tree of a blob of `size` bytes.
pub(crate) fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// Computes the outboard (pre-order hash pairs) of `data` of `size` bytes,
/// returning it with its root hash.
pub(crate) fn create_outboard(
    data: impl std::io::Read,
    size: u64,
) -> std::io::Result<(blake3::Hash, Vec<u8>)> {
    let ob = PreOrderOutboard::<Vec<u8>>::create_sized(data, size, BLOCK_SIZE)?;
    Ok((ob.root, ob.data))
}

/// The most bytes a valid encoding of `len` requested bytes can take:
/// the range rounded out to chunk groups (at most two extra groups) plus
/// one 64-byte hash pair per group and two per tree level.
pub fn max_encoded_len(len: u64) -> u64 {
    let data = len.saturating_add(2 * CHUNK_GROUP_BYTES);
    let groups = data / CHUNK_GROUP_BYTES + 1;
    data.saturating_add(groups.saturating_add(2 * 64).saturating_mul(64))
}

/// Verifies an encoded slice (from an untrusted peer) of the blob `expected`
/// of `size` bytes (both from the signed manifest) and returns exactly the
/// requested bytes, all of them checked against `expected`. Requests over
/// `max_slice_bytes` and encodings longer than [`max_encoded_len`] are
/// refused before any work.
pub fn verify_slice(
    expected: &ModelId,
    size: u64,
    req: SliceRequest,
    encoded: &[u8],
    max_slice_bytes: u64,
) -> Result<Vec<u8>, SliceError> {
    let end = req.check(size, max_slice_bytes)?;
    let bound = max_encoded_len(req.len);
    if encoded.len() as u64 > bound {
        return Err(SliceError::EncodedTooLarge {
            len: encoded.len() as u64,
            max_bytes: bound,
        });
    }
    let ranges = req.chunk_ranges();
    let root = blake3::Hash::from_bytes(*expected.as_bytes());
    let mut cursor = Cursor::new(encoded);
    let mut out = Vec::with_capacity(usize::try_from(req.len).unwrap_or(0));
    let mut next = req.offset;
    for item in DecodeResponseIter::new(root, tree(size), &mut cursor, &ranges) {
        let leaf = match item {
            Ok(bao_tree::io::BaoContentItem::Leaf(leaf)) => leaf,
            Ok(bao_tree::io::BaoContentItem::Parent(_)) => continue,
            Err(e) => return Err(decode_error(e)),
        };
        let lo = leaf.offset;
        let hi = lo.saturating_add(leaf.data.len() as u64);
        if hi <= next || next >= end {
            continue;
        }
        if lo > next {
            return Err(SliceError::Incomplete { at: next });
        }
        let take_to = hi.min(end);
        // Both bounds lie within the leaf: lo <= next < take_to <= hi.
        let (a, b) = (
            usize::try_from(next - lo).map_err(|_| SliceError::Incomplete { at: next })?,
            usize::try_from(take_to - lo).map_err(|_| SliceError::Incomplete { at: next })?,
        );
        let Some(part) = leaf.data.get(a..b) else {
            return Err(SliceError::Incomplete { at: next });
        };
        out.extend_from_slice(part);
        next = take_to;
    }
    if next != end {
        return Err(SliceError::Incomplete { at: next });
    }
    let extra = (encoded.len() as u64).saturating_sub(cursor.position());
    if extra != 0 {
        return Err(SliceError::TrailingBytes { extra });
    }
    Ok(out)
}

fn decode_error(e: DecodeError) -> SliceError {
    match e {
        DecodeError::ParentHashMismatch(node) => SliceError::ParentMismatch {
            level: node.level(),
            offset: node.chunk_range().start.to_bytes(),
        },
        DecodeError::LeafHashMismatch(chunk) => SliceError::DataMismatch {
            chunk: chunk.0,
            offset: chunk.to_bytes(),
        },
        DecodeError::ParentNotFound(node) => SliceError::Truncated {
            offset: node.chunk_range().start.to_bytes(),
        },
        DecodeError::LeafNotFound(chunk) => SliceError::Truncated {
            offset: chunk.to_bytes(),
        },
        // Reading from an in-memory cursor only fails at its end.
        DecodeError::Io(_) => SliceError::Truncated { offset: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_plain_blake3_for_chunk_groups() {
        for size in [
            0usize,
            1,
            1024,
            1025,
            16 * 1024,
            16 * 1024 + 1,
            100_000,
            1 << 20,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (root, ob) = create_outboard(&data[..], size as u64).expect("outboard");
            assert_eq!(root, blake3::hash(&data), "size {size}");
            assert_eq!(ob.len() as u64, tree(size as u64).outboard_size());
        }
    }

    #[test]
    fn request_checks() {
        let r = SliceRequest { offset: 10, len: 0 };
        assert!(matches!(
            r.check(100, 100),
            Err(SliceError::BadRange { .. })
        ));
        let r = SliceRequest {
            offset: u64::MAX,
            len: 2,
        };
        assert!(matches!(
            r.check(100, 100),
            Err(SliceError::BadRange { .. })
        ));
        let r = SliceRequest { offset: 0, len: 50 };
        assert!(matches!(r.check(100, 10), Err(SliceError::TooLarge { .. })));
        assert_eq!(r.check(100, 50), Ok(50));
    }
}

//! Output chunks (docs/disputes.md, "Chunks"): the BLAKE3 tree of one
//! tensor's canonical bytes, which a dispute bisects below a single
//! operator so that the referee computes one 1 KiB chunk of its output,
//! not the whole operator.
//!
//! A [`TensorHash`](crate::TensorHash) is already the root of that tree
//! (BLAKE3 hashes 1,024-byte chunks and merges them pairwise, the left
//! subtree holding the largest power of two of chunks strictly below the
//! count: the shape of [`crate::trace::split`]), so a trace needs no extra
//! commitment: a party proves a subtree by its two children, and the
//! referee checks one chunk by its chaining value. The arithmetic is
//! BLAKE3's own (`blake3::hazmat`); these functions never panic on any
//! input.

use blake3::hazmat::{self, HasherExt, Mode};

use crate::Digest;

use crate::MerkleNode;

/// Bytes per chunk: BLAKE3's chunk length.
pub const CHUNK_BYTES: u64 = blake3::CHUNK_LEN as u64;

/// How many chunks the BLAKE3 tree of `len` bytes has (1 for 0 bytes).
pub fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK_BYTES).max(1)
}

/// The byte range `[start, end)` of chunk `index` of a `len`-byte input;
/// `None` past its last chunk.
pub fn chunk_range(len: u64, index: u64) -> Option<(u64, u64)> {
    if index >= chunk_count(len) {
        return None;
    }
    let start = index.checked_mul(CHUNK_BYTES)?;
    Some((start, start.saturating_add(CHUNK_BYTES).min(len)))
}

/// The hash of the subtree of chunks starting at chunk `first`, whose
/// bytes are `bytes`: the root hash (`blake3::hash`) when `whole` (the
/// subtree is the whole input), else its chaining value. `None` when the
/// bytes cannot form such a subtree (empty but not whole, or more than
/// the subtree at `first` can hold).
pub fn subtree_hash(bytes: &[u8], first: u64, whole: bool) -> Option<MerkleNode> {
    if whole {
        return (first == 0).then(|| blake3::hash(bytes).into());
    }
    let offset = first.checked_mul(CHUNK_BYTES)?;
    let len = u64::try_from(bytes.len()).ok()?;
    if len == 0 || hazmat::max_subtree_len(offset).is_some_and(|max| len > max) {
        return None;
    }
    let cv = blake3::Hasher::new()
        .set_input_offset(offset)
        .update(bytes)
        .finalize_non_root();
    Some(MerkleNode::from_array(cv))
}

/// The hash of a subtree from its two children: the root hash when `root`
/// (the subtree is the whole input), else its chaining value.
pub fn parent(left: &MerkleNode, right: &MerkleNode, root: bool) -> MerkleNode {
    let (l, r) = (*left.as_bytes(), *right.as_bytes());
    if root {
        hazmat::merge_subtrees_root(&l, &r, Mode::Hash).into()
    } else {
        MerkleNode::from_array(hazmat::merge_subtrees_non_root(&l, &r, Mode::Hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::split;

    /// The subtree hash of chunks `[lo, hi)` computed by merging children,
    /// as a dispute does.
    fn merged(bytes: &[u8], lo: u64, hi: u64, whole: bool) -> MerkleNode {
        if hi - lo == 1 {
            let (s, e) = chunk_range(bytes.len() as u64, lo).unwrap();
            return subtree_hash(&bytes[s as usize..e as usize], lo, whole).unwrap();
        }
        let k = split(hi - lo);
        parent(
            &merged(bytes, lo, lo + k, false),
            &merged(bytes, lo + k, hi, false),
            whole,
        )
    }

    #[test]
    fn merging_chunks_gives_the_tensor_hash() {
        for len in [
            0usize,
            1,
            1023,
            1024,
            1025,
            2048,
            3000,
            4096,
            5121,
            9 * 1024 + 7,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let n = chunk_count(len as u64);
            let want: MerkleNode = blake3::hash(&bytes).into();
            assert_eq!(merged(&bytes, 0, n, true), want, "len {len}");
            // A subtree hashed whole agrees with its merged children.
            if n >= 2 {
                let k = split(n);
                let end = (k * CHUNK_BYTES) as usize;
                assert_eq!(
                    subtree_hash(&bytes[end..], k, false),
                    Some(merged(&bytes, k, n, false)),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn bad_subtrees_are_none_not_panics() {
        assert_eq!(subtree_hash(&[], 3, false), None);
        assert_eq!(subtree_hash(&[1; 3000], 1, false), None);
        assert_eq!(subtree_hash(&[1], 1, true), None);
        assert_eq!(subtree_hash(&[1], u64::MAX, false), None);
        assert_eq!(chunk_range(10, 1), None);
        assert_eq!(chunk_range(2048, 1), Some((1024, 2048)));
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(1025), 2);
    }
}

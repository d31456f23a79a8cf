//! The execution-trace commitment (docs/determinism.md, "Trace
//! commitment"): what a run commits to, and the arithmetic a verifier
//! needs to check an opened leaf without the runtime.
//!
//! Each top-level operator contributes one [`TraceLeaf`]: the BLAKE3 of
//! [`tags::TRACE_LEAF`], its index (u64 LE), its output count (u32 LE) and
//! its outputs' canonical hashes. The leaves form a Merkle tree in the
//! shape of RFC 6962 (the largest power of two strictly below the range
//! size goes left), with the one-byte tags [`tags::MERKLE_LEAF`] and
//! [`tags::MERKLE_NODE`]. The [`TraceRoot`] binds that Merkle root to the
//! model id, the input hashes and the leaf count.

use crate::{MerkleNode, ModelId, TensorHash, TraceLeaf, TraceRoot, tags};

/// The leaf of operator `node` whose outputs hash to `outputs`, in order:
/// `BLAKE3("GBL1" || node (u64 LE) || count (u32 LE) || hashes)`.
pub fn leaf(node: u64, outputs: impl ExactSizeIterator<Item = TensorHash>) -> TraceLeaf {
    let mut h = blake3::Hasher::new();
    h.update(tags::TRACE_LEAF);
    h.update(&node.to_le_bytes());
    h.update(
        &u32::try_from(outputs.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for o in outputs {
        h.update(o.as_bytes());
    }
    h.finalize().into()
}

/// The Merkle hash of a one-leaf range: `BLAKE3(0x00 || leaf)`.
pub fn hash_leaf(leaf: &TraceLeaf) -> MerkleNode {
    let mut h = blake3::Hasher::new();
    h.update(&[tags::MERKLE_LEAF]);
    h.update(leaf.as_bytes());
    h.finalize().into()
}

/// The Merkle hash of a range from its halves: `BLAKE3(0x01 || l || r)`.
pub fn hash_node(left: &MerkleNode, right: &MerkleNode) -> MerkleNode {
    let mut h = blake3::Hasher::new();
    h.update(&[tags::MERKLE_NODE]);
    h.update(left.as_bytes());
    h.update(right.as_bytes());
    h.finalize().into()
}

/// Where a range of `n >= 2` leaves splits: the largest power of two
/// strictly below `n` goes left (RFC 6962's shape). 1 for `n <= 2`.
pub fn split(n: u64) -> u64 {
    let mut k = 1u64;
    while k.saturating_mul(2) < n {
        k *= 2;
    }
    k
}

fn split_len(n: usize) -> usize {
    // `n` is a slice length, so the split fits back into a usize.
    usize::try_from(split(n as u64)).unwrap_or(usize::MAX)
}

/// The Merkle root of `leaves`; the BLAKE3 of the empty string for none.
pub fn merkle_root(leaves: &[TraceLeaf]) -> MerkleNode {
    match leaves {
        [] => blake3::hash(b"").into(),
        [one] => hash_leaf(one),
        _ => {
            let (left, right) = leaves.split_at(split_len(leaves.len()));
            hash_node(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The audit path of leaf `index`: sibling hashes from the leaf up to the
/// root; `None` when `index` is out of range.
pub fn audit_path(leaves: &[TraceLeaf], index: usize) -> Option<Vec<MerkleNode>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut range, mut i) = (leaves, index);
    while range.len() > 1 {
        let (left, right) = range.split_at(split_len(range.len()));
        if i < left.len() {
            path.push(merkle_root(right));
            range = left;
        } else {
            path.push(merkle_root(left));
            i -= left.len();
            range = right;
        }
    }
    path.reverse();
    Some(path)
}

/// The Merkle root of `n` leaves recomputed from leaf `index` and its
/// audit path (siblings from the leaf up); `None` when the index is out
/// of range or the path has the wrong length.
pub fn root_from_path(
    leaf: &TraceLeaf,
    index: u64,
    n: u64,
    path: &[MerkleNode],
) -> Option<MerkleNode> {
    if index >= n {
        return None;
    }
    // Walk down, recording in `left` whether the leaf is in the left half
    // at each level (bit `depth`); a u64 range halves at most 64 times.
    let (mut size, mut i, mut depth, mut left) = (n, index, 0usize, 0u64);
    while size > 1 {
        let k = split(size);
        if i < k {
            left |= 1 << depth;
            size = k;
        } else {
            i -= k;
            size -= k;
        }
        depth += 1;
    }
    if depth != path.len() {
        return None;
    }
    let mut acc = hash_leaf(leaf);
    for (level, sibling) in path.iter().enumerate() {
        let bit = depth - 1 - level;
        acc = if left >> bit & 1 == 1 {
            hash_node(&acc, sibling)
        } else {
            hash_node(sibling, &acc)
        };
    }
    Some(acc)
}

/// The trace root: `BLAKE3("GBR1" || model || input count (u32 LE) ||
/// input hashes || leaf count (u64 LE) || Merkle root of the leaves)`.
pub fn root(
    model: &ModelId,
    inputs: &[TensorHash],
    leaf_count: u64,
    leaves_root: &MerkleNode,
) -> TraceRoot {
    let mut h = blake3::Hasher::new();
    h.update(tags::TRACE_ROOT);
    h.update(model.as_bytes());
    h.update(
        &u32::try_from(inputs.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for i in inputs {
        h.update(i.as_bytes());
    }
    h.update(&leaf_count.to_le_bytes());
    h.update(leaves_root.as_bytes());
    h.finalize().into()
}

/// The full trace of one run: what [`root`] commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// BLAKE3 of the model bytes.
    pub model_id: ModelId,
    /// Canonical hashes of the graph inputs, in graph order.
    pub input_hashes: Vec<TensorHash>,
    /// One leaf per top-level operator, in execution order.
    pub leaves: Vec<TraceLeaf>,
}

impl Trace {
    /// The trace root.
    pub fn root(&self) -> TraceRoot {
        root(
            &self.model_id,
            &self.input_hashes,
            self.leaves.len() as u64,
            &self.leaves_root(),
        )
    }

    /// The Merkle root over the leaves alone.
    pub fn leaves_root(&self) -> MerkleNode {
        merkle_root(&self.leaves)
    }

    /// The audit path of leaf `index`; `None` when out of range.
    pub fn audit_path(&self, index: usize) -> Option<Vec<MerkleNode>> {
        audit_path(&self.leaves, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<TraceLeaf> {
        (0..n)
            .map(|i| leaf(i, [TensorHash::from_bytes([i as u8; 32])].into_iter()))
            .collect()
    }

    #[test]
    fn paths_verify_for_every_leaf_and_size_and_nothing_else() {
        for n in 1..40u64 {
            let l = leaves(n);
            let r = merkle_root(&l);
            for i in 0..n {
                let p = audit_path(&l, i as usize).unwrap();
                assert_eq!(root_from_path(&l[i as usize], i, n, &p), Some(r), "{n} {i}");
                let other = leaf(99, std::iter::empty());
                assert_ne!(root_from_path(&other, i, n, &p), Some(r));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert_ne!(root_from_path(&l[i as usize], j, n, &p), Some(r));
                }
                assert_eq!(root_from_path(&l[i as usize], i, n + 64, &p), None);
            }
            assert_eq!(audit_path(&l, n as usize), None);
            assert_eq!(root_from_path(&l[0], n, n, &[]), None);
        }
    }

    #[test]
    fn huge_counts_are_answered_without_work_or_panic() {
        let l = leaves(1)[0];
        assert_eq!(root_from_path(&l, 0, u64::MAX, &[]), None);
        assert_eq!(root_from_path(&l, u64::MAX - 1, u64::MAX, &[]), None);
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn the_root_binds_model_inputs_and_leaves() {
        let l = leaves(5);
        let t = Trace {
            model_id: ModelId::from_bytes([0; 32]),
            input_hashes: vec![TensorHash::from_bytes([1; 32])],
            leaves: l.clone(),
        };
        let a = t.root();
        let mut u = t.clone();
        u.model_id = ModelId::from_bytes([2; 32]);
        assert_ne!(u.root(), a);
        let mut u = t.clone();
        u.input_hashes[0] = TensorHash::from_bytes([3; 32]);
        assert_ne!(u.root(), a);
        let mut u = t.clone();
        u.leaves.pop();
        assert_ne!(u.root(), a);
    }
}

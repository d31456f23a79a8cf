//! Execution-trace commitments (docs/determinism.md, "Trace commitment").
//!
//! Each node contributes one leaf: the BLAKE3 hash of its index and of the
//! canonical hashes of its outputs. The leaves form a Merkle tree in the
//! shape of RFC 6962 (largest power of two on the left), with one-byte domain
//! tags for leaves and interior nodes. The trace root binds the Merkle root
//! to the model id and to the hashes of the inputs.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A 32-byte BLAKE3 digest.
pub type Hash = [u8; 32];

const LEAF_TAG: u8 = 0x00;
const NODE_TAG: u8 = 0x01;

/// The leaf of node `index` whose bound outputs are `outputs`.
pub fn node_leaf<'a>(index: usize, outputs: impl ExactSizeIterator<Item = &'a Tensor>) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"GBL1");
    h.update(&(index as u64).to_le_bytes());
    h.update(&(outputs.len() as u32).to_le_bytes());
    for t in outputs {
        h.update(&t.hash());
    }
    *h.finalize().as_bytes()
}

/// The leaf from already computed output hashes.
pub fn node_leaf_from_hashes(index: usize, output_hashes: &[Hash]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"GBL1");
    h.update(&(index as u64).to_le_bytes());
    h.update(&(output_hashes.len() as u32).to_le_bytes());
    for o in output_hashes {
        h.update(o);
    }
    *h.finalize().as_bytes()
}

fn hash_leaf(leaf: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_TAG]);
    h.update(leaf);
    *h.finalize().as_bytes()
}

fn hash_node(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[NODE_TAG]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The Merkle root of the leaves (the hash of the empty string for none).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => hash_leaf(&leaves[0]),
        n => {
            let k = split(n);
            hash_node(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index`: sibling hashes from the leaf up to the root.
pub fn merkle_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>> {
    if index >= leaves.len() {
        return Err(Error::Trace(format!(
            "leaf {index} is out of range (the trace has {} leaves)",
            leaves.len()
        )));
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, mut i) = (0, leaves.len(), index);
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if i < k {
            stack.push(merkle_root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            stack.push(merkle_root(&leaves[lo..lo + k]));
            lo += k;
            i -= k;
        }
    }
    while let Some(h) = stack.pop() {
        path.push(h);
    }
    Ok(path)
}

/// Recomputes the Merkle root from a leaf, its index, the leaf count and its
/// audit path. Returns `None` if the path has the wrong length.
pub fn merkle_root_from_proof(leaf: &Hash, index: usize, n: usize, path: &[Hash]) -> Option<Hash> {
    if index >= n {
        return None;
    }
    // Walk down recording which side the leaf is on at each level.
    let mut sides = Vec::new();
    let (mut lo, mut hi, mut i) = (0, n, index);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if i < k {
            sides.push(true);
            hi = lo + k;
        } else {
            sides.push(false);
            lo += k;
            i -= k;
        }
    }
    if sides.len() != path.len() {
        return None;
    }
    let mut acc = hash_leaf(leaf);
    for (sib, left) in path.iter().zip(sides.iter().rev()) {
        acc = if *left {
            hash_node(&acc, sib)
        } else {
            hash_node(sib, &acc)
        };
    }
    Some(acc)
}

/// The trace root: binds the Merkle root of the node leaves to the model id
/// and the input hashes.
pub fn trace_root(model_id: &Hash, input_hashes: &[Hash], leaves: &[Hash]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"GBR1");
    h.update(model_id);
    h.update(&(input_hashes.len() as u32).to_le_bytes());
    for i in input_hashes {
        h.update(i);
    }
    h.update(&(leaves.len() as u64).to_le_bytes());
    h.update(&merkle_root(leaves));
    *h.finalize().as_bytes()
}

/// The full trace of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// BLAKE3 of the model bytes.
    pub model_id: Hash,
    /// Canonical hashes of the graph inputs, in graph order.
    pub input_hashes: Vec<Hash>,
    /// One leaf per node, in topological order.
    pub leaves: Vec<Hash>,
}

impl Trace {
    /// The trace root.
    pub fn root(&self) -> Hash {
        trace_root(&self.model_id, &self.input_hashes, &self.leaves)
    }

    /// The Merkle root over the leaves alone.
    pub fn leaves_root(&self) -> Hash {
        merkle_root(&self.leaves)
    }

    /// Audit path for leaf `index`.
    pub fn proof(&self, index: usize) -> Result<Vec<Hash>> {
        merkle_proof(&self.leaves, index)
    }
}

/// Lower-case hex of a hash.
pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
            .collect()
    }

    #[test]
    fn proofs_verify_for_every_leaf_and_size() {
        for n in 1..40 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let p = merkle_proof(&l, i).unwrap();
                assert_eq!(
                    merkle_root_from_proof(&l[i], i, n, &p),
                    Some(root),
                    "n={n} i={i}"
                );
                let mut bad = l[i];
                bad[0] ^= 1;
                assert_ne!(merkle_root_from_proof(&bad, i, n, &p), Some(root));
                if n > 1 {
                    assert_ne!(
                        merkle_root_from_proof(&l[i], (i + 1) % n, n, &p),
                        Some(root)
                    );
                }
            }
        }
    }

    #[test]
    fn root_depends_on_model_and_inputs() {
        let l = leaves(5);
        let a = trace_root(&[0; 32], &[[1; 32]], &l);
        assert_ne!(a, trace_root(&[2; 32], &[[1; 32]], &l));
        assert_ne!(a, trace_root(&[0; 32], &[[3; 32]], &l));
        assert_ne!(a, trace_root(&[0; 32], &[[1; 32]], &l[..4]));
    }
}

//! Execution-trace commitments (docs/determinism.md, "Trace commitment").
//!
//! The commitment itself (leaves, Merkle tree, audit paths, trace root) is
//! `glassbox_primitives::trace`, the one definition the ledger checks
//! disputes against; this module adds the runtime's side: a node's leaf
//! from its output tensors.

pub use glassbox_primitives::trace::{Trace, audit_path, merkle_root, root_from_path};
pub use glassbox_primitives::{MerkleNode, TensorHash, TraceLeaf, TraceRoot};

use crate::tensor::Tensor;

/// The leaf of node `index` whose bound outputs are `outputs`.
pub fn node_leaf<'a>(
    index: usize,
    outputs: impl ExactSizeIterator<Item = &'a Tensor>,
) -> TraceLeaf {
    glassbox_primitives::trace::leaf(index as u64, outputs.map(Tensor::hash))
}

/// The leaf from already computed output hashes.
pub fn node_leaf_from_hashes(index: usize, output_hashes: &[TensorHash]) -> TraceLeaf {
    glassbox_primitives::trace::leaf(index as u64, output_hashes.iter().copied())
}

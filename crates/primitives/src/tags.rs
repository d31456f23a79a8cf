//! Every domain-separation tag and format magic of the protocol, in one
//! registry. A tag starts the bytes of each hash, signature message or
//! encoding, so that no two kinds of value can be taken for each other.
//! Each line names the document that defines the format; the frozen
//! fixtures in `tests/golden.rs` pin every value, and
//! [`ALL`] lets a test check that no two tags collide.

// ---- runtime (docs/determinism.md) ----------------------------------------

/// Canonical tensor encoding and hash ("Tensor hashing").
pub const TENSOR: &[u8; 4] = b"GBT1";
/// A trace leaf: operator index and output hashes ("Trace commitment").
pub const TRACE_LEAF: &[u8; 4] = b"GBL1";
/// A trace root: model, inputs, leaf count, Merkle root ("Trace commitment").
pub const TRACE_ROOT: &[u8; 4] = b"GBR1";
/// The commitment to a subgraph's runs ("Control flow").
pub const SUBGRAPH: &[u8; 4] = b"GBS1";
/// First byte of a Merkle leaf hash in the trace tree ("Trace commitment").
pub const MERKLE_LEAF: u8 = 0x00;
/// First byte of a Merkle interior-node hash in the trace tree.
pub const MERKLE_NODE: u8 = 0x01;

// ---- manifests (docs/manifest.md) -----------------------------------------

/// An encoded manifest.
pub const MANIFEST: &[u8; 4] = b"GBMF";
/// An encoded signed manifest.
pub const SIGNED_MANIFEST: &[u8; 4] = b"GBSM";
/// The message a publisher signs: this tag, then the encoded manifest.
pub const MANIFEST_SIGNING: &[u8; 20] = b"glassbox.manifest.v1";

// ---- ledger (docs/ledger.md, docs/jobs.md, docs/disputes.md) --------------

/// The message a transaction's sender signs.
pub const TX_SIGNING: &[u8; 5] = b"GBTX1";
/// An encoded genesis.
pub const GENESIS: &[u8; 4] = b"GBGN";
/// Marks genesis dispute parameters that differ from the defaults.
pub const GENESIS_DISPUTES: &[u8; 4] = b"GBD1";
/// A sparse Merkle tree key path.
pub const SMT_PATH: &[u8; 4] = b"GBK1";
/// A sparse Merkle tree leaf.
pub const SMT_LEAF: &[u8; 4] = b"GBL2";
/// A sparse Merkle tree interior node.
pub const SMT_NODE: &[u8; 4] = b"GBN1";
/// An executor's sealed result commitment.
pub const COMMITMENT: &[u8; 5] = b"GBCM1";
/// The hash of a job's output tensor hashes.
pub const OUTPUTS: &[u8; 5] = b"GBOH1";
/// The draw of a job's executors.
pub const SELECTION: &[u8; 5] = b"GBSL1";
/// The draw of an optimistic job's auditor.
pub const AUDIT: &[u8; 5] = b"GBAU1";
/// A state snapshot: every record of the authenticated map ("Snapshots").
pub const SNAPSHOT: &[u8; 4] = b"GBSS";

// ---- node (docs/consensus.md) ---------------------------------------------

/// The Merkle root of a block's transactions.
pub const TXS_ROOT: &[u8; 5] = b"GBTR1";
/// The randomness a block's seed yields for the ledger.
pub const RANDOMNESS: &[u8; 5] = b"GBRN1";
/// A node's snapshot blob: a finalized block and the state after it
/// (docs/operations.md, "Snapshots").
pub const NODE_SNAPSHOT: &[u8; 4] = b"GBNS";
/// A run of finalized blocks and the certificate of its last one, served
/// to full nodes (docs/operations.md, "Full and executor-only nodes").
pub const NODE_SEGMENT: &[u8; 4] = b"GBSG";
/// An executor's durable results, written before their commitments are
/// sent (docs/jobs.md, "Executor").
pub const EXECUTOR_RESULTS: &[u8; 4] = b"GBXR";
/// Commonware's namespace for consensus messages and signatures.
pub const CONSENSUS_NAMESPACE: &[u8; 9] = b"_GLASSBOX";

/// Every multi-byte tag, for collision checks.
pub const ALL: &[&[u8]] = &[
    TENSOR,
    TRACE_LEAF,
    TRACE_ROOT,
    SUBGRAPH,
    MANIFEST,
    SIGNED_MANIFEST,
    MANIFEST_SIGNING,
    TX_SIGNING,
    GENESIS,
    GENESIS_DISPUTES,
    SMT_PATH,
    SMT_LEAF,
    SMT_NODE,
    COMMITMENT,
    OUTPUTS,
    SELECTION,
    AUDIT,
    SNAPSHOT,
    TXS_ROOT,
    RANDOMNESS,
    NODE_SNAPSHOT,
    NODE_SEGMENT,
    EXECUTOR_RESULTS,
    CONSENSUS_NAMESPACE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tag_is_a_prefix_of_another() {
        for (i, a) in ALL.iter().enumerate() {
            for (j, b) in ALL.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{a:?} is a prefix of {b:?}");
                }
            }
        }
    }
}

//! Snapshots of the finalized state (docs/operations.md, "Snapshots"), so
//! that a restart replays only the blocks after the newest one instead of
//! the whole chain.
//!
//! Every `every_blocks` finalized blocks the finalizer hands the block and
//! the state after it (an O(1) clone) to a background task, which writes
//! one blob named by the height (8 bytes, big-endian) in the
//! `{prefix}-snapshots` partition of the runtime's storage, syncs it, and
//! only then removes snapshots beyond the newest `keep`. The blob:
//!
//! ```text
//! "GBNS" | version u8 (1) | block: u32 length + bytes |
//!   state snapshot (docs/ledger.md, "Snapshots"): u64 length + bytes |
//!   BLAKE3 of everything before (32 bytes)
//! ```
//!
//! A torn or corrupt blob fails its checksum; one that passes must still
//! be the block marshal archived at its height, and its records must hash
//! to that block's state root, before the node starts from it. Anything
//! less falls back to the next older snapshot, then to genesis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use commonware_codec::{Decode, Encode};
use commonware_consensus::Heightable;
use commonware_cryptography::Digestible;
use commonware_runtime::{Blob, ReadOptions, Spawner, Storage, WriteOptions};
use glassbox_ledger::State;
use tracing::{debug, info, warn};

use crate::consensus::block::Block;

/// Format version of a snapshot blob.
pub const SNAPSHOT_BLOB_VERSION: u8 = 1;

/// How often and how many snapshots a node keeps.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// Finalized blocks between two snapshots; 0 turns snapshots off.
    pub every_blocks: u64,
    /// Snapshots kept (at least 1): the newest, and older ones to fall
    /// back on should it be unreadable.
    pub keep: usize,
    /// Largest snapshot blob read at start, in bytes (it is read whole).
    pub max_bytes: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_blocks: 1_000,
            keep: 2,
            max_bytes: 16 << 30,
        }
    }
}

/// Why a snapshot blob is not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The blob is larger than [`SnapshotPolicy::max_bytes`].
    #[error("{len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The blob is not a whole, well-formed snapshot.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The blob's block is not the one finalized at its height.
    #[error("its block is not the block this node finalized at height {0}")]
    NotFinalized(u64),
    /// The records are not the state after the block.
    #[error(transparent)]
    State(#[from] glassbox_ledger::SnapshotError),
}

/// The snapshot blob of `block` and the `state` after it.
pub fn encode(block: &Block, state: &State) -> Vec<u8> {
    let block_bytes = block.encode();
    let records = state.snapshot();
    let mut out = Vec::with_capacity(4 + 1 + 4 + block_bytes.len() + 8 + records.len() + 32);
    out.extend_from_slice(glassbox_primitives::tags::NODE_SNAPSHOT);
    out.push(SNAPSHOT_BLOB_VERSION);
    // A block is at most the ledger's hard block limit (64 MiB).
    out.extend_from_slice(
        &u32::try_from(block_bytes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&block_bytes);
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    out.extend_from_slice(&records);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The block and state a snapshot blob holds; the state is checked
/// against the block's state root. `height` is the blob's name.
pub fn decode(bytes: &[u8], height: u64) -> Result<(Block, State), SnapshotError> {
    let bad = |what: &str| SnapshotError::Malformed(what.to_string());
    let (body, sum) = bytes
        .split_at_checked(bytes.len().saturating_sub(32))
        .filter(|(b, _)| b.len() >= 4 + 1 + 4)
        .ok_or_else(|| bad("shorter than its header"))?;
    if blake3::hash(body).as_bytes() != sum {
        return Err(bad("checksum mismatch (a torn or corrupt write)"));
    }
    let (magic, rest) = body.split_at(4);
    if magic != glassbox_primitives::tags::NODE_SNAPSHOT {
        return Err(bad("not a node snapshot (bad magic)"));
    }
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("no version"))?;
    if version != SNAPSHOT_BLOB_VERSION {
        return Err(SnapshotError::Malformed(format!(
            "version {version}, this build reads {SNAPSHOT_BLOB_VERSION}"
        )));
    }
    let (len, rest) = rest.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| bad("block length"))?) as usize;
    let (block_bytes, rest) = rest
        .split_at_checked(len)
        .ok_or_else(|| bad("block runs past the end"))?;
    let block = Block::decode_cfg(bytes::Bytes::copy_from_slice(block_bytes), &())
        .map_err(|e| SnapshotError::Malformed(format!("block: {e}")))?;
    if block.height().get() != height {
        return Err(SnapshotError::Malformed(format!(
            "holds block {} under the name of height {height}",
            block.height().get()
        )));
    }
    let (len, records) = rest
        .split_at_checked(8)
        .ok_or_else(|| bad("no state length"))?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("state length"))?);
    if usize::try_from(len).ok() != Some(records.len()) {
        return Err(bad("state length does not match the blob"));
    }
    let state = State::from_snapshot(records, &block.header().state_root)?;
    Ok((block, state))
}

fn storage(e: commonware_runtime::Error) -> SnapshotError {
    SnapshotError::Storage(e.to_string())
}

/// Writes snapshots in the background and finds them at start.
#[derive(Clone, Debug)]
pub struct Snapshots {
    partition: String,
    policy: SnapshotPolicy,
    /// A snapshot is being written: the next one due is skipped.
    busy: Arc<AtomicBool>,
}

impl Snapshots {
    /// Snapshots in the `{prefix}-snapshots` partition.
    pub fn new(prefix: &str, policy: SnapshotPolicy) -> Self {
        Snapshots {
            partition: format!("{prefix}-snapshots"),
            policy,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The heights of the stored snapshots, newest first.
    pub async fn heights<E: Storage>(&self, context: &E) -> Result<Vec<u64>, SnapshotError> {
        let names = match context.scan(&self.partition).await {
            Ok(names) => names,
            Err(commonware_runtime::Error::PartitionMissing(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut heights: Vec<u64> = names
            .iter()
            .filter_map(|n| <[u8; 8]>::try_from(n.as_slice()).ok())
            .map(u64::from_be_bytes)
            .collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        Ok(heights)
    }

    /// Reads and checks the snapshot at `height`.
    pub async fn load<E: Storage>(
        &self,
        context: &E,
        height: u64,
    ) -> Result<(Block, State), SnapshotError> {
        let (blob, len) = context
            .open(&self.partition, &height.to_be_bytes())
            .await
            .map_err(storage)?;
        if len > self.policy.max_bytes {
            return Err(SnapshotError::TooLarge {
                len,
                max: self.policy.max_bytes,
            });
        }
        let len = usize::try_from(len).map_err(|_| SnapshotError::TooLarge {
            len,
            max: self.policy.max_bytes,
        })?;
        let bytes = blob
            .read_at(0, len, ReadOptions::DONT_CACHE)
            .await
            .map_err(storage)?
            .coalesce();
        decode(bytes.as_ref(), height)
    }

    /// Whether a snapshot is due after finalizing `height`.
    pub fn due(&self, height: u64) -> bool {
        self.policy.every_blocks > 0
            && height > 0
            && height.is_multiple_of(self.policy.every_blocks)
    }

    /// Writes the snapshot of `block` and `state` in the background,
    /// unless one is still being written (then this one is skipped: the
    /// next is due `every_blocks` later).
    pub fn spawn_write<E: Storage + Spawner>(&self, context: &E, block: Arc<Block>, state: State) {
        if self.busy.swap(true, Ordering::AcqRel) {
            debug!(
                height = block.height().get(),
                "a snapshot is still being written; skipping this one"
            );
            return;
        }
        let this = self.clone();
        context
            .child("snapshot")
            .shared(true)
            .spawn(move |context| async move {
                let height = block.height().get();
                match this.write(&context, &block, &state).await {
                    Ok(bytes) => info!(height, bytes, "wrote a state snapshot"),
                    Err(e) => warn!(height, error = %e, "writing a state snapshot failed"),
                }
                this.busy.store(false, Ordering::Release);
            });
    }

    async fn write<E: Storage>(
        &self,
        context: &E,
        block: &Block,
        state: &State,
    ) -> Result<usize, SnapshotError> {
        let height = block.height().get();
        let bytes = encode(block, state);
        let n = bytes.len();
        let (blob, _) = context
            .open(&self.partition, &height.to_be_bytes())
            .await
            .map_err(storage)?;
        blob.resize(0).await.map_err(storage)?;
        blob.write_at(0, bytes, WriteOptions::SYNC)
            .await
            .map_err(storage)?;
        blob.sync().await.map_err(storage)?;
        drop(blob);
        // Only now that the new one is durable: the oldest beyond `keep`.
        let keep = self.policy.keep.max(1);
        for old in self.heights(context).await?.into_iter().skip(keep) {
            context
                .remove(&self.partition, Some(&old.to_be_bytes()))
                .await
                .map_err(storage)?;
        }
        Ok(n)
    }

    /// The newest snapshot whose block is the one `archived` gives for its
    /// height, newest first; unusable ones are skipped with a warning.
    pub async fn newest<E, F, Fut>(&self, context: &E, archived: F) -> Option<(Block, State)>
    where
        E: Storage,
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Option<Block>>,
    {
        let heights = match self.heights(context).await {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "listing state snapshots failed; replaying from genesis");
                return None;
            }
        };
        for height in heights {
            let found = match self.load(context, height).await {
                Ok((block, state)) => match archived(height).await {
                    Some(b) if b.digest() == block.digest() => Ok((block, state)),
                    _ => Err(SnapshotError::NotFinalized(height)),
                },
                Err(e) => Err(e),
            };
            match found {
                Ok(found) => return Some(found),
                Err(e) => warn!(height, error = %e, "skipping a state snapshot"),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::genesis::genesis_block;
    use glassbox_ledger::{GenesisAccount, GenesisState, Params};
    use glassbox_types::SecretKey;

    fn state(balance: u64) -> State {
        State::genesis(&GenesisState {
            chain_name: "glassbox-snap".into(),
            genesis_time_ms: 0,
            params: Params::default(),
            accounts: vec![GenesisAccount {
                address: SecretKey::from_seed(&[3; 32]).public(),
                balance,
            }],
            executors: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn a_blob_round_trips_and_any_damage_is_refused() {
        let s = state(7);
        let block = genesis_block(0, s.root());
        let blob = encode(&block, &s);
        let (b, restored) = decode(&blob, 0).unwrap();
        assert_eq!(b.digest(), block.digest());
        assert!(restored == s);
        // Named for another height.
        let e = decode(&blob, 5).unwrap_err().to_string();
        assert!(
            e.contains("holds block 0 under the name of height 5"),
            "{e}"
        );
        // Torn anywhere: every prefix and every flipped byte.
        for n in 0..blob.len() {
            assert!(decode(&blob[..n], 0).is_err(), "prefix {n}");
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 1;
            let e = decode(&b, 0).unwrap_err().to_string();
            assert!(e.contains("checksum mismatch"), "byte {i}: {e}");
        }
        // A whole, checksummed blob whose records are not the block's
        // state: refused by the state root.
        let other = encode(&block, &state(8));
        match decode(&other, 0) {
            Err(SnapshotError::State(glassbox_ledger::SnapshotError::Root { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
}

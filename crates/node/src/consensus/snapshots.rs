//! Snapshots of the finalized state (docs/operations.md, "Snapshots"), so
//! that a restart replays only the blocks after the newest one instead of
//! the whole chain, and a node far behind starts from its peers' newest.
//!
//! Every `every_blocks` finalized blocks (at the first block from there
//! on that has its own finalization certificate) the finalizer hands the
//! block, its certificate and the state after it (an O(1) clone) to a
//! background task, which writes one blob named by the height (8 bytes,
//! big-endian) in the `{prefix}-snapshots` partition of the runtime's
//! storage, syncs it, and only then removes snapshots beyond the newest
//! `keep`. The blob:
//!
//! ```text
//! "GBNS" | version u8 (1) | block: u32 length + bytes |
//!   finalization certificate: u32 length + bytes |
//!   state snapshot (docs/ledger.md, "Snapshots"): u64 length + bytes |
//!   BLAKE3 of everything before (32 bytes)
//! ```
//!
//! A torn or corrupt blob fails its checksum; one that passes must still
//! be the block marshal archived at its height, and its records must hash
//! to that block's state root, before the node starts from it. Anything
//! less falls back to the next older snapshot, then to genesis.
//!
//! The certificate makes a blob checkable by anyone who knows the group
//! key: a node far behind its peers (or new) downloads their newest blob
//! ([`SnapshotSource`]) and starts from it once the certificate verifies,
//! names the blob's block and the records hash to that block's state root
//! ([`Snapshot::verify`]); state sync trusts no peer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use commonware_codec::{Decode, Encode};
use commonware_consensus::Heightable;
use commonware_cryptography::Digestible;
use commonware_parallel::Sequential;
use commonware_runtime::{Blob, ReadOptions, Spawner, Storage, WriteOptions};
use futures::future::BoxFuture;
use glassbox_ledger::State;
use rand::CryptoRng;
use tracing::{debug, info, warn};

use crate::consensus::block::Block;
use crate::consensus::{EPOCH, Finalization, Scheme};

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
    /// Largest snapshot blob read or downloaded, in bytes (it is read
    /// whole).
    pub max_bytes: u64,
    /// State sync starts only from a peer's snapshot more than this many
    /// blocks past what this node holds (below it, replaying the blocks
    /// is cheap enough).
    pub sync_ahead_blocks: u64,
    /// Finalized blocks (and their certificates) kept in the archive below
    /// the newest snapshot's height; older ones are pruned at each
    /// snapshot. `None` keeps every block (archive mode). Must leave every
    /// kept snapshot's successors, what a peer less than
    /// `sync_ahead_blocks` behind backfills, and the recent blocks the API
    /// serves ([`SnapshotPolicy::check`]).
    pub retain_blocks: Option<u64>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_blocks: 1_000,
            keep: 2,
            max_bytes: 16 << 30,
            sync_ahead_blocks: 2_000,
            retain_blocks: Some(DEFAULT_RETAIN_BLOCKS),
        }
    }
}

/// Blocks a pruning node keeps by default (docs/operations.md, "Block
/// retention").
pub const DEFAULT_RETAIN_BLOCKS: u64 = 20_000;

impl SnapshotPolicy {
    /// The fewest blocks a pruning node may keep under this policy: every
    /// kept snapshot needs the blocks after it (a restart replays them),
    /// and a peer less than `sync_ahead_blocks` behind backfills them
    /// instead of syncing. (A restart also re-reads up to
    /// [`crate::chain::MAX_RECENT_BLOCKS`] before its snapshot for the
    /// API, where the archive still has them.)
    pub fn min_retain_blocks(&self) -> u64 {
        self.every_blocks
            .saturating_mul(self.keep.max(1) as u64 + 1)
            .max(self.sync_ahead_blocks)
    }

    /// Refuses a retention below [`SnapshotPolicy::min_retain_blocks`]
    /// (with snapshots off nothing is pruned).
    pub fn check(&self) -> Result<(), String> {
        // Pruning happens at snapshots: none, no pruning.
        let Some(retain) = self.retain_blocks.filter(|_| self.every_blocks > 0) else {
            return Ok(());
        };
        let min = self.min_retain_blocks();
        if retain < min {
            return Err(format!(
                "retain_blocks {retain} is below {min}: ({} kept snapshots + 1) x \
                 snapshot_every_blocks {}, or sync_ahead_blocks {}",
                self.keep.max(1),
                self.every_blocks,
                self.sync_ahead_blocks,
            ));
        }
        Ok(())
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
    /// The certificate does not verify against the group key, or
    /// certifies another block.
    #[error("its finalization certificate {0}")]
    Certificate(&'static str),
}

/// A finalized block, its finalization certificate and the state after it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The block.
    pub block: Block,
    /// Its finalization certificate.
    pub finalization: Finalization,
    /// The state after it (its root is the header's state root).
    pub state: State,
}

impl Snapshot {
    /// The block's height.
    pub fn height(&self) -> u64 {
        self.block.height().get()
    }

    /// Checks that the certificate is a finalization of this block under
    /// the group key `verifier` holds (the records were checked against
    /// the block's state root when decoded).
    pub fn verify(&self, rng: &mut impl CryptoRng, verifier: &Scheme) -> Result<(), SnapshotError> {
        certifies(&self.finalization, &self.block, rng, verifier)
    }
}

/// Where a node far behind finds a snapshot to start from: its peers.
/// Nothing a source returns is trusted: the finalizer checks every blob.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The height the network has reached, as far as the peers can be
    /// trusted to say (at or below an honest peer's finalized height),
    /// when it is above `above`, and the peers to try, in order.
    fn offers(&self, above: u64) -> BoxFuture<'_, Option<(u64, Vec<String>)>>;
    /// `peer`'s newest snapshot blob, refused (without reading it) when
    /// the peer says it is not above `above`; bounded in size and time.
    fn download<'a>(&'a self, peer: &'a str, above: u64) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// The newest complete snapshot blob this node wrote, loaded or synced,
/// kept in memory for `GET /v1/snapshot`: requests share one copy, and
/// only blobs that were checked (or durably written) are ever served.
#[derive(Debug, Default)]
pub struct NewestSnapshot(Mutex<Option<(u64, Bytes)>>);

impl NewestSnapshot {
    /// The height and bytes of the newest blob, if any.
    pub fn get(&self) -> Option<(u64, Bytes)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps `bytes` as the blob at `height`, unless a newer one is kept.
    pub fn set(&self, height: u64, bytes: Bytes) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(|(h, _)| *h <= height) {
            *kept = Some((height, bytes));
        }
    }
}

/// The snapshot blob of `block`, its `finalization` and the `state` after
/// it.
pub fn encode(block: &Block, finalization: &Finalization, state: &State) -> Vec<u8> {
    let block_bytes = block.encode();
    let cert = finalization.encode();
    let records = state.snapshot();
    let mut out =
        Vec::with_capacity(4 + 1 + 4 + block_bytes.len() + 4 + cert.len() + 8 + records.len() + 32);
    out.extend_from_slice(glassbox_primitives::tags::NODE_SNAPSHOT);
    out.push(SNAPSHOT_BLOB_VERSION);
    // A block is at most the ledger's hard block limit (64 MiB), a
    // certificate a few hundred bytes.
    for part in [&block_bytes[..], &cert[..]] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    out.extend_from_slice(&records);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// A blob's parts before its records are rebuilt into a state: cheap to
/// get, so a blob's certificate is checked before any costly work.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The block.
    pub block: Block,
    /// Its finalization certificate.
    pub finalization: Finalization,
    records: &'a [u8],
}

impl Parsed<'_> {
    /// The block's height.
    pub fn height(&self) -> u64 {
        self.block.height().get()
    }

    /// Checks that the certificate is a finalization of this block under
    /// the group key `verifier` holds.
    pub fn verify(&self, rng: &mut impl CryptoRng, verifier: &Scheme) -> Result<(), SnapshotError> {
        certifies(&self.finalization, &self.block, rng, verifier)
    }

    /// The snapshot, its records rebuilt into the state and checked
    /// against the block's state root.
    pub fn rebuild(self) -> Result<Snapshot, SnapshotError> {
        let state = State::from_snapshot(self.records, &self.block.header().state_root)?;
        Ok(Snapshot {
            block: self.block,
            finalization: self.finalization,
            state,
        })
    }
}

/// A blob's parts (checksum, header, block, certificate); `height`, when
/// given, is the blob's name.
pub fn parse(bytes: &[u8], height: Option<u64>) -> Result<Parsed<'_>, SnapshotError> {
    let bad = |what: &str| SnapshotError::Malformed(what.to_string());
    let (body, sum) = bytes
        .split_at_checked(bytes.len().saturating_sub(32))
        .filter(|(b, _)| b.len() > 4)
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
    let (block_bytes, rest) = part(rest, "block")?;
    let block = Block::decode_cfg(Bytes::copy_from_slice(block_bytes), &())
        .map_err(|e| SnapshotError::Malformed(format!("block: {e}")))?;
    if let Some(height) = height
        && block.height().get() != height
    {
        return Err(SnapshotError::Malformed(format!(
            "holds block {} under the name of height {height}",
            block.height().get()
        )));
    }
    let (cert, rest) = part(rest, "finalization")?;
    let finalization = Finalization::decode_cfg(Bytes::copy_from_slice(cert), &())
        .map_err(|e| SnapshotError::Malformed(format!("finalization: {e}")))?;
    let (len, records) = rest
        .split_at_checked(8)
        .ok_or_else(|| bad("no state length"))?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("state length"))?);
    if usize::try_from(len).ok() != Some(records.len()) {
        return Err(bad("state length does not match the blob"));
    }
    Ok(Parsed {
        block,
        finalization,
        records,
    })
}

/// The snapshot a blob holds; the state is checked against the block's
/// state root, the certificate only decoded ([`Snapshot::verify`]).
/// `height`, when given, is the blob's name.
pub fn decode(bytes: &[u8], height: Option<u64>) -> Result<Snapshot, SnapshotError> {
    parse(bytes, height)?.rebuild()
}

/// Whether `f` is a finalization of `block` under the group key.
pub(crate) fn certifies(
    f: &Finalization,
    block: &Block,
    rng: &mut impl CryptoRng,
    verifier: &Scheme,
) -> Result<(), SnapshotError> {
    if f.proposal.payload != block.digest() {
        return Err(SnapshotError::Certificate("certifies another block"));
    }
    if f.proposal.round.epoch() != EPOCH
        || f.proposal.round.view() != block.header().context.round.view()
    {
        return Err(SnapshotError::Certificate(
            "is for another epoch or view than its block",
        ));
    }
    if !f.verify(rng, verifier, &Sequential) {
        return Err(SnapshotError::Certificate(
            "does not verify against the group key",
        ));
    }
    Ok(())
}

/// A `u32`-length-prefixed part of a blob, and the rest.
fn part<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), SnapshotError> {
    let bad = || SnapshotError::Malformed(format!("{what} runs past the end"));
    let (len, rest) = bytes.split_at_checked(4).ok_or_else(bad)?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
    rest.split_at_checked(len).ok_or_else(bad)
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
    /// What `GET /v1/snapshot` serves.
    newest: Arc<NewestSnapshot>,
}

impl Snapshots {
    /// Snapshots in the `{prefix}-snapshots` partition.
    pub fn new(prefix: &str, policy: SnapshotPolicy) -> Self {
        Snapshots {
            partition: format!("{prefix}-snapshots"),
            policy,
            busy: Arc::new(AtomicBool::new(false)),
            newest: Arc::new(NewestSnapshot::default()),
        }
    }

    /// The newest complete blob, shared with the API.
    pub fn served(&self) -> Arc<NewestSnapshot> {
        Arc::clone(&self.newest)
    }

    /// Finalized blocks between two snapshots (0: none are written).
    pub fn every_blocks(&self) -> u64 {
        self.policy.every_blocks
    }

    /// How far ahead a peer's snapshot must be for state sync.
    pub fn sync_ahead_blocks(&self) -> u64 {
        self.policy.sync_ahead_blocks
    }

    /// Blocks kept below a snapshot's height; `None` keeps every block.
    pub fn retain_blocks(&self) -> Option<u64> {
        self.policy.retain_blocks
    }

    /// The largest blob this node reads or downloads, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.policy.max_bytes
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

    /// Reads the blob of the snapshot at `height`, bounded by
    /// [`SnapshotPolicy::max_bytes`].
    pub async fn read<E: Storage>(
        &self,
        context: &E,
        height: u64,
    ) -> Result<Vec<u8>, SnapshotError> {
        let (blob, len) = context
            .open(&self.partition, &height.to_be_bytes())
            .await
            .map_err(storage)?;
        let too_large = SnapshotError::TooLarge {
            len,
            max: self.policy.max_bytes,
        };
        if len > self.policy.max_bytes {
            return Err(too_large);
        }
        let len = usize::try_from(len).map_err(|_| too_large)?;
        let bytes = blob
            .read_at(0, len, ReadOptions::DONT_CACHE)
            .await
            .map_err(storage)?
            .coalesce();
        Ok(bytes.as_ref().to_vec())
    }

    /// Writes the snapshot of `block` in the background, unless one is
    /// still being written (then this one is skipped: the next is due
    /// `every_blocks` later).
    ///
    /// `on_durable` runs once the blob is synced and the older ones beyond
    /// `keep` are gone, with the height of the oldest snapshot kept (what
    /// a restart may fall back on): pruning waits for it.
    pub fn spawn_write<E: Storage + Spawner>(
        &self,
        context: &E,
        block: Arc<Block>,
        finalization: Finalization,
        state: State,
        on_durable: impl FnOnce(u64) + Send + 'static,
    ) {
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
                match this.write(&context, &block, &finalization, &state).await {
                    Ok(bytes) => {
                        info!(height, bytes, "wrote a state snapshot");
                        match this.heights(&context).await {
                            Ok(kept) => on_durable(kept.last().copied().unwrap_or(height)),
                            Err(e) => warn!(error = %e, "listing state snapshots failed"),
                        }
                    }
                    Err(e) => warn!(height, error = %e, "writing a state snapshot failed"),
                }
                this.busy.store(false, Ordering::Release);
            });
    }

    async fn write<E: Storage>(
        &self,
        context: &E,
        block: &Block,
        finalization: &Finalization,
        state: &State,
    ) -> Result<usize, SnapshotError> {
        let height = block.height().get();
        let bytes = Bytes::from(encode(block, finalization, state));
        // One this node would refuse to read back is not written (nor
        // relied on for pruning).
        let len = bytes.len() as u64;
        if len > self.policy.max_bytes {
            return Err(SnapshotError::TooLarge {
                len,
                max: self.policy.max_bytes,
            });
        }
        self.store(context, height, bytes).await
    }

    /// Writes `bytes` (a whole blob) as the snapshot at `height`, durably,
    /// then serves it and removes the oldest beyond `keep`. A failed write
    /// leaves no blob behind.
    pub async fn store<E: Storage>(
        &self,
        context: &E,
        height: u64,
        bytes: Bytes,
    ) -> Result<usize, SnapshotError> {
        let n = bytes.len();
        let name = height.to_be_bytes();
        let written = async {
            let (blob, _) = context.open(&self.partition, &name).await?;
            blob.resize(0).await?;
            blob.write_at(0, bytes.clone(), WriteOptions::SYNC).await?;
            blob.sync().await
        }
        .await;
        if let Err(e) = written {
            let _ = context.remove(&self.partition, Some(&name)).await;
            return Err(storage(e));
        }
        self.newest.set(height, bytes);
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

    /// The newest usable snapshot: whole, of chain `chain_id`, its
    /// records hashing to its block's state root, and either its block is
    /// the one `archived` gives for its height or (marshal does not hold
    /// that block: the node started from a peer's snapshot) its
    /// certificate verifies under `verifier`. Returns it with whether its
    /// block was archived. Unusable blobs are removed with a warning.
    pub async fn newest<E, F, Fut>(
        &self,
        context: &mut E,
        archived: F,
        verifier: &Scheme,
        chain_id: &glassbox_primitives::ChainId,
    ) -> Option<(Snapshot, bool)>
    where
        E: Storage + CryptoRng,
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
            let bytes = match self.read(context, height).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    warn!(height, error = %e, "skipping a state snapshot it cannot read");
                    continue;
                }
            };
            let found = async {
                let parsed = parse(&bytes, Some(height))?;
                let in_archive = match archived(height).await {
                    Some(b) if b.digest() == parsed.block.digest() => true,
                    Some(_) => return Err(SnapshotError::NotFinalized(height)),
                    None => {
                        parsed.verify(context, verifier)?;
                        false
                    }
                };
                let snapshot = parsed.rebuild()?;
                if snapshot.state.chain_id() != *chain_id {
                    return Err(SnapshotError::Certificate("is of another chain"));
                }
                Ok((snapshot, in_archive))
            }
            .await;
            match found {
                Ok((snapshot, in_archive)) => {
                    self.newest.set(height, Bytes::from(bytes));
                    return Some((snapshot, in_archive));
                }
                Err(e) => {
                    warn!(height, error = %e, "removing an unusable state snapshot");
                    let _ = context
                        .remove(&self.partition, Some(&height.to_be_bytes()))
                        .await;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retention must leave every kept snapshot's successors and what a
    /// peer that backfills needs.
    #[test]
    fn a_retention_below_what_restarts_and_peers_need_is_refused() {
        let policy = |every_blocks, retain_blocks| SnapshotPolicy {
            every_blocks,
            keep: 2,
            sync_ahead_blocks: 2_000,
            retain_blocks,
            ..SnapshotPolicy::default()
        };
        assert!(SnapshotPolicy::default().check().is_ok());
        assert!(policy(0, None).check().is_ok(), "archive mode");
        assert!(
            policy(0, Some(1)).check().is_ok(),
            "no snapshots, no pruning"
        );
        // Three snapshot intervals, or the sync distance, whichever is more.
        assert_eq!(policy(1_000, None).min_retain_blocks(), 3_000);
        assert_eq!(policy(100, None).min_retain_blocks(), 2_000);
        assert!(policy(1_000, Some(3_000)).check().is_ok());
        let e = policy(1_000, Some(2_999)).check().unwrap_err();
        assert!(e.contains("below 3000"), "{e}");
    }
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

    /// A real finalization certificate (of another chain's block): the
    /// frozen receipt fixture's.
    fn some_finalization() -> Finalization {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/receipt-v1.json"
        );
        let receipt: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let hex = receipt["finalization"].as_str().unwrap();
        let bytes = glassbox_primitives::unhex_vec(hex, 1 << 16).unwrap();
        Finalization::decode_cfg(Bytes::from(bytes), &()).unwrap()
    }

    #[test]
    fn a_blob_round_trips_and_any_damage_is_refused() {
        let s = state(7);
        let block = genesis_block(0, s.root());
        let f = some_finalization();
        let blob = encode(&block, &f, &s);
        let snap = decode(&blob, Some(0)).unwrap();
        assert_eq!(snap.block.digest(), block.digest());
        assert_eq!(snap.finalization, f);
        assert!(snap.state == s);
        assert!(decode(&blob, None).is_ok());
        // Named for another height.
        let e = decode(&blob, Some(5)).unwrap_err().to_string();
        assert!(
            e.contains("holds block 0 under the name of height 5"),
            "{e}"
        );
        // Torn anywhere: every prefix and every flipped byte.
        for n in 0..blob.len() {
            assert!(decode(&blob[..n], Some(0)).is_err(), "prefix {n}");
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 1;
            let e = decode(&b, Some(0)).unwrap_err().to_string();
            assert!(e.contains("checksum mismatch"), "byte {i}: {e}");
        }
        // A whole, checksummed blob whose records are not the block's
        // state: refused by the state root.
        match decode(&encode(&block, &f, &state(8)), Some(0)) {
            Err(SnapshotError::State(glassbox_ledger::SnapshotError::Root { .. })) => {}
            other => panic!("{other:?}"),
        }
        // A certificate of another block is refused before any signature
        // check.
        let mut rng = rand::rng();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/genesis-v1.json"
        );
        let genesis: crate::consensus::genesis::NodeGenesis =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let verifier = Scheme::certificate_verifier(
            crate::consensus::NAMESPACE,
            *genesis.polynomial().unwrap().public(),
        );
        let e = snap.verify(&mut rng, &verifier).unwrap_err().to_string();
        assert!(e.contains("certifies another block"), "{e}");
    }
}

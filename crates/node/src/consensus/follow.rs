//! Full and executor-only nodes (docs/operations.md, "Full and
//! executor-only nodes"): a node without a validator key follows the
//! chain through its peers' HTTP APIs instead of taking part in consensus,
//! serves the API from its own copy of the state and runs an executor, so
//! executors and API capacity scale out apart from the validator set.
//!
//! A follower asks a peer for the finalized blocks after its tip
//! (`GET /v1/segment?after=H&wait_ms=W`, answered when there are some or
//! after `W` ms). The answer, a *segment*, is a run of consecutive blocks
//! and the finalization certificate of its last one:
//!
//! ```text
//! "GBSG" | version u8 (1) | count u32 (1..=MAX_SEGMENT_BLOCKS) |
//!   count × (block: u32 length + bytes) |
//!   finalization certificate of the last block: u32 length + bytes
//! ```
//!
//! Nothing in it is trusted: the first block must name the follower's tip
//! as its parent, each next block the one before it (a block's digest
//! covers its header, which commits to its transactions and state root),
//! and the certificate must verify against the group key and name the
//! last block; the follower then applies the blocks with the ledger and
//! checks every state root, as a validator's finalizer does. A peer can
//! only withhold, which costs the follower a timeout before it asks the
//! next one. A follower far behind (more than `sync_ahead_blocks`) or
//! whose next blocks its peers no longer hold starts from a verified
//! snapshot instead (state sync, [`crate::consensus::sync`]).
//!
//! Transactions its API admits (a user's, or its executor's commits,
//! reveals and dispute steps) are forwarded to a peer's
//! `POST /v1/tx`, which gossips them to the validators.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use commonware_codec::{Decode, Encode, EncodeSize};
use commonware_consensus::Heightable;
use commonware_cryptography::Digestible;
use commonware_runtime::{Clock, Spawner, Storage};
use futures::future::BoxFuture;
use glassbox_ledger::SignedTx;
use rand::CryptoRng;
use tracing::{debug, info, warn};

use crate::chain::Chain;
use crate::consensus::block::Block;
use crate::consensus::snapshots::{SnapshotError, SnapshotSource, Snapshots, certifies};
use crate::consensus::{Finalization, Scheme};

/// Format version of a segment.
pub const SEGMENT_VERSION: u8 = 1;
/// Most blocks in one segment.
pub const MAX_SEGMENT_BLOCKS: usize = 256;
/// A segment stops adding blocks once it holds this many bytes (it
/// always holds at least one block, which may be larger).
pub const MAX_SEGMENT_BYTES: usize = 16 << 20;
/// Largest segment a follower reads: the bound above, one block of the
/// ledger's hard size limit and the framing.
pub const MAX_SEGMENT_READ_BYTES: u64 =
    MAX_SEGMENT_BYTES as u64 + glassbox_ledger::limits::HARD_MAX_BLOCK_BYTES as u64 + (1 << 20);
/// Longest a segment request waits for a new block.
pub const MAX_SEGMENT_WAIT_MS: u64 = 10_000;
/// The header carrying the serving node's finalized height.
pub const TIP_HEADER: &str = "x-glassbox-finalized-height";

/// Why a segment is refused or cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Not a whole, well-formed segment.
    #[error("malformed segment: {0}")]
    Malformed(String),
    /// A block does not follow the one before it (or the follower's tip).
    #[error("block {height} does not follow block {parent_height} it should extend")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The height of the block it should extend.
        parent_height: u64,
    },
    /// The certificate does not certify the last block.
    #[error("its finalization certificate {0}")]
    Certificate(&'static str),
    /// The serving node no longer holds a block the segment needs.
    #[error("block {0} is no longer held here (pruned, or below a state snapshot)")]
    Pruned(u64),
    /// The serving node holds no certificate for a block after the one
    /// asked for yet.
    #[error("no certified block after height {0} yet")]
    Uncertified(u64),
}

/// Finalized blocks and their certificates by height: a validator's
/// archive (marshal), for serving segments further back than the blocks
/// [`Chain`] keeps in memory.
pub trait Archive: Send + Sync + 'static {
    /// The finalized block at `height`, if held.
    fn block(&self, height: u64) -> BoxFuture<'_, Option<Block>>;
    /// The finalization certificate of the block at `height`, if held
    /// (a block finalized only through a descendant's has none).
    fn finalization(&self, height: u64) -> BoxFuture<'_, Option<Finalization>>;
}

impl std::fmt::Debug for dyn Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Archive")
    }
}

/// A segment's bytes.
pub fn encode(blocks: &[Block], finalization: &Finalization) -> Vec<u8> {
    let encoded: Vec<_> = blocks.iter().map(Encode::encode).collect();
    let cert = finalization.encode();
    let len = 9 + encoded.iter().map(|b| 4 + b.len()).sum::<usize>() + 4 + cert.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(glassbox_primitives::tags::NODE_SEGMENT);
    out.push(SEGMENT_VERSION);
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    // A block is at most the ledger's hard limit (64 MiB).
    for part in encoded.iter().map(|b| &b[..]).chain([&cert[..]]) {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A segment's blocks and certificate, decoded but not checked
/// ([`check`]).
pub fn decode(bytes: &[u8]) -> Result<(Vec<Block>, Finalization), SegmentError> {
    let bad = |what: &str| SegmentError::Malformed(what.to_string());
    if bytes.len() as u64 > MAX_SEGMENT_READ_BYTES {
        return Err(bad("over the size limit"));
    }
    let (magic, rest) = bytes
        .split_at_checked(4)
        .ok_or_else(|| bad("shorter than its header"))?;
    if magic != glassbox_primitives::tags::NODE_SEGMENT {
        return Err(bad("not a segment (bad magic)"));
    }
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("no version"))?;
    if version != SEGMENT_VERSION {
        return Err(SegmentError::Malformed(format!(
            "version {version}, this build reads {SEGMENT_VERSION}"
        )));
    }
    let (count, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("no block count"))?;
    let count = u32::from_le_bytes(*count) as usize;
    if !(1..=MAX_SEGMENT_BLOCKS).contains(&count) {
        return Err(SegmentError::Malformed(format!(
            "{count} blocks, not 1 to {MAX_SEGMENT_BLOCKS}"
        )));
    }
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let (part, tail) = part(rest).ok_or_else(|| bad("a block runs past the end"))?;
        let block = Block::decode_cfg(Bytes::copy_from_slice(part), &())
            .map_err(|e| SegmentError::Malformed(format!("block {i}: {e}")))?;
        blocks.push(block);
        rest = tail;
    }
    let (cert, tail) = part(rest).ok_or_else(|| bad("the certificate runs past the end"))?;
    if !tail.is_empty() {
        return Err(bad("bytes after the certificate"));
    }
    let finalization = Finalization::decode_cfg(Bytes::copy_from_slice(cert), &())
        .map_err(|e| SegmentError::Malformed(format!("finalization: {e}")))?;
    Ok((blocks, finalization))
}

/// A `u32`-length-prefixed part, and the rest.
fn part(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    rest.split_at_checked(u32::from_le_bytes(*len) as usize)
}

/// Checks that `blocks` extend `tip` one by one and that `finalization`
/// certifies the last under the group key `verifier` holds: then every
/// block is the one the network finalized at its height.
pub fn check(
    blocks: &[Block],
    finalization: &Finalization,
    tip: &Block,
    rng: &mut impl CryptoRng,
    verifier: &Scheme,
) -> Result<(), SegmentError> {
    let mut parent = tip;
    for block in blocks {
        let height = block.height().get();
        let parent_height = parent.height().get();
        if block.header().parent != parent.digest() || Some(height) != parent_height.checked_add(1)
        {
            return Err(SegmentError::NotNext {
                height,
                parent_height,
            });
        }
        parent = block;
    }
    certifies(finalization, parent, rng, verifier).map_err(|e| match e {
        SnapshotError::Certificate(why) => SegmentError::Certificate(why),
        other => SegmentError::Malformed(other.to_string()),
    })
}

/// The segment after height `after` that `chain` (and the validator's
/// `archive`, when it has one) can serve: up to [`MAX_SEGMENT_BLOCKS`]
/// blocks, cut at the last one whose certificate is held. `Ok(None)` when
/// nothing after `after` is finalized here.
pub async fn serve(
    chain: &Chain,
    archive: Option<&dyn Archive>,
    after: u64,
) -> Result<Option<Vec<u8>>, SegmentError> {
    let certified = chain.certified();
    let certified_height = certified.as_ref().map_or(0, |c| c.block.height().get());
    if certified_height <= after {
        return if chain.finalized_height() > after {
            Err(SegmentError::Uncertified(after))
        } else {
            Ok(None)
        };
    }
    let last = certified_height.min(after.saturating_add(MAX_SEGMENT_BLOCKS as u64));
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let mut cut: Option<(usize, Finalization)> = None;
    for height in after + 1..=last {
        let block = match chain.finalized_block(height) {
            Some(b) => b,
            None => match archive {
                Some(a) => a.block(height).await.ok_or(SegmentError::Pruned(height))?,
                None => return Err(SegmentError::Pruned(height)),
            },
        };
        bytes = bytes.saturating_add(block.encode_size());
        blocks.push(block);
        let finalization = match (&certified, archive) {
            (Some(c), _) if height == certified_height => Some(c.finalization.clone()),
            (_, Some(a)) => a.finalization(height).await,
            (_, None) => None,
        };
        if let Some(f) = finalization {
            cut = Some((blocks.len(), f));
        }
        if bytes >= MAX_SEGMENT_BYTES && cut.is_some() {
            break;
        }
    }
    let (len, finalization) = cut.ok_or(SegmentError::Uncertified(after))?;
    blocks.truncate(len);
    Ok(Some(encode(&blocks, &finalization)))
}

/// A peer's answer to a segment request.
#[derive(Debug, Default)]
pub struct Answer {
    /// The segment's bytes; `None`: nothing new within the wait.
    pub segment: Option<Vec<u8>>,
    /// The peer's finalized height, when it says.
    pub tip: Option<u64>,
}

/// Where a follower gets segments: its peers' APIs, or in tests anything
/// else.
pub trait SegmentSource: Send + Sync + 'static {
    /// The segment after `after` from `peer`, waiting up to `wait_ms`.
    fn segment<'a>(
        &'a self,
        peer: &'a str,
        after: u64,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<Answer, String>>;
    /// Sends `tx` to `peer`'s mempool; `Ok` also when the peer already
    /// holds it or refuses it for good (the follower's mempool drops it
    /// once a block settles the sender's nonce).
    fn submit<'a>(&'a self, peer: &'a str, tx: &'a SignedTx) -> BoxFuture<'a, Result<(), String>>;
}

/// How a [`SegmentSource`] error starts when the peer no longer holds the
/// blocks asked for (then the follower state-syncs if no peer has them).
pub const PRUNED: &str = "pruned";

/// How long a follower waits on one peer's segment answer beyond the
/// wait it asked for.
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after every peer failed, before the round starts again: doubled
/// at each failed round from the first to the second, reset when a peer
/// answers.
const MIN_ROUND_RETRY: Duration = Duration::from_millis(100);
const MAX_ROUND_RETRY: Duration = Duration::from_secs(2);
/// How often the follower's outbox is forwarded.
const FORWARD_INTERVAL: Duration = Duration::from_millis(10);
/// Most transactions forwarded per flush.
const FORWARD_BATCH: usize = 1_024;

/// Peers' APIs over HTTP (reqwest; TLS through `glassbox_api::tls`).
#[derive(Debug)]
pub struct HttpSegments {
    client: reqwest::Client,
}

impl HttpSegments {
    /// A source whose peers' certificates are checked against Mozilla's
    /// roots.
    pub fn new() -> Result<Self, String> {
        let client = glassbox_api::tls::http_client(None)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the follower's HTTP client: {e}"))?;
        Ok(HttpSegments { client })
    }
}

impl SegmentSource for HttpSegments {
    fn segment<'a>(
        &'a self,
        peer: &'a str,
        after: u64,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            let url = format!(
                "{peer}{}",
                glassbox_api::routes::segment(after, Some(wait_ms))
            );
            let mut answer = self
                .client
                .get(&url)
                .timeout(SEGMENT_TIMEOUT + Duration::from_millis(wait_ms))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let tip = answer
                .headers()
                .get(TIP_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match answer.status().as_u16() {
                200 => {}
                204 => return Ok(Answer { segment: None, tip }),
                404 => return Err(format!("{PRUNED}: answered 404")),
                status => return Err(format!("answered {status}")),
            }
            if answer
                .content_length()
                .is_some_and(|n| n > MAX_SEGMENT_READ_BYTES)
            {
                return Err(format!("offers more than {MAX_SEGMENT_READ_BYTES} bytes"));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
                if (bytes.len() + chunk.len()) as u64 > MAX_SEGMENT_READ_BYTES {
                    return Err(format!("sent more than {MAX_SEGMENT_READ_BYTES} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Answer {
                segment: Some(bytes),
                tip,
            })
        })
    }

    fn submit<'a>(&'a self, peer: &'a str, tx: &'a SignedTx) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = glassbox_api::wire::SubmitTx {
                tx: glassbox_types::hex(tx.encoded()),
            };
            let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let answer = self
                .client
                .post(format!("{peer}{}", glassbox_api::routes::TX))
                .timeout(Duration::from_secs(10))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match answer.status().as_u16() {
                // Taken, already held, or refused by the ledger for good.
                200..=299 | 400 | 409 | 413 | 422 => Ok(()),
                status => Err(format!("answered {status}")),
            }
        })
    }
}

/// What a follower needs besides its chain.
pub struct FollowConfig {
    /// Peers' API base URLs (`http://host:port`), tried in turn.
    pub peers: Vec<String>,
    /// Where segments come from.
    pub segments: Arc<dyn SegmentSource>,
    /// Where snapshots come from when it is far behind.
    pub sync: Option<Arc<dyn SnapshotSource>>,
    /// Its own snapshots, written as a validator's are.
    pub snapshots: Snapshots,
    /// Checks certificates against the group key.
    pub verifier: Scheme,
    /// How long one segment request waits for a new block.
    pub wait_ms: u64,
}

impl std::fmt::Debug for FollowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowConfig")
            .field("peers", &self.peers)
            .field("wait_ms", &self.wait_ms)
            .finish_non_exhaustive()
    }
}

/// Why a follower's step failed.
enum Step {
    /// The peer failed or sent something that does not check out (true:
    /// it no longer holds the blocks asked for).
    Peer(String, bool),
    /// A certified block does not apply: this node's ledger disagrees.
    Chain(crate::chain::ChainError),
}

/// A node that follows the chain without voting.
#[derive(Debug)]
pub struct Follower<E> {
    context: E,
    chain: Arc<Chain>,
    cfg: FollowConfig,
    /// The first height at which the next snapshot is written.
    next_snapshot: u64,
    /// The peer asked first.
    current: usize,
}

impl<E: Storage + Spawner + Clock + CryptoRng> Follower<E> {
    /// A follower of `chain` (at genesis when it starts).
    pub fn new(context: E, chain: Arc<Chain>, cfg: FollowConfig) -> Self {
        Follower {
            context,
            chain,
            cfg,
            next_snapshot: u64::MAX,
            current: 0,
        }
    }

    /// Starts from its newest usable snapshot (or a peer's when far
    /// behind), then applies the peers' segments as they come, and
    /// forwards its mempool's new transactions to them. Runs until the
    /// chain fails.
    pub async fn run(mut self) -> Result<(), crate::chain::ChainError> {
        if self.cfg.peers.is_empty() {
            warn!("a follower with no peers to follow");
        }
        self.chain.enable_gossip();
        self.context.child("forward").spawn({
            let chain = self.chain.clone();
            let peers = self.cfg.peers.clone();
            let source = self.cfg.segments.clone();
            move |context| forward(context, chain, peers, source)
        });
        self.restore().await;
        let have = self.chain.finalized_height();
        self.sync(have.saturating_add(self.cfg.snapshots.sync_ahead_blocks()))
            .await;
        self.next_snapshot = self.due_after(self.chain.finalized_height());
        info!(
            height = self.chain.finalized_height(),
            peers = self.cfg.peers.len(),
            "following the chain"
        );
        let mut failures = 0usize;
        let mut pruned = false;
        let mut backoff = MIN_ROUND_RETRY;
        loop {
            let Some(peer) = self.cfg.peers.get(self.current).cloned() else {
                self.context.sleep(MAX_ROUND_RETRY).await;
                continue;
            };
            let after = self.chain.finalized_height();
            match self.step(&peer, after).await {
                Ok(()) => {
                    failures = 0;
                    pruned = false;
                    backoff = MIN_ROUND_RETRY;
                    // Ready (the API serves) once it holds what a peer
                    // has: a restart from a snapshot older than what it
                    // served before never answers with the older state.
                    if !self.chain.is_ready()
                        && self.chain.finalized_height() >= self.chain.network_height()
                    {
                        self.chain.set_ready();
                        info!(
                            height = self.chain.finalized_height(),
                            "caught up with its peers"
                        );
                    }
                }
                Err(Step::Chain(e)) => return Err(e),
                Err(Step::Peer(e, was_pruned)) => {
                    debug!(%peer, after, error = %e, "segment from a peer failed");
                    failures += 1;
                    pruned |= was_pruned;
                    self.current = (self.current + 1) % self.cfg.peers.len();
                    if failures >= self.cfg.peers.len() {
                        // A whole round failed: the blocks it needs are
                        // gone from its peers (a snapshot then), or they
                        // are down or cut off (try again, backing off).
                        warn!(after, error = %e, pruned, "no peer served the next blocks");
                        if pruned {
                            self.sync(after).await;
                        }
                        failures = 0;
                        pruned = false;
                        self.context.sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ROUND_RETRY);
                    }
                }
            }
        }
    }

    /// One request to `peer`: applies what it sends.
    async fn step(&mut self, peer: &str, after: u64) -> Result<(), Step> {
        let Answer { segment, tip } = self
            .cfg
            .segments
            .segment(peer, after, self.cfg.wait_ms)
            .await
            .map_err(|e| Step::Peer(e.to_string(), e.starts_with(PRUNED)))?;
        if let Some(tip) = tip {
            // Only for `/health`'s lag: a liar makes this node look
            // behind, nothing more.
            self.chain.note_network_tip(tip);
        }
        let Some(bytes) = segment else {
            return Ok(());
        };
        let peer_fault = |e: SegmentError| Step::Peer(e.to_string(), false);
        let (blocks, finalization) = decode(&bytes).map_err(peer_fault)?;
        let tip = self.chain.finalized();
        check(
            &blocks,
            &finalization,
            &tip.block,
            &mut self.context,
            &self.cfg.verifier,
        )
        .map_err(peer_fault)?;
        // Certified blocks: a failure to apply one is this node's (its
        // ledger disagrees with the network's), not the peer's.
        for block in &blocks {
            crate::consensus::engine::finalize_block(&self.chain, block)
                .await
                .map_err(Step::Chain)?;
        }
        self.chain.certify(finalization.clone());
        let height = self.chain.finalized_height();
        self.chain.note_network_tip(height);
        info!(height, blocks = blocks.len(), "followed");
        if height >= self.next_snapshot {
            let tip = self.chain.finalized();
            self.cfg
                .snapshots
                .spawn_write(&self.context, tip.block, finalization, tip.state);
            self.next_snapshot = self.due_after(height);
        }
        Ok(())
    }

    /// The first height above `height` at which a snapshot is due.
    fn due_after(&self, height: u64) -> u64 {
        match self.cfg.snapshots.every_blocks() {
            0 => u64::MAX,
            every => (height / every + 1).saturating_mul(every),
        }
    }

    /// Starts from the newest usable snapshot of its own (its certificate
    /// checked: a follower has no archive).
    async fn restore(&mut self) {
        let chain_id = self.chain.finalized_state().chain_id();
        let none = |_: u64| async { None };
        let Some((snapshot, _)) = self
            .cfg
            .snapshots
            .newest(&mut self.context, none, &self.cfg.verifier, &chain_id)
            .await
        else {
            return;
        };
        let height = snapshot.height();
        if start_from(&self.chain, snapshot) {
            info!(height, "started from a state snapshot");
        }
    }

    /// State sync above `above` ([`crate::consensus::sync::fetch`]).
    async fn sync(&mut self, above: u64) {
        let Some(source) = self.cfg.sync.clone() else {
            return;
        };
        let fetched = crate::consensus::sync::fetch(
            &mut self.context,
            &*source,
            &self.cfg.snapshots,
            &self.cfg.verifier,
            &self.chain,
            above,
        )
        .await;
        if let Some(snapshot) = fetched {
            let height = snapshot.height();
            if start_from(&self.chain, snapshot) {
                self.next_snapshot = self.due_after(height);
                info!(height, "started from a peer's state snapshot (state sync)");
            }
        }
    }
}

/// Restores `chain` to `snapshot`; false when the chain is already past it.
fn start_from(chain: &Chain, snapshot: crate::consensus::snapshots::Snapshot) -> bool {
    let crate::consensus::snapshots::Snapshot {
        block,
        finalization,
        state,
    } = snapshot;
    if !chain.restore(block.clone(), state) {
        return false;
    }
    chain.reindex(&block);
    chain.certify(finalization);
    true
}

/// Forwards the transactions `chain`'s API and executor admit to a peer,
/// the next one when it fails; a transaction no peer takes is dropped
/// (its sender resubmits, as to any node that lost it).
async fn forward<E: Clock>(
    context: E,
    chain: Arc<Chain>,
    peers: Vec<String>,
    source: Arc<dyn SegmentSource>,
) {
    let mut current = 0usize;
    loop {
        context.sleep(FORWARD_INTERVAL).await;
        if peers.is_empty() {
            continue;
        }
        for tx in chain.take_outbox(FORWARD_BATCH, MAX_SEGMENT_BYTES) {
            let mut sent = false;
            for _ in 0..peers.len() {
                match source.submit(&peers[current], &tx).await {
                    Ok(()) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        debug!(peer = %peers[current], error = %e, "forwarding a transaction failed");
                        current = (current + 1) % peers.len();
                    }
                }
            }
            if !sent {
                warn!(tx = %tx.hash(), "no peer took a forwarded transaction");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_segments_are_refused_without_panicking() {
        for bytes in [
            &b""[..],
            b"GBS",
            b"GBSX\x01\x01\0\0\0",
            b"GBSG\x02\x01\0\0\0",
            b"GBSG\x01\0\0\0\0",
            b"GBSG\x01\x01\x01\0\0",
            b"GBSG\x01\x01\0\0\0\xff\xff\xff\xff",
        ] {
            assert!(
                matches!(decode(bytes), Err(SegmentError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }
}

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
//! only withhold or lag: the follower asks every peer for its height
//! every two seconds and takes the `(f + 1)`-th highest report as the
//! network's height (no single claim counts), moves to the next peer when
//! one fails, or answers nothing or less than it could while the network
//! is ahead, and is ready (its API serves) only once it has reached that
//! height. A follower more than `sync_ahead_blocks` behind it, or whose
//! next blocks more than `f` peers no longer hold, starts from a verified
//! snapshot instead (state sync, [`crate::consensus::sync`]).
//!
//! Transactions its API admits (a user's, or its executor's commits,
//! reveals and dispute steps) are forwarded to `f + 1` peers'
//! `POST /v1/tx` (which gossip them to the validators), and sent again
//! while its own mempool still holds them.

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
use crate::consensus::sync::{MAX_STATUS_BYTES, peer_height, read_limited};
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
/// `archive`, when it has one) can serve: the blocks from `after + 1` up
/// to [`MAX_SEGMENT_BLOCKS`] of them or [`MAX_SEGMENT_BYTES`] (at least
/// one), cut at the highest whose certificate is held, looked up from the
/// top down (usually one lookup: the certified tip's, or marshal's of the
/// highest block). `Ok(None)` when nothing after `after` is finalized
/// here; [`SegmentError::Uncertified`] when blocks are but none of them
/// is certified yet; [`SegmentError::Pruned`] when a block is not held or
/// no certificate is held for any block in range (a full node more than
/// a segment behind its own certified tip cannot serve one).
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
    for height in after + 1..=last {
        if bytes >= MAX_SEGMENT_BYTES {
            break;
        }
        let block = match chain.finalized_block(height) {
            Some(b) => b,
            None => match archive {
                Some(a) => a.block(height).await.ok_or(SegmentError::Pruned(height))?,
                None => return Err(SegmentError::Pruned(height)),
            },
        };
        bytes = bytes.saturating_add(block.encode_size());
        blocks.push(block);
    }
    while let Some(top) = blocks.last() {
        let height = top.height().get();
        let finalization = match (&certified, archive) {
            (Some(c), _) if height == certified_height => Some(c.finalization.clone()),
            (_, Some(a)) => a.finalization(height).await,
            (_, None) => None,
        };
        if let Some(f) = finalization {
            return Ok(Some(encode(&blocks, &f)));
        }
        blocks.pop();
    }
    Err(SegmentError::Pruned(after + 1))
}

/// A peer's answer to a segment request.
#[derive(Debug)]
pub enum Answer {
    /// A segment's bytes (not checked yet).
    Segment(Vec<u8>),
    /// Nothing new within the wait.
    Nothing,
    /// The peer no longer holds the blocks asked for.
    Pruned,
}

/// Where a follower gets segments and sends transactions: its peers'
/// APIs, or in tests anything else. Nothing a source returns is trusted.
pub trait SegmentSource: Send + Sync + 'static {
    /// The segment after `after` from `peer`, waiting up to `wait_ms`.
    fn segment<'a>(
        &'a self,
        peer: &'a str,
        after: u64,
        wait_ms: u64,
    ) -> BoxFuture<'a, Result<Answer, String>>;
    /// The finalized height `peer` reports (`GET /v1/status`); `None`
    /// when it does not answer.
    fn height<'a>(&'a self, peer: &'a str) -> BoxFuture<'a, Option<u64>>;
    /// Sends `tx` to `peer`'s mempool; `Ok` also when the peer already
    /// holds it or refuses it (the follower resends what its own mempool
    /// still holds, [`RESEND_AFTER`]).
    fn submit<'a>(&'a self, peer: &'a str, tx: &'a SignedTx) -> BoxFuture<'a, Result<(), String>>;
}

/// How long a follower waits on one peer's segment answer beyond the
/// wait it asked for.
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after every peer failed, before the round starts again: doubled
/// at each failed round from this one, reset when a peer answers.
const MIN_ROUND_RETRY: Duration = Duration::from_millis(100);
/// The longest pause between two failed rounds.
const MAX_ROUND_RETRY: Duration = Duration::from_secs(2);
/// How often the follower asks every peer for its height.
const HEIGHT_POLL: Duration = Duration::from_secs(2);
/// How often the follower's outbox is forwarded.
const FORWARD_INTERVAL: Duration = Duration::from_millis(10);
/// Most transactions forwarded per flush.
const FORWARD_BATCH: usize = 1_024;
/// A forwarded transaction still in the follower's mempool this long
/// after it was sent is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(5);
/// Most forwarded transactions tracked for resending (the oldest are
/// forgotten first).
const MAX_TRACKED: usize = 16_384;

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
            let answer = self
                .client
                .get(&url)
                .timeout(SEGMENT_TIMEOUT + Duration::from_millis(wait_ms))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match answer.status().as_u16() {
                200 => read_limited(answer, MAX_SEGMENT_READ_BYTES)
                    .await
                    .map(Answer::Segment),
                204 => Ok(Answer::Nothing),
                status => {
                    // Only the node's own refusal means pruned (not a 404
                    // of a proxy, or of a node without the route).
                    let body = read_limited(answer, MAX_STATUS_BYTES).await?;
                    let code = serde_json::from_slice::<glassbox_api::wire::ErrorEnvelope>(&body)
                        .map(|e| e.error.code)
                        .unwrap_or_default();
                    if status == 404 && code == "pruned" {
                        Ok(Answer::Pruned)
                    } else {
                        Err(format!("answered {status} {code}"))
                    }
                }
            }
        })
    }

    fn height<'a>(&'a self, peer: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(peer_height(&self.client, peer))
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
                // Taken, already held, or refused: a refusal by a peer
                // that lags may not be final, so the follower resends
                // while its own mempool holds the transaction.
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
    /// How many of the peers' reports may lie: `(n - 1) / 3` of the
    /// genesis validators, whatever the number of peers configured.
    pub faulty: usize,
}

impl std::fmt::Debug for FollowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowConfig")
            .field("peers", &self.peers)
            .field("wait_ms", &self.wait_ms)
            .finish_non_exhaustive()
    }
}

/// The height at least one honest peer has reached, from what each peer
/// reports (`None`: no answer) when at most `faulty` of them lie: the
/// `(faulty + 1)`-th highest report. `None` while fewer than `faulty + 1`
/// answer.
pub fn honest_bound(reported: &[Option<u64>], faulty: usize) -> Option<u64> {
    let mut heights: Vec<u64> = reported.iter().flatten().copied().collect();
    heights.sort_unstable_by(|a, b| b.cmp(a));
    heights.get(faulty).copied()
}

/// Why a follower's step failed.
enum Step {
    /// The peer failed or sent something that does not check out.
    Peer(String),
    /// A certified block does not apply: this node's ledger disagrees.
    Chain(crate::chain::ChainError),
}

/// What one step did.
enum Stepped {
    /// Applied blocks; whether the segment was full (its block or byte
    /// bound: the peer sent all it could).
    Applied(bool),
    /// The peer had nothing new.
    Nothing,
    /// The peer no longer holds the blocks after the tip.
    Pruned,
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
    /// The honest bound on the network's height, once peers reported.
    bound: Arc<std::sync::Mutex<Option<u64>>>,
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
            bound: Arc::default(),
        }
    }

    /// The honest bound on the network's height, once known.
    fn bound(&self) -> Option<u64> {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts from its newest usable snapshot, then applies the peers'
    /// segments as they come (state-syncing when it falls more than
    /// `sync_ahead_blocks` behind the peers' honest height, or when `f +
    /// 1` peers no longer hold its next blocks), and forwards its
    /// mempool's new transactions to them. Ready (its API serves) once it
    /// has reached the peers' honest height. Runs until a certified block
    /// fails to apply.
    pub async fn run(mut self) -> Result<(), crate::chain::ChainError> {
        let n = self.cfg.peers.len();
        if n == 0 {
            warn!("a follower with no peers to follow");
        }
        self.chain.enable_gossip();
        self.context.child("forward").spawn({
            let (chain, peers) = (self.chain.clone(), self.cfg.peers.clone());
            let (source, faulty) = (self.cfg.segments.clone(), self.cfg.faulty);
            move |context| forward(context, chain, peers, source, faulty)
        });
        self.context.child("heights").spawn({
            let (chain, peers) = (self.chain.clone(), self.cfg.peers.clone());
            let (source, bound) = (self.cfg.segments.clone(), self.bound.clone());
            let faulty = self.cfg.faulty;
            move |context| watch_heights(context, chain, peers, source, bound, faulty)
        });
        self.restore().await;
        self.next_snapshot = self.due_after(self.chain.finalized_height());
        info!(
            height = self.chain.finalized_height(),
            peers = n,
            "following the chain"
        );
        let faulty = self.cfg.faulty;
        let (mut failures, mut behind) = (0usize, 0usize);
        let mut pruned = std::collections::BTreeSet::new();
        let mut backoff = MIN_ROUND_RETRY;
        loop {
            let Some(peer) = self.cfg.peers.get(self.current).cloned() else {
                self.context.sleep(MAX_ROUND_RETRY).await;
                continue;
            };
            let after = self.chain.finalized_height();
            if let Some(bound) = self.bound()
                && bound > after.saturating_add(self.cfg.snapshots.sync_ahead_blocks())
            {
                self.sync(after).await;
                if self.chain.finalized_height() == after {
                    self.context.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ROUND_RETRY);
                }
                continue;
            }
            let asked = self.context.current();
            let stepped = self.step(&peer, after).await;
            let height = self.chain.finalized_height();
            let short_of_bound = self.bound().is_some_and(|b| height < b);
            match stepped {
                Ok(Stepped::Applied(full)) => {
                    (failures, backoff) = (0, MIN_ROUND_RETRY);
                    pruned.clear();
                    // A peer that sends less than it could while the
                    // network is ahead (it lags, or drips): the next.
                    behind = if !full && short_of_bound {
                        behind + 1
                    } else {
                        0
                    };
                }
                Ok(Stepped::Nothing) => {
                    behind = if short_of_bound { behind + 2 } else { 0 };
                    // Nothing, and sooner than the wait asked for: no
                    // tight loop on a peer that answers at once.
                    let waited = self
                        .context
                        .current()
                        .duration_since(asked)
                        .unwrap_or_default();
                    if waited < Duration::from_millis(self.cfg.wait_ms / 2) {
                        self.context.sleep(MIN_ROUND_RETRY).await;
                    }
                }
                Err(Step::Chain(e)) => return Err(e),
                Ok(Stepped::Pruned) | Err(Step::Peer(_)) => {
                    if let Err(Step::Peer(e)) = &stepped {
                        debug!(%peer, after, error = %e, "segment from a peer failed");
                    } else {
                        pruned.insert(self.current);
                    }
                    failures += 1;
                    behind = 0;
                    self.current = (self.current + 1) % n;
                    if pruned.len() > faulty {
                        // More peers than can lie no longer hold the
                        // blocks it needs: a snapshot instead, and a
                        // pause when none moved it on.
                        warn!(
                            after,
                            pruned = pruned.len(),
                            "peers no longer hold the next blocks; state sync"
                        );
                        self.sync(after).await;
                        failures = 0;
                        pruned.clear();
                        if self.chain.finalized_height() == after {
                            self.context.sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_ROUND_RETRY);
                        }
                    } else if failures >= n {
                        // Down, cut off, or lying: again, backing off.
                        warn!(after, "no peer served the next blocks");
                        failures = 0;
                        pruned.clear();
                        self.context.sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ROUND_RETRY);
                    }
                }
            }
            if behind >= 2 {
                debug!(%peer, height, "a peer behind the network's height; asking the next");
                behind = 0;
                self.current = (self.current + 1) % n;
            }
            if !self.chain.is_ready() && self.bound().is_some_and(|b| height >= b) {
                // Never ready before it holds what an honest peer has: a
                // restart from an older snapshot does not answer with the
                // older state.
                self.chain.set_ready();
                info!(height, "caught up with its peers");
            }
        }
    }

    /// One request to `peer`: applies what it sends.
    async fn step(&mut self, peer: &str, after: u64) -> Result<Stepped, Step> {
        let answer = self
            .cfg
            .segments
            .segment(peer, after, self.cfg.wait_ms)
            .await
            .map_err(Step::Peer)?;
        let bytes = match answer {
            Answer::Segment(bytes) => bytes,
            Answer::Nothing => return Ok(Stepped::Nothing),
            Answer::Pruned => return Ok(Stepped::Pruned),
        };
        let peer_fault = |e: SegmentError| Step::Peer(e.to_string());
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
        // A verified height: the network has reached it.
        let height = self.chain.finalized_height();
        self.chain.note_network_tip(height);
        debug!(height, blocks = blocks.len(), "followed");
        if height >= self.next_snapshot {
            let tip = self.chain.finalized();
            self.cfg.snapshots.spawn_write(
                &self.context,
                tip.block,
                finalization,
                tip.state,
                |_| {},
            );
            self.next_snapshot = self.due_after(height);
        }
        Ok(Stepped::Applied(
            blocks.len() >= MAX_SEGMENT_BLOCKS || bytes.len() >= MAX_SEGMENT_BYTES,
        ))
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

/// Moves `chain` forward to `snapshot` (also while it serves); false when
/// the chain is already at or past it.
fn start_from(chain: &Chain, snapshot: crate::consensus::snapshots::Snapshot) -> bool {
    let crate::consensus::snapshots::Snapshot {
        block,
        finalization,
        state,
    } = snapshot;
    if !chain.restore_ahead(block.clone(), state) {
        return false;
    }
    chain.reindex(&block);
    chain.certify(finalization);
    true
}

/// Asks every peer for its height every [`HEIGHT_POLL`] and records the
/// honest bound ([`honest_bound`]) as the network's height (for
/// `/health`'s lag, readiness and state sync). A peer's claim alone
/// never counts.
async fn watch_heights<E: Clock>(
    context: E,
    chain: Arc<Chain>,
    peers: Vec<String>,
    source: Arc<dyn SegmentSource>,
    bound: Arc<std::sync::Mutex<Option<u64>>>,
    faulty: usize,
) {
    loop {
        let reported = futures::future::join_all(peers.iter().map(|p| source.height(p))).await;
        if let Some(b) = honest_bound(&reported, faulty) {
            chain.note_network_tip(b);
            // The latest bound, not the highest ever: lies of more than
            // `faulty` peers at one poll do not stick.
            *bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
        }
        context.sleep(HEIGHT_POLL).await;
    }
}

/// Transactions forwarded at once.
const FORWARD_CONCURRENCY: usize = 32;

/// Forwards the transactions `chain`'s API and executor admit to
/// `faulty + 1` peers each (at least one honest), the next peers for each
/// transaction (round robin, so no one peer sees them all), several at
/// once (a slow peer delays only what it was sent), and sends again each
/// one its mempool still holds [`RESEND_AFTER`] later: a peer that drops
/// what it took, or one that lags and refuses, costs a resend, not the
/// transaction.
async fn forward<E: Clock>(
    context: E,
    chain: Arc<Chain>,
    peers: Vec<String>,
    source: Arc<dyn SegmentSource>,
    faulty: usize,
) {
    use futures::StreamExt;
    let n = peers.len();
    let fanout = (faulty + 1).min(n);
    let mut next = 0usize;
    let mut tracked: std::collections::VecDeque<(SignedTx, std::time::SystemTime)> =
        std::collections::VecDeque::new();
    loop {
        context.sleep(FORWARD_INTERVAL).await;
        if n == 0 {
            continue;
        }
        let now = context.current();
        let mut due = chain.take_outbox(FORWARD_BATCH, MAX_SEGMENT_BYTES);
        // The tracked ones still pending after RESEND_AFTER, oldest first
        // (a clock that went back only delays them).
        while let Some((_, at)) = tracked.front() {
            if now.duration_since(*at).unwrap_or_default() < RESEND_AFTER {
                break;
            }
            let Some((tx, _)) = tracked.pop_front() else {
                break;
            };
            if matches!(
                chain.tx_status(&tx.hash()),
                Some(crate::chain::TxStatus::Pending)
            ) {
                due.push(tx);
            }
        }
        let batch: Vec<(SignedTx, usize)> = due
            .into_iter()
            .map(|tx| {
                next = (next + 1) % n;
                (tx, next)
            })
            .collect();
        futures::stream::iter(&batch)
            .for_each_concurrent(FORWARD_CONCURRENCY, |(tx, first)| {
                let (peers, source) = (&peers, &source);
                async move {
                    let sent = futures::future::join_all(
                        (0..fanout).map(|k| source.submit(&peers[(first + k) % n], tx)),
                    )
                    .await;
                    if sent.iter().all(Result::is_err) {
                        debug!(tx = %tx.hash(), "no peer took a forwarded transaction; resending later");
                    }
                }
            })
            .await;
        for (tx, _) in batch {
            if tracked.len() >= MAX_TRACKED {
                tracked.pop_front();
            }
            tracked.push_back((tx, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_in_four_cannot_set_the_networks_height() {
        // 4 validators, f = 1: the second highest report.
        assert_eq!(
            honest_bound(&[Some(10), Some(u64::MAX), Some(9), None], 1),
            Some(10)
        );
        // A liar claiming less cannot hold it down either.
        assert_eq!(
            honest_bound(&[Some(10), Some(0), Some(9), Some(10)], 1),
            Some(10)
        );
        // Fewer than f + 1 answers: unknown.
        assert_eq!(honest_bound(&[Some(u64::MAX), None, None, None], 1), None);
        // Two peers configured of a 4-validator network (f = 1): both
        // must answer, and the lower counts.
        assert_eq!(honest_bound(&[Some(u64::MAX), Some(7)], 1), Some(7));
        // One validator (f = 0): its word.
        assert_eq!(honest_bound(&[Some(7)], 0), Some(7));
        assert_eq!(honest_bound(&[], 0), None);
    }

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

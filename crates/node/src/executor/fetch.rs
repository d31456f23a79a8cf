//! Fetching a model's blob from any node holding it, verified slice by
//! slice (the slice route of [`crate::api`]).
//!
//! [`fetch_blob`] asks peers for consecutive slices of the blob
//! (`GET {peer}/v1/blobs/{model_id}/slice?offset=&len=`), checks each one
//! with [`verify_slice`] against the model id and size from the signed
//! manifest *before* using it, and streams the verified bytes into the
//! [`BlobStore`] through its ordinary put path (temp file, hash checked
//! against the model id, outboard, fsync, atomic rename). So:
//!
//! - a peer that lies or serves corrupt bytes is caught on the first bad
//!   slice (one slice of wasted work at most), named, and never asked
//!   again during this fetch; the same slice is asked of the next peer;
//! - a peer that times out, refuses the connection or answers an error
//!   is named and the next peer tried; one that fails
//!   [`MAX_PEER_FAILURES`] times is dropped;
//! - the download keeps going with the peer that last answered well;
//! - memory is bounded by a few slices (one being downloaded and
//!   verified, [`WRITE_QUEUE_SLICES`] waiting, one being written), never
//!   the whole model;
//! - when every peer fails for some slice the fetch fails with
//!   [`FetchError::AllPeersFailed`], naming every peer and why, and the
//!   store is left without the blob or any temp file. Dropping the future
//!   mid-way leaves nothing either (the writer sees its input cut off).
//!
//! The HTTP client is `reqwest` without TLS: peers are `http://` base URLs
//! such as `http://127.0.0.1:8545` (a path prefix is kept).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use glassbox_primitives::TensorHash;
use glassbox_store::stream::{CHUNK_GROUP_BYTES, max_encoded_len, verify_slice};
use glassbox_store::{BlobStore, SliceError, SliceRequest};
use glassbox_types::{ModelId, clip};
use tokio::sync::mpsc;

use crate::api::{Chunk, ChunkReader, DEFAULT_MAX_BLOB_BYTES, MAX_SLICE_BYTES};

/// Default time one slice request may take (connecting, the answer and
/// its whole body): 30 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Longest per-slice timeout accepted: 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Default slice size: 1 MiB of the blob per request.
pub const DEFAULT_SLICE_BYTES: u64 = 1 << 20;
/// Most peers one fetch takes.
pub const MAX_PEERS: usize = 256;
/// Failures (timeouts, transport or server errors) after which a peer is
/// not asked again during a fetch. A peer whose answer fails verification,
/// or that says it lacks the blob, is dropped at once.
pub const MAX_PEER_FAILURES: u32 = 3;
/// Verified slices queued for the blob writer while the next downloads.
pub const WRITE_QUEUE_SLICES: usize = 1;
/// Most bytes of an error answer read to explain it.
const MAX_ERROR_BODY_BYTES: usize = 1024;
/// Most characters of a peer's error message kept in a [`PeerError`].
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// How [`fetch_blob`] downloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// Time one slice request may take, connecting to the last body byte,
    /// in milliseconds (1 to [`MAX_TIMEOUT_MS`]); past it the next peer is
    /// asked.
    pub timeout_ms: u64,
    /// Bytes of the blob per request, from one 16 KiB chunk group
    /// ([`CHUNK_GROUP_BYTES`]) to the slice route's [`MAX_SLICE_BYTES`];
    /// rounded down to whole chunk groups so slices never overlap.
    pub slice_bytes: u64,
    /// Largest blob this fetch accepts, in bytes (the store's own limit
    /// applies too).
    pub max_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            slice_bytes: DEFAULT_SLICE_BYTES,
            max_bytes: DEFAULT_MAX_BLOB_BYTES,
        }
    }
}

/// Why one peer failed one slice.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer is not an `http://` base URL.
    #[error("not an http:// base URL: {0}")]
    BadUrl(String),
    /// No complete answer within the timeout.
    #[error("no complete answer within {timeout_ms} ms")]
    Timeout {
        /// The timeout.
        timeout_ms: u64,
    },
    /// Connecting, sending or reading failed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The peer answered with an error status.
    #[error("answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The peer's error message (clipped), or the start of its body.
        message: String,
    },
    /// The answer is longer than any valid encoding of the slice.
    #[error("answer of at least {len} bytes is over the {max_bytes}-byte bound for this slice")]
    TooLong {
        /// Bytes announced or received so far.
        len: u64,
        /// [`max_encoded_len`] of the slice.
        max_bytes: u64,
    },
    /// The answer does not verify against the model id: the peer lies or
    /// its copy is corrupt.
    #[error("the slice fails verification against the model id: {0}")]
    Corrupt(#[source] SliceError),
}

impl PeerError {
    /// Whether the peer is not asked again during this fetch: it served
    /// bytes that do not verify, lacks the blob, or refuses the request.
    /// Timeouts, transport errors, 5xx, 408 and 429 may pass.
    pub fn is_fatal(&self) -> bool {
        match self {
            PeerError::BadUrl(_) | PeerError::TooLong { .. } | PeerError::Corrupt(_) => true,
            PeerError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            PeerError::Timeout { .. } | PeerError::Transport(_) => false,
        }
    }
}

/// One peer's failure on the slice at `offset`.
#[derive(Debug, thiserror::Error)]
#[error("{peer} (slice at byte {offset}): {reason}")]
pub struct PeerFailure {
    /// The peer's base URL, as given.
    pub peer: String,
    /// First byte of the slice asked for.
    pub offset: u64,
    /// What went wrong.
    pub reason: PeerError,
}

/// A successful fetch.
#[derive(Debug)]
pub struct FetchReport {
    /// The blob's size in bytes.
    pub size_bytes: u64,
    /// Whether the store had the blob already (nothing was downloaded).
    pub already_present: bool,
    /// Slices downloaded and verified.
    pub slices: u64,
    /// Every failure met on the way, in order (at most
    /// [`MAX_PEER_FAILURES`] per peer): peers that lied, timed out or
    /// answered errors before another peer served the slice.
    pub peer_failures: Vec<PeerFailure>,
}

/// Why a fetch failed; the store then holds neither the blob nor a temp file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The peer list is empty.
    #[error("no peers to fetch model {model_id} from")]
    NoPeers {
        /// The model.
        model_id: ModelId,
    },
    /// The options or the peer list are out of bounds.
    #[error("bad fetch options: {0}")]
    BadOptions(String),
    /// The blob is larger than this fetch or the store accepts.
    #[error("model {model_id} is {size_bytes} bytes, over the limit of {max_bytes} bytes")]
    TooLarge {
        /// The model.
        model_id: ModelId,
        /// Its size from the manifest.
        size_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The store already holds the blob, with another size than given.
    #[error(
        "the store holds model {model_id} with {stored_bytes} bytes, not the {size_bytes} bytes given"
    )]
    SizeMismatch {
        /// The model.
        model_id: ModelId,
        /// The size given (from the manifest).
        size_bytes: u64,
        /// The stored (hash-verified) blob's size.
        stored_bytes: u64,
    },
    /// Every peer failed for one slice.
    #[error(
        "fetching bytes {offset}..{} of model {model_id}: every peer failed: {}",
        offset.saturating_add(*len),
        list(failures)
    )]
    AllPeersFailed {
        /// The model.
        model_id: ModelId,
        /// First byte of the slice no peer served.
        offset: u64,
        /// Its length.
        len: u64,
        /// Each peer's failure (on this slice, or the one that dropped it
        /// earlier), in the order of the peer list.
        failures: Vec<PeerFailure>,
    },
    /// The store refused or failed to write the blob.
    #[error("storing model {model_id}: {source}")]
    Store {
        /// The model.
        model_id: ModelId,
        /// The store's error.
        source: glassbox_store::Error,
    },
    /// A local task (verification or the blob writer) died.
    #[error("fetching model {model_id}: {reason}")]
    Task {
        /// The model.
        model_id: ModelId,
        /// What happened.
        reason: String,
    },
}

fn list(failures: &[PeerFailure]) -> String {
    let items: Vec<String> = failures.iter().map(ToString::to_string).collect();
    items.join("; ")
}

/// A peer during one fetch.
#[derive(Debug)]
struct Peer<'a> {
    /// As given (for errors).
    name: &'a str,
    /// Base URL without a trailing `/`, or why it is unusable.
    base: Result<&'a str, String>,
    failures: u32,
    /// Not asked again during this fetch.
    dropped: bool,
}

/// Downloads the blob `model_id` of `size_bytes` bytes (both from the
/// model's signed manifest) from `peers` (base URLs such as
/// `http://127.0.0.1:8545`) into `store`, verifying every slice against
/// `model_id` before it is written (see the module docs). A blob already
/// in the store is not downloaded again.
pub async fn fetch_blob(
    store: &BlobStore,
    model_id: &ModelId,
    size_bytes: u64,
    peers: &[String],
    opts: FetchOptions,
) -> Result<FetchReport, FetchError> {
    let id = *model_id;
    if peers.is_empty() {
        return Err(FetchError::NoPeers { model_id: id });
    }
    if peers.len() > MAX_PEERS {
        return Err(FetchError::BadOptions(format!(
            "{} peers, over the limit of {MAX_PEERS}",
            peers.len()
        )));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&opts.timeout_ms) {
        return Err(FetchError::BadOptions(format!(
            "timeout_ms {} is not between 1 and {MAX_TIMEOUT_MS}",
            opts.timeout_ms
        )));
    }
    if !(CHUNK_GROUP_BYTES..=MAX_SLICE_BYTES).contains(&opts.slice_bytes) {
        return Err(FetchError::BadOptions(format!(
            "slice_bytes {} is not between {CHUNK_GROUP_BYTES} and {MAX_SLICE_BYTES}",
            opts.slice_bytes
        )));
    }
    let slice_bytes = opts.slice_bytes / CHUNK_GROUP_BYTES * CHUNK_GROUP_BYTES;
    let max_bytes = opts.max_bytes.min(store.max_bytes());
    if size_bytes > max_bytes {
        return Err(FetchError::TooLarge {
            model_id: id,
            size_bytes,
            max_bytes,
        });
    }
    let store_err = |source| FetchError::Store {
        model_id: id,
        source,
    };
    if let Some(stored_bytes) = store.size_bytes(&id).map_err(store_err)? {
        if stored_bytes != size_bytes {
            return Err(FetchError::SizeMismatch {
                model_id: id,
                size_bytes,
                stored_bytes,
            });
        }
        return Ok(FetchReport {
            size_bytes,
            already_present: true,
            slices: 0,
            peer_failures: Vec::new(),
        });
    }
    let timeout = Duration::from_millis(opts.timeout_ms);
    let client = glassbox_api::tls::http_client(None)
        .map_err(|e| FetchError::Task {
            model_id: id,
            reason: e.to_string(),
        })?
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| FetchError::Task {
            model_id: id,
            reason: format!("building the HTTP client: {}", error_chain(&e)),
        })?;

    let (tx, rx) = mpsc::channel(WRITE_QUEUE_SLICES);
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.put_reader(ChunkReader::new(rx), Some(&id)))
    };
    let mut run = Download {
        client: &client,
        id,
        size_bytes,
        slice_bytes,
        timeout_ms: opts.timeout_ms,
        peers: peers.iter().map(|p| peer(p)).collect(),
        failures: Vec::new(),
        slices: 0,
    };
    let fed = run.feed(&tx).await;
    match &fed {
        Ok(()) => {
            let _ = tx.send(Chunk::End).await;
        }
        Err(e) => {
            let _ = tx.send(Chunk::Failed(e.to_string())).await;
        }
    }
    drop(tx);
    let stored = writer.await.map_err(|e| FetchError::Task {
        model_id: id,
        reason: format!("the blob writer failed: {e}"),
    })?;
    fed?;
    let (_, stored_bytes) = stored.map_err(store_err)?;
    if stored_bytes != size_bytes {
        // Unreachable: the verified slices cover exactly `size_bytes`, and
        // the store checked the whole blob's hash.
        return Err(FetchError::SizeMismatch {
            model_id: id,
            size_bytes,
            stored_bytes,
        });
    }
    Ok(FetchReport {
        size_bytes,
        already_present: false,
        slices: run.slices,
        peer_failures: run.failures.into_iter().map(|(_, f)| f).collect(),
    })
}

fn peer(name: &str) -> Peer<'_> {
    let base = match reqwest::Url::parse(name) {
        Ok(u) if u.scheme() == "http" && u.query().is_none() && u.fragment().is_none() => {
            Ok(name.trim_end_matches('/'))
        }
        Ok(_) => Err(name.to_string()),
        Err(e) => Err(format!("{name} ({e})")),
    };
    Peer {
        name,
        base,
        failures: 0,
        dropped: false,
    }
}

/// The state of one fetch.
struct Download<'a> {
    client: &'a reqwest::Client,
    id: ModelId,
    size_bytes: u64,
    slice_bytes: u64,
    timeout_ms: u64,
    peers: Vec<Peer<'a>>,
    /// Every failure so far, in order, with its peer's index.
    failures: Vec<(usize, PeerFailure)>,
    slices: u64,
}

impl Download<'_> {
    /// Downloads every slice in order and hands it, verified, to the
    /// writer. Returns early (`Ok`) if the writer stops: its result says why.
    async fn feed(&mut self, tx: &mpsc::Sender<Chunk>) -> Result<(), FetchError> {
        // Unusable URLs count as their peers' failures from the start.
        for i in 0..self.peers.len() {
            if let Err(reason) = &self.peers[i].base {
                let reason = PeerError::BadUrl(reason.clone());
                self.fail(i, 0, reason);
            }
        }
        let mut current = 0;
        let mut offset = 0;
        while offset < self.size_bytes {
            let len = self.slice_bytes.min(self.size_bytes - offset);
            let req = SliceRequest { offset, len };
            let (i, data) = self.one_slice(current, req).await?;
            current = i;
            self.slices += 1;
            if tx.send(Chunk::Data(data)).await.is_err() {
                return Ok(());
            }
            offset += len;
        }
        Ok(())
    }

    /// Slice `req` from the first peer, starting at `start`, that serves
    /// it verified; returns that peer's index and the bytes.
    async fn one_slice(
        &mut self,
        start: usize,
        req: SliceRequest,
    ) -> Result<(usize, Bytes), FetchError> {
        let n = self.peers.len();
        for step in 0..n {
            let i = (start + step) % n;
            let base = match &self.peers[i] {
                Peer {
                    dropped: false,
                    base: Ok(base),
                    ..
                } => *base,
                _ => continue,
            };
            match self.ask(base, req).await? {
                Ok(data) => return Ok((i, data)),
                Err(reason) => self.fail(i, req.offset, reason),
            }
        }
        // Every peer is dropped or failed this slice: name each one's
        // latest failure (each has one).
        let mut latest: Vec<Option<PeerFailure>> = (0..n).map(|_| None).collect();
        for (i, f) in std::mem::take(&mut self.failures) {
            if let Some(slot) = latest.get_mut(i) {
                *slot = Some(f);
            }
        }
        Err(FetchError::AllPeersFailed {
            model_id: self.id,
            offset: req.offset,
            len: req.len,
            failures: latest.into_iter().flatten().collect(),
        })
    }

    /// Records peer `i`'s failure on the slice at `offset`.
    fn fail(&mut self, i: usize, offset: u64, reason: PeerError) {
        let Some(peer) = self.peers.get_mut(i) else {
            return;
        };
        tracing::warn!(
            model = %self.id,
            peer = peer.name,
            offset,
            error = %reason,
            "peer failed a slice; trying the next peer"
        );
        peer.failures += 1;
        if reason.is_fatal() || peer.failures >= MAX_PEER_FAILURES {
            peer.dropped = true;
        }
        let failure = PeerFailure {
            peer: peer.name.to_string(),
            offset,
            reason,
        };
        self.failures.push((i, failure));
    }

    /// Asks the peer at `base` for `req` and verifies the answer. The
    /// outer error is local (a dead verification task); the inner one the
    /// peer's.
    async fn ask(
        &self,
        base: &str,
        req: SliceRequest,
    ) -> Result<Result<Bytes, PeerError>, FetchError> {
        let url = format!(
            "{base}/v1/blobs/{}/slice?offset={}&len={}",
            self.id, req.offset, req.len
        );
        let bound = max_encoded_len(req.len);
        let timeout = Duration::from_millis(self.timeout_ms);
        let encoded = match tokio::time::timeout(
            timeout,
            get_bounded(self.client, &url, bound, self.timeout_ms),
        )
        .await
        {
            Ok(Ok(encoded)) => encoded,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(_) => {
                return Ok(Err(PeerError::Timeout {
                    timeout_ms: self.timeout_ms,
                }));
            }
        };
        let (id, size, max) = (self.id, self.size_bytes, self.slice_bytes);
        let verified =
            tokio::task::spawn_blocking(move || verify_slice(&id, size, req, &encoded, max))
                .await
                .map_err(|e| FetchError::Task {
                    model_id: self.id,
                    reason: format!("verifying a slice failed: {e}"),
                })?;
        Ok(verified.map(Bytes::from).map_err(PeerError::Corrupt))
    }
}

/// Peers asked for a tensor at once.
pub const TENSOR_FETCH_CONCURRENCY: usize = 16;

/// Fetches the off-ledger tensor `hash` (its canonical encoding,
/// `GET {peer}/v1/tensors/{hex}`) from the first of `peers` to serve bytes
/// hashing to it, asking [`TENSOR_FETCH_CONCURRENCY`] peers at once, each
/// for at most `timeout_ms` and `max_bytes`: peers that hang cost one
/// timeout per that many of them, not one each (issue #25: executors
/// register their own endpoints, so a tarpit is cheap). Returns the bytes,
/// or every peer's failure.
pub async fn fetch_tensor(
    peers: &[String],
    hash: &TensorHash,
    max_bytes: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, String> {
    let timeout = Duration::from_millis(timeout_ms.clamp(1, MAX_TIMEOUT_MS));
    let client = glassbox_api::tls::http_client(None)
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("building the HTTP client: {}", error_chain(&e)))?;
    let hex = hash.to_hex();
    let mut pending = peers.iter();
    let mut answers = futures::stream::FuturesUnordered::new();
    let mut failures = Vec::new();
    loop {
        while answers.len() < TENSOR_FETCH_CONCURRENCY {
            let Some(peer) = pending.next() else { break };
            answers.push(ask_for_tensor(&client, peer, hash, max_bytes, timeout_ms));
        }
        match answers.next().await {
            Some(Ok(bytes)) => return Ok(bytes),
            Some(Err(e)) => failures.push(e),
            None => break,
        }
    }
    Err(format!(
        "no peer served tensor {hex}: {}",
        if failures.is_empty() {
            "no peers".to_string()
        } else {
            failures.join("; ")
        }
    ))
}

/// Asks `peer` for tensor `hash`: its bytes, or why not.
async fn ask_for_tensor(
    client: &reqwest::Client,
    peer: &str,
    hash: &TensorHash,
    max_bytes: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, String> {
    if !peer.starts_with("http://") {
        return Err(format!("{peer}: not an http:// base URL"));
    }
    let hex = hash.to_hex();
    let url = format!("{}/v1/tensors/{hex}", peer.trim_end_matches('/'));
    let timeout = Duration::from_millis(timeout_ms.clamp(1, MAX_TIMEOUT_MS));
    match tokio::time::timeout(timeout, get_bounded(client, &url, max_bytes, timeout_ms)).await {
        Ok(Ok(bytes)) if TensorHash::from(blake3::hash(&bytes)) == *hash => Ok(bytes),
        Ok(Ok(_)) => Err(format!("{peer}: the bytes do not hash to {hex}")),
        Ok(Err(e)) => Err(format!("{peer}: {e}")),
        Err(_) => Err(format!("{peer}: no answer within {timeout_ms} ms")),
    }
}

/// GETs `url`, reading a successful answer's body up to `bound` bytes
/// (the caller bounds the whole exchange by `timeout_ms`).
async fn get_bounded(
    client: &reqwest::Client,
    url: &str,
    bound: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, PeerError> {
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            // Connecting took the whole timeout.
            PeerError::Timeout { timeout_ms }
        } else {
            PeerError::Transport(error_chain(&e))
        }
    };
    let mut res = client.get(url).send().await.map_err(transport)?;
    let status = res.status();
    if !status.is_success() {
        return Err(PeerError::Status {
            status: status.as_u16(),
            message: error_message(&mut res).await,
        });
    }
    if let Some(len) = res.content_length()
        && len > bound
    {
        return Err(PeerError::TooLong {
            len,
            max_bytes: bound,
        });
    }
    let cap = res.content_length().unwrap_or(0).min(bound);
    let mut body = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        let len = (body.len() as u64).saturating_add(chunk.len() as u64);
        if len > bound {
            return Err(PeerError::TooLong {
                len,
                max_bytes: bound,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `error.message` of an API error answer, or the start of the body,
/// reading at most [`MAX_ERROR_BODY_BYTES`].
async fn error_message(res: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            let code = e.get("code")?.as_str()?;
            let message = e.get("message")?.as_str()?;
            Some(format!("{code}: {message}"))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    clip(&message, MAX_ERROR_MESSAGE_CHARS)
}

/// An error with its sources (`reqwest` keeps the useful part there).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

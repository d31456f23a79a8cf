//! The node's HTTP JSON API (axum).
//!
//! Every response is JSON, bar a blob download's bytes. Errors are
//! `{"error": {"code": "...", "message": "..."}}` with the matching status;
//! unknown routes are 404 and wrong methods 405, in the same shape. Nothing
//! here panics on any input, and a refused request changes nothing. Any
//! route may also answer 408 `timeout`, 429 `rate_limited` or 503 `busy`
//! ([`serve`], [`HttpLimits`]).
//!
//! Every body is a type of `glassbox_api::wire`, which clients decode too
//! (`glassbox_api::Client`), and `GET /v1/openapi.json` serves the OpenAPI
//! 3.1 document generated from those types and the `#[utoipa::path]`
//! annotations below ([`openapi`]); `crates/node/tests/openapi.rs` checks
//! real answers against it.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /health` | 200 `{"status": "ok", "finalized_height", "network_height", "since_finalized_ms"}` while the node finalizes; 503 with the same fields and `status` `replaying` (restart replay), `lagging` (more than [`ApiLimits::max_lag_blocks`] behind the height the network certified) or `stalled` (nothing finalized for [`ApiLimits::max_stall_ms`]) |
//! | `GET /v1/status` | chain id and name, readiness, finalized height, block digest, state root, timestamp, mempool size, the chain's `params` (fees and limits) |
//! | `POST /v1/tx` | body `{"tx": "<hex of the canonical SignedTx encoding>"}`: 202 `{"tx_hash"}`; 400 bad JSON, hex or transaction; 413 body over [`ApiLimits::max_body_bytes`]; 422 refused by the ledger (`TxError` code and message); 409 already pending, or another pending transaction has the nonce; 503 mempool full or node replaying |
//! | `GET /v1/tx/{hash}` | `pending`, or `finalized` with height, index and outcome; 404 unknown; 400 bad hash (`tx:<hex>` or bare hex) |
//! | `GET /v1/blocks/latest`, `GET /v1/blocks/{height}` | the header fields, its encoding and the transaction hashes; 404 above the finalized tip or older than the blocks kept in memory ([`MAX_RECENT_BLOCKS`]) |
//! | `GET /v1/accounts/{address}` | [`Proven`] account (`address` = `ed25519:<hex>`) |
//! | `GET /v1/executors/{address}` | [`Proven`] executor |
//! | `GET /v1/models/{model_id}` | [`Proven`] model (`blake3:<hex>`) |
//! | `GET /v1/models/by-name/{name}/{version}` | [`Proven`] `name@version` index entry, with the model record and its own proof under `model` (`/` in the name may be sent as is or as `%2F`) |
//! | `POST /v1/jobs` | a `submit_job` transaction, as for `POST /v1/tx`: 202 `{"job_id", "tx_hash"}`; 400 `not_a_job` for any other kind; 422 a refused request (unknown model, inputs that do not fit its schema, price over `max_fee`, too little balance, too few executors) — nothing is charged |
//! | `GET /v1/jobs/{job_id}` | [`Proven`] job (`job:<hex>`; docs/jobs.md): status, slots with commitments and reveals, outputs once final |
//! | `GET /v1/jobs/{job_id}/receipt` | the job's [`Receipt`] (docs/jobs.md, "Receipt"); 409 `not_final` while the job is open (or `job_disputed` / `job_failed`), 409 `not_certified` until this node holds a finalization certificate for a block at or after the one that closed it; 404 unknown job, or its transactions are no longer indexed |
//! | `GET /v1/genesis` | the network's genesis file (ledger genesis, validators, group polynomial); 404 when the node was not given it |
//! | `GET /v1/snapshot` | the node's newest complete state snapshot blob (docs/operations.md, "State sync"), `application/octet-stream`, its height in `X-Glassbox-Snapshot-Height`; 404 `no_snapshot`; 503 `busy` while [`MAX_SNAPSHOT_DOWNLOADS`] are served |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document of these routes |
//! | `GET /v1/executors`, `GET /v1/models` | a page of records (`?limit=` 1 to 1000, default 100; `?after=` the `next` cursor of the previous page) |
//! | `PUT /v1/blobs/{model_id}` | the model's bytes as the raw body (see [Blobs](#blobs)): 201 `{"status": "stored", "model_id", "size_bytes"}`, or 200 `"present"` when the node already has it (the body is not read); 409 model not registered on the ledger; 400 content hashing to another id (`hash_mismatch`, naming both) or longer than the manifest's `size_bytes` (`size_mismatch`); 413 over the node's blob limit; 503 too many uploads at once, or replaying; 404 when the node keeps no blobs |
//! | `GET /v1/blobs/{model_id}` (and `HEAD`) | the blob's bytes, `application/octet-stream`, with `Content-Length` and the model id as `ETag`; 404 absent |
//! | `GET /v1/blobs/{model_id}/slice?offset=&len=` | a verified slice (see [Slices](#slices)): `len` bytes (1 to [`MAX_SLICE_BYTES`]) from `offset`, bao-encoded, `application/octet-stream`, with the blob's size in `X-Glassbox-Blob-Size`; 400 `bad_query` (missing, non-numeric or unknown parameters), `bad_range` (empty or past the blob's end) or `slice_too_large`; 404 absent; 503 too many slices being encoded at once ([`MAX_CONCURRENT_SLICES`]); 500 when the stored blob or its outboard fails verification (nothing is served) |
//!
//! # Proofs
//!
//! State queries read the latest finalized state, and each answer names
//! the finalized block it was read at (`height`, `block` digest) and that
//! block's `state_root`. A single-record answer carries the record's key in
//! the authenticated map (`key`, hex), its canonical bytes (`record`, hex)
//! and a [`Proof`]; a light client holding the block's header (from
//! `/v1/blocks/{height}`, hashed with SHA-256 to the digest a finalization
//! certificate signs) checks it with
//! `glassbox_ledger::verify_proof(&state_root, &key, record.as_deref(), &proof)`
//! and decodes `record` itself rather than trusting `value`, which is the
//! same record as JSON for convenience.
//!
//! **An absent record is not an error**: the answer is 200 with `value`
//! and `record` null and a proof of *absence* against the same root, so a
//! client can tell "no such account" from a node hiding one. Lists carry no
//! proofs (prove items one by one); their model items are summaries
//! without the manifest, so a page stays small.
//!
//! # Blobs
//!
//! A node given a [`Blobs`] store ([`router_with_blobs`]) keeps model
//! bytes under their model id. It accepts an upload only for a model
//! **already registered in its latest finalized state** (publish the
//! manifest first, upload after the transaction is final): the ledger's fee
//! is what stops anyone from filling the disk with unregistered bytes, and
//! each upload is bounded by the registered manifest's `size_bytes` and the
//! store's limit ([`DEFAULT_MAX_BLOB_BYTES`]). The body streams to a temp
//! file while it is hashed; the blob appears under its name only complete,
//! synced and hashing to the model id, and a refused or interrupted upload
//! leaves nothing behind. Only these routes take bodies over
//! [`ApiLimits::max_body_bytes`]. Downloads are hashed as they stream, and
//! one whose stored bytes turn out corrupt is cut off before its end rather
//! than completed.
//!
//! # Slices
//!
//! A downloader fetches a model from any node holding it in slices it
//! checks one by one ([`crate::executor::fetch`]): the slice route answers with
//! [`BlobStore::encode_slice`], the 16 KiB chunk groups covering the range
//! plus the BLAKE3 tree hash pairs on their path to the root, and the
//! downloader runs `glassbox_store::stream::verify_slice` with the model id
//! and size from the signed manifest, so a lying or broken node is caught
//! after at most one slice, never after the whole model. The node checks its
//! own data and outboard while encoding; a slice of a corrupt blob is a 500,
//! never served. The answer is at most
//! `glassbox_store::stream::max_encoded_len(len)` bytes.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use commonware_codec::Encode;
use commonware_consensus::Heightable;
use commonware_cryptography::Digestible;
use glassbox_api::wire::{
    BlobState as BlobAnswer, BlobStored, Block as BlockJson, BlockContext, ByName,
    ConcentrationReport, ErrorBody, ErrorEnvelope, Health, HealthStatus, JobSubmitted,
    ModelSummary, NameEntry, Page, Proven, Status, SubmitTx, TensorStored,
    TxStatus as TxStatusJson, TxSubmitted,
};
use glassbox_ledger::{
    AdmissionError, ExecutionError, Executor, Job, JobExt, JobId, JobStatus, ModelRecord, SignedTx,
    State, StateKey, TxBody, TxError, TxHash, decode_model_version,
};
use glassbox_primitives::{BlockDigest, StateRoot, TensorHash};
use glassbox_store::BlobStore;
use glassbox_types::{Limits, ModelId, PublicKey, clip, hex};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};

use crate::chain::mempool::MempoolError;
use crate::chain::{Chain, MAX_INDEXED_TXS, MAX_RECENT_BLOCKS, TxStatus};
use crate::consensus::block::Block;
use crate::consensus::follow::Archive;
use crate::consensus::genesis::NodeGenesis;
use crate::consensus::snapshots::NewestSnapshot;
use crate::receipt::Receipt;

mod blobs;
mod openapi;
pub mod serve;

use blobs::{BlobState, get_blob, get_slice, put_blob};
use openapi::openapi_json;
pub use serve::HttpLimits;

pub use blobs::{
    BLOB_SIZE_HEADER, Blobs, DEFAULT_MAX_BLOB_BYTES, MAX_CONCURRENT_SLICES, MAX_CONCURRENT_UPLOADS,
    MAX_SLICE_BYTES,
};
pub(crate) use blobs::{Chunk, ChunkReader};
pub use openapi::openapi;

/// Default bound on a request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default page size of the list endpoints.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page size of the list endpoints.
pub const MAX_PAGE: usize = 1_000;
/// Seconds a 503 answer asks the client to wait (`Retry-After`).
const RETRY_AFTER_SECS: &str = "1";
/// Longest piece of client input echoed back in an error message.
const MAX_ECHO: usize = 80;

/// Bounds on what the API accepts.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Largest request body, in bytes; larger ones get 413. A transaction
    /// travels as hex, so this must be at least twice the chain's
    /// `max_tx_bytes` plus a few bytes of JSON.
    pub max_body_bytes: usize,
    /// `/health` answers 503 `lagging` when the network has finalized more
    /// than this many blocks past this node's finalized tip.
    pub max_lag_blocks: u64,
    /// `/health` answers 503 `stalled` when no block was finalized for
    /// this long, in ms.
    pub max_stall_ms: u64,
    /// The server's bounds on clients ([`serve::serve`]).
    pub http: HttpLimits,
}

/// Default of [`ApiLimits::max_lag_blocks`].
pub const DEFAULT_MAX_LAG_BLOCKS: u64 = 32;
/// Default of [`ApiLimits::max_stall_ms`].
pub const DEFAULT_MAX_STALL_MS: u64 = 30_000;

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_lag_blocks: DEFAULT_MAX_LAG_BLOCKS,
            max_stall_ms: DEFAULT_MAX_STALL_MS,
            http: HttpLimits::default(),
        }
    }
}

/// What every handler shares: the node's ledger view and the limits.
#[derive(Clone, Debug)]
pub struct Api {
    /// The node's ledger view.
    pub chain: Arc<Chain>,
    /// Request bounds.
    pub limits: ApiLimits,
    /// The network's genesis, served at `/v1/genesis` when known.
    pub genesis: Option<Arc<NodeGenesis>>,
    /// The node's newest state snapshot, served at `/v1/snapshot`.
    pub snapshots: Option<Arc<NewestSnapshot>>,
    /// A validator's archive of finalized blocks, for `/v1/segment`
    /// further back than the blocks the chain keeps in memory.
    pub archive: Option<Arc<dyn Archive>>,
}

impl Api {
    /// An API over `chain` with the default limits.
    pub fn new(chain: Arc<Chain>) -> Self {
        Api {
            chain,
            limits: ApiLimits::default(),
            genesis: None,
            snapshots: None,
            archive: None,
        }
    }

    /// The same API, also serving `genesis`.
    pub fn with_genesis(mut self, genesis: Arc<NodeGenesis>) -> Self {
        self.genesis = Some(genesis);
        self
    }
}

/// The API's routes over `api` (see the module docs), without a blob store:
/// the blob routes answer 404 `no_blob_store`.
pub fn router(api: Api) -> Router {
    router_with_blobs(api, None)
}

/// The API's routes over `api`, serving and accepting model blobs in
/// `blobs` (see the module docs).
pub fn router_with_blobs(api: Api, blobs: Option<Blobs>) -> Router {
    let max_body = api.limits.max_body_bytes;
    let http = &api.limits.http;
    let deadlines: serve::Deadlines = (
        Duration::from_millis(http.request_timeout_ms),
        Duration::from_millis(http.upload_timeout_ms),
    );
    let guard = serve::Guard::new(http);
    let blob_state = BlobState {
        chain: api.chain.clone(),
        blobs,
    };
    Router::new()
        .route("/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/tx", post(submit_tx))
        .route("/v1/tx/{hash}", get(tx_status))
        .route("/v1/blocks/latest", get(latest_block))
        .route("/v1/blocks/{height}", get(block_at))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/executors", get(executors))
        .route("/v1/executors/{address}", get(executor))
        .route("/v1/models", get(models))
        .route("/v1/models/by-name/{*name_version}", get(model_by_name))
        .route("/v1/models/{model_id}", get(model))
        .route("/v1/jobs", post(submit_job))
        .route("/v1/jobs/{job_id}", get(job))
        .route("/v1/jobs/{job_id}/receipt", get(job_receipt))
        .route("/v1/jobs/{job_id}/ext", get(job_ext))
        .route("/v1/concentration", get(concentration))
        .route(
            "/v1/tensors/{hash}",
            get(get_tensor)
                .put(put_tensor)
                .layer(DefaultBodyLimit::max(MAX_TENSOR_UPLOAD_BYTES)),
        )
        .route("/v1/genesis", get(genesis))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/segment", get(segment))
        .route("/v1/openapi.json", get(openapi_json))
        .route(
            "/v1/blobs/{model_id}",
            // Uploads bound themselves (the manifest's size, the store's
            // limit), so the JSON body limit does not apply here.
            get(get_blob)
                .put(put_blob)
                .layer(DefaultBodyLimit::disable())
                .with_state(blob_state.clone()),
        )
        .route(
            "/v1/blobs/{model_id}/slice",
            get(get_slice).with_state(blob_state),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            deadlines,
            serve::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(guard, serve::guard))
        .with_state(api)
}

/// Serves [`router`] on `listener` within the API's [`HttpLimits`] until
/// the future is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, api: Api) -> std::io::Result<()> {
    serve_with_blobs(listener, api, None, std::future::pending()).await
}

/// Serves [`router_with_blobs`] on `listener` within the API's
/// [`HttpLimits`] until `shutdown` completes (then finishing the requests
/// in flight, see [`serve::serve`]) or the listener fails.
pub async fn serve_with_blobs(
    listener: tokio::net::TcpListener,
    api: Api,
    blobs: Option<Blobs>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = api.limits.http.clone();
    serve::serve(listener, router_with_blobs(api, blobs), limits, shutdown).await
}

// ---- errors -----------------------------------------------------------------

/// An error answer: a status and `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code (the ledger's `TxError` codes for refused
    /// transactions).
    pub code: Cow<'static, str>,
    /// What was wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl ApiError {
    fn body(self) -> ErrorBody {
        ErrorBody {
            code: self.code.into_owned(),
            message: self.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = ErrorEnvelope { error: self.body() };
        let mut res = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        res
    }
}

/// Why a submitted transaction was refused, as an answer.
fn mempool_error(e: MempoolError) -> ApiError {
    match e {
        MempoolError::Invalid(
            TxError::Admission(AdmissionError::Internal { reason })
            | TxError::Execution(ExecutionError::Internal { reason }),
        ) => ApiError::internal(format!("checking the transaction: {reason}")),
        MempoolError::Invalid(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
        }
        e @ MempoolError::Duplicate(_) => {
            ApiError::new(StatusCode::CONFLICT, "already_pending", e.to_string())
        }
        e @ MempoolError::NonceTaken { .. } => {
            ApiError::new(StatusCode::CONFLICT, "nonce_pending", e.to_string())
        }
        e @ MempoolError::ResumePending { .. } => {
            ApiError::new(StatusCode::CONFLICT, "resume_pending", e.to_string())
        }
        e @ MempoolError::Full { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "mempool_full",
            e.to_string(),
        ),
        // Retry later: room opens as the sender's earlier nonces finalize.
        e @ MempoolError::NonceAhead { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "nonce_ahead",
            e.to_string(),
        ),
        e @ MempoolError::FeesOverBalance { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "fees_over_balance",
            e.to_string(),
        ),
    }
}

fn not_ready(chain: &Chain) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        format!(
            "the node is replaying finalized blocks after a restart (at height {}); try again shortly",
            chain.finalized_height()
        ),
    )
}

fn path_error(what: &str, e: PathRejection) -> ApiError {
    ApiError::bad_request("bad_path", format!("{what}: {}", e.body_text()))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!(
            "no route for {method} {}; see the API documentation for the routes",
            clip(uri.path(), MAX_ECHO)
        ),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", clip(uri.path(), MAX_ECHO)),
    )
}

// ---- parsing ----------------------------------------------------------------

/// Decodes non-empty hex of at most `max_bytes` bytes. Clients may send
/// either case; the text is lower-cased (its length checked first) and
/// decoded by the one hex decoder, `glassbox_primitives::unhex_vec`.
fn decode_hex(s: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Err("empty hex string".into());
    }
    if s.len() / 2 > max_bytes {
        return Err(format!(
            "{} bytes of hex, over the limit of {max_bytes}",
            s.len() / 2
        ));
    }
    glassbox_primitives::unhex_vec(&s.to_ascii_lowercase(), max_bytes)
}

/// `tx:<64 hex>` or 64 bare hex digits.
fn parse_tx_hash(s: &str) -> Result<TxHash, ApiError> {
    let bad = |reason: String| {
        ApiError::bad_request(
            "bad_tx_hash",
            format!(
                "`{}` is not a transaction hash (`tx:<64 hex digits>`): {reason}",
                clip(s, MAX_ECHO)
            ),
        )
    };
    let digits = s.strip_prefix(TxHash::PREFIX).unwrap_or(s);
    if digits.len() != 64 {
        return Err(bad(format!(
            "expected 64 hex digits, found {}",
            digits.len()
        )));
    }
    let bytes = decode_hex(digits, 32).map_err(bad)?;
    let arr =
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("expected 32 bytes".to_string()))?;
    Ok(TxHash::from_bytes(arr))
}

fn parse_address(s: &str) -> Result<PublicKey, ApiError> {
    s.parse::<PublicKey>().map_err(|e| {
        ApiError::bad_request(
            "bad_address",
            format!("not an address (`ed25519:<hex>`): {e}"),
        )
    })
}

fn parse_model_id(s: &str) -> Result<ModelId, ApiError> {
    s.parse::<ModelId>().map_err(|e| {
        ApiError::bad_request(
            "bad_model_id",
            format!("not a model id (`blake3:<hex>`): {e}"),
        )
    })
}

/// `?limit=&after=` of the list endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    after: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "bad_query",
                format!("limit {n} is not between 1 and {MAX_PAGE}"),
            )),
        }
    }
}

fn page_query(q: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, ApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        ApiError::bad_request(
            "bad_query",
            format!(
                "{} (expected `?limit=1..{MAX_PAGE}&after=<cursor>`)",
                e.body_text()
            ),
        )
    })
}

// ---- health and status ------------------------------------------------------

#[utoipa::path(
    get,
    path = "/health",
    summary = "Liveness and readiness",
    responses(
        (status = 200, description = "Ready: finalizing, and within `max_lag_blocks` of the network", body = Health),
        (status = 503, description = "Replaying finalized blocks after a restart, lagging the network, or stalled", body = Health)
    )
)]
async fn health(AxState(api): AxState<Api>) -> Response {
    let chain = &api.chain;
    let finalized_height = chain.finalized_height();
    let network_height = chain.network_height();
    let since_finalized_ms = u64::try_from(chain.since_finalized().as_millis()).unwrap_or(u64::MAX);
    let lag = network_height.saturating_sub(finalized_height);
    let (status, e) = if !chain.is_ready() {
        (HealthStatus::Replaying, not_ready(chain))
    } else if lag > api.limits.max_lag_blocks {
        (
            HealthStatus::Lagging,
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "lagging",
                format!(
                    "finalized height {finalized_height} is {lag} blocks behind the network's \
                     {network_height} (limit {}); catching up",
                    api.limits.max_lag_blocks
                ),
            ),
        )
    } else if since_finalized_ms > api.limits.max_stall_ms {
        (
            HealthStatus::Stalled,
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stalled",
                format!(
                    "no block finalized for {since_finalized_ms} ms (limit {} ms) at height \
                     {finalized_height}",
                    api.limits.max_stall_ms
                ),
            ),
        )
    } else {
        return axum::Json(Health {
            status: HealthStatus::Ok,
            finalized_height,
            network_height,
            since_finalized_ms,
            error: None,
        })
        .into_response();
    };
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(Health {
            status,
            finalized_height,
            network_height,
            since_finalized_ms,
            error: Some(e.body()),
        }),
    )
        .into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    res
}

/// A consensus digest as the API's typed one.
fn block_digest(d: &crate::consensus::Digest) -> BlockDigest {
    BlockDigest::from_bytes(d.0)
}

#[utoipa::path(
    get,
    path = "/v1/status",
    summary = "The chain, its finalized tip and its parameters",
    responses(
        (status = 200, description = "Success", body = Status)
    )
)]
async fn status(AxState(api): AxState<Api>) -> axum::Json<Status> {
    let f = api.chain.finalized();
    let header = f.block.header();
    axum::Json(Status {
        chain_id: f.state.chain_id(),
        chain_name: f.state.chain().chain_name.clone(),
        ready: api.chain.is_ready(),
        finalized_height: f.block.height().get(),
        block: block_digest(&f.block.digest()),
        state_root: header.state_root,
        timestamp_ms: header.timestamp_ms,
        mempool_size: api.chain.mempool_len() as u64,
        genesis: block_digest(&api.chain.genesis().digest()),
        params: *f.state.params(),
    })
}

// ---- transactions -----------------------------------------------------------

/// Decodes a `{"tx": "<hex>"}` body into a transaction.
fn tx_from_body(api: &Api, body: Result<Bytes, BytesRejection>) -> Result<SignedTx, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is over the limit of {} bytes",
                    api.limits.max_body_bytes
                ),
            )
        } else {
            ApiError::new(e.status(), "bad_body", e.body_text())
        }
    })?;
    submitted_tx(&body)
}

/// The transaction of a `POST /v1/tx` (or `/v1/jobs`) body,
/// `{"tx": "<hex>"}` (fuzzed: fuzz/src/lib.rs, `api`).
pub fn submitted_tx(body: &[u8]) -> Result<SignedTx, ApiError> {
    let req: SubmitTx = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("the body is not {{\"tx\": \"<hex>\"}}: {e}"),
        )
    })?;
    let bytes = decode_hex(&req.tx, glassbox_ledger::limits::HARD_MAX_TX_BYTES_USIZE)
        .map_err(|e| ApiError::bad_request("bad_hex", format!("field `tx`: {e}")))?;
    SignedTx::decode(&bytes)
        .map_err(|e| ApiError::bad_request("bad_tx", format!("field `tx`: {e}")))
}

#[utoipa::path(
    post,
    path = "/v1/tx",
    summary = "Submit a signed transaction",
    request_body = SubmitTx,
    responses(
        (status = 202, description = "Accepted into the mempool", body = TxSubmitted),
        (status = 400, description = "Bad JSON, hex or transaction (`bad_json`, `bad_hex`, `bad_tx`)", body = ErrorEnvelope),
        (status = 409, description = "Already pending, or another pending transaction has the nonce", body = ErrorEnvelope),
        (status = 413, description = "Body over the limit", body = ErrorEnvelope),
        (status = 422, description = "Refused by the ledger (its TxError code)", body = ErrorEnvelope),
        (status = 503, description = "Mempool full, or replaying (Retry-After)", body = ErrorEnvelope)
    )
)]
async fn submit_tx(
    AxState(api): AxState<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tx = tx_from_body(&api, body)?;
    if !api.chain.is_ready() {
        return Err(not_ready(&api.chain));
    }
    let tx_hash = api.chain.submit(tx).map_err(mempool_error)?;
    Ok((StatusCode::ACCEPTED, axum::Json(TxSubmitted { tx_hash })).into_response())
}

/// `POST /v1/jobs`: like `POST /v1/tx`, for a `submit_job` transaction only;
/// answers the job id.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    summary = "Submit a `submit_job` transaction",
    request_body = SubmitTx,
    responses(
        (status = 202, description = "Accepted into the mempool", body = JobSubmitted),
        (status = 400, description = "Bad JSON, hex or transaction (`bad_json`, `bad_hex`, `bad_tx`)", body = ErrorEnvelope),
        (status = 409, description = "Already pending, or another pending transaction has the nonce", body = ErrorEnvelope),
        (status = 413, description = "Body over the limit", body = ErrorEnvelope),
        (status = 422, description = "Refused by the ledger (its TxError code)", body = ErrorEnvelope),
        (status = 503, description = "Mempool full, or replaying (Retry-After)", body = ErrorEnvelope)
    )
)]
async fn submit_job(
    AxState(api): AxState<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tx = tx_from_body(&api, body)?;
    if !matches!(tx.body(), TxBody::SubmitJob { .. }) {
        return Err(ApiError::bad_request(
            "not_a_job",
            format!(
                "field `tx`: a {} transaction; POST /v1/jobs takes submit_job (use POST /v1/tx)",
                tx.body().kind_name()
            ),
        ));
    }
    if !api.chain.is_ready() {
        return Err(not_ready(&api.chain));
    }
    let tx_hash = api.chain.submit(tx).map_err(mempool_error)?;
    let job_id = JobId::of_tx(tx_hash);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(JobSubmitted { job_id, tx_hash }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/tx/{hash}",
    summary = "A transaction's status",
    params(("hash" = String, Path, description = "`tx:<64 hex>` or 64 bare hex digits")),
    responses(
        (status = 200, description = "Success", body = TxStatusJson),
        (status = 400, description = "Not a transaction hash", body = ErrorEnvelope),
        (status = 404, description = "Neither pending nor among the indexed finalized transactions", body = ErrorEnvelope)
    )
)]
async fn tx_status(
    AxState(api): AxState<Api>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<TxStatusJson>, ApiError> {
    let Path(hash) = hash.map_err(|e| path_error("transaction hash", e))?;
    let tx_hash = parse_tx_hash(&hash)?;
    match api.chain.tx_status(&tx_hash) {
        Some(TxStatus::Pending) => Ok(axum::Json(TxStatusJson::Pending { tx_hash })),
        Some(TxStatus::Finalized {
            height,
            index,
            outcome,
        }) => Ok(axum::Json(TxStatusJson::Finalized {
            tx_hash,
            height,
            index: index as u64,
            outcome: (&outcome).into(),
        })),
        None => Err(ApiError::not_found(
            "unknown_tx",
            format!(
                "transaction {tx_hash} is neither pending nor among the {MAX_INDEXED_TXS} \
                 most recent finalized transactions this node indexes"
            ),
        )),
    }
}

// ---- blocks -----------------------------------------------------------------

/// A block as JSON.
fn block_json(block: &Block) -> BlockJson {
    let h = block.header();
    BlockJson {
        height: block.height().get(),
        digest: block_digest(&block.digest()),
        parent: block_digest(&h.parent),
        timestamp_ms: h.timestamp_ms,
        txs_root: hex(&h.txs_root),
        state_root: h.state_root,
        context: BlockContext {
            epoch: h.context.round.epoch().get(),
            view: h.context.round.view().get(),
            leader: hex(h.context.leader.as_ref()),
            parent_view: h.context.parent.0.get(),
            parent: block_digest(&h.context.parent.1),
        },
        header: hex(&h.encode()),
        tx_count: block.txs().len() as u64,
        txs: block.txs().iter().map(SignedTx::hash).collect(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/blocks/latest",
    summary = "The finalized tip's block",
    responses(
        (status = 200, description = "Success", body = BlockJson)
    )
)]
async fn latest_block(AxState(api): AxState<Api>) -> axum::Json<BlockJson> {
    axum::Json(block_json(&api.chain.finalized().block))
}

#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    summary = "A finalized block",
    params(("height" = u64, Path, description = "Block height")),
    responses(
        (status = 200, description = "Success", body = BlockJson),
        (status = 400, description = "Not a height", body = ErrorEnvelope),
        (status = 404, description = "Not finalized yet, or no longer in memory", body = ErrorEnvelope)
    )
)]
async fn block_at(
    AxState(api): AxState<Api>,
    height: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<BlockJson>, ApiError> {
    let Path(height) = height.map_err(|e| path_error("height", e))?;
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_height",
            format!(
                "`{}` is not a block height (a non-negative integer) or `latest`",
                clip(&height, MAX_ECHO)
            ),
        )
    })?;
    if let Some(block) = api.chain.finalized_block(height) {
        return Ok(axum::Json(block_json(&block)));
    }
    let tip = api.chain.finalized_height();
    if height > tip {
        return Err(ApiError::not_found(
            "block_not_finalized",
            format!("block {height} is not finalized yet (the finalized height is {tip})"),
        ));
    }
    Err(ApiError::not_found(
        "block_pruned",
        format!(
            "block {height} is no longer in memory: this node keeps only the most recent \
             {MAX_RECENT_BLOCKS} finalized blocks (fewer when blocks are large); the finalized \
             height is {tip}"
        ),
    ))
}

// ---- state queries ----------------------------------------------------------

/// The block a state query reads at: the finalized tip, with its state.
struct Snapshot {
    height: u64,
    block: BlockDigest,
    state_root: StateRoot,
    state: State,
}

impl Snapshot {
    fn take(chain: &Chain) -> Result<Snapshot, ApiError> {
        let f = chain.finalized();
        let state_root = f.block.header().state_root;
        // Proofs are made from `state`; they must verify against the root
        // the block (and so its finalization certificate) commits to.
        if f.state.root() != state_root {
            return Err(ApiError::internal(format!(
                "the finalized state's root {} is not block {}'s state root {}",
                f.state.root().to_hex(),
                f.block.height().get(),
                state_root.to_hex()
            )));
        }
        Ok(Snapshot {
            height: f.block.height().get(),
            block: block_digest(&f.block.digest()),
            state_root,
            state: f.state,
        })
    }

    fn proven<V>(&self, key: &StateKey, value: impl FnOnce(&State) -> Option<V>) -> Proven<V> {
        let (record, proof) = self.state.prove(key);
        let value = if record.is_some() {
            value(&self.state)
        } else {
            None
        };
        Proven {
            height: self.height,
            block: self.block,
            state_root: self.state_root,
            key: hex(&key.to_bytes()),
            record: record.as_deref().map(hex),
            value,
            proof,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{address}",
    summary = "An account, with its proof",
    params(("address" = String, Path, description = "`ed25519:<64 hex>`")),
    responses(
        (status = 200, description = "The record, or a proof of its absence", body = Proven<glassbox_ledger::Account>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn account(
    AxState(api): AxState<Api>,
    address: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Proven<glassbox_ledger::Account>>, ApiError> {
    let Path(address) = address.map_err(|e| path_error("address", e))?;
    let address = parse_address(&address)?;
    let snap = Snapshot::take(&api.chain)?;
    Ok(axum::Json(snap.proven(&StateKey::Account(address), |s| {
        s.account(&address)
    })))
}

#[utoipa::path(
    get,
    path = "/v1/executors/{address}",
    summary = "An executor, with its proof",
    params(("address" = String, Path, description = "`ed25519:<64 hex>`")),
    responses(
        (status = 200, description = "The record, or a proof of its absence", body = Proven<Executor>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn executor(
    AxState(api): AxState<Api>,
    address: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Proven<Executor>>, ApiError> {
    let Path(address) = address.map_err(|e| path_error("address", e))?;
    let owner = parse_address(&address)?;
    let snap = Snapshot::take(&api.chain)?;
    Ok(axum::Json(snap.proven(&StateKey::Executor(owner), |s| {
        s.executor(&owner).cloned()
    })))
}

#[utoipa::path(
    get,
    path = "/v1/models/{model_id}",
    summary = "A model record, with its proof",
    params(("model_id" = String, Path, description = "`blake3:<64 hex>`")),
    responses(
        (status = 200, description = "The record, or a proof of its absence", body = Proven<ModelRecord>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn model(
    AxState(api): AxState<Api>,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Proven<ModelRecord>>, ApiError> {
    let Path(id) = id.map_err(|e| path_error("model id", e))?;
    let id = parse_model_id(&id)?;
    let snap = Snapshot::take(&api.chain)?;
    Ok(axum::Json(
        snap.proven(&StateKey::Model(id), |s| s.model(&id).cloned()),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/models/by-name/{name}/{version}",
    summary = "A `name@version` entry and its model record, both proven",
    params(("name" = String, Path, description = "Model name; its `/` may be sent as is or as `%2F`"), ("version" = String, Path, description = "Version")),
    responses(
        (status = 200, description = "The entry and record, or proofs of absence", body = ByName<NameEntry, ModelRecord>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn model_by_name(
    AxState(api): AxState<Api>,
    rest: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<ByName<NameEntry, ModelRecord>>, ApiError> {
    let Path(rest) = rest.map_err(|e| path_error("model name and version", e))?;
    let (name, version) = rest
        .rsplit_once('/')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_path",
                format!(
                    "`{}` is not `<name>/<version>` (e.g. `org/model/1.0.0`)",
                    clip(&rest, MAX_ECHO)
                ),
            )
        })?;
    glassbox_types::validate_name(name)
        .map_err(|e| ApiError::bad_request("bad_model_name", format!("not a model name: {e}")))?;
    if version.len() > Limits::MAX_VERSION_BYTES {
        return Err(ApiError::bad_request(
            "bad_model_version",
            format!(
                "the version is {} bytes, over the limit of {}",
                version.len(),
                Limits::MAX_VERSION_BYTES
            ),
        ));
    }
    let snap = Snapshot::take(&api.chain)?;
    let key = StateKey::ModelVersion {
        name: name.to_string(),
        version: version.to_string(),
    };
    let mut model_id = None;
    let mut decode_error = None;
    let entry = snap.proven(&key, |s| {
        let raw = s.get_raw(&key)?;
        match decode_model_version(raw) {
            Ok(id) => {
                model_id = Some(id);
                Some(NameEntry {
                    name: name.to_string(),
                    version: version.to_string(),
                    model_id: id,
                })
            }
            Err(e) => {
                decode_error = Some(e);
                None
            }
        }
    });
    if let Some(e) = decode_error {
        return Err(ApiError::internal(format!(
            "the index entry of {}@{}: {e}",
            clip(name, MAX_ECHO),
            clip(version, MAX_ECHO)
        )));
    }
    let model = model_id.map(|id| snap.proven(&StateKey::Model(id), |s| s.model(&id).cloned()));
    Ok(axum::Json(ByName { entry, model }))
}

/// Up to `limit` items, and the cursor of the next page when more follow.
fn paginate<T, C>(
    mut it: impl Iterator<Item = T>,
    limit: usize,
    cursor: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let items: Vec<T> = it.by_ref().take(limit).collect();
    let next = match (it.next(), items.last()) {
        (Some(_), Some(last)) => Some(cursor(last)),
        _ => None,
    };
    (items, next)
}

#[utoipa::path(
    get,
    path = "/v1/executors",
    summary = "A page of executors",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses(
        (status = 200, description = "Success", body = Page<Executor>),
        (status = 400, description = "Bad query", body = ErrorEnvelope)
    )
)]
async fn executors(
    AxState(api): AxState<Api>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<Page<Executor>>, ApiError> {
    let q = page_query(q)?;
    let limit = q.limit()?;
    let after = q.after.as_deref().map(parse_address).transpose()?;
    let snap = Snapshot::take(&api.chain)?;
    let after = after.map(|a| a.to_bytes());
    // Executors iterate by owner key bytes.
    let it = snap
        .state
        .executors()
        .skip_while(|e| after.is_some_and(|a| e.owner.to_bytes() <= a))
        .cloned();
    let (items, next) = paginate(it, limit, |e: &Executor| e.owner.to_string());
    Ok(axum::Json(Page {
        height: snap.height,
        block: snap.block,
        state_root: snap.state_root,
        total: snap.state.executor_count() as u64,
        items,
        next,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/models",
    summary = "A page of model summaries",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page")),
    responses(
        (status = 200, description = "Success", body = Page<ModelSummary>),
        (status = 400, description = "Bad query", body = ErrorEnvelope)
    )
)]
async fn models(
    AxState(api): AxState<Api>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::Json<Page<ModelSummary>>, ApiError> {
    let q = page_query(q)?;
    let limit = q.limit()?;
    let after = q.after.as_deref().map(parse_model_id).transpose()?;
    let snap = Snapshot::take(&api.chain)?;
    // Models iterate by model id.
    let it = snap
        .state
        .models()
        .skip_while(|m| after.is_some_and(|a| m.model_id <= a))
        .map(|m| {
            let manifest = m.manifest.manifest();
            ModelSummary {
                model_id: m.model_id,
                manifest_id: m.manifest_id,
                publisher: m.publisher,
                height: m.height,
                name: manifest.name.clone(),
                version: manifest.version.to_string(),
            }
        });
    let (items, next) = paginate(it, limit, |m: &ModelSummary| m.model_id.to_string());
    Ok(axum::Json(Page {
        height: snap.height,
        block: snap.block,
        state_root: snap.state_root,
        total: snap.state.model_count() as u64,
        items,
        next,
    }))
}

// ---- jobs --------------------------------------------------------------------

fn parse_job_id(s: &str) -> Result<JobId, ApiError> {
    let text = if s.starts_with(JobId::PREFIX) {
        s.to_string()
    } else {
        format!("{}{s}", JobId::PREFIX)
    };
    text.parse().map_err(|e: glassbox_primitives::ParseError| {
        ApiError::bad_request(
            "bad_job_id",
            format!("`{}`: {}", clip(s, MAX_ECHO), e.reason),
        )
    })
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    summary = "A job, with its proof",
    params(("job_id" = String, Path, description = "`job:<64 hex>` or 64 bare hex digits")),
    responses(
        (status = 200, description = "The record, or a proof of its absence", body = Proven<Job>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn job(
    AxState(api): AxState<Api>,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Proven<Job>>, ApiError> {
    let Path(id) = id.map_err(|e| path_error("job id", e))?;
    let id = parse_job_id(&id)?;
    let snap = Snapshot::take(&api.chain)?;
    Ok(axum::Json(snap.proven(&StateKey::Job(id), |s| s.job(&id))))
}

/// A job's optimistic window, auditor and dispute (docs/disputes.md), with
/// the proof of its record; `value` is `null` for a job without one.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}/ext",
    summary = "A job's optimistic window, auditor and dispute, with its proof",
    params(("job_id" = String, Path, description = "`job:<64 hex>` or 64 bare hex digits")),
    responses(
        (status = 200, description = "The record, or a proof of its absence", body = Proven<JobExt>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope)
    )
)]
async fn job_ext(
    AxState(api): AxState<Api>,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Proven<JobExt>>, ApiError> {
    let Path(id) = id.map_err(|e| path_error("job id", e))?;
    let id = parse_job_id(&id)?;
    let snap = Snapshot::take(&api.chain)?;
    Ok(axum::Json(
        snap.proven(&StateKey::JobExt(id), |s| s.job_ext(&id)),
    ))
}

/// How concentrated the network is: shares of paid jobs and of
/// selection weight held by the top executors, Nakamoto coefficients.
#[utoipa::path(
    get,
    path = "/v1/concentration",
    summary = "How concentrated jobs and selection weight are",
    responses(
        (status = 200, description = "Success", body = ConcentrationReport)
    )
)]
async fn concentration(AxState(api): AxState<Api>) -> axum::Json<ConcentrationReport> {
    let f = api.chain.finalized();
    axum::Json(ConcentrationReport {
        height: f.block.height().get(),
        concentration: f.state.concentration(),
    })
}

/// Largest tensor upload, in bytes of its canonical encoding.
pub const MAX_TENSOR_UPLOAD_BYTES: usize = 64 << 20;

fn parse_tensor_hash(s: &str) -> Result<TensorHash, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request("bad_tensor_hash", "expected 64 lower-case hex digits"))
}

/// Accepts an operand tensor for the referee (its canonical encoding,
/// hashing to the path's hash).
#[utoipa::path(
    put,
    path = "/v1/tensors/{hash}",
    summary = "Store an operand tensor for the referee",
    params(("hash" = TensorHash, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The canonical tensor encoding"),
    responses(
        (status = 200, description = "Success", body = TensorStored),
        (status = 400, description = "Bad hash, or the body does not hash to it or is not a canonical tensor", body = ErrorEnvelope),
        (status = 413, description = "Over the tensor limit", body = ErrorEnvelope)
    )
)]
async fn put_tensor(
    AxState(api): AxState<Api>,
    hash: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<TensorStored>, ApiError> {
    let Path(hash) = hash.map_err(|e| path_error("tensor hash", e))?;
    let want = parse_tensor_hash(&hash)?;
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("tensor upload: {e}"),
        )
    })?;
    if TensorHash::from(blake3::hash(&body)) != want {
        return Err(ApiError::bad_request(
            "hash_mismatch",
            format!("the body does not hash to {hash}"),
        ));
    }
    // Unauthenticated: kept among the uploads, which never evict the
    // tensors a dispute on the chain needs.
    api.chain
        .offchain()
        .upload_tensor(body.to_vec())
        .map_err(|e| ApiError::bad_request("bad_tensor", e))?;
    Ok(axum::Json(TensorStored { hash: want }))
}

/// Serves this node's newest state snapshot (docs/operations.md, "State
/// sync"): a node far behind starts from it once its certificate, block
/// and records check out, so nothing here is trusted by the reader.
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    summary = "The node's newest state snapshot blob",
    responses(
        (status = 200, description = "The snapshot blob (block, finalization certificate, state records, checksum); its height in `X-Glassbox-Snapshot-Height`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No snapshot yet", body = ErrorEnvelope),
        (status = 503, description = "`MAX_SNAPSHOT_DOWNLOADS` downloads are being served", body = ErrorEnvelope)
    )
)]
async fn snapshot(AxState(api): AxState<Api>) -> Result<Response, ApiError> {
    let (height, bytes) = api
        .snapshots
        .as_ref()
        .and_then(|s| s.get())
        .ok_or_else(|| {
            ApiError::not_found("no_snapshot", "this node holds no state snapshot yet")
        })?;
    // Each download shares the one copy, but keeps the blob it started
    // with alive until it ends: a few at a time bound what slow readers
    // can pin.
    let permit = SNAPSHOT_DOWNLOADS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{MAX_SNAPSHOT_DOWNLOADS} state snapshot downloads are being served; retry shortly"
            ),
        )
    })?;
    let len = bytes.len();
    let chunks = (0..len).step_by(SNAPSHOT_CHUNK_BYTES).map(move |at| {
        Ok::<_, std::io::Error>(bytes.slice(at..(at + SNAPSHOT_CHUNK_BYTES).min(len)))
    });
    let body = futures::StreamExt::map(futures::stream::iter(chunks), move |chunk| {
        // Released when the download ends or its connection drops.
        let _held = &permit;
        chunk
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::HeaderName::from_static(crate::consensus::sync::HEIGHT_HEADER),
                height.to_string(),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `?after=&wait_ms=` of `GET /v1/segment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentQuery {
    after: u64,
    wait_ms: Option<u64>,
}

/// Serves the finalized blocks after a height and the certificate of the
/// last (docs/operations.md, "Full and executor-only nodes"): what a node
/// that follows the chain without voting applies, checking every block
/// against its tip and the certificate against the group key.
#[utoipa::path(
    get,
    path = "/v1/segment",
    summary = "Finalized blocks after a height, with the last one's certificate",
    params(
        ("after" = u64, Query, description = "The height the reader holds; the segment starts at the next"),
        ("wait_ms" = Option<u64>, Query, description = "How long to wait for a block after `after` (at most 10000, and half the request timeout; none while `MAX_SEGMENT_WAITERS` requests wait); default 0")
    ),
    responses(
        (status = 200, description = "A segment (`\"GBSG\"`, version, up to 256 blocks, the finalization certificate of the last)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 204, description = "Nothing certified after `after` within the wait"),
        (status = 400, description = "Bad query", body = ErrorEnvelope),
        (status = 404, description = "`pruned`: a block after `after`, or a certificate for any of the next ones, is no longer held here", body = ErrorEnvelope),
        (status = 503, description = "`not_ready`: replaying after a restart", body = ErrorEnvelope)
    )
)]
async fn segment(
    AxState(api): AxState<Api>,
    q: Result<Query<SegmentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::consensus::follow::{MAX_SEGMENT_WAIT_MS, SegmentError};
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(
            "bad_query",
            format!(
                "{} (expected `?after=<height>&wait_ms=0..{MAX_SEGMENT_WAIT_MS}`)",
                e.body_text()
            ),
        )
    })?;
    if !api.chain.is_ready() {
        return Err(not_ready(&api.chain));
    }
    // Waiting holds one of the server's places for requests in flight:
    // at most MAX_SEGMENT_WAITERS do, the rest answer at once.
    let waiter = SEGMENT_WAITERS.try_acquire().ok();
    let wait_ms = match waiter {
        Some(_) => q
            .wait_ms
            .unwrap_or(0)
            .min(MAX_SEGMENT_WAIT_MS)
            .min(api.limits.http.request_timeout_ms / 2),
        None => 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut heights = api.chain.watch_finalized();
    loop {
        // Seen now: a block finalized or certified from here on wakes
        // the wait below.
        heights.borrow_and_update();
        match crate::consensus::follow::serve(&api.chain, api.archive.as_deref(), q.after).await {
            Ok(Some(bytes)) => {
                return Ok(
                    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
                );
            }
            Err(e @ SegmentError::Pruned(_)) => {
                return Err(ApiError::not_found("pruned", e.to_string()));
            }
            // Nothing after `after` yet, or nothing certified yet (a
            // block's certificate is recorded just after it is applied; a
            // block finalized through a descendant is certified with the
            // next): wait for the next block or certificate.
            Ok(None) | Err(_) => {
                if tokio::time::timeout_at(deadline, heights.changed())
                    .await
                    .is_err()
                {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
            }
        }
    }
}

/// Segment requests that may wait for a block at once (each holds one of
/// the server's `max_requests_in_flight` places while it waits).
pub const MAX_SEGMENT_WAITERS: usize = 64;
static SEGMENT_WAITERS: Semaphore = Semaphore::const_new(MAX_SEGMENT_WAITERS);

/// State snapshot downloads served at once.
pub const MAX_SNAPSHOT_DOWNLOADS: usize = 4;
/// Bytes of a state snapshot sent per body chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
static SNAPSHOT_DOWNLOADS: Semaphore = Semaphore::const_new(MAX_SNAPSHOT_DOWNLOADS);

/// Serves a held operand tensor's canonical encoding.
#[utoipa::path(
    get,
    path = "/v1/tensors/{hash}",
    summary = "An operand tensor's canonical encoding",
    params(("hash" = TensorHash, Path)),
    responses(
        (status = 200, description = "The canonical tensor encoding", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad hash", body = ErrorEnvelope),
        (status = 404, description = "Not held", body = ErrorEnvelope)
    )
)]
async fn get_tensor(
    AxState(api): AxState<Api>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(hash) = hash.map_err(|e| path_error("tensor hash", e))?;
    let h = parse_tensor_hash(&hash)?;
    let bytes = api.chain.offchain().tensor_bytes(&h).ok_or_else(|| {
        ApiError::not_found(
            "unknown_tensor",
            format!("this node holds no tensor {hash}"),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes.as_ref().clone()),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}/receipt",
    summary = "A final job's receipt",
    params(("job_id" = String, Path, description = "`job:<64 hex>` or 64 bare hex digits")),
    responses(
        (status = 200, description = "Success", body = Receipt),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope),
        (status = 404, description = "Unknown job, or its transactions are no longer indexed", body = ErrorEnvelope),
        (status = 409, description = "Not final (`not_final`, `pending`, `job_disputed`, `job_failed`) or not certified yet (`not_certified`)", body = ErrorEnvelope)
    )
)]
async fn job_receipt(
    AxState(api): AxState<Api>,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<Receipt>, ApiError> {
    let Path(id) = id.map_err(|e| path_error("job id", e))?;
    let id = parse_job_id(&id)?;
    let conflict =
        |code: &'static str, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    let job = api
        .chain
        .finalized_state()
        .job(&id)
        .ok_or_else(|| ApiError::not_found("unknown_job", format!("no job {id}")))?;
    match job.status {
        JobStatus::Final => {}
        JobStatus::Disputed => {
            return Err(conflict(
                "job_disputed",
                format!("job {id} is disputed: its executors disagree, there is no agreed result"),
            ));
        }
        JobStatus::Failed => {
            return Err(conflict(
                "job_failed",
                format!(
                    "job {id} failed: no executor could take it, or every claim lost its dispute"
                ),
            ));
        }
        JobStatus::Pending => {
            return Err(conflict(
                "pending",
                format!(
                    "job {id} has an optimistic result, open to challenges until its window closes"
                ),
            ));
        }
        _ => {
            return Err(conflict("not_final", format!("job {id} is still running")));
        }
    }
    let closed = job.closed_height.unwrap_or(u64::MAX);
    let (certified, txs) = api.chain.certified_job(&id);
    let certified = certified
        .filter(|c| c.block.height().get() >= closed)
        .ok_or_else(|| {
            conflict(
                "not_certified",
                format!(
                    "job {id} closed at height {closed}; this node holds no finalization \
                     certificate at or after it yet (retry shortly)"
                ),
            )
        })?;
    let txs = txs.ok_or_else(|| {
        ApiError::not_found(
            "job_txs_unknown",
            format!("this node no longer indexes the transactions of job {id}"),
        )
    })?;
    let request = txs
        .request
        .ok_or_else(|| ApiError::internal(format!("job {id}: request not indexed")))?;
    let mut commits = Vec::with_capacity(job.slots.len());
    let mut reveals = Vec::with_capacity(job.slots.len());
    for slot in &job.slots {
        let commit = txs.commits.iter().rev().find(|t| {
            t.sender() == &slot.executor
                && matches!(t.body(), TxBody::CommitResult { commitment, .. } if Some(*commitment) == slot.commitment)
        });
        let reveal = txs.reveals.iter().rev().find(|t| {
            t.sender() == &slot.executor
                && matches!(t.body(), TxBody::RevealResult { salt, .. } if slot.reveal.is_some_and(|r| &r.salt == salt))
        });
        match (commit, reveal) {
            (Some(c), Some(r)) => {
                commits.push(c.clone());
                reveals.push(r.clone());
            }
            _ => {
                return Err(ApiError::internal(format!(
                    "job {id}: the transactions of executor {} are not indexed",
                    slot.executor
                )));
            }
        }
    }
    let (record, proof) = certified.state.prove_job(&id);
    let record = record.ok_or_else(|| {
        ApiError::internal(format!("job {id} is missing from the certified state"))
    })?;
    // A job decided by a dispute carries its dispute record (a
    // one-replica job won by its challenger has an agreed reveal, the
    // executor's, that lost).
    let disputed = certified
        .state
        .job_ext(&id)
        .is_some_and(|e| e.dispute.is_some());
    let ext = if disputed {
        let (ext_record, ext_proof) = certified.state.prove_job_ext(&id);
        ext_record.map(|r| (r, ext_proof))
    } else {
        None
    };
    let receipt = Receipt::build(
        &certified.state.chain_id(),
        &job,
        &record,
        &proof,
        certified.block.header(),
        &certified.finalization,
        &request,
        &commits,
        &reveals,
        ext.as_ref().map(|(r, p)| (r.as_slice(), p)),
    );
    Ok(axum::Json(receipt))
}

#[utoipa::path(
    get,
    path = "/v1/genesis",
    summary = "The network's genesis file",
    responses(
        (status = 200, description = "Success", body = NodeGenesis),
        (status = 404, description = "The node was not given it", body = ErrorEnvelope)
    )
)]
async fn genesis(AxState(api): AxState<Api>) -> Result<axum::Json<NodeGenesis>, ApiError> {
    api.genesis
        .as_deref()
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::not_found("no_genesis", "this node was not given its genesis file")
        })
}

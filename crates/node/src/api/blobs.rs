//! Model blobs over the API: uploads of registered models streamed to the
//! store while hashed, downloads hashed as they stream, and verified
//! slices (see the API's module docs, "Blobs" and "Slices").

use super::*;

/// Default largest blob a node keeps: 2 GiB (the runtime's model limit).
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 2 << 30;
/// Uploads a node takes at once; more are answered 503.
pub const MAX_CONCURRENT_UPLOADS: usize = 4;
/// Body chunks buffered between the connection and the blob writer.
const UPLOAD_QUEUE_CHUNKS: usize = 16;
/// Bytes read from disk per chunk of a download.
const DOWNLOAD_CHUNK_BYTES: usize = 64 << 10;

/// Largest slice the slice route encodes, in bytes of the blob: 4 MiB
/// (the answer adds at most two 16 KiB chunk groups and the hash pairs).
pub const MAX_SLICE_BYTES: u64 = 4 << 20;
/// Slices a node encodes at once; more are answered 503. Each holds the
/// encoded slice and the blob's outboard in memory while it is built.
pub const MAX_CONCURRENT_SLICES: usize = 16;
/// Response header carrying the blob's size on a slice answer (the
/// downloader trusts the manifest's size, not this).
pub const BLOB_SIZE_HEADER: &str = "x-glassbox-blob-size";

/// The node's model blobs: a [`BlobStore`] (whose `max_bytes` bounds every
/// upload) and the bounds on concurrent uploads and slice encodings.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: BlobStore,
    uploads: Arc<Semaphore>,
    slices: Arc<Semaphore>,
}

impl Blobs {
    /// Serves `store`.
    pub fn new(store: BlobStore) -> Self {
        Blobs {
            store,
            uploads: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
            slices: Arc::new(Semaphore::new(MAX_CONCURRENT_SLICES)),
        }
    }

    /// Opens (creating) the store at `dir`, keeping blobs of at most
    /// `max_bytes`.
    pub fn open(
        dir: impl Into<std::path::PathBuf>,
        max_bytes: u64,
    ) -> glassbox_store::Result<Self> {
        Ok(Blobs::new(BlobStore::open(dir, max_bytes)?))
    }

    /// The store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }
}

/// What the blob handlers share.
#[derive(Clone, Debug)]
pub(super) struct BlobState {
    pub(super) chain: Arc<Chain>,
    pub(super) blobs: Option<Blobs>,
}

impl BlobState {
    fn blobs(&self) -> Result<&Blobs, ApiError> {
        self.blobs.as_ref().ok_or_else(|| {
            ApiError::not_found("no_blob_store", "this node does not keep model blobs")
        })
    }
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "blob_too_large", message)
}

/// The request's `Content-Length`, if it sent one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("bad_content_length", "Content-Length is not a byte count")
        })
}

/// One piece of an upload (or a download, [`crate::executor::fetch`]), from the
/// connection to the blob writer.
pub(crate) enum Chunk {
    Data(Bytes),
    /// The body is complete.
    End,
    /// The upload is refused or broken; the writer must store nothing.
    Failed(String),
}

/// A blocking reader over the chunks of an upload (run on a blocking
/// thread). The channel closing before [`Chunk::End`] (the request was
/// dropped) is an error, so a cut-off upload is never stored.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    done: bool,
}

impl ChunkReader {
    /// A reader over what arrives on `rx`.
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChunkReader {
            rx,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => self.current = b,
                Some(Chunk::End) => self.done = true,
                Some(Chunk::Failed(reason)) => return Err(std::io::Error::other(reason)),
                None => {
                    return Err(std::io::Error::other(
                        "the upload stopped before its body was complete",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[utoipa::path(
    put,
    path = "/v1/blobs/{model_id}",
    summary = "Upload a registered model's bytes",
    params(("model_id" = String, Path, description = "`blake3:<64 hex>`")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The model file"),
    responses(
        (status = 201, description = "Stored", body = BlobStored),
        (status = 200, description = "Already held (the body is not read)", body = BlobStored),
        (status = 400, description = "The bytes hash to another id or exceed the manifest's size", body = ErrorEnvelope),
        (status = 404, description = "The node keeps no blobs", body = ErrorEnvelope),
        (status = 409, description = "The model is not registered", body = ErrorEnvelope),
        (status = 413, description = "Over the node's blob limit", body = ErrorEnvelope),
        (status = 503, description = "Replaying after a restart (Retry-After)", body = ErrorEnvelope)
    )
)]
pub(super) async fn put_blob(
    AxState(st): AxState<BlobState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use futures::StreamExt;

    let Path(id) = id.map_err(|e| path_error("model id", e))?;
    let id = parse_model_id(&id)?;
    let blobs = st.blobs()?;
    let store = &blobs.store;
    let max = store.max_bytes();
    let size_of = |id: &ModelId| {
        store
            .size_bytes(id)
            .map_err(|e| ApiError::internal(format!("looking up the blob of {id}: {e}")))
    };
    if let Some(size_bytes) = size_of(&id)? {
        return Ok(axum::Json(BlobStored {
            status: BlobAnswer::Present,
            model_id: id,
            size_bytes,
        })
        .into_response());
    }
    if !st.chain.is_ready() {
        return Err(not_ready(&st.chain));
    }
    let finalized = st.chain.finalized();
    let declared = finalized
        .state
        .model(&id)
        .map(|r| r.manifest.manifest().size_bytes)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "model_not_registered",
                format!(
                    "model {id} is not registered in the finalized state (height {}): publish \
                     its manifest with a publish_model transaction and upload its bytes once \
                     that transaction is finalized",
                    finalized.block.height().get()
                ),
            )
        })?;
    drop(finalized);
    if declared > max {
        return Err(too_large(format!(
            "model {id}'s manifest declares {declared} bytes, over this node's blob limit of \
             {max} bytes"
        )));
    }
    if let Some(len) = content_length(&headers)? {
        if len > max {
            return Err(too_large(format!(
                "the body is {len} bytes, over this node's blob limit of {max} bytes"
            )));
        }
        if len != declared {
            return Err(ApiError::bad_request(
                "size_mismatch",
                format!(
                    "the body is {len} bytes but model {id}'s manifest declares {declared} bytes"
                ),
            ));
        }
    }
    let permit = blobs.uploads.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "this node is taking {MAX_CONCURRENT_UPLOADS} uploads already; try again shortly"
            ),
        )
    })?;

    let (tx, rx) = mpsc::channel(UPLOAD_QUEUE_CHUNKS);
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            store.put_reader(ChunkReader::new(rx), Some(&id))
        })
    };
    // Feed the writer; on a refusal tell it to store nothing.
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let fed: Result<(), ApiError> = loop {
        match stream.next().await {
            Some(Ok(bytes)) => {
                received = received.saturating_add(bytes.len() as u64);
                if received > declared {
                    break Err(ApiError::bad_request(
                        "size_mismatch",
                        format!(
                            "the body is longer than the {declared} bytes model {id}'s manifest \
                             declares"
                        ),
                    ));
                }
                if tx.send(Chunk::Data(bytes)).await.is_err() {
                    // The writer stopped; its result says why.
                    break Ok(());
                }
            }
            Some(Err(e)) => {
                break Err(ApiError::bad_request(
                    "bad_body",
                    format!("reading the request body after {received} bytes: {e}"),
                ));
            }
            None => {
                let _ = tx.send(Chunk::End).await;
                break Ok(());
            }
        }
    };
    if let Err(e) = &fed {
        let _ = tx.send(Chunk::Failed(e.message.clone())).await;
    }
    drop(tx);
    let stored = writer
        .await
        .map_err(|e| ApiError::internal(format!("the writer of blob {id} failed: {e}")))?;
    fed?;
    match stored {
        Ok((_, size_bytes)) => Ok((
            StatusCode::CREATED,
            axum::Json(BlobStored {
                status: BlobAnswer::Stored,
                model_id: id,
                size_bytes,
            }),
        )
            .into_response()),
        Err(glassbox_store::Error::HashMismatch { expected, actual }) => {
            Err(ApiError::bad_request(
                "hash_mismatch",
                format!(
                    "the body ({received} bytes) hashes to {actual}, not to the model id \
                     {expected}; nothing was stored"
                ),
            ))
        }
        Err(glassbox_store::Error::TooLarge { max_bytes, .. }) => Err(too_large(format!(
            "the body is over this node's blob limit of {max_bytes} bytes"
        ))),
        Err(e) => Err(ApiError::internal(format!("storing blob {id}: {e}"))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/blobs/{model_id}",
    summary = "A model's bytes (also HEAD)",
    params(("model_id" = String, Path, description = "`blake3:<64 hex>`")),
    responses(
        (status = 200, description = "The model file, with its id as ETag", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Malformed path parameter", body = ErrorEnvelope),
        (status = 404, description = "Not held", body = ErrorEnvelope)
    )
)]
pub(super) async fn get_blob(
    AxState(st): AxState<BlobState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;

    let Path(id) = id.map_err(|e| path_error("model id", e))?;
    let id = parse_model_id(&id)?;
    let blobs = st.blobs()?;
    let path = blobs.store.path(&id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(
                "blob_not_found",
                format!("this node does not have the blob of model {id}"),
            ));
        }
        Err(e) => {
            return Err(ApiError::internal(format!("opening the blob of {id}: {e}")));
        }
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("reading the blob of {id}: {e}")))?
        .len();
    // Hash while streaming; stored bytes that turn out corrupt end the
    // response with an error (the client sees it cut off), never complete.
    struct Download {
        file: tokio::fs::File,
        hasher: blake3::Hasher,
        sent: u64,
        done: bool,
    }
    let start = Download {
        file,
        hasher: blake3::Hasher::new(),
        sent: 0,
        done: false,
    };
    let stream = futures::stream::unfold(start, move |mut d| async move {
        if d.done {
            return None;
        }
        let mut buf = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        let n = match d.file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                d.done = true;
                return Some((Err(e), d));
            }
        };
        d.sent = d.sent.saturating_add(n as u64);
        if n > 0 && d.sent <= size {
            buf.truncate(n);
            d.hasher.update(&buf);
            return Some((Ok(Bytes::from(buf)), d));
        }
        d.done = true;
        let actual = ModelId::from(d.hasher.finalize());
        if actual == id && d.sent == size {
            return None;
        }
        tracing::error!(model = %id, %actual, "stored blob is corrupt; download cut off");
        Some((
            Err(std::io::Error::other(format!(
                "the stored blob of {id} is corrupt (it hashes to {actual})"
            ))),
            d,
        ))
    });
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{id}\"")) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}

/// `?offset=&len=` of the slice route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SliceQuery {
    offset: u64,
    len: u64,
}

#[utoipa::path(
    get,
    path = "/v1/blobs/{model_id}/slice",
    summary = "A verified slice of a model's bytes (bao-encoded)",
    params(("model_id" = String, Path, description = "`blake3:<64 hex>`"), ("offset" = u64, Query, description = "First byte"), ("len" = u64, Query, description = "Bytes, 1 to 4 MiB")),
    responses(
        (status = 200, description = "The bao-encoded slice; the blob's size in X-Glassbox-Blob-Size", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad query or range", body = ErrorEnvelope),
        (status = 404, description = "Not held", body = ErrorEnvelope),
        (status = 500, description = "The stored blob fails verification", body = ErrorEnvelope),
        (status = 503, description = "Too many slices being encoded", body = ErrorEnvelope)
    )
)]
pub(super) async fn get_slice(
    AxState(st): AxState<BlobState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<SliceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    use glassbox_store::{SliceError, SliceRequest};

    let Path(id) = id.map_err(|e| path_error("model id", e))?;
    let id = parse_model_id(&id)?;
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(
            "bad_query",
            format!(
                "{} (expected `?offset=<byte>&len=<bytes, 1 to {MAX_SLICE_BYTES}>`)",
                e.body_text()
            ),
        )
    })?;
    let blobs = st.blobs()?;
    let req = SliceRequest {
        offset: q.offset,
        len: q.len,
    };
    // Refuse what no blob could satisfy before touching the disk.
    if req.len > MAX_SLICE_BYTES {
        return Err(ApiError::bad_request(
            "slice_too_large",
            format!(
                "a slice of {} bytes is over this node's limit of {MAX_SLICE_BYTES} bytes",
                req.len
            ),
        ));
    }
    let permit = blobs.slices.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "this node is encoding {MAX_CONCURRENT_SLICES} slices already; try again shortly"
            ),
        )
    })?;
    let store = blobs.store.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let size = store.size_bytes(&id)?;
        let encoded = store.encode_slice(&id, req, MAX_SLICE_BYTES)?;
        Ok::<_, glassbox_store::Error>((size, encoded))
    })
    .await
    .map_err(|e| ApiError::internal(format!("encoding a slice of {id} failed: {e}")))?;
    let (size, encoded) = match encoded {
        Ok(ok) => ok,
        Err(glassbox_store::Error::MissingBlob(_)) => {
            return Err(ApiError::not_found(
                "blob_not_found",
                format!("this node does not have the blob of model {id}"),
            ));
        }
        Err(glassbox_store::Error::Slice(e @ SliceError::TooLarge { .. })) => {
            return Err(ApiError::bad_request("slice_too_large", e.to_string()));
        }
        Err(glassbox_store::Error::Slice(e)) => {
            return Err(ApiError::bad_request("bad_range", e.to_string()));
        }
        Err(e @ glassbox_store::Error::Corrupt { .. }) => {
            tracing::error!(model = %id, error = %e, "stored blob is corrupt; slice refused");
            return Err(ApiError::internal(format!(
                "the stored blob of {id} is corrupt; not served"
            )));
        }
        Err(e) => {
            return Err(ApiError::internal(format!("encoding a slice of {id}: {e}")));
        }
    };
    let mut res = Body::from(encoded).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = size {
        h.insert(BLOB_SIZE_HEADER, HeaderValue::from(size));
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}

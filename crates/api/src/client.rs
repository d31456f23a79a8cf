//! The one client of the node's API: async over reqwest ([`Client`]), and a
//! blocking wrapper ([`crate::blocking::Client`]) for code without a
//! runtime. Every answer is bounded ([`MAX_JSON_BYTES`], or the caller's
//! `max_bytes` for downloads), decoded into the [`crate::wire`] types,
//! proof-checked for state reads ([`Verified`]) and hash-checked for
//! content-addressed downloads. A refused request is [`Error::Api`] with
//! the node's status, code and message.

use std::time::Duration;

use glassbox_ledger::{
    Account, Executor, Job, JobExt, JobId, ModelRecord, SignedTx, StateKey, TxHash,
};
use glassbox_primitives::{ModelId, TensorHash, clip, hex};
use glassbox_types::PublicKey;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::verify::{Record, VerifyError, VersionEntry};
use crate::wire::{
    BlobStored, Block, ByName, ConcentrationReport, ErrorBody, ErrorEnvelope, Health, JobSubmitted,
    ModelSummary, Page, Proven, Status, SubmitTx, TensorStored, TxStatus, TxSubmitted,
};
use crate::{Verified, routes};

/// Largest JSON answer read, in bytes.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// Longest a connection attempt waits.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The slowest transfer a blob or tensor call allows for, in bytes per
/// second: its timeout grows with the size at this rate.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 1 << 20;
/// Longest piece of an unexpected answer quoted in an error.
const MAX_QUOTE: usize = 200;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node URL is not `http://HOST[:PORT]`.
    #[error("node URL `{url}`: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A request the client refuses to send (it would ask for something
    /// else than the caller means).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was given.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No answer: the connection failed or broke.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// No answer within the call's timeout.
    #[error("{method} {url}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The timeout.
        timeout_ms: u128,
    },
    /// The node refused the request: its status and error body.
    #[error("{method} {url}: HTTP {status} {}: {}", error.code, error.message)]
    Api {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The node's error.
        error: ErrorBody,
    },
    /// The answer is not what the route answers (not JSON of the right
    /// shape, too large, content not matching its hash).
    #[error("{method} {url}: the answer (HTTP {status}) {reason}")]
    Answer {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What is wrong with it.
        reason: String,
    },
    /// A state answer whose proof does not check.
    #[error("{method} {url}: {source}")]
    Verify {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// Why.
        source: Box<VerifyError>,
    },
    /// The blocking client could not start its runtime.
    #[error("starting the HTTP client: {0}")]
    Runtime(String),
}

impl Error {
    /// The HTTP status of a refusal or an unexpected answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Answer { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The node's error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A raw answer: status and body.
struct Raw {
    status: u16,
    bytes: Vec<u8>,
}

/// A request: what [`Client::send`] sends.
struct Request<'a> {
    method: reqwest::Method,
    path: &'a str,
    body: Option<(&'static str, Vec<u8>)>,
    timeout: Duration,
    max_bytes: u64,
}

/// A node's proven `name@version` entry and the model record it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelByName {
    /// The index entry: the model id registered under the name and version.
    pub entry: Verified<VersionEntry>,
    /// The model record it points to (`None` when the entry is absent).
    pub model: Option<Verified<ModelRecord>>,
}

/// An async client of one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client of the node at `url` (`http://HOST[:PORT]` or
    /// `https://HOST[:PORT]`), giving each call `timeout`; `https://` nodes
    /// must show a certificate from Mozilla's roots.
    pub fn new(url: &str, timeout: Duration) -> Result<Client> {
        Client::with_ca(url, timeout, None)
    }

    /// [`Client::new`], also trusting the CA certificates in `ca_pem`
    /// (PEM), such as a private network's.
    pub fn with_ca(url: &str, timeout: Duration, ca_pem: Option<&[u8]>) -> Result<Client> {
        let base = url.trim_end_matches('/').to_string();
        let bad = |reason: &str| Error::Url {
            url: clip(url, 80),
            reason: reason.to_string(),
        };
        let Some(host) = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
        else {
            return Err(bad("expected http://HOST:PORT or https://HOST[:PORT]"));
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("expected http(s)://HOST[:PORT], without a path"));
        }
        let http = crate::tls::http_client(ca_pem)
            .map_err(|e| Error::Runtime(e.to_string()))?
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Runtime(chain(&e)))?;
        Ok(Client {
            base,
            http,
            timeout,
        })
    }

    /// The node's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn get<'a>(&self, path: &'a str) -> Request<'a> {
        self.request(reqwest::Method::GET, path)
    }

    fn request<'a>(&self, method: reqwest::Method, path: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            body: None,
            timeout: self.timeout,
            max_bytes: MAX_JSON_BYTES,
        }
    }

    async fn send(&self, r: Request<'_>) -> Result<Raw> {
        let method = method_name(&r.method);
        let url = self.url(r.path);
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                // A connection attempt has its own, shorter bound.
                let limit = if e.is_connect() {
                    r.timeout.min(MAX_CONNECT_TIMEOUT)
                } else {
                    r.timeout
                };
                Error::Timeout {
                    method,
                    url: url.clone(),
                    timeout_ms: limit.as_millis(),
                }
            } else {
                let mut reason = chain(&e);
                if e.is_connect() {
                    reason.push_str("; is a glassbox node serving its API there?");
                }
                Error::Transport {
                    method,
                    url: url.clone(),
                    reason,
                }
            }
        };
        let mut req = self.http.request(r.method.clone(), &url).timeout(r.timeout);
        if let Some((content_type, body)) = r.body {
            req = req.header("content-type", content_type).body(body);
        }
        let mut res = req.send().await.map_err(transport)?;
        let status = res.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(transport)? {
            if (bytes.len() + chunk.len()) as u64 > r.max_bytes {
                return Err(Error::Answer {
                    method,
                    url,
                    status,
                    reason: format!("is over the limit of {} bytes", r.max_bytes),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Raw { status, bytes })
    }

    /// Sends `r`; a 2xx answer, or the node's refusal.
    async fn ok(&self, r: Request<'_>) -> Result<Raw> {
        let (method, path) = (method_name(&r.method), r.path);
        let raw = self.send(r).await?;
        if (200..300).contains(&raw.status) {
            Ok(raw)
        } else {
            Err(self.refusal(method, path, raw))
        }
    }

    /// A non-2xx answer as an error: the node's error body, or the answer
    /// quoted when it is not one.
    fn refusal(&self, method: &'static str, path: &str, raw: Raw) -> Error {
        match serde_json::from_slice::<ErrorEnvelope>(&raw.bytes) {
            Ok(e) => Error::Api {
                method,
                url: self.url(path),
                status: raw.status,
                error: e.error,
            },
            Err(_) => Error::Answer {
                method,
                url: self.url(path),
                status: raw.status,
                reason: format!("is not an error body: {}", quote(&raw.bytes)),
            },
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        raw: &Raw,
    ) -> Result<T> {
        serde_json::from_slice(&raw.bytes).map_err(|e| Error::Answer {
            method,
            url: self.url(path),
            status: raw.status,
            reason: format!("does not decode ({e}): {}", quote(&raw.bytes)),
        })
    }

    async fn json<T: DeserializeOwned>(&self, r: Request<'_>) -> Result<T> {
        let (method, path) = (method_name(&r.method), r.path);
        let raw = self.ok(r).await?;
        self.decode(method, path, &raw)
    }

    async fn proven<R: Record>(&self, path: &str, key: &StateKey) -> Result<Verified<R>> {
        let p: Proven<IgnoredAny> = self.json(self.get(path)).await?;
        self.check(path, p.verify(key))
    }

    fn check<T>(&self, path: &str, r: std::result::Result<T, VerifyError>) -> Result<T> {
        r.map_err(|source| Error::Verify {
            method: "GET",
            url: self.url(path),
            source: Box::new(source),
        })
    }

    /// `GET /health`: ready (200) or replaying (503), both answers.
    pub async fn health(&self) -> Result<Health> {
        let path = routes::HEALTH;
        let raw = self.send(self.get(path)).await?;
        match raw.status {
            200 | 503 => self.decode("GET", path, &raw),
            _ => Err(self.refusal("GET", path, raw)),
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status> {
        self.json(self.get(routes::STATUS)).await
    }

    fn tx_body(tx: &SignedTx) -> Vec<u8> {
        let body = SubmitTx {
            tx: hex(tx.encoded()),
        };
        // A struct of one string always serializes.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// `POST /v1/tx`.
    pub async fn submit_tx(&self, tx: &SignedTx) -> Result<TxSubmitted> {
        let mut r = self.request(reqwest::Method::POST, routes::TX);
        r.body = Some(("application/json", Self::tx_body(tx)));
        self.json(r).await
    }

    /// `POST /v1/jobs`: a `submit_job` transaction.
    pub async fn submit_job(&self, tx: &SignedTx) -> Result<JobSubmitted> {
        let mut r = self.request(reqwest::Method::POST, routes::JOBS);
        r.body = Some(("application/json", Self::tx_body(tx)));
        self.json(r).await
    }

    /// `GET /v1/tx/{hash}`.
    pub async fn tx_status(&self, hash: &TxHash) -> Result<TxStatus> {
        self.json(self.get(&routes::tx(hash))).await
    }

    /// `GET /v1/blocks/latest`.
    pub async fn latest_block(&self) -> Result<Block> {
        self.json(self.get(routes::LATEST_BLOCK)).await
    }

    /// `GET /v1/blocks/{height}`.
    pub async fn block(&self, height: u64) -> Result<Block> {
        self.json(self.get(&routes::block(height))).await
    }

    /// `GET /v1/accounts/{address}`, proof-checked.
    pub async fn account(&self, address: &PublicKey) -> Result<Verified<Account>> {
        self.proven(&routes::account(address), &StateKey::Account(*address))
            .await
    }

    /// `GET /v1/executors/{address}`, proof-checked.
    pub async fn executor(&self, owner: &PublicKey) -> Result<Verified<Executor>> {
        self.proven(&routes::executor(owner), &StateKey::Executor(*owner))
            .await
    }

    /// `GET /v1/executors`: a page of at most `limit` records after `after`.
    pub async fn executors(
        &self,
        limit: Option<u32>,
        after: Option<&PublicKey>,
    ) -> Result<Page<Executor>> {
        let after = after.map(ToString::to_string);
        self.json(self.get(&routes::page(routes::EXECUTORS, limit, after.as_deref())))
            .await
    }

    /// `GET /v1/models/{model_id}`, proof-checked.
    pub async fn model(&self, id: &ModelId) -> Result<Verified<ModelRecord>> {
        self.proven(&routes::model(id), &StateKey::Model(*id)).await
    }

    /// `GET /v1/models/by-name/{name}/{version}`, both proofs checked
    /// against one state root, and the record checked to be the one the
    /// entry names. `name` and `version` are checked first (a `/` in the
    /// version, say, would ask for another key).
    pub async fn model_by_name(&self, name: &str, version: &str) -> Result<ModelByName> {
        let invalid = |reason: String| Error::Invalid {
            what: "model name and version",
            reason,
        };
        glassbox_types::validate_name(name).map_err(|e| invalid(e.to_string()))?;
        if version.is_empty()
            || version.len() > glassbox_types::Limits::MAX_VERSION_BYTES
            || !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
        {
            return Err(invalid(format!(
                "`{}` is not a version (semantic version, at most {} bytes)",
                clip(version, 80),
                glassbox_types::Limits::MAX_VERSION_BYTES
            )));
        }
        let path = routes::model_by_name(name, version);
        let answer: ByName<IgnoredAny, IgnoredAny> = self.json(self.get(&path)).await?;
        let entry_key = StateKey::ModelVersion {
            name: name.to_string(),
            version: version.to_string(),
        };
        let entry: Verified<VersionEntry> = self.check(&path, answer.entry.verify(&entry_key))?;
        let model = match (&entry.record, &answer.model) {
            (Some(VersionEntry(id)), Some(m)) => {
                let m: Verified<ModelRecord> =
                    self.check(&path, m.verify(&StateKey::Model(*id)))?;
                if (m.height, m.block, m.state_root)
                    != (entry.height, entry.block, entry.state_root)
                {
                    return Err(
                        self.bad_answer(&path, "proves the entry and the model in two states")
                    );
                }
                Some(m)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.bad_answer(&path, "names a model but carries no model record"));
            }
            (None, Some(_)) => {
                return Err(self.bad_answer(&path, "carries a model record for an absent entry"));
            }
        };
        Ok(ModelByName { entry, model })
    }

    /// A 200 answer that is not what the route answers.
    fn bad_answer(&self, path: &str, reason: &str) -> Error {
        Error::Answer {
            method: "GET",
            url: self.url(path),
            status: 200,
            reason: reason.to_string(),
        }
    }

    /// `GET /v1/models`: a page of at most `limit` summaries after `after`.
    pub async fn models(
        &self,
        limit: Option<u32>,
        after: Option<&ModelId>,
    ) -> Result<Page<ModelSummary>> {
        let after = after.map(ToString::to_string);
        self.json(self.get(&routes::page(routes::MODELS, limit, after.as_deref())))
            .await
    }

    /// `GET /v1/jobs/{job_id}`, proof-checked.
    pub async fn job(&self, id: &JobId) -> Result<Verified<Job>> {
        self.proven(&routes::job(id), &StateKey::Job(*id)).await
    }

    /// `GET /v1/jobs/{job_id}/ext`, proof-checked.
    pub async fn job_ext(&self, id: &JobId) -> Result<Verified<JobExt>> {
        self.proven(&routes::job_ext(id), &StateKey::JobExt(*id))
            .await
    }

    /// `GET /v1/jobs/{job_id}/receipt`, decoded as `R` (the node's
    /// `Receipt`, which the caller verifies against the genesis).
    pub async fn receipt<R: DeserializeOwned>(&self, id: &JobId) -> Result<R> {
        self.json(self.get(&routes::receipt(id))).await
    }

    /// `GET /v1/genesis`, decoded as `G` (the node's `NodeGenesis`).
    pub async fn genesis<G: DeserializeOwned>(&self) -> Result<G> {
        self.json(self.get(routes::GENESIS)).await
    }

    /// `GET /v1/concentration`.
    pub async fn concentration(&self) -> Result<ConcentrationReport> {
        self.json(self.get(routes::CONCENTRATION)).await
    }

    /// `PUT /v1/tensors/{hash}`: an operand tensor's canonical encoding,
    /// for the referee.
    pub async fn put_tensor(&self, encoding: Vec<u8>) -> Result<TensorStored> {
        let hash = TensorHash::from(blake3::hash(&encoding));
        let path = routes::tensor(&hash);
        let mut r = self.request(reqwest::Method::PUT, &path);
        r.body = Some(("application/octet-stream", encoding));
        self.json(r).await
    }

    /// `GET /v1/tensors/{hash}`: a tensor's canonical encoding of at most
    /// `max_bytes`, checked to hash to `hash`.
    pub async fn tensor(&self, hash: &TensorHash, max_bytes: u64) -> Result<Vec<u8>> {
        let path = routes::tensor(hash);
        let mut r = self.get(&path);
        r.max_bytes = max_bytes;
        r.timeout = self.transfer_timeout(max_bytes);
        let bytes = self.ok(r).await?.bytes;
        if TensorHash::from(blake3::hash(&bytes)) != *hash {
            return Err(self.bad_answer(&path, "does not hash to the tensor hash asked for"));
        }
        Ok(bytes)
    }

    /// The bound of moving up to `bytes` bytes: the call timeout (at least
    /// a minute) plus a second per [`MIN_UPLOAD_BYTES_PER_SEC`].
    fn transfer_timeout(&self, bytes: u64) -> Duration {
        self.timeout.max(Duration::from_secs(60))
            + Duration::from_secs(bytes / MIN_UPLOAD_BYTES_PER_SEC)
    }

    /// `HEAD /v1/blobs/{model_id}`: whether the node holds the model.
    pub async fn has_blob(&self, id: &ModelId) -> Result<bool> {
        let path = routes::blob(id);
        let raw = self
            .send(self.request(reqwest::Method::HEAD, &path))
            .await?;
        match raw.status {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(Error::Answer {
                method: "HEAD",
                url: self.url(&path),
                status,
                reason: "is neither 200 nor 404".into(),
            }),
        }
    }

    /// `PUT /v1/blobs/{model_id}`: the model's bytes. The timeout grows
    /// with the size ([`MIN_UPLOAD_BYTES_PER_SEC`]).
    pub async fn put_blob(&self, id: &ModelId, bytes: Vec<u8>) -> Result<BlobStored> {
        let path = routes::blob(id);
        let mut r = self.request(reqwest::Method::PUT, &path);
        r.timeout = self.transfer_timeout(bytes.len() as u64);
        r.body = Some(("application/octet-stream", bytes));
        self.json(r).await
    }

    /// `GET /v1/blobs/{model_id}`: the model's bytes (at most
    /// `max_bytes`), checked to hash to `id`.
    pub async fn blob(&self, id: &ModelId, max_bytes: u64) -> Result<Vec<u8>> {
        let path = routes::blob(id);
        let mut r = self.get(&path);
        r.max_bytes = max_bytes;
        r.timeout = self.transfer_timeout(max_bytes);
        let bytes = self.ok(r).await?.bytes;
        if ModelId::from(blake3::hash(&bytes)) != *id {
            return Err(self.bad_answer(&path, "does not hash to the model id asked for"));
        }
        Ok(bytes)
    }
}

fn method_name(m: &reqwest::Method) -> &'static str {
    match *m {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::HEAD => "HEAD",
        _ => "request",
    }
}

/// An error and its causes, `: `-separated (reqwest's own message names
/// only the outermost).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// The start of an unexpected answer, for an error message.
fn quote(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        clip(
            &String::from_utf8_lossy(&bytes[..bytes.len().min(4 * MAX_QUOTE)]),
            MAX_QUOTE
        )
    )
}

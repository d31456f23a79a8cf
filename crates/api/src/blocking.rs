//! The blocking client: [`crate::Client`]'s calls run to completion on a
//! current-thread runtime of its own, driven by the calling thread. Call
//! it from code without an async runtime (the CLI, scripts, tests): inside
//! one its calls panic (tokio refuses a runtime within a runtime), so use
//! the async client there. Clones share the runtime and the connection
//! pool, and may be used from several threads at once (tokio's
//! current-thread `block_on` hands its drivers from thread to thread).

use std::sync::Arc;
use std::time::Duration;

use glassbox_ledger::{Account, Executor, Job, JobExt, JobId, ModelRecord, SignedTx, TxHash};
use glassbox_primitives::{ModelId, TensorHash};
use glassbox_types::PublicKey;
use serde::de::DeserializeOwned;

use crate::Verified;
use crate::client::{self, Error, ModelByName};
use crate::wire::{
    BlobStored, Block, ConcentrationReport, Health, JobSubmitted, ModelSummary, Page, Status,
    TensorStored, TxStatus, TxSubmitted,
};

/// A blocking client of one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    rt: Arc<tokio::runtime::Runtime>,
    inner: client::Client,
}

impl Client {
    /// A client of the node at `url` (`http(s)://HOST[:PORT]`), giving
    /// each call `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Client, Error> {
        Client::with_ca(url, timeout, None)
    }

    /// [`Client::new`], also trusting the CA certificates in `ca_pem`
    /// (PEM).
    pub fn with_ca(url: &str, timeout: Duration, ca_pem: Option<&[u8]>) -> Result<Client, Error> {
        let inner = client::Client::with_ca(url, timeout, ca_pem)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Client {
            rt: Arc::new(rt),
            inner,
        })
    }

    /// The node's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        self.inner.base()
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        self.inner.url(path)
    }

    /// `GET /v1/jobs/{job_id}/receipt`, decoded as `R`.
    pub fn receipt<R: DeserializeOwned>(&self, id: &JobId) -> Result<R, Error> {
        self.rt.block_on(self.inner.receipt(id))
    }

    /// `GET /v1/genesis`, decoded as `G`.
    pub fn genesis<G: DeserializeOwned>(&self) -> Result<G, Error> {
        self.rt.block_on(self.inner.genesis())
    }
}

/// Each listed async call, run to completion.
macro_rules! blocking {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Client {
            $(
                #[doc = concat!("[`client::Client::", stringify!($name), "`], blocking.")]
                pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret, Error> {
                    self.rt.block_on(self.inner.$name($($arg),*))
                }
            )*
        }
    };
}

blocking! {
    health() -> Health;
    status() -> Status;
    submit_tx(tx: &SignedTx) -> TxSubmitted;
    submit_job(tx: &SignedTx) -> JobSubmitted;
    tx_status(hash: &TxHash) -> TxStatus;
    latest_block() -> Block;
    block(height: u64) -> Block;
    account(address: &PublicKey) -> Verified<Account>;
    executor(owner: &PublicKey) -> Verified<Executor>;
    executors(limit: Option<u32>, after: Option<&PublicKey>) -> Page<Executor>;
    model(id: &ModelId) -> Verified<ModelRecord>;
    model_by_name(name: &str, version: &str) -> ModelByName;
    models(limit: Option<u32>, after: Option<&ModelId>) -> Page<ModelSummary>;
    job(id: &JobId) -> Verified<Job>;
    job_ext(id: &JobId) -> Verified<JobExt>;
    concentration() -> ConcentrationReport;
    put_tensor(encoding: Vec<u8>) -> TensorStored;
    tensor(hash: &TensorHash, max_bytes: u64) -> Vec<u8>;
    has_blob(id: &ModelId) -> bool;
    put_blob(id: &ModelId, bytes: Vec<u8>) -> BlobStored;
    blob(id: &ModelId, max_bytes: u64) -> Vec<u8>;
}

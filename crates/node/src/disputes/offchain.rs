//! The data a validator needs off the ledger to referee disputes
//! (docs/disputes.md, "Data off-ledger, by hash"): loaded models (from the
//! blob store, fetched from peers when missing) and the operand tensors
//! parties open, held in a bounded in-memory store keyed by canonical hash
//! (`PUT/GET /v1/tensors/{hash}`), fetched from peers when missing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use glassbox_ledger::{RefereeWork, SignedTx, State};
use glassbox_primitives::TensorHash;
use glassbox_runtime::{Limits, Model, Options, Session, Tensor, formats};
use glassbox_store::BlobStore;
use glassbox_types::ModelId;
use tracing::debug;

use crate::disputes::referee::RefereeData;
use crate::executor::fetch::{FetchOptions, fetch_blob, fetch_tensor};

/// Bounds of the off-chain data.
#[derive(Clone, Debug)]
pub struct OffChainLimits {
    /// Most bytes of tensors held (oldest evicted first).
    pub max_tensor_store_bytes: usize,
    /// Largest single tensor accepted, in bytes of its canonical encoding.
    pub max_tensor_bytes: usize,
    /// Most loaded models kept.
    pub max_sessions: usize,
    /// Time one peer may take to serve a tensor, in ms.
    pub fetch_timeout_ms: u64,
}

impl Default for OffChainLimits {
    fn default() -> Self {
        OffChainLimits {
            max_tensor_store_bytes: 1 << 30,
            max_tensor_bytes: 64 << 20,
            max_sessions: 4,
            fetch_timeout_ms: 2_000,
        }
    }
}

#[derive(Default)]
struct TensorStore {
    bytes: usize,
    order: VecDeque<TensorHash>,
    by_hash: HashMap<TensorHash, Arc<Vec<u8>>>,
}

/// Models and tensors for the referee, shared by the node's tasks.
pub struct OffChain {
    blobs: Option<BlobStore>,
    peers: Vec<String>,
    own: Option<String>,
    limits: OffChainLimits,
    tensors: Mutex<TensorStore>,
    sessions: Mutex<VecDeque<(ModelId, Arc<Session>)>>,
}

impl std::fmt::Debug for OffChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffChain")
            .field("tensors", &lock(&self.tensors).by_hash.len())
            .field("sessions", &lock(&self.sessions).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data, no invariant spans an unwind point.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OffChain {
    /// Off-chain data over `blobs` (none: models are never available),
    /// fetching from `peers` (base URLs) and the executors' endpoints,
    /// never from `own`.
    pub fn new(
        blobs: Option<BlobStore>,
        peers: Vec<String>,
        own: Option<String>,
        limits: OffChainLimits,
    ) -> Self {
        OffChain {
            blobs,
            peers,
            own,
            limits,
            tensors: Mutex::new(TensorStore::default()),
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    /// Holds a tensor given as its canonical encoding; returns its hash.
    /// Refuses anything that is not a canonical tensor within the size
    /// limit.
    pub fn put_tensor(&self, bytes: Vec<u8>) -> Result<TensorHash, String> {
        if bytes.len() > self.limits.max_tensor_bytes {
            return Err(format!(
                "{} bytes, over the limit of {}",
                bytes.len(),
                self.limits.max_tensor_bytes
            ));
        }
        glassbox_ledger::parse_tensor(&bytes)?;
        let hash = TensorHash::from(blake3::hash(&bytes));
        let mut s = lock(&self.tensors);
        if s.by_hash.contains_key(&hash) {
            return Ok(hash);
        }
        s.bytes = s.bytes.saturating_add(bytes.len());
        s.order.push_back(hash);
        s.by_hash.insert(hash, Arc::new(bytes));
        while s.bytes > self.limits.max_tensor_store_bytes && s.order.len() > 1 {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if let Some(b) = s.by_hash.remove(&old) {
                s.bytes = s.bytes.saturating_sub(b.len());
            }
        }
        Ok(hash)
    }

    /// The canonical encoding of a held tensor.
    pub fn tensor_bytes(&self, hash: &TensorHash) -> Option<Arc<Vec<u8>>> {
        lock(&self.tensors).by_hash.get(hash).cloned()
    }

    fn peers(&self, state: &State) -> Vec<String> {
        let mut peers = self.peers.clone();
        for e in state.executors() {
            if !peers.contains(&e.endpoint) {
                peers.push(e.endpoint.clone());
            }
        }
        if let Some(own) = &self.own {
            peers.retain(|p| p != own);
        }
        peers
    }

    /// Fetches what `work` needs and this node lacks: the model (verified
    /// slices from peers) and each tensor.
    pub async fn ensure(&self, state: &State, work: &RefereeWork) -> Result<(), String> {
        let peers = self.peers(state);
        if let Some(blobs) = &self.blobs
            && !blobs.contains(&work.model_id)
        {
            let size = state
                .model(&work.model_id)
                .map(|m| m.manifest.manifest().size_bytes)
                .ok_or_else(|| format!("model {} is not published", work.model_id))?;
            fetch_blob(blobs, &work.model_id, size, &peers, FetchOptions::default())
                .await
                .map_err(|e| format!("model {}: {e}", work.model_id))?;
        }
        for hash in &work.tensors {
            if self.tensor_bytes(hash).is_some() {
                continue;
            }
            let bytes = fetch_tensor(
                &peers,
                hash,
                self.limits.max_tensor_bytes as u64,
                self.limits.fetch_timeout_ms,
            )
            .await?;
            self.put_tensor(bytes)?;
        }
        Ok(())
    }

    /// [`OffChain::ensure`] for every dispute step of a block on `parent`.
    pub async fn ensure_block(&self, parent: &State, txs: &[SignedTx]) -> Result<(), String> {
        for tx in txs {
            if let Some(work) = parent.referee_needs(tx) {
                debug!(job = %work.job_id, tensors = work.tensors.len(), "fetching referee data");
                self.ensure(parent, &work).await?;
            }
        }
        Ok(())
    }
}

impl RefereeData for OffChain {
    fn session(&self, model: &ModelId) -> Option<Arc<Session>> {
        if let Some((_, s)) = lock(&self.sessions).iter().find(|(m, _)| m == model) {
            return Some(Arc::clone(s));
        }
        let bytes = self.blobs.as_ref()?.get(model).ok()?;
        let loaded = Model::load(&bytes, Limits::default()).ok()?;
        let session = Arc::new(Session::new(Arc::new(loaded), Options::default()).ok()?);
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.limits.max_sessions {
            sessions.pop_front();
        }
        sessions.push_back((*model, Arc::clone(&session)));
        Some(session)
    }

    fn tensor(&self, hash: &TensorHash) -> Option<Tensor> {
        let bytes = self.tensor_bytes(hash)?;
        formats::canonical_decode(&bytes, usize::MAX).ok()
    }
}

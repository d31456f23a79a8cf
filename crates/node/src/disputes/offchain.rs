//! The data a validator needs off the ledger to referee disputes
//! (docs/disputes.md, "Data off-ledger, by hash"): loaded models (from the
//! blob store, fetched from peers when missing) and the operand tensors
//! parties open, held in bounded in-memory stores keyed by canonical hash
//! (`GET /v1/tensors/{hash}` serves both), fetched from peers when missing.
//!
//! Two stores with their own budgets, so that nobody can evict the data a
//! dispute needs by uploading (issue #25): tensors this node's own party
//! opens and tensors fetched because a dispute step on the chain needs
//! them are *held*; tensors anyone uploads (`PUT /v1/tensors`,
//! unauthenticated) are *uploads*, evicted oldest first among themselves
//! only, and promoted to held when a step needs them. Held tensors are
//! also written to a durable content-addressed store in the node's data
//! directory (when it has one): replaying finalized dispute steps after a
//! restart needs them, and after a restart of every validator nobody else
//! would still have them.

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
    /// Most bytes of held tensors: this node's own openings and those a
    /// step on the chain needs (oldest evicted first).
    pub max_tensor_store_bytes: usize,
    /// Most bytes of uploaded tensors (oldest evicted first, never a held
    /// one).
    pub max_upload_bytes: usize,
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
            max_upload_bytes: 256 << 20,
            max_tensor_bytes: 64 << 20,
            max_sessions: 4,
            fetch_timeout_ms: 2_000,
        }
    }
}

/// Tensors by hash, evicted oldest first beyond a byte budget.
#[derive(Default)]
struct TensorStore {
    bytes: usize,
    order: VecDeque<TensorHash>,
    by_hash: HashMap<TensorHash, Arc<Vec<u8>>>,
}

impl TensorStore {
    fn insert(&mut self, hash: TensorHash, bytes: Arc<Vec<u8>>, max_bytes: usize) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        self.bytes = self.bytes.saturating_add(bytes.len());
        self.order.push_back(hash);
        self.by_hash.insert(hash, bytes);
        while self.bytes > max_bytes && self.order.len() > 1 {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.by_hash.remove(&old) {
                self.bytes = self.bytes.saturating_sub(b.len());
            }
        }
    }

    fn remove(&mut self, hash: &TensorHash) -> Option<Arc<Vec<u8>>> {
        let b = self.by_hash.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(b.len());
        self.order.retain(|h| h != hash);
        Some(b)
    }
}

/// The held and the uploaded tensors.
#[derive(Default)]
struct Tensors {
    held: TensorStore,
    uploads: TensorStore,
}

/// Models and tensors for the referee, shared by the node's tasks.
pub struct OffChain {
    blobs: Option<BlobStore>,
    /// Held tensors on disk, by hash (a blob's id is its BLAKE3 hash).
    durable: Option<BlobStore>,
    peers: Vec<String>,
    own: Option<String>,
    limits: OffChainLimits,
    tensors: Mutex<Tensors>,
    sessions: Mutex<VecDeque<(ModelId, Arc<Session>)>>,
}

impl std::fmt::Debug for OffChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffChain")
            .field("held", &lock(&self.tensors).held.by_hash.len())
            .field("uploads", &lock(&self.tensors).uploads.by_hash.len())
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
            durable: None,
            peers,
            own,
            limits,
            tensors: Mutex::new(Tensors::default()),
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    /// Also keeps held tensors in `store` (durable across restarts).
    pub fn with_durable_tensors(mut self, store: BlobStore) -> Self {
        self.durable = Some(store);
        self
    }

    /// Writes a held tensor to the durable store, if any.
    fn persist(&self, hash: &TensorHash, bytes: &[u8]) -> Result<(), String> {
        match &self.durable {
            Some(store) if !store.contains(&ModelId::from_bytes(hash.to_bytes())) => store
                .put_bytes(bytes)
                .map(|_| ())
                .map_err(|e| format!("storing tensor {hash}: {e}")),
            _ => Ok(()),
        }
    }

    /// A held tensor from the durable store, if any.
    fn durable_bytes(&self, hash: &TensorHash) -> Option<Vec<u8>> {
        self.durable
            .as_ref()?
            .get(&ModelId::from_bytes(hash.to_bytes()))
            .ok()
    }

    /// Checks a tensor given as its canonical encoding: a canonical tensor
    /// within the size limit. Returns its hash.
    fn check_tensor(&self, bytes: &[u8]) -> Result<TensorHash, String> {
        if bytes.len() > self.limits.max_tensor_bytes {
            return Err(format!(
                "{} bytes, over the limit of {}",
                bytes.len(),
                self.limits.max_tensor_bytes
            ));
        }
        glassbox_ledger::parse_tensor(bytes)?;
        Ok(TensorHash::from(blake3::hash(bytes)))
    }

    /// Holds a tensor this node needs: one its own party opens, or one a
    /// dispute step on the chain needs. Uploads never evict it.
    pub fn put_tensor(&self, bytes: Vec<u8>) -> Result<TensorHash, String> {
        let hash = self.check_tensor(&bytes)?;
        self.persist(&hash, &bytes)?;
        let mut t = lock(&self.tensors);
        t.uploads.remove(&hash);
        t.held
            .insert(hash, Arc::new(bytes), self.limits.max_tensor_store_bytes);
        Ok(hash)
    }

    /// Keeps a tensor anyone uploaded (`PUT /v1/tensors`), among the
    /// uploads only; a step that needs it promotes it to held.
    pub fn upload_tensor(&self, bytes: Vec<u8>) -> Result<TensorHash, String> {
        let hash = self.check_tensor(&bytes)?;
        let mut t = lock(&self.tensors);
        if !t.held.by_hash.contains_key(&hash) {
            t.uploads
                .insert(hash, Arc::new(bytes), self.limits.max_upload_bytes);
        }
        Ok(hash)
    }

    /// The canonical encoding of a tensor this node has, held (in memory
    /// or on disk) or uploaded.
    pub fn tensor_bytes(&self, hash: &TensorHash) -> Option<Arc<Vec<u8>>> {
        {
            let t = lock(&self.tensors);
            if let Some(b) = t
                .held
                .by_hash
                .get(hash)
                .or_else(|| t.uploads.by_hash.get(hash))
            {
                return Some(Arc::clone(b));
            }
        }
        self.durable_bytes(hash).map(Arc::new)
    }

    /// Moves an uploaded tensor a step needs to the held ones; whether this
    /// node now holds it.
    fn promote(&self, hash: &TensorHash) -> bool {
        let upload = {
            let mut t = lock(&self.tensors);
            if t.held.by_hash.contains_key(hash) {
                return true;
            }
            t.uploads.remove(hash)
        };
        match upload {
            Some(b) => {
                if self.persist(hash, &b).is_err() {
                    // Keep serving it from memory; the disk error shows
                    // again when the held tensor is written next.
                    debug!(%hash, "could not persist a promoted tensor");
                }
                lock(&self.tensors)
                    .held
                    .insert(*hash, b, self.limits.max_tensor_store_bytes);
                true
            }
            None => self
                .durable
                .as_ref()
                .is_some_and(|s| s.contains(&ModelId::from_bytes(hash.to_bytes()))),
        }
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
            if self.promote(hash) {
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

    /// [`OffChain::ensure`] for the games queued for the referee on
    /// `parent` and every dispute step of a block on it.
    pub async fn ensure_block(&self, parent: &State, txs: &[SignedTx]) -> Result<(), String> {
        for work in parent.queued_referee_needs() {
            debug!(job = %work.job_id, tensors = work.tensors.len(), "fetching queued referee data");
            self.ensure(parent, &work).await?;
        }
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

    fn tensor_len(&self, hash: &TensorHash) -> Option<u64> {
        self.tensor_bytes(hash).map(|b| b.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(fill: f32, n: usize) -> Vec<u8> {
        formats::canonical_encode(&Tensor::from_vec(vec![n], vec![fill; n]).unwrap())
    }

    /// Finding "`PUT /v1/tensors` is unauthenticated and the store is an
    /// in-memory FIFO: anyone evicts the operands a dispute needs" (issue
    /// #25): uploads now evict only uploads.
    #[test]
    fn uploads_never_evict_what_a_dispute_needs() {
        let off = OffChain::new(
            None,
            Vec::new(),
            None,
            OffChainLimits {
                max_tensor_store_bytes: 64 << 10,
                max_upload_bytes: 16 << 10,
                ..OffChainLimits::default()
            },
        );
        let needed = off.put_tensor(tensor(1.0, 1_000)).unwrap();
        let first = off.upload_tensor(tensor(2.0, 1_000)).unwrap();
        assert!(off.tensor_bytes(&first).is_some(), "uploads are served");
        // A flood of uploads, 40 times the held budget.
        for i in 0..640 {
            off.upload_tensor(tensor(3.0 + i as f32, 1_000)).unwrap();
        }
        assert!(
            off.tensor_bytes(&needed).is_some(),
            "the needed tensor stays"
        );
        assert!(off.tensor_bytes(&first).is_none(), "old uploads go");
        // An upload a step needs is promoted and then survives the flood.
        let late = off.upload_tensor(tensor(-1.0, 1_000)).unwrap();
        assert!(off.promote(&late));
        for i in 0..640 {
            off.upload_tensor(tensor(-3.0 - i as f32, 1_000)).unwrap();
        }
        assert!(off.tensor_bytes(&late).is_some());
        // Bad uploads are refused.
        assert!(off.upload_tensor(b"not a tensor".to_vec()).is_err());
    }

    /// Finding "after a restart replay loops forever on missing referee
    /// data" (issue #25): the held tensors lived only in memory, so once
    /// every validator restarted nobody could serve a finalized dispute
    /// step's operands again. Held tensors survive a restart now.
    #[test]
    fn held_tensors_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            OffChain::new(None, Vec::new(), None, OffChainLimits::default())
                .with_durable_tensors(BlobStore::open(dir.path(), 1 << 30).unwrap())
        };
        let off = open();
        let held = off.put_tensor(tensor(1.0, 100)).unwrap();
        let upload = off.upload_tensor(tensor(2.0, 100)).unwrap();
        let promoted = off.upload_tensor(tensor(3.0, 100)).unwrap();
        assert!(off.promote(&promoted));
        drop(off);
        let off = open();
        assert_eq!(off.tensor_bytes(&held).as_deref(), Some(&tensor(1.0, 100)));
        assert!(off.tensor_bytes(&promoted).is_some());
        assert!(off.promote(&held), "a step needing it finds it held");
        assert!(off.tensor_bytes(&upload).is_none(), "uploads are not kept");
    }
}

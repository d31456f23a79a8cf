//! The ledger state: every record in the authenticated map, plus
//! persistent side indexes for typed reads and listing (docs/ledger.md,
//! "State layout").

use std::fmt;
use std::sync::Arc;

use glassbox_primitives::{ChainId, StateRoot};
use glassbox_types::{ModelId, PublicKey};
use imbl::{OrdMap, OrdSet};

use crate::accounts::Account;
use crate::dispute::JobExt;
use crate::error::ExecutionError;
use crate::jobs::{Job, JobId};
use crate::records::{ChainInfo, FeePool, Head, Params, StateKey, tags};
use crate::registry::{ModelRecord, encode_model_version, encode_name_owner};
use crate::smt::{Proof, Smt, SmtError, key_path};
use crate::staking::Executor;

/// A model name's owner and published versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameEntry {
    pub(crate) owner: PublicKey,
    /// Version text → model id.
    pub(crate) versions: OrdMap<String, ModelId>,
}

/// The replicated state at one height. `Clone` is O(1) (everything is
/// persistent and structurally shared); [`State::apply_block`] returns a
/// new state and leaves `self` unchanged.
#[derive(Clone)]
pub struct State {
    pub(crate) smt: Smt,
    pub(crate) chain: Arc<ChainInfo>,
    pub(crate) params: Params,
    pub(crate) head: Head,
    pub(crate) fee_pool: u64,
    /// Owner key bytes → executor.
    pub(crate) executors: OrdMap<[u8; 32], Arc<Executor>>,
    pub(crate) models: OrdMap<ModelId, Arc<ModelRecord>>,
    pub(crate) names: OrdMap<String, NameEntry>,
    /// Jobs still assigning or running (closed ones live only in the map).
    pub(crate) open_jobs: OrdMap<JobId, Arc<Job>>,
    /// Jobs waiting for executors, by (submitted height, id): assigned
    /// oldest first at the next block with enough spare capacity.
    pub(crate) queued: OrdSet<(u64, JobId)>,
    /// (next deadline, job) of every running job with a pending deadline.
    pub(crate) deadlines: OrdSet<(u64, JobId)>,
    /// Escrow held by open and disputed jobs.
    pub(crate) escrowed: u64,
    /// Slashed and forfeited amounts destroyed (stored in the fee pool
    /// record).
    pub(crate) burned: u64,
    /// Job extensions of jobs still in play (pending, audited or
    /// disputed), by job.
    pub(crate) live_exts: OrdMap<JobId, Arc<JobExt>>,
    /// Pending optimistic jobs by the height their window ends.
    pub(crate) pending: OrdSet<(u64, JobId)>,
    /// Optimistic jobs that became pending in the last block, to be drawn
    /// for an audit with the next block's randomness.
    pub(crate) audit_queue: OrdSet<JobId>,
    /// Referee work the block being applied may still spend
    /// (docs/disputes.md, "Referee budget"); reset at each block start.
    pub(crate) referee_work_left: u64,
}

/// Two states are equal when they hold the same records (the same root)
/// and the same derived indexes. The referee allowance left in the last
/// block is not compared: every block starts by resetting it.
impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.smt.len() == other.smt.len()
            && self.root() == other.root()
            && self.chain == other.chain
            && self.params == other.params
            && self.head == other.head
            && self.fee_pool == other.fee_pool
            && self.executors == other.executors
            && self.models == other.models
            && self.names == other.names
            && self.open_jobs == other.open_jobs
            && self.queued == other.queued
            && self.deadlines == other.deadlines
            && self.escrowed == other.escrowed
            && self.burned == other.burned
            && self.live_exts == other.live_exts
            && self.pending == other.pending
            && self.audit_queue == other.audit_queue
    }
}

impl Eq for State {}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("chain_name", &self.chain.chain_name)
            .field("chain_id", &self.chain.chain_id)
            .field("height", &self.head.height)
            .field("root", &self.root())
            .field("records", &self.smt.len())
            .field("executors", &self.executors.len())
            .field("models", &self.models.len())
            .field("open_jobs", &self.open_jobs.len())
            .finish()
    }
}

pub(crate) fn internal(e: SmtError) -> ExecutionError {
    ExecutionError::Internal {
        reason: format!("storing a record: {e}"),
    }
}

impl State {
    /// An empty state for `chain` and `params` at the genesis head (the
    /// singletons stored, nothing else).
    pub(crate) fn empty(chain: ChainInfo, params: Params) -> Result<State, SmtError> {
        let head = Head {
            height: 0,
            timestamp_ms: chain.genesis_time_ms,
        };
        let mut s = State {
            smt: Smt::new(),
            chain: Arc::new(chain),
            params,
            head,
            fee_pool: 0,
            executors: OrdMap::new(),
            models: OrdMap::new(),
            names: OrdMap::new(),
            open_jobs: OrdMap::new(),
            queued: OrdSet::new(),
            deadlines: OrdSet::new(),
            escrowed: 0,
            burned: 0,
            live_exts: OrdMap::new(),
            pending: OrdSet::new(),
            audit_queue: OrdSet::new(),
            referee_work_left: 0,
        };
        s.put(&StateKey::Chain, &s.chain.encode())?;
        s.put(&StateKey::Params, &params.encode())?;
        s.put(&StateKey::Head, &head.encode())?;
        s.put(&StateKey::FeePool, &FeePool::default().encode())?;
        Ok(s)
    }

    // ---- reads -----------------------------------------------------------

    /// The height of the last applied block (0 at genesis).
    pub fn height(&self) -> u64 {
        self.head.height
    }

    /// The last applied block's timestamp (the genesis time at height 0).
    pub fn timestamp_ms(&self) -> u64 {
        self.head.timestamp_ms
    }

    /// The last applied block's height and timestamp.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The state root: the authenticated map's root hash, committing to
    /// every record (including the chain id, parameters and head).
    pub fn root(&self) -> StateRoot {
        StateRoot::from_bytes(self.smt.root())
    }

    /// The chain id: BLAKE3 of the canonical genesis encoding.
    pub fn chain_id(&self) -> ChainId {
        self.chain.chain_id
    }

    /// The chain's identity.
    pub fn chain(&self) -> &ChainInfo {
        &self.chain
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Fees collected so far.
    pub fn fee_pool(&self) -> u64 {
        self.fee_pool
    }

    /// The authenticated map itself (read-only).
    pub fn smt(&self) -> &Smt {
        &self.smt
    }

    /// The account of `address`, if it exists.
    pub fn account(&self, address: &PublicKey) -> Option<Account> {
        self.load_account(address).ok().flatten()
    }

    pub(crate) fn load_account(
        &self,
        address: &PublicKey,
    ) -> Result<Option<Account>, ExecutionError> {
        let path = key_path(&StateKey::Account(*address).to_bytes());
        self.smt
            .get_at(&path)
            .map(Account::decode)
            .transpose()
            .map_err(|e| ExecutionError::Internal {
                reason: e.to_string(),
            })
    }

    /// The executor owned by `owner` (active or still unbonding).
    pub fn executor(&self, owner: &PublicKey) -> Option<&Executor> {
        self.executors.get(&owner.to_bytes()).map(|e| &**e)
    }

    /// Every executor record, by owner key bytes.
    pub fn executors(&self) -> impl Iterator<Item = &Executor> {
        self.executors.values().map(|e| &**e)
    }

    /// The number of executor records.
    pub fn executor_count(&self) -> usize {
        self.executors.len()
    }

    /// The model `id`, if published.
    pub fn model(&self, id: &ModelId) -> Option<&ModelRecord> {
        self.models.get(id).map(|m| &**m)
    }

    /// Every published model, by model id.
    pub fn models(&self) -> impl Iterator<Item = &ModelRecord> {
        self.models.values().map(|m| &**m)
    }

    /// The number of published models.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// The model published as `name@version` (version as canonical semver
    /// text).
    pub fn model_by_name(&self, name: &str, version: &str) -> Option<&ModelRecord> {
        let id = self.names.get(name)?.versions.get(version)?;
        self.model(id)
    }

    /// The versions published under `name`, by version text, with their
    /// models.
    pub fn model_versions(&self, name: &str) -> impl Iterator<Item = (&str, &ModelRecord)> {
        self.names
            .get(name)
            .into_iter()
            .flat_map(|e| e.versions.iter())
            .filter_map(|(v, id)| Some((v.as_str(), self.model(id)?)))
    }

    /// The publisher owning the model name `name`.
    pub fn name_owner(&self, name: &str) -> Option<PublicKey> {
        self.names.get(name).map(|e| e.owner)
    }

    /// The raw record bytes stored under `key`.
    pub fn get_raw(&self, key: &StateKey) -> Option<&[u8]> {
        self.smt.get(&key.to_bytes())
    }

    /// The record bytes under `key` (if any) and a proof of them (or of
    /// their absence) against [`State::root`]. A client checks it with
    /// `verify_proof(&root, &key.to_bytes(), bytes.as_deref(), &proof)` and
    /// decodes the bytes with the record's `decode`.
    pub fn prove(&self, key: &StateKey) -> (Option<Vec<u8>>, Proof) {
        let k = key.to_bytes();
        (self.smt.get(&k).map(<[u8]>::to_vec), self.smt.prove(&k))
    }

    /// [`State::prove`] of an account ([`Account::decode`]).
    pub fn prove_account(&self, address: &PublicKey) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Account(*address))
    }

    /// [`State::prove`] of an executor ([`Executor::decode`]).
    pub fn prove_executor(&self, owner: &PublicKey) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Executor(*owner))
    }

    /// [`State::prove`] of a model ([`ModelRecord::decode`]).
    pub fn prove_model(&self, id: &ModelId) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Model(*id))
    }

    /// [`State::prove`] of a name@version's model id
    /// ([`decode_model_version`](crate::decode_model_version)).
    pub fn prove_model_name(&self, name: &str, version: &str) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::ModelVersion {
            name: name.to_string(),
            version: version.to_string(),
        })
    }

    /// [`State::prove`] of a name's owner
    /// ([`decode_name_owner`](crate::decode_name_owner)).
    pub fn prove_name_owner(&self, name: &str) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::NameOwner(name.to_string()))
    }

    /// [`State::prove`] of the parameters ([`Params::decode`]).
    pub fn prove_params(&self) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Params)
    }

    /// The job `id` (open or closed), decoded from the authenticated map.
    pub fn job(&self, id: &JobId) -> Option<Job> {
        if let Some(j) = self.open_jobs.get(id) {
            return Some((**j).clone());
        }
        let path = key_path(&StateKey::Job(*id).to_bytes());
        self.smt.get_at(&path).and_then(|b| Job::decode(b).ok())
    }

    /// Jobs still assigning or running, by id.
    pub fn open_jobs(&self) -> impl Iterator<Item = &Job> {
        self.open_jobs.values().map(|j| &**j)
    }

    /// The number of open jobs.
    pub fn open_job_count(&self) -> usize {
        self.open_jobs.len()
    }

    /// Escrow held by open and disputed jobs.
    pub fn escrowed(&self) -> u64 {
        self.escrowed
    }

    /// [`State::prove`] of a job ([`Job::decode`]).
    pub fn prove_job(&self, id: &JobId) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Job(*id))
    }

    /// [`State::prove`] of the head ([`Head::decode`]).
    pub fn prove_head(&self) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Head)
    }

    /// [`State::prove`] of the chain info ([`ChainInfo::decode`]).
    pub fn prove_chain(&self) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::Chain)
    }

    /// The total supply: all balances, stakes, unbonding amounts and the
    /// fee pool, escrow and what was burned. Constant from genesis on (no
    /// minting yet). O(records).
    pub fn total_supply(&self) -> Option<u64> {
        let mut total = self.fee_pool.checked_add(self.escrowed)?;
        total = total.checked_add(self.burned)?;
        for (k, v) in self.smt.iter() {
            if k.first() == Some(&tags::ACCOUNT) {
                total = total.checked_add(Account::decode(v).ok()?.balance)?;
            }
        }
        for e in self.executors() {
            total = total.checked_add(e.stake)?;
            for u in &e.unbonding {
                total = total.checked_add(u.amount)?;
            }
        }
        Some(total)
    }

    // ---- writes (crate-internal) -----------------------------------------

    fn put(&mut self, key: &StateKey, value: &[u8]) -> Result<(), SmtError> {
        let k = key.to_bytes();
        self.smt.insert_at(key_path(&k), &k, value).map(|_| ())
    }

    pub(crate) fn put_account(
        &mut self,
        address: &PublicKey,
        account: &Account,
    ) -> Result<(), ExecutionError> {
        self.put(&StateKey::Account(*address), &account.encode())
            .map_err(internal)
    }

    pub(crate) fn put_executor(&mut self, e: Executor) -> Result<(), ExecutionError> {
        self.put(&StateKey::Executor(e.owner), &e.encode())
            .map_err(internal)?;
        self.executors.insert(e.owner.to_bytes(), Arc::new(e));
        Ok(())
    }

    pub(crate) fn remove_executor(&mut self, owner: &PublicKey) {
        self.smt
            .remove_at(&key_path(&StateKey::Executor(*owner).to_bytes()));
        self.executors.remove(&owner.to_bytes());
    }

    /// Stores a model, its name@version index entry and (for a new name)
    /// the name's owner.
    pub(crate) fn put_model(&mut self, record: ModelRecord) -> Result<(), ExecutionError> {
        let m = record.manifest.manifest();
        let name = m.name.clone();
        let version = m.version.to_string();
        let model_id = record.model_id;
        let publisher = record.publisher;
        self.put(&StateKey::Model(model_id), &record.encode())
            .map_err(internal)?;
        self.put(
            &StateKey::ModelVersion {
                name: name.clone(),
                version: version.clone(),
            },
            &encode_model_version(&model_id),
        )
        .map_err(internal)?;
        let mut entry = match self.names.get(&name) {
            Some(e) => e.clone(),
            None => {
                self.put(
                    &StateKey::NameOwner(name.clone()),
                    &encode_name_owner(&publisher),
                )
                .map_err(internal)?;
                NameEntry {
                    owner: publisher,
                    versions: OrdMap::new(),
                }
            }
        };
        entry.versions.insert(version, model_id);
        self.names.insert(name, entry);
        self.models.insert(model_id, Arc::new(record));
        Ok(())
    }

    /// Stores a job and keeps the side indexes (open set, queue,
    /// deadlines) in step with it.
    pub(crate) fn put_job(&mut self, job: Job) -> Result<(), ExecutionError> {
        self.put(&StateKey::Job(job.id), &job.encode())
            .map_err(internal)?;
        if let Some(old) = self.open_jobs.get(&job.id)
            && let Some(d) = old.next_deadline()
        {
            self.deadlines.remove(&(d, job.id));
        }
        if job.status == crate::JobStatus::Assigning {
            self.queued.insert((job.submitted_height, job.id));
        } else {
            self.queued.remove(&(job.submitted_height, job.id));
        }
        if job.status.is_open() {
            if let Some(d) = job.next_deadline() {
                self.deadlines.insert((d, job.id));
            }
            self.open_jobs.insert(job.id, Arc::new(job));
        } else {
            self.open_jobs.remove(&job.id);
        }
        Ok(())
    }

    /// Stores a job's extension and keeps the live set, the pending index
    /// and nothing else in step with it.
    pub(crate) fn put_ext(&mut self, id: JobId, ext: JobExt) -> Result<(), ExecutionError> {
        self.put(&StateKey::JobExt(id), &ext.encode())
            .map_err(internal)?;
        if let Some(old) = self.live_exts.get(&id)
            && let Some(until) = old.pending_until
        {
            self.pending.remove(&(until, id));
        }
        if let Some(until) = ext.pending_until {
            self.pending.insert((until, id));
        }
        if ext.is_live() {
            self.live_exts.insert(id, Arc::new(ext));
        } else {
            self.live_exts.remove(&id);
        }
        Ok(())
    }

    /// A job's extension record, if any.
    pub fn job_ext(&self, id: &JobId) -> Option<JobExt> {
        if let Some(e) = self.live_exts.get(id) {
            return Some((**e).clone());
        }
        let path = key_path(&StateKey::JobExt(*id).to_bytes());
        self.smt.get_at(&path).and_then(|b| JobExt::decode(b).ok())
    }

    /// The extensions of jobs still in play (pending, or an undecided
    /// dispute), by job id.
    pub fn live_job_exts(&self) -> impl Iterator<Item = (&JobId, &JobExt)> {
        self.live_exts.iter().map(|(id, e)| (id, &**e))
    }

    /// [`State::prove`] of a job's extension record.
    pub fn prove_job_ext(&self, id: &JobId) -> (Option<Vec<u8>>, Proof) {
        self.prove(&StateKey::JobExt(*id))
    }

    /// Slashed stake and forfeited bonds destroyed so far.
    pub fn burned(&self) -> u64 {
        self.burned
    }

    pub(crate) fn put_head(&mut self, head: Head) -> Result<(), SmtError> {
        self.head = head;
        self.put(&StateKey::Head, &head.encode())
    }

    pub(crate) fn put_fee_pool(&mut self, balance: u64) -> Result<(), SmtError> {
        self.fee_pool = balance;
        self.put(
            &StateKey::FeePool,
            &FeePool {
                balance,
                burned: self.burned,
            }
            .encode(),
        )
    }
}

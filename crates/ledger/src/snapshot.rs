//! State snapshots (docs/ledger.md, "Snapshots"): every record of the
//! authenticated map in one canonical encoding, and the state rebuilt from
//! them alone.
//!
//! Only the records are written: every side index of [`State`] (executors,
//! models, names, open jobs, queues, deadlines, pending windows, the
//! audit queue, the escrow total) is derived from them again, so a
//! snapshot whose rebuilt root equals a finalized block's state root is
//! that state, whoever supplied the bytes. The encoding:
//!
//! ```text
//! "GBSS" | version u8 (1) | records u64 |
//!   records × (key: u32 length + bytes | value: u32 length + bytes)
//! ```
//!
//! Records appear in the map's path order (strictly ascending paths), so a
//! state has exactly one snapshot.

use std::sync::Arc;

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::{JobId, ModelId, StateRoot};
use imbl::{OrdMap, OrdSet};

use crate::accounts::Account;
use crate::dispute::JobExt;
use crate::error::DecodeError;
use crate::jobs::Job;
use crate::records::{ChainInfo, FeePool, Head, Params, tags};
use crate::registry::{ModelRecord, decode_model_version, decode_name_owner};
use crate::smt::{MAX_KEY_BYTES, MAX_VALUE_BYTES, Smt, key_path};
use crate::staking::Executor;
use crate::state::{NameEntry, State};

/// The snapshot format's version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Smallest encoded record (two empty length prefixes); bounds the record
/// count a buffer can claim.
const MIN_RECORD_BYTES: usize = 8;

/// Why bytes are not a snapshot of the expected state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a canonical encoding.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A record's key or value is not a record of its kind.
    #[error("snapshot record {index}: {reason}")]
    Record {
        /// The record's index in the snapshot.
        index: u64,
        /// Why.
        reason: String,
    },
    /// A chain-wide record every state holds is absent.
    #[error("snapshot has no {0} record")]
    Missing(&'static str),
    /// The records are well formed but not the expected state.
    #[error("snapshot state root is {computed}, expected {expected}")]
    Root {
        /// What the caller trusts (a finalized block's state root).
        expected: StateRoot,
        /// What the records hash to.
        computed: StateRoot,
    },
}

impl State {
    /// The snapshot of this state (see the module documentation). Its
    /// size is the state's: every record once, plus 8 bytes each.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.smt.len() * 96);
        w.bytes(glassbox_primitives::tags::SNAPSHOT);
        w.u8(SNAPSHOT_VERSION);
        w.u64(u64::try_from(self.smt.len()).unwrap_or(u64::MAX));
        for (k, v) in self.smt.iter() {
            w.blob(k);
            w.blob(v);
        }
        w.into_bytes()
    }

    /// The state a snapshot holds, checked to have state root `expected`.
    /// Bounded by the input: no allocation beyond what its records need.
    pub fn from_snapshot(bytes: &[u8], expected: &StateRoot) -> Result<State, SnapshotError> {
        let state = rebuild(bytes)?;
        let computed = state.root();
        if computed != *expected {
            return Err(SnapshotError::Root {
                expected: *expected,
                computed,
            });
        }
        Ok(state)
    }
}

/// The side indexes being derived, record by record.
#[derive(Default)]
struct Parts {
    chain: Option<ChainInfo>,
    params: Option<Params>,
    head: Option<Head>,
    fee_pool: Option<FeePool>,
    executors: OrdMap<[u8; 32], Arc<Executor>>,
    models: OrdMap<ModelId, Arc<ModelRecord>>,
    owners: OrdMap<String, glassbox_types::PublicKey>,
    versions: OrdMap<String, OrdMap<String, ModelId>>,
    jobs: Vec<Job>,
    exts: Vec<(JobId, JobExt)>,
}

fn rebuild(bytes: &[u8]) -> Result<State, SnapshotError> {
    let mut r = Reader::new("state snapshot", bytes);
    let magic = r.take(glassbox_primitives::tags::SNAPSHOT.len())?;
    if magic != glassbox_primitives::tags::SNAPSHOT {
        return Err(r.err_at(0, "not a state snapshot (bad magic)").into());
    }
    let version = r.u8()?;
    if version != SNAPSHOT_VERSION {
        return Err(r
            .err_at(
                4,
                format!("version {version}, this build reads {SNAPSHOT_VERSION}"),
            )
            .into());
    }
    let count = r.u64()?;
    let most = r.remaining() / MIN_RECORD_BYTES;
    if usize::try_from(count).map_or(true, |c| c > most) {
        return Err(r
            .err(format!(
                "{count} records cannot fit in {} bytes",
                r.remaining()
            ))
            .into());
    }
    let mut smt = Smt::new();
    let mut parts = Parts::default();
    let mut last_path: Option<[u8; 32]> = None;
    for index in 0..count {
        let key = r.blob("record key", MAX_KEY_BYTES)?;
        let value = r.blob("record value", MAX_VALUE_BYTES)?;
        let path = key_path(key);
        if last_path.is_some_and(|p| p >= path) {
            return Err(SnapshotError::Record {
                index,
                reason: "records are not in strictly ascending path order".into(),
            });
        }
        last_path = Some(path);
        parts
            .add(key, value)
            .map_err(|reason| SnapshotError::Record { index, reason })?;
        smt.insert_at(path, key, value)
            .map_err(|e| SnapshotError::Record {
                index,
                reason: e.to_string(),
            })?;
    }
    if r.remaining() != 0 {
        return Err(r
            .err(format!("{} bytes after the last record", r.remaining()))
            .into());
    }
    parts.into_state(smt)
}

/// `key` without its one-byte tag, checked to be `n` bytes.
fn id_bytes<const N: usize>(key: &[u8]) -> Result<[u8; N], String> {
    key.get(1..)
        .and_then(|k| <[u8; N]>::try_from(k).ok())
        .ok_or_else(|| format!("key is {} bytes, expected {}", key.len(), N + 1))
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

impl Parts {
    fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let decode = |e: DecodeError| e.to_string();
        let once = |slot_full: bool, what: &str| {
            if slot_full {
                Err(format!("a second {what} record"))
            } else {
                Ok(())
            }
        };
        match key {
            [tags::META, tags::META_CHAIN] => {
                once(self.chain.is_some(), "chain")?;
                self.chain = Some(ChainInfo::decode(value).map_err(decode)?);
            }
            [tags::META, tags::META_PARAMS] => {
                once(self.params.is_some(), "params")?;
                self.params = Some(Params::decode(value).map_err(decode)?);
            }
            [tags::META, tags::META_HEAD] => {
                once(self.head.is_some(), "head")?;
                self.head = Some(Head::decode(value).map_err(decode)?);
            }
            [tags::META, tags::META_FEE_POOL] => {
                once(self.fee_pool.is_some(), "fee pool")?;
                self.fee_pool = Some(FeePool::decode(value).map_err(decode)?);
            }
            [tags::ACCOUNT, ..] => {
                id_bytes::<32>(key)?;
                Account::decode(value).map_err(decode)?;
            }
            [tags::EXECUTOR, ..] => {
                let owner = id_bytes::<32>(key)?;
                let e = Executor::decode(value).map_err(decode)?;
                if e.owner.to_bytes() != owner {
                    return Err("executor record under another owner's key".into());
                }
                self.executors.insert(owner, Arc::new(e));
            }
            [tags::MODEL, ..] => {
                let id = ModelId::from_bytes(id_bytes::<32>(key)?);
                let m = ModelRecord::decode(value).map_err(decode)?;
                if m.model_id != id {
                    return Err("model record under another model's key".into());
                }
                self.models.insert(id, Arc::new(m));
            }
            [tags::MODEL_VERSION, rest @ ..] => {
                let split = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("model version key has no separator")?;
                let name = text(&rest[..split], "model name")?;
                let version = text(&rest[split + 1..], "model version")?;
                let id = decode_model_version(value).map_err(decode)?;
                self.versions.entry(name).or_default().insert(version, id);
            }
            [tags::NAME_OWNER, rest @ ..] => {
                let name = text(rest, "model name")?;
                let owner = decode_name_owner(value).map_err(decode)?;
                self.owners.insert(name, owner);
            }
            [tags::JOB, ..] => {
                let id = JobId::from_bytes(id_bytes::<32>(key)?);
                let job = Job::decode(value).map_err(decode)?;
                if job.id != id {
                    return Err("job record under another job's key".into());
                }
                self.jobs.push(job);
            }
            [tags::JOB_EXT, ..] => {
                let id = JobId::from_bytes(id_bytes::<32>(key)?);
                self.exts.push((id, JobExt::decode(value).map_err(decode)?));
            }
            _ => return Err("unknown record kind".into()),
        }
        Ok(())
    }

    fn into_state(self, smt: Smt) -> Result<State, SnapshotError> {
        let chain = self.chain.ok_or(SnapshotError::Missing("chain"))?;
        let params = self.params.ok_or(SnapshotError::Missing("params"))?;
        let head = self.head.ok_or(SnapshotError::Missing("head"))?;
        let pool = self.fee_pool.ok_or(SnapshotError::Missing("fee pool"))?;
        let mut names = OrdMap::new();
        for (name, owner) in self.owners {
            let versions = self.versions.get(&name).cloned().unwrap_or_default();
            names.insert(name, NameEntry { owner, versions });
        }
        if let Some(name) = self.versions.keys().find(|n| !names.contains_key(*n)) {
            return Err(SnapshotError::Record {
                index: 0,
                reason: format!("model name {name:?} has versions but no owner"),
            });
        }
        // Escrow: what open and pending jobs still hold, plus the bonds of
        // the claims of undecided disputes (docs/ledger.md, "Snapshots").
        let mut escrowed = 0u64;
        let mut open_jobs = OrdMap::new();
        let mut queued = OrdSet::new();
        let mut deadlines = OrdSet::new();
        let overflow = || SnapshotError::Record {
            index: 0,
            reason: "escrow total overflows u64".into(),
        };
        for job in self.jobs {
            escrowed = escrowed.checked_add(job.escrow).ok_or_else(overflow)?;
            if job.status == crate::JobStatus::Assigning {
                queued.insert((job.submitted_height, job.id));
            }
            if job.status.is_open() {
                if let Some(d) = job.next_deadline() {
                    deadlines.insert((d, job.id));
                }
                open_jobs.insert(job.id, Arc::new(job));
            }
        }
        let mut live_exts = OrdMap::new();
        let mut pending = OrdSet::new();
        let mut audit_queue = OrdSet::new();
        // A result that became pending in the head block has its window
        // end exactly `challenge_window_blocks` later; its audit is drawn
        // with the next block's randomness.
        let new_window_end = head.height.checked_add(params.challenge_window_blocks);
        for (id, ext) in self.exts {
            if let Some(d) = ext.dispute.as_ref().filter(|d| d.closed_height.is_none()) {
                for c in d.claims.iter().filter(|c| !c.lost) {
                    escrowed = escrowed.checked_add(c.bond).ok_or_else(overflow)?;
                }
            }
            if let Some(until) = ext.pending_until {
                pending.insert((until, id));
                if Some(until) == new_window_end {
                    audit_queue.insert(id);
                }
            }
            if ext.is_live() {
                live_exts.insert(id, Arc::new(ext));
            }
        }
        Ok(State {
            smt,
            chain: Arc::new(chain),
            params,
            head,
            fee_pool: pool.balance,
            executors: self.executors,
            models: self.models,
            names,
            open_jobs,
            queued,
            deadlines,
            escrowed,
            burned: pool.burned,
            live_exts,
            pending,
            audit_queue,
            referee_work_left: 0,
        })
    }
}

//! The signed transactions behind each job (request, commitments,
//! reveals), indexed from finalized blocks so a receipt can carry them.
//! Bounded: the oldest jobs are forgotten past [`MAX_INDEXED_JOBS`].

use std::collections::{HashMap, VecDeque};

use glassbox_ledger::{JobId, SignedTx, State, TxBody, TxOutcome};

/// Most jobs whose transactions are kept.
pub const MAX_INDEXED_JOBS: usize = 100_000;

/// A job's successful transactions, in block order.
#[derive(Debug, Clone, Default)]
pub struct JobTxs {
    /// The `SubmitJob`.
    pub request: Option<SignedTx>,
    /// Every successful `CommitResult`.
    pub commits: Vec<SignedTx>,
    /// Every successful `RevealResult`.
    pub reveals: Vec<SignedTx>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct JobIndex {
    jobs: HashMap<JobId, JobTxs>,
    order: VecDeque<JobId>,
}

impl JobIndex {
    /// Indexes one finalized transaction and its outcome (failed ones are
    /// skipped: they changed no job).
    pub fn record(&mut self, tx: &SignedTx, outcome: &TxOutcome) {
        if outcome.result.is_ok() {
            self.insert(tx);
        }
    }

    fn insert(&mut self, tx: &SignedTx) {
        let (id, kind) = match tx.body() {
            TxBody::SubmitJob { .. } => (JobId::of_tx(tx.hash()), 0),
            TxBody::CommitResult { job_id, .. } => (*job_id, 1),
            TxBody::RevealResult { job_id, .. } => (*job_id, 2),
            _ => return,
        };
        if kind == 0 {
            if self.order.len() >= MAX_INDEXED_JOBS
                && let Some(old) = self.order.pop_front()
            {
                self.jobs.remove(&old);
            }
            self.order.push_back(id);
            self.jobs.insert(
                id,
                JobTxs {
                    request: Some(tx.clone()),
                    ..JobTxs::default()
                },
            );
            return;
        }
        let Some(entry) = self.jobs.get_mut(&id) else {
            return;
        };
        // A job has at most 16 replicas and 16 misses: the lists stay small.
        let list = if kind == 1 {
            &mut entry.commits
        } else {
            &mut entry.reveals
        };
        if list.len() < 64 {
            list.push(tx.clone());
        }
    }

    /// Indexes a transaction of a block finalized at or before `state`
    /// whose outcome is not known (blocks re-read after a restart from a
    /// snapshot): kept only if `state` shows it took effect, i.e. the
    /// job exists (a request), or a slot of its sender holds its
    /// commitment or its reveal's salt, which is what a receipt matches.
    pub fn record_applied(&mut self, tx: &SignedTx, state: &State) {
        let applied = match tx.body() {
            TxBody::SubmitJob { .. } => state.job(&JobId::of_tx(tx.hash())).is_some(),
            TxBody::CommitResult {
                job_id, commitment, ..
            } => state.job(job_id).is_some_and(|j| {
                j.slots
                    .iter()
                    .any(|s| &s.executor == tx.sender() && s.commitment == Some(*commitment))
            }),
            TxBody::RevealResult { job_id, salt, .. } => state.job(job_id).is_some_and(|j| {
                j.slots.iter().any(|s| {
                    &s.executor == tx.sender() && s.reveal.is_some_and(|r| &r.salt == salt)
                })
            }),
            _ => false,
        };
        if applied {
            self.insert(tx);
        }
    }

    /// The transactions of job `id`, if indexed.
    pub fn get(&self, id: &JobId) -> Option<JobTxs> {
        self.jobs.get(id).cloned()
    }
}

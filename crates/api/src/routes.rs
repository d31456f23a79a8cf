//! The API's paths, built from typed ids (the server's route table is in
//! `glassbox_node::api`). Ids print in their canonical text forms, which
//! contain no character a path must escape; a model name's `/` is part of
//! the `by-name` route's path.

use glassbox_ledger::{JobId, TxHash};
use glassbox_primitives::{ModelId, TensorHash};
use glassbox_types::PublicKey;

/// Liveness and readiness.
pub const HEALTH: &str = "/health";
/// Chain id, finalized tip and parameters.
pub const STATUS: &str = "/v1/status";
/// Transaction submission.
pub const TX: &str = "/v1/tx";
/// Job submission.
pub const JOBS: &str = "/v1/jobs";
/// The finalized tip's block.
pub const LATEST_BLOCK: &str = "/v1/blocks/latest";
/// The executor list.
pub const EXECUTORS: &str = "/v1/executors";
/// The model list.
pub const MODELS: &str = "/v1/models";
/// The network's genesis file.
pub const GENESIS: &str = "/v1/genesis";
/// The concentration report.
pub const CONCENTRATION: &str = "/v1/concentration";
/// The node's newest state snapshot blob (state sync).
pub const SNAPSHOT: &str = "/v1/snapshot";

/// Finalized blocks after a height with a certificate (full nodes):
/// `?after=&wait_ms=`.
pub const SEGMENT: &str = "/v1/segment";

/// The segment after height `after`, waiting up to `wait_ms` for one.
pub fn segment(after: u64, wait_ms: Option<u64>) -> String {
    match wait_ms {
        Some(w) => format!("{SEGMENT}?after={after}&wait_ms={w}"),
        None => format!("{SEGMENT}?after={after}"),
    }
}

/// A transaction's status.
pub fn tx(hash: &TxHash) -> String {
    format!("/v1/tx/{hash}")
}

/// A finalized block.
pub fn block(height: u64) -> String {
    format!("/v1/blocks/{height}")
}

/// An account, proven.
pub fn account(address: &PublicKey) -> String {
    format!("/v1/accounts/{address}")
}

/// An executor, proven.
pub fn executor(owner: &PublicKey) -> String {
    format!("/v1/executors/{owner}")
}

/// A model record, proven.
pub fn model(id: &ModelId) -> String {
    format!("/v1/models/{id}")
}

/// A `name@version` entry and its model, proven.
pub fn model_by_name(name: &str, version: &str) -> String {
    format!("/v1/models/by-name/{name}/{version}")
}

/// A job, proven.
pub fn job(id: &JobId) -> String {
    format!("/v1/jobs/{id}")
}

/// A job's optimistic window and dispute, proven.
pub fn job_ext(id: &JobId) -> String {
    format!("/v1/jobs/{id}/ext")
}

/// A final job's receipt.
pub fn receipt(id: &JobId) -> String {
    format!("/v1/jobs/{id}/receipt")
}

/// An operand tensor (the referee's data).
pub fn tensor(hash: &TensorHash) -> String {
    format!("/v1/tensors/{hash}")
}

/// A model's bytes.
pub fn blob(id: &ModelId) -> String {
    format!("/v1/blobs/{id}")
}

/// A list route's page: `?limit=&after=`.
pub fn page(list: &str, limit: Option<u32>, after: Option<&str>) -> String {
    let mut q = Vec::new();
    if let Some(n) = limit {
        q.push(format!("limit={n}"));
    }
    if let Some(a) = after {
        q.push(format!("after={a}"));
    }
    if q.is_empty() {
        list.to_string()
    } else {
        format!("{list}?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_the_canonical_text_forms() {
        assert_eq!(page(MODELS, None, None), "/v1/models");
        assert_eq!(page(MODELS, Some(5), None), "/v1/models?limit=5");
        assert_eq!(
            page(EXECUTORS, Some(2), Some("ed25519:ab")),
            "/v1/executors?limit=2&after=ed25519:ab"
        );
        let id = JobId::from_bytes([1; 32]);
        assert_eq!(
            receipt(&id),
            format!("/v1/jobs/job:{}/receipt", "01".repeat(32))
        );
        assert_eq!(
            tx(&TxHash::from_bytes([2; 32])),
            format!("/v1/tx/tx:{}", "02".repeat(32))
        );
    }
}

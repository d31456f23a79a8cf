//! The JSON bodies of every route, as the node writes them and clients read
//! them. One definition each: the server serializes these types and the
//! client deserializes the same ones, so a renamed or retyped field fails
//! to compile or to decode, never silently. The routes and their statuses
//! are listed in `glassbox_node::api`'s documentation.

use glassbox_ledger::{Concentration, Event, JobId, Params, Proof, TxHash, TxOutcome};
use glassbox_primitives::{BlockDigest, ChainId, ManifestId, ModelId, StateRoot, TensorHash};
use glassbox_types::PublicKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// An error: a stable snake_case `code` (the ledger's `TxError` codes for
/// refused transactions) and a `message` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, snake_case.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

/// Whether the node serves its finalized state yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving (200).
    Ok,
    /// Replaying finalized blocks after a restart (503).
    Replaying,
    /// Finalized blocks the network has finalized too far behind (503):
    /// catching up.
    Lagging,
    /// No block finalized for too long (503): consensus or this node's
    /// finalizer is stuck, or the node is cut off.
    Stalled,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Ready, or why not.
    pub status: HealthStatus,
    /// The finalized height reached so far.
    pub finalized_height: u64,
    /// The highest finalized height this node has seen certified by the
    /// network (consensus certificates reach it before the blocks do).
    #[serde(default)]
    pub network_height: u64,
    /// Milliseconds since this node last finalized a block (or started).
    #[serde(default)]
    pub since_finalized_ms: u64,
    /// Why it is not ready (with any status but [`HealthStatus::Ok`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The chain id (BLAKE3 of the ledger genesis).
    pub chain_id: ChainId,
    /// The chain's name.
    pub chain_name: String,
    /// Whether the restart replay is done.
    pub ready: bool,
    /// The finalized height.
    pub finalized_height: u64,
    /// The finalized block's digest.
    pub block: BlockDigest,
    /// Its state root.
    pub state_root: StateRoot,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// Transactions waiting in this node's mempool.
    pub mempool_size: u64,
    /// The genesis block's digest.
    pub genesis: BlockDigest,
    /// The chain's parameters: fees (`min_fee + fee_per_byte × size`) and
    /// limits, so a client can price a transaction.
    pub params: Params,
}

/// The body of `POST /v1/tx` and `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTx {
    /// Hex (either case) of the canonical `SignedTx` encoding.
    #[schema(pattern = "^([0-9a-fA-F]{2})+$")]
    pub tx: String,
}

/// `POST /v1/tx` accepted (202).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxSubmitted {
    /// The transaction's hash.
    pub tx_hash: TxHash,
}

/// `POST /v1/jobs` accepted (202).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSubmitted {
    /// The job's id (the hash of its `submit_job` transaction).
    pub job_id: JobId,
    /// The transaction's hash.
    pub tx_hash: TxHash,
}

/// `GET /v1/tx/{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// In this node's mempool.
    Pending {
        /// The transaction's hash.
        tx_hash: TxHash,
    },
    /// In a finalized block.
    Finalized {
        /// The transaction's hash.
        tx_hash: TxHash,
        /// The block's height.
        height: u64,
        /// Its index in the block.
        index: u64,
        /// What it did.
        outcome: Outcome,
    },
}

/// A finalized transaction's result: its events, or the execution error
/// that left only its fee and nonce applied. JSON: `{"tx_hash", "ok": true,
/// "events": [...]}` or `{"tx_hash", "ok": false, "error": {"code",
/// "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "OutcomeJson", try_from = "OutcomeJson")]
pub struct Outcome {
    /// The transaction's hash.
    pub tx_hash: TxHash,
    /// Its events, or why its body failed.
    pub result: Result<Vec<Event>, ErrorBody>,
}

impl From<&TxOutcome> for Outcome {
    fn from(o: &TxOutcome) -> Self {
        Outcome {
            tx_hash: o.tx_hash,
            result: o.result.clone().map_err(|e| ErrorBody {
                code: e.code().to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// A finalized transaction's result: `ok` with its `events`, or not `ok`
/// with the `error` that left only its fee and nonce applied.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Outcome)]
struct OutcomeJson {
    /// The transaction's hash.
    tx_hash: TxHash,
    /// Whether its body applied.
    ok: bool,
    /// What it did (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<Vec<Event>>,
    /// Why its body failed (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl utoipa::PartialSchema for Outcome {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <OutcomeJson as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for Outcome {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <OutcomeJson as ToSchema>::schemas(schemas);
    }
}

impl From<Outcome> for OutcomeJson {
    fn from(o: Outcome) -> Self {
        let (ok, events, error) = match o.result {
            Ok(events) => (true, Some(events), None),
            Err(e) => (false, None, Some(e)),
        };
        OutcomeJson {
            tx_hash: o.tx_hash,
            ok,
            events,
            error,
        }
    }
}

impl TryFrom<OutcomeJson> for Outcome {
    type Error = String;

    fn try_from(j: OutcomeJson) -> Result<Self, String> {
        let result = match (j.ok, j.events, j.error) {
            (true, Some(events), None) => Ok(events),
            (false, None, Some(error)) => Err(error),
            (true, ..) => return Err("`ok: true` needs `events` and no `error`".into()),
            (false, ..) => return Err("`ok: false` needs `error` and no `events`".into()),
        };
        Ok(Outcome {
            tx_hash: j.tx_hash,
            result,
        })
    }
}

/// A block's consensus context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockContext {
    /// The consensus epoch.
    pub epoch: u64,
    /// The view that proposed it.
    pub view: u64,
    /// The leader's consensus key, hex.
    pub leader: String,
    /// The parent's view.
    pub parent_view: u64,
    /// The parent's digest.
    pub parent: BlockDigest,
}

/// `GET /v1/blocks/latest`, `GET /v1/blocks/{height}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Block {
    /// Its height.
    pub height: u64,
    /// SHA-256 of `header`.
    pub digest: BlockDigest,
    /// The parent's digest.
    pub parent: BlockDigest,
    /// The proposer's timestamp.
    pub timestamp_ms: u64,
    /// The Merkle root of its transactions, hex.
    pub txs_root: String,
    /// The state root after it.
    pub state_root: StateRoot,
    /// Its consensus context.
    pub context: BlockContext,
    /// The encoded header, hex; SHA-256 of it is `digest`.
    pub header: String,
    /// Its transaction count.
    pub tx_count: u64,
    /// Its transactions' hashes, in order.
    pub txs: Vec<TxHash>,
}

/// A record read from the latest finalized state with its proof: the
/// record's key in the authenticated map, its canonical bytes and a proof
/// of them (or of the key's absence) under the block's state root.
///
/// `value` is the same record as JSON, for people and scripts; a client
/// trusts `record` after checking the proof
/// ([`Proven::verify`](crate::Proven::verify)), never `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Proven<V> {
    /// Height of the finalized block whose state was read.
    pub height: u64,
    /// Its digest.
    pub block: BlockDigest,
    /// Its state root: the root `proof` verifies against.
    pub state_root: StateRoot,
    /// The record's key in the authenticated map, hex.
    #[schema(pattern = "^([0-9a-f]{2})+$")]
    pub key: String,
    /// The record's canonical bytes, hex; `None` when absent.
    #[schema(pattern = "^([0-9a-f]{2})*$")]
    pub record: Option<String>,
    /// The record as JSON; `None` when absent (nullable in the OpenAPI
    /// document through [`crate::schema::finish`]).
    pub value: Option<V>,
    /// Proof of `record` (or of its absence) under `key`.
    pub proof: Proof,
}

/// A `name@version` index entry's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NameEntry {
    /// The model name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The model registered under them.
    pub model_id: ModelId,
}

/// `GET /v1/models/by-name/{name}/{version}`: the index entry proven, and
/// the model record it points to, proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ByName<E, M> {
    /// The index entry.
    #[serde(flatten)]
    pub entry: Proven<E>,
    /// The model record under the entry's model id; `None` when the entry
    /// is absent.
    pub model: Option<Proven<M>>,
}

/// A page of a list endpoint (`?limit=&after=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// Height of the finalized block read.
    pub height: u64,
    /// Its digest.
    pub block: BlockDigest,
    /// Its state root.
    pub state_root: StateRoot,
    /// Records in the whole list.
    pub total: u64,
    /// This page's records.
    pub items: Vec<T>,
    /// The `after` of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A model in `GET /v1/models`: the record without its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    /// The model's id.
    pub model_id: ModelId,
    /// Its manifest's id.
    pub manifest_id: ManifestId,
    /// The publisher.
    pub publisher: PublicKey,
    /// The height it was published at.
    pub height: u64,
    /// The manifest's name.
    pub name: String,
    /// The manifest's version.
    pub version: String,
}

/// `GET /v1/concentration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConcentrationReport {
    /// The finalized height it was computed at.
    pub height: u64,
    /// The report.
    pub concentration: Concentration,
}

/// `PUT /v1/tensors/{hash}` stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TensorStored {
    /// The tensor's hash.
    pub hash: TensorHash,
}

/// What `PUT /v1/blobs/{model_id}` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlobState {
    /// Stored now (201).
    Stored,
    /// Already held (200); the body was not read.
    Present,
}

/// `PUT /v1/blobs/{model_id}` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// Stored or present.
    pub status: BlobState,
    /// The model.
    pub model_id: ModelId,
    /// The blob's size.
    pub size_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_events_or_an_error_never_both() {
        let tx_hash = TxHash::from_bytes([3; 32]);
        let ok = Outcome {
            tx_hash,
            result: Ok(Vec::new()),
        };
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tx_hash": tx_hash, "ok": true, "events": []})
        );
        assert_eq!(serde_json::from_value::<Outcome>(json).unwrap(), ok);
        let failed = Outcome {
            tx_hash,
            result: Err(ErrorBody {
                code: "nonce".into(),
                message: "stale".into(),
            }),
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(serde_json::from_value::<Outcome>(json).unwrap(), failed);
        for bad in [
            serde_json::json!({"tx_hash": tx_hash, "ok": true}),
            serde_json::json!({"tx_hash": tx_hash, "ok": false, "events": []}),
            serde_json::json!({"tx_hash": tx_hash, "ok": true, "events": [],
                               "error": {"code": "x", "message": "y"}}),
        ] {
            assert!(serde_json::from_value::<Outcome>(bad).is_err());
        }
    }
}

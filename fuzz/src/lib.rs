//! The bodies of Glassbox's fuzz targets: one function per decoder of
//! untrusted bytes (transactions, blocks, gossip batches, manifests,
//! receipts, genesis and key files, tensors in every format, API bodies,
//! off-ledger tensors and blob slices, follower segments, state snapshots,
//! ledger records, ONNX models). Each returns whether its input was
//! accepted, must never panic, hang or allocate without bound on any
//! input, and asserts what must hold of what it accepts: a canonical
//! decoder's value encodes back to the very input bytes, and whatever a
//! node does next with the value (checking a signature, a proof, a
//! certificate) does not panic either. `cargo fuzz run <name>` runs one
//! (`fuzz/fuzz_targets/<name>.rs`, its corpus in `fuzz/corpus/<name>/`);
//! `crates/node/tests/fuzz_corpus.rs` includes this file as a module and
//! replays every corpus in an ordinary `cargo test`, so the two share
//! these definitions. Where a target reads several formats, the first
//! byte of the input picks one.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use commonware_codec::{Copying, DecodeExt, Encode};
use glassbox_api::{Proven, VersionEntry};
use glassbox_ledger::{
    Account, ChainInfo, Executor, FeePool, Head, Job, JobExt, JobId, ModelRecord, Params, Proof,
    SignedTx, State, StateKey, decode_model_version, decode_name_owner, encode_model_version,
    encode_name_owner, tags, verify_proof,
};
use glassbox_node::api::MAX_SLICE_BYTES;
use glassbox_node::chain::gossip::{decode_batch, encode_batch};
use glassbox_node::consensus::block::{Block, Header};
use glassbox_node::consensus::genesis::{NodeGenesis, ValidatorKey};
use glassbox_node::consensus::{Identity, follow, snapshots};
use glassbox_node::disputes::offchain::{OffChain, OffChainLimits};
use glassbox_node::disputes::referee::RefereeData;
use glassbox_node::receipt::{Receipt, result_of};
use glassbox_primitives::{ChainId, StateRoot, TensorHash, TxHash, unhex_vec};
use glassbox_runtime::formats;
use glassbox_runtime::{DType, Dim, Limits, Model, Options, Session, Tensor};
use glassbox_store::SliceRequest;
use glassbox_store::stream::verify_slice;
use glassbox_types::{Manifest, ModelId, PublicKey, SignedManifest};

/// A target's body: whether it accepted the input.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name: `fuzz/fuzz_targets/<name>.rs` runs it under
/// libFuzzer, `fuzz/corpus/<name>/` holds its seeds.
pub const TARGETS: &[(&str, Target)] = &[
    ("api", api),
    ("block", block),
    ("genesis", genesis),
    ("gossip", gossip),
    ("journal", journal),
    ("load", load),
    ("manifest", manifest),
    ("offchain", offchain),
    ("receipt", receipt),
    ("records", records),
    ("segment", segment),
    ("snapshot", snapshot),
    ("tensor", tensor),
    ("tx", tx),
];

/// The chain id the targets check transaction signatures against; the
/// seeds are signed for it, so their signatures verify.
pub const FUZZ_CHAIN: ChainId = ChainId::from_bytes([0x47; 32]);

/// The dtypes the JSON tensor reader is asked for, by the byte after the
/// format byte (modulo their count).
pub const JSON_DTYPES: [DType; 7] = [
    DType::F32,
    DType::F64,
    DType::I64,
    DType::I32,
    DType::I8,
    DType::U8,
    DType::Bool,
];

/// Size of [`slice_blob`].
pub const SLICE_BLOB_BYTES: usize = 40_000;

/// Most elements a tensor reader builds.
const MAX_ELEMENTS: usize = 1 << 20;

/// The network of the frozen receipt fixture, whose receipts verify.
const GENESIS_FIXTURE: &str = include_str!("../../crates/node/tests/fixtures/genesis-v1.json");

/// The blob whose slices the `offchain` target verifies: three chunk
/// groups (the last one partial) of fixed bytes.
pub fn slice_blob() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| (0..SLICE_BLOB_BYTES).map(|i| (i * 7 % 251) as u8).collect())
}

/// The chain id and consensus identity of the receipt fixture's network.
fn fixture_network() -> Option<&'static (ChainId, Identity)> {
    static NETWORK: OnceLock<Option<(ChainId, Identity)>> = OnceLock::new();
    NETWORK
        .get_or_init(|| {
            let genesis: NodeGenesis = serde_json::from_str(GENESIS_FIXTURE).ok()?;
            Some((genesis.ledger.chain_id().ok()?, genesis.identity().ok()?))
        })
        .as_ref()
}

/// Decodes `bytes`; when that succeeds, asserts that encoding the value
/// gives `bytes` back (the decoder accepts canonical encodings only).
fn canonical<T, E>(
    what: &str,
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
    encode: impl FnOnce(&T) -> Vec<u8>,
) -> Option<T> {
    let value = decode(bytes).ok()?;
    assert!(
        encode(&value) == bytes,
        "{what}: decoding then encoding changed the bytes"
    );
    Some(value)
}

/// Checks a decoded transaction the way a node goes on to use it.
fn check_tx(tx: &SignedTx) {
    let rebuilt = SignedTx::from_parts(
        *tx.sender(),
        tx.nonce(),
        tx.fee(),
        tx.body().clone(),
        *tx.signature(),
    )
    .expect("a decoded transaction's fields are within their limits");
    assert!(
        rebuilt.encoded() == tx.encoded(),
        "transaction: re-encoding the decoded fields changed the bytes"
    );
    assert_eq!(tx.hash(), TxHash::of(tx.encoded()));
    let json = serde_json::to_vec(tx).expect("a transaction serializes");
    let back: SignedTx =
        serde_json::from_slice(&json).expect("the JSON form of a decoded transaction reads back");
    assert!(
        back == *tx,
        "transaction: its JSON form reads back as another transaction"
    );
    let _ = tx.body().kind_name();
    let _ = tx.verify_signature(&FUZZ_CHAIN);
}

/// `SignedTx::decode` (a transaction in a block, a gossip batch, a
/// receipt or `POST /v1/tx`): canonical, its JSON form reads back, its
/// signature is checked.
pub fn tx(data: &[u8]) -> bool {
    let Ok(tx) = SignedTx::decode(data) else {
        return false;
    };
    assert!(
        tx.encoded() == data,
        "transaction: a decoded transaction keeps other bytes than its input"
    );
    check_tx(&tx);
    true
}

/// A consensus `Block` (commonware codec, config `()`), or else a bare
/// block `Header` (a receipt's `block_header`): canonical; a block's
/// randomness and transaction signatures are checked.
pub fn block(data: &[u8]) -> bool {
    if let Ok(block) = Block::decode(Copying(data)) {
        assert!(
            &block.encode()[..] == data,
            "block: decoding then encoding changed the bytes"
        );
        let header = block.header();
        let _ = header.randomness();
        let _ = header.seed_round();
        for tx in block.txs() {
            let _ = tx.verify_signature(&FUZZ_CHAIN);
        }
        return true;
    }
    if let Ok(header) = Header::decode(Copying(data)) {
        assert!(
            &header.encode()[..] == data,
            "block header: decoding then encoding changed the bytes"
        );
        let _ = header.digest();
        let _ = header.randomness();
        return true;
    }
    false
}

/// A transaction gossip batch (`decode_batch`): canonical, each
/// transaction's signature checked.
pub fn gossip(data: &[u8]) -> bool {
    let Some(txs) = decode_batch(data) else {
        return false;
    };
    assert!(
        encode_batch(&txs) == data,
        "gossip batch: decoding then encoding changed the bytes"
    );
    for tx in &txs {
        let _ = tx.verify_signature(&FUZZ_CHAIN);
    }
    true
}

/// A signed manifest (`SignedManifest::decode`, which `decode_verified`
/// runs before checking the signature), or else a bare manifest
/// (`Manifest::decode`): canonical; the signature is checked.
pub fn manifest(data: &[u8]) -> bool {
    if let Ok(signed) = SignedManifest::decode(data) {
        assert!(
            signed.encode() == data,
            "signed manifest: decoding then encoding changed the bytes"
        );
        let again = SignedManifest::from_parts(signed.manifest().clone(), *signed.signature())
            .expect("a decoded manifest validates and encodes");
        assert!(
            again == signed,
            "signed manifest: re-encoding the decoded manifest changed its bytes"
        );
        let _ = signed.verify();
        let _ = signed.id();
        let _ = serde_json::to_vec(signed.manifest());
        return true;
    }
    canonical("manifest", data, Manifest::decode, |m: &Manifest| {
        m.encode()
            .expect("a decoded manifest validates and encodes")
    })
    .is_some()
}

/// A job receipt (JSON, `glassbox receipt verify`): its JSON form reads
/// back; it is verified against the frozen fixture's network.
pub fn receipt(data: &[u8]) -> bool {
    let Ok(receipt) = serde_json::from_slice::<Receipt>(data) else {
        return false;
    };
    let json = serde_json::to_vec(&receipt).expect("a receipt serializes");
    let back: Receipt = serde_json::from_slice(&json).expect("a receipt's JSON reads back");
    assert!(
        back == receipt,
        "receipt: its JSON form reads back as another receipt"
    );
    let _ = receipt.job_id();
    let _ = receipt.model();
    if let Some((chain_id, identity)) = fixture_network()
        && let Ok(verified) = receipt.verify(chain_id, identity)
    {
        let _ = result_of(&verified.job, None);
    }
    true
}

/// A network's `genesis.json` (`NodeGenesis`) or a validator's
/// `validator.json` (`ValidatorKey`): everything a node derives from them
/// at start (participants, group key, genesis state and block; p2p key
/// and key share).
pub fn genesis(data: &[u8]) -> bool {
    if let Ok(genesis) = serde_json::from_slice::<NodeGenesis>(data) {
        let _ = genesis.participants();
        let _ = genesis.identity();
        if let Ok((state, block)) = genesis.genesis() {
            assert_eq!(
                block.header().state_root,
                state.root(),
                "genesis: the genesis block is not over the genesis state"
            );
        }
        return true;
    }
    if let Ok(key) = serde_json::from_slice::<ValidatorKey>(data) {
        let _ = key.private_key();
        let _ = key.share();
        return true;
    }
    false
}

/// Asserts that `back` is `t`, bit for bit.
fn assert_same(t: &Tensor, back: &Tensor, what: &str) {
    assert!(
        t.dtype() == back.dtype()
            && t.shape() == back.shape()
            && t.to_le_bytes() == back.to_le_bytes(),
        "{what}: a decoded tensor does not survive encoding and decoding again"
    );
}

/// The canonical tensor encoding: the primitives' check, the ledger's
/// `parse_tensor` and the runtime's `canonical_decode` agree, and a
/// decoded tensor encodes back to its input.
fn canonical_tensor(bytes: &[u8]) -> bool {
    let header = glassbox_ledger::parse_tensor(bytes);
    let checked = glassbox_primitives::tensor::parse(bytes).map(|(h, _)| h);
    assert!(
        header == checked,
        "canonical tensor: the ledger and the primitives disagree"
    );
    if let Ok(t) = formats::canonical_decode(bytes, MAX_ELEMENTS) {
        assert!(
            header.is_ok(),
            "canonical tensor: the runtime decodes what the ledger refuses"
        );
        assert!(
            formats::canonical_encode(&t) == bytes,
            "canonical tensor: decoding then encoding changed the bytes"
        );
        assert_eq!(formats::canonical_len(&t), bytes.len() as u64);
        assert_eq!(t.hash(), TensorHash::from(blake3::hash(bytes)));
    }
    header.is_ok()
}

/// Nested JSON arrays of the dtype the first byte picks.
fn json_tensor(bytes: &[u8]) -> bool {
    let Some((&code, rest)) = bytes.split_first() else {
        return false;
    };
    let dtype = JSON_DTYPES[usize::from(code) % JSON_DTYPES.len()];
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return false;
    };
    let Ok(t) = formats::json_decode(&value, dtype, MAX_ELEMENTS) else {
        return false;
    };
    let back = formats::json_decode(&formats::json_encode(&t), dtype, MAX_ELEMENTS);
    // Floats print as their shortest decimal, which need not read back
    // bit for bit through f64; integers and booleans must.
    if !dtype.is_float() {
        let back = back.expect("json: an encoded integer tensor decodes");
        assert_same(&t, &back, "json");
    }
    true
}

/// Tensor readers, by the first byte: 0 the canonical encoding (job
/// inputs and outputs, dispute operands), 1 `.npy`, 2 an ONNX
/// `TensorProto` (`.pb`), 3 nested JSON arrays (the CLI's inputs).
pub fn tensor(data: &[u8]) -> bool {
    let Some((&format, rest)) = data.split_first() else {
        return false;
    };
    match format % 4 {
        0 => canonical_tensor(rest),
        1 => formats::npy_decode(rest, MAX_ELEMENTS)
            .map(|t| {
                let back = formats::npy_decode(&formats::npy_encode(&t), MAX_ELEMENTS)
                    .expect("npy: an encoded tensor decodes");
                assert_same(&t, &back, "npy");
            })
            .is_ok(),
        2 => formats::pb_decode(rest, MAX_ELEMENTS)
            .map(|t| {
                let back = formats::pb_decode(&formats::pb_encode(&t, "fuzz"), MAX_ELEMENTS)
                    .expect("TensorProto: an encoded tensor decodes");
                assert_same(&t, &back, "TensorProto");
            })
            .is_ok(),
        _ => json_tensor(rest),
    }
}

/// The body of `POST /v1/tx` and `POST /v1/jobs` as the handler reads it:
/// `{"tx": "<hex, either case>"}`, then the transaction.
fn submitted_tx(body: &[u8]) -> bool {
    let Ok(tx) = glassbox_node::api::submitted_tx(body) else {
        return false;
    };
    check_tx(&tx);
    true
}

/// Whether `text` parses as a `T`, asserting that its text form parses
/// back to the same value.
fn parses_back<T: FromStr + ToString + PartialEq>(text: &str) -> bool {
    let Ok(value) = text.parse::<T>() else {
        return false;
    };
    assert!(
        value
            .to_string()
            .parse::<T>()
            .is_ok_and(|back| back == value),
        "`{text}`: its text form does not parse back"
    );
    true
}

/// A path parameter of the API: a transaction hash, job id, model id,
/// tensor hash or address.
fn path_parameter(text: &str) -> bool {
    [
        parses_back::<TxHash>(text),
        parses_back::<JobId>(text),
        parses_back::<ModelId>(text),
        parses_back::<TensorHash>(text),
        parses_back::<PublicKey>(text),
    ]
    .contains(&true)
}

/// The state key `bytes` encode ([`StateKey::to_bytes`]'s inverse).
fn state_key(bytes: &[u8]) -> Option<StateKey> {
    let (&tag, rest) = bytes.split_first()?;
    let id = || <[u8; 32]>::try_from(rest).ok();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Some(match tag {
        tags::META => match rest {
            [tags::META_CHAIN] => StateKey::Chain,
            [tags::META_PARAMS] => StateKey::Params,
            [tags::META_HEAD] => StateKey::Head,
            [tags::META_FEE_POOL] => StateKey::FeePool,
            _ => return None,
        },
        tags::ACCOUNT => StateKey::Account(PublicKey::from_bytes(&id()?).ok()?),
        tags::EXECUTOR => StateKey::Executor(PublicKey::from_bytes(&id()?).ok()?),
        tags::MODEL => StateKey::Model(ModelId::from_bytes(id()?)),
        tags::MODEL_VERSION => {
            let split = rest.iter().position(|&b| b == 0)?;
            StateKey::ModelVersion {
                name: text(&rest[..split])?,
                version: text(&rest[split + 1..])?,
            }
        }
        tags::NAME_OWNER => StateKey::NameOwner(text(rest)?),
        tags::JOB => StateKey::Job(JobId::from_bytes(id()?)),
        tags::JOB_EXT => StateKey::JobExt(JobId::from_bytes(id()?)),
        _ => return None,
    })
}

/// A proven answer of the API (`Proven`, JSON) as a client checks it:
/// the key it names, its proof and its record.
fn proven_answer(body: &[u8]) -> bool {
    let Ok(answer) = serde_json::from_slice::<Proven<serde_json::Value>>(body) else {
        return false;
    };
    let Some(key) = unhex_vec(&answer.key, 1 << 16)
        .ok()
        .as_deref()
        .and_then(state_key)
    else {
        return true;
    };
    let _ = match &key {
        StateKey::Account(_) => answer.verify::<Account>(&key).is_ok(),
        StateKey::Executor(_) => answer.verify::<Executor>(&key).is_ok(),
        StateKey::Model(_) => answer.verify::<ModelRecord>(&key).is_ok(),
        StateKey::ModelVersion { .. } => answer.verify::<VersionEntry>(&key).is_ok(),
        StateKey::Job(_) => answer.verify::<Job>(&key).is_ok(),
        StateKey::JobExt(_) => answer.verify::<JobExt>(&key).is_ok(),
        _ => false,
    };
    true
}

/// The HTTP API, by the first byte: 0 a `POST /v1/tx` or `/v1/jobs` body,
/// 1 a path parameter, 2 a proven answer as a client checks it.
pub fn api(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    match kind % 3 {
        0 => submitted_tx(rest),
        1 => std::str::from_utf8(rest).is_ok_and(path_parameter),
        _ => proven_answer(rest),
    }
}

/// A tensor uploaded to `PUT /v1/tensors/{hash}` (or fetched from a peer
/// for the referee): kept only when canonical, served back unchanged.
fn uploaded_tensor(bytes: &[u8]) -> bool {
    let off = OffChain::new(None, Vec::new(), None, OffChainLimits::default());
    let Ok(hash) = off.upload_tensor(bytes.to_vec()) else {
        return false;
    };
    assert_eq!(hash, TensorHash::from(blake3::hash(bytes)));
    let stored: Arc<Vec<u8>> = off
        .tensor_bytes(&hash)
        .expect("an uploaded tensor is served");
    assert!(
        stored.as_slice() == bytes,
        "offchain: an uploaded tensor is served with other bytes"
    );
    let _ = off.tensor(&hash);
    let _ = off.tensor_len(&hash);
    assert_eq!(off.put_tensor(bytes.to_vec()), Ok(hash));
    true
}

/// A peer's answer to `GET /v1/blobs/{id}/slice?offset=&len=` for
/// [`slice_blob`] (`verify_slice`): the input is the offset and length
/// (u32 LE each), then the encoded slice. What verifies must be exactly
/// the blob's bytes in that range.
fn blob_slice(bytes: &[u8]) -> bool {
    let Some((range, encoded)) = bytes.split_first_chunk::<8>() else {
        return false;
    };
    let [o0, o1, o2, o3, l0, l1, l2, l3] = *range;
    let req = SliceRequest {
        offset: u64::from(u32::from_le_bytes([o0, o1, o2, o3])),
        len: u64::from(u32::from_le_bytes([l0, l1, l2, l3])),
    };
    let blob = slice_blob();
    let id = ModelId::of(blob);
    let Ok(out) = verify_slice(&id, blob.len() as u64, req, encoded, MAX_SLICE_BYTES) else {
        return false;
    };
    let (start, end) = (req.offset as usize, (req.offset + req.len) as usize);
    assert!(
        blob.get(start..end) == Some(out.as_slice()),
        "blob slice: verified bytes are not the blob's"
    );
    true
}

/// Off-ledger data, by the first byte: 0 an uploaded tensor (`OffChain`),
/// 1 a verified blob slice.
pub fn offchain(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    if kind % 2 == 0 {
        uploaded_tensor(rest)
    } else {
        blob_slice(rest)
    }
}

/// An executor's results file read back after a restart
/// (`glassbox_node::executor::journal`): checksummed, and canonical.
pub fn journal(data: &[u8]) -> bool {
    use glassbox_node::executor::journal;
    let Ok(batch) = journal::decode(data) else {
        return false;
    };
    let again = journal::encode(&batch).expect("a decoded batch is within the format's limits");
    assert!(
        again == data,
        "journal: decoding then encoding changed the bytes"
    );
    true
}

/// A follower's segment from a peer (`follow::decode`, "GBSG"):
/// canonical.
pub fn segment(data: &[u8]) -> bool {
    let Ok((blocks, finalization)) = follow::decode(data) else {
        return false;
    };
    assert!(
        follow::encode(&blocks, &finalization) == data,
        "segment: decoding then encoding changed the bytes"
    );
    for block in &blocks {
        let _ = block.header().randomness();
    }
    true
}

/// A node's snapshot blob (`snapshots::decode`, "GBNS"): canonical.
fn node_snapshot(blob: &[u8]) -> bool {
    let Ok(snap) = snapshots::decode(blob, None) else {
        return false;
    };
    assert!(
        snapshots::encode(&snap.block, &snap.finalization, &snap.state) == blob,
        "node snapshot: decoding then encoding changed the bytes"
    );
    let _ = snap.state.chain_id();
    true
}

/// The ledger's state snapshot (`State::from_snapshot`, "GBSS"), rebuilt
/// under the root its records hash to: canonical.
fn ledger_snapshot(bytes: &[u8]) -> bool {
    let computed = match State::from_snapshot(bytes, &StateRoot::from_bytes([0; 32])) {
        Ok(state) => state.root(),
        Err(glassbox_ledger::SnapshotError::Root { computed, .. }) => computed,
        Err(_) => return false,
    };
    let state = State::from_snapshot(bytes, &computed)
        .expect("records that rebuilt once rebuild again under their own root");
    assert!(
        state.snapshot() == bytes,
        "ledger snapshot: rebuilding then snapshotting changed the bytes"
    );
    true
}

/// State snapshots, by the first byte: 0 a node's snapshot blob as
/// given, 1 a blob whose trailing checksum the target appends (so the
/// fuzzer gets past it), 2 the ledger's snapshot of the records.
pub fn snapshot(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    match kind % 3 {
        0 => node_snapshot(rest),
        1 => {
            let mut blob = rest.to_vec();
            blob.extend_from_slice(blake3::hash(rest).as_bytes());
            node_snapshot(&blob)
        }
        _ => ledger_snapshot(rest),
    }
}

/// The ledger's state records (a snapshot's values, proven answers,
/// receipts), by the first byte: 0 account, 1 executor, 2 model record,
/// 3 job, 4 job extension, 5 params, 6 chain, 7 head, 8 fee pool,
/// 9 proof, 10 name@version entry, 11 name owner. Each is canonical.
pub fn records(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    match kind % 12 {
        0 => canonical("account", rest, Account::decode, Account::encode).is_some(),
        1 => canonical("executor", rest, Executor::decode, Executor::encode).is_some(),
        2 => canonical(
            "model record",
            rest,
            ModelRecord::decode,
            ModelRecord::encode,
        )
        .inspect(|m| {
            let _ = m.manifest.verify();
        })
        .is_some(),
        3 => canonical("job", rest, Job::decode, Job::encode)
            .inspect(|job| {
                let _ = result_of(job, None);
            })
            .is_some(),
        4 => canonical("job extension", rest, JobExt::decode, JobExt::encode)
            .inspect(|ext| {
                let _ = ext.is_live();
            })
            .is_some(),
        5 => canonical("params", rest, Params::decode, Params::encode).is_some(),
        6 => canonical("chain", rest, ChainInfo::decode, ChainInfo::encode).is_some(),
        7 => canonical("head", rest, Head::decode, Head::encode).is_some(),
        8 => canonical("fee pool", rest, FeePool::decode, FeePool::encode).is_some(),
        9 => canonical("proof", rest, Proof::decode, Proof::encode)
            .inspect(|proof| {
                let root = StateRoot::from_bytes([0; 32]);
                let key = [tags::META, tags::META_CHAIN];
                let _ = verify_proof(&root, &key, None, proof);
                let _ = verify_proof(&root, &key, Some(rest), proof);
            })
            .is_some(),
        10 => canonical(
            "name@version entry",
            rest,
            decode_model_version,
            encode_model_version,
        )
        .is_some(),
        _ => canonical("name owner", rest, decode_name_owner, encode_name_owner).is_some(),
    }
}

/// The ONNX loader and planner (`Model::load`, `Session::plan_shapes`)
/// on arbitrary bytes: an error, never a panic, hang or unbounded
/// allocation.
pub fn load(data: &[u8]) -> bool {
    let limits = Limits {
        max_model_bytes: 1 << 20,
        max_nodes: 256,
        max_tensor_elements: 1 << 16,
        max_total_flops: 1 << 24,
    };
    let Ok(model) = Model::load(data, limits) else {
        return false;
    };
    // Plan with the declared shapes (symbolic dims bound to 1): exercises
    // shape inference, constant folding and the limits on hostile graphs.
    let shapes: Vec<Vec<usize>> = model
        .inputs()
        .map(|v| {
            v.shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => (*n).min(64),
                    Dim::Symbol(_) => 1,
                })
                .collect()
        })
        .collect();
    if let Ok(session) = Session::new(Arc::new(model), Options::default()) {
        let _ = session.plan_shapes(&shapes);
    }
    true
}

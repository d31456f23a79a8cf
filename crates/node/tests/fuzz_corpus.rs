//! The fuzz targets (fuzz/src/lib.rs, included here as a module so that
//! cargo-fuzz and `cargo test` run the same bodies) replayed on their
//! corpora: every seed in `fuzz/corpus/<target>/` must run without a
//! panic, and every target must accept at least one of its seeds.
//!
//! The seeds are valid examples of each format built with the real
//! encoders. After a format change, write them again with
//! `GLASSBOX_FUZZ_WRITE_SEEDS=1 cargo test -p glassbox-node --test
//! fuzz_corpus write_seeds` (then commit `fuzz/corpus/`).

#[allow(dead_code, unreachable_pub)]
#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::{self, Seedable};
use commonware_consensus::simplex::types::{Notarization, Notarize, Proposal};
use commonware_consensus::types::{Height, Round, View};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::certificate::mocks::Fixture;
use commonware_cryptography::{Hasher, Sha256, Signer as _, ed25519};
use commonware_parallel::Sequential;
use commonware_utils::non_empty;
use glassbox_api::Proven;
use glassbox_api::wire::SubmitTx;
use glassbox_ledger::dispute::{Claim, Dispute, LeafOpening, LeafOutput, Step};
use glassbox_ledger::{
    Account, BlockContext, FeePool, GenesisAccount, GenesisExecutor, GenesisState, JobExt, JobId,
    ModelRecord, Params, SignedTx, State, StateKey, TxBody, encode_model_version,
    encode_name_owner,
};
use glassbox_node::api::MAX_SLICE_BYTES;
use glassbox_node::chain::gossip::encode_batch;
use glassbox_node::consensus::block::Block;
use glassbox_node::consensus::genesis::{deal_validators, genesis_block};
use glassbox_node::consensus::{
    Context, Digest, EPOCH, Finalization, NAMESPACE, Scheme, Seed, follow, snapshots,
};
use glassbox_node::manifest::ModelFacts;
use glassbox_node::receipt::Receipt;
use glassbox_primitives::{
    BlockDigest, Commitment, MerkleNode, OutputHash, Salt, StateRoot, TensorHash, TraceRoot,
};
use glassbox_runtime::formats;
use glassbox_runtime::{DType, Tensor};
use glassbox_store::{BlobStore, SliceRequest};
use glassbox_types::{
    Hash, Manifest, ModelId, Parent, Relation, SecretKey, SignedManifest, Source, hex, unhex_vec,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const RECEIPT_FIXTURE: &str = "crates/node/tests/fixtures/receipt-v1.json";
const GENESIS_FIXTURE: &str = "crates/node/tests/fixtures/genesis-v1.json";
const GENESIS_TIME: u64 = 1_700_000_000_000;
/// Largest seed written.
const MAX_SEED_BYTES: usize = 64 << 10;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fuzz_dir() -> PathBuf {
    repo_root().join("fuzz")
}

/// A file of the repository, by its path from the root.
fn repo_file(path: &str) -> Vec<u8> {
    let path = repo_root().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The regular files of `dir`, sorted.
fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn every_corpus_replays() {
    let mut failures = Vec::new();
    for &(name, target) in targets::TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let files = match files_in(&dir) {
            Ok(files) if !files.is_empty() => files,
            Ok(_) => {
                failures.push(format!("{name}: {} holds no seeds", dir.display()));
                continue;
            }
            Err(e) => {
                failures.push(format!(
                    "{name}: no corpus at {} ({e}); write the seeds with \
                     GLASSBOX_FUZZ_WRITE_SEEDS=1 cargo test -p glassbox-node \
                     --test fuzz_corpus write_seeds",
                    dir.display()
                ));
                continue;
            }
        };
        let mut accepted = 0;
        for file in &files {
            let bytes =
                std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            match std::panic::catch_unwind(|| target(&bytes)) {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(_) => failures.push(format!("{name}: {} panics", file.display())),
            }
        }
        if accepted == 0 {
            failures.push(format!(
                "{name}: none of the {} seeds in {} is accepted",
                files.len(),
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_target_has_a_binary() {
    let listed: BTreeSet<String> = targets::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        listed.len(),
        targets::TARGETS.len(),
        "a target is listed twice"
    );
    let dir = fuzz_dir().join("fuzz_targets");
    let binaries: BTreeSet<String> = files_in(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    assert_eq!(
        binaries, listed,
        "fuzz/fuzz_targets/*.rs and glassbox_fuzz::TARGETS name other targets"
    );
    let manifest = String::from_utf8(repo_file("fuzz/Cargo.toml")).expect("UTF-8");
    for name in &listed {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let source = std::fs::read_to_string(dir.join(format!("{name}.rs"))).expect("readable");
        assert!(
            source.contains(&format!("glassbox_fuzz::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not run glassbox_fuzz::{name}"
        );
    }
}

/// The seeds built from today's encoders are the checked-in ones (so a
/// format change cannot leave the fuzzers starting from stale inputs);
/// with `GLASSBOX_FUZZ_WRITE_SEEDS=1` it writes them instead.
#[test]
fn write_seeds() {
    let write = std::env::var_os("GLASSBOX_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (target, name, bytes) in seeds().0 {
        let run = targets::TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .unwrap_or_else(|| panic!("no target {target}"))
            .1;
        assert!(
            bytes.len() <= MAX_SEED_BYTES,
            "{target}/{name}: {} bytes, over {MAX_SEED_BYTES}",
            bytes.len()
        );
        assert!(run(&bytes), "{target}/{name}: the target refuses the seed");
        let dir = fuzz_dir().join("corpus").join(target);
        if write {
            std::fs::create_dir_all(&dir).expect("the corpus directory is created");
            std::fs::write(dir.join(&name), &bytes).expect("the seed is written");
        } else if std::fs::read(dir.join(&name)).ok().as_deref() != Some(&bytes[..]) {
            stale.push(format!("{target}/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "seeds missing or stale in fuzz/corpus/ (an encoding changed?): {stale:?}; write them \
         with GLASSBOX_FUZZ_WRITE_SEEDS=1 cargo test -p glassbox-node --test fuzz_corpus \
         write_seeds"
    );
}

// ---- seeds -------------------------------------------------------------------

/// `(target, file name, bytes)` of every seed.
#[derive(Default)]
struct Seeds(Vec<(&'static str, String, Vec<u8>)>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: &str, bytes: Vec<u8>) {
        self.0.push((target, name.to_string(), bytes));
    }

    /// A seed of a target whose first byte picks the format: `kind`, then
    /// `bytes`.
    fn add_kind(&mut self, target: &'static str, name: &str, kind: u8, bytes: &[u8]) {
        let mut seed = Vec::with_capacity(1 + bytes.len());
        seed.push(kind);
        seed.extend_from_slice(bytes);
        self.add(target, name, seed);
    }
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// Accounts 1, 2, 3 and 7 funded; executor 7 staked.
fn ledger_genesis() -> GenesisState {
    GenesisState {
        chain_name: "glassbox-fuzz".into(),
        genesis_time_ms: GENESIS_TIME,
        params: Params {
            min_executor_stake: 1_000_000,
            ..Params::default()
        },
        accounts: [1, 2, 3, 7]
            .into_iter()
            .map(|n| GenesisAccount {
                address: key(n).public(),
                balance: 1_000_000_000_000,
            })
            .collect(),
        executors: vec![GenesisExecutor {
            owner: key(7).public(),
            stake: 5_000_000,
            capacity: 4,
            endpoint: "https://executor-7.example.org".into(),
        }],
    }
}

/// The manifest of `models/mlp.onnx` as `fuzz/mlp@version`, signed by `by`;
/// with a license, a parent and a source when `lineage`.
fn mlp_manifest(by: &SecretKey, version: &str, lineage: bool) -> SignedManifest {
    let facts = ModelFacts::of(&repo_file("models/mlp.onnx")).expect("models/mlp.onnx loads");
    let (parents, sources) = if lineage {
        (
            vec![Parent {
                id: ModelId::of(b"a parent model"),
                relation: Relation::Finetune,
            }],
            vec![Source {
                hash: Hash::of(b"training data"),
                uri: "https://example.org/data.tar".into(),
            }],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let manifest = Manifest {
        model_id: facts.model_id,
        size_bytes: facts.size_bytes,
        name: "fuzz/mlp".into(),
        version: version.parse().expect("a semantic version"),
        description: "A small MLP: the fuzz seeds' model.\n\tSecond line.".into(),
        license: lineage.then(|| "MIT".to_string()),
        publisher: by.public(),
        created_at_unix_s: 1_700_000_000,
        parents,
        sources,
        inputs: facts.inputs,
        outputs: facts.outputs,
        opset: facts.opset,
        cost: facts.cost,
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    SignedManifest::sign(manifest, by).expect("the manifest signs")
}

fn f32_tensor() -> Tensor {
    Tensor::from_vec(vec![2, 3], vec![0.5f32, -1.0, 2.25, 0.0, -0.0, 1e-3]).expect("a 2x3 tensor")
}

/// A job input or output: a canonical 1x4 float tensor.
fn canonical_input() -> Vec<u8> {
    let t = Tensor::from_vec(vec![1, 4], vec![0.5f32, -1.0, 2.0, 0.0]).expect("a 1x4 tensor");
    formats::canonical_encode(&t)
}

/// One body of every transaction kind (dispute steps of every kind).
fn tx_bodies(manifest: &SignedManifest) -> Vec<(&'static str, TxBody)> {
    let job_id = JobId::from_bytes([5; 32]);
    let output_hash = OutputHash::from_bytes([6; 32]);
    let trace_root = TraceRoot::from_bytes([7; 32]);
    let dispute = |step: Step| TxBody::DisputeStep { job_id, step };
    vec![
        (
            "transfer",
            TxBody::Transfer {
                to: key(2).public(),
                amount: 5,
            },
        ),
        (
            "register-executor",
            TxBody::RegisterExecutor {
                stake: 2_000_000,
                capacity: 4,
                endpoint: "https://executor.example.org".into(),
            },
        ),
        ("add-stake", TxBody::AddStake { amount: 1_000 }),
        ("unbond", TxBody::Unbond { amount: 1_000 }),
        ("withdraw", TxBody::Withdraw),
        ("deregister", TxBody::Deregister),
        (
            "update-executor",
            TxBody::UpdateExecutor {
                capacity: 8,
                endpoint: "http://127.0.0.1:8545".into(),
            },
        ),
        (
            "publish-model",
            TxBody::PublishModel {
                manifest: Box::new(manifest.clone()),
            },
        ),
        (
            "submit-job",
            TxBody::SubmitJob {
                model_id: manifest.manifest().model_id,
                inputs: vec![canonical_input()],
                replicas: 3,
                max_fee: 1_000_000,
            },
        ),
        (
            "commit-result",
            TxBody::CommitResult {
                job_id,
                commitment: Commitment::from_bytes([8; 32]),
            },
        ),
        (
            "reveal-result",
            TxBody::RevealResult {
                job_id,
                output_hash,
                trace_root,
                salt: Salt::from_bytes([9; 32]),
                outputs: vec![canonical_input()],
            },
        ),
        (
            "challenge",
            TxBody::Challenge {
                job_id,
                output_hash,
                trace_root,
                outputs: vec![canonical_input()],
            },
        ),
        (
            "dispute-open",
            dispute(Step::Open {
                leaves: 12,
                leaves_root: MerkleNode::from_bytes([10; 32]),
            }),
        ),
        (
            "dispute-split",
            dispute(Step::Split {
                left: MerkleNode::from_bytes([11; 32]),
                right: MerkleNode::from_bytes([12; 32]),
            }),
        ),
        (
            "dispute-openings",
            dispute(Step::Openings {
                items: vec![LeafOpening {
                    node: 3,
                    outputs: vec![TensorHash::from_bytes([13; 32])],
                    path: vec![MerkleNode::from_bytes([14; 32]); 3],
                }],
            }),
        ),
        (
            "dispute-leaf",
            dispute(Step::Leaf {
                outputs: vec![LeafOutput {
                    hash: TensorHash::from_bytes([15; 32]),
                    len: 64,
                }],
            }),
        ),
        ("resume", TxBody::Resume),
    ]
}

/// A transaction from key 1 on the fuzz targets' chain.
fn fuzz_tx(nonce: u64, body: TxBody) -> SignedTx {
    SignedTx::sign(&targets::FUZZ_CHAIN, &key(1), nonce, 10_000, body)
        .expect("a seed transaction signs")
}

fn context(view: u64, parent_view: u64, parent: Digest) -> Context {
    Context {
        round: Round::new(EPOCH, View::new(view)),
        leader: ed25519::PrivateKey::from_seed(0).public_key(),
        parent: (View::new(parent_view), parent),
    }
}

/// A real threshold VRF seed of round `(EPOCH, view)` (a test validator
/// set's).
fn vrf_seed(view: u64) -> Seed {
    let mut rng = StdRng::seed_from_u64(1);
    let fixture: Fixture<Scheme> = vrf::fixture::<MinSig, _>(&mut rng, NAMESPACE, 4);
    let proposal = Proposal::new(
        Round::new(EPOCH, View::new(view)),
        View::new(view.saturating_sub(1)),
        Sha256::hash(&[b"payload"]),
    );
    let votes: Vec<_> = fixture
        .schemes
        .iter()
        .map(|s| Notarize::sign(s, proposal.clone()).expect("a signer"))
        .collect();
    let notarization: Notarization<Scheme, Digest> =
        Notarization::from_notarizes(&fixture.schemes[0], non_empty![@&votes], &Sequential)
            .expect("a quorum");
    notarization.seed()
}

/// A proven answer for `key` in `state`, as the API serves it.
fn proven(state: &State, key: &StateKey) -> Vec<u8> {
    let (record, proof) = state.prove(key);
    let answer = Proven::<serde_json::Value> {
        height: state.height(),
        block: BlockDigest::from_bytes([4; 32]),
        state_root: state.root(),
        key: hex(&key.to_bytes()),
        record: record.map(|r| hex(&r)),
        value: None,
        proof,
    };
    serde_json::to_vec(&answer).expect("a proven answer serializes")
}

fn claim(n: u8, member: u8, lost: bool) -> Claim {
    Claim {
        output_hash: OutputHash::from_bytes([n; 32]),
        trace_root: TraceRoot::from_bytes([n; 32]),
        outputs: vec![canonical_input()],
        members: vec![key(member).public()],
        bond: 100,
        lost,
    }
}

/// The index of `dtype` among the JSON tensor target's dtypes.
fn json_dtype(dtype: DType) -> u8 {
    let i = targets::JSON_DTYPES
        .iter()
        .position(|d| *d == dtype)
        .expect("a JSON dtype");
    u8::try_from(i).expect("few dtypes")
}

/// A JSON tensor seed: the format byte, the dtype's index, the text.
fn json_seed(dtype: DType, text: &[u8]) -> Vec<u8> {
    [&[3, json_dtype(dtype)][..], text].concat()
}

/// Every seed, built with the real encoders.
fn seeds() -> Seeds {
    let mut seeds = Seeds::default();
    let manifest = mlp_manifest(&key(1), "0.1.0", true);
    let receipt: Receipt =
        serde_json::from_slice(&repo_file(RECEIPT_FIXTURE)).expect("the receipt fixture parses");
    let finalization = Finalization::decode(
        unhex_vec(&receipt.finalization, 1 << 16).expect("the fixture's finalization is hex"),
    )
    .expect("the fixture's finalization decodes");
    let state = State::genesis(&ledger_genesis()).expect("the seed genesis is valid");
    let publish = SignedTx::sign(
        &state.chain_id(),
        &key(1),
        0,
        100_000,
        TxBody::PublishModel {
            manifest: Box::new(manifest.clone()),
        },
    )
    .expect("the publish transaction signs");
    let (published, _) = state
        .apply_block(
            BlockContext {
                height: 1,
                timestamp_ms: GENESIS_TIME + 1_000,
                randomness: [0; 32],
            },
            std::slice::from_ref(&publish),
        )
        .expect("the publish block applies");

    // tx: every kind.
    let txs: Vec<(&str, SignedTx)> = tx_bodies(&manifest)
        .into_iter()
        .zip(0..)
        .map(|((name, body), nonce)| (name, fuzz_tx(nonce, body)))
        .collect();
    for (name, tx) in &txs {
        seeds.add("tx", name, tx.encoded().to_vec());
    }
    let tx = |name: &str| {
        txs.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, tx)| tx.clone())
            .expect("a seed transaction")
    };

    // gossip: an empty batch and a mixed one.
    seeds.add("gossip", "empty", encode_batch(&[]));
    seeds.add(
        "gossip",
        "three",
        encode_batch(&[tx("transfer"), tx("submit-job"), tx("dispute-openings")]),
    );

    // block: genesis, transactions, a seed; a bare header.
    let genesis = genesis_block(GENESIS_TIME, StateRoot::from_bytes([1; 32]));
    let g = genesis.header().digest();
    let b1 = Block::new(
        context(1, 0, g),
        g,
        Height::new(1),
        GENESIS_TIME + 1_000,
        vec![tx("transfer"), tx("publish-model"), tx("submit-job")],
        StateRoot::from_bytes([2; 32]),
    );
    let d1 = b1.header().digest();
    let b2 = Block::with_seed(
        context(3, 1, d1),
        d1,
        Height::new(2),
        GENESIS_TIME + 2_000,
        Some(vrf_seed(1)),
        vec![tx("commit-result"), tx("dispute-leaf")],
        StateRoot::from_bytes([3; 32]),
    );
    seeds.add("block", "genesis", genesis.encode().to_vec());
    seeds.add("block", "transactions", b1.encode().to_vec());
    seeds.add("block", "with-seed", b2.encode().to_vec());
    seeds.add("block", "header-with-seed", b2.header().encode().to_vec());

    // segment: one block, two.
    seeds.add(
        "segment",
        "one-block",
        follow::encode(std::slice::from_ref(&b1), &finalization),
    );
    seeds.add(
        "segment",
        "two-blocks",
        follow::encode(&[b1, b2], &finalization),
    );

    // snapshot: a node's blob, the same without its checksum, the ledger's.
    let blob = snapshots::encode(
        &genesis_block(GENESIS_TIME, state.root()),
        &finalization,
        &state,
    );
    seeds.add_kind("snapshot", "node-blob", 0, &blob);
    seeds.add_kind(
        "snapshot",
        "node-blob-unchecksummed",
        1,
        &blob[..blob.len() - 32],
    );
    seeds.add_kind("snapshot", "ledger-genesis", 2, &state.snapshot());
    seeds.add_kind("snapshot", "ledger-published", 2, &published.snapshot());

    // records: every selector.
    let account = Account {
        balance: 1_000,
        nonce: 3,
    };
    seeds.add_kind("records", "account", 0, &account.encode());
    let executor = state.executor(&key(7).public()).expect("executor 7");
    seeds.add_kind("records", "executor", 1, &executor.encode());
    seeds.add_kind(
        "records",
        "model",
        2,
        &ModelRecord::new(manifest.clone(), 1).encode(),
    );
    let job = unhex_vec(&receipt.job_record, 1 << 20).expect("the fixture's job record is hex");
    seeds.add_kind("records", "job", 3, &job);
    let pending = JobExt {
        pending_until: Some(60),
        auditor: Some(key(7).public()),
        ..JobExt::default()
    };
    seeds.add_kind("records", "job-ext-pending", 4, &pending.encode());
    let disputed = JobExt {
        dispute: Some(Dispute {
            opened_height: 9,
            claims: vec![claim(16, 7, false), claim(17, 3, true)],
            game: None,
            verdicts: Vec::new(),
            winner: None,
            closed_height: None,
        }),
        extra_outputs: vec![vec![canonical_input()]],
        ..JobExt::default()
    };
    seeds.add_kind("records", "job-ext-dispute", 4, &disputed.encode());
    seeds.add_kind("records", "params", 5, &Params::default().encode());
    seeds.add_kind("records", "chain", 6, &state.chain().encode());
    seeds.add_kind("records", "head", 7, &state.head().encode());
    let fee_pool = FeePool {
        balance: 10,
        burned: 2,
    };
    seeds.add_kind("records", "fee-pool", 8, &fee_pool.encode());
    let (_, present) = state.prove_account(&key(1).public());
    seeds.add_kind("records", "proof-present", 9, &present.encode());
    let (_, absent) = state.prove_account(&key(200).public());
    seeds.add_kind("records", "proof-absent", 9, &absent.encode());
    let model_id = manifest.manifest().model_id;
    seeds.add_kind(
        "records",
        "model-version",
        10,
        &encode_model_version(&model_id),
    );
    seeds.add_kind(
        "records",
        "name-owner",
        11,
        &encode_name_owner(&key(1).public()),
    );

    // manifest: signed (with and without lineage), bare.
    seeds.add("manifest", "signed-lineage", manifest.encode());
    seeds.add(
        "manifest",
        "signed-minimal",
        mlp_manifest(&key(2), "2.0.0-rc.1", false).encode(),
    );
    seeds.add(
        "manifest",
        "bare",
        manifest.manifest().encode().expect("the manifest encodes"),
    );

    // receipt: the frozen fixture, and one with a job extension.
    seeds.add("receipt", "fixture-v1.json", repo_file(RECEIPT_FIXTURE));
    let mut with_ext = receipt.clone();
    with_ext.job_ext = Some(hex(&JobExt::default().encode()));
    with_ext.ext_proof = Some(with_ext.state_proof.clone());
    seeds.add(
        "receipt",
        "with-ext.json",
        serde_json::to_vec_pretty(&with_ext).expect("a receipt serializes"),
    );

    // genesis: the frozen fixture, a dealt one and a validator key.
    seeds.add("genesis", "fixture-v1.json", repo_file(GENESIS_FIXTURE));
    let address = |s: &str| s.parse::<SocketAddr>().expect("an address");
    let (dealt, keys) = deal_validators(
        &mut StdRng::seed_from_u64(3),
        ledger_genesis(),
        &[
            (address("127.0.0.1:30300"), Some(address("127.0.0.1:8545"))),
            (address("127.0.0.1:30301"), None),
        ],
    )
    .expect("validators are dealt");
    seeds.add(
        "genesis",
        "dealt-two.json",
        serde_json::to_vec_pretty(&dealt).expect("a genesis serializes"),
    );
    seeds.add(
        "genesis",
        "validator-key.json",
        serde_json::to_vec_pretty(&keys[0]).expect("a key file serializes"),
    );

    // tensor: every format.
    let bools = Tensor::from_vec(vec![3], vec![true, false, true]).expect("a bool tensor");
    let ints = Tensor::from_vec(vec![2, 2], vec![1i32, -2, 3, -4]).expect("an int tensor");
    let bytes = Tensor::from_vec(vec![4], vec![1u8, 2, 3, 255]).expect("a byte tensor");
    let canonical = formats::canonical_encode(&f32_tensor());
    seeds.add_kind("tensor", "canonical-f32", 0, &canonical);
    seeds.add_kind(
        "tensor",
        "canonical-bool",
        0,
        &formats::canonical_encode(&bools),
    );
    seeds.add_kind(
        "tensor",
        "canonical-i64-scalar",
        0,
        &formats::canonical_encode(&Tensor::scalar(-7i64)),
    );
    seeds.add_kind(
        "tensor",
        "npy-mlp-input",
        1,
        &repo_file("models/mlp.input.npy"),
    );
    seeds.add_kind("tensor", "npy-i32", 1, &formats::npy_encode(&ints));
    seeds.add_kind(
        "tensor",
        "pb-f32",
        2,
        &formats::pb_encode(&f32_tensor(), "input"),
    );
    seeds.add_kind("tensor", "pb-u8", 2, &formats::pb_encode(&bytes, "bytes"));
    seeds.add(
        "tensor",
        "json-f32-mlp-input",
        json_seed(DType::F32, &repo_file("models/mlp.input.json")),
    );
    seeds.add(
        "tensor",
        "json-i64",
        json_seed(DType::I64, b"[[1, -2], [3, 4]]"),
    );
    seeds.add(
        "tensor",
        "json-bool",
        json_seed(DType::Bool, b"[true, false, true]"),
    );

    // offchain: an uploaded tensor; slices of the target's blob.
    seeds.add_kind("offchain", "tensor-upload", 0, &canonical);
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = BlobStore::open(dir.path(), 1 << 20).expect("a blob store");
    let id = store
        .put_bytes(targets::slice_blob())
        .expect("the slice blob is stored");
    for (name, offset, len) in [
        ("slice-head", 0u32, 100u32),
        ("slice-two-groups", 20_000, 12_000),
        ("slice-tail", 39_990, 10),
    ] {
        let req = SliceRequest {
            offset: offset.into(),
            len: len.into(),
        };
        let encoded = store
            .encode_slice(&id, req, MAX_SLICE_BYTES)
            .expect("the slice encodes");
        let seed = [
            &offset.to_le_bytes()[..],
            &len.to_le_bytes()[..],
            &encoded[..],
        ]
        .concat();
        seeds.add_kind("offchain", name, 1, &seed);
    }

    // api: request bodies, path parameters, proven answers.
    let transfer = tx("transfer");
    let body = |tx: String| serde_json::to_vec(&SubmitTx { tx }).expect("a body serializes");
    seeds.add_kind("api", "submit-tx", 0, &body(hex(transfer.encoded())));
    seeds.add_kind(
        "api",
        "submit-tx-upper-case",
        0,
        &body(hex(transfer.encoded()).to_ascii_uppercase()),
    );
    for (name, text) in [
        ("path-tx-hash", transfer.hash().to_string()),
        ("path-job-id", JobId::of_tx(transfer.hash()).to_string()),
        ("path-model-id", model_id.to_string()),
        (
            "path-tensor-hash",
            TensorHash::from_bytes([9; 32]).to_string(),
        ),
        ("path-address", key(1).public().to_string()),
    ] {
        seeds.add_kind("api", name, 1, text.as_bytes());
    }
    let m = manifest.manifest();
    for (name, at, state_key) in [
        ("proven-account", &state, StateKey::Account(key(1).public())),
        (
            "proven-absent",
            &state,
            StateKey::Account(key(200).public()),
        ),
        (
            "proven-executor",
            &state,
            StateKey::Executor(key(7).public()),
        ),
        ("proven-model", &published, StateKey::Model(model_id)),
        (
            "proven-model-version",
            &published,
            StateKey::ModelVersion {
                name: m.name.clone(),
                version: m.version.to_string(),
            },
        ),
    ] {
        seeds.add_kind("api", name, 2, &proven(at, &state_key));
    }

    // journal: an executor's results files.
    {
        use glassbox_node::executor::journal::{Stored, encode};
        let stored = |n: u8, outputs: Vec<Vec<u8>>| Stored {
            job: JobId::from_bytes([n; 32]),
            outputs,
            output_hash: OutputHash::from_bytes([n ^ 1; 32]),
            trace_root: TraceRoot::from_bytes([n ^ 2; 32]),
        };
        seeds.add(
            "journal",
            "one",
            encode(&[stored(1, vec![canonical_input()])]).unwrap(),
        );
        seeds.add(
            "journal",
            "three",
            encode(&[
                stored(1, vec![canonical_input(), canonical_input()]),
                stored(2, vec![]),
                stored(3, vec![vec![7; 9]]),
            ])
            .unwrap(),
        );
    }

    // load: the repository's small models.
    seeds.add("load", "mlp.onnx", repo_file("models/mlp.onnx"));
    seeds.add("load", "mnist-cnn.onnx", repo_file("models/mnist-cnn.onnx"));

    seeds
}

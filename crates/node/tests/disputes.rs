//! The dispute game over the real runtime (docs/disputes.md): a lying
//! executor that corrupts one operator's output at a random position is
//! always caught, at exactly that operator, by the validators' referee
//! re-running that operator alone; the liar is slashed and the honest
//! result is final. Deterministic: the same seed gives the same state root.
//! Runs on the ledger directly (blocks applied in-process, no network).

use std::sync::Arc;

use glassbox_ledger::dispute::{Target, VerdictReason};
use glassbox_ledger::{
    BlockContext, GenesisAccount, GenesisExecutor, GenesisState, JobId, JobStatus, Params,
    SignedTx, State, TxBody, commitment,
};
use glassbox_node::disputes::party::{Party, PartyError};
use glassbox_node::disputes::referee::{MemoryData, RuntimeReferee};
use glassbox_node::manifest::tensor_spec;
use glassbox_node::receipt::result_of;
use glassbox_runtime::{DType, Limits, Model, Options, Session, formats};
use glassbox_types::{CostSpec, Manifest, ModelId, SecretKey, SignedManifest};

const FEE: u64 = 1_000_000;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

struct Case {
    session: Arc<Session>,
    inputs: Vec<Vec<u8>>,
    state: State,
}

/// A chain with the requester (1), executors 5, 6 and 7, and `name` from
/// models/ published with its sample input.
fn case(name: &str) -> Case {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.input.json"))).unwrap())
            .unwrap();
    let input = formats::json_decode(&json, DType::F32, 1 << 20).unwrap();
    case_of(name, bytes, vec![input])
}

/// [`case`] for the model `bytes`, published as `name`, and its job
/// `inputs`.
fn case_of(name: &str, bytes: Vec<u8>, inputs: Vec<glassbox_runtime::Tensor>) -> Case {
    let model = Arc::new(Model::load(&bytes, Limits::default()).unwrap());
    let session = Arc::new(Session::new(Arc::clone(&model), Options::default()).unwrap());
    let params = Params {
        max_selection_share_bps: 10_000,
        ..Params::default()
    };
    let g = GenesisState {
        chain_name: "disputes".into(),
        genesis_time_ms: 1_700_000_000_000,
        params,
        accounts: [1u8, 5, 6, 7]
            .into_iter()
            .map(|n| GenesisAccount {
                address: key(n).public(),
                balance: 1 << 50,
            })
            .collect(),
        executors: [5u8, 6, 7]
            .into_iter()
            .map(|n| GenesisExecutor {
                owner: key(n).public(),
                stake: 10_000_000_000,
                capacity: 8,
                endpoint: format!("http://executor-{n}.invalid"),
            })
            .collect(),
    };
    let state = State::genesis(&g).unwrap();
    let m = Manifest {
        model_id: ModelId::of(&bytes),
        size_bytes: bytes.len() as u64,
        name: format!("test/{name}"),
        version: semver::Version::new(1, 0, 0),
        description: String::new(),
        license: None,
        publisher: key(1).public(),
        created_at_unix_s: 0,
        parents: Vec::new(),
        sources: Vec::new(),
        inputs: model.inputs().map(tensor_spec).collect(),
        outputs: model.outputs().map(tensor_spec).collect(),
        opset: u32::try_from(model.opset()).unwrap(),
        cost: CostSpec {
            flops: 1_000_000,
            bytes: 0,
        },
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    let publish = sign(
        &state,
        &key(1),
        TxBody::PublishModel {
            manifest: Box::new(SignedManifest::sign(m, &key(1)).unwrap()),
        },
    );
    let (state, _) = state.apply_block(ctx(&state, 0), &[publish]).unwrap();
    Case {
        session,
        inputs: inputs.iter().map(formats::canonical_encode).collect(),
        state,
    }
}

fn ctx(s: &State, randomness: u8) -> BlockContext {
    BlockContext {
        height: s.height() + 1,
        timestamp_ms: s.timestamp_ms() + 100,
        randomness: [randomness; 32],
    }
}

fn sign(s: &State, who: &SecretKey, body: TxBody) -> SignedTx {
    let nonce = s.account(&who.public()).map_or(0, |a| a.nonce);
    SignedTx::sign(&s.chain_id(), who, nonce, FEE, body).unwrap()
}

fn secret_of(pk: &glassbox_types::PublicKey) -> SecretKey {
    [5u8, 6, 7]
        .into_iter()
        .map(key)
        .find(|k| &k.public() == pk)
        .unwrap()
}

/// Applies a block; dispute steps that lost a race in the same block
/// (the other side decided first) fail harmlessly, anything else fails
/// the test.
fn apply(s: &State, txs: &[SignedTx], data: &MemoryData, randomness: u8) -> State {
    let (next, outcomes) = s
        .apply_block_with(ctx(s, randomness), txs, &RuntimeReferee { data })
        .unwrap();
    for o in outcomes {
        if let Err(e) = o.result {
            let m = e.to_string();
            assert!(
                m.contains("only a disputed job") || m.contains("not in the current game"),
                "{m}"
            );
        }
    }
    next
}

/// Plays the dispute of `id` to its end, each party moving as an executor
/// node does (uploading its opened tensors first).
fn play(mut s: State, id: JobId, parties: &[(SecretKey, &Party)], data: &mut MemoryData) -> State {
    for _ in 0..100 {
        if s.job(&id).unwrap().status != JobStatus::Disputed {
            return s;
        }
        let ext = s.job_ext(&id).unwrap();
        let mut txs = Vec::new();
        for (k, p) in parties {
            if let Some(step) = p.next_step(&ext, &k.public()) {
                for t in p.opened_tensors(&step) {
                    data.insert_tensor(t);
                }
                txs.push(sign(&s, k, TxBody::DisputeStep { job_id: id, step }));
            }
        }
        s = apply(&s, &txs, data, 3);
    }
    panic!("the dispute did not end in 100 blocks");
}

/// A k = 2 job whose second assigned executor lies at (`node`,
/// `element`); returns the final state, the job id and the two keys
/// (honest, liar).
fn lying_job(c: &Case, node: usize, element: usize) -> (State, JobId, SecretKey, SecretKey) {
    let honest = Party::run(Arc::clone(&c.session), &c.inputs).unwrap();
    let liar = Party::run_lying(Arc::clone(&c.session), &c.inputs, node, element).unwrap();
    disputed_job(c, &honest, &liar, (node * 31 + element) as u8)
}

/// A k = 2 job on `c`'s inputs whose first assigned executor claims
/// `honest` and the second `liar` (executors drawn with `randomness`),
/// played to the end; returns the final state, the job id and the two
/// keys.
fn disputed_job(
    c: &Case,
    honest: &Party,
    liar: &Party,
    randomness: u8,
) -> (State, JobId, SecretKey, SecretKey) {
    assert_ne!(honest.trace_root(), liar.trace_root());
    let mut data = MemoryData::default();
    data.insert_session(Arc::clone(&c.session));
    let s = &c.state;
    let submit = sign(
        s,
        &key(1),
        TxBody::SubmitJob {
            model_id: s.models().next().unwrap().model_id,
            inputs: c.inputs.clone(),
            replicas: 2,
            max_fee: u64::MAX >> 8,
        },
    );
    let id = JobId::of_tx(submit.hash());
    let s = apply(s, &[submit], &data, 1);
    let mut s = apply(&s, &[], &data, randomness);
    let job = s.job(&id).unwrap();
    let keys: Vec<SecretKey> = job.slots.iter().map(|x| secret_of(&x.executor)).collect();
    let parties = [(keys[0].clone(), honest), (keys[1].clone(), liar)];
    let txs: Vec<SignedTx> = parties
        .iter()
        .enumerate()
        .map(|(i, (k, p))| {
            let c = commitment(
                &id,
                &k.public(),
                &p.output_hash(),
                &p.trace_root(),
                &glassbox_primitives::Salt::from_bytes([i as u8; 32]),
            );
            sign(
                &s,
                k,
                TxBody::CommitResult {
                    job_id: id,
                    commitment: c,
                },
            )
        })
        .collect();
    s = apply(&s, &txs, &data, 2);
    let txs: Vec<SignedTx> = parties
        .iter()
        .enumerate()
        .map(|(i, (k, p))| {
            sign(
                &s,
                k,
                TxBody::RevealResult {
                    job_id: id,
                    output_hash: p.output_hash(),
                    trace_root: p.trace_root(),
                    salt: glassbox_primitives::Salt::from_bytes([i as u8; 32]),
                    outputs: p.outputs(),
                },
            )
        })
        .collect();
    s = apply(&s, &txs, &data, 2);
    assert_eq!(s.job(&id).unwrap().status, JobStatus::Disputed);
    let s = play(s, id, &parties, &mut data);
    (s, id, keys[0].clone(), keys[1].clone())
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - (n - 1).leading_zeros()
}

#[test]
fn a_lie_at_any_operator_is_caught_exactly_there() {
    for name in ["mnist-cnn", "mlp"] {
        let c = case(name);
        let leaves = c.session.model().nodes().len();
        let supply = c.state.total_supply().unwrap();
        let honest = Party::run(Arc::clone(&c.session), &c.inputs).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2 * leaves {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let node = if round < leaves {
                round
            } else {
                (seed % leaves as u64) as usize
            };
            let element = (seed >> 20) as usize;
            let (s, id, good, bad) = lying_job(&c, node, element);
            let job = s.job(&id).unwrap();
            assert_eq!(job.status, JobStatus::Final, "{name} node {node}");
            assert_eq!(job.outputs, honest.outputs(), "{name} node {node}");
            let d = s.job_ext(&id).unwrap().dispute.unwrap();
            let v = &d.verdicts[0];
            // Caught at that operator, by one chunk of its output.
            assert!(
                matches!(v.target, Some(Target::Chunk { node: n, .. }) if n == node as u64),
                "{name}: {v:?}"
            );
            assert_eq!(v.reason, VerdictReason::Operator, "{name}: {v:?}");
            // The opening, the leaf splits, the leaf, at most 17 chunk
            // splits (these models' outputs are under 128 MiB), the referee.
            assert!(
                v.rounds <= ceil_log2(leaves.max(2)) + 1 + 17 + 2,
                "{} rounds",
                v.rounds
            );
            assert_eq!(s.executor(&bad.public()).unwrap().stake, 0);
            let e = s.executor(&good.public()).unwrap();
            assert_eq!((e.stake, e.disputes, e.served), (10_000_000_000, 0, 1));
            assert_eq!(s.total_supply(), Some(supply));
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_outcome() {
    let c = case("mnist-cnn");
    let (a, ..) = lying_job(&c, 3, 77);
    let (b, ..) = lying_job(&c, 3, 77);
    assert_eq!(a.root(), b.root());
    let (other, ..) = lying_job(&c, 4, 77);
    assert_ne!(a.root(), other.root());
}

#[test]
fn a_challenged_optimistic_liar_is_caught() {
    let c = case("mnist-cnn");
    let mut data = MemoryData::default();
    data.insert_session(Arc::clone(&c.session));
    let s = &c.state;
    let submit = sign(
        s,
        &key(1),
        TxBody::SubmitJob {
            model_id: s.models().next().unwrap().model_id,
            inputs: c.inputs.clone(),
            replicas: 1,
            max_fee: u64::MAX >> 8,
        },
    );
    let id = JobId::of_tx(submit.hash());
    let s = apply(s, &[submit], &data, 1);
    let mut s = apply(&s, &[], &data, 9);
    let exec = secret_of(&s.job(&id).unwrap().slots[0].executor);
    let liar = Party::run_lying(Arc::clone(&c.session), &c.inputs, 2, 5).unwrap();
    let c1 = commitment(
        &id,
        &exec.public(),
        &liar.output_hash(),
        &liar.trace_root(),
        &glassbox_primitives::Salt::from_bytes([0; 32]),
    );
    s = apply(
        &s,
        &[sign(
            &s,
            &exec,
            TxBody::CommitResult {
                job_id: id,
                commitment: c1,
            },
        )],
        &data,
        2,
    );
    s = apply(
        &s,
        &[sign(
            &s,
            &exec,
            TxBody::RevealResult {
                job_id: id,
                output_hash: liar.output_hash(),
                trace_root: liar.trace_root(),
                salt: glassbox_primitives::Salt::from_bytes([0; 32]),
                outputs: liar.outputs(),
            },
        )],
        &data,
        2,
    );
    assert_eq!(s.job(&id).unwrap().status, JobStatus::Pending);
    // An honest executor (an auditor, or anyone staked) challenges.
    let judge = [5u8, 6, 7]
        .into_iter()
        .map(key)
        .find(|k| k.public() != exec.public())
        .unwrap();
    let honest = Party::run(Arc::clone(&c.session), &c.inputs).unwrap();
    s = apply(
        &s,
        &[sign(
            &s,
            &judge,
            TxBody::Challenge {
                job_id: id,
                output_hash: honest.output_hash(),
                trace_root: honest.trace_root(),
                outputs: honest.outputs(),
            },
        )],
        &data,
        4,
    );
    let s = play(
        s,
        id,
        &[(exec.clone(), &liar), (judge.clone(), &honest)],
        &mut data,
    );
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, honest.outputs());
    let d = s.job_ext(&id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].target.and_then(|t| t.node()), Some(2));
    assert_eq!(s.executor(&exec.public()).unwrap().stake, 0);
    assert_eq!(
        s.executor(&judge.public()).unwrap().served,
        0,
        "a challenger is paid by the reward, not the price"
    );
    // Finding "a receipt of a single-replica job won by its challenger can
    // never verify" (issue #25): its one reveal is the liar's; the result a
    // receipt states is the winning claim's.
    let ext = s.job_ext(&id).unwrap();
    assert_eq!(
        result_of(&job, Some(&ext)),
        Some((honest.output_hash(), honest.trace_root()))
    );
    assert_eq!(
        job.agreed().map(|r| r.output_hash),
        Some(liar.output_hash()),
        "the lone reveal is the liar's"
    );
}

/// Finding "referee work has no bound" (issue #25, P3), at the node's
/// referee: a chunk is priced (operand bytes, then the cost model of the
/// region it computes) before anything is decoded or computed, and a
/// price over the allowance is `OverBudget`, the same on every call.
#[test]
fn the_runtime_referee_prices_a_chunk_before_computing_it() {
    use glassbox_ledger::dispute::RefereeError;
    use glassbox_ledger::{Referee, dispute::ChunkBytes};
    let c = case("mnist-cnn");
    let mut data = MemoryData::default();
    data.insert_session(Arc::clone(&c.session));
    let referee = RuntimeReferee { data: &data };
    let model = c.session.model().id();
    let none = |_: u64, _: u32| None;
    // Node 0 reads only the job's input and constants.
    let ask = |range: (u64, u64), max_work: u64| {
        referee.output_bytes(&model, 0, 0, range, &c.inputs, &none, max_work)
    };
    let ChunkBytes { len, work, .. } = ask((0, 1024), u64::MAX).unwrap();
    let whole = ask((0, len), u64::MAX).unwrap().work;
    let input_bytes = c.inputs[0].len() as u64;
    assert!(work > input_bytes, "the chunk's computation is priced");
    assert!(work < whole, "one chunk is priced below the whole output");
    assert_eq!(
        ask((0, 1024), u64::MAX).unwrap().work,
        work,
        "deterministic"
    );
    assert_eq!(
        ask((0, 1024), work - 1),
        Err(RefereeError::OverBudget {
            work,
            max_work: work - 1
        })
    );
    // Over the allowance on the operands' bytes alone: nothing decoded.
    assert_eq!(
        ask((0, 1024), input_bytes - 1),
        Err(RefereeError::OverBudget {
            work: input_bytes,
            max_work: input_bytes - 1
        })
    );
}

/// `x` (16 floats) through Relu, then Gather at the int64 index `i`, then
/// Relu (output `y`), and beside them Neg of `x` (output `c`): an index
/// out of range makes operator 1 fail on the job's input, while operator
/// 2 reads only the input.
fn gather_model() -> Vec<u8> {
    use glassbox_runtime::proto::onnx::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, tensor_shape_proto, type_proto,
    };
    use prost::Message;
    let vi = |name: &str, dtype: DType, dims: &[i64]| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype.onnx_code()),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&v| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str| NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Relu", &["x"], "a"),
                node("Gather", &["a", "i"], "b"),
                node("Neg", &["x"], "c"),
                node("Relu", &["b"], "y"),
            ],
            input: vec![vi("x", DType::F32, &[16]), vi("i", DType::I64, &[1])],
            output: vec![vi("y", DType::F32, &[1]), vi("c", DType::F32, &[16])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The gather model's case on index `index`.
fn gather_case(index: i64) -> Case {
    let x: Vec<f32> = (0..16).map(|k| k as f32 - 4.0).collect();
    case_of(
        "gather",
        gather_model(),
        vec![
            glassbox_runtime::Tensor::from_vec(vec![16], x).unwrap(),
            glassbox_runtime::Tensor::from_vec(vec![1], vec![index]).unwrap(),
        ],
    )
}

/// Finding "honest executors filtered out" (issue #25, P2) on the real
/// runtime: an input on which an operator fails (a Gather index out of
/// range) is a result, the failure of that operator; the referee runs the
/// operator whole to settle it against a claim of outputs, either way.
#[test]
fn a_run_that_fails_at_an_operator_is_a_result_the_referee_settles() {
    let failing = gather_case(99);
    let honest = Party::run(Arc::clone(&failing.session), &failing.inputs).unwrap();
    assert_eq!(honest.failed(), Some(1), "the Gather fails");
    assert!(honest.outputs().is_empty());
    // A failure the referee could not run within a block's budget is
    // never claimed (it would lose): the executor declines instead.
    let over = Party::run_within(Arc::clone(&failing.session), &failing.inputs, 8).unwrap_err();
    assert!(
        matches!(over, PartyError::FailureOverBudget { node: 1, .. }),
        "{over}"
    );
    // A liar that ran an index in range and claims its outputs for the
    // failing input.
    let working = gather_case(2);
    let ran = Party::run(Arc::clone(&working.session), &working.inputs).unwrap();
    assert_eq!(ran.failed(), None);
    let liar = Party::run(Arc::clone(&working.session), &working.inputs)
        .unwrap()
        .claimed_for(&failing.inputs);
    let (s, id, good, bad) = disputed_job(&failing, &honest, &liar, 5);
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert!(job.outputs.is_empty(), "the failure stands");
    let v = &s.job_ext(&id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(v.target, Some(Target::Fails { node: 1 }), "{v:?}");
    assert_eq!(v.reason, VerdictReason::Fails);
    assert_eq!(s.executor(&bad.public()).unwrap().stake, 0);
    let e = s.executor(&good.public()).unwrap();
    assert_eq!((e.stake, e.served), (10_000_000_000, 1));

    // And the other way: a liar that claims the failure of another input
    // for an input on which the Gather runs.
    let liar = Party::run(Arc::clone(&failing.session), &failing.inputs)
        .unwrap()
        .claimed_for(&working.inputs);
    let (s, id, good, bad) = disputed_job(&working, &ran, &liar, 6);
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, ran.outputs());
    let v = &s.job_ext(&id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(v.target, Some(Target::Fails { node: 1 }), "{v:?}");
    assert_eq!(s.executor(&bad.public()).unwrap().stake, 0);
    assert_eq!(s.executor(&good.public()).unwrap().stake, 10_000_000_000);
}

/// Review finding on failure claims (issue #25): a liar copying the honest
/// failure's trace with a later leaf revived, at an operator that reads
/// only values from before the failure (here Neg of the input), reached
/// the referee about that operator before the failing side had opened a
/// failed leaf; the operator ran, and the honest failure lost its stake
/// to made-up outputs. The failing side now shows its first failed leaf
/// before it states a later one, so the game decides against the outputs;
/// and since a third review found that a colluding member of the failure
/// claim could state that leaf for it first (the liar moving next, in the
/// same block), the referee also waits for the leaf before the operator,
/// which the honest member opens.
#[test]
fn a_revived_leaf_reading_only_early_values_loses_to_the_failure() {
    for colluder in [false, true] {
        revived_leaf_game(colluder);
    }
}

fn revived_leaf_game(colluder: bool) {
    use glassbox_ledger::dispute::{LeafOutput, Stage, Step};
    use glassbox_primitives::trace;
    use glassbox_runtime::trace::merkle_root;
    let c = gather_case(99);
    let budget = c.state.params().max_referee_work_per_block;
    let honest = Party::run_within(Arc::clone(&c.session), &c.inputs, budget).unwrap();
    assert_eq!(honest.failed(), Some(1));
    // The liar: the honest leaves with leaf 2 revived (the true Neg), and
    // made-up outputs.
    let x: Vec<f32> = (0..16).map(|k| k as f32 - 4.0).collect();
    let neg = glassbox_runtime::Tensor::from_vec(vec![16], x.iter().map(|v| -v).collect()).unwrap();
    let neg_out = LeafOutput {
        hash: neg.hash(),
        len: formats::canonical_len(&neg),
    };
    let mut leaves = honest.leaves().to_vec();
    leaves[2] = trace::leaf(2, std::iter::once(neg.hash()));
    let y = glassbox_runtime::Tensor::from_vec(vec![1], vec![7.0f32]).unwrap();
    let outputs = vec![
        formats::canonical_encode(&y),
        formats::canonical_encode(&neg),
    ];
    let output_hash = glassbox_ledger::outputs_hash(&[y.hash(), neg.hash()]);

    let mut data = MemoryData::default();
    data.insert_session(Arc::clone(&c.session));
    let s = &c.state;
    let submit = sign(
        s,
        &key(1),
        TxBody::SubmitJob {
            model_id: s.models().next().unwrap().model_id,
            inputs: c.inputs.clone(),
            replicas: if colluder { 3 } else { 2 },
            max_fee: u64::MAX >> 8,
        },
    );
    let id = JobId::of_tx(submit.hash());
    let s = apply(s, &[submit], &data, 1);
    let mut s = apply(&s, &[], &data, 5);
    let job = s.job(&id).unwrap();
    let root = trace::root(
        &job.model_id,
        &job.input_hashes,
        leaves.len() as u64,
        &merkle_root(&leaves),
    );
    let keys: Vec<SecretKey> = job.slots.iter().map(|x| secret_of(&x.executor)).collect();
    let (hk, lk) = (keys[0].clone(), keys[1].clone());
    let mut claims = vec![
        (honest.output_hash(), honest.trace_root(), honest.outputs()),
        (output_hash, root, outputs),
    ];
    if colluder {
        // The third slot reveals the failure too, and plays for the liar.
        claims.push(claims[0].clone());
    }
    let salt = |i: usize| glassbox_primitives::Salt::from_bytes([i as u8; 32]);
    let txs: Vec<SignedTx> = keys
        .iter()
        .zip(&claims)
        .enumerate()
        .map(|(i, (k, cl))| {
            let commitment = commitment(&id, &k.public(), &cl.0, &cl.1, &salt(i));
            sign(
                &s,
                k,
                TxBody::CommitResult {
                    job_id: id,
                    commitment,
                },
            )
        })
        .collect();
    s = apply(&s, &txs, &data, 2);
    let txs: Vec<SignedTx> = keys
        .iter()
        .zip(&claims)
        .enumerate()
        .map(|(i, (k, cl))| {
            sign(
                &s,
                k,
                TxBody::RevealResult {
                    job_id: id,
                    output_hash: cl.0,
                    trace_root: cl.1,
                    salt: salt(i),
                    outputs: cl.2.clone(),
                },
            )
        })
        .collect();
    s = apply(&s, &txs, &data, 2);
    assert_eq!(s.job(&id).unwrap().status, JobStatus::Disputed);
    for _ in 0..100 {
        if s.job(&id).unwrap().status != JobStatus::Disputed {
            break;
        }
        let ext = s.job_ext(&id).unwrap();
        let mut txs = Vec::new();
        let d = ext.dispute.as_ref().unwrap();
        let g = d.game.as_ref().unwrap();
        let side_of = |k: &SecretKey| {
            let mine = d.claim_of(&k.public()).unwrap();
            if usize::from(g.a.claim) == mine {
                &g.a
            } else {
                &g.b
            }
        };
        // The colluder states the failure's leaf first, with no opening.
        if colluder
            && let Stage::Leaf { node } = g.stage
            && !side_of(&keys[2]).moved
        {
            let step = Step::Leaf {
                outputs: Vec::new(),
            };
            assert_eq!(node, 2);
            txs.push(sign(&s, &keys[2], TxBody::DisputeStep { job_id: id, step }));
        }
        let honest_step = honest.next_step(&ext, &hk.public()).map(|step| {
            for t in honest.opened_tensors(&step) {
                data.insert_tensor(t);
            }
            sign(&s, &hk, TxBody::DisputeStep { job_id: id, step })
        });
        // Without a colluder the honest side moves first; with one, last.
        if !colluder {
            txs.extend(honest_step.clone());
        }
        let side = side_of(&lk);
        let step = match g.stage {
            Stage::Open if !side.moved => Some(Step::Open {
                leaves: leaves.len() as u64,
                leaves_root: merkle_root(&leaves),
            }),
            Stage::Bisect { lo, hi } if !side.moved => {
                let k = glassbox_ledger::dispute::split(hi - lo);
                let (lo, mid, hi) = (lo as usize, (lo + k) as usize, hi as usize);
                Some(Step::Split {
                    left: merkle_root(&leaves[lo..mid]),
                    right: merkle_root(&leaves[mid..hi]),
                })
            }
            Stage::Leaf { node } if !side.moved => {
                assert_eq!(node, 2);
                Some(Step::Leaf {
                    outputs: vec![neg_out],
                })
            }
            _ => None,
        };
        if let Some(step) = step {
            txs.push(sign(&s, &lk, TxBody::DisputeStep { job_id: id, step }));
        }
        if colluder {
            txs.extend(honest_step);
        }
        s = apply(&s, &txs, &data, 3);
    }
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert!(job.outputs.is_empty(), "the failure stands");
    let v = &s.job_ext(&id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(v.target, Some(Target::Fails { node: 2 }), "{v:?}");
    assert_eq!(v.reason, VerdictReason::FailedLeaf);
    assert_eq!(s.executor(&hk.public()).unwrap().stake, 10_000_000_000);
    assert_eq!(s.executor(&lk.public()).unwrap().stake, 0);
}

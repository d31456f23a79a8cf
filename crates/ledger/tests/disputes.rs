//! The dispute game, optimistic results, challenges, audits and capped
//! selection in the ledger (docs/disputes.md), on a synthetic 13-operator
//! model whose referee knows each operator's true output. The same game
//! over the real runtime is in crates/node/tests/disputes.rs.

mod common;

use common::*;
use glassbox_ledger::dispute::{
    ChunkBytes, Game, LeafOpening, LeafOutput, OutputSource, Stage, Step, Target, WholeRun, split,
};
use glassbox_ledger::switches::{self, Fix};
use glassbox_ledger::{
    BlockContext, BlockError, GenesisAccount, GenesisExecutor, GenesisState, Job, JobExt, JobId,
    JobStatus, NoReferee, Params, Referee, RefereeError, Shares, SignedTx, State, TxBody,
    VerdictReason, commitment, outputs_hash,
};
use glassbox_primitives::trace::{self, audit_path, merkle_root};
use glassbox_primitives::{MerkleNode, OutputHash, Salt, TensorHash, TraceLeaf, TraceRoot, chunks};
use glassbox_types::{DimSpec, ModelId, PublicKey, SignedManifest, TensorSpec};

const MODEL: &[u8] = b"a synthetic 13-operator model";
const LEAVES: u64 = 13;
const EXECUTORS: [u8; 5] = [5, 6, 7, 8, 10];

fn f32_tensor(values: &[f32]) -> Vec<u8> {
    let mut b = b"GBT1".to_vec();
    b.push(1);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn model_id() -> ModelId {
    ModelId::of(MODEL)
}

fn honest_output() -> Vec<u8> {
    f32_tensor(&[1.0, 1.0])
}

fn wrong_output() -> Vec<u8> {
    f32_tensor(&[2.0, 2.0])
}

/// Elements of an inner operator's output: 700 float32s, a 2,817-byte
/// encoding of three chunks, so games bisect chunks too.
const INNER_ELEMENTS: usize = 700;

/// The true output of operator `i` (operator `LEAVES - 1`, the tests'
/// model's last, is its graph output; models of other sizes share it).
fn true_bytes(i: u64) -> Vec<u8> {
    if i == LEAVES - 1 {
        return honest_output();
    }
    let v: Vec<f32> = (0..INNER_ELEMENTS)
        .map(|k| (i * 1_000 + k as u64) as f32)
        .collect();
    f32_tensor(&v)
}

/// A lie about operator `i`'s output: one element off (in a chunk that
/// depends on `i`), the graph output entirely.
fn lie_bytes(i: u64) -> Vec<u8> {
    if i == LEAVES - 1 {
        return wrong_output();
    }
    let v: Vec<f32> = (0..INNER_ELEMENTS)
        .map(|k| (i * 1_000 + k as u64) as f32)
        .enumerate()
        .map(|(k, x)| {
            if k == (i as usize * 97) % INNER_ELEMENTS {
                x + 0.5
            } else {
                x
            }
        })
        .collect();
    f32_tensor(&v)
}

/// The job input on which operator [`FAILS_AT`] fails.
fn failing_input() -> Vec<u8> {
    f32_tensor(&[-1.0, -1.0])
}

/// The operator that fails on [`failing_input`].
const FAILS_AT: u64 = 7;

/// A party's run: its operators' outputs, wrong from `lie_at` on, or a
/// claim that operator `failed` fails (no outputs from it on); the job
/// input it claims them for.
#[derive(Clone)]
struct Run {
    outs: Vec<TensorHash>,
    bytes: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    failed: Option<u64>,
    /// A lie about a failed run: this one leaf after the failure shows
    /// outputs.
    revived: Option<u64>,
    input: Vec<u8>,
}

impl Run {
    fn new(lie_at: Option<u64>, leaves: u64) -> Run {
        let bytes: Vec<Vec<u8>> = (0..leaves)
            .map(|i| match lie_at {
                Some(j) if i >= j => lie_bytes(i),
                _ => true_bytes(i),
            })
            .collect();
        let outs = bytes.iter().map(|b| blake3::hash(b).into()).collect();
        let outputs = vec![if lie_at.is_some() {
            wrong_output()
        } else {
            honest_output()
        }];
        Run {
            outs,
            bytes,
            outputs,
            failed: None,
            revived: None,
            input: input(),
        }
    }

    /// A claim that operator `at` fails (docs/disputes.md, "Runs that
    /// fail"): true outputs before it, failed leaves from it on, no graph
    /// outputs; honest on [`failing_input`] for `at` = [`FAILS_AT`].
    fn fails_at(at: u64, leaves: u64) -> Run {
        Run {
            outputs: Vec::new(),
            failed: Some(at),
            input: failing_input(),
            ..Run::new(None, leaves)
        }
    }

    /// The same claims, for a job on `input`.
    fn on(self, input: Vec<u8>) -> Run {
        Run { input, ..self }
    }

    /// The result it claims: its output hash and trace root.
    fn claim(&self) -> (OutputHash, TraceRoot) {
        (self.output_hash(), self.trace_root(&self.input))
    }

    fn has_failed(&self, node: u64) -> bool {
        self.failed.is_some_and(|f| node >= f) && self.revived != Some(node)
    }

    /// The hash of chunks `[lo, hi)` of operator `node`'s output.
    fn chunk_hash(&self, node: u64, lo: u64, hi: u64, whole: bool) -> MerkleNode {
        let b = &self.bytes[node as usize];
        let end = (hi * chunks::CHUNK_BYTES).min(b.len() as u64) as usize;
        chunks::subtree_hash(&b[(lo * chunks::CHUNK_BYTES) as usize..end], lo, whole)
            .expect("a subtree of the output")
    }

    fn leaves(&self) -> Vec<TraceLeaf> {
        (0..self.outs.len() as u64)
            .map(|i| trace::leaf(i, self.outputs_of(i).into_iter()))
            .collect()
    }

    /// The output hashes of operator `node` (none once it failed).
    fn outputs_of(&self, node: u64) -> Vec<TensorHash> {
        if self.has_failed(node) {
            Vec::new()
        } else {
            vec![self.outs[node as usize]]
        }
    }

    fn trace_root(&self, input: &[u8]) -> TraceRoot {
        let l = self.leaves();
        trace::root(
            &model_id(),
            &[blake3::hash(input).into()],
            l.len() as u64,
            &merkle_root(&l),
        )
    }

    fn output_hash(&self) -> OutputHash {
        let hs: Vec<TensorHash> = self
            .outputs
            .iter()
            .map(|t| blake3::hash(t).into())
            .collect();
        outputs_hash(&hs)
    }

    fn opening(&self, node: u64) -> LeafOpening {
        LeafOpening {
            node,
            outputs: self.outputs_of(node),
            path: audit_path(&self.leaves(), node as usize).expect("a leaf of the trace"),
        }
    }

    /// Opens `node` unless the game already holds it.
    fn open_missing(&self, game: &Game, node: u64) -> Option<Step> {
        (!game.opened.iter().any(|o| o.node == node)).then(|| Step::Openings {
            items: vec![self.opening(node)],
        })
    }

    /// The move of the side defending this run, if it is its turn.
    fn step(&self, ext: &JobExt, claim: usize) -> Option<Step> {
        let game = ext.dispute.as_ref()?.game.as_ref()?;
        let side = if usize::from(game.a.claim) == claim {
            &game.a
        } else if usize::from(game.b.claim) == claim {
            &game.b
        } else {
            return None;
        };
        let leaves = self.leaves();
        match game.stage {
            Stage::Open if !side.moved => Some(Step::Open {
                leaves: leaves.len() as u64,
                leaves_root: merkle_root(&leaves),
            }),
            Stage::Bisect { lo, hi } if !side.moved => {
                let k = split(hi - lo);
                let (lo, mid, hi) = (lo as usize, (lo + k) as usize, hi as usize);
                Some(Step::Split {
                    left: merkle_root(&leaves[lo..mid]),
                    right: merkle_root(&leaves[mid..hi]),
                })
            }
            // A failed run shows its first failed leaf before stating a
            // later one, as the node's `Party` does.
            Stage::Leaf { node }
                if !side.moved
                    && self
                        .failed
                        .is_some_and(|f| f < node && !game.opened.iter().any(|o| o.node == f)) =>
            {
                self.failed.and_then(|f| self.open_missing(game, f))
            }
            Stage::Leaf { node } if !side.moved => Some(Step::Leaf {
                outputs: self
                    .outputs_of(node)
                    .into_iter()
                    .map(|hash| LeafOutput {
                        hash,
                        len: self.bytes[node as usize].len() as u64,
                    })
                    .collect(),
            }),
            Stage::Chunks {
                node,
                lo,
                hi,
                chunks,
                ..
            } if !side.moved => {
                let k = split(hi - lo);
                let _ = chunks;
                Some(Step::Split {
                    left: self.chunk_hash(node, lo, lo + k, false),
                    right: self.chunk_hash(node, lo + k, hi, false),
                })
            }
            // From the leaf where the traces part on, an honest side opens
            // the operand the referee still lacks, whatever it (or another
            // member of its claim) posted before, as the node's `Party`
            // does.
            Stage::Referee {
                target: Target::Output(_),
            } => self.open_missing(game, self.outs.len() as u64 - 1),
            // A failing side shows its failed leaf.
            Stage::Referee {
                target: Target::Failure,
            } => self.failed.and_then(|f| self.open_missing(game, f)),
            // A run that failed below the leaf where the traces part
            // shows its failed leaf.
            Stage::Leaf { node } | Stage::Chunks { node, .. }
                if self.failed.is_some_and(|f| f < node) =>
            {
                self.failed.and_then(|f| self.open_missing(game, f))
            }
            Stage::Referee { target }
                if target
                    .node()
                    .is_some_and(|i| self.failed.is_some_and(|f| f < i)) =>
            {
                self.failed.and_then(|f| self.open_missing(game, f))
            }
            Stage::Leaf { node } | Stage::Chunks { node, .. } if node > 0 => {
                self.open_missing(game, node - 1)
            }
            Stage::Referee { target } => match target.node() {
                Some(i) if i > 0 => self.open_missing(game, i - 1),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Knows a synthetic model of `.0` operators (the tests' model has
/// [`LEAVES`]): operator `i` needs operator `i − 1`'s output (operator 0
/// only the job's input) and outputs [`truth`]`(i)`, except that on
/// [`failing_input`] operator [`FAILS_AT`] fails (and nothing after it
/// has operands); a chunk of it costs `(i + 1) × 2^16` units of referee
/// work, or, for operator `.1`, more than any block allows.
struct SyntheticReferee(u64, Option<u64>);

impl SyntheticReferee {
    /// Checks operator `node`'s operand and prices it: its work, or why
    /// it does not run (over budget, or failing on this input).
    fn check_operands(
        &self,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<u64, RefereeError> {
        if node > 0 {
            let operand = opened(node - 1, 0).ok_or(RefereeError::Missing {
                node: node - 1,
                slot: 0,
            })?;
            let want: TensorHash = blake3::hash(&true_bytes(node - 1)).into();
            assert_eq!(operand, want, "openings before the split agree");
        }
        let work = self.chunk_work(node);
        if work > max_work {
            return Err(RefereeError::OverBudget { work, max_work });
        }
        if inputs == [failing_input()] && node >= FAILS_AT {
            return Err(RefereeError::Failed(format!("operator {node} fails")));
        }
        Ok(work)
    }

    /// The referee work of a chunk of operator `node`.
    fn chunk_work(&self, node: u64) -> u64 {
        if self.1 == Some(node) {
            u64::MAX
        } else {
            (node + 1) << 16
        }
    }
}

impl Referee for SyntheticReferee {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        assert_eq!(model, &model_id());
        Ok(self.0)
    }

    fn output_source(&self, _: &ModelId, index: u32) -> Result<OutputSource, RefereeError> {
        match index {
            0 => Ok(OutputSource::Node {
                node: self.0 - 1,
                slot: 0,
            }),
            _ => Err(RefereeError::Failed(format!("no graph output {index}"))),
        }
    }

    fn operands(&self, _: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError> {
        match node {
            n if n >= self.0 => Err(RefereeError::Failed(format!("no operator {node}"))),
            0 => Ok(Vec::new()),
            n => Ok(vec![n - 1]),
        }
    }

    fn output_count(&self, _: &ModelId, node: u64) -> Result<u32, RefereeError> {
        if node >= self.0 {
            return Err(RefereeError::Failed(format!("no operator {node}")));
        }
        Ok(1)
    }

    fn output_bytes(
        &self,
        _: &ModelId,
        node: u64,
        output: u32,
        (start, end): (u64, u64),
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        assert_eq!(inputs.len(), 1);
        if node >= self.0 || output != 0 {
            return Err(RefereeError::Failed(format!(
                "no output {output} of {node}"
            )));
        }
        let work = self.check_operands(node, inputs, opened, max_work)?;
        let b = true_bytes(node);
        let len = b.len() as u64;
        let (s, e) = (
            start.min(len) as usize,
            end.min(len).max(start.min(len)) as usize,
        );
        Ok(ChunkBytes {
            len,
            bytes: b[s..e].to_vec(),
            work,
        })
    }

    fn run_whole(
        &self,
        _: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<WholeRun, RefereeError> {
        if node >= self.0 {
            return Err(RefereeError::Failed(format!("no operator {node}")));
        }
        match self.check_operands(node, inputs, opened, max_work) {
            Ok(work) => Ok(WholeRun { work, fails: false }),
            Err(RefereeError::Failed(_)) => Ok(WholeRun {
                work: self.chunk_work(node),
                fails: true,
            }),
            Err(e) => Err(e),
        }
    }
}

fn setup() -> State {
    setup_with(|_| {})
}

/// [`setup`] with its parameters changed by `f`.
fn setup_with(f: impl FnOnce(&mut Params)) -> State {
    let mut params = test_params();
    params.dispute_round_blocks = 4;
    params.challenge_window_blocks = 6;
    params.challenge_bond = 2_000_000;
    params.max_selection_share_bps = 10_000;
    f(&mut params);
    let g = GenesisState {
        params,
        executors: EXECUTORS
            .iter()
            .map(|&n| GenesisExecutor {
                owner: addr(n),
                stake: 10_000_000,
                capacity: 4,
                endpoint: format!("http://executor-{n}.example.org"),
            })
            .collect(),
        accounts: [1, 2, 5, 6, 7, 8, 10]
            .into_iter()
            .map(|n| GenesisAccount {
                address: addr(n),
                balance: 1_000_000_000,
            })
            .collect(),
        ..genesis()
    };
    let s = State::genesis(&g).unwrap();
    let spec = |name: &str| TensorSpec {
        name: name.into(),
        dtype: Some("float32".into()),
        shape: Some(vec![DimSpec::Fixed(2)]),
    };
    let mut m = manifest(MODEL, "synthetic", "1.0.0", &key(1));
    m.inputs = vec![spec("x")];
    m.outputs = vec![spec("y")];
    m.cost.flops = 1_000_000;
    let body = TxBody::PublishModel {
        manifest: Box::new(SignedManifest::sign(m, &key(1)).unwrap()),
    };
    let (s, o) = apply_one(&s, tx(&s, 1, body));
    assert!(o.result.is_ok(), "{:?}", o.result);
    s
}

fn input() -> Vec<u8> {
    f32_tensor(&[3.0, 4.0])
}

fn number_of(pk: &PublicKey) -> u8 {
    EXECUTORS.into_iter().find(|&n| &addr(n) == pk).unwrap()
}

fn signed(s: &State, who: &PublicKey, body: TxBody) -> SignedTx {
    tx(s, number_of(who), body)
}

fn block(s: &State, randomness: u8, txs: &[SignedTx]) -> State {
    let ctx = BlockContext {
        randomness: [randomness; 32],
        ..ctx(s)
    };
    let (next, outcomes) = s
        .apply_block_with(ctx, txs, &SyntheticReferee(LEAVES, None))
        .unwrap();
    for o in outcomes {
        assert!(o.result.is_ok(), "{:?}", o.result);
    }
    next
}

/// Submits a job with `replicas`, assigns it, and has slot `i` run
/// `runs[i]` through commit and reveal (a reveal may claim another trace
/// root with `root_of`); returns the state and the job.
/// A job of `replicas` slots submitted at genesis, its executors drawn
/// in the next block with randomness byte `randomness`.
fn submitted_job(replicas: u8, randomness: u8) -> (State, JobId) {
    submitted_job_on(input(), replicas, randomness)
}

/// [`submitted_job`] on the job input `input`.
fn submitted_job_on(input: Vec<u8>, replicas: u8, randomness: u8) -> (State, JobId) {
    let s = setup();
    let t = tx(
        &s,
        1,
        TxBody::SubmitJob {
            model_id: model_id(),
            inputs: vec![input],
            replicas,
            max_fee: 1_000_000,
        },
    );
    let id = JobId::of_tx(t.hash());
    let s = block(&s, 0, &[t]);
    (block(&s, randomness, &[]), id)
}

fn run_job(runs: &[Run], root_of: &[usize]) -> (State, Job) {
    run_job_ordered(runs, root_of, false)
}

/// [`run_job`], with the reveals in reverse slot order when `reverse`.
fn run_job_ordered(runs: &[Run], root_of: &[usize], reverse: bool) -> (State, Job) {
    let (s, id) = submitted_job_on(runs[0].input.clone(), runs.len() as u8, 7);
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    let s = commit_and_reveal(&s, &job, runs, root_of, reverse);
    let job = s.job(&id).unwrap();
    (s, job)
}

/// Has slot `i` of the assigned `job` commit and then reveal `runs[i]`
/// (claiming the trace root of `runs[root_of[i]]`), the reveals in
/// reverse slot order when `reverse`.
fn commit_and_reveal(
    s: &State,
    job: &Job,
    runs: &[Run],
    root_of: &[usize],
    reverse: bool,
) -> State {
    let id = job.id;
    let claim = |i: usize| {
        let r = &runs[i];
        (r.output_hash(), runs[root_of[i]].trace_root(&job.inputs[0]))
    };
    let commits: Vec<SignedTx> = job
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let (oh, tr) = claim(i);
            let c = commitment(
                &id,
                &slot.executor,
                &oh,
                &tr,
                &Salt::from_bytes([i as u8; 32]),
            );
            signed(
                s,
                &slot.executor,
                TxBody::CommitResult {
                    job_id: id,
                    commitment: c,
                },
            )
        })
        .collect();
    let s = block(s, 1, &commits);
    let reveals: Vec<SignedTx> = job
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let (oh, tr) = claim(i);
            signed(
                &s,
                &slot.executor,
                TxBody::RevealResult {
                    job_id: id,
                    output_hash: oh,
                    trace_root: tr,
                    salt: Salt::from_bytes([i as u8; 32]),
                    outputs: runs[i].outputs.clone(),
                },
            )
        })
        .collect();
    let reveals: Vec<SignedTx> = if reverse {
        reveals.into_iter().rev().collect()
    } else {
        reveals
    };
    block(&s, 2, &reveals)
}

/// Plays the dispute of `id` with each party (key, claim run) moving when
/// it is its turn and `silent` never moving; returns the state once the
/// dispute is decided.
fn play(mut s: State, id: JobId, parties: &[(PublicKey, Run)], silent: &[PublicKey]) -> State {
    for _ in 0..200 {
        let job = s.job(&id).unwrap();
        if job.status != JobStatus::Disputed {
            return s;
        }
        let ext = s.job_ext(&id).unwrap();
        let d = ext.dispute.as_ref().unwrap();
        let mut txs = Vec::new();
        let mut moved: Vec<usize> = Vec::new();
        for (who, run) in parties {
            if silent.contains(who) {
                continue;
            }
            let claim = d.claim_of(who).unwrap();
            if moved.contains(&claim) {
                continue;
            }
            if let Some(step) = run.step(&ext, claim) {
                moved.push(claim);
                txs.push(signed(&s, who, TxBody::DisputeStep { job_id: id, step }));
            }
        }
        // Both sides may open the operands in one block: the first decides
        // the game and the second fails harmlessly (fee only).
        let (next, outcomes) = s
            .apply_block_with(ctx(&s), &txs, &SyntheticReferee(LEAVES, None))
            .unwrap();
        for o in outcomes {
            if let Err(e) = o.result {
                let late = e.to_string();
                assert!(
                    late.contains("only a disputed job")
                        || late.contains("not in the current game"),
                    "{late}"
                );
            }
        }
        s = next;
    }
    panic!("the dispute did not end in 200 blocks");
}

fn ceil_log2(n: u64) -> u32 {
    64 - (n - 1).leading_zeros()
}

/// The most rounds a game over the tests' model takes: the opening, the
/// leaf splits, the leaf, the chunk splits (an inner output has three
/// chunks) and the referee.
fn max_rounds(leaves: u64) -> u32 {
    ceil_log2(leaves) + 1 + ceil_log2(3) + 2
}

/// The trace node a verdict decided at, if it reached one.
fn node_of(v: &glassbox_ledger::dispute::Verdict) -> Option<u64> {
    v.target.and_then(|t| t.node())
}

/// The trace node a game is about once its traces' point of difference
/// is known.
fn stage_node(stage: &Stage) -> Option<u64> {
    match stage {
        Stage::Leaf { node } | Stage::Chunks { node, .. } => Some(*node),
        Stage::Referee { target } => target.node(),
        Stage::Open | Stage::Bisect { .. } => None,
    }
}

#[test]
fn three_claims_play_until_the_honest_one_stands() {
    let runs = vec![
        Run::new(None, LEAVES),
        Run::new(Some(5), LEAVES),
        Run::new(Some(2), LEAVES),
    ];
    let (s, job) = run_job(&runs, &[0, 1, 2]);
    assert_eq!(job.status, JobStatus::Disputed);
    let supply = s.total_supply().unwrap();
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    for e in &slots {
        assert_eq!(s.executor(e).unwrap().disputes, 1);
    }
    let honest_before = s.account(&slots[0]).unwrap().balance;
    let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
    let s = play(s, job.id, &parties, &[]);

    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, vec![honest_output()]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.winner, Some(0));
    assert_eq!(d.verdicts.len(), 2);
    // Claims 0 and 1 part at operator 5, then 0 and 2 at operator 2.
    assert_eq!(node_of(&d.verdicts[0]), Some(5));
    assert!(!d.verdicts[0].a_lost && d.verdicts[0].b_lost);
    assert_eq!(node_of(&d.verdicts[1]), Some(2));
    assert!(!d.verdicts[1].a_lost && d.verdicts[1].b_lost);
    for v in &d.verdicts {
        assert!(v.rounds <= max_rounds(LEAVES), "{} rounds", v.rounds);
    }
    for liar in &slots[1..] {
        let e = s.executor(liar).unwrap();
        assert_eq!((e.stake, e.disputes), (0, 0), "slashed and released");
    }
    let honest = s.executor(&slots[0]).unwrap();
    assert_eq!((honest.disputes, honest.served), (0, 1));
    // Paid the price (10,000 + 1 Mflop × 100) and half of each liar's stake,
    // less the fees of its moves.
    let gained = s.account(&slots[0]).unwrap().balance - honest_before;
    let moves = s.account(&slots[0]).unwrap().nonce - 2;
    assert_eq!(gained + moves * FEE, 10_100 + 2 * 5_000_000);
    assert_eq!(s.burned(), 2 * 5_000_000);
    assert_eq!(s.escrowed(), 0);
    let fees: u64 = s.fee_pool();
    let _ = fees;
    assert_eq!(s.total_supply(), Some(supply));
}

#[test]
fn claims_keep_their_outputs_whatever_the_reveal_order() {
    for reverse in [false, true] {
        let runs = vec![Run::new(None, LEAVES), Run::new(Some(3), LEAVES)];
        let (s, job) = run_job_ordered(&runs, &[0, 1], reverse);
        let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
        assert_eq!(d.claims[0].outputs, runs[0].outputs, "reverse {reverse}");
        assert_eq!(d.claims[1].outputs, runs[1].outputs, "reverse {reverse}");
        let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs.clone()).collect();
        let s = play(s, job.id, &parties, &[]);
        assert_eq!(s.job(&job.id).unwrap().outputs, vec![honest_output()]);
    }
}

#[test]
fn a_silent_side_loses_by_timeout() {
    let runs = vec![Run::new(None, LEAVES), Run::new(Some(9), LEAVES)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
    let opened = s.height();
    let s = play(s, job.id, &parties, &[slots[1]]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts.len(), 1);
    assert_eq!(d.verdicts[0].reason, VerdictReason::TimeoutOpen);
    assert!(d.verdicts[0].b_lost && !d.verdicts[0].a_lost);
    assert_eq!(d.closed_height, Some(opened + 4 + 1));
    assert_eq!(s.job(&job.id).unwrap().status, JobStatus::Final);
    assert_eq!(s.executor(&slots[1]).unwrap().stake, 0);
}

#[test]
fn the_same_trace_with_other_outputs_goes_to_the_output_check() {
    // Slot 1 computed honestly but reveals a wrong output under the honest
    // trace root.
    let mut liar = Run::new(None, LEAVES);
    liar.outputs = vec![wrong_output()];
    let runs = vec![Run::new(None, LEAVES), liar];
    let (s, job) = run_job(&runs, &[0, 0]);
    assert_eq!(job.status, JobStatus::Disputed);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
    let s = play(s, job.id, &parties, &[]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].target, Some(Target::Output(0)));
    assert_eq!(d.winner, Some(0));
    assert_eq!(s.job(&job.id).unwrap().outputs, vec![honest_output()]);
}

#[test]
fn a_wrong_leaf_count_is_settled_by_the_model() {
    let runs = vec![Run::new(None, LEAVES), Run::new(Some(12), LEAVES + 1)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
    let s = play(s, job.id, &parties, &[]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].target, Some(Target::LeafCount));
    assert_eq!(d.verdicts[0].rounds, 1);
    assert_eq!(d.winner, Some(0));
}

/// Plays a two-claim game up to the referee: both sides move each round
/// until the round whose end asks the referee, where only the first
/// moves; returns the state and the second side's move, the one that
/// asks the referee.
fn to_the_referee(mut s: State, job: &Job, runs: &[Run]) -> (State, SignedTx) {
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let step = |s: &State, i: usize| {
        let ext = s.job_ext(&job.id).unwrap();
        signed(
            s,
            &slots[i],
            TxBody::DisputeStep {
                job_id: job.id,
                step: runs[i].step(&ext, i).unwrap(),
            },
        )
    };
    loop {
        let both = block(&s, 3, &[step(&s, 0), step(&s, 1)]);
        let game = both.job_ext(&job.id).unwrap().dispute.unwrap().game;
        if game.is_none_or(|g| matches!(g.stage, Stage::Referee { .. })) {
            let s = block(&s, 3, &[step(&s, 0)]);
            let second = step(&s, 1);
            return (s, second);
        }
        s = both;
    }
}

/// [`SyntheticReferee`] whose operator re-run fails with `message` (as a
/// runtime error naming an arbitrarily long node would).
struct FailingReferee(String);

impl Referee for FailingReferee {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        SyntheticReferee(LEAVES, None).leaf_count(model)
    }

    fn output_source(&self, model: &ModelId, index: u32) -> Result<OutputSource, RefereeError> {
        SyntheticReferee(LEAVES, None).output_source(model, index)
    }

    fn operands(&self, model: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError> {
        SyntheticReferee(LEAVES, None).operands(model, node)
    }

    fn output_count(&self, model: &ModelId, node: u64) -> Result<u32, RefereeError> {
        SyntheticReferee(LEAVES, None).output_count(model, node)
    }

    fn output_bytes(
        &self,
        _: &ModelId,
        _: u64,
        _: u32,
        _: (u64, u64),
        _: &[Vec<u8>],
        _: &dyn Fn(u64, u32) -> Option<TensorHash>,
        _: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        Err(RefereeError::Failed(self.0.clone()))
    }

    fn run_whole(
        &self,
        _: &ModelId,
        _: u64,
        _: &[Vec<u8>],
        _: &dyn Fn(u64, u32) -> Option<TensorHash>,
        _: u64,
    ) -> Result<WholeRun, RefereeError> {
        Ok(WholeRun {
            work: 0,
            fails: true,
        })
    }
}

/// [`SyntheticReferee`] whose every chunk costs `.0` units of referee
/// work.
struct PricedReferee(u64);

impl Referee for PricedReferee {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        SyntheticReferee(LEAVES, None).leaf_count(model)
    }

    fn output_source(&self, model: &ModelId, index: u32) -> Result<OutputSource, RefereeError> {
        SyntheticReferee(LEAVES, None).output_source(model, index)
    }

    fn operands(&self, model: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError> {
        SyntheticReferee(LEAVES, None).operands(model, node)
    }

    fn output_count(&self, model: &ModelId, node: u64) -> Result<u32, RefereeError> {
        SyntheticReferee(LEAVES, None).output_count(model, node)
    }

    fn output_bytes(
        &self,
        model: &ModelId,
        node: u64,
        output: u32,
        range: (u64, u64),
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        if self.0 > max_work {
            return Err(RefereeError::OverBudget {
                work: self.0,
                max_work,
            });
        }
        let c = SyntheticReferee(LEAVES, None).output_bytes(
            model,
            node,
            output,
            range,
            inputs,
            opened,
            u64::MAX,
        )?;
        Ok(ChunkBytes { work: self.0, ..c })
    }

    fn run_whole(
        &self,
        model: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<WholeRun, RefereeError> {
        if self.0 > max_work {
            return Err(RefereeError::OverBudget {
                work: self.0,
                max_work,
            });
        }
        let run =
            SyntheticReferee(LEAVES, None).run_whole(model, node, inputs, opened, u64::MAX)?;
        Ok(WholeRun {
            work: self.0,
            ..run
        })
    }
}

/// Finding "referee work has no bound" (issue #25, P3): the referee ran
/// whatever operator a game reached inside block building and
/// verification (a Loop or an Einsum of any size), so two colluding sides
/// could stall every validator past the consensus timeouts. A chunk over
/// the per-block budget is now unrefereeable: the job fails, and nobody
/// loses stake or bond.
#[test]
fn a_chunk_over_the_referee_budget_fails_the_job_and_slashes_nobody() {
    let runs = vec![Run::new(None, 1), Run::new(Some(0), 1)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let (s, second) = to_the_referee(s, &job, &runs);
    let before = wealth(&s, &slots);
    let supply = s.total_supply();
    let requester = s.account(&job.requester).unwrap().balance;
    let (next, outcomes) = s
        .apply_block_with(
            ctx(&s),
            std::slice::from_ref(&second),
            &SyntheticReferee(1, Some(0)),
        )
        .unwrap();
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    let d = next.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].reason, VerdictReason::Unrefereeable);
    assert!(!d.verdicts[0].a_lost && !d.verdicts[0].b_lost);
    assert!(d.game.is_none() && d.closed_height.is_some() && d.winner.is_none());
    let done = next.job(&job.id).unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    // Nobody slashed; the requester has its escrow back (less nothing:
    // the step's fee is the sender's).
    assert_eq!(wealth(&next, &slots), before - FEE);
    assert_eq!(
        next.account(&job.requester).unwrap().balance,
        requester + job.escrow
    );
    assert_eq!(next.total_supply(), supply);
    for k in &slots {
        assert_eq!(next.executor(k).unwrap().disputes, 0, "lock released");
    }
}

/// Finding "referee work has no bound" (issue #25, P3), per block: two
/// games reaching the referee in one block whose chunks together exceed
/// the block's budget. The first is decided; the second waits, queued,
/// takes no moves, and is decided at the next block's start.
#[test]
fn referee_work_over_a_blocks_budget_waits_for_the_next_block() {
    const PRICE: u64 = 700_000;
    let runs = vec![Run::new(None, 1), Run::new(Some(0), 1)];
    let s = setup_with(|p| {
        p.max_referee_work_per_block = 1 << 20;
        p.dispute_round_blocks = 40;
    });
    let submit = |k: u64| {
        tx_ahead(
            &s,
            1,
            k,
            TxBody::SubmitJob {
                model_id: model_id(),
                inputs: vec![input()],
                replicas: 2,
                max_fee: 1_000_000,
            },
        )
    };
    let txs = [submit(0), submit(1)];
    let ids = txs.clone().map(|t| JobId::of_tx(t.hash()));
    let s = block(&s, 0, &txs);
    let mut s = block(&s, 7, &[]);
    for id in &ids {
        let job = s.job(id).unwrap();
        s = commit_and_reveal(&s, &job, &runs, &[0, 1], false);
    }
    let mut finals = Vec::new();
    for id in &ids {
        let job = s.job(id).unwrap();
        let (next, second) = to_the_referee(s, &job, &runs);
        s = next;
        finals.push(second);
    }
    // Signed again on this state: the sides may have moved in both games.
    let a = signed(&s, finals[0].sender(), finals[0].body().clone());
    let b = tx_ahead(
        &s,
        number_of(finals[1].sender()),
        u64::from(finals[1].sender() == finals[0].sender()),
        finals[1].body().clone(),
    );
    // The same move again, in the same block: a queued game takes none.
    let again = tx_ahead(
        &s,
        number_of(finals[1].sender()),
        1 + u64::from(finals[1].sender() == finals[0].sender()),
        finals[1].body().clone(),
    );
    let (s, outcomes) = s
        .apply_block_with(ctx(&s), &[a, b, again], &PricedReferee(PRICE))
        .unwrap();
    assert!(
        outcomes[..2].iter().all(|o| o.result.is_ok()),
        "{outcomes:?}"
    );
    let e = outcomes[2].result.as_ref().unwrap_err().to_string();
    assert!(e.contains("waits for the referee"), "{e}");
    let first = s.job_ext(&ids[0]).unwrap().dispute.unwrap();
    assert_eq!(first.verdicts[0].reason, VerdictReason::Operator);
    let queued = s.job_ext(&ids[1]).unwrap().dispute.unwrap();
    let game = queued.game.expect("the second game waits");
    assert_eq!(game.queued, Some(s.height()));
    assert!(queued.verdicts.is_empty());
    let referee_needs = s.queued_referee_needs();
    assert_eq!(referee_needs.len(), 1);
    assert_eq!(referee_needs[0].job_id, ids[1]);
    // A replica without its data cannot apply the next block's start: it
    // waits for the data rather than judging the block.
    let err = s.apply_block_with(ctx(&s), &[], &NoReferee).unwrap_err();
    assert!(
        matches!(&err, BlockError::QueuedRefereeUnavailable { job_id, .. } if *job_id == ids[1]),
        "{err}"
    );
    // The next block's start decides it, within that block's budget.
    let (s, _) = s
        .apply_block_with(ctx(&s), &[], &PricedReferee(PRICE))
        .unwrap();
    let d = s.job_ext(&ids[1]).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].reason, VerdictReason::Operator);
    assert_eq!(d.winner, Some(0));
    assert_eq!(s.job(&ids[1]).unwrap().outputs, vec![honest_output()]);
    assert!(s.queued_referee_needs().is_empty());
}

/// Finding "a verdict reason is a runtime error string" (issue #25, P6):
/// the runtime's message reached the job's record, so a long one (model
/// node names are unbounded) made the record undecodable, and a reworded
/// one gave another state root. Verdicts are codes now.
#[test]
fn runtime_error_text_never_enters_consensus_state() {
    let runs = vec![Run::new(None, 1), Run::new(Some(0), 1)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let (s, second) = to_the_referee(s, &job, &runs);
    let mut roots = Vec::new();
    for message in [
        "short".to_string(),
        "operator `".to_string() + &"n".repeat(4096) + "` failed",
    ] {
        let (next, outcomes) = s
            .apply_block_with(
                ctx(&s),
                std::slice::from_ref(&second),
                &FailingReferee(message),
            )
            .unwrap();
        assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
        let ext = next.job_ext(&job.id).unwrap();
        assert_eq!(
            JobExt::decode(&ext.encode()).as_ref(),
            Ok(&ext),
            "the record decodes"
        );
        let d = ext.dispute.unwrap();
        assert_eq!(d.verdicts[0].reason, VerdictReason::OperatorFails);
        assert!(d.verdicts[0].a_lost && d.verdicts[0].b_lost);
        roots.push(next.root());
    }
    assert_eq!(roots[0], roots[1], "the message changed the state root");
}

/// Finding "blocking the honest side's openings" (issue #25, P1): the
/// referee stage's 256 openings were shared by both sides, so a liar
/// opening 256 of its (true) early leaves left no room for the operand
/// the referee needs; the round timed out and both sides lost. A budget
/// per side was not enough: a liar's identity joining the true claim
/// spent that claim's budget (issue #25, P1 gap). Openings are now only
/// of the operator's operands, so nobody can spend them on anything else.
#[test]
fn one_side_cannot_use_up_the_openings_the_other_needs() {
    const WIDE: u64 = 300;
    let referee = SyntheticReferee(WIDE, None);
    let runs = [Run::new(None, WIDE), Run::new(Some(290), WIDE)];
    let (mut s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let step_tx = |s: &State, i: usize, step: Step| {
        signed(
            s,
            &slots[i],
            TxBody::DisputeStep {
                job_id: job.id,
                step,
            },
        )
    };
    // Both sides play to the referee stage.
    for _ in 0..40 {
        let ext = s.job_ext(&job.id).unwrap();
        let game = ext.dispute.as_ref().unwrap().game.clone().unwrap();
        if matches!(game.stage, Stage::Referee { .. }) {
            break;
        }
        let txs: Vec<SignedTx> = (0..2)
            .filter_map(|i| runs[i].step(&ext, i).map(|st| step_tx(&s, i, st)))
            .collect();
        s = s.apply_block_with(ctx(&s), &txs, &referee).unwrap().0;
    }
    let game = s.job_ext(&job.id).unwrap().dispute.unwrap().game.unwrap();
    assert!(
        matches!(game.stage, Stage::Referee { target } if target.node() == Some(290)),
        "{:?}",
        game.stage
    );
    // The liar opens 256 of its early leaves, 16 per transaction, in one
    // block (within the round).
    let floods: Vec<SignedTx> = (0..16u64)
        .map(|k| {
            let items = (k * 16..k * 16 + 16).map(|n| runs[1].opening(n)).collect();
            tx_ahead(
                &s,
                number_of(&slots[1]),
                k,
                TxBody::DisputeStep {
                    job_id: job.id,
                    step: Step::Openings { items },
                },
            )
        })
        .collect();
    let (next, outcomes) = s.apply_block_with(ctx(&s), &floods, &referee).unwrap();
    for o in &outcomes {
        let e = o.result.as_ref().unwrap_err().to_string();
        assert!(e.contains("not an operand the referee needs"), "{e}");
    }
    s = next;
    // The honest side still opens the operand, and the referee decides.
    let ext = s.job_ext(&job.id).unwrap();
    let t = step_tx(&s, 0, runs[0].step(&ext, 0).unwrap());
    let (s, outcomes) = s.apply_block_with(ctx(&s), &[t], &referee).unwrap();
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(d.verdicts[0].reason, VerdictReason::Operator);
    assert_eq!(d.winner, Some(0));
    assert_eq!(s.job(&job.id).unwrap().outputs, vec![honest_output()]);
}

#[test]
fn bad_moves_are_refused_with_the_reason() {
    let runs = vec![Run::new(None, LEAVES), Run::new(Some(4), LEAVES)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let check = |who: &PublicKey, step: Step| {
        let t = signed(
            &s,
            who,
            TxBody::DisputeStep {
                job_id: job.id,
                step,
            },
        );
        s.check_tx(&t).unwrap_err().to_string()
    };
    // An opening that does not hash to the claimed trace root.
    let e = check(
        &slots[0],
        Step::Open {
            leaves: LEAVES,
            leaves_root: MerkleNode::from_bytes([9; 32]),
        },
    );
    assert!(e.contains("do not open the claimed trace root"), "{e}");
    // The wrong step for the stage.
    let e = check(
        &slots[0],
        Step::Split {
            left: MerkleNode::from_bytes([0; 32]),
            right: MerkleNode::from_bytes([0; 32]),
        },
    );
    assert!(e.contains("expects `open`"), "{e}");
    // Someone outside the dispute.
    let other = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .find(|k| !slots.contains(k))
        .unwrap();
    let e = check(
        &other,
        Step::Open {
            leaves: LEAVES,
            leaves_root: MerkleNode::from_bytes([0; 32]),
        },
    );
    assert!(e.contains("stands behind no claim"), "{e}");
    // Too many leaves.
    let e = check(
        &slots[1],
        Step::Open {
            leaves: 1 << 30,
            leaves_root: MerkleNode::from_bytes([0; 32]),
        },
    );
    assert!(e.contains("over the limit"), "{e}");
}

#[test]
fn a_referee_without_the_data_fails_the_block_not_the_transaction() {
    let runs = vec![Run::new(None, 1), Run::new(Some(0), 1)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let (s, second) = to_the_referee(s, &job, &runs);
    let needs = s.referee_needs(&second).unwrap();
    assert_eq!(needs.model_id, model_id());
    match s.apply_block(ctx(&s), std::slice::from_ref(&second)) {
        Err(BlockError::RefereeUnavailable { index: 0, .. }) => {}
        other => panic!("expected RefereeUnavailable, got {other:?}"),
    }
    // A builder skips it unchanged.
    let mut b = s.begin_block(ctx(&s)).unwrap();
    assert!(b.push(&second).is_err());
    assert!(b.is_empty());
    // With the data, the referee decides in that transaction.
    let s = block(&s, 3, &[second]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(node_of(&d.verdicts[0]), Some(0), "{:?}", d.verdicts);
    assert_eq!(d.winner, Some(0), "{:?}", d.verdicts);
}

#[test]
fn a_step_on_a_game_not_opened_yet_still_needs_the_model() {
    // The job's last reveal, earlier in the same block, opens the game:
    // the parent state has no game, and the step still reaches the
    // referee, which needs the model.
    let (s, id) = submitted_job(2, 7);
    let job = s.job(&id).unwrap();
    let step = signed(
        &s,
        &job.slots[0].executor,
        TxBody::DisputeStep {
            job_id: id,
            step: Step::Open {
                leaves: 1,
                leaves_root: MerkleNode::from_bytes([0; 32]),
            },
        },
    );
    let needs = s.referee_needs(&step).expect("the model");
    assert_eq!(needs.model_id, model_id());
    assert!(needs.tensors.is_empty());
}

fn optimistic(run: &Run) -> (State, Job) {
    run_job(std::slice::from_ref(run), &[0])
}

fn pending_until(s: &State, id: &JobId) -> u64 {
    s.job_ext(id).unwrap().pending_until.unwrap()
}

#[test]
fn an_optimistic_result_is_pending_then_final() {
    let (mut s, job) = optimistic(&Run::new(None, LEAVES));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(
        job.outputs,
        vec![honest_output()],
        "the result shows at once"
    );
    let exec = job.slots[0].executor;
    assert_eq!(s.executor(&exec).unwrap().active_jobs, 1);
    let until = pending_until(&s, &job.id);
    assert_eq!(until, s.height() + 6);
    let before = s.account(&exec).unwrap().balance;
    while s.height() <= until {
        assert_eq!(s.job(&job.id).unwrap().status, JobStatus::Pending);
        s = block(&s, 4, &[]);
    }
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.closed_height, Some(until + 1));
    assert_eq!(s.account(&exec).unwrap().balance, before + 10_100);
    let e = s.executor(&exec).unwrap();
    assert_eq!((e.active_jobs, e.served), (0, 1));
    assert_eq!(s.escrowed(), 0);
    assert!(!s.job_ext(&job.id).unwrap().is_live());
}

fn challenge(s: &State, who: &PublicKey, id: JobId, run: &Run) -> SignedTx {
    signed(
        s,
        who,
        TxBody::Challenge {
            job_id: id,
            output_hash: run.output_hash(),
            trace_root: run.trace_root(&run.input),
            outputs: run.outputs.clone(),
        },
    )
}

#[test]
fn challenges_are_checked() {
    let honest = Run::new(None, LEAVES);
    let (s, job) = optimistic(&honest);
    let exec = job.slots[0].executor;
    let other = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .find(|k| *k != exec)
        .unwrap();
    let code = |t: SignedTx| s.check_tx(&t).unwrap_err().to_string();
    let liar = Run::new(Some(3), LEAVES);
    let e = code(challenge(&s, &exec, job.id, &liar));
    assert!(e.contains("its own result"), "{e}");
    let e = code(challenge(&s, &other, job.id, &honest));
    assert!(e.contains("same result"), "{e}");
    let e = code(tx(
        &s,
        2,
        TxBody::Challenge {
            job_id: job.id,
            output_hash: liar.output_hash(),
            trace_root: liar.trace_root(&input()),
            outputs: liar.outputs.clone(),
        },
    ));
    assert!(e.contains("active (staked) executor"), "{e}");
    let mut bad = liar.clone();
    bad.outputs = vec![f32_tensor(&[1.0])];
    let e = code(challenge(&s, &other, job.id, &bad));
    assert!(e.contains("dimension 0 is 1"), "{e}");
    // After the window.
    let mut late = s.clone();
    while late.height() <= pending_until(&s, &job.id) {
        late = block(&late, 4, &[]);
    }
    let t = challenge(&late, &other, job.id, &liar);
    assert!(late.check_tx(&t).is_err());
}

#[test]
fn a_lying_challenger_loses_its_bond_and_an_honest_one_wins_the_stake() {
    // An honest result, challenged by a liar.
    let honest = Run::new(None, LEAVES);
    let (s, job) = optimistic(&honest);
    let supply = s.total_supply().unwrap();
    let exec = job.slots[0].executor;
    let liar_key = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .find(|k| *k != exec)
        .unwrap();
    let liar = Run::new(Some(6), LEAVES);
    let bond_before = s.account(&liar_key).unwrap().balance;
    let s = block(&s, 5, &[challenge(&s, &liar_key, job.id, &liar)]);
    assert_eq!(s.job(&job.id).unwrap().status, JobStatus::Disputed);
    assert_eq!(s.escrowed(), 10_100 + 2_000_000);
    assert_eq!(s.executor(&exec).unwrap().active_jobs, 0);
    let s = play(
        s,
        job.id,
        &[(exec, honest.clone()), (liar_key, liar.clone())],
        &[],
    );
    let job2 = s.job(&job.id).unwrap();
    assert_eq!(job2.status, JobStatus::Final);
    assert_eq!(job2.outputs, vec![honest_output()]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    assert_eq!(node_of(&d.verdicts[0]), Some(6));
    let moves = s.account(&liar_key).unwrap().nonce;
    assert_eq!(
        s.account(&liar_key).unwrap().balance + moves * FEE,
        bond_before - 2_000_000,
        "the bond is gone"
    );
    assert_eq!(
        s.executor(&liar_key).unwrap().stake,
        10_000_000,
        "a challenger risks its bond only"
    );
    assert_eq!(s.burned(), 1_000_000);
    assert_eq!(s.total_supply(), Some(supply));

    // A lying result, challenged by an honest executor.
    let (s, job) = optimistic(&liar);
    let exec = job.slots[0].executor;
    let judge = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .find(|k| *k != exec)
        .unwrap();
    let before = s.account(&judge).unwrap().balance;
    let s = block(&s, 5, &[challenge(&s, &judge, job.id, &honest)]);
    let s = play(s, job.id, &[(exec, liar), (judge, honest)], &[]);
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, vec![honest_output()]);
    assert_eq!(s.executor(&exec).unwrap().stake, 0);
    let moves = s.account(&judge).unwrap().nonce;
    assert_eq!(
        s.account(&judge).unwrap().balance + moves * FEE,
        before + 5_000_000,
        "bond back and half the liar's stake; the price is refunded"
    );
    assert_eq!(s.executor(&judge).unwrap().served, 0);
}

/// Finding "audit pre-emption" (issue #25, P1): a cheating executor's
/// second identity challenged its own wrong pending result (with any
/// claim, the true one included) and never moved; nobody else could
/// challenge a disputed job, the colluder lost by timeout and the wrong
/// result became final. Now, while the window is open, an honest executor
/// joins the standing claim it agrees with, or adds its own, and plays it.
#[test]
fn a_colluding_challenger_cannot_pre_empt_an_honest_one() {
    let honest = Run::new(None, LEAVES);
    let liar = Run::new(Some(4), LEAVES);
    for colluder_claims_the_truth in [true, false] {
        let (s, job) = optimistic(&liar);
        let supply = s.total_supply().unwrap();
        let exec = job.slots[0].executor;
        let others: Vec<PublicKey> = EXECUTORS
            .iter()
            .map(|&n| addr(n))
            .filter(|k| *k != exec)
            .collect();
        let (colluder, judge) = (others[0], others[1]);
        let colluder_run = if colluder_claims_the_truth {
            honest.clone()
        } else {
            Run::new(Some(2), LEAVES)
        };
        let s = block(&s, 5, &[challenge(&s, &colluder, job.id, &colluder_run)]);
        assert_eq!(s.job(&job.id).unwrap().status, JobStatus::Disputed);
        let judge_before = s.account(&judge).unwrap().balance;
        let s = block(&s, 5, &[challenge(&s, &judge, job.id, &honest)]);
        let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
        if colluder_claims_the_truth {
            assert_eq!(d.claims.len(), 2);
            assert_eq!(d.claims[1].members, vec![colluder, judge], "joined");
            assert_eq!(d.claims[1].bond, 4_000_000);
        } else {
            assert_eq!(d.claims.len(), 3, "added");
        }
        // Joining twice, or after the window, is refused.
        let again = challenge(&s, &judge, job.id, &honest);
        assert!(s.check_tx(&again).is_err());
        let s = play(
            s,
            job.id,
            &[
                (exec, liar.clone()),
                (colluder, colluder_run),
                (judge, honest.clone()),
            ],
            &[colluder],
        );
        let job = s.job(&job.id).unwrap();
        assert_eq!(job.status, JobStatus::Final, "{colluder_claims_the_truth}");
        assert_eq!(job.outputs, vec![honest_output()]);
        assert_eq!(
            s.executor(&exec).unwrap().stake,
            0,
            "the cheater is slashed"
        );
        let moves = s.account(&judge).unwrap().nonce - 1;
        assert!(
            s.account(&judge).unwrap().balance + moves * FEE > judge_before + 2_000_000,
            "the honest challenger gets its bond back and more"
        );
        assert_eq!(s.escrowed(), 0);
        assert_eq!(s.total_supply(), Some(supply));
    }
}

/// Finding "`pay_winners` pays the first member; every member's `served`
/// counts" (issue #25, P4 gap): a cheater's sybil that challenged its own
/// lie with the true result, ahead of an honest challenger, took the job's
/// price (the escrow holds one) and a service count, and the honest
/// challenger none. The price now pays only slot holders of the winning
/// claim; challengers get their bonds back and the reward.
#[test]
fn a_sybil_on_the_true_claim_takes_no_price_and_no_service() {
    let honest = Run::new(None, LEAVES);
    let liar = Run::new(Some(4), LEAVES);
    let (s, job) = optimistic(&liar);
    let exec = job.slots[0].executor;
    let others: Vec<PublicKey> = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .filter(|k| *k != exec)
        .collect();
    let (sybil, judge) = (others[0], others[1]);
    let requester = s.account(&job.requester).unwrap().balance;
    let s = block(&s, 5, &[challenge(&s, &sybil, job.id, &honest)]);
    let s = block(&s, 5, &[challenge(&s, &judge, job.id, &honest)]);
    let s = play(
        s,
        job.id,
        &[
            (exec, liar.clone()),
            (sybil, honest.clone()),
            (judge, honest),
        ],
        &[],
    );
    let done = s.job(&job.id).unwrap();
    assert_eq!(done.status, JobStatus::Final);
    assert_eq!(done.outputs, vec![honest_output()]);
    for k in [sybil, judge] {
        assert_eq!(
            s.executor(&k).unwrap().served,
            0,
            "a challenger served nobody"
        );
    }
    assert_eq!(
        s.account(&job.requester).unwrap().balance,
        requester + job.escrow,
        "the price of a wrong result is refunded"
    );
    assert_eq!(s.escrowed(), 0);
}

/// Finding "honest executors filtered out" (issue #25, P2): inputs on
/// which the model fails (an out-of-range Gather index) left every honest
/// executor drawn unable to reveal, penalized for each job. A run that
/// fails is now a result like any other (docs/disputes.md, "Runs that
/// fail"): no outputs, a trace whose leaves from the failing operator on
/// are failed leaves. Agreed, the job is final with no outputs and every
/// executor is paid.
#[test]
fn a_run_that_fails_is_a_result_nobody_is_penalized_for() {
    let honest = Run::fails_at(FAILS_AT, LEAVES);
    let runs = vec![honest.clone(), honest.clone(), honest];
    let (s0, id) = submitted_job_on(failing_input(), 3, 7);
    let job = s0.job(&id).unwrap();
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let before: Vec<u64> = slots
        .iter()
        .map(|k| s0.account(k).unwrap().balance)
        .collect();
    let s = commit_and_reveal(&s0, &job, &runs, &[0, 1, 2], false);
    let job = s.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert!(job.outputs.is_empty(), "a failure has no outputs");
    for (k, b) in slots.iter().zip(before) {
        let e = s.executor(k).unwrap();
        assert_eq!((e.stake, e.served, e.active_jobs), (10_000_000, 1, 0));
        assert_eq!(s.account(k).unwrap().balance + 2 * FEE, b + 10_100);
    }
    assert_eq!(s.escrowed(), 0);
}

/// The failure answer is disputable like any result, so a liar cannot use
/// it to skip work: on an input where the model runs, a claim that
/// operator 7 fails parts from the true trace there, the referee runs the
/// operator, and it runs.
#[test]
fn a_claim_that_a_working_operator_fails_loses() {
    let runs = vec![
        Run::new(None, LEAVES),
        Run::fails_at(FAILS_AT, LEAVES).on(input()),
    ];
    let (s, job) = run_job(&runs, &[0, 1]);
    assert_eq!(job.status, JobStatus::Disputed);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
    let s = play(s, job.id, &parties, &[]);
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, vec![honest_output()]);
    let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
    let v = &d.verdicts[0];
    assert_eq!(v.target, Some(Target::Fails { node: FAILS_AT }));
    assert_eq!(
        (v.a_lost, v.b_lost, v.reason),
        (false, true, VerdictReason::Fails)
    );
    assert_eq!(s.executor(&slots[1]).unwrap().stake, 0);
    assert_eq!(s.executor(&slots[0]).unwrap().stake, 10_000_000);
}

/// On an input where operator 7 fails, a liar that reveals outputs (the
/// cheap way out the finding described) loses at operator 7, and so does
/// one that claims an earlier operator fails.
#[test]
fn a_failing_run_wins_against_outputs_and_an_earlier_failure() {
    // Each liar, and the operator where it parts from the failing run.
    for (liar, parts) in [
        (Run::new(None, LEAVES).on(failing_input()), FAILS_AT),
        (Run::new(Some(4), LEAVES).on(failing_input()), 4),
        (Run::fails_at(3, LEAVES), 3),
    ] {
        let honest = Run::fails_at(FAILS_AT, LEAVES);
        let runs = vec![liar, honest];
        let (s, job) = run_job(&runs, &[0, 1]);
        assert_eq!(job.status, JobStatus::Disputed);
        let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
        let s = play(s, job.id, &parties, &[]);
        let job = s.job(&job.id).unwrap();
        assert_eq!(job.status, JobStatus::Final);
        assert!(job.outputs.is_empty(), "the failure stands");
        let v = &s.job_ext(&job.id).unwrap().dispute.unwrap().verdicts[0];
        assert!(v.a_lost && !v.b_lost, "{v:?}");
        assert_eq!(node_of(v), Some(parts), "{v:?}");
        assert_eq!(s.executor(&slots[0]).unwrap().stake, 0);
        assert_eq!(s.executor(&slots[1]).unwrap().stake, 10_000_000);
    }
}

/// Review finding on failure claims: the ledger did not check that a
/// failed trace stays failed, so a liar claiming outputs with the honest
/// failure's trace but one later leaf showing outputs parted from it
/// after the failure, where the referee ran an operator whose operand
/// had failed: the game waited for an opening that could not exist and
/// both sides lost (or, for an operator reading only earlier values, the
/// failing side lost). A failed leaf below the leaf where the traces
/// part is now always openable, and decides against outputs.
#[test]
fn a_failed_trace_revived_after_its_failure_loses() {
    for revived in [FAILS_AT + 1, LEAVES - 1] {
        let honest = Run::fails_at(FAILS_AT, LEAVES);
        let liar = Run {
            outputs: vec![honest_output()],
            revived: Some(revived),
            ..honest.clone()
        };
        let runs = vec![honest, liar];
        let (s, job) = run_job(&runs, &[0, 1]);
        assert_eq!(job.status, JobStatus::Disputed);
        let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
        let parties: Vec<(PublicKey, Run)> = slots.iter().copied().zip(runs).collect();
        let s = play(s, job.id, &parties, &[]);
        let job = s.job(&job.id).unwrap();
        assert_eq!(job.status, JobStatus::Final);
        assert!(job.outputs.is_empty(), "the failure stands");
        let v = &s.job_ext(&job.id).unwrap().dispute.unwrap().verdicts[0];
        assert_eq!(v.target, Some(Target::Fails { node: revived }), "{v:?}");
        assert_eq!(
            (v.a_lost, v.b_lost, v.reason),
            (false, true, VerdictReason::FailedLeaf)
        );
        assert_eq!(s.executor(&slots[0]).unwrap().stake, 10_000_000);
        assert_eq!(s.executor(&slots[1]).unwrap().stake, 0);
    }
}

/// A failure claimed at an operator too costly to run whole within a
/// block's referee budget cannot be checked: the failing side loses (an
/// honest executor declines such a job instead), so a liar cannot fail a
/// job, unslashed, by claiming its largest operator fails.
#[test]
fn a_failure_the_referee_cannot_check_loses() {
    let runs = vec![
        Run::new(None, LEAVES),
        Run::fails_at(FAILS_AT, LEAVES).on(input()),
    ];
    let (s, job) = run_job(&runs, &[0, 1]);
    let slots: Vec<PublicKey> = job.slots.iter().map(|s| s.executor).collect();
    let referee = SyntheticReferee(LEAVES, Some(FAILS_AT));
    let mut s = s;
    for _ in 0..100 {
        if s.job(&job.id).unwrap().status != JobStatus::Disputed {
            break;
        }
        let ext = s.job_ext(&job.id).unwrap();
        let d = ext.dispute.as_ref().unwrap();
        let txs: Vec<SignedTx> = slots
            .iter()
            .zip(&runs)
            .filter_map(|(k, r)| {
                let step = r.step(&ext, d.claim_of(k)?)?;
                Some(signed(
                    &s,
                    k,
                    TxBody::DisputeStep {
                        job_id: job.id,
                        step,
                    },
                ))
            })
            .collect();
        s = s.apply_block_with(ctx(&s), &txs, &referee).unwrap().0;
    }
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, vec![honest_output()]);
    let v = &s.job_ext(&job.id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(
        (v.a_lost, v.b_lost, v.reason),
        (false, true, VerdictReason::FailureOverBudget)
    );
    assert_eq!(s.executor(&slots[1]).unwrap().stake, 0);
}

/// A claim may take the other side's trace root with other outputs: one
/// trace cannot back both a failure and outputs. Against a failing
/// trace, outputs lose once the failing side opens a failed leaf;
/// against a working trace, a failure loses alone, since it cannot open
/// one (the honest side is not slashed for the round nobody could play).
#[test]
fn one_trace_cannot_back_both_a_failure_and_outputs() {
    // A failing result, challenged with outputs on its own trace root.
    let honest = Run::fails_at(FAILS_AT, LEAVES);
    let (s, job) = optimistic(&honest);
    assert_eq!(job.status, JobStatus::Pending);
    let exec = job.slots[0].executor;
    let judge = addr(EXECUTORS.into_iter().find(|&n| addr(n) != exec).unwrap());
    let liar = Run {
        outputs: vec![honest_output()],
        ..honest.clone()
    };
    let s = block(&s, 5, &[challenge(&s, &judge, job.id, &liar)]);
    let s = play(s, job.id, &[(exec, honest), (judge, liar)], &[]);
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert!(job.outputs.is_empty());
    let v = &s.job_ext(&job.id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(v.target, Some(Target::Failure));
    assert_eq!(
        (v.a_lost, v.b_lost, v.reason),
        (false, true, VerdictReason::FailedLeaf)
    );

    // A working result, challenged with a failure on its trace root.
    let honest = Run::new(None, LEAVES);
    let (s, job) = optimistic(&honest);
    let exec = job.slots[0].executor;
    let judge = addr(EXECUTORS.into_iter().find(|&n| addr(n) != exec).unwrap());
    let liar = Run {
        outputs: Vec::new(),
        ..honest.clone()
    };
    let s = block(&s, 5, &[challenge(&s, &judge, job.id, &liar)]);
    let s = play(s, job.id, &[(exec, honest), (judge, liar)], &[]);
    let job = s.job(&job.id).unwrap();
    assert_eq!(job.status, JobStatus::Final);
    assert_eq!(job.outputs, vec![honest_output()]);
    let v = &s.job_ext(&job.id).unwrap().dispute.unwrap().verdicts[0];
    assert_eq!(v.target, Some(Target::Failure));
    assert_eq!(
        (v.a_lost, v.b_lost, v.reason),
        (false, true, VerdictReason::TimeoutOpenings)
    );
    assert_eq!(s.executor(&exec).unwrap().stake, 10_000_000);
}

/// Review finding on the pre-emption fix: a colluder could still end the
/// dispute before anyone honest entered, by losing at once (a claim with
/// the wrong leaf count, settled in the block both sides open) or by
/// claiming the truth and staying silent; the lone standing claim, the
/// wrong result, was then decided final inside the window, and a result
/// equal to a lost claim could never come back. A challenged result is
/// now decided no earlier than its window's end, and a lost claim's
/// result may be claimed again.
#[test]
fn a_dispute_lost_at_once_stays_open_for_the_window() {
    let honest = Run::new(None, LEAVES);
    let liar = Run::new(Some(4), LEAVES);
    for fast in [true, false] {
        let (s, job) = optimistic(&liar);
        let until = pending_until(&s, &job.id);
        let exec = job.slots[0].executor;
        let others: Vec<PublicKey> = EXECUTORS
            .iter()
            .map(|&n| addr(n))
            .filter(|k| *k != exec)
            .collect();
        let (colluder, judge) = (others[0], others[1]);
        let colluder_run = if fast {
            Run::new(Some(12), LEAVES + 1)
        } else {
            honest.clone()
        };
        let mut s = block(&s, 5, &[challenge(&s, &colluder, job.id, &colluder_run)]);
        // The cheater opens; the colluder opens its wrong count at once
        // (settled by the referee in that block) or never moves.
        let ext = s.job_ext(&job.id).unwrap();
        let step_of = |who: &PublicKey, run: &Run, claim: usize| {
            signed(
                &s,
                who,
                TxBody::DisputeStep {
                    job_id: job.id,
                    step: run.step(&ext, claim).unwrap(),
                },
            )
        };
        let mut txs = vec![step_of(&exec, &liar, 0)];
        if fast {
            txs.push(step_of(&colluder, &colluder_run, 1));
        }
        s = block(&s, 5, &txs);
        if fast {
            // Settled in that block: the colluder lost, the wrong result
            // stands alone, the window is still open.
            let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
            assert_eq!(d.verdicts[0].reason, VerdictReason::LeafCount);
            assert_eq!(s.job(&job.id).unwrap().status, JobStatus::Disputed);
            s = block(&s, 5, &[challenge(&s, &judge, job.id, &honest)]);
        } else {
            // The silent colluder loses by timeout at the start of the
            // window's last block; the honest executor claims the same
            // (true) result in that block, as a new claim.
            while s.height() + 1 < until {
                s = block(&s, 5, &[]);
            }
            s = block(&s, 5, &[challenge(&s, &judge, job.id, &honest)]);
            let d = s.job_ext(&job.id).unwrap().dispute.unwrap();
            assert_eq!(d.verdicts[0].reason, VerdictReason::TimeoutOpen);
            assert_eq!(d.claims.len(), 3, "the true result is claimed again");
        }
        assert!(s.height() <= until);
        let s = play(
            s,
            job.id,
            &[(exec, liar.clone()), (judge, honest.clone())],
            &[colluder],
        );
        let job = s.job(&job.id).unwrap();
        assert_eq!(job.status, JobStatus::Final, "fast {fast}");
        assert_eq!(job.outputs, vec![honest_output()], "fast {fast}");
        assert_eq!(s.executor(&exec).unwrap().stake, 0);
    }
}

/// The other half of "audit pre-emption": a challenge landing in the
/// reveal's own block, before the audit draw, made the job `Disputed` and
/// the draw skipped it. The audit is drawn for challenged results too,
/// never from the dispute's parties.
#[test]
fn a_challenge_in_the_reveal_block_does_not_skip_the_audit() {
    let mut audited = 0;
    let honest = Run::new(None, LEAVES);
    let liar = Run::new(Some(4), LEAVES);
    for r in 0..120u8 {
        let (mut s, id) = submitted_job(1, r);
        let job = s.job(&id).unwrap();
        let exec = job.slots[0].executor;
        let colluder = EXECUTORS
            .iter()
            .map(|&n| addr(n))
            .find(|k| *k != exec)
            .unwrap();
        let (oh, tr) = (liar.output_hash(), liar.trace_root(&input()));
        let c = commitment(&id, &exec, &oh, &tr, &Salt::from_bytes([0; 32]));
        s = block(
            &s,
            1,
            &[signed(
                &s,
                &exec,
                TxBody::CommitResult {
                    job_id: id,
                    commitment: c,
                },
            )],
        );
        let reveal = signed(
            &s,
            &exec,
            TxBody::RevealResult {
                job_id: id,
                output_hash: oh,
                trace_root: tr,
                salt: Salt::from_bytes([0; 32]),
                outputs: liar.outputs.clone(),
            },
        );
        let pre_empt = challenge(&s, &colluder, id, &honest);
        s = block(&s, 2, &[reveal, pre_empt]);
        assert_eq!(s.job(&id).unwrap().status, JobStatus::Disputed);
        s = block(&s, r.wrapping_mul(31), &[]);
        if let Some(a) = s.job_ext(&id).unwrap().auditor {
            audited += 1;
            assert!(a != exec && a != addr(1) && a != colluder);
        }
    }
    // 10 % of 120: 12 expected (0 before the fix).
    assert!((3..=30).contains(&audited), "{audited} audits");
}

#[test]
fn audits_are_drawn_at_about_their_rate_and_never_from_the_parties() {
    let mut audited = 0;
    for r in 0..120u8 {
        let (mut s, id) = submitted_job(1, r);
        let job = s.job(&id).unwrap();
        let exec = job.slots[0].executor;
        let run = Run::new(None, LEAVES);
        let (oh, tr) = (run.output_hash(), run.trace_root(&input()));
        let c = commitment(&id, &exec, &oh, &tr, &Salt::from_bytes([0; 32]));
        s = block(
            &s,
            1,
            &[signed(
                &s,
                &exec,
                TxBody::CommitResult {
                    job_id: id,
                    commitment: c,
                },
            )],
        );
        s = block(
            &s,
            2,
            &[signed(
                &s,
                &exec,
                TxBody::RevealResult {
                    job_id: id,
                    output_hash: oh,
                    trace_root: tr,
                    salt: Salt::from_bytes([0; 32]),
                    outputs: run.outputs.clone(),
                },
            )],
        );
        s = block(&s, r.wrapping_mul(31), &[]);
        if let Some(a) = s.job_ext(&id).unwrap().auditor {
            audited += 1;
            assert!(a != exec && a != addr(1));
        }
    }
    // 10 % of 120: 12 expected.
    assert!((3..=30).contains(&audited), "{audited} audits");
}

#[test]
fn shares_and_nakamoto_coefficient() {
    let s = Shares::of(&[50, 30, 10, 5, 5]);
    assert_eq!(
        (s.top1_bps, s.top3_bps, s.top10_bps),
        (5_000, 9_000, 10_000)
    );
    assert_eq!(s.nakamoto, 2, "50 is not more than half; 50 + 30 is");
    assert_eq!(Shares::of(&[]).nakamoto, 0);
    assert_eq!(Shares::of(&[0, 0]).top1_bps, 0);
    assert_eq!(Shares::of(&[1; 10]).nakamoto, 6);
    let st = setup();
    let c = st.concentration();
    assert_eq!((c.executors, c.active), (5, 5));
    assert_eq!(c.jobs.total, 0);
    assert_eq!(c.weight.top1_bps, 2_000);
}

#[test]
fn dispute_records_are_proven_under_the_root() {
    let runs = vec![Run::new(None, LEAVES), Run::new(Some(1), LEAVES)];
    let (s, job) = run_job(&runs, &[0, 1]);
    let (value, proof) = s.prove_job_ext(&job.id);
    let value = value.unwrap();
    let key = glassbox_ledger::StateKey::JobExt(job.id).to_bytes();
    glassbox_ledger::verify_proof(&s.root(), &key, Some(&value), &proof).unwrap();
    let ext = JobExt::decode(&value).unwrap();
    assert_eq!(ext.dispute.unwrap().claims.len(), 2);
    let _ = NoReferee;
}

// ---- the adversary campaign -----------------------------------------------

/// splitmix64: the campaign's seeded choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A party of a campaign job: its key, the run it claims, and whether it
/// follows the protocol.
#[derive(Clone)]
struct Player {
    key: PublicKey,
    run: Run,
    honest: bool,
}

/// The salt of `who`'s commitment in a campaign job.
fn campaign_salt(who: &PublicKey) -> Salt {
    Salt::from_bytes([number_of(who); 32])
}

/// `who`'s commitment to `run` for job `id`.
fn campaign_commit(s: &State, id: JobId, who: &PublicKey, run: &Run) -> SignedTx {
    let c = commitment(
        &id,
        who,
        &run.output_hash(),
        &run.trace_root(&run.input),
        &campaign_salt(who),
    );
    signed(
        s,
        who,
        TxBody::CommitResult {
            job_id: id,
            commitment: c,
        },
    )
}

/// `who`'s reveal of `run` for job `id`.
fn campaign_reveal(s: &State, id: JobId, who: &PublicKey, run: &Run) -> SignedTx {
    signed(
        s,
        who,
        TxBody::RevealResult {
            job_id: id,
            output_hash: run.output_hash(),
            trace_root: run.trace_root(&run.input),
            salt: campaign_salt(who),
            outputs: run.outputs.clone(),
        },
    )
}

/// What one campaign job found.
#[derive(Default)]
struct JobReport {
    games: usize,
    /// Whether a game reached a chunk over the referee's budget.
    unrefereeable: bool,
    violations: Vec<String>,
}

/// One adversarial job on the synthetic model (issue #25, item 3): the
/// ledger draws its executors; those in `adversaries` lie with a shared
/// wrong trace (or sometimes run honestly), a colluder may pre-empt a
/// pending result with a silent challenge, a lying slot holder may
/// withhold its reveal after an honest one, adversaries in a game stay
/// silent, flood openings or move correctly at random; honest parties
/// always play. Checks after every block that the supply is conserved,
/// and at the end P1 (an honest party took part → the honest result is
/// final), P2 (no honest executor lost stake, every honest challenger
/// got its bond back) and P4 (the adversary's liars lose at least the
/// burned part of their stake).
/// What `keys` hold together: balances, stakes and unbonding stake.
fn wealth(s: &State, keys: &[PublicKey]) -> u64 {
    keys.iter()
        .map(|k| {
            let balance = s.account(k).map_or(0, |a| a.balance);
            let staked = s.executor(k).map_or(0, |e| {
                e.stake + e.unbonding.iter().map(|u| u.amount).sum::<u64>()
            });
            balance + staked
        })
        .sum()
}

/// A referee that counts the work it is asked to spend, so the campaign
/// checks each block's referee work against the budget (P3).
struct Metered {
    inner: SyntheticReferee,
    spent: std::cell::Cell<u64>,
}

impl Metered {
    fn new(inner: SyntheticReferee) -> Metered {
        Metered {
            inner,
            spent: std::cell::Cell::new(0),
        }
    }

    /// The work spent since the last call.
    fn take(&self) -> u64 {
        self.spent.replace(0)
    }
}

impl Referee for Metered {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        self.inner.leaf_count(model)
    }

    fn output_source(&self, model: &ModelId, index: u32) -> Result<OutputSource, RefereeError> {
        self.inner.output_source(model, index)
    }

    fn operands(&self, model: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError> {
        self.inner.operands(model, node)
    }

    fn output_count(&self, model: &ModelId, node: u64) -> Result<u32, RefereeError> {
        self.inner.output_count(model, node)
    }

    fn output_bytes(
        &self,
        model: &ModelId,
        node: u64,
        output: u32,
        range: (u64, u64),
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        let c = self
            .inner
            .output_bytes(model, node, output, range, inputs, opened, max_work)?;
        self.spent.set(self.spent.get() + c.work);
        Ok(c)
    }

    fn run_whole(
        &self,
        model: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<WholeRun, RefereeError> {
        let run = self
            .inner
            .run_whole(model, node, inputs, opened, max_work)?;
        self.spent.set(self.spent.get() + run.work);
        Ok(run)
    }
}

fn campaign_job(rng: &mut Rng, adversaries: &[PublicKey]) -> JobReport {
    let mut report = JobReport::default();
    let replicas = 1 + rng.below(3) as u8;
    // One job in five is on an input where operator 7 fails: the honest
    // result is that failure (Runs that fail).
    let fails = rng.chance(20);
    let (job_input, honest_run) = if fails {
        (failing_input(), Run::fails_at(FAILS_AT, LEAVES))
    } else {
        (input(), Run::new(None, LEAVES))
    };
    let (mut s, id) = submitted_job_on(job_input.clone(), replicas, rng.below(256) as u8);
    let supply = s.total_supply().unwrap();
    let job = s.job(&id).unwrap();
    let lie_at = rng.below(LEAVES);
    // A lie: wrong outputs from an operator on, or a failure claimed at
    // an operator where the run does not fail.
    let lie = if fails && rng.chance(30) {
        // The failure's trace with one leaf after it showing outputs.
        Run {
            outputs: vec![honest_output()],
            revived: Some(FAILS_AT + 1 + rng.below(LEAVES - FAILS_AT - 1)),
            ..honest_run.clone()
        }
    } else if rng.chance(25) && lie_at != FAILS_AT {
        Run::fails_at(lie_at, LEAVES).on(job_input.clone())
    } else {
        Run::new(Some(lie_at), LEAVES).on(job_input.clone())
    };
    // Some models hold an operator whose chunk is over the referee's
    // budget, at the lie or elsewhere.
    let costly = rng
        .chance(20)
        .then(|| {
            if rng.chance(50) {
                lie_at
            } else {
                rng.below(LEAVES)
            }
        })
        // An honest executor never claims a failure the referee could not
        // check (it declines the job: the gap P2 names).
        .filter(|&c| !(fails && c == FAILS_AT));
    let referee = Metered::new(SyntheticReferee(LEAVES, costly));
    let is_adv = |k: &PublicKey| adversaries.contains(k);
    let mut players: Vec<Player> = job
        .slots
        .iter()
        .map(|slot| {
            let adv = is_adv(&slot.executor);
            let run = if adv && rng.chance(80) {
                lie.clone()
            } else {
                honest_run.clone()
            };
            Player {
                key: slot.executor,
                run,
                honest: !adv,
            }
        })
        .collect();
    let stakes_before: Vec<(PublicKey, u64)> = EXECUTORS
        .iter()
        .map(|&n| (addr(n), s.executor(&addr(n)).unwrap().stake))
        .collect();
    let adversary_before = wealth(&s, adversaries);
    // Every slot commits; a lying adversary whose job has an honest slot
    // may withhold its reveal once it sees the honest one (it is then
    // replaced, and the harness plays the replacement's slot below).
    let commits: Vec<SignedTx> = players
        .iter()
        .map(|p| campaign_commit(&s, id, &p.key, &p.run))
        .collect();
    s = block(&s, 1, &commits);
    let someone_honest = players.iter().any(|p| p.honest);
    let withheld: Vec<PublicKey> = players
        .iter()
        .filter(|p| {
            !p.honest && someone_honest && p.run.claim() != honest_run.claim() && rng.chance(40)
        })
        .map(|p| p.key)
        .collect();
    let reveals: Vec<SignedTx> = players
        .iter()
        .filter(|p| !withheld.contains(&p.key))
        .map(|p| campaign_reveal(&s, id, &p.key, &p.run))
        .collect();
    // A reveal the ledger refuses is a miss (as the node's would be).
    s = s.apply_block_with(ctx(&s), &reveals, &referee).unwrap().0;
    assert_restores(&s);
    // The slot holders who committed a lie (P4 below).
    let mut liars: Vec<PublicKey> = players
        .iter()
        .filter(|p| !p.honest && p.run.claim() != honest_run.claim())
        .map(|p| p.key)
        .collect();
    let others: Vec<PublicKey> = EXECUTORS
        .iter()
        .map(|&n| addr(n))
        .filter(|k| players.iter().all(|p| &p.key != k))
        .collect();
    let mut challengers: Vec<(PublicKey, u64)> = Vec::new();
    // An honest party that tried to enter counts for P1 even if the
    // ledger refused it: that refusal is what P1 is about.
    let mut honest_tried = false;
    let challenge_by = |s: &State, who: &PublicKey, run: &Run| challenge(s, who, id, run);
    if replicas == 1 {
        // A colluder pre-empts, with the truth or garbage, and goes silent.
        if let Some(colluder) = others.iter().find(|k| is_adv(k))
            && rng.chance(60)
        {
            let run = if rng.chance(50) {
                honest_run.clone()
            } else {
                Run::new(Some(rng.below(LEAVES)), LEAVES).on(job_input.clone())
            };
            let t = challenge_by(&s, colluder, &run);
            let (next, _) = s.apply_block_with(ctx(&s), &[t], &referee).unwrap();
            s = next;
            players.push(Player {
                key: *colluder,
                run,
                honest: false,
            });
        }
        // An honest watcher enters when the result it sees is wrong or
        // already challenged.
        if let Some(watcher) = others.iter().find(|k| !is_adv(k))
            && rng.chance(70)
        {
            let job = s.job(&id).unwrap();
            let wrong =
                job.agreed().map(|r| (r.output_hash, r.trace_root)) != Some(honest_run.claim());
            if wrong || job.status == JobStatus::Disputed {
                honest_tried = true;
                let before = s.account(watcher).unwrap().balance;
                let t = challenge_by(&s, watcher, &honest_run);
                let (next, outcomes) = s.apply_block_with(ctx(&s), &[t], &referee).unwrap();
                if outcomes[0].result.is_ok() {
                    challengers.push((*watcher, before));
                    players.push(Player {
                        key: *watcher,
                        run: honest_run.clone(),
                        honest: true,
                    });
                }
                s = next;
            }
        }
    }
    // Play to the end.
    for _ in 0..400 {
        assert_eq!(s.total_supply(), Some(supply), "supply changed");
        let job = s.job(&id).unwrap();
        if !matches!(
            job.status,
            JobStatus::Disputed | JobStatus::Pending | JobStatus::Running
        ) {
            break;
        }
        let mut txs = Vec::new();
        // Slots of replacements drawn for a missed one: they commit, then
        // reveal (an adversary lies as the first ones did).
        if job.status == JobStatus::Running {
            for slot in &job.slots {
                let k = slot.executor;
                if !players.iter().any(|p| p.key == k) {
                    let adv = is_adv(&k);
                    let run = if adv && rng.chance(80) {
                        lie.clone()
                    } else {
                        honest_run.clone()
                    };
                    if adv && run.claim() != honest_run.claim() {
                        liars.push(k);
                    }
                    players.push(Player {
                        key: k,
                        run,
                        honest: !adv,
                    });
                }
                let Some(p) = players.iter().find(|p| p.key == k) else {
                    continue;
                };
                if slot.commitment.is_none() {
                    txs.push(campaign_commit(&s, id, &k, &p.run));
                } else if slot.reveal.is_none() && job.all_committed() && !withheld.contains(&k) {
                    txs.push(campaign_reveal(&s, id, &k, &p.run));
                }
            }
        }
        if let Some(ext) = s.job_ext(&id)
            && let Some(d) = ext.dispute.as_ref()
        {
            // The adversary's moves come first in the block; an honest
            // member posts its own move whatever others of its claim
            // posted (a duplicate is refused, fee only), as a node does.
            let mut order: Vec<&Player> = players.iter().filter(|p| !p.honest).collect();
            order.extend(players.iter().filter(|p| p.honest));
            for p in order {
                let Some(claim) = d.claim_of(&p.key) else {
                    continue;
                };
                let step = if p.honest {
                    p.run.step(&ext, claim)
                } else {
                    match rng.below(3) {
                        0 => None,
                        1 => p.run.step(&ext, claim),
                        // Openings of nodes the referee does not need
                        // (refused).
                        _ => match d.game.as_ref().and_then(|g| stage_node(&g.stage)) {
                            Some(i) if i > 1 => Some(Step::Openings {
                                items: (0..(i - 1).min(16)).map(|n| p.run.opening(n)).collect(),
                            }),
                            _ => None,
                        },
                    }
                };
                if let Some(step) = step {
                    txs.push(signed(&s, &p.key, TxBody::DisputeStep { job_id: id, step }));
                }
            }
        }
        let c = BlockContext {
            randomness: [rng.below(256) as u8; 32],
            ..ctx(&s)
        };
        s = s.apply_block_with(c, &txs, &referee).unwrap().0;
        assert_restores(&s);
        let spent = referee.take();
        if spent > s.params().max_referee_work_per_block {
            report
                .violations
                .push(format!("P3: a block spent {spent} units of referee work"));
        }
    }
    let job = s.job(&id).unwrap();
    let ext = s.job_ext(&id);
    report.games = ext
        .as_ref()
        .and_then(|e| e.dispute.as_ref())
        .map_or(0, |d| d.verdicts.len());
    let honest_took_part = honest_tried || players.iter().any(|p| p.honest);
    // A chunk over the referee's budget fails the job, slashing nobody.
    let unrefereeable = ext
        .as_ref()
        .and_then(|e| e.dispute.as_ref())
        .is_some_and(|d| {
            d.verdicts
                .iter()
                .any(|v| v.reason == VerdictReason::Unrefereeable)
        });
    report.unrefereeable = unrefereeable;
    let mut violation = |what: String| report.violations.push(what);
    if matches!(
        job.status,
        JobStatus::Pending | JobStatus::Disputed | JobStatus::Running
    ) {
        violation(format!("job not decided: {:?}", job.status));
    }
    let result = ext.as_ref().and_then(|e| e.dispute.as_ref()).map_or_else(
        || job.agreed().map(|r| (r.output_hash, r.trace_root)),
        |d| {
            let w = d.claims.get(usize::from(d.winner?))?;
            Some((w.output_hash, w.trace_root))
        },
    );
    let honest_final = job.status == JobStatus::Final && result == Some(honest_run.claim());
    let failed_unrefereeable = job.status == JobStatus::Failed && unrefereeable;
    if honest_took_part && !honest_final && !failed_unrefereeable {
        violation(format!(
            "P1: an honest party took part, the job is {:?} with {} the honest result{}",
            job.status,
            if result == Some(honest_run.claim()) {
                "exactly"
            } else {
                "not"
            },
            if fails { " (a failing run)" } else { "" }
        ));
    }
    for (k, before) in &stakes_before {
        let after = s.executor(k).unwrap().stake;
        if !is_adv(k) && after < *before {
            violation(format!(
                "P2: honest executor {k} lost stake {before} -> {after}"
            ));
        }
    }
    for (k, before) in &challengers {
        let fees = FEE * (s.account(k).unwrap().nonce);
        if s.account(k).unwrap().balance + fees < *before {
            violation(format!("P2: honest challenger {k} lost its bond"));
        }
    }
    // P4: with an honest party in the job, every slot holder that
    // committed a lie is caught, and loses at least the burned part of its
    // stake, `(1 − dispute_reward_bps)` of it, whether it revealed or
    // withheld, whatever its other identities did: they may take back the
    // winners' reward and at most the job's price, never more.
    let slashed: u64 = stakes_before
        .iter()
        .filter(|(k, _)| liars.contains(k))
        .map(|(_, before)| *before)
        .sum();
    if slashed > 0 && honest_took_part && !unrefereeable {
        let kept = 10_000 - u64::from(s.params().dispute_reward_bps);
        let loss_floor = slashed / 10_000 * kept;
        let price = job.price_per_replica * u64::from(job.replicas);
        let after = wealth(&s, adversaries);
        if after + loss_floor > adversary_before + price {
            violation(format!(
                "P4: the adversary lost {} with {slashed} staked by its liars (floor {loss_floor})",
                adversary_before.saturating_sub(after)
            ));
        }
    }
    if s.total_supply() != Some(supply) {
        violation("supply changed".into());
    }
    report
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The adversary campaign (`scripts/adversary.sh` runs it long):
/// `GLASSBOX_ADV_JOBS` jobs over `GLASSBOX_ADV_SEEDS` seeds from
/// `GLASSBOX_ADV_SEED`; prints one JSON line and fails on any violation,
/// naming the seed that reproduces it.
/// `jobs` campaign jobs spread over `seeds` seeds from `first`: the jobs
/// run, the games played and the violations found, each naming its seed
/// and job.
fn campaign(jobs: u64, seeds: u64, first: u64) -> (u64, usize, u64, Vec<String>) {
    let (mut games, mut done, mut unrefereeable) = (0usize, 0u64, 0u64);
    let mut violations: Vec<String> = Vec::new();
    for seed in first..first + seeds {
        let mut rng = Rng(seed);
        // 1 to 4 of the 5 executors are the adversary's.
        let n_adv = 1 + rng.below(4) as usize;
        let mut pool: Vec<PublicKey> = EXECUTORS.iter().map(|&n| addr(n)).collect();
        let mut adversaries = Vec::new();
        for _ in 0..n_adv {
            let i = rng.below(pool.len() as u64) as usize;
            adversaries.push(pool.remove(i));
        }
        let per_seed = jobs / seeds + u64::from(seed - first < jobs % seeds);
        for j in 0..per_seed {
            let r = campaign_job(&mut rng, &adversaries);
            games += r.games;
            done += 1;
            unrefereeable += u64::from(r.unrefereeable);
            for v in r.violations {
                violations.push(format!("seed {seed} job {j}: {v}"));
            }
        }
    }
    (done, games, unrefereeable, violations)
}

/// The campaign can fail (issue #25, item 3): with any one finding's fix
/// switched off (`glassbox_ledger::switches`, test-only) a short campaign
/// reports a violation, naming the seed that reproduces it.
#[test]
fn the_campaign_finds_each_finding_with_its_fix_off() {
    for fix in Fix::ALL {
        switches::set_off(fix, true);
        let (_, _, _, violations) = campaign(1_000, 20, 1);
        switches::set_off(fix, false);
        assert!(
            violations.first().is_some_and(|v| v.starts_with("seed ")),
            "{fix:?} off: no violation in 1,000 jobs"
        );
    }
}

#[test]
fn adversary_campaign() {
    let jobs = env_u64("GLASSBOX_ADV_JOBS", 5_000).max(1);
    let seeds = env_u64("GLASSBOX_ADV_SEEDS", 50).clamp(1, jobs);
    let first = env_u64("GLASSBOX_ADV_SEED", 1);
    let start = std::time::Instant::now();
    let (done, games, unrefereeable, violations) = campaign(jobs, seeds, first);
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{}",
            serde_json::json!({
                "jobs": done,
                "games": games,
                "unrefereeable": unrefereeable,
                "seeds": seeds,
                "first_seed": first,
                "violations": violations.len(),
                "jobs_per_s": (done as f64 / secs.max(1e-9) * 10.0).round() / 10.0,
            })
        );
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

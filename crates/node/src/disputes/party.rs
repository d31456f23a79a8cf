//! An executor's side of a dispute (docs/disputes.md, "The game"): its run
//! of a job, kept whole (every operator's outputs), and the move it owes at
//! each stage: opening its trace root, splitting the leaf range in
//! question, stating the outputs of the leaf where the traces part,
//! splitting that output's chunk range, opening the operands the referee
//! needs.
//!
//! A party keeps every intermediate tensor of the run, so its memory is
//! that of the model's activations; the node builds one only for a job in
//! dispute.
//!
//! A run that fails is a result too (docs/disputes.md, "Runs that fail"):
//! when the whole run fails, the party runs the model operator by
//! operator, as the referee runs each one, and claims the first operator
//! that fails (no outputs; failed leaves from it on).

use std::sync::Arc;

use glassbox_ledger::dispute::RefereeError;
use glassbox_ledger::dispute::{LeafOpening, LeafOutput, MAX_OPENINGS_PER_TX, Stage, Step, Target};
use glassbox_ledger::{JobExt, Referee, outputs_hash};
use glassbox_primitives::{
    MerkleNode, OutputHash, TensorHash, TraceLeaf, TraceRoot, chunks, trace,
};
use glassbox_runtime::trace::{audit_path, merkle_root, node_leaf_from_hashes};
use glassbox_runtime::{Data, Session, Tensor, formats};
use glassbox_types::PublicKey;

use crate::disputes::referee::{MemoryData, RuntimeReferee, operand_nodes, producers};

/// Why a party could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// An input is not a canonical tensor encoding.
    #[error("job input {index}: {reason}")]
    BadInput {
        /// Its position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The runtime failed.
    #[error("running the model: {0}")]
    Run(#[from] glassbox_runtime::Error),
    /// The lie cannot be told there.
    #[error("node {node}: {reason}")]
    NoLie {
        /// The node.
        node: usize,
        /// Why.
        reason: &'static str,
    },
    /// A graph output has no source in the run.
    #[error("graph output {0} was not computed")]
    MissingOutput(usize),
    /// The run fails at an operator the referee cannot run whole within
    /// a block's budget, so the failure could not be defended.
    #[error(
        "the run fails at node {node}, but running it whole costs {work} units of referee \
         work, over the {max_work} a block allows"
    )]
    FailureOverBudget {
        /// The failing node.
        node: usize,
        /// Its price.
        work: u64,
        /// The budget.
        max_work: u64,
    },
}

/// The step bytes [`Party::next_step`] allows its openings.
pub const DEFAULT_STEP_BYTES: usize = 16 << 10;

/// What a `DisputeStep` transaction adds around its step, at most
/// (signature, key, nonce, fee, job id, tags and counts).
pub fn step_overhead() -> usize {
    512
}

/// The encoded bytes of one leaf opening with `outputs` outputs and a
/// path of `path` levels.
pub fn opening_bytes(outputs: usize, path: usize) -> usize {
    8 + 4 + 32 * outputs + 4 + 32 * path
}

/// The encoded bytes of a leaf statement of `outputs` outputs.
pub fn leaf_step_bytes(outputs: usize) -> usize {
    1 + 4 + 40 * outputs
}

/// A job's result as an executor claims it ([`job_result`]).
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The outputs' canonical encodings (none for a failure).
    pub outputs: Vec<Vec<u8>>,
    /// Their [`outputs_hash`].
    pub output_hash: OutputHash,
    /// The trace root.
    pub trace_root: TraceRoot,
    /// The operator that fails, for a failure.
    pub failed: Option<usize>,
}

/// Runs a job (`inputs`: its canonical encodings) for its result: the
/// run's outputs and trace root, or, when the run fails at an operator
/// (that operator fails run alone on the outputs of the earlier ones, as
/// the referee runs it), the failure (docs/disputes.md, "Runs that
/// fail"). A run that fails otherwise (a limit of the whole run) is the
/// run's error, and no result; so is a failure whose operator costs more
/// than `max_referee_work` to run whole (the chain's
/// `max_referee_work_per_block`: a failure the referee cannot check
/// loses). Keeps no intermediate tensor unless the run fails.
pub fn job_result(
    session: Arc<Session>,
    inputs: &[Vec<u8>],
    max_referee_work: u64,
) -> Result<JobResult, PartyError> {
    match session.run(decode_inputs(&session, inputs)?) {
        Ok(run) => {
            let hashes: Vec<TensorHash> = run.outputs.iter().map(|(_, t)| t.hash()).collect();
            Ok(JobResult {
                outputs: run
                    .outputs
                    .iter()
                    .map(|(_, t)| formats::canonical_encode(t))
                    .collect(),
                output_hash: outputs_hash(&hashes),
                trace_root: run.trace.root(),
                failed: None,
            })
        }
        // Decoded again only on this rare path, so a working run (every
        // job) copies no input.
        Err(e @ glassbox_runtime::Error::Node { .. }) => {
            let tensors = decode_inputs(&session, inputs)?;
            let p = Party::run_failing(session, tensors, inputs, max_referee_work, e)?;
            Ok(JobResult {
                outputs: Vec::new(),
                output_hash: p.output_hash(),
                trace_root: p.trace_root,
                failed: p.failed,
            })
        }
        Err(e) => Err(PartyError::Run(e)),
    }
}

/// One executor's run of a job.
pub struct Party {
    session: Arc<Session>,
    inputs: Vec<Tensor>,
    /// Each node's bound outputs, in trace order.
    values: Vec<Vec<Tensor>>,
    leaves: Vec<TraceLeaf>,
    trace_root: TraceRoot,
    outputs: Vec<Tensor>,
    /// The operator that fails, for a failed run.
    failed: Option<usize>,
}

fn decode_inputs(session: &Session, inputs: &[Vec<u8>]) -> Result<Vec<Tensor>, PartyError> {
    let max = session.model().limits().max_tensor_elements;
    inputs
        .iter()
        .enumerate()
        .map(|(index, b)| {
            formats::canonical_decode(b, max).map_err(|e| PartyError::BadInput {
                index,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Flips the lowest bit of element `element % len` of `t` (a `false` bool
/// becomes `true` and back); `None` for an empty tensor.
fn corrupt(t: &Tensor, element: usize) -> Option<Tensor> {
    if t.is_empty() {
        return None;
    }
    let i = element % t.len();
    let mut data = t.data().clone();
    match &mut data {
        Data::F32(v) => v[i] = f32::from_bits(v[i].to_bits() ^ 1),
        Data::F64(v) => v[i] = f64::from_bits(v[i].to_bits() ^ 1),
        Data::I64(v) => v[i] ^= 1,
        Data::I32(v) => v[i] ^= 1,
        Data::I8(v) => v[i] ^= 1,
        Data::U8(v) => v[i] ^= 1,
        Data::Bool(v) => v[i] = !v[i],
    }
    Tensor::new(t.shape().to_vec(), data).ok()
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party")
            .field("leaves", &self.leaves.len())
            .field("trace_root", &self.trace_root)
            .finish()
    }
}

impl Party {
    /// Runs the job (`inputs`: its canonical encodings) honestly. When
    /// the run fails, the result is the failure of the first operator
    /// that fails run alone ([`Party::failed`]); if none does (the whole
    /// run failed for another reason, such as a limit), the run's error.
    pub fn run(session: Arc<Session>, inputs: &[Vec<u8>]) -> Result<Party, PartyError> {
        Party::run_within(session, inputs, u64::MAX)
    }

    /// [`Party::run`] on a chain whose blocks spend at most
    /// `max_referee_work` on the referee: a failure whose operator costs
    /// more to run whole is [`PartyError::FailureOverBudget`], never
    /// claimed ([`job_result`]).
    pub fn run_within(
        session: Arc<Session>,
        inputs: &[Vec<u8>],
        max_referee_work: u64,
    ) -> Result<Party, PartyError> {
        let tensors = decode_inputs(&session, inputs)?;
        let n = session.model().nodes().len();
        let mut values: Vec<Vec<Tensor>> = vec![Vec::new(); n];
        let out = match session.run_observed(tensors.clone(), &mut |i, outs| {
            if let Some(v) = values.get_mut(i) {
                *v = outs.iter().map(|t| (*t).clone()).collect();
            }
        }) {
            Ok(out) => out,
            Err(e @ glassbox_runtime::Error::Node { .. }) => {
                return Party::run_failing(session, tensors, inputs, max_referee_work, e);
            }
            Err(e) => return Err(PartyError::Run(e)),
        };
        Ok(Party {
            leaves: out.trace.leaves.clone(),
            trace_root: out.trace.root(),
            outputs: out.outputs.into_iter().map(|(_, t)| t).collect(),
            session,
            inputs: tensors,
            values,
            failed: None,
        })
    }

    /// The run operator by operator, each on the outputs of the earlier
    /// ones as the referee runs it (`Session::run_node`), after the whole
    /// run failed at an operator with `err`: the failure of the first
    /// operator that fails, with the true leaves before it and failed
    /// leaves (no outputs) from it on. `err` if every operator runs or
    /// the operators' costs add up past the runtime's `max_total_flops`
    /// (so a run over its limit costs no more here than it did whole);
    /// [`PartyError::FailureOverBudget`] if the referee could not run the
    /// failing operator within `max_referee_work`.
    fn run_failing(
        session: Arc<Session>,
        inputs: Vec<Tensor>,
        encoded: &[Vec<u8>],
        max_referee_work: u64,
        err: glassbox_runtime::Error,
    ) -> Result<Party, PartyError> {
        let model = Arc::clone(session.model());
        let producers = producers(&model);
        let n = model.nodes().len();
        let limit = model.limits().max_total_flops;
        let mut p = Party {
            session,
            inputs,
            values: vec![Vec::new(); n],
            leaves: Vec::with_capacity(n),
            trace_root: TraceRoot::default(),
            outputs: Vec::new(),
            failed: None,
        };
        let mut flops = 0u64;
        for i in 0..n {
            let args = p.node_inputs(i, &producers);
            // An operator whose outputs cannot be inferred fails, as the
            // referee finds (`Referee::run_whole`).
            let Ok(cost) = p.session.node_cost(i, &args) else {
                p.failed = Some(i);
                break;
            };
            flops = flops.saturating_add(cost.flops);
            if flops > limit {
                return Err(PartyError::Run(err));
            }
            match p.session.run_node(i, &args) {
                Ok((outs, leaf)) => {
                    p.values[i] = outs;
                    p.leaves.push(leaf);
                }
                Err(_) => {
                    p.failed = Some(i);
                    break;
                }
            }
        }
        let Some(failed) = p.failed else {
            return Err(PartyError::Run(err));
        };
        // The referee's own answer, on this run's operands: a failure it
        // finds within the budget, or nothing claimed.
        let mut data = MemoryData::default();
        data.insert_session(Arc::clone(&p.session));
        for j in operand_nodes(&model, &producers, failed) {
            for t in &p.values[j] {
                data.insert_tensor(t.clone());
            }
        }
        let opened = |node: u64, slot: u32| {
            p.values
                .get(usize::try_from(node).ok()?)?
                .get(usize::try_from(slot).ok()?)
                .map(Tensor::hash)
        };
        let referee = RuntimeReferee { data: &data };
        match referee.run_whole(
            &model.id(),
            failed as u64,
            encoded,
            &opened,
            max_referee_work,
        ) {
            Ok(run) if run.fails => {}
            Err(RefereeError::OverBudget { work, max_work }) => {
                return Err(PartyError::FailureOverBudget {
                    node: failed,
                    work,
                    max_work,
                });
            }
            _ => return Err(PartyError::Run(err)),
        }
        p.leaves
            .extend((failed..n).map(|k| trace::leaf(k as u64, std::iter::empty())));
        p.trace_root = trace::root(
            &model.id(),
            &p.inputs.iter().map(Tensor::hash).collect::<Vec<_>>(),
            n as u64,
            &merkle_root(&p.leaves),
        );
        Ok(p)
    }

    /// The operator that fails, when the result is a failure (no outputs;
    /// docs/disputes.md, "Runs that fail").
    pub fn failed(&self) -> Option<usize> {
        self.failed
    }

    /// Fault injection for tests and benchmarks (the node never lies): the
    /// run with node `node`'s first non-empty output corrupted (the lowest
    /// bit of element `element` modulo its length flipped) and everything
    /// downstream recomputed from it, operator by operator, so the lie
    /// propagates as a real wrong operator's would.
    pub fn run_lying(
        session: Arc<Session>,
        inputs: &[Vec<u8>],
        node: usize,
        element: usize,
    ) -> Result<Party, PartyError> {
        let mut p = Party::run(session, inputs)?;
        let outs = p.values.get_mut(node).ok_or(PartyError::NoLie {
            node,
            reason: "out of range",
        })?;
        let (slot, bad) = outs
            .iter()
            .enumerate()
            .find_map(|(s, t)| corrupt(t, element).map(|b| (s, b)))
            .ok_or(PartyError::NoLie {
                node,
                reason: "it has no non-empty output",
            })?;
        outs[slot] = bad;
        let model = Arc::clone(p.session.model());
        let producers = producers(&model);
        for i in node..model.nodes().len() {
            if i > node {
                let args = p.node_inputs(i, &producers);
                let (outs, _) = p.session.run_node(i, &args)?;
                p.values[i] = outs;
            }
            let hashes: Vec<TensorHash> = p.values[i].iter().map(Tensor::hash).collect();
            p.leaves[i] = node_leaf_from_hashes(i, &hashes);
        }
        p.trace_root = trace::root(
            &model.id(),
            &p.inputs.iter().map(Tensor::hash).collect::<Vec<_>>(),
            p.leaves.len() as u64,
            &merkle_root(&p.leaves),
        );
        let mut outputs = Vec::with_capacity(model.output_ids().len());
        for (o, vid) in model.output_ids().iter().enumerate() {
            outputs.push(
                p.value(*vid, &producers)
                    .ok_or(PartyError::MissingOutput(o))?,
            );
        }
        p.outputs = outputs;
        Ok(p)
    }

    /// Fault injection for tests (the node never lies): this run's trace
    /// and outputs claimed for a job on `inputs` (the trace root
    /// recomputed over their hashes), as a liar that ran other inputs
    /// would claim them.
    pub fn claimed_for(mut self, inputs: &[Vec<u8>]) -> Party {
        let hashes: Vec<TensorHash> = inputs.iter().map(|b| blake3::hash(b).into()).collect();
        self.trace_root = trace::root(
            &self.session.model().id(),
            &hashes,
            self.leaves.len() as u64,
            &merkle_root(&self.leaves),
        );
        self
    }

    /// The tensor of value `vid` in this run.
    fn value(
        &self,
        vid: usize,
        producers: &std::collections::HashMap<usize, (usize, usize)>,
    ) -> Option<Tensor> {
        let m = self.session.model();
        if let Some(t) = m.constant(vid) {
            return Some(t.clone());
        }
        if let Some(k) = m.input_ids().iter().position(|&i| i == vid) {
            return self.inputs.get(k).cloned();
        }
        let &(j, s) = producers.get(&vid)?;
        self.values.get(j)?.get(s).cloned()
    }

    fn node_inputs(
        &self,
        i: usize,
        producers: &std::collections::HashMap<usize, (usize, usize)>,
    ) -> Vec<Option<Arc<Tensor>>> {
        self.session.model().nodes()[i]
            .inputs
            .iter()
            .map(|v| v.and_then(|v| self.value(v, producers)).map(Arc::new))
            .collect()
    }

    /// The session the run used.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// [`outputs_hash`] of the run's outputs.
    pub fn output_hash(&self) -> OutputHash {
        let hashes: Vec<TensorHash> = self.outputs.iter().map(Tensor::hash).collect();
        outputs_hash(&hashes)
    }

    /// The run's trace root.
    pub fn trace_root(&self) -> TraceRoot {
        self.trace_root
    }

    /// The outputs' canonical encodings.
    pub fn outputs(&self) -> Vec<Vec<u8>> {
        self.outputs.iter().map(formats::canonical_encode).collect()
    }

    /// The trace leaves.
    pub fn leaves(&self) -> &[TraceLeaf] {
        &self.leaves
    }

    fn opening(&self, node: usize) -> Option<LeafOpening> {
        Some(LeafOpening {
            node: node as u64,
            outputs: self.values.get(node)?.iter().map(Tensor::hash).collect(),
            path: audit_path(&self.leaves, node)?,
        })
    }

    /// The earlier nodes whose outputs the referee needs once the game's
    /// point of difference is known, in order (none before).
    fn operand_nodes(&self, stage: &Stage) -> Vec<usize> {
        let m = self.session.model();
        let producers = producers(m);
        let node = match stage {
            Stage::Leaf { node } | Stage::Chunks { node, .. } => Some(*node),
            Stage::Referee { target } => target.node(),
            Stage::Open | Stage::Bisect { .. } => None,
        };
        let mut nodes: Vec<usize> = match (node, stage) {
            (Some(i), _) => usize::try_from(i)
                .map(|i| operand_nodes(m, &producers, i))
                .unwrap_or_default(),
            // A failing side shows its failed leaf.
            (
                None,
                Stage::Referee {
                    target: Target::Failure,
                },
            ) => self.failed.into_iter().collect(),
            (
                None,
                Stage::Referee {
                    target: Target::Output(o),
                },
            ) => usize::try_from(*o)
                .ok()
                .and_then(|o| m.output_ids().get(o))
                .and_then(|v| producers.get(v).map(|p| vec![p.0]))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        // Below the operator in question, a failed run's first failed
        // leaf decides against outputs, and a `fails` question needs the
        // leaf before its operator (docs/disputes.md, "Runs that fail").
        if let (Some(f), Some(i)) = (self.failed, node)
            && (f as u64) < i
        {
            nodes.push(f);
        }
        if let Stage::Referee {
            target: Target::Fails { node },
        } = stage
            && let Some(prev) = node.checked_sub(1).and_then(|p| usize::try_from(p).ok())
        {
            nodes.push(prev);
        }
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The hash of chunks `[lo, hi)` of output `output` of `node`'s
    /// canonical encoding (docs/disputes.md, "Chunks").
    fn chunk_hash(&self, node: u64, output: u32, lo: u64, hi: u64) -> Option<MerkleNode> {
        let t = self
            .values
            .get(usize::try_from(node).ok()?)?
            .get(usize::try_from(output).ok()?)?;
        let bytes = formats::canonical_encode(t);
        let len = bytes.len() as u64;
        let start = usize::try_from(lo.checked_mul(chunks::CHUNK_BYTES)?).ok()?;
        let end = usize::try_from(hi.checked_mul(chunks::CHUNK_BYTES)?.min(len)).ok()?;
        chunks::subtree_hash(bytes.get(start..end)?, lo, false)
    }

    /// The move `me` owes now in the job's dispute: `None` when it is not
    /// in the current game, has already made the round's move and the
    /// referee lacks no operand it holds, or nothing is needed from it.
    pub fn next_step(&self, ext: &JobExt, me: &PublicKey) -> Option<Step> {
        self.next_step_within(ext, me, DEFAULT_STEP_BYTES)
    }

    /// [`Party::next_step`] whose openings encode in at most `max_bytes`
    /// (one opening always fits for a model that passes
    /// [`crate::disputes::referee::refereeable`]).
    pub fn next_step_within(&self, ext: &JobExt, me: &PublicKey, max_bytes: usize) -> Option<Step> {
        let d = ext.dispute.as_ref()?;
        let game = d.game.as_ref()?;
        let claim = d.claim_of(me)?;
        let side = if usize::from(game.a.claim) == claim {
            &game.a
        } else if usize::from(game.b.claim) == claim {
            &game.b
        } else {
            return None;
        };
        match game.stage {
            Stage::Open if !side.moved => {
                return Some(Step::Open {
                    leaves: self.leaves.len() as u64,
                    leaves_root: merkle_root(&self.leaves),
                });
            }
            Stage::Bisect { lo, hi } if !side.moved => {
                let (lo, hi) = (usize::try_from(lo).ok()?, usize::try_from(hi).ok()?);
                if hi > self.leaves.len() || hi < lo + 2 {
                    return None;
                }
                let k = glassbox_ledger::dispute::split((hi - lo) as u64) as usize;
                return Some(Step::Split {
                    left: merkle_root(&self.leaves[lo..lo + k]),
                    right: merkle_root(&self.leaves[lo + k..hi]),
                });
            }
            Stage::Leaf { node } if !side.moved => {
                // A failed run shows its first failed leaf before stating
                // a later one, so the game can never reach the referee
                // about a later operator without it (issue #25 review: an
                // operator after the failure that reads only earlier
                // values would run, and the failure lose).
                if let Some(f) = self.failed.filter(|&f| (f as u64) < node)
                    && !game.opened.iter().any(|o| o.node == f as u64)
                {
                    return Some(Step::Openings {
                        items: vec![self.opening(f)?],
                    });
                }
                let outs = self.values.get(usize::try_from(node).ok()?)?;
                return Some(Step::Leaf {
                    outputs: outs
                        .iter()
                        .map(|t| LeafOutput {
                            hash: t.hash(),
                            len: formats::canonical_len(t),
                        })
                        .collect(),
                });
            }
            Stage::Chunks {
                node,
                output,
                lo,
                hi,
                ..
            } if !side.moved => {
                if hi < lo + 2 {
                    return None;
                }
                let k = glassbox_ledger::dispute::split(hi - lo);
                return Some(Step::Split {
                    left: self.chunk_hash(node, output, lo, lo + k)?,
                    right: self.chunk_hash(node, output, lo + k, hi)?,
                });
            }
            _ => {}
        }
        // The round's move is made: open what the referee still lacks.
        let mut used = 5usize;
        let items: Vec<LeafOpening> = self
            .operand_nodes(&game.stage)
            .into_iter()
            .filter(|j| !game.opened.iter().any(|o| o.node == *j as u64))
            .take(MAX_OPENINGS_PER_TX)
            .filter_map(|j| self.opening(j))
            .take_while(|o| {
                used += opening_bytes(o.outputs.len(), o.path.len());
                used <= max_bytes
            })
            .collect();
        (!items.is_empty()).then_some(Step::Openings { items })
    }

    /// The tensors behind the openings of `step` (to upload off-ledger
    /// before posting it).
    pub fn opened_tensors(&self, step: &Step) -> Vec<Tensor> {
        match step {
            Step::Openings { items } => items
                .iter()
                .filter_map(|o| self.values.get(usize::try_from(o.node).ok()?))
                .flatten()
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }
}

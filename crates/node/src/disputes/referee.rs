//! The validators' referee in a dispute (docs/disputes.md, "Referee"):
//! computes one chunk of one operator's output with the deterministic
//! runtime (only the rows or planes that chunk covers, where the operator
//! allows), from the job's inputs, the model's constants and the opened
//! outputs of earlier operators (tensors held off-ledger, looked up by
//! hash).
//!
//! Every answer is a pure function of the model, the job and the opened
//! hashes; only the *availability* of the model and tensors depends on this
//! node, and a missing one is [`RefereeError::Unavailable`], never a verdict.

use std::collections::HashMap;
use std::sync::Arc;

use glassbox_ledger::Referee;
use glassbox_ledger::dispute::{
    ChunkBytes, MAX_LEAF_OUTPUTS, MAX_OPENINGS, MAX_PATH, OutputSource, RefereeError, WholeRun,
};
use glassbox_primitives::TensorHash;
use glassbox_runtime::{Model, Session, Tensor, formats};
use glassbox_types::ModelId;

/// Where the referee finds models and off-ledger tensors.
pub trait RefereeData: Send + Sync {
    /// A loaded session of the model, if this node holds the model.
    fn session(&self, model: &ModelId) -> Option<Arc<Session>>;
    /// A tensor by canonical hash, if held.
    fn tensor(&self, hash: &TensorHash) -> Option<Tensor>;
    /// The length of a held tensor's canonical encoding, without decoding
    /// it.
    fn tensor_len(&self, hash: &TensorHash) -> Option<u64>;
}

/// What produces each value of a model: `(node, position among the node's
/// bound outputs)`, the position a trace leaf lists its output hash at.
pub fn producers(model: &Model) -> HashMap<usize, (usize, usize)> {
    let mut map = HashMap::new();
    for (j, node) in model.nodes().iter().enumerate() {
        for (s, vid) in node.outputs.iter().flatten().enumerate() {
            map.insert(*vid, (j, s));
        }
    }
    map
}

/// The earlier nodes whose outputs node `index` of `model` reads (sorted,
/// distinct; constants and graph inputs have no producer): the openings a
/// game about it takes (`Referee::operands`), the ones a party opens and
/// the ones [`refereeable`] counts. `producers` is [`producers`]`(model)`.
pub fn operand_nodes(
    model: &Model,
    producers: &HashMap<usize, (usize, usize)>,
    index: usize,
) -> Vec<usize> {
    let Some(n) = model.nodes().get(index) else {
        return Vec::new();
    };
    let mut nodes: Vec<usize> = n
        .inputs
        .iter()
        .flatten()
        .filter_map(|v| producers.get(v).map(|p| p.0))
        .filter(|&j| j < index)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Whether every operator of `model` can be refereed on a chain whose
/// transactions hold at most `max_tx_bytes`: at most [`MAX_LEAF_OUTPUTS`]
/// bound outputs, stated in one transaction, operands from at most
/// [`MAX_OPENINGS`] earlier operators (a game keeps that many openings),
/// each operand's opening (with the longest audit path) in one
/// transaction. An executor neither answers nor audits
/// a job of a model that fails this: it could not defend its result, and
/// declining costs it the miss penalty, not its stake (docs/disputes.md,
/// P1 and P2).
pub fn refereeable(model: &Model, max_tx_bytes: u32) -> Result<(), String> {
    use crate::disputes::party::{leaf_step_bytes, opening_bytes, step_overhead};
    let producers = producers(model);
    let room = usize::try_from(max_tx_bytes)
        .unwrap_or(usize::MAX)
        .saturating_sub(step_overhead());
    for (i, n) in model.nodes().iter().enumerate() {
        let outputs = n.outputs.iter().flatten().count();
        if outputs > MAX_LEAF_OUTPUTS || leaf_step_bytes(outputs) > room {
            return Err(format!(
                "node {i} ({}) has {outputs} outputs: a dispute cannot state them in one \
                 transaction of {max_tx_bytes} bytes (or over {MAX_LEAF_OUTPUTS})",
                n.op_type
            ));
        }
        if opening_bytes(outputs, MAX_PATH) + 5 > room {
            return Err(format!(
                "node {i} ({}): opening its {outputs} outputs does not fit a transaction of \
                 {max_tx_bytes} bytes",
                n.op_type
            ));
        }
        let operands = operand_nodes(model, &producers, i);
        if operands.len() > MAX_OPENINGS {
            return Err(format!(
                "node {i} ({}) reads {} earlier nodes, over the {MAX_OPENINGS} a dispute can open",
                n.op_type,
                operands.len()
            ));
        }
    }
    Ok(())
}

/// The referee over the runtime and a [`RefereeData`].
pub struct RuntimeReferee<'a, D: RefereeData + ?Sized> {
    /// Models and tensors.
    pub data: &'a D,
}

impl<D: RefereeData + ?Sized> std::fmt::Debug for RuntimeReferee<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeReferee")
    }
}

impl<D: RefereeData + ?Sized> RuntimeReferee<'_, D> {
    fn session(&self, model: &ModelId) -> Result<Arc<Session>, RefereeError> {
        self.data
            .session(model)
            .ok_or_else(|| RefereeError::Unavailable(format!("model {model}")))
    }
}

fn position(v: u64) -> Result<usize, RefereeError> {
    usize::try_from(v).map_err(|_| RefereeError::Failed(format!("index {v} is out of range")))
}

impl<D: RefereeData + ?Sized> Referee for RuntimeReferee<'_, D> {
    fn leaf_count(&self, model: &ModelId) -> Result<u64, RefereeError> {
        let s = self.session(model)?;
        Ok(s.model().nodes().len() as u64)
    }

    fn output_source(&self, model: &ModelId, index: u32) -> Result<OutputSource, RefereeError> {
        let s = self.session(model)?;
        let m = s.model();
        let vid = *m
            .output_ids()
            .get(position(u64::from(index))?)
            .ok_or_else(|| RefereeError::Failed(format!("the model has no output {index}")))?;
        if let Some(&(node, slot)) = producers(m).get(&vid) {
            return Ok(OutputSource::Node {
                node: node as u64,
                slot: u32::try_from(slot).unwrap_or(u32::MAX),
            });
        }
        if let Some(k) = m.input_ids().iter().position(|&i| i == vid) {
            return Ok(OutputSource::Input(u32::try_from(k).unwrap_or(u32::MAX)));
        }
        match m.constant(vid) {
            Some(t) => Ok(OutputSource::Constant(t.hash())),
            None => Err(RefereeError::Failed(format!(
                "graph output {index} has no source"
            ))),
        }
    }

    fn operands(&self, model: &ModelId, node: u64) -> Result<Vec<u64>, RefereeError> {
        let s = self.session(model)?;
        let m = s.model();
        let index = position(node)?;
        if index >= m.nodes().len() {
            return Err(RefereeError::Failed(format!(
                "node {node} is out of range (the model has {})",
                m.nodes().len()
            )));
        }
        Ok(operand_nodes(m, &producers(m), index)
            .into_iter()
            .map(|j| j as u64)
            .collect())
    }

    fn output_count(&self, model: &ModelId, node: u64) -> Result<u32, RefereeError> {
        let s = self.session(model)?;
        let n = s
            .model()
            .nodes()
            .get(position(node)?)
            .ok_or_else(|| RefereeError::Failed(format!("node {node} is out of range")))?;
        Ok(u32::try_from(n.outputs.iter().flatten().count()).unwrap_or(u32::MAX))
    }

    fn output_bytes(
        &self,
        model: &ModelId,
        node: u64,
        output: u32,
        (start, end): (u64, u64),
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<ChunkBytes, RefereeError> {
        let s = self.session(model)?;
        let index = position(node)?;
        let (args, decode) = self.priced_operands(&s, index, inputs, opened, max_work)?;
        let output = usize::try_from(output)
            .map_err(|_| RefereeError::Failed(format!("output {output} is out of range")))?;
        let cost = s
            .chunk_cost(index, &args, output, start..end)
            .map_err(|e| RefereeError::Failed(e.to_string()))?;
        let work = decode.saturating_add(cost.flops).saturating_add(cost.bytes);
        if work > max_work {
            return Err(RefereeError::OverBudget { work, max_work });
        }
        let (len, bytes) = s
            .run_node_bytes(index, &args, output, start..end)
            .map_err(|e| RefereeError::Failed(e.to_string()))?;
        Ok(ChunkBytes { len, bytes, work })
    }

    fn run_whole(
        &self,
        model: &ModelId,
        node: u64,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<WholeRun, RefereeError> {
        let s = self.session(model)?;
        let index = position(node)?;
        let (args, decode) = self.priced_operands(&s, index, inputs, opened, max_work)?;
        // An operator whose outputs cannot even be inferred from its
        // operands fails (as `run_node` would, checking the same first).
        let Ok(cost) = s.node_price(index, &args) else {
            return Ok(WholeRun {
                work: decode,
                fails: true,
            });
        };
        let work = decode.saturating_add(cost.flops).saturating_add(cost.bytes);
        if work > max_work {
            return Err(RefereeError::OverBudget { work, max_work });
        }
        // The same call an executor's run operator by operator makes
        // (`Party::run`), so both find the same failure.
        Ok(WholeRun {
            work,
            fails: s.run_node(index, &args).is_err(),
        })
    }
}

/// A node's operands, `None` for omitted ones.
type Operands = Vec<Option<Arc<Tensor>>>;

impl<D: RefereeData + ?Sized> RuntimeReferee<'_, D> {
    /// The operands of node `index`, decoded once their decoding and
    /// hashing is priced (from their lengths, before any is read), and
    /// that price.
    fn priced_operands(
        &self,
        s: &Session,
        index: usize,
        inputs: &[Vec<u8>],
        opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
        max_work: u64,
    ) -> Result<(Operands, u64), RefereeError> {
        let sources = operand_sources(s, index, opened)?;
        let mut decode = 0u64;
        for src in &sources {
            decode = decode.saturating_add(match src {
                Source::Input(k) => inputs.get(*k).map_or(0, |b| b.len() as u64),
                Source::Opened { hash, .. } => self
                    .data
                    .tensor_len(hash)
                    .ok_or_else(|| RefereeError::Unavailable(format!("tensor {hash}")))?,
                Source::Absent | Source::Constant(_) => 0,
            });
        }
        if decode > max_work {
            return Err(RefereeError::OverBudget {
                work: decode,
                max_work,
            });
        }
        Ok((self.operand_tensors(s, sources, inputs)?, decode))
    }
}

/// Where an operand of a node comes from.
enum Source {
    /// An omitted optional input.
    Absent,
    /// A constant of the model.
    Constant(Arc<Tensor>),
    /// Graph input `k` (the job's input).
    Input(usize),
    /// Output `slot` of earlier node `node`, opened with hash `hash`.
    Opened {
        hash: TensorHash,
        node: u64,
        slot: u32,
    },
}

/// The sources of node `index`'s operands: the job's inputs, the model's
/// constants, and opened outputs of earlier nodes. Every operand must be
/// opened before any is read: a step that opens them one by one costs no
/// decoding or hashing until the last.
fn operand_sources(
    s: &Session,
    index: usize,
    opened: &dyn Fn(u64, u32) -> Option<TensorHash>,
) -> Result<Vec<Source>, RefereeError> {
    let m = s.model();
    let n = m.nodes().get(index).ok_or_else(|| {
        RefereeError::Failed(format!(
            "node {index} is out of range (the model has {})",
            m.nodes().len()
        ))
    })?;
    let producers = producers(m);
    let mut sources = Vec::with_capacity(n.inputs.len());
    for vid in &n.inputs {
        let Some(vid) = *vid else {
            sources.push(Source::Absent);
            continue;
        };
        if let Some(t) = m.constant_arc(vid) {
            sources.push(Source::Constant(Arc::clone(t)));
        } else if let Some(k) = m.input_ids().iter().position(|&i| i == vid) {
            sources.push(Source::Input(k));
        } else if let Some(&(j, slot)) = producers.get(&vid) {
            if j >= index {
                return Err(RefereeError::Failed(format!(
                    "node {index} reads a value of node {j}, not an earlier one"
                )));
            }
            let (node, slot) = (j as u64, u32::try_from(slot).unwrap_or(u32::MAX));
            let hash = opened(node, slot).ok_or(RefereeError::Missing { node, slot })?;
            sources.push(Source::Opened { hash, node, slot });
        } else {
            return Err(RefereeError::Failed(format!(
                "input `{}` of node {index} has no source",
                m.value_name(vid)
            )));
        }
    }
    Ok(sources)
}

impl<D: RefereeData + ?Sized> RuntimeReferee<'_, D> {
    /// The operand tensors from their sources: job inputs decoded, held
    /// tensors looked up and checked against their hash.
    fn operand_tensors(
        &self,
        s: &Session,
        sources: Vec<Source>,
        inputs: &[Vec<u8>],
    ) -> Result<Vec<Option<Arc<Tensor>>>, RefereeError> {
        let max_elements = s.model().limits().max_tensor_elements;
        sources
            .into_iter()
            .map(|src| match src {
                Source::Absent => Ok(None),
                Source::Constant(t) => Ok(Some(t)),
                Source::Input(k) => {
                    let bytes = inputs
                        .get(k)
                        .ok_or_else(|| RefereeError::Failed(format!("the job has no input {k}")))?;
                    let t = formats::canonical_decode(bytes, max_elements)
                        .map_err(|e| RefereeError::Failed(format!("job input {k}: {e}")))?;
                    Ok(Some(Arc::new(t)))
                }
                Source::Opened { hash, node, slot } => {
                    let t = self.data.tensor(&hash).ok_or_else(|| {
                        RefereeError::Unavailable(format!(
                            "tensor {hash} (output {slot} of node {node})"
                        ))
                    })?;
                    if t.hash() != hash {
                        return Err(RefereeError::Unavailable(format!(
                            "the held tensor for {hash} has another hash"
                        )));
                    }
                    Ok(Some(Arc::new(t)))
                }
            })
            .collect()
    }
}

/// Models and tensors held in memory (tests, benchmarks, and the node's
/// tensor store's snapshot). Bounded by what the caller inserts.
#[derive(Default)]
pub struct MemoryData {
    sessions: HashMap<ModelId, Arc<Session>>,
    tensors: HashMap<TensorHash, Tensor>,
}

impl std::fmt::Debug for MemoryData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryData")
            .field("sessions", &self.sessions.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl MemoryData {
    /// Holds `session` as the model's.
    pub fn insert_session(&mut self, session: Arc<Session>) {
        let id = session.model().id();
        self.sessions.insert(id, session);
    }

    /// Holds `tensor` under its canonical hash.
    pub fn insert_tensor(&mut self, tensor: Tensor) {
        self.tensors.insert(tensor.hash(), tensor);
    }
}

impl RefereeData for MemoryData {
    fn session(&self, model: &ModelId) -> Option<Arc<Session>> {
        self.sessions.get(model).cloned()
    }

    fn tensor(&self, hash: &TensorHash) -> Option<Tensor> {
        self.tensors.get(hash).cloned()
    }

    fn tensor_len(&self, hash: &TensorHash) -> Option<u64> {
        self.tensors.get(hash).map(formats::canonical_len)
    }
}

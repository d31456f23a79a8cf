//! Planning and execution: shape inference, cost, constant folding, and the
//! node-by-node run that records the execution trace.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::kernels::{Ctx, Isa, KernelChoice};
use crate::model::{Dim, Model, Node};
use crate::ops::{Args, Fact};
use crate::tensor::{DType, Tensor};
use crate::trace::{TensorHash, Trace, TraceLeaf, node_leaf, node_leaf_from_hashes};

/// How a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Worker threads (1 runs everything on the calling thread).
    pub threads: usize,
    /// Which kernels to use.
    pub kernels: KernelChoice,
    /// Runs planned below this cost, in flops and in bytes, run on the
    /// calling thread whatever `threads` says: waking the pool and handing
    /// work between threads would cost more than it saves. Default
    /// [`SERIAL_BELOW`]; [`Cost::default()`] (zero) always uses the pool.
    pub serial_below: Cost,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 1,
            kernels: KernelChoice::Auto,
            serial_below: SERIAL_BELOW,
        }
    }
}

/// Integer and bool graph inputs with at most this many elements, float
/// inputs with at most [`KNOWN_FLOAT_INPUT_MAX_ELEMENTS`], and every scalar
/// (rank-0) input, are known to the planner: their values key the plan, and
/// computations that read them (a Reshape target, Pad amounts, axes, a
/// Range's bounds, Resize scales) are resolved before execution, with the
/// same kernels and so the same bits.
pub const KNOWN_INPUT_MAX_ELEMENTS: usize = 64;

/// Float graph inputs this small are parameters (Resize scales, a
/// threshold), not data: known to the planner like small integer inputs.
pub const KNOWN_FLOAT_INPUT_MAX_ELEMENTS: usize = 8;

fn is_known_input(t: &Tensor) -> bool {
    let limit = match t.dtype() {
        DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool => KNOWN_INPUT_MAX_ELEMENTS,
        DType::F32 | DType::F64 => KNOWN_FLOAT_INPUT_MAX_ELEMENTS,
    };
    t.len() <= limit || t.rank() == 0
}

/// What a plan is specific to: each input's dtype and shape, and its value
/// when known.
#[derive(Debug, Clone)]
pub(crate) struct InputKey {
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) value: Option<Arc<Tensor>>,
}

impl InputKey {
    /// The key of a fact.
    pub(crate) fn of_fact(f: &Fact) -> InputKey {
        InputKey {
            dtype: f.dtype,
            shape: f.shape.clone(),
            value: f.value.clone(),
        }
    }

    /// Whether a tensor given at run time fits this key: same dtype and
    /// shape, and the same value when the value was known.
    pub(crate) fn admits(&self, t: &Tensor) -> bool {
        self.dtype == t.dtype()
            && self.shape == t.shape()
            && self.value.as_deref().is_none_or(|v| v == t)
    }
}

impl PartialEq for InputKey {
    fn eq(&self, other: &Self) -> bool {
        self.dtype == other.dtype
            && self.shape == other.shape
            && match (&self.value, &other.value) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            }
    }
}

/// The plan for one set of concrete input shapes: facts for every value,
/// folded constants, and costs.
#[derive(Debug)]
pub struct Plan {
    pub(crate) key: Vec<InputKey>,
    pub(crate) facts: Vec<Option<Fact>>,
    /// Per node: the leaf, when the node was folded at plan time.
    folded_leaves: Vec<Option<TraceLeaf>>,
    node_costs: Vec<Cost>,
    total: Cost,
    /// Per value: the index of the last node reading it (usize::MAX: kept).
    last_use: Vec<usize>,
}

impl Plan {
    /// Total cost of a run.
    pub fn cost(&self) -> Cost {
        self.total
    }

    /// Cost of each node, in topological order.
    pub fn node_costs(&self) -> &[Cost] {
        &self.node_costs
    }

    /// Number of nodes folded to constants at plan time.
    pub fn folded_nodes(&self) -> usize {
        self.folded_leaves.iter().filter(|l| l.is_some()).count()
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Graph outputs in graph order: name and value.
    pub outputs: Vec<(String, Tensor)>,
    /// The execution trace.
    pub trace: Trace,
    /// The run's cost.
    pub cost: Cost,
}

/// The default [`Options::serial_below`]: 4 MFLOP and 4 MiB, a few tenths
/// of a millisecond on one core (mnist-cnn, ~0.5 MFLOP, took 0.09 ms on 2
/// threads against 0.06 ms on one).
pub const SERIAL_BELOW: Cost = Cost {
    flops: 4_000_000,
    bytes: 4 << 20,
};

/// A model ready to run with fixed options; plans are cached per input shapes.
#[derive(Debug)]
pub struct Session {
    model: Arc<Model>,
    isa: Isa,
    pool: Option<rayon::ThreadPool>,
    plan: Mutex<Option<Arc<Plan>>>,
    serial_below: Cost,
}

impl Session {
    /// Creates a session. `threads == 0` means one per available core.
    pub fn new(model: Arc<Model>, options: Options) -> Result<Session> {
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            options.threads
        };
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("glassbox-{i}"))
                    .build()
                    .map_err(|e| Error::Limit(format!("cannot start {threads} threads: {e}")))?,
            )
        } else {
            None
        };
        let isa = options.kernels.resolve().ok_or_else(|| {
            let asked = match options.kernels {
                KernelChoice::Exactly(isa) => isa.name(),
                KernelChoice::Auto => "auto",
            };
            Error::Limit(format!("this CPU cannot run the {asked} kernels"))
        })?;
        Ok(Session {
            model,
            isa,
            pool,
            plan: Mutex::new(None),
            serial_below: options.serial_below,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The instruction-set path in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, rayon::ThreadPool::current_num_threads)
    }

    fn ctx(&self) -> Ctx<'_> {
        match &self.pool {
            Some(p) => Ctx::with_pool(self.isa, p),
            None => Ctx::single(self.isa),
        }
    }

    /// The plan for these inputs (cached for the last inputs' key). Small
    /// integer inputs are known to the planner (see [`KNOWN_INPUT_MAX_ELEMENTS`]).
    pub fn plan(&self, inputs: &[Tensor]) -> Result<Arc<Plan>> {
        check_inputs(&self.model, inputs)?;
        let key: Vec<InputKey> = inputs
            .iter()
            .map(|t| InputKey {
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                value: is_known_input(t).then(|| Arc::new(t.clone())),
            })
            .collect();
        self.plan_for(key)
    }

    /// The plan for these input shapes, with no input values known.
    pub fn plan_shapes(&self, input_shapes: &[Vec<usize>]) -> Result<Arc<Plan>> {
        let m = &self.model;
        if input_shapes.len() != m.inputs.len() {
            return Err(Error::Input {
                name: "*".into(),
                reason: format!(
                    "given {} input shapes, the model takes {} inputs",
                    input_shapes.len(),
                    m.inputs.len()
                ),
            });
        }
        let key = m
            .inputs
            .iter()
            .zip(input_shapes)
            .map(|(&vid, s)| {
                let dtype = m.values[vid].dtype.ok_or_else(|| {
                    Error::InvalidModel(format!(
                        "graph input `{}` has no dtype",
                        m.values[vid].name
                    ))
                })?;
                Ok(InputKey {
                    dtype,
                    shape: s.clone(),
                    value: None,
                })
            })
            .collect::<Result<_>>()?;
        self.plan_for(key)
    }

    fn plan_for(&self, key: Vec<InputKey>) -> Result<Arc<Plan>> {
        let mut cached = self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = cached.as_ref().filter(|p| p.key == key) {
            return Ok(Arc::clone(p));
        }
        let plan = Arc::new(plan(&self.model, key, &self.ctx())?);
        *cached = Some(Arc::clone(&plan));
        Ok(plan)
    }

    /// Runs the model on inputs given in graph-input order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<RunOutput> {
        self.run_observed(inputs, &mut |_, _| {})
    }

    /// Runs the model and calls `observer(node_index, bound_outputs)` after
    /// each node (folded nodes included), in topological order. Used to dump
    /// intermediate tensors and to measure the cost of trace hashing.
    pub fn run_observed(
        &self,
        inputs: Vec<Tensor>,
        observer: &mut (dyn FnMut(usize, &[&Tensor]) + Send),
    ) -> Result<RunOutput> {
        let plan = self.plan(&inputs)?;
        // A small run costs less than waking the pool's threads: it runs on
        // the calling thread (the bits are the same on any thread count).
        let small = plan.total.flops < self.serial_below.flops
            && plan.total.bytes < self.serial_below.bytes;
        match &self.pool {
            // Run the whole graph on a pool thread: the parallel loops of the
            // kernels then start from inside the pool, which is much cheaper
            // than injecting every one of them from outside.
            Some(pool) if !small => {
                let ctx = self.ctx();
                pool.install(|| self.run_inner(&plan, &ctx, inputs, observer))
            }
            _ => self.run_inner(&plan, &Ctx::single(self.isa), inputs, observer),
        }
    }

    fn run_inner(
        &self,
        plan: &Plan,
        ctx: &Ctx<'_>,
        inputs: Vec<Tensor>,
        observer: &mut (dyn FnMut(usize, &[&Tensor]) + Send),
    ) -> Result<RunOutput> {
        let m = &*self.model;
        let input_hashes: Vec<TensorHash> = inputs.iter().map(Tensor::hash).collect();
        let inputs = inputs.into_iter().map(Cow::Owned).collect();
        let (outputs, leaves) = run_graph(m, plan, inputs, ctx, observer)?;
        let outputs = m
            .outputs
            .iter()
            .zip(outputs)
            .map(|(&vid, t)| (m.values[vid].name.clone(), t))
            .collect();
        Ok(RunOutput {
            outputs,
            trace: Trace {
                model_id: m.id,
                input_hashes,
                leaves,
            },
            cost: plan.total,
        })
    }

    /// Re-executes node `index` alone from the given input tensors (one per
    /// input slot of the node; `None` for omitted ones) and returns its bound
    /// outputs and its trace leaf.
    pub fn run_node(
        &self,
        index: usize,
        inputs: &[Option<Arc<Tensor>>],
    ) -> Result<(Vec<Tensor>, TraceLeaf)> {
        // Every input is given, so every value is known to `infer`.
        let facts = known_facts(inputs);
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_deref).collect();
        let (node, out_facts) = self.check_node(index, &refs, &facts)?;
        let outs = node
            .op
            .run(&self.ctx(), Args::new(&refs))
            .map_err(|e| node_error(index, node, e.0))?;
        if outs.len() < node.outputs.len() {
            return Err(node_error(
                index,
                node,
                format!(
                    "produced {} outputs, the node binds {}",
                    outs.len(),
                    node.outputs.len()
                ),
            ));
        }
        // Checked against the inferred facts as a full run checks its plan
        // (and `run_node_bytes` its chunk), so a node fails alone exactly
        // when it fails in a run (docs/disputes.md, "Runs that fail").
        let mut bound = Vec::with_capacity(node.outputs.len());
        for (slot, (vid, t)) in node.outputs.iter().zip(outs).enumerate() {
            if vid.is_none() {
                continue;
            }
            if let Some(f) = out_facts.get(slot)
                && (f.dtype != t.dtype() || f.shape != t.shape())
            {
                return Err(node_error(
                    index,
                    node,
                    format!(
                        "output {slot} is {} {:?}, inferred {} {:?}",
                        t.dtype(),
                        t.shape(),
                        f.dtype,
                        f.shape
                    ),
                ));
            }
            bound.push(t);
        }
        let leaf = node_leaf(index, bound.iter());
        Ok((bound, leaf))
    }

    /// Bytes `range` of the canonical encoding of bound output `output` of
    /// node `index` run alone on `inputs` (as [`Session::run_node`]), and
    /// the encoding's whole length. Only the elements the range covers are
    /// computed where the operator can ([`crate::ops::Op::region`]: MatMul,
    /// Gemm, Conv), bit for bit as a full run computes them; other
    /// operators run whole. This is what a dispute's referee runs for one
    /// chunk of an output (docs/disputes.md, "Chunks"). The range is cut to
    /// the encoding; an empty one computes nothing but the length.
    pub fn run_node_bytes(
        &self,
        index: usize,
        inputs: &[Option<Arc<Tensor>>],
        output: usize,
        range: std::ops::Range<u64>,
    ) -> Result<(u64, Vec<u8>)> {
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_deref).collect();
        let facts = known_facts(inputs);
        let (node, facts) = self.check_node(index, &refs, &facts)?;
        let span = chunk_span(index, node, &facts, output, range)?;
        let err = |reason: String| node_error(index, node, reason);
        let (start, end, h) = (span.start, span.end, span.header.len() as u64);
        let mut bytes = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        if start < h {
            bytes.extend_from_slice(&span.header[start as usize..end.min(h) as usize]);
        }
        let Some((e0, e1)) = span.elements.as_ref().map(|e| (e.start, e.end)) else {
            return Ok((span.total, bytes));
        };
        let (fact, slot) = (&facts[span.slot], span.slot);
        let ctx = self.ctx();
        let (first, elements) = match node.op.region(&ctx, Args::new(&refs), slot, e0..e1) {
            Some(r) => {
                let r = r.map_err(|e| err(e.0))?;
                (r.first, r.elements)
            }
            None => {
                let mut outs = node.op.run(&ctx, Args::new(&refs)).map_err(|e| err(e.0))?;
                if slot >= outs.len() {
                    return Err(err(format!("the operator gave no output {slot}")));
                }
                let t = outs.swap_remove(slot);
                if t.shape() != fact.shape.as_slice() {
                    return Err(err(format!(
                        "output {slot} has shape {:?}, inferred {:?}",
                        t.shape(),
                        fact.shape
                    )));
                }
                (0, t)
            }
        };
        if elements.dtype() != fact.dtype || first > e0 || first + elements.len() < e1 {
            return Err(err(format!(
                "the region computed does not hold elements {e0}..{e1}"
            )));
        }
        let part = Tensor::new(
            vec![e1 - e0],
            elements.data().gather(e0 - first..e1 - first),
        )
        .map_err(|e| err(e.0))?
        .to_le_bytes();
        let es = fact.dtype.size_bytes() as u64;
        let from = start.max(h) - h;
        let skip = (from - e0 as u64 * es) as usize;
        let take = (end - start.max(h)) as usize;
        bytes.extend_from_slice(&part[skip..skip + take]);
        Ok((span.total, bytes))
    }

    /// What [`Session::run_node_bytes`] computes for the same arguments, by
    /// the cost model: the node's whole [`Cost`], or for an operator that
    /// computes a region ([`crate::ops::Op::region_len`]) its operations
    /// scaled to the elements the region covers (bytes stay the whole
    /// node's: an upper bound); operations weighted by the operator's
    /// [`crate::ops::Op::time_weight`]. Nothing is computed but output shapes; a
    /// range that covers no element costs nothing. A dispute's referee
    /// prices a chunk with this before computing it (docs/disputes.md,
    /// "Referee budget").
    pub fn chunk_cost(
        &self,
        index: usize,
        inputs: &[Option<Arc<Tensor>>],
        output: usize,
        range: std::ops::Range<u64>,
    ) -> Result<Cost> {
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_deref).collect();
        let facts = known_facts(inputs);
        let (node, out_facts) = self.check_node(index, &refs, &facts)?;
        let span = chunk_span(index, node, &out_facts, output, range)?;
        let Some(elements) = span.elements else {
            return Ok(Cost::default());
        };
        let fact_refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let args = Args::new(&fact_refs);
        let whole = weighted_cost(node, args, &out_facts);
        let Some(covered) = node.op.region_len(args, &out_facts, span.slot, elements) else {
            return Ok(whole);
        };
        let len = out_facts[span.slot].len().max(1) as u128;
        let flops = (u128::from(whole.flops) * covered.min(len as usize) as u128).div_ceil(len);
        Ok(Cost {
            flops: u64::try_from(flops).unwrap_or(u64::MAX),
            bytes: whole.bytes,
        })
    }

    /// What [`Session::run_node`] computes for the same arguments, by the
    /// cost model: the node's whole [`Cost`], as a plan counts it against
    /// [`crate::Limits::max_total_flops`]. Nothing is computed but output
    /// shapes.
    pub fn node_cost(&self, index: usize, inputs: &[Option<Arc<Tensor>>]) -> Result<Cost> {
        Ok(self.node_cost_and_weight(index, inputs)?.0)
    }

    /// [`Session::node_cost`] with its operations weighted by the
    /// operator's [`crate::ops::Op::time_weight`]: a dispute's referee
    /// prices running an operator whole with this (docs/disputes.md,
    /// "Runs that fail").
    pub fn node_price(&self, index: usize, inputs: &[Option<Arc<Tensor>>]) -> Result<Cost> {
        let (mut cost, weight) = self.node_cost_and_weight(index, inputs)?;
        cost.flops = cost.flops.saturating_mul(weight);
        Ok(cost)
    }

    fn node_cost_and_weight(
        &self,
        index: usize,
        inputs: &[Option<Arc<Tensor>>],
    ) -> Result<(Cost, u64)> {
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_deref).collect();
        let facts = known_facts(inputs);
        let (node, out_facts) = self.check_node(index, &refs, &facts)?;
        let fact_refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        Ok((
            node.op.cost(Args::new(&fact_refs), &out_facts),
            node.op.time_weight().max(1),
        ))
    }

    /// Checks node `index`'s inputs as [`Session::run_node`] takes them and
    /// infers its outputs' facts from theirs (`facts`, every value known).
    fn check_node(
        &self,
        index: usize,
        inputs: &[Option<&Tensor>],
        facts: &[Option<Fact>],
    ) -> Result<(&Node, Vec<Fact>)> {
        let m = &*self.model;
        let node = m.nodes.get(index).ok_or_else(|| {
            Error::Trace(format!(
                "node {index} is out of range (the model has {})",
                m.nodes.len()
            ))
        })?;
        let node_err = |reason: String| node_error(index, node, reason);
        if inputs.len() != node.inputs.len() {
            return Err(node_err(format!(
                "given {} inputs, the node has {} input slots",
                inputs.len(),
                node.inputs.len()
            )));
        }
        for (i, (given, slot)) in inputs.iter().zip(&node.inputs).enumerate() {
            if given.is_some() != slot.is_some() {
                return Err(node_err(format!(
                    "input {i} presence does not match the node"
                )));
            }
            if let Some(t) = given {
                check_elements(m, t.len()).map_err(|e| node_err(e.to_string()))?;
            }
        }
        let fact_refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let out_facts = node
            .op
            .infer(Args::new(&fact_refs))
            .map_err(|e| node_err(e.0))?;
        for f in &out_facts {
            check_elements(m, f.len()).map_err(|e| node_err(e.to_string()))?;
        }
        Ok((node, out_facts))
    }
}

/// A node's whole cost, its operations weighted by its operator's time
/// weight.
fn weighted_cost(node: &Node, args: Args<'_, Fact>, out_facts: &[Fact]) -> Cost {
    let mut whole = node.op.cost(args, out_facts);
    whole.flops = whole.flops.saturating_mul(node.op.time_weight().max(1));
    whole
}

/// Facts of operands all given: every value known.
fn known_facts(inputs: &[Option<Arc<Tensor>>]) -> Vec<Option<Fact>> {
    inputs
        .iter()
        .map(|t| t.as_ref().map(|t| Fact::known(Arc::clone(t))))
        .collect()
}

/// Where bytes of a node output's canonical encoding fall.
struct ChunkSpan {
    /// The output's slot among the node's outputs.
    slot: usize,
    /// The encoding's header.
    header: Vec<u8>,
    /// The encoding's whole length.
    total: u64,
    /// The range asked, cut to the encoding.
    start: u64,
    end: u64,
    /// The elements the range covers (`None`: header bytes only).
    elements: Option<std::ops::Range<usize>>,
}

/// The span of bytes `range` of bound output `output` of `node` (index
/// `index`), whose outputs' facts are `facts`.
fn chunk_span(
    index: usize,
    node: &Node,
    facts: &[Fact],
    output: usize,
    range: std::ops::Range<u64>,
) -> Result<ChunkSpan> {
    let err = |reason: String| node_error(index, node, reason);
    let slot = node
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_some())
        .nth(output)
        .map(|(i, _)| i)
        .ok_or_else(|| err(format!("the node has no bound output {output}")))?;
    let fact = facts
        .get(slot)
        .ok_or_else(|| err(format!("output {slot} has no shape")))?;
    let header = canonical_header(fact.dtype, &fact.shape);
    let (h, es) = (header.len() as u64, fact.dtype.size_bytes() as u64);
    let total = (fact.len() as u64)
        .checked_mul(es)
        .and_then(|b| b.checked_add(h))
        .ok_or_else(|| err("the output's encoding overflows".into()))?;
    let (start, end) = (
        range.start.min(total),
        range.end.clamp(range.start.min(total), total),
    );
    let elements = (end > start.max(h) && es > 0).then(|| {
        let from = start.max(h) - h;
        ((from / es) as usize)..((end - h).div_ceil(es) as usize)
    });
    Ok(ChunkSpan {
        slot,
        header,
        total,
        start,
        end,
        elements,
    })
}

fn node_error(index: usize, node: &Node, reason: String) -> Error {
    Error::Node {
        index,
        name: node.name.clone(),
        op: node.op_type.clone(),
        reason,
    }
}

/// The header of the canonical encoding of a `dtype` tensor of `shape`
/// (everything before the elements; docs/determinism.md, "Tensor hashing").
fn canonical_header(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 8 * shape.len());
    out.extend_from_slice(glassbox_primitives::tags::TENSOR);
    out.push(dtype.onnx_code() as u8);
    out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
    for &d in shape {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out
}

/// Bytes of node outputs that may wait to be hashed at once while a run goes
/// on with threads; past it the running thread hashes before it goes on.
const PENDING_HASH_MAX_BYTES: usize = 16 << 20;

/// A value during a run: borrowed from the caller, or owned by the run and
/// shared with the task that hashes it.
enum Slot<'a> {
    Borrowed(&'a Tensor),
    Shared(Arc<Tensor>),
}

impl Slot<'_> {
    fn get(&self) -> &Tensor {
        match self {
            Slot::Borrowed(t) => t,
            Slot::Shared(t) => t,
        }
    }

    fn into_owned(self) -> Tensor {
        match self {
            Slot::Borrowed(t) => t.clone(),
            Slot::Shared(t) => Arc::unwrap_or_clone(t),
        }
    }
}

/// Runs a (sub)graph with a plan made for these inputs: returns its outputs
/// in graph order and the leaves of its nodes. Inputs no longer read are
/// dropped as soon as their last reader has run (their memory goes once they
/// are hashed too).
///
/// On one thread each node's outputs are hashed as soon as it has run. With
/// threads, hashing a node's outputs is a task of its own that any thread
/// takes while the nodes after it run, so cheap nodes do not wait for the
/// hash of a large tensor; at most [`PENDING_HASH_MAX_BYTES`] wait at once.
/// The leaves are the same functions of the outputs either way.
pub(crate) fn run_graph(
    m: &Model,
    plan: &Plan,
    inputs: Vec<Cow<'_, Tensor>>,
    ctx: &Ctx<'_>,
    observer: &mut (dyn FnMut(usize, &[&Tensor]) + Send),
) -> Result<(Vec<Tensor>, Vec<TraceLeaf>)> {
    if inputs.len() != m.inputs.len() {
        return Err(Error::Input {
            name: "*".into(),
            reason: format!(
                "given {} inputs, the graph takes {}",
                inputs.len(),
                m.inputs.len()
            ),
        });
    }
    let mut slots: Vec<Option<Slot<'_>>> = (0..m.values.len()).map(|_| None).collect();
    for (&vid, t) in m.inputs.iter().zip(inputs) {
        slots[vid] = Some(match t {
            Cow::Borrowed(t) => Slot::Borrowed(t),
            Cow::Owned(t) => Slot::Shared(Arc::new(t)),
        });
    }
    let hash = |index: usize, outs: &[Arc<Tensor>]| {
        let hashes: Vec<TensorHash> = outs.iter().map(|t| ctx.hash_tensor(t)).collect();
        node_leaf_from_hashes(index, &hashes)
    };
    let mut leaves = match ctx.pool() {
        None => {
            let mut leaves = vec![TraceLeaf::default(); m.nodes.len()];
            run_nodes(m, plan, &mut slots, ctx, observer, &mut |index, outs| {
                leaves[index] = hash(index, &outs);
            })?;
            leaves
        }
        Some(pool) => {
            let leaves: Vec<OnceLock<TraceLeaf>> =
                (0..m.nodes.len()).map(|_| OnceLock::new()).collect();
            let pending = AtomicUsize::new(0);
            pool.in_place_scope(|scope| {
                run_nodes(m, plan, &mut slots, ctx, observer, &mut |index, outs| {
                    let bytes: usize = outs.iter().map(|t| t.len() * t.dtype().size_bytes()).sum();
                    pending.fetch_add(bytes, Ordering::Relaxed);
                    let (leaves, pending, hash) = (&leaves, &pending, &hash);
                    scope.spawn(move |_| {
                        // Each node is hashed by exactly one task.
                        let _ = leaves[index].set(hash(index, &outs));
                        drop(outs);
                        pending.fetch_sub(bytes, Ordering::Relaxed);
                    });
                    while pending.load(Ordering::Relaxed) > PENDING_HASH_MAX_BYTES {
                        if rayon::yield_local() != Some(rayon::Yield::Executed) {
                            std::thread::yield_now();
                        }
                    }
                })
            })?;
            // The scope has waited for every hashing task.
            leaves
                .into_iter()
                .map(|l| l.into_inner().unwrap_or_default())
                .collect()
        }
    };
    for (leaf, folded) in leaves.iter_mut().zip(&plan.folded_leaves) {
        if let Some(f) = folded {
            *leaf = *f;
        }
    }
    let mut outputs = Vec::with_capacity(m.outputs.len());
    for (i, &vid) in m.outputs.iter().enumerate() {
        // A value listed twice as an output is taken only the last time.
        let again = m.outputs[i + 1..].contains(&vid);
        let t = match slots[vid].take_if(|_| !again) {
            Some(t) => t.into_owned(),
            None => value(m, plan, &slots, vid).cloned().ok_or_else(|| {
                Error::InvalidModel(format!(
                    "graph output `{}` was not computed",
                    m.values[vid].name
                ))
            })?,
        };
        outputs.push(t);
    }
    Ok((outputs, leaves))
}

/// Runs every node in order, binding outputs into `slots`, and hands each
/// run node's bound outputs to `hash` (folded nodes have their leaves in the
/// plan).
fn run_nodes(
    m: &Model,
    plan: &Plan,
    slots: &mut [Option<Slot<'_>>],
    ctx: &Ctx<'_>,
    observer: &mut (dyn FnMut(usize, &[&Tensor]) + Send),
    hash: &mut dyn FnMut(usize, Vec<Arc<Tensor>>),
) -> Result<()> {
    for (index, node) in m.nodes.iter().enumerate() {
        if plan.folded_leaves[index].is_some() {
            let outs: Vec<&Tensor> = node
                .outputs
                .iter()
                .filter_map(|v| v.and_then(|v| value(m, plan, slots, v)))
                .collect();
            observer(index, &outs);
            continue;
        }
        let node_err = |reason: String| Error::Node {
            index,
            name: node.name.clone(),
            op: node.op_type.clone(),
            reason,
        };
        let outs = {
            let args: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|v| value(m, plan, slots, v)))
                .collect();
            // Inputs read from the model's constants (not given at run time).
            let constants = node
                .inputs
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, v)| v.is_some_and(|v| slots[v].is_none() && m.constants[v].is_some()))
                .fold(0u64, |acc, (i, _)| acc | 1 << i);
            node.op.run(ctx, Args::with_constants(&args, constants))
        };
        let outs = outs.map_err(|e| node_err(e.0))?;
        if outs.len() < node.outputs.len() {
            return Err(node_err(format!(
                "produced {} outputs, the node binds {}",
                outs.len(),
                node.outputs.len()
            )));
        }
        let mut bound = Vec::with_capacity(node.outputs.len());
        for (vid, t) in node.outputs.iter().zip(outs) {
            if let Some(vid) = *vid {
                if let Some(f) = &plan.facts[vid]
                    && (f.dtype != t.dtype() || f.shape != t.shape())
                {
                    return Err(node_err(format!(
                        "output `{}` is {} {:?} but was planned as {} {:?}",
                        m.values[vid].name,
                        t.dtype(),
                        t.shape(),
                        f.dtype,
                        f.shape
                    )));
                }
                let t = Arc::new(t);
                bound.push(Arc::clone(&t));
                slots[vid] = Some(Slot::Shared(t));
            }
        }
        let refs: Vec<&Tensor> = bound.iter().map(|t| &**t).collect();
        observer(index, &refs);
        hash(index, bound);
        for vid in node.inputs.iter().flatten() {
            if plan.last_use[*vid] == index {
                slots[*vid] = None;
            }
        }
    }
    Ok(())
}

fn value<'a>(
    m: &'a Model,
    plan: &'a Plan,
    slots: &'a [Option<Slot<'_>>],
    vid: usize,
) -> Option<&'a Tensor> {
    slots[vid]
        .as_ref()
        .map(Slot::get)
        .or_else(|| m.constants[vid].as_deref())
        .or_else(|| plan.facts[vid].as_ref().and_then(|f| f.value.as_deref()))
}

fn check_elements(m: &Model, n: usize) -> Result<()> {
    if n > m.limits.max_tensor_elements {
        return Err(Error::Limit(format!(
            "a tensor of {n} elements is over the limit of {}",
            m.limits.max_tensor_elements
        )));
    }
    Ok(())
}

fn describe(m: &Model, vid: usize) -> String {
    let v = &m.values[vid];
    let dtype = v.dtype.map_or("?".to_string(), |d| d.to_string());
    let shape = match &v.shape {
        None => "any shape".to_string(),
        Some(dims) => {
            let d: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Symbol(s) => s.clone(),
                })
                .collect();
            format!("[{}]", d.join(", "))
        }
    };
    format!("{dtype} {shape}")
}

fn check_inputs(m: &Model, inputs: &[Tensor]) -> Result<()> {
    if inputs.len() != m.inputs.len() {
        let names: Vec<String> = m
            .inputs
            .iter()
            .map(|&v| format!("`{}`: {}", m.values[v].name, describe(m, v)))
            .collect();
        return Err(Error::Input {
            name: "*".into(),
            reason: format!(
                "given {} inputs, the model takes {}: {}",
                inputs.len(),
                m.inputs.len(),
                names.join(", ")
            ),
        });
    }
    let mut symbols: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (&vid, t) in m.inputs.iter().zip(inputs) {
        let v = &m.values[vid];
        let bad = |what: String| Error::Input {
            name: v.name.clone(),
            reason: format!("{what}; the model expects {}", describe(m, vid)),
        };
        if let Some(d) = v.dtype
            && d != t.dtype()
        {
            return Err(bad(format!("got dtype {}", t.dtype())));
        }
        check_elements(m, t.len())?;
        if let Some(dims) = &v.shape {
            if dims.len() != t.rank() {
                return Err(bad(format!(
                    "got shape {:?} of rank {}",
                    t.shape(),
                    t.rank()
                )));
            }
            for (d, &n) in dims.iter().zip(t.shape()) {
                match d {
                    Dim::Fixed(want) if *want != n => {
                        return Err(bad(format!("got shape {:?}", t.shape())));
                    }
                    Dim::Symbol(s) => {
                        if let Some(prev) = symbols.insert(s, n)
                            && prev != n
                        {
                            return Err(bad(format!(
                                "got shape {:?}, but `{s}` was bound to {prev}",
                                t.shape()
                            )));
                        }
                    }
                    Dim::Fixed(_) => {}
                }
            }
        }
    }
    Ok(())
}

/// Plans a run for concrete input shapes: infers every value's dtype and
/// shape, folds nodes whose inputs are all known, and totals the cost.
pub(crate) fn plan(m: &Model, key: Vec<InputKey>, ctx: &Ctx<'_>) -> Result<Plan> {
    let mut facts: Vec<Option<Fact>> = vec![None; m.values.len()];
    for (vid, c) in m.constants.iter().enumerate() {
        if let Some(t) = c {
            facts[vid] = Some(Fact::known(Arc::clone(t)));
        }
    }
    if key.len() != m.inputs.len() {
        return Err(Error::Input {
            name: "*".into(),
            reason: format!(
                "given {} inputs, the model takes {}",
                key.len(),
                m.inputs.len()
            ),
        });
    }
    for (&vid, k) in m.inputs.iter().zip(&key) {
        let v = &m.values[vid];
        if v.dtype.is_some_and(|d| d != k.dtype) {
            return Err(Error::Input {
                name: v.name.clone(),
                reason: format!(
                    "got dtype {}; the graph expects {}",
                    k.dtype,
                    describe(m, vid)
                ),
            });
        }
        facts[vid] = Some(match &k.value {
            Some(t) => Fact::known(Arc::clone(t)),
            None => Fact::new(k.dtype, k.shape.clone()),
        });
    }
    let mut folded_leaves = Vec::with_capacity(m.nodes.len());
    let mut node_costs = Vec::with_capacity(m.nodes.len());
    let mut last_use = vec![usize::MAX; m.values.len()];
    for (index, node) in m.nodes.iter().enumerate() {
        let node_err = |reason: String| Error::Node {
            index,
            name: node.name.clone(),
            op: node.op_type.clone(),
            reason,
        };
        for vid in node.inputs.iter().flatten() {
            last_use[*vid] = index;
        }
        let in_facts: Vec<Option<&Fact>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| facts[v].as_ref()))
            .collect();
        if let Some(i) = node
            .inputs
            .iter()
            .zip(&in_facts)
            .position(|(v, f)| v.is_some() && f.is_none())
        {
            return Err(node_err(format!("input {i} has no known type")));
        }
        let mut out_facts = node
            .op
            .infer(Args::new(&in_facts))
            .map_err(|e| node_err(e.0))?;
        if out_facts.len() < node.outputs.len() {
            return Err(node_err(format!(
                "the op yields {} outputs, the node binds {}",
                out_facts.len(),
                node.outputs.len()
            )));
        }
        for f in &out_facts {
            if f.len() > m.limits.max_tensor_elements {
                return Err(node_err(format!(
                    "output shape {:?} has more than the limit of {} elements",
                    f.shape, m.limits.max_tensor_elements
                )));
            }
        }
        node_costs.push(node.op.cost(Args::new(&in_facts), &out_facts));
        let all_known = in_facts.iter().flatten().all(|f| f.value.is_some());
        let infer_known = out_facts.iter().all(|f| f.value.is_some());
        let leaf = if all_known && !infer_known {
            let args: Vec<Option<&Tensor>> = in_facts
                .iter()
                .map(|f| f.and_then(|f| f.value.as_deref()))
                .collect();
            let outs = node
                .op
                .run(ctx, Args::new(&args))
                .map_err(|e| node_err(e.0))?;
            for (f, t) in out_facts.iter_mut().zip(outs) {
                if f.dtype != t.dtype() || f.shape != t.shape() {
                    return Err(node_err(format!(
                        "computed {} {:?} but inferred {} {:?}",
                        t.dtype(),
                        t.shape(),
                        f.dtype,
                        f.shape
                    )));
                }
                f.value = Some(Arc::new(t));
            }
            Some(())
        } else if infer_known {
            Some(())
        } else {
            None
        };
        let folded = leaf.map(|()| {
            let bound: Vec<&Tensor> = node
                .outputs
                .iter()
                .zip(&out_facts)
                .filter_map(|(v, f)| v.and(f.value.as_deref()))
                .collect();
            node_leaf(index, bound.into_iter())
        });
        folded_leaves.push(folded);
        for (vid, f) in node.outputs.iter().zip(out_facts) {
            if let Some(vid) = vid {
                facts[*vid] = Some(f);
            }
        }
    }
    for &vid in &m.outputs {
        last_use[vid] = usize::MAX;
    }
    let total: Cost = node_costs.iter().copied().sum();
    if total.flops > m.limits.max_total_flops {
        return Err(Error::Limit(format!(
            "the run costs {} flops, over the limit of {}",
            total.flops, m.limits.max_total_flops
        )));
    }
    Ok(Plan {
        key,
        facts,
        folded_leaves,
        node_costs,
        total,
        last_use,
    })
}

//! Control flow: `If` and `Loop`, whose subgraphs run as graphs of their own
//! (docs/determinism.md, "Control flow").
//!
//! The loader builds these two ops itself (they carry subgraphs, which the
//! registry's builders cannot see). It gives each one, after the node's own
//! inputs, the values its subgraphs read from enclosing graphs, and one more
//! output: the 32-byte commitment to the subgraph runs, so that the node's
//! trace leaf covers every node the subgraphs ran.
//!
//! Shapes are planned, as for every node, before the run: an `If` whose
//! condition is unknown needs both branches to agree on their outputs'
//! dtypes and shapes; a `Loop` needs its loop-carried values to keep their
//! dtype and shape, and the number of iterations to be known before the run
//! when it has scan outputs.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Args, BuildCtx, Fact, Op};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::exec::{self, InputKey, Plan};
use crate::kernels::{Ctx, Isa};
use crate::model::Model;
use crate::ops::util::by_dtype;
use crate::tensor::{DType, Elem, Tensor};
use crate::trace::{MerkleNode, TraceLeaf, merkle_root};
use crate::{bail, ensure};
use glassbox_primitives::tags;

/// Most iterations of one `Loop` run.
pub const MAX_LOOP_ITERATIONS: u64 = 1 << 20;

/// Most iterations planned one by one (for a body that needs its iteration
/// number before the run).
const MAX_PLANNED_ITERATIONS: u64 = 1024;

/// Plans kept per subgraph (one per distinct set of input facts).
const PLAN_CACHE: usize = 8;

/// Kind byte of the subgraph commitment (docs/determinism.md, "Control flow").
const KIND_THEN: u8 = 0;
const KIND_ELSE: u8 = 1;
const KIND_LOOP: u8 = 2;

/// Builds `If` or `Loop` from its node and its loaded subgraphs (by attribute
/// name). `n_captured` values read from enclosing graphs follow the node's
/// own inputs.
pub(crate) fn build(
    ctx: &BuildCtx<'_>,
    subgraphs: Vec<(String, Arc<Model>)>,
    n_captured: usize,
) -> OpResult<Box<dyn Op>> {
    let take = |name: &str| -> OpResult<Sub> {
        let i = subgraphs
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| OpError(format!("attribute `{name}` (a graph) is missing")))?;
        Ok(Sub::new(name, Arc::clone(&subgraphs[i].1)))
    };
    match ctx.op_type {
        "If" => {
            let then = take("then_branch")?;
            let els = take("else_branch")?;
            ensure!(
                ctx.n_inputs == 1,
                "If takes 1 input, the node has {}",
                ctx.n_inputs
            );
            for b in [&then, &els] {
                ensure!(
                    b.graph.inputs.len() == n_captured,
                    "{} declares {} inputs; a branch takes none",
                    b.name,
                    b.graph.inputs.len() - n_captured
                );
            }
            let (nt, ne) = (then.graph.outputs.len(), els.graph.outputs.len());
            ensure!(
                nt == ne,
                "then_branch has {nt} outputs but else_branch has {ne}"
            );
            ensure!(
                ctx.n_outputs <= nt,
                "the node binds {} outputs, the branches have {nt}",
                ctx.n_outputs
            );
            Ok(Box::new(If {
                then,
                els,
                n_out: ctx.n_outputs,
            }))
        }
        "Loop" => {
            let body = take("body")?;
            ensure!(
                ctx.n_inputs >= 2,
                "Loop takes at least 2 inputs (M, cond), the node has {}",
                ctx.n_inputs
            );
            let carried = ctx.n_inputs - 2;
            let formal = body.graph.inputs.len() - n_captured;
            ensure!(
                formal == 2 + carried,
                "the body takes {formal} inputs, but the node gives {carried} loop-carried values \
                 (the body takes iteration number, condition, then one per value)"
            );
            let outs = body.graph.outputs.len();
            ensure!(
                outs > carried,
                "the body has {outs} outputs, it needs the condition and {carried} loop-carried values"
            );
            let scans = outs - 1 - carried;
            ensure!(
                ctx.n_outputs <= carried + scans,
                "the node binds {} outputs, the body yields {}",
                ctx.n_outputs,
                carried + scans
            );
            Ok(Box::new(Loop {
                body,
                carried,
                scans,
                n_out: ctx.n_outputs,
            }))
        }
        other => bail!("`{other}` is not a control-flow op"),
    }
}

/// A subgraph with its plans.
#[derive(Debug)]
struct Sub {
    name: String,
    graph: Arc<Model>,
    plans: Mutex<Vec<Arc<Plan>>>,
}

impl Sub {
    fn new(name: &str, graph: Arc<Model>) -> Sub {
        Sub {
            name: name.to_string(),
            graph,
            plans: Mutex::new(Vec::new()),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> OpError {
        OpError(format!("{}: {e}", self.name))
    }

    /// The plan for these input facts (cached).
    fn plan(&self, key: Vec<InputKey>) -> OpResult<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = plans.iter().find(|p| p.key == key) {
            return Ok(Arc::clone(p));
        }
        // Folding at plan time gives the same bits on any path and thread
        // count, so one thread on the detected path is as good as any.
        let ctx = Ctx::single(Isa::detect());
        let plan = Arc::new(exec::plan(&self.graph, key, &ctx).map_err(|e| self.err(e))?);
        if plans.len() == PLAN_CACHE {
            plans.remove(0);
        }
        plans.push(Arc::clone(&plan));
        Ok(plan)
    }

    /// A plan that admits these run-time inputs: the one made when the node
    /// was planned, or (if it has been evicted since) one with every input
    /// known, which computes the same bits.
    fn plan_for_run(&self, inputs: &[&Tensor]) -> OpResult<Arc<Plan>> {
        {
            let plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
            let fits = |p: &&Arc<Plan>| {
                p.key.len() == inputs.len() && p.key.iter().zip(inputs).all(|(k, t)| k.admits(t))
            };
            if let Some(p) = plans.iter().rev().find(fits) {
                return Ok(Arc::clone(p));
            }
        }
        let key = inputs
            .iter()
            .map(|t| InputKey {
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                value: Some(Arc::new((*t).clone())),
            })
            .collect();
        self.plan(key)
    }

    /// Runs the subgraph: its outputs and its leaves.
    fn run(&self, inputs: &[&Tensor], ctx: &Ctx<'_>) -> OpResult<(Vec<Tensor>, Vec<TraceLeaf>)> {
        let plan = self.plan_for_run(inputs)?;
        let inputs = inputs.iter().map(|t| Cow::Borrowed(*t)).collect();
        exec::run_graph(&self.graph, &plan, inputs, ctx, &mut |_, _| {}).map_err(|e| self.err(e))
    }

    /// Facts of the graph outputs under a plan.
    fn output_facts(&self, plan: &Plan) -> OpResult<Vec<Fact>> {
        self.graph
            .outputs
            .iter()
            .map(|&vid| {
                plan.facts[vid].clone().ok_or_else(|| {
                    self.err(format!(
                        "output `{}` has no planned type",
                        self.graph.values[vid].name
                    ))
                })
            })
            .collect()
    }
}

/// The commitment to the runs of a subgraph (docs/determinism.md, "Control
/// flow"): `BLAKE3("GBS1" || kind || runs (u64 LE) || per run: leaves (u64
/// LE) || Merkle root of the leaves)`.
fn commitment(kind: u8, runs: &[(usize, MerkleNode)]) -> Tensor {
    let mut h = blake3::Hasher::new();
    h.update(tags::SUBGRAPH);
    h.update(&[kind]);
    h.update(&(runs.len() as u64).to_le_bytes());
    for (n, root) in runs {
        h.update(&(*n as u64).to_le_bytes());
        h.update(root.as_bytes());
    }
    let bytes = h.finalize().as_bytes().to_vec();
    Tensor::from_vec(vec![32], bytes).expect("32 elements for shape [32]")
}

fn commitment_fact() -> Fact {
    Fact::new(DType::U8, vec![32])
}

/// A boolean condition: one element of dtype bool.
fn truth(t: &Tensor, what: &str) -> OpResult<bool> {
    ensure!(
        t.dtype() == DType::Bool && t.len() == 1,
        "{what} must be one bool, got {} {:?}",
        t.dtype(),
        t.shape()
    );
    Ok(t.as_slice::<bool>()?[0])
}

fn check_cond_fact(f: &Fact, what: &str) -> OpResult<Option<bool>> {
    ensure!(
        f.dtype == DType::Bool && f.len() == 1,
        "{what} must be one bool, got {} {:?}",
        f.dtype,
        f.shape
    );
    f.value.as_deref().map(|t| truth(t, what)).transpose()
}

fn same_type(a: &Fact, b: &Fact) -> bool {
    a.dtype == b.dtype && a.shape == b.shape
}

fn unknown(f: &Fact) -> Fact {
    Fact::new(f.dtype, f.shape.clone())
}

// ---------------------------------------------------------------- If

#[derive(Debug)]
struct If {
    then: Sub,
    els: Sub,
    /// Outputs the node binds (the branches may have more).
    n_out: usize,
}

impl If {
    fn captured<'a, T>(inputs: Args<'a, T>) -> OpResult<Vec<&'a T>> {
        (1..inputs.len()).map(|i| inputs.get(i)).collect()
    }

    /// The branch taken when the condition is known, and the planned facts
    /// of the node's outputs; with the plan of each branch that may run.
    fn analyze(&self, inputs: Args<'_, Fact>) -> OpResult<(Vec<Fact>, Vec<Arc<Plan>>)> {
        let cond = check_cond_fact(inputs.get(0)?, "the condition")?;
        let key: Vec<InputKey> = Self::captured(inputs)?
            .into_iter()
            .map(InputKey::of_fact)
            .collect();
        let mut facts = match cond {
            Some(c) => {
                let b = if c { &self.then } else { &self.els };
                let plan = b.plan(key)?;
                let facts = b.output_facts(&plan)?;
                (facts, vec![plan])
            }
            None => {
                let pt = self.then.plan(key.clone())?;
                let pe = self.els.plan(key)?;
                let ft = self.then.output_facts(&pt)?;
                let fe = self.els.output_facts(&pe)?;
                for (i, (a, b)) in ft.iter().zip(&fe).take(self.n_out).enumerate() {
                    ensure!(
                        same_type(a, b),
                        "output {i} is {} {:?} in then_branch but {} {:?} in else_branch, and the \
                         condition is not known before the run",
                        a.dtype,
                        a.shape,
                        b.dtype,
                        b.shape
                    );
                }
                (ft.iter().map(unknown).collect(), vec![pt, pe])
            }
        };
        facts.0.truncate(self.n_out);
        facts.0.push(commitment_fact());
        Ok(facts)
    }
}

impl Op for If {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(self.analyze(inputs)?.0)
    }

    fn cost(&self, inputs: Args<'_, Fact>, _outputs: &[Fact]) -> Cost {
        // The dearer branch when either may run.
        self.analyze(inputs)
            .map(|(_, plans)| {
                plans
                    .iter()
                    .map(|p| p.cost())
                    .fold(Cost::default(), |a, c| Cost {
                        flops: a.flops.max(c.flops),
                        bytes: a.bytes.max(c.bytes),
                    })
            })
            .unwrap_or_default()
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let c = truth(inputs.get(0)?, "the condition")?;
        let (b, kind) = if c {
            (&self.then, KIND_THEN)
        } else {
            (&self.els, KIND_ELSE)
        };
        let (mut outs, leaves) = b.run(&Self::captured(inputs)?, ctx)?;
        outs.truncate(self.n_out);
        outs.push(commitment(kind, &[(leaves.len(), merkle_root(&leaves))]));
        Ok(outs)
    }
}

// ---------------------------------------------------------------- Loop

#[derive(Debug)]
struct Loop {
    body: Sub,
    /// Loop-carried values.
    carried: usize,
    /// Scan outputs of the body.
    scans: usize,
    /// Outputs the node binds (final carried values, then scan outputs).
    n_out: usize,
}

/// What planning a `Loop` found.
struct LoopPlan {
    /// Cost of every iteration the run may take.
    cost: Cost,
    /// Facts of the node's outputs.
    facts: Vec<Fact>,
}

impl Loop {
    fn analyze(&self, inputs: Args<'_, Fact>) -> OpResult<LoopPlan> {
        let n = self.carried;
        let m = match inputs.opt(0) {
            None => None,
            Some(f) => {
                ensure!(
                    matches!(f.dtype, DType::I64) && f.len() == 1,
                    "the trip count M must be one int64, got {} {:?}",
                    f.dtype,
                    f.shape
                );
                let Some(t) = f.value.as_deref() else {
                    bail!(
                        "the trip count M must be known before the run (a constant or a scalar input)"
                    )
                };
                Some(t.as_slice::<i64>()?[0].max(0) as u64)
            }
        };
        let cond0 = match inputs.opt(1) {
            None => Some(true),
            Some(f) => check_cond_fact(f, "the condition")?,
        };
        let carried: Vec<&Fact> = (2..2 + n).map(|i| inputs.get(i)).collect::<OpResult<_>>()?;
        let captured: Vec<&Fact> = (2 + n..inputs.len())
            .map(|i| inputs.get(i))
            .collect::<OpResult<_>>()?;
        let key = |cond_in: Option<bool>, iter: Option<u64>| -> Vec<InputKey> {
            let mut key = vec![
                InputKey {
                    dtype: DType::I64,
                    shape: vec![],
                    value: iter.map(|i| Arc::new(Tensor::scalar(i as i64))),
                },
                InputKey {
                    dtype: DType::Bool,
                    shape: vec![],
                    value: cond_in.map(|c| Arc::new(Tensor::scalar(c))),
                },
            ];
            // Loop-carried values change from one iteration to the next.
            key.extend(carried.iter().map(|f| InputKey::of_fact(&unknown(f))));
            key.extend(captured.iter().map(|f| InputKey::of_fact(f)));
            key
        };
        let trips_of = |facts: &[Fact]| -> OpResult<Option<u64>> {
            check_cond_fact(&facts[0], "the body's condition output")?;
            let cond_out = facts[0]
                .value
                .as_deref()
                .map(|t| truth(t, ""))
                .transpose()?;
            Ok(match (cond0, cond_out) {
                (Some(false), _) => Some(0),
                (Some(true), Some(true)) => Some(m.ok_or_else(|| {
                    OpError(
                        "the loop has no trip count and its condition never becomes false".into(),
                    )
                })?),
                (Some(true), Some(false)) => Some(m.map_or(1, |m| m.min(1))),
                _ => None,
            })
        };
        // With a condition known true, plan the body as if it stays true; if
        // the body then keeps it true, every iteration runs that plan.
        let cond_in = cond0.filter(|&c| c);
        let (facts, trips, cost) = match self.body.plan(key(cond_in, None)) {
            Ok(body) => {
                let facts = self.body.output_facts(&body)?;
                match trips_of(&facts)? {
                    Some(t) => (facts, Some(t), scaled(body.cost(), t)),
                    None => {
                        ensure!(
                            self.scans == 0,
                            "the number of iterations depends on values computed in the run, so \
                             the shapes of the {} scan outputs are not known before it",
                            self.scans
                        );
                        let body = self.body.plan(key(None, None))?;
                        let bound = m.unwrap_or(MAX_LOOP_ITERATIONS);
                        (
                            self.body.output_facts(&body)?,
                            None,
                            scaled(body.cost(), bound),
                        )
                    }
                }
            }
            // A body that needs its iteration number before the run (say,
            // to slice by it) is planned once per iteration.
            Err(e) => {
                let first = self
                    .body
                    .plan(key(cond_in, Some(0)))
                    .map_err(|_| e.clone())?;
                let facts = self.body.output_facts(&first)?;
                let trips = trips_of(&facts)?.ok_or(e)?;
                ensure!(
                    trips <= MAX_PLANNED_ITERATIONS,
                    "the body needs its iteration number before the run, so each of the {trips} \
                     iterations is planned alone, over the limit of {MAX_PLANNED_ITERATIONS}"
                );
                let mut cost = first.cost();
                for i in 1..trips {
                    let plan = self.body.plan(key(cond_in, Some(i)))?;
                    let f = self.body.output_facts(&plan)?;
                    for (j, (a, b)) in f.iter().zip(&facts).enumerate() {
                        ensure!(
                            same_type(a, b),
                            "body output {j} is {} {:?} in iteration {i} but {} {:?} in iteration 0",
                            a.dtype,
                            a.shape,
                            b.dtype,
                            b.shape
                        );
                    }
                    cost = cost.saturating_add(plan.cost());
                }
                (facts, Some(trips), cost)
            }
        };
        for (i, (f, c)) in facts[1..=n].iter().zip(&carried).enumerate() {
            ensure!(
                same_type(f, c),
                "loop-carried value {i} enters as {} {:?} but leaves the body as {} {:?}; values \
                 that change type or shape across iterations are not supported",
                c.dtype,
                c.shape,
                f.dtype,
                f.shape
            );
        }
        let max_trips = trips.unwrap_or(m.unwrap_or(MAX_LOOP_ITERATIONS));
        ensure!(
            max_trips <= MAX_LOOP_ITERATIONS,
            "the loop may run {max_trips} iterations, over the limit of {MAX_LOOP_ITERATIONS}"
        );
        let mut out: Vec<Fact> = facts[1..=n].iter().map(unknown).collect();
        for f in &facts[1 + n..] {
            let mut shape = vec![max_trips as usize];
            shape.extend_from_slice(&f.shape);
            out.push(Fact::new(f.dtype, shape));
        }
        out.truncate(self.n_out);
        out.push(commitment_fact());
        Ok(LoopPlan { cost, facts: out })
    }
}

fn scaled(c: Cost, times: u64) -> Cost {
    Cost {
        flops: c.flops.saturating_mul(times),
        bytes: c.bytes.saturating_mul(times),
    }
}

/// Stacks equally shaped tensors along a new leading axis.
fn stack(parts: &[Tensor], dtype: DType, shape: &[usize]) -> OpResult<Tensor> {
    let mut out_shape = vec![parts.len()];
    out_shape.extend_from_slice(shape);
    for p in parts {
        ensure!(
            p.dtype() == dtype && p.shape() == shape,
            "a scan output is {} {:?} in one iteration and {} {:?} in another",
            dtype,
            shape,
            p.dtype(),
            p.shape()
        );
    }
    let data = by_dtype!(dtype, T => {
        let mut v: Vec<T> = Vec::with_capacity(parts.iter().map(Tensor::len).sum());
        for p in parts {
            v.extend_from_slice(p.as_slice::<T>()?);
        }
        T::wrap(v)
    });
    Tensor::new(out_shape, data)
}

impl Op for Loop {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(self.analyze(inputs)?.facts)
    }

    fn cost(&self, inputs: Args<'_, Fact>, _outputs: &[Fact]) -> Cost {
        self.analyze(inputs).map(|p| p.cost).unwrap_or_default()
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let n = self.carried;
        let m = match inputs.opt(0) {
            Some(t) => {
                ensure!(
                    t.dtype() == DType::I64 && t.len() == 1,
                    "the trip count M must be one int64"
                );
                t.as_slice::<i64>()?[0].max(0) as u64
            }
            None => MAX_LOOP_ITERATIONS,
        };
        let mut cond = match inputs.opt(1) {
            Some(t) => truth(t, "the condition")?,
            None => true,
        };
        let mut carried: Vec<Cow<'_, Tensor>> = (2..2 + n)
            .map(|i| inputs.get(i).map(Cow::Borrowed))
            .collect::<OpResult<_>>()?;
        let captured: Vec<&Tensor> = (2 + n..inputs.len())
            .map(|i| inputs.get(i))
            .collect::<OpResult<_>>()?;
        let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); self.scans];
        let mut runs: Vec<(usize, MerkleNode)> = Vec::new();
        let mut i: u64 = 0;
        while cond && i < m {
            ensure!(
                i < MAX_LOOP_ITERATIONS,
                "the loop ran {MAX_LOOP_ITERATIONS} iterations, the limit, and its condition is still true"
            );
            let iter = Tensor::scalar(i as i64);
            let cond_in = Tensor::scalar(cond);
            let mut body_in: Vec<&Tensor> = vec![&iter, &cond_in];
            body_in.extend(carried.iter().map(|c| c.as_ref()));
            body_in.extend(captured.iter().copied());
            let (outs, leaves) = self.body.run(&body_in, ctx)?;
            runs.push((leaves.len(), merkle_root(&leaves)));
            let mut outs = outs.into_iter();
            cond = truth(
                &outs.next().expect("planned with a condition output"),
                "the body's condition output",
            )?;
            carried = outs.by_ref().take(n).map(Cow::Owned).collect();
            for (s, t) in scans.iter_mut().zip(outs) {
                s.push(t);
            }
            i += 1;
        }
        let mut outs: Vec<Tensor> = carried.into_iter().map(Cow::into_owned).collect();
        for (k, s) in scans.iter().enumerate() {
            let (dtype, shape) = match s.first() {
                Some(t) => (t.dtype(), t.shape().to_vec()),
                // No iteration ran: the type the body was planned with.
                None => {
                    let plan = self
                        .body
                        .plans
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .last()
                        .cloned();
                    let plan = plan.ok_or_else(|| OpError("the body was never planned".into()))?;
                    let f = self.body.output_facts(&plan)?.swap_remove(1 + n + k);
                    (f.dtype, f.shape)
                }
            };
            outs.push(stack(s, dtype, &shape)?);
        }
        outs.truncate(self.n_out);
        outs.push(commitment(KIND_LOOP, &runs));
        Ok(outs)
    }
}

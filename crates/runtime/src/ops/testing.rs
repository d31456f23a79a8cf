//! Test fixtures shared by the operator modules: build an op from its ONNX
//! type and attributes, run it with plan-time facts checked against the
//! run, and small tensor constructors.

use std::sync::Arc;

use super::{Args, BuildCtx, Fact, Op};
use crate::attrs::{Attr, Attrs};
use crate::error::OpResult;
use crate::kernels::{Ctx, Isa};
use crate::tensor::Tensor;

/// Attributes from `(name, value)` pairs.
pub(crate) fn attrs(items: Vec<(&str, Attr)>) -> Attrs {
    Attrs::new(items.into_iter().map(|(n, a)| (n.to_string(), a)).collect())
}

/// Builds op `op` of `opset` with attributes `a`, `n_in` inputs and `n_out`
/// outputs.
pub(crate) fn try_build(
    op: &str,
    a: Vec<(&str, Attr)>,
    opset: i64,
    n_in: usize,
    n_out: usize,
) -> OpResult<Box<dyn Op>> {
    let a = attrs(a);
    let c = BuildCtx {
        op_type: op,
        attrs: &a,
        opset,
        n_inputs: n_in,
        n_outputs: n_out,
    };
    super::build(&c)
}

/// [`try_build`] that must succeed.
pub(crate) fn build(
    op: &str,
    a: Vec<(&str, Attr)>,
    opset: i64,
    n_in: usize,
    n_out: usize,
) -> Box<dyn Op> {
    try_build(op, a, opset, n_in, n_out).unwrap()
}

/// Runs `infer` (inputs flagged `true` known as constants) then `run` on
/// one portable thread, and checks that the inferred dtypes, shapes and
/// (where inferred) values are the run's.
pub(crate) fn eval_refs(op: &dyn Op, inputs: &[Option<(&Tensor, bool)>]) -> OpResult<Vec<Tensor>> {
    let facts: Vec<Option<Fact>> = inputs
        .iter()
        .map(|i| {
            i.map(|(t, known)| {
                if known {
                    Fact::known(Arc::new(t.clone()))
                } else {
                    Fact::new(t.dtype(), t.shape().to_vec())
                }
            })
        })
        .collect();
    let frefs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
    let out_facts = op.infer(Args::new(&frefs))?;
    let trefs: Vec<Option<&Tensor>> = inputs.iter().map(|i| i.map(|(t, _)| t)).collect();
    let outs = op.run(&Ctx::single(Isa::Portable), Args::new(&trefs))?;
    assert_eq!(outs.len(), out_facts.len());
    for (f, t) in out_facts.iter().zip(&outs) {
        assert_eq!((f.dtype, f.shape.as_slice()), (t.dtype(), t.shape()));
        if let Some(v) = &f.value {
            assert_eq!(**v, *t);
        }
    }
    Ok(outs)
}

/// [`eval_refs`] over owned inputs.
pub(crate) fn eval_with(op: &dyn Op, inputs: &[Option<(Tensor, bool)>]) -> OpResult<Vec<Tensor>> {
    let refs: Vec<Option<(&Tensor, bool)>> = inputs
        .iter()
        .map(|i| i.as_ref().map(|(t, k)| (t, *k)))
        .collect();
    eval_refs(op, &refs)
}

/// [`eval_with`]: the first input data (not known at plan time), the rest
/// known constants.
pub(crate) fn eval(op: &dyn Op, x: Tensor, consts: Vec<Option<Tensor>>) -> OpResult<Vec<Tensor>> {
    let mut ins = vec![Some((x, false))];
    ins.extend(consts.into_iter().map(|c| c.map(|t| (t, true))));
    eval_with(op, &ins)
}

/// [`eval_refs`] with every input known at plan time.
pub(crate) fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
    let refs: Vec<Option<(&Tensor, bool)>> = inputs.iter().map(|i| i.map(|t| (t, true))).collect();
    eval_refs(op, &refs)
}

/// [`run`] with every input present, returning the first output.
pub(crate) fn run1(op: &dyn Op, inputs: &[&Tensor]) -> OpResult<Tensor> {
    let v: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
    Ok(run(op, &v)?.remove(0))
}

/// A float32 tensor of `shape` holding `v`.
pub(crate) fn f(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
}

/// A float32 tensor of `shape` holding 0, 1, 2, ...
pub(crate) fn f32s(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f(shape, &(0..n).map(|x| x as f32).collect::<Vec<_>>())
}

/// A one-dimensional int64 tensor.
pub(crate) fn ints(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
}

/// A float32 tensor's values.
pub(crate) fn vals(t: &Tensor) -> Vec<f32> {
    t.f32s().unwrap().to_vec()
}

/// Checks [`Op::region`] against a full run on the best ISA with threads
/// (every input but the first a model constant, as weights are):
/// for windows of every size in `windows` at every offset step, the
/// region holds the requested elements, bit for bit as the full run's.
pub(crate) fn check_regions(op: &dyn Op, inputs: &[Option<&Tensor>], windows: &[usize]) {
    let isa = Isa::detect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let full = op
        .run(
            &Ctx::with_pool(isa, &pool),
            Args::with_constants(inputs, u64::MAX << 1),
        )
        .unwrap()
        .remove(0);
    let bits = full.to_le_bytes();
    let es = full.dtype().size_bytes();
    let known: Vec<Option<Fact>> = inputs
        .iter()
        .map(|t| t.map(|t| Fact::known(Arc::new(t.clone()))))
        .collect();
    let facts: Vec<Option<&Fact>> = known.iter().map(Option::as_ref).collect();
    let out_facts = op.infer(Args::new(&facts)).unwrap();
    for &w in windows {
        let mut start = 0;
        while start < full.len() {
            let end = (start + w).min(full.len());
            for ctx in [Ctx::single(Isa::Portable), Ctx::single(isa)] {
                let r = op
                    .region(&ctx, Args::new(inputs), 0, start..end)
                    .expect("the op has a region")
                    .unwrap();
                assert!(r.first <= start && r.first + r.elements.len() >= end);
                // The price the referee puts on the region covers it.
                let covered = op
                    .region_len(Args::new(&facts), &out_facts, 0, start..end)
                    .expect("region_len is Some where region is");
                assert!(
                    covered >= r.elements.len(),
                    "region_len {covered} < {} computed for {start}..{end}",
                    r.elements.len()
                );
                let got = r.elements.to_le_bytes();
                let at = (start - r.first) * es;
                assert_eq!(
                    got[at..at + (end - start) * es],
                    bits[start * es..end * es],
                    "elements {start}..{end} of {:?}",
                    full.shape()
                );
            }
            start += w.div_ceil(2).max(1);
        }
    }
}

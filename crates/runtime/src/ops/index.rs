//! Operators: indexing and data movement (Slice, Split, Expand, Tile, Range,
//! GatherElements, GatherND, ScatterElements/Scatter, ScatterND, Trilu,
//! OneHot, NonZero).
//!
//! Data movement is exact and costs no flops. Scatter reductions apply the
//! updates sequentially in row-major index order (docs/determinism.md, "Sums
//! over an axis", Max/Min rules for max/min). Output shapes that depend on an
//! input's value (Slice starts/ends/axes/steps, Split sizes, Expand shape,
//! Tile repeats, Range, OneHot depth, NonZero) need that value at plan time.

use std::sync::Arc;

use super::reduce::Num;
use super::util::{
    by_dtype, cast_data, ensure_int_dtype, known_ints, normalize_axes, normalize_axis, shape_len,
    tensor_ints, to_dim, wrap,
};
use super::{Args, BuildCtx, Fact, Op, Registry, default_cost, movement_cost};
use crate::broadcast::{broadcast_shapes, broadcast_strides, for_each_offset};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{DType, Data, Elem, Tensor, strides};
use crate::{bail, ensure, with_data};

pub(crate) fn register(r: &mut Registry) {
    r.add("Slice", |c| {
        let attrs = if c.opset < 10 {
            Some((
                c.attrs
                    .opt_ints("starts")?
                    .map(<[i64]>::to_vec)
                    .unwrap_or_default(),
                c.attrs
                    .opt_ints("ends")?
                    .map(<[i64]>::to_vec)
                    .unwrap_or_default(),
                c.attrs.opt_ints("axes")?.map(<[i64]>::to_vec),
            ))
        } else {
            None
        };
        Ok(Box::new(Slice { attrs }))
    });
    r.add("Split", build_split);
    r.add("Expand", |_| Ok(Box::new(Expand)));
    r.add("Tile", |_| Ok(Box::new(Tile)));
    r.add("Range", |_| Ok(Box::new(Range)));
    r.add("GatherElements", |c| {
        Ok(Box::new(GatherElements {
            axis: c.attrs.int("axis", 0)?,
        }))
    });
    r.add("GatherND", |c| {
        Ok(Box::new(GatherNd {
            batch_dims: c.attrs.int("batch_dims", 0)?,
        }))
    });
    r.add("ScatterElements", build_scatter_elements);
    r.add("Scatter", build_scatter_elements);
    r.add("ScatterND", |c| {
        Ok(Box::new(ScatterNd {
            reduction: Reduction::parse(c)?,
        }))
    });
    r.add("Trilu", |c| {
        Ok(Box::new(Trilu {
            upper: c.attrs.int("upper", 1)? != 0,
        }))
    });
    r.add("OneHot", |c| {
        Ok(Box::new(OneHot {
            axis: c.attrs.int("axis", -1)?,
        }))
    });
    r.add("NonZero", |_| Ok(Box::new(NonZero)));
}

/// Calls `f(index)` for every multi-index of `shape` in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize]) -> OpResult<()>) -> OpResult<()> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx)?;
        let mut d = shape.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Resolves a possibly negative index into `0..dim`.
fn resolve(i: i64, dim: usize, what: &str) -> OpResult<usize> {
    let d = i64::try_from(dim).map_err(|_| OpError("dimension too large".into()))?;
    let j = if i < 0 { i.checked_add(d) } else { Some(i) };
    match j {
        Some(j) if (0..d).contains(&j) => Ok(j as usize),
        _ => bail!("{what} {i} is out of range for a dimension of size {dim}"),
    }
}

/// One integer from a scalar or one-element tensor.
fn one_int(t: &Tensor, what: &str) -> OpResult<i64> {
    let v = match t.dtype() {
        DType::F32 | DType::F64 => tensor_ints(
            &Tensor::new(t.shape().to_vec(), cast_data(t.data(), DType::I64))?,
            what,
        )?,
        _ => tensor_ints(t, what)?,
    };
    match v[..] {
        [x] => Ok(x),
        _ => bail!(
            "{what} must hold exactly one element, got shape {:?}",
            t.shape()
        ),
    }
}

/// The value of a fact, required at plan time.
fn known<'a>(f: &'a Fact, what: &str) -> OpResult<&'a Tensor> {
    f.value
        .as_deref()
        .ok_or_else(|| OpError(format!("{what} must be known before execution")))
}

// ---------------------------------------------------------------- Slice

#[derive(Debug)]
struct Slice {
    /// Opset < 10: starts, ends, axes attributes.
    attrs: Option<SliceAttrs>,
}

/// Per output axis: the first input index and the step.
#[derive(Debug)]
struct SlicePlan {
    out: Vec<usize>,
    start: Vec<usize>,
    step: Vec<i64>,
}

fn slice_plan(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> OpResult<SlicePlan> {
    let rank = shape.len();
    ensure!(
        starts.len() == ends.len(),
        "Slice starts {starts:?} and ends {ends:?} differ in length"
    );
    let axes = match axes {
        Some(a) => {
            ensure!(
                a.len() == starts.len(),
                "Slice axes {a:?} do not match starts {starts:?}"
            );
            normalize_axes(a, rank)?
        }
        None => {
            ensure!(
                starts.len() <= rank,
                "Slice has more starts than the rank {rank}"
            );
            (0..starts.len()).collect()
        }
    };
    if let Some(s) = steps {
        ensure!(
            s.len() == starts.len(),
            "Slice steps {s:?} do not match starts {starts:?}"
        );
    }
    let mut plan = SlicePlan {
        out: shape.to_vec(),
        start: vec![0; rank],
        step: vec![1; rank],
    };
    for (k, &a) in axes.iter().enumerate() {
        let step = steps.map_or(1, |s| s[k]);
        ensure!(step != 0, "Slice step must not be 0");
        let d = shape[a] as i128;
        let fix = |v: i64| {
            if v < 0 {
                i128::from(v) + d
            } else {
                i128::from(v)
            }
        };
        let (s, e) = (fix(starts[k]), fix(ends[k]));
        let st = i128::from(step);
        let (s, len) = if step > 0 {
            let s = s.clamp(0, d);
            let e = e.clamp(0, d);
            (s, if e > s { (e - s + st - 1) / st } else { 0 })
        } else {
            let s = s.clamp(0, d - 1);
            let e = e.clamp(-1, d - 1);
            (s, if s > e { (s - e - st - 1) / -st } else { 0 })
        };
        plan.out[a] = len as usize;
        plan.start[a] = if len > 0 { s as usize } else { 0 };
        plan.step[a] = step;
    }
    Ok(plan)
}

/// Copies the slice in runs: the trailing dimensions the slice keeps whole
/// form contiguous blocks, and a step-1 dimension before them one longer
/// block.
fn slice_typed<T: Copy>(v: &[T], shape: &[usize], p: &SlicePlan) -> OpResult<Vec<T>> {
    let n = shape_len(&p.out)?;
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return Ok(out);
    }
    let r = shape.len();
    if r == 0 {
        out.push(v[0]);
        return Ok(out);
    }
    let st = strides(shape);
    // `j`: the last dimension the slice does not keep whole (or 0).
    let whole = |d: usize| p.start[d] == 0 && p.step[d] == 1 && p.out[d] == shape[d];
    let mut j = r - 1;
    while j > 0 && whole(j) {
        j -= 1;
    }
    let inner = st[j];
    let step: Vec<i64> = (0..r).map(|d| p.step[d] * st[d] as i64).collect();
    let base: i64 = (0..r).map(|d| (p.start[d] * st[d]) as i64).sum();
    let mut idx = vec![0usize; j];
    loop {
        let off = base
            + idx
                .iter()
                .zip(&step)
                .map(|(&i, &s)| i as i64 * s)
                .sum::<i64>();
        if p.step[j] == 1 {
            let off = off as usize;
            out.extend_from_slice(&v[off..off + p.out[j] * inner]);
        } else {
            for i in 0..p.out[j] {
                let o = (off + i as i64 * step[j]) as usize;
                out.extend_from_slice(&v[o..o + inner]);
            }
        }
        // Next position over the dimensions before `j` (row-major).
        let mut d = j;
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < p.out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

impl Slice {
    fn params(&self, get: impl Fn(usize) -> OpResult<Option<Vec<i64>>>) -> OpResult<SliceParams> {
        match &self.attrs {
            Some((s, e, a)) => Ok((s.clone(), e.clone(), a.clone(), None)),
            None => Ok((
                get(1)?.ok_or_else(|| OpError("Slice needs starts".into()))?,
                get(2)?.ok_or_else(|| OpError("Slice needs ends".into()))?,
                get(3)?,
                get(4)?,
            )),
        }
    }
}

/// Opset < 10 Slice attributes: starts, ends, axes.
type SliceAttrs = (Vec<i64>, Vec<i64>, Option<Vec<i64>>);

type SliceParams = (Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>);

impl Op for Slice {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let (s, e, a, st) = self.params(|i| {
            inputs
                .opt(i)
                .map(|f| {
                    ensure_int_dtype(f.dtype, "Slice input")?;
                    known_ints(f, "Slice starts/ends/axes/steps")
                })
                .transpose()
        })?;
        let p = slice_plan(&x.shape, &s, &e, a.as_deref(), st.as_deref())?;
        Ok(vec![Fact::new(x.dtype, p.out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let (s, e, a, st) = self.params(|i| {
            inputs
                .opt(i)
                .map(|t| tensor_ints(t, "Slice input"))
                .transpose()
        })?;
        let p = slice_plan(x.shape(), &s, &e, a.as_deref(), st.as_deref())?;
        let data = with_data!(x.data(), v => wrap(slice_typed(v, x.shape(), &p)?));
        Ok(vec![Tensor::new(p.out, data)?])
    }
}

// ---------------------------------------------------------------- Split

#[derive(Debug)]
struct Split {
    axis: i64,
    /// Sizes from the attribute (opset < 13).
    split_attr: Option<Vec<i64>>,
    num_outputs: Option<i64>,
    n_outputs: usize,
}

fn build_split(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let split_attr = if c.opset < 13 {
        c.attrs.opt_ints("split")?.map(<[i64]>::to_vec)
    } else {
        None
    };
    let num_outputs = if c.opset >= 18 {
        c.attrs.opt_int("num_outputs")?
    } else {
        None
    };
    ensure!(c.n_outputs >= 1, "Split needs at least one output");
    Ok(Box::new(Split {
        axis: c.attrs.int("axis", 0)?,
        split_attr,
        num_outputs,
        n_outputs: c.n_outputs,
    }))
}

impl Split {
    /// The axis and the sizes of the parts.
    fn sizes(&self, shape: &[usize], split: Option<Vec<i64>>) -> OpResult<(usize, Vec<usize>)> {
        let axis = normalize_axis(self.axis, shape.len())?;
        let d = shape[axis];
        let split = split.or_else(|| self.split_attr.clone());
        let sizes = match split {
            Some(s) => {
                let s = s
                    .iter()
                    .map(|&v| to_dim(v, "split size"))
                    .collect::<OpResult<Vec<usize>>>()?;
                let total = s.iter().try_fold(0usize, |a, &b| a.checked_add(b));
                ensure!(
                    total == Some(d),
                    "split sizes {s:?} do not add up to the dimension {d}"
                );
                s
            }
            None => {
                let n = match self.num_outputs {
                    Some(n) => to_dim(n, "num_outputs")?,
                    None => self.n_outputs,
                };
                ensure!(n >= 1, "Split needs at least one part");
                // Equal parts of ceil(d / n); the last is smaller if uneven.
                let chunk = d.div_ceil(n);
                (0..n)
                    .map(|i| chunk.min(d.saturating_sub(i * chunk)))
                    .collect()
            }
        };
        ensure!(
            sizes.len() == self.n_outputs,
            "Split into {} parts but the node has {} outputs",
            sizes.len(),
            self.n_outputs
        );
        Ok((axis, sizes))
    }
}

impl Op for Split {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let split = match inputs.opt(1) {
            Some(f) => {
                ensure_int_dtype(f.dtype, "split input")?;
                Some(known_ints(f, "split input")?)
            }
            None => None,
        };
        let (axis, sizes) = self.sizes(&x.shape, split)?;
        Ok(sizes
            .into_iter()
            .map(|s| {
                let mut sh = x.shape.clone();
                sh[axis] = s;
                Fact::new(x.dtype, sh)
            })
            .collect())
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let split = inputs
            .opt(1)
            .map(|t| tensor_ints(t, "split input"))
            .transpose()?;
        let (axis, sizes) = self.sizes(x.shape(), split)?;
        let outer: usize = x.shape()[..axis].iter().product();
        let inner: usize = x.shape()[axis + 1..].iter().product();
        let d = x.shape()[axis];
        let mut outs = Vec::with_capacity(sizes.len());
        let mut at = 0usize;
        for s in sizes {
            let mut shape = x.shape().to_vec();
            shape[axis] = s;
            let data = with_data!(x.data(), v => {
                let mut out = Vec::with_capacity(outer * s * inner);
                for o in 0..outer {
                    let b = (o * d + at) * inner;
                    out.extend_from_slice(&v[b..b + s * inner]);
                }
                wrap(out)
            });
            outs.push(Tensor::new(shape, data)?);
            at += s;
        }
        Ok(outs)
    }
}

// ---------------------------------------------------------------- Expand / Tile

#[derive(Debug)]
struct Expand;

fn expand_shape(x: &[usize], spec: &[i64]) -> OpResult<Vec<usize>> {
    let spec = spec
        .iter()
        .map(|&d| to_dim(d, "Expand shape"))
        .collect::<OpResult<Vec<usize>>>()?;
    let out = broadcast_shapes(&[x, &spec])?;
    shape_len(&out)?;
    Ok(out)
}

impl Op for Expand {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let s = inputs.get(1)?;
        ensure_int_dtype(s.dtype, "Expand shape")?;
        ensure!(
            s.shape.len() == 1,
            "Expand shape must be 1-D, got {:?}",
            s.shape
        );
        let spec = known_ints(s, "Expand shape")?;
        Ok(vec![Fact::new(x.dtype, expand_shape(&x.shape, &spec)?)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let spec = tensor_ints(inputs.get(1)?, "Expand shape")?;
        let out = expand_shape(x.shape(), &spec)?;
        let st = broadcast_strides(x.shape(), &out);
        let data = with_data!(x.data(), v => {
            let mut o = Vec::with_capacity(shape_len(&out)?);
            for_each_offset(&out, &st, |_, i| o.push(v[i]));
            wrap(o)
        });
        Ok(vec![Tensor::new(out, data)?])
    }
}

#[derive(Debug)]
struct Tile;

fn tile_shape(x: &[usize], reps: &[i64]) -> OpResult<Vec<usize>> {
    ensure!(
        reps.len() == x.len(),
        "Tile repeats {reps:?} must have one entry per input dimension ({})",
        x.len()
    );
    let out = x
        .iter()
        .zip(reps)
        .map(|(&d, &r)| {
            d.checked_mul(to_dim(r, "Tile repeats")?)
                .ok_or_else(|| OpError("Tile output dimension overflows".into()))
        })
        .collect::<OpResult<Vec<usize>>>()?;
    shape_len(&out)?;
    Ok(out)
}

impl Op for Tile {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let r = inputs.get(1)?;
        ensure_int_dtype(r.dtype, "Tile repeats")?;
        let reps = known_ints(r, "Tile repeats")?;
        Ok(vec![Fact::new(x.dtype, tile_shape(&x.shape, &reps)?)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let reps = tensor_ints(inputs.get(1)?, "Tile repeats")?;
        let out = tile_shape(x.shape(), &reps)?;
        let st = strides(x.shape());
        let data = with_data!(x.data(), v => {
            let mut o = Vec::with_capacity(shape_len(&out)?);
            for_each_index(&out, |idx| {
                let off: usize =
                    idx.iter().zip(x.shape()).zip(&st).map(|((&i, &d), &s)| (i % d) * s).sum();
                o.push(v[off]);
                Ok(())
            })?;
            wrap(o)
        });
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- Range

#[derive(Debug)]
struct Range;

/// Range elements: `start + i * delta` in the element type (float32 as the
/// ONNX reference computes it), `max(ceil((limit - start) / delta), 0)` of
/// them.
trait RangeElem: Elem {
    fn count(start: Self, limit: Self, delta: Self) -> OpResult<usize>;
    fn nth(start: Self, delta: Self, i: usize) -> Self;
}

macro_rules! range_float {
    ($($t:ty),*) => {$(
        impl RangeElem for $t {
            fn count(start: Self, limit: Self, delta: Self) -> OpResult<usize> {
                ensure!(delta != 0.0, "Range delta must not be 0");
                let n = ((f64::from(limit) - f64::from(start)) / f64::from(delta)).ceil();
                ensure!(!n.is_nan() && n < 1e18, "Range has too many elements");
                Ok(if n > 0.0 { n as usize } else { 0 })
            }
            fn nth(start: Self, delta: Self, i: usize) -> Self {
                start + (i as $t) * delta
            }
        }
    )*};
}
range_float!(f32, f64);

macro_rules! range_int {
    ($($t:ty),*) => {$(
        impl RangeElem for $t {
            fn count(start: Self, limit: Self, delta: Self) -> OpResult<usize> {
                ensure!(delta != 0, "Range delta must not be 0");
                let (s, l, d) = (i128::from(start), i128::from(limit), i128::from(delta));
                // ceil((l - s) / d), exact in i128.
                let (q, r) = ((l - s) / d, (l - s) % d);
                let n = q + i128::from(r != 0 && ((r > 0) == (d > 0)));
                usize::try_from(n.max(0)).map_err(|_| OpError("Range too long".into()))
            }
            fn nth(start: Self, delta: Self, i: usize) -> Self {
                start.wrapping_add((i as $t).wrapping_mul(delta))
            }
        }
    )*};
}
range_int!(i64, i32);

fn range_typed<T: RangeElem>(s: &Tensor, l: &Tensor, d: &Tensor) -> OpResult<Tensor> {
    let one = |t: &Tensor, what: &str| -> OpResult<T> {
        match t.as_slice::<T>()? {
            [v] => Ok(*v),
            _ => bail!("Range {what} must be a scalar, got shape {:?}", t.shape()),
        }
    };
    let (s, l, d) = (one(s, "start")?, one(l, "limit")?, one(d, "delta")?);
    let n = T::count(s, l, d)?;
    Tensor::from_vec(vec![n], (0..n).map(|i| T::nth(s, d, i)).collect())
}

fn range_run(s: &Tensor, l: &Tensor, d: &Tensor) -> OpResult<Tensor> {
    ensure!(
        s.dtype() == l.dtype() && s.dtype() == d.dtype(),
        "Range inputs must have one dtype"
    );
    match s.dtype() {
        DType::F32 => range_typed::<f32>(s, l, d),
        DType::F64 => range_typed::<f64>(s, l, d),
        DType::I64 => range_typed::<i64>(s, l, d),
        DType::I32 => range_typed::<i32>(s, l, d),
        t => bail!("Range does not support {t}"),
    }
}

impl Op for Range {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let s = known(inputs.get(0)?, "Range start")?;
        let l = known(inputs.get(1)?, "Range limit")?;
        let d = known(inputs.get(2)?, "Range delta")?;
        let t = range_run(s, l, d)?;
        Ok(vec![Fact::new(t.dtype(), t.shape().to_vec())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, 2)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![range_run(
            inputs.get(0)?,
            inputs.get(1)?,
            inputs.get(2)?,
        )?])
    }
}

// ---------------------------------------------------------------- GatherElements

#[derive(Debug)]
struct GatherElements {
    axis: i64,
}

impl GatherElements {
    fn check(&self, data: &[usize], idx: &[usize]) -> OpResult<usize> {
        ensure!(
            data.len() == idx.len() && !data.is_empty(),
            "GatherElements data {data:?} and indices {idx:?} must have the same rank >= 1"
        );
        normalize_axis(self.axis, data.len())
    }
}

/// The data offset of an element index whose `axis` entry is replaced by a
/// (possibly negative) index; other entries must be within `shape`.
fn offset_with(
    idx: &[usize],
    shape: &[usize],
    st: &[usize],
    axis: usize,
    at: i64,
) -> OpResult<usize> {
    let mut off = 0usize;
    for (d, (&i, (&n, &s))) in idx.iter().zip(shape.iter().zip(st)).enumerate() {
        let i = if d == axis {
            resolve(at, n, "index")?
        } else {
            i
        };
        ensure!(i < n, "index {idx:?} is out of range for shape {shape:?}");
        off += i * s;
    }
    Ok(off)
}

impl Op for GatherElements {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        ensure_int_dtype(i.dtype, "indices")?;
        self.check(&x.shape, &i.shape)?;
        Ok(vec![Fact::new(x.dtype, i.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        ensure_int_dtype(it.dtype(), "indices")?;
        let axis = self.check(x.shape(), it.shape())?;
        let ind = tensor_ints(it, "indices")?;
        let st = strides(x.shape());
        let mut offs = Vec::with_capacity(ind.len());
        let mut k = 0usize;
        for_each_index(it.shape(), |idx| {
            offs.push(offset_with(idx, x.shape(), &st, axis, ind[k])?);
            k += 1;
            Ok(())
        })?;
        Ok(vec![Tensor::new(
            it.shape().to_vec(),
            x.data().gather(offs.into_iter()),
        )?])
    }
}

// ---------------------------------------------------------------- GatherND

#[derive(Debug)]
struct GatherNd {
    batch_dims: i64,
}

/// Shapes of GatherND / ScatterND: (batch dims b, index depth k).
fn nd_plan(data: &[usize], idx: &[usize], b: usize) -> OpResult<(usize, usize)> {
    let (r, q) = (data.len(), idx.len());
    ensure!(r >= 1 && q >= 1, "data and indices must have rank >= 1");
    ensure!(
        b < q.min(r),
        "batch_dims {b} must be below the ranks of data and indices"
    );
    ensure!(
        data[..b] == idx[..b],
        "the batch dimensions of data {data:?} and indices {idx:?} differ"
    );
    let k = idx[q - 1];
    ensure!(
        k >= 1 && b + k <= r,
        "indices' last dimension {k} must be in 1..={} for data {data:?}",
        r - b
    );
    Ok((b, k))
}

/// Offsets (into data) of the slices addressed by each index tuple.
fn nd_offsets(
    data: &[usize],
    idx_shape: &[usize],
    ind: &[i64],
    b: usize,
    k: usize,
) -> OpResult<Vec<usize>> {
    let st = strides(data);
    let tuples = ind.len() / k.max(1);
    let per_batch = tuples / shape_len(&idx_shape[..b])?.max(1);
    let batch_stride = if b == 0 { 0 } else { st[b - 1] };
    (0..tuples)
        .map(|t| {
            let mut off = (t / per_batch.max(1)) * batch_stride;
            for j in 0..k {
                off += resolve(ind[t * k + j], data[b + j], "index")? * st[b + j];
            }
            Ok(off)
        })
        .collect()
}

impl Op for GatherNd {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        ensure_int_dtype(i.dtype, "indices")?;
        let b = to_dim(self.batch_dims, "batch_dims")?;
        let (b, k) = nd_plan(&x.shape, &i.shape, b)?;
        let mut out = i.shape[..i.shape.len() - 1].to_vec();
        out.extend_from_slice(&x.shape[b + k..]);
        Ok(vec![Fact::new(x.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        ensure_int_dtype(it.dtype(), "indices")?;
        let b = to_dim(self.batch_dims, "batch_dims")?;
        let (b, k) = nd_plan(x.shape(), it.shape(), b)?;
        let ind = tensor_ints(it, "indices")?;
        let offs = nd_offsets(x.shape(), it.shape(), &ind, b, k)?;
        let inner: usize = x.shape()[b + k..].iter().product();
        let mut out = it.shape()[..it.rank() - 1].to_vec();
        out.extend_from_slice(&x.shape()[b + k..]);
        let data = x.data().gather(offs.iter().flat_map(|&o| o..o + inner));
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- Scatter

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn parse(c: &BuildCtx<'_>) -> OpResult<Reduction> {
        Ok(match c.attrs.string("reduction", "none")? {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            r => bail!("unknown reduction `{r}`"),
        })
    }

    /// Applies one update; max/min follow `canon::max`/`canon::min`.
    fn apply<T: Num>(self, old: T, u: T) -> T {
        match self {
            Reduction::None => u,
            Reduction::Add => old.add(u),
            Reduction::Mul => old.mul(u),
            Reduction::Max => old.max_c(u),
            Reduction::Min => old.min_c(u),
        }
    }
}

#[derive(Debug)]
struct ScatterElements {
    axis: i64,
    reduction: Reduction,
}

fn build_scatter_elements(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: c.attrs.int("axis", 0)?,
        reduction: Reduction::parse(c)?,
    }))
}

/// Copies `data` and applies `updates[j]` at `offs[j]` sequentially in order.
fn scatter_typed<T: Num>(
    data: &Tensor,
    upd: &Tensor,
    offs: &[usize],
    inner: usize,
    r: Reduction,
) -> OpResult<Data> {
    let mut out = data.as_slice::<T>()?.to_vec();
    let u = upd.as_slice::<T>()?;
    ensure!(
        u.len() == offs.len() * inner,
        "updates have the wrong number of elements"
    );
    for (j, &o) in offs.iter().enumerate() {
        for e in 0..inner {
            out[o + e] = r.apply(out[o + e], u[j * inner + e]);
        }
    }
    Ok(T::wrap(out))
}

impl ScatterElements {
    fn check(&self, x: &Fact, i: &Fact, u: &Fact) -> OpResult<usize> {
        ensure_int_dtype(i.dtype, "indices")?;
        ensure!(
            u.dtype == x.dtype,
            "updates dtype {} differs from data {}",
            u.dtype,
            x.dtype
        );
        ensure!(
            i.shape == u.shape,
            "indices {:?} and updates {:?} differ",
            i.shape,
            u.shape
        );
        ensure!(
            x.shape.len() == i.shape.len() && !x.shape.is_empty(),
            "data {:?} and indices {:?} must have the same rank >= 1",
            x.shape,
            i.shape
        );
        normalize_axis(self.axis, x.shape.len())
    }
}

fn fact_of(t: &Tensor) -> Fact {
    Fact::new(t.dtype(), t.shape().to_vec())
}

impl Op for ScatterElements {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        self.check(x, inputs.get(1)?, inputs.get(2)?)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, it, u) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        let axis = self.check(&fact_of(x), &fact_of(it), &fact_of(u))?;
        let ind = tensor_ints(it, "indices")?;
        let st = strides(x.shape());
        let mut offs = Vec::with_capacity(ind.len());
        let mut k = 0usize;
        for_each_index(it.shape(), |idx| {
            offs.push(offset_with(idx, x.shape(), &st, axis, ind[k])?);
            k += 1;
            Ok(())
        })?;
        let data = by_dtype!(x.dtype(), T => scatter_typed::<T>(x, u, &offs, 1, self.reduction)?);
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

#[derive(Debug)]
struct ScatterNd {
    reduction: Reduction,
}

impl ScatterNd {
    fn check(x: &Fact, i: &Fact, u: &Fact) -> OpResult<usize> {
        ensure_int_dtype(i.dtype, "indices")?;
        ensure!(
            u.dtype == x.dtype,
            "updates dtype {} differs from data {}",
            u.dtype,
            x.dtype
        );
        let (_, k) = nd_plan(&x.shape, &i.shape, 0)?;
        let mut want = i.shape[..i.shape.len() - 1].to_vec();
        want.extend_from_slice(&x.shape[k..]);
        ensure!(
            u.shape == want,
            "updates shape {:?} must be {want:?}",
            u.shape
        );
        Ok(k)
    }
}

impl Op for ScatterNd {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ScatterNd::check(x, inputs.get(1)?, inputs.get(2)?)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, it, u) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        let k = ScatterNd::check(&fact_of(x), &fact_of(it), &fact_of(u))?;
        let ind = tensor_ints(it, "indices")?;
        let offs = nd_offsets(x.shape(), it.shape(), &ind, 0, k)?;
        let inner: usize = x.shape()[k..].iter().product();
        let data =
            by_dtype!(x.dtype(), T => scatter_typed::<T>(x, u, &offs, inner, self.reduction)?);
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

// ---------------------------------------------------------------- Trilu

#[derive(Debug)]
struct Trilu {
    upper: bool,
}

impl Op for Trilu {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure!(
            x.shape.len() >= 2,
            "Trilu input must have rank >= 2, got {:?}",
            x.shape
        );
        if let Some(k) = inputs.opt(1) {
            ensure_int_dtype(k.dtype, "Trilu k")?;
            ensure!(k.len() == 1, "Trilu k must hold one element");
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        ensure!(x.rank() >= 2, "Trilu input must have rank >= 2");
        let k = inputs
            .opt(1)
            .map(|t| one_int(t, "Trilu k"))
            .transpose()?
            .unwrap_or(0);
        let (n, m) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
        let upper = self.upper;
        // Keep (i, j) when j - i >= k (upper) or j - i <= k (lower).
        let keep = move |e: usize| {
            let (i, j) = ((e / m.max(1)) % n.max(1), e % m.max(1));
            let diff = j as i128 - i as i128;
            if upper {
                diff >= i128::from(k)
            } else {
                diff <= i128::from(k)
            }
        };
        let data = by_dtype!(x.dtype(), T => {
            let v = x.as_slice::<T>()?;
            wrap(v.iter().enumerate().map(|(e, &a)| if keep(e) { a } else { T::default() }).collect::<Vec<T>>())
        });
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

// ---------------------------------------------------------------- OneHot

#[derive(Debug)]
struct OneHot {
    axis: i64,
}

impl OneHot {
    fn shape(&self, idx: &[usize], depth: i64) -> OpResult<(usize, usize, Vec<usize>)> {
        let depth = usize::try_from(depth)
            .ok()
            .filter(|&d| d >= 1)
            .ok_or_else(|| OpError(format!("OneHot depth must be >= 1, got {depth}")))?;
        let axis = normalize_axis(self.axis, idx.len() + 1)?;
        let mut out = idx.to_vec();
        out.insert(axis, depth);
        shape_len(&out)?;
        Ok((axis, depth, out))
    }
}

impl Op for OneHot {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let i = inputs.get(0)?;
        let depth = one_int(known(inputs.get(1)?, "OneHot depth")?, "OneHot depth")?;
        let v = inputs.get(2)?;
        ensure!(
            v.len() == 2,
            "OneHot values must hold [off, on], got {:?}",
            v.shape
        );
        ensure!(i.dtype != DType::Bool, "OneHot indices must be numeric");
        let (_, _, out) = self.shape(&i.shape, depth)?;
        Ok(vec![Fact::new(v.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let it = inputs.get(0)?;
        let depth = one_int(inputs.get(1)?, "OneHot depth")?;
        let vals = inputs.get(2)?;
        ensure!(vals.len() == 2, "OneHot values must hold [off, on]");
        ensure!(it.dtype() != DType::Bool, "OneHot indices must be numeric");
        let (axis, depth, out) = self.shape(it.shape(), depth)?;
        // Indices convert with Rust `as` (truncation), negative ones count
        // from the end, out-of-range ones give an all-`off` row.
        let Data::I64(ind) = cast_data(it.data(), DType::I64) else {
            bail!("OneHot indices must be numeric");
        };
        let inner: usize = it.shape()[axis..].iter().product();
        let d = depth as i64;
        let data = by_dtype!(vals.dtype(), T => {
            let v = vals.as_slice::<T>()?;
            let (off, on) = (v[0], v[1]);
            let mut o = vec![off; shape_len(&out)?];
            for (p, &i) in ind.iter().enumerate() {
                let j = if i < 0 { i.saturating_add(d) } else { i };
                if (0..d).contains(&j) {
                    let (a, b) = (p / inner.max(1), p % inner.max(1));
                    o[(a * depth + j as usize) * inner + b] = on;
                }
            }
            wrap(o)
        });
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- NonZero

#[derive(Debug)]
struct NonZero;

/// The indices of the non-zero elements (NaN counts as non-zero), one row per
/// dimension, in row-major order.
fn nonzero(x: &Tensor) -> OpResult<Tensor> {
    let rank = x.rank();
    let flat: Vec<usize> = by_dtype!(x.dtype(), T => {
        let z = T::default();
        x.as_slice::<T>()?
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != z)
            .map(|(i, _)| i)
            .collect()
    });
    let n = flat.len();
    let st = strides(x.shape());
    let mut out = vec![0i64; rank * n];
    for (c, &f) in flat.iter().enumerate() {
        let mut rem = f;
        for d in 0..rank {
            out[d * n + c] = (rem / st[d].max(1)) as i64;
            rem %= st[d].max(1);
        }
    }
    Tensor::from_vec(vec![rank, n], out)
}

impl Op for NonZero {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        match &x.value {
            Some(t) => Ok(vec![Fact::known(Arc::new(nonzero(t)?))]),
            None => {
                bail!("NonZero needs a known input: its output shape depends on the input's value")
            }
        }
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![nonzero(inputs.get(0)?)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn build(
        op: &str,
        opset: i64,
        attrs: Vec<(&str, Attr)>,
        n_out: usize,
    ) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs: 5,
            n_outputs: n_out,
        };
        super::super::build(&b)
    }

    /// Runs an op with every input known to `infer`; checks infer against run.
    fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = inputs
            .iter()
            .map(|t| t.map(|t| Fact::known(Arc::new(t.clone()))))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let out_facts = op.infer(Args::new(&frefs))?;
        let outs = op.run(&Ctx::single(Isa::Portable), Args::new(inputs))?;
        assert_eq!(out_facts.len(), outs.len());
        for (f, t) in out_facts.iter().zip(&outs) {
            assert_eq!((f.dtype, f.shape.as_slice()), (t.dtype(), t.shape()));
        }
        Ok(outs)
    }

    fn run1(op: &dyn Op, inputs: &[&Tensor]) -> OpResult<Tensor> {
        let v: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
        Ok(run(op, &v)?.remove(0))
    }

    fn f(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn i(v: &[i64]) -> Tensor {
        Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
    }

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        f(shape, &(0..n).map(|x| x as f32).collect::<Vec<_>>())
    }

    #[test]
    fn slice_steps_axes_and_clamping() {
        let x = iota(&[3, 4]);
        let o = build("Slice", 13, vec![], 1).unwrap();
        // Negative step over axis 1, with a huge start clamped.
        let y = run1(
            o.as_ref(),
            &[&x, &i(&[i64::MAX]), &i(&[i64::MIN]), &i(&[-1]), &i(&[-2])],
        )
        .unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.f32s().unwrap(), &[3.0, 1.0, 7.0, 5.0, 11.0, 9.0]);
        // Default axes and steps; negative start; out-of-bounds end.
        let y = run1(o.as_ref(), &[&x, &i(&[-2, 1]), &i(&[100, 3])]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.f32s().unwrap(), &[5.0, 6.0, 9.0, 10.0]);
        // Empty result.
        let y = run1(o.as_ref(), &[&x, &i(&[2]), &i(&[1]), &i(&[0])]).unwrap();
        assert_eq!(y.shape(), &[0, 4]);
        // Opset 1 attributes.
        let o1 = build(
            "Slice",
            1,
            vec![
                ("starts", Attr::Ints(vec![1])),
                ("ends", Attr::Ints(vec![-1])),
                ("axes", Attr::Ints(vec![1])),
            ],
            1,
        )
        .unwrap();
        let y = run1(o1.as_ref(), &[&x]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
        // Errors: zero step, mismatched lengths, bad axis, unknown starts.
        assert!(run1(o.as_ref(), &[&x, &i(&[0]), &i(&[1]), &i(&[0]), &i(&[0])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[0, 1]), &i(&[1])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[0]), &i(&[1]), &i(&[2])]).is_err());
        let facts = [
            Fact::new(DType::F32, vec![3, 4]),
            Fact::new(DType::I64, vec![1]),
        ];
        let fr = [Some(&facts[0]), Some(&facts[1]), Some(&facts[1])];
        assert!(o.infer(Args::new(&fr)).is_err());
    }

    #[test]
    fn split_variants() {
        let x = iota(&[2, 5]);
        let o = build(
            "Split",
            18,
            vec![("axis", Attr::Int(-1)), ("num_outputs", Attr::Int(3))],
            3,
        )
        .unwrap();
        let ys = run(o.as_ref(), &[Some(&x)]).unwrap();
        let shapes: Vec<&[usize]> = ys.iter().map(Tensor::shape).collect();
        assert_eq!(shapes, [&[2, 2][..], &[2, 2], &[2, 1]]);
        assert_eq!(ys[2].f32s().unwrap(), &[4.0, 9.0]);
        let o = build("Split", 13, vec![("axis", Attr::Int(1))], 2).unwrap();
        let ys = run(o.as_ref(), &[Some(&x), Some(&i(&[0, 5]))]).unwrap();
        assert_eq!(ys[0].shape(), &[2, 0]);
        assert_eq!(ys[1], x);
        let o = build("Split", 11, vec![("split", Attr::Ints(vec![1, 1]))], 2).unwrap();
        let ys = run(o.as_ref(), &[Some(&x)]).unwrap();
        assert_eq!(ys[1].f32s().unwrap(), &[5.0, 6.0, 7.0, 8.0, 9.0]);
        assert!(run(o.as_ref(), &[Some(&iota(&[3, 1]))]).is_err());
        let o = build("Split", 13, vec![], 2).unwrap();
        assert!(run(o.as_ref(), &[Some(&x), Some(&i(&[1, -1]))]).is_err());
        assert!(run(o.as_ref(), &[Some(&x), Some(&i(&[1, 1, 0]))]).is_err());
    }

    #[test]
    fn expand_and_tile() {
        let x = f(&[3, 1], &[1.0, 2.0, 3.0]);
        let o = build("Expand", 13, vec![], 1).unwrap();
        let y = run1(o.as_ref(), &[&x, &i(&[2, 1, 2])]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        assert_eq!(&y.f32s().unwrap()[..6], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        assert!(run1(o.as_ref(), &[&x, &i(&[2, 2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[-1])]).is_err());
        let o = build("Tile", 13, vec![], 1).unwrap();
        let y = run1(o.as_ref(), &[&f(&[2], &[1.0, 2.0]), &i(&[3])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        let y = run1(o.as_ref(), &[&x, &i(&[0, 2])]).unwrap();
        assert_eq!(y.shape(), &[0, 2]);
        assert!(run1(o.as_ref(), &[&x, &i(&[2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[-1, 1])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[i64::MAX, i64::MAX])]).is_err());
    }

    #[test]
    fn range_counts_and_values() {
        let o = build("Range", 11, vec![], 1).unwrap();
        let s = |v: i32| Tensor::scalar(v);
        let y = run1(o.as_ref(), &[&s(10), &s(6), &s(-3)]).unwrap();
        assert_eq!(y.as_slice::<i32>().unwrap(), &[10, 7]);
        let y = run1(o.as_ref(), &[&s(1), &s(5), &s(-1)]).unwrap();
        assert_eq!(y.shape(), &[0]);
        let y = run1(
            o.as_ref(),
            &[
                &Tensor::scalar(1.0f32),
                &Tensor::scalar(2.0f32),
                &Tensor::scalar(0.3f32),
            ],
        )
        .unwrap();
        assert_eq!(
            y.f32s().unwrap(),
            &[1.0, 1.0 + 0.3, 1.0 + 2.0 * 0.3, 1.0 + 3.0 * 0.3]
        );
        assert!(run1(o.as_ref(), &[&s(1), &s(5), &s(0)]).is_err());
        assert!(run1(o.as_ref(), &[&s(1), &Tensor::scalar(5i64), &s(1)]).is_err());
        let inf = Tensor::scalar(f32::INFINITY);
        assert!(
            run1(
                o.as_ref(),
                &[&Tensor::scalar(0.0f32), &inf, &Tensor::scalar(1.0f32)]
            )
            .is_err()
        );
        let facts = [Fact::new(DType::I32, vec![])];
        assert!(o.infer(Args::new(&[Some(&facts[0]); 3])).is_err());
    }

    #[test]
    fn gather_elements_and_nd() {
        let x = iota(&[2, 3]);
        let o = build("GatherElements", 13, vec![("axis", Attr::Int(-1))], 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 2], vec![0i64, -1, 2, 1]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 2.0, 5.0, 4.0]);
        let bad = Tensor::from_vec(vec![1, 1], vec![3i64]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &bad]).is_err());
        let big = Tensor::from_vec(vec![3, 1], vec![0i64; 3]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &big]).is_err());
        let o = build("GatherND", 13, vec![], 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![1i64, 0]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(&y.f32s().unwrap()[..3], &[3.0, 4.0, 5.0]);
        let o = build("GatherND", 13, vec![("batch_dims", Attr::Int(1))], 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![2i64, -3]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[2.0, 3.0]);
        let idx = Tensor::from_vec(vec![2, 1], vec![3i64, 0]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &idx]).is_err());
        let idx = Tensor::from_vec(vec![2, 2], vec![0i64; 4]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &idx]).is_err());
    }

    #[test]
    fn scatters_apply_updates_in_order() {
        let x = f(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let idx = Tensor::from_vec(vec![3], vec![1i64, -3, 3]).unwrap();
        let u = f(&[3], &[10.0, 20.0, f32::NAN]);
        let cases = [
            ("none", [1.0, 20.0, 3.0, f32::NAN]),
            ("add", [1.0, 32.0, 3.0, f32::NAN]),
            ("mul", [1.0, 400.0, 3.0, f32::NAN]),
            ("max", [1.0, 20.0, 3.0, f32::NAN]),
            ("min", [1.0, 2.0, 3.0, f32::NAN]),
        ];
        for (r, want) in cases {
            let o = build(
                "ScatterElements",
                18,
                vec![("reduction", Attr::String(r.into()))],
                1,
            )
            .unwrap();
            let y = run1(o.as_ref(), &[&x, &idx, &u]).unwrap();
            let got = y.f32s().unwrap();
            assert_eq!(&got[..3], &want[..3], "{r}");
            assert!(got[3].is_nan());
        }
        let o = build(
            "ScatterElements",
            18,
            vec![("reduction", Attr::String("bogus".into()))],
            1,
        );
        assert!(o.is_err());
        let o = build("ScatterElements", 18, vec![], 1).unwrap();
        assert!(run1(o.as_ref(), &[&x, &i(&[4]), &f(&[1], &[0.0])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &i(&[0]), &f(&[2], &[0.0, 1.0])]).is_err());
        let x2 = iota(&[2, 2]);
        let o = build(
            "ScatterND",
            18,
            vec![("reduction", Attr::String("add".into()))],
            1,
        )
        .unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![1i64, 1]).unwrap();
        let y = run1(o.as_ref(), &[&x2, &idx, &f(&[2, 2], &[1.0, 1.0, 2.0, 2.0])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 1.0, 5.0, 6.0]);
        let idx = Tensor::from_vec(vec![1, 2], vec![0i64, -1]).unwrap();
        let o = build("ScatterND", 11, vec![], 1).unwrap();
        let y = run1(o.as_ref(), &[&x2, &idx, &f(&[1], &[9.0])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 9.0, 2.0, 3.0]);
        assert!(run1(o.as_ref(), &[&x2, &idx, &f(&[2], &[9.0, 9.0])]).is_err());
        let idx = Tensor::from_vec(vec![1, 2], vec![2i64, 0]).unwrap();
        assert!(run1(o.as_ref(), &[&x2, &idx, &f(&[1], &[9.0])]).is_err());
    }

    #[test]
    fn trilu_onehot_nonzero() {
        let x = iota(&[2, 3]);
        let o = build("Trilu", 14, vec![], 1).unwrap();
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
        let o = build("Trilu", 14, vec![("upper", Attr::Int(0))], 1).unwrap();
        let y = run1(o.as_ref(), &[&x, &Tensor::scalar(-1i64)]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 0.0, 0.0, 3.0, 0.0, 0.0]);
        assert!(run1(o.as_ref(), &[&f(&[2], &[1.0, 2.0])]).is_err());
        let o = build("OneHot", 11, vec![("axis", Attr::Int(0))], 1).unwrap();
        let idx = Tensor::from_vec(vec![3], vec![0i64, -1, 7]).unwrap();
        let vals = f(&[2], &[0.0, 5.0]);
        let y = run1(o.as_ref(), &[&idx, &Tensor::scalar(3.0f32), &vals]).unwrap();
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(
            y.f32s().unwrap(),
            &[5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0]
        );
        assert!(run1(o.as_ref(), &[&idx, &Tensor::scalar(0i64), &vals]).is_err());
        assert!(run1(o.as_ref(), &[&idx, &Tensor::scalar(3i64), &f(&[1], &[0.0])]).is_err());
        let o = build("NonZero", 13, vec![], 1).unwrap();
        let x = f(&[2, 2], &[0.0, f32::NAN, -0.0, 2.0]);
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[0, 1, 1, 1]);
        let unknown = Fact::new(DType::F32, vec![2, 2]);
        let e = o.infer(Args::new(&[Some(&unknown)])).unwrap_err();
        assert!(e.0.contains("known input"), "{e}");
    }
}

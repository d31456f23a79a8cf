//! Operators: slicing and generated indices (Slice, Split, Expand, Tile,
//! Range, Trilu, OneHot, NonZero). Gather and Scatter are in `gather.rs`.
//!
//! Data movement is exact and costs no flops. Output shapes that depend on an
//! input's value (Slice starts/ends/axes/steps, Split sizes, Expand shape,
//! Tile repeats, Range, OneHot depth, NonZero) need that value at plan time.

use std::sync::Arc;

use super::util::{
    by_dtype, cast_data, ensure_int_dtype, for_each_index, known_ints, normalize_axes,
    normalize_axis, shape_len, tensor_ints, to_dim, wrap,
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
    use crate::attrs::Attr;
    use crate::ops::testing::*;

    #[test]
    fn slice_steps_axes_and_clamping() {
        let x = f32s(&[3, 4]);
        let o = try_build("Slice", vec![], 13, 5, 1).unwrap();
        // Negative step over axis 1, with a huge start clamped.
        let y = run1(
            o.as_ref(),
            &[
                &x,
                &ints(&[i64::MAX]),
                &ints(&[i64::MIN]),
                &ints(&[-1]),
                &ints(&[-2]),
            ],
        )
        .unwrap();
        assert_eq!(y.shape(), &[3, 2]);
        assert_eq!(y.f32s().unwrap(), &[3.0, 1.0, 7.0, 5.0, 11.0, 9.0]);
        // Default axes and steps; negative start; out-of-bounds end.
        let y = run1(o.as_ref(), &[&x, &ints(&[-2, 1]), &ints(&[100, 3])]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.f32s().unwrap(), &[5.0, 6.0, 9.0, 10.0]);
        // Empty result.
        let y = run1(o.as_ref(), &[&x, &ints(&[2]), &ints(&[1]), &ints(&[0])]).unwrap();
        assert_eq!(y.shape(), &[0, 4]);
        // Opset 1 attributes.
        let o1 = try_build(
            "Slice",
            vec![
                ("starts", Attr::Ints(vec![1])),
                ("ends", Attr::Ints(vec![-1])),
                ("axes", Attr::Ints(vec![1])),
            ],
            1,
            5,
            1,
        )
        .unwrap();
        let y = run1(o1.as_ref(), &[&x]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
        // Errors: zero step, mismatched lengths, bad axis, unknown starts.
        assert!(
            run1(
                o.as_ref(),
                &[&x, &ints(&[0]), &ints(&[1]), &ints(&[0]), &ints(&[0])]
            )
            .is_err()
        );
        assert!(run1(o.as_ref(), &[&x, &ints(&[0, 1]), &ints(&[1])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[0]), &ints(&[1]), &ints(&[2])]).is_err());
        let facts = [
            Fact::new(DType::F32, vec![3, 4]),
            Fact::new(DType::I64, vec![1]),
        ];
        let fr = [Some(&facts[0]), Some(&facts[1]), Some(&facts[1])];
        assert!(o.infer(Args::new(&fr)).is_err());
    }

    #[test]
    fn split_variants() {
        let x = f32s(&[2, 5]);
        let o = try_build(
            "Split",
            vec![("axis", Attr::Int(-1)), ("num_outputs", Attr::Int(3))],
            18,
            5,
            3,
        )
        .unwrap();
        let ys = run(o.as_ref(), &[Some(&x)]).unwrap();
        let shapes: Vec<&[usize]> = ys.iter().map(Tensor::shape).collect();
        assert_eq!(shapes, [&[2, 2][..], &[2, 2], &[2, 1]]);
        assert_eq!(ys[2].f32s().unwrap(), &[4.0, 9.0]);
        let o = try_build("Split", vec![("axis", Attr::Int(1))], 13, 5, 2).unwrap();
        let ys = run(o.as_ref(), &[Some(&x), Some(&ints(&[0, 5]))]).unwrap();
        assert_eq!(ys[0].shape(), &[2, 0]);
        assert_eq!(ys[1], x);
        let o = try_build("Split", vec![("split", Attr::Ints(vec![1, 1]))], 11, 5, 2).unwrap();
        let ys = run(o.as_ref(), &[Some(&x)]).unwrap();
        assert_eq!(ys[1].f32s().unwrap(), &[5.0, 6.0, 7.0, 8.0, 9.0]);
        assert!(run(o.as_ref(), &[Some(&f32s(&[3, 1]))]).is_err());
        let o = try_build("Split", vec![], 13, 5, 2).unwrap();
        assert!(run(o.as_ref(), &[Some(&x), Some(&ints(&[1, -1]))]).is_err());
        assert!(run(o.as_ref(), &[Some(&x), Some(&ints(&[1, 1, 0]))]).is_err());
    }

    #[test]
    fn expand_and_tile() {
        let x = f(&[3, 1], &[1.0, 2.0, 3.0]);
        let o = try_build("Expand", vec![], 13, 5, 1).unwrap();
        let y = run1(o.as_ref(), &[&x, &ints(&[2, 1, 2])]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        assert_eq!(&y.f32s().unwrap()[..6], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        assert!(run1(o.as_ref(), &[&x, &ints(&[2, 2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[-1])]).is_err());
        let o = try_build("Tile", vec![], 13, 5, 1).unwrap();
        let y = run1(o.as_ref(), &[&f(&[2], &[1.0, 2.0]), &ints(&[3])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        let y = run1(o.as_ref(), &[&x, &ints(&[0, 2])]).unwrap();
        assert_eq!(y.shape(), &[0, 2]);
        assert!(run1(o.as_ref(), &[&x, &ints(&[2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[-1, 1])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[i64::MAX, i64::MAX])]).is_err());
    }

    #[test]
    fn range_counts_and_values() {
        let o = try_build("Range", vec![], 11, 5, 1).unwrap();
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
    fn trilu_onehot_nonzero() {
        let x = f32s(&[2, 3]);
        let o = try_build("Trilu", vec![], 14, 5, 1).unwrap();
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
        let o = try_build("Trilu", vec![("upper", Attr::Int(0))], 14, 5, 1).unwrap();
        let y = run1(o.as_ref(), &[&x, &Tensor::scalar(-1i64)]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 0.0, 0.0, 3.0, 0.0, 0.0]);
        assert!(run1(o.as_ref(), &[&f(&[2], &[1.0, 2.0])]).is_err());
        let o = try_build("OneHot", vec![("axis", Attr::Int(0))], 11, 5, 1).unwrap();
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
        let o = try_build("NonZero", vec![], 13, 5, 1).unwrap();
        let x = f(&[2, 2], &[0.0, f32::NAN, -0.0, 2.0]);
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[0, 1, 1, 1]);
        let unknown = Fact::new(DType::F32, vec![2, 2]);
        let e = o.infer(Args::new(&[Some(&unknown)])).unwrap_err();
        assert!(e.0.contains("known input"), "{e}");
    }
}

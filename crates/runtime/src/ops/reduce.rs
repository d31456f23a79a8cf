//! Operators: reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
//! ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSumExp,
//! ReduceLogSum), ArgMax/ArgMin and CumSum.
//!
//! Orders follow docs/determinism.md, "Sums over an axis: the lane-8 order"
//! (and its paragraphs on reductions over several axes, Prod, LogSumExp,
//! ArgMax/ArgMin and CumSum). Threads split output elements, never a
//! reduction.

use super::util::{by_dtype, known_ints, normalize_axes, normalize_axis, shape_len, tensor_ints};
use super::{Args, BuildCtx, Fact, Op, Registry, default_cost};
use crate::broadcast::for_each_offset;
use crate::canon;
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{DType, Elem, Tensor, strides};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("ReduceSum", |c| build_reduce(c, Kind::Sum));
    r.add("ReduceMean", |c| build_reduce(c, Kind::Mean));
    r.add("ReduceMax", |c| build_reduce(c, Kind::Max));
    r.add("ReduceMin", |c| build_reduce(c, Kind::Min));
    r.add("ReduceProd", |c| build_reduce(c, Kind::Prod));
    r.add("ReduceL1", |c| build_reduce(c, Kind::L1));
    r.add("ReduceL2", |c| build_reduce(c, Kind::L2));
    r.add("ReduceSumSquare", |c| build_reduce(c, Kind::SumSquare));
    r.add("ReduceLogSumExp", |c| build_reduce(c, Kind::LogSumExp));
    r.add("ReduceLogSum", |c| build_reduce(c, Kind::LogSum));
    r.add("ArgMax", |c| build_arg(c, true));
    r.add("ArgMin", |c| build_arg(c, false));
    r.add("CumSum", |c| build_cum(c, false));
    r.add("CumProd", |c| build_cum(c, true));
}

// ---------------------------------------------------------------- element arithmetic

/// Arithmetic of the reductions, scatters and CumSum on every dtype. Integers
/// wrap (docs/determinism.md, "Integers, comparisons and casts"); bool adds
/// with OR and multiplies with AND. `exp`/`log`/`sqrt` of float32 are the
/// canonical ones, of float64 `libm`'s, of integers `libm`'s in float64 cast
/// back with `as` (only reached by ops whose dtype check allows it).
pub(crate) trait Num: Elem {
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The smallest value (`-inf` for floats): the max of nothing.
    const LOWEST: Self;
    /// The largest value (`+inf` for floats): the min of nothing.
    const HIGHEST: Self;
    /// `a + b`.
    fn add(self, b: Self) -> Self;
    /// `a * b`.
    fn mul(self, b: Self) -> Self;
    /// `|a|`.
    fn abs(self) -> Self;
    /// `canon::max` rule: NaN wins, else `b` only if strictly greater.
    fn max_c(self, b: Self) -> Self;
    /// `canon::min` rule.
    fn min_c(self, b: Self) -> Self;
    /// The fixed lane-8 combination ([`canon::combine_l8`]).
    fn combine8(s: [Self; 8]) -> Self;
    /// `self / n` (one rounding for floats, truncating for integers).
    fn div_count(self, n: usize) -> OpResult<Self>;
    /// `a - b`.
    fn sub(self, b: Self) -> Self;
    /// Natural exponential.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn log(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
}

fn combine8_generic<T: Num>(s: [T; 8]) -> T {
    (s[0].add(s[4]).add(s[2].add(s[6]))).add(s[1].add(s[5]).add(s[3].add(s[7])))
}

macro_rules! num_float {
    ($t:ty, $exp:expr, $log:expr, $comb:expr) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            fn add(self, b: Self) -> Self {
                self + b
            }
            fn mul(self, b: Self) -> Self {
                self * b
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn max_c(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() {
                    <$t>::NAN
                } else if b > self {
                    b
                } else {
                    self
                }
            }
            fn min_c(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() {
                    <$t>::NAN
                } else if b < self {
                    b
                } else {
                    self
                }
            }
            fn combine8(s: [Self; 8]) -> Self {
                $comb(s)
            }
            fn div_count(self, n: usize) -> OpResult<Self> {
                Ok(self / n as $t)
            }
            fn sub(self, b: Self) -> Self {
                self - b
            }
            fn exp(self) -> Self {
                $exp(self)
            }
            fn log(self) -> Self {
                $log(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
num_float!(f32, canon::exp, canon::log, canon::combine_l8);
num_float!(f64, libm::exp, libm::log, combine8_generic::<f64>);

macro_rules! num_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            fn add(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            fn mul(self, b: Self) -> Self {
                self.wrapping_mul(b)
            }
            fn abs(self) -> Self {
                #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
                if self < 0 { (0 as $t).wrapping_sub(self) } else { self }
            }
            fn max_c(self, b: Self) -> Self {
                if b > self { b } else { self }
            }
            fn min_c(self, b: Self) -> Self {
                if b < self { b } else { self }
            }
            fn combine8(s: [Self; 8]) -> Self {
                combine8_generic(s)
            }
            fn div_count(self, n: usize) -> OpResult<Self> {
                let n = <$t>::try_from(n)
                    .ok()
                    .filter(|&n| n != 0)
                    .ok_or_else(|| OpError(format!("cannot divide by the count {n}")))?;
                Ok(self.wrapping_div(n))
            }
            fn sub(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            fn exp(self) -> Self {
                libm::exp(self as f64) as $t
            }
            fn log(self) -> Self {
                libm::log(self as f64) as $t
            }
            fn sqrt(self) -> Self {
                libm::sqrt(self as f64) as $t
            }
            fn is_nan(self) -> bool {
                false
            }
        }
    )*};
}
num_int!(i64, i32, i8, u8);

impl Num for bool {
    const ZERO: Self = false;
    const ONE: Self = true;
    const LOWEST: Self = false;
    const HIGHEST: Self = true;
    fn add(self, b: Self) -> Self {
        self | b
    }
    fn mul(self, b: Self) -> Self {
        self & b
    }
    fn abs(self) -> Self {
        self
    }
    fn max_c(self, b: Self) -> Self {
        self | b
    }
    fn min_c(self, b: Self) -> Self {
        self & b
    }
    fn combine8(s: [Self; 8]) -> Self {
        s.iter().any(|&b| b)
    }
    fn div_count(self, _n: usize) -> OpResult<Self> {
        bail!("bool tensors have no mean")
    }
    fn sub(self, b: Self) -> Self {
        self ^ b
    }
    fn exp(self) -> Self {
        self
    }
    fn log(self) -> Self {
        self
    }
    fn sqrt(self) -> Self {
        self
    }
    fn is_nan(self) -> bool {
        false
    }
}

/// The L8 sum of a sequence (docs/determinism.md, "Sums over an axis: the
/// lane-8 order"): element `i` goes to lane `i % 8`, then the fixed combine.
pub(crate) fn sum_l8_iter<T: Num>(x: impl Iterator<Item = T>) -> T {
    let mut s = [T::ZERO; 8];
    for (i, v) in x.enumerate() {
        s[i % 8] = s[i % 8].add(v);
    }
    T::combine8(s)
}

// ---------------------------------------------------------------- Reduce*

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSumExp,
    LogSum,
}

impl Kind {
    /// The opset from which `axes` is an input instead of an attribute.
    fn axes_input_from(self) -> i64 {
        if self == Kind::Sum { 13 } else { 18 }
    }

    fn allows(self, d: DType) -> bool {
        match self {
            Kind::Max | Kind::Min => true,
            _ => matches!(d, DType::F32 | DType::F64 | DType::I64 | DType::I32),
        }
    }

    /// Operations per reduced element, for the cost.
    fn flops(self) -> u64 {
        match self {
            Kind::Sum | Kind::Mean | Kind::Max | Kind::Min | Kind::Prod | Kind::LogSum => 1,
            Kind::L1 | Kind::L2 | Kind::SumSquare => 2,
            Kind::LogSumExp => 4,
        }
    }
}

#[derive(Debug)]
enum AxesSrc {
    Attr(Vec<i64>),
    Input,
}

#[derive(Debug)]
struct Reduce {
    kind: Kind,
    axes: AxesSrc,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

fn build_reduce(c: &BuildCtx<'_>, kind: Kind) -> OpResult<Box<dyn Op>> {
    let axes = if c.opset >= kind.axes_input_from() {
        AxesSrc::Input
    } else {
        AxesSrc::Attr(
            c.attrs
                .opt_ints("axes")?
                .map(<[i64]>::to_vec)
                .unwrap_or_default(),
        )
    };
    Ok(Box::new(Reduce {
        kind,
        axes,
        keepdims: c.attrs.int("keepdims", 1)? != 0,
        noop_with_empty_axes: c.attrs.int("noop_with_empty_axes", 0)? != 0,
    }))
}

/// Where each output element starts in the input, and the offsets of the
/// reduced elements relative to that start in row-major order of the reduced
/// index space.
#[derive(Debug)]
struct ReducePlan {
    out_shape: Vec<usize>,
    bases: Vec<usize>,
    offsets: Vec<usize>,
}

impl Reduce {
    /// The normalized reduced axes (sorted), from the attribute or the axes
    /// value; empty axes mean all axes unless `noop_with_empty_axes`.
    fn axes(&self, axes: Option<Vec<i64>>, rank: usize) -> OpResult<Vec<usize>> {
        let given = match (&self.axes, axes) {
            (AxesSrc::Attr(a), _) => a.clone(),
            (AxesSrc::Input, a) => a.unwrap_or_default(),
        };
        let mut axes = if given.is_empty() {
            if self.noop_with_empty_axes {
                vec![]
            } else {
                (0..rank).collect()
            }
        } else {
            normalize_axes(&given, rank)?
        };
        axes.sort_unstable();
        Ok(axes)
    }

    fn out_shape(&self, shape: &[usize], axes: &[usize]) -> Vec<usize> {
        let mut out = Vec::with_capacity(shape.len());
        for (i, &d) in shape.iter().enumerate() {
            if !axes.contains(&i) {
                out.push(d);
            } else if self.keepdims {
                out.push(1);
            }
        }
        out
    }

    fn plan(&self, shape: &[usize], axes: &[usize]) -> OpResult<ReducePlan> {
        let st = strides(shape);
        let (mut kept, mut kept_st, mut red, mut red_st) = (vec![], vec![], vec![], vec![]);
        for (i, (&d, &s)) in shape.iter().zip(&st).enumerate() {
            if axes.contains(&i) {
                red.push(d);
                red_st.push(s);
            } else {
                kept.push(d);
                kept_st.push(s);
            }
        }
        let mut bases = Vec::with_capacity(shape_len(&kept)?);
        for_each_offset(&kept, &kept_st, |_, o| bases.push(o));
        let mut offsets = Vec::with_capacity(shape_len(&red)?);
        for_each_offset(&red, &red_st, |_, o| offsets.push(o));
        Ok(ReducePlan {
            out_shape: self.out_shape(shape, axes),
            bases,
            offsets,
        })
    }

    fn check_dtype(&self, d: DType) -> OpResult<()> {
        ensure!(
            self.kind.allows(d),
            "{:?} reduction does not support {d} tensors",
            self.kind
        );
        Ok(())
    }
}

/// One output element of a reduction over `x[base + off]` for `off` in
/// `offs` (docs/determinism.md, "Sums over an axis").
fn reduce_one<T: Num>(kind: Kind, x: &[T], base: usize, offs: &[usize]) -> OpResult<T> {
    let it = offs.iter().map(|&o| x[base + o]);
    let fold_max = |it: &mut dyn Iterator<Item = T>| match it.next() {
        Some(first) => it.fold(first, T::max_c),
        None => T::LOWEST,
    };
    Ok(match kind {
        // L8 sums of x, |x|, x*x (unfused) in row-major reduced order.
        Kind::Sum => sum_l8_iter(it),
        Kind::Mean => sum_l8_iter(it).div_count(offs.len())?,
        Kind::L1 => sum_l8_iter(it.map(T::abs)),
        Kind::SumSquare => sum_l8_iter(it.map(|v| v.mul(v))),
        Kind::L2 => sum_l8_iter(it.map(|v| v.mul(v))).sqrt(),
        Kind::LogSum => sum_l8_iter(it).log(),
        // Sequential in row-major reduced order.
        Kind::Prod => it.fold(T::ONE, T::mul),
        Kind::Max => fold_max(&mut { it }),
        Kind::Min => {
            let mut it = it;
            match it.next() {
                Some(first) => it.fold(first, T::min_c),
                None => T::HIGHEST,
            }
        }
        // m = canonical max; m + log(L8 sum of exp(x - m)); m = NaN/±inf
        // gives m itself (what log(sum(exp(x))) gives at the infinities).
        Kind::LogSumExp => {
            let m = fold_max(&mut { it });
            if m.is_nan() || m == T::LOWEST || m == T::HIGHEST {
                m
            } else {
                let s = sum_l8_iter(offs.iter().map(|&o| x[base + o].sub(m).exp()));
                m.add(s.log())
            }
        }
    })
}

fn reduce_typed<T: Num>(ctx: &Ctx<'_>, kind: Kind, x: &[T], plan: &ReducePlan) -> OpResult<Vec<T>> {
    let n = plan.bases.len();
    let mut out = vec![T::ZERO; n];
    let grain = (4096 / plan.offsets.len().max(1)).max(1);
    let err = std::sync::Mutex::new(None);
    ctx.for_chunks_mut(&mut out, grain, |ci, chunk| {
        for (j, y) in chunk.iter_mut().enumerate() {
            match reduce_one(kind, x, plan.bases[ci * grain + j], &plan.offsets) {
                Ok(v) => *y = v,
                Err(e) => {
                    if let Ok(mut g) = err.lock() {
                        *g = Some(e);
                    }
                    return;
                }
            }
        }
    });
    if let Some(e) = err.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(out)
}

impl Reduce {
    fn axes_fact(&self, inputs: Args<'_, Fact>) -> OpResult<Option<Vec<i64>>> {
        match (&self.axes, inputs.opt(1)) {
            (AxesSrc::Input, Some(f)) => {
                ensure!(
                    f.dtype == DType::I64,
                    "axes input must be int64, got {}",
                    f.dtype
                );
                ensure!(
                    f.shape.len() <= 1,
                    "axes input must be 1-D, got {:?}",
                    f.shape
                );
                known_ints(f, "axes input").map(Some)
            }
            _ => Ok(None),
        }
    }
}

impl Op for Reduce {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        self.check_dtype(x.dtype)?;
        let axes = self.axes(self.axes_fact(inputs)?, x.shape.len())?;
        Ok(vec![Fact::new(x.dtype, self.out_shape(&x.shape, &axes))])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let mut c = default_cost(inputs, outputs, 0);
        let n = inputs.opt(0).map_or(0, Fact::len) as u64;
        c.flops = n.saturating_mul(self.kind.flops());
        c
    }

    /// An exponential or logarithm per element is several operations'
    /// time (measured by benches/referee_price.rs).
    fn time_weight(&self) -> u64 {
        match self.kind {
            Kind::LogSumExp => 24,
            Kind::LogSum => 8,
            _ => 1,
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        self.check_dtype(x.dtype())?;
        let axes = match (&self.axes, inputs.opt(1)) {
            (AxesSrc::Input, Some(t)) => Some(tensor_ints(t, "axes input")?),
            _ => None,
        };
        let axes = self.axes(axes, x.rank())?;
        let plan = self.plan(x.shape(), &axes)?;
        let data = by_dtype!(x.dtype(), T => {
            T::wrap(reduce_typed::<T>(ctx, self.kind, x.as_slice::<T>()?, &plan)?)
        });
        Ok(vec![Tensor::new(plan.out_shape, data)?])
    }
}

// ---------------------------------------------------------------- ArgMax / ArgMin

#[derive(Debug)]
struct Arg {
    max: bool,
    axis: i64,
    keepdims: bool,
    select_last_index: bool,
}

fn build_arg(c: &BuildCtx<'_>, max: bool) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Arg {
        max,
        axis: c.attrs.int("axis", 0)?,
        keepdims: c.attrs.int("keepdims", 1)? != 0,
        select_last_index: c.attrs.int("select_last_index", 0)? != 0,
    }))
}

impl Arg {
    fn shape(&self, shape: &[usize], dtype: DType) -> OpResult<(usize, Vec<usize>)> {
        ensure!(
            dtype != DType::Bool,
            "ArgMax/ArgMin do not support bool tensors"
        );
        let axis = normalize_axis(self.axis, shape.len())?;
        let mut out = shape.to_vec();
        if self.keepdims {
            out[axis] = 1;
        } else {
            out.remove(axis);
        }
        ensure!(
            shape[axis] > 0 || shape_len(&out)? == 0,
            "ArgMax/ArgMin over the empty axis {axis} of shape {shape:?}"
        );
        Ok((axis, out))
    }
}

/// The index of the max (min) of `d` elements `x[base + i * stride]`, like
/// numpy: the first NaN wins; ties keep the first (the last with
/// `select_last_index`, which scans backwards) (docs/determinism.md).
fn arg_one<T: Num>(x: &[T], base: usize, stride: usize, d: usize, max: bool, last: bool) -> i64 {
    let mut best_i = if last { d.saturating_sub(1) } else { 0 };
    let mut best = x[base + best_i * stride];
    if best.is_nan() {
        return best_i as i64;
    }
    let mut visit = |i: usize| -> bool {
        let v = x[base + i * stride];
        if v.is_nan() {
            best_i = i;
            return true;
        }
        if (max && v > best) || (!max && v < best) {
            best = v;
            best_i = i;
        }
        false
    };
    if last {
        for i in (0..d.saturating_sub(1)).rev() {
            if visit(i) {
                break;
            }
        }
    } else {
        for i in 1..d {
            if visit(i) {
                break;
            }
        }
    }
    best_i as i64
}

impl Op for Arg {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let (_, out) = self.shape(&x.shape, x.dtype)?;
        Ok(vec![Fact::new(DType::I64, out)])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let (axis, out_shape) = self.shape(x.shape(), x.dtype())?;
        let d = x.shape()[axis];
        let inner: usize = x.shape()[axis + 1..].iter().product();
        let n = shape_len(&out_shape)?;
        let mut out = vec![0i64; n];
        let grain = (4096 / d.max(1)).max(1);
        by_dtype!(x.dtype(), T => {
            let v = x.as_slice::<T>()?;
            ctx.for_chunks_mut(&mut out, grain, |ci, chunk| {
                for (j, y) in chunk.iter_mut().enumerate() {
                    let o = ci * grain + j;
                    let base = (o / inner) * d * inner + o % inner;
                    *y = arg_one(v, base, inner, d, self.max, self.select_last_index);
                }
            });
        });
        Ok(vec![Tensor::from_vec(out_shape, out)?])
    }
}

// ---------------------------------------------------------------- CumSum

/// CumSum (running sum) and CumProd (running product).
#[derive(Debug)]
struct CumSum {
    prod: bool,
    exclusive: bool,
    reverse: bool,
}

fn build_cum(c: &BuildCtx<'_>, prod: bool) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(CumSum {
        prod,
        exclusive: c.attrs.int("exclusive", 0)? != 0,
        reverse: c.attrs.int("reverse", 0)? != 0,
    }))
}

fn cumsum_dtype(d: DType) -> OpResult<()> {
    ensure!(
        matches!(d, DType::F32 | DType::F64 | DType::I64 | DType::I32),
        "CumSum/CumProd do not support {d} tensors"
    );
    Ok(())
}

/// Running sums (products) along the axis of `(outer, d, inner)` blocks,
/// sequential in index order (backwards with `reverse`), starting from 0 (1);
/// `exclusive` writes the running value before combining the element
/// (docs/determinism.md, "Sums over an axis").
fn cum_block<T: Num>(x: &[T], y: &mut [T], d: usize, inner: usize, op: &CumSum) {
    let step = |acc: T, v: T| if op.prod { acc.mul(v) } else { acc.add(v) };
    for j in 0..inner {
        let mut acc = if op.prod { T::ONE } else { T::ZERO };
        for k in 0..d {
            let i = if op.reverse { d - 1 - k } else { k };
            let at = i * inner + j;
            if op.exclusive {
                y[at] = acc;
                acc = step(acc, x[at]);
            } else {
                acc = step(acc, x[at]);
                y[at] = acc;
            }
        }
    }
}

impl Op for CumSum {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let a = inputs.get(1)?;
        cumsum_dtype(x.dtype)?;
        ensure!(
            matches!(a.dtype, DType::I64 | DType::I32),
            "CumSum axis must be int64 or int32, got {}",
            a.dtype
        );
        ensure!(
            a.len() == 1,
            "CumSum axis must hold one element, got {:?}",
            a.shape
        );
        ensure!(!x.shape.is_empty(), "CumSum input must have rank >= 1");
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    /// A serial chain along the axis (measured by
    /// benches/referee_price.rs).
    fn time_weight(&self) -> u64 {
        2
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        cumsum_dtype(x.dtype())?;
        let a = tensor_ints(inputs.get(1)?, "CumSum axis")?;
        let [a] = a[..] else {
            bail!("CumSum axis must hold one element");
        };
        let axis = normalize_axis(a, x.rank())?;
        let d = x.shape()[axis];
        let inner: usize = x.shape()[axis + 1..].iter().product();
        let block = d.saturating_mul(inner).max(1);
        let data = by_dtype!(x.dtype(), T => {
            let v = x.as_slice::<T>()?;
            let mut out = vec![T::ZERO; v.len()];
            let grain = block.saturating_mul((4096 / block).max(1));
            ctx.for_chunks_mut(&mut out, grain, |ci, chunk| {
                let start = ci * grain;
                for (b, yb) in chunk.chunks_mut(block).enumerate() {
                    let s = start + b * block;
                    cum_block(&v[s..s + yb.len()], yb, d, inner, self);
                }
            });
            T::wrap(out)
        });
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn build(op: &str, opset: i64, attrs: Vec<(&str, Attr)>) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs: 2,
            n_outputs: 1,
        };
        super::super::build(&b)
    }

    /// Runs an op with inputs whose values are all known to `infer`.
    fn run_with(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult<Tensor> {
        let facts: Vec<Fact> = inputs
            .iter()
            .map(|t| Fact::known(std::sync::Arc::new((*t).clone())))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        let out_facts = op.infer(Args::new(&frefs))?;
        let refs: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
        let mut outs = op.run(ctx, Args::new(&refs))?;
        assert_eq!(out_facts[0].shape, outs[0].shape());
        assert_eq!(out_facts[0].dtype, outs[0].dtype());
        Ok(outs.remove(0))
    }

    fn run1(op: &dyn Op, inputs: &[&Tensor]) -> OpResult<Tensor> {
        run_with(op, &Ctx::single(Isa::Portable), inputs)
    }

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    fn ints(v: &[i64]) -> Tensor {
        Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
    }

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 3.0
            })
            .collect()
    }

    fn axes_attr(a: &[i64]) -> (&'static str, Attr) {
        ("axes", Attr::Ints(a.to_vec()))
    }

    #[test]
    fn sums_follow_l8_over_row_major_reduced_order() {
        let x = data(2 * 5 * 7, 1);
        let xt = t(&[2, 5, 7], x.clone());
        // Reduce axes 0 and 2 (given as [-1, 0]); keepdims.
        let op = build("ReduceSum", 13, vec![]).unwrap();
        let y = run1(op.as_ref(), &[&xt, &ints(&[-1, 0])]).unwrap();
        assert_eq!(y.shape(), &[1, 5, 1]);
        for j in 0..5 {
            let seq: Vec<f32> = (0..2)
                .flat_map(|a| (0..7).map(move |c| (a, c)))
                .map(|(a, c)| x[a * 35 + j * 7 + c])
                .collect();
            assert_eq!(
                y.f32s().unwrap()[j].to_bits(),
                canon::sum_l8(&seq).to_bits()
            );
        }
        // Mean = sum / n; SumSquare unfused; L2 = sqrt; opset 11 attrs.
        let op = build(
            "ReduceMean",
            11,
            vec![axes_attr(&[1]), ("keepdims", Attr::Int(0))],
        )
        .unwrap();
        let y = run1(op.as_ref(), &[&xt]).unwrap();
        assert_eq!(y.shape(), &[2, 7]);
        let seq: Vec<f32> = (0..5).map(|j| x[j * 7]).collect();
        assert_eq!(y.f32s().unwrap()[0], canon::sum_l8(&seq) / 5.0);
        let op = build("ReduceL2", 18, vec![("keepdims", Attr::Int(0))]).unwrap();
        let y = run1(op.as_ref(), &[&xt]).unwrap();
        let sq: Vec<f32> = x.iter().map(|v| v * v).collect();
        assert_eq!(y.shape(), &[] as &[usize]);
        assert_eq!(y.f32s().unwrap()[0], canon::sum_l8(&sq).sqrt());
    }

    #[test]
    fn every_kind_on_a_small_case() {
        let x = t(&[2, 2], vec![1.0, -2.0, 3.0, 4.0]);
        let cases: [(&str, [f32; 2]); 9] = [
            ("ReduceSum", [-1.0, 7.0]),
            ("ReduceMean", [-0.5, 3.5]),
            ("ReduceMax", [1.0, 4.0]),
            ("ReduceMin", [-2.0, 3.0]),
            ("ReduceProd", [-2.0, 12.0]),
            ("ReduceL1", [3.0, 7.0]),
            ("ReduceL2", [5.0f32.sqrt(), 5.0]),
            ("ReduceSumSquare", [5.0, 25.0]),
            ("ReduceLogSum", [f32::NAN, canon::log(7.0)]),
        ];
        for (op, want) in cases {
            let o = build(op, 18, vec![("keepdims", Attr::Int(0))]).unwrap();
            let y = run1(o.as_ref(), &[&x, &ints(&[1])]).unwrap();
            let got = y.f32s().unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{op}"
                );
            }
        }
        let o = build("ReduceLogSumExp", 18, vec![]).unwrap();
        let y = run1(o.as_ref(), &[&x, &ints(&[1])]).unwrap();
        let m = 1.0f32;
        let want = m + canon::log(canon::exp(0.0) + canon::exp(-3.0));
        assert_eq!(y.f32s().unwrap()[0], want);
        assert_eq!(y.shape(), &[2, 1]);
    }

    #[test]
    fn empty_axes_and_empty_sets() {
        let x = t(&[2, 3], data(6, 2));
        // Empty axes input with noop: identity.
        let o = build(
            "ReduceSum",
            13,
            vec![("noop_with_empty_axes", Attr::Int(1))],
        )
        .unwrap();
        let empty = Tensor::from_vec(vec![0], Vec::<i64>::new()).unwrap();
        let y = run1(o.as_ref(), &[&x, &empty]).unwrap();
        assert_eq!(y, x);
        // Empty axes without noop: all axes.
        let o = build("ReduceMax", 18, vec![]).unwrap();
        let y = run1(o.as_ref(), &[&x, &empty]).unwrap();
        assert_eq!(y.shape(), &[1, 1]);
        // Zero-size reduced dimension: identities of each reduction.
        let z = t(&[2, 0, 4], vec![]);
        let want = [
            ("ReduceSum", 0.0),
            ("ReduceProd", 1.0),
            ("ReduceMax", f32::NEG_INFINITY),
            ("ReduceMin", f32::INFINITY),
            ("ReduceLogSumExp", f32::NEG_INFINITY),
            ("ReduceLogSum", f32::NEG_INFINITY),
            ("ReduceL2", 0.0),
        ];
        for (op, w) in want {
            let o = build(op, 18, vec![]).unwrap();
            let y = run1(o.as_ref(), &[&z, &ints(&[1])]).unwrap();
            assert_eq!(y.shape(), &[2, 1, 4]);
            assert!(y.f32s().unwrap().iter().all(|&v| v == w), "{op}");
        }
        let o = build("ReduceMean", 18, vec![]).unwrap();
        let y = run1(o.as_ref(), &[&z, &ints(&[1])]).unwrap();
        assert!(y.f32s().unwrap().iter().all(|v| v.is_nan()));
        // Non-reduced zero dimension: empty output.
        let y = run1(o.as_ref(), &[&z, &ints(&[2])]).unwrap();
        assert_eq!(y.shape(), &[2, 0, 1]);
    }

    #[test]
    fn nan_inf_and_integer_reductions() {
        let x = t(&[4], vec![1.0, f32::NAN, f32::INFINITY, 2.0]);
        for op in ["ReduceMax", "ReduceMin", "ReduceLogSumExp", "ReduceSum"] {
            let o = build(op, 18, vec![]).unwrap();
            assert!(
                run1(o.as_ref(), &[&x]).unwrap().f32s().unwrap()[0].is_nan(),
                "{op}"
            );
        }
        let x = t(&[3], vec![1.0, f32::INFINITY, 2.0]);
        let o = build("ReduceLogSumExp", 18, vec![]).unwrap();
        assert_eq!(
            run1(o.as_ref(), &[&x]).unwrap().f32s().unwrap()[0],
            f32::INFINITY
        );
        let x = t(&[2], vec![-0.0, 0.0]);
        let o = build("ReduceMax", 18, vec![]).unwrap();
        assert_eq!(
            run1(o.as_ref(), &[&x]).unwrap().f32s().unwrap()[0].to_bits(),
            (-0.0f32).to_bits()
        );
        let xi = Tensor::from_vec(vec![2, 2], vec![i64::MAX, 1, -3, 5]).unwrap();
        let o = build("ReduceSum", 18, vec![("keepdims", Attr::Int(0))]).unwrap();
        let y = run1(o.as_ref(), &[&xi, &ints(&[1])]).unwrap();
        assert_eq!(y.as_slice::<i64>().unwrap(), &[i64::MIN, 2]);
        let o = build("ReduceMean", 18, vec![("keepdims", Attr::Int(0))]).unwrap();
        let y = run1(o.as_ref(), &[&xi, &ints(&[0])]).unwrap();
        assert_eq!(y.as_slice::<i64>().unwrap()[1], 3);
        let b = Tensor::from_vec(vec![2, 2], vec![true, false, false, false]).unwrap();
        let o = build("ReduceMax", 20, vec![("keepdims", Attr::Int(0))]).unwrap();
        let y = run1(o.as_ref(), &[&b, &ints(&[1])]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), &[true, false]);
        let f64t = Tensor::from_vec(vec![3], vec![1.0f64, 2.0, 3.0]).unwrap();
        let o = build("ReduceL1", 18, vec![]).unwrap();
        assert_eq!(
            run1(o.as_ref(), &[&f64t])
                .unwrap()
                .as_slice::<f64>()
                .unwrap(),
            &[6.0]
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = t(&[2, 3], data(6, 3));
        let o = build("ReduceSum", 13, vec![]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &ints(&[2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[0, -2])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[i64::MIN])]).is_err());
        // Axes not known at plan time.
        let facts = [
            Fact::new(DType::F32, vec![2, 3]),
            Fact::new(DType::I64, vec![1]),
        ];
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        assert!(o.infer(Args::new(&frefs)).is_err());
        let b = Tensor::from_vec(vec![1], vec![true]).unwrap();
        assert!(run1(o.as_ref(), &[&b]).is_err());
        let o = build("ArgMax", 13, vec![("axis", Attr::Int(2))]).unwrap();
        assert!(run1(o.as_ref(), &[&x]).is_err());
        let o = build("ArgMax", 13, vec![("axis", Attr::Int(1))]).unwrap();
        assert!(run1(o.as_ref(), &[&t(&[2, 0], vec![])]).is_err());
        let o = build("CumSum", 14, vec![]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &ints(&[5])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[0, 1])]).is_err());
        assert!(run1(o.as_ref(), &[&b, &ints(&[0])]).is_err());
    }

    #[test]
    fn argmax_argmin_like_numpy() {
        let x = t(
            &[2, 4],
            vec![1.0, 3.0, 3.0, 0.0, 2.0, f32::NAN, 5.0, f32::NAN],
        );
        let o = build("ArgMax", 13, vec![("axis", Attr::Int(-1))]).unwrap();
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.shape(), &[2, 1]);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[1, 1]);
        let o = build(
            "ArgMax",
            13,
            vec![
                ("axis", Attr::Int(1)),
                ("select_last_index", Attr::Int(1)),
                ("keepdims", Attr::Int(0)),
            ],
        )
        .unwrap();
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.shape(), &[2]);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[2, 3]);
        let o = build("ArgMin", 13, vec![("keepdims", Attr::Int(0))]).unwrap();
        let y = run1(o.as_ref(), &[&x]).unwrap();
        assert_eq!(y.as_slice::<i64>().unwrap(), &[0, 1, 0, 1]);
        let xi = Tensor::from_vec(vec![3], vec![2i32, -1, -1]).unwrap();
        let o = build("ArgMin", 13, vec![("select_last_index", Attr::Int(1))]).unwrap();
        assert_eq!(
            run1(o.as_ref(), &[&xi]).unwrap().as_slice::<i64>().unwrap(),
            &[2]
        );
    }

    #[test]
    fn cumsum_modes() {
        let x = t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let cases = [
            (0, 0, 1, vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]),
            (1, 0, -1, vec![0.0, 1.0, 3.0, 0.0, 4.0, 9.0]),
            (0, 1, 1, vec![6.0, 5.0, 3.0, 15.0, 11.0, 6.0]),
            (1, 1, 1, vec![5.0, 3.0, 0.0, 11.0, 6.0, 0.0]),
            (0, 0, 0, vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]),
        ];
        for (ex, rev, axis, want) in cases {
            let o = build(
                "CumSum",
                14,
                vec![("exclusive", Attr::Int(ex)), ("reverse", Attr::Int(rev))],
            )
            .unwrap();
            let a = Tensor::scalar::<i32>(axis);
            let y = run1(o.as_ref(), &[&x, &a]).unwrap();
            assert_eq!(
                y.f32s().unwrap(),
                &want[..],
                "ex={ex} rev={rev} axis={axis}"
            );
        }
    }

    #[test]
    fn cumprod_modes() {
        let x = t(&[3], vec![1.0, 2.0, 3.0]);
        let o = build("CumProd", 26, vec![("exclusive", Attr::Int(1))]).unwrap();
        let y = run1(o.as_ref(), &[&x, &ints(&[0])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1.0, 1.0, 2.0]);
        let o = build("CumProd", 26, vec![("reverse", Attr::Int(1))]).unwrap();
        let y = run1(o.as_ref(), &[&x, &ints(&[-1])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[6.0, 6.0, 3.0]);
    }

    #[test]
    fn threads_give_the_same_bits() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let multi = Ctx::with_pool(Isa::Portable, &pool);
        let single = Ctx::single(Isa::Portable);
        let x = t(&[6, 33, 70], data(6 * 33 * 70, 9));
        let ops = [
            "ReduceSum",
            "ReduceMean",
            "ReduceMax",
            "ReduceProd",
            "ReduceL2",
            "ReduceLogSumExp",
            "ReduceSumSquare",
        ];
        for axes in [vec![2i64], vec![0, 2], vec![1]] {
            for op in ops {
                let o = build(op, 18, vec![]).unwrap();
                let a = run_with(o.as_ref(), &single, &[&x, &ints(&axes)]).unwrap();
                let b = run_with(o.as_ref(), &multi, &[&x, &ints(&axes)]).unwrap();
                assert_eq!(a.hash(), b.hash(), "{op} {axes:?}");
            }
        }
        for op in ["ArgMax", "ArgMin"] {
            let o = build(op, 13, vec![("axis", Attr::Int(1))]).unwrap();
            let a = run_with(o.as_ref(), &single, &[&x]).unwrap();
            let b = run_with(o.as_ref(), &multi, &[&x]).unwrap();
            assert_eq!(a, b);
        }
        let o = build("CumSum", 14, vec![]).unwrap();
        for axis in 0..3i64 {
            let a = run_with(o.as_ref(), &single, &[&x, &ints(&[axis])]).unwrap();
            let b = run_with(o.as_ref(), &multi, &[&x, &ints(&[axis])]).unwrap();
            assert_eq!(a.hash(), b.hash());
        }
    }
}

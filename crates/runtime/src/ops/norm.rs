//! Operators: Softmax, LogSoftmax, BatchNormalization (inference), LRN.
//!
//! Arithmetic follows docs/determinism.md: "Softmax and LogSoftmax",
//! "Normalisation" and the LRN rule of "Sums over an axis". Threads split
//! independent rows (or channel planes); every output element is computed by
//! exactly one thread with the canonical sequence, so the bits do not depend
//! on the thread count.

use std::ops::{Add, Div, Mul, Range, Sub};
use std::sync::Mutex;

use super::util::{normalize_axis, normalize_axis_inclusive, shape_len};
use super::{Args, BuildCtx, Fact, Op, Region, Registry, default_cost};
use crate::canon;
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::kernels::elementwise::{sum_l8_by, with_isa};
use crate::tensor::{DType, Elem, Tensor};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Softmax", build_softmax);
    r.add("LogSoftmax", build_softmax);
    r.add("BatchNormalization", build_batchnorm);
    r.add("LRN", build_lrn);
}

/// Elements a parallel task should at least cover.
const GRAIN: usize = 4096;

/// The floating-point element types these ops compute with; float32 uses
/// `canon`, float64 the `libm` float64 functions (docs/determinism.md,
/// "Transcendental functions").
trait Real:
    Elem + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    const ZERO: Self;
    fn from_f32(v: f32) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn pow(self, y: Self) -> Self;
    /// `canon::max`'s rule: NaN wins, otherwise `b` only if strictly greater.
    fn cmax(self, b: Self) -> Self;
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[inline]
    fn exp(self) -> f32 {
        canon::exp(self)
    }
    #[inline]
    fn ln(self) -> f32 {
        canon::log(self)
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn pow(self, y: f32) -> f32 {
        canon::pow(self, y)
    }
    #[inline]
    fn cmax(self, b: f32) -> f32 {
        canon::max(self, b)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    fn exp(self) -> f64 {
        libm::exp(self)
    }
    fn ln(self) -> f64 {
        libm::log(self)
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn pow(self, y: f64) -> f64 {
        libm::pow(self, y)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn cmax(self, b: f64) -> f64 {
        if self.is_nan() || b.is_nan() {
            f64::NAN
        } else if b > self {
            b
        } else {
            self
        }
    }
}

/// The fixed combination of the eight lane sums (`canon::combine_l8`).
fn combine_l8<T: Real>(s: [T; 8]) -> T {
    ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))
}

/// The lane-8 sum (docs/determinism.md, "Sums over an axis: the lane-8 order").
#[inline(always)]
fn sum_l8<T: Real>(x: &[T]) -> T {
    sum_l8_by(x, T::ZERO, |v| v, |a, b| a + b)
}

/// Requires a float32 or float64 dtype.
fn ensure_float(dtype: DType, what: &str) -> OpResult<()> {
    ensure!(
        dtype.is_float(),
        "{what} must be float32 or float64, got {dtype}"
    );
    Ok(())
}

/// Number of `unit`-sized items per parallel task so that a task covers at
/// least [`GRAIN`] elements.
fn items_per_task(unit: usize) -> usize {
    (GRAIN / unit.max(1)).max(1)
}

// ---------------------------------------------------------------- Softmax

/// Softmax / LogSoftmax (docs/determinism.md, "Softmax and LogSoftmax").
#[derive(Debug)]
struct Softmax {
    axis: i64,
    /// Opset < 13: coerce the input to 2-D at `axis` first.
    legacy: bool,
    log: bool,
}

fn build_softmax(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let legacy = b.opset < 13;
    let axis = b.attrs.int("axis", if legacy { 1 } else { -1 })?;
    Ok(Box::new(Softmax {
        axis,
        legacy,
        log: b.op_type == "LogSoftmax",
    }))
}

impl Softmax {
    /// `(outer, n, inner)`: the reduced axis has `n` elements with stride `inner`.
    fn split(&self, shape: &[usize]) -> OpResult<(usize, usize, usize)> {
        let rank = shape.len();
        ensure!(rank >= 1, "input must have rank at least 1, got a scalar");
        if self.legacy {
            let a = normalize_axis_inclusive(self.axis, rank)?;
            Ok((shape_len(&shape[..a])?, shape_len(&shape[a..])?, 1))
        } else {
            let a = normalize_axis(self.axis, rank)?;
            Ok((
                shape_len(&shape[..a])?,
                shape[a],
                shape_len(&shape[a + 1..])?,
            ))
        }
    }

    fn compute<T: Real>(
        &self,
        ctx: &Ctx<'_>,
        x: &[T],
        outer: usize,
        n: usize,
        inner: usize,
    ) -> Vec<T> {
        let mut out = vec![T::ZERO; x.len()];
        if x.is_empty() {
            return out;
        }
        let log = self.log;
        // The loops run compiled for AVX2+FMA on that path: the canonical
        // exp's fma and rounding become instructions (same bits).
        let isa = ctx.isa;
        if inner == 1 {
            let rows = items_per_task(n);
            ctx.for_chunks_mut(&mut out, rows * n, |ci, oc| {
                let base = ci * rows * n;
                with_isa!(isa, {
                    for (r, yrow) in oc.chunks_mut(n).enumerate() {
                        let start = base + r * n;
                        softmax_row(&x[start..start + n], yrow, log);
                    }
                });
            });
        } else if outer >= ctx.threads() || ctx.threads() == 1 {
            let block = n * inner;
            ctx.for_chunks_mut(&mut out, block, |o, yb| {
                with_isa!(isa, {
                    softmax_cols(
                        &x[o * block..(o + 1) * block],
                        inner,
                        0..inner,
                        n,
                        yb,
                        inner,
                        log,
                    );
                });
            });
        } else {
            // Few outer blocks: split the columns of each block between
            // threads into private buffers, then copy them into place.
            let block = n * inner;
            for o in 0..outer {
                let xb = &x[o * block..(o + 1) * block];
                let parts: Mutex<Vec<(usize, Vec<T>)>> = Mutex::new(Vec::new());
                ctx.for_ranges(inner, items_per_task(n), |cols| {
                    let w = cols.len();
                    let mut buf = vec![T::ZERO; n * w];
                    let start = cols.start;
                    with_isa!(isa, softmax_cols(xb, inner, cols, n, &mut buf, w, log));
                    if let Ok(mut p) = parts.lock() {
                        p.push((start, buf));
                    }
                });
                let parts = parts
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let yb = &mut out[o * block..(o + 1) * block];
                for (start, buf) in parts {
                    let w = buf.len() / n;
                    for i in 0..n {
                        yb[i * inner + start..i * inner + start + w]
                            .copy_from_slice(&buf[i * w..(i + 1) * w]);
                    }
                }
            }
        }
        out
    }
}

/// One contiguous row: `m` = sequential max, `e = exp(x - m)`, `s` = L8 sum,
/// then `e / s` or `(x - m) - log(s)`.
#[inline(always)]
fn softmax_row<T: Real>(x: &[T], y: &mut [T], log: bool) {
    let Some((&first, rest)) = x.split_first() else {
        return;
    };
    let m = row_max(first, rest);
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = (xi - m).exp();
    }
    let s = sum_l8(y);
    if log {
        let ls = s.ln();
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = (xi - m) - ls;
        }
    } else {
        for yi in y.iter_mut() {
            *yi = *yi / s;
        }
    }
}

/// The sequential fold `rest.fold(first, cmax)`, computed 16 lanes at a
/// time. That fold is the canonical NaN if any element is NaN, else the first
/// element equal to the greatest value; equal non-NaN floats have equal bits
/// except `+0`/`-0`, so only a zero maximum needs the first match looked up.
#[inline(always)]
fn row_max<T: Real>(first: T, rest: &[T]) -> T {
    const L: usize = 16;
    let mut lanes = [first; L];
    let mut nan = [false; L];
    let mut chunks = rest.chunks_exact(L);
    for c in &mut chunks {
        for ((l, n), &v) in lanes.iter_mut().zip(&mut nan).zip(c) {
            *n |= v.is_nan();
            *l = if v > *l { v } else { *l };
        }
    }
    let tail = chunks.remainder();
    if first.is_nan() || nan.contains(&true) || tail.iter().any(|&v| v.is_nan()) {
        return rest.iter().fold(first, |m, &v| m.cmax(v));
    }
    let m = lanes
        .into_iter()
        .chain(tail.iter().copied())
        .fold(first, |m, v| if v > m { v } else { m });
    if m == T::ZERO {
        // The first zero of the row, with its sign.
        return std::iter::once(first)
            .chain(rest.iter().copied())
            .find(|&v| v == T::ZERO)
            .unwrap_or(m);
    }
    m
}

/// Softmax over `n` rows of the columns `cols` of a row-major `[n, xstride]`
/// block `x`, into `y[i * ystride + (j - cols.start)]`. Per column this is the
/// same sequence as [`softmax_row`]: lane `i % 8` accumulates row `i`.
#[inline(always)]
fn softmax_cols<T: Real>(
    x: &[T],
    xstride: usize,
    cols: Range<usize>,
    n: usize,
    y: &mut [T],
    ystride: usize,
    log: bool,
) {
    let w = cols.len();
    if n == 0 || w == 0 {
        return;
    }
    let c0 = cols.start;
    let mut m: Vec<T> = x[c0..c0 + w].to_vec();
    for i in 1..n {
        let xr = &x[i * xstride + c0..i * xstride + c0 + w];
        for (mk, &v) in m.iter_mut().zip(xr) {
            *mk = mk.cmax(v);
        }
    }
    let mut lanes = vec![[T::ZERO; 8]; w];
    for i in 0..n {
        let xr = &x[i * xstride + c0..i * xstride + c0 + w];
        let yr = &mut y[i * ystride..i * ystride + w];
        for k in 0..w {
            let e = (xr[k] - m[k]).exp();
            yr[k] = e;
            lanes[k][i % 8] = lanes[k][i % 8] + e;
        }
    }
    let s: Vec<T> = lanes.into_iter().map(combine_l8).collect();
    if log {
        let ls: Vec<T> = s.iter().map(|&v| v.ln()).collect();
        for i in 0..n {
            let xr = &x[i * xstride + c0..i * xstride + c0 + w];
            let yr = &mut y[i * ystride..i * ystride + w];
            for k in 0..w {
                yr[k] = (xr[k] - m[k]) - ls[k];
            }
        }
    } else {
        for i in 0..n {
            let yr = &mut y[i * ystride..i * ystride + w];
            for k in 0..w {
                yr[k] = yr[k] / s[k];
            }
        }
    }
}

impl Op for Softmax {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure_float(x.dtype, "input")?;
        self.split(&x.shape)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, 4)
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let (outer, n, inner) = self.split(x.shape())?;
        let shape = x.shape().to_vec();
        let t = match x.dtype() {
            DType::F32 => Tensor::from_vec(shape, self.compute(ctx, x.f32s()?, outer, n, inner))?,
            DType::F64 => Tensor::from_vec(
                shape,
                self.compute(ctx, x.as_slice::<f64>()?, outer, n, inner),
            )?,
            d => bail!("input must be float32 or float64, got {d}"),
        };
        Ok(vec![t])
    }

    /// The rows that hold `elements`, when the axis is the innermost (each
    /// row is computed alone, as in a full run); other layouts run whole.
    fn region(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        output: usize,
        elements: Range<usize>,
    ) -> Option<OpResult<Region>> {
        let x = inputs.get(0).ok()?;
        let (outer, n, inner) = self.split(x.shape()).ok()?;
        if output != 0 || inner != 1 || n == 0 {
            return None;
        }
        let r0 = (elements.start / n).min(outer);
        let r1 = elements.end.div_ceil(n).clamp(r0, outer);
        let single = Ctx::single(ctx.isa);
        let t = match x.dtype() {
            DType::F32 => x.f32s().and_then(|v| {
                let part = &v[r0 * n..r1 * n];
                Tensor::from_vec(vec![part.len()], self.compute(&single, part, r1 - r0, n, 1))
            }),
            DType::F64 => x.as_slice::<f64>().and_then(|v| {
                let part = &v[r0 * n..r1 * n];
                Tensor::from_vec(vec![part.len()], self.compute(&single, part, r1 - r0, n, 1))
            }),
            _ => return None,
        };
        Some(t.map(|elements| Region {
            first: r0 * n,
            elements,
        }))
    }

    fn region_len(
        &self,
        inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        output: usize,
        elements: Range<usize>,
    ) -> Option<usize> {
        let x = inputs.get(0).ok()?;
        let (outer, n, inner) = self.split(&x.shape).ok()?;
        if output != 0 || inner != 1 || n == 0 || !matches!(x.dtype, DType::F32 | DType::F64) {
            return None;
        }
        Some(super::rows_len(elements, n, outer.saturating_mul(n), false))
    }
}

// ---------------------------------------------------- BatchNormalization

/// BatchNormalization in inference mode (docs/determinism.md, "Normalisation").
#[derive(Debug)]
struct BatchNorm {
    epsilon: f32,
}

fn build_batchnorm(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let epsilon = b.attrs.float("epsilon", 1e-5)?;
    if b.opset >= 14 {
        let training = b.attrs.int("training_mode", 0)?;
        ensure!(
            training == 0,
            "unsupported: training_mode={training} (only inference is supported)"
        );
    }
    if b.opset < 9 {
        let spatial = b.attrs.int("spatial", 1)?;
        ensure!(
            spatial == 1,
            "unsupported: spatial={spatial} (only spatial=1 is supported)"
        );
    }
    ensure!(
        b.n_outputs <= 1,
        "unsupported: {} outputs (only inference mode with a single output is supported)",
        b.n_outputs
    );
    ensure!(
        b.n_inputs == 5,
        "expects 5 inputs (X, scale, B, mean, var), got {}",
        b.n_inputs
    );
    Ok(Box::new(BatchNorm { epsilon }))
}

const BN_INPUTS: [&str; 5] = ["X", "scale", "B", "input_mean", "input_var"];

impl BatchNorm {
    fn compute<T: Real>(
        &self,
        ctx: &Ctx<'_>,
        x: &[T],
        shape: &[usize],
        p: [&[T]; 4],
    ) -> OpResult<Vec<T>> {
        let [scale, bias, mean, var] = p;
        let c = shape[1];
        let plane = shape_len(&shape[2..])?;
        let mut out = vec![T::ZERO; x.len()];
        if out.is_empty() {
            return Ok(out);
        }
        let eps = T::from_f32(self.epsilon);
        let d: Vec<T> = var.iter().map(|&v| (v + eps).sqrt()).collect();
        let planes = items_per_task(plane);
        let isa = ctx.isa;
        ctx.for_chunks_mut(&mut out, planes * plane, |ci, oc| {
            let first = ci * planes;
            // Compiled for AVX2 on that path (same IEEE operations).
            with_isa!(isa, {
                for (k, yp) in oc.chunks_mut(plane).enumerate() {
                    let p = first + k;
                    let ch = p % c;
                    let (mu, dc, sc, b) = (mean[ch], d[ch], scale[ch], bias[ch]);
                    let xp = &x[p * plane..p * plane + yp.len()];
                    for (yi, &xi) in yp.iter_mut().zip(xp) {
                        let t = (xi - mu) / dc;
                        let t = t * sc;
                        *yi = t + b;
                    }
                }
            });
        });
        Ok(out)
    }
}

impl Op for BatchNorm {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure_float(x.dtype, "X")?;
        ensure!(
            x.shape.len() >= 2,
            "X must have rank at least 2 [N, C, ...], got shape {:?}",
            x.shape
        );
        let c = x.shape[1];
        for (i, name) in BN_INPUTS.iter().enumerate().skip(1) {
            let f = inputs
                .get(i)
                .map_err(|_| OpError(format!("input `{name}` is missing")))?;
            ensure!(
                f.dtype == x.dtype,
                "input `{name}` is {} but X is {} (mixed dtypes are not supported)",
                f.dtype,
                x.dtype
            );
            ensure!(
                f.shape == [c],
                "input `{name}` must have shape [{c}] (the channels of X), got {:?}",
                f.shape
            );
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, 4)
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let shape = x.shape().to_vec();
        ensure!(
            shape.len() >= 2,
            "X must have rank at least 2 [N, C, ...], got shape {shape:?}"
        );
        let mut ps = Vec::with_capacity(4);
        for (i, name) in BN_INPUTS.iter().enumerate().skip(1) {
            let t = inputs
                .get(i)
                .map_err(|_| OpError(format!("input `{name}` is missing")))?;
            ensure!(
                t.dtype() == x.dtype() && t.shape() == [shape[1]],
                "input `{name}` must be {} [{}], got {} {:?}",
                x.dtype(),
                shape[1],
                t.dtype(),
                t.shape()
            );
            ps.push(t);
        }
        fn params<'a, T: Real>(ps: &[&'a Tensor]) -> OpResult<[&'a [T]; 4]> {
            Ok([
                ps[0].as_slice()?,
                ps[1].as_slice()?,
                ps[2].as_slice()?,
                ps[3].as_slice()?,
            ])
        }
        let t = match x.dtype() {
            DType::F32 => {
                let y = self.compute(ctx, x.f32s()?, &shape, params::<f32>(&ps)?)?;
                Tensor::from_vec(shape, y)?
            }
            DType::F64 => {
                let y = self.compute(ctx, x.as_slice::<f64>()?, &shape, params::<f64>(&ps)?)?;
                Tensor::from_vec(shape, y)?
            }
            d => bail!("X must be float32 or float64, got {d}"),
        };
        Ok(vec![t])
    }
}

// ------------------------------------------------------------------- LRN

/// Local response normalization across channels (docs/determinism.md, "Sums
/// over an axis", LRN rule).
#[derive(Debug)]
struct Lrn {
    alpha: f32,
    beta: f32,
    bias: f32,
    size: usize,
}

fn build_lrn(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let size = b.attrs.req_int("size")?;
    ensure!(size >= 1, "attribute `size` must be at least 1, got {size}");
    let size = usize::try_from(size)
        .map_err(|_| OpError(format!("attribute `size` {size} is too large")))?;
    Ok(Box::new(Lrn {
        alpha: b.attrs.float("alpha", 1e-4)?,
        beta: b.attrs.float("beta", 0.75)?,
        bias: b.attrs.float("bias", 1.0)?,
        size,
    }))
}

impl Lrn {
    fn compute<T: Real>(&self, ctx: &Ctx<'_>, x: &[T], shape: &[usize]) -> OpResult<Vec<T>> {
        let c = shape[1];
        let plane = shape_len(&shape[2..])?;
        let mut out = vec![T::ZERO; x.len()];
        if out.is_empty() {
            return Ok(out);
        }
        // Window c - floor((size-1)/2) ..= c + ceil((size-1)/2), clipped.
        let below = (self.size - 1) / 2;
        let above = self.size / 2;
        // alpha / size once, in the element type (float32 for float32).
        let a = T::from_f32(self.alpha) / T::from_f32(self.size as f32);
        let (bias, beta) = (T::from_f32(self.bias), T::from_f32(self.beta));
        let planes = items_per_task(plane);
        ctx.for_chunks_mut(&mut out, planes * plane, |ci, oc| {
            let mut sq = vec![T::ZERO; plane];
            let first = ci * planes;
            for (k, yp) in oc.chunks_mut(plane).enumerate() {
                let p = first + k;
                let (img, ch) = (p / c, p % c);
                let lo = ch.saturating_sub(below);
                let hi = ch.saturating_add(above).min(c - 1);
                sq.iter_mut().for_each(|s| *s = T::ZERO);
                for cc in lo..=hi {
                    let off = (img * c + cc) * plane;
                    for (s, &v) in sq.iter_mut().zip(&x[off..off + plane]) {
                        let p = v * v;
                        *s = *s + p;
                    }
                }
                let xp = &x[p * plane..(p + 1) * plane];
                for ((yi, &xi), &s) in yp.iter_mut().zip(xp).zip(&sq) {
                    let t = a * s;
                    let t = bias + t;
                    *yi = xi / t.pow(beta);
                }
            }
        });
        Ok(out)
    }
}

impl Op for Lrn {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure_float(x.dtype, "X")?;
        ensure!(
            x.shape.len() >= 2,
            "X must have rank at least 2 [N, C, ...], got shape {:?}",
            x.shape
        );
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, (self.size as u64).saturating_add(3))
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let shape = x.shape().to_vec();
        ensure!(
            shape.len() >= 2,
            "X must have rank at least 2 [N, C, ...], got shape {shape:?}"
        );
        let t = match x.dtype() {
            DType::F32 => {
                let y = self.compute(ctx, x.f32s()?, &shape)?;
                Tensor::from_vec(shape, y)?
            }
            DType::F64 => {
                let y = self.compute(ctx, x.as_slice::<f64>()?, &shape)?;
                Tensor::from_vec(shape, y)?
            }
            d => bail!("X must be float32 or float64, got {d}"),
        };
        Ok(vec![t])
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
        n_inputs: usize,
        n_outputs: usize,
    ) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs,
            n_outputs,
        };
        super::super::build(&b)
    }

    fn run1(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult<Tensor> {
        let facts: Vec<Fact> = inputs
            .iter()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        let out_facts = op.infer(Args::new(&frefs))?;
        let refs: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
        let mut outs = op.run(ctx, Args::new(&refs))?;
        assert_eq!(outs.len(), 1);
        assert_eq!(out_facts[0].shape, outs[0].shape());
        assert_eq!(out_facts[0].dtype, outs[0].dtype());
        Ok(outs.remove(0))
    }

    /// A deterministic pseudo-random sequence in [-scale, scale).
    fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    /// f64 softmax reference over `(outer, n, inner)`.
    fn softmax_ref(x: &[f32], outer: usize, n: usize, inner: usize, log: bool) -> Vec<f64> {
        let mut y = vec![0.0f64; x.len()];
        for o in 0..outer {
            for j in 0..inner {
                let idx = |i: usize| (o * n + i) * inner + j;
                let m = (0..n)
                    .map(|i| f64::from(x[idx(i)]))
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..n).map(|i| (f64::from(x[idx(i)]) - m).exp()).sum();
                for i in 0..n {
                    let d = f64::from(x[idx(i)]) - m;
                    y[idx(i)] = if log { d - s.ln() } else { d.exp() / s };
                }
            }
        }
        y
    }

    fn close(got: &[f32], want: &[f64], rtol: f64, atol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let err = (f64::from(g) - w).abs();
            assert!(
                err <= atol + rtol * w.abs(),
                "element {i}: got {g}, want {w}"
            );
        }
    }

    #[test]
    fn softmax_matches_f64_reference_on_every_axis() {
        let shape = [3usize, 5, 19];
        let x = data(3 * 5 * 19, 1, 8.0);
        let ctx = Ctx::single(Isa::Portable);
        for log in [false, true] {
            let name = if log { "LogSoftmax" } else { "Softmax" };
            for (axis, outer, n, inner) in [
                (0i64, 1, 3, 95),
                (1, 3, 5, 19),
                (-1, 15, 19, 1),
                (2, 15, 19, 1),
            ] {
                let op = build(name, 13, vec![("axis", Attr::Int(axis))], 1, 1).unwrap();
                let y = run1(op.as_ref(), &ctx, &[&t(&shape, x.clone())]).unwrap();
                close(
                    y.f32s().unwrap(),
                    &softmax_ref(&x, outer, n, inner, log),
                    1e-5,
                    1e-6,
                );
            }
        }
    }

    #[test]
    fn row_max_is_the_sequential_fold() {
        let fold = |x: &[f32]| x[1..].iter().fold(x[0], |m, &v| canon::max(m, v));
        // Few distinct values, so ties, zero maxima of either sign and NaNs
        // in every position all occur.
        let values = [0.0, -0.0, -1.0, -3.0, 2.0, f32::NEG_INFINITY];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1usize, 2, 15, 16, 17, 33, 40] {
            for round in 0..400usize {
                // Most rounds draw from zeros and negatives only; some add
                // positives, infinities and (rarely) NaN.
                let (k, nan) =
                    [(4, false), (4, false), (4, false), (6, false), (6, true)][round % 5];
                let x: Vec<f32> = (0..n)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let r = (state % 1000) as usize;
                        if nan && r < 10 {
                            f32::NAN
                        } else {
                            values[r % k]
                        }
                    })
                    .collect();
                let got = row_max(x[0], &x[1..]);
                assert_eq!(got.to_bits(), fold(&x).to_bits(), "{x:?}");
            }
        }
    }

    #[test]
    fn softmax_row_is_the_canonical_sequence() {
        let x = data(37, 2, 5.0);
        let ctx = Ctx::single(Isa::Portable);
        let op = build("Softmax", 13, vec![], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&[37], x.clone())]).unwrap();
        let m = x.iter().skip(1).fold(x[0], |m, &v| canon::max(m, v));
        let e: Vec<f32> = x.iter().map(|&v| canon::exp(v - m)).collect();
        let s = canon::sum_l8(&e);
        let want: Vec<u32> = e.iter().map(|&v| (v / s).to_bits()).collect();
        let got: Vec<u32> = y.f32s().unwrap().iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        let op = build("LogSoftmax", 13, vec![], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&[37], x.clone())]).unwrap();
        let ls = canon::log(s);
        let want: Vec<u32> = x.iter().map(|&v| ((v - m) - ls).to_bits()).collect();
        let got: Vec<u32> = y.f32s().unwrap().iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn softmax_bits_do_not_depend_on_threads() {
        let pool1 = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let pool4 = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let c1 = Ctx::with_pool(Isa::Portable, &pool1);
        let c4 = Ctx::with_pool(Isa::Portable, &pool4);
        let cases: [(&[usize], i64); 4] = [
            (&[64, 300], -1),
            (&[2, 37, 500], 1),
            (&[40, 7, 33], 1),
            (&[1, 21, 3000], 1),
        ];
        for (shape, axis) in cases {
            let n: usize = shape.iter().product();
            let x = t(shape, data(n, 3, 20.0));
            for name in ["Softmax", "LogSoftmax"] {
                let op = build(name, 13, vec![("axis", Attr::Int(axis))], 1, 1).unwrap();
                let a = run1(op.as_ref(), &c1, &[&x]).unwrap();
                let b = run1(op.as_ref(), &c4, &[&x]).unwrap();
                assert_eq!(a.hash(), b.hash(), "{name} {shape:?} axis {axis}");
                let s = run1(op.as_ref(), &Ctx::single(Isa::Portable), &[&x]).unwrap();
                assert_eq!(a.hash(), s.hash());
            }
        }
    }

    #[test]
    fn softmax_opset_11_flattens_opset_13_does_not() {
        let shape = [2usize, 3, 4];
        let x = data(24, 4, 3.0);
        let ctx = Ctx::single(Isa::Portable);
        // Opset 11, default axis 1: softmax over the 12 trailing elements.
        let op = build("Softmax", 11, vec![], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&shape, x.clone())]).unwrap();
        close(
            y.f32s().unwrap(),
            &softmax_ref(&x, 2, 12, 1, false),
            1e-5,
            1e-7,
        );
        // Opset 13, default axis -1: softmax over the last 4.
        let op = build("Softmax", 13, vec![], 1, 1).unwrap();
        let y13 = run1(op.as_ref(), &ctx, &[&t(&shape, x.clone())]).unwrap();
        close(
            y13.f32s().unwrap(),
            &softmax_ref(&x, 6, 4, 1, false),
            1e-5,
            1e-7,
        );
        // Opset 13, axis 1: only the middle axis, not flattened.
        let op = build("LogSoftmax", 13, vec![("axis", Attr::Int(1))], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&shape, x.clone())]).unwrap();
        close(
            y.f32s().unwrap(),
            &softmax_ref(&x, 2, 3, 4, true),
            1e-5,
            1e-6,
        );
        // Opset 11, axis 0: everything in one row.
        let op = build("LogSoftmax", 11, vec![("axis", Attr::Int(0))], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&shape, x.clone())]).unwrap();
        close(
            y.f32s().unwrap(),
            &softmax_ref(&x, 1, 24, 1, true),
            1e-5,
            1e-6,
        );
    }

    #[test]
    fn softmax_f64_and_bad_inputs() {
        let ctx = Ctx::single(Isa::Portable);
        let op = build("Softmax", 13, vec![], 1, 1).unwrap();
        let x = Tensor::from_vec(vec![2, 2], vec![0.0f64, 1.0, 2.0, 2.0]).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&x]).unwrap();
        let y = y.as_slice::<f64>().unwrap();
        assert!((y[1] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
        assert_eq!(y[2], 0.5);
        let xi = Tensor::from_vec(vec![2], vec![1i64, 2]).unwrap();
        assert!(run1(op.as_ref(), &ctx, &[&xi]).is_err());
        assert!(run1(op.as_ref(), &ctx, &[&Tensor::scalar(1.0f32)]).is_err());
        let op = build("Softmax", 13, vec![("axis", Attr::Int(2))], 1, 1).unwrap();
        assert!(run1(op.as_ref(), &ctx, &[&t(&[2, 2], vec![0.0; 4])]).is_err());
        // Empty tensors are fine.
        let op = build("Softmax", 13, vec![], 1, 1).unwrap();
        let y = run1(op.as_ref(), &ctx, &[&t(&[0, 3], vec![])]).unwrap();
        assert_eq!(y.shape(), [0, 3]);
    }

    #[test]
    fn batchnorm_is_the_canonical_formula() {
        let ctx = Ctx::single(Isa::Portable);
        let (n, c, h, w) = (2usize, 3usize, 5usize, 7usize);
        let x = data(n * c * h * w, 5, 4.0);
        let scale = data(c, 6, 2.0);
        let bias = data(c, 7, 1.0);
        let mean = data(c, 8, 0.5);
        let var: Vec<f32> = data(c, 9, 1.0).iter().map(|v| v.abs() + 0.1).collect();
        let eps = 1e-3f32;
        let op = build(
            "BatchNormalization",
            15,
            vec![("epsilon", Attr::Float(eps))],
            5,
            1,
        )
        .unwrap();
        let ins = [
            t(&[n, c, h, w], x.clone()),
            t(&[c], scale.clone()),
            t(&[c], bias.clone()),
            t(&[c], mean.clone()),
            t(&[c], var.clone()),
        ];
        let refs: Vec<&Tensor> = ins.iter().collect();
        let y = run1(op.as_ref(), &ctx, &refs).unwrap();
        let y = y.f32s().unwrap();
        for (i, &xi) in x.iter().enumerate() {
            let ch = (i / (h * w)) % c;
            let d = (var[ch] + eps).sqrt();
            let q = (xi - mean[ch]) / d;
            let want = q * scale[ch] + bias[ch];
            assert_eq!(y[i].to_bits(), want.to_bits(), "element {i}");
        }
        // Same bits with 4 threads.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let big = [
            t(&[4, c, 64, 64], data(4 * c * 4096, 10, 3.0)),
            ins[1].clone(),
            ins[2].clone(),
            ins[3].clone(),
            ins[4].clone(),
        ];
        let refs: Vec<&Tensor> = big.iter().collect();
        let a = run1(op.as_ref(), &ctx, &refs).unwrap();
        let b = run1(op.as_ref(), &Ctx::with_pool(Isa::Portable, &pool), &refs).unwrap();
        assert_eq!(a.hash(), b.hash());
        // Rank 2 input.
        let r2 = [
            t(&[2, c], data(2 * c, 11, 1.0)),
            ins[1].clone(),
            ins[2].clone(),
            ins[3].clone(),
            ins[4].clone(),
        ];
        let refs: Vec<&Tensor> = r2.iter().collect();
        assert_eq!(run1(op.as_ref(), &ctx, &refs).unwrap().shape(), [2, c]);
    }

    #[test]
    fn batchnorm_rejects_bad_inputs_and_modes() {
        let ctx = Ctx::single(Isa::Portable);
        let op = build("BatchNormalization", 15, vec![], 5, 1).unwrap();
        let p = t(&[3], vec![1.0; 3]);
        let x = t(&[1, 3, 2], vec![0.0; 6]);
        assert!(run1(op.as_ref(), &ctx, &[&x, &p, &p, &p, &p]).is_ok());
        let p4 = t(&[4], vec![1.0; 4]);
        let e = run1(op.as_ref(), &ctx, &[&x, &p, &p4, &p, &p]).unwrap_err();
        assert!(e.0.contains("B"), "{e}");
        assert!(run1(op.as_ref(), &ctx, &[&t(&[3], vec![0.0; 3]), &p, &p, &p, &p]).is_err());
        let pd = Tensor::from_vec(vec![3], vec![1.0f64; 3]).unwrap();
        assert!(run1(op.as_ref(), &ctx, &[&x, &p, &p, &pd, &p]).is_err());
        let refs: [Option<&Tensor>; 5] = [Some(&x), Some(&p), Some(&p), Some(&p), Some(&p)];
        // Run without infer, with a bad shape: an error, not a panic.
        let refs_bad: [Option<&Tensor>; 5] = [Some(&x), Some(&p4), Some(&p), Some(&p), Some(&p)];
        assert!(op.run(&ctx, Args::new(&refs)).is_ok());
        assert!(op.run(&ctx, Args::new(&refs_bad)).is_err());
        assert!(
            build(
                "BatchNormalization",
                15,
                vec![("training_mode", Attr::Int(1))],
                5,
                3
            )
            .is_err()
        );
        assert!(build("BatchNormalization", 15, vec![], 5, 3).is_err());
        assert!(
            build(
                "BatchNormalization",
                7,
                vec![("spatial", Attr::Int(0))],
                5,
                1
            )
            .is_err()
        );
        assert!(
            build(
                "BatchNormalization",
                7,
                vec![("spatial", Attr::Int(1))],
                5,
                1
            )
            .is_ok()
        );
        assert!(build("BatchNormalization", 15, vec![], 4, 1).is_err());
    }

    fn lrn_ref(
        x: &[f32],
        shape: &[usize],
        alpha: f32,
        beta: f32,
        bias: f32,
        size: usize,
    ) -> Vec<f32> {
        let (n, c) = (shape[0], shape[1]);
        let plane: usize = shape[2..].iter().product();
        let mut y = vec![0.0f32; x.len()];
        let a = alpha / size as f32;
        for img in 0..n {
            for ch in 0..c {
                let lo = ch as i64 - ((size as i64 - 1) / 2);
                let hi = ch as i64 + (size as i64 - 1 + 1) / 2;
                for s in 0..plane {
                    let mut sq = 0.0f32;
                    for cc in lo.max(0)..=hi.min(c as i64 - 1) {
                        let v = x[(img * c + cc as usize) * plane + s];
                        let p = v * v;
                        sq += p;
                    }
                    let i = (img * c + ch) * plane + s;
                    y[i] = x[i] / canon::pow(bias + a * sq, beta);
                }
            }
        }
        y
    }

    #[test]
    fn lrn_matches_reference_for_odd_and_even_sizes() {
        let ctx = Ctx::single(Isa::Portable);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let c4 = Ctx::with_pool(Isa::Portable, &pool);
        let shape = [2usize, 7, 6, 5];
        let x = data(2 * 7 * 30, 12, 3.0);
        for (size, alpha, beta, bias) in [
            (3usize, 1e-4f32, 0.75f32, 1.0f32),
            (4, 0.02, 0.5, 2.0),
            (1, 0.1, 1.0, 1.0),
            (11, 0.3, 0.6, 0.5),
        ] {
            let op = build(
                "LRN",
                13,
                vec![
                    ("size", Attr::Int(size as i64)),
                    ("alpha", Attr::Float(alpha)),
                    ("beta", Attr::Float(beta)),
                    ("bias", Attr::Float(bias)),
                ],
                1,
                1,
            )
            .unwrap();
            let xt = t(&shape, x.clone());
            let y = run1(op.as_ref(), &ctx, &[&xt]).unwrap();
            let want = lrn_ref(&x, &shape, alpha, beta, bias, size);
            let got: Vec<u32> = y.f32s().unwrap().iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "size {size}");
            let big = t(&[3, 9, 40, 40], data(3 * 9 * 1600, 13, 2.0));
            let a = run1(op.as_ref(), &ctx, &[&big]).unwrap();
            let b = run1(op.as_ref(), &c4, &[&big]).unwrap();
            assert_eq!(a.hash(), b.hash());
        }
    }

    #[test]
    fn lrn_rejects_bad_inputs() {
        let ctx = Ctx::single(Isa::Portable);
        assert!(build("LRN", 13, vec![], 1, 1).is_err());
        assert!(build("LRN", 13, vec![("size", Attr::Int(0))], 1, 1).is_err());
        assert!(build("LRN", 13, vec![("size", Attr::Float(3.0))], 1, 1).is_err());
        let op = build("LRN", 13, vec![("size", Attr::Int(3))], 1, 1).unwrap();
        assert!(run1(op.as_ref(), &ctx, &[&t(&[4], vec![0.0; 4])]).is_err());
        let xi = Tensor::from_vec(vec![1, 2, 1], vec![1i32, 2]).unwrap();
        assert!(run1(op.as_ref(), &ctx, &[&xi]).is_err());
        let y = run1(op.as_ref(), &ctx, &[&t(&[0, 3, 2], vec![])]).unwrap();
        assert_eq!(y.shape(), [0, 3, 2]);
    }

    #[test]
    fn costs_follow_shapes() {
        let f = Fact::new(DType::F32, vec![2, 3, 4]);
        let op = build("Softmax", 13, vec![], 1, 1).unwrap();
        let outs = op.infer(Args::new(&[Some(&f)])).unwrap();
        let c = op.cost(Args::new(&[Some(&f)]), &outs);
        assert_eq!(c.flops, 4 * 24);
        assert_eq!(c.bytes, 2 * 24 * 4);
        let op = build("LRN", 13, vec![("size", Attr::Int(5))], 1, 1).unwrap();
        let outs = op.infer(Args::new(&[Some(&f)])).unwrap();
        assert_eq!(op.cost(Args::new(&[Some(&f)]), &outs).flops, 8 * 24);
    }

    #[test]
    fn softmax_regions_are_the_full_runs_rows() {
        for name in ["Softmax", "LogSoftmax"] {
            let op = build(name, 13, vec![], 1, 1).unwrap();
            let n: usize = 37 * 9 * 20;
            let x = Tensor::from_vec(
                vec![37, 9, 20],
                (0..n)
                    .map(|i| ((i * 7919 % 2000) as f32) / 100.0 - 10.0)
                    .collect(),
            )
            .unwrap();
            crate::ops::testing::check_regions(&*op, &[Some(&x)], &[1, 30, 256]);
        }
    }
}

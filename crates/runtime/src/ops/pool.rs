//! Operators: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! Windows follow docs/determinism.md, "Sums over an axis": Max uses the
//! canonical max rule (NaN wins, otherwise a later value replaces the current
//! one only if strictly greater; padding never takes part); AveragePool sums
//! sequentially in row-major window order from `+0.0` and divides by the
//! count; GlobalAveragePool is the L8 sum divided by the count.

use super::conv::{Geometry, WindowAttrs};
use super::{Args, BuildCtx, Fact, Op, Registry, default_cost};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::elementwise::{GRAIN, simd, sum_l8_by, with_isa};
use crate::kernels::{Ctx, Isa};
use crate::tensor::{DType, Data, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("MaxPool", build_max);
    r.add("AveragePool", build_avg);
    r.add("GlobalAveragePool", |_| Ok(Box::new(Global { max: false })));
    r.add("GlobalMaxPool", |_| Ok(Box::new(Global { max: true })));
}

/// Float element types of the pools.
trait PoolElem: Copy + PartialOrd + Send + Sync + 'static {
    const ZERO: Self;
    const NEG_INF: Self;
    fn is_nan(self) -> bool;
    fn add(self, o: Self) -> Self;
    fn div_count(self, n: usize) -> Self;
}

impl PoolElem for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn add(self, o: f32) -> f32 {
        self + o
    }
    fn div_count(self, n: usize) -> f32 {
        self / n as f32
    }
}

impl PoolElem for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INF: f64 = f64::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn div_count(self, n: usize) -> f64 {
        self / n as f64
    }
}

/// 8-bit integers (MaxPool only, opset 12): no NaN, `NEG_INF` is the minimum.
macro_rules! int_pool_elem {
    ($($t:ty),*) => {$(
        impl PoolElem for $t {
            const ZERO: $t = 0;
            const NEG_INF: $t = <$t>::MIN;
            fn is_nan(self) -> bool {
                false
            }
            fn add(self, o: $t) -> $t {
                self.wrapping_add(o)
            }
            fn div_count(self, n: usize) -> $t {
                <$t>::try_from(n).ok().and_then(|n| self.checked_div(n)).unwrap_or(0)
            }
        }
    )*};
}
int_pool_elem!(i8, u8);

/// The canonical max step: NaN wins (the first NaN stays), otherwise `b`
/// replaces `a` only if strictly greater (docs/determinism.md, "Max / Min").
#[inline(always)]
fn max_step<T: PoolElem>(a: T, b: T) -> bool {
    // Non-short-circuit operators: no branch, so windows of varied data
    // do not mispredict.
    !a.is_nan() & (b.is_nan() | (b > a))
}

/// The L8 sum of docs/determinism.md, "Sums over an axis".
#[inline(always)]
fn sum_l8<T: PoolElem>(x: &[T]) -> T {
    sum_l8_by(x, T::ZERO, |v| v, T::add)
}

/// Input shape checks common to the pools; returns the spatial dims.
fn pool_input<'a>(x: &'a Fact, op: &str) -> OpResult<&'a [usize]> {
    let ok = matches!(x.dtype, DType::F32 | DType::F64)
        || (op == "MaxPool" && matches!(x.dtype, DType::I8 | DType::U8));
    ensure!(ok, "{op} does not support {}", x.dtype);
    ensure!(
        x.shape.len() >= 3,
        "{op} input must have rank >= 3, got {:?}",
        x.shape
    );
    Ok(&x.shape[2..])
}

#[derive(Debug)]
struct MaxPool {
    window: WindowAttrs,
    kernel: Vec<usize>,
    storage_order: bool,
    indices: bool,
}

fn build_max(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let window = WindowAttrs::parse(ctx.attrs, ctx.opset >= 10, ctx.opset >= 10)?;
    let kernel = window
        .kernel
        .clone()
        .ok_or_else(|| OpError("MaxPool needs `kernel_shape`".into()))?;
    let storage_order = ctx.attrs.flag("storage_order", false)?;
    Ok(Box::new(MaxPool {
        window,
        kernel,
        storage_order,
        indices: ctx.n_outputs >= 2,
    }))
}

#[derive(Debug)]
struct AvgPool {
    window: WindowAttrs,
    kernel: Vec<usize>,
    count_include_pad: bool,
}

fn build_avg(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let window = WindowAttrs::parse(ctx.attrs, ctx.opset >= 19, ctx.opset >= 10)?;
    let kernel = window
        .kernel
        .clone()
        .ok_or_else(|| OpError("AveragePool needs `kernel_shape`".into()))?;
    let count_include_pad = ctx.attrs.flag("count_include_pad", false)?;
    Ok(Box::new(AvgPool {
        window,
        kernel,
        count_include_pad,
    }))
}

fn out_shape(x: &[usize], geo: &Geometry) -> OpResult<Vec<usize>> {
    let mut out = x[..2].to_vec();
    out.extend_from_slice(&geo.out);
    checked_len(&out).ok_or_else(|| OpError(format!("pool output {out:?} overflows")))?;
    Ok(out)
}

fn window_cost(inputs: Args<'_, Fact>, outputs: &[Fact], kernel: &[usize]) -> Cost {
    let per = kernel.iter().fold(1u64, |a, &k| a.saturating_mul(k as u64));
    let mut c = default_cost(inputs, outputs, 0);
    c.flops = outputs
        .first()
        .map_or(0, |o| (o.len() as u64).saturating_mul(per));
    c
}

/// Per spatial dim and output index: the in-bounds input coordinates of the
/// window (in kernel order), and the count of window positions inside the
/// explicitly padded input.
struct Taps {
    coords: Vec<Vec<Vec<usize>>>,
    padded_counts: Vec<Vec<usize>>,
}

fn taps(geo: &Geometry) -> Taps {
    let r = geo.input.len();
    let mut coords = Vec::with_capacity(r);
    let mut padded_counts = Vec::with_capacity(r);
    for d in 0..r {
        let mut cd = Vec::with_capacity(geo.out[d]);
        let mut pd = Vec::with_capacity(geo.out[d]);
        for o in 0..geo.out[d] {
            cd.push(
                (0..geo.kernel[d])
                    .filter_map(|k| geo.coord(d, o, k))
                    .collect(),
            );
            pd.push(
                (0..geo.kernel[d])
                    .filter(|&k| geo.in_padded(d, o, k))
                    .count(),
            );
        }
        coords.push(cd);
        padded_counts.push(pd);
    }
    Taps {
        coords,
        padded_counts,
    }
}

/// Calls `f(out_flat, window)` for each output position, where `window`
/// lists the in-bounds input offsets (row-major in the plane) in window order
/// and the padded count.
fn for_each_window(geo: &Geometry, t: &Taps, mut f: impl FnMut(usize, &[usize], usize)) {
    let r = geo.input.len();
    let no: usize = geo.out.iter().product();
    let mut o = vec![0usize; r];
    let mut offs: Vec<usize> = Vec::new();
    let mut tmp: Vec<usize> = Vec::new();
    for of in 0..no {
        offs.clear();
        offs.push(0);
        let mut count = 1usize;
        for (d, &od) in o.iter().enumerate() {
            tmp.clear();
            for &b in &offs {
                for &i in &t.coords[d][od] {
                    tmp.push(b * geo.input[d] + i);
                }
            }
            std::mem::swap(&mut offs, &mut tmp);
            count *= t.padded_counts[d][od];
        }
        f(of, &offs, count);
        for d in (0..r).rev() {
            o[d] += 1;
            if o[d] < geo.out[d] {
                break;
            }
            o[d] = 0;
        }
    }
}

/// Converts a row-major plane offset to the column-major one (storage_order=1).
fn col_major(off: usize, dims: &[usize]) -> usize {
    let mut rem = off;
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = rem % dims[d];
        rem /= dims[d];
    }
    let (mut res, mut stride) = (0, 1);
    for d in 0..dims.len() {
        res += idx[d] * stride;
        stride *= dims[d];
    }
    res
}

/// The sequential fold of `x` with the max step from `NEG_INF`, found
/// without its serial dependency: that fold ends on the first NaN when there
/// is one, and otherwise on the first element equal to the maximum (a later
/// equal one, such as `-0.0` after `+0.0`, never replaces it). So: one pass
/// in 16 independent lanes for the maximum value and for whether a NaN is
/// there, then a search for the first element that is that NaN or equals
/// that maximum.
#[inline(always)]
fn fold_max_plane<T: PoolElem>(x: &[T]) -> T {
    const L: usize = 16;
    let mut lanes = [T::NEG_INF; L];
    let mut nan = [false; L];
    let blocks = x.chunks_exact(L);
    let tail = blocks.remainder();
    for block in blocks {
        for ((m, n), &v) in lanes.iter_mut().zip(&mut nan).zip(block) {
            *n |= v.is_nan();
            *m = if v > *m { v } else { *m };
        }
    }
    for ((m, n), &v) in lanes.iter_mut().zip(&mut nan).zip(tail) {
        *n |= v.is_nan();
        *m = if v > *m { v } else { *m };
    }
    let found = if nan.iter().any(|&n| n) {
        x.iter().find(|v| v.is_nan())
    } else {
        let max = lanes
            .into_iter()
            .fold(T::NEG_INF, |a, b| if b > a { b } else { a });
        x.iter().find(|&&v| v == max)
    };
    found.copied().unwrap_or(T::NEG_INF)
}

/// The canonical max step as a value: `b` if it replaces `a`, else `a`.
#[inline(always)]
fn max_of<T: PoolElem>(a: T, b: T) -> T {
    if max_step(a, b) { b } else { a }
}

/// `dst[i]` = the fold with the max step, from `NEG_INF`, of `tap(k)[i]`
/// for `k` in `0..taps`, in that order (each `tap(k)` at least as long as
/// `dst`). The fold runs in registers over blocks of lanes and stores each
/// result once: a masked store of only the changed lanes, read back by the
/// next pass, stalls store forwarding. Each step waits on the last
/// (compare, mask, blend), so one vector's chain alone leaves the core
/// idle: with `wide` (AVX2 or AVX-512, whose registers hold them), a block
/// is up to four vectors of 16 lanes whose chains overlap.
#[inline(always)]
fn fold_max<'a, T: PoolElem>(
    wide: bool,
    dst: &mut [T],
    taps: usize,
    tap: impl Fn(usize) -> &'a [T],
) {
    match dst.len() {
        n if wide && n >= 64 => fold_max_blocks::<T, 4>(dst, taps, tap),
        n if wide && n >= 32 => fold_max_blocks::<T, 2>(dst, taps, tap),
        n if n >= 16 => fold_max_blocks::<T, 1>(dst, taps, tap),
        _ => {
            // Tap by tap: each `tap(k)` once, not once per lane.
            dst.fill(T::NEG_INF);
            for k in 0..taps {
                for (d, &v) in dst.iter_mut().zip(tap(k)) {
                    *d = max_of(*d, v);
                }
            }
        }
    }
}

/// Lanes of one vector in [`fold_max_blocks`].
const FOLD_LANES: usize = 16;

/// [`fold_max`] in blocks of `G` vectors of [`FOLD_LANES`] lanes (`dst` at
/// least one block long). The last block ends at the end of `dst` and may
/// overlap the one before it (the overlapped lanes get the same values
/// again). The vectors are separate arrays: one array of `G * 16` lanes
/// would be kept in memory instead of registers.
#[inline(always)]
fn fold_max_blocks<'a, T: PoolElem, const G: usize>(
    dst: &mut [T],
    taps: usize,
    tap: impl Fn(usize) -> &'a [T],
) {
    const L: usize = FOLD_LANES;
    let n = dst.len();
    let mut start = 0;
    loop {
        let mut acc = [[T::NEG_INF; L]; G];
        for k in 0..taps {
            let x = &tap(k)[start..][..G * L];
            // As whole arrays: a per-lane loop over slices here is
            // sometimes left scalar, through memory.
            let x = x.chunks_exact(L).flat_map(<&[T; L]>::try_from);
            for (a, x) in acc.iter_mut().zip(x) {
                *a = std::array::from_fn(|l| max_of(a[l], x[l]));
            }
        }
        for (d, a) in dst[start..][..G * L].chunks_exact_mut(L).zip(&acc) {
            d.copy_from_slice(a);
        }
        if start + G * L == n {
            return;
        }
        start = (start + G * L).min(n - G * L);
    }
}

/// `row` = input row `xrow` with `pw` columns of padding before it, cut or
/// filled with `NEG_INF` to `row`'s length.
#[inline(always)]
fn pad_row<T: PoolElem>(xrow: &[T], pw: usize, row: &mut [T]) {
    let span = row.len();
    let lo = pw.min(span);
    let hi = (pw + xrow.len()).min(span);
    row[..lo].fill(T::NEG_INF);
    row[lo..hi].copy_from_slice(&xrow[..hi - lo]);
    row[hi..].fill(T::NEG_INF);
}

/// Splits `src` into its `sw` phases (phase `q` holds columns `q`,
/// `q + sw`, ...): phase `q` starts at `dst[q * stride]` and is `len` long
/// (`len == src.len().div_ceil(sw)`; entries past a shorter phase's end
/// are left as they are).
#[inline(always)]
fn split_phases<T: PoolElem>(src: &[T], sw: usize, dst: &mut [T], stride: usize, len: usize) {
    match sw {
        1 => dst[..src.len()].copy_from_slice(src),
        2 => {
            let (lo, hi) = dst.split_at_mut(stride);
            let (even, odd) = (&mut lo[..len], &mut hi[..len]);
            let pairs = src.chunks_exact(2);
            if let [last] = pairs.remainder() {
                even[len - 1] = *last;
            }
            for ((e, o), p) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                *e = p[0];
                *o = p[1];
            }
        }
        _ => {
            for (j, &v) in src.iter().enumerate() {
                dst[j % sw * stride + j / sw] = v;
            }
        }
    }
}

/// Most elements of the split plane of [`max_pool_2d_flat`] (32 KiB of
/// `f32`; measured on squeezenet's pools: 27 x 27 and 54 x 54 planes are
/// 2.6x and 1.3x faster flat, 109 x 109 ones 1.4x slower).
const FLAT_MAX_ELEMS: usize = 8192;

/// The layout of [`max_pool_2d_flat`] for one geometry: the padded rows
/// and columns the windows read, split by phase modulo the strides, so that
/// every tap of both passes is one offset over the whole plane.
#[derive(Clone, Copy, Debug)]
struct FlatLayout {
    /// Padded columns read (`(ow - 1) * sw + (kw - 1) * dw + 1`).
    span: usize,
    /// Row pitch of every pass: the length of one column phase.
    pitch: usize,
    /// Padded rows per row phase; `sh * rows` row slots in all.
    rows: usize,
}

impl FlatLayout {
    /// The layout, or `None` when the split plane would be over
    /// [`FLAT_MAX_ELEMS`]: on larger planes the passes over whole-plane
    /// scratch leave the L1 cache, and the row path is faster.
    fn new(geo: &Geometry) -> Option<FlatLayout> {
        let (oh, ow) = (geo.out[0], geo.out[1]);
        if oh == 0 || ow == 0 {
            return None;
        }
        let span = (ow - 1) * geo.strides[1] + (geo.kernel[1] - 1) * geo.dilations[1] + 1;
        let padded_rows = (oh - 1) * geo.strides[0] + (geo.kernel[0] - 1) * geo.dilations[0] + 1;
        let l = FlatLayout {
            span,
            pitch: span.div_ceil(geo.strides[1]),
            rows: padded_rows.div_ceil(geo.strides[0]),
        };
        (l.split_len(geo) <= FLAT_MAX_ELEMS).then_some(l)
    }

    /// Elements of the phase-split padded plane.
    fn split_len(&self, geo: &Geometry) -> usize {
        geo.strides[1] * geo.strides[0] * self.rows * self.pitch
    }
}

/// Scratch of [`max_pool_2d_flat`] for one plane.
struct FlatScratch<T> {
    /// One padded row.
    row: Vec<T>,
    /// The padded plane split by phases: column phase `qh`, row slot `s`
    /// (padded row `y` in slot `(y % sh) * rows + y / sh`), entry `j` at
    /// `(qh * sh * rows + s) * pitch + j`.
    split: Vec<T>,
    /// The row maxima of each row slot, `pitch` apart.
    rowmax: Vec<T>,
    /// The window maxima, output rows `pitch` apart.
    out: Vec<T>,
}

/// MaxPool over one 2-D plane as two passes over the whole plane, each a
/// [`fold_max`] whose taps are fixed offsets: row maxima, then the maxima
/// of those over the kernel rows (the order and the padding rule of
/// [`max_pool_2d`]). Small planes fold as one run instead of many short
/// rows. `out` is written whole.
#[inline(always)]
fn max_pool_2d_flat<T: PoolElem>(
    wide: bool,
    geo: &Geometry,
    l: FlatLayout,
    xp: &[T],
    out: &mut [T],
    s: &mut FlatScratch<T>,
) {
    let (ih, iw) = (geo.input[0], geo.input[1]);
    let (oh, ow) = (geo.out[0], geo.out[1]);
    let (sh, sw) = (geo.strides[0], geo.strides[1]);
    let (ph, pw) = (geo.pad_begin[0], geo.pad_begin[1]);
    let (span, pitch, rows) = (l.span, l.pitch, l.rows);
    let slots = sh * rows;
    s.row.resize(span, T::NEG_INF);
    s.split.resize(l.split_len(geo), T::NEG_INF);
    s.rowmax.resize(slots * pitch, T::NEG_INF);
    s.out.resize((oh - 1) * pitch + ow, T::NEG_INF);
    for y in 0..slots.min(ih + ph) {
        let slot = y % sh * rows + y / sh;
        let row = &mut s.row;
        match y.checked_sub(ph).filter(|&r| r < ih) {
            Some(r) => pad_row(&xp[r * iw..][..iw], pw, row),
            None => row.fill(T::NEG_INF),
        }
        split_phases(row, sw, &mut s.split[slot * pitch..], slots * pitch, pitch);
    }
    // Slots of the rows past the input hold NEG_INF from `resize` (every
    // plane of a task has this geometry, so none writes them).
    // Row maxima: flat entry `slot * pitch + o` (o < ow) folds column
    // `o * sw + k * dw` of the slot's row, which is entry `o + c / sw` of
    // column phase `c % sw` (c = k * dw): a fixed offset from the entry.
    let (kh, kw) = (geo.kernel[0], geo.kernel[1]);
    let (dh, dw) = (geo.dilations[0], geo.dilations[1]);
    let split = &s.split;
    let hlen = (slots - 1) * pitch + ow;
    fold_max(wide, &mut s.rowmax[..hlen], kw, |k| {
        let c = k * dw;
        &split[c % sw * slots * pitch + c / sw..]
    });
    // Window maxima: output row `i` folds padded rows `i * sh + c`
    // (c = k * dh), in slot `c % sh * rows + i + c / sh`.
    let rowmax = &s.rowmax;
    fold_max(wide, &mut s.out, kh, |k| {
        let c = k * dh;
        &rowmax[(c % sh * rows + c / sh) * pitch..]
    });
    for (o, v) in out.chunks_exact_mut(ow).zip(s.out.chunks(pitch)) {
        o.copy_from_slice(&v[..ow]);
    }
}

/// Scratch rows of [`max_pool_2d`] for one plane.
struct MaxPool2dScratch<T> {
    /// One input row with `NEG_INF` in the padding, as wide as the windows reach.
    row: Vec<T>,
    /// The columns of `row` split by phase modulo the stride (stride > 1).
    at: Vec<T>,
    /// Row maxima at each output column: of input row `r` in row `slot[r]`
    /// when cached, else of the input row being folded.
    rows: Vec<T>,
}

impl<T> MaxPool2dScratch<T> {
    fn new() -> Self {
        MaxPool2dScratch {
            row: Vec::new(),
            at: Vec::new(),
            rows: Vec::new(),
        }
    }
}

/// The row maxima of one input row at each output column (`dst`, `ow` long):
/// the window row folded at each output's start column. `row` and `at` are
/// scratch, `span` long and `span` rounded up to a multiple of the stride.
#[inline(always)]
fn row_maxima<T: PoolElem>(
    wide: bool,
    geo: &Geometry,
    xrow: &[T],
    dst: &mut [T],
    row: &mut [T],
    at: &mut [T],
) {
    let (iw, kw, sw, dw, pw) = (
        geo.input[1],
        geo.kernel[1],
        geo.strides[1],
        geo.dilations[1],
        geo.pad_begin[1],
    );
    let span = row.len();
    // Rows the windows read entirely in bounds are read in place; else
    // column `j` of `row` is input column `j - pw`.
    let src: &[T] = if pw == 0 && span <= iw {
        xrow
    } else {
        pad_row(xrow, pw, row);
        row
    };
    if sw == 1 {
        fold_max(wide, dst, kw, |k| &src[k * dw..]);
        return;
    }
    // Strided: split the row into its `sw` phases (phase `q` holds columns
    // `q`, `q + sw`, ...), `len` apart in `at`. Window tap `k` of output
    // column `o` reads column `o * sw + k * dw`: entry `o + k * dw / sw` of
    // phase `k * dw % sw`, so every tap is again a contiguous run.
    let len = span.div_ceil(sw);
    split_phases(&src[..span], sw, at, len, len);
    fold_max(wide, dst, kw, |k| {
        let c = k * dw;
        &at[c % sw * len + c / sw..]
    });
}

/// MaxPool over one 2-D plane, separably: for each input row the maxima of
/// its row segments at every output column, then for each output row the
/// fold of those over the kernel rows, in kernel order. That is the
/// canonical sequential fold in row-major window order: the max step keeps
/// the first NaN, else the first of the greatest values, so folding
/// consecutive runs of the window first and then the runs' results in order
/// gives the same bits. Positions in the padding count as `NEG_INF`, which
/// the max step never prefers to any value, so they equal being skipped (a
/// window entirely in the padding gives `NEG_INF`). Every loop but the
/// strided pick runs along contiguous memory, so it vectorizes.
///
/// With `slot` (`slot[r]` the cache row of input row `r`, `usize::MAX` for
/// rows no window reads), each input row's maxima are computed once;
/// without it (when the cache would outgrow the plane), again for each
/// output row that reads the row. `out` starts at `NEG_INF`.
#[inline(always)]
fn max_pool_2d<T: PoolElem>(
    wide: bool,
    geo: &Geometry,
    t: &Taps,
    slot: Option<(&[usize], usize)>,
    xp: &[T],
    out: &mut [T],
    s: &mut MaxPool2dScratch<T>,
) {
    let (iw, ow) = (geo.input[1], geo.out[1]);
    if ow == 0 {
        return;
    }
    let starts = (ow - 1) * geo.strides[1] + 1;
    s.row
        .resize(starts + (geo.kernel[1] - 1) * geo.dilations[1], T::NEG_INF);
    s.at.resize(
        s.row.len().div_ceil(geo.strides[1]) * geo.strides[1],
        T::NEG_INF,
    );
    let xrow = |r: usize| &xp[r * iw..][..iw];
    match slot {
        Some((slot, used)) => {
            s.rows.resize(used * ow, T::NEG_INF);
            for (r, &i) in slot.iter().enumerate().filter(|(_, i)| **i != usize::MAX) {
                let dst = &mut s.rows[i * ow..][..ow];
                row_maxima(wide, geo, xrow(r), dst, &mut s.row, &mut s.at);
            }
            for (orow, rows) in out.chunks_exact_mut(ow).zip(&t.coords[0]) {
                fold_max(wide, orow, rows.len(), |k| &s.rows[slot[rows[k]] * ow..]);
            }
        }
        None => {
            s.rows.resize(ow, T::NEG_INF);
            for (orow, rows) in out.chunks_exact_mut(ow).zip(&t.coords[0]) {
                for &r in rows {
                    row_maxima(wide, geo, xrow(r), &mut s.rows, &mut s.row, &mut s.at);
                    for (o, &v) in orow.iter_mut().zip(&s.rows) {
                        *o = max_of(*o, v);
                    }
                }
            }
        }
    }
}

impl MaxPool {
    fn geometry(&self, x: &Fact) -> OpResult<Geometry> {
        let sp = pool_input(x, "MaxPool")?;
        self.window.geometry(sp, &self.kernel)
    }

    fn compute<T: PoolElem>(
        &self,
        ctx: &Ctx<'_>,
        x: &[T],
        shape: &[usize],
        geo: &Geometry,
    ) -> (Vec<T>, Vec<i64>) {
        let planes = shape[0] * shape[1];
        let ni: usize = geo.input.iter().product();
        let no: usize = geo.out.iter().product();
        let t = taps(geo);
        let mut y = vec![T::NEG_INF; planes * no];
        let mut idx = vec![-1i64; if self.indices { planes * no } else { 0 }];
        if no == 0 {
            return (y, idx);
        }
        // Values and indices are filled plane by plane (indices on one thread
        // after the values, both in the same window order).
        let isa = ctx.isa;
        let wide = simd(isa) != Isa::Portable;
        // The 2-D path caches the row maxima of each input row a window
        // reads, when that cache is no larger than the plane in and out.
        let mut slot = vec![
            usize::MAX;
            if geo.input.len() == 2 {
                geo.input[0]
            } else {
                0
            }
        ];
        let mut used = 0;
        let rows_read = if slot.is_empty() {
            &[][..]
        } else {
            &t.coords[0][..]
        };
        for &r in rows_read.iter().flatten() {
            if slot[r] == usize::MAX {
                slot[r] = used;
                used += 1;
            }
        }
        let cache = (geo.input.len() == 2 && used.saturating_mul(geo.out[1]) <= ni + no)
            .then_some((slot.as_slice(), used));
        let flat = if geo.input.len() == 2 {
            FlatLayout::new(geo)
        } else {
            None
        };
        if let Some(l) = flat {
            // Planes in tasks of about GRAIN input elements, each with one
            // scratch and compiled for each SIMD path (same comparisons).
            let per = (GRAIN / ni.max(1)).max(1);
            ctx.for_chunks_mut(&mut y, per * no, |c, outs| {
                let mut s = FlatScratch {
                    row: Vec::new(),
                    split: Vec::new(),
                    rowmax: Vec::new(),
                    out: Vec::new(),
                };
                with_isa!(isa, {
                    for (j, out) in outs.chunks_exact_mut(no).enumerate() {
                        let xp = &x[(c * per + j) * ni..][..ni];
                        max_pool_2d_flat(wide, geo, l, xp, out, &mut s);
                    }
                });
            });
        } else if geo.input.len() == 2 {
            let per = (GRAIN / ni.max(1)).max(1);
            ctx.for_chunks_mut(&mut y, per * no, |c, outs| {
                let mut s = MaxPool2dScratch::new();
                with_isa!(isa, {
                    for (j, out) in outs.chunks_exact_mut(no).enumerate() {
                        let xp = &x[(c * per + j) * ni..][..ni];
                        max_pool_2d(wide, geo, &t, cache, xp, out, &mut s);
                    }
                });
            });
        } else {
            ctx.for_chunks_mut(&mut y, no, |p, out| {
                let xp = &x[p * ni..][..ni];
                for_each_window(geo, &t, |of, offs, _| {
                    if let Some((&first, rest)) = offs.split_first() {
                        let mut m = xp[first];
                        for &i in rest {
                            if max_step(m, xp[i]) {
                                m = xp[i];
                            }
                        }
                        out[of] = m;
                    }
                });
            });
        }
        if self.indices {
            for (p, out) in idx.chunks_exact_mut(no).enumerate() {
                let xp = &x[p * ni..][..ni];
                for_each_window(geo, &t, |of, offs, _| {
                    if let Some((&first, rest)) = offs.split_first() {
                        let (mut m, mut at) = (xp[first], first);
                        for &i in rest {
                            if max_step(m, xp[i]) {
                                m = xp[i];
                                at = i;
                            }
                        }
                        let local = if self.storage_order {
                            col_major(at, &geo.input)
                        } else {
                            at
                        };
                        out[of] = (p * ni + local) as i64;
                    }
                });
            }
        }
        (y, idx)
    }
}

impl Op for MaxPool {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let geo = self.geometry(x)?;
        let out = out_shape(&x.shape, &geo)?;
        let mut v = vec![Fact::new(x.dtype, out.clone())];
        if self.indices {
            v.push(Fact::new(DType::I64, out));
        }
        Ok(v)
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        window_cost(inputs, outputs, &self.kernel)
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let fact = Fact::new(x.dtype(), x.shape().to_vec());
        let geo = self.geometry(&fact)?;
        let out = out_shape(x.shape(), &geo)?;
        let (y, idx) = match x.data() {
            Data::F32(v) => {
                let (y, i) = self.compute(ctx, v, x.shape(), &geo);
                (Data::F32(y), i)
            }
            Data::F64(v) => {
                let (y, i) = self.compute(ctx, v, x.shape(), &geo);
                (Data::F64(y), i)
            }
            Data::I8(v) => {
                let (y, i) = self.compute(ctx, v, x.shape(), &geo);
                (Data::I8(y), i)
            }
            Data::U8(v) => {
                let (y, i) = self.compute(ctx, v, x.shape(), &geo);
                (Data::U8(y), i)
            }
            _ => bail!("MaxPool does not support {}", x.dtype()),
        };
        let mut res = vec![Tensor::new(out.clone(), y)?];
        if self.indices {
            res.push(Tensor::from_vec(out, idx)?);
        }
        Ok(res)
    }
}

impl AvgPool {
    fn geometry(&self, x: &Fact) -> OpResult<Geometry> {
        let sp = pool_input(x, "AveragePool")?;
        self.window.geometry(sp, &self.kernel)
    }

    fn compute<T: PoolElem>(
        &self,
        ctx: &Ctx<'_>,
        x: &[T],
        shape: &[usize],
        geo: &Geometry,
    ) -> Vec<T> {
        let planes = shape[0] * shape[1];
        let ni: usize = geo.input.iter().product();
        let no: usize = geo.out.iter().product();
        let t = taps(geo);
        let mut y = vec![T::ZERO; planes * no];
        if no == 0 {
            return y;
        }
        ctx.for_chunks_mut(&mut y, no, |p, out| {
            let xp = &x[p * ni..][..ni];
            for_each_window(geo, &t, |of, offs, padded| {
                // Padded positions add +0.0, which never changes a sum that
                // starts at +0.0, so only in-bounds positions are added.
                let mut s = T::ZERO;
                for &i in offs {
                    s = s.add(xp[i]);
                }
                let n = if self.count_include_pad {
                    padded
                } else {
                    offs.len()
                };
                out[of] = s.div_count(n);
            });
        });
        y
    }
}

impl Op for AvgPool {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let geo = self.geometry(x)?;
        Ok(vec![Fact::new(x.dtype, out_shape(&x.shape, &geo)?)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        window_cost(inputs, outputs, &self.kernel)
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let fact = Fact::new(x.dtype(), x.shape().to_vec());
        let geo = self.geometry(&fact)?;
        let out = out_shape(x.shape(), &geo)?;
        let y = match x.data() {
            Data::F32(v) => Data::F32(self.compute(ctx, v, x.shape(), &geo)),
            Data::F64(v) => Data::F64(self.compute(ctx, v, x.shape(), &geo)),
            _ => bail!("AveragePool does not support {}", x.dtype()),
        };
        Ok(vec![Tensor::new(out, y)?])
    }
}

/// GlobalAveragePool (`max == false`) or GlobalMaxPool.
#[derive(Debug)]
struct Global {
    max: bool,
}

impl Global {
    fn name(&self) -> &'static str {
        if self.max {
            "GlobalMaxPool"
        } else {
            "GlobalAveragePool"
        }
    }

    fn compute<T: PoolElem>(&self, ctx: &Ctx<'_>, x: &[T], planes: usize) -> Vec<T> {
        let mut y = vec![T::ZERO; planes];
        let ni = x.len().checked_div(planes).unwrap_or(0);
        let isa = ctx.isa;
        ctx.for_chunks_mut(&mut y, 64, |c, out| {
            for (i, v) in out.iter_mut().enumerate() {
                let xp = &x[(c * 64 + i) * ni..][..ni];
                *v = if self.max {
                    with_isa!(isa, fold_max_plane(xp))
                } else {
                    sum_l8(xp).div_count(ni)
                };
            }
        });
        y
    }
}

impl Op for Global {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let sp = pool_input(x, self.name())?;
        let mut out = x.shape[..2].to_vec();
        out.extend(sp.iter().map(|_| 1));
        Ok(vec![Fact::new(x.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let flops = inputs.get(0).map_or(0, |x| x.len() as u64);
        Cost {
            flops,
            ..default_cost(inputs, outputs, 0)
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let fact = Fact::new(x.dtype(), x.shape().to_vec());
        let out = self.infer(Args::new(&[Some(&fact)]))?.remove(0).shape;
        let planes = out[0] * out[1];
        let y = match x.data() {
            Data::F32(v) => Data::F32(self.compute(ctx, v, planes)),
            Data::F64(v) => Data::F64(self.compute(ctx, v, planes)),
            _ => bail!("{} does not support {}", self.name(), x.dtype()),
        };
        Ok(vec![Tensor::new(out, y)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attr;
    use crate::attrs::Attrs;
    use crate::kernels::Isa;
    use crate::kernels::gemm::test_util::Rng;

    fn build(
        op: &str,
        attrs: Vec<(&str, Attr)>,
        opset: i64,
        n_outputs: usize,
    ) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let ctx = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs: 1,
            n_outputs,
        };
        crate::ops::build(&ctx)
    }

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    fn run(op: &dyn Op, x: &Tensor) -> Vec<Tensor> {
        let f = Fact::new(x.dtype(), x.shape().to_vec());
        let facts = op.infer(Args::new(&[Some(&f)])).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let a = op
            .run(&Ctx::single(Isa::Portable), Args::new(&[Some(x)]))
            .unwrap();
        let hashes = |v: &[Tensor]| v.iter().map(Tensor::hash).collect::<Vec<_>>();
        for isa in Isa::ALL {
            let b = op
                .run(&Ctx::with_pool(isa, &pool), Args::new(&[Some(x)]))
                .unwrap();
            assert_eq!(hashes(&a), hashes(&b), "{isa:?}");
        }
        for (t, f) in a.iter().zip(&facts) {
            assert_eq!(t.shape(), f.shape.as_slice());
            assert_eq!(t.dtype(), f.dtype);
        }
        a
    }

    fn seq(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            shape.to_vec(),
            (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect(),
        )
        .unwrap()
    }

    #[test]
    fn maxpool_2d_rows_match_the_window_order() {
        // The 2-D path gives the value the generic window walk (which also
        // makes the indices) picks, on awkward values and geometries.
        let specials = [0.0f32, -0.0, f32::NAN, f32::NEG_INFINITY, 1.0, -1.0];
        let geos: Vec<Vec<(&str, Attr)>> = vec![
            vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2]))],
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
            vec![
                ("kernel_shape", ints(&[3, 2])),
                ("strides", ints(&[1, 3])),
                ("pads", ints(&[2, 0, 1, 1])),
                ("dilations", ints(&[2, 2])),
            ],
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("ceil_mode", Attr::Int(1)),
            ],
            vec![
                ("kernel_shape", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
            vec![("kernel_shape", ints(&[2, 3]))],
            vec![("kernel_shape", ints(&[3, 1])), ("strides", ints(&[1, 2]))],
            // Wide padding: the row cache would outgrow the plane, so each
            // output row computes its rows' maxima itself.
            vec![
                ("kernel_shape", ints(&[9, 2])),
                ("strides", ints(&[9, 1])),
                ("pads", ints(&[0, 20, 0, 20])),
            ],
        ];
        let mut state = 7u64;
        // Planes of 9 rows of 11 (under one vector of lanes), 45 and 150
        // (blocks of one, two or four vectors, the last overlapping), pooled
        // as a whole plane; and of 70 rows of 150, over FLAT_MAX_ELEMS, row
        // by row, read in place or through the padded row.
        for (gi, (attrs, shape)) in geos
            .into_iter()
            .flat_map(|a| {
                [
                    [2, 3, 9, 11],
                    [2, 3, 9, 45],
                    [2, 3, 9, 150],
                    [1, 2, 70, 150],
                ]
                .map(|shape| (a.clone(), shape))
            })
            .enumerate()
        {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = (state >> 33) as usize;
                    if r.is_multiple_of(5) {
                        specials[r % specials.len()]
                    } else {
                        (r % 17) as f32 - 8.0
                    }
                })
                .collect();
            let x = Tensor::from_vec(shape.to_vec(), data.clone()).unwrap();
            let op = build("MaxPool", attrs, 12, 2).unwrap();
            let out = run(op.as_ref(), &x);
            let (y, idx) = (out[0].f32s().unwrap(), out[1].as_slice::<i64>().unwrap());
            for (o, (&v, &i)) in y.iter().zip(idx).enumerate() {
                let want = usize::try_from(i).map_or(f32::NEG_INFINITY, |i| data[i]);
                assert_eq!(v.to_bits(), want.to_bits(), "geometry {gi}, output {o}");
            }
        }
    }

    #[test]
    fn maxpool_padding_ceil_and_indices() {
        // 1x1x4x4 input 0..16, kernel 3, stride 2, pads 1, ceil_mode.
        let x = Tensor::from_vec(vec![1, 1, 4, 4], (0..16).map(|i| i as f32).collect()).unwrap();
        let op = build(
            "MaxPool",
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
                ("ceil_mode", Attr::Int(1)),
            ],
            12,
            2,
        )
        .unwrap();
        let out = run(&*op, &x);
        assert_eq!(out[0].shape(), &[1, 1, 3, 3]);
        assert_eq!(
            out[0].f32s().unwrap(),
            &[5.0, 7.0, 7.0, 13.0, 15.0, 15.0, 13.0, 15.0, 15.0]
        );
        assert_eq!(
            out[1].as_slice::<i64>().unwrap(),
            &[5, 7, 7, 13, 15, 15, 13, 15, 15]
        );
        // Without ceil_mode: floor((4 + 2 - 3) / 2) + 1 = 2.
        let op = build(
            "MaxPool",
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
            12,
            1,
        )
        .unwrap();
        let out = run(&*op, &x);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].f32s().unwrap(), &[5.0, 7.0, 13.0, 15.0]);
        // Column-major indices.
        let op = build(
            "MaxPool",
            vec![
                ("kernel_shape", ints(&[2, 2])),
                ("storage_order", Attr::Int(1)),
            ],
            12,
            2,
        )
        .unwrap();
        let out = run(&*op, &x);
        assert_eq!(out[1].as_slice::<i64>().unwrap()[0], 5); // (1, 1): 1 + 1 * 4
    }

    #[test]
    fn maxpool_nan_and_signed_zero_rule() {
        let x = Tensor::from_vec(vec![1, 1, 4], vec![0.0f32, -0.0, f32::NAN, 1.0]).unwrap();
        let op = build("MaxPool", vec![("kernel_shape", ints(&[2]))], 12, 2).unwrap();
        let out = run(&*op, &x);
        let y = out[0].f32s().unwrap();
        assert_eq!(y[0].to_bits(), 0.0f32.to_bits());
        assert!(y[1].is_nan() && y[2].is_nan());
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[0, 2, 2]);
    }

    #[test]
    fn averagepool_counts() {
        let x = seq(&[2, 3, 5, 5]);
        for (cip, ceil) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let op = build(
                "AveragePool",
                vec![
                    ("kernel_shape", ints(&[3, 2])),
                    ("strides", ints(&[2, 2])),
                    ("pads", ints(&[1, 0, 1, 0])),
                    ("count_include_pad", Attr::Int(cip)),
                    ("ceil_mode", Attr::Int(ceil)),
                ],
                19,
                1,
            )
            .unwrap();
            let y = run(&*op, &x).remove(0);
            let (ho, wo) = (3, if ceil == 1 { 3 } else { 2 });
            assert_eq!(y.shape(), &[2, 3, ho, wo]);
            let (xv, yv) = (x.f32s().unwrap(), y.f32s().unwrap());
            for p in 0..6 {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let (mut s, mut inb, mut padn) = (0.0f32, 0, 0);
                        for kh in 0..3 {
                            for kw in 0..2 {
                                let (h, w) = (oh * 2 + kh, ow * 2 + kw);
                                if h < 7 && w < 5 {
                                    padn += 1;
                                }
                                if (1..6).contains(&h) && w < 5 {
                                    s += xv[p * 25 + (h - 1) * 5 + w];
                                    inb += 1;
                                }
                            }
                        }
                        let want = s / if cip == 1 { padn } else { inb } as f32;
                        assert_eq!(
                            yv[p * ho * wo + oh * wo + ow].to_bits(),
                            want.to_bits(),
                            "cip={cip} ceil={ceil}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pools_auto_pad_and_dilations() {
        let x = seq(&[1, 2, 7, 6]);
        let same = build(
            "AveragePool",
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("auto_pad", Attr::String(b"SAME_UPPER".to_vec())),
            ],
            17,
            1,
        )
        .unwrap();
        assert_eq!(run(&*same, &x)[0].shape(), &[1, 2, 4, 3]);
        let valid = build(
            "MaxPool",
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("dilations", ints(&[2, 1])),
                ("auto_pad", Attr::String(b"VALID".to_vec())),
            ],
            17,
            1,
        )
        .unwrap();
        let y = run(&*valid, &x).remove(0);
        assert_eq!(y.shape(), &[1, 2, 3, 4]);
        let xv = x.f32s().unwrap();
        let mut m = f32::NEG_INFINITY;
        for kh in 0..3 {
            for kw in 0..3 {
                m = m.max(xv[(1 + kh * 2) * 6 + 2 + kw]);
            }
        }
        assert_eq!(y.f32s().unwrap()[4 + 2], m);
        // Dilations need opset 19 for AveragePool; zero strides are refused.
        assert!(
            build(
                "AveragePool",
                vec![("kernel_shape", ints(&[2])), ("dilations", ints(&[2]))],
                17,
                1
            )
            .is_err()
        );
        assert!(
            build(
                "MaxPool",
                vec![("kernel_shape", ints(&[2])), ("strides", ints(&[0]))],
                17,
                1
            )
            .is_err()
        );
        assert!(build("MaxPool", vec![], 17, 1).is_err());
    }

    /// The lane-parallel plane maximum is the sequential max-step fold, bit
    /// for bit, on data full of ties, signed zeros, infinities and NaNs with
    /// distinct payloads, on every kernel path.
    #[test]
    fn plane_max_is_the_sequential_fold() {
        let specials = [
            0.0f32,
            -0.0,
            1.5,
            -1.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xffc0_0002),
        ];
        let mut rng = Rng::new(7);
        for len in 0..120usize {
            for round in 0..20 {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = (rng.next() >> 33) as usize;
                        // Early rounds draw NaNs too, later ones none.
                        let pool = if round < 10 {
                            &specials[..]
                        } else {
                            &specials[..6]
                        };
                        if r.is_multiple_of(3) {
                            (r % 1000) as f32 / 250.0 - 2.0
                        } else {
                            pool[r % pool.len()]
                        }
                    })
                    .collect();
                let want = x.iter().fold(
                    f32::NEG_INFINITY,
                    |m, &b| if max_step(m, b) { b } else { m },
                );
                for isa in Isa::supported() {
                    let got = with_isa!(isa, fold_max_plane(&x));
                    assert_eq!(got.to_bits(), want.to_bits(), "{x:?} on {}", isa.name());
                }
            }
        }
    }

    #[test]
    fn maxpool_uint8_and_avg_rejects_ints() {
        let x = Tensor::from_vec(vec![1, 1, 3], vec![3u8, 250, 7]).unwrap();
        let op = build("MaxPool", vec![("kernel_shape", ints(&[2]))], 12, 2).unwrap();
        let out = run(&*op, &x);
        assert_eq!(out[0].as_slice::<u8>().unwrap(), &[250, 250]);
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[1, 1]);
        let avg = build("AveragePool", vec![("kernel_shape", ints(&[2]))], 12, 1).unwrap();
        let f = Fact::new(DType::U8, vec![1, 1, 3]);
        assert!(avg.infer(Args::new(&[Some(&f)])).is_err());
    }

    #[test]
    fn global_pools() {
        let x = seq(&[2, 3, 4, 5]);
        let avg = build("GlobalAveragePool", vec![], 17, 1).unwrap();
        let max = build("GlobalMaxPool", vec![], 17, 1).unwrap();
        let ya = run(&*avg, &x).remove(0);
        let ym = run(&*max, &x).remove(0);
        assert_eq!(ya.shape(), &[2, 3, 1, 1]);
        let xv = x.f32s().unwrap();
        for p in 0..6 {
            let plane = &xv[p * 20..(p + 1) * 20];
            let mut s = [0.0f32; 8];
            for (i, v) in plane.iter().enumerate() {
                s[i % 8] += v;
            }
            let sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
            assert_eq!(ya.f32s().unwrap()[p].to_bits(), (sum / 20.0).to_bits());
            assert_eq!(
                ym.f32s().unwrap()[p],
                plane.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
            );
        }
    }
}

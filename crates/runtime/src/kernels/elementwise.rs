//! Element-wise kernels: maps over one, two or three broadcast inputs, and the
//! per-dtype arithmetic they apply.
//!
//! Each output element is computed alone from its inputs, so any split of the
//! output between threads gives the same bits (docs/determinism.md, "Threads
//! and SIMD paths"). Rust never reassociates or contracts plain IEEE
//! operations, so loops the compiler autovectorises give the same bits as
//! scalar ones.

use std::mem::MaybeUninit;

use super::{Ctx, Isa};
use crate::broadcast::broadcast_strides;
use crate::canon;
use crate::tensor::Elem;

/// Evaluates the expression `$body` compiled for AVX-512 or AVX2+FMA when
/// `$isa` is that path (and the CPU has it), portably otherwise. The
/// operations are the same on every path: what changes is that
/// `f32::mul_add` and `round_ties_even` in the inlined element functions
/// ([`canon`]) become single instructions instead of calls to the C
/// library's (correctly rounded, so equal) software versions, and that loops
/// vectorise over 8 or 16 lanes.
///
/// A macro rather than a function taking a closure: the body is expanded once
/// per path, so each SIMD copy is a closure with a single caller, marked
/// `#[inline(always)]` so that it is compiled inside [`run_avx2_fma`] or
/// [`run_avx512`] with its features however large the body is (left to its
/// heuristics, the compiler keeps a large closure out of line, where it runs
/// as baseline SSE2 code).
macro_rules! with_isa {
    ($isa:expr, $body:expr) => {{
        match $crate::kernels::elementwise::simd($isa) {
            // SAFETY: `simd` just checked that the CPU supports AVX-512F,
            // AVX2 and FMA.
            $crate::kernels::Isa::Avx512 => unsafe {
                $crate::kernels::elementwise::run_avx512(
                    #[inline(always)]
                    || $body,
                )
            },
            // SAFETY: `simd` just checked that the CPU supports AVX2 and FMA.
            $crate::kernels::Isa::Avx2Fma => unsafe {
                $crate::kernels::elementwise::run_avx2_fma(
                    #[inline(always)]
                    || $body,
                )
            },
            $crate::kernels::Isa::Portable => $body,
        }
    }};
}
pub(crate) use with_isa;

/// Output elements per parallel task.
pub(crate) const GRAIN: usize = 1 << 14;

/// `y[i] = f(x[i])`, split across threads.
pub(crate) fn map<T, U>(ctx: &Ctx<'_>, x: &[T], f: impl Fn(T) -> U + Sync + Send) -> Vec<U>
where
    T: Copy + Sync,
    U: Copy + Send,
{
    let isa = ctx.isa;
    let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
        let s = i * GRAIN..i * GRAIN + o.len();
        with_isa!(isa, {
            for (o, &v) in o.iter_mut().zip(&x[s]) {
                o.write(f(v));
            }
        });
    };
    // SAFETY: chunk `i` is zipped with the equally long `x[s]` (`x` has an
    // element per output), so every element of it is written.
    unsafe { build(ctx, x.len(), fill) }
}

/// `n` outputs built in parallel chunks of [`GRAIN`] elements (chunk `i`
/// starts at element `i * GRAIN`) without first zero-filling them: with
/// threads, that fill was a serial pass over the whole output before the
/// parallel one (up to a tenth of magika's time on 2 threads).
///
/// # Safety
///
/// `fill(i, chunk)` must write every element of `chunk`.
unsafe fn build<U: Send>(
    ctx: &Ctx<'_>,
    n: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync + Send,
) -> Vec<U> {
    let mut out = Box::<[U]>::new_uninit_slice(n);
    ctx.for_chunks_mut(&mut out, GRAIN, fill);
    // SAFETY: `for_chunks_mut` hands `fill` disjoint chunks of `GRAIN`
    // elements (the last shorter) that cover `out`, and the caller
    // guarantees that `fill` writes every element of each. (If `fill`
    // panics, `out` is dropped as uninitialised memory: no element is read.)
    unsafe { out.assume_init() }.into_vec()
}

/// The lane-8 sum of `f(x[i])` (docs/determinism.md, "Sums over an axis:
/// the lane-8 order"): element `i` goes to lane `i % 8` in order, starting
/// from `zero`, then `((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7))` with `add`.
///
/// Whole groups of eight are added as fixed-size arrays, so the lanes stay
/// in registers and vectorise; the order per lane is the definition's.
#[inline(always)]
pub(crate) fn sum_l8_by<T: Copy, U: Copy>(
    x: &[T],
    zero: U,
    f: impl Fn(T) -> U,
    add: impl Fn(U, U) -> U,
) -> U {
    let mut s = [zero; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (acc, &v) in s.iter_mut().zip(c) {
            *acc = add(*acc, f(v));
        }
    }
    for (acc, &v) in s.iter_mut().zip(chunks.remainder()) {
        *acc = add(*acc, f(v));
    }
    add(
        add(add(s[0], s[4]), add(s[2], s[6])),
        add(add(s[1], s[5]), add(s[3], s[7])),
    )
}

/// The path `with_isa!` takes for `isa` on this CPU: `isa` itself when the
/// CPU supports it, else the portable one.
#[inline(always)]
pub(crate) fn simd(isa: Isa) -> Isa {
    if isa != Isa::Portable && isa.is_supported() {
        isa
    } else {
        Isa::Portable
    }
}

/// `body()` compiled with AVX2 and FMA enabled.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run_avx2_fma<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// `body()` compiled with AVX-512F, AVX2 and FMA enabled.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn run_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Elsewhere there is no such path ([`simd`] is always portable).
///
/// # Safety
/// None needed; `unsafe` only to match the x86-64 signature.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn run_avx2_fma<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Elsewhere there is no such path ([`simd`] is always portable).
///
/// # Safety
/// None needed; `unsafe` only to match the x86-64 signature.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn run_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Drops size-1 dimensions and merges adjacent dimensions that every input
/// walks contiguously, so the innermost runs are as long as possible.
pub(crate) fn coalesce<const N: usize>(
    shape: &[usize],
    strides: [Vec<usize>; N],
) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut ns: Vec<usize> = Vec::with_capacity(shape.len());
    let mut nst: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
    for (d, &dim) in shape.iter().enumerate() {
        if dim == 1 {
            continue;
        }
        if let Some(l) = ns.len().checked_sub(1)
            && (0..N).all(|j| nst[j][l] == strides[j][d] * dim)
        {
            ns[l] *= dim;
            for j in 0..N {
                nst[j][l] = strides[j][d];
            }
            continue;
        }
        ns.push(dim);
        for j in 0..N {
            nst[j].push(strides[j][d]);
        }
    }
    if ns.is_empty() {
        ns.push(1);
        for s in &mut nst {
            s.push(0);
        }
    }
    (ns, nst)
}

/// Walks output elements `start..start + len` (row-major over `shape`, whose
/// rank is at least 1) in innermost runs: calls
/// `f(k, offsets, run, inner_strides)` where `k` is the position relative to
/// `start` and `offsets` are the inputs' offsets of the run's first element.
fn walk_runs<const N: usize>(
    shape: &[usize],
    strides: &[Vec<usize>; N],
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, [usize; N], usize, [usize; N]),
) {
    let rank = shape.len();
    let last = rank - 1;
    let mut idx = vec![0usize; rank];
    let mut rem = start;
    for d in (0..rank).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut offs: [usize; N] =
        std::array::from_fn(|j| (0..rank).map(|d| idx[d] * strides[j][d]).sum());
    let inner: [usize; N] = std::array::from_fn(|j| strides[j][last]);
    let mut k = 0;
    while k < len {
        let run = (shape[last] - idx[last]).min(len - k);
        f(k, offs, run, inner);
        k += run;
        idx[last] += run;
        for j in 0..N {
            offs[j] += run * inner[j];
        }
        let mut d = last;
        while d > 0 && idx[d] == shape[d] {
            for j in 0..N {
                offs[j] = offs[j] - shape[d] * strides[j][d] + strides[j][d - 1];
            }
            idx[d] = 0;
            idx[d - 1] += 1;
            d -= 1;
        }
    }
}

/// `y = f(a, b)` with ONNX multidirectional broadcasting; `out_shape` must be
/// the broadcast of `a_shape` and `b_shape`. Same-shape and scalar operands
/// take contiguous loops; other shapes walk strided runs.
pub(crate) fn map2<A, B, U>(
    ctx: &Ctx<'_>,
    (a, a_shape): (&[A], &[usize]),
    (b, b_shape): (&[B], &[usize]),
    out_shape: &[usize],
    f: impl Fn(A, B) -> U + Sync + Send,
) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    U: Copy + Send,
{
    let n: usize = out_shape.iter().product();
    if n == 0 {
        return Vec::new();
    }
    // An operand with as many elements as the output has its layout (it can
    // differ only by leading 1s).
    let isa = ctx.isa;
    if a.len() == n && b.len() == n {
        let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
            let s = i * GRAIN..i * GRAIN + o.len();
            with_isa!(isa, {
                for ((o, &x), &y) in o.iter_mut().zip(&a[s.clone()]).zip(&b[s]) {
                    o.write(f(x, y));
                }
            });
        };
        // SAFETY: chunk `i` is zipped with `a[s]` and `b[s]`, exactly as
        // long as it, so every element of it is written.
        return unsafe { build(ctx, n, fill) };
    }
    if a.len() == n && b.len() == 1 {
        let y = b[0];
        let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
            let s = i * GRAIN..i * GRAIN + o.len();
            with_isa!(isa, {
                for (o, &x) in o.iter_mut().zip(&a[s]) {
                    o.write(f(x, y));
                }
            });
        };
        // SAFETY: chunk `i` is zipped with `a[s]`, exactly as long as it.
        return unsafe { build(ctx, n, fill) };
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
            let s = i * GRAIN..i * GRAIN + o.len();
            with_isa!(isa, {
                for (o, &y) in o.iter_mut().zip(&b[s]) {
                    o.write(f(x, y));
                }
            });
        };
        // SAFETY: chunk `i` is zipped with `b[s]`, exactly as long as it.
        return unsafe { build(ctx, n, fill) };
    }
    let (shape, st) = coalesce(
        out_shape,
        [
            broadcast_strides(a_shape, out_shape),
            broadcast_strides(b_shape, out_shape),
        ],
    );
    let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
        with_isa!(isa, {
            walk_runs(
                &shape,
                &st,
                i * GRAIN,
                o.len(),
                |k, [oa, ob], run, inner| {
                    let o = &mut o[k..k + run];
                    match inner {
                        [1, 1] => {
                            for ((o, &x), &y) in
                                o.iter_mut().zip(&a[oa..oa + run]).zip(&b[ob..ob + run])
                            {
                                o.write(f(x, y));
                            }
                        }
                        [1, 0] => {
                            let y = b[ob];
                            for (o, &x) in o.iter_mut().zip(&a[oa..oa + run]) {
                                o.write(f(x, y));
                            }
                        }
                        [0, 1] => {
                            let x = a[oa];
                            for (o, &y) in o.iter_mut().zip(&b[ob..ob + run]) {
                                o.write(f(x, y));
                            }
                        }
                        [ia, ib] => {
                            for (j, o) in o.iter_mut().enumerate() {
                                o.write(f(a[oa + j * ia], b[ob + j * ib]));
                            }
                        }
                    }
                },
            )
        });
    };
    // SAFETY: `walk_runs` calls back with runs that tile `0..o.len()` one
    // after another, and each run writes all of `o[k..k + run]` (the
    // contiguous cases zip it with operand slices of `run` elements).
    unsafe { build(ctx, n, fill) }
}

/// `y = f(a, b, c)` with ONNX multidirectional broadcasting (used by Where).
pub(crate) fn map3<A, B, C, U>(
    ctx: &Ctx<'_>,
    (a, a_shape): (&[A], &[usize]),
    (b, b_shape): (&[B], &[usize]),
    (c, c_shape): (&[C], &[usize]),
    out_shape: &[usize],
    f: impl Fn(A, B, C) -> U + Sync + Send,
) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    U: Copy + Send,
{
    let n: usize = out_shape.iter().product();
    if n == 0 {
        return Vec::new();
    }
    let (shape, st) = coalesce(
        out_shape,
        [
            broadcast_strides(a_shape, out_shape),
            broadcast_strides(b_shape, out_shape),
            broadcast_strides(c_shape, out_shape),
        ],
    );
    let fill = |i: usize, o: &mut [MaybeUninit<U>]| {
        walk_runs(
            &shape,
            &st,
            i * GRAIN,
            o.len(),
            |k, [oa, ob, oc], run, [ia, ib, ic]| {
                for (j, o) in o[k..k + run].iter_mut().enumerate() {
                    o.write(f(a[oa + j * ia], b[ob + j * ib], c[oc + j * ic]));
                }
            },
        );
    };
    // SAFETY: `walk_runs` calls back with runs that tile `0..o.len()` one
    // after another, and each run writes all of `o[k..k + run]`.
    unsafe { build(ctx, n, fill) }
}

/// Runs `$body` with the type alias `$t` set to the Rust type of a numeric
/// `$dtype`, or evaluates `$other` for bool.
macro_rules! by_num {
    ($dtype:expr, $t:ident => $body:expr, bool => $other:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            $crate::DType::I64 => {
                type $t = i64;
                $body
            }
            $crate::DType::I32 => {
                type $t = i32;
                $body
            }
            $crate::DType::I8 => {
                type $t = i8;
                $body
            }
            $crate::DType::U8 => {
                type $t = u8;
                $body
            }
            $crate::DType::Bool => $other,
        }
    };
}
pub(crate) use by_num;

/// Numeric element types (every dtype but bool) and their arithmetic:
/// docs/determinism.md, "Integers, comparisons and casts" and the Max/Min rule
/// of "Sums over an axis".
pub(crate) trait Num: Elem + Default {
    /// Whether the type is an integer type.
    const INT: bool;
    /// The lowest and highest values (`-inf`/`+inf` for floats).
    const LOWEST: Self;
    /// See [`Num::LOWEST`].
    const HIGHEST: Self;
    /// Addition (wrapping for integers).
    fn add(self, o: Self) -> Self;
    /// Subtraction (wrapping for integers).
    fn sub(self, o: Self) -> Self;
    /// Multiplication (wrapping for integers).
    fn mul(self, o: Self) -> Self;
    /// Division; integers truncate toward zero and wrap (`MIN / -1 = MIN`).
    /// The caller rejects integer division by zero beforehand.
    fn div(self, o: Self) -> Self;
    /// Maximum: NaN if either is NaN, else `o` only if strictly greater.
    fn max(self, o: Self) -> Self;
    /// Minimum, the mirror of [`Num::max`].
    fn min(self, o: Self) -> Self;
    /// Whether the value is zero.
    fn is_zero(self) -> bool;
    /// Absolute value (wrapping for signed integers; exact for floats).
    fn abs(self) -> Self;
    /// Negation (wrapping for integers; sign flip for floats).
    fn neg(self) -> Self;
    /// Conversion with Rust `as` semantics.
    fn as_f32(self) -> f32;
    /// Conversion with Rust `as` semantics.
    fn as_f64(self) -> f64;
    /// `self ^ e`: float32 uses [`canon::pow`] on `e` cast to float32,
    /// float64 uses `libm::pow`, integers compute `libm::pow` in float64 and
    /// cast back with Rust `as` (truncating, saturating; as onnxruntime does).
    fn pow<E: Num>(self, e: E) -> Self;
}

/// [`canon::max`] for float64 (docs/determinism.md, "Sums over an axis").
#[inline]
fn max_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// [`canon::min`] for float64.
#[inline]
fn min_f64(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

macro_rules! impl_num_int {
    ($($t:ident),*) => {$(
        impl Num for $t {
            const INT: bool = true;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline] fn div(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_div(o) }
            }
            #[inline] fn max(self, o: Self) -> Self { if o > self { o } else { self } }
            #[inline] fn min(self, o: Self) -> Self { if o < self { o } else { self } }
            #[inline] fn is_zero(self) -> bool { self == 0 }
            #[inline] fn abs(self) -> Self { impl_num_int!(@abs self, $t) }
            #[inline] fn neg(self) -> Self { (0 as $t).wrapping_sub(self) }
            #[inline] fn as_f32(self) -> f32 { self as f32 }
            #[inline] fn as_f64(self) -> f64 { self as f64 }
            #[inline] fn pow<E: Num>(self, e: E) -> Self {
                libm::pow(self as f64, e.as_f64()) as $t
            }
        }
    )*};
    (@abs $x:ident, u8) => { $x };
    (@abs $x:ident, $t:ident) => { $x.wrapping_abs() };
}
impl_num_int!(i64, i32, i8, u8);

macro_rules! impl_num_float {
    ($t:ty, $pow:expr, $max:expr, $min:expr) => {
        impl Num for $t {
            const INT: bool = false;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline]
            fn div(self, o: Self) -> Self {
                self / o
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                $max(self, o)
            }
            #[inline]
            fn min(self, o: Self) -> Self {
                $min(self, o)
            }
            #[inline]
            fn is_zero(self) -> bool {
                self == 0.0
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn neg(self) -> Self {
                -self
            }
            #[inline]
            fn as_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn pow<E: Num>(self, e: E) -> Self {
                $pow(self, e)
            }
        }
    };
}
impl_num_float!(
    f32,
    |x: f32, e: E| canon::pow(x, e.as_f32()),
    canon::max,
    canon::min
);
impl_num_float!(
    f64,
    |x: f64, e: E| libm::pow(x, e.as_f64()),
    max_f64,
    min_f64
);

/// Float element types and their canonical transcendental functions
/// (docs/determinism.md, "Transcendental functions"): [`canon`] for float32,
/// `libm` float64 functions for float64.
pub(crate) trait Float: Num {
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Logistic sigmoid (float64: canon's formula with `libm::exp`).
    fn sigmoid(self) -> Self;
    /// Error function.
    fn erf(self) -> Self;
    /// Correctly rounded square root (IEEE-754).
    fn sqrt(self) -> Self;
    /// Round toward -inf (exact).
    fn floor(self) -> Self;
    /// Round toward +inf (exact).
    fn ceil(self) -> Self;
    /// Conversion from an f32 attribute (exact).
    fn from_f32(v: f32) -> Self;
    /// Conversion from a count.
    fn from_usize(n: usize) -> Self;
}

impl Float for f32 {
    fn exp(self) -> Self {
        canon::exp(self)
    }
    fn ln(self) -> Self {
        canon::log(self)
    }
    fn tanh(self) -> Self {
        canon::tanh(self)
    }
    fn sigmoid(self) -> Self {
        canon::sigmoid(self)
    }
    fn erf(self) -> Self {
        canon::erf(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn floor(self) -> Self {
        f32::floor(self)
    }
    fn ceil(self) -> Self {
        f32::ceil(self)
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_usize(n: usize) -> Self {
        n as f32
    }
}

impl Float for f64 {
    fn exp(self) -> Self {
        libm::exp(self)
    }
    fn ln(self) -> Self {
        libm::log(self)
    }
    fn tanh(self) -> Self {
        libm::tanh(self)
    }
    fn sigmoid(self) -> Self {
        if self >= 0.0 {
            1.0 / (1.0 + libm::exp(-self))
        } else if self < 0.0 {
            let e = libm::exp(self);
            e / (1.0 + e)
        } else {
            self
        }
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn floor(self) -> Self {
        f64::floor(self)
    }
    fn ceil(self) -> Self {
        f64::ceil(self)
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_usize(n: usize) -> Self {
        n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::{broadcast_shapes, offsets};
    use crate::kernels::Isa;

    #[test]
    fn simd_compiled_maps_match_portable() {
        // The AVX2+FMA-compiled loops (hardware fma and rounding inside the
        // canonical functions) give the portable bits, at odd sizes too.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        for n in [0usize, 1, 7, 9, 33, GRAIN + 5] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 + 13) % 4001) as f32 / 97.0 - 20.0)
                .collect();
            let y: Vec<f32> = x.iter().map(|v| v * 0.37 + 1.5).collect();
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let portable = Ctx::single(Isa::Portable);
            let want_u = bits(map(&portable, &x, canon::tanh));
            let f2 = |a: f32, b: f32| canon::exp(a).mul_add(b, canon::sigmoid(a));
            let want_b = bits(map2(&portable, (&x, &[n]), (&y, &[n]), &[n], f2));
            let want_s = bits(map2(&portable, (&x, &[n]), (&[0.25f32], &[1]), &[n], f2));
            for ctx in crate::kernels::test_ctxs(std::slice::from_ref(&pool)) {
                assert_eq!(bits(map(&ctx, &x, canon::tanh)), want_u, "n={n}");
                assert_eq!(
                    bits(map2(&ctx, (&x, &[n]), (&y, &[n]), &[n], f2)),
                    want_b,
                    "n={n}"
                );
                assert_eq!(
                    bits(map2(&ctx, (&x, &[n]), (&[0.25f32], &[1]), &[n], f2)),
                    want_s,
                    "n={n}"
                );
            }
        }
    }

    fn reference(a_shape: &[usize], b_shape: &[usize]) -> (Vec<usize>, Vec<i64>) {
        let out = broadcast_shapes(&[a_shape, b_shape]).unwrap();
        let oa = offsets(a_shape, &out);
        let ob = offsets(b_shape, &out);
        let v = oa
            .iter()
            .zip(&ob)
            .map(|(&x, &y)| (x as i64) * 1000 + y as i64)
            .collect();
        (out, v)
    }

    #[test]
    fn map2_matches_offsets_on_many_shapes() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[4]),
            (&[2, 1, 4], &[3, 1]),
            (&[1, 3, 1, 1], &[2, 3, 5, 7]),
            (&[2, 3, 5, 7], &[3, 1, 1]),
            (&[5, 1], &[1, 6]),
            (&[], &[3]),
            (&[1], &[]),
            (&[4, 1, 3], &[1, 5, 1]),
            (&[2, 0, 3], &[3]),
            (&[1, 1, 7], &[7]),
        ];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &(sa, sb) in cases {
            let (out, want) = reference(sa, sb);
            let a: Vec<i64> = (0..sa.iter().product::<usize>() as i64).collect();
            let b: Vec<i64> = (0..sb.iter().product::<usize>() as i64).collect();
            for ctx in [
                Ctx::single(Isa::Portable),
                Ctx::with_pool(Isa::Portable, &pool),
            ] {
                let got = map2(&ctx, (&a, sa), (&b, sb), &out, |x, y| x * 1000 + y);
                assert_eq!(got, want, "{sa:?} {sb:?}");
                let got3 = map3(
                    &ctx,
                    (&a, sa),
                    (&b, sb),
                    (&[0u8][..], &[]),
                    &out,
                    |x, y, _| x * 1000 + y,
                );
                assert_eq!(got3, want, "{sa:?} {sb:?}");
            }
        }
    }

    #[test]
    fn walk_runs_splits_consistently() {
        // A large strided case, split into many chunks by the pool.
        let sa = [3usize, 1, 40_000];
        let sb = [1usize, 5, 1];
        let (out, want) = reference(&sa, &sb);
        let a: Vec<i64> = (0..120_000).collect();
        let b: Vec<i64> = (0..5).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let got = map2(
            &Ctx::with_pool(Isa::Portable, &pool),
            (&a, &sa),
            (&b, &sb),
            &out,
            |x, y| x * 1000 + y,
        );
        assert_eq!(got, want);
    }
}

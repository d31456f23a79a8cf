//! Operators: MatMul and Gemm.
//!
//! Both follow docs/determinism.md, "Dot products: MatMul, Gemm, Conv":
//! every output is one fma chain over `k` increasing from `+0.0`. float32 runs
//! on [`crate::kernels::gemm::sgemm`]; float64 uses the same sequential chain
//! with `f64::mul_add`; integers wrap.

use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use super::{Args, BuildCtx, Fact, Op, Region, Registry, default_cost};
use crate::broadcast::{broadcast_shapes, offsets};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::kernels::gemm::{ASrc, MatRef, Packed, SMALL_M, sgemm, sgemm_packed};
use crate::tensor::{DType, Data, Elem, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("MatMul", build_matmul);
    r.add("Gemm", build_gemm);
}

/// Below this many multiply-adds per matrix, batches run in parallel with
/// one thread per matrix instead of threading each product (as they do at
/// any size when the matrices share out evenly between the threads, as an
/// attention layer's heads do).
const SMALL_PRODUCT: usize = 1 << 20;

/// Element types with a scalar dot-product step (`acc = a * b + acc`, fused
/// for floats, wrapping for integers).
trait Dot: Elem {
    fn step(a: Self, b: Self, acc: Self) -> Self;
}

impl Dot for f32 {
    fn step(a: f32, b: f32, acc: f32) -> f32 {
        a.mul_add(b, acc)
    }
}

impl Dot for f64 {
    fn step(a: f64, b: f64, acc: f64) -> f64 {
        a.mul_add(b, acc)
    }
}

impl Dot for i32 {
    fn step(a: i32, b: i32, acc: i32) -> i32 {
        a.wrapping_mul(b).wrapping_add(acc)
    }
}

impl Dot for i64 {
    fn step(a: i64, b: i64, acc: i64) -> i64 {
        a.wrapping_mul(b).wrapping_add(acc)
    }
}

/// Plain sequential product `C = A * B` (strided `A` and `B`, row-major `C`).
#[allow(clippy::too_many_arguments)]
fn naive<T: Dot>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    (ars, acs): (usize, usize),
    b: &[T],
    (brs, bcs): (usize, usize),
    c: &mut [T],
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::default();
            for kk in 0..k {
                acc = T::step(a[i * ars + kk * acs], b[kk * brs + j * bcs], acc);
            }
            c[i * n + j] = acc;
        }
    }
}

fn build_matmul(_ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(MatMul {
        packed: OnceLock::new(),
    }))
}

/// ONNX MatMul (numpy `matmul` semantics).
#[derive(Debug)]
struct MatMul {
    /// A float32 2-D `B` packed for the product, when it is a model
    /// constant (made on the first run, kept for the op's life).
    packed: OnceLock<Packed>,
}

/// The shapes of a MatMul: batch broadcast plus the matrix sizes.
struct MatMulDims {
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    out: Vec<usize>,
}

fn matmul_dims(a: &[usize], b: &[usize]) -> OpResult<MatMulDims> {
    ensure!(
        !a.is_empty() && !b.is_empty(),
        "MatMul inputs must have rank >= 1, got {a:?} and {b:?}"
    );
    let (a_batch, m, ka) = match a {
        [k] => (vec![], None, *k),
        [rest @ .., m, k] => (rest.to_vec(), Some(*m), *k),
        [] => bail!("MatMul inputs must have rank >= 1, got {a:?} and {b:?}"),
    };
    let (b_batch, kb, n) = match b {
        [k] => (vec![], *k, None),
        [rest @ .., k, n] => (rest.to_vec(), *k, Some(*n)),
        [] => bail!("MatMul inputs must have rank >= 1, got {a:?} and {b:?}"),
    };
    ensure!(ka == kb, "MatMul inner dimensions differ: {a:?} x {b:?}");
    let batch = broadcast_shapes(&[&a_batch, &b_batch])
        .map_err(|e| OpError(format!("MatMul batch dimensions: {}", e.0)))?;
    let mut out = batch.clone();
    out.extend(m);
    out.extend(n);
    checked_len(&out).ok_or_else(|| OpError(format!("MatMul output {out:?} overflows")))?;
    Ok(MatMulDims {
        a_batch,
        b_batch,
        batch,
        m: m.unwrap_or(1),
        n: n.unwrap_or(1),
        k: ka,
        out,
    })
}

impl Op for MatMul {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        ensure!(
            a.dtype == b.dtype,
            "MatMul inputs differ in dtype: {} and {}",
            a.dtype,
            b.dtype
        );
        ensure!(
            matches!(a.dtype, DType::F32 | DType::F64 | DType::I32 | DType::I64),
            "MatMul does not support {}",
            a.dtype
        );
        let d = matmul_dims(&a.shape, &b.shape)?;
        Ok(vec![Fact::new(a.dtype, d.out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let mut flops = 0;
        if let (Ok(a), Ok(b)) = (inputs.get(0), inputs.get(1))
            && let Ok(d) = matmul_dims(&a.shape, &b.shape)
        {
            let batches = d
                .batch
                .iter()
                .fold(1u64, |x, &y| x.saturating_mul(y as u64));
            flops = [2, d.m as u64, d.n as u64, d.k as u64, batches]
                .into_iter()
                .fold(1u64, u64::saturating_mul);
        }
        Cost {
            flops,
            ..default_cost(inputs, outputs, 0)
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        ensure!(a.dtype() == b.dtype(), "MatMul inputs differ in dtype");
        let d = matmul_dims(a.shape(), b.shape())?;
        let data = match (a.data(), b.data()) {
            (Data::F32(x), Data::F32(y)) => {
                let packed = match self.packed.get() {
                    Some(p) => Some(p),
                    None if inputs.is_constant(1) && b.rank() == 2 && d.m > SMALL_M => {
                        let p = Packed::b(&MatRef::row_major(y, d.n), d.k, d.n)?;
                        Some(self.packed.get_or_init(|| p))
                    }
                    None => None,
                };
                Data::F32(matmul_f32(ctx, &d, x, y, packed)?)
            }
            (Data::F64(x), Data::F64(y)) => Data::F64(matmul_naive(&d, x, y)),
            (Data::I32(x), Data::I32(y)) => Data::I32(matmul_naive(&d, x, y)),
            (Data::I64(x), Data::I64(y)) => Data::I64(matmul_naive(&d, x, y)),
            _ => bail!("MatMul does not support {}", a.dtype()),
        };
        Ok(vec![Tensor::new(d.out, data)?])
    }

    fn region(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        output: usize,
        elements: Range<usize>,
    ) -> Option<OpResult<Region>> {
        (output == 0).then(|| matmul_rows(ctx, inputs, elements))
    }

    fn region_len(
        &self,
        inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        output: usize,
        elements: Range<usize>,
    ) -> Option<usize> {
        let (a, b) = (inputs.get(0).ok()?, inputs.get(1).ok()?);
        let d = matmul_dims(&a.shape, &b.shape).ok()?;
        let total = checked_len(&d.out).unwrap_or(0);
        (output == 0).then(|| super::rows_len(elements, d.n, total, d.n > 0))
    }
}

/// The output rows of a MatMul that hold `elements`, each row computed as
/// in a full run (one product per run of rows of one output matrix).
fn matmul_rows(
    ctx: &Ctx<'_>,
    inputs: Args<'_, Tensor>,
    elements: Range<usize>,
) -> OpResult<Region> {
    let (a, b) = (inputs.get(0)?, inputs.get(1)?);
    ensure!(a.dtype() == b.dtype(), "MatMul inputs differ in dtype");
    let d = matmul_dims(a.shape(), b.shape())?;
    let (n, k) = (d.n, d.k);
    let total_rows = checked_len(&d.out).unwrap_or(0).checked_div(n).unwrap_or(0);
    let r0 = (elements.start / n.max(1)).min(total_rows);
    let r1 = elements.end.div_ceil(n.max(1)).clamp(r0, total_rows);
    let single = Ctx::single(ctx.isa);
    if r1 == r0 + 1 && n > 0 {
        let cols = elements.start.saturating_sub(r0 * n)..(elements.end - r0 * n).min(n);
        return matmul_cols(&single, &d, a, b, r0, cols);
    }
    let data = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => Data::F32(rows_of(&d, r0..r1, x, y, |rows, ar, br, c| {
            sgemm(
                &single,
                rows,
                n,
                k,
                MatRef::row_major(ar, k),
                MatRef::row_major(br, n),
                c,
            )
        })?),
        (Data::F64(x), Data::F64(y)) => Data::F64(rows_of(&d, r0..r1, x, y, |rows, ar, br, c| {
            naive(rows, n, k, ar, (k, 1), br, (n, 1), c);
            Ok(())
        })?),
        (Data::I32(x), Data::I32(y)) => Data::I32(rows_of(&d, r0..r1, x, y, |rows, ar, br, c| {
            naive(rows, n, k, ar, (k, 1), br, (n, 1), c);
            Ok(())
        })?),
        (Data::I64(x), Data::I64(y)) => Data::I64(rows_of(&d, r0..r1, x, y, |rows, ar, br, c| {
            naive(rows, n, k, ar, (k, 1), br, (n, 1), c);
            Ok(())
        })?),
        _ => bail!("MatMul does not support {}", a.dtype()),
    };
    Ok(Region {
        first: r0 * n,
        elements: Tensor::new(vec![(r1 - r0) * n], data)?,
    })
}

/// Columns `cols` of output row `row` of a MatMul (rows of every output
/// matrix one after another): a chunk within one row computes only its
/// elements, each the same chain as in a full run.
fn matmul_cols(
    single: &Ctx<'_>,
    d: &MatMulDims,
    a: &Tensor,
    b: &Tensor,
    row: usize,
    cols: Range<usize>,
) -> OpResult<Region> {
    let (m, n, k) = (d.m, d.n, d.k);
    let (batch, i) = (row / m, row % m);
    let &(ia, ib) = batch_pairs(d)
        .get(batch)
        .ok_or_else(|| OpError(format!("MatMul row {row} is out of range")))?;
    let (ao, bo, w) = ((ia * m + i) * k, ib * k * n + cols.start, cols.len());
    fn one<T: Dot>(k: usize, w: usize, n: usize, a: &[T], b: &[T]) -> OpResult<Vec<T>> {
        if k == 0 {
            return Ok(vec![T::default(); w]);
        }
        let short = || OpError("MatMul inputs are too short".into());
        let (a, b) = (
            a.get(..k).ok_or_else(short)?,
            b.get(..(k - 1) * n + w).ok_or_else(short)?,
        );
        let mut c = vec![T::default(); w];
        naive(1, w, k, a, (k, 1), b, (n, 1), &mut c);
        Ok(c)
    }
    let data = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => {
            let mut c = vec![0.0f32; w];
            let bm = MatRef {
                data: y.get(bo..).unwrap_or_default(),
                rs: n,
                cs: 1,
            };
            bm.check(k, w, "MatMul input B")?;
            let am = MatRef::row_major(x.get(ao..ao + k).unwrap_or_default(), k);
            am.check(1, k, "MatMul input A")?;
            sgemm(single, 1, w, k, am, bm, &mut c)?;
            Data::F32(c)
        }
        (Data::F64(x), Data::F64(y)) => Data::F64(one(
            k,
            w,
            n,
            x.get(ao..).unwrap_or_default(),
            y.get(bo..).unwrap_or_default(),
        )?),
        (Data::I32(x), Data::I32(y)) => Data::I32(one(
            k,
            w,
            n,
            x.get(ao..).unwrap_or_default(),
            y.get(bo..).unwrap_or_default(),
        )?),
        (Data::I64(x), Data::I64(y)) => Data::I64(one(
            k,
            w,
            n,
            x.get(ao..).unwrap_or_default(),
            y.get(bo..).unwrap_or_default(),
        )?),
        _ => bail!("MatMul does not support {}", a.dtype()),
    };
    Ok(Region {
        first: row * n + cols.start,
        elements: Tensor::new(vec![w], data)?,
    })
}

/// Output rows `rows` of a batched product (rows of every output matrix
/// one after another), `product(rows, a rows, b matrix, out)` computing
/// consecutive rows of one matrix.
fn rows_of<T: Default + Clone>(
    d: &MatMulDims,
    rows: Range<usize>,
    a: &[T],
    b: &[T],
    product: impl Fn(usize, &[T], &[T], &mut [T]) -> OpResult<()>,
) -> OpResult<Vec<T>> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![T::default(); rows.len() * n];
    if n == 0 || m == 0 {
        return Ok(out);
    }
    let pairs = batch_pairs(d);
    let mut r = rows.start;
    while r < rows.end {
        let (batch, i) = (r / m, r % m);
        let count = (m - i).min(rows.end - r);
        let &(ia, ib) = pairs
            .get(batch)
            .ok_or_else(|| OpError(format!("MatMul row {r} is out of range")))?;
        let ar = a
            .get((ia * m + i) * k..(ia * m + i + count) * k)
            .ok_or_else(|| OpError("MatMul input A is too short".into()))?;
        let br = b
            .get(ib * k * n..(ib + 1) * k * n)
            .ok_or_else(|| OpError("MatMul input B is too short".into()))?;
        product(count, ar, br, &mut out[(r - rows.start) * n..][..count * n])?;
        r += count;
    }
    Ok(out)
}

/// Per output matrix: the matrix index of `A` and of `B` (broadcast batches).
fn batch_pairs(d: &MatMulDims) -> Vec<(usize, usize)> {
    let oa = offsets(&d.a_batch, &d.batch);
    let ob = offsets(&d.b_batch, &d.batch);
    oa.into_iter().zip(ob).collect()
}

fn matmul_naive<T: Dot>(d: &MatMulDims, a: &[T], b: &[T]) -> Vec<T> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![T::default(); checked_len(&d.out).unwrap_or(0)];
    if m * n == 0 {
        return out;
    }
    for (c, (ia, ib)) in out.chunks_exact_mut(m * n).zip(batch_pairs(d)) {
        naive(
            m,
            n,
            k,
            &a[ia * m * k..],
            (k, 1),
            &b[ib * k * n..],
            (n, 1),
            c,
        );
    }
    out
}

/// float32 MatMul; `packed` is `B` packed ahead, when `B` is 2-D.
fn matmul_f32(
    ctx: &Ctx<'_>,
    d: &MatMulDims,
    a: &[f32],
    b: &[f32],
    packed: Option<&Packed>,
) -> OpResult<Vec<f32>> {
    let (m, n, k) = (d.m, d.n, d.k);
    let mut out = vec![0.0f32; checked_len(&d.out).unwrap_or(0)];
    if m * n == 0 {
        return Ok(out);
    }
    let batches: usize = d.batch.iter().product();
    if d.b_batch.iter().product::<usize>() == 1 && d.a_batch.iter().product::<usize>() == batches {
        // One `B` for every matrix of `A`, which lie one after another: a
        // single product of `batches * m` rows (the same chain per element).
        let rows = batches * m;
        let am = MatRef::row_major(&a[..rows * k], k);
        match packed {
            Some(p) if rows > SMALL_M => {
                sgemm_packed(ctx, rows, n, k, ASrc::Mat(am), p, &mut out, None)?
            }
            _ => sgemm(
                ctx,
                rows,
                n,
                k,
                am,
                MatRef::row_major(&b[..k * n], n),
                &mut out,
            )?,
        }
        return Ok(out);
    }
    let pairs = batch_pairs(d);
    let one = |ctx: &Ctx<'_>, idx: usize, c: &mut [f32]| -> OpResult<()> {
        let (ia, ib) = pairs[idx];
        let am = MatRef::row_major(&a[ia * m * k..(ia + 1) * m * k], k);
        let bm = MatRef::row_major(&b[ib * k * n..(ib + 1) * k * n], n);
        sgemm(ctx, m, n, k, am, bm, c)
    };
    let threads = ctx.threads();
    let small = m.saturating_mul(n).saturating_mul(k) < SMALL_PRODUCT;
    if pairs.len() > 1 && threads > 1 && (small || pairs.len().is_multiple_of(threads)) {
        let err = Mutex::new(None);
        let single = Ctx::single(ctx.isa);
        ctx.for_chunks_mut(&mut out, m * n, |i, c| {
            if let Err(e) = one(&single, i, c) {
                *err.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
        });
        if let Some(e) = err
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Err(e);
        }
    } else {
        for (i, c) in out.chunks_exact_mut(m * n).enumerate() {
            one(ctx, i, c)?;
        }
    }
    Ok(out)
}

/// ONNX Gemm (opset 7 and later): `Y = alpha * A' * B' + beta * C`, evaluated
/// as docs/determinism.md, "Dot products" specifies for Gemm.
#[derive(Debug)]
struct Gemm {
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    /// A float32 `B` packed for the product, when it is a model constant
    /// (made on the first run, kept for the op's life).
    packed: OnceLock<Packed>,
}

fn build_gemm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    ensure!(
        ctx.opset >= 7,
        "Gemm before opset 7 (with `broadcast`) is not supported"
    );
    let flag = |name: &str| -> OpResult<bool> {
        match ctx.attrs.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => bail!("attribute `{name}` must be 0 or 1, got {v}"),
        }
    };
    Ok(Box::new(Gemm {
        trans_a: flag("transA")?,
        trans_b: flag("transB")?,
        alpha: ctx.attrs.float("alpha", 1.0)?,
        beta: ctx.attrs.float("beta", 1.0)?,
        packed: OnceLock::new(),
    }))
}

impl Gemm {
    /// `(m, n, k)` from the shapes of A, B and (optionally) C.
    fn dims(
        &self,
        a: &[usize],
        b: &[usize],
        c: Option<&[usize]>,
    ) -> OpResult<(usize, usize, usize)> {
        ensure!(
            a.len() == 2 && b.len() == 2,
            "Gemm inputs A and B must be 2-D, got {a:?} and {b:?}"
        );
        let (m, ka) = if self.trans_a {
            (a[1], a[0])
        } else {
            (a[0], a[1])
        };
        let (kb, n) = if self.trans_b {
            (b[1], b[0])
        } else {
            (b[0], b[1])
        };
        ensure!(
            ka == kb,
            "Gemm inner dimensions differ: A {a:?}, B {b:?} (transA={}, transB={})",
            self.trans_a,
            self.trans_b
        );
        if let Some(c) = c {
            let ok = c.len() <= 2
                && c.iter()
                    .rev()
                    .zip([n, m])
                    .all(|(&d, want)| d == 1 || d == want);
            ensure!(ok, "Gemm input C {c:?} does not broadcast to [{m}, {n}]");
        }
        Ok((m, n, ka))
    }
}

impl Op for Gemm {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        let c = inputs.opt(2);
        ensure!(
            a.dtype == b.dtype,
            "Gemm inputs differ in dtype: {} and {}",
            a.dtype,
            b.dtype
        );
        ensure!(
            matches!(a.dtype, DType::F32 | DType::F64),
            "Gemm does not support {}",
            a.dtype
        );
        if let Some(c) = c {
            ensure!(
                c.dtype == a.dtype,
                "Gemm input C is {}, expected {}",
                c.dtype,
                a.dtype
            );
        }
        let (m, n, _) = self.dims(&a.shape, &b.shape, c.map(|c| c.shape.as_slice()))?;
        checked_len(&[m, n]).ok_or_else(|| OpError("Gemm output overflows".into()))?;
        Ok(vec![Fact::new(a.dtype, vec![m, n])])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let mut flops = 0;
        if let (Ok(a), Ok(b)) = (inputs.get(0), inputs.get(1))
            && let Ok((m, n, k)) = self.dims(&a.shape, &b.shape, None)
        {
            flops = [2, m as u64, n as u64, k as u64]
                .into_iter()
                .fold(1u64, u64::saturating_mul);
        }
        Cost {
            flops,
            ..default_cost(inputs, outputs, 0)
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        let c = inputs.opt(2);
        let (m, n, k) = self.dims(a.shape(), b.shape(), c.map(Tensor::shape))?;
        let out_shape = vec![m, n];
        let data = match (a.data(), b.data()) {
            (Data::F32(av), Data::F32(bv)) => {
                let am = if self.trans_a {
                    MatRef::transposed(av, m)
                } else {
                    MatRef::row_major(av, k)
                };
                let bm = if self.trans_b {
                    MatRef::transposed(bv, k)
                } else {
                    MatRef::row_major(bv, n)
                };
                let packed = match self.packed.get() {
                    Some(p) => Some(p),
                    None if inputs.is_constant(1) && (m > SMALL_M || self.trans_b) => {
                        let p = Packed::b(&bm, k, n)?;
                        Some(self.packed.get_or_init(|| p))
                    }
                    None => None,
                };
                let mut y = vec![0.0f32; m * n];
                match packed {
                    Some(p) => sgemm_packed(ctx, m, n, k, ASrc::Mat(am), p, &mut y, None)?,
                    None => sgemm(ctx, m, n, k, am, bm, &mut y)?,
                }
                let cv = match c {
                    Some(t) => Some((t.as_slice::<f32>()?, t.shape())),
                    None => None,
                };
                finish(&mut y, m, n, self.alpha, self.beta, cv);
                Data::F32(y)
            }
            (Data::F64(av), Data::F64(bv)) => {
                let sa = if self.trans_a { (1, m) } else { (k, 1) };
                let sb = if self.trans_b { (1, k) } else { (n, 1) };
                let mut y = vec![0.0f64; m * n];
                naive(m, n, k, av, sa, bv, sb, &mut y);
                let cv = match c {
                    Some(t) => Some((t.as_slice::<f64>()?, t.shape())),
                    None => None,
                };
                finish(
                    &mut y,
                    m,
                    n,
                    f64::from(self.alpha),
                    f64::from(self.beta),
                    cv,
                );
                Data::F64(y)
            }
            _ => bail!("Gemm does not support {} x {}", a.dtype(), b.dtype()),
        };
        Ok(vec![Tensor::new(out_shape, data)?])
    }

    fn region(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        output: usize,
        elements: Range<usize>,
    ) -> Option<OpResult<Region>> {
        (output == 0).then(|| self.rows(ctx, inputs, elements))
    }

    fn region_len(
        &self,
        inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        output: usize,
        elements: Range<usize>,
    ) -> Option<usize> {
        let (a, b) = (inputs.get(0).ok()?, inputs.get(1).ok()?);
        let c = inputs.opt(2).map(|f| f.shape.as_slice());
        let (m, n, _) = self.dims(&a.shape, &b.shape, c).ok()?;
        (output == 0).then(|| super::rows_len(elements, n, m.saturating_mul(n), true))
    }
}

impl Gemm {
    /// The output rows that hold `elements`: a Gemm of those rows of `A'`
    /// (and of `C` where it has rows), each element the same chain and
    /// epilogue as in a full run.
    fn rows(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        elements: Range<usize>,
    ) -> OpResult<Region> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        let c = inputs.opt(2);
        let (m, n, k) = self.dims(a.shape(), b.shape(), c.map(Tensor::shape))?;
        let r0 = (elements.start / n.max(1)).min(m);
        let r1 = elements.end.div_ceil(n.max(1)).clamp(r0, m);
        // Within one row, only the chunk's columns.
        let (c0, c1) = if r1 == r0 + 1 {
            (elements.start - r0 * n, (elements.end - r0 * n).min(n))
        } else {
            (0, n)
        };
        let (rows, cols) = (r1 - r0, c1.saturating_sub(c0));
        let a_rows = if self.trans_a {
            a.data()
                .gather((r0..r1).flat_map(|r| (0..k).map(move |kk| kk * m + r)))
        } else {
            a.data().gather(r0 * k..r1 * k)
        };
        let a_rows = Tensor::new(vec![rows, k], a_rows)?;
        // Columns c0..c1 of op(B), row-major.
        let b_cols = if (c0, c1) == (0, n) {
            None
        } else if self.trans_b {
            // Rows c0..c1 of B: contiguous, still transposed.
            Some(Tensor::new(vec![cols, k], b.data().gather(c0 * k..c1 * k))?)
        } else {
            let data = b
                .data()
                .gather((0..k).flat_map(|kk| (c0..c1).map(move |j| kk * n + j)));
            Some(Tensor::new(vec![k, cols], data)?)
        };
        // C's rows r0..r1 where it has rows, columns c0..c1 where it has
        // columns; broadcast as before.
        let c_part = match c {
            Some(t) => Some(gemm_c_part(t, m, n, r0..r1, c0..c1)?),
            None => None,
        };
        let sub = Gemm {
            trans_a: false,
            trans_b: self.trans_b,
            alpha: self.alpha,
            beta: self.beta,
            packed: OnceLock::new(),
        };
        let items = [
            Some(&a_rows),
            Some(b_cols.as_ref().unwrap_or(b)),
            c_part.as_ref(),
        ];
        let mut out = sub.run(&Ctx::single(ctx.isa), Args::new(&items))?;
        let y = out
            .pop()
            .ok_or_else(|| OpError("Gemm gave no output".into()))?;
        Ok(Region {
            first: r0 * n + c0,
            elements: y.reshaped(vec![rows * cols])?,
        })
    }
}

/// The part of Gemm's `C` (of shape `[]`, `[1]`, `[N]`, `[1, N]`, `[M, 1]`
/// or `[M, N]`) that output rows `rows` and columns `cols` read, in a
/// shape that broadcasts to them as `C` does to the whole output.
fn gemm_c_part(
    t: &Tensor,
    m: usize,
    n: usize,
    rows: Range<usize>,
    cols: Range<usize>,
) -> OpResult<Tensor> {
    let sh = t.shape();
    let (cr, cc) = match sh {
        [r, c] => (*r, *c),
        [c] => (1, *c),
        _ => return Ok(t.clone()),
    };
    let rows = if cr == m && m != 1 { rows } else { 0..cr };
    let cols = if cc == n && n != 1 { cols } else { 0..cc };
    let data = t.data().gather(
        rows.clone()
            .flat_map(|r| cols.clone().map(move |j| r * cc + j)),
    );
    let shape = if sh.len() == 2 {
        vec![rows.len(), cols.len()]
    } else {
        vec![cols.len()]
    };
    Tensor::new(shape, data)
}

/// The Gemm epilogue: `y = alpha * y` if `alpha != 1`, then `y = y + c'` with
/// `c' = C` if `beta == 1` and `beta * C` otherwise (docs/determinism.md,
/// "Dot products").
fn finish<T>(y: &mut [T], m: usize, n: usize, alpha: T, beta: T, c: Option<(&[T], &[usize])>)
where
    T: Copy + PartialEq + std::ops::Mul<Output = T> + std::ops::Add<Output = T> + From<u8>,
{
    let one = T::from(1u8);
    if alpha != one {
        for v in y.iter_mut() {
            *v = alpha * *v;
        }
    }
    if let Some((cv, shape)) = c {
        let rs = if shape.len() == 2 && shape[0] != 1 {
            shape[1]
        } else {
            0
        };
        let cs = if shape.last().is_some_and(|&d| d != 1) {
            1
        } else {
            0
        };
        for i in 0..m {
            for j in 0..n {
                let x = cv[i * rs + j * cs];
                let x = if beta == one { x } else { beta * x };
                y[i * n + j] = y[i * n + j] + x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attr;
    use crate::attrs::Attrs;
    use crate::kernels::Isa;
    use crate::kernels::gemm::test_util::Rng;

    fn build(op: &str, attrs: Vec<(&str, Attr)>) -> Box<dyn Op> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let ctx = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset: 17,
            n_inputs: 3,
            n_outputs: 1,
        };
        crate::ops::build(&ctx).unwrap()
    }

    fn run(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> OpResult<Tensor> {
        let facts: Vec<Fact> = inputs
            .iter()
            .flatten()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let mut fi = facts.iter();
        let fargs: Vec<Option<&Fact>> = inputs.iter().map(|t| t.and_then(|_| fi.next())).collect();
        let want = op.infer(Args::new(&fargs))?;
        let out = op.run(ctx, Args::new(inputs))?.remove(0);
        assert_eq!(out.shape(), want[0].shape.as_slice());
        Ok(out)
    }

    fn t(shape: &[usize], rng: &mut Rng) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(shape.to_vec(), rng.vec(n)).unwrap()
    }

    #[test]
    fn matmul_shapes_follow_numpy() {
        let op = build("MatMul", vec![]);
        let mut rng = Rng::new(3);
        let ctx = Ctx::single(Isa::detect());
        for (a, b, want) in [
            (vec![3], vec![3], vec![]),
            (vec![3], vec![3, 4], vec![4]),
            (vec![2, 3], vec![3], vec![2]),
            (vec![5, 2, 3], vec![3, 4], vec![5, 2, 4]),
            (vec![2, 1, 2, 3], vec![3, 3, 4], vec![2, 3, 2, 4]),
            (vec![0, 3], vec![3, 4], vec![0, 4]),
            (vec![2, 0], vec![0, 4], vec![2, 4]),
        ] {
            let (ta, tb) = (t(&a, &mut rng), t(&b, &mut rng));
            let y = run(&*op, &ctx, &[Some(&ta), Some(&tb)]).unwrap();
            assert_eq!(y.shape(), want.as_slice());
        }
        let (ta, tb) = (t(&[2, 3], &mut rng), t(&[4, 2], &mut rng));
        assert!(run(&*op, &ctx, &[Some(&ta), Some(&tb)]).is_err());
        let s = Tensor::scalar(1.0f32);
        assert!(run(&*op, &ctx, &[Some(&s), Some(&tb)]).is_err());
    }

    #[test]
    fn matmul_batches_match_reference_and_threads() {
        let op = build("MatMul", vec![]);
        let mut rng = Rng::new(5);
        let (ta, tb) = (t(&[3, 1, 7, 9], &mut rng), t(&[4, 9, 20], &mut rng));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let want = run(&*op, &Ctx::single(Isa::Portable), &[Some(&ta), Some(&tb)]).unwrap();
        for ctx in crate::kernels::test_ctxs(std::slice::from_ref(&pool)) {
            let got = run(&*op, &ctx, &[Some(&ta), Some(&tb)]).unwrap();
            assert_eq!(want.hash(), got.hash(), "{ctx:?}");
        }
        // Batch (2, 3) of the output uses A[2] and B[3].
        let (a, b, y) = (ta.f32s().unwrap(), tb.f32s().unwrap(), want.f32s().unwrap());
        let blk = 2 * 4 + 3;
        for i in 0..7 {
            for j in 0..20 {
                let mut acc = 0.0f32;
                for k in 0..9 {
                    acc = a[2 * 63 + i * 9 + k].mul_add(b[3 * 180 + k * 20 + j], acc);
                }
                assert_eq!(acc.to_bits(), y[blk * 140 + i * 20 + j].to_bits());
            }
        }
    }

    #[test]
    fn constant_b_is_packed_once_with_the_same_bits() {
        let mut rng = Rng::new(17);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let ctxs = crate::kernels::test_ctxs(std::slice::from_ref(&pool));
        // Folded batches, a single row, several k blocks and column panels.
        for (a, b) in [
            (vec![3, 7, 9], vec![9, 20]),
            (vec![1, 300], vec![300, 70]),
            (vec![2, 40, 300], vec![300, 70]),
            (vec![130, 513], vec![513, 33]),
        ] {
            let (ta, tb) = (t(&a, &mut rng), t(&b, &mut rng));
            let inputs = [Some(&ta), Some(&tb)];
            let want = run(&*build("MatMul", vec![]), &ctxs[0], &inputs).unwrap();
            for ctx in &ctxs {
                let op = build("MatMul", vec![]);
                for _ in 0..2 {
                    let y = op.run(ctx, Args::with_constants(&inputs, 0b10)).unwrap();
                    assert_eq!(y[0].hash(), want.hash(), "MatMul {a:?} x {b:?} {ctx:?}");
                }
            }
        }
        for (m, n, k, tb) in [(1, 1000, 300, 1), (37, 50, 600, 1), (37, 50, 600, 0)] {
            let gemm = || build("Gemm", vec![("transB", Attr::Int(tb))]);
            let ta = t(&[m, k], &mut rng);
            let tb_ = t(&(if tb == 1 { [n, k] } else { [k, n] }), &mut rng);
            let c = t(&[n], &mut rng);
            let inputs = [Some(&ta), Some(&tb_), Some(&c)];
            let want = run(&*gemm(), &ctxs[0], &inputs).unwrap();
            for ctx in &ctxs {
                let op = gemm();
                for _ in 0..2 {
                    let y = op.run(ctx, Args::with_constants(&inputs, 0b110)).unwrap();
                    assert_eq!(y[0].hash(), want.hash(), "Gemm {m}x{n}x{k} {ctx:?}");
                }
            }
        }
    }

    #[test]
    fn matmul_integers_wrap() {
        let op = build("MatMul", vec![]);
        let a = Tensor::from_vec(vec![1, 2], vec![i32::MAX, 2]).unwrap();
        let b = Tensor::from_vec(vec![2, 1], vec![2i32, 3]).unwrap();
        let y = run(&*op, &Ctx::single(Isa::Portable), &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(
            y.as_slice::<i32>().unwrap(),
            &[i32::MAX.wrapping_mul(2).wrapping_add(6)]
        );
        let a = Tensor::from_vec(vec![2], vec![1.5f64, 2.0]).unwrap();
        let y = run(&*op, &Ctx::single(Isa::Portable), &[Some(&a), Some(&a)]).unwrap();
        assert_eq!(y.as_slice::<f64>().unwrap(), &[6.25]);
    }

    #[test]
    fn gemm_epilogue_and_transposes() {
        let mut rng = Rng::new(11);
        let (m, n, k) = (5, 7, 9);
        for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            for c_shape in [
                None,
                Some(vec![m, n]),
                Some(vec![n]),
                Some(vec![m, 1]),
                Some(vec![]),
            ] {
                for (alpha, beta) in [(1.0f32, 1.0f32), (0.5, 2.0), (-1.25, 0.0)] {
                    let op = build(
                        "Gemm",
                        vec![
                            ("transA", Attr::Int(ta)),
                            ("transB", Attr::Int(tb)),
                            ("alpha", Attr::Float(alpha)),
                            ("beta", Attr::Float(beta)),
                        ],
                    );
                    let a = t(&(if ta == 1 { [k, m] } else { [m, k] }), &mut rng);
                    let b = t(&(if tb == 1 { [n, k] } else { [k, n] }), &mut rng);
                    let c = c_shape.as_ref().map(|s| t(s, &mut rng));
                    let y = run(
                        &*op,
                        &Ctx::single(Isa::detect()),
                        &[Some(&a), Some(&b), c.as_ref()],
                    )
                    .unwrap();
                    let (av, bv, yv) = (a.f32s().unwrap(), b.f32s().unwrap(), y.f32s().unwrap());
                    for i in 0..m {
                        for j in 0..n {
                            let mut acc = 0.0f32;
                            for kk in 0..k {
                                let x = if ta == 1 {
                                    av[kk * m + i]
                                } else {
                                    av[i * k + kk]
                                };
                                let w = if tb == 1 {
                                    bv[j * k + kk]
                                } else {
                                    bv[kk * n + j]
                                };
                                acc = x.mul_add(w, acc);
                            }
                            if alpha != 1.0 {
                                acc *= alpha;
                            }
                            if let Some(c) = &c {
                                let cv = c.f32s().unwrap();
                                let x = match c.shape() {
                                    [_, 1] => cv[i],
                                    [_] => cv[j],
                                    [] => cv[0],
                                    _ => cv[i * n + j],
                                };
                                acc += if beta == 1.0 { x } else { beta * x };
                            }
                            assert_eq!(acc.to_bits(), yv[i * n + j].to_bits());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_rejects_bad_shapes() {
        let op = build("Gemm", vec![]);
        let mut rng = Rng::new(1);
        let (a, b) = (t(&[2, 3], &mut rng), t(&[3, 4], &mut rng));
        let c = t(&[3, 4], &mut rng);
        let ctx = Ctx::single(Isa::Portable);
        assert!(run(&*op, &ctx, &[Some(&a), Some(&b), Some(&c)]).is_err());
        assert!(run(&*op, &ctx, &[Some(&b), Some(&b), None]).is_err());
        let attrs = Attrs::new(vec![("transA".into(), Attr::Int(2))]);
        let bctx = BuildCtx {
            op_type: "Gemm",
            attrs: &attrs,
            opset: 13,
            n_inputs: 2,
            n_outputs: 1,
        };
        assert!(crate::ops::build(&bctx).is_err());
    }

    #[test]
    fn matmul_regions_are_the_full_runs_elements() {
        // A fresh op per case: a constant B is packed once per op.
        let op = || build("MatMul", vec![]);
        let mut rng = Rng::new(11);
        for (a, b) in [
            (vec![3], vec![3, 4]),
            (vec![2, 3], vec![3]),
            (vec![40, 70], vec![70, 33]),
            (vec![5, 7, 9], vec![9, 300]),
            (vec![2, 1, 6, 5], vec![3, 5, 17]),
            (vec![0, 3], vec![3, 4]),
        ] {
            let (ta, tb) = (t(&a, &mut rng), t(&b, &mut rng));
            crate::ops::testing::check_regions(&*op(), &[Some(&ta), Some(&tb)], &[1, 7, 256]);
        }
        let i = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            Tensor::from_vec(shape.to_vec(), (0..n as i64).map(|x| x % 7 - 3).collect()).unwrap()
        };
        crate::ops::testing::check_regions(&*op(), &[Some(&i(&[4, 6])), Some(&i(&[6, 5]))], &[3]);
        // K = 0: every element is the empty sum, integers and floats.
        crate::ops::testing::check_regions(
            &*op(),
            &[Some(&i(&[1, 0])), Some(&i(&[0, 512]))],
            &[256],
        );
        let (ta, tb) = (t(&[2, 0], &mut rng), t(&[0, 300], &mut rng));
        crate::ops::testing::check_regions(&*op(), &[Some(&ta), Some(&tb)], &[1, 256]);
    }

    #[test]
    fn gemm_regions_are_the_full_runs_elements() {
        let mut rng = Rng::new(12);
        for (ta, tb, alpha, beta, c) in [
            (0, 0, 1.0, 1.0, Some(vec![37, 29])),
            (1, 0, 0.5, 1.0, Some(vec![37, 1])),
            (0, 1, 1.0, 2.0, Some(vec![29])),
            (1, 1, 1.5, 0.25, Some(vec![])),
            (0, 0, 1.0, 1.0, None),
        ] {
            let op = build(
                "Gemm",
                vec![
                    ("transA", Attr::Int(ta)),
                    ("transB", Attr::Int(tb)),
                    ("alpha", Attr::Float(alpha)),
                    ("beta", Attr::Float(beta)),
                ],
            );
            let a = if ta == 1 {
                t(&[50, 37], &mut rng)
            } else {
                t(&[37, 50], &mut rng)
            };
            let b = if tb == 1 {
                t(&[29, 50], &mut rng)
            } else {
                t(&[50, 29], &mut rng)
            };
            let c = c.map(|s| t(&s, &mut rng));
            crate::ops::testing::check_regions(
                &*op,
                &[Some(&a), Some(&b), c.as_ref()],
                &[1, 30, 256],
            );
        }
    }
}

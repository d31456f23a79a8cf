//! float32 matrix product `C = A * B` in the canonical order of
//! docs/determinism.md, "Dot products: MatMul, Gemm, Conv".
//!
//! Every output element is one chain `acc = +0.0; acc = fma(a[i,k], b[k,j], acc)`
//! for `k` increasing. The driver is blocked for the caches as in BLIS: a
//! block of [`NC`] columns of `B` and [`KC`] values of `k` is packed into
//! panels of [`NR`] columns, a block of [`MC`] rows of `A` into panels of
//! [`MR`] rows, and a register-blocked micro-kernel updates an `MR x NR` tile
//! of accumulators, one `k` at a time. The SIMD lanes run across output
//! columns, never across `k`. Between `k` blocks the accumulators are stored
//! to `C` and loaded back, which keeps each chain intact. The AVX-512 path
//! updates two adjacent panels per tile ([`kernel_wide`]), each element with
//! the same chain. Threads split output rows or output columns, never `k`.
//! So the portable, AVX2 and AVX-512 paths, with any number of threads, give
//! identical bits.
//!
//! `B` comes from a [`PackB`] source, so a convolution can pack its im2col
//! matrix block by block straight from the input, without building it.

use std::cell::Cell;
use std::ops::Range;

use crate::error::{OpError, OpResult};
use crate::kernels::elementwise::{simd, with_isa};
use crate::kernels::{Ctx, Isa};

/// Rows of a micro-kernel tile.
pub const MR: usize = 6;
/// Columns of a micro-kernel tile (two AVX2 registers).
pub const NR: usize = 16;
/// Depth of one `k` block.
const KC: usize = 256;
/// Rows of one `A` block (a multiple of `MR`): `MC x KC` stays in L2.
const MC: usize = 120;
/// Columns of one `B` block (a multiple of `NR`).
const NC: usize = 512;
/// Products with at most this many rows (and row-major `B`) skip packing.
pub const SMALL_M: usize = 2;
/// Columns per block of the small-`m` path (kept in L1 across all `k`).
const SMALL_M_COLS: usize = 1024;
/// Below this many multiply-adds a product runs on one thread.
const PAR_MIN_WORK: usize = 1 << 20;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose view of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Checks that every element of a `rows x cols` view is inside `data`.
    pub fn check(&self, rows: usize, cols: usize, what: &str) -> OpResult<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let last = (rows - 1).checked_mul(self.rs).and_then(|r| {
            (cols - 1)
                .checked_mul(self.cs)
                .and_then(|c| r.checked_add(c))
        });
        match last {
            Some(l) if l < self.data.len() => Ok(()),
            _ => Err(OpError(format!(
                "gemm: {what} view {rows}x{cols} (strides {}, {}) exceeds its {} elements",
                self.rs,
                self.cs,
                self.data.len()
            ))),
        }
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// A source of the right-hand matrix `B` (`k x n`), packed panel by panel.
pub trait PackB: Sync {
    /// Writes `B[k0 + kk, j0 + j]` to `dst[kk * NR + j]` for `kk < kc` and
    /// `j < cols` (`cols <= NR`), and `+0.0` for `cols <= j < NR`.
    /// `dst.len() == kc * NR`.
    fn pack_panel(&self, k0: usize, kc: usize, j0: usize, cols: usize, dst: &mut [f32]);

    /// The whole matrix already packed, when it is (then the product reads
    /// its panels in place instead of packing them).
    fn prepacked(&self) -> Option<&Packed> {
        None
    }
}

/// A matrix packed once, ahead of the products that read it (a model's
/// constant weights): the panels the product would pack on the fly, in the
/// same layout, for every `k` block. For the left side (`A`, `m x k`) a
/// panel holds [`MR`] rows, for the right side (`B`, `k x n`) [`NR`]
/// columns; panel `p` of the `k` block starting at `k0` (of depth `kc`)
/// is `data[k0 * panels * W + p * kc * W..][..kc * W]`.
#[derive(Debug)]
pub struct Packed {
    data: Vec<f32>,
    /// Rows of `A` or columns of `B`.
    outer: usize,
    k: usize,
    width: usize,
}

impl Packed {
    /// Packs `A` (`m x k`) into panels of [`MR`] rows.
    pub fn a(a: MatRef<'_>, m: usize, k: usize) -> OpResult<Packed> {
        a.check(m, k, "A")?;
        let mut p = Packed::zeroed(m, k, MR)?;
        let panels = m.div_ceil(MR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let block = &mut p.data[k0 * panels * MR..][..panels * kc * MR];
            pack_a(a, 0, m, k0, kc, block);
        }
        Ok(p)
    }

    /// Packs `B` (`k x n`) into panels of [`NR`] columns.
    pub fn b<B: PackB + ?Sized>(b: &B, k: usize, n: usize) -> OpResult<Packed> {
        let mut p = Packed::zeroed(n, k, NR)?;
        let panels = n.div_ceil(NR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let block = &mut p.data[k0 * panels * NR..][..panels * kc * NR];
            for (q, dst) in block.chunks_exact_mut(kc * NR).enumerate() {
                b.pack_panel(k0, kc, q * NR, NR.min(n - q * NR), dst);
            }
        }
        Ok(p)
    }

    fn zeroed(outer: usize, k: usize, width: usize) -> OpResult<Packed> {
        let len = outer
            .div_ceil(width)
            .checked_mul(width)
            .and_then(|x| x.checked_mul(k))
            .ok_or_else(|| OpError("gemm: packed matrix size overflows".into()))?;
        Ok(Packed {
            data: vec![0.0; len],
            outer,
            k,
            width,
        })
    }

    /// Panels `p0..p0 + np` of the `k` block at `k0` (depth `kc`).
    fn block(&self, k0: usize, kc: usize, p0: usize, np: usize) -> &[f32] {
        let panels = self.outer.div_ceil(self.width);
        &self.data[k0 * panels * self.width + p0 * kc * self.width..][..np * kc * self.width]
    }

    /// Checks that this packs an `outer x k` matrix with panels of `width`.
    fn check(&self, outer: usize, k: usize, width: usize, what: &str) -> OpResult<()> {
        if self.outer < outer || self.k != k || self.width != width {
            return Err(OpError(format!(
                "gemm: packed {what} is {}x{} (panels of {}), the product needs {outer}x{k}",
                self.outer, self.k, self.width
            )));
        }
        Ok(())
    }
}

impl PackB for Packed {
    fn pack_panel(&self, k0: usize, kc: usize, j0: usize, cols: usize, dst: &mut [f32]) {
        let src = self.block(k0, kc, j0 / NR, 1);
        for (d, s) in dst.chunks_exact_mut(NR).zip(src.chunks_exact(NR)) {
            d[..cols].copy_from_slice(&s[..cols]);
            d[cols..].fill(0.0);
        }
    }

    fn prepacked(&self) -> Option<&Packed> {
        Some(self)
    }
}

/// The left-hand matrix of a product: a view packed on the fly, or packed
/// ahead ([`Packed::a`]).
#[derive(Clone, Copy, Debug)]
pub enum ASrc<'a> {
    /// Packed block by block during the product.
    Mat(MatRef<'a>),
    /// Packed ahead.
    Packed(&'a Packed),
}

impl PackB for MatRef<'_> {
    fn pack_panel(&self, k0: usize, kc: usize, j0: usize, cols: usize, dst: &mut [f32]) {
        if self.cs == 1 {
            for (kk, row) in dst.chunks_exact_mut(NR).take(kc).enumerate() {
                let src = &self.data[(k0 + kk) * self.rs + j0..][..cols];
                copy_row(row, src);
            }
        } else {
            // Column by column: a transposed B is contiguous along k.
            if cols < NR {
                dst.fill(0.0);
            }
            for j in 0..cols {
                for (kk, row) in dst.chunks_exact_mut(NR).take(kc).enumerate() {
                    row[j] = self.at(k0 + kk, j0 + j);
                }
            }
        }
    }
}

/// `dst[..src.len()] = src` and `+0.0` after it, for one packed row of
/// `B` (`dst.len() == NR`); a whole row is a fixed-size copy (two vector
/// moves instead of a call to `memmove`).
#[inline(always)]
pub(crate) fn copy_row(dst: &mut [f32], src: &[f32]) {
    match (
        <&mut [f32; NR]>::try_from(&mut *dst),
        <&[f32; NR]>::try_from(src),
    ) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => {
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            dst[n..].fill(0.0);
        }
    }
}

/// `C = A * B` where `A` is `m x k`, `B` is `k x n`, and `C` is row-major
/// `m x n` (overwritten). Each `C[i, j]` is the canonical fma chain over `k`
/// (docs/determinism.md, "Dot products"); with `k == 0` it is `+0.0`.
pub fn sgemm(
    ctx: &Ctx<'_>,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
) -> OpResult<()> {
    b.check(k, n, "B")?;
    if m <= SMALL_M && b.cs == 1 && k > 0 {
        check_dims(m, n, k, ASrc::Mat(a), c, None)?;
        small_m(ctx, m, n, k, a, b, c);
        return Ok(());
    }
    sgemm_packed(ctx, m, n, k, ASrc::Mat(a), &b, c, None)
}

fn check_dims(
    m: usize,
    n: usize,
    k: usize,
    a: ASrc<'_>,
    c: &[f32],
    row_bias: Option<&[f32]>,
) -> OpResult<()> {
    let mn = m
        .checked_mul(n)
        .ok_or_else(|| OpError("gemm: m * n overflows".into()))?;
    if c.len() != mn {
        return Err(OpError(format!(
            "gemm: output has {} elements, expected {m}x{n}",
            c.len()
        )));
    }
    match a {
        ASrc::Mat(a) => a.check(m, k, "A")?,
        ASrc::Packed(p) => p.check(m, k, MR, "A")?,
    }
    if let Some(bias) = row_bias
        && bias.len() < m
    {
        return Err(OpError(format!(
            "gemm: {} row biases for {m} rows",
            bias.len()
        )));
    }
    Ok(())
}

/// `C = A * B`, then `C[i, j] = C[i, j] + row_bias[i]` when a bias is given
/// (one rounding, after the whole chain: the Conv bias of the spec), with
/// `B` packed from `b` (which must hold a `k x n` matrix). With `k == 0`,
/// `C[i, j]` is `+0.0` (plus the bias).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed<B: PackB + ?Sized>(
    ctx: &Ctx<'_>,
    m: usize,
    n: usize,
    k: usize,
    a: ASrc<'_>,
    b: &B,
    c: &mut [f32],
    row_bias: Option<&[f32]>,
) -> OpResult<()> {
    check_dims(m, n, k, a, c, row_bias)?;
    if let Some(p) = b.prepacked() {
        p.check(n, k, NR, "B")?;
    }
    if c.is_empty() {
        return Ok(());
    }
    if k == 0 {
        for (i, row) in c.chunks_exact_mut(n).enumerate() {
            let add = row_bias.map_or(0.0, |bias| bias[i]);
            row.fill(0.0 + add);
        }
        return Ok(());
    }
    let job = Job {
        m,
        n,
        k,
        a,
        b,
        c: CPtr {
            ptr: c.as_mut_ptr(),
            len: c.len(),
        },
        bias: row_bias,
        isa: ctx.isa,
    };
    let threads = ctx.threads();
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads <= 1 || work < PAR_MIN_WORK || (m <= MR && n <= NR) {
        job.run(0..m.div_ceil(MR), 0..n.div_ceil(NR));
    } else {
        job.run_parallel(ctx);
    }
    Ok(())
}

/// The output matrix, shared by the tasks of one product.
#[derive(Clone, Copy)]
struct CPtr {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `CPtr` is only built by `sgemm_packed` from the `&mut [f32]` it
// holds for the whole product, and each task writes a disjoint rectangle of
// tiles (its own row panels or its own column panels), so no element is ever
// accessed by two threads.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The `len` elements of `C` at `off` (bounds are checked: out of
    /// range panics).
    ///
    /// # Safety
    ///
    /// The elements must lie in a tile owned by the calling task, and no
    /// other reference to them may be live while the returned slice is:
    /// callers drop each segment before making the next one.
    #[allow(clippy::mut_from_ref)]
    unsafe fn segment(&self, off: usize, len: usize) -> &mut [f32] {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.len),
            "gemm tile out of bounds"
        );
        // SAFETY: in bounds (checked above) of the buffer `ptr` was taken
        // from, which outlives the product; the caller guarantees this is
        // the only live reference to these elements (see `# Safety`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.wrapping_add(off), len) }
    }
}

/// One product and everything its tasks share.
struct Job<'a, B: PackB + ?Sized> {
    m: usize,
    n: usize,
    k: usize,
    a: ASrc<'a>,
    b: &'a B,
    c: CPtr,
    bias: Option<&'a [f32]>,
    isa: Isa,
}

thread_local! {
    /// Packing buffers for `A` blocks and `B` blocks, reused across products
    /// on each thread (taken out while in use, so a nested product just
    /// allocates its own).
    static PACK_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static PACK_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

impl<B: PackB + ?Sized> Job<'_, B> {
    /// Computes the tiles of row panels `rows` x column panels `cols` on
    /// this thread.
    fn run(&self, rows: Range<usize>, cols: Range<usize>) {
        let (i0, i1) = (rows.start * MR, (rows.end * MR).min(self.m));
        let (j0, j1) = (cols.start * NR, (cols.end * NR).min(self.n));
        if i0 >= i1 || j0 >= j1 {
            return;
        }
        let mut bbuf = PACK_B.with(Cell::take);
        let mut abuf = PACK_A.with(Cell::take);
        for jc in (j0..j1).step_by(NC) {
            let nc = NC.min(j1 - jc);
            let np = nc.div_ceil(NR);
            for pc in (0..self.k).step_by(KC) {
                let kc = KC.min(self.k - pc);
                let bblock = self.b_block(pc, kc, jc, np, j1, &mut bbuf);
                for ic in (i0..i1).step_by(MC) {
                    let mc = MC.min(i1 - ic);
                    let ablock = self.a_block(pc, kc, ic, mc, &mut abuf);
                    self.block(pc, kc, ic, mc, ablock, bblock, jc, np);
                }
            }
        }
        PACK_A.with(|c| c.set(abuf));
        PACK_B.with(|c| c.set(bbuf));
    }

    /// The whole product on the context's threads: one task per thread,
    /// each computing a contiguous range of output columns (all rows) or of
    /// output rows (all columns) with [`Job::run`], so each packs, into its
    /// own caches, only the part of the split operand it reads. The split
    /// is along the operand that is not packed ahead, or else along the
    /// larger dimension, so what every task packs again (the whole other
    /// operand) is the smaller one.
    fn run_parallel(&self, ctx: &Ctx<'_>) {
        let m_panels = self.m.div_ceil(MR);
        let n_panels = self.n.div_ceil(NR);
        let a_ahead = matches!(self.a, ASrc::Packed(_));
        let b_ahead = self.b.prepacked().is_some();
        let by_cols = if a_ahead != b_ahead {
            a_ahead
        } else {
            self.m <= self.n
        };
        let units = if by_cols { n_panels } else { m_panels };
        let tasks = ctx.threads().min(units);
        if tasks < 2 {
            self.run(0..m_panels, 0..n_panels);
            return;
        }
        ctx.for_ranges(tasks, 1, |ts| {
            for t in ts {
                let part = t * units / tasks..(t + 1) * units / tasks;
                if by_cols {
                    self.run(0..m_panels, part);
                } else {
                    self.run(part, 0..n_panels);
                }
            }
        });
    }

    /// The `A` block of rows `ic..ic + mc` and depth `pc..pc + kc`: in
    /// place when prepacked, else packed into `buf`.
    fn a_block<'s>(
        &'s self,
        pc: usize,
        kc: usize,
        ic: usize,
        mc: usize,
        buf: &'s mut Vec<f32>,
    ) -> &'s [f32] {
        let nq = mc.div_ceil(MR);
        match self.a {
            ASrc::Packed(p) => p.block(pc, kc, ic / MR, nq),
            ASrc::Mat(a) => {
                let block = grown(buf, nq * kc * MR);
                pack_a(a, ic, mc, pc, kc, block);
                block
            }
        }
    }

    /// The `B` block of `np` panels at columns `jc..` and depth `pc..pc + kc`
    /// (columns end at `j1`): in place when prepacked, else packed into `buf`.
    fn b_block<'s>(
        &'s self,
        pc: usize,
        kc: usize,
        jc: usize,
        np: usize,
        j1: usize,
        buf: &'s mut Vec<f32>,
    ) -> &'s [f32] {
        if let Some(p) = self.b.prepacked() {
            return p.block(pc, kc, jc / NR, np);
        }
        let block = grown(buf, np * kc * NR);
        for (p, dst) in block.chunks_exact_mut(kc * NR).enumerate() {
            let jp = jc + p * NR;
            self.b.pack_panel(pc, kc, jp, NR.min(j1 - jp), dst);
        }
        block
    }

    /// Updates the tiles of rows `ic..ic + mc` (packed in `ablock`) and the
    /// `np` column panels of the `B` block `bblock` (whose panel 0 is at
    /// column `jc`) with the `k` block `pc..pc + kc`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        pc: usize,
        kc: usize,
        ic: usize,
        mc: usize,
        ablock: &[f32],
        bblock: &[f32],
        jc: usize,
        np: usize,
    ) {
        let first = pc == 0;
        let last = pc + kc == self.k;
        debug_assert_eq!(ablock.len(), mc.div_ceil(MR) * kc * MR);
        // The AVX-512 path takes two panels per tile where it can.
        let wide = simd(self.isa) == Isa::Avx512;
        let mut p = 0;
        while p < np {
            let bp = &bblock[p * kc * NR..][..kc * NR];
            let jp = jc + p * NR;
            if wide && p + 1 < np {
                let bp1 = &bblock[(p + 1) * kc * NR..][..kc * NR];
                let nr = (2 * NR).min(self.n - jp);
                for (q, ap) in ablock.chunks_exact(kc * MR).enumerate() {
                    let ir = ic + q * MR;
                    let mr = MR.min(self.m - ir);
                    self.tile(ir, jp, mr, nr, first, last, |acc| {
                        kernel_wide(self.isa, ap, bp, bp1, acc);
                    });
                }
                p += 2;
                continue;
            }
            let nr = NR.min(self.n - jp);
            for (q, ap) in ablock.chunks_exact(kc * MR).enumerate() {
                let ir = ic + q * MR;
                let mr = MR.min(self.m - ir);
                self.tile(ir, jp, mr, nr, first, last, |acc| {
                    if nr <= NR / 2 {
                        kernel_half(self.isa, ap, bp, acc);
                    } else {
                        kernel(self.isa, ap, bp, acc);
                    }
                });
            }
            p += 1;
        }
    }

    /// Updates the `mr x nr` tile of `C` at (`i`, `j`) with one `k` block:
    /// loads the accumulators (unless this is the first block), lets
    /// `compute` run the micro-kernel on them, and stores them (adding the
    /// row bias after the last block).
    #[allow(clippy::too_many_arguments)]
    fn tile<const W: usize>(
        &self,
        i: usize,
        j: usize,
        mr: usize,
        nr: usize,
        first: bool,
        last: bool,
        compute: impl FnOnce(&mut [[f32; W]; MR]),
    ) {
        let ldc = self.n;
        let mut acc = [[0.0f32; W]; MR];
        // Whole rows are fixed-size copies (vector moves, not `memcpy` calls).
        if !first {
            for (r, row) in acc.iter_mut().enumerate().take(mr) {
                // SAFETY: row `i + r`, columns `j..j + nr` are in this
                // task's tile, and `src` is dropped before the next segment.
                let src = unsafe { self.c.segment((i + r) * ldc + j, nr) };
                match <&[f32; W]>::try_from(&*src) {
                    Ok(src) => *row = *src,
                    Err(_) => row[..nr].copy_from_slice(src),
                }
            }
        }
        compute(&mut acc);
        for (r, row) in acc.iter().enumerate().take(mr) {
            // SAFETY: as above; `out` is dropped at the end of the iteration.
            let out = unsafe { self.c.segment((i + r) * ldc + j, nr) };
            match self.bias.filter(|_| last) {
                Some(bias) => {
                    let add = bias[i + r];
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o = v + add;
                    }
                }
                None => match <&mut [f32; W]>::try_from(&mut *out) {
                    Ok(out) => *out = *row,
                    Err(_) => out.copy_from_slice(&row[..nr]),
                },
            }
        }
    }
}

/// Packs rows `i0..i0 + mc` x columns `k0..k0 + kc` of `A` into `dst` as
/// panels of `MR` rows: panel `q` holds, for each `k`, the `MR` values
/// `A[i0 + q*MR + r, k]` (zero past the last row).
fn pack_a(a: MatRef<'_>, i0: usize, mc: usize, k0: usize, kc: usize, dst: &mut [f32]) {
    for (q, panel) in dst
        .chunks_exact_mut(MR * kc)
        .take(mc.div_ceil(MR))
        .enumerate()
    {
        let rows = MR.min(mc - q * MR);
        for r in 0..MR {
            if r >= rows {
                for kk in 0..kc {
                    panel[kk * MR + r] = 0.0;
                }
                continue;
            }
            let i = i0 + q * MR + r;
            if a.cs == 1 {
                let src = &a.data[i * a.rs + k0..][..kc];
                for (kk, &v) in src.iter().enumerate() {
                    panel[kk * MR + r] = v;
                }
            } else {
                for kk in 0..kc {
                    panel[kk * MR + r] = a.at(i, k0 + kk);
                }
            }
        }
    }
}

/// The first `len` elements of a packing buffer, grown (never shrunk) to
/// hold them: packing overwrites every element it hands on, so a buffer
/// reused across blocks and products is zero-filled only when it grows
/// (shrinking it for a short last `k` block made the next block fill the
/// whole buffer again).
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// `C = A * B` for few rows and row-major `B`, without packing: each row of
/// `C` is updated by `c[j] = fma(a[i, k], b[k, j], c[j])` for `k` increasing,
/// the same chain per element as the tiled path.
fn small_m(
    ctx: &Ctx<'_>,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
) {
    let isa = ctx.isa;
    let work = n.saturating_mul(k);
    let chunk = if ctx.threads() <= 1 || work < PAR_MIN_WORK {
        n
    } else {
        n.div_ceil(ctx.threads() * 2)
            .next_multiple_of(NR)
            .max(SMALL_M_COLS / 4)
    };
    for (i, row) in c.chunks_exact_mut(n).enumerate().take(m) {
        let ai: Vec<f32> = (0..k).map(|kk| a.at(i, kk)).collect();
        ctx.for_chunks_mut(row, chunk, |t, out| {
            for (s, blk) in out.chunks_mut(SMALL_M_COLS).enumerate() {
                axpy_rows(isa, &ai, b, t * chunk + s * SMALL_M_COLS, blk);
            }
        });
    }
}

/// `out[j] = sum_k ai[k] * B[k, j0 + j]` as a chain of fmas over `k`.
fn axpy_rows(isa: Isa, ai: &[f32], b: MatRef<'_>, j0: usize, out: &mut [f32]) {
    with_isa!(isa, axpy_body(ai, b, j0, out));
}

/// Body of [`axpy_rows`], compiled for each path by `with_isa!`.
#[inline(always)]
fn axpy_body(ai: &[f32], b: MatRef<'_>, j0: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (kk, &x) in ai.iter().enumerate() {
        let brow = &b.data[kk * b.rs + j0..][..out.len()];
        for (o, &bv) in out.iter_mut().zip(brow) {
            *o = x.mul_add(bv, *o);
        }
    }
}

/// Dispatches the micro-kernel: `acc[r][j] = fma(ap[kk*MR + r], bp[kk*NR + j], acc[r][j])`
/// for `kk` increasing over the whole packed block.
fn kernel(isa: Isa, ap: &[f32], bp: &[f32], acc: &mut [[f32; NR]; MR]) {
    with_isa!(isa, kernel_body(ap, bp, acc));
}

/// [`kernel`] on the first `NR / 2` columns of the tile only (the other
/// accumulators are left as they are), for the last panel of a product whose
/// width leaves at most `NR / 2` columns there: each computed element gets
/// the same chain as in the full kernel.
fn kernel_half(isa: Isa, ap: &[f32], bp: &[f32], acc: &mut [[f32; NR]; MR]) {
    with_isa!(isa, kernel_half_body(ap, bp, acc));
}

/// [`kernel`] on two adjacent column panels at once, `bp0` for columns
/// `0..NR` of the tile and `bp1` for `NR..2 * NR`: the AVX-512 path's tile,
/// two 16-lane registers per row, so twelve independent chains hide the
/// latency of the fmas. Each element gets the same chain as in [`kernel`].
fn kernel_wide(isa: Isa, ap: &[f32], bp0: &[f32], bp1: &[f32], acc: &mut [[f32; 2 * NR]; MR]) {
    with_isa!(isa, kernel_wide_body(ap, bp0, bp1, acc));
}

/// The body of [`kernel_wide`].
#[inline(always)]
fn kernel_wide_body(ap: &[f32], bp0: &[f32], bp1: &[f32], acc: &mut [[f32; 2 * NR]; MR]) {
    let mut c = *acc;
    for ((av, b0), b1) in ap
        .chunks_exact(MR)
        .zip(bp0.chunks_exact(NR))
        .zip(bp1.chunks_exact(NR))
    {
        let (Ok(av), Ok(b0), Ok(b1)) = (
            <&[f32; MR]>::try_from(av),
            <&[f32; NR]>::try_from(b0),
            <&[f32; NR]>::try_from(b1),
        ) else {
            continue;
        };
        for (row, &ar) in c.iter_mut().zip(av) {
            let (lo, hi) = row.split_at_mut(NR);
            for (x, &bj) in lo.iter_mut().zip(b0) {
                *x = ar.mul_add(bj, *x);
            }
            for (x, &bj) in hi.iter_mut().zip(b1) {
                *x = ar.mul_add(bj, *x);
            }
        }
    }
    *acc = c;
}

/// The body of [`kernel_half`]: one register of `NR / 2` lanes per row.
#[inline(always)]
fn kernel_half_body(ap: &[f32], bp: &[f32], acc: &mut [[f32; NR]; MR]) {
    const H: usize = NR / 2;
    let mut c = [[0.0f32; H]; MR];
    for (cr, ar) in c.iter_mut().zip(acc.iter()) {
        cr.copy_from_slice(&ar[..H]);
    }
    for (av, bv) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)) {
        let (Ok(av), Ok(bv)) = (<&[f32; MR]>::try_from(av), <&[f32; H]>::try_from(&bv[..H])) else {
            continue;
        };
        for (row, &ar) in c.iter_mut().zip(av) {
            for (x, &bj) in row.iter_mut().zip(bv) {
                *x = ar.mul_add(bj, *x);
            }
        }
    }
    for (ar, cr) in acc.iter_mut().zip(c.iter()) {
        ar[..H].copy_from_slice(cr);
    }
}

/// The micro-kernel body: an `MR x NR` tile of accumulators, each updated by
/// one `mul_add` per `k`, `k` increasing. Compiled for each path by
/// `with_isa!`: with AVX2+FMA the compiler maps each row of `NR` lanes onto
/// two `vfmadd` registers, with AVX-512 onto one; the operations per element
/// are the same on every path.
#[inline(always)]
fn kernel_body(ap: &[f32], bp: &[f32], acc: &mut [[f32; NR]; MR]) {
    let mut c = *acc;
    for (av, bv) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)) {
        let (Ok(av), Ok(bv)) = (<&[f32; MR]>::try_from(av), <&[f32; NR]>::try_from(bv)) else {
            continue;
        };
        for (row, &ar) in c.iter_mut().zip(av) {
            for (x, &bj) in row.iter_mut().zip(bv) {
                *x = ar.mul_add(bj, *x);
            }
        }
    }
    *acc = c;
}

/// The reference: one sequential fma chain per output, as in the spec.
#[cfg(test)]
pub(crate) fn sgemm_reference(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for kk in 0..k {
                acc = a.at(i, kk).mul_add(b.at(kk, j), acc);
            }
            c[i * n + j] = acc;
        }
    }
    c
}

/// Test helpers shared with the op tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// A small deterministic generator (xorshift) of "awkward" floats.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn f32(&mut self) -> f32 {
            let x = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
            (x - 0.5) * 4.0
        }
        pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.f32()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_util::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn run(ctx: &Ctx<'_>, m: usize, n: usize, k: usize, a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut c = vec![f32::NAN; m * n];
        sgemm(ctx, m, n, k, a, b, &mut c).unwrap();
        c
    }

    fn check_shape(m: usize, n: usize, k: usize, seed: u64, pools: &[rayon::ThreadPool]) {
        let mut rng = Rng::new(seed);
        let av = rng.vec(m * k);
        let bv = rng.vec(k * n);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = if ta {
                MatRef::transposed(&av, m)
            } else {
                MatRef::row_major(&av, k)
            };
            let b = if tb {
                MatRef::transposed(&bv, k)
            } else {
                MatRef::row_major(&bv, n)
            };
            let want = bits(&sgemm_reference(m, n, k, a, b));
            for ctx in &crate::kernels::test_ctxs(pools) {
                let got = bits(&run(ctx, m, n, k, a, b));
                assert_eq!(got, want, "m={m} n={n} k={k} ta={ta} tb={tb} ctx={ctx:?}");
            }
        }
    }

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    #[test]
    fn edge_sizes_match_reference() {
        let pools = [pool(4)];
        let mut seed = 1;
        for m in [1, 2, 5, 6, 7, 12, 13, 33] {
            for n in [1, 3, 8, 15, 16, 17, 31, 33] {
                for k in [0, 1, 2, 7, 33] {
                    check_shape(m, n, k, seed, &pools);
                    seed += 1;
                }
            }
        }
    }

    #[test]
    fn large_shapes_cross_k_blocks_and_threads() {
        let pools = [pool(3), pool(4)];
        // Row split, panel split, and several k blocks.
        check_shape(130, 70, 600, 7, &pools);
        check_shape(4, 300, 300, 8, &pools);
        check_shape(1, 1000, 257, 9, &pools);
        check_shape(257, 5, 513, 10, &pools);
    }

    #[test]
    fn zero_sizes_and_bad_views() {
        let ctx = Ctx::single(Isa::detect());
        let mut c = vec![1.0f32; 6];
        sgemm(
            &ctx,
            2,
            3,
            0,
            MatRef::row_major(&[], 0),
            MatRef::row_major(&[], 3),
            &mut c,
        )
        .unwrap();
        assert!(c.iter().all(|x| x.to_bits() == 0));
        let mut e: Vec<f32> = vec![];
        sgemm(
            &ctx,
            0,
            3,
            4,
            MatRef::row_major(&[], 4),
            MatRef::row_major(&[0.0; 12], 3),
            &mut e,
        )
        .unwrap();
        let a = [1.0f32; 5];
        assert!(
            sgemm(
                &ctx,
                2,
                3,
                3,
                MatRef::row_major(&a, 3),
                MatRef::row_major(&[0.0; 9], 3),
                &mut c
            )
            .is_err()
        );
        assert!(
            sgemm(
                &ctx,
                2,
                2,
                3,
                MatRef::row_major(&[0.0; 6], 3),
                MatRef::row_major(&[0.0; 9], 3),
                &mut c
            )
            .is_err()
        );
    }

    #[test]
    fn specials_follow_the_chain() {
        // Signed zeros, infinities, NaN and subnormals go through the same chain.
        let vals = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-40,
            -3e38,
            3e38,
        ];
        let mut rng = Rng::new(99);
        let (m, n, k) = (7, 19, 11);
        let av: Vec<f32> = (0..m * k)
            .map(|_| vals[(rng.next() % 10) as usize])
            .collect();
        let bv: Vec<f32> = (0..k * n)
            .map(|_| vals[(rng.next() % 10) as usize])
            .collect();
        let a = MatRef::row_major(&av, k);
        let b = MatRef::row_major(&bv, n);
        let want = bits(&sgemm_reference(m, n, k, a, b));
        for isa in Isa::supported() {
            assert_eq!(bits(&run(&Ctx::single(isa), m, n, k, a, b)), want);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_reference(m in 1usize..40, n in 1usize..40, k in 0usize..40, seed in 0u64..1000) {
            check_shape(m, n, k, seed, &[]);
        }
    }
}

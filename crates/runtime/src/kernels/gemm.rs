//! float32 matrix product `C = A * B` in the canonical order of
//! docs/determinism.md, "Dot products: MatMul, Gemm, Conv".
//!
//! Every output element is one chain `acc = +0.0; acc = fma(a[i,k], b[k,j], acc)`
//! for `k` increasing. The kernels pack `A` into panels of [`MR`] rows and `B`
//! into panels of [`NR`] columns, and a register-blocked micro-kernel updates
//! an `MR x NR` tile of accumulators, one `k` at a time. The SIMD lanes run
//! across output columns, never across `k`. Blocking over `k` stores the
//! accumulators to `C` and reloads them, which keeps each chain intact. Threads
//! split output rows or output column panels, never `k`. So the portable and
//! AVX2 paths, with any number of threads, give identical bits.

use crate::error::{OpError, OpResult};
use crate::kernels::{Ctx, Isa};

/// Rows of a micro-kernel tile.
const MR: usize = 6;
/// Columns of a micro-kernel tile (two AVX2 registers).
const NR: usize = 16;
/// Depth of one `k` block.
const KC: usize = 256;
/// Rows of one `A` block (a multiple of `MR`).
const MC: usize = 120;
/// Products with at most this many rows (and row-major `B`) skip packing.
const SMALL_M: usize = 2;
/// Columns per block of the small-`m` path (kept in L1 across all `k`).
const SMALL_M_COLS: usize = 1024;
/// Below this many multiply-adds a product runs on one thread.
const PAR_MIN_WORK: usize = 1 << 16;

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
    fn check(&self, rows: usize, cols: usize, what: &str) -> OpResult<()> {
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
    let mn = m
        .checked_mul(n)
        .ok_or_else(|| OpError("gemm: m * n overflows".into()))?;
    if c.len() != mn {
        return Err(OpError(format!(
            "gemm: output has {} elements, expected {m}x{n}",
            c.len()
        )));
    }
    a.check(m, k, "A")?;
    b.check(k, n, "B")?;
    if mn == 0 {
        return Ok(());
    }
    if k == 0 {
        c.fill(0.0);
        return Ok(());
    }
    if m <= SMALL_M && b.cs == 1 {
        small_m(ctx, m, n, k, a, b, c);
        return Ok(());
    }
    let pa = pack_a(ctx, m, k, a);
    let pb = pack_b(ctx, n, k, b);
    let work = mn.saturating_mul(k);
    let threads = ctx.threads();
    let m_panels = m.div_ceil(MR);
    let n_panels = n.div_ceil(NR);
    let isa = ctx.isa;
    if threads <= 1 || work < PAR_MIN_WORK || m_panels >= 2 * threads || m_panels >= n_panels {
        // Split rows: each task owns whole rows of C.
        let tasks = if threads <= 1 || work < PAR_MIN_WORK {
            1
        } else {
            threads * 2
        };
        let rows_per_task = m_panels.div_ceil(tasks) * MR;
        let chunk = rows_per_task.saturating_mul(n);
        ctx.for_chunks_mut(c, chunk, |t, out| {
            let r0 = t * rows_per_task;
            let rows = out.len() / n;
            let layout = Layout {
                ldc: n,
                panel_stride: NR,
            };
            compute(isa, &pa, &pb, k, n, r0..r0 + rows, 0..n_panels, out, layout);
        });
    } else {
        // Split column panels: compute into a panel-major buffer
        // (`panel, row, NR`) whose chunks are whole panels, then copy out.
        let panel_len = m * NR;
        let mut tmp = vec![0.0f32; n_panels * panel_len];
        let panels_per_task = n_panels.div_ceil(threads * 2);
        ctx.for_chunks_mut(&mut tmp, panels_per_task * panel_len, |t, out| {
            let p0 = t * panels_per_task;
            let np = out.len() / panel_len;
            let layout = Layout {
                ldc: NR,
                panel_stride: panel_len,
            };
            compute(
                isa,
                &pa,
                &pb,
                k,
                n_panels * NR,
                0..m,
                p0..p0 + np,
                out,
                layout,
            );
        });
        for (i, row) in c.chunks_exact_mut(n).enumerate() {
            for (p, seg) in row.chunks_mut(NR).enumerate() {
                let src = &tmp[p * panel_len + i * NR..][..seg.len()];
                seg.copy_from_slice(src);
            }
        }
    }
    Ok(())
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
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma && avx2::available() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::axpy(ai, b, j0, out) };
        return;
    }
    let _ = isa;
    axpy_body(ai, b, j0, out);
}

/// Body of [`axpy_rows`], compiled portably and for AVX2+FMA.
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

/// Packs `A` into panels of `MR` rows: panel `p` holds, for each `k`, the
/// `MR` values `A[p*MR + r, k]` (zero past the last row).
fn pack_a(ctx: &Ctx<'_>, m: usize, k: usize, a: MatRef<'_>) -> Vec<f32> {
    let panels = m.div_ceil(MR);
    let mut pa = vec![0.0f32; panels * MR * k];
    ctx.for_chunks_mut(&mut pa, MR * k * 16, |t, out| {
        for (pi, panel) in out.chunks_exact_mut(MR * k).enumerate() {
            let i0 = (t * 16 + pi) * MR;
            let rows = MR.min(m - i0);
            for (kk, dst) in panel.chunks_exact_mut(MR).enumerate() {
                for (r, d) in dst.iter_mut().enumerate().take(rows) {
                    *d = a.at(i0 + r, kk);
                }
            }
        }
    });
    pa
}

/// Packs `B` into panels of `NR` columns: panel `p` holds, for each `k`, the
/// `NR` values `B[k, p*NR + j]` (zero past the last column).
fn pack_b(ctx: &Ctx<'_>, n: usize, k: usize, b: MatRef<'_>) -> Vec<f32> {
    const PANELS_PER_TASK: usize = 8;
    let panels = n.div_ceil(NR);
    let mut pb = vec![0.0f32; panels * NR * k];
    ctx.for_chunks_mut(&mut pb, NR * k * PANELS_PER_TASK, |t, out| {
        let first_panel = t * PANELS_PER_TASK;
        if b.cs == 1 {
            // Row-major B: walk its rows once, spreading each over the panels.
            for kk in 0..k {
                let row = &b.data[kk * b.rs..];
                for (pi, panel) in out.chunks_exact_mut(NR * k).enumerate() {
                    let j0 = (first_panel + pi) * NR;
                    let cols = NR.min(n - j0);
                    panel[kk * NR..kk * NR + cols].copy_from_slice(&row[j0..j0 + cols]);
                }
            }
        } else {
            for (pi, panel) in out.chunks_exact_mut(NR * k).enumerate() {
                let j0 = (first_panel + pi) * NR;
                let cols = NR.min(n - j0);
                for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    for (j, d) in dst.iter_mut().enumerate().take(cols) {
                        *d = b.at(kk, j0 + j);
                    }
                }
            }
        }
    });
    pb
}

/// Where tile `(row i, panel p)` of a task lives in its output slice: at
/// `i * ldc + p * panel_stride` (relative to the task's first row and panel).
#[derive(Clone, Copy)]
struct Layout {
    ldc: usize,
    panel_stride: usize,
}

/// Computes rows `rows` x column panels `panels` into `out`.
///
/// `n` is the number of valid columns (columns past it are not stored).
#[allow(clippy::too_many_arguments)]
fn compute(
    isa: Isa,
    pa: &[f32],
    pb: &[f32],
    k: usize,
    n: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    out: &mut [f32],
    layout: Layout,
) {
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        let first = pc == 0;
        let mut ic = rows.start;
        while ic < rows.end {
            let ic_end = (ic + MC).min(rows.end);
            for p in panels.clone() {
                let bp = &pb[p * NR * k + pc * NR..][..kc * NR];
                let nr = NR.min(n - p * NR);
                let mut ir = ic;
                while ir < ic_end {
                    let mr = MR.min(ic_end - ir);
                    let ap = &pa[(ir / MR) * MR * k + pc * MR..][..kc * MR];
                    let off =
                        (ir - rows.start) * layout.ldc + (p - panels.start) * layout.panel_stride;
                    let tile = Tile {
                        c: &mut out[off..],
                        ldc: layout.ldc,
                        mr,
                        nr,
                        first,
                    };
                    micro(isa, ap, bp, tile);
                    ir += MR;
                }
            }
            ic = ic_end;
        }
        pc += kc;
    }
}

/// One output tile: `mr x nr` valid elements at `c[r * ldc + j]`.
struct Tile<'a> {
    c: &'a mut [f32],
    ldc: usize,
    mr: usize,
    nr: usize,
    /// Whether this is the first `k` block (start from `+0.0`, not from `c`).
    first: bool,
}

/// Runs the micro-kernel on one tile; partial tiles go through a full-size
/// scratch tile (the lanes are independent, so the bits are the same).
fn micro(isa: Isa, ap: &[f32], bp: &[f32], t: Tile<'_>) {
    let full = t.mr == MR && t.nr == NR && t.c.len() >= (MR - 1) * t.ldc + NR;
    if full {
        kernel(isa, ap, bp, t.c, t.ldc, t.first);
        return;
    }
    let mut buf = [0.0f32; MR * NR];
    if !t.first {
        for r in 0..t.mr {
            buf[r * NR..r * NR + t.nr].copy_from_slice(&t.c[r * t.ldc..r * t.ldc + t.nr]);
        }
    }
    kernel(isa, ap, bp, &mut buf, NR, t.first);
    for r in 0..t.mr {
        t.c[r * t.ldc..r * t.ldc + t.nr].copy_from_slice(&buf[r * NR..r * NR + t.nr]);
    }
}

/// Dispatches the full-tile micro-kernel. `c` holds `MR` rows of `NR`
/// elements at stride `ldc`.
fn kernel(isa: Isa, ap: &[f32], bp: &[f32], c: &mut [f32], ldc: usize, first: bool) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2Fma && avx2::available() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::kernel(ap, bp, c, ldc, first) };
        return;
    }
    let _ = isa;
    kernel_portable(ap, bp, c, ldc, first);
}

/// The portable micro-kernel: `f32::mul_add` per element, `k` increasing.
fn kernel_portable(ap: &[f32], bp: &[f32], c: &mut [f32], ldc: usize, first: bool) {
    kernel_body(ap, bp, c, ldc, first);
}

/// The micro-kernel body: an `MR x NR` tile of accumulators, each updated by
/// one `mul_add` per `k`, `k` increasing. Compiled once portably and once with
/// AVX2+FMA enabled, where the compiler maps each row of `NR` lanes onto two
/// `vfmadd` registers; the operations per element are the same either way.
#[inline(always)]
fn kernel_body(ap: &[f32], bp: &[f32], c: &mut [f32], ldc: usize, first: bool) {
    let mut acc = [[0.0f32; NR]; MR];
    if !first {
        for (r, row) in acc.iter_mut().enumerate() {
            row.copy_from_slice(&c[r * ldc..r * ldc + NR]);
        }
    }
    for (av, bv) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)) {
        let (Ok(av), Ok(bv)) = (<&[f32; MR]>::try_from(av), <&[f32; NR]>::try_from(bv)) else {
            continue;
        };
        for (row, &ar) in acc.iter_mut().zip(av) {
            for (x, &bj) in row.iter_mut().zip(bv) {
                *x = ar.mul_add(bj, *x);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[r * ldc..r * ldc + NR].copy_from_slice(row);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MatRef, axpy_body, kernel_body};

    /// Whether the CPU has AVX2 and FMA (cached by std).
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// [`kernel_body`] compiled for AVX2+FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(ap: &[f32], bp: &[f32], c: &mut [f32], ldc: usize, first: bool) {
        kernel_body(ap, bp, c, ldc, first);
    }

    /// [`axpy_body`] compiled for AVX2+FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy(ai: &[f32], b: MatRef<'_>, j0: usize, out: &mut [f32]) {
        axpy_body(ai, b, j0, out);
    }
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
            let mut ctxs = vec![Ctx::single(Isa::Portable), Ctx::single(Isa::detect())];
            for p in pools {
                ctxs.push(Ctx::with_pool(Isa::Portable, p));
                ctxs.push(Ctx::with_pool(Isa::detect(), p));
            }
            for ctx in &ctxs {
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
        for isa in [Isa::Portable, Isa::detect()] {
            assert_eq!(bits(&run(&Ctx::single(isa), m, n, k, a, b)), want);
        }
    }

    #[test]
    #[ignore = "timing only"]
    fn bench_sgemm() {
        let mut rng = Rng::new(1);
        for (m, n, k) in [(512, 512, 512), (64, 3136, 576), (1, 4096, 1024)] {
            let av = rng.vec(m * k);
            let bv = rng.vec(k * n);
            let mut c = vec![0.0f32; m * n];
            for isa in [Isa::detect(), Isa::Portable] {
                let ctx = Ctx::single(isa);
                let t = std::time::Instant::now();
                let reps = 5;
                for _ in 0..reps {
                    sgemm(
                        &ctx,
                        m,
                        n,
                        k,
                        MatRef::row_major(&av, k),
                        MatRef::row_major(&bv, n),
                        &mut c,
                    )
                    .unwrap();
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "{m}x{n}x{k} {isa:?}: {:.2} GFLOP/s",
                        2.0 * (m * n * k) as f64 / s / 1e9
                    );
                }
            }
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

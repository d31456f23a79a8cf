//! Compute kernels and the execution context they run in.
//!
//! Each kernel has a portable scalar version and, where it pays, SIMD
//! versions selected at run time. All versions of a kernel perform the same
//! IEEE-754 operations on every output element in the same order, so they
//! give identical bits (docs/determinism.md). Multi-threading only ever splits
//! the *outputs* of a kernel between threads, never a reduction.

pub mod elementwise;
pub mod gemm;

use std::ops::Range;

use glassbox_primitives::TensorHash;

use crate::tensor::{Tensor, TensorHasher};

/// Instruction-set path used by kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar Rust, the reference for every other path.
    Portable,
    /// x86-64 AVX2 with FMA.
    Avx2Fma,
    /// x86-64 AVX-512F (with AVX2 and FMA): the matrix-product micro-kernel
    /// runs 16 lanes per register and twice the tile width; other kernels
    /// are the AVX2 ones compiled with AVX-512 enabled.
    Avx512,
}

impl Isa {
    /// Every path, from the reference up.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];

    /// The best path this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// Every path this CPU supports, the portable one first and the best
    /// one last (the determinism tests run them all).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2Fma.is_supported() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2Fma | Isa::Avx512 => false,
        }
    }

    /// Short name, as printed by the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2-fma",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Which kernels to use, as requested by the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KernelChoice {
    /// The best path the CPU supports.
    #[default]
    Auto,
    /// Exactly this path (an error where the CPU lacks it). Every path gives
    /// the same bits; forcing one is for tests and measurements.
    Exactly(Isa),
}

impl KernelChoice {
    /// The portable scalar path.
    pub const PORTABLE: KernelChoice = KernelChoice::Exactly(Isa::Portable);

    /// Resolves the choice on this CPU: `None` when it asks for a path the
    /// CPU cannot run.
    pub fn resolve(self) -> Option<Isa> {
        match self {
            KernelChoice::Auto => Some(Isa::detect()),
            KernelChoice::Exactly(isa) => isa.is_supported().then_some(isa),
        }
    }
}

/// What a kernel may use while it runs: the instruction-set path and threads.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The instruction-set path.
    pub isa: Isa,
    pool: Option<&'a rayon::ThreadPool>,
}

impl<'a> Ctx<'a> {
    /// A single-threaded context.
    pub fn single(isa: Isa) -> Ctx<'static> {
        Ctx { isa, pool: None }
    }

    /// A context running parallel loops on `pool`.
    pub fn with_pool(isa: Isa, pool: &'a rayon::ThreadPool) -> Ctx<'a> {
        Ctx {
            isa,
            pool: Some(pool),
        }
    }

    /// The canonical hash of a tensor ([`Tensor::hash`]). Large tensors are
    /// hashed on all threads with BLAKE3's tree parallelism, which gives the
    /// same digest as hashing on one thread.
    pub fn hash_tensor(&self, t: &Tensor) -> TensorHash {
        const PAR_MIN_BYTES: usize = 1 << 18;
        match (self.pool, t.le_bytes()) {
            (Some(pool), Some(bytes)) if self.threads() > 1 && bytes.len() >= PAR_MIN_BYTES => {
                let mut h = TensorHasher::new();
                t.hash_header(&mut h);
                pool.install(|| h.update_rayon(bytes));
                TensorHash::from_bytes(h.finalize())
            }
            _ => t.hash(),
        }
    }

    /// The pool, when there is one with more than one thread.
    pub(crate) fn pool(&self) -> Option<&'a rayon::ThreadPool> {
        self.pool.filter(|p| p.current_num_threads() > 1)
    }

    /// Number of threads available.
    pub fn threads(&self) -> usize {
        self.pool.map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// Calls `f` on disjoint consecutive ranges covering `0..n`, in parallel
    /// when threads are available and the work is large enough.
    ///
    /// `grain` is the smallest range worth a task. The results do not depend
    /// on how the ranges are split, because each index is handled alone.
    pub fn for_ranges(&self, n: usize, grain: usize, f: impl Fn(Range<usize>) + Sync + Send) {
        let threads = self.threads();
        let grain = grain.max(1);
        match self.pool {
            Some(pool) if threads > 1 && n > grain => {
                let tasks = (n / grain).clamp(1, threads * 4);
                let step = n.div_ceil(tasks);
                pool.install(|| {
                    rayon::scope(|s| {
                        for start in (0..n).step_by(step) {
                            let f = &f;
                            s.spawn(move |_| f(start..(start + step).min(n)));
                        }
                    });
                });
            }
            _ => f(0..n),
        }
    }

    /// Splits `out` into chunks of `chunk` elements (the last may be shorter)
    /// and calls `f(chunk_index, chunk)` on each, in parallel when possible.
    pub fn for_chunks_mut<T: Send>(
        &self,
        out: &mut [T],
        chunk: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        let chunk = chunk.max(1);
        match self.pool {
            Some(pool) if self.threads() > 1 && out.len() > chunk => {
                use rayon::prelude::*;
                pool.install(|| {
                    out.par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(i, c)| f(i, c));
                });
            }
            _ => {
                for (i, c) in out.chunks_mut(chunk).enumerate() {
                    f(i, c);
                }
            }
        }
    }
}

/// Every context the determinism tests compare: each path this CPU supports
/// on one thread, and on each of `pools`.
#[cfg(test)]
pub(crate) fn test_ctxs(pools: &[rayon::ThreadPool]) -> Vec<Ctx<'_>> {
    let mut ctxs = Vec::new();
    for isa in Isa::supported() {
        ctxs.push(Ctx::single(isa));
        ctxs.extend(pools.iter().map(|p| Ctx::with_pool(isa, p)));
    }
    ctxs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_hash_equals_serial_hash() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let ctx = Ctx::with_pool(Isa::Portable, &pool);
        for n in [0usize, 1, 1000, 1 << 16, (1 << 18) + 3, 1 << 20] {
            let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let t = Tensor::from_vec(vec![n], v).expect("tensor");
            assert_eq!(ctx.hash_tensor(&t), t.hash(), "n={n}");
            assert_eq!(Ctx::single(Isa::Portable).hash_tensor(&t), t.hash());
        }
        let b = Tensor::from_vec(vec![1 << 19], vec![true; 1 << 19]).expect("tensor");
        assert_eq!(ctx.hash_tensor(&b), b.hash());
    }
}

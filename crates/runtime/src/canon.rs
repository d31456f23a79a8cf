//! Canonical arithmetic shared by every kernel path (docs/determinism.md).
//!
//! Each function here is *the* definition of its result: SIMD kernels that
//! vectorise one of them must perform the same IEEE-754 operations per lane,
//! in the same order. Only `+ - * /`, `fma`, `sqrt`, rounding to an integer and
//! exponent bit manipulation are used, all exactly specified by IEEE-754.

/// `max` per docs/determinism.md, "Sums over an axis": NaN if either is NaN,
/// otherwise `b` only if strictly greater (the first of `+0.0`/`-0.0` wins).
#[inline]
pub fn max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// `min`, the mirror of [`max`].
#[inline]
pub fn min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

/// The lane-8 sum (docs/determinism.md, "Sums over an axis: the lane-8 order").
pub fn sum_l8(x: &[f32]) -> f32 {
    let mut s = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (acc, v) in s.iter_mut().zip(c) {
            *acc += *v;
        }
    }
    for (acc, v) in s.iter_mut().zip(chunks.remainder()) {
        *acc += *v;
    }
    combine_l8(s)
}

/// The lane-8 sum of `n` elements `x[offset + i * stride]`.
pub fn sum_l8_strided(x: &[f32], offset: usize, stride: usize, n: usize) -> f32 {
    let mut s = [0.0f32; 8];
    for i in 0..n {
        s[i % 8] += x[offset + i * stride];
    }
    combine_l8(s)
}

/// The fixed horizontal combination of the eight lane sums.
#[inline]
pub fn combine_l8(s: [f32; 8]) -> f32 {
    ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n * LN2_HI is exact for |n| < 2^9.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Above this, exp overflows to +inf.
const EXP_MAX: f32 = 88.722_84;
/// Below this, exp underflows to +0.0.
const EXP_MIN: f32 = -103.972_08;

/// Range reduction shared by `exp` and `expm1`: `x = n*ln2 + r`, |r| <= ln2/2.
#[inline(always)]
fn reduce(x: f32) -> (f32, f32) {
    let n = (x * LOG2E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    (n, r)
}

/// `P(t)` by Horner's rule with `fma`, highest coefficient first.
#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], t: f32) -> f32 {
    let mut p = c[0];
    for &k in &c[1..] {
        p = p.mul_add(t, k);
    }
    p
}

/// `expm1(r) - r` for |r| <= ln2/2 as a polynomial: r^2/2! + ... + r^8/8!.
#[inline(always)]
fn expm1_poly(r: f32) -> f32 {
    const C: [f32; 7] = [
        1.0 / 40320.0,
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    (horner(&C, r) * r) * r
}

/// `n` as an integer, for integer-valued `n` with `|n| < 2^22`: adding
/// `1.5 * 2^23` is exact and leaves `n` in the low mantissa bits. Unlike `as`
/// (which must saturate), this vectorises.
#[inline(always)]
fn small_int(n: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (n + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// `2^n` for integer-valued `n` in [-126, 127], exact.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// Canonical `exp` (docs/determinism.md, "Transcendental functions").
///
/// Written without early returns so that loops over it vectorise: the
/// reduction runs on `x` clamped into the finite range (the same value for
/// every `x` that reaches it) and the special cases are selected at the end.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = if x.is_nan() {
        0.0
    } else {
        x.clamp(EXP_MIN, EXP_MAX)
    };
    let (n, r) = reduce(xc);
    // p = e^r = 1 + r + (r^2/2 + ...), summed small terms first.
    let p = 1.0 + (r + expm1_poly(r));
    // Scale by 2^n in two exact steps so that subnormal results round once.
    let n = small_int(n);
    let n1 = n / 2;
    let n2 = n - n1;
    let y = (p * pow2i(n1)) * pow2i(n2);
    if x.is_nan() {
        x
    } else if x > EXP_MAX {
        f32::INFINITY
    } else if x < EXP_MIN {
        0.0
    } else {
        y
    }
}

/// Canonical `expm1` (`e^x - 1` without cancellation near 0). Branch-free
/// like [`exp`]: the special cases are selected at the end.
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    const LOW: f32 = -17.0;
    let xc = if x.is_nan() {
        0.0
    } else {
        x.clamp(LOW, EXP_MAX)
    };
    let (n, r) = reduce(xc);
    let em = r + expm1_poly(r);
    // e^x - 1 = 2^n * (em + 1) - 1 = 2^n * em + (2^n - 1); 2^n - 1 is exact
    // for the n reached here (n in [-25, 128]).
    let ni = small_int(n);
    let s = pow2i(ni.clamp(-126, 127));
    let y = em.mul_add(s, s - 1.0);
    if x.is_nan() {
        x
    } else if x > EXP_MAX {
        f32::INFINITY
    } else if x < LOW {
        -1.0
    } else if n == 0.0 {
        em
    } else if ni > 127 {
        f32::INFINITY
    } else {
        y
    }
}

/// Canonical natural logarithm.
#[inline(always)]
pub fn log(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i32 = 0;
    if bits < 0x0080_0000 {
        // Subnormal: scale by 2^23 (exact).
        bits = (x * 8_388_608.0).to_bits();
        e -= 23;
    }
    // Bring the mantissa into [sqrt(1/2), sqrt(2)).
    let m_bits = (bits & 0x007f_ffff) | 0x3f80_0000;
    e += ((bits >> 23) as i32) - 127;
    let mut m = f32::from_bits(m_bits);
    if m >= std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // log(1+f) = 2*atanh(s) = 2s + 2s^3/3 + 2s^5/5 + ... ; written as
    // f - hfsq + s*(hfsq + R(z)).
    const R: [f32; 6] = [
        0.153_846_15, // 2/13
        0.181_818_18, // 2/11
        0.222_222_22, // 2/9
        0.285_714_28, // 2/7
        0.4,          // 2/5
        0.666_666_7,  // 2/3
    ];
    let r = horner(&R, z) * z;
    let hfsq = 0.5 * f * f;
    let ef = e as f32;
    let lo = s.mul_add(hfsq + r, ef * LN2_LO);
    ((lo - hfsq) + f) + ef * LN2_HI
}

/// Canonical hyperbolic tangent, branch-free (special cases selected last).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    // `a` in [2^-12, 9) reaches the formula as it is; others are selected.
    let t = expm1(2.0 * a.min(9.0));
    let y = (t / (t + 2.0)).copysign(x);
    if x.is_nan() {
        x
    } else if a >= 9.0 {
        1.0f32.copysign(x)
    } else if a < 1.0 / 4096.0 {
        x
    } else {
        y
    }
}

/// Canonical logistic sigmoid: `x >= 0`: `1 / (1 + exp(-x))`; `x < 0`:
/// `e / (1 + e)` with `e = exp(x)`; NaN stays NaN. Both branches take `exp`
/// of `-|x|` (the same value), so one `exp` serves both and the loop
/// vectorises.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let d = 1.0 + e;
    if x >= 0.0 {
        1.0 / d
    } else if x < 0.0 {
        e / d
    } else {
        x
    }
}

// erf(x) = x + x * P(x^2) for |x| < 0.875 (P(0) = 2/sqrt(pi) - 1).
const ERF_SMALL: [f32; 7] = [
    8.675_596e-5,
    -8.211_148e-4,
    5.206_751e-3,
    -2.686_158_6e-2,
    1.128_373_3e-1,
    -3.761_263_5e-1,
    1.283_791_7e-1,
];
// erfc(a) for 0.875 <= a < 2, in t = a - 1.4375.
const ERFC_MID_AT: f32 = 1.4375;
const ERFC_MID: [f32; 12] = [
    2.734_765_3e-4,
    -1.480_994e-4,
    -1.695_529e-3,
    3.345_957e-3,
    3.317_060_4e-3,
    -2.111_013_2e-2,
    2.246_736e-2,
    3.878_313_7e-2,
    -1.492_242_5e-1,
    2.054_159e-1,
    -1.428_980_2e-1,
    4.205_939_5e-2,
];
// erfc(a) for 2 <= a < 3.92, in t = a - 2.9375; beyond, erf rounds to 1.
const ERFC_TAIL_AT: f32 = 2.9375;
const ERFC_TAIL: [f32; 11] = [
    -2.634_060_4e-5,
    2.769_317_5e-5,
    1.388_486_7e-4,
    -4.850_994_4e-4,
    9.253_817e-4,
    -1.317_181e-3,
    1.408_243_8e-3,
    -1.095_343_1e-3,
    5.929_115e-4,
    -2.017_49e-4,
    3.263_438e-5,
];
const ERF_ONE_FROM: f32 = 3.92;

/// Canonical error function (docs/determinism.md, "Transcendental
/// functions"): three polynomials in float32 with `fma`, each evaluated for
/// every input and the right one selected, so loops over it vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let small = x.mul_add(horner(&ERF_SMALL, x * x), x);
    let mid = 1.0 - horner(&ERFC_MID, a - ERFC_MID_AT);
    let tail = 1.0 - horner(&ERFC_TAIL, a.min(ERF_ONE_FROM) - ERFC_TAIL_AT);
    let big = if a < 2.0 {
        mid
    } else if a < ERF_ONE_FROM {
        tail
    } else {
        1.0
    };
    if x.is_nan() {
        x
    } else if a < 0.875 {
        small
    } else {
        big.copysign(x)
    }
}

/// Canonical power: `libm::pow` in float64, rounded once.
pub fn pow(x: f32, y: f32) -> f32 {
    libm::pow(f64::from(x), f64::from(y)) as f32
}

// pi/2 as the sum of three float64 numbers (Cody-Waite): PIO2_1 is pi/2
// rounded to float64, PIO2_2 the float64 nearest to the rest, PIO2_3 the next.
const PIO2_1: f64 = std::f64::consts::FRAC_PI_2;
const PIO2_2: f64 = 6.123_233_995_736_766e-17;
const PIO2_3: f64 = -1.497_384_904_859_169_6e-33;
/// Below this magnitude the Cody-Waite reduction is used (beyond, `libm`).
const TRIG_CW_MAX: f32 = 524_288.0; // 2^19

/// `(k mod 4, r)` with `x = k * pi/2 + r`, |r| <= ~pi/4, computed in float64.
///
/// `k = round_ties_even(x * (2/pi))`; `r = fma(-k, PIO2_1, x)` (exact: the
/// result is a multiple of 2^-52 below 1 in magnitude), then
/// `r = fma(-k, PIO2_2, r)`, `r = fma(-k, PIO2_3, r)`.
#[inline]
fn trig_reduce(x: f32) -> (u32, f64) {
    let x = f64::from(x);
    let k = (x * std::f64::consts::FRAC_2_PI).round_ties_even();
    let r = (-k).mul_add(PIO2_1, x);
    let r = (-k).mul_add(PIO2_2, r);
    let r = (-k).mul_add(PIO2_3, r);
    ((k as i64 & 3) as u32, r)
}

/// `sin(r)` for |r| <= ~pi/4 in float64: `r + (r*z) * S(z)`, `z = r*r`,
/// `S` the Taylor polynomial `-1/3! + z/5! - ... + z^7/17!` by Horner with fma.
#[inline]
fn sin_poly(r: f64) -> f64 {
    let z = r * r;
    let mut p = 1.0 / 355_687_428_096_000.0f64; // 1/17!
    p = p.mul_add(z, -1.0 / 1_307_674_368_000.0); // 1/15!
    p = p.mul_add(z, 1.0 / 6_227_020_800.0); // 1/13!
    p = p.mul_add(z, -1.0 / 39_916_800.0); // 1/11!
    p = p.mul_add(z, 1.0 / 362_880.0); // 1/9!
    p = p.mul_add(z, -1.0 / 5_040.0); // 1/7!
    p = p.mul_add(z, 1.0 / 120.0); // 1/5!
    p = p.mul_add(z, -1.0 / 6.0); // 1/3!
    (r * z).mul_add(p, r)
}

/// `cos(r)` for |r| <= ~pi/4 in float64: `1 + z * C(z)`, `C` the Taylor
/// polynomial `-1/2! + z/4! - ... + z^7/16!` by Horner with fma.
#[inline]
fn cos_poly(r: f64) -> f64 {
    let z = r * r;
    let mut p = 1.0 / 20_922_789_888_000.0f64; // 1/16!
    p = p.mul_add(z, -1.0 / 87_178_291_200.0); // 1/14!
    p = p.mul_add(z, 1.0 / 479_001_600.0); // 1/12!
    p = p.mul_add(z, -1.0 / 3_628_800.0); // 1/10!
    p = p.mul_add(z, 1.0 / 40_320.0); // 1/8!
    p = p.mul_add(z, -1.0 / 720.0); // 1/6!
    p = p.mul_add(z, 1.0 / 24.0); // 1/4!
    p = p.mul_add(z, -0.5); // 1/2!
    z.mul_add(p, 1.0)
}

/// Canonical sine (docs/determinism.md, "Transcendental functions"):
/// `|x| < 2^-12`: `x`; `|x| < 2^19`: Cody-Waite reduction and polynomials in
/// float64, rounded once to float32; larger or non-finite: `libm::sin` in
/// float64, rounded once.
pub fn sin(x: f32) -> f32 {
    let a = x.abs();
    if a < 1.0 / 4096.0 {
        return x;
    }
    if a.is_nan() || a >= TRIG_CW_MAX {
        return libm::sin(f64::from(x)) as f32;
    }
    let (q, r) = trig_reduce(x);
    let v = match q {
        0 => sin_poly(r),
        1 => cos_poly(r),
        2 => -sin_poly(r),
        _ => -cos_poly(r),
    };
    v as f32
}

/// Canonical cosine: the same reduction as [`sin`]; `|x| < 2^-12` still
/// goes through the polynomial (which gives 1 or its neighbour below).
pub fn cos(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= TRIG_CW_MAX {
        return libm::cos(f64::from(x)) as f32;
    }
    let (q, r) = trig_reduce(x);
    let v = match q {
        0 => cos_poly(r),
        1 => -sin_poly(r),
        2 => -cos_poly(r),
        _ => sin_poly(r),
    };
    v as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        if a == b32 {
            return 0.0;
        }
        let ulp =
            (f64::from(b32.abs().max(f32::MIN_POSITIVE)) * f64::from(f32::EPSILON)).max(1e-45);
        (f64::from(a) - b).abs() / ulp
    }

    fn sweep(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * (i as f32 / n as f32))
    }

    #[test]
    fn exp_is_accurate() {
        for x in sweep(-103.0, 88.7, 200_000) {
            let u = ulps(exp(x), libm::exp(f64::from(x)));
            assert!(u <= 1.5, "exp({x}) off by {u} ulp");
        }
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn expm1_is_accurate() {
        for x in sweep(-17.0, 88.0, 200_000).chain(sweep(-0.01, 0.01, 10_000)) {
            let u = ulps(expm1(x), libm::expm1(f64::from(x)));
            assert!(u <= 2.0, "expm1({x}) off by {u} ulp");
        }
    }

    #[test]
    fn log_is_accurate() {
        let xs = sweep(1e-6, 10.0, 200_000)
            .chain(sweep(0.5, 2.0, 100_000))
            .chain([1e-40, 1e-30, 3.4e38, f32::MIN_POSITIVE, 1.0]);
        for x in xs {
            let u = ulps(log(x), libm::log(f64::from(x)));
            assert!(u <= 1.5, "log({x}) off by {u} ulp");
        }
        assert!(log(-1.0).is_nan());
        assert_eq!(log(0.0), f32::NEG_INFINITY);
        assert_eq!(log(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn tanh_and_sigmoid_are_accurate() {
        for x in sweep(-12.0, 12.0, 200_000) {
            let u = ulps(tanh(x), libm::tanh(f64::from(x)));
            assert!(u <= 3.0, "tanh({x}) off by {u} ulp");
            let s = 1.0 / (1.0 + libm::exp(-f64::from(x)));
            let u = ulps(sigmoid(x), s);
            assert!(u <= 3.0, "sigmoid({x}) off by {u} ulp");
        }
    }

    /// Every `stride`-th float32 bit pattern (NaNs, infinities, subnormals
    /// and both zeros included), and the edges of the special-case ranges.
    fn bit_patterns(stride: u32) -> impl Iterator<Item = f32> {
        (0..=u32::MAX / stride)
            .map(move |i| f32::from_bits(i * stride))
            .chain([
                0.0,
                -0.0,
                EXP_MAX,
                EXP_MIN,
                -17.0,
                9.0,
                -9.0,
                1.0 / 4096.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ])
            .flat_map(|x| [x, f32::from_bits(x.to_bits().wrapping_add(1)), -x])
    }

    /// The definitions as docs/determinism.md states them, with early
    /// returns; the branch-free versions must give the same bits.
    fn exp_ref(x: f32) -> f32 {
        if x.is_nan() {
            return x;
        }
        if x > EXP_MAX {
            return f32::INFINITY;
        }
        if x < EXP_MIN {
            return 0.0;
        }
        let (n, r) = reduce(x);
        let p = 1.0 + (r + expm1_poly(r));
        let n = n as i32;
        (p * pow2i(n / 2)) * pow2i(n - n / 2)
    }

    fn expm1_ref(x: f32) -> f32 {
        if x.is_nan() {
            return x;
        }
        if x > EXP_MAX {
            return f32::INFINITY;
        }
        if x < -17.0 {
            return -1.0;
        }
        let (n, r) = reduce(x);
        let em = r + expm1_poly(r);
        if n == 0.0 {
            return em;
        }
        let n = n as i32;
        if n > 127 {
            return f32::INFINITY;
        }
        let s = pow2i(n.clamp(-126, 127));
        em.mul_add(s, s - 1.0)
    }

    fn tanh_ref(x: f32) -> f32 {
        if x.is_nan() {
            return x;
        }
        let a = x.abs();
        if a >= 9.0 {
            return 1.0f32.copysign(x);
        }
        if a < 1.0 / 4096.0 {
            return x;
        }
        let t = expm1_ref(2.0 * a);
        (t / (t + 2.0)).copysign(x)
    }

    fn sigmoid_ref(x: f32) -> f32 {
        if x >= 0.0 {
            1.0 / (1.0 + exp_ref(-x))
        } else if x < 0.0 {
            let e = exp_ref(x);
            e / (1.0 + e)
        } else {
            x
        }
    }

    #[test]
    fn branch_free_forms_equal_the_definitions() {
        type F = fn(f32) -> f32;
        let fs: [(&str, F, F); 4] = [
            ("exp", exp, exp_ref),
            ("expm1", expm1, expm1_ref),
            ("tanh", tanh, tanh_ref),
            ("sigmoid", sigmoid, sigmoid_ref),
        ];
        for x in bit_patterns(40_009) {
            for (name, f, r) in fs {
                assert_eq!(
                    f(x).to_bits(),
                    r(x).to_bits(),
                    "{name}({x:e}) [{:#x}]",
                    x.to_bits()
                );
            }
        }
        assert_eq!(small_int(-150.0), -150);
        assert_eq!(small_int(128.0), 128);
        assert_eq!(small_int(-0.0), 0);
    }

    #[test]
    fn erf_is_accurate() {
        let xs = sweep(-4.5, 4.5, 900_000)
            .chain(sweep(-1e-3, 1e-3, 10_000))
            .chain([0.875, 2.0, 3.92, 1e-30, 1e-42, 30.0]);
        for x in xs {
            let u = ulps(erf(x), libm::erf(f64::from(x)));
            assert!(u <= 1.0, "erf({x}) off by {u} ulp");
        }
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf(f32::NAN).to_bits(), f32::NAN.to_bits());
    }

    #[test]
    fn l8_matches_its_definition() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32).sin() * 1e3).collect();
        let mut s = [0.0f32; 8];
        for (i, v) in x.iter().enumerate() {
            s[i % 8] += v;
        }
        let want = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
        assert_eq!(sum_l8(&x).to_bits(), want.to_bits());
        assert_eq!(sum_l8_strided(&x, 0, 1, x.len()).to_bits(), want.to_bits());
    }

    #[test]
    fn max_min_nan_and_zero_rules() {
        assert!(max(f32::NAN, 1.0).is_nan());
        assert!(max(1.0, f32::NAN).is_nan());
        assert_eq!(max(0.0, -0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(max(-0.0, 0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(min(2.0, 1.0), 1.0);
    }
    #[test]
    fn sin_cos_are_accurate() {
        let xs = sweep(-100.0, 100.0, 400_000)
            .chain(sweep(-1e5, 1e5, 200_000))
            .chain(sweep(-0.01, 0.01, 10_000))
            .chain([
                1e-30,
                -1e-40,
                3.0e5,
                5.2e5,
                1e6,
                1e30,
                f32::MAX,
                std::f32::consts::FRAC_PI_2,
                std::f32::consts::PI,
            ]);
        for x in xs {
            let u = ulps(sin(x), libm::sin(f64::from(x)));
            assert!(u <= 0.75, "sin({x}) off by {u} ulp");
            let u = ulps(cos(x), libm::cos(f64::from(x)));
            assert!(u <= 0.75, "cos({x}) off by {u} ulp");
        }
        assert_eq!(sin(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(sin(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(cos(0.0), 1.0);
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(sin(x).is_nan() && cos(x).is_nan());
        }
    }
}

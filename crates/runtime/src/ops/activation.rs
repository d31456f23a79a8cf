//! Activations and other element-wise functions: Elu, Selu, Celu, Softplus,
//! Softsign, HardSigmoid, HardSwish, Mish, Gelu, ThresholdedRelu, Sin, Cos,
//! Round, Sign, IsNaN, IsInf (one input), PRelu and Mod (two inputs).
//!
//! Each formula is written out in its variant's doc comment and in
//! docs/determinism.md, "Activations": the operations are performed in the
//! order written, each rounded separately (no implicit fusion). Float32
//! transcendentals use [`crate::canon`], float64 ones the `libm` float64
//! functions (docs/determinism.md, "Transcendental functions").

use super::{Args, Fact, Op, Region, Registry, default_cost};
use crate::broadcast::broadcast_shapes;
use crate::canon;
use crate::cost::Cost;
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::kernels::elementwise::{Float, Num, by_num, map, map2};
use crate::tensor::{DType, Data, Elem, Tensor};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Elu", |b| Ok(act(Kind::Elu(b.attrs.float("alpha", 1.0)?))));
    r.add("Selu", |b| {
        Ok(act(Kind::Selu(
            b.attrs.float("alpha", 1.673_263_2)?,
            b.attrs.float("gamma", 1.050_701)?,
        )))
    });
    r.add("Celu", |b| {
        Ok(act(Kind::Celu(b.attrs.float("alpha", 1.0)?)))
    });
    r.add("Softplus", |_| Ok(act(Kind::Softplus)));
    r.add("Softsign", |_| Ok(act(Kind::Softsign)));
    r.add("HardSigmoid", |b| {
        Ok(act(Kind::HardSigmoid(
            b.attrs.float("alpha", 0.2)?,
            b.attrs.float("beta", 0.5)?,
        )))
    });
    r.add("HardSwish", |_| Ok(act(Kind::HardSwish)));
    r.add("Mish", |_| Ok(act(Kind::Mish)));
    r.add("Gelu", |b| {
        let tanh = match b.attrs.string("approximate", "none")? {
            "none" => false,
            "tanh" => true,
            a => bail!("attribute `approximate` must be \"none\" or \"tanh\", got {a:?}"),
        };
        Ok(act(Kind::Gelu { tanh }))
    });
    r.add("ThresholdedRelu", |b| {
        Ok(act(Kind::ThresholdedRelu(b.attrs.float("alpha", 1.0)?)))
    });
    r.add("Sin", |_| Ok(act(Kind::Sin)));
    r.add("Cos", |_| Ok(act(Kind::Cos)));
    r.add("Round", |_| Ok(act(Kind::Round)));
    r.add("Sign", |_| Ok(act(Kind::Sign)));
    r.add("IsNaN", |_| Ok(act(Kind::IsNaN)));
    r.add("IsInf", |b| {
        Ok(act(Kind::IsInf {
            pos: b.attrs.int("detect_positive", 1)? != 0,
            neg: b.attrs.int("detect_negative", 1)? != 0,
        }))
    });
    r.add("PRelu", |_| Ok(Box::new(PRelu)));
    r.add("Mod", |b| {
        let fmod = b.attrs.int("fmod", 0)?;
        ensure!(
            fmod == 0 || fmod == 1,
            "attribute `fmod` must be 0 or 1, got {fmod}"
        );
        Ok(Box::new(Mod { fmod: fmod == 1 }))
    });
}

fn act(k: Kind) -> Box<dyn Op> {
    Box::new(Activation(k))
}

/// The float functions these ops need beyond [`Float`]: float32 from
/// [`canon`], float64 from `libm`.
trait ActFloat: Float {
    /// `sqrt(2)` rounded to the type.
    const SQRT_2: Self;
    /// `sqrt(2 / pi)` rounded to the type.
    const SQRT_2_OVER_PI: Self;
    fn expm1(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    /// Round to the nearest integer, ties to even (exact).
    fn round_even(self) -> Self;
    /// C `fmod` (exact).
    fn fmod(self, o: Self) -> Self;
    fn copysign(self, sign: Self) -> Self;
    fn is_nan(self) -> bool;
    fn is_infinite(self) -> bool;
    fn is_sign_negative(self) -> bool;
}

impl ActFloat for f32 {
    const SQRT_2: f32 = std::f32::consts::SQRT_2;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    fn expm1(self) -> f32 {
        canon::expm1(self)
    }
    fn sin(self) -> f32 {
        canon::sin(self)
    }
    fn cos(self) -> f32 {
        canon::cos(self)
    }
    fn round_even(self) -> f32 {
        self.round_ties_even()
    }
    fn fmod(self, o: f32) -> f32 {
        libm::fmodf(self, o)
    }
    fn copysign(self, sign: f32) -> f32 {
        f32::copysign(self, sign)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn is_infinite(self) -> bool {
        f32::is_infinite(self)
    }
    fn is_sign_negative(self) -> bool {
        f32::is_sign_negative(self)
    }
}

impl ActFloat for f64 {
    const SQRT_2: f64 = std::f64::consts::SQRT_2;
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    fn expm1(self) -> f64 {
        libm::expm1(self)
    }
    fn sin(self) -> f64 {
        libm::sin(self)
    }
    fn cos(self) -> f64 {
        libm::cos(self)
    }
    fn round_even(self) -> f64 {
        self.round_ties_even()
    }
    fn fmod(self, o: f64) -> f64 {
        libm::fmod(self, o)
    }
    fn copysign(self, sign: f64) -> f64 {
        f64::copysign(self, sign)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn is_infinite(self) -> bool {
        f64::is_infinite(self)
    }
    fn is_sign_negative(self) -> bool {
        f64::is_sign_negative(self)
    }
}

/// Which function an [`Activation`] applies. Float attributes are converted
/// exactly to the input's float type. `max`/`min` are the canonical ones
/// (NaN wins).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `x < 0 ? alpha * expm1(x) : x`.
    Elu(f32),
    /// `(alpha, gamma)`: `x > 0 ? gamma * x : gamma * (alpha * expm1(x))`.
    Selu(f32, f32),
    /// `x < 0 ? alpha * expm1(x / alpha) : x`.
    Celu(f32),
    /// `x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `(alpha, beta)`: `max(min(alpha * x + beta, 1), 0)` (unfused).
    HardSigmoid(f32, f32),
    /// `x * max(min(alpha * x + beta, 1), 0)` with `alpha = 1/6` (float32
    /// `1.0 / 6.0`), `beta = 0.5`.
    HardSwish,
    /// `x * tanh(softplus(x))` with the Softplus formula above.
    Mish,
    /// `tanh = false`: `(0.5 * x) * (1 + erf(x / sqrt(2)))`;
    /// `tanh = true`: `(0.5 * x) * (1 + tanh(c * (x + 0.044715 * ((x * x) * x))))`
    /// with `c = sqrt(2 / pi)` rounded to the float type.
    Gelu { tanh: bool },
    /// `x > alpha ? x : 0`.
    ThresholdedRelu(f32),
    /// Canonical sine.
    Sin,
    /// Canonical cosine.
    Cos,
    /// Round half to even (exact).
    Round,
    /// `x > 0 ? 1 : (x < 0 ? -1 : x)` (so `±0` and NaN stay as they are).
    Sign,
    /// Float input, bool output.
    IsNaN,
    /// Float input, bool output: `+inf` if `pos`, `-inf` if `neg`.
    IsInf { pos: bool, neg: bool },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Elu(_) => "Elu",
            Kind::Selu(..) => "Selu",
            Kind::Celu(_) => "Celu",
            Kind::Softplus => "Softplus",
            Kind::Softsign => "Softsign",
            Kind::HardSigmoid(..) => "HardSigmoid",
            Kind::HardSwish => "HardSwish",
            Kind::Mish => "Mish",
            Kind::Gelu { .. } => "Gelu",
            Kind::ThresholdedRelu(_) => "ThresholdedRelu",
            Kind::Sin => "Sin",
            Kind::Cos => "Cos",
            Kind::Round => "Round",
            Kind::Sign => "Sign",
            Kind::IsNaN => "IsNaN",
            Kind::IsInf { .. } => "IsInf",
        }
    }

    fn accepts(self, d: DType) -> bool {
        match self {
            Kind::Sign => d != DType::Bool,
            _ => d.is_float(),
        }
    }

    fn out_dtype(self, d: DType) -> DType {
        match self {
            Kind::IsNaN | Kind::IsInf { .. } => DType::Bool,
            _ => d,
        }
    }

    /// Operations per element, for the cost model.
    fn flops(self) -> u64 {
        match self {
            Kind::Sign | Kind::Round | Kind::IsNaN | Kind::IsInf { .. } => 1,
            Kind::ThresholdedRelu(_) | Kind::Sin | Kind::Cos => 1,
            Kind::Softsign | Kind::Elu(_) | Kind::Celu(_) => 2,
            Kind::Selu(..) | Kind::HardSigmoid(..) | Kind::Softplus => 4,
            Kind::HardSwish => 5,
            Kind::Mish | Kind::Gelu { .. } => 8,
        }
    }
}

/// `x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))`.
#[inline]
fn softplus<T: Float>(x: T) -> T {
    let one = T::from_f32(1.0);
    let zero = T::default();
    if x > zero {
        x.add(one.add(x.neg().exp()).ln())
    } else {
        one.add(x.exp()).ln()
    }
}

/// `max(min(alpha * x + beta, 1), 0)`.
#[inline]
fn hard_sigmoid<T: Float>(x: T, alpha: T, beta: T) -> T {
    alpha
        .mul(x)
        .add(beta)
        .min(T::from_f32(1.0))
        .max(T::default())
}

/// The float kernels of the one-input functions (bool outputs excluded).
fn run_float<T: ActFloat>(ctx: &Ctx<'_>, kind: Kind, x: &[T]) -> Vec<T> {
    let zero = T::default();
    let one = T::from_f32(1.0);
    let f = T::from_f32;
    match kind {
        Kind::Elu(a) => {
            let a = f(a);
            map(ctx, x, move |v| if v < zero { a.mul(v.expm1()) } else { v })
        }
        Kind::Selu(a, g) => {
            let (a, g) = (f(a), f(g));
            map(ctx, x, move |v| {
                if v > zero {
                    g.mul(v)
                } else {
                    g.mul(a.mul(v.expm1()))
                }
            })
        }
        Kind::Celu(a) => {
            let a = f(a);
            map(
                ctx,
                x,
                move |v| {
                    if v < zero { a.mul(v.div(a).expm1()) } else { v }
                },
            )
        }
        Kind::Softplus => map(ctx, x, softplus),
        Kind::Softsign => map(ctx, x, move |v| v.div(one.add(v.abs()))),
        Kind::HardSigmoid(a, b) => {
            let (a, b) = (f(a), f(b));
            map(ctx, x, move |v| hard_sigmoid(v, a, b))
        }
        Kind::HardSwish => {
            let (a, b) = (f(1.0 / 6.0), f(0.5));
            map(ctx, x, move |v| v.mul(hard_sigmoid(v, a, b)))
        }
        Kind::Mish => map(ctx, x, |v| v.mul(softplus(v).tanh())),
        Kind::Gelu { tanh: false } => {
            let (half, sqrt2) = (f(0.5), T::SQRT_2);
            map(ctx, x, move |v| {
                half.mul(v).mul(one.add(v.div(sqrt2).erf()))
            })
        }
        Kind::Gelu { tanh: true } => {
            let (half, c, k) = (f(0.5), T::SQRT_2_OVER_PI, f(0.044_715));
            map(ctx, x, move |v| {
                let inner = c.mul(v.add(k.mul(v.mul(v).mul(v))));
                half.mul(v).mul(one.add(inner.tanh()))
            })
        }
        Kind::ThresholdedRelu(a) => {
            let a = f(a);
            map(ctx, x, move |v| if v > a { v } else { zero })
        }
        Kind::Sin => map(ctx, x, ActFloat::sin),
        Kind::Cos => map(ctx, x, ActFloat::cos),
        Kind::Round => map(ctx, x, ActFloat::round_even),
        Kind::Sign => map(ctx, x, move |v| sign(v, one)),
        // Bool outputs: handled by `run`.
        Kind::IsNaN | Kind::IsInf { .. } => x.to_vec(),
    }
}

/// `x > 0 ? 1 : (x < 0 ? -1 : x)`; for unsigned types `-1` never happens.
#[inline]
fn sign<T: Num>(v: T, one: T) -> T {
    let zero = T::default();
    if v > zero {
        one
    } else if v < zero {
        zero.sub(one)
    } else {
        v
    }
}

fn bool_float<T: ActFloat>(ctx: &Ctx<'_>, kind: Kind, x: &[T]) -> Vec<bool> {
    match kind {
        Kind::IsInf { pos, neg } => map(ctx, x, move |v| {
            v.is_infinite() && if v.is_sign_negative() { neg } else { pos }
        }),
        _ => map(ctx, x, ActFloat::is_nan),
    }
}

/// A one-input element-wise op; the output has the input's shape.
#[derive(Debug)]
struct Activation(Kind);

impl Op for Activation {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let k = self.0;
        ensure!(
            inputs.len() == 1,
            "{} takes 1 input, got {}",
            k.name(),
            inputs.len()
        );
        let x = inputs.get(0)?;
        ensure!(
            k.accepts(x.dtype),
            "{} does not support {} inputs",
            k.name(),
            x.dtype
        );
        Ok(vec![Fact::new(k.out_dtype(x.dtype), x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, self.0.flops())
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let k = self.0;
        let x = inputs.get(0)?;
        ensure!(
            k.accepts(x.dtype()),
            "{} does not support {} inputs",
            k.name(),
            x.dtype()
        );
        let boolean = k.out_dtype(x.dtype()) == DType::Bool;
        let data = match x.data() {
            Data::F32(v) if boolean => Data::Bool(bool_float(ctx, k, v)),
            Data::F64(v) if boolean => Data::Bool(bool_float(ctx, k, v)),
            Data::F32(v) => Data::F32(run_float(ctx, k, v)),
            Data::F64(v) => Data::F64(run_float(ctx, k, v)),
            _ => by_num!(x.dtype(), T => {
                // Integers: `MAX / MAX` is 1.
                let one = T::HIGHEST.div(T::HIGHEST);
                T::wrap(map(ctx, x.as_slice::<T>()?, move |v| sign(v, one)))
            }, bool => bail!("{} does not support bool inputs", k.name())),
        };
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }

    fn region(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        output: usize,
        elements: std::ops::Range<usize>,
    ) -> Option<OpResult<Region>> {
        (output == 0).then(|| super::elementwise_region(self, ctx, inputs, elements))
    }

    fn region_len(
        &self,
        _inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        output: usize,
        elements: std::ops::Range<usize>,
    ) -> Option<usize> {
        (output == 0).then_some(elements.len())
    }
}

/// Checks the inputs of a two-input op and gives the output shape.
fn two_inputs(name: &str, inputs: Args<'_, Fact>) -> OpResult<(DType, Vec<usize>)> {
    ensure!(
        inputs.len() == 2,
        "{name} takes 2 inputs, got {}",
        inputs.len()
    );
    let (a, b) = (inputs.get(0)?, inputs.get(1)?);
    ensure!(
        a.dtype == b.dtype,
        "{name} inputs must have the same dtype, got {} and {}",
        a.dtype,
        b.dtype
    );
    ensure!(
        a.dtype != DType::Bool,
        "{name} does not support bool inputs"
    );
    Ok((a.dtype, broadcast_shapes(&[&a.shape, &b.shape])?))
}

/// PRelu: `x < 0 ? slope * x : x`, with `slope` broadcast to `x`
/// (unidirectionally: the output has `x`'s shape).
#[derive(Debug)]
struct PRelu;

fn prelu<T: Num>(ctx: &Ctx<'_>, x: &Tensor, s: &Tensor, shape: &[usize]) -> OpResult<Data> {
    let zero = T::default();
    Ok(T::wrap(map2(
        ctx,
        (x.as_slice::<T>()?, x.shape()),
        (s.as_slice::<T>()?, s.shape()),
        shape,
        move |v, a| if v < zero { a.mul(v) } else { v },
    )))
}

impl Op for PRelu {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let (dtype, shape) = two_inputs("PRelu", inputs)?;
        let x = inputs.get(0)?;
        ensure!(
            shape == x.shape,
            "PRelu slope {:?} must broadcast to X {:?}",
            inputs.get(1)?.shape,
            x.shape
        );
        Ok(vec![Fact::new(dtype, shape)])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, s) = (inputs.get(0)?, inputs.get(1)?);
        ensure!(
            x.dtype() == s.dtype(),
            "PRelu inputs must have the same dtype"
        );
        let shape = broadcast_shapes(&[x.shape(), s.shape()])?;
        ensure!(
            shape == x.shape(),
            "PRelu slope {:?} must broadcast to X {:?}",
            s.shape(),
            x.shape()
        );
        let data = by_num!(x.dtype(), T => prelu::<T>(ctx, x, s, &shape)?,
            bool => bail!("PRelu does not support bool inputs"));
        Ok(vec![Tensor::new(shape, data)?])
    }
}

/// Mod with multidirectional broadcasting.
///
/// - `fmod = 1`: C `fmod` (truncated; the sign of the dividend): `libm::fmod`
///   for floats, Rust `%` for integers. Exact.
/// - `fmod = 0`, integers: Python's `%` (floored; the sign of the divisor).
/// - `fmod = 0`, floats: numpy's `mod`: `r = fmod(a, b)`; if `r != 0` and
///   `r` and `b` differ in sign, `r = r + b`; if `r == 0`, `r = copysign(0, b)`.
///
/// Integer division by zero is an error of the node.
#[derive(Debug)]
struct Mod {
    fmod: bool,
}

/// Integer remainders (wrapping: `MIN % -1 = 0`).
trait IntRem: Num {
    fn rem_trunc(self, o: Self) -> Self;
}

macro_rules! impl_int_rem {
    ($($t:ty),*) => {$(
        impl IntRem for $t {
            #[inline]
            fn rem_trunc(self, o: Self) -> Self {
                self.wrapping_rem(o)
            }
        }
    )*};
}
impl_int_rem!(i64, i32, i8, u8);

fn mod_int<T: IntRem>(
    ctx: &Ctx<'_>,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    fmod: bool,
) -> OpResult<Data> {
    let bv = b.as_slice::<T>()?;
    ensure!(
        !bv.iter().any(|v| v.is_zero()),
        "Mod: integer division by zero"
    );
    let zero = T::default();
    Ok(T::wrap(map2(
        ctx,
        (a.as_slice::<T>()?, a.shape()),
        (bv, b.shape()),
        shape,
        move |x, y| {
            let r = x.rem_trunc(y);
            if !fmod && !r.is_zero() && ((r < zero) != (y < zero)) {
                r.add(y)
            } else {
                r
            }
        },
    )))
}

fn mod_float<T: ActFloat>(
    ctx: &Ctx<'_>,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    fmod: bool,
) -> OpResult<Data> {
    let zero = T::default();
    Ok(T::wrap(map2(
        ctx,
        (a.as_slice::<T>()?, a.shape()),
        (b.as_slice::<T>()?, b.shape()),
        shape,
        move |x, y| {
            let r = x.fmod(y);
            if fmod || r.is_nan() {
                r
            } else if r == zero {
                zero.copysign(y)
            } else if (r < zero) != (y < zero) {
                r.add(y)
            } else {
                r
            }
        },
    )))
}

impl Op for Mod {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let (dtype, shape) = two_inputs("Mod", inputs)?;
        Ok(vec![Fact::new(dtype, shape)])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        ensure!(
            a.dtype() == b.dtype(),
            "Mod inputs must have the same dtype"
        );
        let shape = broadcast_shapes(&[a.shape(), b.shape()])?;
        let fmod = self.fmod;
        let data = match a.dtype() {
            DType::F32 => mod_float::<f32>(ctx, a, b, &shape, fmod)?,
            DType::F64 => mod_float::<f64>(ctx, a, b, &shape, fmod)?,
            DType::I64 => mod_int::<i64>(ctx, a, b, &shape, fmod)?,
            DType::I32 => mod_int::<i32>(ctx, a, b, &shape, fmod)?,
            DType::I8 => mod_int::<i8>(ctx, a, b, &shape, fmod)?,
            DType::U8 => mod_int::<u8>(ctx, a, b, &shape, fmod)?,
            DType::Bool => bail!("Mod does not support bool inputs"),
        };
        Ok(vec![Tensor::new(shape, data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;
    use crate::ops::BuildCtx;

    fn build(op: &str, attrs: Vec<(&str, Attr)>) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset: 20,
            n_inputs: 1,
            n_outputs: 1,
        };
        crate::ops::build(&b)
    }

    fn run(op: &dyn Op, inputs: &[&Tensor]) -> OpResult<Tensor> {
        let facts: Vec<Fact> = inputs
            .iter()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        let inferred = op.infer(Args::new(&frefs))?;
        let trefs: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
        let out = op
            .run(&Ctx::single(Isa::Portable), Args::new(&trefs))?
            .remove(0);
        assert_eq!(inferred[0].dtype, out.dtype());
        assert_eq!(inferred[0].shape, out.shape());
        Ok(out)
    }

    fn f32s(op: &str, attrs: Vec<(&str, Attr)>, x: &[f32]) -> Vec<f32> {
        let op = build(op, attrs).unwrap();
        let t = Tensor::from_vec(vec![x.len()], x.to_vec()).unwrap();
        run(op.as_ref(), &[&t]).unwrap().f32s().unwrap().to_vec()
    }

    fn close(got: &[f32], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            let tol = 2e-6 * w.abs() + 1e-7; // log(1 + tiny) rounds to 0
            assert!((f64::from(*g) - w).abs() <= tol, "got {g}, want {w}");
        }
    }

    const XS: [f32; 9] = [-20.0, -3.0, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 20.0];

    fn reference(f: impl Fn(f64) -> f64) -> Vec<f64> {
        XS.iter().map(|&x| f(f64::from(x))).collect()
    }

    #[test]
    fn formulas_match_f64_references() {
        let sp = |x: f64| libm::log1p(libm::exp(x));
        close(
            &f32s("Elu", vec![], &XS),
            &reference(|x| if x < 0.0 { libm::expm1(x) } else { x }),
        );
        let (a, g) = (1.673_263_2f64, 1.050_701f64);
        close(
            &f32s("Selu", vec![], &XS),
            &reference(|x| {
                if x > 0.0 {
                    g * x
                } else {
                    g * a * libm::expm1(x)
                }
            }),
        );
        close(
            &f32s("Celu", vec![("alpha", Attr::Float(2.0))], &XS),
            &reference(|x| {
                if x < 0.0 {
                    2.0 * libm::expm1(x / 2.0)
                } else {
                    x
                }
            }),
        );
        close(&f32s("Softplus", vec![], &XS), &reference(sp));
        close(
            &f32s("Softsign", vec![], &XS),
            &reference(|x| x / (1.0 + x.abs())),
        );
        close(
            &f32s("HardSigmoid", vec![], &XS),
            &reference(|x| (0.2 * x + 0.5).clamp(0.0, 1.0)),
        );
        close(
            &f32s("HardSwish", vec![], &XS),
            &reference(|x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        );
        close(
            &f32s("Mish", vec![], &XS),
            &reference(|x| x * libm::tanh(sp(x))),
        );
        close(
            &f32s("Gelu", vec![], &XS),
            &reference(|x| 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))),
        );
        let c = (2.0 / std::f64::consts::PI).sqrt();
        close(
            &f32s(
                "Gelu",
                vec![("approximate", Attr::String("tanh".into()))],
                &XS,
            ),
            &reference(|x| 0.5 * x * (1.0 + libm::tanh(c * (x + 0.044715 * x * x * x)))),
        );
        close(&f32s("Sin", vec![], &XS), &reference(libm::sin));
        close(&f32s("Cos", vec![], &XS), &reference(libm::cos));
        assert_eq!(
            f32s(
                "ThresholdedRelu",
                vec![("alpha", Attr::Float(0.5))],
                &[0.5, 0.6, -1.0]
            ),
            [0.0, 0.6, 0.0]
        );
        assert_eq!(
            f32s("Round", vec![], &[0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6]),
            [0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0]
        );
        let s = f32s("Sign", vec![], &[-3.0, -0.0, 0.0, 7.0, f32::NAN]);
        assert_eq!(s[..4], [-1.0, 0.0, 0.0, 1.0]);
        assert!(s[4].is_nan());
    }

    #[test]
    fn nan_and_infinity_edges() {
        let inf = f32::INFINITY;
        for op in [
            "Elu",
            "Selu",
            "Celu",
            "Softplus",
            "Mish",
            "Gelu",
            "Sin",
            "Cos",
            "HardSigmoid",
        ] {
            assert!(f32s(op, vec![], &[f32::NAN])[0].is_nan(), "{op}(NaN)");
        }
        assert_eq!(
            f32s("Softplus", vec![], &[inf, -inf, 100.0]),
            [inf, 0.0, 100.0]
        );
        assert_eq!(f32s("Elu", vec![], &[-inf, inf]), [-1.0, inf]);
        assert_eq!(f32s("HardSigmoid", vec![], &[-inf, inf]), [0.0, 1.0]);
        assert_eq!(f32s("Gelu", vec![], &[-inf, inf])[1], inf);
        assert!(f32s("Sin", vec![], &[inf])[0].is_nan());
        let x = Tensor::from_vec(vec![4], vec![f32::NAN, inf, -inf, 1.0]).unwrap();
        let y = run(build("IsNaN", vec![]).unwrap().as_ref(), &[&x]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [true, false, false, false]);
        let y = run(build("IsInf", vec![]).unwrap().as_ref(), &[&x]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [false, true, true, false]);
        let op = build("IsInf", vec![("detect_positive", Attr::Int(0))]).unwrap();
        let y = run(op.as_ref(), &[&x]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [false, false, true, false]);
    }

    #[test]
    fn prelu_and_mod() {
        let x =
            Tensor::from_vec(vec![2, 3], vec![-1.0f32, 2.0, -3.0, -4.0, 5.0, f32::NAN]).unwrap();
        let s = Tensor::from_vec(vec![3], vec![0.1f32, 0.2, 0.3]).unwrap();
        let op = build("PRelu", vec![]).unwrap();
        let y = run(op.as_ref(), &[&x, &s]).unwrap();
        let y = y.f32s().unwrap();
        assert_eq!(y[..5], [-0.1, 2.0, -3.0 * 0.3f32, -0.4, 5.0]);
        assert!(y[5].is_nan());
        // The slope must broadcast to X, not the other way round.
        let big = Tensor::from_vec(vec![2, 2, 3], vec![0.5f32; 12]).unwrap();
        assert!(run(op.as_ref(), &[&x, &big]).is_err());
        let xi = Tensor::from_vec(vec![2], vec![-4i64, 4]).unwrap();
        let si = Tensor::scalar(3i64);
        assert_eq!(
            run(op.as_ref(), &[&xi, &si])
                .unwrap()
                .as_slice::<i64>()
                .unwrap(),
            [-12, 4]
        );

        let a = Tensor::from_vec(vec![4], vec![-7i32, 7, -7, 7]).unwrap();
        let b = Tensor::from_vec(vec![4], vec![3i32, -3, -3, 3]).unwrap();
        let m = build("Mod", vec![]).unwrap();
        assert_eq!(
            run(m.as_ref(), &[&a, &b])
                .unwrap()
                .as_slice::<i32>()
                .unwrap(),
            [2, -2, -1, 1]
        );
        let fm = build("Mod", vec![("fmod", Attr::Int(1))]).unwrap();
        assert_eq!(
            run(fm.as_ref(), &[&a, &b])
                .unwrap()
                .as_slice::<i32>()
                .unwrap(),
            [-1, 1, -1, 1]
        );
        let z = Tensor::from_vec(vec![1], vec![0i32]).unwrap();
        assert!(run(m.as_ref(), &[&a, &z]).is_err());
        let mn = Tensor::from_vec(vec![1], vec![i8::MIN]).unwrap();
        let m1 = Tensor::from_vec(vec![1], vec![-1i8]).unwrap();
        assert_eq!(
            run(m.as_ref(), &[&mn, &m1])
                .unwrap()
                .as_slice::<i8>()
                .unwrap(),
            [0]
        );
        let af = Tensor::from_vec(vec![4], vec![-7.5f32, 7.5, 6.0, 1.0]).unwrap();
        let bf = Tensor::from_vec(vec![4], vec![2.0f32, -2.0, -3.0, 0.0]).unwrap();
        let y = run(fm.as_ref(), &[&af, &bf]).unwrap();
        let y = y.f32s().unwrap();
        assert_eq!(y[..3], [-1.5, 1.5, 0.0]);
        assert!(y[3].is_nan());
        let y = run(m.as_ref(), &[&af, &bf]).unwrap();
        let y = y.f32s().unwrap();
        assert_eq!(y[..2], [0.5, -0.5]);
        assert_eq!(y[2].to_bits(), (-0.0f32).to_bits());
        // Mixed dtypes, bools and bad attributes are refused.
        assert!(run(m.as_ref(), &[&a, &af]).is_err());
        let t = Tensor::from_vec(vec![1], vec![true]).unwrap();
        assert!(run(m.as_ref(), &[&t, &t]).is_err());
        assert!(build("Mod", vec![("fmod", Attr::Int(2))]).is_err());
        assert!(build("Gelu", vec![("approximate", Attr::String("erf".into()))]).is_err());
        assert!(run(build("Elu", vec![]).unwrap().as_ref(), &[&a]).is_err());
    }

    #[test]
    fn f64_and_int_variants() {
        let op = build("Sin", vec![]).unwrap();
        let t = Tensor::from_vec(vec![2], vec![0.5f64, 1e6]).unwrap();
        let y = run(op.as_ref(), &[&t]).unwrap();
        assert_eq!(
            y.as_slice::<f64>().unwrap(),
            [libm::sin(0.5), libm::sin(1e6)]
        );
        let op = build("Sign", vec![]).unwrap();
        let t = Tensor::from_vec(vec![3], vec![-5i8, 0, 9]).unwrap();
        assert_eq!(
            run(op.as_ref(), &[&t]).unwrap().as_slice::<i8>().unwrap(),
            [-1, 0, 1]
        );
        let t = Tensor::from_vec(vec![2], vec![0u8, 9]).unwrap();
        assert_eq!(
            run(op.as_ref(), &[&t]).unwrap().as_slice::<u8>().unwrap(),
            [0, 1]
        );
        let op = build("Gelu", vec![]).unwrap();
        let t = Tensor::from_vec(vec![1], vec![1.0f64]).unwrap();
        let want = 0.5 * (1.0 + libm::erf(1.0 / std::f64::consts::SQRT_2));
        assert_eq!(
            run(op.as_ref(), &[&t]).unwrap().as_slice::<f64>().unwrap(),
            [want]
        );
    }

    #[test]
    fn threads_give_identical_bits() {
        let n = 100_003;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 30.0).collect();
        let t = Tensor::from_vec(vec![n], x).unwrap();
        let s = Tensor::from_vec(vec![1], vec![0.25f32]).unwrap();
        let d = Tensor::from_vec(vec![1], vec![1.75f32]).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let cases: Vec<(&str, Vec<&Tensor>)> = vec![
            ("Elu", vec![&t]),
            ("Softplus", vec![&t]),
            ("Mish", vec![&t]),
            ("Gelu", vec![&t]),
            ("Sin", vec![&t]),
            ("Cos", vec![&t]),
            ("HardSwish", vec![&t]),
            ("PRelu", vec![&t, &s]),
            ("Mod", vec![&t, &d]),
        ];
        for (name, ins) in cases {
            let op = build(name, vec![]).unwrap();
            let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
            let a = op
                .run(&Ctx::single(Isa::Portable), Args::new(&refs))
                .unwrap();
            let b = op
                .run(&Ctx::with_pool(Isa::Portable, &pool), Args::new(&refs))
                .unwrap();
            assert_eq!(a[0].hash(), b[0].hash(), "{name}");
        }
    }
}

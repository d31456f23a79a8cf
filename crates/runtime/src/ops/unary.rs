//! Element-wise operators of one input: Neg, Abs, Reciprocal, Sqrt, Exp, Log,
//! Floor, Ceil, Relu, LeakyRelu, Sigmoid, Tanh, Erf, Not, and Clip.
//!
//! Float32 transcendentals use [`crate::canon`], float64 ones the `libm`
//! float64 functions (docs/determinism.md, "Transcendental functions"); the
//! exact ops follow "Integers, comparisons and casts".

use super::{Args, BuildCtx, Fact, Op, Region, Registry};
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::kernels::elementwise::{Float, Num, by_num, map};
use crate::tensor::{DType, Data, Elem, Tensor};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Neg", |_| Ok(Box::new(Unary(Kind::Neg))));
    r.add("Abs", |_| Ok(Box::new(Unary(Kind::Abs))));
    r.add("Reciprocal", |_| Ok(Box::new(Unary(Kind::Reciprocal))));
    r.add("Sqrt", |_| Ok(Box::new(Unary(Kind::Sqrt))));
    r.add("Exp", |_| Ok(Box::new(Unary(Kind::Exp))));
    r.add("Log", |_| Ok(Box::new(Unary(Kind::Log))));
    r.add("Floor", |_| Ok(Box::new(Unary(Kind::Floor))));
    r.add("Ceil", |_| Ok(Box::new(Unary(Kind::Ceil))));
    r.add("Relu", |_| Ok(Box::new(Unary(Kind::Relu))));
    r.add("LeakyRelu", |b| {
        Ok(Box::new(Unary(Kind::LeakyRelu(
            b.attrs.float("alpha", 0.01)?,
        ))))
    });
    r.add("Sigmoid", |_| Ok(Box::new(Unary(Kind::Sigmoid))));
    r.add("Tanh", |_| Ok(Box::new(Unary(Kind::Tanh))));
    r.add("Erf", |_| Ok(Box::new(Unary(Kind::Erf))));
    r.add("Not", |_| Ok(Box::new(Unary(Kind::Not))));
    r.add("Clip", build_clip);
}

/// Which element-wise function a [`Unary`] applies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Neg,
    Abs,
    /// `1 / x`, one correctly rounded division.
    Reciprocal,
    Sqrt,
    Exp,
    Log,
    Floor,
    Ceil,
    /// `max(x, 0)` with the NaN/zero rule: `Relu(NaN) = NaN`, `Relu(-0) = -0`.
    Relu,
    /// `x < 0 ? alpha * x : x` (NaN stays NaN).
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Erf,
    Not,
}

impl Kind {
    /// Whether the op accepts the dtype (ONNX type constraints).
    fn accepts(self, d: DType) -> bool {
        match self {
            Kind::Neg | Kind::Relu => matches!(
                d,
                DType::F32 | DType::F64 | DType::I64 | DType::I32 | DType::I8
            ),
            Kind::Abs => d != DType::Bool,
            Kind::Not => d == DType::Bool,
            _ => d.is_float(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Neg => "Neg",
            Kind::Abs => "Abs",
            Kind::Reciprocal => "Reciprocal",
            Kind::Sqrt => "Sqrt",
            Kind::Exp => "Exp",
            Kind::Log => "Log",
            Kind::Floor => "Floor",
            Kind::Ceil => "Ceil",
            Kind::Relu => "Relu",
            Kind::LeakyRelu(_) => "LeakyRelu",
            Kind::Sigmoid => "Sigmoid",
            Kind::Tanh => "Tanh",
            Kind::Erf => "Erf",
            Kind::Not => "Not",
        }
    }
}

/// A one-input element-wise op; the output has the input's dtype and shape.
#[derive(Debug)]
struct Unary(Kind);

/// The float kernels.
fn run_float<T: Float>(ctx: &Ctx<'_>, kind: Kind, x: &[T]) -> Vec<T> {
    let zero = T::default();
    match kind {
        Kind::Neg => map(ctx, x, Num::neg),
        Kind::Abs => map(ctx, x, Num::abs),
        Kind::Reciprocal => {
            let one = T::from_f32(1.0);
            map(ctx, x, move |v| one.div(v))
        }
        Kind::Sqrt => map(ctx, x, Float::sqrt),
        Kind::Exp => map(ctx, x, Float::exp),
        Kind::Log => map(ctx, x, Float::ln),
        Kind::Floor => map(ctx, x, Float::floor),
        Kind::Ceil => map(ctx, x, Float::ceil),
        Kind::Relu => map(ctx, x, move |v| v.max(zero)),
        Kind::LeakyRelu(alpha) => {
            let alpha = T::from_f32(alpha);
            map(ctx, x, move |v| if v < zero { alpha.mul(v) } else { v })
        }
        Kind::Sigmoid => map(ctx, x, Float::sigmoid),
        Kind::Tanh => map(ctx, x, Float::tanh),
        Kind::Erf => map(ctx, x, Float::erf),
        // Rejected by `accepts`.
        Kind::Not => x.to_vec(),
    }
}

/// The integer kernels (wrapping Neg/Abs, Relu as max with 0).
fn run_int<T: Num>(ctx: &Ctx<'_>, kind: Kind, x: &[T]) -> OpResult<Vec<T>> {
    Ok(match kind {
        Kind::Neg => map(ctx, x, Num::neg),
        Kind::Abs => map(ctx, x, Num::abs),
        Kind::Relu => {
            let zero = T::default();
            map(ctx, x, move |v| v.max(zero))
        }
        _ => bail!("{} does not support {}", kind.name(), T::DTYPE),
    })
}

impl Op for Unary {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        ensure!(
            inputs.len() == 1,
            "{} takes 1 input, got {}",
            self.0.name(),
            inputs.len()
        );
        let x = inputs.get(0)?;
        ensure!(
            self.0.accepts(x.dtype),
            "{} does not support {} inputs",
            self.0.name(),
            x.dtype
        );
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let kind = self.0;
        ensure!(
            kind.accepts(x.dtype()),
            "{} does not support {} inputs",
            kind.name(),
            x.dtype()
        );
        let data = match x.data() {
            Data::F32(v) => Data::F32(run_float(ctx, kind, v)),
            Data::F64(v) => Data::F64(run_float(ctx, kind, v)),
            Data::I64(v) => Data::I64(run_int(ctx, kind, v)?),
            Data::I32(v) => Data::I32(run_int(ctx, kind, v)?),
            Data::I8(v) => Data::I8(run_int(ctx, kind, v)?),
            Data::U8(v) => Data::U8(run_int(ctx, kind, v)?),
            Data::Bool(v) => Data::Bool(map(ctx, v, |b: bool| !b)),
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

/// Clip: `y = min(max(x, lo), hi)` with the Max/Min rules of
/// docs/determinism.md (NaN stays NaN; `lo > hi` gives `hi`).
///
/// Opset < 11 reads float attributes `min`/`max` (defaults: the lowest and
/// highest finite float32, as ONNX specifies); opset >= 11 reads optional
/// one-element inputs 1 and 2 of the input's dtype (omitted: no bound).
#[derive(Debug)]
struct Clip {
    attr_bounds: Option<(f32, f32)>,
}

fn build_clip(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let attr_bounds = if b.opset < 11 {
        Some((
            b.attrs.float("min", f32::MIN)?,
            b.attrs.float("max", f32::MAX)?,
        ))
    } else {
        None
    };
    Ok(Box::new(Clip { attr_bounds }))
}

fn clip<T: Num>(ctx: &Ctx<'_>, x: &[T], lo: T, hi: T) -> Vec<T> {
    map(ctx, x, move |v| v.max(lo).min(hi))
}

/// The value of an optional one-element bound input, or `default`.
fn bound<T: Num>(t: Option<&Tensor>, default: T, what: &str) -> OpResult<T> {
    match t {
        None => Ok(default),
        Some(t) => {
            let v = t
                .as_slice::<T>()
                .map_err(|e| crate::error::OpError(format!("Clip {what}: {}", e.0)))?;
            ensure!(
                v.len() == 1,
                "Clip {what} must be a scalar, got shape {:?}",
                t.shape()
            );
            Ok(v[0])
        }
    }
}

impl Op for Clip {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        if self.attr_bounds.is_some() {
            ensure!(
                inputs.len() == 1,
                "Clip (opset < 11) takes 1 input, got {}",
                inputs.len()
            );
            ensure!(
                x.dtype.is_float(),
                "Clip (opset < 11) does not support {} inputs",
                x.dtype
            );
        } else {
            ensure!(
                inputs.len() <= 3,
                "Clip takes 1 to 3 inputs, got {}",
                inputs.len()
            );
            ensure!(x.dtype != DType::Bool, "Clip does not support bool inputs");
            for (i, what) in [(1, "min"), (2, "max")] {
                if let Some(b) = inputs.opt(i) {
                    ensure!(
                        b.dtype == x.dtype,
                        "Clip {what} must have the input's dtype {}, got {}",
                        x.dtype,
                        b.dtype
                    );
                    ensure!(
                        b.len() == 1,
                        "Clip {what} must be a scalar, got shape {:?}",
                        b.shape
                    );
                }
            }
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let data = match (self.attr_bounds, x.data()) {
            (Some((lo, hi)), Data::F32(v)) => Data::F32(clip(ctx, v, lo, hi)),
            (Some((lo, hi)), Data::F64(v)) => Data::F64(clip(ctx, v, f64::from(lo), f64::from(hi))),
            (Some(_), _) => bail!("Clip (opset < 11) does not support {} inputs", x.dtype()),
            (None, _) => by_num!(x.dtype(), T => {
                let lo = bound::<T>(inputs.opt(1), T::LOWEST, "min")?;
                let hi = bound::<T>(inputs.opt(2), T::HIGHEST, "max")?;
                T::wrap(clip(ctx, x.as_slice::<T>()?, lo, hi))
            }, bool => bail!("Clip does not support bool inputs")),
        };
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn build(op: &str, opset: i64, attrs: Vec<(String, Attr)>) -> Box<dyn Op> {
        let attrs = Attrs::new(attrs);
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs: 1,
            n_outputs: 1,
        };
        super::super::build(&b).unwrap()
    }

    fn run1(op: &dyn Op, inputs: &[Option<&Tensor>]) -> OpResult<Tensor> {
        let facts: Vec<Fact> = inputs
            .iter()
            .flatten()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let mut it = facts.iter();
        let frefs: Vec<Option<&Fact>> = inputs.iter().map(|t| t.and_then(|_| it.next())).collect();
        let inferred = op.infer(Args::new(&frefs))?;
        let out = op
            .run(&Ctx::single(Isa::Portable), Args::new(inputs))?
            .remove(0);
        assert_eq!(inferred[0].dtype, out.dtype());
        assert_eq!(inferred[0].shape, out.shape());
        Ok(out)
    }

    fn f32s(op: &str, x: &[f32]) -> Vec<f32> {
        let op = build(op, 13, vec![]);
        let t = Tensor::from_vec(vec![x.len()], x.to_vec()).unwrap();
        run1(op.as_ref(), &[Some(&t)])
            .unwrap()
            .f32s()
            .unwrap()
            .to_vec()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn relu_follows_the_nan_and_zero_rules() {
        let y = f32s("Relu", &[-1.0, -0.0, 0.0, 2.0, f32::NAN, f32::NEG_INFINITY]);
        assert_eq!(bits(&y[..4]), bits(&[0.0, -0.0, 0.0, 2.0]));
        assert!(y[4].is_nan());
        assert_eq!(y[5], 0.0);
    }

    #[test]
    fn float_functions() {
        let y = f32s("LeakyRelu", &[-2.0, 3.0, f32::NAN]);
        assert_eq!(y[..2], [-2.0 * 0.01f32, 3.0]);
        assert!(y[2].is_nan());
        assert_eq!(
            f32s("Reciprocal", &[4.0, 0.0, -0.0]),
            [0.25, f32::INFINITY, f32::NEG_INFINITY]
        );
        assert_eq!(f32s("Sqrt", &[4.0, 2.0])[..], [2.0, 2.0f32.sqrt()]);
        assert!(f32s("Sqrt", &[-1.0])[0].is_nan());
        assert_eq!(f32s("Floor", &[-1.5, 1.5]), [-2.0, 1.0]);
        assert_eq!(f32s("Ceil", &[-1.5, 1.5]), [-1.0, 2.0]);
        assert_eq!(f32s("Exp", &[0.0, 1.0]), [1.0, crate::canon::exp(1.0)]);
        assert_eq!(f32s("Log", &[1.0, 0.0]), [0.0, f32::NEG_INFINITY]);
        assert_eq!(f32s("Tanh", &[0.5]), [crate::canon::tanh(0.5)]);
        assert_eq!(f32s("Sigmoid", &[0.5]), [crate::canon::sigmoid(0.5)]);
        assert_eq!(f32s("Erf", &[0.5]), [crate::canon::erf(0.5)]);
        assert_eq!(bits(&f32s("Neg", &[0.0, 1.0])), bits(&[-0.0, -1.0]));
        assert_eq!(f32s("Abs", &[-0.0, -3.0]), [0.0, 3.0]);
    }

    #[test]
    fn f64_and_int_variants() {
        let op = build("Exp", 13, vec![]);
        let t = Tensor::from_vec(vec![2], vec![0.0f64, 1.0]).unwrap();
        let y = run1(op.as_ref(), &[Some(&t)]).unwrap();
        assert_eq!(y.as_slice::<f64>().unwrap(), [1.0, libm::exp(1.0)]);
        let op = build("Neg", 13, vec![]);
        let t = Tensor::from_vec(vec![3], vec![i8::MIN, 1, -5]).unwrap();
        let y = run1(op.as_ref(), &[Some(&t)]).unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), [i8::MIN, -1, 5]);
        let op = build("Abs", 13, vec![]);
        let y = run1(op.as_ref(), &[Some(&t)]).unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), [i8::MIN, 1, 5]);
        let op = build("Relu", 14, vec![]);
        let t = Tensor::from_vec(vec![2], vec![-3i64, 4]).unwrap();
        assert_eq!(
            run1(op.as_ref(), &[Some(&t)])
                .unwrap()
                .as_slice::<i64>()
                .unwrap(),
            [0, 4]
        );
        // Float-only ops reject integers; Neg rejects uint8.
        assert!(run1(build("Exp", 13, vec![]).as_ref(), &[Some(&t)]).is_err());
        let u = Tensor::from_vec(vec![1], vec![1u8]).unwrap();
        assert!(run1(build("Neg", 13, vec![]).as_ref(), &[Some(&u)]).is_err());
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let y = run1(build("Not", 13, vec![]).as_ref(), &[Some(&b)]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [false, true]);
        assert!(run1(build("Not", 13, vec![]).as_ref(), &[Some(&t)]).is_err());
    }

    #[test]
    fn clip_both_opset_forms() {
        let x =
            Tensor::from_vec(vec![5], vec![-5.0f32, 0.5, 5.0, f32::NAN, f32::INFINITY]).unwrap();
        let op = build(
            "Clip",
            6,
            vec![
                ("min".into(), Attr::Float(-1.0)),
                ("max".into(), Attr::Float(1.0)),
            ],
        );
        let y = run1(op.as_ref(), &[Some(&x)]).unwrap();
        assert_eq!(y.f32s().unwrap()[..3], [-1.0, 0.5, 1.0]);
        assert!(y.f32s().unwrap()[3].is_nan());
        // Opset 6 defaults clamp to the finite float range.
        let y = run1(build("Clip", 6, vec![]).as_ref(), &[Some(&x)]).unwrap();
        assert_eq!(y.f32s().unwrap()[4], f32::MAX);

        let op = build("Clip", 13, vec![]);
        let lo = Tensor::scalar(-1.0f32);
        let hi = Tensor::scalar(1.0f32);
        let y = run1(op.as_ref(), &[Some(&x), Some(&lo), Some(&hi)]).unwrap();
        assert_eq!(y.f32s().unwrap()[..3], [-1.0, 0.5, 1.0]);
        let y = run1(op.as_ref(), &[Some(&x), None, Some(&hi)]).unwrap();
        assert_eq!(y.f32s().unwrap()[..3], [-5.0, 0.5, 1.0]);
        let y = run1(op.as_ref(), &[Some(&x)]).unwrap();
        assert_eq!(y.f32s().unwrap()[4], f32::INFINITY);
        // min > max gives max.
        let y = run1(op.as_ref(), &[Some(&x), Some(&hi), Some(&lo)]).unwrap();
        assert_eq!(y.f32s().unwrap()[..3], [-1.0, -1.0, -1.0]);
        // Integers.
        let xi = Tensor::from_vec(vec![3], vec![-7i32, 3, 9]).unwrap();
        let (l, h) = (Tensor::scalar(0i32), Tensor::scalar(5i32));
        let y = run1(op.as_ref(), &[Some(&xi), Some(&l), Some(&h)]).unwrap();
        assert_eq!(y.as_slice::<i32>().unwrap(), [0, 3, 5]);
        // A bound of the wrong dtype is refused.
        assert!(run1(op.as_ref(), &[Some(&xi), Some(&lo)]).is_err());
        assert!(run1(build("Clip", 6, vec![]).as_ref(), &[Some(&xi)]).is_err());
    }

    #[test]
    fn threads_give_identical_bits() {
        let n = 300_001;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 20.0).collect();
        let t = Tensor::from_vec(vec![n], x).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for op in ["Exp", "Tanh", "Sigmoid", "Relu", "Log", "Erf"] {
            let op = build(op, 13, vec![]);
            let a = op
                .run(&Ctx::single(Isa::Portable), Args::new(&[Some(&t)]))
                .unwrap();
            let b = op
                .run(
                    &Ctx::with_pool(Isa::Portable, &pool),
                    Args::new(&[Some(&t)]),
                )
                .unwrap();
            assert_eq!(a[0].hash(), b[0].hash());
        }
    }

    #[test]
    fn every_kernel_path_gives_the_portable_bits() {
        // Every 65521st bit pattern: NaNs, infinities, subnormals, zeros.
        let x: Vec<f32> = (0..=u32::MAX / 65_521)
            .map(|i| f32::from_bits(i * 65_521))
            .chain([0.0, -0.0, 88.72284, -103.97208, -17.0, 9.0, -9.0])
            .collect();
        let t = Tensor::from_vec(vec![x.len()], x).unwrap();
        for name in ["Exp", "Tanh", "Sigmoid", "Erf", "Log"] {
            let op = build(name, 13, vec![]);
            let want = op
                .run(&Ctx::single(Isa::Portable), Args::new(&[Some(&t)]))
                .unwrap();
            for isa in Isa::supported() {
                let got = op.run(&Ctx::single(isa), Args::new(&[Some(&t)])).unwrap();
                assert_eq!(
                    bits(got[0].f32s().unwrap()),
                    bits(want[0].f32s().unwrap()),
                    "{name} on {isa:?}"
                );
            }
        }
    }
}

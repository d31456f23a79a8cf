//! Element-wise operators of several inputs with ONNX multidirectional
//! broadcasting: Add, Sub, Mul, Div, Pow, the variadic Max, Min, Sum and Mean,
//! the comparisons Equal, Less, Greater, LessOrEqual, GreaterOrEqual, the
//! logical And, Or, Xor, and Where.
//!
//! Arithmetic follows docs/determinism.md: integers wrap, integer Div
//! truncates toward zero and division by zero is an error ("Integers,
//! comparisons and casts"); Max/Min propagate NaN and keep the first of equal
//! values, variadic Sum/Mean add left to right and Mean divides by the count
//! ("Sums over an axis"); float32 Pow is `canon::pow` ("Transcendental
//! functions").

use super::util::by_dtype;
use super::{Args, Fact, Op, Region, Registry};
use crate::broadcast::broadcast_shapes;
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::kernels::elementwise::{Float, Num, by_num, map, map2, map3};
use crate::tensor::{DType, Data, Elem, Tensor};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Add", |_| Ok(Box::new(Binary(Kind::Add))));
    r.add("Sub", |_| Ok(Box::new(Binary(Kind::Sub))));
    r.add("Mul", |_| Ok(Box::new(Binary(Kind::Mul))));
    r.add("Div", |_| Ok(Box::new(Binary(Kind::Div))));
    r.add("Pow", |_| Ok(Box::new(Binary(Kind::Pow))));
    r.add("Max", |_| Ok(Box::new(Binary(Kind::Max))));
    r.add("Min", |_| Ok(Box::new(Binary(Kind::Min))));
    r.add("Sum", |_| Ok(Box::new(Binary(Kind::Sum))));
    r.add("Mean", |_| Ok(Box::new(Binary(Kind::Mean))));
    r.add("Equal", |_| Ok(Box::new(Binary(Kind::Equal))));
    r.add("Less", |_| Ok(Box::new(Binary(Kind::Less))));
    r.add("Greater", |_| Ok(Box::new(Binary(Kind::Greater))));
    r.add("LessOrEqual", |_| Ok(Box::new(Binary(Kind::LessOrEqual))));
    r.add("GreaterOrEqual", |_| {
        Ok(Box::new(Binary(Kind::GreaterOrEqual)))
    });
    r.add("And", |_| Ok(Box::new(Binary(Kind::And))));
    r.add("Or", |_| Ok(Box::new(Binary(Kind::Or))));
    r.add("Xor", |_| Ok(Box::new(Binary(Kind::Xor))));
    r.add("Where", |_| Ok(Box::new(Where)));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Sum,
    Mean,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Add => "Add",
            Kind::Sub => "Sub",
            Kind::Mul => "Mul",
            Kind::Div => "Div",
            Kind::Pow => "Pow",
            Kind::Max => "Max",
            Kind::Min => "Min",
            Kind::Sum => "Sum",
            Kind::Mean => "Mean",
            Kind::Equal => "Equal",
            Kind::Less => "Less",
            Kind::Greater => "Greater",
            Kind::LessOrEqual => "LessOrEqual",
            Kind::GreaterOrEqual => "GreaterOrEqual",
            Kind::And => "And",
            Kind::Or => "Or",
            Kind::Xor => "Xor",
        }
    }

    fn variadic(self) -> bool {
        matches!(self, Kind::Max | Kind::Min | Kind::Sum | Kind::Mean)
    }

    /// Whether the (first) input dtype is accepted (ONNX type constraints).
    fn accepts(self, d: DType) -> bool {
        match self {
            Kind::Sum | Kind::Mean => d.is_float(),
            Kind::Equal => true,
            Kind::And | Kind::Or | Kind::Xor => d == DType::Bool,
            _ => d != DType::Bool,
        }
    }

    /// The output dtype for the input dtype.
    fn out_dtype(self, d: DType) -> DType {
        match self {
            Kind::Equal
            | Kind::Less
            | Kind::Greater
            | Kind::LessOrEqual
            | Kind::GreaterOrEqual
            | Kind::And
            | Kind::Or
            | Kind::Xor => DType::Bool,
            _ => d,
        }
    }
}

/// An element-wise op of two (or, for Max/Min/Sum/Mean, one or more)
/// broadcast inputs.
#[derive(Debug)]
struct Binary(Kind);

impl Binary {
    /// Checks the input dtypes; returns the first input's dtype.
    fn check(&self, dtypes: &[DType]) -> OpResult<DType> {
        let k = self.0;
        if k.variadic() {
            ensure!(!dtypes.is_empty(), "{} needs at least 1 input", k.name());
        } else {
            ensure!(
                dtypes.len() == 2,
                "{} takes 2 inputs, got {}",
                k.name(),
                dtypes.len()
            );
        }
        let d = dtypes[0];
        ensure!(k.accepts(d), "{} does not support {d} inputs", k.name());
        if k == Kind::Pow {
            ensure!(
                dtypes[1] != DType::Bool,
                "Pow does not support a bool exponent"
            );
        } else {
            for (i, &o) in dtypes.iter().enumerate().skip(1) {
                ensure!(
                    o == d,
                    "{} needs inputs of one dtype, but input 0 is {d} and input {i} is {o}",
                    k.name()
                );
            }
        }
        Ok(d)
    }
}

/// Arithmetic of two same-dtype tensors.
fn arith<T: Num>(
    ctx: &Ctx<'_>,
    kind: Kind,
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    out: &[usize],
) -> OpResult<Vec<T>> {
    Ok(match kind {
        Kind::Add | Kind::Sum | Kind::Mean => map2(ctx, a, b, out, T::add),
        Kind::Sub => map2(ctx, a, b, out, T::sub),
        Kind::Mul => map2(ctx, a, b, out, T::mul),
        Kind::Div => {
            // With a non-empty output every divisor element is used.
            if T::INT && out.iter().all(|&d| d > 0) && b.0.iter().any(|x| x.is_zero()) {
                bail!("integer division by zero in Div");
            }
            map2(ctx, a, b, out, T::div)
        }
        Kind::Max => map2(ctx, a, b, out, T::max),
        Kind::Min => map2(ctx, a, b, out, T::min),
        _ => bail!("internal: {} is not arithmetic", kind.name()),
    })
}

/// A comparison of two same-dtype tensors (IEEE: any comparison with NaN is
/// false, so `Equal(NaN, NaN)` is false).
fn compare<T: Copy + PartialOrd + Sync>(
    ctx: &Ctx<'_>,
    kind: Kind,
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    out: &[usize],
) -> OpResult<Vec<bool>> {
    Ok(match kind {
        Kind::Equal => map2(ctx, a, b, out, |x, y| x == y),
        Kind::Less => map2(ctx, a, b, out, |x, y| x < y),
        Kind::Greater => map2(ctx, a, b, out, |x, y| x > y),
        Kind::LessOrEqual => map2(ctx, a, b, out, |x, y| x <= y),
        Kind::GreaterOrEqual => map2(ctx, a, b, out, |x, y| x >= y),
        _ => bail!("internal: {} is not a comparison", kind.name()),
    })
}

/// Variadic Max/Min/Sum folded left to right, with broadcasting.
fn fold<T: Num>(ctx: &Ctx<'_>, kind: Kind, xs: &[&Tensor]) -> OpResult<(Vec<T>, Vec<usize>)> {
    let [first, rest @ ..] = xs else {
        bail!("{} needs at least one input", kind.name());
    };
    let Some((second, rest)) = rest.split_first() else {
        return Ok((first.as_slice::<T>()?.to_vec(), first.shape().to_vec()));
    };
    // The first step reads both inputs in place (no copy of the first).
    let mut shape = broadcast_shapes(&[first.shape(), second.shape()])?;
    let mut acc = arith(
        ctx,
        kind,
        (first.as_slice::<T>()?, first.shape()),
        (second.as_slice::<T>()?, second.shape()),
        &shape,
    )?;
    for x in rest {
        let out = broadcast_shapes(&[&shape, x.shape()])?;
        acc = arith(
            ctx,
            kind,
            (&acc, &shape),
            (x.as_slice::<T>()?, x.shape()),
            &out,
        )?;
        shape = out;
    }
    Ok((acc, shape))
}

fn mean<T: Float>(ctx: &Ctx<'_>, xs: &[&Tensor]) -> OpResult<(Vec<T>, Vec<usize>)> {
    let (sum, shape) = fold::<T>(ctx, Kind::Sum, xs)?;
    let n = T::from_usize(xs.len());
    Ok((map(ctx, &sum, move |s| s.div(n)), shape))
}

fn pow<T: Num>(ctx: &Ctx<'_>, a: &Tensor, b: &Tensor, out: &[usize]) -> OpResult<Vec<T>> {
    let x = (a.as_slice::<T>()?, a.shape());
    Ok(by_num!(b.dtype(), E => {
        map2(ctx, x, (b.as_slice::<E>()?, b.shape()), out, |x: T, e: E| x.pow(e))
    }, bool => bail!("Pow does not support a bool exponent")))
}

impl Op for Binary {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        ensure!(
            inputs.present().count() == inputs.len(),
            "{} does not take omitted inputs",
            self.0.name()
        );
        let facts: Vec<&Fact> = inputs.present().collect();
        let dtypes: Vec<DType> = facts.iter().map(|f| f.dtype).collect();
        let d = self.check(&dtypes)?;
        let shapes: Vec<&[usize]> = facts.iter().map(|f| f.shape.as_slice()).collect();
        let shape = broadcast_shapes(&shapes)?;
        Ok(vec![Fact::new(self.0.out_dtype(d), shape)])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let xs: Vec<&Tensor> = inputs.present().collect();
        let dtypes: Vec<DType> = xs.iter().map(|t| t.dtype()).collect();
        let d = self.check(&dtypes)?;
        let kind = self.0;
        let (data, shape) = match kind {
            Kind::Max | Kind::Min | Kind::Sum => by_num!(d, T => {
                let (v, s) = fold::<T>(ctx, kind, &xs)?;
                (T::wrap(v), s)
            }, bool => bail!("{} does not support bool inputs", kind.name())),
            Kind::Mean => match d {
                DType::F32 => {
                    let (v, s) = mean::<f32>(ctx, &xs)?;
                    (Data::F32(v), s)
                }
                DType::F64 => {
                    let (v, s) = mean::<f64>(ctx, &xs)?;
                    (Data::F64(v), s)
                }
                _ => bail!("Mean does not support {d} inputs"),
            },
            _ => {
                let (a, b) = (xs[0], xs[1]);
                let out = broadcast_shapes(&[a.shape(), b.shape()])?;
                let sa = (a.shape(), b.shape());
                let data = match kind {
                    Kind::Add | Kind::Sub | Kind::Mul | Kind::Div => by_num!(d, T => {
                        T::wrap(arith::<T>(
                            ctx,
                            kind,
                            (a.as_slice()?, sa.0),
                            (b.as_slice()?, sa.1),
                            &out,
                        )?)
                    }, bool => bail!("{} does not support bool inputs", kind.name())),
                    Kind::Pow => by_num!(d, T => T::wrap(pow::<T>(ctx, a, b, &out)?),
                        bool => bail!("Pow does not support bool inputs")),
                    Kind::And | Kind::Or | Kind::Xor => {
                        let (x, y) = ((a.as_slice::<bool>()?, sa.0), (b.as_slice::<bool>()?, sa.1));
                        Data::Bool(match kind {
                            Kind::And => map2(ctx, x, y, &out, |p, q| p & q),
                            Kind::Or => map2(ctx, x, y, &out, |p, q| p | q),
                            _ => map2(ctx, x, y, &out, |p, q| p ^ q),
                        })
                    }
                    _ => Data::Bool(by_dtype!(d, T => compare::<T>(
                        ctx,
                        kind,
                        (a.as_slice()?, sa.0),
                        (b.as_slice()?, sa.1),
                        &out,
                    )?)),
                };
                (data, out)
            }
        };
        Ok(vec![Tensor::new(shape, data)?])
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

/// Where: `y = cond ? x : y` with three-way broadcasting.
#[derive(Debug)]
struct Where;

impl Op for Where {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        ensure!(
            inputs.len() == 3,
            "Where takes 3 inputs, got {}",
            inputs.len()
        );
        let (c, x, y) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        ensure!(
            c.dtype == DType::Bool,
            "Where condition must be bool, got {}",
            c.dtype
        );
        ensure!(
            x.dtype == y.dtype,
            "Where needs X and Y of one dtype, got {} and {}",
            x.dtype,
            y.dtype
        );
        let shape = broadcast_shapes(&[&c.shape, &x.shape, &y.shape])?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (c, x, y) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        ensure!(
            x.dtype() == y.dtype(),
            "Where needs X and Y of one dtype, got {} and {}",
            x.dtype(),
            y.dtype()
        );
        let out = broadcast_shapes(&[c.shape(), x.shape(), y.shape()])?;
        let cs = (c.as_slice::<bool>()?, c.shape());
        let data = by_dtype!(x.dtype(), T => T::wrap(map3(
            ctx,
            cs,
            (x.as_slice::<T>()?, x.shape()),
            (y.as_slice::<T>()?, y.shape()),
            &out,
            |c, a, b| if c { a } else { b },
        )));
        Ok(vec![Tensor::new(out, data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Attrs;
    use crate::kernels::Isa;
    use crate::ops::BuildCtx;

    fn op(name: &str) -> Box<dyn Op> {
        let attrs = Attrs::new(vec![]);
        let b = BuildCtx {
            op_type: name,
            attrs: &attrs,
            opset: 17,
            n_inputs: 2,
            n_outputs: 1,
        };
        super::super::build(&b).unwrap()
    }

    fn run_on(ctx: &Ctx<'_>, name: &str, xs: &[&Tensor]) -> OpResult<Tensor> {
        let o = op(name);
        let facts: Vec<Fact> = xs
            .iter()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        let inferred = o.infer(Args::new(&frefs))?;
        let refs: Vec<Option<&Tensor>> = xs.iter().map(|t| Some(*t)).collect();
        let out = o.run(ctx, Args::new(&refs))?.remove(0);
        assert_eq!(
            (inferred[0].dtype, inferred[0].shape.as_slice()),
            (out.dtype(), out.shape())
        );
        Ok(out)
    }

    fn run(name: &str, xs: &[&Tensor]) -> OpResult<Tensor> {
        run_on(&Ctx::single(Isa::Portable), name, xs)
    }

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn broadcasting() {
        let a = t(&[2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = t(&[3], vec![10.0f32, 20.0, 30.0]);
        let y = run("Add", &[&a, &b]).unwrap();
        assert_eq!(y.shape(), [2, 3]);
        assert_eq!(y.f32s().unwrap(), [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        let c = t(&[2, 1], vec![1.0f32, 2.0]);
        let y = run("Sub", &[&b, &c]).unwrap();
        assert_eq!(y.f32s().unwrap(), [9.0, 19.0, 29.0, 8.0, 18.0, 28.0]);
        let s = Tensor::scalar(2.0f32);
        assert_eq!(
            run("Mul", &[&s, &b]).unwrap().f32s().unwrap(),
            [20.0, 40.0, 60.0]
        );
        assert_eq!(
            run("Div", &[&b, &s]).unwrap().f32s().unwrap(),
            [5.0, 10.0, 15.0]
        );
        let e = t(&[0, 3], Vec::<f32>::new());
        assert_eq!(run("Add", &[&e, &b]).unwrap().shape(), [0, 3]);
        let bad = t(&[2], vec![1.0f32, 2.0]);
        assert!(run("Add", &[&a, &bad]).is_err());
    }

    #[test]
    fn dtype_mismatch_is_an_error() {
        let a = t(&[2], vec![1.0f32, 2.0]);
        let b = t(&[2], vec![1i64, 2]);
        let err = run("Add", &[&a, &b]).unwrap_err();
        assert!(
            err.0.contains("float32") && err.0.contains("int64"),
            "{err}"
        );
        let bb = t(&[2], vec![true, false]);
        assert!(run("Add", &[&bb, &bb]).is_err());
        assert!(run("Sum", &[&b, &b]).is_err());
        assert!(run("And", &[&a, &a]).is_err());
        assert!(run("Max", &[]).is_err());
    }

    #[test]
    fn integer_wrapping_and_division() {
        let a = t(&[4], vec![i32::MAX, i32::MIN, 7, -7]);
        let b = t(&[4], vec![1i32, -1, 2, 2]);
        assert_eq!(
            run("Add", &[&a, &b]).unwrap().as_slice::<i32>().unwrap(),
            [i32::MIN, i32::MAX, 9, -5]
        );
        assert_eq!(
            run("Div", &[&a, &b]).unwrap().as_slice::<i32>().unwrap(),
            [i32::MAX, i32::MIN, 3, -3]
        );
        let u = t(&[2], vec![250u8, 3]);
        let v = t(&[2], vec![10u8, 5]);
        assert_eq!(
            run("Add", &[&u, &v]).unwrap().as_slice::<u8>().unwrap(),
            [4, 8]
        );
        assert_eq!(
            run("Sub", &[&v, &u]).unwrap().as_slice::<u8>().unwrap(),
            [16, 2]
        );
        assert_eq!(
            run("Mul", &[&u, &v]).unwrap().as_slice::<u8>().unwrap(),
            [196, 15]
        );
        let z = t(&[2], vec![1i64, 0]);
        let err = run("Div", &[&z, &z]).unwrap_err();
        assert!(err.0.contains("division by zero"), "{err}");
        // Float division by zero is IEEE.
        let f = t(&[1], vec![0.0f32]);
        assert_eq!(
            run("Div", &[&t(&[1], vec![1.0f32]), &f])
                .unwrap()
                .f32s()
                .unwrap(),
            [f32::INFINITY]
        );
    }

    #[test]
    fn max_min_nan_rules_and_variadic() {
        let a = t(&[4], vec![1.0f32, f32::NAN, 0.0, -0.0]);
        let b = t(&[4], vec![f32::NAN, 2.0, -0.0, 0.0]);
        let c = Tensor::scalar(1.5f32);
        let y = run("Max", &[&a, &b, &c]).unwrap();
        let y = y.f32s().unwrap();
        assert!(y[0].is_nan() && y[1].is_nan());
        assert_eq!(y[2..], [1.5, 1.5]);
        let y = run("Max", &[&a, &b]).unwrap();
        let y = y.f32s().unwrap();
        assert_eq!(
            (y[2].to_bits(), y[3].to_bits()),
            (0.0f32.to_bits(), (-0.0f32).to_bits())
        );
        let y = run("Min", &[&a, &b]).unwrap();
        let y = y.f32s().unwrap();
        assert!(y[0].is_nan() && y[1].is_nan());
        assert_eq!(
            (y[2].to_bits(), y[3].to_bits()),
            (0.0f32.to_bits(), (-0.0f32).to_bits())
        );
        let single = run("Min", &[&c]).unwrap();
        assert_eq!(single.f32s().unwrap(), [1.5]);
        let i = t(&[3], vec![3i64, -1, 2]);
        let j = t(&[1], vec![0i64]);
        assert_eq!(
            run("Max", &[&i, &j]).unwrap().as_slice::<i64>().unwrap(),
            [3, 0, 2]
        );

        let x = t(&[3], vec![1e8f32, 1.0, -1e8]);
        let y = t(&[3], vec![1.0f32, 2.0, 3.0]);
        let w = t(&[1], vec![-1e8f32]);
        let s = run("Sum", &[&x, &y, &w]).unwrap();
        let want: Vec<f32> = (0..3)
            .map(|k| ([1e8f32, 1.0, -1e8][k] + [1.0f32, 2.0, 3.0][k]) - 1e8)
            .collect();
        assert_eq!(s.f32s().unwrap(), want.as_slice());
        let m = run("Mean", &[&x, &y, &w]).unwrap();
        let want: Vec<f32> = want.iter().map(|v| v / 3.0).collect();
        assert_eq!(m.f32s().unwrap(), want.as_slice());
        let m = run("Mean", &[&t(&[1], vec![1.0f64]), &t(&[1], vec![2.0f64])]).unwrap();
        assert_eq!(m.as_slice::<f64>().unwrap(), [1.5]);
    }

    #[test]
    fn pow_mixed_types() {
        let a = t(&[3], vec![2.0f32, 4.0, -8.0]);
        let e = t(&[3], vec![3i64, 0, 2]);
        let y = run("Pow", &[&a, &e]).unwrap();
        assert_eq!(y.f32s().unwrap(), [8.0, 1.0, 64.0]);
        let h = Tensor::scalar(0.5f64);
        let y = run("Pow", &[&a, &h]).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.f32s().unwrap()[..2], [crate::canon::pow(2.0, 0.5), 2.0]);
        assert!(y.f32s().unwrap()[2].is_nan());
        let i = t(&[3], vec![2i32, -3, 10]);
        let y = run("Pow", &[&i, &t(&[1], vec![3.0f32])]).unwrap();
        assert_eq!(y.as_slice::<i32>().unwrap(), [8, -27, 1000]);
        let d = t(&[1], vec![2.0f64]);
        assert_eq!(
            run("Pow", &[&d, &t(&[1], vec![10u8])])
                .unwrap()
                .as_slice::<f64>()
                .unwrap(),
            [1024.0]
        );
    }

    #[test]
    fn comparisons_logic_and_where() {
        let a = t(&[3], vec![1.0f32, f32::NAN, 3.0]);
        let b = t(&[1], vec![1.0f32]);
        let eq = |n: &str| {
            run(n, &[&a, &b])
                .unwrap()
                .as_slice::<bool>()
                .unwrap()
                .to_vec()
        };
        assert_eq!(eq("Equal"), [true, false, false]);
        assert_eq!(eq("Less"), [false, false, false]);
        assert_eq!(eq("Greater"), [false, false, true]);
        assert_eq!(eq("LessOrEqual"), [true, false, false]);
        assert_eq!(eq("GreaterOrEqual"), [true, false, true]);
        let p = t(&[2, 1], vec![true, false]);
        let q = t(&[2], vec![true, false]);
        let r = |n: &str| {
            run(n, &[&p, &q])
                .unwrap()
                .as_slice::<bool>()
                .unwrap()
                .to_vec()
        };
        assert_eq!(r("And"), [true, false, false, false]);
        assert_eq!(r("Or"), [true, true, true, false]);
        assert_eq!(r("Xor"), [false, true, true, false]);
        assert_eq!(r("Equal"), [true, false, false, true]);
        let x = t(&[2], vec![1i64, 2]);
        let y = Tensor::scalar(9i64);
        let w = run("Where", &[&p, &x, &y]).unwrap();
        assert_eq!(w.shape(), [2, 2]);
        assert_eq!(w.as_slice::<i64>().unwrap(), [1, 2, 9, 9]);
        assert!(run("Where", &[&x, &x, &y]).is_err());
        assert!(run("Where", &[&p, &x, &b]).is_err());
    }

    #[test]
    fn threads_give_identical_bits() {
        let n = 1 << 18;
        let a = t(
            &[64, n / 64],
            (0..n).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect(),
        );
        let b = t(
            &[n / 64],
            (0..n / 64)
                .map(|i| ((i as f32) * 0.11).cos() + 1.5)
                .collect(),
        );
        let c = t(&[64, 1], (0..64).map(|i| i as f32 * 0.25).collect());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let single = Ctx::single(Isa::Portable);
        let multi = Ctx::with_pool(Isa::Portable, &pool);
        for name in ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Less"] {
            for (x, y) in [(&a, &b), (&a, &a), (&b, &c), (&a, &c)] {
                let s = run_on(&single, name, &[x, y]).unwrap();
                let m = run_on(&multi, name, &[x, y]).unwrap();
                assert_eq!(s.hash(), m.hash(), "{name}");
            }
        }
        let s = run_on(&single, "Mean", &[&a, &b, &c]).unwrap();
        let m = run_on(&multi, "Mean", &[&a, &b, &c]).unwrap();
        assert_eq!(s.hash(), m.hash());
    }

    #[test]
    fn element_wise_regions_are_the_full_runs_elements() {
        use crate::ops::testing::{build, check_regions};
        let f = |shape: &[usize], seed: u64| {
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| ((i as u64 * 7919 + seed * 13) % 2000) as f32 / 1000.0 - 1.0)
                .collect();
            Tensor::from_vec(shape.to_vec(), v).unwrap()
        };
        let (a, b, c) = (f(&[3, 1, 70], 1), f(&[4, 1], 2), f(&[70], 3));
        for name in ["Add", "Sub", "Mul", "Div", "Pow", "Less", "Max"] {
            let op = build(name, vec![], 17, 2, 1);
            check_regions(&*op, &[Some(&a), Some(&b)], &[1, 33, 256]);
        }
        let op = build("Sum", vec![], 17, 3, 1);
        check_regions(&*op, &[Some(&a), Some(&b), Some(&c)], &[5, 256]);
        for name in [
            "Neg", "Sqrt", "Exp", "Erf", "Sigmoid", "Tanh", "Relu", "Softsign", "IsNaN",
        ] {
            if let Ok(op) = crate::ops::testing::try_build(name, vec![], 17, 1, 1) {
                check_regions(&*op, &[Some(&a)], &[1, 64, 256]);
            }
        }
        let bools = Tensor::from_vec(vec![300], (0..300).map(|i| i % 3 == 0).collect()).unwrap();
        check_regions(&*build("Not", vec![], 17, 1, 1), &[Some(&bools)], &[7, 256]);
    }
}

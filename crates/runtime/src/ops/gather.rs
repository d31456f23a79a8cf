//! Operators: indexed reads and writes (Gather, GatherElements, GatherND,
//! ScatterElements/Scatter, ScatterND).
//!
//! Data movement is exact and costs no flops. Every index is checked
//! against its axis (negative indices count from the end) before anything
//! is read or written. Scatter reductions apply the updates sequentially in
//! row-major index order (docs/determinism.md, "Sums over an axis", Max/Min
//! rules for max/min).

use super::reduce::Num;
use super::util::{
    by_dtype, ensure_int_dtype, for_each_index, normalize_axis, resolve, shape_len, tensor_ints,
    to_dim, wrap,
};
use super::{Args, BuildCtx, Fact, Op, Registry, movement_cost};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{Data, Tensor, strides};
use crate::{bail, ensure, with_data};

pub(crate) fn register(r: &mut Registry) {
    r.add("Gather", |c| {
        Ok(Box::new(Gather {
            axis: c.attrs.int("axis", 0)?,
        }))
    });
    r.add("GatherElements", |c| {
        Ok(Box::new(GatherElements {
            axis: c.attrs.int("axis", 0)?,
        }))
    });
    r.add("GatherND", |c| {
        Ok(Box::new(GatherNd {
            batch_dims: c.attrs.int("batch_dims", 0)?,
        }))
    });
    r.add("ScatterElements", build_scatter_elements);
    r.add("Scatter", build_scatter_elements);
    r.add("ScatterND", |c| {
        Ok(Box::new(ScatterNd {
            reduction: Reduction::parse(c)?,
        }))
    });
}

// ---------------------------------------------------------------- Gather

#[derive(Debug)]
struct Gather {
    axis: i64,
}

impl Gather {
    fn shape(&self, data: &[usize], indices: &[usize]) -> OpResult<(usize, Vec<usize>)> {
        ensure!(!data.is_empty(), "Gather data must have rank >= 1");
        let axis = normalize_axis(self.axis, data.len())?;
        let mut out = data[..axis].to_vec();
        out.extend_from_slice(indices);
        out.extend_from_slice(&data[axis + 1..]);
        shape_len(&out)?;
        Ok((axis, out))
    }
}

fn gather_typed<T: Copy>(v: &[T], outer: usize, d: usize, inner: usize, idx: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let start = (o * d + i) * inner;
            out.extend_from_slice(&v[start..start + inner]);
        }
    }
    out
}

impl Op for Gather {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        ensure_int_dtype(i.dtype, "indices")?;
        let (_, out) = self.shape(&x.shape, &i.shape)?;
        Ok(vec![Fact::new(x.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        ensure_int_dtype(it.dtype(), "indices")?;
        let (axis, out) = self.shape(x.shape(), it.shape())?;
        let d = x.shape()[axis];
        let di = i64::try_from(d).map_err(|_| OpError("dimension too large".into()))?;
        let idx = tensor_ints(it, "indices")?
            .into_iter()
            .map(|i| {
                let j = if i < 0 { i + di } else { i };
                ensure!(
                    (0..di).contains(&j),
                    "index {i} is out of range for axis {axis} of size {d}"
                );
                Ok(j as usize)
            })
            .collect::<OpResult<Vec<usize>>>()?;
        let outer: usize = x.shape()[..axis].iter().product();
        let inner: usize = x.shape()[axis + 1..].iter().product();
        let data = with_data!(x.data(), v => wrap(gather_typed(v, outer, d, inner, &idx)));
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- GatherElements

#[derive(Debug)]
struct GatherElements {
    axis: i64,
}

impl GatherElements {
    fn check(&self, data: &[usize], idx: &[usize]) -> OpResult<usize> {
        ensure!(
            data.len() == idx.len() && !data.is_empty(),
            "GatherElements data {data:?} and indices {idx:?} must have the same rank >= 1"
        );
        normalize_axis(self.axis, data.len())
    }
}

/// The data offset of an element index whose `axis` entry is replaced by a
/// (possibly negative) index; other entries must be within `shape`.
fn offset_with(
    idx: &[usize],
    shape: &[usize],
    st: &[usize],
    axis: usize,
    at: i64,
) -> OpResult<usize> {
    let mut off = 0usize;
    for (d, (&i, (&n, &s))) in idx.iter().zip(shape.iter().zip(st)).enumerate() {
        let i = if d == axis {
            resolve(at, n, "index")?
        } else {
            i
        };
        ensure!(i < n, "index {idx:?} is out of range for shape {shape:?}");
        off += i * s;
    }
    Ok(off)
}

impl Op for GatherElements {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        ensure_int_dtype(i.dtype, "indices")?;
        self.check(&x.shape, &i.shape)?;
        Ok(vec![Fact::new(x.dtype, i.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        ensure_int_dtype(it.dtype(), "indices")?;
        let axis = self.check(x.shape(), it.shape())?;
        let ind = tensor_ints(it, "indices")?;
        let st = strides(x.shape());
        let mut offs = Vec::with_capacity(ind.len());
        let mut k = 0usize;
        for_each_index(it.shape(), |idx| {
            offs.push(offset_with(idx, x.shape(), &st, axis, ind[k])?);
            k += 1;
            Ok(())
        })?;
        Ok(vec![Tensor::new(
            it.shape().to_vec(),
            x.data().gather(offs.into_iter()),
        )?])
    }
}

// ---------------------------------------------------------------- GatherND

#[derive(Debug)]
struct GatherNd {
    batch_dims: i64,
}

/// Shapes of GatherND / ScatterND: (batch dims b, index depth k).
fn nd_plan(data: &[usize], idx: &[usize], b: usize) -> OpResult<(usize, usize)> {
    let (r, q) = (data.len(), idx.len());
    ensure!(r >= 1 && q >= 1, "data and indices must have rank >= 1");
    ensure!(
        b < q.min(r),
        "batch_dims {b} must be below the ranks of data and indices"
    );
    ensure!(
        data[..b] == idx[..b],
        "the batch dimensions of data {data:?} and indices {idx:?} differ"
    );
    let k = idx[q - 1];
    ensure!(
        k >= 1 && b + k <= r,
        "indices' last dimension {k} must be in 1..={} for data {data:?}",
        r - b
    );
    Ok((b, k))
}

/// Offsets (into data) of the slices addressed by each index tuple.
fn nd_offsets(
    data: &[usize],
    idx_shape: &[usize],
    ind: &[i64],
    b: usize,
    k: usize,
) -> OpResult<Vec<usize>> {
    let st = strides(data);
    let tuples = ind.len() / k.max(1);
    let per_batch = tuples / shape_len(&idx_shape[..b])?.max(1);
    let batch_stride = if b == 0 { 0 } else { st[b - 1] };
    (0..tuples)
        .map(|t| {
            let mut off = (t / per_batch.max(1)) * batch_stride;
            for j in 0..k {
                off += resolve(ind[t * k + j], data[b + j], "index")? * st[b + j];
            }
            Ok(off)
        })
        .collect()
}

impl Op for GatherNd {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        ensure_int_dtype(i.dtype, "indices")?;
        let b = to_dim(self.batch_dims, "batch_dims")?;
        let (b, k) = nd_plan(&x.shape, &i.shape, b)?;
        let mut out = i.shape[..i.shape.len() - 1].to_vec();
        out.extend_from_slice(&x.shape[b + k..]);
        Ok(vec![Fact::new(x.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        ensure_int_dtype(it.dtype(), "indices")?;
        let b = to_dim(self.batch_dims, "batch_dims")?;
        let (b, k) = nd_plan(x.shape(), it.shape(), b)?;
        let ind = tensor_ints(it, "indices")?;
        let offs = nd_offsets(x.shape(), it.shape(), &ind, b, k)?;
        let inner: usize = x.shape()[b + k..].iter().product();
        let mut out = it.shape()[..it.rank() - 1].to_vec();
        out.extend_from_slice(&x.shape()[b + k..]);
        let data = x.data().gather(offs.iter().flat_map(|&o| o..o + inner));
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- Scatter

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn parse(c: &BuildCtx<'_>) -> OpResult<Reduction> {
        Ok(match c.attrs.string("reduction", "none")? {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            r => bail!("unknown reduction `{r}`"),
        })
    }

    /// Applies one update; max/min follow `canon::max`/`canon::min`.
    fn apply<T: Num>(self, old: T, u: T) -> T {
        match self {
            Reduction::None => u,
            Reduction::Add => old.add(u),
            Reduction::Mul => old.mul(u),
            Reduction::Max => old.max_c(u),
            Reduction::Min => old.min_c(u),
        }
    }
}

#[derive(Debug)]
struct ScatterElements {
    axis: i64,
    reduction: Reduction,
}

fn build_scatter_elements(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: c.attrs.int("axis", 0)?,
        reduction: Reduction::parse(c)?,
    }))
}

/// Copies `data` and applies `updates[j]` at `offs[j]` sequentially in order.
fn scatter_typed<T: Num>(
    data: &Tensor,
    upd: &Tensor,
    offs: &[usize],
    inner: usize,
    r: Reduction,
) -> OpResult<Data> {
    let mut out = data.as_slice::<T>()?.to_vec();
    let u = upd.as_slice::<T>()?;
    ensure!(
        u.len() == offs.len() * inner,
        "updates have the wrong number of elements"
    );
    for (j, &o) in offs.iter().enumerate() {
        for e in 0..inner {
            out[o + e] = r.apply(out[o + e], u[j * inner + e]);
        }
    }
    Ok(T::wrap(out))
}

impl ScatterElements {
    fn check(&self, x: &Fact, i: &Fact, u: &Fact) -> OpResult<usize> {
        ensure_int_dtype(i.dtype, "indices")?;
        ensure!(
            u.dtype == x.dtype,
            "updates dtype {} differs from data {}",
            u.dtype,
            x.dtype
        );
        ensure!(
            i.shape == u.shape,
            "indices {:?} and updates {:?} differ",
            i.shape,
            u.shape
        );
        ensure!(
            x.shape.len() == i.shape.len() && !x.shape.is_empty(),
            "data {:?} and indices {:?} must have the same rank >= 1",
            x.shape,
            i.shape
        );
        normalize_axis(self.axis, x.shape.len())
    }
}

fn fact_of(t: &Tensor) -> Fact {
    Fact::new(t.dtype(), t.shape().to_vec())
}

impl Op for ScatterElements {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        self.check(x, inputs.get(1)?, inputs.get(2)?)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, it, u) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        let axis = self.check(&fact_of(x), &fact_of(it), &fact_of(u))?;
        let ind = tensor_ints(it, "indices")?;
        let st = strides(x.shape());
        let mut offs = Vec::with_capacity(ind.len());
        let mut k = 0usize;
        for_each_index(it.shape(), |idx| {
            offs.push(offset_with(idx, x.shape(), &st, axis, ind[k])?);
            k += 1;
            Ok(())
        })?;
        let data = by_dtype!(x.dtype(), T => scatter_typed::<T>(x, u, &offs, 1, self.reduction)?);
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

#[derive(Debug)]
struct ScatterNd {
    reduction: Reduction,
}

impl ScatterNd {
    fn check(x: &Fact, i: &Fact, u: &Fact) -> OpResult<usize> {
        ensure_int_dtype(i.dtype, "indices")?;
        ensure!(
            u.dtype == x.dtype,
            "updates dtype {} differs from data {}",
            u.dtype,
            x.dtype
        );
        let (_, k) = nd_plan(&x.shape, &i.shape, 0)?;
        let mut want = i.shape[..i.shape.len() - 1].to_vec();
        want.extend_from_slice(&x.shape[k..]);
        ensure!(
            u.shape == want,
            "updates shape {:?} must be {want:?}",
            u.shape
        );
        Ok(k)
    }
}

impl Op for ScatterNd {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ScatterNd::check(x, inputs.get(1)?, inputs.get(2)?)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, it, u) = (inputs.get(0)?, inputs.get(1)?, inputs.get(2)?);
        let k = ScatterNd::check(&fact_of(x), &fact_of(it), &fact_of(u))?;
        let ind = tensor_ints(it, "indices")?;
        let offs = nd_offsets(x.shape(), it.shape(), &ind, 0, k)?;
        let inner: usize = x.shape()[k..].iter().product();
        let data =
            by_dtype!(x.dtype(), T => scatter_typed::<T>(x, u, &offs, inner, self.reduction)?);
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Attr;
    use crate::ops::testing::*;

    #[test]
    fn gather_indices() {
        let op = build("Gather", vec![("axis", Attr::Int(-1))], 13, 2, 1);
        let idx = Tensor::from_vec(vec![2], vec![-1i32, 0]).unwrap();
        let o = eval_with(&*op, &[Some((f32s(&[2, 3]), false)), Some((idx, false))]).unwrap();
        assert_eq!(o[0].shape(), &[2, 2]);
        assert_eq!(vals(&o[0]), [2., 0., 5., 3.]);
        let op0 = build("Gather", vec![], 13, 2, 1);
        let o = eval(&*op0, f32s(&[3, 2]), vec![Some(Tensor::scalar(1i64))]).unwrap();
        assert_eq!(o[0].shape(), &[2]);
        assert_eq!(vals(&o[0]), [2., 3.]);
        let idx = Tensor::from_vec(vec![2, 2], vec![0i64, 2, 1, -3]).unwrap();
        let o = eval(&*op0, f32s(&[3]), vec![Some(idx)]).unwrap();
        assert_eq!(o[0].shape(), &[2, 2]);
        assert_eq!(vals(&o[0]), [0., 2., 1., 0.]);
        assert!(eval(&*op0, f32s(&[3]), vec![Some(ints(&[3]))]).is_err());
        assert!(eval(&*op0, f32s(&[3]), vec![Some(ints(&[-4]))]).is_err());
        assert!(eval(&*op0, f32s(&[3]), vec![Some(Tensor::scalar(0.0f32))]).is_err());
        let bad = build("Gather", vec![("axis", Attr::Int(1))], 13, 2, 1);
        assert!(eval(&*bad, f32s(&[3]), vec![Some(ints(&[0]))]).is_err());
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        assert_eq!(
            eval(&*op0, b, vec![Some(ints(&[1]))]).unwrap()[0],
            Tensor::from_vec(vec![1], vec![false]).unwrap()
        );
    }

    #[test]
    fn gather_elements_and_nd() {
        let x = f32s(&[2, 3]);
        let o = try_build("GatherElements", vec![("axis", Attr::Int(-1))], 13, 5, 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 2], vec![0i64, -1, 2, 1]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 2.0, 5.0, 4.0]);
        let bad = Tensor::from_vec(vec![1, 1], vec![3i64]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &bad]).is_err());
        let big = Tensor::from_vec(vec![3, 1], vec![0i64; 3]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &big]).is_err());
        let o = try_build("GatherND", vec![], 13, 5, 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![1i64, 0]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(&y.f32s().unwrap()[..3], &[3.0, 4.0, 5.0]);
        let o = try_build("GatherND", vec![("batch_dims", Attr::Int(1))], 13, 5, 1).unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![2i64, -3]).unwrap();
        let y = run1(o.as_ref(), &[&x, &idx]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[2.0, 3.0]);
        let idx = Tensor::from_vec(vec![2, 1], vec![3i64, 0]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &idx]).is_err());
        let idx = Tensor::from_vec(vec![2, 2], vec![0i64; 4]).unwrap();
        assert!(run1(o.as_ref(), &[&x, &idx]).is_err());
    }

    #[test]
    fn scatters_apply_updates_in_order() {
        let x = f(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let idx = Tensor::from_vec(vec![3], vec![1i64, -3, 3]).unwrap();
        let u = f(&[3], &[10.0, 20.0, f32::NAN]);
        let cases = [
            ("none", [1.0, 20.0, 3.0, f32::NAN]),
            ("add", [1.0, 32.0, 3.0, f32::NAN]),
            ("mul", [1.0, 400.0, 3.0, f32::NAN]),
            ("max", [1.0, 20.0, 3.0, f32::NAN]),
            ("min", [1.0, 2.0, 3.0, f32::NAN]),
        ];
        for (r, want) in cases {
            let o = try_build(
                "ScatterElements",
                vec![("reduction", Attr::String(r.into()))],
                18,
                5,
                1,
            )
            .unwrap();
            let y = run1(o.as_ref(), &[&x, &idx, &u]).unwrap();
            let got = y.f32s().unwrap();
            assert_eq!(&got[..3], &want[..3], "{r}");
            assert!(got[3].is_nan());
        }
        let o = try_build(
            "ScatterElements",
            vec![("reduction", Attr::String("bogus".into()))],
            18,
            5,
            1,
        );
        assert!(o.is_err());
        let o = try_build("ScatterElements", vec![], 18, 5, 1).unwrap();
        assert!(run1(o.as_ref(), &[&x, &ints(&[4]), &f(&[1], &[0.0])]).is_err());
        assert!(run1(o.as_ref(), &[&x, &ints(&[0]), &f(&[2], &[0.0, 1.0])]).is_err());
        let x2 = f32s(&[2, 2]);
        let o = try_build(
            "ScatterND",
            vec![("reduction", Attr::String("add".into()))],
            18,
            5,
            1,
        )
        .unwrap();
        let idx = Tensor::from_vec(vec![2, 1], vec![1i64, 1]).unwrap();
        let y = run1(o.as_ref(), &[&x2, &idx, &f(&[2, 2], &[1.0, 1.0, 2.0, 2.0])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 1.0, 5.0, 6.0]);
        let idx = Tensor::from_vec(vec![1, 2], vec![0i64, -1]).unwrap();
        let o = try_build("ScatterND", vec![], 11, 5, 1).unwrap();
        let y = run1(o.as_ref(), &[&x2, &idx, &f(&[1], &[9.0])]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0.0, 9.0, 2.0, 3.0]);
        assert!(run1(o.as_ref(), &[&x2, &idx, &f(&[2], &[9.0, 9.0])]).is_err());
        let idx = Tensor::from_vec(vec![1, 2], vec![2i64, 0]).unwrap();
        assert!(run1(o.as_ref(), &[&x2, &idx, &f(&[1], &[9.0])]).is_err());
    }
}

//! Small helpers shared by op implementations: axes, integer inputs, casts.

use crate::error::{OpError, OpResult};
use crate::ops::Fact;
use crate::tensor::{DType, Data, Elem, Tensor, checked_len};
use crate::{bail, ensure, with_data};

/// Runs `$body` with the type alias `$t` set to the Rust element type of
/// `$dtype` (every dtype, bool included).
macro_rules! by_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        $crate::kernels::elementwise::by_num!($dtype, $t => $body, bool => {
            type $t = bool;
            $body
        })
    };
}
pub(crate) use by_dtype;

/// Normalizes an axis in `-rank..rank` to `0..rank`.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = i64::try_from(rank).map_err(|_| OpError(format!("rank {rank} is too large")))?;
    let a = if axis < 0 {
        axis.checked_add(r)
    } else {
        Some(axis)
    };
    match a {
        Some(a) if (0..r).contains(&a) => Ok(a as usize),
        _ => bail!("axis {axis} is out of range for rank {rank}"),
    }
}

/// Normalizes an axis in `-rank..=rank` to `0..=rank` (Flatten's convention).
pub(crate) fn normalize_axis_inclusive(axis: i64, rank: usize) -> OpResult<usize> {
    let r = i64::try_from(rank).map_err(|_| OpError(format!("rank {rank} is too large")))?;
    let a = if axis < 0 {
        axis.checked_add(r)
    } else {
        Some(axis)
    };
    match a {
        Some(a) if (0..=r).contains(&a) => Ok(a as usize),
        _ => bail!("axis {axis} is out of range for rank {rank}"),
    }
}

/// Normalizes a list of axes; duplicates are an error.
pub(crate) fn normalize_axes(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        ensure!(
            !out.contains(&n),
            "axis {a} appears more than once in {axes:?}"
        );
        out.push(n);
    }
    Ok(out)
}

/// The elements of an integer tensor (int64, int32, int8, uint8) as `i64`s.
pub(crate) fn tensor_ints(t: &Tensor, what: &str) -> OpResult<Vec<i64>> {
    t.to_i64s().map_err(|e| OpError(format!("{what}: {}", e.0)))
}

/// The known integer values of a fact; fails when the value is not known
/// before execution.
pub(crate) fn known_ints(f: &Fact, what: &str) -> OpResult<Vec<i64>> {
    match &f.value {
        Some(t) => tensor_ints(t, what),
        None => bail!("{what} must be known before execution (a constant or computed from shapes)"),
    }
}

/// Requires an int64 or int32 dtype for an index-like input.
pub(crate) fn ensure_int_dtype(dtype: DType, what: &str) -> OpResult<()> {
    ensure!(
        matches!(dtype, DType::I64 | DType::I32),
        "{what} must be int64 or int32, got {dtype}"
    );
    Ok(())
}

/// Number of elements of a shape, or an error on overflow.
pub(crate) fn shape_len(shape: &[usize]) -> OpResult<usize> {
    checked_len(shape)
        .ok_or_else(|| OpError(format!("shape {shape:?} overflows the element count")))
}

/// A dimension from a non-negative `i64`.
pub(crate) fn to_dim(d: i64, what: &str) -> OpResult<usize> {
    usize::try_from(d).map_err(|_| OpError(format!("{what}: invalid dimension {d}")))
}

/// Wraps a typed vector into [`Data`].
pub(crate) fn wrap<T: Elem>(v: Vec<T>) -> Data {
    T::wrap(v)
}

/// Element conversions with Rust `as` semantics (docs/determinism.md,
/// "Integers, comparisons and casts"); bool is `x != 0` and 0/1 back.
trait CastElem: Copy {
    fn f32(self) -> f32;
    fn f64(self) -> f64;
    fn i64(self) -> i64;
    fn i32(self) -> i32;
    fn i8(self) -> i8;
    fn u8(self) -> u8;
    fn bool(self) -> bool;
}

macro_rules! cast_num {
    ($($t:ty),*) => {$(
        impl CastElem for $t {
            fn f32(self) -> f32 { self as f32 }
            fn f64(self) -> f64 { self as f64 }
            fn i64(self) -> i64 { self as i64 }
            fn i32(self) -> i32 { self as i32 }
            fn i8(self) -> i8 { self as i8 }
            fn u8(self) -> u8 { self as u8 }
            fn bool(self) -> bool { self != 0 as $t }
        }
    )*};
}
cast_num!(f32, f64, i64, i32, i8, u8);

impl CastElem for bool {
    fn f32(self) -> f32 {
        f32::from(u8::from(self))
    }
    fn f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn i64(self) -> i64 {
        i64::from(self)
    }
    fn i32(self) -> i32 {
        i32::from(self)
    }
    fn i8(self) -> i8 {
        i8::from(self)
    }
    fn u8(self) -> u8 {
        u8::from(self)
    }
    fn bool(self) -> bool {
        self
    }
}

fn cast_slice<T: CastElem>(v: &[T], to: DType) -> Data {
    match to {
        DType::F32 => Data::F32(v.iter().map(|x| x.f32()).collect()),
        DType::F64 => Data::F64(v.iter().map(|x| x.f64()).collect()),
        DType::I64 => Data::I64(v.iter().map(|x| x.i64()).collect()),
        DType::I32 => Data::I32(v.iter().map(|x| x.i32()).collect()),
        DType::I8 => Data::I8(v.iter().map(|x| x.i8()).collect()),
        DType::U8 => Data::U8(v.iter().map(|x| x.u8()).collect()),
        DType::Bool => Data::Bool(v.iter().map(|x| x.bool()).collect()),
    }
}

/// Converts elements to another dtype with Rust `as` semantics: float to
/// integer truncates and saturates (NaN to 0), any number to bool is `x != 0`.
pub(crate) fn cast_data(d: &Data, to: DType) -> Data {
    if d.dtype() == to {
        return d.clone();
    }
    with_data!(d, v => cast_slice(v, to))
}

/// Calls `f(index)` for every multi-index of `shape` in row-major order.
pub(crate) fn for_each_index(
    shape: &[usize],
    mut f: impl FnMut(&[usize]) -> OpResult<()>,
) -> OpResult<()> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx)?;
        let mut d = shape.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Resolves a possibly negative index into `0..dim`.
pub(crate) fn resolve(i: i64, dim: usize, what: &str) -> OpResult<usize> {
    let d = i64::try_from(dim).map_err(|_| OpError("dimension too large".into()))?;
    let j = if i < 0 { i.checked_add(d) } else { Some(i) };
    match j {
        Some(j) if (0..d).contains(&j) => Ok(j as usize),
        _ => bail!("{what} {i} is out of range for a dimension of size {dim}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 3).unwrap(), 2);
        assert_eq!(normalize_axis(0, 3).unwrap(), 0);
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(-4, 3).is_err());
        assert!(normalize_axis(i64::MIN, 3).is_err());
        assert!(normalize_axis(0, 0).is_err());
        assert_eq!(normalize_axis_inclusive(3, 3).unwrap(), 3);
        assert_eq!(normalize_axis_inclusive(-3, 3).unwrap(), 0);
        assert!(normalize_axis_inclusive(-4, 3).is_err());
        assert_eq!(normalize_axes(&[-1, 0], 2).unwrap(), vec![1, 0]);
        assert!(normalize_axes(&[1, -1], 2).is_err());
    }

    #[test]
    fn casts_follow_rust_as() {
        let d = Data::F32(vec![1.9, -1.9, f32::NAN, 1e20, -0.0]);
        assert_eq!(
            cast_data(&d, DType::I32),
            Data::I32(vec![1, -1, 0, i32::MAX, 0])
        );
        assert_eq!(cast_data(&d, DType::U8), Data::U8(vec![1, 0, 0, 255, 0]));
        assert_eq!(
            cast_data(&d, DType::Bool),
            Data::Bool(vec![true, true, true, true, false])
        );
        let b = Data::Bool(vec![true, false]);
        assert_eq!(cast_data(&b, DType::F64), Data::F64(vec![1.0, 0.0]));
        assert_eq!(
            cast_data(&Data::I32(vec![300, -1]), DType::U8),
            Data::U8(vec![44, 255])
        );
        assert_eq!(
            cast_data(&Data::I64(vec![-1]), DType::I64),
            Data::I64(vec![-1])
        );
    }
}

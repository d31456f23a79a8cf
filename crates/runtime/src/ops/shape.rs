//! Operators: shapes and data movement (Flatten, Reshape, Transpose, Concat,
//! Squeeze, Unsqueeze, Pad, Shape, Size, Cast, CastLike, Identity, Dropout,
//! Constant, ConstantOfShape). Indexed reads and writes (Gather, Scatter)
//! are in `gather.rs`, slicing and tiling in `index.rs`.
//!
//! Data movement is exact and costs no flops. Cast follows
//! docs/determinism.md, "Integers, comparisons and casts". Shapes that depend
//! on an input's value (Reshape, Squeeze/Unsqueeze axes, Pad pads,
//! ConstantOfShape) need that value to be known at plan time.

use std::sync::Arc;

use super::util::{
    by_dtype, cast_data, ensure_int_dtype, known_ints, normalize_axes, normalize_axis,
    normalize_axis_inclusive, shape_len, tensor_ints, to_dim, wrap,
};
use super::{Args, BuildCtx, Fact, Op, Registry, movement_cost};
use crate::attrs::Attr;
use crate::broadcast::for_each_offset;
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::kernels::elementwise::coalesce;
use crate::tensor::{DType, Data, Elem, Tensor, strides};
use crate::{bail, ensure, with_data};

pub(crate) fn register(r: &mut Registry) {
    r.add("Flatten", |c| {
        Ok(Box::new(Flatten {
            axis: c.attrs.int("axis", 1)?,
        }))
    });
    r.add("Reshape", |c| {
        Ok(Box::new(Reshape {
            allowzero: c.attrs.int("allowzero", 0)? != 0,
        }))
    });
    r.add("Transpose", |c| {
        Ok(Box::new(Transpose {
            perm: c.attrs.opt_ints("perm")?.map(<[i64]>::to_vec),
        }))
    });
    r.add("Concat", |c| {
        Ok(Box::new(Concat {
            axis: c.attrs.req_int("axis")?,
        }))
    });
    r.add("Squeeze", |c| {
        Ok(Box::new(Squeeze {
            axes: AxesFrom::new(c)?,
        }))
    });
    r.add("Unsqueeze", |c| {
        let axes = AxesFrom::new(c)?;
        ensure!(
            !matches!(axes, AxesFrom::Attr(None)),
            "missing required attribute `axes`"
        );
        Ok(Box::new(Unsqueeze { axes }))
    });
    r.add("Pad", build_pad);
    r.add("Shape", |c| {
        Ok(Box::new(ShapeOp {
            start: c.attrs.int("start", 0)?,
            end: c.attrs.opt_int("end")?,
        }))
    });
    r.add("Size", |_| Ok(Box::new(Size)));
    r.add("Cast", build_cast);
    r.add("CastLike", |_| Ok(Box::new(CastLike)));
    r.add("Identity", |_| Ok(Box::new(Identity)));
    r.add("Dropout", |c| {
        Ok(Box::new(Dropout {
            opset: c.opset,
            mask: c.n_outputs >= 2,
        }))
    });
    r.add("Constant", build_constant);
    r.add("ConstantOfShape", build_constant_of_shape);
}

/// Copies elements of `v` viewed with strides `st` into a row-major
/// `out_shape`. Size-1 dimensions are dropped and dimensions that the input
/// walks contiguously merged first; then each innermost row is one run when
/// its input stride is 1, and otherwise, when the input's contiguous
/// dimension is another one, the two are copied as a transpose in square
/// tiles, so both the reads and the writes stay within a few cache lines.
fn strided_copy<T: Copy>(v: &[T], out_shape: &[usize], st: &[usize]) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    let Some(&first) = v.first().filter(|_| n > 0) else {
        return Vec::new();
    };
    // Never empty: a view of size-1 dimensions only becomes one dimension.
    let (shape, [st]) = coalesce(out_shape, [st.to_vec()]);
    let (Some((&cols, outer)), Some((&col_st, outer_st))) = (shape.split_last(), st.split_last())
    else {
        return vec![first];
    };
    if col_st == 1 {
        let mut out = Vec::with_capacity(n);
        for_each_offset(outer, outer_st, |_, o| {
            out.extend_from_slice(&v[o..o + cols])
        });
        return out;
    }
    let Some(d) = st.iter().position(|&s| s == 1) else {
        let mut out = Vec::with_capacity(n);
        for_each_offset(&shape, &st, |_, o| out.push(v[o]));
        return out;
    };
    // Output dimension `d` is contiguous in the input: copy the
    // (shape[d] x cols) planes, one per index of the other dimensions, in
    // tiles.
    const TILE: usize = 16;
    let out_st = strides(&shape);
    let rows = shape[d];
    let row_st = out_st[d];
    let others: Vec<usize> = (0..shape.len() - 1).filter(|&i| i != d).collect();
    let o_shape: Vec<usize> = others.iter().map(|&i| shape[i]).collect();
    let o_in: Vec<usize> = others.iter().map(|&i| st[i]).collect();
    let o_out: Vec<usize> = others.iter().map(|&i| out_st[i]).collect();
    let mut dst_at = Vec::with_capacity(n / (rows * cols));
    for_each_offset(&o_shape, &o_out, |_, o| dst_at.push(o));
    let mut out = vec![first; n];
    let mut plane = 0;
    for_each_offset(&o_shape, &o_in, |_, src| {
        let dst = dst_at[plane];
        plane += 1;
        for i0 in (0..rows).step_by(TILE) {
            for j0 in (0..cols).step_by(TILE) {
                for i in i0..(i0 + TILE).min(rows) {
                    let row = &mut out[dst + i * row_st..][j0..(j0 + TILE).min(cols)];
                    for (j, o) in (j0..).zip(row) {
                        *o = v[src + i + j * col_st];
                    }
                }
            }
        }
    });
    out
}

// ---------------------------------------------------------------- Flatten

#[derive(Debug)]
struct Flatten {
    axis: i64,
}

impl Flatten {
    fn shape(&self, s: &[usize]) -> OpResult<Vec<usize>> {
        let axis = normalize_axis_inclusive(self.axis, s.len())?;
        Ok(vec![shape_len(&s[..axis])?, shape_len(&s[axis..])?])
    }
}

impl Op for Flatten {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        Ok(vec![Fact::new(x.dtype, self.shape(&x.shape)?)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        Ok(vec![x.clone().reshaped(self.shape(x.shape())?)?])
    }
}

// ---------------------------------------------------------------- Reshape

#[derive(Debug)]
struct Reshape {
    allowzero: bool,
}

/// The output shape of Reshape: `-1` is inferred, `0` copies the input
/// dimension unless `allowzero`.
fn reshape_shape(input: &[usize], spec: &[i64], allowzero: bool) -> OpResult<Vec<usize>> {
    let total = shape_len(input)?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 => {
                ensure!(infer_at.is_none(), "shape {spec:?} has more than one -1");
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => out.push(v),
                None => bail!(
                    "shape {spec:?} copies dimension {i} (0) but the input {input:?} has rank {}",
                    input.len()
                ),
            },
            _ => out.push(to_dim(d, "reshape target")?),
        }
    }
    let known = shape_len(&out)?;
    match infer_at {
        Some(i) => {
            ensure!(
                !(allowzero && spec.contains(&0)),
                "shape {spec:?} has both 0 and -1 with allowzero=1"
            );
            ensure!(
                known != 0 && total % known == 0,
                "cannot reshape {input:?} ({total} elements) to {spec:?}"
            );
            out[i] = total / known;
        }
        None => ensure!(
            known == total,
            "cannot reshape {input:?} ({total} elements) to {spec:?} ({known} elements)"
        ),
    }
    Ok(out)
}

impl Op for Reshape {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let s = inputs.get(1)?;
        ensure_int_dtype(s.dtype, "shape input")?;
        ensure!(
            s.shape.len() == 1,
            "shape input must be 1-D, got shape {:?}",
            s.shape
        );
        let spec = known_ints(s, "shape input")?;
        Ok(vec![Fact::new(
            x.dtype,
            reshape_shape(&x.shape, &spec, self.allowzero)?,
        )])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let spec = tensor_ints(inputs.get(1)?, "shape input")?;
        let shape = reshape_shape(x.shape(), &spec, self.allowzero)?;
        Ok(vec![x.clone().reshaped(shape)?])
    }
}

// ---------------------------------------------------------------- Transpose

#[derive(Debug)]
struct Transpose {
    perm: Option<Vec<i64>>,
}

impl Transpose {
    fn perm(&self, rank: usize) -> OpResult<Vec<usize>> {
        let Some(p) = &self.perm else {
            return Ok((0..rank).rev().collect());
        };
        ensure!(
            p.len() == rank,
            "perm {p:?} has {} entries, the input has rank {rank}",
            p.len()
        );
        let mut seen = vec![false; rank];
        let mut out = Vec::with_capacity(rank);
        for &a in p {
            let i = usize::try_from(a).ok().filter(|&i| i < rank);
            match i {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    out.push(i);
                }
                _ => bail!("perm {p:?} is not a permutation of 0..{rank}"),
            }
        }
        Ok(out)
    }
}

impl Op for Transpose {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let perm = self.perm(x.shape.len())?;
        Ok(vec![Fact::new(
            x.dtype,
            perm.iter().map(|&p| x.shape[p]).collect(),
        )])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let perm = self.perm(x.rank())?;
        let in_st = strides(x.shape());
        let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
        let st: Vec<usize> = perm.iter().map(|&p| in_st[p]).collect();
        let data = with_data!(x.data(), v => wrap(strided_copy(v, &shape, &st)));
        Ok(vec![Tensor::new(shape, data)?])
    }
}

// ---------------------------------------------------------------- Concat

#[derive(Debug)]
struct Concat {
    axis: i64,
}

impl Concat {
    /// The normalized axis and the output shape.
    fn plan(&self, shapes: &[&[usize]], dtypes: &[DType]) -> OpResult<(usize, Vec<usize>)> {
        let (Some(first), Some(&dtype)) = (shapes.first(), dtypes.first()) else {
            bail!("Concat needs at least one input");
        };
        ensure!(!first.is_empty(), "Concat inputs must have rank >= 1");
        let axis = normalize_axis(self.axis, first.len())?;
        let mut out = first.to_vec();
        out[axis] = 0;
        for (s, &d) in shapes.iter().zip(dtypes) {
            ensure!(
                d == dtype,
                "Concat inputs have different dtypes {dtype} and {d}"
            );
            ensure!(
                s.len() == first.len()
                    && s.iter()
                        .zip(first.iter())
                        .enumerate()
                        .all(|(i, (a, b))| i == axis || a == b),
                "Concat inputs {first:?} and {s:?} differ outside axis {axis}"
            );
            out[axis] = out[axis]
                .checked_add(s[axis])
                .ok_or_else(|| OpError("Concat output dimension overflows".into()))?;
        }
        shape_len(&out)?;
        Ok((axis, out))
    }
}

fn concat_typed<T: Elem>(parts: &[&Tensor], axis: usize, out: &[usize]) -> OpResult<Data> {
    let outer: usize = out[..axis].iter().product();
    let mut res = Vec::with_capacity(out.iter().product());
    let slices: Vec<(&[T], usize)> = parts
        .iter()
        .map(|t| Ok((t.as_slice::<T>()?, t.shape()[axis..].iter().product())))
        .collect::<OpResult<_>>()?;
    for o in 0..outer {
        for &(v, chunk) in &slices {
            res.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
        }
    }
    Ok(T::wrap(res))
}

impl Op for Concat {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let shapes: Vec<&[usize]> = inputs.present().map(|f| f.shape.as_slice()).collect();
        let dtypes: Vec<DType> = inputs.present().map(|f| f.dtype).collect();
        let (_, out) = self.plan(&shapes, &dtypes)?;
        Ok(vec![Fact::new(dtypes[0], out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let parts: Vec<&Tensor> = inputs.present().collect();
        let shapes: Vec<&[usize]> = parts.iter().map(|t| t.shape()).collect();
        let dtypes: Vec<DType> = parts.iter().map(|t| t.dtype()).collect();
        let (axis, out) = self.plan(&shapes, &dtypes)?;
        let data = by_dtype!(dtypes[0], T => concat_typed::<T>(&parts, axis, &out)?);
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- Squeeze / Unsqueeze

/// Where Squeeze/Unsqueeze find their axes: an attribute before opset 13, the
/// optional second input from 13 on.
#[derive(Debug)]
enum AxesFrom {
    Attr(Option<Vec<i64>>),
    Input,
}

impl AxesFrom {
    fn new(c: &BuildCtx<'_>) -> OpResult<AxesFrom> {
        if c.opset >= 13 {
            Ok(AxesFrom::Input)
        } else {
            Ok(AxesFrom::Attr(
                c.attrs.opt_ints("axes")?.map(<[i64]>::to_vec),
            ))
        }
    }

    fn of_facts(&self, inputs: Args<'_, Fact>) -> OpResult<Option<Vec<i64>>> {
        match self {
            AxesFrom::Attr(a) => Ok(a.clone()),
            AxesFrom::Input => match inputs.opt(1) {
                None => Ok(None),
                Some(f) => {
                    ensure_int_dtype(f.dtype, "axes input")?;
                    ensure!(
                        f.shape.len() <= 1,
                        "axes input must be 1-D, got {:?}",
                        f.shape
                    );
                    known_ints(f, "axes input").map(Some)
                }
            },
        }
    }

    fn of_tensors(&self, inputs: Args<'_, Tensor>) -> OpResult<Option<Vec<i64>>> {
        match self {
            AxesFrom::Attr(a) => Ok(a.clone()),
            AxesFrom::Input => inputs
                .opt(1)
                .map(|t| tensor_ints(t, "axes input"))
                .transpose(),
        }
    }
}

#[derive(Debug)]
struct Squeeze {
    axes: AxesFrom,
}

fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> OpResult<Vec<usize>> {
    match axes {
        None => Ok(shape.iter().copied().filter(|&d| d != 1).collect()),
        Some(axes) => {
            let axes = normalize_axes(axes, shape.len())?;
            for &a in &axes {
                ensure!(
                    shape[a] == 1,
                    "cannot squeeze axis {a} of size {} in {shape:?}",
                    shape[a]
                );
            }
            Ok(shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect())
        }
    }
}

impl Op for Squeeze {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let axes = self.axes.of_facts(inputs)?;
        Ok(vec![Fact::new(
            x.dtype,
            squeeze_shape(&x.shape, axes.as_deref())?,
        )])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let axes = self.axes.of_tensors(inputs)?;
        Ok(vec![
            x.clone()
                .reshaped(squeeze_shape(x.shape(), axes.as_deref())?)?,
        ])
    }
}

#[derive(Debug)]
struct Unsqueeze {
    axes: AxesFrom,
}

fn unsqueeze_shape(shape: &[usize], axes: Option<&[i64]>) -> OpResult<Vec<usize>> {
    let Some(axes) = axes else {
        bail!("Unsqueeze needs axes");
    };
    let rank = shape.len() + axes.len();
    let axes = normalize_axes(axes, rank)?;
    let mut dims = shape.iter();
    Ok((0..rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect())
}

impl Op for Unsqueeze {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let axes = self.axes.of_facts(inputs)?;
        Ok(vec![Fact::new(
            x.dtype,
            unsqueeze_shape(&x.shape, axes.as_deref())?,
        )])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let axes = self.axes.of_tensors(inputs)?;
        Ok(vec![
            x.clone()
                .reshaped(unsqueeze_shape(x.shape(), axes.as_deref())?)?,
        ])
    }
}

// ---------------------------------------------------------------- Pad

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Debug)]
struct Pad {
    mode: PadMode,
    opset: i64,
    /// `pads` attribute (opset < 11).
    pads: Option<Vec<i64>>,
    /// `value` attribute (opset < 11).
    value: f32,
}

fn build_pad(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let mode = match c.attrs.string("mode", "constant")? {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" if c.opset >= 19 => PadMode::Wrap,
        m => bail!("unsupported Pad mode `{m}`"),
    };
    let (pads, value) = if c.opset < 11 {
        let pads = c
            .attrs
            .opt_ints("pads")?
            .ok_or_else(|| OpError("missing required attribute `pads`".into()))?;
        (Some(pads.to_vec()), c.attrs.float("value", 0.0)?)
    } else {
        (None, 0.0)
    };
    Ok(Box::new(Pad {
        mode,
        opset: c.opset,
        pads,
        value,
    }))
}

impl Pad {
    /// Per-axis begin pads and the output shape, from the pads and optional axes.
    fn plan(
        &self,
        shape: &[usize],
        pads: &[i64],
        axes: Option<&[i64]>,
    ) -> OpResult<(Vec<i64>, Vec<usize>)> {
        let rank = shape.len();
        let axes = match axes {
            Some(a) => normalize_axes(a, rank)?,
            None => (0..rank).collect(),
        };
        ensure!(
            pads.len() == 2 * axes.len(),
            "pads {pads:?} must have 2 entries per padded axis ({} axes)",
            axes.len()
        );
        let mut begins = vec![0i64; rank];
        let mut ends = vec![0i64; rank];
        for (k, &a) in axes.iter().enumerate() {
            begins[a] = pads[k];
            ends[a] = pads[k + axes.len()];
        }
        let mut out = Vec::with_capacity(rank);
        for a in 0..rank {
            let d = i64::try_from(shape[a]).map_err(|_| OpError("dimension too large".into()))?;
            let o = d
                .checked_add(begins[a])
                .and_then(|v| v.checked_add(ends[a]))
                .filter(|&v| v >= 0)
                .ok_or_else(|| {
                    OpError(format!(
                        "pads {pads:?} give a negative dimension for {shape:?}"
                    ))
                })?;
            let o = to_dim(o, "Pad output")?;
            ensure!(
                self.mode == PadMode::Constant || shape[a] > 0 || o == 0,
                "Pad mode {:?} cannot pad the empty axis {a}",
                self.mode
            );
            out.push(o);
        }
        shape_len(&out)?;
        Ok((begins, out))
    }
}

/// The source coordinate for padded coordinate `j` (relative to the input) on
/// an axis of size `d`, or `None` for the constant value.
fn pad_source(j: i64, d: usize, mode: PadMode) -> Option<usize> {
    let di = i64::try_from(d).ok()?;
    if (0..di).contains(&j) {
        return usize::try_from(j).ok();
    }
    if d == 0 {
        return None;
    }
    let s = match mode {
        PadMode::Constant => return None,
        PadMode::Edge => {
            if j < 0 {
                0
            } else {
                di - 1
            }
        }
        PadMode::Wrap => j.rem_euclid(di),
        PadMode::Reflect => {
            if d == 1 {
                0
            } else {
                let p = 2 * (di - 1);
                let m = j.rem_euclid(p);
                if m >= di { p - m } else { m }
            }
        }
    };
    usize::try_from(s).ok()
}

fn pad_typed<T: Copy>(
    x: &[T],
    shape: &[usize],
    out: &[usize],
    begins: &[i64],
    mode: PadMode,
    value: T,
) -> Vec<T> {
    let rank = shape.len();
    let st = strides(shape);
    let maps: Vec<Vec<Option<usize>>> = (0..rank)
        .map(|a| {
            (0..out[a])
                .map(|o| {
                    i64::try_from(o)
                        .ok()
                        .and_then(|o| o.checked_sub(begins[a]))
                        .and_then(|j| pad_source(j, shape[a], mode))
                        .map(|s| s * st[a])
                })
                .collect()
        })
        .collect();
    let n: usize = out.iter().product();
    let mut res = Vec::with_capacity(n);
    if n == 0 {
        return res;
    }
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let mut off = Some(0usize);
        for a in 0..rank {
            off = off.zip(maps[a][idx[a]]).map(|(o, s)| o + s);
        }
        res.push(off.map_or(value, |o| x[o]));
        for a in (0..rank).rev() {
            idx[a] += 1;
            if idx[a] < out[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    res
}

impl Op for Pad {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        let pads = match &self.pads {
            Some(p) => p.clone(),
            None => {
                let p = inputs.get(1)?;
                ensure_int_dtype(p.dtype, "pads input")?;
                known_ints(p, "pads input")?
            }
        };
        if let Some(v) = inputs.opt(2).filter(|_| self.opset >= 11) {
            ensure!(
                v.dtype == x.dtype,
                "constant_value is {} but data is {}",
                v.dtype,
                x.dtype
            );
            ensure!(
                v.len() <= 1,
                "constant_value must have one element, got {:?}",
                v.shape
            );
        }
        let axes = match inputs.opt(3).filter(|_| self.opset >= 18) {
            Some(f) => {
                ensure_int_dtype(f.dtype, "axes input")?;
                Some(known_ints(f, "axes input")?)
            }
            None => None,
        };
        let (_, out) = self.plan(&x.shape, &pads, axes.as_deref())?;
        Ok(vec![Fact::new(x.dtype, out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let (pads, value) = match &self.pads {
            Some(p) => (
                p.clone(),
                cast_data(&Data::F32(vec![self.value]), x.dtype()),
            ),
            None => {
                let pads = tensor_ints(inputs.get(1)?, "pads input")?;
                let value = match inputs.opt(2) {
                    Some(v) if !v.is_empty() => {
                        ensure!(
                            v.dtype() == x.dtype(),
                            "constant_value dtype differs from data"
                        );
                        v.data().clone()
                    }
                    _ => Data::zeros(x.dtype(), 1),
                };
                (pads, value)
            }
        };
        let axes = match inputs.opt(3).filter(|_| self.opset >= 18) {
            Some(t) => Some(tensor_ints(t, "axes input")?),
            None => None,
        };
        let (begins, out) = self.plan(x.shape(), &pads, axes.as_deref())?;
        let data = by_dtype!(x.dtype(), T => {
            let v = x.as_slice::<T>()?;
            let c = *T::slice(&value)
                .and_then(<[T]>::first)
                .ok_or_else(|| OpError("constant_value is empty".into()))?;
            wrap(pad_typed(v, x.shape(), &out, &begins, self.mode, c))
        });
        Ok(vec![Tensor::new(out, data)?])
    }
}

// ---------------------------------------------------------------- Shape / Size

#[derive(Debug)]
struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

impl ShapeOp {
    fn value(&self, shape: &[usize]) -> OpResult<Tensor> {
        let r = i64::try_from(shape.len()).map_err(|_| OpError("rank too large".into()))?;
        let clamp = |v: i64| if v < 0 { v.saturating_add(r).max(0) } else { v.min(r) } as usize;
        let start = clamp(self.start);
        let end = clamp(self.end.unwrap_or(r)).max(start);
        let dims = shape[start..end]
            .iter()
            .map(|&d| i64::try_from(d).map_err(|_| OpError("dimension too large".into())))
            .collect::<OpResult<Vec<i64>>>()?;
        Tensor::from_vec(vec![dims.len()], dims)
    }
}

impl Op for ShapeOp {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(vec![Fact::known(Arc::new(
            self.value(&inputs.get(0)?.shape)?,
        ))])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![self.value(inputs.get(0)?.shape())?])
    }
}

#[derive(Debug)]
struct Size;

fn size_value(shape: &[usize]) -> OpResult<Tensor> {
    let n = i64::try_from(shape_len(shape)?).map_err(|_| OpError("size too large".into()))?;
    Ok(Tensor::scalar(n))
}

impl Op for Size {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(vec![Fact::known(Arc::new(size_value(
            &inputs.get(0)?.shape,
        )?))])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![size_value(inputs.get(0)?.shape())?])
    }
}

// ---------------------------------------------------------------- Cast / CastLike

#[derive(Debug)]
struct Cast {
    to: DType,
}

fn build_cast(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let to = c.attrs.req_int("to")?;
    let to = i32::try_from(to)
        .ok()
        .and_then(DType::from_onnx)
        .ok_or_else(|| OpError(format!("Cast to data type code {to} is not supported")))?;
    Ok(Box::new(Cast { to }))
}

impl Op for Cast {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(vec![Fact::new(self.to, inputs.get(0)?.shape.clone())])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        Ok(vec![Tensor::new(
            x.shape().to_vec(),
            cast_data(x.data(), self.to),
        )?])
    }
}

#[derive(Debug)]
struct CastLike;

impl Op for CastLike {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(vec![Fact::new(
            inputs.get(1)?.dtype,
            inputs.get(0)?.shape.clone(),
        )])
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let to = inputs.get(1)?.dtype();
        Ok(vec![Tensor::new(
            x.shape().to_vec(),
            cast_data(x.data(), to),
        )?])
    }
}

// ---------------------------------------------------------------- Identity / Dropout

#[derive(Debug)]
struct Identity;

impl Op for Identity {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![inputs.get(0)?.clone()])
    }
}

/// Dropout in inference: the output is the input, the optional mask all ones.
#[derive(Debug)]
struct Dropout {
    opset: i64,
    /// Whether the node binds the mask output.
    mask: bool,
}

impl Dropout {
    /// Fails on training mode with a non-zero ratio, which is random.
    fn check_training(&self, ratio: Option<&Tensor>, training: Option<&Tensor>) -> OpResult<()> {
        let Some(t) = training else { return Ok(()) };
        let on = match cast_data(t.data(), DType::Bool) {
            Data::Bool(v) => v.first().copied().unwrap_or(false),
            _ => false,
        };
        if !on {
            return Ok(());
        }
        let ratio = match ratio.map(|r| cast_data(r.data(), DType::F64)) {
            Some(Data::F64(v)) => v.first().copied().unwrap_or(0.5),
            _ => 0.5,
        };
        ensure!(
            ratio == 0.0,
            "Dropout with training_mode=true is not supported (it is random)"
        );
        Ok(())
    }

    fn mask_dtype(&self, x: DType) -> DType {
        if self.opset < 10 { x } else { DType::Bool }
    }
}

impl Op for Dropout {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        // training_mode given at run time is checked by `run`.
        if let Some(tv) = inputs
            .opt(2)
            .filter(|_| self.opset >= 12)
            .and_then(|t| t.value.as_deref())
        {
            self.check_training(inputs.opt(1).and_then(|r| r.value.as_deref()), Some(tv))?;
        }
        let mut out = vec![Fact::new(x.dtype, x.shape.clone())];
        if self.mask {
            out.push(Fact::new(self.mask_dtype(x.dtype), x.shape.clone()));
        }
        Ok(out)
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        if self.opset >= 12 {
            self.check_training(inputs.opt(1), inputs.opt(2))?;
        }
        let mut out = vec![x.clone()];
        if self.mask {
            let ones = cast_data(&Data::Bool(vec![true; x.len()]), self.mask_dtype(x.dtype()));
            out.push(Tensor::new(x.shape().to_vec(), ones)?);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- Constant / ConstantOfShape

#[derive(Debug)]
struct Constant {
    value: Arc<Tensor>,
}

fn build_constant(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let names: Vec<&str> = c.attrs.names().collect();
    ensure!(
        names.len() == 1,
        "Constant needs exactly one value attribute, got {names:?}"
    );
    let name = names[0];
    let value = match (name, c.attrs.get(name)) {
        ("value", Some(Attr::Tensor(t))) => t.clone(),
        ("value_float", Some(Attr::Float(v))) => Tensor::scalar(*v),
        ("value_floats", Some(Attr::Floats(v))) => Tensor::from_vec(vec![v.len()], v.clone())?,
        ("value_int", Some(Attr::Int(v))) => Tensor::scalar(*v),
        ("value_ints", Some(Attr::Ints(v))) => Tensor::from_vec(vec![v.len()], v.clone())?,
        ("value_string" | "value_strings" | "sparse_value", _) => {
            bail!("Constant attribute `{name}` is not supported (no string or sparse tensors)")
        }
        (n, Some(_)) if n.starts_with("value") => {
            bail!("Constant attribute `{n}` has a wrong type")
        }
        (n, _) => bail!("unknown Constant attribute `{n}`"),
    };
    Ok(Box::new(Constant {
        value: Arc::new(value),
    }))
}

impl Op for Constant {
    fn infer(&self, _inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        Ok(vec![Fact::known(Arc::clone(&self.value))])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, _inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        Ok(vec![(*self.value).clone()])
    }
}

#[derive(Debug)]
struct ConstantOfShape {
    value: Tensor,
}

fn build_constant_of_shape(c: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let value = match c.attrs.opt_tensor("value")? {
        Some(t) => t.clone(),
        None => Tensor::from_vec(vec![1], vec![0.0f32])?,
    };
    ensure!(
        value.len() == 1,
        "ConstantOfShape value must have one element, got {:?}",
        value.shape()
    );
    Ok(Box::new(ConstantOfShape { value }))
}

fn shape_from_ints(v: &[i64]) -> OpResult<Vec<usize>> {
    let s = v
        .iter()
        .map(|&d| to_dim(d, "shape input"))
        .collect::<OpResult<Vec<_>>>()?;
    shape_len(&s)?;
    Ok(s)
}

impl Op for ConstantOfShape {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let s = inputs.get(0)?;
        ensure_int_dtype(s.dtype, "shape input")?;
        ensure!(
            s.shape.len() == 1,
            "shape input must be 1-D, got shape {:?}",
            s.shape
        );
        let Some(v) = &s.value else {
            bail!("shape input must be known before execution");
        };
        let shape = shape_from_ints(&tensor_ints(v, "shape input")?)?;
        Ok(vec![Fact::new(self.value.dtype(), shape)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let shape = shape_from_ints(&tensor_ints(inputs.get(0)?, "shape input")?)?;
        let n = shape_len(&shape)?;
        let data =
            with_data!(self.value.data(), v => wrap(v.iter().copied().cycle().take(n).collect()));
        Ok(vec![Tensor::new(shape, data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn flatten_axes() {
        let op = build("Flatten", vec![], 13, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0].shape(),
            &[2, 12]
        );
        let op = build("Flatten", vec![("axis", Attr::Int(-1))], 13, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0].shape(),
            &[6, 4]
        );
        let op = build("Flatten", vec![("axis", Attr::Int(0))], 13, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3]), vec![]).unwrap()[0].shape(),
            &[1, 6]
        );
        let op = build("Flatten", vec![("axis", Attr::Int(3))], 13, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0].shape(),
            &[24, 1]
        );
        let op = build("Flatten", vec![("axis", Attr::Int(4))], 13, 1, 1);
        assert!(eval(&*op, f32s(&[2, 3, 4]), vec![]).is_err());
    }

    #[test]
    fn reshape_rules() {
        let op = build("Reshape", vec![], 14, 2, 1);
        let r = |s: &[i64], x: &[usize]| {
            eval(&*op, f32s(x), vec![Some(ints(s))]).map(|o| o[0].shape().to_vec())
        };
        assert_eq!(r(&[4, -1], &[2, 3, 4]).unwrap(), vec![4, 6]);
        assert_eq!(r(&[0, -1], &[2, 3, 4]).unwrap(), vec![2, 12]);
        assert_eq!(r(&[0, 0, 4], &[2, 3, 4]).unwrap(), vec![2, 3, 4]);
        assert_eq!(r(&[], &[1, 1]).unwrap(), Vec::<usize>::new());
        assert!(r(&[5, -1], &[2, 3, 4]).is_err());
        assert!(r(&[-1, -1], &[2, 3, 4]).is_err());
        assert!(r(&[7], &[2, 3]).is_err());
        assert!(r(&[-2, 3], &[2, 3]).is_err());
        assert!(r(&[0, 0, 0], &[6]).is_err());
        assert!(r(&[-1], &[0, 3]).is_err() || r(&[-1], &[0, 3]).unwrap() == vec![0]);
        // allowzero keeps a literal 0.
        let op = build("Reshape", vec![("allowzero", Attr::Int(1))], 14, 2, 1);
        let out = eval(&*op, f32s(&[0, 3]), vec![Some(ints(&[3, 0]))]).unwrap();
        assert_eq!(out[0].shape(), &[3, 0]);
        assert!(eval(&*op, f32s(&[0, 3]), vec![Some(ints(&[0, -1]))]).is_err());
        assert!(eval(&*op, f32s(&[2, 3]), vec![Some(ints(&[0, 6]))]).is_err());
        // The shape must be known at plan time.
        let ins = [Some((f32s(&[2, 3]), false)), Some((ints(&[6]), false))];
        assert!(eval_with(&*op, &ins).is_err());
    }

    /// Every permutation of shapes with size-1 and mergeable dimensions
    /// matches a direct index computation.
    #[test]
    fn transpose_matches_direct_indexing() {
        let perms = |rank: usize| -> Vec<Vec<usize>> {
            let mut all: Vec<Vec<usize>> = vec![vec![]];
            for _ in 0..rank {
                let mut next = Vec::new();
                for p in &all {
                    for i in (0..rank).filter(|i| !p.contains(i)) {
                        next.push([&p[..], &[i]].concat());
                    }
                }
                all = next;
            }
            all
        };
        for shape in [
            vec![1, 37, 19, 1],
            vec![3, 20, 17, 2],
            vec![2, 1, 33, 5],
            vec![40, 18],
            vec![0, 3, 2],
            vec![1, 1, 1],
        ] {
            let n: usize = shape.iter().product();
            let x = Tensor::from_vec(shape.clone(), (0..n).map(|i| i as f32).collect()).unwrap();
            let in_st = strides(&shape);
            for perm in perms(shape.len()) {
                let op = build(
                    "Transpose",
                    vec![("perm", Attr::Ints(perm.iter().map(|&p| p as i64).collect()))],
                    13,
                    1,
                    1,
                );
                let o = eval(&*op, x.clone(), vec![]).unwrap();
                let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let st: Vec<usize> = perm.iter().map(|&p| in_st[p]).collect();
                let mut want = Vec::new();
                for_each_offset(&out_shape, &st, |_, off| want.push(off as f32));
                assert_eq!(o[0].shape(), &out_shape[..], "{shape:?} {perm:?}");
                assert_eq!(vals(&o[0]), want, "{shape:?} {perm:?}");
            }
        }
    }

    #[test]
    fn transpose_perms() {
        let op = build("Transpose", vec![], 13, 1, 1);
        let o = eval(&*op, f32s(&[2, 3]), vec![]).unwrap();
        assert_eq!(o[0].shape(), &[3, 2]);
        assert_eq!(vals(&o[0]), vec![0., 3., 1., 4., 2., 5.]);
        let op = build(
            "Transpose",
            vec![("perm", Attr::Ints(vec![1, 2, 0]))],
            13,
            1,
            1,
        );
        let o = eval(&*op, f32s(&[2, 2, 3]), vec![]).unwrap();
        assert_eq!(o[0].shape(), &[2, 3, 2]);
        assert_eq!(vals(&o[0])[..6], [0., 6., 1., 7., 2., 8.]);
        let bad = build(
            "Transpose",
            vec![("perm", Attr::Ints(vec![0, 0]))],
            13,
            1,
            1,
        );
        assert!(eval(&*bad, f32s(&[2, 2]), vec![]).is_err());
        let bad = build(
            "Transpose",
            vec![("perm", Attr::Ints(vec![0, 2]))],
            13,
            1,
            1,
        );
        assert!(eval(&*bad, f32s(&[2, 2]), vec![]).is_err());
        let b = Tensor::from_vec(vec![1, 2], vec![true, false]).unwrap();
        let op = build("Transpose", vec![], 13, 1, 1);
        assert_eq!(eval(&*op, b, vec![]).unwrap()[0].shape(), &[2, 1]);
    }

    #[test]
    fn concat_axes() {
        let op = build("Concat", vec![("axis", Attr::Int(-1))], 13, 2, 1);
        let a = f32s(&[2, 1]);
        let b = Tensor::from_vec(vec![2, 2], vec![10.0f32, 11., 12., 13.]).unwrap();
        let o = eval(&*op, a.clone(), vec![Some(b.clone())]).unwrap();
        assert_eq!(o[0].shape(), &[2, 3]);
        assert_eq!(vals(&o[0]), vec![0., 10., 11., 1., 12., 13.]);
        let op0 = build("Concat", vec![("axis", Attr::Int(0))], 13, 2, 1);
        assert!(eval(&*op0, a.clone(), vec![Some(b.clone())]).is_err());
        let bad = build("Concat", vec![("axis", Attr::Int(2))], 13, 2, 1);
        assert!(eval(&*bad, a.clone(), vec![Some(b)]).is_err());
        let i = Tensor::from_vec(vec![2, 1], vec![1i64, 2]).unwrap();
        assert!(eval(&*op, a, vec![Some(i)]).is_err());
        let x = Tensor::from_vec(vec![2], vec![1i8, 2]).unwrap();
        let o = eval(&*op0, x.clone(), vec![Some(x)]).unwrap();
        assert_eq!(o[0].as_slice::<i8>().unwrap(), &[1, 2, 1, 2]);
    }

    #[test]
    fn squeeze_unsqueeze() {
        let op = build("Squeeze", vec![], 13, 2, 1);
        let r = eval(&*op, f32s(&[1, 3, 1]), vec![Some(ints(&[-1]))]).unwrap();
        assert_eq!(r[0].shape(), &[1, 3]);
        assert_eq!(
            eval(&*op, f32s(&[1, 3, 1]), vec![]).unwrap()[0].shape(),
            &[3]
        );
        assert!(eval(&*op, f32s(&[1, 3, 1]), vec![Some(ints(&[1]))]).is_err());
        assert!(eval(&*op, f32s(&[1, 3, 1]), vec![Some(ints(&[3]))]).is_err());
        let old = build("Squeeze", vec![("axes", Attr::Ints(vec![0]))], 11, 1, 1);
        assert_eq!(
            eval(&*old, f32s(&[1, 3, 1]), vec![]).unwrap()[0].shape(),
            &[3, 1]
        );

        let op = build("Unsqueeze", vec![], 13, 2, 1);
        let r = eval(&*op, f32s(&[3, 4]), vec![Some(ints(&[0, -1]))]).unwrap();
        assert_eq!(r[0].shape(), &[1, 3, 4, 1]);
        let r = eval(&*op, f32s(&[3, 4]), vec![Some(ints(&[1, 3]))]).unwrap();
        assert_eq!(r[0].shape(), &[3, 1, 4, 1]);
        assert!(eval(&*op, f32s(&[3]), vec![Some(ints(&[2]))]).is_err());
        assert!(eval(&*op, f32s(&[3]), vec![Some(ints(&[0, 0]))]).is_err());
        assert!(eval(&*op, f32s(&[3]), vec![]).is_err());
        let old = build("Unsqueeze", vec![("axes", Attr::Ints(vec![-1]))], 11, 1, 1);
        assert_eq!(eval(&*old, f32s(&[3]), vec![]).unwrap()[0].shape(), &[3, 1]);
        let a = attrs(vec![]);
        let c = BuildCtx {
            op_type: "Unsqueeze",
            attrs: &a,
            opset: 11,
            n_inputs: 1,
            n_outputs: 1,
        };
        assert!(super::super::build(&c).is_err());
    }

    #[test]
    fn pad_modes() {
        let pad = |mode: &str, pads: &[i64], x: Tensor| {
            let op = build("Pad", vec![("mode", Attr::String(mode.into()))], 19, 2, 1);
            eval(&*op, x, vec![Some(ints(pads))])
        };
        let x = f32s(&[3]);
        assert_eq!(
            vals(&pad("constant", &[2, 1], x.clone()).unwrap()[0]),
            [0., 0., 0., 1., 2., 0.]
        );
        assert_eq!(
            vals(&pad("reflect", &[2, 2], x.clone()).unwrap()[0]),
            [2., 1., 0., 1., 2., 1., 0.]
        );
        assert_eq!(
            vals(&pad("edge", &[2, 1], x.clone()).unwrap()[0]),
            [0., 0., 0., 1., 2., 2.]
        );
        assert_eq!(
            vals(&pad("wrap", &[2, 1], x.clone()).unwrap()[0]),
            [1., 2., 0., 1., 2., 0.]
        );
        assert_eq!(
            vals(&pad("constant", &[-1, 0], x.clone()).unwrap()[0]),
            [1., 2.]
        );
        assert!(pad("constant", &[-4, 0], x.clone()).is_err());
        assert!(pad("constant", &[1], x.clone()).is_err());
        let o = pad("reflect", &[1, 0, 0, 1], f32s(&[2, 2])).unwrap();
        assert_eq!(vals(&o[0]), [2., 3., 2., 0., 1., 0., 2., 3., 2.]);
        assert!(pad("edge", &[1, 1], f32s(&[0])).is_err());
        // constant_value and axes inputs.
        let op = build("Pad", vec![], 18, 4, 1);
        let o = eval(
            &*op,
            f32s(&[2, 2]),
            vec![
                Some(ints(&[1, 0])),
                Some(Tensor::scalar(9.0f32)),
                Some(ints(&[-1])),
            ],
        )
        .unwrap();
        assert_eq!(vals(&o[0]), [9., 0., 1., 9., 2., 3.]);
        let bad = eval(
            &*op,
            f32s(&[2]),
            vec![Some(ints(&[1, 0])), Some(Tensor::scalar(1i64))],
        );
        assert!(bad.is_err());
        // opset < 11 attributes.
        let old = build(
            "Pad",
            vec![
                ("pads", Attr::Ints(vec![1, 1])),
                ("value", Attr::Float(1.5)),
            ],
            10,
            1,
            1,
        );
        assert_eq!(
            vals(&eval(&*old, f32s(&[1]), vec![]).unwrap()[0]),
            [1.5, 0., 1.5]
        );
        let i = Tensor::from_vec(vec![2], vec![1u8, 2]).unwrap();
        let o = pad("edge", &[1, 0], i).unwrap();
        assert_eq!(o[0].as_slice::<u8>().unwrap(), &[1, 1, 2]);
        let a = attrs(vec![("mode", Attr::String(b"wrap".to_vec()))]);
        let c = BuildCtx {
            op_type: "Pad",
            attrs: &a,
            opset: 18,
            n_inputs: 2,
            n_outputs: 1,
        };
        assert!(super::super::build(&c).is_err());
    }

    #[test]
    fn shape_and_size() {
        let op = build("Shape", vec![], 15, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0],
            ints(&[2, 3, 4])
        );
        let op = build(
            "Shape",
            vec![("start", Attr::Int(-2)), ("end", Attr::Int(10))],
            15,
            1,
            1,
        );
        assert_eq!(
            eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0],
            ints(&[3, 4])
        );
        let op = build(
            "Shape",
            vec![("start", Attr::Int(2)), ("end", Attr::Int(1))],
            15,
            1,
            1,
        );
        assert_eq!(eval(&*op, f32s(&[2, 3, 4]), vec![]).unwrap()[0], ints(&[]));
        let f = Fact::new(DType::F32, vec![5, 6]);
        let out = op.infer(Args::new(&[Some(&f)])).unwrap();
        assert!(out[0].value.is_some());
        let op = build("Size", vec![], 13, 1, 1);
        assert_eq!(
            eval(&*op, f32s(&[2, 3]), vec![]).unwrap()[0],
            Tensor::scalar(6i64)
        );
        assert!(op.infer(Args::new(&[Some(&f)])).unwrap()[0].value.is_some());
    }

    #[test]
    fn cast_pairs() {
        for &from in &DType::ALL {
            for &to in &DType::ALL {
                let op = build(
                    "Cast",
                    vec![("to", Attr::Int(i64::from(to.onnx_code())))],
                    19,
                    1,
                    1,
                );
                let x = Tensor::new(vec![2], cast_data(&Data::F64(vec![1.0, 0.0]), from)).unwrap();
                let o = eval(&*op, x, vec![]).unwrap();
                assert_eq!(o[0].data(), &cast_data(&Data::F64(vec![1.0, 0.0]), to));
            }
        }
        let op = build("Cast", vec![("to", Attr::Int(6))], 13, 1, 1);
        let x = Tensor::from_vec(vec![3], vec![-2.7f32, f32::NAN, 3e9]).unwrap();
        assert_eq!(
            eval(&*op, x, vec![]).unwrap()[0].as_slice::<i32>().unwrap(),
            &[-2, 0, i32::MAX]
        );
        let a = attrs(vec![("to", Attr::Int(8))]);
        let c = BuildCtx {
            op_type: "Cast",
            attrs: &a,
            opset: 13,
            n_inputs: 1,
            n_outputs: 1,
        };
        assert!(super::super::build(&c).is_err());
        let op = build("CastLike", vec![], 15, 2, 1);
        let o = eval(&*op, f32s(&[2]), vec![Some(Tensor::scalar(0u8))]).unwrap();
        assert_eq!(o[0].as_slice::<u8>().unwrap(), &[0, 1]);
    }

    #[test]
    fn identity_and_dropout() {
        let op = build("Identity", vec![], 13, 1, 1);
        assert_eq!(eval(&*op, f32s(&[2]), vec![]).unwrap()[0], f32s(&[2]));
        let op = build("Dropout", vec![], 13, 1, 2);
        let o = eval(&*op, f32s(&[2]), vec![]).unwrap();
        assert_eq!(o[0], f32s(&[2]));
        assert_eq!(o[1], Tensor::from_vec(vec![2], vec![true, true]).unwrap());
        let op1 = build("Dropout", vec![], 13, 1, 1);
        assert_eq!(eval(&*op1, f32s(&[2]), vec![]).unwrap().len(), 1);
        let r = Some(Tensor::scalar(0.3f32));
        let on = Some(Tensor::scalar(true));
        assert!(eval(&*op, f32s(&[2]), vec![r.clone(), on.clone()]).is_err());
        assert!(eval(&*op, f32s(&[2]), vec![r, Some(Tensor::scalar(false))]).is_ok());
        assert!(eval(&*op, f32s(&[2]), vec![Some(Tensor::scalar(0.0f32)), on]).is_ok());
        let old = build("Dropout", vec![("ratio", Attr::Float(0.2))], 7, 1, 2);
        assert_eq!(
            eval(&*old, f32s(&[2]), vec![]).unwrap()[1],
            Tensor::from_vec(vec![2], vec![1.0f32, 1.0]).unwrap()
        );
    }

    #[test]
    fn constants() {
        let t = Tensor::from_vec(vec![2], vec![1i32, 2]).unwrap();
        let op = build(
            "Constant",
            vec![("value", Attr::Tensor(t.clone()))],
            13,
            0,
            1,
        );
        assert_eq!(eval_with(&*op, &[]).unwrap()[0], t);
        assert!(op.infer(Args::new(&[])).unwrap()[0].value.is_some());
        let op = build(
            "Constant",
            vec![("value_ints", Attr::Ints(vec![3, 4]))],
            13,
            0,
            1,
        );
        assert_eq!(eval_with(&*op, &[]).unwrap()[0], ints(&[3, 4]));
        let op = build(
            "Constant",
            vec![("value_float", Attr::Float(2.5))],
            13,
            0,
            1,
        );
        assert_eq!(eval_with(&*op, &[]).unwrap()[0], Tensor::scalar(2.5f32));
        for a in [
            vec![("value_string", Attr::String(b"x".to_vec()))],
            vec![],
            vec![
                ("value_int", Attr::Int(1)),
                ("value_float", Attr::Float(1.0)),
            ],
            vec![("value_int", Attr::Float(1.0))],
        ] {
            let a = attrs(a);
            let c = BuildCtx {
                op_type: "Constant",
                attrs: &a,
                opset: 13,
                n_inputs: 0,
                n_outputs: 1,
            };
            assert!(super::super::build(&c).is_err());
        }

        let op = build("ConstantOfShape", vec![], 13, 1, 1);
        let ins = [Some((ints(&[2, 3]), true))];
        let o = eval_with(&*op, &ins).unwrap();
        assert_eq!(o[0], Tensor::zeros(DType::F32, vec![2, 3]).unwrap());
        let ins = [Some((ints(&[]), true))];
        assert_eq!(eval_with(&*op, &ins).unwrap()[0].shape(), &[] as &[usize]);
        let v = Tensor::from_vec(vec![1], vec![7i64]).unwrap();
        let op = build(
            "ConstantOfShape",
            vec![("value", Attr::Tensor(v))],
            13,
            1,
            1,
        );
        let o = eval_with(&*op, &[Some((ints(&[2]), true))]).unwrap();
        assert_eq!(o[0], ints(&[7, 7]));
        let err = eval_with(&*op, &[Some((ints(&[2]), false))]).unwrap_err();
        assert!(err.0.contains("shape input must be known before execution"));
        assert!(eval_with(&*op, &[Some((ints(&[-1]), true))]).is_err());
        assert!(eval_with(&*op, &[Some((ints(&[i64::MAX, i64::MAX]), true))]).is_err());
    }
}

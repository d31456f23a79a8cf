//! Operators: Resize (opsets 10 to 19: nearest, linear and cubic modes,
//! every coordinate transformation, antialias, axes,
//! keep_aspect_ratio_policy) and Upsample (opsets 7 to 9).
//!
//! Arithmetic per docs/determinism.md, "Resize": separable, one axis at a
//! time, in float64 with a fixed order of products and sums, cast back to the
//! input's type at the end.

use super::util::known_ints;
use super::{Args, BuildCtx, Fact, Op, Registry, default_cost};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{DType, Data, Tensor, checked_len, strides};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Resize", build_resize);
    r.add("Upsample", build_upsample);
}

/// Largest output dimension accepted (keeps scale-derived shapes sane).
const MAX_DIM: f64 = (1u64 << 40) as f64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Debug)]
struct Resize {
    mode: Mode,
    coord: Coord,
    nearest: Nearest,
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f64,
    antialias: bool,
    axes: Option<Vec<i64>>,
    policy: Policy,
    /// Opsets 7 to 10: inputs (X, scales).
    two_inputs: bool,
}

fn parse_mode(s: &str) -> OpResult<Mode> {
    Ok(match s {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" | "trilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        other => bail!("mode `{other}` is not nearest, linear or cubic"),
    })
}

fn build_resize(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let a = b.attrs;
    let mode = parse_mode(a.string("mode", "nearest")?)?;
    if b.opset < 11 {
        ensure!(
            b.n_inputs == 2,
            "Resize-10 takes X and scales, the node has {} inputs",
            b.n_inputs
        );
        return Ok(Box::new(Resize {
            mode,
            coord: Coord::Asymmetric,
            nearest: Nearest::Floor,
            cubic_a: -0.75,
            exclude_outside: false,
            extrapolation: 0.0,
            antialias: false,
            axes: None,
            policy: Policy::Stretch,
            two_inputs: true,
        }));
    }
    let coord = match a.string("coordinate_transformation_mode", "half_pixel")? {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        other => bail!("coordinate_transformation_mode `{other}` is not supported"),
    };
    let nearest = match a.string("nearest_mode", "round_prefer_floor")? {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => bail!("nearest_mode `{other}` is not supported"),
    };
    let policy = match a.string("keep_aspect_ratio_policy", "stretch")? {
        "stretch" => Policy::Stretch,
        "not_larger" => Policy::NotLarger,
        "not_smaller" => Policy::NotSmaller,
        other => bail!("keep_aspect_ratio_policy `{other}` is not supported"),
    };
    let antialias = a.flag("antialias", false)?;
    ensure!(
        !(antialias && mode == Mode::Nearest),
        "antialias does not apply to mode nearest"
    );
    Ok(Box::new(Resize {
        mode,
        coord,
        nearest,
        cubic_a: f64::from(a.float("cubic_coeff_a", -0.75)?),
        exclude_outside: a.flag("exclude_outside", false)?,
        extrapolation: f64::from(a.float("extrapolation_value", 0.0)?),
        antialias,
        axes: a.opt_ints("axes")?.map(<[i64]>::to_vec),
        policy,
        two_inputs: false,
    }))
}

fn build_upsample(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let mode = parse_mode(b.attrs.string("mode", "nearest")?)?;
    ensure!(mode != Mode::Cubic, "Upsample takes mode nearest or linear");
    ensure!(
        b.opset >= 9,
        "Upsample before opset 9 (scales as an attribute) is not supported"
    );
    Ok(Box::new(Resize {
        mode,
        coord: Coord::Asymmetric,
        nearest: Nearest::Floor,
        cubic_a: -0.75,
        exclude_outside: false,
        extrapolation: 0.0,
        antialias: false,
        axes: None,
        policy: Policy::Stretch,
        two_inputs: true,
    }))
}

/// Scales and output size per dimension of the input.
struct Target {
    scales: Vec<f64>,
    out: Vec<usize>,
    /// The axes to resize, in the order they are resized.
    axes: Vec<usize>,
}

fn f64s(f: &Fact, what: &str) -> OpResult<Vec<f64>> {
    let t = f.value.as_deref().ok_or_else(|| {
        OpError(format!(
            "{what} must be known before execution (a constant or computed from shapes)"
        ))
    })?;
    Ok(match t.data() {
        Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::F64(v) => v.clone(),
        _ => bail!("{what} must be float, got {}", t.dtype()),
    })
}

impl Resize {
    /// The scales (when given and non-empty) and sizes inputs.
    fn target(&self, inputs: Args<'_, Fact>) -> OpResult<Target> {
        let x = inputs.get(0)?;
        let r = x.shape.len();
        let axes: Vec<usize> = match &self.axes {
            None => (0..r).collect(),
            Some(a) => {
                let mut v = Vec::with_capacity(a.len());
                for &ax in a {
                    let n = super::util::normalize_axis(ax, r)?;
                    ensure!(!v.contains(&n), "axes {a:?} repeat an axis");
                    v.push(n);
                }
                v
            }
        };
        let (scales_in, sizes_in) = if self.two_inputs {
            (Some(inputs.get(1)?), None)
        } else {
            (
                inputs.opt(2).filter(|f| !f.is_empty()),
                inputs.opt(3).filter(|f| !f.is_empty()),
            )
        };
        let mut scales = vec![1.0f64; r];
        let mut out = x.shape.clone();
        match (scales_in, sizes_in) {
            (Some(s), None) => {
                let s = f64s(s, "scales")?;
                ensure!(
                    s.len() == axes.len(),
                    "scales has {} values for {} axes",
                    s.len(),
                    axes.len()
                );
                for (&ax, &v) in axes.iter().zip(&s) {
                    ensure!(v.is_finite() && v > 0.0, "scale {v} is not positive");
                    let o = (v * x.shape[ax] as f64).floor();
                    if o > MAX_DIM {
                        bail!("scale {v} makes dimension {ax} too large");
                    }
                    scales[ax] = v;
                    out[ax] = o as usize;
                }
            }
            (None, Some(sz)) => {
                ensure!(
                    matches!(sz.dtype, DType::I64),
                    "sizes must be int64, got {}",
                    sz.dtype
                );
                let sz = known_ints(sz, "sizes")?;
                ensure!(
                    sz.len() == axes.len(),
                    "sizes has {} values for {} axes",
                    sz.len(),
                    axes.len()
                );
                for (&ax, &v) in axes.iter().zip(&sz) {
                    ensure!(v >= 0 && (v as f64) <= MAX_DIM, "size {v} is out of range");
                    ensure!(
                        x.shape[ax] > 0,
                        "cannot resize an empty dimension {ax} to {v}"
                    );
                    out[ax] = v as usize;
                    scales[ax] = v as f64 / x.shape[ax] as f64;
                }
                if self.policy != Policy::Stretch {
                    let pick = axes.iter().map(|&a| scales[a]);
                    let s = if self.policy == Policy::NotLarger {
                        pick.fold(f64::INFINITY, f64::min)
                    } else {
                        pick.fold(f64::NEG_INFINITY, f64::max)
                    };
                    for &ax in &axes {
                        scales[ax] = s;
                        out[ax] = (s * x.shape[ax] as f64 + 0.5).floor() as usize;
                    }
                }
            }
            (Some(_), Some(_)) => bail!("only one of scales and sizes may be given"),
            (None, None) => bail!("one of scales and sizes must be given"),
        }
        ensure!(
            checked_len(&out).is_some(),
            "the output shape {out:?} overflows"
        );
        Ok(Target { scales, out, axes })
    }

    /// Coefficients of one output position from its ratio (in `(0, 1]`).
    fn coeffs(&self, ratio: f64, scale: f64, integer: bool) -> Vec<f64> {
        match self.mode {
            Mode::Nearest => {
                let (lo, hi) = if integer {
                    (false, true)
                } else {
                    match self.nearest {
                        Nearest::RoundPreferFloor => (ratio <= 0.5, ratio > 0.5),
                        Nearest::RoundPreferCeil => (ratio < 0.5, ratio >= 0.5),
                        Nearest::Floor => (true, false),
                        Nearest::Ceil => (false, true),
                    }
                };
                vec![f64::from(u8::from(lo)), f64::from(u8::from(hi))]
            }
            Mode::Linear if !self.antialias => vec![1.0 - ratio, ratio],
            Mode::Linear => {
                let s = scale.min(1.0);
                let start = (-1.0 / s).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> = (start..start + footprint)
                    .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                    .collect();
                normalize(c)
            }
            Mode::Cubic if !self.antialias => {
                let a = self.cubic_a;
                let r1 = ratio + 1.0;
                let q = 1.0 - ratio;
                let q1 = q + 1.0;
                vec![
                    ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a,
                    ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * q1 - 5.0 * a) * q1 + 8.0 * a) * q1 - 4.0 * a,
                ]
            }
            Mode::Cubic => {
                let a = self.cubic_a;
                let s = scale.min(1.0);
                let start = (-2.0 / s).floor() as i64 + 1;
                let end = 2 - start;
                let c: Vec<f64> = (start..end)
                    .map(|i| {
                        let x = (s * (i as f64 - ratio)).abs();
                        let (x2, x3) = (x * x, x * (x * x));
                        if x <= 1.0 {
                            (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                        } else if x < 2.0 {
                            a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                        } else {
                            0.0
                        }
                    })
                    .collect();
                normalize(c)
            }
        }
    }

    /// Source coordinate of output position `y` along an axis, and whether
    /// it lies outside the input (tf_crop_and_resize only).
    fn source(
        &self,
        y: f64,
        scale: f64,
        in_w: usize,
        out_w: usize,
        roi: (f64, f64),
    ) -> (f64, bool) {
        let in_f = in_w as f64;
        let out_f = scale * in_f;
        match self.coord {
            Coord::AlignCorners => {
                if out_f == 1.0 {
                    (0.0, false)
                } else {
                    (y * (in_f - 1.0) / (out_f - 1.0), false)
                }
            }
            Coord::Asymmetric => (y / scale, false),
            Coord::TfCropAndResize => {
                let x = if out_f == 1.0 {
                    (roi.1 - roi.0) * (in_f - 1.0) / 2.0
                } else {
                    y * (roi.1 - roi.0) * (in_f - 1.0) / (out_f - 1.0)
                };
                let x = x + roi.0 * (in_f - 1.0);
                (x, x < 0.0 || x > in_f - 1.0)
            }
            Coord::PytorchHalfPixel => {
                if out_f == 1.0 {
                    (-0.5, false)
                } else {
                    ((y + 0.5) / scale - 0.5, false)
                }
            }
            Coord::HalfPixel => ((y + 0.5) / scale - 0.5, false),
            Coord::HalfPixelSymmetric => {
                let adjustment = out_w as f64 / out_f;
                let center = in_f / 2.0;
                let offset = center * (1.0 - adjustment);
                (offset + (y + 0.5) / scale - 0.5, false)
            }
        }
    }

    /// Resizes axis `axis` of `data` (shape `shape`) to `out_w`.
    #[allow(clippy::too_many_arguments)]
    fn axis_pass(
        &self,
        data: &[f64],
        shape: &[usize],
        axis: usize,
        scale: f64,
        out_w: usize,
        roi: (f64, f64),
    ) -> Vec<f64> {
        let in_w = shape[axis];
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        // Per output position: (extrapolated, [(input index, coefficient)]).
        let plan: Vec<(bool, Vec<(usize, f64)>)> = (0..out_w)
            .map(|y| {
                let (x, extrapolated) = self.source(y as f64, scale, in_w, out_w, roi);
                let xf = x.floor();
                let integer = x == xf;
                let ratio = if integer { 1.0 } else { x - xf };
                let mut c = self.coeffs(ratio, scale, integer);
                let n = c.len() as i64;
                let pad = (n + 1) / 2;
                let xp = x + pad as f64;
                let p = xp.floor();
                let frac = xp - p;
                let offset = if n % 2 == 0 {
                    if frac == 0.0 { -(n / 2) } else { -(n / 2) + 1 }
                } else {
                    let base = -((n - 1) / 2);
                    if frac <= 0.5 { base } else { base + 1 }
                };
                let start = p as i64 + offset - pad;
                let idx: Vec<i64> = (0..n).map(|j| start + j).collect();
                if self.exclude_outside {
                    for (cj, &i) in c.iter_mut().zip(&idx) {
                        if i < 0 || i >= in_w as i64 {
                            *cj = 0.0;
                        }
                    }
                    c = normalize(c);
                }
                let taps = idx
                    .iter()
                    .zip(c)
                    .map(|(&i, cj)| (i.clamp(0, in_w as i64 - 1) as usize, cj))
                    .collect();
                (extrapolated, taps)
            })
            .collect();
        let mut out = vec![0.0f64; outer * out_w * inner];
        for o in 0..outer {
            for (y, (extrapolated, taps)) in plan.iter().enumerate() {
                let dst = &mut out[(o * out_w + y) * inner..][..inner];
                if *extrapolated {
                    dst.fill(self.extrapolation);
                    continue;
                }
                for (k, d) in dst.iter_mut().enumerate() {
                    let mut acc = 0.0f64;
                    for (j, &(i, c)) in taps.iter().enumerate() {
                        let v = data[(o * in_w + i) * inner + k] * c;
                        acc = if j == 0 { v } else { acc + v };
                    }
                    *d = acc;
                }
            }
        }
        out
    }
}

/// Divides by the sum (left to right), unless it is zero.
fn normalize(mut c: Vec<f64>) -> Vec<f64> {
    let sum = c.iter().fold(0.0, |a, &b| a + b);
    if sum != 0.0 {
        for v in &mut c {
            *v /= sum;
        }
    }
    c
}

impl Op for Resize {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure!(x.dtype != DType::Bool, "Resize does not interpolate bool");
        let t = self.target(inputs)?;
        Ok(vec![Fact::new(x.dtype, t.out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let taps = match self.mode {
            Mode::Nearest | Mode::Linear => 2,
            Mode::Cubic => 4,
        };
        let axes = inputs.get(0).map_or(1, |x| x.shape.len().max(1)) as u64;
        default_cost(inputs, outputs, 2 * taps * axes)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = (0..inputs.len())
            .map(|i| {
                inputs
                    .opt(i)
                    .map(|t| Fact::known(std::sync::Arc::new(t.clone())))
            })
            .collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let t = self.target(Args::new(&refs))?;
        let x = inputs.get(0)?;
        let r = x.rank();
        let roi: Vec<f64> = match (self.coord, inputs.opt(1)) {
            (Coord::TfCropAndResize, Some(roi)) if !self.two_inputs && !roi.is_empty() => {
                let v = match roi.data() {
                    Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
                    Data::F64(v) => v.clone(),
                    _ => bail!("roi must be float, got {}", roi.dtype()),
                };
                let n = t.axes.len();
                ensure!(v.len() == 2 * n, "roi has {} values for {n} axes", v.len());
                let mut full = vec![0.0; r];
                full.extend(std::iter::repeat_n(1.0, r));
                for (i, &ax) in t.axes.iter().enumerate() {
                    full[ax] = v[i];
                    full[r + ax] = v[n + i];
                }
                full
            }
            (Coord::TfCropAndResize, _) => bail!("tf_crop_and_resize needs roi"),
            _ => [vec![0.0; r], vec![1.0; r]].concat(),
        };
        let mut data: Vec<f64> = match x.data() {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::Bool(_) => bail!("Resize does not interpolate bool"),
        };
        let mut shape = x.shape().to_vec();
        for &ax in &t.axes {
            let (scale, out_w) = (t.scales[ax], t.out[ax]);
            let (r0, r1) = (roi[ax], roi[r + ax]);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
            if close(scale, 1.0) && out_w == shape[ax] && close(r0, 0.0) && close(r1, 1.0) {
                continue;
            }
            if out_w == 0 || shape[ax] == 0 {
                shape[ax] = out_w;
                data = vec![0.0; shape.iter().product()];
                continue;
            }
            data = self.axis_pass(&data, &shape, ax, scale, out_w, (r0, r1));
            shape[ax] = out_w;
        }
        debug_assert_eq!(strides(&shape).len(), shape.len());
        // Back to the input's type: floats round to nearest, integers round
        // half to even and saturate.
        fn int<T: TryFrom<i64> + Default>(v: f64, min: f64, max: f64) -> T {
            let r = v.round_ties_even();
            let r = if r.is_nan() { 0.0 } else { r.clamp(min, max) };
            T::try_from(r as i64).unwrap_or_default()
        }
        let out = match x.dtype() {
            DType::F32 => Data::F32(data.iter().map(|&v| v as f32).collect()),
            DType::F64 => Data::F64(data),
            DType::I64 => Data::I64(
                data.iter()
                    .map(|&v| int(v, i64::MIN as f64, i64::MAX as f64))
                    .collect(),
            ),
            DType::I32 => Data::I32(
                data.iter()
                    .map(|&v| int(v, i32::MIN.into(), i32::MAX.into()))
                    .collect(),
            ),
            DType::I8 => Data::I8(
                data.iter()
                    .map(|&v| int(v, i8::MIN.into(), i8::MAX.into()))
                    .collect(),
            ),
            DType::U8 => Data::U8(data.iter().map(|&v| int(v, 0.0, 255.0)).collect()),
            DType::Bool => bail!("Resize does not interpolate bool"),
        };
        Ok(vec![Tensor::new(shape, out)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn op(attrs: Vec<(&str, Attr)>) -> Box<dyn Op> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        build_resize(&BuildCtx {
            op_type: "Resize",
            attrs: &attrs,
            opset: 19,
            n_inputs: 4,
            n_outputs: 1,
        })
        .unwrap()
    }

    fn run(
        op: &dyn Op,
        x: &Tensor,
        scales: Option<&Tensor>,
        sizes: Option<&Tensor>,
    ) -> OpResult<Tensor> {
        let inputs = [Some(x), None, scales, sizes];
        Ok(op
            .run(&Ctx::single(Isa::Portable), Args::new(&inputs))?
            .remove(0))
    }

    #[test]
    fn linear_half_pixel_upsampling() {
        let x = Tensor::from_vec(vec![1, 1, 1, 2], vec![0.0f32, 4.0]).unwrap();
        let s = Tensor::from_vec(vec![4], vec![1.0f32, 1.0, 1.0, 2.0]).unwrap();
        let y = run(
            op(vec![("mode", Attr::String(b"linear".to_vec()))]).as_ref(),
            &x,
            Some(&s),
            None,
        )
        .unwrap();
        // Sources -0.25, 0.25, 0.75, 1.25: clamped at the edges.
        assert_eq!(y.f32s().unwrap(), &[0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn nearest_integers_and_sizes() {
        let x = Tensor::from_vec(vec![1, 3], vec![1u8, 200, 9]).unwrap();
        let sz = Tensor::from_vec(vec![2], vec![1i64, 6]).unwrap();
        let y = run(op(vec![]).as_ref(), &x, None, Some(&sz)).unwrap();
        assert_eq!(y.as_slice::<u8>().unwrap(), &[1, 1, 200, 200, 9, 9]);
    }

    #[test]
    fn bad_resizes_are_refused() {
        let o = op(vec![]);
        let x = Fact::new(DType::F32, vec![2, 2]);
        let s = Fact::known(
            Tensor::from_vec(vec![2], vec![1.0f32, -1.0])
                .unwrap()
                .into(),
        );
        let e = o.infer(Args::new(&[Some(&x), None, Some(&s)])).unwrap_err();
        assert!(e.0.contains("not positive"), "{e}");
        let e = o
            .infer(Args::new(&[Some(&x), None, None, None]))
            .unwrap_err();
        assert!(e.0.contains("one of scales and sizes"), "{e}");
        let big = Fact::known(
            Tensor::from_vec(vec![2], vec![1.0f32, 1e30])
                .unwrap()
                .into(),
        );
        let e = o
            .infer(Args::new(&[Some(&x), None, Some(&big)]))
            .unwrap_err();
        assert!(e.0.contains("too large"), "{e}");
        let mut a = Attrs::new(vec![("mode".into(), Attr::String(b"area".to_vec()))]);
        let e = build_resize(&BuildCtx {
            op_type: "Resize",
            attrs: &a,
            opset: 19,
            n_inputs: 4,
            n_outputs: 1,
        })
        .unwrap_err();
        assert!(e.0.contains("area"), "{e}");
        a = Attrs::new(vec![("antialias".into(), Attr::Int(1))]);
        assert!(
            build_resize(&BuildCtx {
                op_type: "Resize",
                attrs: &a,
                opset: 19,
                n_inputs: 4,
                n_outputs: 1,
            })
            .is_err()
        );
    }
}

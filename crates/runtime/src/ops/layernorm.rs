//! Normalizations over rows: LayerNormalization, RMSNormalization,
//! GroupNormalization, InstanceNormalization.
//!
//! Arithmetic follows docs/determinism.md, "Normalisation": per row of `n`
//! elements, `mean = L8 sum / n`; `var = L8 sum of (d * d) / n` with
//! `d = x - mean`; `inv = 1 / sqrt(var + eps)`; `y = ((d * inv) * scale) + bias`,
//! every operation rounded separately (no fma). RMSNormalization uses `d = x`
//! and `var = L8 sum of (x * x) / n`, and has no bias. Computation is in the
//! input's float type (`stash_type` is not used). Threads split independent
//! rows only, so the bits do not depend on the thread count.

use super::util::{normalize_axis, shape_len};
use super::{Args, BuildCtx, Fact, Op, Registry, default_cost};
use crate::broadcast::{broadcast_shapes, offsets};
use crate::cost::Cost;
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::kernels::elementwise::{Float, Num, sum_l8_by, with_isa};
use crate::tensor::{Data, Elem, Tensor};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("LayerNormalization", |b| {
        build(b, Kind::Layer(b.attrs.int("axis", -1)?), 3)
    });
    r.add("RMSNormalization", |b| {
        build(b, Kind::Rms(b.attrs.int("axis", -1)?), 1)
    });
    r.add("GroupNormalization", |b| {
        let groups = b.attrs.req_int("num_groups")?;
        ensure!(
            groups >= 1,
            "attribute `num_groups` must be at least 1, got {groups}"
        );
        let groups = usize::try_from(groups)
            .map_err(|_| crate::OpError(format!("num_groups {groups} is too large")))?;
        // Opset 18 has one scale/bias per group; opset 21 one per channel.
        let per_channel = b.opset >= 21;
        build(
            b,
            Kind::Group {
                groups,
                per_channel,
            },
            1,
        )
    });
    r.add("InstanceNormalization", |b| build(b, Kind::Instance, 1));
}

/// Elements a parallel task should at least cover.
const GRAIN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Normalizes over the dimensions from `axis` on; optional bias; up to
    /// three outputs (Y, Mean, InvStdDev).
    Layer(i64),
    /// Like `Layer` without centring or bias.
    Rms(i64),
    /// `[N, C, ...]`: each row is one group of `C / groups` channels.
    Group { groups: usize, per_channel: bool },
    /// `[N, C, ...]`: each row is one channel plane.
    Instance,
}

#[derive(Debug)]
struct Norm {
    kind: Kind,
    epsilon: f32,
    n_outputs: usize,
}

fn build(b: &BuildCtx<'_>, kind: Kind, max_outputs: usize) -> OpResult<Box<dyn Op>> {
    ensure!(
        (1..=max_outputs).contains(&b.n_outputs),
        "{} has 1 to {max_outputs} outputs, got {}",
        b.op_type,
        b.n_outputs
    );
    Ok(Box::new(Norm {
        kind,
        epsilon: b.attrs.float("epsilon", 1e-5)?,
        n_outputs: b.n_outputs,
    }))
}

/// How a tensor splits into rows and where each element's scale/bias is:
/// the parameter index of element `pos` of row `row` is
/// `((row % period) * n + pos) / chunk`, after expansion to `param_len`.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    rows: usize,
    n: usize,
    period: usize,
    chunk: usize,
    /// For Layer/RMS: the normalized shape that scale/bias broadcast to.
    /// For the others: `[param_len]`.
    param_shape: Vec<usize>,
    /// Shape of the Mean/InvStdDev outputs (Layer only).
    stat_shape: Vec<usize>,
}

impl Norm {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Layer(_) => "LayerNormalization",
            Kind::Rms(_) => "RMSNormalization",
            Kind::Group { .. } => "GroupNormalization",
            Kind::Instance => "InstanceNormalization",
        }
    }

    fn centred(&self) -> bool {
        !matches!(self.kind, Kind::Rms(_))
    }

    fn plan(&self, x: &[usize]) -> OpResult<Plan> {
        let rank = x.len();
        match self.kind {
            Kind::Layer(axis) | Kind::Rms(axis) => {
                let a = normalize_axis(axis, rank)?;
                let rows = shape_len(&x[..a])?;
                let n = shape_len(&x[a..])?;
                let mut stat_shape = x[..a].to_vec();
                stat_shape.resize(rank, 1);
                Ok(Plan {
                    rows,
                    n,
                    period: 1,
                    chunk: 1,
                    param_shape: x[a..].to_vec(),
                    stat_shape,
                })
            }
            Kind::Group {
                groups,
                per_channel,
            } => {
                ensure!(
                    rank >= 2,
                    "X must have rank at least 2 [N, C, ...], got shape {x:?}"
                );
                let c = x[1];
                ensure!(
                    c.is_multiple_of(groups),
                    "the {c} channels do not divide into {groups} groups"
                );
                let s = shape_len(&x[2..])?;
                let n = (c / groups)
                    .checked_mul(s)
                    .ok_or_else(|| crate::OpError("group size overflows".into()))?;
                Ok(Plan {
                    rows: x[0] * groups,
                    n,
                    period: groups,
                    chunk: if per_channel { s } else { n },
                    param_shape: vec![if per_channel { c } else { groups }],
                    stat_shape: Vec::new(),
                })
            }
            Kind::Instance => {
                ensure!(
                    rank >= 2,
                    "X must have rank at least 2 [N, C, ...], got shape {x:?}"
                );
                let s = shape_len(&x[2..])?;
                Ok(Plan {
                    rows: x[0] * x[1],
                    n: s,
                    period: x[1],
                    chunk: s,
                    param_shape: vec![x[1]],
                    stat_shape: Vec::new(),
                })
            }
        }
    }

    /// Checks a scale/bias shape against the plan.
    fn check_param(&self, plan: &Plan, what: &str, shape: &[usize]) -> OpResult<()> {
        match self.kind {
            Kind::Layer(_) | Kind::Rms(_) => {
                let ok = broadcast_shapes(&[shape, &plan.param_shape])
                    .is_ok_and(|s| s == plan.param_shape);
                ensure!(
                    ok,
                    "{what} {shape:?} must broadcast to the normalized shape {:?}",
                    plan.param_shape
                );
            }
            _ => ensure!(
                shape == plan.param_shape,
                "{what} must have shape {:?}, got {shape:?}",
                plan.param_shape
            ),
        }
        Ok(())
    }

    /// Input slots: (scale index, bias index or None, whether bias is required).
    fn bias_required(&self) -> Option<bool> {
        match self.kind {
            Kind::Layer(_) => Some(false),
            Kind::Rms(_) => None,
            _ => Some(true),
        }
    }

    fn check_inputs(&self, inputs: Args<'_, Fact>) -> OpResult<Plan> {
        let name = self.name();
        let max = if self.bias_required().is_some() { 3 } else { 2 };
        ensure!(
            (2..=max).contains(&inputs.len()),
            "{name} takes 2 to {max} inputs, got {}",
            inputs.len()
        );
        let x = inputs.get(0)?;
        ensure!(
            x.dtype.is_float(),
            "{name}: X must be float32 or float64, got {}",
            x.dtype
        );
        let plan = self.plan(&x.shape)?;
        for (i, what) in [(1, "scale"), (2, "bias")] {
            let f = match inputs.opt(i) {
                Some(f) => f,
                None if i == 2 && self.bias_required() != Some(true) => continue,
                None => bail!("{name}: input `{what}` is missing"),
            };
            ensure!(
                f.dtype == x.dtype,
                "{name}: {what} is {} but X is {}",
                f.dtype,
                x.dtype
            );
            self.check_param(&plan, what, &f.shape)?;
        }
        Ok(plan)
    }
}

/// The lane-8 sum of `f(v)` over `row` (docs/determinism.md, "Sums over an
/// axis").
#[inline(always)]
fn sum_l8<T: Num>(row: &[T], f: impl Fn(T) -> T) -> T {
    sum_l8_by(row, T::default(), f, T::add)
}

/// `(mean, inv)` of one row (mean is `+0` when not centred).
#[inline(always)]
fn row_stats<T: Float>(row: &[T], centred: bool, eps: T) -> (T, T) {
    let n = T::from_usize(row.len());
    let one = T::from_f32(1.0);
    let (mean, var) = if centred {
        let mean = sum_l8(row, |v| v).div(n);
        let var = sum_l8(row, |v| {
            let d = v.sub(mean);
            d.mul(d)
        })
        .div(n);
        (mean, var)
    } else {
        (T::default(), sum_l8(row, |v| v.mul(v)).div(n))
    };
    (mean, one.div(var.add(eps).sqrt()))
}

/// Scale/bias expanded for the plan: Layer/RMS parameters are broadcast to the
/// normalized shape; the others are used as they are.
fn expand<T: Elem>(t: &Tensor, plan: &Plan) -> OpResult<Vec<T>> {
    let v = t.as_slice::<T>()?;
    if t.shape() == plan.param_shape.as_slice() {
        return Ok(v.to_vec());
    }
    Ok(offsets(t.shape(), &plan.param_shape)
        .into_iter()
        .map(|o| v[o])
        .collect())
}

/// `y = ((d * inv) * s) + b` per element, `d = x - mean` when centred.
#[inline(always)]
fn normalize<T: Float>(y: &mut [T], x: &[T], s: &[T], b: &[T], centred: bool, mean: T, inv: T) {
    for (((y, &v), &s), &b) in y.iter_mut().zip(x).zip(s).zip(b) {
        let d = if centred { v.sub(mean) } else { v };
        *y = d.mul(inv).mul(s).add(b);
    }
}

/// `y = (d * inv) * s` per element, `d = x - mean` when centred.
#[inline(always)]
fn normalize_unbiased<T: Float>(y: &mut [T], x: &[T], s: &[T], centred: bool, mean: T, inv: T) {
    for ((y, &v), &s) in y.iter_mut().zip(x).zip(s) {
        let d = if centred { v.sub(mean) } else { v };
        *y = d.mul(inv).mul(s);
    }
}

/// Normalized output and per-row `(mean, inv)`.
fn compute<T: Float>(
    ctx: &Ctx<'_>,
    plan: &Plan,
    centred: bool,
    eps: f32,
    x: &[T],
    scale: &[T],
    bias: Option<&[T]>,
) -> (Vec<T>, Vec<(T, T)>) {
    let (rows, n) = (plan.rows, plan.n);
    let mut stats = vec![(T::default(), T::default()); rows];
    let mut out = vec![T::default(); x.len()];
    if n == 0 || rows == 0 {
        return (out, stats);
    }
    let eps = T::from_f32(eps);
    let per_task = (GRAIN / n).max(1);
    let isa = ctx.isa;
    ctx.for_chunks_mut(&mut stats, per_task, |ci, sc| {
        with_isa!(isa, {
            for (k, st) in sc.iter_mut().enumerate() {
                let r = ci * per_task + k;
                *st = row_stats(&x[r * n..(r + 1) * n], centred, eps);
            }
        });
    });
    let stats_ref = &stats;
    let (period, chunk) = (plan.period.max(1), plan.chunk.max(1));
    ctx.for_chunks_mut(&mut out, per_task * n, |ci, oc| {
        with_isa!(
            isa,
            for (k, yr) in oc.chunks_mut(n).enumerate() {
                let r = ci * per_task + k;
                let (mean, inv) = stats_ref[r];
                let xr = &x[r * n..(r + 1) * n];
                let base = (r % period) * n;
                if chunk == 1 {
                    // One parameter per element (Layer/RMS): `p = base + pos`.
                    let s = &scale[base..base + n];
                    match bias {
                        Some(b) => normalize(yr, xr, s, &b[base..base + n], centred, mean, inv),
                        None => normalize_unbiased(yr, xr, s, centred, mean, inv),
                    }
                    continue;
                }
                // Runs of `chunk` elements share one parameter `p`.
                let mut pos = 0;
                while pos < n {
                    let g = base + pos;
                    let p = g / chunk;
                    let end = pos + (chunk - g % chunk).min(n - pos);
                    let (ys, xs) = (&mut yr[pos..end], &xr[pos..end]);
                    let s = scale[p];
                    for (y, &v) in ys.iter_mut().zip(xs) {
                        let d = if centred { v.sub(mean) } else { v };
                        let t = d.mul(inv).mul(s);
                        *y = match bias {
                            Some(b) => t.add(b[p]),
                            None => t,
                        };
                    }
                    pos = end;
                }
            }
        );
    });
    (out, stats)
}

impl Norm {
    fn run_typed<T: Float>(
        &self,
        ctx: &Ctx<'_>,
        plan: &Plan,
        x: &Tensor,
        scale: &Tensor,
        bias: Option<&Tensor>,
    ) -> OpResult<Vec<Tensor>> {
        let s = expand::<T>(scale, plan)?;
        let b = bias.map(|b| expand::<T>(b, plan)).transpose()?;
        let (y, stats) = compute(
            ctx,
            plan,
            self.centred(),
            self.epsilon,
            x.as_slice::<T>()?,
            &s,
            b.as_deref(),
        );
        let mut outs = vec![Tensor::from_vec(x.shape().to_vec(), y)?];
        if self.n_outputs >= 2 {
            let m: Vec<T> = stats.iter().map(|s| s.0).collect();
            outs.push(Tensor::from_vec(plan.stat_shape.clone(), m)?);
        }
        if self.n_outputs >= 3 {
            let i: Vec<T> = stats.iter().map(|s| s.1).collect();
            outs.push(Tensor::from_vec(plan.stat_shape.clone(), i)?);
        }
        Ok(outs)
    }
}

impl Op for Norm {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let plan = self.check_inputs(inputs)?;
        let x = inputs.get(0)?;
        let mut outs = vec![Fact::new(x.dtype, x.shape.clone())];
        for _ in 1..self.n_outputs {
            outs.push(Fact::new(x.dtype, plan.stat_shape.clone()));
        }
        Ok(outs)
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, 8)
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = (0..inputs.len())
            .map(|i| {
                inputs
                    .opt(i)
                    .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            })
            .collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let plan = self.check_inputs(Args::new(&refs))?;
        let (x, scale) = (inputs.get(0)?, inputs.get(1)?);
        let bias = if self.bias_required().is_some() {
            inputs.opt(2)
        } else {
            None
        };
        match x.data() {
            Data::F32(_) => self.run_typed::<f32>(ctx, &plan, x, scale, bias),
            Data::F64(_) => self.run_typed::<f64>(ctx, &plan, x, scale, bias),
            _ => bail!("{}: X must be float32 or float64", self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::canon;
    use crate::kernels::Isa;

    fn build_op(op: &str, opset: i64, n_outputs: usize, attrs: Vec<(&str, Attr)>) -> Box<dyn Op> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let b = BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs: 3,
            n_outputs,
        };
        crate::ops::build(&b).unwrap()
    }

    fn run_with(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = inputs
            .iter()
            .map(|t| t.map(|t| Fact::new(t.dtype(), t.shape().to_vec())))
            .collect();
        let frefs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let inferred = op.infer(Args::new(&frefs))?;
        let out = op.run(ctx, Args::new(inputs))?;
        assert_eq!(inferred.len(), out.len());
        for (f, t) in inferred.iter().zip(&out) {
            assert_eq!(f.shape, t.shape());
            assert_eq!(f.dtype, t.dtype());
        }
        Ok(out)
    }

    fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        run_with(op, &Ctx::single(Isa::Portable), inputs)
    }

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// f64 reference: normalizes each row of `n` elements.
    fn ref_rows(x: &[f32], n: usize, centred: bool, eps: f64) -> Vec<f64> {
        x.chunks(n)
            .flat_map(|r| {
                let r: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
                let m = if centred {
                    r.iter().sum::<f64>() / n as f64
                } else {
                    0.0
                };
                let var = r.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
                let inv = 1.0 / (var + eps).sqrt();
                r.into_iter()
                    .map(move |v| (v - m) * inv)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-5 * w.abs().max(1.0),
                "got {g}, want {w}"
            );
        }
    }

    #[test]
    fn layer_norm_matches_reference_and_outputs_stats() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32) * 0.5 - 2.0).collect();
        let xt = t(&[2, 3, 4], &x);
        let scale = t(&[4], &[1.0, 2.0, -1.0, 0.5]);
        let bias = t(&[4], &[0.0, 1.0, 0.0, -1.0]);
        let op = build_op("LayerNormalization", 17, 3, vec![]);
        let out = run(op.as_ref(), &[Some(&xt), Some(&scale), Some(&bias)]).unwrap();
        let base = ref_rows(&x, 4, true, 1e-5);
        let want: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(i, v)| v * [1.0, 2.0, -1.0, 0.5][i % 4] + [0.0, 1.0, 0.0, -1.0][i % 4])
            .collect();
        close(out[0].f32s().unwrap(), &want);
        assert_eq!(out[1].shape(), [2, 3, 1]);
        assert_eq!(out[1].f32s().unwrap()[0], canon::sum_l8(&x[..4]) / 4.0);
        // Exactly the canonical sequence on row 0.
        let r = &x[..4];
        let mean = canon::sum_l8(r) / 4.0;
        let d: Vec<f32> = r.iter().map(|v| v - mean).collect();
        let sq: Vec<f32> = d.iter().map(|v| v * v).collect();
        let inv = 1.0 / (canon::sum_l8(&sq) / 4.0 + 1e-5f32).sqrt();
        assert_eq!(out[2].f32s().unwrap()[0].to_bits(), inv.to_bits());
        let y0 = ((d[1] * inv) * 2.0) + 1.0;
        assert_eq!(out[0].f32s().unwrap()[1].to_bits(), y0.to_bits());

        // axis = 1, no bias, scale broadcast from [1, 4] to [3, 4].
        let op = build_op("LayerNormalization", 17, 1, vec![("axis", Attr::Int(1))]);
        let s2 = t(&[1, 4], &[1.0; 4]);
        let out = run(op.as_ref(), &[Some(&xt), Some(&s2)]).unwrap();
        close(out[0].f32s().unwrap(), &ref_rows(&x, 12, true, 1e-5));
    }

    #[test]
    fn rms_group_instance_match_references() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 5 % 13) as f32) * 0.3 - 1.5).collect();
        let xt = t(&[2, 4, 3], &x);
        let op = build_op("RMSNormalization", 23, 1, vec![]);
        let out = run(op.as_ref(), &[Some(&xt), Some(&t(&[3], &[1.0; 3]))]).unwrap();
        close(out[0].f32s().unwrap(), &ref_rows(&x, 3, false, 1e-5));

        let op = build_op("InstanceNormalization", 6, 1, vec![]);
        let (s, b) = (t(&[4], &[1.0, 2.0, 3.0, 4.0]), t(&[4], &[0.5; 4]));
        let out = run(op.as_ref(), &[Some(&xt), Some(&s), Some(&b)]).unwrap();
        let want: Vec<f64> = ref_rows(&x, 3, true, 1e-5)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + (i / 3) % 4) as f64 + 0.5)
            .collect();
        close(out[0].f32s().unwrap(), &want);

        // Two groups of two channels: per-channel (opset 21) and per-group (18).
        let g = vec![("num_groups", Attr::Int(2))];
        let op = build_op("GroupNormalization", 21, 1, g.clone());
        let out = run(op.as_ref(), &[Some(&xt), Some(&s), Some(&b)]).unwrap();
        let want: Vec<f64> = ref_rows(&x, 6, true, 1e-5)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + (i / 3) % 4) as f64 + 0.5)
            .collect();
        close(out[0].f32s().unwrap(), &want);
        let op = build_op("GroupNormalization", 18, 1, g);
        let (sg, bg) = (t(&[2], &[2.0, 3.0]), t(&[2], &[0.0, 1.0]));
        let out = run(op.as_ref(), &[Some(&xt), Some(&sg), Some(&bg)]).unwrap();
        let want: Vec<f64> = ref_rows(&x, 6, true, 1e-5)
            .iter()
            .enumerate()
            .map(|(i, v)| v * [2.0, 3.0][(i / 6) % 2] + [0.0, 1.0][(i / 6) % 2])
            .collect();
        close(out[0].f32s().unwrap(), &want);
        // Opset 18 refuses per-channel parameters.
        assert!(run(op.as_ref(), &[Some(&xt), Some(&s), Some(&b)]).is_err());
    }

    #[test]
    fn edge_cases_and_bad_shapes() {
        let op = build_op("LayerNormalization", 17, 1, vec![]);
        let x = t(&[2, 2], &[f32::NAN, 1.0, 3.0, 3.0]);
        let y = run(op.as_ref(), &[Some(&x), Some(&t(&[2], &[1.0, 1.0]))]).unwrap();
        let y = y[0].f32s().unwrap();
        assert!(y[0].is_nan() && y[1].is_nan());
        assert_eq!(y[2..], [0.0, 0.0]); // Constant row: d = 0.
        let x = t(&[1, 2], &[f32::INFINITY, 1.0]);
        let y = run(op.as_ref(), &[Some(&x), Some(&t(&[2], &[1.0, 1.0]))]).unwrap();
        assert!(y[0].f32s().unwrap().iter().all(|v| v.is_nan()));
        // Empty rows give an empty output.
        let x = Tensor::from_vec(vec![0, 3], Vec::<f32>::new()).unwrap();
        let y = run(op.as_ref(), &[Some(&x), Some(&t(&[3], &[1.0; 3]))]).unwrap();
        assert!(y[0].is_empty());

        let x = t(&[2, 3], &[0.0; 6]);
        assert!(run(op.as_ref(), &[Some(&x), Some(&t(&[2], &[1.0; 2]))]).is_err());
        assert!(run(op.as_ref(), &[Some(&x)]).is_err());
        let xi = Tensor::from_vec(vec![2], vec![1i32, 2]).unwrap();
        assert!(run(op.as_ref(), &[Some(&xi), Some(&xi)]).is_err());
        let xd = Tensor::from_vec(vec![3], vec![1.0f64, 2.0, 3.0]).unwrap();
        assert!(run(op.as_ref(), &[Some(&xd), Some(&t(&[3], &[1.0; 3]))]).is_err());
        let op = build_op("LayerNormalization", 17, 1, vec![("axis", Attr::Int(2))]);
        assert!(run(op.as_ref(), &[Some(&x), Some(&t(&[3], &[1.0; 3]))]).is_err());
        let g = build_op(
            "GroupNormalization",
            21,
            1,
            vec![("num_groups", Attr::Int(4))],
        );
        let x3 = t(&[1, 3, 2], &[0.0; 6]);
        let p = t(&[3], &[1.0; 3]);
        assert!(run(g.as_ref(), &[Some(&x3), Some(&p), Some(&p)]).is_err());
        let inst = build_op("InstanceNormalization", 6, 1, vec![]);
        assert!(run(inst.as_ref(), &[Some(&x3), Some(&p)]).is_err());
        assert!(
            run(
                inst.as_ref(),
                &[Some(&t(&[3], &[1.0; 3])), Some(&p), Some(&p)]
            )
            .is_err()
        );

        // float64 works too.
        let op = build_op("LayerNormalization", 17, 1, vec![]);
        let one = Tensor::from_vec(vec![3], vec![1.0f64; 3]).unwrap();
        let y = run(op.as_ref(), &[Some(&xd), Some(&one)]).unwrap();
        let inv = 1.0 / (2.0f64 / 3.0 + f64::from(1e-5f32)).sqrt();
        assert_eq!(y[0].as_slice::<f64>().unwrap(), [-inv, 0.0, inv]);
    }

    #[test]
    fn threads_give_identical_bits() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let n = 64 * 3 * 700;
        let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.11).sin() * 5.0).collect();
        let xt = t(&[64, 3, 700], &x);
        let p3 = t(&[3], &[0.5, 1.5, -2.0]);
        let p700: Vec<f32> = (0..700).map(|i| i as f32 * 0.01).collect();
        let p700 = t(&[700], &p700);
        type Case<'a> = (Box<dyn Op>, Vec<Option<&'a Tensor>>);
        let cases: Vec<Case<'_>> = vec![
            (
                build_op("LayerNormalization", 17, 3, vec![]),
                vec![Some(&xt), Some(&p700), Some(&p700)],
            ),
            (
                build_op("RMSNormalization", 23, 1, vec![]),
                vec![Some(&xt), Some(&p700)],
            ),
            (
                build_op("InstanceNormalization", 6, 1, vec![]),
                vec![Some(&xt), Some(&p3), Some(&p3)],
            ),
            (
                build_op(
                    "GroupNormalization",
                    21,
                    1,
                    vec![("num_groups", Attr::Int(1))],
                ),
                vec![Some(&xt), Some(&p3), Some(&p3)],
            ),
        ];
        for (op, ins) in cases {
            let a = run_with(op.as_ref(), &Ctx::single(Isa::Portable), &ins).unwrap();
            let b = run_with(op.as_ref(), &Ctx::with_pool(Isa::Portable, &pool), &ins).unwrap();
            for (a, b) in a.iter().zip(&b) {
                assert_eq!(a.hash(), b.hash(), "{op:?}");
            }
        }
    }
}

//! Operator: ConvTranspose (any number of spatial dims; group, strides,
//! dilations, pads, auto_pad, output_padding, output_shape).
//!
//! Computed as a gather per output element, in the order of
//! docs/determinism.md, "Dot products" (ConvTranspose paragraph): only the
//! input positions that reach the output element take part, in increasing
//! (input channel, kernel position) order. Threads split output planes.

use super::{Args, BuildCtx, Fact, Op, Registry};
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{DType, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("ConvTranspose", build);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

#[derive(Debug)]
struct ConvTranspose {
    group: usize,
    kernel: Option<Vec<usize>>,
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
    output_padding: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
    auto_pad: AutoPad,
}

fn ints(b: &BuildCtx<'_>, name: &str, min: i64) -> OpResult<Option<Vec<usize>>> {
    let Some(v) = b.attrs.opt_ints(name)? else {
        return Ok(None);
    };
    v.iter()
        .map(|&x| {
            if x >= min && x <= 1 << 30 {
                Ok(x as usize)
            } else {
                bail!("attribute `{name}` holds {x}, outside {min}..=2^30")
            }
        })
        .collect::<OpResult<Vec<_>>>()
        .map(Some)
}

fn build(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let group = b.attrs.int("group", 1)?;
    ensure!(group >= 1, "group {group} is not positive");
    let auto_pad = match b.attrs.string("auto_pad", "NOTSET")? {
        "NOTSET" | "" => AutoPad::NotSet,
        "VALID" => AutoPad::Valid,
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        other => bail!("unsupported auto_pad `{other}`"),
    };
    Ok(Box::new(ConvTranspose {
        group: group as usize,
        kernel: ints(b, "kernel_shape", 1)?,
        strides: ints(b, "strides", 1)?,
        dilations: ints(b, "dilations", 1)?,
        pads: ints(b, "pads", 0)?,
        output_padding: ints(b, "output_padding", 0)?,
        output_shape: ints(b, "output_shape", 0)?,
        auto_pad,
    }))
}

/// The resolved geometry of one run.
#[derive(Debug, Clone)]
struct Geo {
    n: usize,
    c: usize,
    m: usize,
    input: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pad_begin: Vec<i64>,
    out: Vec<usize>,
}

impl ConvTranspose {
    fn geo(&self, x: &Fact, w: &Fact, bias: Option<&Fact>) -> OpResult<Geo> {
        for (f, what) in [(x, "X"), (w, "W")] {
            ensure!(
                f.dtype == DType::F32,
                "{what} is {}; ConvTranspose runs on float32",
                f.dtype
            );
        }
        let r = x.shape.len();
        ensure!(
            r >= 3,
            "X has shape {:?}; it needs N, C and a spatial dim",
            x.shape
        );
        ensure!(
            w.shape.len() == r,
            "W has shape {:?}, not of rank {r} like X",
            w.shape
        );
        let s = r - 2;
        let (n, c) = (x.shape[0], x.shape[1]);
        let g = self.group;
        ensure!(
            w.shape[0] == c && c % g == 0,
            "W has {} input channels, X has {c} (group {g})",
            w.shape[0]
        );
        let m = w.shape[1]
            .checked_mul(g)
            .ok_or_else(|| OpError("output channels overflow".into()))?;
        let kernel = w.shape[2..].to_vec();
        if let Some(k) = &self.kernel {
            ensure!(
                *k == kernel,
                "kernel_shape {k:?} does not match W's {kernel:?}"
            );
        }
        if let Some(b) = bias {
            ensure!(
                b.dtype == DType::F32 && b.shape == [m],
                "B is {} {:?}, expected float32 [{m}]",
                b.dtype,
                b.shape
            );
        }
        let per_dim =
            |v: &Option<Vec<usize>>, name: &str, default: usize| -> OpResult<Vec<usize>> {
                match v {
                    None => Ok(vec![default; s]),
                    Some(v) if v.len() == s => Ok(v.clone()),
                    Some(v) => bail!("attribute `{name}` has {} values, expected {s}", v.len()),
                }
            };
        let strides = per_dim(&self.strides, "strides", 1)?;
        let dilations = per_dim(&self.dilations, "dilations", 1)?;
        let out_pad = per_dim(&self.output_padding, "output_padding", 0)?;
        let input = x.shape[2..].to_vec();
        // The output extent before padding: stride * (in - 1) + out_pad + span.
        let mut full = Vec::with_capacity(s);
        for d in 0..s {
            let v = (input[d].max(1) - 1)
                .checked_mul(strides[d])
                .and_then(|v| v.checked_add(out_pad[d]))
                .and_then(|v| v.checked_add((kernel[d] - 1).checked_mul(dilations[d])? + 1))
                .ok_or_else(|| OpError("the output shape overflows".into()))?;
            full.push(v);
        }
        let target: Option<Vec<usize>> = match &self.output_shape {
            Some(o) if o.len() == s => Some(o.clone()),
            Some(o) if o.len() == s + 2 => Some(o[2..].to_vec()),
            Some(o) => bail!("output_shape has {} values, expected {s}", o.len()),
            None if matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) => Some(
                input
                    .iter()
                    .zip(&strides)
                    .map(|(&i, &st)| i.saturating_mul(st))
                    .collect(),
            ),
            None => None,
        };
        let (pad_begin, out) = match target {
            Some(t) => {
                // The padding making the output `t` may be negative (the
                // output then reaches past the last input position).
                let mut begin = Vec::with_capacity(s);
                for d in 0..s {
                    let total = full[d] as i64 - t[d] as i64;
                    let half = total.div_euclid(2);
                    begin.push(if self.auto_pad == AutoPad::SameUpper {
                        half
                    } else {
                        total - half
                    });
                }
                (begin, t)
            }
            None => {
                let pads = match (self.auto_pad, &self.pads) {
                    (AutoPad::Valid, _) | (_, None) => vec![0; 2 * s],
                    (_, Some(p)) if p.len() == 2 * s => p.clone(),
                    (_, Some(p)) => bail!("pads has {} values, expected {}", p.len(), 2 * s),
                };
                let mut out = Vec::with_capacity(s);
                for d in 0..s {
                    let cut = pads[d] + pads[s + d];
                    ensure!(
                        cut <= full[d],
                        "pads {pads:?} remove more than the {} outputs of dim {d}",
                        full[d]
                    );
                    out.push(full[d] - cut);
                }
                (pads[..s].iter().map(|&p| p as i64).collect(), out)
            }
        };
        Ok(Geo {
            n,
            c,
            m,
            input,
            kernel,
            strides,
            dilations,
            pad_begin,
            out,
        })
    }

    fn geo_of(&self, inputs: Args<'_, Fact>) -> OpResult<Geo> {
        self.geo(inputs.get(0)?, inputs.get(1)?, inputs.opt(2))
    }
}

fn out_shape(g: &Geo) -> Vec<usize> {
    let mut shape = vec![g.n, g.m];
    shape.extend_from_slice(&g.out);
    shape
}

/// Per spatial dim and output coordinate: the (kernel index, input index)
/// pairs that reach it, in increasing kernel index.
fn contributions(g: &Geo) -> Vec<Vec<Vec<(usize, usize)>>> {
    (0..g.out.len())
        .map(|d| {
            (0..g.out[d])
                .map(|o| {
                    (0..g.kernel[d])
                        .filter_map(|k| {
                            let t = o as i64 + g.pad_begin[d] - (k * g.dilations[d]) as i64;
                            let t = usize::try_from(t).ok()?;
                            let i = t / g.strides[d];
                            (t % g.strides[d] == 0 && i < g.input[d]).then_some((k, i))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

impl Op for ConvTranspose {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let g = self.geo_of(inputs)?;
        let shape = out_shape(&g);
        ensure!(
            checked_len(&shape).is_some(),
            "the output shape {shape:?} overflows"
        );
        Ok(vec![Fact::new(DType::F32, shape)])
    }

    /// It scatters in plain loops, not the GEMM kernels (measured by
    /// benches/referee_price.rs).
    fn time_weight(&self) -> u64 {
        16
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        // Every input element meets every kernel element of its group once.
        let bytes = inputs
            .present()
            .chain(outputs)
            .map(Fact::size_bytes)
            .fold(0u64, u64::saturating_add);
        let flops = match (inputs.get(0), inputs.get(1)) {
            (Ok(x), Ok(w)) => {
                let per_in = w.len() as u64 / (w.shape.first().copied().unwrap_or(1).max(1) as u64);
                (x.len() as u64).saturating_mul(per_in).saturating_mul(2)
            }
            _ => 0,
        };
        Cost { flops, bytes }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let fact = |t: &Tensor| Fact::new(t.dtype(), t.shape().to_vec());
        let (x, w) = (inputs.get(0)?, inputs.get(1)?);
        let bias = inputs.opt(2);
        let g = self.geo(&fact(x), &fact(w), bias.map(fact).as_ref())?;
        let (xs, ws) = (x.f32s()?, w.f32s()?);
        let bs = bias.map(Tensor::f32s).transpose()?;
        let contrib = contributions(&g);
        let s = g.out.len();
        let plane: usize = g.out.iter().product();
        let in_plane: usize = g.input.iter().product();
        let k_plane: usize = g.kernel.iter().product();
        let (c_g, m_g) = (g.c / self.group, g.m / self.group);
        let mut y = vec![0.0f32; g.n * g.m * plane];
        if plane == 0 {
            return Ok(vec![Tensor::from_vec(out_shape(&g), y)?]);
        }
        // Row-major strides of the spatial dims.
        let stride_of = |dims: &[usize]| -> Vec<usize> {
            let mut st = vec![1usize; dims.len()];
            for d in (0..dims.len().saturating_sub(1)).rev() {
                st[d] = st[d + 1] * dims[d + 1];
            }
            st
        };
        let (in_st, k_st, out_st) = (stride_of(&g.input), stride_of(&g.kernel), stride_of(&g.out));
        ctx.for_chunks_mut(&mut y, plane, |idx, out| {
            let (n, oc) = (idx / g.m, idx % g.m);
            let grp = oc / m_g;
            let ocg = oc - grp * m_g;
            let mut coord = vec![0usize; s];
            let mut pick = vec![0usize; s];
            for (flat, yv) in out.iter_mut().enumerate() {
                for d in 0..s {
                    coord[d] = flat / out_st[d] % g.out[d];
                }
                let lists: Vec<&[(usize, usize)]> =
                    (0..s).map(|d| contrib[d][coord[d]].as_slice()).collect();
                let mut acc = 0.0f32;
                if lists.iter().all(|l| !l.is_empty()) {
                    for ic in grp * c_g..(grp + 1) * c_g {
                        let x_base = (n * g.c + ic) * in_plane;
                        let w_base = (ic * m_g + ocg) * k_plane;
                        // Odometer over the contributing kernel positions,
                        // row-major in kernel index.
                        pick.fill(0);
                        'positions: loop {
                            let (mut xi, mut wi) = (x_base, w_base);
                            for d in 0..s {
                                let (k, i) = lists[d][pick[d]];
                                xi += i * in_st[d];
                                wi += k * k_st[d];
                            }
                            acc = xs[xi].mul_add(ws[wi], acc);
                            let mut d = s;
                            loop {
                                if d == 0 {
                                    break 'positions;
                                }
                                d -= 1;
                                pick[d] += 1;
                                if pick[d] < lists[d].len() {
                                    break;
                                }
                                pick[d] = 0;
                            }
                        }
                    }
                }
                *yv = match bs {
                    Some(b) => acc + b[oc],
                    None => acc,
                };
            }
        });
        Ok(vec![Tensor::from_vec(out_shape(&g), y)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn op(attrs: Vec<(&str, Attr)>) -> Box<dyn Op> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        build(&BuildCtx {
            op_type: "ConvTranspose",
            attrs: &attrs,
            opset: 11,
            n_inputs: 3,
            n_outputs: 1,
        })
        .unwrap()
    }

    fn run(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult<Tensor> {
        let v: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
        Ok(op.run(ctx, Args::new(&v))?.remove(0))
    }

    fn ramp(shape: Vec<usize>, scale: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(
            shape,
            (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * scale)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn stride_one_without_padding_is_a_full_correlation() {
        // 1-D: y[o] = sum_k x[o - k] w[k].
        let x = Tensor::from_vec(vec![1, 1, 3], vec![1.0f32, 2.0, 3.0]).unwrap();
        let w = Tensor::from_vec(vec![1, 1, 2], vec![10.0f32, 1.0]).unwrap();
        let y = run(op(vec![]).as_ref(), &Ctx::single(Isa::Portable), &[&x, &w]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[10.0, 21.0, 32.0, 3.0]);
    }

    #[test]
    fn same_bits_with_threads_groups_strides_and_dilations() {
        let o = op(vec![
            ("group", Attr::Int(2)),
            ("strides", Attr::Ints(vec![2, 3])),
            ("dilations", Attr::Ints(vec![2, 1])),
            ("pads", Attr::Ints(vec![1, 0, 0, 2])),
            ("output_padding", Attr::Ints(vec![1, 1])),
        ]);
        let x = ramp(vec![2, 4, 5, 3], 0.25);
        let w = ramp(vec![4, 3, 3, 2], 0.5);
        let b = ramp(vec![6], 1.0);
        let one = run(o.as_ref(), &Ctx::single(Isa::Portable), &[&x, &w, &b]).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let many = run(
            o.as_ref(),
            &Ctx::with_pool(Isa::detect(), &pool),
            &[&x, &w, &b],
        )
        .unwrap();
        assert_eq!(one, many);
        // (5-1)*2 + 1 + (3-1)*2+1 - 1 = 13; (3-1)*3 + 1 + 2 - 2 = 7.
        assert_eq!(one.shape(), &[2, 6, 13, 7]);
    }

    #[test]
    fn bad_convtransposes_are_refused() {
        let o = op(vec![("pads", Attr::Ints(vec![9, 9]))]);
        let f = |s: Vec<usize>| Fact::new(DType::F32, s);
        let (x, w) = (f(vec![1, 1, 3]), f(vec![1, 1, 2]));
        let e = o.infer(Args::new(&[Some(&x), Some(&w)])).unwrap_err();
        assert!(e.0.contains("remove more"), "{e}");
        let w2 = f(vec![2, 1, 2]);
        let e = op(vec![])
            .infer(Args::new(&[Some(&x), Some(&w2)]))
            .unwrap_err();
        assert!(e.0.contains("input channels"), "{e}");
    }
}

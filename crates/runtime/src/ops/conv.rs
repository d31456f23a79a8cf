//! Operator: Conv, plus the window geometry (pads, strides, dilations,
//! `auto_pad`, `ceil_mode`) shared with the pooling operators.
//!
//! Conv follows docs/determinism.md, "Dot products: MatMul, Gemm, Conv": `k`
//! runs over (input channel within the group, kernel position row-major),
//! padded positions take part as `+0.0`, then the bias is added. That is an
//! im2col matrix times the weights on [`crate::kernels::gemm::sgemm`].

use std::ops::Range;
use std::sync::{Mutex, OnceLock};

use super::{Args, BuildCtx, Fact, Op, Region, Registry, default_cost};
use crate::attrs::Attrs;
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::elementwise::with_isa;
use crate::kernels::gemm::{ASrc, MatRef, NR, PackB, Packed, copy_row, sgemm, sgemm_packed};
use crate::kernels::{Ctx, Isa};
use crate::tensor::{DType, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("Conv", build_conv);
}

/// Below this many multiply-adds per (image, group), those products run in
/// parallel one per thread instead of threading each product.
const SMALL_PRODUCT: usize = 1 << 22;

/// Groups with at most this many output channels use the unpacked
/// few-rows product on a materialized im2col matrix.
const SMALL_M_ROWS: usize = 2;

/// The ONNX `auto_pad` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

/// Window attributes as given on the node (validated, not yet resolved
/// against an input shape).
#[derive(Clone, Debug)]
pub(crate) struct WindowAttrs {
    pub(crate) kernel: Option<Vec<usize>>,
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
    auto_pad: AutoPad,
    ceil_mode: bool,
}

fn positive_ints(attrs: &Attrs, name: &str) -> OpResult<Option<Vec<usize>>> {
    let Some(v) = attrs.opt_ints(name)? else {
        return Ok(None);
    };
    v.iter()
        .map(|&x| match usize::try_from(x) {
            Ok(u) if u > 0 => Ok(u),
            _ => bail!("attribute `{name}` must hold positive values, got {v:?}"),
        })
        .collect::<OpResult<Vec<_>>>()
        .map(Some)
}

impl WindowAttrs {
    /// Reads `kernel_shape`, `strides`, `dilations` (if `dilations_ok`),
    /// `pads`, `auto_pad` and `ceil_mode` (if `ceil_ok`).
    pub(crate) fn parse(attrs: &Attrs, dilations_ok: bool, ceil_ok: bool) -> OpResult<WindowAttrs> {
        let auto_pad = match attrs.string("auto_pad", "NOTSET")? {
            "NOTSET" | "" => AutoPad::NotSet,
            "VALID" => AutoPad::Valid,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            other => bail!("unsupported auto_pad `{other}`"),
        };
        let pads = match attrs.opt_ints("pads")? {
            None => None,
            Some(v) => Some(
                v.iter()
                    .map(|&x| {
                        usize::try_from(x).map_err(|_| OpError(format!("negative pads {v:?}")))
                    })
                    .collect::<OpResult<Vec<_>>>()?,
            ),
        };
        let ceil_mode = attrs.flag("ceil_mode", false)?;
        ensure!(
            !ceil_mode || ceil_ok,
            "ceil_mode is not supported by this op or opset"
        );
        let dilations = positive_ints(attrs, "dilations")?;
        ensure!(
            dilations_ok || dilations.as_ref().is_none_or(|d| d.iter().all(|&x| x == 1)),
            "dilations are not supported by this op or opset"
        );
        Ok(WindowAttrs {
            kernel: positive_ints(attrs, "kernel_shape")?,
            strides: positive_ints(attrs, "strides")?,
            dilations,
            pads,
            auto_pad,
            ceil_mode,
        })
    }

    /// Resolves the window against the spatial input dims and kernel dims.
    pub(crate) fn geometry(&self, input: &[usize], kernel: &[usize]) -> OpResult<Geometry> {
        let r = input.len();
        ensure!(
            kernel.len() == r,
            "kernel has {} dims, the input has {r} spatial dims",
            kernel.len()
        );
        ensure!(
            kernel.iter().all(|&k| k > 0),
            "kernel dims must be positive, got {kernel:?}"
        );
        let per_dim = |v: &Option<Vec<usize>>, name: &str| -> OpResult<Vec<usize>> {
            match v {
                None => Ok(vec![1; r]),
                Some(v) if v.len() == r => Ok(v.clone()),
                Some(v) => bail!("attribute `{name}` has {} values, expected {r}", v.len()),
            }
        };
        let strides = per_dim(&self.strides, "strides")?;
        let dilations = per_dim(&self.dilations, "dilations")?;
        let mut extent = Vec::with_capacity(r);
        for d in 0..r {
            let e = (kernel[d] - 1)
                .checked_mul(dilations[d])
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| OpError("kernel extent overflows".into()))?;
            extent.push(e);
        }
        let (mut pb, mut pe) = (vec![0; r], vec![0; r]);
        let mut out = vec![0; r];
        match self.auto_pad {
            AutoPad::NotSet | AutoPad::Valid => {
                if self.auto_pad == AutoPad::NotSet
                    && let Some(p) = &self.pads
                {
                    ensure!(
                        p.len() == 2 * r,
                        "attribute `pads` has {} values, expected {}",
                        p.len(),
                        2 * r
                    );
                    pb.copy_from_slice(&p[..r]);
                    pe.copy_from_slice(&p[r..]);
                }
                for d in 0..r {
                    let padded = input[d]
                        .checked_add(pb[d])
                        .and_then(|x| x.checked_add(pe[d]))
                        .ok_or_else(|| OpError("padded size overflows".into()))?;
                    ensure!(
                        padded >= extent[d],
                        "kernel extent {} exceeds the padded input {padded} in spatial dim {d}",
                        extent[d]
                    );
                    let num = padded - extent[d];
                    let mut o = if self.ceil_mode {
                        num.div_ceil(strides[d])
                    } else {
                        num / strides[d]
                    } + 1;
                    // The last window must start inside the left-padded input.
                    if self.ceil_mode && (o - 1) * strides[d] >= input[d] + pb[d] {
                        o -= 1;
                    }
                    out[d] = o;
                }
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                for d in 0..r {
                    let o = input[d].div_ceil(strides[d]);
                    let need = (o.saturating_sub(1))
                        .checked_mul(strides[d])
                        .and_then(|x| x.checked_add(extent[d]))
                        .ok_or_else(|| OpError("padding overflows".into()))?;
                    let total = need.saturating_sub(input[d]);
                    let small = total / 2;
                    let (b, e) = if self.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pb[d] = b;
                    pe[d] = e;
                    out[d] = o;
                }
            }
        }
        Ok(Geometry {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            strides,
            dilations,
            pad_begin: pb,
            pad_end: pe,
            out,
        })
    }
}

/// A window resolved against an input: everything in spatial dims.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub(crate) input: Vec<usize>,
    pub(crate) kernel: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) dilations: Vec<usize>,
    pub(crate) pad_begin: Vec<usize>,
    pub(crate) pad_end: Vec<usize>,
    pub(crate) out: Vec<usize>,
}

impl Geometry {
    /// Input coordinate of output index `o`, kernel index `kk` in dim `d`,
    /// or `None` in the padding.
    pub(crate) fn coord(&self, d: usize, o: usize, kk: usize) -> Option<usize> {
        let p = o * self.strides[d] + kk * self.dilations[d];
        let x = p.checked_sub(self.pad_begin[d])?;
        (x < self.input[d]).then_some(x)
    }

    /// Whether padded coordinate of (`o`, `kk`) lies inside the explicitly
    /// padded input (`< input + pad_begin + pad_end`).
    pub(crate) fn in_padded(&self, d: usize, o: usize, kk: usize) -> bool {
        o * self.strides[d] + kk * self.dilations[d]
            < self.input[d] + self.pad_begin[d] + self.pad_end[d]
    }
}

/// ONNX Conv, float32.
#[derive(Debug)]
struct Conv {
    window: WindowAttrs,
    group: usize,
    /// The weights packed for the product, one matrix per group, when they
    /// are a model constant (made on the first run, kept for the op's life).
    packed: OnceLock<Vec<Packed>>,
}

fn build_conv(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let group = ctx.attrs.int("group", 1)?;
    let group = usize::try_from(group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| OpError(format!("attribute `group` must be positive, got {group}")))?;
    Ok(Box::new(Conv {
        window: WindowAttrs::parse(ctx.attrs, true, false)?,
        group,
        packed: OnceLock::new(),
    }))
}

/// The resolved shapes of one Conv.
struct ConvDims {
    n: usize,
    c: usize,
    m: usize,
    geo: Geometry,
    out: Vec<usize>,
}

impl ConvDims {
    fn c_group(&self, group: usize) -> usize {
        self.c / group
    }
    fn k_len(&self, group: usize) -> usize {
        self.c_group(group) * self.geo.kernel.iter().product::<usize>()
    }
}

impl Conv {
    fn dims(&self, x: &[usize], w: &[usize], b: Option<&[usize]>) -> OpResult<ConvDims> {
        ensure!(x.len() >= 3, "Conv input X must have rank >= 3, got {x:?}");
        ensure!(
            w.len() == x.len(),
            "Conv weight W {w:?} must have the rank of X {x:?}"
        );
        let (n, c, m) = (x[0], x[1], w[0]);
        let g = self.group;
        ensure!(
            c % g == 0 && m % g == 0,
            "Conv group {g} must divide channels {c} and feature maps {m}"
        );
        ensure!(
            w[1] * g == c,
            "Conv weight W {w:?} expects {} input channels, X has {c}",
            w[1] * g
        );
        if let Some(k) = &self.window.kernel {
            ensure!(
                k.as_slice() == &w[2..],
                "kernel_shape {k:?} differs from the weight shape {w:?}"
            );
        }
        if let Some(b) = b {
            ensure!(b == [m], "Conv bias B must have shape [{m}], got {b:?}");
        }
        let geo = self.window.geometry(&x[2..], &w[2..])?;
        let mut out = vec![n, m];
        out.extend_from_slice(&geo.out);
        checked_len(&out).ok_or_else(|| OpError(format!("Conv output {out:?} overflows")))?;
        checked_len(w).ok_or_else(|| OpError("Conv weight size overflows".into()))?;
        let d = ConvDims { n, c, m, geo, out };
        // The im2col buffer of one group must be addressable.
        d.k_len(g)
            .checked_mul(d.geo.out.iter().product())
            .ok_or_else(|| OpError("Conv im2col buffer overflows".into()))?;
        Ok(d)
    }
}

impl Op for Conv {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let (x, w) = (inputs.get(0)?, inputs.get(1)?);
        let b = inputs.opt(2);
        for f in [Some(x), Some(w), b].into_iter().flatten() {
            ensure!(
                f.dtype == DType::F32,
                "Conv supports float32 only, got {}",
                f.dtype
            );
        }
        let d = self.dims(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
        Ok(vec![Fact::new(DType::F32, d.out)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let mut flops = 0;
        if let (Ok(x), Ok(w)) = (inputs.get(0), inputs.get(1))
            && let Ok(d) = self.dims(&x.shape, &w.shape, None)
        {
            let outs = outputs.first().map_or(0, |o| o.len() as u64);
            flops = 2u64
                .saturating_mul(outs)
                .saturating_mul(d.k_len(self.group) as u64);
        }
        Cost {
            flops,
            ..default_cost(inputs, outputs, 0)
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let (x, w) = (inputs.get(0)?, inputs.get(1)?);
        let b = inputs.opt(2);
        let d = self.dims(x.shape(), w.shape(), b.map(Tensor::shape))?;
        let (xv, wv) = (x.f32s()?, w.f32s()?);
        let bv = b.map(Tensor::f32s).transpose()?;
        let g = self.group;
        let (cg, mg) = (d.c / g, d.m / g);
        let kl = d.k_len(g);
        let no: usize = d.geo.out.iter().product();
        let ni: usize = d.geo.input.iter().product();
        let mut y = vec![0.0f32; checked_len(&d.out).unwrap_or(0)];
        let block = mg * no;
        if block == 0 {
            return Ok(vec![Tensor::from_vec(d.out, y)?]);
        }
        let packed = match self.packed.get() {
            Some(p) => Some(p.as_slice()),
            None if inputs.is_constant(1) && mg > SMALL_M_ROWS => {
                let p = (0..g)
                    .map(|grp| {
                        let ws = MatRef::row_major(&wv[grp * mg * kl..][..mg * kl], kl);
                        Packed::a(ws, mg, kl)
                    })
                    .collect::<OpResult<Vec<_>>>()?;
                Some(self.packed.get_or_init(|| p).as_slice())
            }
            None => None,
        };
        // One (image, group) block of the output: Y[n, g*mg..(g+1)*mg, ...].
        let one = |ctx: &Ctx<'_>, idx: usize, out: &mut [f32]| -> OpResult<()> {
            let (img, grp) = (idx / g, idx % g);
            let xs = &xv[(img * d.c + grp * cg) * ni..][..cg * ni];
            let ws = MatRef::row_major(&wv[grp * mg * kl..][..mg * kl], kl);
            let bias = bv.map(|bv| &bv[grp * mg..][..mg]);
            if mg > SMALL_M_ROWS {
                let ws = match packed {
                    Some(p) => ASrc::Packed(&p[grp]),
                    None => ASrc::Mat(ws),
                };
                // The bias is added by the product after each whole chain.
                if is_identity(&d.geo) {
                    let bmat = MatRef::row_major(xs, no);
                    bmat.check(kl, no, "Conv input")?;
                    return sgemm_packed(ctx, mg, no, kl, ws, &bmat, out, bias);
                }
                if d.geo.input.len() == 2 {
                    let src = Im2Col2d::new(ctx.isa, xs, cg, &d.geo);
                    return sgemm_packed(ctx, mg, no, kl, ws, &src, out, bias);
                }
            }
            let col;
            let bmat = if is_identity(&d.geo) {
                MatRef::row_major(xs, no)
            } else {
                col = im2col(ctx, xs, cg, &d.geo);
                MatRef::row_major(&col, no)
            };
            sgemm(ctx, mg, no, kl, ws, bmat, out)?;
            if let Some(bias) = bias {
                for (row, &b) in out.chunks_exact_mut(no).zip(bias) {
                    for v in row {
                        *v += b;
                    }
                }
            }
            Ok(())
        };
        let blocks = d.n * g;
        if blocks > 1 && ctx.threads() > 1 && block.saturating_mul(kl) < SMALL_PRODUCT {
            let err = Mutex::new(None);
            let single = Ctx::single(ctx.isa);
            ctx.for_chunks_mut(&mut y, block, |i, out| {
                if let Err(e) = one(&single, i, out) {
                    *err.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                }
            });
            if let Some(e) = err
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                return Err(e);
            }
        } else {
            for (i, out) in y.chunks_exact_mut(block).enumerate() {
                one(ctx, i, out)?;
            }
        }
        Ok(vec![Tensor::from_vec(d.out, y)?])
    }

    fn region(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        output: usize,
        elements: Range<usize>,
    ) -> Option<OpResult<Region>> {
        (output == 0).then(|| self.planes(ctx, inputs, elements))
    }

    /// The planes that hold `elements`, whole: rows within them are
    /// cheaper, but a row that reads only padding computes its planes.
    fn region_len(
        &self,
        inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        output: usize,
        elements: Range<usize>,
    ) -> Option<usize> {
        let (x, w) = (inputs.get(0).ok()?, inputs.get(1).ok()?);
        let b = inputs.opt(2).map(|f| f.shape.as_slice());
        let d = self.dims(&x.shape, &w.shape, b).ok()?;
        let plane: usize = d.geo.out.iter().product();
        let planes = d.n.saturating_mul(d.m);
        (output == 0).then(|| super::rows_len(elements, plane, planes.saturating_mul(plane), false))
    }
}

impl Conv {
    /// The output planes (one image, one feature map) that hold
    /// `elements`: each run of planes of one image and one group is a Conv
    /// of those feature maps' weights over that group's channels, every
    /// element the same chain (and bias) as in a full run.
    fn planes(
        &self,
        ctx: &Ctx<'_>,
        inputs: Args<'_, Tensor>,
        elements: Range<usize>,
    ) -> OpResult<Region> {
        let (x, w) = (inputs.get(0)?, inputs.get(1)?);
        let b = inputs.opt(2);
        let d = self.dims(x.shape(), w.shape(), b.map(Tensor::shape))?;
        let plane: usize = d.geo.out.iter().product();
        let planes = d.n * d.m;
        let p0 = (elements.start / plane.max(1)).min(planes);
        let p1 = elements.end.div_ceil(plane.max(1)).clamp(p0, planes);
        // A chunk within one or two planes: only the rows it covers.
        if p1 <= p0 + 2 && p1 > p0 && !d.geo.out.is_empty() {
            let mut first = None;
            let mut y: Vec<f32> = Vec::new();
            for p in p0..p1 {
                let part = elements.start.max(p * plane)..elements.end.min((p + 1) * plane);
                let r = self.rows(ctx, &d, x, w, b, p, part)?;
                first.get_or_insert(r.first);
                y.extend_from_slice(r.elements.f32s()?);
            }
            let n = y.len();
            return Ok(Region {
                first: first.unwrap_or(elements.start),
                elements: Tensor::from_vec(vec![n], y)?,
            });
        }
        self.planes_run(ctx, &d, x, w, b, p0..p1)
    }

    /// Whole output planes `planes` (one image, one feature map each):
    /// each run of planes of one image and one group is a Conv of those
    /// feature maps' weights over that group's channels.
    #[allow(clippy::too_many_arguments)]
    fn planes_run(
        &self,
        ctx: &Ctx<'_>,
        d: &ConvDims,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        planes: Range<usize>,
    ) -> OpResult<Region> {
        let (xv, wv) = (x.f32s()?, w.f32s()?);
        let bv = b.map(Tensor::f32s).transpose()?;
        let g = self.group;
        let (cg, mg) = (d.c / g, d.m / g);
        let plane: usize = d.geo.out.iter().product();
        let ni: usize = d.geo.input.iter().product();
        let kl = d.k_len(g);
        let (p0, p1) = (planes.start, planes.end);
        let mut y = Vec::with_capacity((p1 - p0) * plane);
        let sub = Conv {
            window: self.window.clone(),
            group: 1,
            packed: OnceLock::new(),
        };
        let single = Ctx::single(ctx.isa);
        let mut p = p0;
        while p < p1 {
            let (img, ch) = (p / d.m, p % d.m);
            let grp = ch / mg;
            let count = ((grp + 1) * mg - ch).min(p1 - p);
            let mut xs_shape = vec![1, cg];
            xs_shape.extend_from_slice(&d.geo.input);
            let xs = Tensor::from_vec(
                xs_shape,
                xv[(img * d.c + grp * cg) * ni..][..cg * ni].to_vec(),
            )?;
            let mut ws_shape = vec![count, cg];
            ws_shape.extend_from_slice(&w.shape()[2..]);
            let ws = Tensor::from_vec(ws_shape, wv[ch * kl..][..count * kl].to_vec())?;
            let bs = bv
                .map(|bv| Tensor::from_vec(vec![count], bv[ch..ch + count].to_vec()))
                .transpose()?;
            let items = [Some(&xs), Some(&ws), bs.as_ref()];
            let out = sub.run(&single, Args::new(&items))?;
            let t = out
                .first()
                .ok_or_else(|| OpError("Conv gave no output".into()))?;
            y.extend_from_slice(t.f32s()?);
            p += count;
        }
        Ok(Region {
            first: p0 * plane,
            elements: Tensor::from_vec(vec![y.len()], y)?,
        })
    }

    /// The output rows (along the first spatial axis) of one plane that
    /// hold `elements`: a Conv of that feature map's weights over the
    /// input rows those output rows read, with the padding they see made
    /// explicit, so every element is the same chain (padding positions
    /// included as `+0.0`, then the bias) as in a full run.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        ctx: &Ctx<'_>,
        d: &ConvDims,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        plane_index: usize,
        elements: Range<usize>,
    ) -> OpResult<Region> {
        let geo = &d.geo;
        let (xv, wv) = (x.f32s()?, w.f32s()?);
        let g = self.group;
        let (cg, mg) = (d.c / g, d.m / g);
        let plane: usize = geo.out.iter().product();
        let row: usize = geo.out[1..].iter().product();
        let (img, ch) = (plane_index / d.m, plane_index % d.m);
        let grp = ch / mg;
        let base = plane_index * plane;
        let oy0 = (elements.start.saturating_sub(base) / row.max(1)).min(geo.out[0]);
        let oy1 = (elements.end.saturating_sub(base))
            .div_ceil(row.max(1))
            .clamp(oy0, geo.out[0]);
        // Padded input rows [p0, p1) feed output rows [oy0, oy1).
        let (h, s0, d0, pb) = (
            geo.input[0],
            geo.strides[0],
            geo.dilations[0],
            geo.pad_begin[0],
        );
        let p0 = (oy0 * s0) as i64 - pb as i64;
        let p1 = ((oy1.max(oy0 + 1) - 1) * s0 + (geo.kernel[0] - 1) * d0 + 1) as i64 - pb as i64;
        let start = p0.clamp(0, h as i64) as usize;
        let end = (p1.clamp(0, h as i64) as usize).max(start);
        if start >= end {
            // These rows read only padding: the whole plane, as the
            // planes path computes it.
            return self.planes_run(ctx, d, x, w, b, plane_index..plane_index + 1);
        }
        let mut pads = geo.pad_begin.clone();
        pads[0] = (start as i64 - p0) as usize;
        let mut pad_end = geo.pad_end.clone();
        pad_end[0] = (p1 - end as i64).max(0) as usize;
        pads.extend(pad_end);
        let sub = Conv {
            window: WindowAttrs {
                kernel: self.window.kernel.clone(),
                strides: Some(geo.strides.clone()),
                dilations: Some(geo.dilations.clone()),
                pads: Some(pads),
                auto_pad: AutoPad::NotSet,
                ceil_mode: false,
            },
            group: 1,
            packed: OnceLock::new(),
        };
        // The input rows of the group's channels of this image.
        let rest: usize = geo.input[1..].iter().product();
        let ni = h * rest;
        let mut xs = Vec::with_capacity(cg * (end - start) * rest);
        for c in 0..cg {
            let at = (img * d.c + grp * cg + c) * ni;
            xs.extend_from_slice(&xv[at + start * rest..at + end * rest]);
        }
        let mut xs_shape = vec![1, cg, end - start];
        xs_shape.extend_from_slice(&geo.input[1..]);
        let xs = Tensor::from_vec(xs_shape, xs)?;
        let kl = d.k_len(g);
        let mut ws_shape = vec![1, cg];
        ws_shape.extend_from_slice(&w.shape()[2..]);
        let ws = Tensor::from_vec(ws_shape, wv[ch * kl..][..kl].to_vec())?;
        let bs = b
            .map(|b| -> OpResult<Tensor> { Tensor::from_vec(vec![1], vec![b.f32s()?[ch]]) })
            .transpose()?;
        let items = [Some(&xs), Some(&ws), bs.as_ref()];
        let out = sub.run(&Ctx::single(ctx.isa), Args::new(&items))?;
        let t = out
            .into_iter()
            .next()
            .ok_or_else(|| OpError("Conv gave no output".into()))?;
        ensure!(
            t.len() == (oy1 - oy0) * row,
            "Conv rows {oy0}..{oy1} gave {} elements",
            t.len()
        );
        let n = t.len();
        Ok(Region {
            first: base + oy0 * row,
            elements: t.reshaped(vec![n])?,
        })
    }
}

/// Whether im2col is the identity (1x1 kernel, unit strides, no padding).
fn is_identity(g: &Geometry) -> bool {
    g.kernel.iter().chain(&g.strides).all(|&v| v == 1)
        && g.pad_begin.iter().chain(&g.pad_end).all(|&p| p == 0)
}

/// The im2col matrix of one group of a 2-D convolution, packed for the
/// product panel by panel straight from the input (never materialized):
/// row `(c, kernel row, kernel column)`, column `(output row, output column)`,
/// with `+0.0` in the padding, exactly the matrix [`im2col`] builds.
struct Im2Col2d<'a> {
    x: &'a [f32],
    ih: usize,
    iw: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    ow: usize,
    /// The SIMD path the packing loops are compiled for.
    isa: Isa,
}

impl<'a> Im2Col2d<'a> {
    /// `x` holds the `cg` input planes of the group.
    fn new(isa: Isa, x: &'a [f32], cg: usize, geo: &Geometry) -> Im2Col2d<'a> {
        let (ih, iw) = (geo.input[0], geo.input[1]);
        debug_assert_eq!(x.len(), cg * ih * iw);
        if iw == 1 && geo.kernel[1] == 1 && geo.out[1] == 1 && geo.pad_begin[1] == 0 {
            // A 1-D convolution along H written as 2-D (W = 1 throughout,
            // magika's): the same matrix as a 1-D convolution along W, whose
            // panels are long runs of one row instead of runs of length 1.
            // Row `c * kh + r` and column `oy` read `x[c, oy*sh + r*dh - ph]`
            // either way.
            return Im2Col2d {
                x,
                ih: 1,
                iw: ih,
                kh: 1,
                kw: geo.kernel[0],
                sh: 1,
                sw: geo.strides[0],
                dh: 1,
                dw: geo.dilations[0],
                ph: 0,
                pw: geo.pad_begin[0],
                ow: geo.out[0],
                isa,
            };
        }
        Im2Col2d {
            x,
            ih,
            iw,
            kh: geo.kernel[0],
            kw: geo.kernel[1],
            sh: geo.strides[0],
            sw: geo.strides[1],
            dh: geo.dilations[0],
            dw: geo.dilations[1],
            ph: geo.pad_begin[0],
            pw: geo.pad_begin[1],
            ow: geo.out[1],
            isa,
        }
    }
}

impl PackB for Im2Col2d<'_> {
    fn pack_panel(&self, k0: usize, kc: usize, j0: usize, cols: usize, dst: &mut [f32]) {
        with_isa!(self.isa, self.pack_body(k0, kc, j0, cols, dst));
    }
}

impl Im2Col2d<'_> {
    /// The body of [`PackB::pack_panel`], compiled for each path by `with_isa!`.
    #[inline(always)]
    fn pack_body(&self, k0: usize, kc: usize, j0: usize, cols: usize, dst: &mut [f32]) {
        // The panel's columns as runs within one output row:
        // (first column in the panel, output row, first output column, length).
        let mut runs = [(0usize, 0usize, 0usize, 0usize); NR];
        let mut nruns = 0;
        let mut j = 0;
        while j < cols {
            let col = j0 + j;
            let (oy, ox) = (col / self.ow, col % self.ow);
            let len = (self.ow - ox).min(cols - j);
            runs[nruns] = (j, oy, ox, len);
            nruns += 1;
            j += len;
        }
        let plane = self.ih * self.iw;
        let taps = self.kh * self.kw;
        let (mut c, mut r, mut s) = (k0 / taps, (k0 / self.kw) % self.kh, k0 % self.kw);
        for row in dst.chunks_exact_mut(NR).take(kc) {
            'fill: {
                if nruns == 1 && self.sw <= 2 {
                    // One run of the whole panel within one output row: a
                    // single copy (stride 1) or a fixed-length strided one
                    // (stride 2) when it is all in bounds.
                    let (_, oy, ox0, len) = runs[0];
                    let y = (oy * self.sh + r * self.dh).wrapping_sub(self.ph);
                    let x0 = (ox0 * self.sw + s * self.dw).wrapping_sub(self.pw);
                    let span = (len - 1) * self.sw + 1;
                    if y < self.ih && x0 < self.iw && self.iw - x0 >= span {
                        let xrow = &self.x[c * plane + y * self.iw..][..self.iw];
                        let src = &xrow[x0..x0 + span];
                        if self.sw == 1 {
                            copy_row(row, src);
                            break 'fill;
                        }
                        if let (Ok(src), Ok(row)) = (
                            <&[f32; 2 * NR - 1]>::try_from(src),
                            <&mut [f32; NR]>::try_from(&mut *row),
                        ) {
                            for (t, o) in row.iter_mut().enumerate() {
                                *o = src[2 * t];
                            }
                            break 'fill;
                        }
                    }
                }
                row.fill(0.0);
                let xc = &self.x[c * plane..][..plane];
                // Input column of output column `ox`: ox*sw + off - pw, in bounds
                // for lo <= ox < hi.
                let off = s * self.dw;
                let lo = self.pw.saturating_sub(off).div_ceil(self.sw);
                let hi = (self.iw + self.pw).saturating_sub(off).div_ceil(self.sw);
                for &(d0, oy, ox0, len) in &runs[..nruns] {
                    // Input row, wrapping to a huge value when in the top padding.
                    let y = (oy * self.sh + r * self.dh).wrapping_sub(self.ph);
                    if y >= self.ih {
                        continue;
                    }
                    let (a, b) = (ox0.max(lo), (ox0 + len).min(hi));
                    if a >= b {
                        continue;
                    }
                    let xrow = &xc[y * self.iw..][..self.iw];
                    let out = &mut row[d0 + (a - ox0)..][..b - a];
                    let x0 = a * self.sw + off - self.pw;
                    if self.sw == 1 {
                        out.copy_from_slice(&xrow[x0..x0 + (b - a)]);
                    } else {
                        for (t, o) in out.iter_mut().enumerate() {
                            *o = xrow[x0 + t * self.sw];
                        }
                    }
                }
            }
            s += 1;
            if s == self.kw {
                s = 0;
                r += 1;
                if r == self.kh {
                    r = 0;
                    c += 1;
                }
            }
        }
    }
}

/// The im2col matrix of one group: row `c * K + kpos` (kernel position
/// row-major), column = output position row-major; padding is `+0.0`.
/// Rows are independent, so they are filled in parallel.
fn im2col(ctx: &Ctx<'_>, x: &[f32], cg: usize, geo: &Geometry) -> Vec<f32> {
    let r = geo.input.len();
    let nk: usize = geo.kernel.iter().product();
    let no: usize = geo.out.iter().product();
    let ni: usize = geo.input.iter().product();
    let last = r - 1;
    let (ol, il) = (geo.out[last], geo.input[last]);
    let (stride, dil, pad) = (geo.strides[last], geo.dilations[last], geo.pad_begin[last]);
    let outer: usize = geo.out[..last].iter().product();
    let mut col = vec![0.0f32; cg * nk * no];
    if no == 0 {
        return col;
    }
    ctx.for_chunks_mut(&mut col, no, |row_i, row| {
        let (c, mut kf) = (row_i / nk, row_i % nk);
        let mut kpos = vec![0usize; r];
        for d in (0..r).rev() {
            kpos[d] = kf % geo.kernel[d];
            kf /= geo.kernel[d];
        }
        // Output positions of the innermost dim whose input is in bounds: a
        // contiguous range, as the coordinate grows with the position.
        let kl = kpos[last];
        let lo = (0..ol)
            .find(|&o| geo.coord(last, o, kl).is_some())
            .unwrap_or(ol);
        let hi = (lo..ol)
            .find(|&o| geo.coord(last, o, kl).is_none())
            .unwrap_or(ol);
        let xc = &x[c * ni..][..ni];
        let mut opos = vec![0usize; r];
        for seg in row.chunks_exact_mut(ol.max(1)).take(outer) {
            // Offset of the row of input for the outer output dims, if valid.
            let mut base = Some(0usize);
            for d in 0..last {
                base = match (base, geo.coord(d, opos[d], kpos[d])) {
                    (Some(b), Some(i)) => Some(b * geo.input[d] + i),
                    _ => None,
                };
            }
            if let (Some(b), true) = (base, lo < hi) {
                let xrow = &xc[b * il..][..il];
                // Input index of output position `o`: o*stride + kl*dil - pad.
                let first = lo * stride + kl * dil - pad;
                if stride == 1 {
                    seg[lo..hi].copy_from_slice(&xrow[first..first + (hi - lo)]);
                } else {
                    for (v, i) in seg[lo..hi].iter_mut().zip((first..).step_by(stride)) {
                        *v = xrow[i];
                    }
                }
            }
            for d in (0..last).rev() {
                opos[d] += 1;
                if opos[d] < geo.out[d] {
                    break;
                }
                opos[d] = 0;
            }
        }
    });
    col
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attr;
    use crate::kernels::gemm::test_util::Rng;

    fn build(attrs: Vec<(&str, Attr)>) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let ctx = BuildCtx {
            op_type: "Conv",
            attrs: &attrs,
            opset: 17,
            n_inputs: 3,
            n_outputs: 1,
        };
        crate::ops::build(&ctx)
    }

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    /// Direct convolution in the canonical order, straight from the spec.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        group: usize,
        geo: &Geometry,
    ) -> Vec<f32> {
        let (xs, ws) = (x.shape(), w.shape());
        let (n, c, m) = (xs[0], xs[1], ws[0]);
        let (cg, mg) = (c / group, m / group);
        let r = geo.input.len();
        let no: usize = geo.out.iter().product();
        let nk: usize = geo.kernel.iter().product();
        let ni: usize = geo.input.iter().product();
        let (xv, wv) = (x.f32s().unwrap(), w.f32s().unwrap());
        let unravel = |mut f: usize, dims: &[usize]| {
            let mut v = vec![0; dims.len()];
            for d in (0..dims.len()).rev() {
                v[d] = f % dims[d];
                f /= dims[d];
            }
            v
        };
        let mut y = vec![0.0f32; n * m * no];
        for img in 0..n {
            for co in 0..m {
                let grp = co / mg;
                for of in 0..no {
                    let o = unravel(of, &geo.out);
                    let mut acc = 0.0f32;
                    for ci in 0..cg {
                        for kf in 0..nk {
                            let k = unravel(kf, &geo.kernel);
                            let mut xi = Some(0usize);
                            for d in 0..r {
                                xi = xi
                                    .zip(geo.coord(d, o[d], k[d]))
                                    .map(|(b, i)| b * geo.input[d] + i);
                            }
                            let xval = xi.map_or(0.0, |i| xv[(img * c + grp * cg + ci) * ni + i]);
                            acc = xval.mul_add(wv[(co * cg + ci) * nk + kf], acc);
                        }
                    }
                    if let Some(b) = b {
                        acc += b.f32s().unwrap()[co];
                    }
                    y[(img * m + co) * no + of] = acc;
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        rng: &mut Rng,
        x: &[usize],
        w: &[usize],
        bias: bool,
        group: usize,
        attrs: Vec<(&str, Attr)>,
        want_spatial: Option<&[usize]>,
        pool: &rayon::ThreadPool,
    ) {
        let mut attrs = attrs;
        attrs.push(("group", Attr::Int(group as i64)));
        let op = build(attrs.clone()).unwrap();
        let xt = Tensor::from_vec(x.to_vec(), rng.vec(x.iter().product())).unwrap();
        let wt = Tensor::from_vec(w.to_vec(), rng.vec(w.iter().product())).unwrap();
        let bt = Tensor::from_vec(vec![w[0]], rng.vec(w[0])).unwrap();
        let b = bias.then_some(&bt);
        let inputs = [Some(&xt), Some(&wt), b];
        let facts: Vec<Fact> = inputs
            .iter()
            .flatten()
            .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            .collect();
        let fargs: Vec<Option<&Fact>> = vec![Some(&facts[0]), Some(&facts[1]), facts.get(2)];
        let inferred = op.infer(Args::new(&fargs)).unwrap();
        let conv = Conv {
            window: WindowAttrs::parse(
                &Attrs::new(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                ),
                true,
                false,
            )
            .unwrap(),
            group,
            packed: OnceLock::new(),
        };
        let d = conv.dims(x, w, None).unwrap();
        if let Some(s) = want_spatial {
            assert_eq!(&d.geo.out, s, "{attrs:?}");
        }
        let want: Vec<u32> = reference(&xt, &wt, b, group, &d.geo)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        for ctx in crate::kernels::test_ctxs(std::slice::from_ref(pool)) {
            // Weights given at run time, then as a model constant: packed on
            // the first such run and reused by the next.
            for constants in [0, 0b10, 0b10] {
                let args = Args::with_constants(&inputs, constants);
                let y = op.run(&ctx, args).unwrap().remove(0);
                assert_eq!(y.shape(), inferred[0].shape.as_slice());
                let got: Vec<u32> = y.f32s().unwrap().iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    got, want,
                    "x={x:?} w={w:?} attrs={attrs:?} constants={constants}"
                );
            }
        }
    }

    #[test]
    fn conv_matches_direct_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let mut rng = Rng::new(21);
        let r = &mut rng;
        case(
            r,
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            false,
            1,
            vec![],
            Some(&[3, 3]),
            &pool,
        );
        case(
            r,
            &[2, 3, 7, 6],
            &[4, 3, 3, 2],
            true,
            1,
            vec![("pads", ints(&[1, 0, 2, 1]))],
            Some(&[8, 6]),
            &pool,
        );
        case(
            r,
            &[1, 4, 9, 9],
            &[6, 2, 3, 3],
            true,
            2,
            vec![("strides", ints(&[2, 2])), ("dilations", ints(&[2, 1]))],
            Some(&[3, 4]),
            &pool,
        );
        // W = 1 throughout (a 1-D conv along H, as in magika): packed as a
        // 1-D conv along W.
        case(
            r,
            &[1, 3, 40, 1],
            &[7, 3, 5, 1],
            true,
            1,
            vec![
                ("pads", ints(&[2, 0, 1, 0])),
                ("strides", ints(&[2, 1])),
                ("dilations", ints(&[2, 1])),
            ],
            Some(&[18, 1]),
            &pool,
        );
        case(
            r,
            &[2, 4, 37, 1],
            &[9, 4, 5, 1],
            false,
            1,
            vec![],
            Some(&[33, 1]),
            &pool,
        );
        // Depthwise.
        case(
            r,
            &[2, 8, 10, 10],
            &[8, 1, 3, 3],
            true,
            8,
            vec![("pads", ints(&[1, 1, 1, 1]))],
            Some(&[10, 10]),
            &pool,
        );
        // auto_pad variants.
        case(
            r,
            &[1, 2, 7, 8],
            &[3, 2, 3, 4],
            false,
            1,
            vec![
                ("auto_pad", Attr::String(b"SAME_UPPER".to_vec())),
                ("strides", ints(&[2, 3])),
            ],
            Some(&[4, 3]),
            &pool,
        );
        case(
            r,
            &[1, 2, 7, 8],
            &[3, 2, 4, 2],
            false,
            1,
            vec![("auto_pad", Attr::String(b"SAME_LOWER".to_vec()))],
            Some(&[7, 8]),
            &pool,
        );
        case(
            r,
            &[1, 2, 7, 8],
            &[3, 2, 3, 3],
            false,
            1,
            vec![
                ("auto_pad", Attr::String(b"VALID".to_vec())),
                ("strides", ints(&[2, 2])),
            ],
            Some(&[3, 3]),
            &pool,
        );
        // 1x1 (identity im2col), 1-D and 3-D.
        case(
            r,
            &[2, 16, 5, 7],
            &[24, 16, 1, 1],
            true,
            1,
            vec![("kernel_shape", ints(&[1, 1]))],
            Some(&[5, 7]),
            &pool,
        );
        case(
            r,
            &[3, 3, 20],
            &[5, 3, 4],
            true,
            1,
            vec![("pads", ints(&[2, 1])), ("strides", ints(&[3]))],
            Some(&[7]),
            &pool,
        );
        case(
            r,
            &[1, 2, 4, 5, 6],
            &[3, 2, 2, 3, 2],
            true,
            1,
            vec![("pads", ints(&[1, 0, 1, 0, 1, 0]))],
            Some(&[4, 4, 6]),
            &pool,
        );
        // Packed im2col: strides, dilations and asymmetric pads over panels
        // that wrap output rows, and more columns than one column block.
        case(
            r,
            &[1, 16, 37, 41],
            &[20, 16, 3, 5],
            true,
            1,
            vec![
                ("strides", ints(&[2, 3])),
                ("dilations", ints(&[2, 1])),
                ("pads", ints(&[2, 1, 0, 3])),
            ],
            Some(&[18, 14]),
            &pool,
        );
        // Stride 2 with output rows wider than a panel: whole panels in
        // bounds take the fixed strided copy, the edges the general path.
        case(
            r,
            &[1, 3, 20, 70],
            &[10, 3, 7, 7],
            true,
            1,
            vec![("strides", ints(&[2, 2])), ("pads", ints(&[3, 3, 3, 3]))],
            Some(&[10, 35]),
            &pool,
        );
        case(
            r,
            &[2, 8, 40, 41],
            &[9, 8, 3, 3],
            false,
            1,
            vec![("pads", ints(&[1, 1, 1, 1]))],
            Some(&[40, 41]),
            &pool,
        );
        case(
            r,
            &[1, 6, 5, 3],
            &[7, 6, 5, 5],
            true,
            1,
            vec![("pads", ints(&[4, 4, 4, 4]))],
            Some(&[9, 7]),
            &pool,
        );
        // Large enough to cross k blocks and use threads inside the product.
        case(
            r,
            &[1, 64, 12, 12],
            &[40, 64, 3, 3],
            true,
            1,
            vec![("pads", ints(&[1, 1, 1, 1]))],
            Some(&[12, 12]),
            &pool,
        );
    }

    #[test]
    fn conv_rejects_bad_attributes() {
        assert!(build(vec![("strides", ints(&[0, 1]))]).is_err());
        assert!(build(vec![("group", Attr::Int(0))]).is_err());
        assert!(build(vec![("pads", ints(&[-1, 0, 0, 0]))]).is_err());
        assert!(build(vec![("auto_pad", Attr::String(b"WRONG".to_vec()))]).is_err());
        let op = build(vec![("pads", ints(&[1, 1]))]).unwrap();
        let x = Fact::new(DType::F32, vec![1, 1, 4, 4]);
        let w = Fact::new(DType::F32, vec![1, 1, 3, 3]);
        assert!(op.infer(Args::new(&[Some(&x), Some(&w)])).is_err());
        let op = build(vec![]).unwrap();
        let w5 = Fact::new(DType::F32, vec![1, 1, 5, 5]);
        assert!(op.infer(Args::new(&[Some(&x), Some(&w5)])).is_err());
        let w2 = Fact::new(DType::F32, vec![1, 2, 3, 3]);
        assert!(op.infer(Args::new(&[Some(&x), Some(&w2)])).is_err());
        let b = Fact::new(DType::F32, vec![2]);
        assert!(
            op.infer(Args::new(&[Some(&x), Some(&w), Some(&b)]))
                .is_err()
        );
        let cost = op.cost(
            Args::new(&[Some(&x), Some(&w)]),
            &[Fact::new(DType::F32, vec![1, 1, 2, 2])],
        );
        assert_eq!(cost.flops, 2 * 4 * 9);
    }

    #[test]
    fn conv_regions_are_the_full_runs_elements() {
        let mut rng = Rng::new(21);
        let t = |shape: &[usize], rng: &mut Rng| {
            let n = shape.iter().product();
            Tensor::from_vec(shape.to_vec(), rng.vec(n)).unwrap()
        };
        for (x, w, group, bias, attrs) in [
            (
                vec![2, 3, 9, 8],
                vec![40, 3, 3, 3],
                1,
                true,
                vec![("pads", ints(&[1, 1, 1, 1]))],
            ),
            (
                vec![1, 8, 7, 7],
                vec![8, 2, 3, 3],
                4,
                false,
                vec![("strides", ints(&[2, 2]))],
            ),
            (vec![1, 6, 5, 5], vec![6, 1, 1, 1], 6, true, vec![]),
            (
                vec![2, 4, 11],
                vec![6, 2, 3],
                2,
                true,
                vec![("dilations", ints(&[2]))],
            ),
            (vec![1, 16, 6, 6], vec![32, 16, 1, 1], 1, true, vec![]),
            (
                vec![1, 3, 17, 13],
                vec![5, 3, 5, 3],
                1,
                true,
                vec![
                    ("auto_pad", Attr::String(b"SAME_UPPER".to_vec())),
                    ("strides", ints(&[2, 3])),
                ],
            ),
            (
                vec![1, 2, 12, 12],
                vec![4, 2, 3, 3],
                1,
                false,
                vec![
                    ("pads", ints(&[2, 0, 1, 3])),
                    ("dilations", ints(&[2, 1])),
                    ("strides", ints(&[3, 1])),
                ],
            ),
            (
                vec![1, 2, 6, 5, 4],
                vec![3, 2, 2, 3, 2],
                1,
                true,
                vec![("pads", ints(&[1, 1, 0, 1, 0, 1]))],
            ),
            // Output rows that read only padding, at the top and the bottom.
            (
                vec![1, 1, 4, 256],
                vec![1, 1, 1, 1],
                1,
                true,
                vec![("pads", ints(&[8, 0, 0, 0]))],
            ),
            (
                vec![1, 2, 4, 64],
                vec![2, 2, 3, 1],
                1,
                false,
                vec![("pads", ints(&[1, 0, 9, 0]))],
            ),
        ] {
            let mut attrs = attrs;
            attrs.push(("group", Attr::Int(group)));
            let op = build(attrs).unwrap();
            let (tx, tw) = (t(&x, &mut rng), t(&w, &mut rng));
            let tb = bias.then(|| t(&[w[0]], &mut rng));
            crate::ops::testing::check_regions(
                &*op,
                &[Some(&tx), Some(&tw), tb.as_ref()],
                &[1, 20, 256],
            );
        }
    }
}

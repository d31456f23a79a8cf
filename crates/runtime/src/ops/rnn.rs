//! Operators: LSTM (opsets 7 and 14: directions, peepholes, clip,
//! input_forget, sequence_lens, both layouts).
//!
//! Arithmetic per docs/determinism.md, "Recurrent networks": the input and
//! recurrent products are the canonical dot products (one GEMM over every
//! time step for the input, one per step for the recurrence), the gate sums
//! and the cell update are evaluated in the order written there, and the
//! activations are the canonical ones. Threads split the products' outputs;
//! the recurrence itself runs step by step.

use super::{Args, BuildCtx, Fact, Op, Registry};
use crate::canon;
use crate::cost::Cost;
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::kernels::gemm::{MatRef, sgemm};
use crate::tensor::{DType, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("LSTM", build_lstm);
}

/// An activation of a recurrent cell, with its `alpha`/`beta`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Sigmoid,
    Tanh,
    Relu,
    HardSigmoid(f32, f32),
    LeakyRelu(f32),
    ThresholdedRelu(f32),
    ScaledTanh(f32, f32),
    Affine(f32, f32),
    Elu(f32),
    Softsign,
    Softplus,
}

impl Act {
    /// Parses `activations[i]`, taking its parameters from the
    /// `activation_alpha`/`activation_beta` lists in order.
    fn parse(
        name: &str,
        alphas: &mut impl Iterator<Item = f32>,
        betas: &mut impl Iterator<Item = f32>,
    ) -> OpResult<Act> {
        let mut a = |d: f32| alphas.next().unwrap_or(d);
        Ok(match name.to_ascii_lowercase().as_str() {
            "sigmoid" => Act::Sigmoid,
            "tanh" => Act::Tanh,
            "relu" => Act::Relu,
            "hardsigmoid" => {
                let alpha = a(0.2);
                Act::HardSigmoid(alpha, betas.next().unwrap_or(0.5))
            }
            "leakyrelu" => Act::LeakyRelu(a(0.01)),
            "thresholdedrelu" => Act::ThresholdedRelu(a(1.0)),
            "scaledtanh" => {
                let alpha = a(1.0);
                Act::ScaledTanh(alpha, betas.next().unwrap_or(1.0))
            }
            "affine" => {
                let alpha = a(1.0);
                Act::Affine(alpha, betas.next().unwrap_or(0.0))
            }
            "elu" => Act::Elu(a(1.0)),
            "softsign" => Act::Softsign,
            "softplus" => Act::Softplus,
            _ => bail!("activation `{name}` is not supported"),
        })
    }

    /// The activation, each operation rounded separately (docs/determinism.md,
    /// "Activations").
    fn apply(self, x: f32) -> f32 {
        match self {
            Act::Sigmoid => canon::sigmoid(x),
            Act::Tanh => canon::tanh(x),
            Act::Relu => canon::max(x, 0.0),
            Act::HardSigmoid(a, b) => canon::max(canon::min(a * x + b, 1.0), 0.0),
            Act::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Act::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Act::ScaledTanh(a, b) => a * canon::tanh(b * x),
            Act::Affine(a, b) => a * x + b,
            Act::Elu(a) => {
                if x < 0.0 {
                    a * canon::expm1(x)
                } else {
                    x
                }
            }
            Act::Softsign => x / (1.0 + x.abs()),
            Act::Softplus => {
                if x > 0.0 {
                    x + canon::log(1.0 + canon::exp(-x))
                } else {
                    canon::log(1.0 + canon::exp(x))
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }

    /// Whether direction `d` (0 or 1) runs backwards in time.
    fn backwards(self, d: usize) -> bool {
        self == Direction::Reverse || (self == Direction::Bidirectional && d == 1)
    }
}

#[derive(Debug)]
struct Lstm {
    hidden: Option<usize>,
    direction: Direction,
    /// `f`, `g`, `h` of each direction.
    acts: Vec<[Act; 3]>,
    clip: Option<f32>,
    input_forget: bool,
    /// 0: `[seq, batch, ...]`; 1: `[batch, seq, ...]`.
    batch_first: bool,
}

fn build_lstm(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let a = b.attrs;
    let direction = match a.string("direction", "forward")? {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => bail!("direction `{other}` is not forward, reverse or bidirectional"),
    };
    let hidden = match a.opt_int("hidden_size")? {
        None => None,
        Some(h) if h > 0 => Some(h as usize),
        Some(h) => bail!("hidden_size {h} is not positive"),
    };
    let dirs = direction.count();
    let names: Vec<String> = match a.get("activations") {
        None => (0..dirs)
            .flat_map(|_| ["Sigmoid", "Tanh", "Tanh"])
            .map(String::from)
            .collect(),
        Some(crate::attrs::Attr::Strings(v)) => v
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        Some(_) => bail!("attribute `activations` is not a list of strings"),
    };
    ensure!(
        names.len() == 3 * dirs,
        "{} activations for {dirs} direction(s); LSTM takes 3 per direction",
        names.len()
    );
    let mut alphas = a
        .opt_floats("activation_alpha")?
        .unwrap_or(&[])
        .iter()
        .copied();
    let mut betas = a
        .opt_floats("activation_beta")?
        .unwrap_or(&[])
        .iter()
        .copied();
    let mut acts = Vec::with_capacity(dirs);
    for d in 0..dirs {
        let mut three = [Act::Sigmoid; 3];
        for (i, t) in three.iter_mut().enumerate() {
            *t = Act::parse(&names[3 * d + i], &mut alphas, &mut betas)?;
        }
        acts.push(three);
    }
    let clip = match a.opt_float("clip")? {
        None => None,
        Some(c) if c > 0.0 => Some(c),
        Some(c) => bail!("clip {c} is not positive"),
    };
    let layout = a.int("layout", 0)?;
    ensure!(layout == 0 || layout == 1, "layout {layout} is not 0 or 1");
    ensure!(
        b.n_inputs >= 3 && b.n_inputs <= 8,
        "LSTM takes 3 to 8 inputs, the node has {}",
        b.n_inputs
    );
    Ok(Box::new(Lstm {
        hidden,
        direction,
        acts,
        clip,
        input_forget: a.flag("input_forget", false)?,
        batch_first: layout == 1,
    }))
}

/// The sizes of one LSTM run.
#[derive(Clone, Copy, Debug)]
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
}

impl Lstm {
    fn dims(&self, inputs: Args<'_, Fact>) -> OpResult<Dims> {
        let x = inputs.get(0)?;
        let w = inputs.get(1)?;
        let r = inputs.get(2)?;
        for (f, what) in [(x, "X"), (w, "W"), (r, "R")] {
            ensure!(
                f.dtype == DType::F32,
                "{what} is {}; LSTM runs on float32",
                f.dtype
            );
            ensure!(
                f.shape.len() == 3,
                "{what} has shape {:?}, not rank 3",
                f.shape
            );
        }
        let (seq, batch) = if self.batch_first {
            (x.shape[1], x.shape[0])
        } else {
            (x.shape[0], x.shape[1])
        };
        let input = x.shape[2];
        let dirs = self.direction.count();
        let hidden = self.hidden.unwrap_or(r.shape[2]);
        let gates = hidden
            .checked_mul(4)
            .ok_or_else(|| crate::OpError("hidden_size overflows".into()))?;
        ensure!(
            w.shape == [dirs, gates, input],
            "W has shape {:?}, expected [{dirs}, {gates}, {input}]",
            w.shape
        );
        ensure!(
            r.shape == [dirs, gates, hidden],
            "R has shape {:?}, expected [{dirs}, {gates}, {hidden}]",
            r.shape
        );
        let state = if self.batch_first {
            vec![batch, dirs, hidden]
        } else {
            vec![dirs, batch, hidden]
        };
        let optional: [(usize, &str, Vec<usize>, DType); 5] = [
            (3, "B", vec![dirs, 2 * gates], DType::F32),
            (4, "sequence_lens", vec![batch], DType::I32),
            (5, "initial_h", state.clone(), DType::F32),
            (6, "initial_c", state, DType::F32),
            (7, "P", vec![dirs, 3 * hidden], DType::F32),
        ];
        for (i, what, shape, dtype) in optional {
            if let Some(f) = inputs.opt(i) {
                ensure!(
                    f.dtype == dtype && f.shape == shape,
                    "{what} is {} {:?}, expected {dtype} {shape:?}",
                    f.dtype,
                    f.shape
                );
            }
        }
        Ok(Dims {
            seq,
            batch,
            input,
            hidden,
            dirs,
        })
    }

    fn out_shapes(&self, d: Dims) -> [Vec<usize>; 2] {
        if self.batch_first {
            [
                vec![d.batch, d.seq, d.dirs, d.hidden],
                vec![d.batch, d.dirs, d.hidden],
            ]
        } else {
            [
                vec![d.seq, d.dirs, d.batch, d.hidden],
                vec![d.dirs, d.batch, d.hidden],
            ]
        }
    }
}

/// Row-major transpose of a `rows x cols` matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = m[i * cols + j];
        }
    }
    t
}

impl Op for Lstm {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let d = self.dims(inputs)?;
        let [y, state] = self.out_shapes(d);
        for s in [&y, &state] {
            ensure!(checked_len(s).is_some(), "output shape {s:?} overflows");
        }
        Ok(vec![
            Fact::new(DType::F32, y),
            Fact::new(DType::F32, state.clone()),
            Fact::new(DType::F32, state),
        ])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        let Ok(d) = self.dims(inputs) else {
            return Cost::default();
        };
        let steps = (d.seq as u64)
            .saturating_mul(d.batch as u64)
            .saturating_mul(d.dirs as u64);
        let per_step = (8 * d.hidden as u64)
            .saturating_mul((d.input + d.hidden) as u64)
            .saturating_add(20 * d.hidden as u64);
        let bytes = inputs
            .present()
            .chain(outputs)
            .map(Fact::size_bytes)
            .fold(0u64, u64::saturating_add);
        Cost {
            flops: steps.saturating_mul(per_step),
            bytes,
        }
    }

    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = (0..inputs.len())
            .map(|i| {
                inputs
                    .opt(i)
                    .map(|t| Fact::new(t.dtype(), t.shape().to_vec()))
            })
            .collect();
        let fact_refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let d = self.dims(Args::new(&fact_refs))?;
        let Dims {
            seq,
            batch,
            input,
            hidden: h,
            dirs,
        } = d;
        let g4 = 4 * h;
        // X as [seq, batch, input].
        let x = inputs.get(0)?.f32s()?;
        let x: Vec<f32> = if self.batch_first {
            let mut v = Vec::with_capacity(x.len());
            for t in 0..seq {
                for b in 0..batch {
                    v.extend_from_slice(&x[(b * seq + t) * input..][..input]);
                }
            }
            v
        } else {
            x.to_vec()
        };
        let w = inputs.get(1)?.f32s()?;
        let r = inputs.get(2)?.f32s()?;
        let bias = inputs.opt(3).map(Tensor::f32s).transpose()?;
        let lens: Vec<usize> = match inputs.opt(4) {
            None => vec![seq; batch],
            Some(t) => t
                .as_slice::<i32>()?
                .iter()
                .map(|&l| {
                    ensure!(
                        l >= 0 && l as usize <= seq,
                        "sequence_lens holds {l}, outside 0..={seq}"
                    );
                    Ok(l as usize)
                })
                .collect::<OpResult<_>>()?,
        };
        // State inputs as [dirs, batch, hidden].
        let state_in = |i: usize| -> OpResult<Option<Vec<f32>>> {
            let Some(t) = inputs.opt(i) else {
                return Ok(None);
            };
            let s = t.f32s()?;
            Ok(Some(if self.batch_first {
                let mut v = vec![0.0; s.len()];
                for b in 0..batch {
                    for dd in 0..dirs {
                        v[(dd * batch + b) * h..][..h]
                            .copy_from_slice(&s[(b * dirs + dd) * h..][..h]);
                    }
                }
                v
            } else {
                s.to_vec()
            }))
        };
        let h0 = state_in(5)?;
        let c0 = state_in(6)?;
        let p = inputs.opt(7).map(Tensor::f32s).transpose()?;

        // Y as [seq, dirs, batch, hidden]; finals as [dirs, batch, hidden].
        let mut y = vec![0.0f32; seq * dirs * batch * h];
        let mut y_h = vec![0.0f32; dirs * batch * h];
        let mut y_c = vec![0.0f32; dirs * batch * h];
        for dd in 0..dirs {
            let [f, g, hh] = self.acts[dd];
            let wt = transpose(&w[dd * g4 * input..][..g4 * input], g4, input);
            let rt = transpose(&r[dd * g4 * h..][..g4 * h], g4, h);
            // Input products of every step at once: [seq * batch, 4h].
            let mut gx = vec![0.0f32; seq * batch * g4];
            sgemm(
                ctx,
                seq * batch,
                g4,
                input,
                MatRef::row_major(&x, input),
                MatRef::row_major(&wt, g4),
                &mut gx,
            )?;
            let mut hs = match &h0 {
                Some(v) => v[dd * batch * h..][..batch * h].to_vec(),
                None => vec![0.0; batch * h],
            };
            let mut cs = match &c0 {
                Some(v) => v[dd * batch * h..][..batch * h].to_vec(),
                None => vec![0.0; batch * h],
            };
            let (wb, rb) = match bias {
                Some(b) => {
                    let b = &b[dd * 2 * g4..][..2 * g4];
                    (Some(&b[..g4]), Some(&b[g4..]))
                }
                None => (None, None),
            };
            let pd = p.map(|p| &p[dd * 3 * h..][..3 * h]);
            let mut gh = vec![0.0f32; batch * g4];
            let back = self.direction.backwards(dd);
            for s in 0..seq {
                if lens.iter().all(|&l| s >= l) {
                    break;
                }
                sgemm(
                    ctx,
                    batch,
                    g4,
                    h,
                    MatRef::row_major(&hs, h),
                    MatRef::row_major(&rt, g4),
                    &mut gh,
                )?;
                for b in 0..batch {
                    let len = lens[b];
                    if s >= len {
                        continue;
                    }
                    let t = if back { len - 1 - s } else { s };
                    let gxr = &gx[(t * batch + b) * g4..][..g4];
                    let ghr = &gh[b * g4..][..g4];
                    let hb = &mut hs[b * h..][..h];
                    let cb = &mut cs[b * h..][..h];
                    for j in 0..h {
                        // Gate pre-activations in iofc order.
                        let pre = |gate: usize| {
                            let k = gate * h + j;
                            let mut v = gxr[k] + ghr[k];
                            if let Some(wb) = wb {
                                v += wb[k];
                            }
                            if let Some(rb) = rb {
                                v += rb[k];
                            }
                            v
                        };
                        let clip = |v: f32| match self.clip {
                            Some(c) => canon::max(canon::min(v, c), -c),
                            None => v,
                        };
                        let c_prev = cb[j];
                        let mut vi = pre(0);
                        let mut vf = pre(2);
                        if let Some(pd) = pd {
                            vi += pd[j] * c_prev;
                            vf += pd[2 * h + j] * c_prev;
                        }
                        let i_g = f.apply(clip(vi));
                        let f_g = if self.input_forget {
                            1.0 - i_g
                        } else {
                            f.apply(clip(vf))
                        };
                        let c_g = g.apply(clip(pre(3)));
                        let c_new = f_g * c_prev + i_g * c_g;
                        let mut vo = pre(1);
                        if let Some(pd) = pd {
                            vo += pd[h + j] * c_new;
                        }
                        let o_g = f.apply(clip(vo));
                        let h_new = o_g * hh.apply(c_new);
                        cb[j] = c_new;
                        hb[j] = h_new;
                        y[((t * dirs + dd) * batch + b) * h + j] = h_new;
                    }
                }
            }
            y_h[dd * batch * h..][..batch * h].copy_from_slice(&hs);
            y_c[dd * batch * h..][..batch * h].copy_from_slice(&cs);
        }
        let [y_shape, state_shape] = self.out_shapes(d);
        if self.batch_first {
            let mut yb = vec![0.0f32; y.len()];
            for t in 0..seq {
                for dd in 0..dirs {
                    for b in 0..batch {
                        yb[((b * seq + t) * dirs + dd) * h..][..h]
                            .copy_from_slice(&y[((t * dirs + dd) * batch + b) * h..][..h]);
                    }
                }
            }
            y = yb;
            let swap = |s: &[f32]| {
                let mut v = vec![0.0f32; s.len()];
                for dd in 0..dirs {
                    for b in 0..batch {
                        v[(b * dirs + dd) * h..][..h]
                            .copy_from_slice(&s[(dd * batch + b) * h..][..h]);
                    }
                }
                v
            };
            y_h = swap(&y_h);
            y_c = swap(&y_c);
        }
        Ok(vec![
            Tensor::from_vec(y_shape, y)?,
            Tensor::from_vec(state_shape.clone(), y_h)?,
            Tensor::from_vec(state_shape, y_c)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn lstm(attrs: Vec<(&str, Attr)>) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        build_lstm(&BuildCtx {
            op_type: "LSTM",
            attrs: &attrs,
            opset: 14,
            n_inputs: 8,
            n_outputs: 3,
        })
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn t(shape: Vec<usize>, seed: u32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(shape, values(n, seed)).unwrap()
    }

    fn run(op: &dyn Op, ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let facts: Vec<Option<Fact>> = inputs
            .iter()
            .map(|t| t.map(|t| Fact::new(t.dtype(), t.shape().to_vec())))
            .collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let want = op.infer(Args::new(&refs))?;
        let outs = op.run(ctx, Args::new(inputs))?;
        for (f, o) in want.iter().zip(&outs) {
            assert_eq!(f.shape, o.shape());
        }
        Ok(outs)
    }

    /// Bidirectional, peepholes, clip, bias, initial state, uneven lengths.
    fn case() -> (Box<dyn Op>, Vec<Tensor>) {
        let (seq, batch, input, h) = (5, 3, 7, 9);
        let op = lstm(vec![
            ("direction", Attr::String(b"bidirectional".to_vec())),
            ("hidden_size", Attr::Int(h as i64)),
            ("clip", Attr::Float(0.75)),
        ])
        .unwrap();
        let inputs = vec![
            t(vec![seq, batch, input], 1),
            t(vec![2, 4 * h, input], 2),
            t(vec![2, 4 * h, h], 3),
            t(vec![2, 8 * h], 4),
            Tensor::from_vec(vec![batch], vec![5i32, 0, 3]).unwrap(),
            t(vec![2, batch, h], 5),
            t(vec![2, batch, h], 6),
            t(vec![2, 3 * h], 7),
        ];
        (op, inputs)
    }

    #[test]
    fn same_bits_on_every_path_and_thread_count() {
        let (op, inputs) = case();
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let base = run(op.as_ref(), &Ctx::single(Isa::Portable), &refs).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let other = run(op.as_ref(), &Ctx::with_pool(Isa::detect(), &pool), &refs).unwrap();
        assert_eq!(base, other);
    }

    #[test]
    fn a_sequence_of_length_zero_keeps_its_initial_state() {
        let (op, inputs) = case();
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let out = run(op.as_ref(), &Ctx::single(Isa::Portable), &refs).unwrap();
        let (y, y_h) = (out[0].f32s().unwrap(), out[1].f32s().unwrap());
        let h0 = inputs[5].f32s().unwrap();
        let h = 9;
        for d in 0..2 {
            // Batch element 1 has length 0: no output, the initial state.
            assert_eq!(&y_h[(d * 3 + 1) * h..][..h], &h0[(d * 3 + 1) * h..][..h]);
            for s in 0..5 {
                assert!(
                    y[((s * 2 + d) * 3 + 1) * h..][..h]
                        .iter()
                        .all(|&v| v == 0.0)
                );
            }
            // Element 2 (length 3): nothing past step 3.
            assert!(
                y[((4 * 2 + d) * 3 + 2) * h..][..h]
                    .iter()
                    .all(|&v| v == 0.0)
            );
        }
    }

    #[test]
    fn batch_first_layout_is_the_transpose() {
        let (op, inputs) = case();
        let op1 = lstm(vec![
            ("direction", Attr::String(b"bidirectional".to_vec())),
            ("hidden_size", Attr::Int(9)),
            ("clip", Attr::Float(0.75)),
            ("layout", Attr::Int(1)),
        ])
        .unwrap();
        // Swaps the first two axes of a rank-3 tensor.
        let swap = |x: &Tensor| {
            let s = x.shape();
            let v = x.f32s().unwrap();
            let mut o = Vec::with_capacity(v.len());
            for j in 0..s[1] {
                for i in 0..s[0] {
                    o.extend_from_slice(&v[(i * s[1] + j) * s[2]..][..s[2]]);
                }
            }
            Tensor::from_vec(vec![s[1], s[0], s[2]], o).unwrap()
        };
        let mut inputs1 = inputs.clone();
        for i in [0, 5, 6] {
            inputs1[i] = swap(&inputs[i]);
        }
        let ctx = Ctx::single(Isa::Portable);
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let refs1: Vec<Option<&Tensor>> = inputs1.iter().map(Some).collect();
        let a = run(op.as_ref(), &ctx, &refs).unwrap();
        let b = run(op1.as_ref(), &ctx, &refs1).unwrap();
        assert_eq!(swap(&a[1]), b[1]);
        assert_eq!(swap(&a[2]), b[2]);
        // Y: [seq, dirs, batch, h] against [batch, seq, dirs, h].
        let (ya, yb) = (a[0].f32s().unwrap(), b[0].f32s().unwrap());
        for s in 0..5 {
            for d in 0..2 {
                for n in 0..3 {
                    assert_eq!(
                        &ya[((s * 2 + d) * 3 + n) * 9..][..9],
                        &yb[((n * 5 + s) * 2 + d) * 9..][..9]
                    );
                }
            }
        }
    }

    #[test]
    fn bad_lstms_are_refused_with_a_reason() {
        let err = |r: OpResult<Box<dyn Op>>| r.unwrap_err().0;
        assert!(err(lstm(vec![("direction", Attr::String(b"up".to_vec()))])).contains("direction"));
        assert!(err(lstm(vec![("hidden_size", Attr::Int(0))])).contains("hidden_size"));
        let acts = Attr::Strings(vec![
            b"Sigmoid".to_vec(),
            b"Cube".to_vec(),
            b"Tanh".to_vec(),
        ]);
        assert!(err(lstm(vec![("activations", acts)])).contains("Cube"));
        let two = Attr::Strings(vec![b"Sigmoid".to_vec(), b"Tanh".to_vec()]);
        assert!(err(lstm(vec![("activations", two)])).contains("3 per direction"));

        let (op, mut inputs) = case();
        inputs[1] = t(vec![2, 35, 7], 2);
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let e = run(op.as_ref(), &Ctx::single(Isa::Portable), &refs).unwrap_err();
        assert!(e.0.contains("W has shape"), "{e}");
        let (op, mut inputs) = case();
        inputs[4] = Tensor::from_vec(vec![3], vec![5i32, 6, 1]).unwrap();
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let e = run(op.as_ref(), &Ctx::single(Isa::Portable), &refs).unwrap_err();
        assert!(e.0.contains("sequence_lens"), "{e}");
    }
}

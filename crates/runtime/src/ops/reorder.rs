//! Operators that move elements without arithmetic: TopK (selection in a
//! total order), DepthToSpace and SpaceToDepth (block rearrangements).
//!
//! Orders follow docs/determinism.md, "Integers, comparisons and casts"
//! (TopK's tie and NaN rules are written there).

use std::cmp::Ordering;

use super::util::{by_dtype, known_ints, normalize_axis};
use super::{Args, BuildCtx, Fact, Op, Registry, movement_cost};
use crate::cost::Cost;
use crate::error::OpResult;
use crate::kernels::Ctx;
use crate::tensor::{DType, Data, Elem, Tensor, checked_len};
use crate::{bail, ensure};

pub(crate) fn register(r: &mut Registry) {
    r.add("TopK", build_topk);
    r.add("DepthToSpace", |b| build_space(b, true));
    r.add("SpaceToDepth", |b| build_space(b, false));
}

// ---------------------------------------------------------------- TopK

#[derive(Debug)]
struct TopK {
    /// `k` from the attribute (opset < 10); from input 1 otherwise.
    k_attr: Option<i64>,
    axis: i64,
    largest: bool,
}

fn build_topk(b: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let a = b.attrs;
    let k_attr = if b.opset < 10 {
        Some(a.req_int("k")?)
    } else {
        ensure!(
            b.n_inputs == 2,
            "TopK takes inputs X and K, the node has {}",
            b.n_inputs
        );
        None
    };
    // `sorted = 0` leaves the order unspecified: the sorted order is one.
    a.flag("sorted", true)?;
    Ok(Box::new(TopK {
        k_attr,
        axis: a.int("axis", -1)?,
        largest: a.flag("largest", true)?,
    }))
}

impl TopK {
    fn k(&self, inputs: Args<'_, Fact>) -> OpResult<i64> {
        match self.k_attr {
            Some(k) => Ok(k),
            None => {
                let kf = inputs.get(1)?;
                ensure!(
                    kf.dtype == DType::I64 && kf.len() == 1,
                    "K must be one int64, got {} {:?}",
                    kf.dtype,
                    kf.shape
                );
                Ok(known_ints(kf, "K")?[0])
            }
        }
    }
}

/// The total order of TopK: NaN above every number (and equal to NaN);
/// otherwise the numeric order (`-0.0 == +0.0`).
fn total_cmp<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    #[allow(clippy::eq_op)]
    let (a_nan, b_nan) = (a != a, b != b);
    match (a_nan, b_nan) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// The `k` selected positions of each lane along the axis: stable sort, so
/// equal values keep increasing indices.
fn topk_typed<T: Elem>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    k: usize,
    largest: bool,
) -> (Vec<T>, Vec<i64>) {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut values = vec![T::default(); outer * k * inner];
    let mut indices = vec![0i64; outer * k * inner];
    let mut lane: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| &x[(o * n + j) * inner + i];
            lane.clear();
            lane.extend(0..n);
            if largest {
                lane.sort_by(|&a, &b| total_cmp(at(b), at(a)));
            } else {
                lane.sort_by(|&a, &b| total_cmp(at(a), at(b)));
            }
            for (r, &j) in lane.iter().take(k).enumerate() {
                let dst = (o * k + r) * inner + i;
                values[dst] = *at(j);
                indices[dst] = j as i64;
            }
        }
    }
    (values, indices)
}

impl Op for TopK {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        ensure!(x.dtype != DType::Bool, "TopK does not order bool");
        ensure!(
            !x.shape.is_empty(),
            "TopK needs an input of rank at least 1"
        );
        let axis = normalize_axis(self.axis, x.shape.len())?;
        let k = self.k(inputs)?;
        let n = x.shape[axis];
        ensure!(
            k >= 0 && k as u64 <= n as u64,
            "K = {k} is outside 0..={n} (the axis size)"
        );
        let mut shape = x.shape.clone();
        shape[axis] = k as usize;
        Ok(vec![
            Fact::new(x.dtype, shape.clone()),
            Fact::new(DType::I64, shape),
        ])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        // A comparison sort: about n log2 n comparisons per lane.
        let mut c = movement_cost(inputs, outputs);
        if let (Ok(x), Ok(axis)) = (
            inputs.get(0),
            inputs
                .get(0)
                .and_then(|x| normalize_axis(self.axis, x.shape.len())),
        ) {
            let n = x.shape[axis].max(1) as u64;
            let lanes = (x.len() as u64) / n;
            c.flops = lanes.saturating_mul(n.saturating_mul(64 - n.leading_zeros() as u64));
        }
        c
    }

    /// A comparison of the sort is several times an arithmetic
    /// operation's time (measured by benches/referee_price.rs).
    fn time_weight(&self) -> u64 {
        24
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let facts: Vec<Option<Fact>> = (0..inputs.len())
            .map(|i| {
                inputs
                    .opt(i)
                    .map(|t| Fact::known(std::sync::Arc::new(t.clone())))
            })
            .collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(Option::as_ref).collect();
        let out = self.infer(Args::new(&refs))?;
        let axis = normalize_axis(self.axis, x.rank())?;
        let k = out[0].shape[axis];
        let (values, indices) = by_dtype!(x.dtype(), T => {
            let (v, i) = topk_typed::<T>(x.as_slice::<T>()?, x.shape(), axis, k, self.largest);
            (T::wrap(v), i)
        });
        Ok(vec![
            Tensor::new(out[0].shape.clone(), values)?,
            Tensor::from_vec(out[1].shape.clone(), indices)?,
        ])
    }
}

// ---------------------------------------------------------------- DepthToSpace, SpaceToDepth

#[derive(Debug)]
struct Space {
    /// DepthToSpace (else SpaceToDepth).
    to_space: bool,
    block: usize,
    /// Mode CRD (else DCR).
    crd: bool,
}

fn build_space(b: &BuildCtx<'_>, to_space: bool) -> OpResult<Box<dyn Op>> {
    let a = b.attrs;
    let block = a.req_int("blocksize")?;
    ensure!(
        (1..=1 << 16).contains(&block),
        "blocksize {block} is outside 1..=65536"
    );
    let crd = match a.opt_string("mode")? {
        None | Some("DCR") => false,
        Some("CRD") => true,
        Some(m) => bail!("mode `{m}` is not DCR or CRD"),
    };
    Ok(Box::new(Space {
        to_space,
        block: block as usize,
        crd,
    }))
}

impl Space {
    fn out_shape(&self, s: &[usize]) -> OpResult<Vec<usize>> {
        ensure!(
            s.len() == 4,
            "the input has shape {s:?}, not rank 4 (N, C, H, W)"
        );
        let b = self.block;
        let bb = b * b;
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let out = if self.to_space {
            ensure!(
                c % bb == 0,
                "{c} channels are not a multiple of blocksize² = {bb}"
            );
            let (oh, ow) = h
                .checked_mul(b)
                .zip(w.checked_mul(b))
                .ok_or_else(|| crate::OpError("the output shape overflows".into()))?;
            vec![n, c / bb, oh, ow]
        } else {
            ensure!(
                h % b == 0 && w % b == 0,
                "height {h} and width {w} must be multiples of blocksize {b}"
            );
            let c = c
                .checked_mul(bb)
                .ok_or_else(|| crate::OpError("the output shape overflows".into()))?;
            vec![n, c, h / b, w / b]
        };
        ensure!(
            checked_len(&out).is_some(),
            "the output shape {out:?} overflows"
        );
        Ok(out)
    }

    /// For each output element in row-major order, its input offset.
    fn sources(&self, s: &[usize], out: &[usize]) -> Vec<usize> {
        let b = self.block;
        let (c, h, w) = (s[1], s[2], s[3]);
        let (oc, oh, ow) = (out[1], out[2], out[3]);
        let mut src = Vec::with_capacity(out.iter().product());
        for n in 0..out[0] {
            for y in 0..oc {
                for i in 0..oh {
                    for j in 0..ow {
                        let (ci, hi, wi) = if self.to_space {
                            let (bi, bj) = (i % b, j % b);
                            let ci = if self.crd {
                                (y * b + bi) * b + bj
                            } else {
                                (bi * b + bj) * oc + y
                            };
                            (ci, i / b, j / b)
                        } else {
                            // Output channel: (bi * b + bj) * C + c in DCR,
                            // c * b² + (bi * b + bj) in CRD.
                            let (blk, cc) = if self.crd {
                                (y % (b * b), y / (b * b))
                            } else {
                                (y / c, y % c)
                            };
                            (cc, i * b + blk / b, j * b + blk % b)
                        };
                        src.push(((n * c + ci) * h + hi) * w + wi);
                    }
                }
            }
        }
        src
    }
}

impl Op for Space {
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>> {
        let x = inputs.get(0)?;
        Ok(vec![Fact::new(x.dtype, self.out_shape(&x.shape)?)])
    }

    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        movement_cost(inputs, outputs)
    }

    fn run(&self, _ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>> {
        let x = inputs.get(0)?;
        let out = self.out_shape(x.shape())?;
        let src = self.sources(x.shape(), &out);
        let data: Data = x.data().gather(src.into_iter());
        Ok(vec![Tensor::new(out, data)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attr, Attrs};
    use crate::kernels::Isa;

    fn build(
        op: &str,
        opset: i64,
        attrs: Vec<(&str, Attr)>,
        n_inputs: usize,
    ) -> OpResult<Box<dyn Op>> {
        let attrs = Attrs::new(attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        super::super::build(&BuildCtx {
            op_type: op,
            attrs: &attrs,
            opset,
            n_inputs,
            n_outputs: 2,
        })
    }

    fn run(op: &dyn Op, inputs: &[&Tensor]) -> OpResult<Vec<Tensor>> {
        let v: Vec<Option<&Tensor>> = inputs.iter().copied().map(Some).collect();
        op.run(&Ctx::single(Isa::Portable), Args::new(&v))
    }

    #[test]
    fn topk_breaks_ties_by_index_and_ranks_nan_highest() {
        let x = Tensor::from_vec(
            vec![2, 4],
            vec![1.0f32, 3.0, 3.0, f32::NAN, -0.0, 0.0, 2.0, 0.0],
        )
        .unwrap();
        let k = Tensor::from_vec(vec![1], vec![3i64]).unwrap();
        let op = build("TopK", 11, vec![], 2).unwrap();
        let out = run(op.as_ref(), &[&x, &k]).unwrap();
        let v = out[0].f32s().unwrap();
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[3.0, 3.0, 2.0, -0.0, 0.0]);
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[3, 1, 2, 2, 0, 1]);

        let op = build(
            "TopK",
            11,
            vec![("largest", Attr::Int(0)), ("axis", Attr::Int(0))],
            2,
        )
        .unwrap();
        let k1 = Tensor::from_vec(vec![1], vec![1i64]).unwrap();
        let out = run(op.as_ref(), &[&x, &k1]).unwrap();
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[1, 1, 1, 1]);
    }

    #[test]
    fn topk_refuses_k_outside_the_axis() {
        let x = Tensor::from_vec(vec![3], vec![1i32, 2, 3]).unwrap();
        let k = Tensor::from_vec(vec![1], vec![4i64]).unwrap();
        let op = build("TopK", 11, vec![], 2).unwrap();
        let facts = [Fact::known(x.into()), Fact::known(k.into())];
        let refs = [Some(&facts[0]), Some(&facts[1])];
        let e = op.infer(Args::new(&refs)).unwrap_err();
        assert!(e.0.contains("outside 0..=3"), "{e}");
        assert!(build("TopK", 1, vec![], 1).unwrap_err().0.contains("`k`"));
    }

    #[test]
    fn depth_to_space_and_back() {
        let x = Tensor::from_vec(vec![1, 8, 2, 3], (0..48).map(|i| i as f32).collect()).unwrap();
        for mode in ["DCR", "CRD"] {
            let d2s = build(
                "DepthToSpace",
                13,
                vec![
                    ("blocksize", Attr::Int(2)),
                    ("mode", Attr::String(mode.into())),
                ],
                1,
            )
            .unwrap();
            let y = run(d2s.as_ref(), &[&x]).unwrap().remove(0);
            assert_eq!(y.shape(), &[1, 2, 4, 6]);
            if mode == "DCR" {
                // SpaceToDepth inverts DCR.
                let s2d = build("SpaceToDepth", 13, vec![("blocksize", Attr::Int(2))], 1).unwrap();
                assert_eq!(run(s2d.as_ref(), &[&y]).unwrap().remove(0), x);
                // y[0, 0, 0, 1] = x[0, 1 * 2, 0, 0] (block (0, 1), channel 0).
                assert_eq!(y.f32s().unwrap()[1], 12.0);
            } else {
                // y[0, 0, 0, 1] = x[0, 1, 0, 0] (channel 0, block (0, 1)).
                assert_eq!(y.f32s().unwrap()[1], 6.0);
            }
        }
        let bad = build("DepthToSpace", 13, vec![("blocksize", Attr::Int(3))], 1).unwrap();
        let f = [Fact::new(DType::F32, vec![1, 8, 2, 3])];
        let e = bad.infer(Args::new(&[Some(&f[0])])).unwrap_err();
        assert!(e.0.contains("multiple of blocksize"), "{e}");
    }
}

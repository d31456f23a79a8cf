//! ONNX multidirectional (numpy) broadcasting.

use crate::error::{OpError, OpResult};
use crate::tensor::strides;

/// The broadcast shape of several shapes, or why they do not broadcast.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> OpResult<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(OpError(format!(
                    "shapes {:?} cannot be broadcast together",
                    shapes.iter().map(|s| s.to_vec()).collect::<Vec<_>>()
                )));
            }
        }
    }
    Ok(out)
}

/// Strides (in elements) of `shape` viewed as broadcast to `out` (stride 0 on
/// broadcast dimensions). `shape` must broadcast to `out`.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                own[i - off]
            }
        })
        .collect()
}

/// For every output index in row-major order, the offset into an input with
/// the given broadcast strides. Calls `f(out_index, in_offset)`.
pub fn for_each_offset(out: &[usize], in_strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let n: usize = out.iter().product();
    if n == 0 {
        return;
    }
    let rank = out.len();
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for i in 0..n {
        f(i, off);
        for d in (0..rank).rev() {
            idx[d] += 1;
            off += in_strides[d];
            if idx[d] < out[d] {
                break;
            }
            off -= in_strides[d] * out[d];
            idx[d] = 0;
        }
    }
}

/// Offsets into each of several broadcast inputs, one vector per input, for
/// every output element in row-major order.
pub fn offsets(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = broadcast_strides(shape, out);
    let mut v = Vec::with_capacity(out.iter().product());
    for_each_offset(out, &st, |_, o| v.push(o));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(
            broadcast_shapes(&[&[2, 3, 4], &[4]]).unwrap(),
            vec![2, 3, 4]
        );
        assert_eq!(
            broadcast_shapes(&[&[2, 1, 4], &[3, 1]]).unwrap(),
            vec![2, 3, 4]
        );
        assert_eq!(broadcast_shapes(&[&[], &[5]]).unwrap(), vec![5]);
        assert!(broadcast_shapes(&[&[2, 3], &[4]]).is_err());
    }

    #[test]
    fn offsets_follow_strides() {
        assert_eq!(offsets(&[3, 1], &[3, 2]), vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(offsets(&[2], &[3, 2]), vec![0, 1, 0, 1, 0, 1]);
    }
}

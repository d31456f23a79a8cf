//! The canonical tensor encoding (docs/determinism.md, "Tensor hashing"):
//! `"GBT1" || dtype code (u8, ONNX TensorProto code) || rank (u32 LE) ||
//! each dim (u64 LE) || elements (little-endian; bool as one byte 0/1)`.
//! Its BLAKE3 is the [`TensorHash`](crate::TensorHash) a trace commits to.
//! [`parse`] is the one check of that form: the ledger checks job inputs
//! and outputs with it, the runtime decodes the elements it returns.

use crate::tags;

/// The most dimensions a tensor has.
pub const MAX_RANK: usize = 32;

/// A checked header of a canonical tensor encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorHeader {
    /// ONNX dtype code (one [`dtype_name`] knows).
    pub dtype_code: u8,
    /// The dimensions.
    pub shape: Vec<u64>,
}

impl TensorHeader {
    /// The numpy-style name of the dtype (`float32`, `int64`, ...).
    pub fn dtype_name(&self) -> &'static str {
        dtype_name(self.dtype_code).unwrap_or("unknown")
    }
}

/// The numpy-style name of ONNX dtype `code`, for the dtypes the protocol
/// carries; `None` for any other code.
pub fn dtype_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        11 => "float64",
        _ => return None,
    })
}

/// The ONNX dtype code of numpy-style `name` ([`dtype_name`]'s inverse);
/// `None` for a dtype the protocol does not carry.
pub fn dtype_code(name: &str) -> Option<u8> {
    [1u8, 2, 3, 6, 7, 9, 11]
        .into_iter()
        .find(|&c| dtype_name(c) == Some(name))
}

/// Bytes per element of ONNX dtype `code`; `None` for an unknown code.
pub fn dtype_size(code: u8) -> Option<u64> {
    dtype_name(code)?;
    Some(match code {
        11 | 7 => 8,
        1 | 6 => 4,
        _ => 1,
    })
}

/// Checks that `bytes` is a canonical tensor encoding: the tag, a known
/// dtype, rank at most [`MAX_RANK`], exactly as many element bytes as the
/// shape needs (no overflow), booleans 0 or 1. Returns the header and the
/// element bytes; the message says what is wrong.
pub fn parse(bytes: &[u8]) -> Result<(TensorHeader, &[u8]), String> {
    let rest = bytes
        .strip_prefix(tags::TENSOR)
        .ok_or("missing the GBT1 tag")?;
    let (&code, rest) = rest.split_first().ok_or("truncated before the dtype")?;
    let size = dtype_size(code).ok_or_else(|| format!("unknown dtype code {code}"))?;
    let (rank, mut rest) = rest
        .split_first_chunk::<4>()
        .map(|(r, rest)| (u32::from_le_bytes(*r), rest))
        .ok_or("truncated before the rank")?;
    let rank = usize::try_from(rank).unwrap_or(usize::MAX);
    if rank > MAX_RANK {
        return Err(format!("rank {rank} is over the limit of {MAX_RANK}"));
    }
    let mut shape = Vec::with_capacity(rank);
    let mut elements: u64 = 1;
    for i in 0..rank {
        let (d, r) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| format!("truncated in dimension {i}"))?;
        let d = u64::from_le_bytes(*d);
        elements = elements
            .checked_mul(d)
            .ok_or_else(|| format!("dimension {i} overflows the element count"))?;
        shape.push(d);
        rest = r;
    }
    let want = elements
        .checked_mul(size)
        .ok_or("the element bytes overflow")?;
    if u64::try_from(rest.len()).unwrap_or(u64::MAX) != want {
        return Err(format!(
            "{} element bytes where shape {shape:?} of {} needs {want}",
            rest.len(),
            dtype_name(code).unwrap_or("?")
        ));
    }
    if code == 9 && rest.iter().any(|&b| b > 1) {
        return Err("a bool element is neither 0 nor 1".into());
    }
    Ok((
        TensorHeader {
            dtype_code: code,
            shape,
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(code: u8, shape: &[u64], elements: &[u8]) -> Vec<u8> {
        let mut b = tags::TENSOR.to_vec();
        b.push(code);
        b.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in shape {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(elements);
        b
    }

    #[test]
    fn accepts_the_canonical_form_and_names_what_is_wrong() {
        let ok = encode(1, &[2], &[0; 8]);
        let (h, rest) = parse(&ok).unwrap();
        assert_eq!(
            (h.dtype_name(), h.shape.as_slice(), rest.len()),
            ("float32", &[2u64][..], 8)
        );
        let scalar = encode(7, &[], &[0; 8]);
        assert_eq!(parse(&scalar).unwrap().0.shape, Vec::<u64>::new());
        let cases: [(Vec<u8>, &str); 8] = [
            (b"GBT2".to_vec(), "missing the GBT1 tag"),
            (tags::TENSOR.to_vec(), "truncated before the dtype"),
            (encode(4, &[1], &[0; 2]), "unknown dtype code 4"),
            (ok[..7].to_vec(), "truncated before the rank"),
            (encode(2, &[1; 33], &[0]), "rank 33 is over the limit of 32"),
            (
                encode(1, &[2], &[0; 7]),
                "7 element bytes where shape [2] of float32 needs 8",
            ),
            (
                encode(2, &[u64::MAX, 2], &[]),
                "dimension 1 overflows the element count",
            ),
            (encode(9, &[1], &[2]), "a bool element is neither 0 nor 1"),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(&bytes).unwrap_err(), want);
        }
        assert_eq!(
            parse(&encode(7, &[u64::MAX / 4], &[])).unwrap_err(),
            "the element bytes overflow"
        );
    }
}

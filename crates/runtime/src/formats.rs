//! Tensor file formats, decoded from and encoded to bytes (no file I/O):
//! NumPy `.npy`, ONNX `TensorProto` (`.pb`) and nested JSON arrays.

use glassbox_primitives::tags;
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::{decode_le, onnx, tensor_from_proto, tensor_to_proto};
use crate::tensor::{DType, Data, Tensor, checked_len};

fn bad(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::Tensor(format!("{what}: {msg}"))
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

fn npy_descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    }
}

fn npy_dtype(descr: &str) -> Option<DType> {
    Some(match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "|i1" | "<i1" | "i1" => DType::I8,
        "|u1" | "<u1" | "u1" => DType::U8,
        "|b1" | "<b1" | "b1" => DType::Bool,
        _ => return None,
    })
}

/// Decodes a `.npy` file (format versions 1 to 3, C order, little-endian).
pub fn npy_decode(bytes: &[u8], max_elements: usize) -> Result<Tensor> {
    let e = |m: String| bad("npy", m);
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(e("not a .npy file (bad magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(e(format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len());
    let end = end.ok_or_else(|| e("header is truncated".into()))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| e("header is not UTF-8".into()))?;
    let field = |key: &str| -> Result<&str> {
        let k = format!("'{key}':");
        let i = header
            .find(&k)
            .ok_or_else(|| e(format!("header has no `{key}`")))?;
        Ok(header[i + k.len()..].trim_start())
    };
    let descr_src = field("descr")?;
    let descr = descr_src
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| e("malformed descr".into()))?;
    let dtype = npy_dtype(descr).ok_or_else(|| {
        e(format!(
            "unsupported dtype `{descr}` (use little-endian f4, f8, i8, i4, i1, u1 or b1)"
        ))
    })?;
    if field("fortran_order")?.starts_with("True") {
        return Err(e(
            "fortran_order arrays are not supported; save in C order".into()
        ));
    }
    let shape_src = field("shape")?;
    let inner = shape_src
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| e("malformed shape".into()))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(
            part.parse::<usize>()
                .map_err(|_| e(format!("bad dimension `{part}`")))?,
        );
    }
    let len = checked_len(&shape).ok_or_else(|| e(format!("shape {shape:?} overflows")))?;
    if len > max_elements {
        return Err(e(format!(
            "{len} elements is over the limit of {max_elements}"
        )));
    }
    let body = &bytes[end..];
    let want = len * dtype.size_bytes();
    if body.len() != want {
        return Err(e(format!(
            "data has {} bytes, shape {shape:?} of {dtype} needs {want}",
            body.len()
        )));
    }
    Tensor::new(shape, decode_le(dtype, body)).map_err(|x| e(x.0))
}

/// Encodes a tensor as a version 1 `.npy` file.
pub fn npy_encode(t: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = t.shape().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        npy_descr(t.dtype())
    );
    // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.len() * t.dtype().size_bytes());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.to_le_bytes());
    out
}

/// Decodes a serialized ONNX `TensorProto` (`.pb`).
pub fn pb_decode(bytes: &[u8], max_elements: usize) -> Result<Tensor> {
    let proto = onnx::TensorProto::decode(bytes).map_err(|e| bad("TensorProto", e))?;
    tensor_from_proto(&proto, max_elements).map_err(|e| bad("TensorProto", e.0))
}

/// Encodes a tensor as a serialized ONNX `TensorProto`.
pub fn pb_encode(t: &Tensor, name: &str) -> Vec<u8> {
    tensor_to_proto(t, name).encode_to_vec()
}

/// Decodes nested JSON arrays of numbers (or booleans) as a tensor of `dtype`.
/// A bare number is a rank-0 tensor. Arrays must be rectangular.
pub fn json_decode(value: &serde_json::Value, dtype: DType, max_elements: usize) -> Result<Tensor> {
    let e = |m: String| bad("json", m);
    let mut shape = Vec::new();
    let mut v = value;
    while let serde_json::Value::Array(items) = v {
        shape.push(items.len());
        if shape.len() > 64 {
            return Err(e("arrays are nested more than 64 deep".into()));
        }
        match items.first() {
            Some(first) => v = first,
            None => break,
        }
    }
    let len = checked_len(&shape).ok_or_else(|| e(format!("shape {shape:?} overflows")))?;
    if len > max_elements {
        return Err(e(format!(
            "{len} elements is over the limit of {max_elements}"
        )));
    }
    let mut leaves = Vec::with_capacity(len);
    flatten(value, &shape, 0, &mut leaves, &mut Vec::new())?;
    let num = |x: &serde_json::Value, path: &str| -> Result<f64> {
        match x {
            serde_json::Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| e(format!("{path}: number out of range"))),
            serde_json::Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            other => Err(e(format!("{path}: expected a number, got {other}"))),
        }
    };
    let int = |x: &serde_json::Value, path: &str| -> Result<i64> {
        match x {
            serde_json::Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| e(format!("{path}: expected an integer, got {n}"))),
            serde_json::Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(e(format!("{path}: expected an integer, got {other}"))),
        }
    };
    macro_rules! ints {
        ($t:ty) => {{
            let mut out = Vec::with_capacity(len);
            for (x, path) in &leaves {
                let i = int(x, path)?;
                out.push(
                    <$t>::try_from(i)
                        .map_err(|_| e(format!("{path}: {i} does not fit in {}", dtype)))?,
                );
            }
            out
        }};
    }
    let data = match dtype {
        DType::F32 => Data::F32(
            leaves
                .iter()
                .map(|(x, p)| num(x, p).map(|f| f as f32))
                .collect::<Result<_>>()?,
        ),
        DType::F64 => Data::F64(
            leaves
                .iter()
                .map(|(x, p)| num(x, p))
                .collect::<Result<_>>()?,
        ),
        DType::I64 => Data::I64(ints!(i64)),
        DType::I32 => Data::I32(ints!(i32)),
        DType::I8 => Data::I8(ints!(i8)),
        DType::U8 => Data::U8(ints!(u8)),
        DType::Bool => Data::Bool(
            leaves
                .iter()
                .map(|(x, p)| num(x, p).map(|f| f != 0.0))
                .collect::<Result<_>>()?,
        ),
    };
    Tensor::new(shape, data).map_err(|x| e(x.0))
}

fn flatten<'a>(
    v: &'a serde_json::Value,
    shape: &[usize],
    depth: usize,
    out: &mut Vec<(&'a serde_json::Value, String)>,
    path: &mut Vec<usize>,
) -> Result<()> {
    let here = || {
        format!(
            "[{}]",
            path.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("][")
        )
    };
    match (v, shape.get(depth)) {
        (serde_json::Value::Array(items), Some(&n)) => {
            if items.len() != n {
                return Err(bad(
                    "json",
                    format!(
                        "ragged array at {}: {} items, expected {n}",
                        here(),
                        items.len()
                    ),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                path.push(i);
                flatten(item, shape, depth + 1, out, path)?;
                path.pop();
            }
            Ok(())
        }
        (serde_json::Value::Array(_), None) => Err(bad(
            "json",
            format!("array nested deeper than the rest at {}", here()),
        )),
        (_, Some(_)) => Err(bad("json", format!("expected an array at {}", here()))),
        (leaf, None) => {
            out.push((leaf, here()));
            Ok(())
        }
    }
}

/// Encodes a tensor as nested JSON arrays.
pub fn json_encode(t: &Tensor) -> serde_json::Value {
    fn nest(flat: &[serde_json::Value], shape: &[usize]) -> serde_json::Value {
        match shape.split_first() {
            None => flat.first().cloned().unwrap_or(serde_json::Value::Null),
            Some((&n, rest)) => {
                let step = rest.iter().product::<usize>();
                serde_json::Value::Array(
                    (0..n)
                        .map(|i| nest(&flat[i * step..(i + 1) * step], rest))
                        .collect(),
                )
            }
        }
    }
    let flat: Vec<serde_json::Value> = match t.data() {
        Data::F32(v) => v.iter().map(|&x| json_f32(x)).collect(),
        Data::F64(v) => v.iter().map(|&x| json_float(x)).collect(),
        Data::I64(v) => v.iter().map(|&x| x.into()).collect(),
        Data::I32(v) => v.iter().map(|&x| x.into()).collect(),
        Data::I8(v) => v.iter().map(|&x| x.into()).collect(),
        Data::U8(v) => v.iter().map(|&x| x.into()).collect(),
        Data::Bool(v) => v.iter().map(|&x| x.into()).collect(),
    };
    nest(&flat, t.shape())
}

/// The shortest decimal that reads back as the same `f32`.
fn json_f32(x: f32) -> serde_json::Value {
    if !x.is_finite() {
        return serde_json::Value::String(x.to_string());
    }
    serde_json::from_str::<serde_json::Number>(&x.to_string())
        .map_or_else(|_| json_float(f64::from(x)), serde_json::Value::Number)
}

fn json_float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x)
        .map_or_else(|| serde_json::Value::String(x.to_string()), Into::into)
}

/// The canonical encoding of `t` (docs/determinism.md, "Tensor hashing"):
/// `"GBT1" || dtype code (u8) || rank (u32 LE) || dims (u64 LE each) ||
/// elements little-endian`. Its BLAKE3 is [`Tensor::hash`]; jobs carry
/// their inputs and outputs in this form (docs/jobs.md).
pub fn canonical_encode(t: &Tensor) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 8 * t.rank() + t.len() * t.dtype().size_bytes());
    out.extend_from_slice(tags::TENSOR);
    out.push(t.dtype().onnx_code() as u8);
    out.extend_from_slice(&(t.rank() as u32).to_le_bytes());
    for &d in t.shape() {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out.extend_from_slice(&t.to_le_bytes());
    out
}

/// The length of [`canonical_encode`]'s form of `t`, without encoding it.
pub fn canonical_len(t: &Tensor) -> u64 {
    (9 + 8 * t.rank() as u64)
        .saturating_add((t.len() as u64).saturating_mul(t.dtype().size_bytes() as u64))
}

/// Decodes [`canonical_encode`]'s form, checked by
/// `glassbox_primitives::tensor::parse` (a known dtype, rank at most 32,
/// exactly as many element bytes as the shape needs, booleans 0 or 1), of
/// at most `max_elements` elements.
pub fn canonical_decode(bytes: &[u8], max_elements: usize) -> Result<Tensor> {
    let e = |m: String| bad("canonical tensor", m);
    let (header, elements) = glassbox_primitives::tensor::parse(bytes).map_err(e)?;
    let dtype = DType::from_onnx(i32::from(header.dtype_code))
        .ok_or_else(|| e(format!("unknown dtype code {}", header.dtype_code)))?;
    let shape = header
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            usize::try_from(d).map_err(|_| e(format!("dimension {i} does not fit in memory")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let len = checked_len(&shape).ok_or_else(|| e(format!("shape {shape:?} overflows")))?;
    if len > max_elements {
        return Err(e(format!(
            "{len} elements is over the limit of {max_elements}"
        )));
    }
    Tensor::new(shape, decode_le(dtype, elements)).map_err(|x| e(x.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_round_trip_hashes_like_the_trace() {
        let t = Tensor::from_vec(vec![2, 3], vec![1.5f32, -0.0, 3.0, f32::MAX, 5.0, 6.0]).unwrap();
        let bytes = canonical_encode(&t);
        assert_eq!(
            glassbox_primitives::TensorHash::from(blake3::hash(&bytes)),
            t.hash()
        );
        assert_eq!(canonical_decode(&bytes, 6).unwrap(), t);
        let b = Tensor::from_vec(vec![3], vec![true, false, true]).unwrap();
        assert_eq!(
            glassbox_primitives::TensorHash::from(blake3::hash(&canonical_encode(&b))),
            b.hash()
        );
        assert!(canonical_decode(&bytes, 5).is_err(), "element limit");
        assert!(
            canonical_decode(&bytes[..bytes.len() - 1], 6).is_err(),
            "truncated"
        );
        let mut bad_bool = canonical_encode(&b);
        *bad_bool.last_mut().unwrap() = 2;
        assert!(canonical_decode(&bad_bool, 6).is_err(), "bool 2");
        let mut bad_rank = bytes.clone();
        bad_rank[5] = 33;
        assert!(canonical_decode(&bad_rank, 6).is_err(), "rank 33");
    }

    use super::*;

    #[test]
    fn npy_round_trips_every_dtype() {
        let ts = [
            Tensor::from_vec(vec![2, 3], vec![1.5f32, -2.0, 0.0, 3.25, 4.0, -0.5]).unwrap(),
            Tensor::from_vec(vec![3], vec![1i64, -2, 3]).unwrap(),
            Tensor::from_vec(vec![], vec![7.0f64]).unwrap(),
            Tensor::from_vec(vec![2], vec![true, false]).unwrap(),
            Tensor::from_vec(vec![0, 4], Vec::<u8>::new()).unwrap(),
        ];
        for t in ts {
            let bytes = npy_encode(&t);
            assert_eq!((bytes.len() - t.len() * t.dtype().size_bytes()) % 64, 0);
            assert_eq!(npy_decode(&bytes, 1 << 20).unwrap(), t);
            assert_eq!(pb_decode(&pb_encode(&t, "x"), 1 << 20).unwrap(), t);
        }
    }

    #[test]
    fn npy_rejects_bad_input() {
        let t = Tensor::from_vec(vec![4], vec![1i32, 2, 3, 4]).unwrap();
        let good = npy_encode(&t);
        assert!(npy_decode(&good[..good.len() - 1], 100).is_err());
        assert!(npy_decode(&good, 3).is_err());
        assert!(npy_decode(b"not npy at all", 100).is_err());
        for cut in 0..good.len() {
            let _ = npy_decode(&good[..cut], 100);
        }
    }

    #[test]
    fn json_decodes_nested_arrays() {
        let v: serde_json::Value = serde_json::from_str("[[1, 2], [3, 4.5]]").unwrap();
        let t = json_decode(&v, DType::F32, 100).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.f32s().unwrap(), &[1.0, 2.0, 3.0, 4.5]);
        let ragged: serde_json::Value = serde_json::from_str("[[1, 2], [3]]").unwrap();
        let err = json_decode(&ragged, DType::F32, 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ragged"), "{err}");
        let frac: serde_json::Value = serde_json::from_str("[1.5]").unwrap();
        assert!(json_decode(&frac, DType::I64, 100).is_err());
        let back = json_decode(&json_encode(&t), DType::F32, 100).unwrap();
        assert_eq!(back, t);
    }
}

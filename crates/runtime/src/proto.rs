//! ONNX protobuf messages (generated at build time from the vendored
//! `proto/onnx.proto`) and conversion of `TensorProto` into [`Tensor`]s.

use crate::error::{OpError, OpResult};
use crate::tensor::{DType, Data, Tensor, checked_len};

/// Generated ONNX messages.
#[allow(
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    missing_debug_implementations,
    unused_qualifications,
    missing_docs
)]
pub mod onnx {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use onnx::TensorProto;

/// Decodes a `TensorProto`, refusing more than `max_elements` elements and
/// any data whose length disagrees with the dims.
pub fn tensor_from_proto(t: &TensorProto, max_elements: usize) -> OpResult<Tensor> {
    let name = t.name.as_deref().unwrap_or("");
    let err = |msg: String| OpError(format!("tensor `{name}`: {msg}"));
    if t.data_location == Some(onnx::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        return Err(err(
            "external data is not supported; embed the weights in the model".into(),
        ));
    }
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let code = t.data_type.unwrap_or(0);
    let dtype =
        DType::from_onnx(code).ok_or_else(|| err(format!("unsupported data type code {code}")))?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| err(format!("negative dimension {d}")))?;
        shape.push(d);
    }
    let len = checked_len(&shape).ok_or_else(|| err(format!("shape {shape:?} overflows")))?;
    if len > max_elements {
        return Err(err(format!(
            "{len} elements is over the limit of {max_elements} (shape {shape:?})"
        )));
    }
    let data = if let Some(raw) = t.raw_data.as_deref().filter(|r| !r.is_empty() || len == 0) {
        let want = len * dtype.size_bytes();
        if raw.len() != want {
            return Err(err(format!(
                "raw_data has {} bytes, shape {shape:?} of {dtype} needs {want}",
                raw.len()
            )));
        }
        decode_le(dtype, raw)
    } else {
        let typed = match dtype {
            DType::F32 => Data::F32(t.float_data.clone()),
            DType::F64 => Data::F64(t.double_data.clone()),
            DType::I64 => Data::I64(t.int64_data.clone()),
            DType::I32 => Data::I32(t.int32_data.clone()),
            // int32_data holds the narrower types, one per element.
            DType::I8 => Data::I8(t.int32_data.iter().map(|&v| v as i8).collect()),
            DType::U8 => Data::U8(t.int32_data.iter().map(|&v| v as u8).collect()),
            DType::Bool => Data::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
        };
        if typed.len() != len {
            return Err(err(format!(
                "has {} {dtype} elements, shape {shape:?} needs {len}",
                typed.len()
            )));
        }
        typed
    };
    Tensor::new(shape, data).map_err(|e| err(e.0))
}

/// Decodes little-endian element bytes. `raw.len()` must be a multiple of the
/// element size.
pub fn decode_le(dtype: DType, raw: &[u8]) -> Data {
    macro_rules! le {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    <$t>::from_le_bytes(b)
                })
                .collect()
        };
    }
    match dtype {
        DType::F32 => Data::F32(le!(f32, 4)),
        DType::F64 => Data::F64(le!(f64, 8)),
        DType::I64 => Data::I64(le!(i64, 8)),
        DType::I32 => Data::I32(le!(i32, 4)),
        DType::I8 => Data::I8(raw.iter().map(|&b| b as i8).collect()),
        DType::U8 => Data::U8(raw.to_vec()),
        DType::Bool => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
    }
}

/// Encodes a tensor as a `TensorProto` with `raw_data`.
pub fn tensor_to_proto(t: &Tensor, name: &str) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype().onnx_code()),
        name: Some(name.to_string()),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}

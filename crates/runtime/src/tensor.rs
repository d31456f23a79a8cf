//! Typed, dense, row-major tensors and their canonical encoding.
//!
//! The canonical encoding (docs/determinism.md, "Tensor hashing") is what the
//! execution trace commits to: `"GBT1" || dtype code (u8) || rank (u32 LE) ||
//! dims (u64 LE each) || elements little-endian` (bool as one byte, 0 or 1).

use glassbox_primitives::{TensorHash, tags};

use crate::error::{OpError, OpResult};

/// Element types the runtime computes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary64.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean, one byte per element.
    Bool,
}

impl DType {
    /// All dtypes, in code order.
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];

    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F64 => 11,
        }
    }

    /// The dtype for an ONNX `TensorProto.DataType` code, if supported.
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            11 => DType::F64,
            _ => return None,
        })
    }

    /// The numpy-style name (`float32`, `int64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Parses a numpy-style name.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether the dtype is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// binary32 elements.
    F32(Vec<f32>),
    /// binary64 elements.
    F64(Vec<f64>),
    /// int64 elements.
    I64(Vec<i64>),
    /// int32 elements.
    I32(Vec<i32>),
    /// int8 elements.
    I8(Vec<i8>),
    /// uint8 elements.
    U8(Vec<u8>),
    /// bool elements.
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a [`Data`].
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::Data::F32($v) => $body,
            $crate::Data::F64($v) => $body,
            $crate::Data::I64($v) => $body,
            $crate::Data::I32($v) => $body,
            $crate::Data::I8($v) => $body,
            $crate::Data::U8($v) => $body,
            $crate::Data::Bool($v) => $body,
        }
    };
}

impl Data {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I64(_) => DType::I64,
            Data::I32(_) => DType::I32,
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` zero (false) elements of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![0.0; len]),
            DType::F64 => Data::F64(vec![0.0; len]),
            DType::I64 => Data::I64(vec![0; len]),
            DType::I32 => Data::I32(vec![0; len]),
            DType::I8 => Data::I8(vec![0; len]),
            DType::U8 => Data::U8(vec![0; len]),
            DType::Bool => Data::Bool(vec![false; len]),
        }
    }

    /// Gathers elements by index into a new vector of the same dtype.
    pub fn gather(&self, indices: impl Iterator<Item = usize>) -> Data {
        match self {
            Data::F32(v) => Data::F32(indices.map(|i| v[i]).collect()),
            Data::F64(v) => Data::F64(indices.map(|i| v[i]).collect()),
            Data::I64(v) => Data::I64(indices.map(|i| v[i]).collect()),
            Data::I32(v) => Data::I32(indices.map(|i| v[i]).collect()),
            Data::I8(v) => Data::I8(indices.map(|i| v[i]).collect()),
            Data::U8(v) => Data::U8(indices.map(|i| v[i]).collect()),
            Data::Bool(v) => Data::Bool(indices.map(|i| v[i]).collect()),
        }
    }
}

/// Element types with a [`DType`]: lets generic kernels reach typed slices.
pub trait Elem: Copy + PartialOrd + Default + Send + Sync + std::fmt::Debug + 'static {
    /// The dtype of this element type.
    const DTYPE: DType;
    /// The typed slice inside `data`, if it has this dtype.
    fn slice(data: &Data) -> Option<&[Self]>;
    /// Wraps a vector into [`Data`].
    fn wrap(v: Vec<Self>) -> Data;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$variant;
            fn slice(data: &Data) -> Option<&[Self]> {
                match data {
                    Data::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> Data {
                Data::$variant(v)
            }
        }
    };
}
impl_elem!(f32, F32);
impl_elem!(f64, F64);
impl_elem!(i64, I64);
impl_elem!(i32, I32);
impl_elem!(i8, I8);
impl_elem!(u8, U8);
impl_elem!(bool, Bool);

/// Number of elements of a shape, or `None` on overflow.
pub fn checked_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Row-major strides of a shape (in elements).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A dense, row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Data,
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    pub fn new(shape: Vec<usize>, data: Data) -> OpResult<Tensor> {
        let want = checked_len(&shape)
            .ok_or_else(|| OpError(format!("shape {shape:?} overflows the element count")))?;
        if want != data.len() {
            return Err(OpError(format!(
                "shape {shape:?} needs {want} elements but {} were given",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// Builds a tensor from a typed vector.
    pub fn from_vec<T: Elem>(shape: Vec<usize>, v: Vec<T>) -> OpResult<Tensor> {
        Tensor::new(shape, T::wrap(v))
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Elem>(v: T) -> Tensor {
        Tensor {
            shape: vec![],
            data: T::wrap(vec![v]),
        }
    }

    /// A tensor of zeros.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> OpResult<Tensor> {
        let len = checked_len(&shape)
            .ok_or_else(|| OpError(format!("shape {shape:?} overflows the element count")))?;
        Ok(Tensor {
            shape,
            data: Data::zeros(dtype, len),
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> Data {
        self.data
    }

    /// Same elements, new shape of equal element count.
    pub fn reshaped(self, shape: Vec<usize>) -> OpResult<Tensor> {
        Tensor::new(shape, self.data)
    }

    /// The typed elements, or an error naming both dtypes.
    pub fn as_slice<T: Elem>(&self) -> OpResult<&[T]> {
        T::slice(&self.data).ok_or_else(|| {
            OpError(format!(
                "expected a {} tensor, got {}",
                T::DTYPE,
                self.dtype()
            ))
        })
    }

    /// The f32 elements, or an error.
    pub fn f32s(&self) -> OpResult<&[f32]> {
        self.as_slice::<f32>()
    }

    /// The elements of an integer tensor (int64 or int32) as `i64`s.
    pub fn to_i64s(&self) -> OpResult<Vec<i64>> {
        match &self.data {
            Data::I64(v) => Ok(v.clone()),
            Data::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Data::I8(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Data::U8(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            _ => Err(OpError(format!(
                "expected an integer tensor, got {}",
                self.dtype()
            ))),
        }
    }

    /// The canonical hash of this tensor (docs/determinism.md, "Tensor hashing").
    pub fn hash(&self) -> TensorHash {
        let mut h = TensorHasher::new();
        self.hash_header(&mut h);
        self.for_each_le_chunk(|bytes| h.update(bytes));
        TensorHash::from_bytes(h.finalize())
    }

    /// Feeds the header of the canonical encoding (everything before the
    /// elements) into a hasher.
    pub(crate) fn hash_header(&self, h: &mut TensorHasher) {
        h.update(tags::TENSOR);
        h.update(&[self.dtype().onnx_code() as u8]);
        h.update(&(self.shape.len() as u32).to_le_bytes());
        for &d in &self.shape {
            h.update(&(d as u64).to_le_bytes());
        }
    }

    /// The elements' canonical bytes without copying, where memory already
    /// holds them (little-endian hosts, every dtype but bool).
    pub(crate) fn le_bytes(&self) -> Option<&[u8]> {
        #[cfg(target_endian = "little")]
        {
            match &self.data {
                Data::F32(v) => Some(bytemuck::cast_slice(v)),
                Data::F64(v) => Some(bytemuck::cast_slice(v)),
                Data::I64(v) => Some(bytemuck::cast_slice(v)),
                Data::I32(v) => Some(bytemuck::cast_slice(v)),
                Data::I8(v) => Some(bytemuck::cast_slice(v)),
                Data::U8(v) => Some(v),
                Data::Bool(_) => None,
            }
        }
        #[cfg(not(target_endian = "little"))]
        {
            None
        }
    }

    /// The elements in canonical little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size_bytes());
        self.for_each_le_chunk(|b| out.extend_from_slice(b));
        out
    }

    /// Calls `f` with consecutive chunks of the little-endian element bytes.
    fn for_each_le_chunk(&self, mut f: impl FnMut(&[u8])) {
        const CHUNK: usize = 4096;
        // On little-endian hosts the in-memory bytes are the canonical bytes.
        #[cfg(target_endian = "little")]
        macro_rules! chunked {
            ($v:expr) => {
                f(bytemuck::cast_slice($v))
            };
        }
        #[cfg(not(target_endian = "little"))]
        macro_rules! chunked {
            ($v:expr) => {{
                let mut buf = Vec::with_capacity(CHUNK * 8);
                for part in $v.chunks(CHUNK) {
                    buf.clear();
                    for x in part {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                    f(&buf);
                }
            }};
        }
        match &self.data {
            Data::F32(v) => chunked!(v),
            Data::F64(v) => chunked!(v),
            Data::I64(v) => chunked!(v),
            Data::I32(v) => chunked!(v),
            Data::I8(v) => chunked!(v),
            Data::U8(v) => f(v),
            Data::Bool(v) => {
                for part in v.chunks(CHUNK) {
                    let bytes: Vec<u8> = part.iter().map(|&b| u8::from(b)).collect();
                    f(&bytes);
                }
            }
        }
    }
}

/// Bytes of a tensor's canonical encoding handed to BLAKE3 in one piece:
/// sixteen 1 KiB chunks, the widest SIMD batch of the `blake3` crate.
const HASH_HEAD_BYTES: usize = 16 * 1024;

/// A BLAKE3 hasher for one canonical encoding that collects the stream's
/// first [`HASH_HEAD_BYTES`] before passing them on. `blake3` hashes many
/// chunks at once (SIMD across chunks) only for whole power-of-two subtrees
/// that start at a multiple of their size, so a stream fed as a short header
/// and then the elements would have its first chunks hashed one or two at a
/// time: a 25 KB tensor at half speed. Once sixteen whole chunks have gone
/// in together, every later update starts aligned. The hash is that of the
/// bytes in order, however they are split.
pub(crate) struct TensorHasher {
    hasher: blake3::Hasher,
    /// The head collected so far; passed on once it is full (on the heap,
    /// not zeroed: a hasher is built for every tensor hashed).
    head: Vec<u8>,
}

impl TensorHasher {
    pub(crate) fn new() -> TensorHasher {
        TensorHasher {
            hasher: blake3::Hasher::new(),
            head: Vec::with_capacity(HASH_HEAD_BYTES),
        }
    }

    /// Copies into the head what it still lacks and returns the rest of
    /// `bytes`, which goes straight to the hasher (the head has gone first).
    fn fill<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let filled = self.head.len();
        if filled == HASH_HEAD_BYTES {
            return bytes;
        }
        let (now, rest) = bytes.split_at(bytes.len().min(HASH_HEAD_BYTES - filled));
        self.head.extend_from_slice(now);
        if self.head.len() == HASH_HEAD_BYTES {
            self.hasher.update(&self.head);
        }
        rest
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let rest = self.fill(bytes);
        if !rest.is_empty() {
            self.hasher.update(rest);
        }
    }

    /// [`TensorHasher::update`], hashing what follows the head on the
    /// current rayon pool.
    pub(crate) fn update_rayon(&mut self, bytes: &[u8]) {
        let rest = self.fill(bytes);
        if !rest.is_empty() {
            self.hasher.update_rayon(rest);
        }
    }

    pub(crate) fn finalize(mut self) -> [u8; 32] {
        if self.head.len() < HASH_HEAD_BYTES {
            self.hasher.update(&self.head);
        }
        *self.hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffered hasher gives BLAKE3 of the bytes in order for every
    /// length around the head's size and every way of splitting the stream.
    #[test]
    fn tensor_hasher_is_blake3_of_the_stream() {
        let stream: Vec<u8> = (0..70_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for len in [
            0, 1, 13, 1024, 16_383, 16_384, 16_385, 17_408, 40_000, 70_000,
        ] {
            let want = *blake3::hash(&stream[..len]).as_bytes();
            for split in [1, 13, 1000, 4096, 16_384, 16_400, 70_000] {
                let mut h = TensorHasher::new();
                for part in stream[..len].chunks(split) {
                    h.update(part);
                }
                assert_eq!(h.finalize(), want, "len {len}, parts of {split}");
                let mut h = TensorHasher::new();
                let (a, b) = stream[..len].split_at(len.min(split));
                h.update(a);
                h.update_rayon(b);
                assert_eq!(h.finalize(), want, "len {len}, rayon after {split}");
            }
        }
    }

    /// The canonical hash is BLAKE3 of the encoding written out in full.
    #[test]
    fn hash_is_blake3_of_the_canonical_encoding() {
        for shape in [vec![], vec![3], vec![2, 4100], vec![5, 1, 3000]] {
            let n: usize = shape.iter().product();
            let t =
                Tensor::from_vec(shape.clone(), (0..n).map(|i| i as f32 * 0.5).collect()).unwrap();
            let mut enc = b"GBT1".to_vec();
            enc.push(1);
            enc.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            for &d in &shape {
                enc.extend_from_slice(&(d as u64).to_le_bytes());
            }
            enc.extend_from_slice(&t.to_le_bytes());
            assert_eq!(t.hash(), blake3::hash(&enc).into(), "shape {shape:?}");
        }
    }
}

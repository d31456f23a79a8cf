//! Glassbox's deterministic ONNX runtime.
//!
//! Loads ONNX models ([`Model::load`]), plans them for concrete input shapes
//! (shape inference, cost, constant folding), and runs them node by node on
//! kernels whose arithmetic follows one canonical order
//! (docs/determinism.md), so that the same model and inputs give the same
//! bits on every CPU, SIMD path and thread count. Every run yields an
//! execution [`Trace`]: one leaf per node over the canonical hashes of its
//! outputs, committed to by a Merkle root bound to the model id and inputs.
//!
//! The crate is pure computation: no file or network I/O, no async.

mod attrs;
pub mod broadcast;
pub mod canon;
mod cost;
mod error;
mod exec;
pub mod formats;
pub mod kernels;
mod model;
pub mod ops;
pub mod proto;
mod tensor;
pub mod trace;

pub use attrs::{Attr, Attrs};
pub use broadcast::broadcast_shapes;
pub use cost::Cost;
pub use error::{Error, OpError, OpResult, Result};
pub use exec::{
    KNOWN_FLOAT_INPUT_MAX_ELEMENTS, KNOWN_INPUT_MAX_ELEMENTS, Options, Plan, RunOutput,
    SERIAL_BELOW, Session,
};
pub use kernels::{Isa, KernelChoice};
pub use model::{Dim, Limits, MAX_OPSET, MAX_SUBGRAPH_DEPTH, MIN_OPSET, Model, Node, ValueInfo};
pub use ops::control::MAX_LOOP_ITERATIONS;
pub use tensor::{DType, Data, Elem, Tensor, checked_len, strides};
pub use trace::{TensorHash, Trace, TraceLeaf, TraceRoot};

/// The runtime's version, part of every manifest that records a cost.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! Error types of the runtime.

use thiserror::Error;

/// Everything that can go wrong while loading, planning or running a model.
#[derive(Debug, Error)]
pub enum Error {
    /// The model file is larger than [`crate::Limits::max_model_bytes`].
    #[error("model is {size_bytes} bytes, over the limit of {max_bytes} bytes")]
    ModelTooLarge {
        /// Size of the model file.
        size_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
    /// The bytes are not a valid ONNX `ModelProto`.
    #[error("malformed ONNX protobuf: {0}")]
    Decode(String),
    /// The model is structurally invalid (graph, values, opsets, initializers).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A node of the graph is unsupported or invalid, or failed while running.
    #[error("node #{index} `{name}` ({op}): {reason}")]
    Node {
        /// Index of the node in topological order.
        index: usize,
        /// Node name from the model (may be empty).
        name: String,
        /// The ONNX op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// A graph input given to a run does not match what the model expects.
    #[error("input `{name}`: {reason}")]
    Input {
        /// The graph input's name.
        name: String,
        /// What is wrong, and what the model expects.
        reason: String,
    },
    /// A configured limit (tensor elements, total cost, graph size) would be exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// A tensor could not be decoded or built.
    #[error("tensor: {0}")]
    Tensor(String),
    /// A trace proof or index is invalid.
    #[error("trace: {0}")]
    Trace(String),
}

/// Result alias of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error raised by one operator, without the node's context.
///
/// The executor wraps it into [`Error::Node`] with the node index, name and op.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// Result alias used by operator code.
pub type OpResult<T> = std::result::Result<T, OpError>;

/// Returns early with an [`OpError`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::OpError(format!($($arg)*)))
    };
}

/// Returns early with an [`OpError`] unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}

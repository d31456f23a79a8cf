//! Operators: the [`Op`] trait, its build context, and the registry that maps
//! ONNX op types to builders.
//!
//! Every op is specified by the ONNX operator documentation plus the canonical
//! arithmetic of docs/determinism.md; each file names the rules it follows.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use crate::attrs::Attrs;
use crate::cost::Cost;
use crate::error::{OpError, OpResult};
use crate::kernels::Ctx;
use crate::tensor::{DType, Tensor};

pub(crate) mod activation;
pub(crate) mod binary;
pub(crate) mod control;
pub(crate) mod conv;
pub(crate) mod conv_transpose;
pub(crate) mod einsum;
pub(crate) mod gather;
pub(crate) mod gemm;
pub(crate) mod index;
pub(crate) mod layernorm;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod reorder;
pub(crate) mod resize;
pub(crate) mod rnn;
pub(crate) mod shape;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod unary;
pub(crate) mod util;

/// What is known about a value before execution: dtype, shape and, when it is
/// a constant or computable from shapes alone, its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    /// Element type.
    pub dtype: DType,
    /// Concrete dimensions.
    pub shape: Vec<usize>,
    /// The value, when known before execution.
    pub value: Option<Arc<Tensor>>,
}

impl Fact {
    /// A fact with no known value.
    pub fn new(dtype: DType, shape: Vec<usize>) -> Fact {
        Fact {
            dtype,
            shape,
            value: None,
        }
    }

    /// A fact for a known tensor.
    pub fn known(t: Arc<Tensor>) -> Fact {
        Fact {
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            value: Some(t),
        }
    }

    /// Number of elements (saturating).
    pub fn len(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// Whether the value has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes (saturating).
    pub fn size_bytes(&self) -> u64 {
        (self.len() as u64).saturating_mul(self.dtype.size_bytes() as u64)
    }
}

/// The inputs of a node: present (`Some`) or omitted optional inputs (`None`).
#[derive(Debug)]
pub struct Args<'a, T> {
    items: &'a [Option<&'a T>],
    /// Bit `i`: input `i` is a constant of the model (see
    /// [`Args::is_constant`]).
    constants: u64,
}

// Written out: a derive would require `T: Copy`.
impl<T> Clone for Args<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Args<'_, T> {}

impl<'a, T> Args<'a, T> {
    /// Wraps a slice of optional inputs.
    pub fn new(items: &'a [Option<&'a T>]) -> Self {
        Args {
            items,
            constants: 0,
        }
    }

    /// Wraps a slice of optional inputs, of which those whose bit is set in
    /// `constants` (bit `i` for input `i`) are constants of the model.
    pub fn with_constants(items: &'a [Option<&'a T>], constants: u64) -> Self {
        Args { items, constants }
    }

    /// Whether input `i` is a constant of the model (an initializer, not
    /// overridden by a graph input): the same tensor on every run of this
    /// node, so an op may keep a form of it prepared across runs (packed
    /// weights). False when unknown.
    pub fn is_constant(&self, i: usize) -> bool {
        i < 64 && self.constants & (1 << i) != 0 && self.opt(i).is_some()
    }

    /// Number of input slots (present or omitted).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no input slots.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Input `i`, which must be present.
    pub fn get(&self, i: usize) -> OpResult<&'a T> {
        self.opt(i)
            .ok_or_else(|| OpError(format!("required input {i} is missing")))
    }

    /// Input `i`, if present.
    pub fn opt(&self, i: usize) -> Option<&'a T> {
        self.items.get(i).copied().flatten()
    }

    /// All present inputs, in order.
    pub fn present(&self) -> impl Iterator<Item = &'a T> + '_ {
        self.items.iter().filter_map(|x| *x)
    }
}

/// Everything an op builder may read from the node.
#[derive(Debug)]
pub struct BuildCtx<'a> {
    /// The ONNX op type.
    pub op_type: &'a str,
    /// The node's attributes.
    pub attrs: &'a Attrs,
    /// The model's default-domain opset version.
    pub opset: i64,
    /// Number of input slots of the node (including omitted ones).
    pub n_inputs: usize,
    /// Number of output slots of the node (including omitted ones).
    pub n_outputs: usize,
}

/// One operator instance, with its attributes already validated.
pub trait Op: Send + Sync + Debug {
    /// Output facts from input facts. Fails with the reason when the inputs
    /// are not acceptable (dtype, rank, shape, missing constant).
    ///
    /// Implementations may set [`Fact::value`] when the output is computable
    /// from shapes alone (e.g. `Shape`); the planner folds every node whose
    /// inputs all have values by running it.
    fn infer(&self, inputs: Args<'_, Fact>) -> OpResult<Vec<Fact>>;

    /// Cost from input and output facts. The default counts one operation per
    /// output element and the bytes of all inputs and outputs.
    fn cost(&self, inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
        default_cost(inputs, outputs, 1)
    }

    /// Computes the outputs. The executor checks them against `infer`.
    fn run(&self, ctx: &Ctx<'_>, inputs: Args<'_, Tensor>) -> OpResult<Vec<Tensor>>;

    /// Computes at least elements `elements` (row-major) of output
    /// `output` with less work than [`Op::run`], bit for bit as a full run
    /// computes them: what a dispute's referee needs for one chunk of a
    /// large output (docs/disputes.md, "Chunks"). `None` when the op has no
    /// cheaper way; the caller then runs it whole.
    fn region(
        &self,
        _ctx: &Ctx<'_>,
        _inputs: Args<'_, Tensor>,
        _output: usize,
        _elements: std::ops::Range<usize>,
    ) -> Option<OpResult<Region>> {
        None
    }

    /// How many times the cost model's operations understate this
    /// operator's time against the fastest kernels (at least 1). A
    /// dispute's referee prices a chunk's operations at this multiple
    /// ([`crate::Session::chunk_cost`]) so that its price tracks its time;
    /// `benches/referee_price.rs` measures the rates. Consensus-critical
    /// like the cost model: a block's referee budget is spent by it.
    fn time_weight(&self) -> u64 {
        1
    }

    /// How many output elements [`Op::region`] computes for `elements` of
    /// output `output`, from facts alone: the referee prices a chunk
    /// before reading its operands ([`crate::Session::chunk_cost`]).
    /// `None` exactly when `region` is `None` (the op runs whole).
    fn region_len(
        &self,
        _inputs: Args<'_, Fact>,
        _outputs: &[Fact],
        _output: usize,
        _elements: std::ops::Range<usize>,
    ) -> Option<usize> {
        None
    }
}

/// The elements a region of whole rows of `n` elements computes for
/// `elements` of an output of `total` elements: the rows that hold them,
/// or only `elements` where `partial_row` and they lie in one row.
pub(crate) fn rows_len(
    elements: std::ops::Range<usize>,
    n: usize,
    total: usize,
    partial_row: bool,
) -> usize {
    let rows = total.checked_div(n).unwrap_or(0);
    let r0 = (elements.start / n.max(1)).min(rows);
    let r1 = elements.end.div_ceil(n.max(1)).clamp(r0, rows);
    if partial_row && r1 == r0 + 1 {
        elements.len().min(n)
    } else {
        (r1 - r0).saturating_mul(n)
    }
}

/// [`Op::region`] of an element-wise op, whose every output element is a
/// function of the elements its (broadcast) inputs hold at its index
/// alone: the op run on one-dimensional tensors of exactly those elements.
/// The same values at any position give the same bits on every path
/// (docs/determinism.md, "Threads and SIMD paths"), so these are the full
/// run's elements.
pub(crate) fn elementwise_region(
    op: &dyn Op,
    ctx: &Ctx<'_>,
    inputs: Args<'_, Tensor>,
    elements: std::ops::Range<usize>,
) -> OpResult<Region> {
    let xs: Vec<&Tensor> = inputs.present().collect();
    let shapes: Vec<&[usize]> = xs.iter().map(|t| t.shape()).collect();
    let out = crate::broadcast::broadcast_shapes(&shapes)?;
    let total = crate::tensor::checked_len(&out).unwrap_or(0);
    let elements = elements.start.min(total)..elements.end.clamp(elements.start.min(total), total);
    let out_strides = crate::tensor::strides(&out);
    let parts: Vec<Tensor> = xs
        .iter()
        .map(|t| {
            let st = crate::broadcast::broadcast_strides(t.shape(), &out);
            let at = |e: usize| {
                out_strides
                    .iter()
                    .zip(&out)
                    .zip(&st)
                    .map(|((&os, &d), &is)| (e / os.max(1)) % d.max(1) * is)
                    .sum::<usize>()
            };
            Tensor::new(
                vec![elements.len()],
                t.data().gather(elements.clone().map(at)),
            )
        })
        .collect::<OpResult<_>>()?;
    let refs: Vec<Option<&Tensor>> = parts.iter().map(Some).collect();
    let mut y = op.run(&Ctx::single(ctx.isa), Args::new(&refs))?;
    crate::ensure!(!y.is_empty(), "the op gave no output");
    Ok(Region {
        first: elements.start,
        elements: y.swap_remove(0),
    })
}

/// Some consecutive elements of one output, computed alone
/// ([`Op::region`]).
#[derive(Debug)]
pub struct Region {
    /// The row-major index of the first element in the output.
    pub first: usize,
    /// The elements, as a 1-D tensor.
    pub elements: Tensor,
}

/// Cost of `flops_per_element` operations per output element, plus all bytes
/// read and written.
pub fn default_cost(inputs: Args<'_, Fact>, outputs: &[Fact], flops_per_element: u64) -> Cost {
    let out_elems: u64 = outputs
        .iter()
        .map(|f| f.len() as u64)
        .fold(0, u64::saturating_add);
    let bytes = inputs
        .present()
        .map(Fact::size_bytes)
        .chain(outputs.iter().map(Fact::size_bytes))
        .fold(0u64, u64::saturating_add);
    Cost {
        flops: out_elems.saturating_mul(flops_per_element),
        bytes,
    }
}

/// Cost of a data-movement op: no flops, bytes read and written.
pub(crate) fn movement_cost(inputs: Args<'_, Fact>, outputs: &[Fact]) -> Cost {
    default_cost(inputs, outputs, 0)
}

/// Builds an op from its node.
pub type Builder = fn(&BuildCtx<'_>) -> OpResult<Box<dyn Op>>;

/// The table of supported op types (default ONNX domain).
#[derive(Debug, Default)]
pub struct Registry {
    builders: HashMap<&'static str, Builder>,
}

impl Registry {
    /// Registers a builder for an op type.
    pub fn add(&mut self, op_type: &'static str, builder: Builder) {
        self.builders.insert(op_type, builder);
    }

    /// The builder for an op type.
    pub fn get(&self, op_type: &str) -> Option<Builder> {
        self.builders.get(op_type).copied()
    }

    /// All supported op types, sorted.
    pub fn op_types(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.builders.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// The registry of every op this runtime implements, except `If` and `Loop`:
/// the loader builds those itself, with their subgraphs ([`control`]).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::default();
        activation::register(&mut r);
        binary::register(&mut r);
        conv::register(&mut r);
        conv_transpose::register(&mut r);
        einsum::register(&mut r);
        gather::register(&mut r);
        gemm::register(&mut r);
        index::register(&mut r);
        layernorm::register(&mut r);
        norm::register(&mut r);
        pool::register(&mut r);
        reduce::register(&mut r);
        reorder::register(&mut r);
        resize::register(&mut r);
        rnn::register(&mut r);
        shape::register(&mut r);
        unary::register(&mut r);
        r
    })
}

/// Builds the op for a node, or explains why it is unsupported.
pub fn build(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Op>> {
    let builder = registry()
        .get(ctx.op_type)
        .ok_or_else(|| OpError(format!("unsupported op type `{}`", ctx.op_type)))?;
    builder(ctx)
}

#[cfg(test)]
mod tests {
    /// The ops of the deterministic-runtime issue (MLPs and CNNs): none may
    /// silently disappear from the registry.
    #[test]
    fn registry_covers_the_cnn_op_set() {
        let required = "Add Sub Mul Div Pow Neg Abs Reciprocal Sqrt Exp Log Floor Ceil Relu \
            LeakyRelu Sigmoid Tanh Clip Max Min Mean Sum MatMul Gemm Conv MaxPool AveragePool \
            GlobalAveragePool GlobalMaxPool BatchNormalization LRN Softmax LogSoftmax Flatten \
            Reshape Transpose Concat Squeeze Unsqueeze Pad Gather Shape Cast Identity Dropout \
            Constant ConstantOfShape";
        let r = super::registry();
        let missing: Vec<&str> = required
            .split_whitespace()
            .filter(|op| r.get(op).is_none())
            .collect();
        assert!(missing.is_empty(), "missing ops: {missing:?}");
    }

    /// The ops of the coverage issue (transformers and real models); `If`
    /// and `Loop` are built by the loader (tests/control.rs).
    #[test]
    fn registry_covers_the_transformer_op_set() {
        let required = "Erf Gelu LayerNormalization RMSNormalization GroupNormalization \
            InstanceNormalization ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 \
            ReduceL2 ReduceSumSquare ReduceLogSumExp ArgMax ArgMin TopK Where Equal Less Greater \
            LessOrEqual GreaterOrEqual Not And Or Xor Expand Range Slice Split Tile Resize \
            ConvTranspose PRelu Elu Selu Celu Softplus Softsign HardSigmoid HardSwish Mish Sin \
            Cos Round Sign Mod CumSum OneHot Trilu Einsum GatherElements GatherND \
            ScatterElements ScatterND NonZero Size DepthToSpace SpaceToDepth IsNaN IsInf LSTM";
        let r = super::registry();
        let missing: Vec<&str> = required
            .split_whitespace()
            .filter(|op| r.get(op).is_none())
            .collect();
        assert!(missing.is_empty(), "missing ops: {missing:?}");
    }
}

//! Loading: ONNX bytes to a validated graph in topological order.

use std::collections::HashMap;
use std::sync::Arc;

use glassbox_primitives::ModelId;
use prost::Message;

use crate::attrs::{Attr, Attrs};
use crate::error::{Error, Result};
use crate::ops::{self, BuildCtx, Op};
use crate::proto::{onnx, tensor_from_proto};
use crate::tensor::{DType, Tensor};

/// Oldest default-domain opset accepted.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset accepted.
pub const MAX_OPSET: i64 = 28;

/// Limits that keep hostile models and inputs from exhausting the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest model file accepted.
    pub max_model_bytes: usize,
    /// Most nodes in a graph.
    pub max_nodes: usize,
    /// Most elements in any one tensor (initializer, input or computed).
    pub max_tensor_elements: usize,
    /// Largest total cost (flops) of one run, checked before it starts.
    pub max_total_flops: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_model_bytes: 2 << 30,
            max_nodes: 1 << 20,
            max_tensor_elements: 1 << 30,
            max_total_flops: 1 << 44,
        }
    }
}

/// A dimension of a declared graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named or unnamed symbolic size, bound at run time.
    Symbol(String),
}

/// A named value of the graph with its declared type, when declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// Declared element type.
    pub dtype: Option<DType>,
    /// Declared shape.
    pub shape: Option<Vec<Dim>>,
}

/// One node of the graph.
#[derive(Debug)]
pub struct Node {
    /// Node name from the model (may be empty).
    pub name: String,
    /// ONNX op type.
    pub op_type: String,
    /// Input value ids; `None` for omitted optional inputs.
    pub inputs: Vec<Option<usize>>,
    /// Output value ids; `None` for omitted optional outputs.
    pub outputs: Vec<Option<usize>>,
    pub(crate) op: Box<dyn Op>,
}

/// A loaded, validated model.
#[derive(Debug)]
pub struct Model {
    pub(crate) id: ModelId,
    pub(crate) opset: i64,
    pub(crate) values: Vec<ValueInfo>,
    pub(crate) inputs: Vec<usize>,
    pub(crate) outputs: Vec<usize>,
    pub(crate) constants: Vec<Option<Arc<Tensor>>>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) limits: Limits,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidModel(msg.into())
}

impl Model {
    /// Loads a model from the bytes of an ONNX file.
    pub fn load(bytes: &[u8], limits: Limits) -> Result<Model> {
        if bytes.len() > limits.max_model_bytes {
            return Err(Error::ModelTooLarge {
                size_bytes: bytes.len(),
                max_bytes: limits.max_model_bytes,
            });
        }
        let proto = onnx::ModelProto::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let id = ModelId::of(bytes);
        Model::from_proto(proto, id, limits)
    }

    fn from_proto(proto: onnx::ModelProto, id: ModelId, limits: Limits) -> Result<Model> {
        let mut opset = None;
        for imp in &proto.opset_import {
            let domain = imp.domain.as_deref().unwrap_or("");
            if domain.is_empty() || domain == "ai.onnx" {
                opset = imp.version;
            }
        }
        let opset = match opset {
            Some(v) if (MIN_OPSET..=MAX_OPSET).contains(&v) => v,
            Some(v) => {
                return Err(invalid(format!(
                    "default-domain opset {v} is not supported (supported: {MIN_OPSET}..={MAX_OPSET})"
                )));
            }
            None if proto.opset_import.is_empty() => {
                return Err(invalid("model has no opset_import"));
            }
            None => return Err(invalid("model imports no default-domain (ai.onnx) opset")),
        };
        let graph = proto.graph.ok_or_else(|| invalid("model has no graph"))?;
        let loader = Loader {
            opset,
            limits,
            nodes_left: std::cell::Cell::new(limits.max_nodes),
        };
        loader.graph(&graph, id, Scope::Main, 0)
    }

    /// The model id: BLAKE3 of the exact model bytes.
    pub fn id(&self) -> ModelId {
        self.id
    }

    /// The default-domain opset version.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The limits this model was loaded with (also used when running it).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The user-supplied graph inputs, in graph order.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = &ValueInfo> {
        self.inputs.iter().map(|&v| &self.values[v])
    }

    /// The graph outputs, in graph order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = &ValueInfo> {
        self.outputs.iter().map(|&v| &self.values[v])
    }

    /// The nodes, in topological (execution) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Value ids of the user-supplied graph inputs, in graph order.
    pub fn input_ids(&self) -> &[usize] {
        &self.inputs
    }

    /// Value ids of the graph outputs, in graph order.
    pub fn output_ids(&self) -> &[usize] {
        &self.outputs
    }

    /// The constant (initializer) held by a value id, if any.
    pub fn constant(&self, vid: usize) -> Option<&Tensor> {
        self.constants.get(vid).and_then(|c| c.as_deref())
    }

    /// [`Model::constant`], shared: what a referee passes to
    /// [`crate::Session::run_node_bytes`] without copying the weights.
    pub fn constant_arc(&self, vid: usize) -> Option<&Arc<Tensor>> {
        self.constants.get(vid).and_then(Option::as_ref)
    }

    /// Name of a value id.
    pub fn value_name(&self, vid: usize) -> &str {
        &self.values[vid].name
    }
}

/// Most levels of subgraphs (`If` branches, `Loop` bodies) inside one another.
pub const MAX_SUBGRAPH_DEPTH: usize = 8;

/// Which kind of graph is being loaded, and so how its inputs are bound.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The model's main graph: declared inputs (an input that is also an
    /// initializer is that constant), each with a declared element type.
    Main,
    /// A subgraph: its declared inputs (formal parameters, whose types may be
    /// left to the caller), then one input per value it reads from enclosing
    /// graphs, in the order given.
    Sub {
        /// Names of the enclosing graphs' values the subgraph reads.
        captured: &'a [String],
    },
}

/// Loads a graph and, recursively, its subgraphs, sharing one node budget.
struct Loader {
    opset: i64,
    limits: Limits,
    /// Nodes still allowed, over the main graph and every subgraph.
    nodes_left: std::cell::Cell<usize>,
}

impl Loader {
    fn graph(
        &self,
        graph: &onnx::GraphProto,
        id: ModelId,
        scope: Scope<'_>,
        depth: usize,
    ) -> Result<Model> {
        let limits = self.limits;
        let n = graph.node.len();
        if n > self.nodes_left.get() {
            return Err(Error::Limit(format!(
                "the model has more than the limit of {} nodes (counting subgraphs)",
                limits.max_nodes
            )));
        }
        self.nodes_left.set(self.nodes_left.get() - n);
        let mut b = GraphBuilder {
            values: Vec::new(),
            ids: HashMap::new(),
            constants: Vec::new(),
        };

        // Initializers are constants. A main-graph input with the same name
        // (IR < 4 style) is treated as that constant, not as a user input.
        for init in &graph.initializer {
            let name = init.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(invalid("an initializer has no name"));
            }
            let t = tensor_from_proto(init, limits.max_tensor_elements)
                .map_err(|e| invalid(format!("initializer: {}", e.0)))?;
            let vid = b.define(&name, Some(t.dtype()), None)?;
            b.constants[vid] = Some(Arc::new(t));
        }
        if let Some(init) = graph.sparse_initializer.first() {
            let name = init
                .values
                .as_ref()
                .and_then(|v| v.name.clone())
                .unwrap_or_default();
            return Err(invalid(format!(
                "sparse initializer `{name}` is not supported"
            )));
        }
        let mut inputs = Vec::new();
        for vi in &graph.input {
            let info = value_info(vi)?;
            if let Some(&vid) = b.ids.get(&info.name) {
                if matches!(scope, Scope::Main) && b.constants[vid].is_some() {
                    continue;
                }
                return Err(invalid(format!(
                    "graph input `{}` is declared twice",
                    info.name
                )));
            }
            if matches!(scope, Scope::Main) && info.dtype.is_none() {
                return Err(invalid(format!(
                    "graph input `{}` has no supported tensor element type",
                    info.name
                )));
            }
            let vid = b.define(&info.name, info.dtype, info.shape)?;
            inputs.push(vid);
        }
        if let Scope::Sub { captured } = scope {
            for name in captured {
                let vid = b.define(name, None, None)?;
                inputs.push(vid);
            }
        }

        // Per node: its inputs, then the enclosing values its subgraphs read
        // (implicit inputs, which order the node after their producers).
        let implicit: Vec<Vec<String>> = graph
            .node
            .iter()
            .map(|n| node_free_vars(n, depth))
            .collect::<Result<_>>()?;
        let order = topo_order(&graph.node, &implicit, &b.ids)?;
        let mut nodes = Vec::with_capacity(order.len());
        for (index, &i) in order.iter().enumerate() {
            let n = &graph.node[i];
            let name = n.name.clone().unwrap_or_default();
            let op_type = n.op_type.clone().unwrap_or_default();
            let node_err = |reason: String| Error::Node {
                index,
                name: name.clone(),
                op: op_type.clone(),
                reason,
            };
            let domain = n.domain.as_deref().unwrap_or("");
            if !(domain.is_empty() || domain == "ai.onnx") {
                return Err(node_err(format!("op domain `{domain}` is not supported")));
            }
            let attrs = decode_attrs(&n.attribute, limits.max_tensor_elements).map_err(node_err)?;
            let resolve = |s: &String| -> Result<Option<usize>> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    b.ids
                        .get(s)
                        .copied()
                        .map(Some)
                        .ok_or_else(|| node_err(format!("input `{s}` is not defined")))
                }
            };
            let mut node_inputs = n.input.iter().map(resolve).collect::<Result<Vec<_>>>()?;
            let captured = &implicit[i];
            for s in captured {
                node_inputs.push(resolve(s)?);
            }
            // Trailing omitted (empty) outputs are the same as absent ones.
            let n_outputs = n
                .output
                .iter()
                .rposition(|s| !s.is_empty())
                .map_or(0, |i| i + 1);
            // A failed operator's trace leaf is the leaf with no outputs
            // (docs/disputes.md, "Runs that fail"): no operator that runs
            // may have that leaf.
            if n_outputs == 0 {
                return Err(node_err("the node has no outputs".into()));
            }
            let mut node_outputs = Vec::with_capacity(n_outputs + 1);
            for s in &n.output[..n_outputs] {
                if s.is_empty() {
                    node_outputs.push(None);
                } else {
                    let vid = b
                        .define(s, None, None)
                        .map_err(|_| node_err(format!("output `{s}` is already defined")))?;
                    node_outputs.push(Some(vid));
                }
            }
            let ctx = BuildCtx {
                op_type: &op_type,
                attrs: &attrs,
                opset: self.opset,
                n_inputs: n.input.len(),
                n_outputs,
            };
            let op = match op_type.as_str() {
                "If" | "Loop" => {
                    let mut subgraphs = Vec::new();
                    for a in &n.attribute {
                        let Some(g) = a.g.as_ref() else { continue };
                        let attr = a.name.clone().unwrap_or_default();
                        if depth + 1 > MAX_SUBGRAPH_DEPTH {
                            return Err(node_err(format!(
                                "subgraphs nest deeper than the limit of {MAX_SUBGRAPH_DEPTH}"
                            )));
                        }
                        let sub = self
                            .graph(
                                g,
                                ModelId::from_bytes([0; 32]),
                                Scope::Sub { captured },
                                depth + 1,
                            )
                            .map_err(|e| node_err(format!("subgraph `{attr}`: {e}")))?;
                        subgraphs.push((attr, Arc::new(sub)));
                    }
                    // One more output, hidden: the commitment to the
                    // subgraph runs (docs/determinism.md, "Control flow").
                    node_outputs.push(Some(b.define_hidden(&format!("#{index}:subgraph-trace"))));
                    ops::control::build(&ctx, subgraphs, captured.len())
                        .map_err(|e| node_err(e.0))?
                }
                _ => ops::build(&ctx).map_err(|e| node_err(e.0))?,
            };
            nodes.push(Node {
                name: name.clone(),
                op_type: op_type.clone(),
                inputs: node_inputs,
                outputs: node_outputs,
                op,
            });
        }

        let mut outputs = Vec::new();
        for vi in &graph.output {
            let info = value_info(vi)?;
            let vid = *b.ids.get(&info.name).ok_or_else(|| {
                invalid(format!("graph output `{}` is never computed", info.name))
            })?;
            let v = &mut b.values[vid];
            v.dtype = v.dtype.or(info.dtype);
            v.shape = v.shape.clone().or(info.shape);
            outputs.push(vid);
        }
        if outputs.is_empty() {
            return Err(invalid("graph has no outputs"));
        }
        Ok(Model {
            id,
            opset: self.opset,
            values: b.values,
            inputs,
            outputs,
            constants: b.constants,
            nodes,
            limits,
        })
    }
}

/// The values a node's subgraphs read from enclosing graphs (names defined
/// neither in the subgraph nor in its own subgraphs), in first-use order.
fn node_free_vars(n: &onnx::NodeProto, depth: usize) -> Result<Vec<String>> {
    let mut free = Vec::new();
    for a in &n.attribute {
        if let Some(g) = &a.g {
            if depth + 1 > MAX_SUBGRAPH_DEPTH {
                return Err(invalid(format!(
                    "subgraphs nest deeper than the limit of {MAX_SUBGRAPH_DEPTH}"
                )));
            }
            for v in graph_free_vars(g, depth + 1)? {
                if !free.contains(&v) {
                    free.push(v);
                }
            }
        }
        if !a.graphs.is_empty() {
            let name = a.name.as_deref().unwrap_or("");
            return Err(invalid(format!(
                "attribute `{name}` holds a list of graphs, which no supported op takes"
            )));
        }
    }
    Ok(free)
}

fn graph_free_vars(g: &onnx::GraphProto, depth: usize) -> Result<Vec<String>> {
    let mut defined: std::collections::HashSet<&str> = std::collections::HashSet::new();
    defined.extend(g.input.iter().filter_map(|v| v.name.as_deref()));
    defined.extend(g.initializer.iter().filter_map(|t| t.name.as_deref()));
    for n in &g.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut free: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !defined.contains(s) && !free.iter().any(|f| f == s) {
            free.push(s.to_string());
        }
    };
    for n in &g.node {
        for s in &n.input {
            add(s);
        }
        for s in node_free_vars(n, depth)? {
            add(&s);
        }
    }
    for o in &g.output {
        add(o.name.as_deref().unwrap_or(""));
    }
    Ok(free)
}

struct GraphBuilder {
    values: Vec<ValueInfo>,
    ids: HashMap<String, usize>,
    constants: Vec<Option<Arc<Tensor>>>,
}

impl GraphBuilder {
    fn define(
        &mut self,
        name: &str,
        dtype: Option<DType>,
        shape: Option<Vec<Dim>>,
    ) -> Result<usize> {
        if self.ids.contains_key(name) {
            return Err(invalid(format!("value `{name}` is defined twice")));
        }
        let vid = self.values.len();
        self.values.push(ValueInfo {
            name: name.to_string(),
            dtype,
            shape,
        });
        self.ids.insert(name.to_string(), vid);
        self.constants.push(None);
        Ok(vid)
    }

    /// A value no node of the file can name (the subgraph trace of a
    /// control-flow node).
    fn define_hidden(&mut self, name: &str) -> usize {
        self.values.push(ValueInfo {
            name: name.to_string(),
            dtype: Some(DType::U8),
            shape: Some(vec![Dim::Fixed(32)]),
        });
        self.constants.push(None);
        self.values.len() - 1
    }
}

fn value_info(vi: &onnx::ValueInfoProto) -> Result<ValueInfo> {
    let name = vi.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("a graph input or output has no name"));
    }
    let tensor_type = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(onnx::type_proto::Value::TensorType(tt)) => tt,
        Some(_) => {
            return Err(invalid(format!(
                "`{name}`: only tensor types are supported"
            )));
        }
        None => {
            return Ok(ValueInfo {
                name,
                dtype: None,
                shape: None,
            });
        }
    };
    let dtype =
        match tensor_type.elem_type {
            Some(code) => Some(DType::from_onnx(code).ok_or_else(|| {
                invalid(format!("`{name}`: unsupported element type code {code}"))
            })?),
            None => None,
        };
    let shape = tensor_type.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .enumerate()
            .map(|(i, d)| match &d.value {
                Some(onnx::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                    Dim::Fixed(*v as usize)
                }
                Some(onnx::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                    Dim::Symbol(p.clone())
                }
                _ => Dim::Symbol(format!("{name}:{i}")),
            })
            .collect()
    });
    Ok(ValueInfo { name, dtype, shape })
}

fn decode_attrs(
    attrs: &[onnx::AttributeProto],
    max_elements: usize,
) -> std::result::Result<Attrs, String> {
    use onnx::attribute_proto::AttributeType as T;
    let mut items = Vec::with_capacity(attrs.len());
    for a in attrs {
        let name = a.name.clone().unwrap_or_default();
        if a.ref_attr_name.is_some() {
            return Err(format!("attribute `{name}` refers to a function attribute"));
        }
        let ty = a.r#type.and_then(|t| T::try_from(t).ok());
        let v = match ty {
            Some(T::Float) => Attr::Float(a.f.unwrap_or(0.0)),
            Some(T::Int) => Attr::Int(a.i.unwrap_or(0)),
            Some(T::String) => Attr::String(a.s.clone().unwrap_or_default()),
            Some(T::Tensor) => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| format!("attribute `{name}` has no tensor"))?;
                Attr::Tensor(
                    tensor_from_proto(t, max_elements)
                        .map_err(|e| format!("attribute `{name}`: {}", e.0))?,
                )
            }
            Some(T::Floats) => Attr::Floats(a.floats.clone()),
            Some(T::Ints) => Attr::Ints(a.ints.clone()),
            Some(T::Strings) => Attr::Strings(a.strings.clone()),
            // Subgraphs are loaded by the loader, for the ops that take them.
            Some(T::Graph) => continue,
            Some(other) => {
                return Err(format!(
                    "attribute `{name}` has type {} which is not supported",
                    other.as_str_name()
                ));
            }
            None => return Err(format!("attribute `{name}` has no or an unknown type")),
        };
        items.push((name, v));
    }
    Ok(Attrs::new(items))
}

/// Kahn's algorithm; among ready nodes the one earliest in the file runs first.
fn topo_order(
    nodes: &[onnx::NodeProto],
    implicit: &[Vec<String>],
    defined: &HashMap<String, usize>,
) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains_key(o.as_str()) || producer.insert(o, i).is_some() {
                return Err(invalid(format!("value `{o}` is produced more than once")));
            }
        }
    }
    let mut pending = vec![0usize; nodes.len()];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for s in n.input.iter().chain(&implicit[i]).filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(s.as_str()) {
                pending[i] += 1;
                consumers[p].push(i);
            } else if !defined.contains_key(s.as_str()) {
                let name = n.name.as_deref().unwrap_or("");
                let op = n.op_type.as_deref().unwrap_or("");
                return Err(invalid(format!(
                    "node `{name}` ({op}) reads undefined value `{s}`"
                )));
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &consumers[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.insert(c);
            }
        }
    }
    if order.len() != nodes.len() {
        return Err(invalid("graph has a cycle"));
    }
    Ok(order)
}

//! Node attributes, decoded and type-checked from ONNX `AttributeProto`s.

use crate::error::{OpError, OpResult};
use crate::tensor::Tensor;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `FLOAT`.
    Float(f32),
    /// `INT`.
    Int(i64),
    /// `STRING` (raw bytes; ONNX strings are usually UTF-8).
    String(Vec<u8>),
    /// `TENSOR`.
    Tensor(Tensor),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `STRINGS`.
    Strings(Vec<Vec<u8>>),
}

impl Attr {
    fn kind(&self) -> &'static str {
        match self {
            Attr::Float(_) => "float",
            Attr::Int(_) => "int",
            Attr::String(_) => "string",
            Attr::Tensor(_) => "tensor",
            Attr::Floats(_) => "floats",
            Attr::Ints(_) => "ints",
            Attr::Strings(_) => "strings",
        }
    }
}

/// The attributes of one node, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs {
    items: Vec<(String, Attr)>,
}

impl Attrs {
    /// Builds from (name, value) pairs.
    pub fn new(items: Vec<(String, Attr)>) -> Attrs {
        Attrs { items }
    }

    /// The raw attribute, if present.
    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Names of all attributes.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(n, _)| n.as_str())
    }

    fn wrong(name: &str, want: &str, got: &Attr) -> OpError {
        OpError(format!(
            "attribute `{name}` must be {want}, got {}",
            got.kind()
        ))
    }

    /// An optional int attribute.
    pub fn opt_int(&self, name: &str) -> OpResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(a) => Err(Attrs::wrong(name, "an int", a)),
        }
    }

    /// An int attribute with a default.
    pub fn int(&self, name: &str, default: i64) -> OpResult<i64> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }

    /// A 0/1 int attribute as a bool; any other value is an error.
    pub fn flag(&self, name: &str, default: bool) -> OpResult<bool> {
        match self.int(name, i64::from(default))? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(OpError(format!(
                "attribute `{name}` must be 0 or 1, got {v}"
            ))),
        }
    }

    /// A required int attribute.
    pub fn req_int(&self, name: &str) -> OpResult<i64> {
        self.opt_int(name)?
            .ok_or_else(|| OpError(format!("missing required attribute `{name}`")))
    }

    /// An optional float attribute.
    pub fn opt_float(&self, name: &str) -> OpResult<Option<f32>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(a) => Err(Attrs::wrong(name, "a float", a)),
        }
    }

    /// A float attribute with a default.
    pub fn float(&self, name: &str, default: f32) -> OpResult<f32> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    /// An optional ints attribute.
    pub fn opt_ints(&self, name: &str) -> OpResult<Option<&[i64]>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v)),
            Some(a) => Err(Attrs::wrong(name, "ints", a)),
        }
    }

    /// An optional floats attribute.
    pub fn opt_floats(&self, name: &str) -> OpResult<Option<&[f32]>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v)),
            Some(a) => Err(Attrs::wrong(name, "floats", a)),
        }
    }

    /// An optional string attribute, as UTF-8.
    pub fn opt_string(&self, name: &str) -> OpResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::String(v)) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| OpError(format!("attribute `{name}` is not valid UTF-8"))),
            Some(a) => Err(Attrs::wrong(name, "a string", a)),
        }
    }

    /// A string attribute with a default.
    pub fn string<'a>(&'a self, name: &str, default: &'a str) -> OpResult<&'a str> {
        Ok(self.opt_string(name)?.unwrap_or(default))
    }

    /// An optional tensor attribute.
    pub fn opt_tensor(&self, name: &str) -> OpResult<Option<&Tensor>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t)),
            Some(a) => Err(Attrs::wrong(name, "a tensor", a)),
        }
    }
}

//! What a manifest says about its model, read from the model by the
//! runtime (docs/manifest.md): the id, the size, the input and output
//! schema, the opset and the deterministic cost for the declared input
//! shapes (symbolic dimensions at 1). `glassbox model publish` and the
//! benchmarks fill their manifests from [`ModelFacts`].

use std::sync::Arc;

use glassbox_runtime::{Dim, Limits, Model, Options, Session, ValueInfo};
use glassbox_types::{CostSpec, DimSpec, ModelId, TensorSpec};

/// Why a model's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The runtime does not load the model.
    #[error("the model does not load: {0}")]
    Load(glassbox_runtime::Error),
    /// The opset does not fit the manifest's field.
    #[error("the model's opset {0} is out of range")]
    Opset(i64),
    /// An input without a declared shape leaves the cost unknown.
    #[error("input `{0}` declares no shape, so the cost cannot be computed")]
    NoShape(String),
    /// The runtime cannot plan the declared shapes.
    #[error("planning the model for its declared input shapes (symbolic dims at 1): {0}")]
    Plan(glassbox_runtime::Error),
}

/// The manifest fields a model determines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFacts {
    /// BLAKE3 of the bytes.
    pub model_id: ModelId,
    /// Size of the bytes.
    pub size_bytes: u64,
    /// The default-domain opset.
    pub opset: u32,
    /// The graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// The graph outputs.
    pub outputs: Vec<TensorSpec>,
    /// The cost for the declared input shapes, symbolic dims at 1.
    pub cost: CostSpec,
}

impl ModelFacts {
    /// Loads `bytes` with the runtime (default limits) and reads its facts.
    pub fn of(bytes: &[u8]) -> Result<ModelFacts, FactsError> {
        let model = Model::load(bytes, Limits::default()).map_err(FactsError::Load)?;
        let opset = u32::try_from(model.opset()).map_err(|_| FactsError::Opset(model.opset()))?;
        let mut shapes = Vec::new();
        for v in model.inputs() {
            let dims = v
                .shape
                .as_ref()
                .ok_or_else(|| FactsError::NoShape(v.name.clone()))?;
            shapes.push(
                dims.iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n,
                        Dim::Symbol(_) => 1,
                    })
                    .collect::<Vec<usize>>(),
            );
        }
        let inputs = model.inputs().map(tensor_spec).collect();
        let outputs = model.outputs().map(tensor_spec).collect();
        let model_id = model.id();
        let session =
            Session::new(Arc::new(model), Options::default()).map_err(FactsError::Plan)?;
        let cost = session
            .plan_shapes(&shapes)
            .map_err(FactsError::Plan)?
            .cost();
        Ok(ModelFacts {
            model_id,
            size_bytes: bytes.len() as u64,
            opset,
            inputs,
            outputs,
            cost: CostSpec {
                flops: cost.flops,
                bytes: cost.bytes,
            },
        })
    }
}

/// A graph value's manifest schema: name, dtype and dimensions as declared.
pub fn tensor_spec(v: &ValueInfo) -> TensorSpec {
    TensorSpec {
        name: v.name.clone(),
        dtype: v.dtype.map(|d| d.name().to_string()),
        shape: v.shape.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => DimSpec::Fixed(*n as u64),
                    Dim::Symbol(s) => DimSpec::Symbol(s.clone()),
                })
                .collect()
        }),
    }
}

//! The referee's price of a chunk against its time: for single operators
//! chosen to be slow for their price (operators that run whole, integer
//! and transcendental arithmetic, control flow), times what a dispute's
//! referee does for the middle 1 KiB chunk of the output (decode and hash
//! the operands, then `Session::run_node_bytes`) and divides by the price
//! the ledger charges it against `max_referee_work_per_block` (operand
//! bytes plus `Session::chunk_cost`). The slowest rate times the budget is
//! the worst referee time of a block we can construct (docs/disputes.md,
//! "Referee budget").
//!
//! ```text
//! cargo bench -p glassbox-runtime --bench referee_price [-- BUDGET_UNITS]
//! ```

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_runtime::proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};
use glassbox_runtime::{Data, Limits, Model, Options, Session, Tensor, formats};
use prost::Message;

/// The ledger's default budget (`glassbox_ledger::DEFAULT_REFEREE_WORK`;
/// the runtime does not depend on the ledger).
const DEFAULT_BUDGET: u64 = 1 << 28;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("referee_price bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An attribute.
enum A {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

fn attribute(name: &str, a: &A) -> AttributeProto {
    let mut p = AttributeProto {
        name: Some(name.into()),
        ..Default::default()
    };
    match a {
        A::Int(v) => {
            p.r#type = Some(AttributeType::Int as i32);
            p.i = Some(*v);
        }
        A::Ints(v) => {
            p.r#type = Some(AttributeType::Ints as i32);
            p.ints = v.clone();
        }
        A::Float(v) => {
            p.r#type = Some(AttributeType::Float as i32);
            p.f = Some(*v);
        }
        A::Str(v) => {
            p.r#type = Some(AttributeType::String as i32);
            p.s = Some(v.as_bytes().to_vec());
        }
    }
    p
}

fn value(name: &str, t: &Tensor) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(t.dtype().onnx_code()),
                shape: Some(TensorShapeProto {
                    dim: t
                        .shape()
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model of one `op` node whose operands are all graph inputs (as a
/// referee gets them: opened, decoded and hashed), with `outputs` outputs.
fn single(
    op: &str,
    attrs: &[(&str, A)],
    inputs: &[Tensor],
    outputs: usize,
) -> Result<Arc<Model>, String> {
    let names: Vec<String> = (0..inputs.len()).map(|i| format!("x{i}")).collect();
    let outs: Vec<String> = (0..outputs).map(|i| format!("y{i}")).collect();
    let node = NodeProto {
        op_type: Some(op.into()),
        input: names.clone(),
        output: outs.clone(),
        attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
        ..Default::default()
    };
    let graph = GraphProto {
        node: vec![node],
        input: names.iter().zip(inputs).map(|(n, t)| value(n, t)).collect(),
        output: outs
            .iter()
            .map(|o| ValueInfoProto {
                name: Some(o.clone()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    };
    Model::load(&m.encode_to_vec(), Limits::default())
        .map(Arc::new)
        .map_err(|e| format!("{op}: {e}"))
}

/// Deterministic values in [-1, 1).
fn f32s(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(shape.to_vec(), v).expect("tensor")
}

fn i64s(shape: &[usize], modulo: i64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % modulo).collect();
    Tensor::new(shape.to_vec(), Data::I64(v)).expect("tensor")
}

fn scalar_i64(v: &[i64]) -> Tensor {
    Tensor::new(vec![v.len()], Data::I64(v.to_vec())).expect("tensor")
}

/// One measured case: its price and time.
struct Measured {
    name: String,
    units: u64,
    time: Duration,
}

fn measure(
    name: &str,
    op: &str,
    attrs: &[(&str, A)],
    inputs: Vec<Tensor>,
    outputs: usize,
) -> Result<Measured, String> {
    let model = single(op, attrs, &inputs, outputs)?;
    let session = Session::new(model, Options::default()).map_err(|e| e.to_string())?;
    let encoded: Vec<Vec<u8>> = inputs.iter().map(formats::canonical_encode).collect();
    let args: Vec<Option<Arc<Tensor>>> = inputs.into_iter().map(|t| Some(Arc::new(t))).collect();
    let (len, _) = session
        .run_node_bytes(0, &args, 0, 0..0)
        .map_err(|e| format!("{name}: {e}"))?;
    let chunks = len.div_ceil(1024);
    let start = chunks / 2 * 1024;
    let range = start..(start + 1024).min(len);
    let cost = session
        .chunk_cost(0, &args, 0, range.clone())
        .map_err(|e| format!("{name}: {e}"))?;
    let decoded: u64 = encoded.iter().map(|b| b.len() as u64).sum();
    let units = decoded + cost.flops + cost.bytes;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        // What the referee does: decode and hash the operands, compute.
        let args: Vec<Option<Arc<Tensor>>> = encoded
            .iter()
            .map(|b| {
                let t = formats::canonical_decode(b, usize::MAX).expect("decode");
                std::hint::black_box(t.hash());
                Some(Arc::new(t))
            })
            .collect();
        session
            .run_node_bytes(0, &args, 0, range.clone())
            .map_err(|e| format!("{name}: {e}"))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(Measured {
        name: name.into(),
        units,
        time: times[1],
    })
}

fn run() -> Result<(), String> {
    let budget: u64 = match std::env::args().nth(1).filter(|a| !a.starts_with("--")) {
        Some(b) => b.parse().map_err(|e| format!("BUDGET_UNITS: {e}"))?,
        None => DEFAULT_BUDGET,
    };
    let cases: Vec<Measured> = vec![
        measure(
            "MatMul f32 512x2048x512 (rows)",
            "MatMul",
            &[],
            vec![f32s(&[512, 2048], 1), f32s(&[2048, 512], 2)],
            1,
        )?,
        measure(
            "MatMul i64 256x1024x256 (rows, naive)",
            "MatMul",
            &[],
            vec![i64s(&[256, 1024], 97), i64s(&[1024, 256], 89)],
            1,
        )?,
        measure(
            "Conv 64x56x56 3x3 (planes)",
            "Conv",
            &[("pads", A::Ints(vec![1, 1, 1, 1]))],
            vec![f32s(&[1, 64, 56, 56], 3), f32s(&[64, 64, 3, 3], 4)],
            1,
        )?,
        measure(
            "ConvTranspose 64x56x56 3x3 (whole)",
            "ConvTranspose",
            &[],
            vec![f32s(&[1, 64, 56, 56], 5), f32s(&[64, 64, 3, 3], 6)],
            1,
        )?,
        measure(
            "Einsum ij,jk->ik 384^3 (whole)",
            "Einsum",
            &[("equation", A::Str("ij,jk->ik"))],
            vec![f32s(&[384, 384], 7), f32s(&[384, 384], 8)],
            1,
        )?,
        measure(
            "Softmax axis 0 of 1024x1024 (whole)",
            "Softmax",
            &[("axis", A::Int(0))],
            vec![f32s(&[1024, 1024], 9)],
            1,
        )?,
        measure(
            "LayerNormalization 4096x1024 (whole)",
            "LayerNormalization",
            &[("axis", A::Int(-1)), ("epsilon", A::Float(1e-5))],
            vec![
                f32s(&[4096, 1024], 10),
                f32s(&[1024], 11),
                f32s(&[1024], 12),
            ],
            1,
        )?,
        measure(
            "ReduceSum 4096x4096 axis 1 (whole)",
            "ReduceSum",
            &[],
            vec![f32s(&[4096, 4096], 13), scalar_i64(&[1])],
            1,
        )?,
        measure(
            "ReduceLogSumExp 2048x2048 axis 0 (whole)",
            "ReduceLogSumExp",
            &[("axes", A::Ints(vec![0]))],
            vec![f32s(&[2048, 2048], 14)],
            1,
        )?,
        measure(
            "TopK k=64 of 1024x4096 (whole)",
            "TopK",
            &[],
            vec![f32s(&[1024, 4096], 15), scalar_i64(&[64])],
            2,
        )?,
        measure(
            "CumSum 4M (whole)",
            "CumSum",
            &[],
            vec![f32s(&[1 << 22], 16), scalar_i64(&[0])],
            1,
        )?,
        measure(
            "Erf 4M (elements)",
            "Erf",
            &[],
            vec![f32s(&[1 << 22], 17)],
            1,
        )?,
        measure(
            "Gather 4096 rows of 50000x256 (whole)",
            "Gather",
            &[],
            vec![f32s(&[50_000, 256], 18), i64s(&[4096], 50_000)],
            1,
        )?,
        measure(
            "LSTM seq 64, 256->256 (whole)",
            "LSTM",
            &[("hidden_size", A::Int(256))],
            vec![
                f32s(&[64, 1, 256], 19),
                f32s(&[1, 1024, 256], 20),
                f32s(&[1, 1024, 256], 21),
            ],
            1,
        )?,
        measure(
            "Resize cubic 3x256x256 -> 512x512 (whole)",
            "Resize",
            &[("mode", A::Str("cubic"))],
            vec![
                f32s(&[1, 3, 256, 256], 22),
                Tensor::from_vec(vec![0], Vec::<f32>::new()).expect("roi"),
                Tensor::from_vec(vec![4], vec![1.0f32, 1.0, 2.0, 2.0]).expect("scales"),
            ],
            1,
        )?,
    ];
    println!("| operator (region or whole) | price (units) | referee ms | ns / unit |");
    println!("|---|---|---|---|");
    for c in &cases {
        println!(
            "| {} | {} | {:.3} | {:.4} |",
            c.name,
            c.units,
            c.time.as_secs_f64() * 1e3,
            c.time.as_secs_f64() * 1e9 / c.units.max(1) as f64
        );
    }
    let worst = cases
        .iter()
        .max_by(|a, b| {
            let r = |c: &Measured| c.time.as_secs_f64() / c.units.max(1) as f64;
            r(a).total_cmp(&r(b))
        })
        .ok_or("no cases")?;
    let ns = worst.time.as_secs_f64() * 1e9 / worst.units.max(1) as f64;
    println!(
        "\nslowest: {} at {ns:.4} ns per unit: a block's budget of {budget} units is at most {:.1} ms of referee work at that rate",
        worst.name,
        ns * budget as f64 / 1e6
    );
    Ok(())
}

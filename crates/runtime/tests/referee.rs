//! The referee's path in a dispute: any single node can be re-executed alone
//! from its input tensors, giving the same leaf as the full run, and the
//! leaf's Merkle proof verifies against the committed trace.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use glassbox_runtime::trace::{node_leaf, root_from_path};
use glassbox_runtime::{DType, Limits, Model, Options, Session, Tensor, formats};

fn load_case(name: &str) -> (Arc<Model>, Tensor) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).expect("model");
    let model = Arc::new(Model::load(&bytes, Limits::default()).expect("load"));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}.input.json"))).expect("input"),
    )
    .expect("json");
    (
        model,
        formats::json_decode(&json, DType::F32, 1 << 20).expect("decode"),
    )
}

/// Every value of a run of the case, by value id.
fn run_values(
    session: &Session,
    model: &Model,
    input: Tensor,
) -> (HashMap<usize, Tensor>, glassbox_runtime::RunOutput) {
    let mut values: HashMap<usize, Tensor> = HashMap::new();
    values.insert(model.input_ids()[0], input.clone());
    let out = session
        .run_observed(vec![input], &mut |i, outs| {
            let ids = model.nodes()[i].outputs.iter().flatten();
            for (vid, t) in ids.zip(outs) {
                values.insert(*vid, (*t).clone());
            }
        })
        .expect("run");
    (values, out)
}

/// The inputs of node `i` in a run.
fn node_inputs(model: &Model, values: &HashMap<usize, Tensor>, i: usize) -> Vec<Option<Tensor>> {
    model.nodes()[i]
        .inputs
        .iter()
        .map(|v| {
            v.map(|v| {
                model
                    .constant(v)
                    .cloned()
                    .or_else(|| values.get(&v).cloned())
                    .expect("value")
            })
        })
        .collect()
}

#[test]
fn every_chunk_of_every_output_re_executes_alone() {
    for name in ["mnist-cnn", "mlp"] {
        let (model, input) = load_case(name);
        let session = Session::new(Arc::clone(&model), Options::default()).expect("session");
        let (values, _) = run_values(&session, &model, input);
        for (i, node) in model.nodes().iter().enumerate() {
            let inputs: Vec<Option<Arc<Tensor>>> = node_inputs(&model, &values, i)
                .into_iter()
                .map(|t| t.map(Arc::new))
                .collect();
            for (o, vid) in node.outputs.iter().flatten().enumerate() {
                let bytes = formats::canonical_encode(&values[vid]);
                let len = bytes.len() as u64;
                let whole = session
                    .chunk_cost(i, &inputs, o, 0..len)
                    .expect("whole cost");
                for start in (0..len).step_by(1024) {
                    let end = (start + 1024).min(len);
                    // A chunk is priced at most at the whole node, and
                    // below it where the operator computes a region of
                    // several chunks' output.
                    let cost = session
                        .chunk_cost(i, &inputs, o, start..end)
                        .expect("chunk_cost");
                    assert!(cost.flops <= whole.flops && cost.bytes <= whole.bytes);
                    if matches!(
                        node.op_type.as_str(),
                        "MatMul" | "Gemm" | "Conv" | "Relu" | "Add"
                    ) && len > 4096
                    {
                        assert!(
                            cost.flops < whole.flops,
                            "{name}: node #{i} ({}) chunk {start} priced whole",
                            node.op_type
                        );
                    }
                    let (total, got) = session
                        .run_node_bytes(i, &inputs, o, start..end)
                        .expect("run_node_bytes");
                    assert_eq!(total, len, "{name}: node #{i} output {o}");
                    assert!(
                        got == bytes[start as usize..end as usize],
                        "{name}: node #{i} ({}) output {o} bytes {start}..{end}",
                        node.op_type
                    );
                }
                // Odd ranges, and ranges cut to the encoding.
                let (_, got) = session
                    .run_node_bytes(i, &inputs, o, 3..len + 99)
                    .expect("bytes");
                assert!(
                    got == bytes[3..],
                    "{name}: node #{i} output {o} from byte 3"
                );
                let (_, got) = session
                    .run_node_bytes(i, &inputs, o, len..len)
                    .expect("bytes");
                assert!(got.is_empty());
                let empty = session.chunk_cost(i, &inputs, o, len..len).expect("cost");
                assert_eq!(empty.flops + empty.bytes, 0, "the length alone is free");
            }
            assert!(session.run_node_bytes(i, &inputs, 64, 0..1).is_err());
        }
    }
}

#[test]
fn every_node_re_executes_alone_to_its_leaf_and_proves_into_the_root() {
    for name in ["mnist-cnn", "mlp"] {
        let (model, input) = load_case(name);
        let session = Session::new(Arc::clone(&model), Options::default()).expect("session");
        let (values, out) = run_values(&session, &model, input);
        let trace = &out.trace;
        assert_eq!(trace.leaves.len(), model.nodes().len());
        let root = trace.leaves_root();
        for (i, node) in model.nodes().iter().enumerate() {
            let inputs = node_inputs(&model, &values, i);
            let shared: Vec<Option<Arc<Tensor>>> =
                inputs.iter().cloned().map(|t| t.map(Arc::new)).collect();
            let (outs, leaf) = session.run_node(i, &shared).expect("run_node");
            assert_eq!(
                leaf, trace.leaves[i],
                "{name}: node #{i} ({})",
                node.op_type
            );
            assert_eq!(leaf, node_leaf(i, outs.iter()));
            let proof = trace.audit_path(i).expect("proof");
            let n = trace.leaves.len() as u64;
            let got = root_from_path(&leaf, i as u64, n, &proof);
            assert_eq!(got, Some(root), "{name}: proof of leaf {i}");
            // A tampered output does not prove into the root.
            if let Some(t) = outs.first() {
                let mut other = t.clone().into_data();
                if let glassbox_runtime::Data::F32(v) = &mut other
                    && let Some(x) = v.first_mut()
                {
                    *x = f32::from_bits(x.to_bits() ^ 1);
                    let bad = Tensor::new(t.shape().to_vec(), other).expect("tensor");
                    let bad_leaf = node_leaf(i, std::iter::once(&bad));
                    let got = root_from_path(&bad_leaf, i as u64, n, &proof);
                    assert_ne!(got, Some(root), "{name}: tampered leaf {i} verified");
                }
            }
        }
        assert!(session.run_node(model.nodes().len(), &[]).is_err());
    }
}

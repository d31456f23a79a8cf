//! Control flow (`If`, `Loop`): subgraphs that read enclosing values, nested
//! subgraphs, conditions known or unknown before the run, loops whose trip
//! count is or is not known, the trace covering every node a subgraph ran,
//! the referee re-running a control-flow node alone, and the refusals (depth,
//! missing branches, shapes the planner cannot know).

use std::sync::Arc;

use glassbox_runtime::proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_shape_proto, type_proto,
};
use glassbox_runtime::proto::tensor_to_proto;
use glassbox_runtime::{Cost, DType, Error, Limits, Model, Options, Session, Tensor};
use prost::Message;

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn with_graph(mut n: NodeProto, name: &str, g: GraphProto) -> NodeProto {
    n.attribute.push(AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    });
    n
}

/// A value declared as a tensor of `dtype`; `dims` None leaves the shape open.
fn vi(name: &str, dtype: DType, dims: Option<&[i64]>) -> ValueInfoProto {
    let shape = dims.map(|d| TensorShapeProto {
        dim: d
            .iter()
            .map(|&v| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype.onnx_code()),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        node: nodes,
        input: inputs,
        output: outputs.iter().map(|o| vi(o, DType::F32, None)).collect(),
        initializer: inits,
        ..Default::default()
    }
}

fn load(g: GraphProto) -> Result<Arc<Model>, Error> {
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(g),
        ..Default::default()
    };
    Model::load(&m.encode_to_vec(), Limits::default()).map(Arc::new)
}

fn f32s(shape: Vec<usize>, v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

/// `v` repeated to at least 9 elements, a rank-1 tensor: float inputs of at
/// most 8 elements would be known to the planner (`KNOWN_FLOAT_INPUT_MAX_ELEMENTS`),
/// which would fold these graphs before the run instead of running them.
fn tile(v: &[f32]) -> Tensor {
    let times = 9usize.div_ceil(v.len());
    Tensor::from_vec(vec![v.len() * times], v.repeat(times)).unwrap()
}

fn run(m: &Arc<Model>, threads: usize, inputs: Vec<Tensor>) -> glassbox_runtime::RunOutput {
    let s = Session::new(
        Arc::clone(m),
        Options {
            threads,
            // These small graphs too run on the threads they are given.
            serial_below: Cost::default(),
            ..Options::default()
        },
    )
    .unwrap();
    s.run(inputs).unwrap()
}

/// `y = If(cond) { x + c } else { x * c }`, `c` an initializer of the main
/// graph read by both branches; `then` is `then_body` when given.
fn if_model(then_body: Option<Vec<NodeProto>>) -> GraphProto {
    let then = graph(
        then_body.unwrap_or_else(|| vec![node("Add", &["x", "c"], &["t"])]),
        vec![],
        &["t"],
        vec![],
    );
    let els = graph(
        vec![node("Mul", &["x", "c"], &["e"])],
        vec![],
        &["e"],
        vec![],
    );
    let iff = with_graph(
        with_graph(node("If", &["cond"], &["y"]), "then_branch", then),
        "else_branch",
        els,
    );
    graph(
        vec![iff],
        vec![
            vi("cond", DType::Bool, Some(&[])),
            vi("x", DType::F32, Some(&[9])),
        ],
        &["y"],
        vec![tensor_to_proto(&tile(&[2.0, 3.0, 4.0]), "c")],
    )
}

#[test]
fn if_runs_the_branch_the_condition_picks_with_enclosing_values() {
    let m = load(if_model(None)).unwrap();
    let x = tile(&[1.0, 2.0, 3.0]);
    let t = run(&m, 1, vec![Tensor::scalar(true), x.clone()]);
    let e = run(&m, 1, vec![Tensor::scalar(false), x.clone()]);
    assert_eq!(t.outputs[0].1, tile(&[3.0, 5.0, 7.0]));
    assert_eq!(e.outputs[0].1, tile(&[2.0, 6.0, 12.0]));
    assert_ne!(t.trace.root(), e.trace.root());
    // Same bits and trace on more threads.
    let t2 = run(&m, 2, vec![Tensor::scalar(true), x]);
    assert_eq!(t.trace.root(), t2.trace.root());
}

#[test]
fn the_trace_covers_the_nodes_a_branch_ran() {
    // Relu(Neg(Neg(x + c))) equals x + c here, but ran other nodes.
    let longer = vec![
        node("Add", &["x", "c"], &["a"]),
        node("Neg", &["a"], &["b"]),
        node("Neg", &["b"], &["d"]),
        node("Relu", &["d"], &["t"]),
    ];
    let plain = load(if_model(None)).unwrap();
    let long = load(if_model(Some(longer))).unwrap();
    let x = tile(&[1.0, 2.0, 3.0]);
    let a = run(&plain, 1, vec![Tensor::scalar(true), x.clone()]);
    let b = run(&long, 1, vec![Tensor::scalar(true), x]);
    assert_eq!(a.outputs[0].1, b.outputs[0].1);
    assert_ne!(a.trace.leaves[0], b.trace.leaves[0]);
}

#[test]
fn the_referee_re_runs_a_control_flow_node_to_its_leaf() {
    let m = load(if_model(None)).unwrap();
    let x = tile(&[1.0, 2.0, 3.0]);
    let out = run(&m, 1, vec![Tensor::scalar(false), x.clone()]);
    let s = Session::new(Arc::clone(&m), Options::default()).unwrap();
    let node = &m.nodes()[0];
    let inputs: Vec<Option<Arc<Tensor>>> = node
        .inputs
        .iter()
        .map(|v| {
            let v = v.unwrap();
            Some(Arc::new(match m.value_name(v) {
                "cond" => Tensor::scalar(false),
                "x" => x.clone(),
                _ => m.constant(v).unwrap().clone(),
            }))
        })
        .collect();
    let (_, leaf) = s.run_node(0, &inputs).unwrap();
    assert_eq!(leaf, out.trace.leaves[0]);
}

#[test]
fn if_with_a_condition_computed_in_the_run_needs_branches_of_one_shape() {
    // cond = ReduceSum(x) > 0, unknown before the run.
    let cond_nodes = |then_out: &str| {
        let then = graph(
            vec![node("Identity", &[then_out], &["t"])],
            vec![],
            &["t"],
            vec![],
        );
        let els = graph(vec![node("Neg", &["x"], &["e"])], vec![], &["e"], vec![]);
        graph(
            vec![
                node("ReduceSum", &["x"], &["s"]),
                node("Greater", &["s", "zero"], &["cond"]),
                with_graph(
                    with_graph(node("If", &["cond"], &["y"]), "then_branch", then),
                    "else_branch",
                    els,
                ),
            ],
            vec![vi("x", DType::F32, Some(&[9]))],
            &["y"],
            vec![
                tensor_to_proto(&f32s(vec![], &[0.0]), "zero"),
                tensor_to_proto(&tile(&[1.0, 1.0]), "two"),
            ],
        )
    };
    let m = load(cond_nodes("x")).unwrap();
    let y = run(&m, 1, vec![tile(&[1.0, -2.0, 3.0])]);
    assert_eq!(y.outputs[0].1, tile(&[1.0, -2.0, 3.0]));
    let y = run(&m, 1, vec![tile(&[-1.0, -2.0, 3.0])]);
    assert_eq!(y.outputs[0].1, tile(&[1.0, 2.0, -3.0]));

    let m = load(cond_nodes("two")).unwrap();
    let s = Session::new(m, Options::default()).unwrap();
    let err = s.run(vec![tile(&[1.0, 2.0, 3.0])]).unwrap_err();
    assert!(
        err.to_string().contains("not known before the run"),
        "{err}"
    );
}

#[test]
fn nested_subgraphs_read_values_two_levels_up() {
    // If(c1) { If(c2) { x * c } else { x } } else { c }
    let inner = with_graph(
        with_graph(
            node("If", &["c2"], &["i"]),
            "then_branch",
            graph(
                vec![node("Mul", &["x", "c"], &["ti"])],
                vec![],
                &["ti"],
                vec![],
            ),
        ),
        "else_branch",
        graph(
            vec![node("Identity", &["x"], &["ei"])],
            vec![],
            &["ei"],
            vec![],
        ),
    );
    let outer = with_graph(
        with_graph(
            node("If", &["c1"], &["y"]),
            "then_branch",
            graph(vec![inner], vec![], &["i"], vec![]),
        ),
        "else_branch",
        graph(
            vec![node("Identity", &["c"], &["eo"])],
            vec![],
            &["eo"],
            vec![],
        ),
    );
    let m = load(graph(
        vec![outer],
        vec![
            vi("c1", DType::Bool, Some(&[])),
            vi("c2", DType::Bool, Some(&[])),
            vi("x", DType::F32, Some(&[10])),
        ],
        &["y"],
        vec![tensor_to_proto(&tile(&[10.0, 100.0]), "c")],
    ))
    .unwrap();
    let x = tile(&[1.0, 2.0]);
    let y = |a, b| run(&m, 1, vec![Tensor::scalar(a), Tensor::scalar(b), x.clone()]).outputs;
    assert_eq!(y(true, true)[0].1, tile(&[10.0, 200.0]));
    assert_eq!(y(true, false)[0].1, x);
    assert_eq!(y(false, true)[0].1, tile(&[10.0, 100.0]));
}

/// `Loop(M, cond, y0)`: body `y = y + x` (x from the main graph), scan out y.
fn loop_model(body_cond: Vec<NodeProto>, scan: bool) -> GraphProto {
    let mut nodes = vec![node("Add", &["y_in", "x"], &["y_out"])];
    nodes.extend(body_cond);
    let mut outs = vec!["cond_out", "y_out"];
    if scan {
        nodes.push(node("Identity", &["y_out"], &["scan"]));
        outs.push("scan");
    }
    let body = graph(
        nodes,
        vec![
            vi("iter", DType::I64, Some(&[])),
            vi("cond_in", DType::Bool, Some(&[])),
            vi("y_in", DType::F32, None),
        ],
        &outs,
        vec![],
    );
    let loop_outs: &[&str] = if scan { &["y", "ys"] } else { &["y"] };
    graph(
        vec![with_graph(
            node("Loop", &["M", "cond", "y0"], loop_outs),
            "body",
            body,
        )],
        vec![
            vi("M", DType::I64, Some(&[])),
            vi("cond", DType::Bool, Some(&[])),
            vi("y0", DType::F32, Some(&[10])),
            vi("x", DType::F32, Some(&[10])),
        ],
        loop_outs,
        vec![tensor_to_proto(&f32s(vec![], &[50.0]), "limit")],
    )
}

#[test]
fn loop_with_a_known_trip_count_stacks_its_scan_outputs() {
    let m = load(loop_model(
        vec![node("Identity", &["cond_in"], &["cond_out"])],
        true,
    ))
    .unwrap();
    let inputs = |n: i64| {
        vec![
            Tensor::scalar(n),
            Tensor::scalar(true),
            tile(&[0.0, 1.0]),
            tile(&[1.0, 2.0]),
        ]
    };
    let out = run(&m, 1, inputs(3));
    assert_eq!(out.outputs[0].1, tile(&[3.0, 7.0]));
    assert_eq!(
        out.outputs[1].1,
        Tensor::from_vec(
            vec![3, 10],
            [
                [1.0f32, 3.0].repeat(5),
                [2.0, 5.0].repeat(5),
                [3.0, 7.0].repeat(5)
            ]
            .concat()
        )
        .unwrap()
    );
    assert_eq!(out.trace.root(), run(&m, 2, inputs(3)).trace.root());
    // Zero iterations: the initial value and an empty stack.
    let out = run(&m, 1, inputs(0));
    assert_eq!(out.outputs[0].1, tile(&[0.0, 1.0]));
    assert_eq!(out.outputs[1].1.shape(), &[0, 10]);
    assert_ne!(
        run(&m, 1, inputs(2)).trace.root(),
        run(&m, 1, inputs(3)).trace.root()
    );
}

#[test]
fn loop_whose_condition_is_computed_in_the_run() {
    // Runs while ReduceSum(y) < 50.
    let cond = vec![
        node("ReduceSum", &["y_out"], &["s"]),
        node("Less", &["s", "limit"], &["cond_out"]),
    ];
    let m = load(loop_model(cond.clone(), false)).unwrap();
    let out = run(
        &m,
        1,
        vec![
            Tensor::scalar(100i64),
            Tensor::scalar(true),
            tile(&[0.0, 0.0]),
            tile(&[1.0, 2.0]),
        ],
    );
    // Sums 15, 30, 45, 60: stops after the fourth iteration.
    assert_eq!(out.outputs[0].1, tile(&[4.0, 8.0]));

    // With scan outputs the stacked shape cannot be planned.
    let m = load(loop_model(cond, true)).unwrap();
    let s = Session::new(m, Options::default()).unwrap();
    let err = s
        .run(vec![
            Tensor::scalar(100i64),
            Tensor::scalar(true),
            tile(&[0.0, 0.0]),
            tile(&[1.0, 2.0]),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("scan outputs"), "{err}");
}

#[test]
fn bad_control_flow_is_refused_with_a_reason() {
    // A missing branch.
    let g = graph(
        vec![with_graph(
            node("If", &["cond"], &["y"]),
            "then_branch",
            graph(
                vec![node("Identity", &["x"], &["t"])],
                vec![],
                &["t"],
                vec![],
            ),
        )],
        vec![
            vi("cond", DType::Bool, Some(&[])),
            vi("x", DType::F32, Some(&[1])),
        ],
        &["y"],
        vec![],
    );
    let err = load(g).unwrap_err().to_string();
    assert!(err.contains("else_branch"), "{err}");

    // A branch reading a value no enclosing graph defines.
    let err = load(if_model(Some(vec![node("Add", &["x", "nowhere"], &["t"])])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere"), "{err}");

    // Subgraphs nested deeper than the limit.
    let mut g = graph(
        vec![node("Identity", &["x"], &["o"])],
        vec![],
        &["o"],
        vec![],
    );
    for _ in 0..=glassbox_runtime::MAX_SUBGRAPH_DEPTH {
        let n = with_graph(
            with_graph(node("If", &["cond"], &["o"]), "then_branch", g.clone()),
            "else_branch",
            g,
        );
        g = graph(vec![n], vec![], &["o"], vec![]);
    }
    g.input = vec![
        vi("cond", DType::Bool, Some(&[])),
        vi("x", DType::F32, Some(&[1])),
    ];
    let err = load(g).unwrap_err().to_string();
    assert!(err.contains("deeper than the limit"), "{err}");

    // A loop-carried value that changes shape.
    let body = graph(
        vec![
            node("Identity", &["cond_in"], &["cond_out"]),
            node("Concat", &["y_in", "y_in"], &["y_out"]),
        ],
        vec![
            vi("iter", DType::I64, Some(&[])),
            vi("cond_in", DType::Bool, Some(&[])),
            vi("y_in", DType::F32, None),
        ],
        &["cond_out", "y_out"],
        vec![],
    );
    let mut concat = body.node[1].clone();
    concat.attribute.push(AttributeProto {
        name: Some("axis".into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(0),
        ..Default::default()
    });
    let mut body = body;
    body.node[1] = concat;
    let m = load(graph(
        vec![with_graph(
            node("Loop", &["M", "", "y0"], &["y"]),
            "body",
            body,
        )],
        vec![
            vi("M", DType::I64, Some(&[])),
            vi("y0", DType::F32, Some(&[10])),
        ],
        &["y"],
        vec![],
    ))
    .unwrap();
    let s = Session::new(m, Options::default()).unwrap();
    let err = s
        .run(vec![Tensor::scalar(2i64), tile(&[1.0, 2.0])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("loop-carried value 0"), "{err}");
}

//! Fuzzes the model loader and planner with arbitrary bytes: they must return
//! an error, never panic, hang or allocate without bound.
#![no_main]

use std::sync::Arc;

use glassbox_runtime::{Dim, Limits, Model, Options, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_model_bytes: 1 << 20,
        max_nodes: 256,
        max_tensor_elements: 1 << 16,
        max_total_flops: 1 << 24,
    };
    let Ok(model) = Model::load(data, limits) else {
        return;
    };
    // Plan with the declared shapes (symbolic dims bound to 1): exercises
    // shape inference, constant folding and the limits on hostile graphs.
    let shapes: Vec<Vec<usize>> = model
        .inputs()
        .map(|v| {
            v.shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => (*n).min(64),
                    Dim::Symbol(_) => 1,
                })
                .collect()
        })
        .collect();
    if let Ok(session) = Session::new(Arc::new(model), Options::default()) {
        let _ = session.plan_shapes(&shapes);
    }
});

//! The OpenAPI document (`GET /v1/openapi.json`) against the server: it
//! lists every route, every operation answers only statuses it documents,
//! and a real validator (scripts/check_openapi.py: openapi-spec-validator
//! and JSON Schema 2020-12) accepts the document and checks real answers,
//! errors included, against the documented schemas.

use std::path::PathBuf;
use std::process::Command;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use glassbox_ledger::{JobId, SignedTx, TxBody};
use glassbox_primitives::TensorHash;
use glassbox_types::{ModelId, hex};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::*;

/// Every route the router serves, as the document must list it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/v1/status"),
    ("post", "/v1/tx"),
    ("get", "/v1/tx/{hash}"),
    ("get", "/v1/blocks/latest"),
    ("get", "/v1/blocks/{height}"),
    ("get", "/v1/accounts/{address}"),
    ("get", "/v1/executors"),
    ("get", "/v1/executors/{address}"),
    ("get", "/v1/models"),
    ("get", "/v1/models/by-name/{name}/{version}"),
    ("get", "/v1/models/{model_id}"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs/{job_id}"),
    ("get", "/v1/jobs/{job_id}/receipt"),
    ("get", "/v1/jobs/{job_id}/ext"),
    ("get", "/v1/concentration"),
    ("get", "/v1/tensors/{hash}"),
    ("put", "/v1/tensors/{hash}"),
    ("get", "/v1/genesis"),
    ("get", "/v1/snapshot"),
    ("get", "/v1/segment"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/blobs/{model_id}"),
    ("put", "/v1/blobs/{model_id}"),
    ("get", "/v1/blobs/{model_id}/slice"),
];

/// One real answer: the documented path it answers for, and what came back.
struct Sample {
    method: &'static str,
    path: &'static str,
    status: u16,
    body: Option<Value>,
}

async fn call(
    app: &Router,
    method: &'static str,
    template: &'static str,
    uri: &str,
    body: Vec<u8>,
) -> Sample {
    let m: Method = method.to_uppercase().parse().expect("method");
    let req = Request::builder()
        .method(m)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let json = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = json.then(|| {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e})"))
    });
    Sample {
        method,
        path: template,
        status,
        body,
    }
}

fn tx_body(tx: &SignedTx) -> Vec<u8> {
    json!({ "tx": hex(tx.encoded()) }).to_string().into_bytes()
}

/// Answers of every route: successes with data in them (a finalized
/// transfer and a published model), absences, and refusals.
async fn samples() -> Vec<Sample> {
    let n = node();
    let app = &n.app;
    let chain_id = n.chain.finalized().state.chain_id();
    let transfer_tx = transfer(1, 0, 2, 10);
    let publish = SignedTx::sign(
        &chain_id,
        &key(3),
        0,
        FEE,
        TxBody::PublishModel {
            manifest: Box::new(manifest(b"model-a", "org/vision", "1.0.0", &key(3))),
        },
    )
    .expect("sign");
    let model = ModelId::of(b"model-a");
    let tensor = TensorHash::default();
    let job = JobId::of_tx(transfer_tx.hash());
    let tx_uri = format!("/v1/tx/{}", transfer_tx.hash());

    let mut out = vec![
        call(app, "post", "/v1/tx", "/v1/tx", tx_body(&transfer_tx)).await,
        call(app, "get", "/v1/tx/{hash}", &tx_uri, Vec::new()).await,
        call(app, "post", "/v1/tx", "/v1/tx", tx_body(&transfer_tx)).await,
        call(app, "post", "/v1/tx", "/v1/tx", b"{}".to_vec()).await,
        call(app, "post", "/v1/tx", "/v1/tx", tx_body(&publish)).await,
    ];
    finalize(&n.chain, vec![transfer_tx.clone(), publish]);
    let gets: Vec<(&'static str, String)> = vec![
        ("/health", "/health".into()),
        ("/v1/status", "/v1/status".into()),
        ("/v1/tx/{hash}", tx_uri.clone()),
        ("/v1/tx/{hash}", "/v1/tx/nonsense".into()),
        ("/v1/tx/{hash}", format!("/v1/tx/{}", hex(&[9; 32]))),
        ("/v1/blocks/latest", "/v1/blocks/latest".into()),
        ("/v1/blocks/{height}", "/v1/blocks/1".into()),
        ("/v1/blocks/{height}", "/v1/blocks/7".into()),
        ("/v1/blocks/{height}", "/v1/blocks/x".into()),
        (
            "/v1/accounts/{address}",
            format!("/v1/accounts/{}", addr(2)),
        ),
        (
            "/v1/accounts/{address}",
            format!("/v1/accounts/{}", addr(42)),
        ),
        ("/v1/accounts/{address}", "/v1/accounts/bob".into()),
        ("/v1/executors", "/v1/executors?limit=2".into()),
        ("/v1/executors", "/v1/executors?limit=0".into()),
        (
            "/v1/executors/{address}",
            format!("/v1/executors/{}", addr(7)),
        ),
        ("/v1/models", "/v1/models".into()),
        (
            "/v1/models/by-name/{name}/{version}",
            "/v1/models/by-name/org/vision/1.0.0".into(),
        ),
        (
            "/v1/models/by-name/{name}/{version}",
            "/v1/models/by-name/org/vision/2.0.0".into(),
        ),
        ("/v1/models/{model_id}", format!("/v1/models/{model}")),
        ("/v1/jobs/{job_id}", format!("/v1/jobs/{job}")),
        ("/v1/jobs/{job_id}/ext", format!("/v1/jobs/{job}/ext")),
        (
            "/v1/jobs/{job_id}/receipt",
            format!("/v1/jobs/{job}/receipt"),
        ),
        ("/v1/concentration", "/v1/concentration".into()),
        ("/v1/tensors/{hash}", format!("/v1/tensors/{tensor}")),
        ("/v1/genesis", "/v1/genesis".into()),
        ("/v1/openapi.json", "/v1/openapi.json".into()),
        ("/v1/blobs/{model_id}", format!("/v1/blobs/{model}")),
        (
            "/v1/blobs/{model_id}/slice",
            format!("/v1/blobs/{model}/slice?offset=0&len=1"),
        ),
    ];
    for (template, uri) in gets {
        out.push(call(app, "get", template, &uri, Vec::new()).await);
    }
    // A node given its genesis file serves it.
    let addr = "127.0.0.1:30300".parse().expect("address");
    let (node_genesis, _) = glassbox_node::consensus::genesis::deal_validators(
        &mut rand::rng(),
        genesis(),
        &[(addr, Some(addr))],
    )
    .expect("deal");
    let with_genesis = glassbox_node::api::router(
        glassbox_node::api::Api::new(n.chain.clone())
            .with_genesis(std::sync::Arc::new(node_genesis)),
    );
    out.push(
        call(
            &with_genesis,
            "get",
            "/v1/genesis",
            "/v1/genesis",
            Vec::new(),
        )
        .await,
    );
    // Segments: blocks finalized but none certified (503), nothing after
    // the tip (204), a bad query (400).
    for uri in [
        "/v1/segment?after=0",
        "/v1/segment?after=1000000",
        "/v1/segment?after=x",
    ] {
        out.push(call(app, "get", "/v1/segment", uri, Vec::new()).await);
    }
    // Snapshots: none yet (404), and a blob (bytes, not JSON).
    out.push(call(app, "get", "/v1/snapshot", "/v1/snapshot", Vec::new()).await);
    let mut with_snapshot = glassbox_node::api::Api::new(n.chain.clone());
    let newest = glassbox_node::consensus::snapshots::NewestSnapshot::default();
    newest.set(1, bytes::Bytes::from_static(b"GBNS"));
    with_snapshot.snapshots = Some(std::sync::Arc::new(newest));
    out.push(
        call(
            &glassbox_node::api::router(with_snapshot),
            "get",
            "/v1/snapshot",
            "/v1/snapshot",
            Vec::new(),
        )
        .await,
    );
    out.push(
        call(
            app,
            "post",
            "/v1/jobs",
            "/v1/jobs",
            tx_body(&transfer(1, 1, 2, 1)),
        )
        .await,
    );
    out.push(
        call(
            app,
            "put",
            "/v1/tensors/{hash}",
            &format!("/v1/tensors/{tensor}"),
            b"not a tensor".to_vec(),
        )
        .await,
    );
    out.push(
        call(
            app,
            "put",
            "/v1/blobs/{model_id}",
            &format!("/v1/blobs/{model}"),
            b"model-a".to_vec(),
        )
        .await,
    );
    out
}

fn document() -> Value {
    serde_json::to_value(glassbox_node::api::openapi()).expect("the document serializes")
}

#[test]
fn the_document_lists_every_route() {
    let doc = document();
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            listed.push((method.clone(), path.clone()));
        }
    }
    listed.sort();
    let mut want: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let n = node();
    let s = call(
        &n.app,
        "get",
        "/v1/openapi.json",
        "/v1/openapi.json",
        Vec::new(),
    )
    .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body, Some(document()));
}

/// The repository's Python venv (scripts/setup-python.sh, which the test
/// command runs first).
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

#[tokio::test]
async fn a_real_validator_accepts_the_document_and_the_answers() {
    let samples = samples().await;
    for s in &samples {
        assert_ne!(
            s.body.as_ref().and_then(|b| b["error"]["code"].as_str()),
            Some("no_route"),
            "{} {} is not routed",
            s.method,
            s.path
        );
    }
    // Every route is exercised.
    for (m, p) in ROUTES {
        assert!(
            samples.iter().any(|s| s.method == *m && s.path == *p),
            "no sample of {m} {p}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("openapi.json");
    let answers = dir.path().join("answers.json");
    std::fs::write(&spec, document().to_string()).expect("write spec");
    let list: Vec<Value> = samples
        .iter()
        .map(|s| json!({"method": s.method, "path": s.path, "status": s.status, "body": s.body}))
        .collect();
    std::fs::write(&answers, Value::Array(list).to_string()).expect("write answers");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_openapi.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&spec)
        .arg(&answers)
        .output()
        .expect("run check_openapi.py");
    assert!(
        out.status.success(),
        "check_openapi.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The checker is not a rubber stamp: a document with an answer it does
/// not describe, or a broken schema, fails.
#[tokio::test]
async fn the_validator_rejects_what_does_not_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("openapi.json");
    let answers = dir.path().join("answers.json");
    std::fs::write(&spec, document().to_string()).expect("write spec");
    let run = |answers_json: Value| {
        std::fs::write(&answers, answers_json.to_string()).expect("write answers");
        Command::new(python())
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_openapi.py"))
            .arg(&spec)
            .arg(&answers)
            .output()
            .expect("run check_openapi.py")
    };
    // A status answer missing its chain id.
    let n = node();
    let mut status = call(&n.app, "get", "/v1/status", "/v1/status", Vec::new())
        .await
        .body
        .expect("json");
    status.as_object_mut().expect("object").remove("chain_id");
    let out = run(json!([{"method": "get", "path": "/v1/status", "status": 200, "body": status}]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chain_id"));
    // An undocumented status.
    let out = run(json!([{"method": "get", "path": "/v1/status", "status": 418, "body": null}]));
    assert!(!out.status.success());
    // A document that is not OpenAPI.
    let mut doc = document();
    doc["paths"]["/v1/status"]["get"]["responses"] = json!("nope");
    std::fs::write(&spec, doc.to_string()).expect("write spec");
    let out = run(json!([]));
    assert!(!out.status.success());
}

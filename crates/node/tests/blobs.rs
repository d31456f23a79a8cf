//! Model blobs on the HTTP API (router, no network): uploads of registered
//! models verified against the model id, every refusal leaving nothing in
//! the store, size limits, downloads, and `params` in `/v1/status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use glassbox_ledger::{GenesisAccount, GenesisState, Params, SignedTx, TxBody};
use glassbox_node::api::{Api, Blobs, DEFAULT_MAX_BLOB_BYTES, router, router_with_blobs};
use glassbox_node::chain::Chain;
use glassbox_types::{CostSpec, Manifest, ModelId, SignedManifest};
use serde_json::Value;
use tower::ServiceExt;

const FEE: u64 = 1_000_000;

mod common;
use common::{chain_of, key, next_block_with_outcomes};

fn genesis() -> GenesisState {
    GenesisState {
        chain_name: "blobs-test".into(),
        genesis_time_ms: common::GENESIS_TIME,
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: key(1).public(),
            balance: 1_000_000_000_000,
        }],
        executors: Vec::new(),
    }
}

struct Node {
    chain: Arc<Chain>,
    app: Router,
    dir: tempfile::TempDir,
    nonce: u64,
}

impl Node {
    fn new(max_blob_bytes: u64, ready: bool) -> Node {
        let chain = chain_of(&genesis(), ready);
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path().join("blobs"), max_blob_bytes).expect("blob store");
        let app = router_with_blobs(Api::new(chain.clone()), Some(blobs));
        Node {
            chain,
            app,
            dir,
            nonce: 0,
        }
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    /// Finalizes a block publishing `manifest` (its outcome must be ok).
    fn register(&mut self, manifest: SignedManifest) {
        let tx = SignedTx::sign(
            &self.chain.finalized().state.chain_id(),
            &key(1),
            self.nonce,
            FEE,
            TxBody::PublishModel {
                manifest: Box::new(manifest),
            },
        )
        .expect("sign");
        self.nonce += 1;
        let (block, outcomes) = next_block_with_outcomes(&self.chain, vec![tx]);
        assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
        self.chain.finalize(&block).expect("finalizes");
    }
}

/// Every file under `dir` (the store must hold nothing after a refusal).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn manifest_declaring(model_id: ModelId, size_bytes: u64, name: &str) -> SignedManifest {
    let m = Manifest {
        model_id,
        size_bytes,
        name: name.into(),
        version: "1.0.0".parse().expect("version"),
        description: "a test blob".into(),
        license: None,
        publisher: key(2).public(),
        created_at_unix_s: 1_700_000_000,
        parents: Vec::new(),
        sources: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        opset: 17,
        cost: CostSpec { flops: 1, bytes: 1 },
        runtime_version: "0.1.0".into(),
    };
    SignedManifest::sign(m, &key(2)).expect("sign manifest")
}

fn manifest(model: &[u8], name: &str) -> SignedManifest {
    manifest_declaring(ModelId::of(model), model.len() as u64, name)
}

fn model_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, body)
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
}

async fn put(app: &Router, id: &ModelId, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::put(format!("/v1/blobs/{id}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("request");
    let (s, _, b) = send(app, req).await;
    (s, json(&b))
}

/// A PUT whose body streams in `chunks` without a Content-Length.
async fn put_stream(
    app: &Router,
    id: &ModelId,
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> (StatusCode, Value) {
    let stream = futures::stream::iter(chunks.into_iter().map(|c| c.map(Bytes::from)));
    let req = Request::put(format!("/v1/blobs/{id}"))
        .body(Body::from_stream(stream))
        .expect("request");
    let (s, _, b) = send(app, req).await;
    (s, json(&b))
}

async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    send(app, Request::get(uri).body(Body::empty()).expect("request")).await
}

fn code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

fn message(v: &Value) -> &str {
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

#[tokio::test]
async fn registered_model_uploads_then_downloads() {
    let mut n = Node::new(DEFAULT_MAX_BLOB_BYTES, true);
    // Larger than the 1 MiB JSON body limit: only this route lifts it.
    let model = model_bytes(3 << 20, 7);
    let id = ModelId::of(&model);
    n.register(manifest(&model, "test/big"));

    let (s, v) = put(&n.app, &id, model.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "stored");
    assert_eq!(v["model_id"], id.to_string());
    assert_eq!(v["size_bytes"], model.len() as u64);

    let (s, h, body) = get(&n.app, &format!("/v1/blobs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_ref(), model.as_slice());
    assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(h[header::CONTENT_LENGTH], model.len().to_string().as_str());
    assert_eq!(h[header::ETAG], format!("\"{id}\"").as_str());

    let req = Request::head(format!("/v1/blobs/{id}"))
        .body(Body::empty())
        .expect("request");
    let (s, h, body) = send(&n.app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(h[header::CONTENT_LENGTH], model.len().to_string().as_str());

    // Again: already there, 200 and nothing rewritten.
    let before = files(&n.blob_dir());
    let (s, v) = put(&n.app, &id, model.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "present");
    assert_eq!(files(&n.blob_dir()), before);

    // A streamed upload (no Content-Length) works too.
    let small = model_bytes(100_000, 9);
    let small_id = ModelId::of(&small);
    n.register(manifest(&small, "test/small"));
    let chunks = small.chunks(7_000).map(|c| Ok(c.to_vec())).collect();
    let (s, v) = put_stream(&n.app, &small_id, chunks).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, _, body) = get(&n.app, &format!("/v1/blobs/{small_id}")).await;
    assert_eq!(body.as_ref(), small.as_slice());
}

#[tokio::test]
async fn unregistered_model_is_refused() {
    let n = Node::new(DEFAULT_MAX_BLOB_BYTES, true);
    let model = model_bytes(1000, 1);
    let id = ModelId::of(&model);
    let (s, v) = put(&n.app, &id, model).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(code(&v), "model_not_registered");
    assert!(message(&v).contains(&id.to_string()), "{v}");
    assert_eq!(files(&n.blob_dir()), Vec::<PathBuf>::new());
    let (s, _, b) = get(&n.app, &format!("/v1/blobs/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&json(&b)), "blob_not_found");
}

#[tokio::test]
async fn wrong_content_is_400_and_stores_nothing() {
    let mut n = Node::new(DEFAULT_MAX_BLOB_BYTES, true);
    let model = model_bytes(50_000, 3);
    let id = ModelId::of(&model);
    n.register(manifest(&model, "test/model"));

    // Same length, one byte flipped: the hash names both ids.
    let mut bad = model.clone();
    bad[12_345] ^= 1;
    let bad_id = ModelId::of(&bad);
    let (s, v) = put(&n.app, &id, bad.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), "hash_mismatch");
    assert!(message(&v).contains(&id.to_string()), "{v}");
    assert!(message(&v).contains(&bad_id.to_string()), "{v}");
    assert_eq!(files(&n.blob_dir()), Vec::<PathBuf>::new());

    // Streamed and shorter: a hash mismatch too.
    let (s, v) = put_stream(&n.app, &id, vec![Ok(model[..1000].to_vec())]).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "hash_mismatch"));

    // Declared length other than the manifest's.
    let (s, v) = put(&n.app, &id, model[..49_999].to_vec()).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "size_mismatch"));
    assert!(message(&v).contains("50000"), "{v}");

    // Streamed past the manifest's length: cut off.
    let chunks = vec![Ok(model.clone()), Ok(vec![0u8; 10])];
    let (s, v) = put_stream(&n.app, &id, chunks).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "size_mismatch"));

    // A body that breaks half way.
    let chunks = vec![
        Ok(model[..20_000].to_vec()),
        Err(std::io::Error::other("connection reset")),
    ];
    let (s, v) = put_stream(&n.app, &id, chunks).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_body"), "{v}");
    assert!(message(&v).contains("20000"), "{v}");

    assert_eq!(files(&n.blob_dir()), Vec::<PathBuf>::new());
    // The right bytes still go in afterwards.
    let (s, v) = put(&n.app, &id, model).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn over_the_blob_limit_is_413() {
    let mut n = Node::new(4096, true);
    // A registered model larger than this node keeps.
    let big = model_bytes(5000, 4);
    let big_id = ModelId::of(&big);
    n.register(manifest(&big, "test/big"));
    let (s, v) = put(&n.app, &big_id, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(code(&v), "blob_too_large");
    assert!(message(&v).contains("4096"), "{v}");

    // A model within the limit, sent with a Content-Length over it.
    let small = model_bytes(1000, 5);
    let small_id = ModelId::of(&small);
    n.register(manifest(&small, "test/small"));
    let mut body = small.clone();
    body.resize(5000, 0);
    let (s, v) = put(&n.app, &small_id, body).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "blob_too_large")
    );
    assert_eq!(files(&n.blob_dir()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn odd_requests() {
    let n = Node::new(DEFAULT_MAX_BLOB_BYTES, true);
    let (s, _, b) = get(&n.app, "/v1/blobs/blake3:zz").await;
    assert_eq!(
        (s, code(&json(&b))),
        (StatusCode::BAD_REQUEST, "bad_model_id")
    );
    let req = Request::delete(format!("/v1/blobs/{}", ModelId::of(b"x")))
        .body(Body::empty())
        .expect("request");
    let (s, _, b) = send(&n.app, req).await;
    assert_eq!(
        (s, code(&json(&b))),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    // A node without a blob store.
    let app = router(Api::new(chain_of(&genesis(), true)));
    let (s, _, b) = get(&app, &format!("/v1/blobs/{}", ModelId::of(b"x"))).await;
    assert_eq!(
        (s, code(&json(&b))),
        (StatusCode::NOT_FOUND, "no_blob_store")
    );

    // The chain's params, for pricing transactions.
    let (s, _, b) = get(&n.app, "/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    let params: Params = serde_json::from_value(json(&b)["params"].clone()).expect("params");
    assert_eq!(params, Params::default());
}

#[tokio::test]
async fn replaying_node_takes_no_uploads() {
    let mut n = Node::new(DEFAULT_MAX_BLOB_BYTES, false);
    let model = model_bytes(1000, 6);
    let id = ModelId::of(&model);
    n.register(manifest(&model, "test/model"));
    let (s, v) = put(&n.app, &id, model.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    );
    n.chain.set_ready();
    let (s, v) = put(&n.app, &id, model).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn corrupt_stored_blob_is_never_served_whole() {
    let mut n = Node::new(DEFAULT_MAX_BLOB_BYTES, true);
    let model = model_bytes(200_000, 8);
    let id = ModelId::of(&model);
    n.register(manifest(&model, "test/model"));
    let (s, _) = put(&n.app, &id, model.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let blobs = Blobs::open(n.blob_dir(), DEFAULT_MAX_BLOB_BYTES).expect("store");
    let mut rotten = model;
    rotten[150_000] ^= 0x40;
    std::fs::write(blobs.store().path(&id), &rotten).expect("corrupt the blob");

    let res = n
        .app
        .clone()
        .oneshot(
            Request::get(format!("/v1/blobs/{id}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await;
    let e = body.expect_err("a corrupt blob's download ends in an error");
    assert!(format!("{e:?}").contains("corrupt"), "{e:?}");
}

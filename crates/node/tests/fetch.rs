//! Fetching a model from peers, verified slice by slice: real node APIs and
//! misbehaving fakes on loopback. A peer that lies, lacks the blob, hangs,
//! refuses connections or answers too much is named and the next peer
//! used; when all fail the error names each and the store keeps nothing.
//! Also the slice route's answers to bad requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as AxPath, Query, State as AxState};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use commonware_consensus::types::{Epoch, Height, Round, View};
use commonware_cryptography::{Signer, ed25519, sha256};
use glassbox_ledger::{GenesisAccount, GenesisState, Params, State};
use glassbox_node::api::{
    Api, BLOB_SIZE_HEADER, Blobs, DEFAULT_MAX_BLOB_BYTES, MAX_SLICE_BYTES, router_with_blobs,
};
use glassbox_node::chain::Chain;
use glassbox_node::chain::mempool::MempoolLimits;
use glassbox_node::consensus::Context;
use glassbox_node::consensus::block::Block;
use glassbox_node::executor::fetch::{
    FetchError, FetchOptions, PeerError, PeerFailure, TENSOR_FETCH_CONCURRENCY, fetch_blob,
    fetch_tensor,
};
use glassbox_store::stream::{CHUNK_GROUP_BYTES, max_encoded_len, verify_slice};
use glassbox_store::{BlobStore, SliceRequest};
use glassbox_types::{ModelId, SecretKey};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

const GENESIS_TIME: u64 = 1_700_000_000_000;
/// Slices of 64 KiB: a few hundred KB model takes several.
const SLICE_BYTES: u64 = 4 * CHUNK_GROUP_BYTES;
/// Per-slice timeout in the tests: short, so a hanging peer costs little.
const TIMEOUT_MS: u64 = 1_500;
/// An odd size: the last slice is partial and ends mid chunk group.
const MODEL_BYTES: usize = 300_001;

fn opts() -> FetchOptions {
    FetchOptions {
        timeout_ms: TIMEOUT_MS,
        slice_bytes: SLICE_BYTES,
        max_bytes: DEFAULT_MAX_BLOB_BYTES,
    }
}

fn model_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

fn chain() -> Arc<Chain> {
    let genesis = GenesisState {
        chain_name: "fetch-test".into(),
        genesis_time_ms: GENESIS_TIME,
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: SecretKey::from_seed(&[1; 32]).public(),
            balance: 1_000_000_000_000,
        }],
        executors: Vec::new(),
    };
    let state = State::genesis(&genesis).expect("valid genesis");
    let context = Context {
        round: Round::new(Epoch::zero(), View::new(0)),
        leader: ed25519::PrivateKey::from_seed(0).public_key(),
        parent: (View::new(0), sha256::Digest::from([0u8; 32])),
    };
    let block = Block::new(
        context,
        sha256::Digest::from([0u8; 32]),
        Height::zero(),
        GENESIS_TIME,
        Vec::new(),
        state.root(),
    );
    let chain = Arc::new(Chain::new(block, state, MempoolLimits::default()));
    chain.set_ready();
    chain
}

/// A temp blob store, optionally holding `blob`.
fn store_with(blob: Option<&[u8]>) -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path().join("blobs"), DEFAULT_MAX_BLOB_BYTES).expect("store");
    if let Some(b) = blob {
        store.put_bytes(b).expect("put");
    }
    (dir, store)
}

/// A node's API router over `store`.
fn node_app(store: &BlobStore) -> Router {
    router_with_blobs(Api::new(chain()), Some(Blobs::new(store.clone())))
}

/// Serves `app` on a loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A node holding `blob` (its base URL; keep the dir alive).
async fn good_peer(blob: &[u8]) -> (tempfile::TempDir, String) {
    let (dir, store) = store_with(Some(blob));
    let url = serve(node_app(&store)).await;
    (dir, url)
}

/// A node that does not have the blob: 404.
async fn empty_peer() -> (tempfile::TempDir, String) {
    let (dir, store) = store_with(None);
    let url = serve(node_app(&store)).await;
    (dir, url)
}

#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Flip the last byte (data) of slices from this offset on.
    FlipFrom(u64),
    /// Cut 100 bytes off the end of every slice.
    Truncate,
    /// Answer one byte more than any valid encoding.
    Oversize,
}

#[derive(Clone)]
struct Liar {
    store: BlobStore,
    lie: Lie,
}

#[derive(Deserialize)]
struct SliceQ {
    offset: u64,
    len: u64,
}

async fn lying_slice(
    AxState(l): AxState<Liar>,
    AxPath(id): AxPath<String>,
    Query(q): Query<SliceQ>,
) -> Response {
    let id: ModelId = id.parse().expect("model id");
    let req = SliceRequest {
        offset: q.offset,
        len: q.len,
    };
    let mut enc = l
        .store
        .encode_slice(&id, req, MAX_SLICE_BYTES)
        .expect("encode");
    match l.lie {
        Lie::FlipFrom(from) => {
            if q.offset >= from
                && let Some(b) = enc.last_mut()
            {
                *b ^= 0x01;
            }
        }
        Lie::Truncate => enc.truncate(enc.len().saturating_sub(100)),
        Lie::Oversize => enc.resize(max_encoded_len(q.len) as usize + 1, 0),
    }
    Body::from(enc).into_response()
}

/// A peer holding the blob that answers slices with `lie`.
async fn lying_peer(blob: &[u8], lie: Lie) -> (tempfile::TempDir, String) {
    let (dir, store) = store_with(Some(blob));
    let app = Router::new()
        .route("/v1/blobs/{id}/slice", get(lying_slice))
        .with_state(Liar { store, lie });
    (dir, serve(app).await)
}

/// A peer that accepts connections and never answers.
async fn hanging_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

/// A port nobody listens on.
async fn refusing_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// Every file under `dir` (a failed fetch must leave none).
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

fn failures_of<'a>(fs: &'a [PeerFailure], peer: &str) -> Vec<&'a PeerFailure> {
    fs.iter().filter(|f| f.peer == peer).collect()
}

/// The store holds exactly `model`, verified, with its outboard.
fn assert_stored(store: &BlobStore, model: &[u8]) {
    let id = ModelId::of(model);
    assert_eq!(store.get(&id).expect("stored and verified"), model);
    assert_eq!(
        ModelId::of(&std::fs::read(store.path(&id)).expect("read")),
        id
    );
    assert!(store.outboard_path(&id).is_file());
}

#[tokio::test]
async fn fetches_through_a_peer_without_the_blob() {
    let model = model_bytes(MODEL_BYTES, 1);
    let id = ModelId::of(&model);
    let (_e, empty) = empty_peer().await;
    let (_g, good) = good_peer(&model).await;
    let (_d, store) = store_with(None);

    let peers = vec![empty.clone(), good.clone()];
    let report = fetch_blob(&store, &id, model.len() as u64, &peers, opts())
        .await
        .expect("fetched");
    assert_eq!(report.size_bytes, model.len() as u64);
    assert!(!report.already_present);
    assert_eq!(report.slices, (model.len() as u64).div_ceil(SLICE_BYTES));
    assert_stored(&store, &model);

    // The empty peer was asked once, answered 404 and was dropped.
    assert_eq!(report.peer_failures.len(), 1, "{:?}", report.peer_failures);
    let f = &report.peer_failures[0];
    assert_eq!(f.peer, empty);
    assert_eq!(f.offset, 0);
    assert!(
        matches!(&f.reason, PeerError::Status { status: 404, message } if message.contains("blob_not_found")),
        "{f}"
    );

    // Again: already there, nothing asked.
    let report = fetch_blob(&store, &id, model.len() as u64, &peers, opts())
        .await
        .expect("present");
    assert!(report.already_present);
    assert_eq!(report.slices, 0);
}

#[tokio::test]
async fn a_lying_peer_is_caught_and_the_next_used() {
    let model = model_bytes(MODEL_BYTES, 2);
    let id = ModelId::of(&model);
    let (_g, good) = good_peer(&model).await;

    for lie in [
        Lie::FlipFrom(0),
        // Honest for the first two slices, then lies mid-download.
        Lie::FlipFrom(2 * SLICE_BYTES),
        Lie::Truncate,
        Lie::Oversize,
    ] {
        let (_l, liar) = lying_peer(&model, lie).await;
        let (_d, store) = store_with(None);
        let peers = vec![liar.clone(), good.clone()];
        let report = fetch_blob(&store, &id, model.len() as u64, &peers, opts())
            .await
            .unwrap_or_else(|e| panic!("{lie:?}: {e}"));
        assert_stored(&store, &model);

        // Caught once, on the first bad slice, and never asked again.
        let fs = failures_of(&report.peer_failures, &liar);
        assert_eq!(fs.len(), 1, "{lie:?}: {:?}", report.peer_failures);
        assert_eq!(report.peer_failures.len(), 1, "{lie:?}");
        let f = fs[0];
        let want_offset = match lie {
            Lie::FlipFrom(from) => from,
            _ => 0,
        };
        assert_eq!(f.offset, want_offset, "{lie:?}: {f}");
        match lie {
            Lie::Oversize => assert!(matches!(f.reason, PeerError::TooLong { .. }), "{f}"),
            _ => assert!(matches!(f.reason, PeerError::Corrupt(_)), "{lie:?}: {f}"),
        }
        assert!(f.reason.is_fatal());
        assert!(f.to_string().contains(&liar), "{f}");
    }
}

#[tokio::test]
async fn hanging_refusing_and_malformed_peers_are_skipped() {
    let model = model_bytes(MODEL_BYTES, 3);
    let id = ModelId::of(&model);
    let hang = hanging_peer().await;
    let refused = refusing_peer().await;
    let (_g, good) = good_peer(&model).await;
    let (_d, store) = store_with(None);
    let peers = vec![
        "ftp://example.invalid".to_string(),
        "not a url".to_string(),
        hang.clone(),
        refused.clone(),
        format!("{good}/"),
    ];
    let started = Instant::now();
    let report = fetch_blob(&store, &id, model.len() as u64, &peers, opts())
        .await
        .expect("fetched");
    assert_stored(&store, &model);
    // One timeout, not one per slice: the good peer is kept once found.
    assert!(
        started.elapsed() < Duration::from_millis(10 * TIMEOUT_MS),
        "{:?}",
        started.elapsed()
    );
    let fs = &report.peer_failures;
    assert_eq!(fs.len(), 4, "{fs:?}");
    assert!(matches!(fs[0].reason, PeerError::BadUrl(_)), "{}", fs[0]);
    assert!(matches!(fs[1].reason, PeerError::BadUrl(_)), "{}", fs[1]);
    assert_eq!(fs[2].peer, hang);
    assert!(
        matches!(
            fs[2].reason,
            PeerError::Timeout {
                timeout_ms: TIMEOUT_MS
            }
        ),
        "{}",
        fs[2]
    );
    assert_eq!(fs[3].peer, refused);
    assert!(matches!(fs[3].reason, PeerError::Transport(_)), "{}", fs[3]);
}

#[tokio::test]
async fn all_peers_failing_names_each_and_stores_nothing() {
    let model = model_bytes(MODEL_BYTES, 4);
    let id = ModelId::of(&model);
    let (_l, liar) = lying_peer(&model, Lie::FlipFrom(SLICE_BYTES)).await;
    let (_e, empty) = empty_peer().await;
    let (_o, oversize) = lying_peer(&model, Lie::Oversize).await;
    let hang = hanging_peer().await;
    let refused = refusing_peer().await;
    let (dir, store) = store_with(None);
    let peers = vec![
        liar.clone(),
        empty.clone(),
        oversize.clone(),
        hang.clone(),
        refused.clone(),
    ];
    let e = fetch_blob(&store, &id, model.len() as u64, &peers, opts())
        .await
        .expect_err("no peer serves the whole model");
    let FetchError::AllPeersFailed {
        model_id,
        offset,
        len,
        failures,
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(*model_id, id);
    // The liar served the first slice; the second is where all failed.
    assert_eq!((*offset, *len), (SLICE_BYTES, SLICE_BYTES));
    let named: Vec<&str> = failures.iter().map(|f| f.peer.as_str()).collect();
    assert_eq!(named, peers.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(matches!(failures[0].reason, PeerError::Corrupt(_)));
    assert!(matches!(
        failures[1].reason,
        PeerError::Status { status: 404, .. }
    ));
    assert!(matches!(failures[2].reason, PeerError::TooLong { .. }));
    assert!(matches!(failures[3].reason, PeerError::Timeout { .. }));
    assert!(matches!(failures[4].reason, PeerError::Transport(_)));
    let text = e.to_string();
    for p in &peers {
        assert!(text.contains(p.as_str()), "{p} not named in: {text}");
    }
    assert!(text.contains(&id.to_string()), "{text}");
    // No blob, no outboard, no temp file.
    assert!(!store.contains(&id));
    assert_eq!(files(&dir.path().join("blobs")), Vec::<PathBuf>::new());

    // The wrong size for the id (a bad manifest): every slice fails
    // verification, nothing is stored.
    let (_g, good) = good_peer(&model).await;
    let e = fetch_blob(
        &store,
        &id,
        model.len() as u64 + 1,
        std::slice::from_ref(&good),
        opts(),
    )
    .await
    .expect_err("wrong size");
    assert!(matches!(e, FetchError::AllPeersFailed { .. }), "{e}");
    assert!(e.to_string().contains(&good), "{e}");
    assert_eq!(files(&dir.path().join("blobs")), Vec::<PathBuf>::new());
}

/// Finding "fetches try tarpit peers one after another past the
/// verifier's deadline" (issue #25): executors register their own
/// endpoints, so a dozen that accept and never answer cost a dozen
/// timeouts before the one peer that serves. Peers are asked at once now.
#[tokio::test]
async fn tarpit_peers_cost_one_timeout_not_one_each() {
    let c = chain();
    let t = glassbox_runtime::formats::canonical_encode(
        &glassbox_runtime::Tensor::from_vec(vec![4], vec![1.5f32; 4]).unwrap(),
    );
    let hash = c.offchain().put_tensor(t.clone()).unwrap();
    let good = serve(router_with_blobs(Api::new(c), None)).await;
    let mut peers = Vec::new();
    for _ in 0..12 {
        peers.push(hanging_peer().await);
    }
    peers.push(good);
    assert!(peers.len() <= TENSOR_FETCH_CONCURRENCY);
    let timeout_ms = 1_000;
    let start = Instant::now();
    let got = fetch_tensor(&peers, &hash, 1 << 20, timeout_ms)
        .await
        .unwrap();
    assert_eq!(got, t);
    // One after another it took 12 timeouts (12 s).
    assert!(
        start.elapsed() < Duration::from_millis(3 * timeout_ms),
        "{:?}",
        start.elapsed()
    );
    // Nobody serving: every peer named, within one timeout per batch.
    let absent = glassbox_primitives::TensorHash::from_bytes([7; 32]);
    let start = Instant::now();
    let err = fetch_tensor(&peers, &absent, 1 << 20, timeout_ms)
        .await
        .unwrap_err();
    assert_eq!(err.matches("no answer within").count(), 12, "{err}");
    assert!(start.elapsed() < Duration::from_millis(3 * timeout_ms));
}

#[tokio::test]
async fn options_and_limits_are_checked_first() {
    let model = model_bytes(1000, 5);
    let id = ModelId::of(&model);
    let (_d, store) = store_with(None);
    let peers = vec!["http://127.0.0.1:9".to_string()];
    let e = fetch_blob(&store, &id, 1000, &[], opts())
        .await
        .expect_err("no peers");
    assert!(matches!(e, FetchError::NoPeers { .. }), "{e}");
    let e = fetch_blob(
        &store,
        &id,
        1000,
        &peers,
        FetchOptions {
            max_bytes: 999,
            ..opts()
        },
    )
    .await
    .expect_err("too large");
    assert!(
        matches!(
            e,
            FetchError::TooLarge {
                size_bytes: 1000,
                max_bytes: 999,
                ..
            }
        ),
        "{e}"
    );
    for bad in [
        FetchOptions {
            slice_bytes: CHUNK_GROUP_BYTES - 1,
            ..opts()
        },
        FetchOptions {
            slice_bytes: MAX_SLICE_BYTES + 1,
            ..opts()
        },
        FetchOptions {
            timeout_ms: 0,
            ..opts()
        },
    ] {
        let e = fetch_blob(&store, &id, 1000, &peers, bad)
            .await
            .expect_err("bad options");
        assert!(matches!(e, FetchError::BadOptions(_)), "{e}");
    }

    // An empty model needs no slices; a small one fits in one.
    let (_g, good) = good_peer(&model).await;
    let report = fetch_blob(&store, &id, 1000, std::slice::from_ref(&good), opts())
        .await
        .expect("fetched");
    assert_eq!(report.slices, 1);
    assert_stored(&store, &model);
    let empty_id = ModelId::of(b"");
    let report = fetch_blob(&store, &empty_id, 0, &peers, opts())
        .await
        .expect("empty blob");
    assert_eq!((report.slices, report.size_bytes), (0, 0));
    assert_stored(&store, b"");
}

// ---- the slice route ----------------------------------------------------------

async fn get_slice(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, body)
}

fn code(body: &Bytes) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)));
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
        .to_string()
}

#[tokio::test]
async fn slice_route_serves_verified_slices_and_refuses_bad_ones() {
    let model = model_bytes(MODEL_BYTES, 6);
    let id = ModelId::of(&model);
    let size = model.len() as u64;
    let (_d, store) = store_with(Some(&model));
    let app = node_app(&store);

    for (offset, len) in [(0, 1), (12_345, 70_000), (size - 1, 1), (0, size)] {
        let (s, h, body) = get_slice(
            &app,
            &format!("/v1/blobs/{id}/slice?offset={offset}&len={len}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{offset}+{len}");
        assert_eq!(h[BLOB_SIZE_HEADER], size.to_string().as_str());
        assert!(body.len() as u64 <= max_encoded_len(len));
        let req = SliceRequest { offset, len };
        let got = verify_slice(&id, size, req, &body, MAX_SLICE_BYTES).expect("verifies");
        let (a, b) = (offset as usize, (offset + len) as usize);
        assert_eq!(got, &model[a..b]);
    }

    let base = format!("/v1/blobs/{id}/slice");
    for (query, want) in [
        (format!("offset={size}&len=1"), "bad_range"),
        (format!("offset={}&len=2", size - 1), "bad_range"),
        ("offset=0&len=0".to_string(), "bad_range"),
        (format!("offset={}&len=2", u64::MAX), "bad_range"),
        (
            format!("offset=0&len={}", MAX_SLICE_BYTES + 1),
            "slice_too_large",
        ),
        (format!("offset=0&len={}", u64::MAX), "slice_too_large"),
        ("offset=0".to_string(), "bad_query"),
        ("len=5".to_string(), "bad_query"),
        (String::new(), "bad_query"),
        ("offset=-1&len=5".to_string(), "bad_query"),
        ("offset=x&len=5".to_string(), "bad_query"),
        ("offset=0&len=18446744073709551616".to_string(), "bad_query"),
        ("offset=0&len=5&extra=1".to_string(), "bad_query"),
    ] {
        let (s, _, body) = get_slice(&app, &format!("{base}?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "?{query}");
        assert_eq!(code(&body), want, "?{query}");
    }

    let (s, _, body) = get_slice(&app, "/v1/blobs/blake3:zz/slice?offset=0&len=1").await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_model_id")
    );
    let other = ModelId::of(b"absent");
    let (s, _, body) = get_slice(&app, &format!("/v1/blobs/{other}/slice?offset=0&len=1")).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "blob_not_found")
    );

    // A stored blob gone bad is never served.
    let mut rotten = model.clone();
    rotten[100_000] ^= 0x40;
    std::fs::write(store.path(&id), &rotten).expect("corrupt the blob");
    let (s, _, body) = get_slice(&app, &format!("{base}?offset=98304&len=16384")).await;
    assert_eq!(
        (s, code(&body).as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
    );
    // Slices elsewhere still verify (the proof does not need the rotten group).
    let (s, _, body) = get_slice(&app, &format!("{base}?offset=0&len=16384")).await;
    assert_eq!(s, StatusCode::OK);
    let req = SliceRequest {
        offset: 0,
        len: 16_384,
    };
    verify_slice(&id, size, req, &body, MAX_SLICE_BYTES).expect("untouched group verifies");
}

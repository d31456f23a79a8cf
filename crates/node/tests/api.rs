//! The HTTP API end to end on the router (no network): submission and its
//! errors, transaction status, blocks, state queries with proofs checked
//! the way a light client checks them, readiness, and odd input.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use commonware_cryptography::{Digestible, Hasher, Sha256};
use glassbox_ledger::{Account, ModelRecord, Proof, SignedTx, StateKey, TxBody, verify_proof};
use glassbox_node::api::ApiLimits;
use glassbox_node::chain::MAX_RECENT_BLOCKS;
use glassbox_primitives::{ChainId, StateRoot};
use glassbox_types::{ModelId, PublicKey, hex};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::*;

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let value: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(ct.as_deref(), Some("application/json"), "{status} {value}");
    (status, value)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Request::get(uri).body(Body::empty()).expect("request")).await
}

async fn post_raw(app: &Router, body: impl Into<Body>) -> (StatusCode, Value) {
    send(
        app,
        Request::post("/v1/tx")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .expect("request"),
    )
    .await
}

async fn submit(app: &Router, tx: &SignedTx) -> (StatusCode, Value) {
    post_raw(app, json!({ "tx": hex(tx.encoded()) }).to_string()).await
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

fn error_message(v: &Value) -> &str {
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

fn unhex(s: &str) -> Vec<u8> {
    glassbox_types::unhex_vec(s, usize::MAX).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn state_root(v: &Value) -> StateRoot {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Checks a single-record answer the way a light client does: the key is
/// the expected one, the proof verifies the record (or its absence)
/// against the answer's state root, and a tampered proof or record fails.
/// Returns the record bytes.
fn check_proven(v: &Value, key: &StateKey) -> Option<Vec<u8>> {
    let root = state_root(&v["state_root"]);
    assert_eq!(v["key"], hex(&key.to_bytes()), "{v}");
    let record = v["record"].as_str().map(unhex);
    assert_eq!(record.is_none(), v["value"].is_null(), "{v}");
    let proof: Proof = serde_json::from_value(v["proof"].clone()).expect("proof json");
    let k = key.to_bytes();
    verify_proof(&root, &k, record.as_deref(), &proof).expect("proof verifies");

    // A tampered proof fails.
    let mut bad = proof.clone();
    match bad.siblings.first_mut() {
        Some(s) => s[0] ^= 1,
        None => bad.siblings.push([7; 32]),
    }
    assert!(verify_proof(&root, &k, record.as_deref(), &bad).is_err());
    // So does another root, or a claim the other way round.
    let mut other_root = root.to_bytes();
    other_root[31] ^= 1;
    let other_root = StateRoot::from_bytes(other_root);
    assert!(verify_proof(&other_root, &k, record.as_deref(), &proof).is_err());
    match &record {
        Some(r) => {
            let mut r2 = r.clone();
            r2[0] ^= 1;
            assert!(verify_proof(&root, &k, Some(&r2), &proof).is_err());
            assert!(verify_proof(&root, &k, None, &proof).is_err());
        }
        None => assert!(verify_proof(&root, &k, Some(b"forged"), &proof).is_err()),
    }
    record
}

// ---- submission -------------------------------------------------------------

#[tokio::test]
async fn submit_then_pending_then_duplicate() {
    let n = node();
    let tx = transfer(1, 0, 2, 10);
    let (s, v) = submit(&n.app, &tx).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["tx_hash"], tx.hash().to_string());
    assert_eq!(n.chain.mempool_len(), 1);

    let (s, v) = get(&n.app, &format!("/v1/tx/{}", tx.hash())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["tx_hash"], tx.hash().to_string());
    // Bare hex works too.
    let bare = tx.hash().to_string().replace("tx:", "");
    let (s, v) = get(&n.app, &format!("/v1/tx/{bare}")).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("pending")));

    // The same transaction again.
    let (s, v) = submit(&n.app, &tx).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(error_code(&v), "already_pending");
    // Another transaction with the same nonce.
    let (s, v) = submit(&n.app, &transfer(1, 0, 3, 10)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(error_code(&v), "nonce_pending");
    assert_eq!(n.chain.mempool_len(), 1);

    let (s, v) = get(&n.app, "/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["mempool_size"], 1);
}

#[tokio::test]
async fn malformed_submissions_are_400_and_change_nothing() {
    let n = node();
    let good = hex(transfer(1, 0, 2, 10).encoded());
    let at = format!("character {}", good.len() - 2);
    let cases: Vec<(String, &str, &str)> = vec![
        ("not json".into(), "bad_json", "line 1"),
        ("{\"tx\": 5}".into(), "bad_json", "column"),
        ("{}".into(), "bad_json", "missing field `tx`"),
        (
            json!({"tx": good, "extra": 1}).to_string(),
            "bad_json",
            "unknown field",
        ),
        (json!({"tx": ""}).to_string(), "bad_hex", "empty"),
        (json!({"tx": "abc"}).to_string(), "bad_hex", "odd number"),
        (
            json!({"tx": format!("{}zz", &good[..good.len() - 2])}).to_string(),
            "bad_hex",
            &at,
        ),
        (
            json!({"tx": "00ff00ff"}).to_string(),
            "bad_tx",
            "transaction",
        ),
        (
            json!({"tx": format!("{good}00")}).to_string(),
            "bad_tx",
            "transaction",
        ),
        (
            json!({"tx": &good[..good.len() - 2]}).to_string(),
            "bad_tx",
            "transaction",
        ),
    ];
    for (body, code, needle) in &cases {
        let (s, v) = post_raw(&n.app, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(error_code(&v), *code, "{body}: {v}");
        assert!(error_message(&v).contains(needle), "{body}: {v}");
    }
    assert_eq!(n.chain.mempool_len(), 0);
    // Upper-case hex is accepted.
    let (s, v) = post_raw(&n.app, json!({ "tx": good.to_uppercase() }).to_string()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn inadmissible_transactions_are_422_and_change_nothing() {
    let n = node();
    let chain_id = n.chain.finalized().state.chain_id();
    let body = TxBody::Transfer {
        to: addr(2),
        amount: 1,
    };

    // Signed for another chain.
    let other =
        SignedTx::sign(&ChainId::from_bytes([9; 32]), &key(1), 0, FEE, body.clone()).expect("sign");
    // A valid transaction with its signature altered.
    let good = transfer(1, 0, 2, 1);
    let mut bytes = good.encoded().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = SignedTx::decode(&bytes).expect("still decodes");
    let cheap = SignedTx::sign(&chain_id, &key(1), 0, 1, body.clone()).expect("sign");
    let stranger = SignedTx::sign(&chain_id, &key(42), 0, FEE, body.clone()).expect("sign");
    let broke = SignedTx::sign(&chain_id, &key(1), 0, BALANCE + 1, body).expect("sign");

    for (tx, code) in [
        (&other, "bad_signature"),
        (&forged, "bad_signature"),
        (&cheap, "fee_too_low"),
        (&stranger, "unknown_sender"),
        (&broke, "insufficient_fee_balance"),
    ] {
        let (s, v) = submit(&n.app, tx).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {v}");
        assert_eq!(error_code(&v), code, "{v}");
        assert!(!error_message(&v).is_empty());
        assert_eq!(n.chain.mempool_len(), 0, "{code}");
        let (s, _) = get(&n.app, &format!("/v1/tx/{}", tx.hash())).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{code}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    // The default limit (1 MiB).
    let n = node();
    let big = format!("{{\"tx\": \"{}\"}}", "00".repeat(600 << 10));
    let (s, v) = post_raw(&n.app, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(error_code(&v), "body_too_large");
    assert!(
        error_message(&v).contains(&(1usize << 20).to_string()),
        "{v}"
    );

    // A configured limit, with and without a Content-Length.
    let n = node_with(
        ApiLimits {
            max_body_bytes: 512,
            ..ApiLimits::default()
        },
        true,
    );
    let tx = transfer(1, 0, 2, 10);
    let (s, v) = submit(&n.app, &tx).await;
    assert_eq!(s, StatusCode::ACCEPTED, "a small transaction fits: {v}");
    let body = json!({ "tx": "00".repeat(300) }).to_string();
    let (s, v) = send(
        &n.app,
        Request::post("/v1/tx")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body.clone()))
            .expect("request"),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (s, _) = post_raw(&n.app, body).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(n.chain.mempool_len(), 1);
}

// ---- readiness --------------------------------------------------------------

#[tokio::test]
async fn health_follows_readiness() {
    let n = node_with(ApiLimits::default(), false);
    let res = n
        .app
        .clone()
        .oneshot(
            Request::get("/health")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let (_, v) = get(&n.app, "/health").await;
    assert_eq!(v["status"], "replaying");
    assert_eq!(v["finalized_height"], 0);

    // Submissions wait for the replay; reads are served.
    let (s, v) = submit(&n.app, &transfer(1, 0, 2, 1)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(error_code(&v), "not_ready");
    assert_eq!(n.chain.mempool_len(), 0);
    let (s, v) = get(&n.app, "/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ready"], false);

    n.chain.set_ready();
    let (s, v) = get(&n.app, "/health").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["finalized_height"], 0);
    assert_eq!(v["network_height"], 0);
    let (s, _) = submit(&n.app, &transfer(1, 0, 2, 1)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn health_is_503_when_lagging_the_network_or_stalled() {
    let n = node_with(
        ApiLimits {
            max_lag_blocks: 5,
            max_stall_ms: 50,
            ..ApiLimits::default()
        },
        true,
    );
    let (s, v) = get(&n.app, "/health").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The network certified a height 6 blocks past this node's tip.
    n.chain.note_network_tip(6);
    let (s, v) = get(&n.app, "/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "lagging");
    assert_eq!(v["network_height"], 6);
    assert_eq!(v["finalized_height"], 0);
    assert_eq!(error_code(&v), "lagging");
    // Within the limit again once it finalizes a block.
    finalize(&n.chain, Vec::new());
    let (s, v) = get(&n.app, "/health").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Nothing finalized for longer than the limit.
    std::thread::sleep(std::time::Duration::from_millis(80));
    let (s, v) = get(&n.app, "/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "stalled");
    assert!(v["since_finalized_ms"].as_u64().unwrap() >= 50, "{v}");
    assert!(error_message(&v).contains("no block finalized for"), "{v}");
}

// ---- finalized paths --------------------------------------------------------

#[tokio::test]
async fn finalized_transaction_block_and_state() {
    let n = node();
    let tx = transfer(1, 0, 2, 1_234);
    assert_eq!(submit(&n.app, &tx).await.0, StatusCode::ACCEPTED);
    let block = finalize(&n.chain, vec![tx.clone()]);
    assert_eq!(n.chain.mempool_len(), 0, "finalization prunes the pool");

    let (s, v) = get(&n.app, &format!("/v1/tx/{}", tx.hash())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "finalized");
    assert_eq!(v["height"], 1);
    assert_eq!(v["index"], 0);
    assert_eq!(v["outcome"]["ok"], true, "{v}");
    assert_eq!(v["outcome"]["tx_hash"], tx.hash().to_string());

    // Replayed once finalized: the nonce is used.
    let (s, v) = submit(&n.app, &tx).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_code(&v), "nonce_too_low");

    // Blocks.
    let digest = hex(block.digest().as_ref());
    let (s, latest) = get(&n.app, "/v1/blocks/latest").await;
    assert_eq!(s, StatusCode::OK);
    let (_, one) = get(&n.app, "/v1/blocks/1").await;
    assert_eq!(latest, one);
    assert_eq!(one["height"], 1);
    assert_eq!(one["digest"], digest);
    assert_eq!(one["parent"], hex(n.chain.genesis().digest().as_ref()));
    assert_eq!(one["timestamp_ms"], GENESIS_TIME + 1_000);
    assert_eq!(one["state_root"], block.header().state_root.to_hex());
    assert_eq!(one["txs_root"], hex(&block.header().txs_root));
    assert_eq!(one["txs"], json!([tx.hash().to_string()]));
    assert_eq!(one["tx_count"], 1);
    assert_eq!(one["context"]["view"], 1);
    // The header hashes to the digest: a light client needs only this.
    let header = unhex(one["header"].as_str().expect("header"));
    assert_eq!(hex(Sha256::hash(&[&header]).as_ref()), digest);

    let (s, zero) = get(&n.app, "/v1/blocks/0").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(zero["digest"], hex(n.chain.genesis().digest().as_ref()));
    assert_eq!(zero["txs"], json!([]));
    let (s, v) = get(&n.app, "/v1/blocks/2").await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "block_not_finalized")
    );
    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let (s, v) = get(&n.app, &format!("/v1/blocks/{bad}")).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, "bad_height"),
            "{bad}"
        );
    }

    // Status.
    let (_, st) = get(&n.app, "/v1/status").await;
    assert_eq!(st["finalized_height"], 1);
    assert_eq!(st["block"], digest);
    assert_eq!(st["state_root"], block.header().state_root.to_hex());
    assert_eq!(
        st["chain_id"],
        n.chain.finalized().state.chain_id().to_hex()
    );
    assert_eq!(st["chain_name"], "api-test");
    assert_eq!(st["mempool_size"], 0);
    assert_eq!(st["ready"], true);

    // The account at the new state, proven against block 1's root.
    let (s, v) = get(&n.app, &format!("/v1/accounts/{}", addr(2))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["height"], 1);
    assert_eq!(v["block"], digest);
    assert_eq!(v["state_root"], block.header().state_root.to_hex());
    assert_eq!(v["value"], json!({"balance": BALANCE + 1_234, "nonce": 0}));
    let record = check_proven(&v, &StateKey::Account(addr(2))).expect("present");
    assert_eq!(
        Account::decode(&record).expect("decodes"),
        Account {
            balance: BALANCE + 1_234,
            nonce: 0
        }
    );
    let (_, v) = get(&n.app, &format!("/v1/accounts/{}", addr(1))).await;
    assert_eq!(v["value"]["nonce"], 1);
    check_proven(&v, &StateKey::Account(addr(1)));
}

#[tokio::test]
async fn old_blocks_leave_memory() {
    let n = node();
    for _ in 0..MAX_RECENT_BLOCKS + 1 {
        finalize(&n.chain, Vec::new());
    }
    let tip = MAX_RECENT_BLOCKS as u64 + 1;
    let (s, v) = get(&n.app, "/v1/blocks/1").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(error_code(&v), "block_pruned");
    assert!(
        error_message(&v).contains(&MAX_RECENT_BLOCKS.to_string()),
        "{v}"
    );
    for h in [0, 2, tip] {
        let (s, v) = get(&n.app, &format!("/v1/blocks/{h}")).await;
        assert_eq!(s, StatusCode::OK, "{h}: {v}");
        assert_eq!(v["height"], h);
    }
    let (_, v) = get(&n.app, "/v1/blocks/latest").await;
    assert_eq!(v["height"], tip);
}

// ---- state queries ----------------------------------------------------------

#[tokio::test]
async fn accounts_present_and_absent() {
    let n = node();
    let (s, v) = get(&n.app, &format!("/v1/accounts/{}", addr(1))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["height"], 0);
    assert_eq!(v["block"], hex(n.chain.genesis().digest().as_ref()));
    assert_eq!(v["value"], json!({"balance": BALANCE, "nonce": 0}));
    check_proven(&v, &StateKey::Account(addr(1))).expect("present");

    // Unknown: 200, null, and a proof of absence.
    let (s, v) = get(&n.app, &format!("/v1/accounts/{}", addr(42))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["value"].is_null() && v["record"].is_null(), "{v}");
    assert_eq!(check_proven(&v, &StateKey::Account(addr(42))), None);

    for bad in [
        "nope",
        "ed25519:zz",
        "ed25519:00",
        &addr(1).to_string().replace("ed25519:", ""),
        &"f".repeat(5000),
    ] {
        let (s, v) = get(&n.app, &format!("/v1/accounts/{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(error_code(&v), "bad_address");
        assert!(error_message(&v).len() < 400, "input is clipped: {v}");
    }
}

#[tokio::test]
async fn executors_single_and_paginated() {
    let n = node();
    let (s, v) = get(&n.app, &format!("/v1/executors/{}", addr(8))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"]["owner"], addr(8).to_string());
    assert_eq!(v["value"]["stake"], 5_000_000);
    check_proven(&v, &StateKey::Executor(addr(8))).expect("present");
    let (s, v) = get(&n.app, &format!("/v1/executors/{}", addr(1))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["value"].is_null());
    assert_eq!(check_proven(&v, &StateKey::Executor(addr(1))), None);

    // All three, in owner key order, two pages of two.
    let mut owners: Vec<PublicKey> = [7, 8, 9].into_iter().map(addr).collect();
    owners.sort_by_key(|k| k.to_bytes());
    let (s, all) = get(&n.app, "/v1/executors").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(all["total"], 3);
    assert!(all["next"].is_null());
    let listed: Vec<_> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["owner"].clone())
        .collect();
    let expected: Vec<_> = owners.iter().map(|k| json!(k.to_string())).collect();
    assert_eq!(listed, expected);

    let (_, p1) = get(&n.app, "/v1/executors?limit=2").await;
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(p1["next"], owners[1].to_string());
    let (_, p2) = get(
        &n.app,
        &format!("/v1/executors?limit=2&after={}", owners[1]),
    )
    .await;
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(p2["items"][0]["owner"], owners[2].to_string());
    assert!(p2["next"].is_null());
    let (_, p3) = get(&n.app, &format!("/v1/executors?after={}", owners[2])).await;
    assert_eq!(p3["items"], json!([]));

    for q in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=x",
        "after=bogus",
        "page=2",
    ] {
        let (s, v) = get(&n.app, &format!("/v1/executors?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    let (s, v) = get(&n.app, "/v1/executors?limit=1000").await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn models_by_id_by_name_and_listed() {
    let n = node();
    let chain_id = n.chain.finalized().state.chain_id();
    let (_, v) = get(&n.app, "/v1/models").await;
    assert_eq!(
        (v["total"].clone(), v["items"].clone()),
        (json!(0), json!([]))
    );

    let publish = |nonce: u64, model: &[u8], name: &str, version: &str| {
        SignedTx::sign(
            &chain_id,
            &key(3),
            nonce,
            FEE,
            TxBody::PublishModel {
                manifest: Box::new(manifest(model, name, version, &key(3))),
            },
        )
        .expect("sign")
    };
    let txs = vec![
        publish(0, b"model-a", "org/vision", "1.0.0"),
        publish(1, b"model-b", "org/vision", "1.1.0"),
        publish(2, b"model-c", "tiny", "0.1.0"),
    ];
    for tx in &txs {
        assert_eq!(submit(&n.app, tx).await.0, StatusCode::ACCEPTED);
    }
    let block = finalize(&n.chain, txs);
    let root = block.header().state_root.to_hex();

    // By id.
    let a = ModelId::of(b"model-a");
    let (s, v) = get(&n.app, &format!("/v1/models/{a}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state_root"], root);
    assert_eq!(v["value"]["model_id"], a.to_string());
    assert_eq!(v["value"]["name"], "org/vision");
    assert_eq!(v["value"]["publisher"], addr(3).to_string());
    let record = check_proven(&v, &StateKey::Model(a)).expect("present");
    assert_eq!(
        ModelRecord::decode(&record).expect("decodes").model_id,
        a,
        "the proven bytes are the record"
    );
    let absent = ModelId::of(b"never published");
    let (s, v) = get(&n.app, &format!("/v1/models/{absent}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["value"].is_null());
    assert_eq!(check_proven(&v, &StateKey::Model(absent)), None);
    let (s, v) = get(&n.app, "/v1/models/blake3:xyz").await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_model_id")
    );

    // By name: `/` in the name raw or percent-encoded.
    let b = ModelId::of(b"model-b");
    for uri in [
        "/v1/models/by-name/org/vision/1.1.0",
        "/v1/models/by-name/org%2Fvision/1.1.0",
    ] {
        let (s, v) = get(&n.app, uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        assert_eq!(v["value"]["model_id"], b.to_string(), "{v}");
        assert_eq!(v["value"]["name"], "org/vision");
        assert_eq!(v["value"]["version"], "1.1.0");
        let key = StateKey::ModelVersion {
            name: "org/vision".into(),
            version: "1.1.0".into(),
        };
        let entry = check_proven(&v, &key).expect("present");
        assert_eq!(glassbox_ledger::decode_model_version(&entry), Ok(b));
        let model = &v["model"];
        assert_eq!(model["state_root"], root);
        assert_eq!(model["value"]["model_id"], b.to_string());
        check_proven(model, &StateKey::Model(b)).expect("present");
    }
    let (s, v) = get(&n.app, "/v1/models/by-name/org/vision/9.9.9").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["value"].is_null() && v["model"].is_null(), "{v}");
    let key = StateKey::ModelVersion {
        name: "org/vision".into(),
        version: "9.9.9".into(),
    };
    assert_eq!(check_proven(&v, &key), None);
    for (bad, code) in [
        ("/v1/models/by-name/tiny", "bad_path"),
        ("/v1/models/by-name/tiny/", "bad_path"),
        ("/v1/models/by-name/Upper/1.0.0", "bad_model_name"),
        ("/v1/models/by-name/a//b/1.0.0", "bad_model_name"),
        (
            &format!("/v1/models/by-name/a/{}", "1".repeat(65)),
            "bad_model_version",
        ),
    ] {
        let (s, v) = get(&n.app, bad).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, code),
            "{bad}: {v}"
        );
    }

    // Listed in model id order, summaries without manifests, paginated.
    let mut ids = [a, b, ModelId::of(b"model-c")];
    ids.sort();
    let (_, all) = get(&n.app, "/v1/models").await;
    assert_eq!(all["total"], 3);
    let listed: Vec<_> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["model_id"].clone())
        .collect();
    assert_eq!(
        listed,
        ids.iter().map(|i| json!(i.to_string())).collect::<Vec<_>>()
    );
    assert!(all["items"][0].get("manifest").is_none(), "{all}");
    let (_, p1) = get(&n.app, "/v1/models?limit=1").await;
    assert_eq!(p1["next"], ids[0].to_string());
    let (_, p2) = get(&n.app, &format!("/v1/models?limit=5&after={}", ids[0])).await;
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(2));
    assert!(p2["next"].is_null());
}

// ---- odd input --------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_methods_and_hashes() {
    let n = node();
    let (s, v) = get(&n.app, "/v2/nothing").await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "no_route"));
    let (s, v) = send(
        &n.app,
        Request::delete("/v1/status")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (s, v) = get(&n.app, "/v1/tx").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");

    let unknown = format!("tx:{}", "ab".repeat(32));
    let (s, v) = get(&n.app, &format!("/v1/tx/{unknown}")).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "unknown_tx"));
    for bad in [
        "tx:zz",
        "tx:",
        "blake3:00",
        &"g".repeat(64),
        &"a".repeat(66),
    ] {
        let (s, v) = get(&n.app, &format!("/v1/tx/{bad}")).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, "bad_tx_hash"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn odd_paths_never_fail_the_server() {
    let n = node();
    let long = "9".repeat(10_000);
    let paths = [
        "/v1/accounts/%FF%FE".to_string(),
        "/v1/tx/%00".to_string(),
        "/v1/blocks/%F0%28%8C%BC".to_string(),
        format!("/v1/blocks/{long}"),
        format!("/v1/models/by-name/{long}/{long}"),
        "/v1/models/by-name/%FF/1".to_string(),
        "/v1/executors?limit=%FF".to_string(),
        "/v1/models?after=%FF".to_string(),
        "/v1/models/".to_string(),
        "//".to_string(),
        "/v1/accounts/".to_string(),
    ];
    for p in &paths {
        let (s, v) = get(&n.app, p).await;
        assert!(s.is_client_error(), "{p}: {s} {v}");
        assert!(!error_code(&v).is_empty(), "{p}");
    }
}

#[tokio::test]
async fn jobs_endpoints_refuse_what_is_not_a_job() {
    let n = node();
    let post_job = |body: String| {
        send(
            &n.app,
            Request::post("/v1/jobs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
    };
    // A transfer is not a job: 400, and nothing enters the mempool.
    let t = transfer(1, 0, 2, 5);
    let (status, v) = post_job(json!({ "tx": hex(t.encoded()) }).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_code(&v), "not_a_job");
    assert_eq!(n.chain.mempool_len(), 0);
    // A job on a model that is not published: 422, nothing charged.
    let job = SignedTx::sign(
        &n.chain.finalized_state().chain_id(),
        &key(1),
        0,
        100_000,
        TxBody::SubmitJob {
            model_id: ModelId::of(b"no such model"),
            inputs: vec![],
            replicas: 1,
            max_fee: 1_000_000,
        },
    )
    .expect("sign");
    let (status, v) = post_job(json!({ "tx": hex(job.encoded()) }).to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_code(&v), "unknown_model");
    // Unknown and malformed job ids.
    let (status, v) = get(&n.app, &format!("/v1/jobs/job:{}", "00".repeat(32))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an absent job is proven absent: {v}"
    );
    assert!(v["value"].is_null());
    let (status, v) = get(&n.app, &format!("/v1/jobs/job:{}/receipt", "00".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(error_code(&v), "unknown_job");
    let (status, v) = get(&n.app, "/v1/jobs/job:zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_code(&v), "bad_job_id");
    // This node was given no genesis.
    let (status, v) = get(&n.app, "/v1/genesis").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

// ---- the typed client against the real server --------------------------------

/// Serves `app` on a loopback port; the server task ends with the runtime.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn client(url: &str) -> glassbox_api::Client {
    glassbox_api::Client::new(url, std::time::Duration::from_secs(10)).expect("client")
}

/// Every route the client calls decodes into the shared wire types, state
/// reads come back proof-checked, and refusals keep the node's code.
#[tokio::test]
async fn typed_client_reads_what_the_server_writes() {
    use glassbox_api::wire::{HealthStatus, TxStatus};
    use glassbox_ledger::{Event, JobId};

    let n = node();
    let chain_id = n.chain.finalized().state.chain_id();
    let c = client(&serve(n.app.clone()).await);

    assert_eq!(c.health().await.expect("health").status, HealthStatus::Ok);
    let status = c.status().await.expect("status");
    assert_eq!(status.chain_id, chain_id);
    assert_eq!(status.chain_name, "api-test");
    assert_eq!(status.params.min_executor_stake, 1_000_000);

    let tx = transfer(1, 0, 2, 10);
    let submitted = c.submit_tx(&tx).await.expect("submit");
    assert_eq!(submitted.tx_hash, tx.hash());
    assert!(matches!(
        c.tx_status(&tx.hash()).await.expect("pending"),
        TxStatus::Pending { .. }
    ));
    let again = c.submit_tx(&tx).await.expect_err("duplicate");
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("already_pending"))
    );

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
    c.submit_tx(&publish).await.expect("submit publish");
    let block = finalize(&n.chain, vec![tx.clone(), publish]);

    match c.tx_status(&tx.hash()).await.expect("finalized") {
        TxStatus::Finalized {
            height, outcome, ..
        } => {
            assert_eq!(height, 1);
            let events = outcome.result.expect("the transfer succeeded");
            assert!(
                matches!(events.as_slice(), [Event::Transferred { amount: 10, .. }]),
                "{events:?}"
            );
        }
        other => panic!("not finalized: {other:?}"),
    }
    let latest = c.latest_block().await.expect("latest block");
    assert_eq!(latest, c.block(1).await.expect("block 1"));
    assert_eq!(latest.txs.len(), 2);
    assert_eq!(latest.state_root, block.header().state_root);

    let account = c.account(&addr(2)).await.expect("account");
    assert_eq!(account.state_root, block.header().state_root);
    assert_eq!(account.record.expect("present").balance, BALANCE + 10);
    assert_eq!(c.account(&addr(42)).await.expect("absent").record, None);
    let executor = c.executor(&addr(7)).await.expect("executor");
    assert_eq!(executor.record.expect("present").stake, 5_000_000);
    let page = c.executors(Some(2), None).await.expect("executors");
    assert_eq!((page.total, page.items.len()), (3, 2));
    let rest = c
        .executors(Some(2), Some(&page.items[1].owner))
        .await
        .expect("next page");
    assert_eq!((rest.items.len(), rest.next), (1, None));

    let id = ModelId::of(b"model-a");
    let model = c.model(&id).await.expect("model");
    assert_eq!(model.record.expect("present").model_id, id);
    let by_name = c
        .model_by_name("org/vision", "1.0.0")
        .await
        .expect("by name");
    assert_eq!(by_name.entry.record, Some(glassbox_api::VersionEntry(id)));
    assert_eq!(
        by_name.model.and_then(|m| m.record).map(|m| m.model_id),
        Some(id)
    );
    for (name, version) in [
        ("org/vision", "1.0/0"),
        ("Org", "1.0.0"),
        ("org/vision", ""),
    ] {
        let e = c.model_by_name(name, version).await.expect_err("refused");
        assert!(matches!(e, glassbox_api::Error::Invalid { .. }), "{e}");
    }
    let missing = c
        .model_by_name("org/vision", "9.9.9")
        .await
        .expect("absent");
    assert_eq!((missing.entry.record, missing.model), (None, None));
    let models = c.models(None, None).await.expect("models");
    assert_eq!(models.items[0].name, "org/vision");
    assert_eq!(c.concentration().await.expect("report").height, 1);

    let no_job = JobId::of_tx(tx.hash());
    assert_eq!(c.job(&no_job).await.expect("job").record, None);
    let e = c
        .submit_job(&transfer(1, 1, 2, 1))
        .await
        .expect_err("not a job");
    assert_eq!((e.status(), e.code()), (Some(400), Some("not_a_job")));
    let e = c.block(99).await.expect_err("future block");
    assert_eq!(e.code(), Some("block_not_finalized"));
}

/// A node that lies about a record (or proves another key) is caught by
/// the client's proof check, not believed.
#[tokio::test]
async fn typed_client_rejects_forged_records() {
    let n = node();
    let honest = n.app.clone();
    // Flips one hex digit of `record`, or swaps in another account's key.
    let liar = |forge: fn(&mut Value)| {
        let honest = honest.clone();
        Router::new().fallback(move |req: Request<Body>| {
            let honest = honest.clone();
            async move {
                let res = honest.oneshot(req).await.expect("infallible");
                let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                    .await
                    .expect("body");
                let mut v: Value = serde_json::from_slice(&body).expect("json");
                forge(&mut v);
                axum::Json(v)
            }
        })
    };
    let flip_record = |v: &mut Value| {
        let r = v["record"].as_str().expect("record").to_string();
        let last = if r.ends_with('0') { "1" } else { "0" };
        v["record"] = json!(format!("{}{last}", &r[..r.len() - 1]));
    };
    let other_key = |v: &mut Value| {
        v["key"] = json!(hex(&StateKey::Account(addr(3)).to_bytes()));
    };
    for (forge, what) in [(flip_record as fn(&mut Value), "proof"), (other_key, "key")] {
        let c = client(&serve(liar(forge)).await);
        let e = c.account(&addr(1)).await.expect_err("forged");
        let text = e.to_string();
        assert!(
            matches!(e, glassbox_api::Error::Verify { .. }) && text.contains(what),
            "{text}"
        );
    }
}

/// Connection failures and non-API answers are errors that say where.
#[tokio::test]
async fn typed_client_errors_name_the_url() {
    let second = std::time::Duration::from_secs(1);
    // https:// is spoken (tests/http.rs); other schemes and paths are not.
    assert!(glassbox_api::Client::new("https://example.org", second).is_ok());
    assert!(glassbox_api::Client::new("ftp://example.org", second).is_err());
    assert!(glassbox_api::Client::new("https://example.org/v1", second).is_err());
    assert!(glassbox_api::Client::new("localhost:1", std::time::Duration::from_secs(1)).is_err());
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let e = client(&url).status().await.expect_err("refused");
    assert!(e.to_string().contains(&url), "{e}");
    // A server that answers something else.
    let other = serve(Router::new().fallback(|| async { "not json" })).await;
    let e = client(&other).status().await.expect_err("not the API");
    assert!(e.to_string().contains("does not decode"), "{e}");
}

#[tokio::test]
async fn the_newest_snapshot_is_served_as_bytes_with_its_height() {
    use glassbox_node::api::{Api, router};
    use glassbox_node::consensus::snapshots::NewestSnapshot;
    use std::sync::Arc;
    // No snapshots: 404.
    let n = node();
    let (s, v) = get(&n.app, "/v1/snapshot").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "no_snapshot");
    // None written yet: 404 too.
    let newest = Arc::new(NewestSnapshot::default());
    let mut api = Api::new(n.chain.clone());
    api.snapshots = Some(newest.clone());
    let app = router(api);
    let (s, v) = get(&app, "/v1/snapshot").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "no_snapshot");
    // The newest blob, as is; an older one set later does not replace it.
    newest.set(7000, bytes::Bytes::from_static(b"GBNS blob"));
    newest.set(6000, bytes::Bytes::from_static(b"older"));
    let res = app
        .oneshot(Request::get("/v1/snapshot").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(res.headers()["x-glassbox-snapshot-height"], "7000");
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], b"GBNS blob");
}

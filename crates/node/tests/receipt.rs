//! Frozen receipt fixtures (docs/jobs.md, "Receipt"): a receipt produced by
//! a real local network (`glassbox demo`) and its genesis are checked into
//! `tests/fixtures/`; it must keep verifying offline with this build, and
//! every tampered field must fail with an error that names it.

use std::path::Path;

use glassbox_node::consensus::genesis::NodeGenesis;
use glassbox_node::receipt::{RECEIPT_FORMAT, Receipt};
use serde_json::Value;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load() -> (Value, NodeGenesis) {
    let receipt: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("receipt-v1.json")).unwrap())
            .unwrap();
    let genesis: NodeGenesis =
        serde_json::from_slice(&std::fs::read(fixtures().join("genesis-v1.json")).unwrap())
            .unwrap();
    (receipt, genesis)
}

fn check(receipt: &Value, genesis: &NodeGenesis) -> Result<(), String> {
    let r: Receipt = serde_json::from_value(receipt.clone()).map_err(|e| e.to_string())?;
    let chain_id = genesis.ledger.chain_id().unwrap();
    let identity = genesis.identity().unwrap();
    r.verify(&chain_id, &identity)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Changes one hex digit (the last), keeping the string valid hex.
fn flip_hex(s: &str) -> String {
    let (head, last) = s.split_at(s.len() - 1);
    let c = if last == "0" { "1" } else { "0" };
    format!("{head}{c}")
}

/// Changes a hex digit in the middle (signatures and encodings).
fn flip_hex_mid(s: &str) -> String {
    let mid = s.len() / 2;
    let c = &s[mid..mid + 1];
    let n = if c == "0" { "1" } else { "0" };
    format!("{}{n}{}", &s[..mid], &s[mid + 1..])
}

#[test]
fn the_frozen_receipt_verifies() {
    let (receipt, genesis) = load();
    assert_eq!(receipt["format"], RECEIPT_FORMAT);
    check(&receipt, &genesis).unwrap();
    // Re-serializing gives the same JSON: the format is frozen.
    let r: Receipt = serde_json::from_value(receipt.clone()).unwrap();
    assert_eq!(serde_json::to_value(&r).unwrap(), receipt);
}

#[test]
fn every_tampered_field_fails_naming_it() {
    let (receipt, genesis) = load();
    let obj = receipt.as_object().unwrap();
    let mut checked = 0;
    for (field, value) in obj {
        let mut variants: Vec<Value> = Vec::new();
        match value {
            Value::String(s) if field == "format" => {
                variants.push(Value::String(format!("{s}x")));
            }
            Value::String(s) if field.ends_with("_id") && s.contains(':') => {
                variants.push(Value::String(flip_hex(s)));
            }
            Value::String(s) => {
                variants.push(Value::String(flip_hex(s)));
                variants.push(Value::String(flip_hex_mid(s)));
            }
            Value::Number(n) => variants.push(Value::from(n.as_u64().unwrap() + 1)),
            Value::Array(items) => {
                for i in 0..items.len() {
                    let mut a = items.clone();
                    let s = a[i].as_str().unwrap();
                    a[i] = Value::String(if s.starts_with("ed25519:") {
                        flip_hex(s)
                    } else {
                        flip_hex_mid(s)
                    });
                    variants.push(Value::Array(a));
                }
                if !items.is_empty() {
                    let mut a = items.clone();
                    a.pop();
                    variants.push(Value::Array(a));
                }
            }
            other => panic!("unexpected field {field}: {other}"),
        }
        for v in variants {
            let mut t = receipt.clone();
            t[field.as_str()] = v.clone();
            let err =
                check(&t, &genesis).expect_err(&format!("tampering `{field}` with {v} must fail"));
            let base = field.as_str();
            assert!(
                err.contains(base),
                "tampering `{field}` failed without naming it: {err}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} tampered variants");
}

#[test]
fn another_networks_genesis_rejects_the_receipt() {
    let (receipt, mut genesis) = load();
    genesis.ledger.chain_name = "another-chain".into();
    let err = check(&receipt, &genesis).unwrap_err();
    assert!(err.contains("chain_id"), "{err}");
}

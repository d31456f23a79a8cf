//! `glassbox model publish --node`: a one-validator `glassbox dev` network
//! as a child process; the manifest lands on the ledger, the bytes in the
//! node's blob store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use glassbox_api::VersionEntry;
use glassbox_api::blocking::Client;
use glassbox_api::wire::HealthStatus;
use glassbox_types::ModelId;
use serde_json::Value;

/// Kills the network on drop, so a failing test leaves no process behind.
struct Network {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn glassbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
}

/// A free HTTP port whose successor (the validator's p2p port) is free
/// too, drawn below the ephemeral range so no outgoing connection takes
/// either before the network binds them.
fn free_port() -> u16 {
    glassbox_node::run::free_port_block(2).expect("two free ports")
}

/// The typed client of the network's API.
fn api(url: &str) -> Client {
    Client::new(url, Duration::from_secs(5)).expect("client")
}

impl Network {
    /// Starts `glassbox dev --validators 1` and waits until its API is
    /// ready and it finalizes.
    fn start() -> Network {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("dev.log")).expect("log file");
        let child = glassbox()
            .args(["dev", "--validators", "1", "--data-dir"])
            .arg(dir.path().join("net"))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env("GLASSBOX_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start glassbox dev");
        let net = Network {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(h) = api(&net.url).health()
                && h.status == HealthStatus::Ok
                && h.finalized_height > 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dev network did not finalize a block within 15 s: {}",
                net.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        net
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("dev.log")).unwrap_or_default()
    }

    fn dev_key(&self) -> PathBuf {
        self.path().join("net/dev.key")
    }

    /// `glassbox model ...` with its own GLASSBOX_HOME.
    fn glassbox(&self, args: &[&str]) -> Output {
        glassbox()
            .args(args)
            .env("GLASSBOX_HOME", self.path().join("home"))
            .env_remove("HOME")
            .output()
            .expect("run glassbox")
    }

    fn publish(&self, model: &Path, name: &str, key: &Path) -> Output {
        self.glassbox(&[
            "model",
            "publish",
            s(model),
            "--name",
            name,
            "--version",
            "1.0.0",
            "--license",
            "MIT",
            "--key",
            s(key),
            "--node",
            &self.url,
            "--timeout-ms",
            "15000",
            "--json",
        ])
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn ok_json(out: &Output, net: &Network) -> Value {
    assert!(
        out.status.success(),
        "publish failed: {}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        net.log()
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn publish_registers_on_the_ledger_and_uploads_the_blob() {
    let net = Network::start();
    let model = models().join("mlp.onnx");
    let bytes = std::fs::read(&model).expect("model file");

    let out = ok_json(&net.publish(&model, "test/mlp", &net.dev_key()), &net);
    assert_eq!(out["status"], "published", "{out}");
    assert_eq!(out["blob"], "stored", "{out}");
    let model_id = out["model_id"].as_str().expect("model_id").to_string();
    let manifest_id = out["manifest_id"].as_str().expect("manifest_id");
    assert!(
        out["tx_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("tx:"))
    );
    let height = out["height"].as_u64().expect("height");
    assert!(height > 0);
    assert!(out["fee"].as_u64().is_some_and(|f| f > 0));

    // On the ledger, under its name.
    let id: ModelId = model_id.parse().expect("a model id");
    let by_name = api(&net.url)
        .model_by_name("test/mlp", "1.0.0")
        .expect("by name (proofs checked)");
    assert_eq!(by_name.entry.record, Some(VersionEntry(id)));
    let record = by_name.model.and_then(|m| m.record).expect("the record");
    assert_eq!(record.manifest_id.to_string(), manifest_id);
    assert_eq!(record.height, height);
    assert_eq!(record.manifest.manifest().license.as_deref(), Some("MIT"));

    // The node serves the very bytes.
    let served = api(&net.url)
        .blob(&id, 1 << 20)
        .expect("GET blob (hash-checked)");
    assert!(served == bytes, "the served blob differs from the file");

    // Again: nothing new to pay for or upload.
    let again = ok_json(&net.publish(&model, "test/mlp", &net.dev_key()), &net);
    assert_eq!(again["status"], "already registered", "{again}");
    assert_eq!(again["blob"], "present", "{again}");
    assert_eq!(again["manifest_id"], manifest_id);
    assert!(again["tx_hash"].is_null());

    // The same model under another name is refused before paying.
    let out = net.publish(&model, "test/other", &net.dev_key());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already registered") && err.contains("test/mlp@1.0.0"),
        "{err}"
    );

    // A key without an account is told so.
    let key = net.path().join("unfunded.key");
    let made = net.glassbox(&["keys", "generate", "-o", s(&key)]);
    assert!(made.status.success());
    let out = net.publish(&models().join("mnist-cnn.onnx"), "test/cnn", &key);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist on chain"), "{err}");

    // Nothing went to the local registry.
    assert!(!net.path().join("home/registry").exists());
}

//! End-to-end tests of `glassbox keys` and `glassbox model` through the built
//! binary, each in its own GLASSBOX_HOME.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Home {
        Home(tempfile::tempdir().expect("tempdir"))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_glassbox"))
            .args(args)
            .env("GLASSBOX_HOME", self.path())
            .env_remove("HOME")
            .output()
            .expect("run glassbox")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "glassbox {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("one JSON value")
    }
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "glassbox {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn keys_are_private_and_never_printed() {
    let home = Home::new();
    let out = home.json(&["keys", "generate", "--json"]);
    let key_file = home.path().join("key");
    assert_eq!(out["key_file"], s(&key_file));
    let secret = std::fs::read_to_string(&key_file).expect("key file");
    let secret_hex = secret.trim().trim_start_matches("ed25519-secret:");
    assert_eq!(secret_hex.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let shown = home.ok(&["keys", "show"]);
    assert_eq!(
        shown.trim(),
        out["public_key"].as_str().expect("public_key")
    );
    assert!(!shown.contains(secret_hex));
    // Never overwrites.
    let err = home.fails(&["keys", "generate"]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), secret);
    // Other files, via -o.
    let other = home.path().join("keys/other");
    let o = home.ok(&["keys", "generate", "-o", s(&other)]);
    assert!(!o.contains(secret_hex));
    assert!(other.is_file());
}

#[test]
fn publish_show_list_pull_verify() {
    let home = Home::new();
    home.ok(&["keys", "generate"]);
    let mnist = models().join("mnist-cnn.onnx");
    let publish = [
        "model",
        "publish",
        s(&mnist),
        "--name",
        "glassbox/mnist-cnn",
        "--version",
        "1.0.0",
        "--license",
        "Apache-2.0",
        "--description",
        "a small CNN",
        "--source",
        "blake3:0000000000000000000000000000000000000000000000000000000000000000=https://example.org/mnist",
        "--json",
    ];
    let p = home.json(&publish);
    assert_eq!(p["status"], "published");
    let model_id = p["model_id"].as_str().expect("model_id").to_string();
    let manifest_id = p["manifest_id"].as_str().expect("manifest_id").to_string();
    let bytes = std::fs::read(&mnist).expect("model");
    assert_eq!(
        model_id,
        format!("blake3:{}", blake3::hash(&bytes).to_hex())
    );
    assert!(p["cost"]["flops"].as_u64().expect("flops") > 0);
    // Publishing again is idempotent.
    let again = home.json(&publish);
    assert_eq!(again["status"], "already published");
    assert_eq!(again["manifest_id"], manifest_id.as_str());

    // Show: by name, name@version, manifest id and model id.
    for q in [
        "glassbox/mnist-cnn",
        "glassbox/mnist-cnn@1.0.0",
        &manifest_id,
        &model_id,
    ] {
        let v = home.json(&["model", "show", q, "--json"]);
        assert_eq!(v["manifest_id"], manifest_id.as_str(), "{q}");
        assert_eq!(v["signature"]["valid"], true);
        let m = &v["manifest"];
        assert_eq!(m["model_id"], model_id.as_str());
        assert_eq!(m["size_bytes"], bytes.len() as u64);
        assert_eq!(m["license"], "Apache-2.0");
        assert_eq!(m["inputs"][0]["name"], "image");
        assert_eq!(m["inputs"][0]["dtype"], "float32");
        assert_eq!(m["inputs"][0]["shape"], serde_json::json!([1, 1, 28, 28]));
        assert_eq!(m["outputs"][0]["shape"], serde_json::json!([1, 10]));
        assert!(m["opset"].as_u64().expect("opset") > 0);
        assert_eq!(m["sources"][0]["uri"], "https://example.org/mnist");
    }
    let text = home.ok(&["model", "show", "glassbox/mnist-cnn"]);
    assert!(text.contains("signature    valid"), "{text}");

    // The cost is the runtime's for the declared shapes, as `exec` reports.
    let exec = home.json(&[
        "exec",
        s(&mnist),
        "--input",
        s(&models().join("mnist-cnn.input.npy")),
        "--json",
    ]);
    assert_eq!(exec["cost"], p["cost"]);

    let list = home.json(&["model", "list", "--json"]);
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["name"], "glassbox/mnist-cnn");

    // Pull and verify, against the exported manifest and the registry.
    let out = home.path().join("pulled.onnx");
    let mf = home.path().join("pulled.gbm");
    home.ok(&[
        "model",
        "pull",
        &model_id,
        "-o",
        s(&out),
        "--manifest",
        s(&mf),
    ]);
    assert_eq!(std::fs::read(&out).expect("pulled"), bytes);
    let v = home.json(&["model", "verify", s(&out), "--manifest", s(&mf), "--json"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["manifest_id"], manifest_id.as_str());
    home.ok(&[
        "model",
        "verify",
        s(&out),
        "--manifest",
        "glassbox/mnist-cnn@1.0.0",
    ]);

    // One flipped byte of the model: bytes mismatch.
    let mut tampered = bytes.clone();
    tampered[100] ^= 1;
    let bad = home.path().join("tampered.onnx");
    std::fs::write(&bad, &tampered).expect("write");
    let out_bad = home.run(&["model", "verify", s(&bad), "--manifest", s(&mf), "--json"]);
    assert!(!out_bad.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out_bad.stdout).expect("json");
    assert_eq!(v["bytes_match"], false);
    assert_eq!(v["signature_valid"], true);

    // One flipped byte of the manifest's signature: signature invalid.
    let mut m = std::fs::read(&mf).expect("manifest");
    let last = m.len() - 1;
    m[last] ^= 1;
    let badm = home.path().join("tampered.gbm");
    std::fs::write(&badm, &m).expect("write");
    let out_bad = home.run(&["model", "verify", s(&out), "--manifest", s(&badm), "--json"]);
    assert!(!out_bad.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out_bad.stdout).expect("json");
    assert_eq!(v["bytes_match"], true);
    assert_eq!(v["signature_valid"], false);

    // A corrupted blob in the registry is refused on pull.
    let hex = model_id.trim_start_matches("blake3:");
    let blob = home.path().join("registry/blobs").join(&hex[..2]).join(hex);
    std::fs::write(&blob, &tampered).expect("corrupt the blob");
    let dest = home.path().join("again.onnx");
    let err = home.fails(&["model", "pull", &model_id, "-o", s(&dest)]);
    assert!(err.contains("corrupt"), "{err}");
    assert!(!dest.exists(), "no unverified output is left");
}

#[test]
fn name_version_belongs_to_its_first_publisher_and_lineage_is_shown() {
    let home = Home::new();
    let registry = home.path().join("shared-registry");
    let alice = home.path().join("alice.key");
    let mallory = home.path().join("mallory.key");
    home.ok(&["keys", "generate", "-o", s(&alice)]);
    home.ok(&["keys", "generate", "-o", s(&mallory)]);
    let mnist = models().join("mnist-cnn.onnx");
    let mlp = models().join("mlp.onnx");
    let publish = |file: &Path, key: &Path, version: &str, extra: &[&str]| {
        let mut args = vec![
            "model",
            "publish",
            s(file),
            "--name",
            "net",
            "--version",
            version,
            "--key",
            s(key),
            "--registry",
            s(&registry),
            "--json",
        ];
        args.extend_from_slice(extra);
        home.run(&args)
    };
    let out = publish(&mnist, &alice, "1.0.0", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let parent_id = first["model_id"].as_str().expect("id").to_string();

    for file in [&mnist, &mlp] {
        let out = publish(file, &mallory, "1.0.0", &[]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another publisher"), "{err}");
    }
    let out = publish(&mlp, &alice, "1.0.0", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("different manifest"),
        "{err}"
    );
    let shown = home.json(&[
        "model",
        "show",
        "net@1.0.0",
        "--registry",
        s(&registry),
        "--json",
    ]);
    assert_eq!(shown["manifest_id"], first["manifest_id"]);
    assert_eq!(shown["manifest"]["publisher"], first["publisher"]);

    // A derived model names its parent; show resolves the lineage.
    let parent_arg = format!("finetune:{parent_id}");
    let out = publish(&mlp, &alice, "1.1.0", &["--parent", &parent_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = home.json(&["model", "show", "net", "--registry", s(&registry), "--json"]);
    assert_eq!(child["manifest"]["version"], "1.1.0", "latest version");
    let l = &child["lineage"][0];
    assert_eq!(l["model_id"], parent_id.as_str());
    assert_eq!(l["relation"], "finetune");
    assert_eq!(l["known_as"][0], "net@1.0.0");
    let text = home.ok(&["model", "show", "net@1.1.0", "--registry", s(&registry)]);
    assert!(
        text.contains("finetune") && text.contains("net@1.0.0"),
        "{text}"
    );
}

#[test]
fn publish_rejects_bad_models_and_arguments() {
    let home = Home::new();
    home.ok(&["keys", "generate"]);
    let bytes = std::fs::read(models().join("mnist-cnn.onnx")).expect("model");
    let truncated = home.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = home.fails(&[
        "model",
        "publish",
        s(&truncated),
        "--name",
        "x",
        "--version",
        "1.0.0",
    ]);
    assert!(err.contains("cannot be published"), "{err}");
    let mnist = models().join("mnist-cnn.onnx");
    for (flag, value, needle) in [
        ("--version", "v1", "semantic version"),
        ("--license", "Not A License", "SPDX"),
        ("--name", "Bad Name", "name"),
        ("--parent", "blake3:zz", "model id"),
        ("--source", "nohash", "=URI"),
    ] {
        let mut args = vec!["model", "publish", s(&mnist), flag, value];
        if flag != "--name" {
            args.extend(["--name", "x"]);
        }
        if flag != "--version" {
            args.extend(["--version", "1.0.0"]);
        }
        let err = home.fails(&args);
        assert!(err.contains(needle), "{flag} {value}: {err}");
    }
    // A world-readable key is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = home.path().join("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = home.fails(&[
            "model",
            "publish",
            s(&mnist),
            "--name",
            "x",
            "--version",
            "1.0.0",
        ]);
        assert!(err.contains("chmod 600"), "{err}");
    }
    let list = home.json(&["model", "list", "--json"]);
    assert_eq!(list, serde_json::json!([]));
}

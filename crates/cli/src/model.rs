//! `glassbox model`: publish, show, list, pull and verify models in a local
//! registry directory, with the same signed manifests the network uses;
//! `publish --node URL` registers the manifest on the network instead and
//! uploads the model's bytes to that node.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use glassbox_ledger::{Params, SignedTx, TxBody};
use glassbox_node::manifest::ModelFacts;
use glassbox_primitives::ChainId;
use glassbox_runtime::Limits;
use glassbox_store::keyfile::read_secret_key;
use glassbox_store::{Published, Registry};
use glassbox_types::{
    DimSpec, Hash, Limits as ManifestLimits, Manifest, ModelId, Parent, Relation, SecretKey,
    SignedManifest, Source, TensorSpec,
};
use serde_json::{Value, json};

use crate::keys::{glassbox_home, key_path};
use crate::progress;

/// How deep `model show` follows parents.
const MAX_LINEAGE_DEPTH: usize = 16;

#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// Registry directory [default: $GLASSBOX_HOME/registry or ~/.glassbox/registry].
    #[arg(long, global = true, value_name = "DIR")]
    registry: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Validate a model with the runtime, sign its manifest and store both
    /// (with `--node`: register it on the network and upload it there).
    Publish(PublishArgs),
    /// Print a manifest, its signature status and its lineage.
    Show {
        /// `blake3:<hex>` (manifest or model id) or `NAME[@VERSION]`.
        model: String,
    },
    /// List every name@version in the registry.
    List,
    /// Copy a model's verified bytes out of the registry.
    Pull {
        /// `blake3:<hex>` (model or manifest id) or `NAME[@VERSION]`.
        model: String,
        /// Where to write the model.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Also write the signed manifest here.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Check a model file against a signed manifest: bytes and signature.
    Verify {
        /// The model file.
        file: PathBuf,
        /// A signed manifest file, or a manifest in the registry
        /// (`blake3:<hex>` or `NAME[@VERSION]`).
        #[arg(long, value_name = "M")]
        manifest: String,
    },
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The ONNX model file.
    file: PathBuf,
    /// Registry name (lower-case letters, digits, `-_./`).
    #[arg(long)]
    name: String,
    /// Semantic version.
    #[arg(long)]
    version: String,
    /// Free-text description.
    #[arg(long, default_value = "")]
    description: String,
    /// SPDX license expression (e.g. `MIT OR Apache-2.0`).
    #[arg(long)]
    license: Option<String>,
    /// A parent model: `[RELATION:]blake3:<hex>`, RELATION one of
    /// finetune, quantization, conversion, other (default other).
    #[arg(long = "parent", value_name = "[RELATION:]ID")]
    parents: Vec<String>,
    /// A source: `blake3:<hex>=URI` (training data, original checkpoint).
    #[arg(long = "source", value_name = "HASH=URI")]
    sources: Vec<String>,
    /// Publisher key file [default: $GLASSBOX_HOME/key or ~/.glassbox/key];
    /// with `--node` it also signs and pays for the transaction.
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
    /// Publish on the network through this node's HTTP API
    /// (`http://HOST:PORT`) instead of the local registry: a publish_model
    /// transaction, then, once it is finalized, the model's bytes to the
    /// node's blob store.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Transaction fee [default: the least the chain's parameters allow].
    #[arg(long, value_name = "F", requires = "node")]
    fee: Option<u64>,
    /// How long to wait for the node (each request, and the transaction's
    /// finalization), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 60_000, requires = "node")]
    timeout_ms: u64,
}

fn registry_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => Ok(glassbox_home()?.join("registry")),
    }
}

pub(crate) fn max_model_bytes() -> u64 {
    Limits::default().max_model_bytes as u64
}

pub(crate) fn run(args: ModelArgs) -> Result<()> {
    let json = args.json;
    let command = match args.command {
        ModelCommand::Publish(p) if p.node.is_some() => return publish_to_node(p, json),
        c => c,
    };
    let dir = registry_dir(args.registry)?;
    let registry = Registry::open(&dir, max_model_bytes())
        .with_context(|| format!("opening the registry {}", dir.display()))?;
    match command {
        ModelCommand::Publish(p) => publish(&registry, p, json),
        ModelCommand::Show { model } => show(&registry, &model, json),
        ModelCommand::List => list(&registry, json),
        ModelCommand::Pull {
            model,
            output,
            manifest,
        } => pull(&registry, &model, &output, manifest.as_deref(), json),
        ModelCommand::Verify { file, manifest } => verify(&registry, &file, &manifest, json),
    }
}

fn parse_parent(s: &str) -> Result<Parent> {
    let (relation, id) = if s.starts_with(ModelId::PREFIX) {
        (Relation::Other, s)
    } else {
        let (r, id) = s
            .split_once(':')
            .with_context(|| format!("--parent `{s}`: expected [RELATION:]blake3:<hex>"))?;
        (r.parse()?, id)
    };
    Ok(Parent {
        id: id.parse()?,
        relation,
    })
}

fn parse_source(s: &str) -> Result<Source> {
    let (hash, uri) = s
        .split_once('=')
        .with_context(|| format!("--source `{s}`: expected blake3:<hex>=URI"))?;
    let hash: Hash = hash.parse()?;
    Ok(Source {
        hash,
        uri: uri.to_string(),
    })
}

/// Loads the model with the runtime and signs its manifest with the
/// publisher's key; returns the signed manifest, the model's bytes and the
/// key.
fn sign_manifest(p: &PublishArgs) -> Result<(SignedManifest, Vec<u8>, SecretKey)> {
    let version = semver::Version::parse(&p.version)
        .with_context(|| format!("--version `{}` is not a semantic version", p.version))?;
    let parents = p
        .parents
        .iter()
        .map(|s| parse_parent(s))
        .collect::<Result<Vec<_>>>()?;
    let sources = p
        .sources
        .iter()
        .map(|s| parse_source(s))
        .collect::<Result<Vec<_>>>()?;
    let key_file = key_path(p.key.clone())?;
    let key = read_secret_key(&key_file)?;

    let size = fs::metadata(&p.file)
        .with_context(|| format!("reading {}", p.file.display()))?
        .len();
    if size > max_model_bytes() {
        bail!(
            "{} is {size} bytes, over the limit of {} bytes",
            p.file.display(),
            max_model_bytes()
        );
    }
    let bytes = progress::read_file(&p.file, max_model_bytes())?;
    let facts = ModelFacts::of(&bytes)
        .with_context(|| format!("{} cannot be published", p.file.display()))?;
    let manifest = Manifest {
        model_id: facts.model_id,
        size_bytes: facts.size_bytes,
        name: p.name.clone(),
        version,
        description: p.description.clone(),
        license: p.license.clone(),
        publisher: key.public(),
        created_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        parents,
        sources,
        inputs: facts.inputs,
        outputs: facts.outputs,
        opset: facts.opset,
        cost: facts.cost,
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    let signed = SignedManifest::sign(manifest, &key)?;
    Ok((signed, bytes, key))
}

fn publish(registry: &Registry, p: PublishArgs, json: bool) -> Result<()> {
    let (signed, bytes, _) = sign_manifest(&p)?;
    let model_id = signed.manifest().model_id;
    registry.blobs().put_reader(&bytes[..], Some(&model_id))?;
    let published = registry.publish(&signed)?;
    let entry = registry
        .get(&published.id())?
        .context("the published manifest vanished")?;
    let m = entry.signed.manifest();
    let status = match published {
        Published::New(_) => "published",
        Published::Existing(_) => "already published",
    };
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "status": status,
            "manifest_id": entry.id,
            "model_id": m.model_id,
            "name": m.name,
            "version": m.version.to_string(),
            "publisher": m.publisher,
            "cost": m.cost,
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(w, "{status} {}@{}", m.name, m.version)?;
        writeln!(w, "manifest  {}", entry.id)?;
        writeln!(w, "model     {} ({} bytes)", m.model_id, m.size_bytes)?;
        writeln!(w, "publisher {}", m.publisher)?;
        writeln!(
            w,
            "cost      {} flops, {} bytes",
            m.cost.flops, m.cost.bytes
        )?;
    }
    Ok(())
}

// ---- publishing on a network ------------------------------------------------

/// Largest JSON answer read from a node.
const MAX_NODE_JSON_BYTES: u64 = 16 << 20;
/// Between polls of a transaction's status.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Consecutive "unknown transaction" answers after which a submitted
/// transaction is taken to be dropped (one may fall in the instant between
/// the mempool and the finalized index).
const MAX_UNKNOWN_POLLS: u32 = 8;
/// Assumed least upload speed when bounding the blob upload's time.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 1 << 20;

/// A node's HTTP API, every request bounded by a timeout.
pub(crate) struct NodeClient {
    pub(crate) base: String,
    agent: ureq::Agent,
    timeout: Duration,
}

/// A node's answer: the status and the body as JSON (`Null` when empty).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `HTTP 409 code: message` from a JSON error answer.
    pub(crate) fn error_text(&self) -> String {
        let e = &self.body["error"];
        match (e["code"].as_str(), e["message"].as_str()) {
            (Some(code), Some(message)) => format!("HTTP {} {code}: {message}", self.status),
            _ => format!("HTTP {}: {}", self.status, self.body),
        }
    }

    pub(crate) fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

impl NodeClient {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<NodeClient> {
        let base = url.trim_end_matches('/').to_string();
        let Some(host) = base.strip_prefix("http://") else {
            if base.starts_with("https://") {
                bail!("--node {url}: this build of glassbox speaks plain http:// only");
            }
            bail!("--node {url}: expected http://HOST:PORT");
        };
        if host.is_empty() {
            bail!("--node {url}: no host");
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        Ok(NodeClient {
            base,
            agent,
            timeout,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer(
        &self,
        what: &str,
        path: &str,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer> {
        let url = self.url(path);
        let mut res = res.map_err(|e| match e {
            ureq::Error::Timeout(t) => {
                anyhow::anyhow!(
                    "{what} {url}: no answer within {} ms ({t})",
                    self.timeout.as_millis()
                )
            }
            e => anyhow::anyhow!("{what} {url}: {e}"),
        })?;
        let status = res.status().as_u16();
        let bytes = res
            .body_mut()
            .with_config()
            .limit(MAX_NODE_JSON_BYTES)
            .read_to_vec()
            .with_context(|| format!("{what} {url}: reading the answer (HTTP {status})"))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{what} {url}: the answer (HTTP {status}) is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            })?
        };
        Ok(Answer { status, body })
    }

    pub(crate) fn get(&self, path: &str) -> Result<Answer> {
        self.answer("GET", path, self.agent.get(self.url(path)).call())
    }

    /// A GET that must succeed.
    pub(crate) fn get_ok(&self, path: &str) -> Result<Value> {
        let a = self.get(path)?;
        if !a.ok() {
            bail!("GET {}: {}", self.url(path), a.error_text());
        }
        Ok(a.body)
    }

    pub(crate) fn post_json(&self, path: &str, body: &Value) -> Result<Answer> {
        let res = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string());
        self.answer("POST", path, res)
    }

    /// A GET of raw bytes (at most `max_bytes`) that must succeed.
    pub(crate) fn get_bytes(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>> {
        let url = self.url(path);
        let mut res = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
        let status = res.status().as_u16();
        if status != 200 {
            bail!("GET {url}: HTTP {status}");
        }
        res.body_mut()
            .with_config()
            .limit(max_bytes)
            .read_to_vec()
            .with_context(|| format!("GET {url}: reading the body"))
    }

    /// A PUT of raw bytes that must succeed.
    pub(crate) fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let res = self
            .agent
            .put(self.url(path))
            .header("content-type", "application/octet-stream")
            .send(bytes);
        let a = self.answer("PUT", path, res)?;
        if !a.ok() {
            bail!("PUT {}: {}", self.url(path), a.error_text());
        }
        Ok(())
    }

    /// Whether the node has the blob (HEAD; an answer other than 200 or
    /// 404 is an error).
    fn has_blob(&self, id: &ModelId) -> Result<bool> {
        let path = format!("/v1/blobs/{id}");
        let res = self
            .agent
            .head(self.url(&path))
            .call()
            .map_err(|e| anyhow::anyhow!("HEAD {}: {e}", self.url(&path)))?;
        match res.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("HEAD {}: HTTP {s}", self.url(&path)),
        }
    }

    fn put_blob(&self, id: &ModelId, bytes: &[u8]) -> Result<Answer> {
        let path = format!("/v1/blobs/{id}");
        let secs = (bytes.len() as u64) / MIN_UPLOAD_BYTES_PER_SEC;
        let timeout = self.timeout.max(Duration::from_secs(60)) + Duration::from_secs(secs);
        let res = self
            .agent
            .put(self.url(&path))
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/octet-stream")
            .send(bytes);
        self.answer("PUT", &path, res)
    }
}

pub(crate) fn parse_chain_id(s: &str) -> Result<ChainId> {
    s.parse().context("the node's /v1/status")
}

/// What the network says of a model already registered there.
struct Registered {
    manifest_id: String,
    height: u64,
}

/// Refuses a publication the ledger would refuse (paying the fee for
/// nothing); `Some` when this publisher already registered this very
/// model as this name@version (then only the upload is left to do).
fn check_publishable(client: &NodeClient, m: &Manifest) -> Result<Option<Registered>> {
    let version = m.version.to_string();
    let record = client.get_ok(&format!("/v1/models/{}", m.model_id))?;
    let value = &record["value"];
    if !value.is_null() {
        let (name, ver, publisher) = (
            value["name"].as_str().unwrap_or("?"),
            value["version"].as_str().unwrap_or("?"),
            value["publisher"].as_str().unwrap_or("?"),
        );
        if name == m.name && ver == version && publisher == m.publisher.to_string() {
            return Ok(Some(Registered {
                manifest_id: value["manifest_id"].as_str().unwrap_or("?").to_string(),
                height: value["height"].as_u64().unwrap_or(0),
            }));
        }
        bail!(
            "model {} is already registered on this network as {name}@{ver} by {publisher}; \
             it cannot be published again as {}@{version}",
            m.model_id,
            m.name
        );
    }
    let by_name = client.get_ok(&format!("/v1/models/by-name/{}/{version}", m.name))?;
    if let Some(other) = by_name["value"]["model_id"].as_str() {
        bail!(
            "{}@{version} is already registered on this network (model {other}); publish a new \
             version",
            m.name
        );
    }
    Ok(None)
}

/// Waits for `hash` to be finalized; returns its height, or fails with its
/// execution error.
fn await_finalized(
    client: &NodeClient,
    hash: &str,
    deadline: Instant,
    timeout_ms: u64,
) -> Result<u64> {
    let path = format!("/v1/tx/{hash}");
    let mut unknown = 0;
    loop {
        let a = client.get(&path)?;
        match (a.status, a.body["status"].as_str()) {
            (200, Some("finalized")) => {
                let height = a.body["height"]
                    .as_u64()
                    .with_context(|| format!("GET {path}: no height in {}", a.body))?;
                let outcome = &a.body["outcome"];
                if outcome["ok"] == Value::Bool(true) {
                    return Ok(height);
                }
                let e = &outcome["error"];
                bail!(
                    "transaction {hash} was finalized at height {height} but failed ({}): {}; \
                     its fee was charged and nothing was published",
                    e["code"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("no message")
                );
            }
            (200, _) => unknown = 0,
            (404, _) if a.code() == Some("unknown_tx") => {
                unknown += 1;
                if unknown >= MAX_UNKNOWN_POLLS {
                    bail!(
                        "the node no longer knows transaction {hash}: it was dropped from the \
                         mempool without being included (did another transaction use its nonce?)"
                    );
                }
            }
            _ => bail!("GET {}: {}", client.url(&path), a.error_text()),
        }
        if Instant::now() >= deadline {
            bail!(
                "transaction {hash} was accepted but not finalized within {timeout_ms} ms; check \
                 `GET {}` and run this command again to upload the model once it is finalized",
                client.url(&path)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Submits `tx`, retrying while the node answers 503 (replaying, mempool
/// full) until `deadline`; returns its hash.
pub(crate) fn submit_tx(client: &NodeClient, tx: &SignedTx, deadline: Instant) -> Result<String> {
    let body = json!({ "tx": glassbox_types::hex(tx.encoded()) });
    loop {
        let a = client.post_json("/v1/tx", &body)?;
        if a.status == 202 {
            return a.body["tx_hash"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("POST /v1/tx: no tx_hash in {}", a.body));
        }
        if a.status != 503 || Instant::now() >= deadline {
            bail!("the node refused the transaction: {}", a.error_text());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Uploads the model's bytes (unless the node has them), retrying while
/// the node is busy; returns `"stored"` or `"present"`.
pub(crate) fn upload_blob(
    client: &NodeClient,
    id: &ModelId,
    bytes: &[u8],
    deadline: Instant,
) -> Result<String> {
    if client.has_blob(id)? {
        return Ok("present".into());
    }
    loop {
        let a = client.put_blob(id, bytes)?;
        if a.ok() {
            return Ok(a.body["status"].as_str().unwrap_or("stored").to_string());
        }
        if a.status != 503 || Instant::now() >= deadline {
            bail!(
                "uploading model {id} to {}: {}; the manifest is registered, so running this \
                 command again (against a node that keeps blobs) only uploads the model",
                client.base,
                a.error_text()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What publishing on a node did.
pub(crate) struct NodePublished {
    pub(crate) state: &'static str,
    pub(crate) chain_name: String,
    pub(crate) node: String,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_id: String,
    pub(crate) tx_hash: Option<String>,
    pub(crate) height: u64,
    pub(crate) fee: Option<u64>,
    pub(crate) blob: String,
}

/// Publishes `file` as `name@version` through `node`, signed and paid by
/// `key` (the demo's entry point).
pub(crate) fn publish_file(
    file: &Path,
    name: &str,
    version: &str,
    description: &str,
    license: Option<&str>,
    key: &Path,
    node: &str,
) -> Result<NodePublished> {
    publish_on_node(PublishArgs {
        file: file.to_path_buf(),
        name: name.into(),
        version: version.into(),
        description: description.into(),
        license: license.map(str::to_string),
        parents: Vec::new(),
        sources: Vec::new(),
        key: Some(key.to_path_buf()),
        node: Some(node.into()),
        fee: None,
        timeout_ms: 60_000,
    })
}

/// `glassbox model publish ... --node URL`.
fn publish_to_node(p: PublishArgs, json: bool) -> Result<()> {
    let NodePublished {
        state,
        chain_name,
        node,
        manifest: m,
        manifest_id,
        tx_hash,
        height,
        fee,
        blob,
    } = publish_on_node(p)?;
    let client_base = node;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "status": state,
            "chain": chain_name,
            "node": client_base,
            "model_id": m.model_id,
            "manifest_id": manifest_id,
            "name": m.name,
            "version": m.version.to_string(),
            "publisher": m.publisher,
            "size_bytes": m.size_bytes,
            "tx_hash": tx_hash,
            "height": height,
            "fee": fee,
            "blob": blob,
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(w, "{state} {}@{} on {chain_name}", m.name, m.version)?;
        writeln!(w, "manifest  {manifest_id}")?;
        writeln!(w, "model     {} ({} bytes)", m.model_id, m.size_bytes)?;
        writeln!(w, "publisher {}", m.publisher)?;
        match (&tx_hash, fee) {
            (Some(h), Some(f)) => writeln!(w, "tx        {h} (height {height}, fee {f})")?,
            _ => writeln!(w, "tx        (registered earlier, at height {height})")?,
        }
        let blob = if blob == "present" {
            "already there"
        } else {
            "uploaded"
        };
        writeln!(w, "blob      {blob} ({client_base})")?;
    }
    Ok(())
}

fn publish_on_node(p: PublishArgs) -> Result<NodePublished> {
    let url = p.node.clone().context("--node is required here")?;
    let timeout_ms = p.timeout_ms.max(1);
    let timeout = Duration::from_millis(timeout_ms);
    let client = NodeClient::new(&url, timeout)?;
    let (signed, bytes, key) = sign_manifest(&p)?;
    let m = signed.manifest();

    let status = client.get_ok("/v1/status")?;
    let chain_id = parse_chain_id(status["chain_id"].as_str().unwrap_or(""))?;
    let chain_name = status["chain_name"].as_str().unwrap_or("?").to_string();

    let registered = check_publishable(&client, m)?;
    let (tx_hash, height, manifest_id, fee) = match registered {
        Some(r) => (None, r.height, r.manifest_id, None),
        None => {
            let sender = key.public();
            let account = client.get_ok(&format!("/v1/accounts/{sender}"))?;
            let Some(nonce) = account["value"]["nonce"].as_u64() else {
                bail!(
                    "account {sender} (the key's) does not exist on chain {chain_name}: fund it \
                     before publishing"
                );
            };
            let balance = account["value"]["balance"].as_u64().unwrap_or(0);
            let body = || TxBody::PublishModel {
                manifest: Box::new(signed.clone()),
            };
            let fee = match p.fee {
                Some(f) => f,
                None => {
                    let params: Params = serde_json::from_value(status["params"].clone())
                        .context("the node's /v1/status gives no chain params; pass --fee")?;
                    // The fee does not change the encoding's size.
                    let probe = SignedTx::sign(&chain_id, &key, nonce, 0, body())?;
                    if probe.len() > params.max_tx_bytes as usize {
                        bail!(
                            "the publish transaction is {} bytes, over the chain's limit of {} \
                             (the manifest is too large)",
                            probe.len(),
                            params.max_tx_bytes
                        );
                    }
                    params
                        .min_fee_for(probe.len())
                        .context("the chain's fee parameters overflow")?
                }
            };
            if balance < fee {
                bail!("account {sender} holds {balance}, less than the fee of {fee}");
            }
            let tx = SignedTx::sign(&chain_id, &key, nonce, fee, body())?;
            let deadline = Instant::now() + timeout;
            let hash = submit_tx(&client, &tx, deadline)?;
            let height = await_finalized(&client, &hash, deadline, timeout_ms)?;
            (Some(hash), height, signed.id().to_string(), Some(fee))
        }
    };
    let blob = upload_blob(&client, &m.model_id, &bytes, Instant::now() + timeout)?;

    let state = if tx_hash.is_some() {
        "published"
    } else {
        "already registered"
    };
    Ok(NodePublished {
        state,
        chain_name,
        node: client.base.clone(),
        manifest: m.clone(),
        manifest_id,
        tx_hash,
        height,
        fee,
        blob,
    })
}

/// A parent and, when this registry knows it, its manifests' names.
fn lineage(registry: &Registry, m: &Manifest) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::from([m.model_id]);
    let mut frontier: Vec<(usize, Parent)> = m.parents.iter().map(|p| (1, p.clone())).collect();
    frontier.reverse();
    while let Some((depth, p)) = frontier.pop() {
        if !seen.insert(p.id) || depth > MAX_LINEAGE_DEPTH {
            continue;
        }
        let known = registry.find_model(&p.id)?;
        let names: Vec<String> = known
            .iter()
            .map(|e| {
                format!(
                    "{}@{}",
                    e.signed.manifest().name,
                    e.signed.manifest().version
                )
            })
            .collect();
        out.push(json!({
            "depth": depth,
            "model_id": p.id,
            "relation": p.relation,
            "known_as": names,
        }));
        if let Some(e) = known.first() {
            for gp in e.signed.manifest().parents.iter().rev() {
                frontier.push((depth + 1, gp.clone()));
            }
        }
    }
    Ok(out)
}

fn dims_text(t: &TensorSpec) -> String {
    let dtype = t.dtype.as_deref().unwrap_or("?");
    match &t.shape {
        None => format!("{dtype} [?]"),
        Some(d) => {
            let d: Vec<String> = d
                .iter()
                .map(|d| match d {
                    DimSpec::Fixed(n) => n.to_string(),
                    DimSpec::Symbol(s) if s.is_empty() => "?".into(),
                    DimSpec::Symbol(s) => s.clone(),
                })
                .collect();
            format!("{dtype} [{}]", d.join(", "))
        }
    }
}

fn show(registry: &Registry, query: &str, json: bool) -> Result<()> {
    let entry = registry.resolve(query)?;
    let s = &entry.signed;
    let signature_ok = s.verify().is_ok();
    let m = s.manifest();
    let lineage = lineage(registry, m)?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "manifest_id": entry.id,
            "signature": {"valid": signature_ok, "value": s.signature()},
            "blob_stored": registry.blobs().contains(&m.model_id),
            "manifest": m,
            "lineage": lineage,
        });
        writeln!(w, "{obj}")?;
        return Ok(());
    }
    writeln!(w, "{}@{}", m.name, m.version)?;
    writeln!(w, "manifest     {}", entry.id)?;
    let status = if signature_ok { "valid" } else { "INVALID" };
    writeln!(w, "signature    {status} (publisher {})", m.publisher)?;
    writeln!(w, "model        {} ({} bytes)", m.model_id, m.size_bytes)?;
    if !m.description.is_empty() {
        writeln!(
            w,
            "description  {}",
            m.description.replace('\n', "\n             ")
        )?;
    }
    writeln!(
        w,
        "license      {}",
        m.license.as_deref().unwrap_or("(none stated)")
    )?;
    writeln!(w, "created      {} (unix seconds)", m.created_at_unix_s)?;
    writeln!(w, "opset        {}", m.opset)?;
    for t in &m.inputs {
        writeln!(w, "input        {}: {}", t.name, dims_text(t))?;
    }
    for t in &m.outputs {
        writeln!(w, "output       {}: {}", t.name, dims_text(t))?;
    }
    writeln!(
        w,
        "cost         {} flops, {} bytes (symbolic dims at 1)",
        m.cost.flops, m.cost.bytes
    )?;
    writeln!(w, "runtime      glassbox-runtime {}", m.runtime_version)?;
    for src in &m.sources {
        writeln!(w, "source       {} {}", src.hash, src.uri)?;
    }
    if lineage.is_empty() {
        writeln!(w, "lineage      (no parents)")?;
    }
    for l in &lineage {
        let depth = l["depth"].as_u64().unwrap_or(1) as usize;
        let names = l["known_as"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let names = if names.is_empty() {
            "not in this registry".to_string()
        } else {
            names
        };
        writeln!(
            w,
            "lineage      {}{} {} ({names})",
            "  ".repeat(depth - 1),
            l["relation"].as_str().unwrap_or("?"),
            l["model_id"].as_str().unwrap_or("?"),
        )?;
    }
    Ok(())
}

fn list(registry: &Registry, json: bool) -> Result<()> {
    let entries = registry.list()?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                let m = e.signed.manifest();
                json!({
                    "name": m.name,
                    "version": m.version.to_string(),
                    "manifest_id": e.id,
                    "model_id": m.model_id,
                    "publisher": m.publisher,
                    "size_bytes": m.size_bytes,
                })
            })
            .collect();
        writeln!(w, "{}", Value::Array(rows))?;
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(w, "(no models in {})", registry.root().display())?;
    }
    for e in &entries {
        let m = e.signed.manifest();
        writeln!(
            w,
            "{}@{}  {}  model {}",
            m.name, m.version, e.id, m.model_id
        )?;
    }
    Ok(())
}

fn pull(
    registry: &Registry,
    query: &str,
    output: &Path,
    manifest_out: Option<&Path>,
    json: bool,
) -> Result<()> {
    let entry = registry.resolve(query)?;
    let m = entry.signed.manifest();
    let size = registry
        .blobs()
        .export(&m.model_id, output)
        .with_context(|| format!("writing {}", output.display()))?;
    if size != m.size_bytes {
        bail!(
            "the stored model is {size} bytes, the manifest says {}",
            m.size_bytes
        );
    }
    if let Some(path) = manifest_out {
        fs::write(path, entry.signed.encode())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "file": output.display().to_string(),
            "model_id": m.model_id,
            "manifest_id": entry.id,
            "size_bytes": size,
            "verified": true,
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(
            w,
            "wrote {} ({size} bytes, verified {})",
            output.display(),
            m.model_id
        )?;
    }
    Ok(())
}

/// Hashes a file in chunks, refusing files over the model size limit.
fn hash_file(path: &Path) -> Result<(ModelId, u64)> {
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let max = max_model_bytes();
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress::bar(len, "hashing");
    let mut hasher = blake3::Hasher::new();
    let n = std::io::copy(
        &mut std::io::Read::take(pb.wrap_read(f), max + 1),
        &mut hasher,
    )
    .with_context(|| format!("reading {}", path.display()))?;
    pb.finish_and_clear();
    if n > max {
        bail!("{} is over the limit of {max} bytes", path.display());
    }
    Ok((ModelId::from(hasher.finalize()), n))
}

fn verify(registry: &Registry, file: &Path, manifest: &str, json: bool) -> Result<()> {
    let mpath = Path::new(manifest);
    let (signed, source) = if mpath.is_file() {
        let limit = ManifestLimits::MAX_MANIFEST_BYTES as u64 + 64;
        let len = fs::metadata(mpath)
            .with_context(|| format!("reading {manifest}"))?
            .len();
        if len > limit {
            bail!("{manifest} is over the limit of {limit} bytes for a signed manifest");
        }
        let bytes = fs::read(mpath).with_context(|| format!("reading {manifest}"))?;
        let s = SignedManifest::decode(&bytes)
            .with_context(|| format!("{manifest} is not a signed manifest"))?;
        (s, manifest.to_string())
    } else {
        let e = registry.resolve(manifest)?;
        (e.signed, format!("registry {}", e.id))
    };
    let m = signed.manifest();
    let signature = signed.verify();
    let (actual, size) = hash_file(file)?;
    let bytes_ok = actual == m.model_id && size == m.size_bytes;
    let ok = bytes_ok && signature.is_ok();
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "ok": ok,
            "bytes_match": bytes_ok,
            "signature_valid": signature.is_ok(),
            "file_model_id": actual,
            "manifest_model_id": m.model_id,
            "manifest_id": signed.id(),
            "name": m.name,
            "version": m.version.to_string(),
            "publisher": m.publisher,
        });
        writeln!(w, "{obj}")?;
    } else {
        writeln!(w, "manifest   {} ({source})", signed.id())?;
        writeln!(w, "model      {}@{} by {}", m.name, m.version, m.publisher)?;
        if bytes_ok {
            writeln!(w, "bytes      match {}", m.model_id)?;
        } else {
            writeln!(
                w,
                "bytes      MISMATCH: file is {actual} ({size} bytes), manifest says {} ({} bytes)",
                m.model_id, m.size_bytes
            )?;
        }
        match &signature {
            Ok(()) => writeln!(w, "signature  valid")?,
            Err(e) => writeln!(w, "signature  INVALID: {e}")?,
        }
    }
    if !ok {
        bail!("verification failed");
    }
    Ok(())
}

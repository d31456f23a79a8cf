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
use glassbox_api::VersionEntry;
use glassbox_api::blocking::Client;
use glassbox_api::wire::BlobState;
use glassbox_ledger::{TxBody, TxHash};
use glassbox_node::manifest::ModelFacts;
use glassbox_runtime::Limits;
use glassbox_store::keyfile::read_secret_key;
use glassbox_store::{Published, Registry};
use glassbox_types::{
    DimSpec, Hash, Limits as ManifestLimits, Manifest, ManifestId, ModelId, Parent, Relation,
    SecretKey, SignedManifest, Source, TensorSpec,
};
use serde_json::{Value, json};

use crate::keys::{glassbox_home, key_path};
use crate::{net, progress};

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

/// What the network says of a model already registered there.
struct Registered {
    manifest_id: ManifestId,
    height: u64,
}

/// Refuses a publication the ledger would refuse (paying the fee for
/// nothing); `Some` when this publisher already registered this very
/// model as this name@version (then only the upload is left to do).
fn check_publishable(client: &Client, m: &Manifest) -> Result<Option<Registered>> {
    let version = m.version.to_string();
    if let Some(r) = client.model(&m.model_id)?.record {
        let other = r.manifest.manifest();
        let (name, ver) = (&other.name, other.version.to_string());
        if *name == m.name && ver == version && r.publisher == m.publisher {
            return Ok(Some(Registered {
                manifest_id: r.manifest_id,
                height: r.height,
            }));
        }
        bail!(
            "model {} is already registered on this network as {name}@{ver} by {}; \
             it cannot be published again as {}@{version}",
            m.model_id,
            r.publisher,
            m.name
        );
    }
    let by_name = client.model_by_name(&m.name, &version)?;
    if let Some(VersionEntry(other)) = by_name.entry.record {
        bail!(
            "{}@{version} is already registered on this network (model {other}); publish a new \
             version",
            m.name
        );
    }
    Ok(None)
}

/// What publishing on a node did.
pub(crate) struct NodePublished {
    pub(crate) state: &'static str,
    pub(crate) chain_name: String,
    pub(crate) node: String,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_id: ManifestId,
    pub(crate) tx_hash: Option<TxHash>,
    pub(crate) height: u64,
    pub(crate) fee: Option<u64>,
    pub(crate) blob: BlobState,
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
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if json {
        let obj = json!({
            "status": state,
            "chain": chain_name,
            "node": node,
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
        let blob = match blob {
            BlobState::Present => "already there",
            BlobState::Stored => "uploaded",
        };
        writeln!(w, "blob      {blob} ({node})")?;
    }
    Ok(())
}

fn publish_on_node(p: PublishArgs) -> Result<NodePublished> {
    let url = p.node.clone().context("--node is required here")?;
    let timeout = Duration::from_millis(p.timeout_ms.max(1));
    let client = net::client(&url, timeout)?;
    let (signed, bytes, key) = sign_manifest(&p)?;
    let m = signed.manifest();
    let status = client.status()?;

    let registered = check_publishable(&client, m)?;
    let (tx_hash, height, manifest_id, fee) = match registered {
        Some(r) => (None, r.height, r.manifest_id, None),
        None => {
            let body = TxBody::PublishModel {
                manifest: Box::new(signed.clone()),
            };
            let tx = net::sign(
                &client,
                &status,
                &key,
                body,
                p.fee,
                "fund it before publishing",
            )?;
            let deadline = Instant::now() + timeout;
            let hash = net::submit_tx(&client, &tx, deadline)?;
            let height = net::await_finalized(&client, &hash, deadline, "nothing was published")?;
            (Some(hash), height, signed.id(), Some(tx.fee()))
        }
    };
    let blob = net::upload_blob(&client, &m.model_id, &bytes, Instant::now() + timeout)?;

    let state = if tx_hash.is_some() {
        "published"
    } else {
        "already registered"
    };
    Ok(NodePublished {
        state,
        chain_name: status.chain_name,
        node: client.base().to_string(),
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

//! `glassbox model`: publish, show, list, pull and verify models in a local
//! registry directory, with the same signed manifests the network will use.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use glassbox_runtime::{Dim, Limits, Model, Options, Session, ValueInfo};
use glassbox_store::keyfile::read_secret_key;
use glassbox_store::{Published, Registry};
use glassbox_types::{
    CostSpec, DimSpec, Hash, Limits as ManifestLimits, Manifest, ModelId, Parent, Relation,
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
    /// Validate a model with the runtime, sign its manifest and store both.
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
    /// Publisher key file [default: $GLASSBOX_HOME/key or ~/.glassbox/key].
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
}

fn registry_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => Ok(glassbox_home()?.join("registry")),
    }
}

fn max_model_bytes() -> u64 {
    Limits::default().max_model_bytes as u64
}

pub(crate) fn run(args: ModelArgs) -> Result<()> {
    let dir = registry_dir(args.registry)?;
    let registry = Registry::open(&dir, max_model_bytes())
        .with_context(|| format!("opening the registry {}", dir.display()))?;
    let json = args.json;
    match args.command {
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

fn tensor_spec(v: &ValueInfo) -> TensorSpec {
    TensorSpec {
        name: v.name.clone(),
        dtype: v.dtype.map(|d| d.name().to_string()),
        shape: v.shape.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => DimSpec::Fixed(*n as u64),
                    Dim::Symbol(s) => DimSpec::Symbol(s.clone()),
                })
                .collect()
        }),
    }
}

/// The runtime's cost for the declared input shapes, symbolic dims at 1.
fn declared_cost(model: Model) -> Result<CostSpec> {
    let mut shapes = Vec::new();
    for v in model.inputs() {
        let dims = v.shape.as_ref().with_context(|| {
            format!(
                "input `{}` declares no shape, so the cost cannot be computed",
                v.name
            )
        })?;
        shapes.push(
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Symbol(_) => 1,
                })
                .collect::<Vec<usize>>(),
        );
    }
    let session = Session::new(Arc::new(model), Options::default())?;
    let plan = session
        .plan_shapes(&shapes)
        .context("planning the model for its declared input shapes (symbolic dims at 1)")?;
    let c = plan.cost();
    Ok(CostSpec {
        flops: c.flops,
        bytes: c.bytes,
    })
}

fn publish(registry: &Registry, p: PublishArgs, json: bool) -> Result<()> {
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
    let key_file = key_path(p.key)?;
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
    let model = Model::load(&bytes, Limits::default())
        .with_context(|| format!("{} cannot be published", p.file.display()))?;
    let model_id = ModelId::from_bytes(model.id());
    if model_id != ModelId::of(&bytes) {
        bail!("the runtime's model id disagrees with the file's hash");
    }
    let opset = u32::try_from(model.opset()).context("the model's opset is out of range")?;
    let inputs = model.inputs().map(tensor_spec).collect();
    let outputs = model.outputs().map(tensor_spec).collect();
    let cost = declared_cost(model)?;
    let manifest = Manifest {
        model_id,
        size_bytes: bytes.len() as u64,
        name: p.name,
        version,
        description: p.description,
        license: p.license,
        publisher: key.public(),
        created_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        parents,
        sources,
        inputs,
        outputs,
        opset,
        cost,
        runtime_version: glassbox_runtime::VERSION.to_string(),
    };
    let signed = SignedManifest::sign(manifest, &key)?;
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

//! Model manifests, their canonical encoding (docs/manifest.md) and
//! publisher signatures.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use glassbox_primitives::codec::{Reader, Writer};
use glassbox_primitives::{DecodeError, ParseError, tags};

use crate::{Error, Hash, ManifestId, ModelId, PublicKey, SecretKey, Signature, clip};

/// Encoding version written into every manifest; decoders reject others.
pub const FORMAT_VERSION: u16 = 1;

/// Domain-separation prefix of every manifest signature: the signed message
/// is these bytes followed by the encoded manifest.
pub const SIGNING_DOMAIN: &[u8] = tags::MANIFEST_SIGNING;

const MANIFEST_MAGIC: &[u8; 4] = tags::MANIFEST;
const SIGNED_MAGIC: &[u8; 4] = tags::SIGNED_MANIFEST;

/// Limits on every length and count of a manifest. They are part of the
/// frozen format: encoders refuse and decoders reject anything beyond them.
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// Model name, in bytes.
    pub const MAX_NAME_BYTES: usize = 128;
    /// Semver text, in bytes.
    pub const MAX_VERSION_BYTES: usize = 64;
    /// Description, in bytes.
    pub const MAX_DESCRIPTION_BYTES: usize = 4096;
    /// SPDX license expression, in bytes.
    pub const MAX_LICENSE_BYTES: usize = 256;
    /// Parent models.
    pub const MAX_PARENTS: usize = 64;
    /// Source references.
    pub const MAX_SOURCES: usize = 64;
    /// Source URI, in bytes.
    pub const MAX_URI_BYTES: usize = 2048;
    /// Graph inputs or graph outputs (each).
    pub const MAX_TENSORS: usize = 256;
    /// Tensor name, in bytes.
    pub const MAX_TENSOR_NAME_BYTES: usize = 256;
    /// Dtype name, in bytes.
    pub const MAX_DTYPE_BYTES: usize = 32;
    /// Dimensions of one tensor.
    pub const MAX_RANK: usize = glassbox_primitives::tensor::MAX_RANK;
    /// Symbolic dimension name, in bytes.
    pub const MAX_SYMBOL_BYTES: usize = 64;
    /// Runtime version text, in bytes.
    pub const MAX_RUNTIME_VERSION_BYTES: usize = 64;
    /// Encoded manifest, in bytes (larger than any manifest within the
    /// other limits).
    pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
}

/// How a model derives from a parent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// Further training of the parent's weights.
    Finetune,
    /// The parent with lower-precision weights.
    Quantization,
    /// The parent converted from another format or framework.
    Conversion,
    /// Any other derivation.
    Other,
}

impl Relation {
    /// All relations, in tag order.
    pub const ALL: [Relation; 4] = [
        Relation::Finetune,
        Relation::Quantization,
        Relation::Conversion,
        Relation::Other,
    ];

    fn tag(self) -> u8 {
        match self {
            Relation::Finetune => 0,
            Relation::Quantization => 1,
            Relation::Conversion => 2,
            Relation::Other => 3,
        }
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Relation::Finetune => "finetune",
            Relation::Quantization => "quantization",
            Relation::Conversion => "conversion",
            Relation::Other => "other",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Relation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Relation::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                ParseError::new(
                    "relation",
                    s,
                    "expected finetune, quantization, conversion or other",
                )
                .into()
            })
    }
}

/// A model this one derives from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parent {
    /// The parent's model id.
    pub id: ModelId,
    /// How this model derives from it.
    pub relation: Relation,
}

/// A reference to content the model was made from (training data, an
/// original checkpoint): its hash and where to find it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// BLAKE3 of the referenced content.
    pub hash: Hash,
    /// Where it can be fetched (an absolute URI with a scheme).
    pub uri: String,
}

/// One dimension of a declared shape.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DimSpec {
    /// A fixed size.
    Fixed(u64),
    /// A symbolic size (possibly unnamed: empty).
    Symbol(String),
}

/// A declared graph input or output.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    /// The value's name in the graph.
    pub name: String,
    /// Element type name (e.g. `float32`), when declared.
    pub dtype: Option<String>,
    /// Declared shape, when declared.
    pub shape: Option<Vec<DimSpec>>,
}

/// The runtime's deterministic cost estimate.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CostSpec {
    /// Arithmetic operations (a multiply-add counts 2).
    pub flops: u64,
    /// Bytes read plus bytes written.
    pub bytes: u64,
}

/// What a publisher states about a model; signed into a [`SignedManifest`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// BLAKE3 of the model file's exact bytes.
    pub model_id: ModelId,
    /// The model file's size.
    pub size_bytes: u64,
    /// Registry name: lower-case ASCII letters, digits and `-_./`, starting
    /// with a letter or digit.
    pub name: String,
    /// Semantic version.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    /// Free text (no control characters but newline and tab).
    pub description: String,
    /// SPDX license expression, when stated.
    pub license: Option<String>,
    /// The publisher, whose key signs the manifest.
    pub publisher: PublicKey,
    /// Creation time, in seconds since the Unix epoch.
    pub created_at_unix_s: u64,
    /// Models this one derives from.
    pub parents: Vec<Parent>,
    /// Content this model was made from.
    pub sources: Vec<Source>,
    /// Declared graph inputs.
    pub inputs: Vec<TensorSpec>,
    /// Declared graph outputs.
    pub outputs: Vec<TensorSpec>,
    /// ONNX default-domain opset.
    pub opset: u32,
    /// Runtime cost for the declared input shapes, symbolic dims at 1.
    pub cost: CostSpec,
    /// Version of `glassbox-runtime` that validated the model and costed it.
    pub runtime_version: String,
}

fn invalid(s: String) -> Error {
    Error::Invalid(s)
}

fn check_len(what: &str, s: &str, max_bytes: usize) -> Result<(), Error> {
    if s.len() > max_bytes {
        return Err(invalid(format!(
            "{what} is {} bytes, over the limit of {max_bytes}",
            s.len()
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), Error> {
    if n > max {
        return Err(invalid(format!("{n} {what}, over the limit of {max}")));
    }
    Ok(())
}

/// Checks a registry name (see [`Manifest::name`]).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    check_len("name", name, Limits::MAX_NAME_BYTES)?;
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c);
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok
        || !name.chars().all(ok_char)
        || name.ends_with('/')
        || name.contains("//")
        || name.split('/').any(|seg| seg == "." || seg == "..")
    {
        return Err(invalid(format!(
            "name `{}`: use lower-case letters, digits and `-_./`, starting with a letter or digit",
            clip(name, 40)
        )));
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<(), Error> {
    check_len("source URI", uri, Limits::MAX_URI_BYTES)?;
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    if !scheme_ok || !uri.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(format!(
            "source URI `{}`: expected an absolute URI (scheme:...) of printable ASCII without spaces",
            clip(uri, 60)
        )));
    }
    Ok(())
}

fn check_tensor(what: &str, t: &TensorSpec) -> Result<(), Error> {
    check_len("tensor name", &t.name, Limits::MAX_TENSOR_NAME_BYTES)?;
    if t.name.is_empty() || t.name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} name `{}` is empty or has control characters",
            clip(&t.name, 40)
        )));
    }
    if let Some(d) = &t.dtype {
        check_len("dtype", d, Limits::MAX_DTYPE_BYTES)?;
        if d.is_empty()
            || !d
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(invalid(format!("{what} dtype `{}`", clip(d, 40))));
        }
    }
    if let Some(shape) = &t.shape {
        check_count("dimensions", shape.len(), Limits::MAX_RANK)?;
        for d in shape {
            if let DimSpec::Symbol(s) = d {
                check_len("symbolic dimension", s, Limits::MAX_SYMBOL_BYTES)?;
                if s.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "{what} symbolic dimension has control characters"
                    )));
                }
            }
        }
    }
    Ok(())
}

impl Manifest {
    /// Checks every field against its form and limit.
    pub fn validate(&self) -> Result<(), Error> {
        check_name(&self.name)?;
        let v = self.version.to_string();
        check_len("version", &v, Limits::MAX_VERSION_BYTES)?;
        check_len(
            "description",
            &self.description,
            Limits::MAX_DESCRIPTION_BYTES,
        )?;
        if self
            .description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(invalid("description has control characters".into()));
        }
        if let Some(l) = &self.license {
            check_len("license", l, Limits::MAX_LICENSE_BYTES)?;
            spdx::Expression::parse(l).map_err(|e| {
                invalid(format!(
                    "license `{}` is not an SPDX expression: {e}",
                    clip(l, 60)
                ))
            })?;
        }
        check_count("parents", self.parents.len(), Limits::MAX_PARENTS)?;
        let mut seen = BTreeSet::new();
        for p in &self.parents {
            if p.id == self.model_id {
                return Err(invalid("a model cannot be its own parent".into()));
            }
            if !seen.insert(p.id) {
                return Err(invalid(format!("parent {} is listed twice", p.id)));
            }
        }
        check_count("sources", self.sources.len(), Limits::MAX_SOURCES)?;
        for s in &self.sources {
            check_uri(&s.uri)?;
        }
        check_count("inputs", self.inputs.len(), Limits::MAX_TENSORS)?;
        check_count("outputs", self.outputs.len(), Limits::MAX_TENSORS)?;
        for t in &self.inputs {
            check_tensor("input", t)?;
        }
        for t in &self.outputs {
            check_tensor("output", t)?;
        }
        check_len(
            "runtime version",
            &self.runtime_version,
            Limits::MAX_RUNTIME_VERSION_BYTES,
        )?;
        if self.runtime_version.is_empty()
            || !self.runtime_version.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(
                "runtime version must be non-empty printable ASCII".into(),
            ));
        }
        Ok(())
    }

    /// The canonical encoding (docs/manifest.md). Fails when the manifest
    /// does not [`validate`](Manifest::validate).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let mut w = Writer::new();
        w.bytes(MANIFEST_MAGIC);
        w.u16(FORMAT_VERSION);
        w.bytes(self.model_id.as_bytes());
        w.u64(self.size_bytes);
        w.str(&self.name);
        w.str(&self.version.to_string());
        w.str(&self.description);
        match &self.license {
            None => w.u8(0),
            Some(l) => {
                w.u8(1);
                w.str(l);
            }
        }
        w.bytes(&self.publisher.to_bytes());
        w.u64(self.created_at_unix_s);
        w.len(self.parents.len());
        for p in &self.parents {
            w.bytes(p.id.as_bytes());
            w.u8(p.relation.tag());
        }
        w.len(self.sources.len());
        for s in &self.sources {
            w.bytes(s.hash.as_bytes());
            w.str(&s.uri);
        }
        for list in [&self.inputs, &self.outputs] {
            w.len(list.len());
            for t in list {
                encode_tensor(&mut w, t);
            }
        }
        w.u32(self.opset);
        w.u64(self.cost.flops);
        w.u64(self.cost.bytes);
        w.str(&self.runtime_version);
        if w.as_bytes().len() > Limits::MAX_MANIFEST_BYTES {
            return Err(invalid(format!(
                "encodes to {} bytes, over the limit of {}",
                w.as_bytes().len(),
                Limits::MAX_MANIFEST_BYTES
            )));
        }
        Ok(w.into_bytes())
    }

    /// Decodes a canonical encoding: rejects other format versions, limits
    /// exceeded, non-canonical forms (tags, version text) and trailing bytes,
    /// then validates.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, Error> {
        if bytes.len() > Limits::MAX_MANIFEST_BYTES {
            return Err(Reader::new("manifest", bytes)
                .err(format!(
                    "{} bytes, over the limit of {}",
                    bytes.len(),
                    Limits::MAX_MANIFEST_BYTES
                ))
                .into());
        }
        let mut r = Reader::new("manifest", bytes);
        if r.take(4)? != MANIFEST_MAGIC {
            return Err(r.err_at(0, "not a manifest (bad magic)").into());
        }
        let fv = r.u16()?;
        if fv != FORMAT_VERSION {
            return Err(r
                .err(format!(
                    "format version {fv} is not supported (this build reads {FORMAT_VERSION})"
                ))
                .into());
        }
        let model_id = ModelId::from_bytes(r.array()?);
        let size_bytes = r.u64()?;
        let name = r.str("name", Limits::MAX_NAME_BYTES)?;
        let at = r.pos();
        let vtext = r.str("version", Limits::MAX_VERSION_BYTES)?;
        let version = semver::Version::parse(&vtext)
            .ok()
            .filter(|v| v.to_string() == vtext)
            .ok_or_else(|| {
                r.err_at(
                    at,
                    format!("version `{}` is not canonical semver", clip(&vtext, 40)),
                )
            })?;
        let description = r.str("description", Limits::MAX_DESCRIPTION_BYTES)?;
        let license = if r.flag("license")? {
            Some(r.str("license", Limits::MAX_LICENSE_BYTES)?)
        } else {
            None
        };
        let publisher = PublicKey::read_from(&mut r, "publisher")?;
        let created_at_unix_s = r.u64()?;
        let n = r.len("parents", Limits::MAX_PARENTS)?;
        let mut parents = Vec::with_capacity(n);
        for _ in 0..n {
            let id = ModelId::from_bytes(r.array()?);
            let tag = r.u8()?;
            let relation = *Relation::ALL
                .get(usize::from(tag))
                .ok_or_else(|| r.err(format!("relation tag {tag} is unknown")))?;
            parents.push(Parent { id, relation });
        }
        let n = r.len("sources", Limits::MAX_SOURCES)?;
        let mut sources = Vec::with_capacity(n);
        for _ in 0..n {
            let hash = Hash::from_bytes(r.array()?);
            let uri = r.str("source URI", Limits::MAX_URI_BYTES)?;
            sources.push(Source { hash, uri });
        }
        let mut lists = [Vec::new(), Vec::new()];
        for (list, what) in lists.iter_mut().zip(["inputs", "outputs"]) {
            let n = r.len(what, Limits::MAX_TENSORS)?;
            list.reserve(n);
            for _ in 0..n {
                list.push(decode_tensor(&mut r)?);
            }
        }
        let [inputs, outputs] = lists;
        let opset = r.u32()?;
        let cost = CostSpec {
            flops: r.u64()?,
            bytes: r.u64()?,
        };
        let runtime_version = r.str("runtime version", Limits::MAX_RUNTIME_VERSION_BYTES)?;
        r.finish()?;
        let m = Manifest {
            model_id,
            size_bytes,
            name,
            version,
            description,
            license,
            publisher,
            created_at_unix_s,
            parents,
            sources,
            inputs,
            outputs,
            opset,
            cost,
            runtime_version,
        };
        m.validate()?;
        Ok(m)
    }
}

fn encode_tensor(w: &mut Writer, t: &TensorSpec) {
    w.str(&t.name);
    match &t.dtype {
        None => w.u8(0),
        Some(d) => {
            w.u8(1);
            w.str(d);
        }
    }
    match &t.shape {
        None => w.u8(0),
        Some(dims) => {
            w.u8(1);
            w.len(dims.len());
            for d in dims {
                match d {
                    DimSpec::Fixed(n) => {
                        w.u8(0);
                        w.u64(*n);
                    }
                    DimSpec::Symbol(s) => {
                        w.u8(1);
                        w.str(s);
                    }
                }
            }
        }
    }
}

fn decode_tensor(r: &mut Reader<'_>) -> Result<TensorSpec, Error> {
    let name = r.str("tensor name", Limits::MAX_TENSOR_NAME_BYTES)?;
    let dtype = if r.flag("dtype")? {
        Some(r.str("dtype", Limits::MAX_DTYPE_BYTES)?)
    } else {
        None
    };
    let shape = if r.flag("shape")? {
        let n = r.len("dimensions", Limits::MAX_RANK)?;
        let mut dims = Vec::with_capacity(n);
        for _ in 0..n {
            dims.push(if r.flag("dimension kind")? {
                DimSpec::Symbol(r.str("symbolic dimension", Limits::MAX_SYMBOL_BYTES)?)
            } else {
                DimSpec::Fixed(r.u64()?)
            });
        }
        Some(dims)
    } else {
        None
    };
    Ok(TensorSpec { name, dtype, shape })
}

/// A manifest with its publisher's signature. Constructed only from a valid
/// manifest, so its encoding and id are always available; the signature is
/// checked by [`SignedManifest::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    manifest: Manifest,
    signature: Signature,
    manifest_bytes: Vec<u8>,
}

impl SignedManifest {
    /// Signs `manifest` with `key`, which must be its publisher's.
    pub fn sign(manifest: Manifest, key: &SecretKey) -> Result<Self, Error> {
        if key.public() != manifest.publisher {
            return Err(Error::WrongSigner {
                signer: key.public().to_string(),
                publisher: manifest.publisher.to_string(),
            });
        }
        let manifest_bytes = manifest.encode()?;
        let signature = key.sign(&signing_message(&manifest_bytes));
        Ok(SignedManifest {
            manifest,
            signature,
            manifest_bytes,
        })
    }

    /// Pairs a manifest with a signature without checking it (call
    /// [`SignedManifest::verify`]).
    pub fn from_parts(manifest: Manifest, signature: Signature) -> Result<Self, Error> {
        let manifest_bytes = manifest.encode()?;
        Ok(SignedManifest {
            manifest,
            signature,
            manifest_bytes,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Checks the signature against the manifest's publisher key.
    pub fn verify(&self) -> Result<(), Error> {
        self.manifest
            .publisher
            .verify(&signing_message(&self.manifest_bytes), &self.signature)
    }

    /// The canonical encoding: magic `GBSM`, format version, the
    /// length-prefixed manifest encoding, then the 64 signature bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(SIGNED_MAGIC);
        w.u16(FORMAT_VERSION);
        w.len(self.manifest_bytes.len());
        w.bytes(&self.manifest_bytes);
        w.bytes(self.signature.as_bytes());
        w.into_bytes()
    }

    /// The manifest id: BLAKE3 of [`SignedManifest::encode`].
    pub fn id(&self) -> ManifestId {
        ManifestId::of(&self.encode())
    }

    /// Decodes a canonical encoding. Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("signed manifest", bytes);
        if r.take(4)? != SIGNED_MAGIC {
            return Err(r.err_at(0, "not a signed manifest (bad magic)").into());
        }
        let fv = r.u16()?;
        if fv != FORMAT_VERSION {
            return Err(r
                .err(format!(
                    "format version {fv} is not supported (this build reads {FORMAT_VERSION})"
                ))
                .into());
        }
        let n = r.len("manifest", Limits::MAX_MANIFEST_BYTES)?;
        let at = r.pos();
        let manifest_bytes = r.take(n)?.to_vec();
        let signature = Signature::from_bytes(r.array()?);
        r.finish()?;
        let manifest = Manifest::decode(&manifest_bytes).map_err(|e| match e {
            Error::Decode(d) => Error::Decode(DecodeError {
                offset: at + d.offset,
                ..d
            }),
            other => other,
        })?;
        Ok(SignedManifest {
            manifest,
            signature,
            manifest_bytes,
        })
    }

    /// Decodes and verifies the signature.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, Error> {
        let s = SignedManifest::decode(bytes)?;
        s.verify()?;
        Ok(s)
    }
}

fn signing_message(manifest_bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_DOMAIN.len() + manifest_bytes.len());
    m.extend_from_slice(SIGNING_DOMAIN);
    m.extend_from_slice(manifest_bytes);
    m
}

/// Checks a registry name (lower-case letters, digits, `-_./`).
pub fn validate_name(name: &str) -> Result<(), Error> {
    check_name(name)
}

//! The local model registry:
//!
//! ```text
//! ROOT/blobs/<2 hex>/<64 hex>           model files (BlobStore)
//! ROOT/manifests/<64 hex>.gbm           signed manifests, by manifest id
//! ROOT/names/<hex of name>/<version>    "blake3:<manifest id>\n"
//! ```
//!
//! Index entries are created with a no-overwrite link, so the first
//! publisher of a name@version keeps it.

use std::fs;
use std::path::PathBuf;

use glassbox_types::{Limits, ManifestId, ModelId, SignedManifest, hex, validate_name};

use crate::blob::{BlobStore, STALE_TEMP_AGE, clean_temp_in};
use crate::fsutil::{TEMP_PREFIX, create_atomic, read_limited, remove_quietly, write_atomic};
use crate::{Error, Result, io_err};

/// Index files are one id line.
const MAX_INDEX_FILE_BYTES: u64 = 256;

/// A signed manifest in the registry, with its id.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The manifest id.
    pub id: ManifestId,
    /// The verified signed manifest.
    pub signed: SignedManifest,
}

/// What [`Registry::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The manifest is new and now owns its name@version.
    New(ManifestId),
    /// The same publisher had already published this model under this
    /// name@version (identical manifest, or differing only in creation
    /// time); nothing changed and this is the manifest already there.
    Existing(ManifestId),
}

impl Published {
    /// The manifest id now registered for the name@version.
    pub fn id(self) -> ManifestId {
        match self {
            Published::New(id) | Published::Existing(id) => id,
        }
    }
}

/// A local registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    blobs: BlobStore,
}

impl Registry {
    /// Opens (creating) the registry at `root`, with blobs of at most
    /// `max_blob_bytes`.
    pub fn open(root: impl Into<PathBuf>, max_blob_bytes: u64) -> Result<Registry> {
        let root = root.into();
        let blobs = BlobStore::open(root.join("blobs"), max_blob_bytes)?;
        for d in ["manifests", "names"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        clean_temp_in(&root.join("manifests"), STALE_TEMP_AGE, 0)?;
        clean_temp_in(&root.join("names"), STALE_TEMP_AGE, 1)?;
        Ok(Registry { root, blobs })
    }

    /// The registry directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The model blobs.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn manifest_path(&self, id: &ManifestId) -> PathBuf {
        self.root
            .join("manifests")
            .join(format!("{}.gbm", id.to_hex()))
    }

    fn name_dir(&self, name: &str) -> PathBuf {
        self.root.join("names").join(hex(name.as_bytes()))
    }

    /// Registers `signed`, whose model blob must already be stored. Refuses
    /// a bad signature, a missing or wrong-size blob, and a name@version
    /// that is taken by another publisher or by another manifest.
    pub fn publish(&self, signed: &SignedManifest) -> Result<Published> {
        signed.verify()?;
        let m = signed.manifest();
        match self.blobs.size_bytes(&m.model_id)? {
            None => return Err(Error::MissingBlob(m.model_id)),
            Some(n) if n != m.size_bytes => {
                return Err(Error::Corrupt {
                    path: self.blobs.path(&m.model_id),
                    reason: format!("{n} bytes, but the manifest says {}", m.size_bytes),
                });
            }
            Some(_) => {}
        }
        let id = signed.id();
        let version = m.version.to_string();
        // Check before writing anything, then claim atomically.
        if let Some(existing) = self.lookup_version(&m.name, &version)? {
            return self.compare_existing(signed, existing);
        }
        let mpath = self.manifest_path(&id);
        let created_manifest = !mpath.exists();
        if created_manifest {
            write_atomic(&mpath, &signed.encode())?;
        }
        let index = self.name_dir(&m.name).join(&version);
        if create_atomic(&index, format!("{id}\n").as_bytes())? {
            return Ok(Published::New(id));
        }
        // Lost a race for the name@version.
        if created_manifest {
            remove_quietly(&mpath);
        }
        let existing = self
            .lookup_version(&m.name, &version)?
            .ok_or_else(|| Error::NotFound(format!("{}@{version}", m.name)))?;
        self.compare_existing(signed, existing)
    }

    fn compare_existing(&self, signed: &SignedManifest, existing: Entry) -> Result<Published> {
        let m = signed.manifest();
        let e = existing.signed.manifest();
        if existing.id == signed.id() {
            return Ok(Published::Existing(existing.id));
        }
        if e.publisher != m.publisher {
            return Err(Error::NameTaken {
                name: m.name.clone(),
                version: m.version.to_string(),
                publisher: e.publisher.to_string(),
            });
        }
        let mut same = m.clone();
        same.created_at_unix_s = e.created_at_unix_s;
        if same == *e {
            return Ok(Published::Existing(existing.id));
        }
        Err(Error::VersionExists {
            name: m.name.clone(),
            version: m.version.to_string(),
            existing: existing.id,
        })
    }

    /// The manifest `id`, verified (content hash and signature), if stored.
    pub fn get(&self, id: &ManifestId) -> Result<Option<Entry>> {
        let path = self.manifest_path(id);
        let bytes = match read_limited(&path, Limits::MAX_MANIFEST_BYTES as u64 + 64) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if ManifestId::of(&bytes) != *id {
            return Err(Error::Corrupt {
                path,
                reason: "its content does not hash to its name".into(),
            });
        }
        let signed = SignedManifest::decode_verified(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Entry { id: *id, signed }))
    }

    fn lookup_version(&self, name: &str, version: &str) -> Result<Option<Entry>> {
        let path = self.name_dir(name).join(version);
        let text = match read_limited(&path, MAX_INDEX_FILE_BYTES) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let id: ManifestId = String::from_utf8_lossy(&text).trim_end().parse().map_err(
            |e: glassbox_types::ParseError| Error::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            },
        )?;
        let entry = self.get(&id)?.ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: format!("names the missing manifest {id}"),
        })?;
        let m = entry.signed.manifest();
        if m.name != name || m.version.to_string() != version {
            return Err(Error::Corrupt {
                path,
                reason: format!("names the manifest of {}@{}", m.name, m.version),
            });
        }
        Ok(Some(entry))
    }

    /// All versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Entry>> {
        let dir = self.name_dir(name);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(dir)(e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(io_err(&dir))?;
            let file = ent.file_name();
            let Some(v) = file.to_str() else { continue };
            if v.starts_with(TEMP_PREFIX) || semver::Version::parse(v).is_err() {
                continue;
            }
            if let Some(e) = self.lookup_version(name, v)? {
                out.push(e);
            }
        }
        out.sort_by(|a, b| {
            a.signed
                .manifest()
                .version
                .cmp(&b.signed.manifest().version)
        });
        Ok(out)
    }

    /// Every registered name@version, sorted by name then version.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let dir = self.root.join("names");
        let rd = fs::read_dir(&dir).map_err(io_err(&dir))?;
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(io_err(&dir))?;
            let file = ent.file_name();
            let Some(h) = file.to_str() else { continue };
            let Some(name) = unhex_name(h) else { continue };
            names.push(name);
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            out.extend(self.versions(&n)?);
        }
        Ok(out)
    }

    /// Registered manifests of model `id`.
    pub fn find_model(&self, id: &ModelId) -> Result<Vec<Entry>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|e| e.signed.manifest().model_id == *id)
            .collect())
    }

    /// Resolves `blake3:<hex>` (a manifest id, else a registered model id)
    /// or `NAME[@VERSION]` (without a version: the highest release, or the
    /// highest pre-release when there is no release).
    pub fn resolve(&self, query: &str) -> Result<Entry> {
        if query.starts_with(ManifestId::PREFIX) {
            let id: ManifestId = query.parse().map_err(glassbox_types::Error::from)?;
            if let Some(e) = self.get(&id)? {
                return Ok(e);
            }
            let model = ModelId::from_bytes(*id.as_bytes());
            return self
                .find_model(&model)?
                .pop()
                .ok_or_else(|| Error::NotFound(format!("no manifest or model {query}")));
        }
        let (name, version) = match query.rsplit_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (query, None),
        };
        validate_name(name)?;
        match version {
            Some(v) => {
                let v = semver::Version::parse(v).map_err(|e| {
                    glassbox_types::Error::from(glassbox_types::ParseError::new(
                        "version",
                        v,
                        e.to_string(),
                    ))
                })?;
                self.lookup_version(name, &v.to_string())?
                    .ok_or_else(|| Error::NotFound(format!("{name}@{v}")))
            }
            None => {
                let all = self.versions(name)?;
                let release = all
                    .iter()
                    .rposition(|e| e.signed.manifest().version.pre.is_empty());
                let pick = release.or(all.len().checked_sub(1));
                pick.and_then(|i| all.into_iter().nth(i))
                    .ok_or_else(|| Error::NotFound(format!("no model named {name}")))
            }
        }
    }
}

fn unhex_name(h: &str) -> Option<String> {
    if !h.len().is_multiple_of(2) || h.len() > 2 * Limits::MAX_NAME_BYTES {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    let name = String::from_utf8(bytes?).ok()?;
    validate_name(&name).ok()?;
    (hex(name.as_bytes()) == h).then_some(name)
}

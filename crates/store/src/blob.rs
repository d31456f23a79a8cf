//! Content-addressed blobs: `DIR/<first 2 hex>/<64 hex>`, named by the
//! BLAKE3 hash of their bytes, each with its BLAKE3 tree outboard
//! `<64 hex>.obao` (see [`crate::stream`]).

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use glassbox_types::ModelId;

use crate::fsutil::{TEMP_PREFIX, create_temp, parent, remove_quietly, sync_dir, write_atomic};
use crate::stream::{SliceRequest, create_outboard, tree};
use crate::{Error, Result, io_err};

/// Temp files older than this are left over from a crash and removed by
/// [`BlobStore::open`]; younger ones may belong to a live writer.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

const CHUNK_BYTES: usize = 1 << 16;

/// A directory of content-addressed blobs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl BlobStore {
    /// Opens (creating) the store at `dir`, accepting blobs of at most
    /// `max_bytes`, and removes temp files older than [`STALE_TEMP_AGE`].
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<BlobStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let store = BlobStore { dir, max_bytes };
        store.clean_temp(STALE_TEMP_AGE)?;
        Ok(store)
    }

    /// The largest blob accepted.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the blob `id` lives (whether or not it exists).
    pub fn path(&self, id: &ModelId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Where the outboard (BLAKE3 tree hash pairs) of blob `id` lives.
    pub fn outboard_path(&self, id: &ModelId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.obao"))
    }

    /// Whether the blob `id` is stored (not verified).
    pub fn contains(&self, id: &ModelId) -> bool {
        self.path(id).is_file()
    }

    /// The stored size of blob `id`, if present.
    pub fn size_bytes(&self, id: &ModelId) -> Result<Option<u64>> {
        let p = self.path(id);
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(p)(e)),
        }
    }

    /// Stores `bytes`, returning their id.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ModelId> {
        Ok(self.put_reader(bytes, None)?.0)
    }

    /// Stores the file at `path`, returning its id and size.
    pub fn put_file(&self, path: &Path) -> Result<(ModelId, u64)> {
        let f = File::open(path).map_err(io_err(path))?;
        self.put_reader(f, None)
    }

    /// Streams `reader` into the store. With `expected`, content hashing to
    /// anything else is refused and nothing is stored. The blob appears
    /// under its final name only complete, synced and hashed; concurrent
    /// writers of the same blob each rename identical content into place.
    pub fn put_reader(
        &self,
        mut reader: impl Read,
        expected: Option<&ModelId>,
    ) -> Result<(ModelId, u64)> {
        let (mut f, tmp) = create_temp(&self.dir)?;
        let result = (|| {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; CHUNK_BYTES];
            let mut size: u64 = 0;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("<input>")(e)),
                };
                size += n as u64;
                if size > self.max_bytes {
                    return Err(Error::TooLarge {
                        what: "blob".into(),
                        max_bytes: self.max_bytes,
                    });
                }
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n]).map_err(io_err(&tmp))?;
            }
            f.sync_all().map_err(io_err(&tmp))?;
            let id = ModelId::from(hasher.finalize());
            if let Some(exp) = expected
                && *exp != id
            {
                return Err(Error::HashMismatch {
                    expected: *exp,
                    actual: id,
                });
            }
            let path = self.path(&id);
            let dir = parent(&path);
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            // The outboard goes in place first, so a complete blob always
            // has one (and a missing one is rebuilt by `outboard`).
            self.write_outboard(&id, &tmp, size)?;
            fs::rename(&tmp, &path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            Ok((id, size))
        })();
        if result.is_err() {
            remove_quietly(&tmp);
        }
        result
    }

    /// Reads blob `id`, verifying its hash.
    pub fn get(&self, id: &ModelId) -> Result<Vec<u8>> {
        let path = self.path(id);
        let bytes = match crate::fsutil::read_limited(&path, self.max_bytes) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(*id));
            }
            r => r?,
        };
        let actual = ModelId::of(&bytes);
        if actual != *id {
            return Err(Error::Corrupt {
                path,
                reason: format!("its content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Copies blob `id` to `dest`, verifying it as it streams; `dest` is
    /// replaced atomically and only with verified content. Returns the size.
    pub fn export(&self, id: &ModelId, dest: &Path) -> Result<u64> {
        let path = self.path(id);
        let mut src = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(*id));
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let dest_dir = parent(dest);
        let (mut out, tmp) = create_temp(dest_dir)?;
        let result = (|| {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; CHUNK_BYTES];
            let mut size: u64 = 0;
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(&path)(e)),
                };
                size += n as u64;
                if size > self.max_bytes {
                    return Err(Error::TooLarge {
                        what: path.display().to_string(),
                        max_bytes: self.max_bytes,
                    });
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err(&tmp))?;
            }
            let actual = ModelId::from(hasher.finalize());
            if actual != *id {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    reason: format!("its content hashes to {actual}"),
                });
            }
            out.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, dest).map_err(io_err(dest))?;
            sync_dir(dest_dir)?;
            Ok(size)
        })();
        if result.is_err() {
            remove_quietly(&tmp);
        }
        result
    }

    /// Computes the outboard of the `size` bytes at `data` (hashing to `id`)
    /// and writes it atomically; returns it.
    fn write_outboard(&self, id: &ModelId, data: &Path, size: u64) -> Result<Vec<u8>> {
        let f = File::open(data).map_err(io_err(data))?;
        let (root, ob) = create_outboard(BufReader::with_capacity(CHUNK_BYTES, f), size)
            .map_err(io_err(data))?;
        if ModelId::from(root) != *id {
            return Err(Error::Corrupt {
                path: data.to_path_buf(),
                reason: format!("its content hashes to {}", ModelId::from(root)),
            });
        }
        write_atomic(&self.outboard_path(id), &ob)?;
        Ok(ob)
    }

    /// The outboard of blob `id`: its BLAKE3 tree's hash pairs in
    /// pre-order over 16 KiB chunk groups. One missing (a blob stored before
    /// outboards, or a crash) is rebuilt from the verified blob; one of the
    /// wrong length is reported as corrupt.
    pub fn outboard(&self, id: &ModelId) -> Result<Vec<u8>> {
        let size = self.size_bytes(id)?.ok_or(Error::MissingBlob(*id))?;
        let want = tree(size).outboard_size();
        let path = self.outboard_path(id);
        match crate::fsutil::read_limited(&path, want) {
            Ok(ob) if ob.len() as u64 == want => Ok(ob),
            Ok(ob) => Err(Error::Corrupt {
                path,
                reason: format!("{} bytes where a {size}-byte blob needs {want}", ob.len()),
            }),
            Err(Error::TooLarge { .. }) => Err(Error::Corrupt {
                path,
                reason: format!("over the {want} bytes a {size}-byte blob needs"),
            }),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.write_outboard(id, &self.path(id), size)
            }
            Err(e) => Err(e),
        }
    }

    /// Encodes `req` of blob `id` for a downloader: the chunk groups
    /// covering the range and the hash pairs proving them against `id`,
    /// for [`crate::stream::verify_slice`]. The data and outboard are
    /// checked while encoding, so a corrupt blob is never served.
    pub fn encode_slice(
        &self,
        id: &ModelId,
        req: SliceRequest,
        max_slice_bytes: u64,
    ) -> Result<Vec<u8>> {
        let size = self.size_bytes(id)?.ok_or(Error::MissingBlob(*id))?;
        req.check(size, max_slice_bytes)?;
        let ob = bao_tree::io::outboard::PreOrderOutboard {
            root: blake3::Hash::from_bytes(*id.as_bytes()),
            tree: tree(size),
            data: self.outboard(id)?,
        };
        let path = self.path(id);
        let f = File::open(&path).map_err(io_err(&path))?;
        let mut out = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(f, ob, &req.chunk_ranges(), &mut out).map_err(
            |e| Error::Corrupt {
                path,
                reason: format!("its data or outboard fails verification: {e}"),
            },
        )?;
        Ok(out)
    }

    /// Removes temp files (left by crashed writers) older than `min_age`;
    /// returns how many were removed.
    pub fn clean_temp(&self, min_age: Duration) -> Result<usize> {
        clean_temp_in(&self.dir, min_age, 1)
    }
}

/// Removes stale temp files in `dir` and, to `depth` levels, its subdirectories.
pub(crate) fn clean_temp_in(dir: &Path, min_age: Duration, depth: u32) -> Result<usize> {
    let mut removed = 0;
    let now = SystemTime::now();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() && depth > 0 {
            removed += clean_temp_in(&entry.path(), min_age, depth - 1)?;
        } else if ft.is_file() && name.to_string_lossy().starts_with(TEMP_PREFIX) {
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if age >= min_age && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

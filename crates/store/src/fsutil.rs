//! Crash-safe file writing: temp file in the destination's directory,
//! fsync, atomic rename (or no-overwrite hard link), fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Result, io_err};

/// Prefix of every temp file; readers ignore such names, `clean` removes
/// stale ones.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temp file in `dir`, created exclusively.
pub(crate) fn create_temp(dir: &Path) -> Result<(File, PathBuf)> {
    create_temp_mode(dir, false)
}

/// A fresh temp file in `dir`, created exclusively; `private` makes it
/// mode `0600` on Unix from its creation on.
fn create_temp_mode(dir: &Path, private: bool) -> Result<(File, PathBuf)> {
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{}-{nanos}-{n}", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        match opts.open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
}

/// Makes a rename or link in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes `path`, ignoring errors (used on failure paths).
pub(crate) fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Writes `bytes` to a synced temp file in `path`'s directory.
fn write_temp(path: &Path, bytes: &[u8], private: bool) -> Result<PathBuf> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (mut f, tmp) = create_temp_mode(dir, private)?;
    let r = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp));
    if let Err(e) = r {
        remove_quietly(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Atomically replaces `path` with `bytes`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

/// Atomically replaces `path` with `bytes` in a file only its owner can
/// read or write (mode `0600` on Unix): a temp file in the same directory,
/// fsync, rename, fsync of the directory. A crash leaves the old file or
/// the new one, never a torn one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

fn replace(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let tmp = write_temp(path, bytes, private)?;
    if let Err(e) = fs::rename(&tmp, path) {
        remove_quietly(&tmp);
        return Err(io_err(path)(e));
    }
    sync_dir(parent(path))
}

/// Atomically creates `path` with `bytes` unless it exists: returns
/// `Ok(false)` (and leaves it untouched) when it does.
pub(crate) fn create_atomic(path: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_temp(path, bytes, false)?;
    let linked = fs::hard_link(&tmp, path);
    remove_quietly(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(parent(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads at most `max_bytes` of `path`; larger files are an error.
pub(crate) fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    f.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > max_bytes {
        return Err(crate::Error::TooLarge {
            what: path.display().to_string(),
            max_bytes,
        });
    }
    Ok(buf)
}

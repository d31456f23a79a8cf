//! Secret key files: one line `ed25519-secret:<64 hex>`, created with mode
//! `0600` (on Unix) and never overwritten; reading refuses files that group
//! or others can access.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use glassbox_types::SecretKey;

use crate::{Error, Result, io_err};

/// Key files are one short line.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// A new key from the OS's secure random source.
pub fn generate_secret_key() -> Result<SecretKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Random(e.to_string()))?;
    let key = SecretKey::from_seed(&seed);
    seed.fill(0);
    Ok(key)
}

/// Writes `key` to a new file at `path` (mode `0600`; parent directories
/// are created `0700`). Fails if `path` exists.
pub fn write_secret_key(path: &Path, key: &SecretKey) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io_err(dir))?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::KeyFile {
                path: path.to_path_buf(),
                reason: "already exists; refusing to overwrite a key".into(),
            }
        } else {
            io_err(path)(e)
        }
    })?;
    let r = f
        .write_all(format!("{}\n", key.to_secret_text()).as_bytes())
        .and_then(|()| f.sync_all());
    if let Err(e) = r {
        let _ = fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// Reads a key file written by [`write_secret_key`], refusing it when its
/// permissions let group or others read it.
pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let bad = |reason: String| Error::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "permissions {mode:04o} let others read it; run `chmod 600 {}`",
                path.display()
            )));
        }
    }
    let bytes = crate::fsutil::read_limited(path, MAX_KEY_FILE_BYTES).map_err(|_| {
        bad(format!(
            "larger than {MAX_KEY_FILE_BYTES} bytes or unreadable"
        ))
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    SecretKey::from_secret_text(line).map_err(|e| bad(e.to_string()))
}

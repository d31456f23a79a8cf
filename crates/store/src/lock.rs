//! An exclusive lock on a data directory, so one process at a time runs a
//! node on it, and nothing wipes it under a running node.
//!
//! The lock is an OS advisory lock (`flock`) on the file [`LOCK_FILE`] in
//! the directory, holding the holder's process id as text for the message
//! of whoever is refused. The OS drops the lock when the holder exits, even
//! by `kill -9`, so a crash leaves nothing to clean up. Locks are per open
//! file: a second [`DirLock::acquire`] of the same directory fails even in
//! the same process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result, io_err};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "glassbox.lock";

/// Most bytes of a lock file read for the holder's process id.
const MAX_LOCK_FILE_BYTES: u64 = 64;

/// A held lock on a directory; released when dropped (or when the process
/// exits).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    _file: File,
}

impl DirLock {
    /// Locks `dir` (created if missing), or fails with [`Error::Locked`]
    /// naming the holder's process id when another open lock holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io_err(&path))?;
        Ok(DirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The process id a held lock file names, if it reads as one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(MAX_LOCK_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        assert_eq!(first.dir(), dir.path());
        match DirLock::acquire(dir.path()) {
            Err(Error::Locked { dir: d, holder }) => {
                assert_eq!(d, dir.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let message = DirLock::acquire(dir.path())
            .expect_err("still locked")
            .to_string();
        assert!(message.contains("in use by process"), "{message}");
        drop(first);
        DirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn locking_creates_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a").join("b");
        let lock = DirLock::acquire(&nested).expect("lock");
        assert!(nested.join(LOCK_FILE).is_file());
        drop(lock);
    }
}

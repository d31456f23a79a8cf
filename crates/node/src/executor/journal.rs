//! The executor's durable results (docs/jobs.md, "Executor"; issue #27):
//! every result is on disk, fsynced, before the commitment to it is sent,
//! so a node killed between its commit and its reveal reveals at once
//! after a restart instead of running the job again (which for a long run
//! near the end of the reveal window would cost its whole stake).
//!
//! Each executor step that computed results writes them in one batch file
//! (one fsync per step, not per job) under `<data>/executor/`; a file is
//! removed once none of its jobs is still open for this executor. Salts are
//! not stored: they are derived from the key and the job
//! ([`super::salt_for`]).
//!
//! A batch file, all integers little-endian:
//!
//! ```text
//! "GBXR" | version u8 (1) | count u32 (1..=MAX_BATCH_RESULTS) |
//! count × ( job id [32] | output hash [32] | trace root [32] |
//!           outputs u32 (<= MAX_JOB_TENSORS) |
//!           outputs × ( len u32 | bytes ) ) |
//! BLAKE3 of everything before [32]
//! ```
//!
//! The outputs of one result total at most `HARD_MAX_JOB_IO_BYTES`. A file
//! that is unreadable, torn or fails its checksum is reported and removed:
//! its jobs are run again (the run is deterministic and the salt derived,
//! so the same commitment opens).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use glassbox_ledger::JobId;
use glassbox_ledger::limits::{HARD_MAX_JOB_IO_BYTES, MAX_JOB_TENSORS};
use glassbox_primitives::{OutputHash, TraceRoot, tags};

/// The batch file format's version.
const VERSION: u8 = 1;

/// Most results in one batch file.
pub const MAX_BATCH_RESULTS: usize = 4096;

/// The largest batch file read back (the most results, each with the
/// most output bytes, and their framing).
const MAX_FILE_BYTES: u64 = (MAX_BATCH_RESULTS as u64) * (HARD_MAX_JOB_IO_BYTES as u64 + 4096);

/// Most batch files read back at start: a directory holding more is
/// refused (a node never has more pending results than its
/// `max_pending_results`, so it is not one this node wrote).
const MAX_FILES: usize = 4096;

/// One durable result: what a reveal needs besides the derived salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The job.
    pub job: JobId,
    /// The outputs' canonical encodings.
    pub outputs: Vec<Vec<u8>>,
    /// The hash the commitment binds.
    pub output_hash: OutputHash,
    /// The run's trace root.
    pub trace_root: TraceRoot,
}

/// Why a batch file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file system failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A batch file is not one this version wrote.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A batch over [`MAX_BATCH_RESULTS`] or a result over the format's
    /// limits.
    #[error("cannot store the batch: {0}")]
    TooLarge(String),
}

/// The results on disk and which batch file holds each.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// Batch file sequence number -> the jobs it holds still open.
    files: HashMap<u64, Vec<JobId>>,
    next: u64,
}

impl Journal {
    /// Opens (creating) `dir` and reads back every batch file in it,
    /// oldest first. Unreadable files are removed and returned as errors
    /// beside the results (their jobs are run again).
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Stored>, Vec<JournalError>), JournalError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut seqs = Vec::new();
        let mut problems = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(parse_name) else {
                // Temp files of a write a crash interrupted.
                if name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            };
            seqs.push(seq);
        }
        seqs.sort_unstable();
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
            next: seqs.last().map_or(0, |s| s.saturating_add(1)),
        };
        let mut results = Vec::new();
        if seqs.len() > MAX_FILES {
            return Err(JournalError::TooLarge(format!(
                "{} results files in {}, over {MAX_FILES}: not a directory this node wrote",
                seqs.len(),
                dir.display()
            )));
        }
        for seq in seqs {
            let path = journal.path(seq);
            match read_file(&path) {
                Ok(batch) => {
                    journal
                        .files
                        .insert(seq, batch.iter().map(|s| s.job).collect());
                    results.extend(batch);
                }
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    problems.push(e);
                }
            }
        }
        Ok((journal, results, problems))
    }

    /// Writes `batch` durably (temp file, fsync, rename, fsync of the
    /// directory) before anything is committed to it.
    pub fn write(&mut self, batch: &[Stored]) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes = encode(batch)?;
        let seq = self.next;
        let path = self.path(seq);
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{seq}"));
        let written = (|| {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(JournalError::Io { path, source: e });
        }
        self.next = seq.saturating_add(1);
        self.files
            .insert(seq, batch.iter().map(|s| s.job).collect());
        Ok(())
    }

    /// Forgets the jobs `keep` refuses, removing each batch file none of
    /// whose jobs is kept. Returns the files it could not remove.
    pub fn retain(&mut self, mut keep: impl FnMut(&JobId) -> bool) -> Vec<JournalError> {
        let mut problems = Vec::new();
        let mut emptied = Vec::new();
        for (seq, jobs) in &mut self.files {
            jobs.retain(&mut keep);
            if jobs.is_empty() {
                emptied.push(*seq);
            }
        }
        for seq in emptied {
            let path = self.path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.files.remove(&seq);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.files.remove(&seq);
                }
                Err(e) => problems.push(JournalError::Io { path, source: e }),
            }
        }
        problems
    }

    /// Batch files on disk.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("results-{seq:020}.bin"))
    }
}

/// Prefix of a batch file being written.
const TEMP_PREFIX: &str = ".tmp-results-";

/// The sequence number of a batch file's name.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("results-")?.strip_suffix(".bin")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Vec<Stored>, JournalError> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("over {MAX_FILE_BYTES} bytes"),
        });
    }
    decode(&bytes).map_err(|reason| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// The batch file bytes of `batch`.
pub fn encode(batch: &[Stored]) -> Result<Vec<u8>, JournalError> {
    if batch.len() > MAX_BATCH_RESULTS {
        return Err(JournalError::TooLarge(format!(
            "{} results, over {MAX_BATCH_RESULTS}",
            batch.len()
        )));
    }
    let mut out = Vec::new();
    out.extend_from_slice(tags::EXECUTOR_RESULTS);
    out.push(VERSION);
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for s in batch {
        let total: usize = s.outputs.iter().map(Vec::len).sum();
        if s.outputs.len() > MAX_JOB_TENSORS || total > HARD_MAX_JOB_IO_BYTES {
            return Err(JournalError::TooLarge(format!(
                "job {}: {} outputs of {total} bytes, over {MAX_JOB_TENSORS} or {HARD_MAX_JOB_IO_BYTES}",
                s.job,
                s.outputs.len()
            )));
        }
        out.extend_from_slice(s.job.as_bytes());
        out.extend_from_slice(s.output_hash.as_bytes());
        out.extend_from_slice(s.trace_root.as_bytes());
        out.extend_from_slice(&(s.outputs.len() as u32).to_le_bytes());
        for o in &s.outputs {
            out.extend_from_slice(&(o.len() as u32).to_le_bytes());
            out.extend_from_slice(o);
        }
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// The results of batch file `bytes`, checked against their checksum and
/// every limit of the format.
pub fn decode(bytes: &[u8]) -> Result<Vec<Stored>, String> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or("shorter than its checksum")?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return Err("checksum mismatch (a torn or damaged file)".into());
    }
    let mut r = Reader(body);
    if r.take(4)? != tags::EXECUTOR_RESULTS {
        return Err("not an executor results file".into());
    }
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(format!("version {version}, this node reads {VERSION}"));
    }
    let count = r.u32()? as usize;
    if count == 0 || count > MAX_BATCH_RESULTS {
        return Err(format!("{count} results, outside 1..={MAX_BATCH_RESULTS}"));
    }
    let mut batch = Vec::with_capacity(count.min(64));
    for i in 0..count {
        let job = JobId::from_bytes(r.array()?);
        let output_hash = OutputHash::from_bytes(r.array()?);
        let trace_root = TraceRoot::from_bytes(r.array()?);
        let n = r.u32()? as usize;
        if n > MAX_JOB_TENSORS {
            return Err(format!("result {i}: {n} outputs, over {MAX_JOB_TENSORS}"));
        }
        let mut outputs = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let len = r.u32()? as usize;
            total = total.saturating_add(len);
            if total > HARD_MAX_JOB_IO_BYTES {
                return Err(format!(
                    "result {i}: outputs over {HARD_MAX_JOB_IO_BYTES} bytes"
                ));
            }
            outputs.push(r.take(len)?.to_vec());
        }
        batch.push(Stored {
            job,
            outputs,
            output_hash,
            trace_root,
        });
    }
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok(batch)
}

/// A cursor over a batch file's body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array(&mut self) -> Result<[u8; 32], String> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u8, outputs: Vec<Vec<u8>>) -> Stored {
        Stored {
            job: JobId::from_bytes([n; 32]),
            outputs,
            output_hash: OutputHash::from_bytes([n.wrapping_add(1); 32]),
            trace_root: TraceRoot::from_bytes([n.wrapping_add(2); 32]),
        }
    }

    #[test]
    fn batches_survive_a_reopen_and_go_when_their_jobs_do() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("executor");
        let (mut j, loaded, problems) = Journal::open(&dir).unwrap();
        assert!(loaded.is_empty() && problems.is_empty());
        let first = vec![stored(1, vec![vec![1, 2, 3]]), stored(2, vec![])];
        let second = vec![stored(3, vec![vec![9; 100], vec![]])];
        j.write(&first).unwrap();
        j.write(&second).unwrap();
        j.write(&[]).unwrap();
        assert_eq!(j.files(), 2);

        // A crash: reopened, every result comes back, oldest first.
        let (mut j, loaded, problems) = Journal::open(&dir).unwrap();
        assert!(problems.is_empty());
        assert_eq!(loaded, [first.clone(), second.clone()].concat());
        // Job 1 done: its file stays for job 2; job 2 done too: removed.
        assert!(j.retain(|id| *id != first[0].job).is_empty());
        assert_eq!(j.files(), 2);
        assert!(j.retain(|id| *id == second[0].job).is_empty());
        assert_eq!(j.files(), 1);
        let (mut j, loaded, _) = Journal::open(&dir).unwrap();
        assert_eq!(loaded, second);
        // New files are numbered after the ones on disk.
        j.write(&first).unwrap();
        let (_, loaded, _) = Journal::open(&dir).unwrap();
        assert_eq!(loaded, [second, first].concat());
    }

    #[test]
    fn a_damaged_or_foreign_file_is_reported_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (mut j, _, _) = Journal::open(&dir).unwrap();
        j.write(&[stored(1, vec![vec![5; 10]])]).unwrap();
        j.write(&[stored(2, vec![vec![6; 10]])]).unwrap();
        let damaged = dir.join(format!("results-{:020}.bin", 0));
        let mut bytes = fs::read(&damaged).unwrap();
        bytes[20] ^= 1;
        fs::write(&damaged, &bytes).unwrap();
        // A write a crash interrupted, and a file of someone else.
        fs::write(dir.join(format!("{TEMP_PREFIX}7")), b"partial").unwrap();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
        let (_, loaded, problems) = Journal::open(&dir).unwrap();
        assert_eq!(loaded, vec![stored(2, vec![vec![6; 10]])]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("checksum"),
            "{}",
            problems[0]
        );
        assert!(!damaged.exists());
        assert!(!dir.join(format!("{TEMP_PREFIX}7")).exists());
        assert!(dir.join("notes.txt").exists());
    }

    #[test]
    fn decode_refuses_what_the_format_does_not_allow() {
        let good = encode(&[stored(1, vec![vec![1; 4]])]).unwrap();
        assert_eq!(decode(&good).unwrap(), vec![stored(1, vec![vec![1; 4]])]);
        let resum = |mut body: Vec<u8>| {
            let sum = blake3::hash(&body);
            body.extend_from_slice(sum.as_bytes());
            body
        };
        let body = good[..good.len() - 32].to_vec();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "checksum"),
            (good[..good.len() - 1].to_vec(), "checksum"),
            (resum(body[..body.len() - 1].to_vec()), "truncated"),
            (resum([&body[..], &[0]].concat()), "trailing"),
            (resum([b"GBXX", &body[4..]].concat()), "not an executor"),
            (resum([&body[..4], &[2], &body[5..]].concat()), "version 2"),
            (
                resum([&body[..5], &0u32.to_le_bytes(), &body[9..]].concat()),
                "0 results",
            ),
            (
                resum([&body[..5], &u32::MAX.to_le_bytes(), &body[9..]].concat()),
                "outside",
            ),
            (
                resum([&body[..105], &u32::MAX.to_le_bytes(), &body[109..]].concat()),
                "outputs, over",
            ),
            (
                resum([&body[..109], &u32::MAX.to_le_bytes(), &body[113..]].concat()),
                "bytes",
            ),
        ];
        for (bytes, why) in cases {
            let e = decode(&bytes).unwrap_err();
            assert!(e.contains(why), "{e:?} does not say {why:?}");
        }
        assert!(encode(&vec![stored(1, vec![]); MAX_BATCH_RESULTS + 1]).is_err());
        assert!(encode(&[stored(1, vec![vec![]; MAX_JOB_TENSORS + 1])]).is_err());
    }
}

//! Progress bars for large files. They draw on stderr only when it is a
//! terminal (indicatif hides them otherwise), so scripts and `--json` output
//! are unaffected.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Files smaller than this get no bar.
const MIN_BYTES: u64 = 16 << 20;

/// A byte-counting bar for `len` bytes, hidden for small files.
pub(crate) fn bar(len: u64, msg: &'static str) -> ProgressBar {
    if len < MIN_BYTES {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:>9} [{bar:32}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb.set_message(msg);
    pb
}

/// Reads a whole file of at most `max_bytes`, with a bar for large files.
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > max_bytes {
        bail!(
            "{} is {len} bytes, over the limit of {max_bytes} bytes",
            path.display()
        );
    }
    let pb = bar(len, "reading");
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    pb.wrap_read(f)
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    pb.finish_and_clear();
    if bytes.len() as u64 > max_bytes {
        bail!(
            "{} grew past the limit of {max_bytes} bytes while being read",
            path.display()
        );
    }
    Ok(bytes)
}

//! Little-endian, length-prefixed primitives of the ledger's canonical
//! encodings (docs/ledger.md), in the style of `glassbox-types`' codec. The
//! reader checks every length against a limit before allocating, rejects
//! non-canonical tags and reports the byte offset of any failure.

use glassbox_types::PublicKey;

use crate::error::DecodeError;

#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// A count or length. Callers have checked it against its limit, which
    /// is far below `u32::MAX`.
    pub(crate) fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    /// A `u32` byte length followed by the bytes.
    pub(crate) fn blob(&mut self, b: &[u8]) {
        self.len(b.len());
        self.bytes(b);
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.blob(s.as_bytes());
    }
    pub(crate) fn key(&mut self, k: &PublicKey) {
        self.bytes(&k.to_bytes());
    }
}

#[derive(Debug)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of an encoded `what` (named in errors).
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { what, buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn err_at(&self, pos: usize, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: self.what,
            offset: pos,
            reason: reason.into(),
        }
    }

    pub(crate) fn err(&self, reason: impl Into<String>) -> DecodeError {
        self.err_at(self.pos, reason)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len().saturating_sub(self.pos);
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(format!("needs {n} more bytes, {left} left")))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("out of bounds"))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count or length of at most `max`.
    pub(crate) fn len(&mut self, field: &str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max {
            return Err(self.err_at(at, format!("{field}: {n} exceeds the limit {max}")));
        }
        Ok(n)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub(crate) fn blob(&mut self, field: &str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.len(field, max)?;
        self.take(n)
    }

    /// A UTF-8 string of at most `max_bytes` bytes.
    pub(crate) fn str(&mut self, field: &str, max_bytes: usize) -> Result<String, DecodeError> {
        let n = self.len(field, max_bytes)?;
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err_at(at, format!("{field} is not UTF-8")))
    }

    /// An ed25519 public key (a valid, non-small-order point).
    pub(crate) fn key(&mut self, field: &str) -> Result<PublicKey, DecodeError> {
        let at = self.pos;
        let b = self.array::<32>()?;
        PublicKey::from_bytes(&b).map_err(|e| self.err_at(at, format!("{field}: {e}")))
    }

    /// The format version byte, which must be `expected`.
    pub(crate) fn version(&mut self, expected: u8) -> Result<(), DecodeError> {
        let at = self.pos;
        let v = self.u8()?;
        if v != expected {
            return Err(self.err_at(
                at,
                format!("format version {v} is not supported (this build reads {expected})"),
            ));
        }
        Ok(())
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!(
                "{} trailing bytes",
                self.buf.len().saturating_sub(self.pos)
            )));
        }
        Ok(())
    }
}

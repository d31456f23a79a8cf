//! The canonical encoding's primitives (docs/manifest.md, docs/ledger.md):
//! fixed-width little-endian integers, `u32` little-endian counts and
//! lengths, flags that are exactly 0 or 1, a version byte. Every encoding
//! in Glassbox (manifests, transactions, records, genesis, proofs) is
//! written with [`Writer`] and read back with [`Reader`], which checks
//! every length against a caller's limit before allocating, rejects
//! non-canonical tags and trailing bytes, and names the byte offset of any
//! failure.

use crate::{DecodeError, Digest};

/// Builds a canonical encoding.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }
    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
    /// The encoding.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// Raw bytes, no length.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// `u16` little-endian.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    /// `u32` little-endian.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    /// `u64` little-endian.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// A flag: 1 for `true`, 0 for `false`.
    pub fn flag(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// An option: a [`flag`](Self::flag), then the value if present.
    pub fn option<T>(&mut self, v: Option<&T>, write: impl FnOnce(&mut Writer, &T)) {
        self.flag(v.is_some());
        if let Some(v) = v {
            write(self, v);
        }
    }
    /// A count or length as `u32` little-endian. Callers have checked it
    /// against its limit, which is far below `u32::MAX`; a larger value
    /// is written as `u32::MAX`, which every reader refuses.
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    /// A `u32` byte length followed by the bytes.
    pub fn blob(&mut self, b: &[u8]) {
        self.len(b.len());
        self.bytes(b);
    }
    /// A digest's 32 bytes.
    pub fn digest<D: Digest>(&mut self, d: &D) {
        self.bytes(d.as_array());
    }
    /// A UTF-8 string as a [`blob`](Self::blob).
    pub fn str(&mut self, s: &str) {
        self.blob(s.as_bytes());
    }
}

/// Reads a canonical encoding of `what` (named in errors).
#[derive(Debug)]
pub struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of an encoded `what` (named in errors).
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { what, buf, pos: 0 }
    }

    /// The offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An error at byte `pos`.
    pub fn err_at(&self, pos: usize, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: self.what,
            offset: pos,
            reason: reason.into(),
        }
    }

    /// An error at the current byte.
    pub fn err(&self, reason: impl Into<String>) -> DecodeError {
        self.err_at(self.pos, reason)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
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

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// A digest's 32 bytes.
    pub fn digest<D: Digest>(&mut self) -> Result<D, DecodeError> {
        self.array().map(D::from_array)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    /// `u16` little-endian.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// `u32` little-endian.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// `u64` little-endian.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count or length of at most `max`.
    pub fn len(&mut self, field: &str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max {
            return Err(self.err_at(at, format!("{field}: {n} exceeds the limit {max}")));
        }
        Ok(n)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn blob(&mut self, field: &str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.len(field, max)?;
        self.take(n)
    }

    /// A UTF-8 string of at most `max_bytes` bytes.
    pub fn str(&mut self, field: &str, max_bytes: usize) -> Result<String, DecodeError> {
        let n = self.len(field, max_bytes)?;
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err_at(at, format!("{field} is not UTF-8")))
    }

    /// A flag or option tag: 0 (false, absent) or 1 (true, present);
    /// anything else is non-canonical.
    pub fn flag(&mut self, field: &str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(self.err_at(at, format!("{field}: tag {t} is neither 0 nor 1"))),
        }
    }

    /// An option: a [`flag`](Self::flag), then the value if present.
    pub fn option<T>(
        &mut self,
        field: &str,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.flag(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The format version byte, which must be `expected`.
    pub fn version(&mut self, expected: u8) -> Result<(), DecodeError> {
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

    /// Checks that every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.u8(7);
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(u64::MAX - 1);
        w.flag(true);
        w.str("héllo");
        w.blob(&[9, 9]);
        w.option(Some(&5u64), |w, v| w.u64(*v));
        w.option(None::<&u64>, |w, v| w.u64(*v));
        let bytes = w.into_bytes();
        let mut r = Reader::new("test", &bytes);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(0x0304_0506));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        assert_eq!(r.flag("f"), Ok(true));
        assert_eq!(r.str("s", 6).as_deref(), Ok("héllo"));
        assert_eq!(r.blob("b", 2), Ok(&[9u8, 9][..]));
        assert_eq!(r.option("o", |r| r.u64()), Ok(Some(5)));
        assert_eq!(r.option("o", |r| r.u64()), Ok(None));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn errors_name_the_offset_and_the_reason() {
        let e = Reader::new("thing", &[1, 2]).u32().unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed thing at byte 0: needs 4 more bytes, 2 left"
        );
        let mut r = Reader::new("thing", &[5, 0, 0, 0, b'a']);
        let e = r.str("name", 4).unwrap_err();
        assert_eq!(
            (e.offset, e.reason.as_str()),
            (0, "name: 5 exceeds the limit 4")
        );
        let mut r = Reader::new("thing", &[1, 0, 0, 0, 0xff]);
        assert_eq!(r.str("name", 4).unwrap_err().offset, 4);
        assert_eq!(Reader::new("t", &[2]).flag("f").unwrap_err().offset, 0);
        assert!(Reader::new("t", &[3]).version(2).is_err());
        let mut r = Reader::new("t", &[0, 0]);
        r.u8().unwrap();
        assert_eq!(r.finish().unwrap_err().reason, "1 trailing bytes");
        // A length that would overflow the position is refused, not a panic.
        let mut r = Reader::new("t", &[0]);
        r.u8().unwrap();
        assert!(r.take(usize::MAX).is_err());
    }
}

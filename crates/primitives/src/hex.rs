//! Lower-case hex, the only text form of bytes in Glassbox (ids, digests,
//! keys, encodings in JSON). Decoding is strict: lower-case digits only,
//! an even count, a length limit checked before allocating.

/// Lower-case hex of `bytes` (a digest's is its `Display`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Decodes lower-case hex of at most `max_bytes` bytes; the message says
/// what is wrong (odd length, over the limit, which character is not a
/// lower-case hex digit).
pub fn unhex_vec(s: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    if s.len() / 2 > max_bytes {
        return Err(format!(
            "{} bytes of hex, over the limit of {max_bytes}",
            s.len() / 2
        ));
    }
    s.as_bytes()
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| Ok((digit(2 * i, pair[0])? << 4) | digit(2 * i + 1, pair[1])?))
        .collect()
}

/// Decodes exactly `N` bytes of lower-case hex.
pub fn unhex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(format!(
            "expected {} hex digits, found {}",
            2 * N,
            s.chars().count()
        ));
    }
    let mut out = [0u8; N];
    for (i, (o, pair)) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)).enumerate() {
        *o = (digit(2 * i, pair[0])? << 4) | digit(2 * i + 1, pair[1])?;
    }
    Ok(out)
}

/// The value of byte `at` of the text, `c`.
fn digit(at: usize, c: u8) -> Result<u8, String> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!(
            "character {at} (`{}`) is not a lower-case hex digit",
            char::from(c).escape_default()
        )),
    }
}

/// At most `max_chars` characters of untrusted text, for error messages
/// (an ellipsis marks a cut).
pub fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_what_is_not_canonical() {
        let bytes: Vec<u8> = (0..=255).collect();
        let s = hex(&bytes);
        assert_eq!(&s[..8], "00010203");
        assert_eq!(unhex_vec(&s, 256).unwrap(), bytes);
        assert!(unhex_vec(&s, 255).unwrap_err().contains("over the limit"));
        assert!(unhex_vec("abc", 8).unwrap_err().contains("odd"));
        assert!(unhex_vec("AB", 8).unwrap_err().contains("lower-case"));
        assert!(unhex_vec("é0", 8).is_err());
        assert_eq!(unhex::<2>("0aff"), Ok([0x0a, 0xff]));
        assert!(unhex::<2>("0aff00").is_err());
        assert!(unhex::<2>("0aFf").is_err());
        assert!(unhex::<2>("éé").is_err());
    }

    #[test]
    fn clip_cuts_at_characters_not_bytes() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("", 0), "");
    }
}

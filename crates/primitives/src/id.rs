//! 32-byte BLAKE3 content ids with the text form `blake3:<64 hex>`.

use crate::digest::hash32;

/// A content id: a [`hash32!`] written `blake3:<hex>`, the BLAKE3 of
/// some bytes.
macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        hash32!($(#[$doc])* $name, $what, "blake3:");

        impl $name {
            /// The text prefix.
            pub const PREFIX: &'static str = "blake3:";

            /// The id of `bytes`: their BLAKE3 hash.
            pub fn of(bytes: &[u8]) -> Self {
                $name(*blake3::hash(bytes).as_bytes())
            }
        }
    };
}

blake3_id!(
    /// A BLAKE3 hash of arbitrary content (e.g. a training-data source).
    Hash,
    "hash"
);
blake3_id!(
    /// A model's id: the BLAKE3 hash of the model file's exact bytes.
    ModelId,
    "model id"
);
blake3_id!(
    /// A manifest's id: the BLAKE3 hash of the encoded signed manifest.
    ManifestId,
    "manifest id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let id = ModelId::of(b"abc");
        let s = id.to_string();
        assert_eq!(s, format!("blake3:{}", blake3::hash(b"abc").to_hex()));
        assert_eq!(s.parse::<ModelId>(), Ok(id));
        for bad in [
            "",
            "blake3:",
            "sha256:00",
            &s[..s.len() - 1],
            &format!("{s}0"),
            &s.to_uppercase(),
            &s.replace("blake3:", "BLAKE3:"),
        ] {
            let e = bad.parse::<ModelId>().expect_err(bad);
            assert!(e.to_string().contains("invalid model id"), "{e}");
        }
        let upper = format!("blake3:{}", id.to_hex().to_uppercase());
        assert!(
            upper.parse::<ModelId>().is_err(),
            "upper-case hex is not canonical"
        );
        // Multibyte input must not panic on slicing.
        assert!("blake3:é".parse::<Hash>().is_err());
        assert!(
            format!("blake3:{}", "é".repeat(32))
                .parse::<Hash>()
                .is_err()
        );
    }
}

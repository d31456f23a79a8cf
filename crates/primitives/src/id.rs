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

/// An id with the text form `$prefix<64 hex>` that names a hash.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        hash32!($(#[$doc])* $name, $what, $prefix);

        impl $name {
            /// The text prefix.
            pub const PREFIX: &'static str = $prefix;
        }
    };
}

prefixed_id!(
    /// A transaction's hash: BLAKE3 of its canonical signed encoding
    /// (`tx:<hex>`).
    TxHash,
    "transaction hash",
    "tx:"
);
prefixed_id!(
    /// A job's id: the hash of the `submit_job` transaction that submitted
    /// it (`job:<hex>`).
    JobId,
    "job id",
    "job:"
);

impl TxHash {
    /// The hash of a transaction's canonical encoding.
    pub fn of(encoded: &[u8]) -> TxHash {
        TxHash::from(blake3::hash(encoded))
    }
}

impl JobId {
    /// The id of the job that the transaction `tx` submits.
    pub const fn of_tx(tx: TxHash) -> JobId {
        JobId::from_bytes(tx.to_bytes())
    }

    /// The hash of the transaction that submitted the job.
    pub const fn tx(self) -> TxHash {
        TxHash::from_bytes(self.to_bytes())
    }
}

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

    #[test]
    fn transaction_hashes_and_job_ids_are_prefixed_and_related() {
        let tx = TxHash::of(b"a signed transaction");
        assert_eq!(
            tx.to_string(),
            format!("tx:{}", blake3::hash(b"a signed transaction").to_hex())
        );
        let job = JobId::of_tx(tx);
        assert_eq!(job.to_string(), format!("job:{}", tx.to_hex()));
        assert_eq!((job.tx(), job.as_bytes()), (tx, tx.as_bytes()));
        assert_eq!(job.to_string().parse::<JobId>(), Ok(job));
        assert_eq!(serde_json::to_string(&tx).unwrap(), format!("\"{tx}\""));
        for bad in [
            tx.to_string(),
            tx.to_hex(),
            format!("job:{}", &tx.to_hex()[1..]),
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
    }
}

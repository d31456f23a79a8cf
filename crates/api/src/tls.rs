//! TLS for `https://` nodes: rustls (with the aws-lc-rs provider
//! Commonware already builds), trusting Mozilla's roots (`webpki-roots`,
//! compiled in) and any extra CA given in PEM, such as a private network's
//! (`glassbox --ca FILE`). Every HTTP client of the project starts from
//! [`http_client`], so the CLI, the SDK and the node's model and snapshot
//! fetches trust the same roots.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Most certificates read from one CA file.
pub const MAX_CA_CERTS: usize = 256;

/// Why trust roots could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file holds no usable certificate.
    #[error("CA certificates: {0}")]
    Ca(String),
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The rustls client configuration: Mozilla's roots plus every
/// certificate in `extra_ca_pem` (PEM, at most [`MAX_CA_CERTS`]).
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        let mut added = 0usize;
        for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            if i >= MAX_CA_CERTS {
                return Err(TlsError::Ca(format!(
                    "more than {MAX_CA_CERTS} certificates"
                )));
            }
            let cert = cert.map_err(|e| TlsError::Ca(format!("certificate {}: {e}", i + 1)))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Ca(format!("certificate {}: {e}", i + 1)))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::Ca(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A reqwest client builder that speaks `http://` and, with
/// [`client_config`]'s roots, `https://`.
pub fn http_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder, TlsError> {
    Ok(reqwest::Client::builder().use_preconfigured_tls(client_config(extra_ca_pem)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let e = client_config(Some(b"not a certificate")).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_config(Some(bad)).is_err());
        assert!(client_config(None).is_ok());
    }
}

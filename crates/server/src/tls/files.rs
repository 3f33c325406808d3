//! Certificates, keys and CA bundles read from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// The contents of a file, or why it cannot be read.
pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { path: path.to_path_buf(), reason: e.to_string() })
}

/// Every certificate in a PEM file, in order (a leaf, then its intermediates).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(&read(path)?, path)
}

/// Every certificate in `pem`, read from `path`.
fn parse_certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

/// A certificate chain and its private key (the contents of `cert_file` and `key_file`),
/// checked to belong together.
pub fn key_pair(
    (cert_file, cert_pem): (&Path, &[u8]),
    (key_file, key_pem): (&Path, &[u8]),
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = parse_certificates(cert_pem, cert_file)?;
    // The parser's errors name the PEM section, never its contents.
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::File { path: key_file.to_path_buf(), reason: e.to_string() })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::File {
        path: key_file.to_path_buf(),
        reason: format!("not the key of {}: {e}", cert_file.display()),
    })?;
    Ok(Arc::new(pair))
}

/// The CAs in a PEM bundle, as trust anchors.
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    }
    Ok(roots)
}

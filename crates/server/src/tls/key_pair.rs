//! A certificate and key that follow their files: every handshake reads the files again (as
//! etcd reloads the pair on each handshake) and parses them when their contents changed, so
//! certificates rotate without a restart. Contents rather than modification times are
//! compared: two writes within one clock tick of the file system leave the same time. A pair
//! that fails to load (a file half written, a key that does not match its certificate yet)
//! leaves the previous one in use, with a warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::{files, TlsError};

pub struct ReloadingKeyPair {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

struct Loaded {
    /// The files' contents when last read, whether they made a pair or not.
    seen: Contents,
    pair: Arc<CertifiedKey>,
}

/// Both files' contents (`None`: unreadable).
type Contents = [Option<Vec<u8>>; 2];

impl ReloadingKeyPair {
    /// Reads the pair; an error here stops the member from starting.
    pub fn load(cert_file: &Path, key_file: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let (cert_pem, key_pem) = (files::read(cert_file)?, files::read(key_file)?);
        let pair = files::key_pair((cert_file, &cert_pem), (key_file, &key_pem), &provider)?;
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: RwLock::new(Loaded { seen: [Some(cert_pem), Some(key_pem)], pair }),
        })
    }

    /// The pair to present now, parsed again first if its files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let (cert, key) = (files::read(&self.cert_file), files::read(&self.key_file));
        let unchanged =
            |seen: &Contents| seen[0].as_deref() == cert.as_deref().ok() && seen[1].as_deref() == key.as_deref().ok();
        {
            let loaded = self.current.read().expect("key pair lock");
            if unchanged(&loaded.seen) {
                return loaded.pair.clone();
            }
        }
        let mut loaded = self.current.write().expect("key pair lock");
        if !unchanged(&loaded.seen) {
            let parsed = match (&cert, &key) {
                (Ok(c), Ok(k)) => files::key_pair((&self.cert_file, c), (&self.key_file, k), &self.provider),
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            };
            // Recorded either way: a broken pair is reported once, not on every handshake.
            loaded.seen = [cert.ok(), key.ok()];
            match parsed {
                Ok(pair) => {
                    tracing::info!(cert = %self.cert_file.display(), "reloaded the certificate and key");
                    loaded.pair = pair;
                }
                Err(e) => tracing::warn!("keeping the previous certificate: {e}"),
            }
        }
        loaded.pair.clone()
    }
}

impl std::fmt::Debug for ReloadingKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingKeyPair").field("cert_file", &self.cert_file).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingKeyPair {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The same pair is this member's identity when it connects to others (etcd's peers, and its
/// own client connections to other members, present their certificate too).
impl ResolvesClientCert for ReloadingKeyPair {
    fn resolve(&self, _: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let pair = self.current();
        pair.key.choose_scheme(schemes).is_some().then_some(pair)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let pair = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), pair.signing_key.serialize_pem()).unwrap();
        pair
    }

    #[test]
    fn a_rewritten_pair_is_read_again_and_a_broken_one_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let first = write_pair(dir.path(), "first");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = ReloadingKeyPair::load(&cert, &key, provider).unwrap();
        assert_eq!(pair.current().cert[0], *first.cert.der());

        let second = write_pair(dir.path(), "second");
        assert_eq!(pair.current().cert[0], *second.cert.der(), "rotated without a restart");

        // A new certificate whose key is not there yet: not used.
        let third = rcgen::generate_simple_self_signed(vec!["third".to_string()]).unwrap();
        std::fs::write(&cert, third.cert.pem()).unwrap();
        assert_eq!(pair.current().cert[0], *second.cert.der(), "a mismatched pair is not used");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot base64\n").unwrap();
        assert_eq!(pair.current().cert[0], *second.cert.der(), "an unreadable key is not used");
        // The key arrives: the pair is whole again.
        std::fs::write(&key, third.signing_key.serialize_pem()).unwrap();
        assert_eq!(pair.current().cert[0], *third.cert.der());
    }

    #[test]
    fn a_missing_or_mismatched_pair_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let err = ReloadingKeyPair::load(&cert, &key, provider.clone()).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        write_pair(dir.path(), "one");
        let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let err = ReloadingKeyPair::load(&cert, &key, provider).unwrap_err().to_string();
        assert!(err.contains("not the key of"), "{err}");
        assert!(!err.contains("PRIVATE"), "no key material in errors: {err}");
    }
}

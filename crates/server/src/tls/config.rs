//! One side's TLS (the client URLs', or the peers'), from etcd's flags: the key pair it
//! presents, the CAs it trusts, and the rustls configurations for accepting and connecting.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::key_pair::ReloadingKeyPair;
use super::{auto, files, TlsError};

/// One side's flags: `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`,
/// `--auto-tls`, or their `--peer-` twins.
#[derive(Clone, Debug, Default)]
pub struct TlsFlags {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub auto_tls: bool,
}

/// Where a side's self-signed certificate goes and whom it names.
pub struct AutoTls<'a> {
    /// `<data-dir>/fixtures/client` or `.../peer`.
    pub dir: PathBuf,
    /// The hosts of the side's listen URLs.
    pub hosts: &'a [String],
    /// etcd's `--self-signed-cert-validity`, in years.
    pub validity_years: u32,
}

/// A side's TLS, loaded.
pub struct Tls {
    key_pair: Arc<ReloadingKeyPair>,
    /// `--trusted-ca-file`'s CAs.
    roots: Option<Arc<RootCertStore>>,
    /// Connecting clients must present a certificate one of `roots` signed.
    verify_clients: bool,
    /// The key pair was made by auto-tls: the other members' are self-signed too, and cannot
    /// be verified (etcd skips the verification then).
    self_signed: bool,
    provider: Arc<CryptoProvider>,
    /// "--trusted-ca-file" or "--peer-trusted-ca-file", for messages.
    ca_flag: String,
}

/// The ring provider: no aws-lc, no OpenSSL.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// The side's TLS as its flags (named with `prefix`, "" or "peer-") ask, `None` if they
    /// ask for none. Errors are the reasons not to start.
    pub fn from_flags(flags: &TlsFlags, prefix: &str, auto: AutoTls<'_>) -> Result<Option<Self>, TlsError> {
        let flag = |name: &str| format!("--{prefix}{name}");
        let (cert_file, key_file, self_signed) = match (&flags.cert_file, &flags.key_file) {
            (Some(cert), Some(key)) => {
                if flags.auto_tls {
                    tracing::warn!("ignoring {} since {} is given", flag("auto-tls"), flag("cert-file"));
                }
                (cert.clone(), key.clone(), false)
            }
            (None, None) if flags.auto_tls => {
                let (cert, key) = auto::self_signed(&auto.dir, auto.hosts, auto.validity_years)?;
                (cert, key, true)
            }
            (None, None) => {
                if flags.client_cert_auth || flags.trusted_ca_file.is_some() {
                    tracing::warn!(
                        "{} and {} are ignored without {} and {}",
                        flag("client-cert-auth"),
                        flag("trusted-ca-file"),
                        flag("cert-file"),
                        flag("key-file")
                    );
                }
                return Ok(None);
            }
            _ => return Err(TlsError::Flags(format!("{} and {} go together", flag("cert-file"), flag("key-file")))),
        };
        if flags.client_cert_auth && flags.trusted_ca_file.is_none() {
            return Err(TlsError::Flags(format!(
                "{} needs {} (the CA that signs the clients' certificates)",
                flag("client-cert-auth"),
                flag("trusted-ca-file")
            )));
        }
        let provider = provider();
        let roots = flags.trusted_ca_file.as_deref().map(files::roots).transpose()?.map(Arc::new);
        Ok(Some(Self {
            key_pair: Arc::new(ReloadingKeyPair::load(&cert_file, &key_file, provider.clone())?),
            // As in etcd, a trusted CA file alone turns client certificate checks on.
            verify_clients: roots.is_some(),
            roots,
            self_signed,
            provider,
            ca_flag: flag("trusted-ca-file"),
        }))
    }

    /// Whether connecting clients must present a certificate.
    pub fn verifies_clients(&self) -> bool {
        self.verify_clients
    }

    /// How this side accepts connections; `alpn` lists the protocols it speaks.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| TlsError::Flags(e.to_string()))?;
        let builder = match (&self.roots, self.verify_clients) {
            (Some(roots), true) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                    .build()
                    .map_err(|e| TlsError::Flags(format!("client certificate verification: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.key_pair.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// How this member connects to another's side of the same kind, presenting its own
    /// certificate. `extra_roots` are trusted besides `--trusted-ca-file`. Without any CA to
    /// verify the other end against, only a self-signed (auto-tls) member connects, unverified.
    pub fn client_config(
        &self,
        alpn: &[&[u8]],
        extra_roots: Option<&RootCertStore>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| TlsError::Flags(e.to_string()))?;
        let mut roots = self.roots.as_deref().cloned().unwrap_or_else(RootCertStore::empty);
        roots.roots.extend(extra_roots.into_iter().flat_map(|r| r.roots.iter().cloned()));
        let builder = if !roots.is_empty() {
            builder.with_root_certificates(roots)
        } else if self.self_signed {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Unverified(self.provider.clone())))
        } else {
            return Err(TlsError::Flags(format!(
                "no CA to verify other members' certificates against (set {})",
                self.ca_flag
            )));
        };
        let mut config = builder.with_client_cert_resolver(self.key_pair.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// `--trusted-ca-file`'s CAs.
    pub fn roots(&self) -> Option<&RootCertStore> {
        self.roots.as_deref()
    }
}

/// The `ServerName` a TLS connection to `addr` verifies: its IP address (peer URLs are IPs).
pub fn server_name_of(addr: std::net::SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// What etcd does with self-signed (auto-tls) certificates: encrypt, without knowing who the
/// other end is. The handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether `url` asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

/// The host (and port) of a URL: "https://127.0.0.1:2379/" -> "127.0.0.1:2379".
pub fn host_of_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(dir: &std::path::Path) -> AutoTls<'_> {
        AutoTls { dir: dir.join("fixtures"), hosts: &[], validity_years: 1 }
    }

    #[test]
    fn flags_that_cannot_work_stop_the_start_with_etcds_flag_names() {
        let dir = tempfile::tempdir().unwrap();
        let err = |flags: TlsFlags, prefix: &str| Tls::from_flags(&flags, prefix, auto(dir.path())).err().unwrap();
        let cert_only = TlsFlags { cert_file: Some(dir.path().join("c.pem")), ..Default::default() };
        assert_eq!(err(cert_only, "peer-").to_string(), "--peer-cert-file and --peer-key-file go together");
        let no_ca = TlsFlags { auto_tls: true, client_cert_auth: true, ..Default::default() };
        assert!(err(no_ca, "").to_string().starts_with("--client-cert-auth needs --trusted-ca-file"));
        assert!(Tls::from_flags(&TlsFlags::default(), "", auto(dir.path())).unwrap().is_none(), "no TLS asked for");
    }

    #[test]
    fn a_trusted_ca_alone_requires_client_certificates_as_in_etcd() {
        let dir = tempfile::tempdir().unwrap();
        let member = crate::tls::test_pki::member_tls(dir.path());
        assert!(member.verifies_clients());
        let flags = TlsFlags {
            cert_file: Some(dir.path().join("member.pem")),
            key_file: Some(dir.path().join("member-key.pem")),
            trusted_ca_file: Some(dir.path().join("ca.pem")),
            ..Default::default()
        };
        assert!(Tls::from_flags(&flags, "", auto(dir.path())).unwrap().unwrap().verifies_clients());
        let server_only = TlsFlags { trusted_ca_file: None, ..flags };
        let tls = Tls::from_flags(&server_only, "", auto(dir.path())).unwrap().unwrap();
        assert!(!tls.verifies_clients());
        let err = tls.client_config(&[], None).err().unwrap().to_string();
        assert!(err.contains("set --trusted-ca-file"), "{err}");
    }
}

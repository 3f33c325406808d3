//! Certificates for the TLS tests, made with rcgen: a CA, server certificates for the loopback
//! members (SANs 127.0.0.1 and localhost, usable as client certificates too, as etcd's peers
//! use theirs), client certificates with a given common name, and expired ones.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A certificate and key written as PEM files.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Ca {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub file: PathBuf,
}

impl Ca {
    /// A new CA whose files go in `dir`, named after `name`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        Ca { dir: dir.to_path_buf(), name: name.to_string(), issuer: Issuer::new(params, key), file }
    }

    /// A certificate for the loopback members, for both server and client use.
    pub fn member(&self, file_name: &str) -> Pair {
        self.issue(file_name, "member", &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth], 0)
    }

    /// A client certificate naming `common_name`.
    pub fn client(&self, common_name: &str) -> Pair {
        self.issue(&format!("client-{common_name}"), common_name, &[ExtendedKeyUsagePurpose::ClientAuth], 0)
    }

    /// A member certificate that expired yesterday.
    pub fn expired_member(&self, file_name: &str) -> Pair {
        self.issue(file_name, "member", &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth], -1)
    }

    /// Writes `<name>-<file_name>.pem` and `...-key.pem`, valid from 30 days before until
    /// `days_left` days from now (30 when 0).
    fn issue(&self, file_name: &str, common_name: &str, usages: &[ExtendedKeyUsagePurpose], days_left: i64) -> Pair {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = usages.to_vec();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now + time::Duration::days(if days_left == 0 { 30 } else { days_left });
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert: self.dir.join(format!("{}-{file_name}.pem", self.name)),
            key: self.dir.join(format!("{}-{file_name}-key.pem", self.name)),
        };
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        pair
    }
}

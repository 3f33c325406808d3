//! Certificates for unit tests: a CA and a loopback member certificate signed by it.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};

use super::{AutoTls, Tls, TlsFlags};

/// A member's TLS as `--peer-cert-file ... --peer-trusted-ca-file ... --peer-client-cert-auth`
/// set it up, with files in `dir`.
pub fn member_tls(dir: &Path) -> Tls {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let mut member = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    member.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    member.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = member.signed_by(&key, &Issuer::new(ca, ca_key)).unwrap();
    std::fs::write(dir.join("member.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("member-key.pem"), key.serialize_pem()).unwrap();
    let flags = TlsFlags {
        cert_file: Some(dir.join("member.pem")),
        key_file: Some(dir.join("member-key.pem")),
        trusted_ca_file: Some(dir.join("ca.pem")),
        client_cert_auth: true,
        auto_tls: false,
    };
    let auto = AutoTls { dir: dir.join("fixtures"), hosts: &[], validity_years: 1 };
    Tls::from_flags(&flags, "peer-", auto).unwrap().expect("TLS configured")
}

//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate made at the first start and
//! kept in the data directory (`fixtures/client`, `fixtures/peer`, as etcd's), for the hosts
//! the member listens on. Nobody can verify it: it encrypts, it does not authenticate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};

use super::TlsError;

/// The certificate and key files under `dir`, made now unless a previous start made them.
/// `hosts` are `host:port` or `host` (the listen URLs' hosts).
pub fn self_signed(dir: &Path, hosts: &[String], validity_years: u32) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_file.exists() && key_file.exists() {
        return Ok((cert_file, key_file));
    }
    let failed = |e: &dyn std::fmt::Display| TlsError::AutoTls(format!("{}: {e}", dir.display()));
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Peers present it as client certificates too.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    for host in hosts {
        let name = host_of(host);
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.to_string().try_into().map_err(|e| failed(&e))?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let key = KeyPair::generate().map_err(|e| failed(&e))?;
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    write_private(&key_file, key.serialize_pem().as_bytes()).map_err(|e| failed(&e))?;
    std::fs::write(&cert_file, cert.pem()).map_err(|e| failed(&e))?;
    tracing::info!(cert = %cert_file.display(), "made a self-signed certificate");
    Ok((cert_file, key_file))
}

/// "127.0.0.1:2379" -> "127.0.0.1", "[::1]:2379" -> "::1", "localhost" -> "localhost".
fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => hostport,
    }
}

/// A file only its owner reads.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_host_port_pairs() {
        assert_eq!(host_of("127.0.0.1:2379"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("example.com:80"), "example.com");
    }

    #[test]
    fn the_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures/client");
        let hosts = ["127.0.0.1:2379".to_string(), "localhost:2379".to_string()];
        let (cert, key) = self_signed(&fixtures, &hosts, 1).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let pair =
            super::super::files::key_pair((&cert, &first), (&key, &std::fs::read(&key).unwrap()), &provider).unwrap();
        assert_eq!(pair.cert.len(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        self_signed(&fixtures, &hosts, 1).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "a restart keeps the certificate");
    }
}

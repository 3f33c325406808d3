//! Who a verified client certificate names: its subject's common name, which etcd takes as the
//! user when `--client-cert-auth` is on.

/// The common name of the certificate a client presented and the server verified. Every
/// request on such a connection carries it in its extensions (`http::Request::extensions`,
/// `tonic::Request::extensions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertCommonName(pub String);

/// The last common name in the subject of a DER certificate (Go's `Subject.CommonName`, which
/// etcd reads); `None` if it has none. The certificate was parsed and verified by rustls
/// already; this walks the few DER elements in front of the subject.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(cert)? else { return None };
    let (SEQUENCE, tbs, _) = element(cert)? else { return None };
    let mut rest = tbs;
    // version [0], if present, then serialNumber, signature, issuer and validity.
    if element(rest)?.0 == VERSION {
        rest = element(rest)?.2;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut rdns, _) = element(rest)? else { return None };
    let mut name = None;
    while !rdns.is_empty() {
        let (SET, mut attributes, next) = element(rdns)? else { return None };
        rdns = next;
        while !attributes.is_empty() {
            let (SEQUENCE, attribute, next) = element(attributes)? else { return None };
            attributes = next;
            let (OID, oid, value) = element(attribute)? else { return None };
            if oid == COMMON_NAME {
                name = Some(text(element(value)?)?);
            }
        }
    }
    name
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
/// 2.5.4.3
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element: (tag, contents, what follows it).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |len, b| len << 8 | *b as usize), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A DirectoryString's text.
fn text((tag, bytes, _): (u8, &[u8], &[u8])) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, TeletexString (as Go reads it), IA5String
        0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        // BMPString: UTF-16 big-endian
        0x1e if bytes.len() % 2 == 0 => {
            String::from_utf16(&bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    use super::*;

    fn cert_with(dn: DistinguishedName) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_common_name_is_read() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "etcd");
        dn.push(DnType::CommonName, "root");
        dn.push(DnType::CountryName, "NL");
        assert_eq!(common_name(&cert_with(dn)), Some("root".into()));

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, DnValue::PrintableString("printable".try_into().unwrap()));
        assert_eq!(common_name(&cert_with(dn)), Some("printable".into()));

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, DnValue::BmpString("bmp-ü".try_into().unwrap()));
        assert_eq!(common_name(&cert_with(dn)), Some("bmp-ü".into()));

        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "etcd");
        assert_eq!(common_name(&cert_with(dn)), None, "no common name");
    }

    #[test]
    fn the_issuer_common_name_is_not_taken_for_the_subject() {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "the ca");
        let ca_key = KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".into()]).unwrap();
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::OrganizationName, "no name");
        let cert = leaf.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap();
        assert_eq!(common_name(cert.der()), None);
    }

    #[test]
    fn garbage_has_no_name() {
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30, 0x82, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}

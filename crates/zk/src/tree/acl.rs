//! ACLs: checking a caller's identities against a node's ACL (`ZooKeeperServer.checkACL`),
//! validating and expanding an ACL a client sets (`PrepRequestProcessor.fixupACL`), and the
//! digest scheme's ids.
//!
//! The auth schemes are ZooKeeper's default providers: `digest` and `ip`, plus `world:anyone` and
//! the `auth` placeholder. An identity `super:` (which the server grants to the super digest)
//! passes every check. A caller's identities are the server's to establish (digest from addAuth,
//! `ip:<address>` from the connection); this module only compares them.

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::error::ZkError;
use crate::proto::{Acl, Id};

/// Whether identities `auth` hold permission `perm` on a node with ACL `acl`: an empty ACL allows
/// everything, as does a `super` identity; otherwise some entry granting `perm` must name
/// `world:anyone` or match one of the identities.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ZkError> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    let granted = acl.iter().filter(|entry| entry.perms & perm != 0).any(|entry| {
        is_anyone(&entry.id) || auth.iter().any(|id| id.scheme == entry.id.scheme && matches(&entry.id, &id.id))
    });
    if granted {
        Ok(())
    } else {
        Err(ZkError::NoAuth)
    }
}

/// The ACL a create or setACL stores: duplicates dropped, `auth` entries replaced by the caller's
/// authenticated identities (digest ones: an `ip` identity is not "authenticated" in ZooKeeper's
/// sense), and every entry's scheme and id checked. InvalidACL if empty or if any entry is bad.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ZkError> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ZkError::InvalidAcl);
    }
    // A connection's identities are a set in ZooKeeper (`ServerCnxn.addAuthInfo` adds an id
    // once), so the same addauth twice still expands an `auth` entry once.
    let mut digests: Vec<&Id> = Vec::new();
    for id in auth.iter().filter(|id| id.scheme == "digest") {
        if !digests.contains(&id) {
            digests.push(id);
        }
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        if is_anyone(&entry.id) {
            fixed.push(entry.clone());
        } else if entry.id.scheme == "auth" {
            let before = fixed.len();
            fixed.extend(digests.iter().map(|&id| Acl::new(entry.perms, id.clone())));
            if fixed.len() == before {
                return Err(ZkError::InvalidAcl);
            }
        } else if is_valid_id(&entry.id) {
            fixed.push(entry.clone());
        } else {
            return Err(ZkError::InvalidAcl);
        }
    }
    Ok(fixed)
}

/// What getACL answers a caller without ADMIN: digest ids with the hash replaced by `x`.
pub fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| match entry.id.scheme.as_str() {
            "digest" => {
                let user = entry.id.id.split(':').next().unwrap_or_default();
                let id = if entry.id.id.contains(':') { format!("{user}:x") } else { entry.id.id.clone() };
                Acl::new(entry.perms, Id::new("digest", &id))
            }
            _ => entry.clone(),
        })
        .collect()
}

/// The digest identity of addAuth("digest", "user:password"): `user:` + base64(sha1 of the whole
/// credential string).
pub fn digest_id(credentials: &[u8]) -> String {
    let text = String::from_utf8_lossy(credentials);
    let user = text.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(text.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

fn is_anyone(id: &Id) -> bool {
    id.scheme == "world" && id.id == "anyone"
}

/// Whether a scheme's provider accepts an id in an ACL.
fn is_valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        // Java's `id.split(":").length == 2`, where trailing empty parts are dropped.
        "digest" => {
            let mut parts: Vec<&str> = id.id.split(':').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            parts.len() == 2
        }
        "ip" => parse_ip_expr(&id.id).is_some(),
        _ => false,
    }
}

/// Whether the ACL entry `entry` (of the identity's scheme) matches the identity's id.
fn matches(entry: &Id, id: &str) -> bool {
    match entry.scheme.as_str() {
        "digest" => entry.id == id,
        "ip" => ip_matches(&entry.id, id),
        _ => false,
    }
}

/// An `ip` ACL expression: a dotted IPv4 address and an optional `/bits` prefix length.
fn parse_ip_expr(expr: &str) -> Option<([u8; 4], u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((addr, bits)) => (addr, bits.parse::<i32>().ok().filter(|b| (0..=32).contains(b))? as u32),
        None => (expr, 32),
    };
    Some((parse_ipv4(addr)?, bits))
}

fn parse_ipv4(addr: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (byte, part) in bytes.iter_mut().zip(parts) {
        *byte = u8::try_from(part.parse::<i32>().ok()?).ok()?;
    }
    Some(bytes)
}

fn ip_matches(expr: &str, addr: &str) -> bool {
    let (Some((network, bits)), Some(addr)) = (parse_ip_expr(expr), parse_ipv4(addr)) else {
        return false;
    };
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    u32::from_be_bytes(network) & mask == u32::from_be_bytes(addr) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms::*;

    fn digest(user: &str, password: &str) -> Id {
        Id::new("digest", &digest_id(format!("{user}:{password}").as_bytes()))
    }

    #[test]
    fn digest_id_is_user_and_base64_sha1_of_the_credentials() {
        // The super digest of ZooKeeper's administrator guide, and one computed by hand.
        assert_eq!(digest_id(b"super:admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
        assert_eq!(digest_id(b"bob:secret"), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
        // Without a colon the whole string is the user.
        assert!(digest_id(b"bob").starts_with("bob:"));
    }

    #[test]
    fn world_anyone_and_empty_acls_allow() {
        assert_eq!(check(&Acl::open_unsafe(), WRITE, &[]), Ok(()));
        assert_eq!(check(&[], ADMIN, &[]), Ok(()));
        assert_eq!(check(&Acl::read_unsafe(), WRITE, &[]), Err(ZkError::NoAuth));
    }

    #[test]
    fn digest_entries_match_the_same_identity_only() {
        let acl = vec![Acl::new(READ | WRITE, digest("bob", "secret"))];
        assert_eq!(check(&acl, WRITE, &[digest("bob", "secret")]), Ok(()));
        assert_eq!(check(&acl, WRITE, &[digest("bob", "wrong")]), Err(ZkError::NoAuth));
        assert_eq!(check(&acl, DELETE, &[digest("bob", "secret")]), Err(ZkError::NoAuth));
        assert_eq!(check(&acl, DELETE, &[Id::new("super", "")]), Ok(()));
    }

    #[test]
    fn ip_entries_match_by_prefix() {
        let acl = vec![Acl::new(ALL, Id::new("ip", "10.1.0.0/16"))];
        assert_eq!(check(&acl, READ, &[Id::new("ip", "10.1.2.3")]), Ok(()));
        assert_eq!(check(&acl, READ, &[Id::new("ip", "10.2.2.3")]), Err(ZkError::NoAuth));
        assert!(ip_matches("0.0.0.0/0", "1.2.3.4"));
        assert!(ip_matches("1.2.3.4", "1.2.3.4"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.5"));
    }

    #[test]
    fn fixup_expands_auth_to_digest_identities() {
        let bob = digest("bob", "secret");
        let auth = [Id::new("ip", "127.0.0.1"), bob.clone()];
        let acl = [Acl::new(ALL, Id::new("auth", "")), Acl::new(ALL, Id::new("auth", ""))];
        assert_eq!(fixup(&acl, &auth), Ok(vec![Acl::new(ALL, bob)]));
        assert_eq!(fixup(&acl, &[Id::new("ip", "127.0.0.1")]), Err(ZkError::InvalidAcl));
    }

    #[test]
    fn fixup_refuses_empty_and_malformed_acls() {
        assert_eq!(fixup(&[], &[]), Err(ZkError::InvalidAcl));
        for bad in [
            Id::new("world", "someone"),
            Id::new("digest", "bob"),
            Id::new("digest", "bob:"),
            Id::new("digest", "a:b:c"),
            Id::new("ip", "10.0.0"),
            Id::new("ip", "10.0.0.256"),
            Id::new("ip", "10.0.0.1/33"),
            Id::new("super", ""),
            Id::new("sasl", "bob"),
        ] {
            assert_eq!(fixup(&[Acl::new(READ, bad.clone())], &[]), Err(ZkError::InvalidAcl), "{bad:?}");
        }
        for good in [Id::new("digest", "bob:x"), Id::new("digest", ":x"), Id::new("ip", "10.0.0.1/8")] {
            assert!(fixup(&[Acl::new(READ, good.clone())], &[]).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn redaction_hides_digest_hashes() {
        let acl = [Acl::new(READ, digest("bob", "secret")), Acl::new(READ, Id::anyone())];
        assert_eq!(
            redact_digests(&acl),
            vec![Acl::new(READ, Id::new("digest", "bob:x")), Acl::new(READ, Id::anyone())]
        );
    }
}

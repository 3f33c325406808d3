//! etcd's auth store (`server/auth/store.go`): bucket `auth` holds `authEnabled` ([1] on, [0]
//! off) and `authRevision` (8-byte big-endian); `authUsers` maps a user's name to its
//! `authpb.User`, `authRoles` a role's name to its `authpb.Role`.

use prost::Message;

use crate::buckets::{lookup, Pairs};
use crate::error::SnapshotError;
use crate::records::{Role, User};

/// The auth store's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdAuth {
    /// Whether requests must carry credentials.
    pub enabled: bool,
    /// Bumped by every change of users, roles or permissions; 0 when absent (etcd writes 1 the
    /// first time it opens the store, so only a backend that never ran an auth store lacks it).
    pub revision: u64,
    /// In name order, passwords as the bcrypt hashes etcd stored.
    pub users: Vec<User>,
    /// In name order.
    pub roles: Vec<Role>,
}

fn bad(bucket: &'static str, key: &[u8], reason: impl Into<String>) -> SnapshotError {
    SnapshotError::BadValue { bucket, key: String::from_utf8_lossy(key).into_owned(), reason: reason.into() }
}

/// Reads the three buckets (each may be missing: a backend from before auth existed).
pub(crate) fn read_auth(auth: &Pairs, users: &Pairs, roles: &Pairs) -> Result<EtcdAuth, SnapshotError> {
    Ok(EtcdAuth {
        enabled: read_enabled(auth)?,
        revision: read_revision(auth)?,
        users: read_records(users, "authUsers", |u: &User| &u.name)?,
        roles: read_records(roles, "authRoles", |r: &Role| &r.name)?,
    })
}

/// etcd writes exactly [1] or [0]; anything else is damage, not "off".
fn read_enabled(auth: &Pairs) -> Result<bool, SnapshotError> {
    match lookup(auth, "authEnabled") {
        None | Some([0]) => Ok(false),
        Some([1]) => Ok(true),
        Some(other) => Err(bad("auth", b"authEnabled", format!("{other:?}, not [0] or [1]"))),
    }
}

fn read_revision(auth: &Pairs) -> Result<u64, SnapshotError> {
    let Some(value) = lookup(auth, "authRevision") else { return Ok(0) };
    let bytes: [u8; 8] =
        value.try_into().map_err(|_| bad("auth", b"authRevision", format!("{} bytes, not 8", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Decodes each value, which etcd stores under its own name: a record under another name is
/// damage too.
fn read_records<M: Message + Default>(
    pairs: &Pairs,
    bucket: &'static str,
    name: impl Fn(&M) -> &[u8],
) -> Result<Vec<M>, SnapshotError> {
    let read = |&(key, value): &(&[u8], &[u8])| {
        let record = M::decode(value).map_err(|e| bad(bucket, key, e.to_string()))?;
        match name(&record) {
            n if n == key => Ok(record),
            n => Err(bad(bucket, key, format!("holds {:?}", String::from_utf8_lossy(n)))),
        }
    };
    pairs.iter().map(read).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Permission, UserAddOptions};

    fn alice() -> User {
        User {
            name: b"alice".to_vec(),
            password: b"$2a$10$abcdefghijklmnopqrstuu".to_vec(),
            roles: vec!["dev".into(), "ops".into()],
            options: Some(UserAddOptions { no_password: false }),
        }
    }

    fn dev() -> Role {
        Role {
            name: b"dev".to_vec(),
            key_permission: vec![Permission { perm_type: 2, key: b"a/".to_vec(), range_end: b"a0".to_vec() }],
        }
    }

    #[test]
    fn reads_users_roles_and_flags_as_etcd_3_5_writes_them() {
        let (user, role, rev) = (alice().encode_to_vec(), dev().encode_to_vec(), 7u64.to_be_bytes());
        let auth: Pairs = vec![(b"authEnabled", &[1]), (b"authRevision", &rev)];
        let read = read_auth(&auth, &vec![(b"alice", &user)], &vec![(b"dev", &role)]).unwrap();
        assert_eq!(read, EtcdAuth { enabled: true, revision: 7, users: vec![alice()], roles: vec![dev()] });
        let off: Pairs = vec![(b"authEnabled", &[0]), (b"authRevision", &rev)];
        assert!(!read_auth(&off, &Vec::new(), &Vec::new()).unwrap().enabled);
    }

    #[test]
    fn missing_buckets_read_as_auth_never_used() {
        assert_eq!(read_auth(&Vec::new(), &Vec::new(), &Vec::new()).unwrap(), EtcdAuth::default());
    }

    #[test]
    fn damaged_records_are_errors() {
        let none = Vec::new();
        let is_bad = |r: Result<EtcdAuth, SnapshotError>| matches!(r, Err(SnapshotError::BadValue { .. }));
        assert!(is_bad(read_auth(&vec![(b"authEnabled", &[2])], &none, &none)));
        assert!(is_bad(read_auth(&vec![(b"authRevision", &[0; 4])], &none, &none)));
        let user = alice().encode_to_vec();
        assert!(is_bad(read_auth(&none, &vec![(b"bob", &user)], &none)), "stored under another name");
        assert!(is_bad(read_auth(&none, &vec![(b"alice", &user[..user.len() - 1])], &none)), "truncated");
        assert!(is_bad(read_auth(&none, &none, &vec![(b"dev", &[0xff, 0xff])])));
    }
}

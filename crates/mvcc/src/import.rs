//! A state machine built from another store's history, revision for revision (an etcd
//! snapshot's, for a move to Tally), so that clients see the same revisions, versions and
//! leases after the move, and log in as the same users with the same passwords and
//! permissions. It goes through the snapshot format, so the result passes the same checks as any
//! snapshot this member restores.

use std::collections::BTreeMap;
use std::sync::Arc;

use tally_proto::authpb::{Role, User};

use crate::apply::StateMachine;
use crate::auth::AuthStore;
use crate::key_index::{Entry, KeyHistory};
use crate::lease::Lease;
use crate::revision::{Revision, NEVER_COMPACTED};
use crate::snapshot::{write_snapshot, SnapshotError};
use crate::store::{Store, StoreConfig};

/// One change of one key, as the other store kept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedChange {
    pub key: Vec<u8>,
    pub main: i64,
    pub sub: i64,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// `None`: the key was deleted at this revision.
    pub value: Option<Vec<u8>>,
}

/// Everything a store holds: its changes (any order), leases (id, granted TTL), its current
/// revision, the revision it was compacted at (0 or less: never), and its auth state.
#[derive(Clone, Debug, Default)]
pub struct ImportedHistory {
    pub changes: Vec<ImportedChange>,
    pub leases: Vec<(i64, i64)>,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub auth: ImportedAuth,
}

/// The other store's auth state, in etcd's terms (the default: auth never used).
#[derive(Clone, Debug, Default)]
pub struct ImportedAuth {
    pub enabled: bool,
    /// 0 counts as 1, where etcd starts it.
    pub revision: u64,
    /// Passwords as bcrypt hashes, which `bcrypt::verify` checks at whatever cost they carry.
    pub users: Vec<User>,
    pub roles: Vec<Role>,
}

impl StateMachine {
    /// A state machine holding `history`, as if it had applied log entries up to `applied_index`.
    pub fn import(history: ImportedHistory, applied_index: u64) -> Result<StateMachine, SnapshotError> {
        let mut keys: BTreeMap<Arc<[u8]>, KeyHistory> = BTreeMap::new();
        for c in history.changes {
            if c.key.is_empty() {
                return Err(SnapshotError::Corrupt("empty key"));
            }
            let entry = match c.value {
                Some(value) => Entry {
                    rev: Revision::new(c.main, c.sub),
                    create: c.create_revision,
                    version: c.version,
                    lease: c.lease,
                    value: Some(value.into_boxed_slice()),
                },
                None => Entry { rev: Revision::new(c.main, c.sub), create: 0, version: 0, lease: 0, value: None },
            };
            keys.entry(Arc::from(c.key)).or_insert_with(|| KeyHistory { entries: Vec::new() }).entries.push(entry);
        }
        for h in keys.values_mut() {
            h.entries.sort_by_key(|e| e.rev);
        }
        let mut store = Store::new(StoreConfig::default());
        store.current_rev = history.current_revision.max(1);
        store.compact_rev = if history.compact_revision > 0 { history.compact_revision } else { NEVER_COMPACTED };
        for (id, ttl) in history.leases {
            store.lessor.leases.insert(id, Lease { id, ttl, keys: Default::default() });
        }
        let sm = StateMachine {
            store,
            sessions: Default::default(),
            applied_index,
            alarms: Default::default(),
            auth: auth_store(history.auth)?,
            zk: Default::default(),
        };
        let mut buf = Vec::new();
        write_snapshot(&sm, keys.len(), keys.iter(), &mut buf);
        StateMachine::restore(&buf)
    }
}

/// The auth store holding `auth`, in the shape the store's own changes keep.
fn auth_store(auth: ImportedAuth) -> Result<AuthStore, SnapshotError> {
    // Names are the stores' map keys (text): two names that are not text could collide.
    let mut names = auth.users.iter().map(|u| &u.name).chain(auth.roles.iter().map(|r| &r.name));
    if names.any(|n| std::str::from_utf8(n).is_err()) {
        return Err(SnapshotError::Corrupt("a user or role name is not UTF-8"));
    }
    let mut users = auth.users;
    for user in &mut users {
        // The root check looks roles up by binary search; etcd sorts them too, but a damaged or
        // hand-made store may not have.
        user.roles.sort_unstable();
        user.roles.dedup();
    }
    // A revision of 0 is what a request without credentials carries; etcd starts at 1.
    Ok(AuthStore::restore(auth.enabled, auth.revision.max(1), users, auth.roles))
}

#[cfg(test)]
mod tests {
    use tally_proto::authpb::permission::Type as PermType;
    use tally_proto::authpb::Permission;
    use tally_proto::etcdserverpb::RangeRequest;

    use super::*;
    use crate::auth::{Access, AuthInfo};
    use crate::MvccError;

    fn change(key: &str, main: i64, create: i64, version: i64, value: Option<&str>) -> ImportedChange {
        ImportedChange {
            key: key.into(),
            main,
            sub: 0,
            create_revision: create,
            version,
            lease: 0,
            value: value.map(Into::into),
        }
    }

    fn get(sm: &StateMachine, key: &str, revision: i64) -> Result<Vec<(String, i64, i64, i64)>, crate::MvccError> {
        let req = RangeRequest { key: key.into(), revision, ..Default::default() };
        let resp = sm.store.range(&req)?;
        Ok(resp
            .kvs
            .iter()
            .map(|kv| (String::from_utf8(kv.value.clone()).unwrap(), kv.create_revision, kv.mod_revision, kv.version))
            .collect())
    }

    #[test]
    fn imported_keys_keep_their_revisions_versions_and_deletes() {
        // a: put at 2, overwritten at 3; b: put at 4, deleted at 5; compacted at 3; current 6.
        let history = ImportedHistory {
            changes: vec![
                change("b", 5, 0, 0, None),
                change("a", 3, 2, 2, Some("a2")),
                change("b", 4, 4, 1, Some("b1")),
                change("a", 6, 2, 3, Some("a3")),
            ],
            leases: vec![],
            current_revision: 6,
            compact_revision: 3,
            auth: ImportedAuth::default(),
        };
        let sm = StateMachine::import(history, 1).unwrap();
        assert_eq!(sm.store.revision(), 6);
        assert_eq!(sm.store.compact_revision(), 3);
        assert_eq!(get(&sm, "a", 0).unwrap(), [("a3".to_string(), 2, 6, 3)]);
        assert_eq!(get(&sm, "a", 5).unwrap(), [("a2".to_string(), 2, 3, 2)]);
        assert_eq!(get(&sm, "b", 4).unwrap(), [("b1".to_string(), 4, 4, 1)]);
        assert!(get(&sm, "b", 0).unwrap().is_empty());
        assert_eq!(get(&sm, "a", 2), Err(crate::MvccError::Compacted));
    }

    #[test]
    fn a_key_on_a_lease_the_history_lacks_is_refused() {
        let mut c = change("a", 2, 2, 1, Some("v"));
        c.lease = 7;
        let history =
            ImportedHistory { changes: vec![c.clone()], leases: vec![], current_revision: 2, ..Default::default() };
        assert!(StateMachine::import(history, 1).is_err());
        let history =
            ImportedHistory { changes: vec![c], leases: vec![(7, 60)], current_revision: 2, ..Default::default() };
        let sm = StateMachine::import(history, 1).unwrap();
        assert_eq!(sm.store.lease(7).map(|l| l.keys.len()), Some(1));
    }

    #[test]
    fn revisions_past_the_current_one_are_refused() {
        let history = ImportedHistory {
            changes: vec![change("a", 9, 9, 1, Some("v"))],
            leases: vec![],
            current_revision: 5,
            ..Default::default()
        };
        assert!(StateMachine::import(history, 1).is_err());
    }

    fn user(name: &str, roles: &[&str]) -> User {
        let roles = roles.iter().map(|r| r.to_string()).collect();
        User { name: name.into(), password: b"$2a$10$hash".to_vec(), roles, options: None }
    }

    fn history_with(auth: ImportedAuth) -> ImportedHistory {
        ImportedHistory { changes: vec![], leases: vec![], current_revision: 1, compact_revision: 0, auth }
    }

    #[test]
    fn imported_users_and_roles_are_checked_as_the_other_store_checked_them() {
        let perm = Permission { perm_type: PermType::Readwrite as i32, key: "a/".into(), range_end: "a0".into() };
        let dev = Role { name: "dev".into(), key_permission: vec![perm] };
        let auth = ImportedAuth {
            enabled: true,
            revision: 7,
            // alice's roles out of order: the root check below must still find root's.
            users: vec![user("alice", &["ops", "dev"]), user("root", &["zz", "root"])],
            roles: vec![dev],
        };
        let sm = StateMachine::import(history_with(auth), 1).unwrap();
        assert!(sm.auth.is_enabled());
        assert_eq!(sm.auth.revision(), 7);
        assert_eq!(sm.auth.user("alice").unwrap().roles, ["dev", "ops"]);
        assert_eq!(sm.auth.user("alice").unwrap().password, b"$2a$10$hash");
        let who = |user: &str| AuthInfo { user: user.into(), revision: 7 };
        assert_eq!(sm.auth.check(&who("alice"), Access::Write, b"a/x", b""), Ok(()));
        assert_eq!(sm.auth.check(&who("alice"), Access::Read, b"b", b""), Err(MvccError::PermissionDenied));
        assert_eq!(sm.auth.check(&AuthInfo::default(), Access::Read, b"a/x", b""), Err(MvccError::UserEmpty));
        assert_eq!(sm.auth.check_admin(&who("root")), Ok(()));
        assert_eq!(sm.auth.check_admin(&who("alice")), Err(MvccError::PermissionDenied));
    }

    #[test]
    fn an_auth_revision_of_zero_starts_at_one_and_names_must_be_text() {
        let sm = StateMachine::import(history_with(ImportedAuth::default()), 1).unwrap();
        assert_eq!((sm.auth.is_enabled(), sm.auth.revision()), (false, 1));
        let mut bad = user("x", &[]);
        bad.name = vec![0xff, 0xfe];
        let auth = ImportedAuth { users: vec![bad], ..ImportedAuth::default() };
        assert!(StateMachine::import(history_with(auth), 1).is_err());
    }
}

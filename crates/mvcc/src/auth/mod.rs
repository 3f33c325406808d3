//! etcd's auth store as replicated state: whether auth is on, its revision, users with their
//! bcrypt hashes and roles, roles with their key permissions. Changed only through the log
//! (`manage.rs`), so every member checks a request (`requests.rs`) against the same state.
//! Tokens and password checks are the server's: nothing here hashes or reads a clock.

mod manage;
mod perms;
mod requests;

use std::collections::{BTreeMap, HashMap};

use tally_proto::authpb::{Role, User};

use crate::error::MvccError;
pub use perms::Access;
use perms::UserPerms;

const ROOT: &str = "root";

/// Who sent a request, as its credentials said when it was received (etcd's `AuthInfo`).
/// Revision 0: no credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name.
    pub user: String,
    /// The auth revision the credentials were checked at.
    pub revision: u64,
}

/// The auth store.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthStore {
    enabled: bool,
    /// Bumped by every change of users or roles, and by disabling auth (etcd starts it at 1).
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Each user's permissions merged from its roles (etcd's range permission cache).
    perms: HashMap<String, UserPerms>,
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new(), perms: HashMap::new() }
    }
}

impl AuthStore {
    /// Whether requests must carry credentials.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user, by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// The users, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The roles, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// Rebuilds a store from its parts (a snapshot's).
    pub(crate) fn restore(enabled: bool, revision: u64, users: Vec<User>, roles: Vec<Role>) -> AuthStore {
        let mut store = AuthStore {
            enabled,
            revision,
            users: users.into_iter().map(|u| (String::from_utf8_lossy(&u.name).into_owned(), u)).collect(),
            roles: roles.into_iter().map(|r| (String::from_utf8_lossy(&r.name).into_owned(), r)).collect(),
            perms: HashMap::new(),
        };
        store.refresh_perms();
        store
    }

    /// etcd's `isOpPermitted`: may `who` read or write `key` (to `range_end`)?
    pub fn check(&self, who: &AuthInfo, access: Access, key: &[u8], range_end: &[u8]) -> Result<(), MvccError> {
        if !self.enabled {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(MvccError::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(MvccError::AuthOldRevision);
        }
        let Some(user) = self.users.get(&who.user) else { return Err(MvccError::PermissionDenied) };
        if has_root_role(user) {
            return Ok(());
        }
        match self.perms.get(&who.user) {
            Some(p) if p.permits(access, key, range_end) => Ok(()),
            _ => Err(MvccError::PermissionDenied),
        }
    }

    /// etcd's `IsAdminPermitted`: `who` has the root role (anyone does while auth is off).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), MvccError> {
        if !self.enabled {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(MvccError::UserEmpty);
        }
        match self.users.get(&who.user) {
            None => Err(MvccError::UserNotFound),
            Some(u) if has_root_role(u) => Ok(()),
            Some(_) => Err(MvccError::PermissionDenied),
        }
    }

    /// Whether `user` has `role` (etcd's `HasRole`).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// A change to users or roles: a new revision, and permissions merged again.
    fn changed(&mut self) {
        self.revision += 1;
        self.refresh_perms();
    }

    fn refresh_perms(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| (name.clone(), UserPerms::merge(u.roles.iter().filter_map(|r| roles.get(r)))))
            .collect();
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.binary_search_by(|r| r.as_str().cmp(ROOT)).is_ok()
}

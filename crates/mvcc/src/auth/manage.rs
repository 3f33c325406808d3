//! The Auth service's requests as the log applies them, with etcd's rules and errors
//! (`auth/store.go` and `apply_auth.go`). Passwords arrive hashed; the server hashed them.

use base64::Engine;
use tally_proto::authpb::{Permission, Role, User, UserAddOptions};
use tally_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddRequest,
    AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteResponse,
    AuthUserGetResponse, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateResponse,
};
use tally_proto::tally_v1::auth_command::Op;
use tally_proto::tally_v1::auth_result::Result as Answer;
use tally_proto::tally_v1::{AuthCommand, AuthenticateCommand};

use super::perms::valid_permission_range;
use super::{has_root_role, AuthInfo, AuthStore, ROOT};
use crate::error::MvccError;

type Result<T> = std::result::Result<T, MvccError>;

impl AuthStore {
    /// Applies one Auth request sent by `who`, at log `index`. Headers are left to the caller.
    pub fn apply(&mut self, cmd: &AuthCommand, who: &AuthInfo, index: u64) -> Result<Answer> {
        let Some(op) = &cmd.op else { return Err(MvccError::InvalidAuthMgmt) };
        match op {
            Op::Authenticate(_) => {}
            // A user may read itself, and the roles it has (etcd's authApplierV3).
            Op::UserGet(r) if r.name == who.user => {}
            Op::RoleGet(r) if self.has_role(&who.user, &r.role) => {}
            _ => self.check_admin(who)?,
        }
        Ok(match op {
            Op::Enable(_) => self.enable().map(|()| Answer::Enable(AuthEnableResponse::default()))?,
            Op::Disable(_) => {
                self.disable();
                Answer::Disable(AuthDisableResponse::default())
            }
            Op::Status(_) => {
                Answer::Status(AuthStatusResponse { header: None, enabled: self.enabled, auth_revision: self.revision })
            }
            Op::Authenticate(a) => Answer::Authenticate(self.authenticate(a, index)?),
            Op::UserAdd(r) => self.user_add(r).map(|()| Answer::UserAdd(AuthUserAddResponse::default()))?,
            Op::UserGet(r) => {
                let user = self.users.get(&r.name).ok_or(MvccError::UserNotFound)?;
                Answer::UserGet(AuthUserGetResponse { header: None, roles: user.roles.clone() })
            }
            Op::UserList(_) => {
                Answer::UserList(AuthUserListResponse { header: None, users: self.users.keys().cloned().collect() })
            }
            Op::UserDelete(r) => {
                self.user_delete(&r.name).map(|()| Answer::UserDelete(AuthUserDeleteResponse::default()))?
            }
            Op::UserChangePassword(r) => self
                .change_password(r)
                .map(|()| Answer::UserChangePassword(AuthUserChangePasswordResponse::default()))?,
            Op::UserGrantRole(r) => {
                self.grant_role(r).map(|()| Answer::UserGrantRole(AuthUserGrantRoleResponse::default()))?
            }
            Op::UserRevokeRole(r) => {
                self.revoke_role(r).map(|()| Answer::UserRevokeRole(AuthUserRevokeRoleResponse::default()))?
            }
            Op::RoleAdd(r) => self.role_add(&r.name).map(|()| Answer::RoleAdd(AuthRoleAddResponse::default()))?,
            Op::RoleGet(r) => {
                let role = self.roles.get(&r.role).ok_or(MvccError::RoleNotFound)?;
                Answer::RoleGet(AuthRoleGetResponse { header: None, perm: role.key_permission.clone() })
            }
            Op::RoleList(_) => {
                Answer::RoleList(AuthRoleListResponse { header: None, roles: self.roles.keys().cloned().collect() })
            }
            Op::RoleDelete(r) => {
                self.role_delete(&r.role).map(|()| Answer::RoleDelete(AuthRoleDeleteResponse::default()))?
            }
            Op::RoleGrantPermission(r) => self
                .grant_permission(r)
                .map(|()| Answer::RoleGrantPermission(AuthRoleGrantPermissionResponse::default()))?,
            Op::RoleRevokePermission(r) => self
                .revoke_permission(r)
                .map(|()| Answer::RoleRevokePermission(AuthRoleRevokePermissionResponse::default()))?,
        })
    }

    fn enable(&mut self) -> Result<()> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT).ok_or(MvccError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(MvccError::RootRoleNotExist);
        }
        self.enabled = true;
        self.refresh_perms();
        Ok(())
    }

    fn disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.revision += 1;
        }
    }

    /// The password was checked before the request was proposed; here only what the state can
    /// tell. The token names the log index, so every member registers the same one.
    fn authenticate(&self, a: &AuthenticateCommand, index: u64) -> Result<AuthenticateResponse> {
        if !self.enabled {
            return Err(MvccError::AuthNotEnabled);
        }
        let user = self.users.get(&a.name).ok_or(MvccError::AuthFailed)?;
        if no_password(user) {
            return Err(MvccError::AuthFailed);
        }
        Ok(AuthenticateResponse { header: None, token: format!("{}.{index}", a.simple_token_prefix) })
    }

    fn user_add(&mut self, r: &AuthUserAddRequest) -> Result<()> {
        if r.name.is_empty() {
            return Err(MvccError::UserEmpty);
        }
        if self.users.contains_key(&r.name) {
            return Err(MvccError::UserAlreadyExist);
        }
        let options = r.options.unwrap_or(UserAddOptions { no_password: false });
        let password = if options.no_password { Vec::new() } else { decode_hash(&r.hashed_password)? };
        let user = User { name: r.name.clone().into_bytes(), password, roles: Vec::new(), options: Some(options) };
        self.users.insert(r.name.clone(), user);
        self.changed();
        Ok(())
    }

    fn user_delete(&mut self, name: &str) -> Result<()> {
        if self.enabled && name == ROOT {
            return Err(MvccError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(MvccError::UserNotFound)?;
        self.changed();
        Ok(())
    }

    fn change_password(&mut self, r: &AuthUserChangePasswordRequest) -> Result<()> {
        let user = self.users.get_mut(&r.name).ok_or(MvccError::UserNotFound)?;
        user.password = if no_password(user) { Vec::new() } else { decode_hash(&r.hashed_password)? };
        self.changed();
        Ok(())
    }

    fn grant_role(&mut self, r: &AuthUserGrantRoleRequest) -> Result<()> {
        if !self.users.contains_key(&r.user) {
            return Err(MvccError::UserNotFound);
        }
        // etcd lets the root role be granted before it exists as a role.
        if r.role != ROOT && !self.roles.contains_key(&r.role) {
            return Err(MvccError::RoleNotFound);
        }
        let user = self.users.get_mut(&r.user).expect("checked above");
        let Err(at) = user.roles.binary_search(&r.role) else { return Ok(()) };
        user.roles.insert(at, r.role.clone());
        self.changed();
        Ok(())
    }

    fn revoke_role(&mut self, r: &AuthUserRevokeRoleRequest) -> Result<()> {
        if self.enabled && r.name == ROOT && r.role == ROOT {
            return Err(MvccError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(&r.name).ok_or(MvccError::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|role| *role != r.role);
        if user.roles.len() == before {
            return Err(MvccError::RoleNotGranted);
        }
        self.changed();
        Ok(())
    }

    fn role_add(&mut self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(MvccError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(MvccError::RoleAlreadyExist);
        }
        self.roles.insert(name.to_owned(), Role { name: name.as_bytes().to_vec(), key_permission: Vec::new() });
        self.changed();
        Ok(())
    }

    fn role_delete(&mut self, name: &str) -> Result<()> {
        if self.enabled && name == ROOT {
            return Err(MvccError::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(MvccError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.changed();
        Ok(())
    }

    fn grant_permission(&mut self, r: &AuthRoleGrantPermissionRequest) -> Result<()> {
        let perm = r.perm.as_ref().ok_or(MvccError::PermissionNotGiven)?;
        if !valid_permission_range(&perm.key, &perm.range_end) {
            return Err(MvccError::InvalidAuthMgmt);
        }
        let role = self.roles.get_mut(&r.name).ok_or(MvccError::RoleNotFound)?;
        let perms = &mut role.key_permission;
        // Like etcd, only the first permission at or after the key is looked at for an update.
        let at = perms.partition_point(|p| p.key < perm.key);
        match perms.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => p.perm_type = perm.perm_type,
            _ => {
                perms.push(Permission {
                    perm_type: perm.perm_type,
                    key: perm.key.clone(),
                    range_end: perm.range_end.clone(),
                });
                perms.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.changed();
        Ok(())
    }

    fn revoke_permission(&mut self, r: &AuthRoleRevokePermissionRequest) -> Result<()> {
        let role = self.roles.get_mut(&r.role).ok_or(MvccError::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission.retain(|p| p.key != r.key || p.range_end != r.range_end);
        if role.key_permission.len() == before {
            return Err(MvccError::PermissionNotGranted);
        }
        self.changed();
        Ok(())
    }
}

fn no_password(user: &User) -> bool {
    user.options.is_some_and(|o| o.no_password)
}

/// etcd's `selectPassword` for a hash sent base64-encoded; an undecodable one is its
/// `ErrNoPasswordUser`.
fn decode_hash(hashed: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(hashed).map_err(|_| MvccError::NoPasswordUser)
}

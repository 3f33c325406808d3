//! The requests the auth differential test sends, and who sends them.

use tally_proto::authpb::permission::Type;
use tally_proto::authpb::{Permission, UserAddOptions};
use tally_proto::etcdserverpb::*;

/// Whose credentials a request carries (gRPC metadata `token`).
#[derive(Clone, Debug, PartialEq)]
pub enum Who {
    /// No token at all.
    Anon,
    /// The token this system last handed out to that user (no token if it never did).
    User(String),
    /// A fixed string that is no token of this system.
    Bogus(&'static str),
}

pub fn user(name: &str) -> Who {
    Who::User(name.to_string())
}

#[derive(Clone, Debug)]
pub enum Op {
    AuthEnable,
    AuthDisable,
    AuthStatus,
    Authenticate(AuthenticateRequest),
    UserAdd(AuthUserAddRequest),
    UserGet(AuthUserGetRequest),
    UserList,
    UserDelete(AuthUserDeleteRequest),
    UserChangePassword(AuthUserChangePasswordRequest),
    UserGrantRole(AuthUserGrantRoleRequest),
    UserRevokeRole(AuthUserRevokeRoleRequest),
    RoleAdd(AuthRoleAddRequest),
    RoleGet(AuthRoleGetRequest),
    RoleList,
    RoleDelete(AuthRoleDeleteRequest),
    RoleGrantPermission(AuthRoleGrantPermissionRequest),
    RoleRevokePermission(AuthRoleRevokePermissionRequest),
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    LeaseTtl(LeaseTimeToLiveRequest),
    /// A watch created on a stream of its own; the answer is the stream's first response.
    Watch(WatchCreateRequest),
    Status,
    AlarmList,
    Hash,
    HashKv,
    Defragment,
    /// The answer is whether the first chunk came (its bytes differ between systems).
    Snapshot,
    MemberList,
    /// Only ever sent where etcd refuses it (a new member would break the cluster).
    MemberAdd,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub who: Who,
    pub op: Op,
}

// Constructors, so that scripts and the generator read like etcdctl commands.

pub fn authenticate(name: &str, password: &str) -> Op {
    Op::Authenticate(AuthenticateRequest { name: name.into(), password: password.into() })
}

pub fn user_add(name: &str, password: &str) -> Op {
    Op::UserAdd(AuthUserAddRequest { name: name.into(), password: password.into(), ..Default::default() })
}

pub fn user_add_no_password(name: &str) -> Op {
    Op::UserAdd(AuthUserAddRequest {
        name: name.into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    })
}

pub fn user_get(name: &str) -> Op {
    Op::UserGet(AuthUserGetRequest { name: name.into() })
}

pub fn user_delete(name: &str) -> Op {
    Op::UserDelete(AuthUserDeleteRequest { name: name.into() })
}

pub fn user_passwd(name: &str, password: &str) -> Op {
    Op::UserChangePassword(AuthUserChangePasswordRequest {
        name: name.into(),
        password: password.into(),
        ..Default::default()
    })
}

pub fn grant_role(user: &str, role: &str) -> Op {
    Op::UserGrantRole(AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
}

pub fn revoke_role(user: &str, role: &str) -> Op {
    Op::UserRevokeRole(AuthUserRevokeRoleRequest { name: user.into(), role: role.into() })
}

pub fn role_add(name: &str) -> Op {
    Op::RoleAdd(AuthRoleAddRequest { name: name.into() })
}

pub fn role_get(name: &str) -> Op {
    Op::RoleGet(AuthRoleGetRequest { role: name.into() })
}

pub fn role_delete(name: &str) -> Op {
    Op::RoleDelete(AuthRoleDeleteRequest { role: name.into() })
}

pub fn grant_perm(role: &str, t: Type, key: &[u8], range_end: &[u8]) -> Op {
    Op::RoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission { perm_type: t as i32, key: key.to_vec(), range_end: range_end.to_vec() }),
    })
}

pub fn revoke_perm(role: &str, key: &[u8], range_end: &[u8]) -> Op {
    Op::RoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: role.into(),
        key: key.to_vec(),
        range_end: range_end.to_vec(),
    })
}

pub fn get(key: &[u8], range_end: &[u8]) -> Op {
    Op::Range(RangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() })
}

pub fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put(PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() })
}

pub fn put_lease(key: &[u8], lease: i64) -> Op {
    Op::Put(PutRequest { key: key.to_vec(), value: b"leased".to_vec(), lease, ..Default::default() })
}

pub fn delete(key: &[u8], range_end: &[u8]) -> Op {
    Op::Delete(DeleteRangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() })
}

pub fn lease_grant(id: i64) -> Op {
    Op::LeaseGrant(LeaseGrantRequest { ttl: 3600, id })
}

pub fn lease_revoke(id: i64) -> Op {
    Op::LeaseRevoke(LeaseRevokeRequest { id })
}

pub fn lease_ttl(id: i64) -> Op {
    Op::LeaseTtl(LeaseTimeToLiveRequest { id, keys: true })
}

pub fn watch(key: &[u8], range_end: &[u8]) -> Op {
    Op::Watch(WatchCreateRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() })
}

/// A txn: if `cmp_key`'s version is 0 then put `then_key` else get `else_key`.
pub fn txn(cmp_key: &[u8], then_key: &[u8], else_key: &[u8]) -> Op {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    use request_op::Request;
    Op::Txn(TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: cmp_key.to_vec(),
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: then_key.to_vec(),
                value: b"txn".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest { key: else_key.to_vec(), ..Default::default() })),
        }],
    })
}

/// The key right after every key with this prefix (etcd's `GetPrefixRangeEnd`).
pub use tally_server::client::services::recipe::prefix_end;

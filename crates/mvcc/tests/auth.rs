//! The replicated auth store through the state machine: etcd's rules for enabling auth, managing
//! users and roles, and the permission checks every member makes at apply.

use tally_mvcc::{CommandResponse, MvccError, StateMachine};
use tally_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::auth_command::Op as AuthOp;
use tally_proto::tally_v1::auth_result::Result as Answer;
use tally_proto::tally_v1::{command::Op, AuthCommand, AuthenticateCommand, Command};

struct Cluster {
    sm: StateMachine,
    index: u64,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster { sm: StateMachine::default(), index: 0 }
    }

    fn run(&mut self, user: &str, revision: u64, op: Op) -> CommandResponse {
        self.index += 1;
        let cmd = Command { op: Some(op), auth_user: user.into(), auth_revision: revision, ..Default::default() };
        self.sm.apply(self.index, &cmd).response
    }

    fn auth(&mut self, user: &str, op: AuthOp) -> Result<Answer, MvccError> {
        let rev = self.sm.auth.revision();
        match self.run(user, rev, Op::Auth(AuthCommand { op: Some(op) })) {
            CommandResponse::Auth(a) => Ok(a.result.unwrap()),
            CommandResponse::Error(e) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    fn put(&mut self, user: &str, revision: u64, key: &str) -> Result<(), MvccError> {
        match self.run(
            user,
            revision,
            Op::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() }),
        ) {
            CommandResponse::Put(_) => Ok(()),
            CommandResponse::Error(e) => Err(e),
            other => panic!("{other:?}"),
        }
    }
}

fn user_add(name: &str) -> AuthOp {
    // base64 of a fake hash: the store keeps what the server hashed.
    AuthOp::UserAdd(AuthUserAddRequest { name: name.into(), hashed_password: "aGFzaA==".into(), ..Default::default() })
}

fn grant(user: &str, role: &str) -> AuthOp {
    AuthOp::UserGrantRole(AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
}

fn perm(role: &str, t: PermType, key: &str, end: &str) -> AuthOp {
    AuthOp::RoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission { perm_type: t as i32, key: key.into(), range_end: end.into() }),
    })
}

/// root with the root role, alice with read-write on a/ and read on b, auth on.
fn secured() -> Cluster {
    let mut c = Cluster::new();
    for op in [
        user_add("root"),
        grant("root", "root"),
        user_add("alice"),
        AuthOp::RoleAdd(AuthRoleAddRequest { name: "dev".into() }),
        perm("dev", PermType::Readwrite, "a/", "a0"),
        perm("dev", PermType::Read, "b", ""),
        grant("alice", "dev"),
        AuthOp::Enable(AuthEnableRequest {}),
    ] {
        c.auth("", op).unwrap();
    }
    c
}

#[test]
fn enabling_needs_a_root_user_with_the_root_role() {
    let mut c = Cluster::new();
    assert_eq!(c.sm.auth.revision(), 1, "etcd's auth revision starts at 1");
    assert_eq!(c.auth("", AuthOp::Enable(AuthEnableRequest {})), Err(MvccError::RootUserNotExist));
    c.auth("", user_add("root")).unwrap();
    assert_eq!(c.auth("", AuthOp::Enable(AuthEnableRequest {})), Err(MvccError::RootRoleNotExist));
    c.auth("", grant("root", "root")).unwrap();
    let before = c.sm.auth.revision();
    c.auth("", AuthOp::Enable(AuthEnableRequest {})).unwrap();
    assert!(c.sm.auth.is_enabled());
    assert_eq!(c.sm.auth.revision(), before, "enabling does not change the revision");
}

#[test]
fn management_errors_are_etcds() {
    let mut c = Cluster::new();
    assert_eq!(c.auth("", user_add("")), Err(MvccError::UserEmpty));
    c.auth("", user_add("u")).unwrap();
    assert_eq!(c.auth("", user_add("u")), Err(MvccError::UserAlreadyExist));
    assert_eq!(c.auth("", grant("u", "nope")), Err(MvccError::RoleNotFound));
    assert_eq!(c.auth("", grant("nobody", "root")), Err(MvccError::UserNotFound));
    assert_eq!(c.auth("", AuthOp::RoleAdd(AuthRoleAddRequest { name: "".into() })), Err(MvccError::RoleEmpty));
    c.auth("", AuthOp::RoleAdd(AuthRoleAddRequest { name: "r".into() })).unwrap();
    assert_eq!(c.auth("", AuthOp::RoleAdd(AuthRoleAddRequest { name: "r".into() })), Err(MvccError::RoleAlreadyExist));
    assert_eq!(c.auth("", perm("r", PermType::Read, "b", "a")), Err(MvccError::InvalidAuthMgmt));
    let no_perm = AuthOp::RoleGrantPermission(AuthRoleGrantPermissionRequest { name: "r".into(), perm: None });
    assert_eq!(c.auth("", no_perm), Err(MvccError::PermissionNotGiven));
    let revoke = AuthOp::RoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: "r".into(),
        key: b"k".to_vec(),
        range_end: vec![],
    });
    assert_eq!(c.auth("", revoke), Err(MvccError::PermissionNotGranted));
    let revoke_role = AuthOp::UserRevokeRole(AuthUserRevokeRoleRequest { name: "u".into(), role: "r".into() });
    assert_eq!(c.auth("", revoke_role), Err(MvccError::RoleNotGranted));
    let nopw = AuthOp::UserAdd(AuthUserAddRequest {
        name: "svc".into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    });
    c.auth("", nopw).unwrap();
    let Answer::UserList(list) = c.auth("", AuthOp::UserList(AuthUserListRequest {})).unwrap() else { panic!() };
    assert_eq!(list.users, ["svc", "u"]);
}

#[test]
fn writes_are_checked_at_apply_against_the_permissions_of_that_moment() {
    let mut c = secured();
    let rev = c.sm.auth.revision();
    assert_eq!(c.put("alice", rev, "a/x"), Ok(()));
    assert_eq!(c.put("alice", rev, "b"), Err(MvccError::PermissionDenied), "read-only key");
    assert_eq!(c.put("alice", rev, "zzz"), Err(MvccError::PermissionDenied));
    assert_eq!(c.put("", 0, "a/x"), Err(MvccError::UserEmpty), "no credentials");
    assert_eq!(c.put("root", rev, "zzz"), Ok(()), "root may write anything");
    // Any change of users or roles makes earlier credentials old.
    c.auth("root", user_add("bob")).unwrap();
    assert_eq!(c.put("alice", rev, "a/x"), Err(MvccError::AuthOldRevision));
    let rev = c.sm.auth.revision();
    assert_eq!(c.put("alice", rev, "a/x"), Ok(()));
    // Only root manages users; a user reads itself and its own roles.
    assert_eq!(c.auth("alice", user_add("eve")), Err(MvccError::PermissionDenied));
    assert!(c.auth("alice", AuthOp::UserGet(AuthUserGetRequest { name: "alice".into() })).is_ok());
    assert!(c.auth("alice", AuthOp::RoleGet(AuthRoleGetRequest { role: "dev".into() })).is_ok());
    assert_eq!(
        c.auth("alice", AuthOp::UserGet(AuthUserGetRequest { name: "root".into() })),
        Err(MvccError::PermissionDenied)
    );
    assert_eq!(
        c.auth("root", AuthOp::UserDelete(AuthUserDeleteRequest { name: "root".into() })),
        Err(MvccError::InvalidAuthMgmt)
    );
}

#[test]
fn a_txn_needs_every_compare_and_op_permitted() {
    let mut c = secured();
    let rev = c.sm.auth.revision();
    let txn = |compare_key: &str, put_key: &str| {
        Op::Txn(TxnRequest {
            compare: vec![Compare { key: compare_key.into(), ..Default::default() }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: put_key.into(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })
    };
    assert!(matches!(c.run("alice", rev, txn("b", "a/1")), CommandResponse::Txn(_)));
    assert_eq!(c.run("alice", rev, txn("c", "a/1")), CommandResponse::Error(MvccError::PermissionDenied));
    assert_eq!(c.run("alice", rev, txn("b", "b")), CommandResponse::Error(MvccError::PermissionDenied));
}

#[test]
fn authenticate_names_the_log_index_and_refuses_what_cannot_log_in() {
    let mut c = Cluster::new();
    let login =
        |name: &str| AuthOp::Authenticate(AuthenticateCommand { name: name.into(), simple_token_prefix: "abc".into() });
    assert_eq!(c.auth("", login("root")), Err(MvccError::AuthNotEnabled));
    let mut c = secured();
    assert_eq!(c.auth("", login("nobody")), Err(MvccError::AuthFailed));
    let Answer::Authenticate(a) = c.auth("", login("alice")).unwrap() else { panic!() };
    assert_eq!(a.token, format!("abc.{}", c.index));
}

#[test]
fn auth_state_survives_a_snapshot() {
    let c = secured();
    let restored = StateMachine::restore(&c.sm.snapshot()).unwrap();
    assert_eq!(restored.auth, c.sm.auth);
    let rev = restored.auth.revision();
    let mut c2 = Cluster { sm: restored, index: c.index };
    assert_eq!(c2.put("alice", rev, "b"), Err(MvccError::PermissionDenied), "merged permissions rebuilt");
    assert_eq!(c2.put("alice", rev, "a/1"), Ok(()));
}

//! The scripted auth sequence: every rule of etcd's auth once, in order. Each step is compared
//! between the two systems and, where noted, checked against what etcd 3.5.35 answers (so the
//! script is known to exercise what it claims to).

use tally_proto::authpb::permission::Type::{Read, Readwrite, Write};

use tally_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};

use super::ops::*;

/// What etcd answers a step with.
#[derive(Clone, Debug)]
pub enum Expect {
    Ok,
    Err(&'static str),
    /// A response whose text contains this.
    Has(&'static str),
}

pub const ROOT_PW: &str = "rootpw";
pub const DENIED: &str = "etcdserver: permission denied";
pub const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
pub const USER_EMPTY: &str = "etcdserver: user name is empty";
pub const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
pub const NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
pub const INVALID_MGMT: &str = "etcdserver: invalid auth management";
pub const WATCH_DENIED: &str =
    "cancel_reason: \"rpc error: code = PermissionDenied desc = etcdserver: permission denied\"";

#[derive(Default)]
pub struct Script {
    pub steps: Vec<(Step, Expect)>,
}

impl Script {
    fn push(&mut self, who: &Who, op: Op, e: Expect) {
        self.steps.push((Step { who: who.clone(), op }, e));
    }
    fn ok(&mut self, who: &Who, op: Op) {
        self.push(who, op, Expect::Ok)
    }
    fn err(&mut self, who: &Who, op: Op, msg: &'static str) {
        self.push(who, op, Expect::Err(msg))
    }
}

/// The script over keys under `p` (a prefix no other part of the run uses).
pub fn script(p: &str) -> Script {
    let k = |s: &str| format!("{p}{s}").into_bytes();
    let (anon, root, alice, bob, carol) = (Who::Anon, user("root"), user("alice"), user("bob"), user("carol"));
    let bogus = Who::Bogus("notatoken");
    // The shape of a simple token, but never issued: etcd waits for raft index 1 (applied
    // long ago), then does not find it.
    let forged = Who::Bogus("abcdefghijklmnop.1");
    let mut s = Script::default();

    // --- Users and roles while auth is off: anyone may manage them.
    s.ok(&anon, Op::AuthStatus);
    s.err(&anon, authenticate("root", ROOT_PW), NOT_ENABLED);
    s.err(&anon, Op::AuthEnable, "etcdserver: root user does not exist");
    s.err(&anon, user_add("", "x"), USER_EMPTY);
    s.ok(&anon, user_add("root", ROOT_PW));
    s.err(&anon, user_add("root", "other"), "etcdserver: user name already exists");
    s.err(&anon, Op::AuthEnable, "etcdserver: root user does not have root role");
    s.err(&anon, role_add(""), "etcdserver: role name is empty");
    s.ok(&anon, role_add("root"));
    s.err(&anon, role_add("root"), "etcdserver: role name already exists");
    s.err(&anon, grant_role("root", "nosuchrole"), "etcdserver: role name not found");
    s.err(&anon, grant_role("nosuchuser", "root"), "etcdserver: user name not found");
    s.ok(&anon, grant_role("root", "root"));
    s.ok(&anon, user_add("alice", "alicepw"));
    s.ok(&anon, user_add_no_password("bob"));
    s.ok(&anon, user_add("carol", "carolpw"));
    s.ok(&anon, user_add("dave", "davepw"));
    for r in ["reader", "writer", "rw", "fromkey", "spare"] {
        s.ok(&anon, role_add(r));
    }
    s.ok(&anon, grant_perm("reader", Read, &k("a"), b""));
    s.ok(&anon, grant_perm("writer", Write, &k("b"), &k("d")));
    s.ok(&anon, grant_perm("rw", Readwrite, &k("c/"), &prefix_end(&k("c/"))));
    s.ok(&anon, grant_perm("fromkey", Read, &k("x"), b"\0"));
    // Two grants of the same key: the second replaces the first's type.
    s.ok(&anon, grant_perm("spare", Read, &k("s"), b""));
    s.ok(&anon, grant_perm("spare", Write, &k("s"), b""));
    s.err(&anon, grant_perm("spare", Read, b"", b""), INVALID_MGMT); // an empty key
    s.err(&anon, grant_perm("nosuchrole", Read, &k("a"), b""), "etcdserver: role name not found");
    for r in ["reader", "writer", "rw", "fromkey", "spare", "root"] {
        s.ok(&anon, role_get(r));
    }
    s.err(&anon, role_get("nosuchrole"), "etcdserver: role name not found");
    s.ok(&anon, Op::RoleList);
    s.err(&anon, revoke_perm("reader", &k("zzz"), b""), "etcdserver: permission is not granted to the role");
    s.err(&anon, revoke_perm("reader", &k("a"), &k("b")), "etcdserver: permission is not granted to the role");
    s.err(&anon, revoke_perm("nosuchrole", &k("a"), b""), "etcdserver: role name not found");
    s.ok(&anon, revoke_perm("spare", &k("s"), b""));
    s.ok(&anon, role_get("spare"));
    s.ok(&anon, grant_role("alice", "writer"));
    s.ok(&anon, grant_role("alice", "reader"));
    s.ok(&anon, grant_role("alice", "reader")); // granted twice: ignored, no error
    s.ok(&anon, grant_role("bob", "rw"));
    s.ok(&anon, grant_role("carol", "fromkey"));
    s.ok(&anon, grant_role("carol", "rw"));
    s.ok(&anon, grant_role("dave", "spare"));
    s.err(&anon, revoke_role("alice", "rw"), "etcdserver: role is not granted to the user");
    s.err(&anon, revoke_role("nosuchuser", "rw"), "etcdserver: user name not found");
    s.ok(&anon, revoke_role("dave", "spare"));
    s.ok(&anon, role_delete("spare"));
    s.err(&anon, role_delete("spare"), "etcdserver: role name not found");
    s.ok(&anon, user_get("alice")); // roles sorted
    s.ok(&anon, user_get("bob"));
    s.err(&anon, user_get("nosuchuser"), "etcdserver: user name not found");
    s.ok(&anon, Op::UserList);
    for (key, v) in [("a", "1"), ("b", "2"), ("c/1", "3"), ("c/2", "4"), ("x", "5"), ("y", "6")] {
        s.ok(&anon, put(&k(key), v.as_bytes()));
    }
    s.ok(&anon, lease_grant(7001));
    s.ok(&anon, put_lease(&k("y"), 7001)); // nobody but root may write y
    s.ok(&anon, lease_grant(7002));
    s.ok(&anon, put_lease(&k("c/2"), 7002)); // bob and carol may write c/2
    s.ok(&anon, Op::AuthStatus);

    // --- Auth on.
    s.ok(&anon, Op::AuthEnable);
    // Once auth is on, even AuthEnable and AuthStatus need a token (root's).
    s.err(&anon, Op::AuthEnable, USER_EMPTY);
    s.err(&anon, Op::AuthStatus, USER_EMPTY);
    s.err(&anon, authenticate("root", "wrong"), AUTH_FAILED);
    s.err(&anon, authenticate("nosuchuser", "x"), AUTH_FAILED);
    // A user without password cannot log in, and etcd's error for it is not one of its gRPC
    // errors: code Unknown with the auth package's own text.
    s.err(&anon, authenticate("bob", ""), "auth: authentication failed, password was given for no password user");
    s.err(&anon, authenticate("", ""), AUTH_FAILED);
    s.ok(&anon, authenticate("root", ROOT_PW));
    s.ok(&anon, authenticate("alice", "alicepw"));
    s.ok(&anon, authenticate("carol", "carolpw"));
    s.ok(&anon, authenticate("dave", "davepw"));
    s.err(&anon, get(&k("a"), b""), USER_EMPTY);
    s.err(&anon, put(&k("a"), b"v"), USER_EMPTY);
    s.err(&bogus, get(&k("a"), b""), INVALID_TOKEN);
    s.err(&forged, get(&k("a"), b""), INVALID_TOKEN);
    s.err(&bogus, put(&k("a"), b"v"), INVALID_TOKEN);
    s.ok(&root, get(&k(""), &prefix_end(&k(""))));

    // KV as alice: read a, write [b, d).
    s.ok(&alice, get(&k("a"), b""));
    s.err(&alice, get(&k("b"), b""), DENIED);
    s.err(&alice, get(&k("a"), &k("b\0")), DENIED); // the range covers b
    s.err(&alice, put(&k("a"), b"v"), DENIED);
    s.ok(&alice, put(&k("b"), b"alice"));
    s.ok(&alice, put(&k("c/9"), b"alice")); // inside [b, d)
    s.err(&alice, put(&k("d"), b"v"), DENIED); // range end is exclusive
                                               // prev_kv needs read permission too.
    s.err(&alice, Op::Put(PutRequest { key: k("b"), prev_kv: true, ..Default::default() }), DENIED);
    s.ok(&alice, delete(&k("c/9"), b""));
    s.err(&alice, Op::Delete(DeleteRangeRequest { key: k("b"), prev_kv: true, ..Default::default() }), DENIED);
    s.ok(&alice, txn(&k("a"), &k("b"), &k("a"))); // compare a (read), put b (write), else get a
    s.err(&alice, txn(&k("x"), &k("b"), &k("a")), DENIED); // compare on x
    s.err(&alice, txn(&k("a"), &k("a"), &k("a")), DENIED); // put a in the branch not taken
    s.err(&alice, txn(&k("a"), &k("b"), &k("b")), DENIED); // get b in the branch not taken
                                                           // KV as bob: no password, so no token: every call is anonymous.
    s.err(&bob, get(&k("c/1"), b""), USER_EMPTY);
    // carol: read from x on, readwrite c/.
    s.ok(&carol, get(&k("x"), b"\0"));
    s.ok(&carol, get(&k("zzzz"), b""));
    s.err(&carol, get(&k("w"), b""), DENIED);
    s.ok(&carol, get(&k("c/"), &prefix_end(&k("c/"))));
    s.ok(&carol, put(&k("c/3"), b"carol"));
    s.err(&carol, put(&k("x"), b"carol"), DENIED);
    // dave: no role at all.
    s.err(&dave(), get(&k("a"), b""), DENIED);
    s.err(&dave(), Op::AuthStatus, DENIED); // AuthStatus is for root only while auth is on

    // Compaction and leases.
    s.err(&alice, Op::Compact(Default::default()), DENIED);
    s.ok(&root, Op::Compact(CompactionRequest { revision: 3, physical: false }));
    s.ok(&alice, lease_grant(7003)); // granting needs no permission
    s.err(&alice, lease_ttl(7001), DENIED); // 3.5.35 checks read permission on attached keys
    s.err(&carol, lease_revoke(7001), DENIED); // y is attached, carol cannot write it
    s.ok(&carol, lease_revoke(7002)); // only c/2 attached: carol may
    s.ok(&root, lease_revoke(7001));
    s.ok(&alice, lease_revoke(7003)); // no keys attached

    // Watch: a refused watch comes back created and canceled at once (watch id -1), and its
    // cancel_reason is the whole Go status string, "rpc error: code = ... desc = ...".
    s.push(&alice, watch(&k("a"), b""), Expect::Has("canceled: false"));
    s.push(&alice, watch(&k("b"), b""), Expect::Has(WATCH_DENIED));
    s.push(&carol, watch(&k("x"), b"\0"), Expect::Has("canceled: false"));
    s.push(&carol, watch(&k("c/"), &prefix_end(&k("c/"))), Expect::Has("canceled: false"));
    s.push(&carol, watch(&k("w"), b"\0"), Expect::Has(WATCH_DENIED));
    s.push(&anon, watch(&k("a"), b""), Expect::Has("code = InvalidArgument desc = etcdserver: user name is empty"));
    s.push(&bogus, watch(&k("a"), b""), Expect::Has("code = Unauthenticated desc = etcdserver: invalid auth token"));
    s.push(&dave(), watch(&k("a"), b""), Expect::Has(WATCH_DENIED));

    // Maintenance and cluster. Status, alarm list and member list: any user. Hash, HashKV,
    // Defragment, Snapshot: root only, and etcd refuses with code Unknown and the auth
    // package's text ("auth: permission denied", "auth: user name is empty", "auth: invalid
    // auth token") where every other call has the gRPC error. MemberAdd: root only.
    for who in [&alice, &dave()] {
        for op in [Op::Status, Op::AlarmList, Op::MemberList] {
            s.push(who, op, Expect::Has("answered"));
        }
        for op in [Op::Hash, Op::HashKv, Op::Defragment, Op::Snapshot] {
            s.err(who, op, "auth: permission denied");
        }
    }
    for op in [Op::Status, Op::AlarmList, Op::MemberList, Op::MemberAdd] {
        s.err(&anon, op.clone(), USER_EMPTY);
        s.err(&bogus, op, INVALID_TOKEN);
    }
    for op in [Op::Hash, Op::HashKv, Op::Defragment, Op::Snapshot] {
        s.err(&anon, op.clone(), "auth: user name is empty");
        s.err(&bogus, op.clone(), "auth: invalid auth token");
        s.ok(&root, op);
    }
    s.err(&alice, Op::MemberAdd, DENIED);
    s.ok(&root, Op::Status);

    // Admin calls as a non-root user.
    s.err(&alice, user_add("eve", "x"), DENIED);
    s.err(&alice, Op::UserList, DENIED);
    s.ok(&alice, user_get("alice")); // one's own user
    s.ok(&alice, role_get("reader")); // one's own role
    s.err(&alice, role_get("rw"), DENIED);
    s.err(&alice, Op::AuthDisable, DENIED);
    s.err(&anon, Op::AuthDisable, USER_EMPTY);
    s.err(&alice, grant_perm("reader", Readwrite, &k("a"), b""), DENIED);

    // Permission changes apply to tokens already handed out.
    s.ok(&root, revoke_perm("reader", &k("a"), b""));
    s.err(&alice, get(&k("a"), b""), DENIED);
    s.ok(&root, grant_perm("reader", Read, &k("a"), b""));
    s.ok(&alice, get(&k("a"), b""));
    s.ok(&root, revoke_role("alice", "reader"));
    s.err(&alice, get(&k("a"), b""), DENIED);
    s.ok(&root, grant_role("alice", "reader"));
    s.ok(&alice, get(&k("a"), b""));
    // Deleting a role takes it from its users.
    s.ok(&root, role_delete("writer"));
    s.ok(&root, user_get("alice"));
    s.err(&alice, put(&k("b"), b"v"), DENIED);

    // Password change and user deletion invalidate the user's tokens.
    s.ok(&root, user_passwd("alice", "newpw"));
    s.err(&alice, get(&k("a"), b""), INVALID_TOKEN);
    s.err(&anon, authenticate("alice", "alicepw"), AUTH_FAILED);
    s.ok(&anon, authenticate("alice", "newpw"));
    s.ok(&alice, get(&k("a"), b""));
    s.ok(&root, user_delete("carol"));
    s.err(&carol, get(&k("x"), b""), INVALID_TOKEN);
    s.push(&carol, watch(&k("x"), b""), Expect::Has("desc = etcdserver: invalid auth token"));
    s.err(&anon, authenticate("carol", "carolpw"), AUTH_FAILED);

    // root and its role are protected while auth is on.
    s.err(&root, user_delete("root"), INVALID_MGMT);
    s.err(&root, revoke_role("root", "root"), INVALID_MGMT);
    s.err(&root, role_delete("root"), INVALID_MGMT);
    s.ok(&root, user_passwd("root", ROOT_PW)); // allowed, and it invalidates root's token
    s.err(&root, Op::AuthStatus, INVALID_TOKEN);
    s.ok(&anon, authenticate("root", ROOT_PW));
    s.ok(&root, Op::AuthStatus);

    // --- Auth off: tokens are ignored, anyone may do anything.
    s.err(&alice, Op::AuthDisable, DENIED);
    s.ok(&root, Op::AuthDisable);
    s.ok(&anon, put(&k("y"), b"anon"));
    s.ok(&alice, put(&k("y"), b"alice"));
    s.ok(&bogus, get(&k("y"), b""));
    s.ok(&anon, Op::AuthStatus);
    s.err(&anon, authenticate("root", ROOT_PW), NOT_ENABLED);
    s.ok(&anon, Op::AuthDisable); // again: no error

    // --- On again: tokens of before are gone.
    s.ok(&anon, Op::AuthEnable);
    s.err(&alice, get(&k("a"), b""), INVALID_TOKEN);
    s.ok(&anon, authenticate("alice", "newpw"));
    s.ok(&alice, get(&k("a"), b""));
    s.ok(&anon, authenticate("root", ROOT_PW));
    s.ok(&root, Op::AuthStatus);
    s.ok(&root, Op::AuthDisable);
    s
}

fn dave() -> Who {
    user("dave")
}

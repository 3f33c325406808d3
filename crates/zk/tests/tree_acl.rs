//! ACLs on writes and reads, with digest identities as addAuth gives them.

mod common;

use common::*;
use tally_zk::proto::perms::*;
use tally_zk::proto::*;
use tally_zk::tree::digest_id;
use tally_zk::{Write, ZkError};

fn digest(credentials: &str) -> Id {
    Id::new("digest", &digest_id(credentials.as_bytes()))
}

/// /locked: everything for bob, read for anyone.
fn locked() -> (Replica, Id) {
    let mut r = Replica::new();
    let bob = digest("bob:secret");
    let acl = vec![Acl::new(ALL, bob.clone()), Acl::new(READ, Id::anyone())];
    reply(r.txn(r.session, vec![bob.clone()], Write::One(create_with("/locked", OPEN, acl)))).unwrap();
    (r, bob)
}

#[test]
fn writes_need_their_permission() {
    let (mut r, bob) = locked();
    let s = r.session;
    let eve = digest("eve:secret");
    for op in [create("/locked/c", OPEN), set_data("/locked", b"x", -1), set_acl("/locked", Acl::open_unsafe(), -1)] {
        assert_eq!(reply(r.txn(s, vec![eve.clone()], Write::One(op.clone()))), Err(ZkError::NoAuth), "{op:?}");
        assert_eq!(reply(r.txn(s, vec![], Write::One(op.clone()))), Err(ZkError::NoAuth), "{op:?}");
    }
    // Read permission is enough for check.
    assert_eq!(reply(r.txn(s, vec![eve.clone()], Write::One(check("/locked", 0)))), Ok(Response::Empty));
    reply(r.txn(s, vec![bob.clone()], Write::One(create("/locked/c", OPEN)))).unwrap();
    // Delete asks the parent's ACL, not the node's.
    assert_eq!(reply(r.txn(s, vec![eve.clone()], Write::One(delete("/locked/c", -1)))), Err(ZkError::NoAuth));
    assert_eq!(reply(r.txn(s, vec![bob.clone()], Write::One(delete("/locked/c", -1)))), Ok(Response::Empty));
    assert!(reply(r.txn(s, vec![Id::new("super", "")], Write::One(set_data("/locked", b"x", -1)))).is_ok());
}

#[test]
fn reads_need_read() {
    let mut r = Replica::new();
    let bob = digest("bob:secret");
    let acl = vec![Acl::new(WRITE, Id::anyone()), Acl::new(READ, bob.clone())];
    reply(r.txn(r.session, vec![], Write::One(create_with("/private", OPEN, acl)))).unwrap();
    assert_eq!(r.state.get_data("/private", &[]), Err(ZkError::NoAuth));
    // exists checks no ACL in ZooKeeper 3.8.0 (seen in the differential test).
    assert!(r.state.exists("/private", &[]).is_ok());
    assert_eq!(r.state.get_children("/private", &[]), Err(ZkError::NoAuth));
    assert_eq!(r.state.get_all_children_number("/private", &[]), Err(ZkError::NoAuth));
    assert!(r.state.get_data("/private", std::slice::from_ref(&bob)).is_ok());
    assert!(r.state.get_children2("/private", &[bob]).is_ok());
    // A missing node is NoNode whatever the caller's identities.
    assert_eq!(r.state.get_data("/nothing", &[]), Err(ZkError::NoNode));
}

#[test]
fn get_acl_hides_digests_from_callers_without_admin() {
    let (mut r, bob) = locked();
    let (as_bob, _) = r.state.get_acl("/locked", std::slice::from_ref(&bob)).unwrap();
    assert_eq!(as_bob[0].id, bob);
    let (as_anyone, stat) = r.state.get_acl("/locked", &[]).unwrap();
    assert_eq!(as_anyone, vec![Acl::new(ALL, Id::new("digest", "bob:x")), Acl::new(READ, Id::anyone())]);
    assert_eq!(stat, r.stat("/locked"));
    // Neither READ nor ADMIN: NoAuth.
    r.write(create_with("/write-only", OPEN, vec![Acl::new(WRITE, Id::anyone())])).unwrap();
    assert_eq!(r.state.get_acl("/write-only", &[]), Err(ZkError::NoAuth));
}

#[test]
fn the_auth_scheme_becomes_the_callers_digest_identities() {
    let mut r = Replica::new();
    let bob = digest("bob:secret");
    let creator_all = vec![Acl::new(ALL, Id::new("auth", ""))];
    let op = create_with("/mine", OPEN, creator_all.clone());
    assert_eq!(reply(r.txn(r.session, vec![], Write::One(op.clone()))), Err(ZkError::InvalidAcl));
    let ip = Id::new("ip", "127.0.0.1");
    assert_eq!(reply(r.txn(r.session, vec![ip.clone()], Write::One(op.clone()))), Err(ZkError::InvalidAcl));
    reply(r.txn(r.session, vec![ip, bob.clone()], Write::One(op))).unwrap();
    assert_eq!(r.state.get_acl("/mine", &[bob]).unwrap().0, vec![Acl::new(ALL, digest("bob:secret"))]);
}

/// A client that ran the same addauth twice holds that identity once, as a ZooKeeper connection
/// does: `auth` expands to each identity once (seen in the differential test).
#[test]
fn the_auth_scheme_expands_each_identity_once() {
    let mut r = Replica::new();
    let (alice, bob) = (digest("alice:a"), digest("bob:b"));
    let acl = vec![Acl::new(ALL, Id::new("auth", "")), Acl::new(READ, Id::anyone())];
    let auth = vec![alice.clone(), bob.clone(), alice.clone(), alice.clone()];
    reply(r.txn(r.session, auth, Write::One(create_with("/mine", OPEN, acl)))).unwrap();
    let expected = vec![Acl::new(ALL, alice.clone()), Acl::new(ALL, bob), Acl::new(READ, Id::anyone())];
    assert_eq!(r.state.get_acl("/mine", &[alice]).unwrap().0, expected);
}

#[test]
fn invalid_acls_are_refused_before_the_parent_is_looked_up() {
    let mut r = Replica::new();
    assert_eq!(r.write(create_with("/missing/a", OPEN, vec![])), Err(ZkError::InvalidAcl));
    let bad = vec![Acl::new(ALL, Id::new("digest", "no-colon"))];
    assert_eq!(r.write(create_with("/a", OPEN, bad)), Err(ZkError::InvalidAcl));
    // Duplicates collapse.
    let twice = vec![Acl::new(ALL, Id::anyone()), Acl::new(ALL, Id::anyone())];
    r.write(create_with("/a", OPEN, twice)).unwrap();
    assert_eq!(r.state.get_acl("/a", &[]).unwrap().0, Acl::open_unsafe());
}

#[test]
fn ip_acls_match_the_callers_address() {
    let mut r = Replica::new();
    let acl = vec![Acl::new(ALL, Id::new("ip", "10.0.0.0/8"))];
    r.write(create_with("/net", OPEN, acl)).unwrap();
    assert!(r.state.get_data("/net", &[Id::new("ip", "10.9.8.7")]).is_ok());
    assert_eq!(r.state.get_data("/net", &[Id::new("ip", "11.0.0.1")]), Err(ZkError::NoAuth));
}

//! Creates: names, stats, parents, modes, and the order of ZooKeeper's checks.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::tree::{NodeKind, CONTAINER_OWNER};
use tally_zk::ZkError;

#[test]
fn create_sets_the_new_nodes_stat_from_the_entry() {
    let mut r = Replica::new();
    let (zxid, now) = (r.zxid, r.now);
    assert_eq!(r.create("/a", OPEN), Ok(Response::Create { path: "/a".into() }));
    let stat = r.stat("/a");
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (zxid, zxid, zxid));
    assert_eq!((stat.ctime, stat.mtime), (now, now));
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!((stat.ephemeral_owner, stat.data_length, stat.num_children), (0, 1, 0));
}

#[test]
fn create_bumps_the_parents_cversion_and_pzxid() {
    let mut r = Replica::new();
    r.mk("/p", OPEN);
    let first = r.zxid;
    r.mk("/p/a", OPEN);
    r.mk("/p/b", OPEN);
    let parent = r.stat("/p");
    assert_eq!((parent.cversion, parent.num_children, parent.pzxid), (2, 2, first + 1));
    // The parent's own data is untouched.
    assert_eq!((parent.version, parent.mzxid), (0, first - 1));
}

#[test]
fn delete_moves_pzxid_and_the_reported_cversion() {
    let mut r = Replica::new();
    r.mk("/p", OPEN);
    r.mk("/p/a", OPEN);
    let zxid = r.zxid;
    assert_eq!(r.write(delete("/p/a", -1)), Ok(Response::Empty));
    let parent = r.stat("/p");
    // ZooKeeper 3.8 reports creations plus deletions (2), but numbers sequential nodes by the
    // creations alone (1).
    assert_eq!((parent.cversion, parent.num_children, parent.pzxid), (2, 0, zxid));
    assert_eq!(r.mk("/p/s-", SEQUENTIAL), "/p/s-0000000001");
}

#[test]
fn sequential_names_take_the_parents_cversion() {
    let mut r = Replica::new();
    r.mk("/q", OPEN);
    assert_eq!(r.mk("/q/job-", SEQUENTIAL), "/q/job-0000000000");
    r.mk("/q/other", OPEN);
    assert_eq!(r.mk("/q/job-", SEQUENTIAL), "/q/job-0000000002");
    // Deletes do not reuse numbers: the cversion only grows.
    r.write(delete("/q/job-0000000000", -1)).unwrap();
    assert_eq!(r.mk("/q/job-", EPHEMERAL_SEQUENTIAL), "/q/job-0000000003");
    // A sequential node may end in a slash: the suffix is its name.
    assert_eq!(r.mk("/q/", SEQUENTIAL), "/q/0000000004");
}

#[test]
fn create2_answers_the_stat_too() {
    let mut r = Replica::new();
    let zxid = r.zxid;
    let reply = r.write(WriteOp::Create2(CreateRequest {
        path: "/a".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: OPEN,
    }));
    let Ok(Response::Create2 { path, stat }) = reply else { panic!("{reply:?}") };
    assert_eq!(path, "/a");
    assert_eq!((stat.czxid, stat.data_length), (zxid, 0));
    assert_eq!(stat, r.stat("/a"));
}

#[test]
fn null_data_stays_null_and_empty_stays_empty() {
    let mut r = Replica::new();
    r.write(create_with("/null", OPEN, Acl::open_unsafe())).unwrap();
    assert_eq!(r.state.get_data("/null", &[]).unwrap().0, None);
    r.write(set_data("/null", b"", -1)).unwrap();
    assert_eq!(r.state.get_data("/null", &[]).unwrap().0, Some(vec![]));
}

#[test]
fn the_parent_must_exist_and_the_node_must_not() {
    let mut r = Replica::new();
    assert_eq!(r.create("/a/b", OPEN), Err(ZkError::NoNode));
    r.mk("/a", OPEN);
    assert_eq!(r.create("/a", OPEN), Err(ZkError::NodeExists));
    assert_eq!(r.create("/zookeeper", OPEN), Err(ZkError::NodeExists));
    // A failed create changes nothing, the parent's cversion included: one creation under a
    // root that reported -1 when fresh.
    assert_eq!(r.stat("/").cversion, 0);
}

#[test]
fn ephemerals_have_no_children() {
    let mut r = Replica::new();
    r.mk("/e", EPHEMERAL);
    assert_eq!(r.create("/e/c", OPEN), Err(ZkError::NoChildrenForEphemerals));
    // NodeExists is checked first.
    assert_eq!(r.create("/e", OPEN), Err(ZkError::NodeExists));
    assert_eq!(r.stat("/e").ephemeral_owner, r.session);
}

#[test]
fn invalid_paths_are_bad_arguments() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    for path in ["a", "/a/", "//a", "/a/.", "/..", "/a\u{1}", "/\u{1f600}", "/a\0"] {
        assert_eq!(r.create(path, OPEN), Err(ZkError::BadArguments), "{path:?}");
    }
    // "/" is a valid path, and it exists.
    assert_eq!(r.create("/", OPEN), Err(ZkError::NodeExists));
    // The parent is looked up before the whole path is validated.
    assert_eq!(r.create("/missing/.", OPEN), Err(ZkError::NoNode));
}

#[test]
fn bad_flags_and_ttls_are_bad_arguments() {
    let mut r = Replica::new();
    assert_eq!(r.create("/a", 7), Err(ZkError::BadArguments));
    assert_eq!(r.create("/a", -1), Err(ZkError::BadArguments));
    // A TTL mode needs createTTL with a TTL in 1..=TTL_MAX.
    assert_eq!(r.create("/a", TTL), Err(ZkError::BadArguments));
    for (flags, ttl) in [(TTL, 0), (TTL, -5), (TTL, tally_zk::tree::TTL_MAX + 1), (OPEN, 100), (OPEN, -1)] {
        let op =
            WriteOp::CreateTtl(CreateTtlRequest { path: "/t".into(), data: None, acl: Acl::open_unsafe(), flags, ttl });
        assert_eq!(r.write(op), Err(ZkError::BadArguments), "flags {flags} ttl {ttl}");
    }
    assert!(r.state.node("/a").is_none() && r.state.node("/t").is_none());
}

/// A createTTL whose mode is no TTL mode, with a negative TTL, gets ZooKeeper 3.8's answer
/// wherever ZooKeeper answers: its prep accepts the TTL, so NoNode, NoAuth, NodeExists come first
/// (seen in the differential test). Where ZooKeeper's apply would throw (and stop the server), it
/// is BadArguments.
#[test]
fn create_ttl_without_a_ttl_mode_fails_every_other_check_first() {
    let mut r = Replica::new();
    let ttl = |path: &str, flags| {
        WriteOp::CreateTtl(CreateTtlRequest { path: path.into(), data: None, acl: Acl::open_unsafe(), flags, ttl: -1 })
    };
    assert_eq!(r.write(ttl("/zookeeper", OPEN)), Err(ZkError::NodeExists));
    assert_eq!(r.write(ttl("/missing/x", EPHEMERAL)), Err(ZkError::NoNode));
    assert_eq!(r.write(ttl("/zookeeper/config/x", OPEN)), Err(ZkError::NoAuth));
    assert_eq!(r.write(ttl("/t", OPEN)), Err(ZkError::BadArguments));
    assert!(r.state.node("/t").is_none());
}

#[test]
fn containers_and_ttl_nodes_carry_their_marks() {
    let mut r = Replica::new();
    let container = CreateRequest { path: "/c".into(), data: None, acl: Acl::open_unsafe(), flags: CONTAINER };
    assert!(matches!(r.write(WriteOp::CreateContainer(container)), Ok(Response::Create2 { .. })));
    assert_eq!(r.state.node("/c").unwrap().stat.ephemeral_owner, CONTAINER_OWNER);
    // Clients see no owner on containers and TTL nodes (ZooKeeper's getClientEphemeralOwner).
    assert_eq!(r.stat("/c").ephemeral_owner, 0);
    let ttl = CreateTtlRequest { path: "/t".into(), data: None, acl: Acl::open_unsafe(), flags: 6, ttl: 5000 };
    assert_eq!(
        r.write(WriteOp::CreateTtl(ttl)).unwrap(),
        Response::Create2 { path: "/t0000000001".into(), stat: r.stat("/t0000000001") }
    );
    assert_eq!(r.state.node("/t0000000001").unwrap().stat.ephemeral_owner, 0xff00_0000_0000_1388_u64 as i64);
    assert_eq!(r.stat("/t0000000001").ephemeral_owner, 0);
    assert_eq!(r.state.node("/t0000000001").unwrap().kind(), NodeKind::Ttl { ttl_ms: 5000 });
    // Containers and TTL nodes may have children.
    r.mk("/c/x", OPEN);
    r.mk("/t0000000001/x", OPEN);
    // Container flags on a plain create make a persistent node, as in ZooKeeper.
    r.mk("/plain", CONTAINER);
    assert_eq!(r.stat("/plain").ephemeral_owner, 0);
}

#[test]
fn create_triggers_created_then_parents_children_changed() {
    let mut r = Replica::new();
    let applied = r.txn(r.session, vec![], tally_zk::Write::One(create("/a", OPEN)));
    assert_eq!(events(&applied), [ev("/a", EventType::NodeCreated), ev("/", EventType::NodeChildrenChanged)]);
    let failed = r.txn(r.session, vec![], tally_zk::Write::One(create("/a", OPEN)));
    assert!(failed.events.is_empty());
}

#[test]
fn a_closed_sessions_writes_are_session_expired() {
    let mut r = Replica::new();
    let other = r.open_session();
    r.close_session(other);
    for op in [create("/a", EPHEMERAL), create("/a", OPEN), set_data("/", b"", -1), delete("/zookeeper", -1)] {
        assert_eq!(tally_zk::tree::Outcome::Reply(Err(ZkError::SessionExpired)), {
            r.txn(other, vec![], tally_zk::Write::One(op)).outcome
        });
    }
    // Bad flags are refused before the session is looked at.
    assert_eq!(reply(r.txn(other, vec![], tally_zk::Write::One(create("/a", 9)))), Err(ZkError::BadArguments));
}

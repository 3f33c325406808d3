//! delete, setData, setACL and check: versions, emptiness, ZooKeeper's own nodes, events.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::Write;
use tally_zk::ZkError;

#[test]
fn delete_needs_a_matching_version_and_no_children() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    r.mk("/a/b", OPEN);
    assert_eq!(r.write(delete("/a", -1)), Err(ZkError::NotEmpty));
    assert_eq!(r.write(delete("/a/b", 1)), Err(ZkError::BadVersion));
    // The version is checked before the children.
    assert_eq!(r.write(delete("/a", 3)), Err(ZkError::BadVersion));
    assert_eq!(r.write(delete("/a/b", 0)), Ok(Response::Empty));
    assert_eq!(r.write(delete("/a/b", -1)), Err(ZkError::NoNode));
    assert_eq!(r.write(delete("/a", 0)), Ok(Response::Empty));
    assert!(r.state.node("/a").is_none());
}

#[test]
fn zookeepers_own_nodes_cannot_be_deleted() {
    let mut r = Replica::new();
    for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(r.write(delete(path, -1)), Err(ZkError::BadArguments), "{path}");
    }
    assert_eq!(r.write(delete("nope", -1)), Err(ZkError::BadArguments));
    assert_eq!(r.write(delete("/missing/child", -1)), Err(ZkError::NoNode));
}

#[test]
fn delete_triggers_deleted_then_parents_children_changed() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    r.mk("/a/b", OPEN);
    let applied = r.txn(r.session, vec![], Write::One(delete("/a/b", -1)));
    assert_eq!(events(&applied), [ev("/a/b", EventType::NodeDeleted), ev("/a", EventType::NodeChildrenChanged)]);
}

#[test]
fn set_data_bumps_version_mzxid_and_mtime_only() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let before = r.stat("/a");
    let (zxid, now) = (r.zxid, r.now);
    let Ok(Response::Stat(stat)) = r.write(set_data("/a", b"hello", 0)) else { panic!() };
    assert_eq!(stat, r.stat("/a"));
    assert_eq!((stat.version, stat.mzxid, stat.mtime, stat.data_length), (1, zxid, now, 5));
    assert_eq!((stat.czxid, stat.ctime, stat.pzxid, stat.cversion), (before.czxid, before.ctime, before.pzxid, 0));
    assert_eq!(r.write(set_data("/a", b"x", 0)), Err(ZkError::BadVersion));
    assert_eq!(r.write(set_data("/a", b"x", -1)).map(|_| r.stat("/a").version), Ok(2));
    assert_eq!(r.state.get_data("/a", &[]).unwrap().0, Some(b"x".to_vec()));
}

#[test]
fn set_data_checks_the_path_and_the_node() {
    let mut r = Replica::new();
    assert_eq!(r.write(set_data("/a/", b"", -1)), Err(ZkError::BadArguments));
    assert_eq!(r.write(set_data("/missing", b"", -1)), Err(ZkError::NoNode));
}

#[test]
fn set_data_triggers_data_changed() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let applied = r.txn(r.session, vec![], Write::One(set_data("/a", b"v", -1)));
    assert_eq!(events(&applied), [ev("/a", EventType::NodeDataChanged)]);
}

#[test]
fn set_acl_bumps_aversion_and_triggers_nothing() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let applied = r.txn(r.session, vec![], Write::One(set_acl("/a", Acl::read_unsafe(), 0)));
    assert_eq!(reply(applied.clone()).map(|_| r.stat("/a").aversion), Ok(1));
    assert!(applied.events.is_empty());
    assert_eq!(r.state.get_acl("/a", &[]).unwrap().0, Acl::read_unsafe());
    // No ADMIN any more.
    assert_eq!(r.write(set_acl("/a", Acl::open_unsafe(), 1)), Err(ZkError::NoAuth));
}

#[test]
fn set_acl_checks_the_version_and_the_acl() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    assert_eq!(r.write(set_acl("/a", Acl::open_unsafe(), 5)), Err(ZkError::BadVersion));
    assert_eq!(r.write(set_acl("/a", vec![], -1)), Err(ZkError::InvalidAcl));
    // The ACL is checked before the node is looked up.
    assert_eq!(r.write(set_acl("/missing", vec![], -1)), Err(ZkError::InvalidAcl));
    assert_eq!(r.write(set_acl("/missing", Acl::open_unsafe(), -1)), Err(ZkError::NoNode));
    // /zookeeper/config starts at aversion -1, so its first setACL makes 0.
    assert_eq!(r.write(set_acl("/zookeeper/config", Acl::open_unsafe(), -1)), Err(ZkError::NoAuth));
    assert_eq!(r.stat("/zookeeper/config").aversion, -1);
}

#[test]
fn check_compares_the_version_and_changes_nothing() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let before = r.state.clone();
    assert_eq!(r.write(check("/a", 0)), Ok(Response::Empty));
    assert_eq!(r.write(check("/a", 1)), Err(ZkError::BadVersion));
    assert_eq!(r.write(check("/b", -1)), Err(ZkError::NoNode));
    assert_eq!(r.state.node("/a"), before.node("/a"));
    assert_eq!(r.state.node("/"), before.node("/"));
}

//! Containers and TTL nodes: what the leader lists, and what DeleteIfExpired still deletes.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::tree::{Outcome, ZkCommand};
use tally_zk::ZkError;

fn container(r: &mut Replica, path: &str) {
    let op =
        WriteOp::CreateContainer(CreateRequest { path: path.into(), data: None, acl: Acl::open_unsafe(), flags: 4 });
    r.write(op).unwrap();
}

fn ttl_node(r: &mut Replica, path: &str, ttl: i64) {
    let op =
        WriteOp::CreateTtl(CreateTtlRequest { path: path.into(), data: None, acl: Acl::open_unsafe(), flags: 5, ttl });
    r.write(op).unwrap();
}

fn delete_if_expired(r: &mut Replica, path: &str) -> Result<Response, ZkError> {
    reply(r.apply(ZkCommand::DeleteIfExpired { path: path.into() }))
}

#[test]
fn a_container_expires_once_emptied_after_having_had_a_child() {
    let mut r = Replica::new();
    container(&mut r, "/c");
    assert!(r.state.expired_nodes(i64::MAX).is_empty(), "a fresh container is kept");
    r.mk("/c/x", OPEN);
    assert!(r.state.expired_nodes(r.now).is_empty(), "a container with a child is kept");
    r.write(delete("/c/x", -1)).unwrap();
    assert_eq!(r.state.expired_nodes(r.now), ["/c"]);
    let applied = r.apply(ZkCommand::DeleteIfExpired { path: "/c".into() });
    assert_eq!(applied.outcome, Outcome::Reply(Ok(Response::Empty)));
    assert_eq!(events(&applied), [ev("/c", EventType::NodeDeleted), ev("/", EventType::NodeChildrenChanged)]);
    assert!(r.state.node("/c").is_none());
}

#[test]
fn a_ttl_node_expires_when_empty_and_unmodified_for_longer_than_its_ttl() {
    let mut r = Replica::new();
    ttl_node(&mut r, "/t", 5000);
    let mtime = r.stat("/t").mtime;
    assert!(r.state.expired_nodes(mtime + 5000).is_empty());
    assert_eq!(r.state.expired_nodes(mtime + 5001), ["/t"]);
    r.write(set_data("/t", b"touch", -1)).unwrap();
    let mtime = r.stat("/t").mtime;
    assert!(r.state.expired_nodes(mtime + 5000).is_empty(), "setData restarts the TTL");
    r.mk("/t/child", OPEN);
    assert!(r.state.expired_nodes(i64::MAX).is_empty(), "a TTL node with children is kept");
}

#[test]
fn delete_if_expired_checks_the_rule_again_at_its_own_time() {
    let mut r = Replica::new();
    ttl_node(&mut r, "/t", 60_000);
    // Proposed too early (the entry's time is ~1 s after the create): refused.
    assert_eq!(delete_if_expired(&mut r, "/t"), Err(ZkError::BadVersion));
    r.now += 120_000;
    r.mk("/t/c", OPEN);
    assert_eq!(delete_if_expired(&mut r, "/t"), Err(ZkError::NotEmpty));
    r.write(delete("/t/c", -1)).unwrap();
    r.now += 120_000;
    assert_eq!(delete_if_expired(&mut r, "/t"), Ok(Response::Empty));
    assert_eq!(delete_if_expired(&mut r, "/t"), Err(ZkError::NoNode));
    r.mk("/plain", OPEN);
    assert_eq!(delete_if_expired(&mut r, "/plain"), Err(ZkError::BadVersion));
}

#[test]
fn expired_nodes_come_in_path_order() {
    let mut r = Replica::new();
    ttl_node(&mut r, "/b", 1);
    container(&mut r, "/c");
    r.mk("/c/x", OPEN);
    r.write(delete("/c/x", -1)).unwrap();
    ttl_node(&mut r, "/a", 1);
    assert_eq!(r.state.expired_nodes(r.now + 10), ["/a", "/b", "/c"]);
}

//! multi: all ops or none, each seeing the ones before, with ZooKeeper's per-op result codes.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::tree::Outcome;
use tally_zk::ZkError;

#[test]
fn a_successful_multi_answers_each_ops_result_in_order() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let applied = r.multi(vec![
        create("/a/b", OPEN),
        create("/a/s-", SEQUENTIAL),
        set_data("/a", b"v", 0),
        check("/a", 1),
        delete("/a/b", 0),
        WriteOp::Create2(CreateRequest { path: "/c".into(), data: None, acl: Acl::open_unsafe(), flags: 0 }),
    ]);
    let stat_a = r.stat("/a");
    let stat_c = r.stat("/c");
    assert_eq!(
        applied.outcome,
        Outcome::Reply(Ok(Response::Multi(vec![
            OpResult::Create { path: "/a/b".into() },
            OpResult::Create { path: "/a/s-0000000001".into() },
            // /a's Stat when the setData ran: two children then, one after the delete (which
            // also counts in the reported cversion).
            OpResult::SetData { stat: Stat { num_children: 2, cversion: 2, ..stat_a } },
            OpResult::Check,
            OpResult::Delete,
            OpResult::Create2 { path: "/c".into(), stat: stat_c },
        ])))
    );
    assert_eq!(r.children("/a"), ["s-0000000001"]);
}

#[test]
fn all_ops_share_the_entrys_zxid_and_time() {
    let mut r = Replica::new();
    let (zxid, now) = (r.zxid, r.now);
    r.multi(vec![create("/a", OPEN), create("/a/b", OPEN)]);
    for path in ["/a", "/a/b"] {
        let stat = r.stat(path);
        assert_eq!((stat.czxid, stat.ctime), (zxid, now));
    }
    assert_eq!(r.stat("/a").pzxid, zxid);
}

#[test]
fn a_failing_op_undoes_the_ones_before() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let before = r.state.clone();
    let applied = r.multi(vec![
        create("/a/new", OPEN),
        set_data("/a", b"v", -1),
        delete("/a", -1), // NotEmpty: /a/new now exists
        create("/x", OPEN),
    ]);
    assert_eq!(
        applied.outcome,
        Outcome::Reply(Ok(Response::Multi(vec![
            OpResult::Error { err: 0 },
            OpResult::Error { err: 0 },
            OpResult::Error { err: ZkError::NotEmpty.code() },
            OpResult::Error { err: ZkError::RuntimeInconsistency.code() },
        ])))
    );
    assert!(applied.events.is_empty());
    // Nothing changed but the applied index.
    assert_eq!(r.state.node("/a"), before.node("/a"));
    assert_eq!(r.state.node("/"), before.node("/"));
    assert!(r.state.node("/a/new").is_none() && r.state.node("/x").is_none());
    assert_eq!(r.state.node_count(), before.node_count());
}

#[test]
fn a_failed_multi_does_not_consume_sequence_numbers() {
    let mut r = Replica::new();
    r.mk("/q", OPEN);
    r.multi(vec![create("/q/s-", SEQUENTIAL), check("/q", 7)]);
    assert_eq!(r.mk("/q/s-", SEQUENTIAL), "/q/s-0000000000");
}

#[test]
fn later_ops_see_earlier_ones() {
    let mut r = Replica::new();
    let applied = r.multi(vec![create("/a", OPEN), create("/a/b", OPEN), delete("/a/b", -1), delete("/a", -1)]);
    assert!(matches!(applied.outcome, Outcome::Reply(Ok(Response::Multi(ref results))) if results.len() == 4));
    assert!(r.state.node("/a").is_none());
    assert_eq!(
        events(&applied),
        [
            ev("/a", EventType::NodeCreated),
            ev("/", EventType::NodeChildrenChanged),
            ev("/a/b", EventType::NodeCreated),
            ev("/a", EventType::NodeChildrenChanged),
            ev("/a/b", EventType::NodeDeleted),
            ev("/a", EventType::NodeChildrenChanged),
            ev("/a", EventType::NodeDeleted),
            ev("/", EventType::NodeChildrenChanged),
        ]
    );
    // One creation and one deletion under the root, which reported -1 when fresh.
    assert_eq!(r.stat("/").cversion, 1);
}

#[test]
fn the_first_op_failing_makes_every_other_runtime_inconsistency() {
    let mut r = Replica::new();
    let applied = r.multi(vec![check("/missing", -1), create("/a", OPEN)]);
    assert_eq!(
        reply(applied),
        Ok(Response::Multi(vec![
            OpResult::Error { err: ZkError::NoNode.code() },
            OpResult::Error { err: ZkError::RuntimeInconsistency.code() },
        ]))
    );
}

#[test]
fn an_empty_multi_succeeds() {
    let mut r = Replica::new();
    assert_eq!(reply(r.multi(vec![])), Ok(Response::Multi(vec![])));
}

#[test]
fn set_acl_cannot_be_part_of_a_multi() {
    let mut r = Replica::new();
    assert_eq!(reply(r.multi(vec![set_acl("/", Acl::open_unsafe(), -1)])), Err(ZkError::MarshallingError));
}

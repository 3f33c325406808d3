//! Sessions: ids from the log index, ephemerals deleted on close in path order with their events.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::tree::{session_id, Outcome, ZkCommand};
use tally_zk::ZkError;

#[test]
fn a_sessions_id_is_its_entrys_index_under_the_tag() {
    let mut r = Replica::new();
    let zxid = r.zxid;
    let session = r.open_session();
    assert_eq!(session, 0x0100_0000_0000_0000 | zxid);
    assert_eq!(session, session_id(zxid));
    let recorded = r.state.session(session).unwrap();
    assert_eq!((recorded.timeout_ms, recorded.password), (10_000, [9; 16]));
}

#[test]
fn closing_a_session_deletes_its_ephemerals_in_path_order() {
    let mut r = Replica::new();
    let other = r.open_session();
    r.mk("/b", OPEN);
    r.mk("/b/e2", EPHEMERAL);
    r.mk("/a", EPHEMERAL);
    r.mk("/b/e1", EPHEMERAL);
    reply(r.txn(other, vec![], tally_zk::Write::One(create("/b/theirs", EPHEMERAL)))).unwrap();
    r.mk("/b/kept", OPEN);
    assert_eq!(r.state.ephemerals(r.session).collect::<Vec<_>>(), ["/a", "/b/e1", "/b/e2"]);

    let zxid = r.zxid;
    let applied = r.close_session(r.session);
    assert_eq!(applied.outcome, Outcome::Reply(Ok(Response::Empty)));
    assert_eq!(
        events(&applied),
        [
            ev("/a", EventType::NodeDeleted),
            ev("/", EventType::NodeChildrenChanged),
            ev("/b/e1", EventType::NodeDeleted),
            ev("/b", EventType::NodeChildrenChanged),
            ev("/b/e2", EventType::NodeDeleted),
            ev("/b", EventType::NodeChildrenChanged),
        ]
    );
    assert_eq!(r.children("/b"), ["kept", "theirs"]);
    assert_eq!(r.stat("/b").pzxid, zxid);
    assert!(r.state.session(r.session).is_none());
    assert_eq!(r.state.ephemerals(r.session).count(), 0);
    assert_eq!(r.state.ephemerals(other).collect::<Vec<_>>(), ["/b/theirs"]);
}

#[test]
fn closing_an_unknown_or_closed_session_does_nothing() {
    let mut r = Replica::new();
    r.mk("/e", EPHEMERAL);
    let applied = r.close_session(0x0100_0000_0000_0999);
    assert_eq!((applied.outcome, applied.events.len()), (Outcome::Reply(Ok(Response::Empty)), 0));
    assert_eq!((r.state.sessions().count(), r.state.node_count()), (1, 5));
    assert_eq!(r.close_session(r.session).events.len(), 2);
    assert_eq!(r.close_session(r.session).events.len(), 0);
    assert_eq!((r.state.sessions().count(), r.state.node_count()), (0, 4));
}

#[test]
fn an_ephemeral_for_a_closed_session_is_session_expired() {
    let mut r = Replica::new();
    let session = r.session;
    r.close_session(session);
    assert_eq!(r.create("/e", EPHEMERAL), Err(ZkError::SessionExpired));
    assert!(r.state.node("/e").is_none());
}

#[test]
fn an_index_already_applied_is_skipped() {
    let mut r = Replica::new();
    let before = r.state.clone();
    let command = ZkCommand::CreateSession { timeout_ms: 1, password: [0; 16] };
    let applied = r.state.apply(r.zxid - 1, r.now, &command);
    assert_eq!(applied.outcome, Outcome::AlreadyApplied);
    assert_eq!(r.state, before);
}

#[test]
fn sessions_are_listed_by_id() {
    let mut r = Replica::new();
    let second = r.open_session();
    let ids: Vec<i64> = r.state.sessions().map(|(id, _)| id).collect();
    assert_eq!(ids, [r.session, second]);
}

#[test]
fn attaching_changes_no_node_and_needs_a_live_session() {
    let mut r = Replica::new();
    let session = r.open_session();
    let root = r.state.node("/").unwrap().stat;
    let applied = r.apply(ZkCommand::Attach { session, owner: 42 });
    assert_eq!((applied.outcome, applied.events.len()), (Outcome::Reply(Ok(Response::Empty)), 0));
    assert_eq!(r.state.node("/").unwrap().stat, root);
    assert!(r.state.session(session).is_some());
    r.apply(ZkCommand::CloseSession { session });
    let gone = r.apply(ZkCommand::Attach { session, owner: 42 }).outcome;
    assert_eq!(gone, Outcome::Reply(Err(ZkError::SessionExpired)));
}

#[test]
fn a_write_from_the_connection_a_session_moved_away_from_is_session_moved() {
    use tally_zk::Write;
    let mut r = Replica::new();
    let session = r.open_session();
    let (first, second) = (7, 42);
    // The creating connection writes; the session then moves to another connection.
    reply(r.txn_on(session, first, vec![], Write::One(create("/a", OPEN)))).unwrap();
    r.apply(ZkCommand::Attach { session, owner: second });

    let late = r.txn_on(session, first, vec![], Write::One(create("/b", OPEN)));
    assert_eq!(reply(late), Err(ZkError::SessionMoved));
    let late_multi = r.txn_on(session, first, vec![], Write::Multi(vec![create("/b", OPEN), create("/c", OPEN)]));
    let errors = [ZkError::SessionMoved.code(), ZkError::RuntimeInconsistency.code()];
    assert_eq!(reply(late_multi), Ok(Response::Multi(errors.map(|err| OpResult::Error { err }).to_vec())));
    assert!(r.state.node("/b").is_none() && r.state.node("/c").is_none());

    // The connection it moved to, and a write logged before connections were numbered, apply.
    reply(r.txn_on(session, second, vec![], Write::One(create("/b", OPEN)))).unwrap();
    reply(r.txn_on(session, 0, vec![], Write::One(create("/c", OPEN)))).unwrap();
    assert_eq!(r.state.session(session).unwrap().owner, second);
}

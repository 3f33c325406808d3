//! ZooKeeper's tree as part of the replicated state machine: its commands apply at their log
//! index (the zxid), their answers are cached for retries like etcd's, and snapshots carry the
//! tree, its sessions and those cached answers.

use tally_mvcc::{CommandResponse, MvccError, StateMachine, StoreConfig};
use tally_proto::tally_v1::{command::Op, Command, ZkCommand as LogZk};
use tally_zk::proto::{Acl, CreateRequest, Response, WriteOp};
use tally_zk::{Outcome, Write, ZkCommand, ZkError};

fn zk(client_id: u64, seq: u64, command: &ZkCommand) -> Command {
    let op = LogZk { command: command.encode().into(), now_ms: 1_700_000_000_000, ..Default::default() };
    Command { client_id, seq, op: Some(Op::Zk(op)), ..Default::default() }
}

/// A write a connection pipelined (`pipelined`: it applies only right after its previous one).
fn pipelined(client_id: u64, seq: u64, command: &ZkCommand) -> Command {
    let op =
        LogZk { command: command.encode().into(), now_ms: 1_700_000_000_000, pipelined: true, ..Default::default() };
    Command { client_id, seq, op: Some(Op::Zk(op)), ..Default::default() }
}

fn create(session: i64, path: &str) -> ZkCommand {
    let request = CreateRequest { path: path.into(), data: Some(b"v".to_vec()), acl: Acl::open_unsafe(), flags: 0 };
    ZkCommand::Txn { session, owner: 0, auth: Vec::new(), write: Write::One(WriteOp::Create(request)) }
}

fn outcome(response: &CommandResponse) -> &Outcome {
    match response {
        CommandResponse::Zk(applied) => &applied.outcome,
        other => panic!("not a ZooKeeper answer: {other:?}"),
    }
}

#[test]
fn zookeeper_commands_apply_at_their_index_and_survive_a_snapshot() {
    let mut sm = StateMachine::default();
    let opened = sm.apply(5, &zk(1, 1, &ZkCommand::CreateSession { timeout_ms: 10_000, password: [7; 16] }));
    let Outcome::SessionCreated { session } = *outcome(&opened.response) else { panic!("{opened:?}") };
    let created = sm.apply(6, &zk(1, 2, &create(session, "/app")));
    assert_eq!(outcome(&created.response), &Outcome::Reply(Ok(Response::Create { path: "/app".into() })));
    let CommandResponse::Zk(applied) = &created.response else { unreachable!() };
    assert!(!applied.events.is_empty(), "a create fires watches");
    assert_eq!(sm.zk.exists("/app", &[]).map(|s| s.czxid), Ok(6), "the zxid is the log index");

    // A retry of the same request gets the cached answer, and fires nothing again.
    let retried = sm.apply(7, &zk(1, 2, &create(session, "/app")));
    assert!(!retried.fresh);
    assert_eq!(outcome(&retried.response), outcome(&created.response));
    let CommandResponse::Zk(again) = &retried.response else { unreachable!() };
    assert!(again.events.is_empty());
    // A new request for the same path is refused by the tree.
    let twice = sm.apply(8, &zk(1, 3, &create(session, "/app")));
    assert_eq!(outcome(&twice.response), &Outcome::Reply(Err(ZkError::NodeExists)));

    let restored = StateMachine::restore(&sm.snapshot()).expect("restore");
    assert_eq!(restored, sm);
    assert_eq!(restored.zk.hash(), sm.zk.hash());
    assert_eq!(restored.sessions().get(1).map(|s| s.seq), Some(3));
}

/// A ZooKeeper connection's pipelined writes apply in the order sent and without a gap: one
/// that arrives after a later one, or after a lost one, is refused unexecuted.
#[test]
fn a_connections_pipelined_writes_apply_in_order_and_without_a_gap() {
    let mut sm = StateMachine::default();
    let opened = sm.apply(1, &zk(1, 1, &ZkCommand::CreateSession { timeout_ms: 10_000, password: [7; 16] }));
    let Outcome::SessionCreated { session } = *outcome(&opened.response) else { panic!("{opened:?}") };
    let connection = 99;
    assert!(sm.apply(2, &pipelined(connection, 1, &create(session, "/a"))).fresh);
    assert!(sm.apply(3, &pipelined(connection, 2, &create(session, "/b"))).fresh);

    // seq 3 was lost: 4 would apply without it.
    let skipped = sm.apply(4, &pipelined(connection, 4, &create(session, "/d")));
    assert_eq!((skipped.response, skipped.fresh), (CommandResponse::Error(MvccError::StaleSequence), false));
    assert!(sm.zk.exists("/d", &[]).is_err(), "a write after a gap is not executed");
    // ...and an older write arriving late is not executed either.
    let late = sm.apply(5, &pipelined(connection, 1, &create(session, "/late")));
    assert_eq!(late.response, CommandResponse::Error(MvccError::StaleSequence));
    assert!(sm.zk.exists("/late", &[]).is_err());
    // The next one in order applies; the refusals recorded nothing.
    assert!(sm.apply(6, &pipelined(connection, 3, &create(session, "/c"))).fresh);
    assert_eq!(sm.sessions().get(connection).map(|s| s.seq), Some(3));
    // Writes not pipelined may skip sequence numbers, as before (a client's reads take some).
    assert!(sm.apply(7, &zk(connection, 9, &create(session, "/e"))).fresh);
}

/// A table with room for 2 clients, a session, and connection 99 whose write #1 (`/a`) applied
/// before two other clients' writes evicted it (the least recently used).
fn evicted_connection() -> (StateMachine, i64, u64) {
    let mut sm = StateMachine::new(StoreConfig { sessions_max: 2, ..StoreConfig::default() });
    let opened = sm.apply(1, &zk(1, 1, &ZkCommand::CreateSession { timeout_ms: 10_000, password: [7; 16] }));
    let Outcome::SessionCreated { session } = *outcome(&opened.response) else { panic!("{opened:?}") };
    let connection = 99;
    assert!(sm.apply(2, &pipelined(connection, 1, &create(session, "/a"))).fresh);
    assert!(sm.apply(3, &pipelined(100, 1, &create(session, "/x"))).fresh);
    assert!(sm.apply(4, &pipelined(101, 1, &create(session, "/y"))).fresh);
    assert!(sm.sessions().get(connection).is_none(), "evicted");
    (sm, session, connection)
}

/// A connection whose record the exactly-once table evicted (other clients filled it) is not
/// known there any more: its next pipelined write may follow one that was lost, so only its
/// first (seq 1) is taken from a connection the table does not know.
#[test]
fn an_evicted_connections_write_after_a_lost_one_is_refused() {
    let (mut sm, session, connection) = evicted_connection();

    // seq 2 was lost: 3 would apply without it.
    let skipped = sm.apply(5, &pipelined(connection, 3, &create(session, "/c")));
    assert_eq!((skipped.response, skipped.fresh), (CommandResponse::Error(MvccError::StaleSequence), false));
    assert!(sm.zk.exists("/c", &[]).is_err(), "a write after a gap is not executed");
    // A new connection's first write applies, and a write not pipelined is taken as it comes.
    assert!(sm.apply(6, &pipelined(102, 1, &create(session, "/d"))).fresh);
    assert!(sm.apply(7, &zk(connection, 9, &create(session, "/e"))).fresh);
}

/// A retried first write of a connection the table does not know may repeat one that applied
/// before the connection's record was evicted: refused, where a first attempt applies.
#[test]
fn an_evicted_connections_retry_is_refused() {
    let (mut sm, session, connection) = evicted_connection();

    let mut retry = pipelined(connection, 1, &create(session, "/a"));
    let Some(Op::Zk(z)) = &mut retry.op else { unreachable!() };
    z.retried = true;
    let again = sm.apply(5, &retry);
    assert_eq!((again.response, again.fresh), (CommandResponse::Error(MvccError::StaleSequence), false));
    // While the table knows the connection, a retry gets the first attempt's answer.
    let mut known_retry = pipelined(101, 1, &create(session, "/y"));
    let Some(Op::Zk(z)) = &mut known_retry.op else { unreachable!() };
    z.retried = true;
    let cached = sm.apply(6, &known_retry);
    assert!(!cached.fresh);
    assert_eq!(outcome(&cached.response), &Outcome::Reply(Ok(Response::Create { path: "/y".into() })));
}

#[test]
fn a_command_that_does_not_decode_is_a_marshalling_error() {
    let mut sm = StateMachine::default();
    let bad = Command {
        op: Some(Op::Zk(LogZk { command: vec![0xff, 1, 2].into(), now_ms: 0, ..Default::default() })),
        ..Default::default()
    };
    assert_eq!(outcome(&sm.apply(1, &bad).response), &Outcome::Reply(Err(ZkError::MarshallingError)));
}

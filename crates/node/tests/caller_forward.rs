//! A follower's caller that forwarded its command to the leader itself (the server's
//! `NodeHandle::propose_now`) hands the node only a request to answer it: answered when the
//! entry applies, from the client's session if it applied first, NotLeader if the leader it
//! went to is no longer the one this member follows.

mod support;

use support::{start_node, Answer, Answers, TestHost};
use tally_consensus::Consensus;
use tally_mvcc::{CommandResponse, StateMachine};
use tally_node::members::Members;
use tally_node::{encode_snapshot, Node, ProposeOutcome};
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};
use tally_raft::{Message, MessageBody, Snapshot, SnapshotMeta};
use tally_storage::simfs::SimFs;

fn put(client_id: u64, seq: u64) -> Command {
    let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
    Command { client_id, seq, op: Some(Op::Put(put)), ..Default::default() }
}

/// Member 2 of three, following member 1 in term 2.
fn follower() -> Node<TestHost> {
    let mut node = start_node(&SimFs::new(), &[1, 2, 3], 2, 1_000_000);
    node.step(Message { from: 1, to: 2, term: 2, body: MessageBody::Heartbeat { commit: 0, round: 1 } }.into());
    node.handle_readies();
    node
}

/// The leader applies `cmd` at index 10 and sends the follower its snapshot; returns what
/// the leader's apply answered.
fn apply_by_snapshot(node: &mut Node<TestHost>, cmd: &Command) -> CommandResponse {
    let mut leader_sm = StateMachine::default();
    let applied = leader_sm.apply(10, cmd);
    let conf = node.engine().conf_state().clone();
    let data = encode_snapshot(&Members::default(), &leader_sm.copy_for_snapshot());
    let snapshot = Snapshot { meta: SnapshotMeta { index: 10, term: 2, conf }, data };
    node.step(Message { from: 1, to: 2, term: 2, body: MessageBody::Snapshot { snapshot } }.into());
    node.handle_readies();
    applied.response
}

fn applied(answers: &Answers) -> CommandResponse {
    let answers = answers.borrow();
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    match &answers[0] {
        ProposeOutcome::Applied(response) => response.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_caller_is_answered_when_its_entry_applies() {
    let mut node = follower();
    let answers = Answers::default();
    node.await_forwarded((42, 1), 1, Answer(answers.clone()));
    node.flush();
    assert!(node.host().forwarded.is_empty(), "the caller forwarded it, not the node");
    assert!(answers.borrow().is_empty(), "nothing applied yet");
    let want = apply_by_snapshot(&mut node, &put(42, 1));
    assert_eq!(applied(&answers), want);
}

#[test]
fn a_caller_whose_entry_applied_before_its_await_is_answered_from_its_session() {
    let mut node = follower();
    let want = apply_by_snapshot(&mut node, &put(42, 1));
    let answers = Answers::default();
    node.await_forwarded((42, 1), 1, Answer(answers.clone()));
    assert_eq!(applied(&answers), want);
}

#[test]
fn a_caller_that_forwarded_to_a_deposed_leader_is_sent_to_the_new_one() {
    let mut node = follower();
    node.step(Message { from: 3, to: 2, term: 3, body: MessageBody::Heartbeat { commit: 0, round: 1 } }.into());
    node.handle_readies();
    let answers = Answers::default();
    node.await_forwarded((42, 1), 1, Answer(answers.clone()));
    match answers.borrow().as_slice() {
        [ProposeOutcome::NotLeader(Some(3))] => {}
        other => panic!("{other:?}"),
    };
}

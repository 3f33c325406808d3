//! A follower whose pending requests a leader's snapshot covers answers them from the
//! snapshot's client sessions (found by the whole-node simulator, seeds 3790 and 3938).

mod support;

use support::{start_node, Answer, Answers};
use tally_consensus::Consensus;
use tally_mvcc::{CommandResponse, StateMachine};
use tally_node::members::Members;
use tally_node::{encode_snapshot, ProposeOutcome};
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};
use tally_raft::{Message, MessageBody, Snapshot, SnapshotMeta};
use tally_storage::simfs::SimFs;

fn put(client_id: u64, seq: u64) -> Command {
    let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
    Command { client_id, seq, op: Some(Op::Put(put)), ..Default::default() }
}

#[test]
fn a_request_covered_by_a_leaders_snapshot_is_answered_from_its_sessions() {
    let mut node = start_node(&SimFs::new(), &[1, 2, 3], 2, 1_000_000);
    // Member 1 leads term 2: the follower learns it from a heartbeat.
    node.step(Message { from: 1, to: 2, term: 2, body: MessageBody::Heartbeat { commit: 0, round: 1 } }.into());
    node.handle_readies();
    let answers = Answers::default();
    node.propose(put(42, 1), Answer(answers.clone()));
    node.flush();
    assert_eq!(node.host().forwarded.len(), 1, "handed to the leader");

    // The leader applied it at index 10 and sends its snapshot instead of the entries.
    let mut leader_sm = StateMachine::default();
    let applied = leader_sm.apply(10, &put(42, 1));
    let conf = node.engine().conf_state().clone();
    let data = encode_snapshot(&Members::default(), &leader_sm.copy_for_snapshot());
    let snapshot = Snapshot { meta: SnapshotMeta { index: 10, term: 2, conf }, data };
    node.step(Message { from: 1, to: 2, term: 2, body: MessageBody::Snapshot { snapshot } }.into());
    node.handle_readies();

    let answers = answers.borrow();
    assert_eq!(answers.len(), 1, "the caller was answered");
    match (&answers[0], &applied.response) {
        (ProposeOutcome::Applied(got), want @ CommandResponse::Put(_)) => assert_eq!(got, want),
        other => panic!("{other:?}"),
    }
}

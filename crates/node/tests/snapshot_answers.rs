//! A follower whose pending requests a leader's snapshot covers answers them from the
//! snapshot's client sessions (found by the whole-node simulator, seeds 3790 and 3938).

use std::cell::RefCell;
use std::fmt::Display;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_consensus::Consensus;
use tally_mvcc::{CommandResponse, StateMachine};
use tally_node::members::Members;
use tally_node::persist::{Disk, InitialState};
use tally_node::{
    encode_snapshot, ConsensusKind, Host, MembershipOutcome, Node, NodeConfig, PeerMessage, ProposeOutcome,
    ReadOutcome, Reply, Shared, SnapshotJob,
};
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};
use tally_raft::{Config, Message, MessageBody, NodeId, Snapshot, SnapshotMeta};
use tally_storage::simfs::SimFs;
use tally_storage::WalOptions;

type Answers = Rc<RefCell<Vec<ProposeOutcome>>>;

struct Answer(Answers);

impl Reply<ProposeOutcome> for Answer {
    fn send(self, outcome: ProposeOutcome) {
        self.0.borrow_mut().push(outcome);
    }
}
impl Reply<ReadOutcome> for Answer {
    fn send(self, _: ReadOutcome) {}
}
impl Reply<MembershipOutcome> for Answer {
    fn send(self, _: MembershipOutcome) {}
}

#[derive(Default)]
struct TestHost {
    forwarded: Vec<Command>,
}

impl Host for TestHost {
    type Fs = SimFs;
    type ProposeReply = Answer;
    type ReadReply = Answer;
    type MembershipReply = Answer;

    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_clock_ms(&self) -> i64 {
        0
    }
    fn send(&mut self, messages: &mut Vec<PeerMessage>) {
        messages.clear();
    }
    fn forward(&mut self, _leader: NodeId, commands: Vec<Command>) {
        self.forwarded.extend(commands);
    }
    fn write_snapshot(&mut self, _job: SnapshotJob<SimFs>) {}
    fn fatal(&mut self, what: &str, err: &dyn Display) -> ! {
        panic!("{what}: {err}")
    }
}

fn put(client_id: u64, seq: u64) -> Command {
    let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
    Command { client_id, seq, op: Some(Op::Put(put)), ..Default::default() }
}

#[test]
fn a_request_covered_by_a_leaders_snapshot_is_answered_from_its_sessions() {
    let voters = [1, 2, 3];
    let (disk, persisted) = Disk::open_with(
        SimFs::new(),
        Path::new("/data"),
        WalOptions { zero_fill: false, prepare: tally_storage::Prepare::AtRoll, ..Default::default() },
        InitialState::New,
        &voters,
        Bytes::new(),
    )
    .unwrap();
    let members = Arc::new(RwLock::new(Members::default()));
    let sm = Arc::new(RwLock::new(Node::<TestHost>::recover_state(&persisted, &members).unwrap()));
    let cfg = NodeConfig {
        consensus: ConsensusKind::Raft,
        raft: Config::new(2),
        snapshot_count: 1_000_000,
        snapshot_log_ratio: 0.0,
        election_timeout: Duration::from_secs(1),
        cluster_token: "t".into(),
        members,
        request_id_seed: 7,
        zk_container_check_interval: Duration::from_secs(1),
    };
    let mut node = Node::new(cfg, disk, persisted, sm, TestHost::default(), Arc::new(Shared::default()));
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

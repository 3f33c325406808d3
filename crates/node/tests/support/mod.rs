//! A host for driving one node by hand: it keeps what the node hands it for the test to look
//! at or run (forwarded commands, snapshot jobs, retired snapshots) and collects answers.

use std::cell::RefCell;
use std::fmt::Display;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tally_mvcc::StoreConfig;

use bytes::Bytes;
use tally_node::members::Members;
use tally_node::persist::{Disk, InitialState};
use tally_storage::{Prepare, WalOptions};

use tally_node::{
    ConsensusKind, Host, MembershipOutcome, Node, NodeConfig, PeerMessage, ProposeOutcome, ReadOutcome, Reply, Retired,
    Shared, SnapshotJob,
};
use tally_proto::tally_v1::Command;
use tally_raft::{Config, NodeId};
use tally_storage::simfs::SimFs;

pub type Answers = Rc<RefCell<Vec<ProposeOutcome>>>;

/// Collects a proposal's outcome; the other kinds of answers are dropped.
#[derive(Default)]
pub struct Answer(pub Answers);

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
pub struct TestHost {
    pub forwarded: Vec<Command>,
    pub jobs: Vec<SnapshotJob<SimFs>>,
    pub retired: Vec<Retired<SimFs>>,
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
    fn write_snapshot(&mut self, job: SnapshotJob<SimFs>) {
        self.jobs.push(job);
    }
    fn release(&mut self, retired: Retired<SimFs>) {
        self.retired.push(retired);
    }
    fn fatal(&mut self, what: &str, err: &dyn Display) -> ! {
        panic!("{what}: {err}")
    }
}

/// A new member `id` of `voters` (Raft, etcd's snapshot schedule) with its data in `/data` on
/// `fs`, driven through a [`TestHost`].
pub fn start_node(fs: &SimFs, voters: &[NodeId], id: NodeId, snapshot_count: u64) -> Node<TestHost> {
    let opts = WalOptions { zero_fill: false, prepare: Prepare::AtRoll, ..Default::default() };
    let (disk, persisted) =
        Disk::open_with(fs.clone(), Path::new("/data"), opts, InitialState::New, voters, Bytes::new()).unwrap();
    let members = Arc::new(RwLock::new(Members::default()));
    let sm =
        Arc::new(RwLock::new(Node::<TestHost>::recover_state(&persisted, &members, StoreConfig::default()).unwrap()));
    let cfg = NodeConfig {
        consensus: ConsensusKind::Raft,
        raft: Config::new(id),
        snapshot_count,
        snapshot_log_ratio: 0.0,
        election_timeout: Duration::from_secs(1),
        cluster_token: "t".into(),
        members,
        request_id_seed: 7,
        zk_container_check_interval: Duration::from_secs(1),
    };
    Node::new(cfg, disk, persisted, sm, TestHost::default(), Arc::new(Shared::default()))
}

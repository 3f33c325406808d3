//! The node's host in the simulator: virtual time, an in-memory disk that loses what was not
//! synced, and outboxes the event loop empties after every call into the node.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt::Display;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_mvcc::CommandResponse;
use tally_node::members::Members;
use tally_node::observe::Observation;
use tally_node::PeerMessage;
use tally_node::{Host, MembershipOutcome, ProposeOutcome, ReadOutcome, Reply, Retired, SnapshotJob};
use tally_proto::mvccpb::Event;
use tally_proto::tally_v1::Command;
use tally_raft::NodeId;
use tally_server::node::watch_hub::WatchHub;
use tally_storage::simfs::SimFs;

use crate::kv::ClientId;
use crate::whole::checks::zk_pipelines::Applied;

/// The panic payload of [`Host::fatal`]: the process would exit here. The event loop catches
/// it and treats the member as crashed.
#[derive(Debug)]
pub struct Fatal(pub String);

/// A caller's answer from the node, for the event loop to deliver.
#[derive(Debug)]
pub enum Answer {
    Propose(ProposeOutcome),
    Read(ReadOutcome),
}

/// Who waits for an answer: a client's request (`seq`) and the attempt that sent it here.
pub struct Waiter {
    pub client: ClientId,
    pub seq: u64,
    answers: Rc<RefCell<Vec<(ClientId, u64, Answer)>>>,
}

impl Reply<ProposeOutcome> for Waiter {
    fn send(self, outcome: ProposeOutcome) {
        self.answers.borrow_mut().push((self.client, self.seq, Answer::Propose(outcome)));
    }
}

impl Reply<ReadOutcome> for Waiter {
    fn send(self, outcome: ReadOutcome) {
        self.answers.borrow_mut().push((self.client, self.seq, Answer::Read(outcome)));
    }
}

impl Reply<MembershipOutcome> for Waiter {
    fn send(self, _: MembershipOutcome) {}
}

/// A fresh revoke of a lease, as it was applied.
#[derive(Clone, Copy, Debug)]
pub struct Revoke {
    pub lease: i64,
    /// By the leader's lease clock (etcd's lessor), not by a client.
    pub by_expiry: bool,
}

/// What the node did to the world during one call, drained by the event loop.
#[derive(Default)]
pub struct Outbox {
    pub messages: Vec<PeerMessage>,
    pub forwards: Vec<(NodeId, Vec<Command>)>,
    pub snapshots: Vec<SnapshotJob<SimFs>>,
    /// What newer snapshots left behind, released later (or never, by a crash) as the
    /// server's release thread does.
    pub retired: Vec<Retired<SimFs>>,
    pub published: Vec<(i64, Vec<Event>)>,
    pub revokes: Vec<Revoke>,
    /// Pipelined ZooKeeper writes applied fresh, and snapshots restored, in order.
    pub pipelined: Vec<Applied>,
    /// Expired TTL znodes this member deleted (a leader's `DeleteIfExpired` applied).
    pub znodes_expired: u64,
    /// A leader's snapshot replaced the state machine.
    pub restored: bool,
    /// This member learned it was removed from the cluster.
    pub removed: bool,
    /// Peers this member just removed, to be told so (the server's `Transport::set_peers`).
    pub told_removed: Vec<NodeId>,
    /// What the node reported to its watchers.
    pub observations: Vec<Observation>,
}

pub struct SimHost {
    pub fs: SimFs,
    /// The production watch hub, delivering as entries apply.
    pub hub: Arc<WatchHub>,
    base: Instant,
    now_us: Rc<Cell<u64>>,
    answers: Rc<RefCell<Vec<(ClientId, u64, Answer)>>>,
    /// The members this one keeps a link to, as the server's transport does.
    peers: BTreeSet<NodeId>,
    pub out: Outbox,
}

impl SimHost {
    pub fn new(fs: SimFs, hub: Arc<WatchHub>, base: Instant, now_us: Rc<Cell<u64>>) -> Self {
        Self { fs, hub, base, now_us, answers: Rc::default(), peers: BTreeSet::new(), out: Outbox::default() }
    }

    pub fn waiter(&self, client: ClientId, seq: u64) -> Waiter {
        Waiter { client, seq, answers: self.answers.clone() }
    }

    pub fn take_answers(&self) -> Vec<(ClientId, u64, Answer)> {
        std::mem::take(&mut self.answers.borrow_mut())
    }
}

impl Host for SimHost {
    type Fs = SimFs;
    type ProposeReply = Waiter;
    type ReadReply = Waiter;
    type MembershipReply = Waiter;

    fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.now_us.get())
    }

    /// Virtual time, which is also what the simulated clients stamp their writes with.
    fn wall_clock_ms(&self) -> i64 {
        (self.now_us.get() / 1000) as i64
    }

    fn send(&mut self, messages: &mut Vec<PeerMessage>) {
        self.out.messages.append(messages);
    }

    fn forward(&mut self, leader: NodeId, commands: Vec<Command>) {
        self.out.forwards.push((leader, commands));
    }

    fn write_snapshot(&mut self, job: SnapshotJob<SimFs>) {
        self.out.snapshots.push(job);
    }

    fn release(&mut self, retired: Retired<SimFs>) {
        self.out.retired.push(retired);
    }

    fn publish(&mut self, batches: Vec<(i64, Vec<Event>)>) {
        self.out.published.extend(batches.iter().cloned());
        self.hub.publish(batches);
    }

    fn applied_fresh(&mut self, cmd: &Command, response: &CommandResponse) {
        use tally_proto::tally_v1::command::Op;
        match (&cmd.op, response) {
            (Some(Op::LeaseRevoke(r)), _) => {
                self.out.revokes.push(Revoke { lease: r.id, by_expiry: cmd.auth_revision == u64::MAX });
            }
            (Some(Op::Zk(z)), CommandResponse::Zk(applied)) => {
                let Ok(command) = tally_zk::ZkCommand::decode(&z.command) else { return };
                let expiry = matches!(command, tally_zk::ZkCommand::DeleteIfExpired { .. });
                if expiry && matches!(applied.outcome, tally_zk::Outcome::Reply(Ok(_))) {
                    self.out.znodes_expired += 1;
                }
                if z.pipelined {
                    self.out.pipelined.extend(pipelined(cmd, &command, &applied.outcome));
                }
            }
            _ => {}
        }
    }

    fn state_restored(&mut self) {
        self.out.restored = true;
        self.out.pipelined.push(Applied::Restored);
        self.hub.restored();
    }

    fn members_changed(&mut self, members: &Members) {
        let now: BTreeSet<NodeId> = members.members.keys().copied().collect();
        let gone = self.peers.difference(&now).filter(|id| members.removed.contains(id));
        self.out.told_removed.extend(gone);
        self.peers = now;
    }

    /// Always watched, so every report is checked against what the node did.
    fn observing(&self) -> bool {
        true
    }

    fn observe(&mut self, observation: Observation) {
        self.out.observations.push(observation);
    }

    fn removed(&mut self, _reason: &str) {
        self.out.removed = true;
    }

    fn fatal(&mut self, what: &str, err: &dyn Display) -> ! {
        std::panic::panic_any(Fatal(format!("{what}: {err}")))
    }
}

/// What the pipelines' check sees of a pipelined write that applied fresh: the write, and what
/// it did to its session's ownership or its tree.
fn pipelined(cmd: &Command, command: &tally_zk::ZkCommand, outcome: &tally_zk::Outcome) -> Vec<Applied> {
    use tally_zk::{Outcome, ZkCommand, ZkError};
    let mut seen = vec![Applied::Write { client_id: cmd.client_id, seq: cmd.seq }];
    let ok = matches!(outcome, Outcome::Reply(Ok(_)));
    match *command {
        ZkCommand::Attach { session, owner } if ok => seen.push(Applied::Attached { session, owner }),
        ZkCommand::Txn { session, owner, .. } if ok && owner != 0 => seen.push(Applied::Changed { session, owner }),
        ZkCommand::Txn { .. } if matches!(outcome, Outcome::Reply(Err(ZkError::SessionMoved))) => {
            seen.push(Applied::RefusedAsMoved)
        }
        _ => {}
    }
    seen
}

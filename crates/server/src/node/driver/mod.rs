//! The driver: one thread runs the member's [`Node`] over the real clock, disk and network.
//! Inputs that arrive together (peer messages, proposals from many clients, reads) are handed
//! to the node before it handles the next Ready, so many proposals share one append and one
//! fsync, and many reads one ReadIndex.

mod host;
mod inbox;
mod read_queue;

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Token;
use tally_node::Node;
use tally_node::PeerMessage;
use tally_proto::tally_v1::Command;
use tally_raft::{NodeId, Snapshot};
use tokio::sync::oneshot;

use crate::peer::direct::DirectPeers;
use crate::peer::events::{Handover, Inbound};
use crate::peer::transport::Transport;

pub use host::{peer_addresses, ServerHost, REMOVED_MARKER};
pub use inbox::{inbox, Inbox, InputSender};
pub use read_queue::ReadQueue;
pub use tally_node::{
    LeaseOutcome, MembershipOutcome, MembershipRequest, ProposeOutcome, ReadOutcome, Shared, StatusInfo,
};

/// Inputs drained per loop turn before the next Ready (bounds the latency of one turn).
const INPUTS_PER_TURN_MAX: usize = 4096;

pub enum Input {
    Peer(PeerMessage),
    /// A peer's connection, for the driver to read from now on.
    PeerConnection(Handover),
    /// The transport saw this peer's connection close or reset.
    PeerLost(NodeId),
    /// The transfer of a snapshot to `peer` ended; `ok` if the peer received all of it.
    SnapshotDone {
        peer: NodeId,
        ok: bool,
    },
    Propose {
        cmd: Command,
        reply: oneshot::Sender<ProposeOutcome>,
    },
    /// A follower's client command, for us to propose if we lead.
    Forwarded(Command),
    /// A client command the caller forwarded to `leader` itself: answer it when it applies.
    AwaitForwarded {
        request_id: (u64, u64),
        leader: NodeId,
        reply: oneshot::Sender<ProposeOutcome>,
    },
    /// Linearizable reads wait in the ReadQueue; this wakes the driver to take them.
    ReadsQueued,
    Transfer {
        target: NodeId,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Stopping: if we lead, hand leadership to the most caught-up voter. Replies with it.
    StepDown {
        reply: oneshot::Sender<Option<NodeId>>,
    },
    Status {
        reply: oneshot::Sender<StatusInfo>,
    },
    KeepAlive {
        id: i64,
        reply: oneshot::Sender<LeaseOutcome>,
    },
    TimeToLive {
        id: i64,
        reply: oneshot::Sender<LeaseOutcome>,
    },
    Membership {
        req: MembershipRequest,
        reply: oneshot::Sender<MembershipOutcome>,
    },
    /// A peer told us we were removed from the cluster.
    Rejected(String),
    /// ZooKeeper clients of these sessions were heard from here.
    ZkTouch(Vec<i64>),
}

/// The driver hears the peer network as it happens: the one place an [`Inbound`] becomes
/// an [`Input`].
impl From<Inbound> for Input {
    fn from(inbound: Inbound) -> Self {
        match inbound {
            Inbound::Message(m) => Input::Peer(m),
            Inbound::Forwarded(cmd) => Input::Forwarded(cmd),
            Inbound::Rejected(reason) => Input::Rejected(reason),
            Inbound::ConnectionLost(peer) => Input::PeerLost(peer),
            Inbound::SnapshotDone { peer, ok } => Input::SnapshotDone { peer, ok },
            Inbound::Connection(handover) => Input::PeerConnection(handover),
        }
    }
}

pub struct Driver {
    node: Node<ServerHost>,
    tick: Duration,
    /// Linearizable reads queued by the gRPC side.
    read_queue: Arc<ReadQueue>,
    /// What snapshot threads wrote (see [`ServerHost::write_snapshot`]).
    snapshots_written: Receiver<Result<Snapshot, String>>,
    inbox: Inbox,
    /// The peer connections read here.
    peers: DirectPeers,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Stopped or panicked: reads waiting for us would otherwise wait until they time out.
        self.read_queue.close();
    }
}

impl Driver {
    /// `snapshots_written` receives what the host's `snapshots_written` sender is sent;
    /// `inbox` what its [`InputSender`]s send.
    pub fn new(
        node: Node<ServerHost>,
        tick: Duration,
        read_queue: Arc<ReadQueue>,
        snapshots_written: Receiver<Result<Snapshot, String>>,
        inbox: Inbox,
    ) -> Self {
        Self { node, tick, read_queue, snapshots_written, inbox, peers: DirectPeers::default() }
    }

    /// Runs until every input sender is gone.
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        let mut readable = Vec::new();
        let mut arrived = Vec::new();
        loop {
            self.node.handle_readies();
            let wait = if self.read_queue.before_blocking(self.node.reads_in_flight()) && !self.peers.has_unfinished() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            readable.extend(self.peers.take_unfinished());
            if self.inbox.wait(wait, &mut readable).is_err() {
                return;
            }
            self.handle_arrivals(&mut readable, &mut arrived);
            self.node.add_reads(self.read_queue.take());
            self.node.flush();
            if let Ok(written) = self.snapshots_written.try_recv() {
                self.node.snapshot_written(written);
            }
            let now = Instant::now();
            if self.node.host().view_due(now) {
                let view = self.node.view();
                self.node.host_mut().publish_view(&view, now);
            }
            if now >= next_tick {
                self.node.tick();
                // After a stall, resume ticking from now instead of firing a burst of ticks.
                next_tick = (next_tick + self.tick).max(now);
            }
        }
    }

    /// Handles what the peer connections in `readable` brought, then the inputs queued.
    fn handle_arrivals(&mut self, readable: &mut Vec<Token>, arrived: &mut Vec<Inbound>) {
        for token in readable.drain(..) {
            self.peers.read(self.inbox.registry(), token, &mut |inbound| arrived.push(inbound));
            for inbound in arrived.drain(..) {
                self.handle(Input::from(inbound));
            }
        }
        for _ in 0..INPUTS_PER_TURN_MAX {
            let Some(input) = self.inbox.next_input() else { break };
            self.handle(input);
        }
    }

    fn handle(&mut self, input: Input) {
        let node = &mut self.node;
        match input {
            Input::Peer(m) => node.step(m),
            Input::PeerLost(peer) => node.peer_lost(peer),
            Input::PeerConnection(handover) => {
                let from = handover.from;
                if let Err(e) = self.peers.adopt(self.inbox.registry(), handover) {
                    tracing::warn!(peer = %format_args!("{from:x}"), "could not read a peer's connection: {e}");
                }
            }
            Input::SnapshotDone { peer, ok } => node.snapshot_done(peer, ok),
            Input::Membership { req, reply } => node.membership(req, reply),
            Input::Rejected(reason) => node.rejected(&reason),
            Input::Propose { cmd, reply } => node.propose(cmd, reply),
            Input::Forwarded(cmd) => node.forwarded(cmd),
            Input::AwaitForwarded { request_id, leader, reply } => node.await_forwarded(request_id, leader, reply),
            Input::ZkTouch(sessions) => node.zk_touch(sessions),
            Input::ReadsQueued => {}
            Input::Transfer { target, reply } => {
                let _ = reply.send(node.transfer(target));
            }
            Input::StepDown { reply } => {
                let _ = reply.send(node.step_down());
            }
            Input::Status { reply } => {
                let _ = reply.send(node.status());
            }
            Input::KeepAlive { id, reply } => {
                let _ = reply.send(node.keep_alive(id));
            }
            Input::TimeToLive { id, reply } => {
                let _ = reply.send(node.time_to_live(id));
            }
        }
    }
}

/// Starts the driver thread.
pub fn spawn(driver: Driver) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new().name("raft-driver".into()).spawn(move || driver.run()).expect("spawn driver")
}

/// The gRPC side's handle on the driver.
#[derive(Clone)]
pub struct NodeHandle {
    pub inputs: InputSender,
    pub reads: Arc<ReadQueue>,
    pub shared: Arc<Shared>,
    /// This member's id.
    pub id: NodeId,
    /// Forwards a follower's proposals to the leader from the caller's thread.
    pub transport: Transport,
}

impl NodeHandle {
    fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        // If the driver is gone the receiver reports it.
        let _ = self.inputs.send(make(tx));
        rx
    }

    pub async fn propose(&self, cmd: Command) -> Option<ProposeOutcome> {
        self.propose_now(cmd).await.ok()
    }

    /// Hands `cmd` to the driver before returning (not when the answer is first awaited), so
    /// commands proposed one after another reach the driver, and the log, in that order.
    ///
    /// On a follower the command goes to the leader from this thread, the driver only told
    /// (without a wake-up) to answer it when it applies: handing it to the driver to forward
    /// woke the driver's thread once more per write. The one peer link to the leader keeps a
    /// caller's commands in order, as the driver's forwarding did; only a leader change can
    /// reorder them, as it could before, and the state machine refuses a connection's write
    /// that arrives after a later one (see `zk::pipeline`).
    pub fn propose_now(&self, cmd: Command) -> oneshot::Receiver<ProposeOutcome> {
        let Some(leader) = self.shared.leader().filter(|&l| l != self.id) else {
            return self.call(|reply| Input::Propose { cmd, reply });
        };
        let (reply, answer) = oneshot::channel();
        let request_id = (cmd.client_id, cmd.seq);
        // Queued before the command leaves, so the driver has it before the entry comes back.
        // If the driver is gone the receiver reports it.
        if self.inputs.queue(Input::AwaitForwarded { request_id, leader, reply }).is_ok() {
            self.transport.forward(leader, vec![cmd]);
        }
        answer
    }

    /// Waits until a linearizable read may be served from the local state.
    pub async fn read_barrier(&self) -> Option<ReadOutcome> {
        let (reply, answer) = oneshot::channel();
        if self.reads.push(reply) {
            // If the driver is gone the receiver reports it.
            let _ = self.inputs.send(Input::ReadsQueued);
        }
        answer.await.ok()
    }

    pub async fn transfer(&self, target: NodeId) -> Option<Result<(), String>> {
        self.call(|reply| Input::Transfer { target, reply }).await.ok()
    }

    pub async fn step_down(&self) -> Option<NodeId> {
        self.call(|reply| Input::StepDown { reply }).await.ok().flatten()
    }

    pub async fn status(&self) -> Option<StatusInfo> {
        self.call(|reply| Input::Status { reply }).await.ok()
    }

    /// A ZooKeeper client of `session` was heard from (its session lives on).
    pub fn zk_touch(&self, session: i64) {
        // The driver gone, the process is stopping: nothing to keep alive.
        let _ = self.inputs.send(Input::ZkTouch(vec![session]));
    }

    pub async fn keep_alive(&self, id: i64) -> Option<LeaseOutcome> {
        self.call(|reply| Input::KeepAlive { id, reply }).await.ok()
    }

    pub async fn time_to_live(&self, id: i64) -> Option<LeaseOutcome> {
        self.call(|reply| Input::TimeToLive { id, reply }).await.ok()
    }

    pub async fn membership(&self, req: MembershipRequest) -> Option<MembershipOutcome> {
        self.call(|reply| Input::Membership { req, reply }).await.ok()
    }
}

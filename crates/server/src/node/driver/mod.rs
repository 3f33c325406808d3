//! The Raft driver: one thread owns the core, the write-ahead log and the state machine, and
//! handles each Ready in the order the core's contract requires: send the leader's messages,
//! persist (one fsync for the batch), send the rest, apply, answer clients. Inputs that arrive
//! together (peer messages, proposals from many clients, reads) are handled before the next
//! Ready, so many proposals share one append and one fsync, and many reads one ReadIndex.

mod membership;
mod read_queue;
mod reads;
mod snapshots;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_mvcc::{CommandResponse, StateMachine};
use tally_proto::tally_v1::Command;
use tally_proto::Message as _;
use tally_raft::{Config, EntryKind, Index, Message, MessageBody, NodeId, Persisted, Raft, Ready, Role, Snapshot};
use tokio::sync::oneshot;

use crate::node::lease_clock::LeaseClock;
use crate::node::members::Members;
use crate::node::metrics::Metrics;
use crate::node::persist::Disk;
use crate::node::request_ids::RequestIds;
use crate::node::simple_tokens::SimpleTokens;
use crate::node::watch_hub::WatchHub;
use crate::peer::transport::Transport;
pub use membership::{peer_addresses, MembershipOutcome, MembershipRequest, Refusal, REMOVED_MARKER};
pub use read_queue::ReadQueue;
use reads::Reads;
use snapshots::decode_snapshot;
pub(crate) use snapshots::encode_snapshot;

/// Inputs drained per loop turn before the next Ready (bounds the latency of one turn).
const INPUTS_PER_TURN_MAX: usize = 4096;

pub enum Input {
    Peer(Message),
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
}

/// A lease question only the leader can answer.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// Keep-alive: the granted TTL (0 if the lease does not exist). TimeToLive: remaining and
    /// granted TTL in seconds and the attached keys, or `None` if the lease does not exist.
    KeepAlive(i64),
    TimeToLive(Option<(i64, i64, Vec<Vec<u8>>)>),
    NotLeader(Option<NodeId>),
}

#[derive(Debug)]
pub enum ProposeOutcome {
    Applied(CommandResponse),
    /// Not leader (or lost leadership before the entry applied): retry at `leader`.
    NotLeader(Option<NodeId>),
}

#[derive(Debug)]
pub enum ReadOutcome {
    /// The local state now reflects every write acknowledged before the read arrived.
    Ready,
    NoLeader,
    /// No answer within `reads::ATTEMPT_TIMEOUT` (lost with a message or a leader): ask again.
    Lost,
}

#[derive(Clone, Debug, Default)]
pub struct StatusInfo {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub committed: Index,
    pub applied: Index,
    pub db_size: i64,
    pub is_learner: bool,
}

/// What the gRPC side reads without asking the driver.
#[derive(Default)]
pub struct Shared {
    pub leader: AtomicU64,
    pub term: Arc<AtomicU64>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn term_handle(&self) -> Arc<AtomicU64> {
        self.term.clone()
    }

    pub fn leader(&self) -> Option<NodeId> {
        Some(self.leader.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }
}

pub struct DriverConfig {
    pub raft: Config,
    pub tick: Duration,
    /// Applied entries between state machine snapshots.
    pub snapshot_count: u64,
    /// Extra life a new leader gives every lease.
    pub election_timeout: Duration,
    pub cluster_token: String,
    pub data_dir: PathBuf,
    pub members: Arc<RwLock<Members>>,
}

pub struct Driver {
    raft: Raft,
    disk: Disk,
    sm: Arc<RwLock<StateMachine>>,
    hub: Option<Arc<WatchHub>>,
    /// Simple tokens, registered as Authenticate entries apply (absent with JWT tokens).
    tokens: Option<Arc<SimpleTokens>>,
    leases: LeaseClock,
    election_timeout: Duration,
    /// Request ids for the driver's own proposals (lease revokes).
    own_request_ids: RequestIds,
    transport: Transport,
    shared: Arc<Shared>,
    members: Arc<RwLock<Members>>,
    /// Membership changes waiting to be applied, by log index, with the member concerned.
    conf_waiters: HashMap<Index, (NodeId, oneshot::Sender<MembershipOutcome>)>,
    cluster_token: String,
    data_dir: PathBuf,
    tick: Duration,
    snapshot_count: u64,
    snapshot_index: Index,
    /// Our own snapshot being encoded and written by a background thread.
    snapshot_in_flight: Option<Receiver<Result<Snapshot, String>>>,
    /// Proposals waiting to be applied, by (client id, seq).
    waiters: HashMap<(u64, u64), oneshot::Sender<ProposeOutcome>>,
    /// Linearizable reads queued by the gRPC side, each answered once this member has applied
    /// a read index the leader confirmed after the read arrived; the caller then reads its state.
    read_queue: Arc<ReadQueue>,
    /// Linearizable reads taken from the queue, from their ReadIndex to their answer.
    reads: Reads,
    /// Client commands of this turn, by the leader they go to, one frame each.
    forwards: BTreeMap<NodeId, Vec<Command>>,
    /// The last heartbeat round sent to each follower and when, to time its answer.
    heartbeats: HashMap<NodeId, (u64, Instant)>,
    /// Each follower's round-trip histogram, looked up once.
    round_trips: HashMap<NodeId, Arc<crate::node::histogram::AtomicHistogram>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Stopped or panicked: reads waiting for us would otherwise wait until they time out.
        self.read_queue.close();
    }
}

fn fatal(what: &str, err: impl std::fmt::Display) -> ! {
    tracing::error!("{what}: {err}");
    eprintln!("tally: fatal: {what}: {err}");
    std::process::exit(2);
}

impl Driver {
    pub fn new(cfg: DriverConfig, disk: Disk, persisted: Persisted, transport: Transport, shared: Arc<Shared>) -> Self {
        let (sm, snapshot_members) = if persisted.snapshot.data.is_empty() {
            (StateMachine::default(), None)
        } else {
            let (members, sm) = decode_snapshot(&persisted.snapshot.data)
                .unwrap_or_else(|e| fatal("restoring the state machine snapshot", e));
            (sm, Some(members))
        };
        if let Some(members) = snapshot_members {
            *cfg.members.write().expect("members lock") = members;
        }
        shared.metrics.db_size.store(sm.size_bytes(), Ordering::Relaxed);
        let snapshot_index = persisted.snapshot.meta.index;
        let own_request_ids = RequestIds::new(cfg.raft.id);
        let raft = Raft::new(cfg.raft, persisted).unwrap_or_else(|e| fatal("starting raft", e));
        Self {
            raft,
            disk,
            sm: Arc::new(RwLock::new(sm)),
            hub: None,
            tokens: None,
            leases: LeaseClock::default(),
            election_timeout: cfg.election_timeout,
            own_request_ids,
            transport,
            shared,
            members: cfg.members,
            conf_waiters: HashMap::new(),
            cluster_token: cfg.cluster_token,
            data_dir: cfg.data_dir,
            tick: cfg.tick,
            snapshot_count: cfg.snapshot_count,
            snapshot_index,
            snapshot_in_flight: None,
            waiters: HashMap::new(),
            read_queue: Arc::default(),
            reads: Reads::default(),
            forwards: BTreeMap::new(),
            heartbeats: HashMap::new(),
            round_trips: HashMap::new(),
        }
    }

    /// The state machine, shared with readers (serializable reads, watch catch-up).
    pub fn state_machine(&self) -> Arc<RwLock<StateMachine>> {
        self.sm.clone()
    }

    /// Where the gRPC side queues linearizable reads.
    pub fn read_queue(&self) -> Arc<ReadQueue> {
        self.read_queue.clone()
    }

    pub fn set_simple_tokens(&mut self, tokens: Arc<SimpleTokens>) {
        self.tokens = Some(tokens);
    }

    pub fn set_watch_hub(&mut self, hub: Arc<WatchHub>) {
        self.hub = Some(hub);
    }

    /// Runs until every input sender is gone.
    pub fn run(mut self, inputs: Receiver<Input>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            self.handle_readies();
            let wait = if self.read_queue.before_blocking(self.reads.in_flight()) {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match inputs.recv_timeout(wait) {
                Ok(input) => {
                    self.handle(input);
                    for input in inputs.try_iter().take(INPUTS_PER_TURN_MAX) {
                        self.handle(input);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            self.reads.add(self.read_queue.take());
            self.send_forwards();
            let raft = &mut self.raft;
            let reads = self.reads.send(now, |ctx| raft.read_index(ctx));
            if reads > 0 {
                let metrics = &self.shared.metrics;
                metrics.read_index_rounds.fetch_add(1, Ordering::Relaxed);
                metrics.read_index_reads.fetch_add(reads as u64, Ordering::Relaxed);
            }
            self.adopt_written_snapshot();
            if now >= next_tick {
                self.raft.tick();
                self.expire_leases();
                self.reads.expire(now);
                // After a stall, resume ticking from now instead of firing a burst of ticks.
                next_tick = (next_tick + self.tick).max(now);
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Peer(m) => {
                self.time_heartbeat_answer(&m);
                if let Err(e) = self.raft.step(m) {
                    tracing::warn!("dropped a peer message: {e}");
                }
            }
            Input::PeerLost(peer) => {
                if self.raft.report_unreachable(peer) {
                    self.shared.metrics.fast_elections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(leader = %format_args!("{peer:x}"), "the leader's connection reset: campaigning early");
                }
            }
            Input::SnapshotDone { peer, ok } => self.raft.report_snapshot(peer, ok),
            Input::Membership { req, reply } => self.handle_membership(req, reply),
            Input::Rejected(reason) => self.stop_removed(&reason),
            Input::Propose { cmd, reply } => self.propose(cmd, reply),
            Input::Forwarded(cmd) => {
                // Not the leader (any more): drop it. The follower learns of the new leader
                // and fails its waiter, or its attempt times out; either way its caller retries.
                if self.raft.role() == Role::Leader {
                    let _ = self.raft.propose(Bytes::from(cmd.encode_to_vec()));
                }
            }
            Input::ReadsQueued => {}
            Input::Transfer { target, reply } => {
                let _ = reply.send(self.raft.transfer_leader(target).map_err(|e| e.to_string()));
            }
            Input::StepDown { reply } => {
                let _ = reply.send(self.step_down());
            }
            Input::Status { reply } => {
                let conf = self.raft.conf_state();
                let _ = reply.send(StatusInfo {
                    leader: self.raft.leader(),
                    term: self.raft.term(),
                    committed: self.raft.committed(),
                    applied: self.raft.applied(),
                    db_size: self.sm.read().expect("sm lock").size_bytes() as i64,
                    is_learner: !conf.is_voter(self.raft.id()) && conf.learners.contains(&self.raft.id()),
                });
            }
            Input::KeepAlive { id, reply } => {
                let outcome = match self.leader_only() {
                    Err(leader) => LeaseOutcome::NotLeader(leader),
                    Ok(()) => {
                        let granted = self.sm.read().expect("sm lock").store.lease(id).map(|l| l.ttl);
                        if let Some(ttl) = granted {
                            self.leases.renew(id, ttl);
                        }
                        LeaseOutcome::KeepAlive(granted.unwrap_or(0))
                    }
                };
                let _ = reply.send(outcome);
            }
            Input::TimeToLive { id, reply } => {
                let outcome = match self.leader_only() {
                    Err(leader) => LeaseOutcome::NotLeader(leader),
                    Ok(()) => {
                        let sm = self.sm.read().expect("sm lock");
                        LeaseOutcome::TimeToLive(sm.store.lease(id).map(|l| {
                            let remaining = self.leases.remaining(id).map_or(l.ttl, |d| d.as_secs() as i64);
                            (remaining, l.ttl, l.keys.iter().map(|k| k.to_vec()).collect())
                        }))
                    }
                };
                let _ = reply.send(outcome);
            }
        }
    }

    /// The voter whose log matches ours furthest (etcd's `longestConnected` is its equivalent),
    /// told to take over; None if we do not lead or lead alone.
    fn step_down(&mut self) -> Option<NodeId> {
        if self.raft.role() != Role::Leader {
            return None;
        }
        let me = self.raft.id();
        let voters = &self.raft.conf_state().voters;
        let target = self
            .raft
            .progress()
            .iter()
            .filter(|(id, _)| **id != me && voters.contains(id))
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)?;
        self.raft.transfer_leader(target).ok().map(|()| target)
    }

    fn leader_only(&self) -> Result<(), Option<NodeId>> {
        if self.raft.role() == Role::Leader {
            Ok(())
        } else {
            Err(self.raft.leader())
        }
    }

    /// Leader: revoke, through the log, every lease whose time ran out.
    fn expire_leases(&mut self) {
        if self.raft.role() != Role::Leader {
            return;
        }
        for id in self.leases.expired() {
            let op =
                tally_proto::tally_v1::command::Op::LeaseRevoke(tally_proto::etcdserverpb::LeaseRevokeRequest { id });
            // As root, as etcd's lessor revokes: a lease's keys may be anyone's.
            let cmd = Command {
                client_id: self.own_request_ids.next(),
                seq: 1,
                op: Some(op),
                auth_user: "root".into(),
                auth_revision: u64::MAX,
            };
            if self.raft.propose(Bytes::from(cmd.encode_to_vec())).is_err() {
                return;
            }
            tracing::debug!(lease = id, "lease expired; revoking");
        }
    }

    fn send_forwards(&mut self) {
        for (leader, cmds) in std::mem::take(&mut self.forwards) {
            self.transport.forward(leader, cmds);
        }
    }

    fn handle_readies(&mut self) {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            self.handle_ready(ready);
            self.raft.advance();
            self.reads.serve(self.raft.applied());
            self.maybe_snapshot();
        }
    }

    fn handle_ready(&mut self, mut ready: Ready) {
        if let Some(soft) = ready.soft_state {
            self.count_leader(soft.leader, soft.role);
            self.shared.leader.store(soft.leader.unwrap_or(0), Ordering::Relaxed);
            // A read index requested under the old leadership may never arrive: ask again.
            self.reads.fail_unconfirmed();
            if soft.role == Role::Leader {
                let sm = self.sm.read().expect("sm lock");
                self.leases.promote(sm.store.leases().map(|l| (l.id, l.ttl)), self.election_timeout);
            } else {
                self.leases.demote();
                self.fail_proposals(soft.leader);
            }
        }
        self.note_heartbeats(&ready.messages);
        self.transport.send_all(ready.messages.drain(..));
        let persisting = Instant::now();
        match self.disk.persist(&ready) {
            Ok(true) => self.shared.metrics.wal_fsync.observe(persisting.elapsed()),
            Ok(false) => {}
            Err(e) => fatal("writing the log", e),
        }
        self.transport.send_all(ready.persisted_messages.drain(..));
        self.shared.term.store(self.raft.term(), Ordering::Relaxed);
        if let Some(snapshot) = &ready.snapshot {
            let (members, restored) =
                decode_snapshot(&snapshot.data).unwrap_or_else(|e| fatal("installing the leader's snapshot", e));
            self.shared.metrics.db_size.store(restored.size_bytes(), Ordering::Relaxed);
            *self.sm.write().expect("sm lock") = restored;
            self.adopt_members(members);
            self.snapshot_index = snapshot.meta.index;
        }
        let metrics = &self.shared.metrics;
        metrics.proposals_committed.store(self.raft.committed(), Ordering::Relaxed);
        let mut published = Vec::new();
        for entry in ready.committed_entries {
            // Before the entry's caller hears back, so a scrape after an answer counts it.
            self.shared.metrics.proposals_applied.store(entry.index, Ordering::Relaxed);
            if entry.kind != EntryKind::Normal || entry.data.is_empty() {
                self.sm.write().expect("sm lock").apply_noop(entry.index);
                if entry.kind == EntryKind::ConfChange {
                    self.apply_membership_entry(&entry);
                }
                continue;
            }
            let cmd = match Command::decode(entry.data.as_ref()) {
                Ok(cmd) => cmd,
                Err(e) => fatal(&format!("decoding the committed entry at index {}", entry.index), e),
            };
            let mut applied = {
                let mut sm = self.sm.write().expect("sm lock");
                let applied = sm.apply(entry.index, &cmd);
                self.shared.metrics.db_size.store(sm.size_bytes(), Ordering::Relaxed);
                applied
            };
            if self.hub.is_some() && !applied.events.is_empty() {
                published.push((applied.revision, std::mem::take(&mut applied.events)));
            }
            if self.raft.role() == Role::Leader {
                self.track_lease(&cmd, &applied.response);
            }
            if applied.fresh {
                log_alarm_change(&cmd, &applied.response);
                if let Some(tokens) = &self.tokens {
                    tokens.applied(&cmd, &applied.response);
                }
            }
            if let Some(waiter) = self.waiters.remove(&(cmd.client_id, cmd.seq)) {
                let _ = waiter.send(ProposeOutcome::Applied(applied.response));
            }
        }
        if let Some(hub) = &self.hub {
            hub.publish(published);
        }
        self.shared.metrics.proposals_pending.store(self.waiters.len() as i64, Ordering::Relaxed);
        for rs in ready.read_states {
            self.reads.confirm(&rs.ctx, rs.index);
        }
    }

    /// Proposes a client command, or, on a follower, hands it to the leader over the peer
    /// connection (etcd's MsgProp) instead of a second gRPC call. Either way the caller is
    /// answered when this member applies the entry with the command's request id.
    fn propose(&mut self, cmd: Command, reply: oneshot::Sender<ProposeOutcome>) {
        let request_id = (cmd.client_id, cmd.seq);
        let handed_on = match (self.raft.role(), self.raft.leader()) {
            (Role::Leader, _) => self.raft.propose(Bytes::from(cmd.encode_to_vec())).is_ok(),
            (_, Some(leader)) if leader != self.raft.id() => {
                self.forwards.entry(leader).or_default().push(cmd);
                true
            }
            _ => false,
        };
        if !handed_on {
            self.shared.metrics.proposals_failed.fetch_add(1, Ordering::Relaxed);
            let _ = reply.send(ProposeOutcome::NotLeader(self.raft.leader()));
            return;
        }
        if let Some(old) = self.waiters.insert(request_id, reply) {
            // A retry of the same request: the newest caller gets the answer.
            let _ = old.send(ProposeOutcome::NotLeader(self.raft.leader()));
        }
    }

    /// Remembers when each follower was sent its latest heartbeat round.
    fn note_heartbeats(&mut self, messages: &[Message]) {
        let now = Instant::now();
        for m in messages {
            if let MessageBody::Heartbeat { round, .. } = m.body {
                self.heartbeats.insert(m.to, (round, now));
            }
        }
    }

    /// A follower answered the latest heartbeat round it was sent: that is a round trip.
    fn time_heartbeat_answer(&mut self, m: &Message) {
        let MessageBody::HeartbeatResp { round } = m.body else { return };
        if let Some(&(sent_round, sent_at)) = self.heartbeats.get(&m.from) {
            if sent_round == round {
                self.heartbeats.remove(&m.from);
                let metrics = &self.shared.metrics;
                let histogram = self.round_trips.entry(m.from).or_insert_with(|| metrics.peer_round_trip(m.from));
                histogram.observe(sent_at.elapsed());
            }
        }
    }

    /// etcd's leader gauges, and a leader change counted whenever a new leader is known.
    fn count_leader(&self, leader: Option<NodeId>, role: Role) {
        let metrics = &self.shared.metrics;
        metrics.has_leader.store(i64::from(leader.is_some()), Ordering::Relaxed);
        metrics.is_leader.store(i64::from(role == Role::Leader), Ordering::Relaxed);
        let (previous, term) = (self.shared.leader(), self.raft.term());
        match leader {
            Some(l) if Some(l) != previous => {
                metrics.leader_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(leader = %format_args!("{l:x}"), term, ?role, "leader elected")
            }
            None if previous.is_some() => tracing::info!(term, ?role, "leader lost"),
            _ => {}
        }
    }

    fn track_lease(&mut self, cmd: &Command, response: &CommandResponse) {
        use tally_proto::tally_v1::command::Op;
        match (&cmd.op, response) {
            (Some(Op::LeaseGrant(_)), CommandResponse::LeaseGrant(granted)) => {
                self.leases.granted(granted.id, granted.ttl)
            }
            (Some(Op::LeaseRevoke(r)), _) => self.leases.revoked(r.id),
            _ => {}
        }
    }

    /// After losing leadership, pending proposals may never apply here: send their callers to
    /// the new leader (their request ids make a retry safe).
    fn fail_proposals(&mut self, leader: Option<NodeId>) {
        let failed = self.waiters.len() as u64;
        self.shared.metrics.proposals_failed.fetch_add(failed, Ordering::Relaxed);
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.send(ProposeOutcome::NotLeader(leader));
        }
        for (_, (_, waiter)) in self.conf_waiters.drain() {
            let _ = waiter.send(MembershipOutcome::NotLeader(leader));
        }
    }
}

/// One line per alarm raised or cleared, on every member.
fn log_alarm_change(cmd: &Command, response: &CommandResponse) {
    use tally_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmType};
    use tally_proto::tally_v1::command::Op;
    let (Some(Op::Alarm(req)), CommandResponse::Alarm(resp)) = (&cmd.op, response) else { return };
    for a in &resp.alarms {
        let alarm = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
        let member = format!("{:x}", a.member_id);
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) => tracing::warn!(alarm, %member, "alarm raised"),
            Ok(AlarmAction::Deactivate) => tracing::warn!(alarm, %member, "alarm disarmed"),
            _ => {}
        }
    }
}

/// Starts the driver thread.
pub fn spawn(driver: Driver, inputs: Receiver<Input>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new().name("raft-driver".into()).spawn(move || driver.run(inputs)).expect("spawn driver")
}

/// The gRPC side's handle on the driver.
#[derive(Clone)]
pub struct NodeHandle {
    pub inputs: Sender<Input>,
    pub reads: Arc<ReadQueue>,
    pub shared: Arc<Shared>,
}

impl NodeHandle {
    fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        // If the driver is gone the receiver reports it.
        let _ = self.inputs.send(make(tx));
        rx
    }

    pub async fn propose(&self, cmd: Command) -> Option<ProposeOutcome> {
        self.call(|reply| Input::Propose { cmd, reply }).await.ok()
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

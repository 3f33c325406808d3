//! The node's state and the inputs it takes: peer messages, client commands, reads, lease and
//! membership questions, ticks. Each input changes the state and may leave the core a Ready,
//! which [`Node::handle_readies`] (in `ready.rs`) carries out.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_consensus::Consensus;
use tally_mvcc::{StateMachine, StoreConfig};
use tally_paxos::multi;
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::Command;
use tally_proto::Message as _;
use tally_raft::{Config, Index, MessageBody, NodeId, Persisted, Role};

use crate::engine::{ConsensusKind, Engine, PeerMessage};

use crate::histogram::AtomicHistogram;
use crate::leases::LeaseClock;
use crate::members::Members;
use crate::observe::{Observation, Observed};
use crate::persist::Disk;
use crate::reads::Reads;
use crate::request_ids::RequestIds;
use crate::snapshot_schedule::SnapshotSchedule;
use crate::snapshots::{decode_snapshot, SpareBuffer};
use crate::{Host, LeaseOutcome, MembershipOutcome, ProposeOutcome, Reply, Shared, StatusInfo};

pub struct NodeConfig {
    /// The engine's settings (Raft's; Multi-Paxos takes the ones it has).
    pub raft: Config,
    pub consensus: ConsensusKind,
    /// Applied entries between state machine snapshots.
    pub snapshot_count: u64,
    /// A snapshot also waits for this many times the last snapshot's size of log (see
    /// `snapshot_schedule.rs`); 0 snapshots every `snapshot_count` entries, as etcd does.
    pub snapshot_log_ratio: f64,
    /// Extra life a new leader gives every lease.
    pub election_timeout: Duration,
    /// The id the cluster's member ids derive from.
    pub cluster_token: String,
    pub members: Arc<RwLock<Members>>,
    /// Seeds the ids of the node's own proposals (lease revokes); must differ across boots.
    pub request_id_seed: u64,
    /// How often the leader looks for expired containers and TTL nodes (`zk_nodes.rs`).
    pub zk_container_check_interval: Duration,
}

/// Deliberate bugs the simulator must catch, one at a time (never set outside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBug {
    /// Answer a leader's write as soon as it is proposed, before it is durable or applied.
    AnswerBeforeFsync,
    /// Serve a linearizable read from the local state without a ReadIndex.
    ReadWithoutReadIndex,
    /// Drop a new leader's grace period: leases expire as if the old leader's clock ran on.
    NoLeaseGraceOnPromote,
    /// The same for ZooKeeper sessions: a new leader expires every session it has not heard.
    NoZkSessionGraceOnPromote,
    /// A leader loses the commands forwarded to it (the follower's caller is never answered).
    DropForwarded,
    /// Leave a changed vote unsynced, as if only the commit index had moved.
    LazyVote,
}

pub struct Node<H: Host> {
    pub(crate) engine: Engine,
    pub(crate) disk: Disk<H::Fs>,
    pub(crate) host: H,
    pub(crate) sm: Arc<RwLock<StateMachine>>,
    pub(crate) leases: LeaseClock,
    /// The leader's clock of ZooKeeper sessions (see `zk_sessions.rs`).
    pub(crate) zk_sessions: LeaseClock,
    /// When the leader last looked for expired containers and TTL nodes (`zk_nodes.rs`).
    pub(crate) zk_nodes_checked: Option<Instant>,
    pub(crate) zk_container_check_interval: Duration,
    pub(crate) election_timeout: Duration,
    /// Request ids for the node's own proposals (lease revokes).
    pub(crate) own_request_ids: RequestIds,
    pub(crate) shared: Arc<Shared>,
    pub(crate) members: Arc<RwLock<Members>>,
    /// Membership changes waiting to be applied, by log index, with the member concerned.
    pub(crate) conf_waiters: BTreeMap<Index, (NodeId, H::MembershipReply)>,
    pub(crate) cluster_token: String,
    pub(crate) snapshots: SnapshotSchedule,
    /// Our own snapshot is being encoded and written by the host.
    pub(crate) snapshot_in_flight: bool,
    pub(crate) snapshot_buffer: SpareBuffer,
    /// Proposals waiting to be applied, by (client id, seq).
    pub(crate) waiters: BTreeMap<(u64, u64), H::ProposeReply>,
    /// Linearizable reads, from their ReadIndex to their answer.
    pub(crate) reads: Reads<H::ReadReply>,
    /// Client commands of this turn, by the leader they go to, one frame each.
    pub(crate) forwards: BTreeMap<NodeId, Vec<Command>>,
    /// The last heartbeat round sent to each follower and when, to time its answer.
    heartbeats: HashMap<NodeId, (u64, Instant)>,
    /// Each follower's round-trip histogram, looked up once.
    round_trips: HashMap<NodeId, Arc<AtomicHistogram>>,
    pub(crate) bug: Option<NodeBug>,
    /// What watchers were last told (see `observe.rs`).
    pub(crate) observed: Observed,
}

impl<H: Host> Node<H> {
    /// The state a node starts from: its snapshot's, if it has one (whose member table then
    /// replaces `members`). Built before the node, so the layers that read it (watches, auth)
    /// can be built first and handed to the host. Without a snapshot the state is new, with
    /// the settings `fresh` (a snapshot carries its own).
    pub fn recover_state(
        persisted: &Persisted,
        members: &RwLock<Members>,
        fresh: StoreConfig,
    ) -> Result<StateMachine, String> {
        if persisted.snapshot.data.is_empty() {
            return Ok(StateMachine::new(fresh));
        }
        let (snapshot_members, sm) = decode_snapshot(&persisted.snapshot.data)?;
        *members.write().expect("members lock") = snapshot_members;
        Ok(sm)
    }

    /// A node over `disk`, starting from what it recovered (`persisted`) and the state
    /// [`Node::recover_state`] built from it.
    pub fn new(
        cfg: NodeConfig,
        disk: Disk<H::Fs>,
        persisted: Persisted,
        sm: Arc<RwLock<StateMachine>>,
        mut host: H,
        shared: Arc<Shared>,
    ) -> Self {
        shared.metrics.db_size.store(sm.read().expect("sm lock").size_bytes(), Ordering::Relaxed);
        let snapshot = &persisted.snapshot;
        let snapshots = SnapshotSchedule::new(
            cfg.snapshot_count,
            cfg.snapshot_log_ratio,
            snapshot.meta.index,
            snapshot.data.len() as u64,
        );
        let engine = match Engine::new(cfg.consensus, cfg.raft, persisted) {
            Ok(engine) => engine,
            Err(e) => host.fatal("starting the consensus engine", &e),
        };
        Self {
            engine,
            disk,
            host,
            sm,
            leases: LeaseClock::default(),
            zk_sessions: LeaseClock::default(),
            zk_nodes_checked: None,
            zk_container_check_interval: cfg.zk_container_check_interval,
            election_timeout: cfg.election_timeout,
            own_request_ids: RequestIds::with_seed(cfg.request_id_seed),
            shared,
            members: cfg.members,
            conf_waiters: BTreeMap::new(),
            cluster_token: cfg.cluster_token,
            snapshots,
            snapshot_in_flight: false,
            snapshot_buffer: SpareBuffer::default(),
            waiters: BTreeMap::new(),
            reads: Reads::default(),
            forwards: BTreeMap::new(),
            heartbeats: HashMap::new(),
            round_trips: HashMap::new(),
            bug: None,
            observed: Observed::default(),
        }
    }

    /// Plants one of the simulator's deliberate bugs.
    pub fn inject_bug(&mut self, bug: NodeBug) {
        self.bug = Some(bug);
    }

    /// The state machine, shared with readers (serializable reads, watch catch-up).
    pub fn state_machine(&self) -> Arc<RwLock<StateMachine>> {
        self.sm.clone()
    }

    /// Whether the member table says `id` was removed (the transport refuses its connections).
    pub fn knows_removed(&self, id: NodeId) -> bool {
        self.members.read().expect("members lock").removed.contains(&id)
    }

    /// The consensus engine (Raft or Multi-Paxos).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Plants one of the simulator's deliberate Multi-Paxos bugs (on a Paxos node only).
    pub fn inject_paxos_bug(&mut self, bug: tally_paxos::multi::PaxosBug) {
        self.engine.inject_paxos_bug(bug);
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    pub fn step(&mut self, m: PeerMessage) {
        self.time_heartbeat_answer(&m);
        self.observed.heard.insert(m.from(), self.host.now());
        self.observed.lost.remove(&m.from());
        if let Err(e) = self.engine.step(m) {
            tracing::warn!("dropped a peer message: {e}");
        }
    }

    /// The transport saw this peer's connection close or reset.
    pub fn peer_lost(&mut self, peer: NodeId) {
        let campaign = self.engine.report_unreachable(peer);
        if campaign {
            self.shared.metrics.fast_elections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(leader = %format_args!("{peer:x}"), "the leader's connection reset: campaigning early");
        }
        if self.observed.lost.insert(peer) || campaign {
            self.observe(Observation::PeerLost { peer, campaign });
        }
    }

    /// The transfer of a snapshot to `peer` ended; `ok` if the peer received all of it.
    pub fn snapshot_done(&mut self, peer: NodeId, ok: bool) {
        self.engine.report_snapshot(peer, ok);
    }

    /// Proposes a client command, or, on a follower, hands it to the leader over the peer
    /// connection (etcd's MsgProp) instead of a second gRPC call. Either way the caller is
    /// answered when this member applies the entry with the command's request id.
    pub fn propose(&mut self, cmd: Command, reply: H::ProposeReply) {
        let request_id = (cmd.client_id, cmd.seq);
        let handed_on = match (self.engine.role(), self.engine.leader()) {
            (Role::Leader, _) if self.bug == Some(NodeBug::AnswerBeforeFsync) => {
                return self.answer_speculatively(cmd, reply);
            }
            (Role::Leader, _) => self.engine.propose(Bytes::from(cmd.encode_to_vec())).is_ok(),
            (_, Some(leader)) if leader != self.engine.id() => {
                self.forwards.entry(leader).or_default().push(cmd);
                true
            }
            _ => false,
        };
        if !handed_on {
            return self.refuse_not_leader(reply);
        }
        self.answer_when_applied(request_id, reply);
    }

    /// A client command that this member's caller forwarded to `leader` itself, on its own
    /// thread (the server's `NodeHandle`), sparing the driver a wake-up: answers the caller as
    /// [`Node::propose`] would. The caller forwards only after queueing this, but the driver
    /// may take it late: after the entry applied (answered from the client's session), or
    /// after `leader` was deposed (answered NotLeader; the request id makes a retry safe).
    pub fn await_forwarded(&mut self, request_id: (u64, u64), leader: NodeId, reply: H::ProposeReply) {
        if self.engine.role() == Role::Leader || self.engine.leader() != Some(leader) {
            return self.refuse_not_leader(reply);
        }
        if let Some(response) = self.session_response(request_id) {
            return reply.send(ProposeOutcome::Applied(response));
        }
        self.answer_when_applied(request_id, reply);
    }

    /// Sends the caller to the leader we know of, if any.
    fn refuse_not_leader(&mut self, reply: H::ProposeReply) {
        self.shared.metrics.proposals_failed.fetch_add(1, Ordering::Relaxed);
        reply.send(ProposeOutcome::NotLeader(self.engine.leader()));
    }

    /// The caller waits for the entry with `request_id` to apply here.
    fn answer_when_applied(&mut self, request_id: (u64, u64), reply: H::ProposeReply) {
        if let Some(old) = self.waiters.insert(request_id, reply) {
            // A retry of the same request: the newest caller gets the answer.
            old.send(ProposeOutcome::NotLeader(self.engine.leader()));
        }
    }

    /// The `AnswerBeforeFsync` bug: propose, and answer at once with what applying the command
    /// to a copy of the state would answer.
    fn answer_speculatively(&mut self, cmd: Command, reply: H::ProposeReply) {
        if self.engine.propose(Bytes::from(cmd.encode_to_vec())).is_err() {
            return reply.send(ProposeOutcome::NotLeader(self.engine.leader()));
        }
        let mut copy = self.sm.read().expect("sm lock").clone();
        let applied = copy.apply(self.engine.last_index(), &cmd);
        reply.send(ProposeOutcome::Applied(applied.response));
    }

    /// A follower's client command, for us to propose if we lead.
    pub fn forwarded(&mut self, cmd: Command) {
        // Not the leader (any more): drop it. The follower learns of the new leader and
        // fails its waiter, or its attempt times out; either way its caller retries.
        if self.engine.role() == Role::Leader && self.bug != Some(NodeBug::DropForwarded) {
            if let Some(Op::ZkTouch(touch)) = &cmd.op {
                return self.renew_zk_sessions(&touch.sessions);
            }
            let _ = self.engine.propose(Bytes::from(cmd.encode_to_vec()));
        }
    }

    /// Linearizable reads to serve once a ReadIndex confirms them.
    pub fn add_reads(&mut self, reads: Vec<H::ReadReply>) {
        if self.bug == Some(NodeBug::ReadWithoutReadIndex) {
            for r in reads {
                r.send(crate::ReadOutcome::Ready);
            }
            return;
        }
        self.reads.add(reads);
    }

    /// Whether a read's answer is still to come (the node will be woken by a Ready).
    pub fn reads_in_flight(&self) -> bool {
        self.reads.in_flight()
    }

    /// After a batch of inputs: hands commands to leaders and starts a ReadIndex for the reads
    /// added meanwhile.
    pub fn flush(&mut self) {
        for (leader, cmds) in std::mem::take(&mut self.forwards) {
            self.host.forward(leader, cmds);
        }
        let now = self.host.now();
        let raft = &mut self.engine;
        let reads = self.reads.send(now, |ctx| raft.read_index(ctx));
        if reads > 0 {
            let metrics = &self.shared.metrics;
            metrics.read_index_rounds.fetch_add(1, Ordering::Relaxed);
            metrics.read_index_reads.fetch_add(reads as u64, Ordering::Relaxed);
        }
    }

    /// One tick of the core's clock; the leader also revokes the leases that ran out.
    pub fn tick(&mut self) {
        self.engine.tick();
        self.expire_leases();
        self.expire_zk_sessions();
        self.delete_expired_zk_nodes();
        let now = self.host.now();
        self.reads.expire(now);
    }

    pub fn transfer(&mut self, target: NodeId) -> Result<(), String> {
        self.engine.transfer_leader(target).map_err(|e| e.to_string())
    }

    /// Stopping: if we lead, hand leadership to the voter whose log matches ours furthest
    /// (etcd's `longestConnected` is its equivalent). Returns it; None if we do not lead or
    /// lead alone.
    pub fn step_down(&mut self) -> Option<NodeId> {
        if self.engine.role() != Role::Leader {
            return None;
        }
        let me = self.engine.id();
        let voters = &self.engine.conf_state().voters;
        let target = self
            .engine
            .replication()
            .iter()
            .filter(|(id, _)| **id != me && voters.contains(id))
            .max_by_key(|(id, p)| (p.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)?;
        self.engine.transfer_leader(target).ok().map(|()| target)
    }

    pub fn status(&self) -> StatusInfo {
        let conf = self.engine.conf_state();
        StatusInfo {
            leader: self.engine.leader(),
            term: self.engine.term(),
            committed: self.engine.committed(),
            applied: self.engine.applied(),
            db_size: self.sm.read().expect("sm lock").size_bytes() as i64,
            is_learner: !conf.is_voter(self.engine.id()) && conf.learners.contains(&self.engine.id()),
        }
    }

    /// A keep-alive: the lease lives another full TTL on the leader's clock.
    pub fn keep_alive(&mut self, id: i64) -> LeaseOutcome {
        if let Err(leader) = self.leader_only() {
            return LeaseOutcome::NotLeader(leader);
        }
        let granted = self.sm.read().expect("sm lock").store.lease(id).map(|l| l.ttl);
        if let Some(ttl) = granted {
            let now = self.host.now();
            self.leases.renew(now, id, ttl);
        }
        LeaseOutcome::KeepAlive(granted.unwrap_or(0))
    }

    pub fn time_to_live(&self, id: i64) -> LeaseOutcome {
        if let Err(leader) = self.leader_only() {
            return LeaseOutcome::NotLeader(leader);
        }
        let sm = self.sm.read().expect("sm lock");
        let now = self.host.now();
        LeaseOutcome::TimeToLive(sm.store.lease(id).map(|l| {
            let remaining = self.leases.remaining(now, id).map_or(l.ttl, |d| d.as_secs() as i64);
            (remaining, l.ttl, l.keys.iter().map(|k| k.to_vec()).collect())
        }))
    }

    /// A peer told us we were removed from the cluster.
    pub fn rejected(&mut self, reason: &str) {
        self.host.removed(reason);
    }

    fn leader_only(&self) -> Result<(), Option<NodeId>> {
        if self.engine.role() == Role::Leader {
            Ok(())
        } else {
            Err(self.engine.leader())
        }
    }

    /// Leader: revoke, through the log, every lease whose time ran out.
    fn expire_leases(&mut self) {
        if self.engine.role() != Role::Leader {
            return;
        }
        let now = self.host.now();
        for id in self.leases.expired(now) {
            let op = Op::LeaseRevoke(tally_proto::etcdserverpb::LeaseRevokeRequest { id });
            // As root, as etcd's lessor revokes: a lease's keys may be anyone's.
            let cmd = Command {
                client_id: self.own_request_ids.next(),
                seq: 1,
                op: Some(op),
                auth_user: "root".into(),
                auth_revision: u64::MAX,
            };
            if self.engine.propose(Bytes::from(cmd.encode_to_vec())).is_err() {
                return;
            }
            tracing::debug!(lease = id, "lease expired; revoking");
        }
    }

    /// Remembers when each follower was sent its latest heartbeat round.
    pub(crate) fn note_heartbeats(&mut self, messages: &[PeerMessage]) {
        let now = self.host.now();
        for m in messages {
            if let Some(round) = heartbeat_round(m) {
                self.heartbeats.insert(m.to(), (round, now));
            }
        }
    }

    /// A follower answered the latest heartbeat round it was sent: that is a round trip.
    fn time_heartbeat_answer(&mut self, m: &PeerMessage) {
        let Some(round) = heartbeat_answer_round(m) else { return };
        let from = m.from();
        if let Some(&(sent_round, sent_at)) = self.heartbeats.get(&from) {
            if sent_round == round {
                self.heartbeats.remove(&from);
                let metrics = &self.shared.metrics;
                let histogram = self.round_trips.entry(from).or_insert_with(|| metrics.peer_round_trip(from));
                histogram.observe(self.host.now().saturating_duration_since(sent_at));
            }
        }
    }

    /// After losing leadership, pending proposals may never apply here: send their callers to
    /// the new leader (their request ids make a retry safe).
    pub(crate) fn fail_proposals(&mut self, leader: Option<NodeId>) {
        let failed = self.waiters.len() as u64;
        self.shared.metrics.proposals_failed.fetch_add(failed, Ordering::Relaxed);
        for (_, waiter) in std::mem::take(&mut self.waiters) {
            waiter.send(ProposeOutcome::NotLeader(leader));
        }
        for (_, (_, waiter)) in std::mem::take(&mut self.conf_waiters) {
            waiter.send(MembershipOutcome::NotLeader(leader));
        }
    }
}

fn heartbeat_round(m: &PeerMessage) -> Option<u64> {
    match m {
        PeerMessage::Raft(m) => match m.body {
            MessageBody::Heartbeat { round, .. } => Some(round),
            _ => None,
        },
        PeerMessage::Paxos(m) => match m.body {
            multi::MessageBody::Heartbeat { round, .. } => Some(round),
            _ => None,
        },
    }
}

fn heartbeat_answer_round(m: &PeerMessage) -> Option<u64> {
    match m {
        PeerMessage::Raft(m) => match m.body {
            MessageBody::HeartbeatResp { round } => Some(round),
            _ => None,
        },
        PeerMessage::Paxos(m) => match m.body {
            multi::MessageBody::HeartbeatResp { round, .. } => Some(round),
            _ => None,
        },
    }
}

//! The event loop of a whole-node run: members (`tally_node::Node` over a simulated disk)
//! exchanging messages over a simulated network, clients sending etcd requests and retrying
//! them with the same request id, faults, and the checks after every event. A safety phase
//! with the seed's faults, then a liveness phase with every fault healed, in which every
//! client request must complete.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tally_mvcc::StoreConfig;

use tally_consensus::Consensus;
use tally_node::persist::InitialState;
use tally_node::{
    ConsensusKind, LeaseOutcome, MembershipRequest, NodeBug, PeerMessage, ProposeOutcome, ReadOutcome, Retired,
    SnapshotJob,
};
use tally_paxos::multi::PaxosBug;
use tally_raft::{Config, InjectedBug, MessageBody, NodeId, Role};
use tally_storage::simfs::{SimFs, SimRng};

use super::checks::leases::Leases;
use super::checks::observations::Observations;
use super::checks::revisions::Revisions;
use super::checks::state_hashes::StateHashes;
use super::checks::watches::Watch;
use super::checks::zk_pipelines::ZkPipelines;
use super::checks::zk_sessions::ZkSessions;
use super::clients::{Answer, Client, Request, LEASE_TTL_S};
use super::host::{self, Fatal};
use super::member::{Member, MemberSetup};
use super::plan::Plan;
use super::requests::{read_value, Write, ABSENT, KEYS, ZK_SESSION_TIMEOUT_MS};
use crate::checker::{Checker, Violation};
use crate::linearizability::{self, OpKind, Operation, Outcome};
use crate::links;
use crate::queue::EventQueue;
use crate::rng::Rng;

mod caller_forward;
mod removal_notice;
mod zk_pipelines;

const TICK_US: u64 = 10_000;
/// How long a client waits for an answer before asking another member.
const REQUEST_TIMEOUT_US: u64 = 500_000;
/// How long after healing every client must have its answer.
const LIVENESS_US_MAX: u64 = 15_000_000;
/// After healing, the cluster settles (elections, catch-up) for this long; from then on every
/// request must be answered by the member it was sent to, without the client's timeout.
const SETTLE_US: u64 = 1_500_000;
/// Clients keep starting requests this long after healing, so the settled cluster serves some.
const CLIENTS_STOP_AFTER_HEAL_US: u64 = 2_200_000;
/// Clients' command ids start here, away from the node's own.
const CLIENT_ID_BASE: u64 = 1 << 40;

#[derive(Clone, Debug)]
pub struct WholeOptions {
    pub seed: u64,
    pub nodes: Option<usize>,
    pub bug: Option<NodeBug>,
    pub consensus: ConsensusKind,
    pub paxos_bug: Option<PaxosBug>,
    /// A bug planted in the Raft core (`InjectedBug`), to show a check catches it.
    pub raft_bug: Option<InjectedBug>,
    pub safety_us: u64,
    pub trace: bool,
    /// Whether the plan may have ZooKeeper clients that pipeline their writes; off to replay a
    /// seed found before they existed.
    pub zk_pipelines: bool,
    /// A small exactly-once table, which evicts clients between their writes. Only ZooKeeper
    /// clients then write: an etcd client's retry after its record was evicted executes again,
    /// which the table's size (100,000 in a server) is there to make unlikely.
    pub sessions_max: Option<usize>,
}

impl WholeOptions {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: None,
            bug: None,
            consensus: ConsensusKind::Raft,
            paxos_bug: None,
            raft_bug: None,
            safety_us: 3_000_000,
            trace: false,
            zk_pipelines: true,
            sessions_max: None,
        }
    }
}

/// How often a run reached the paths that matter.
#[derive(Clone, Copy, Debug, Default)]
pub struct WholeCoverage {
    pub crashes: u64,
    pub disk_failures: u64,
    pub snapshots_written: u64,
    pub snapshots_installed: u64,
    pub leaders: u64,
    pub forwarded: u64,
    /// Writes forwarded to the leader by the member's caller (see `caller_forward`), and
    /// those whose await the member's driver took only after the entry applied.
    pub forwarded_by_callers: u64,
    pub awaits_after_apply: u64,
    pub lease_expiries: u64,
    pub znodes_expired: u64,
    pub zk_session_expiries: u64,
    /// Pipelined ZooKeeper writes applied fresh (counted per member) and answered as applied.
    pub zk_pipelined_applied: u64,
    pub zk_pipelined_acknowledged: u64,
    /// Times a connection's pipelined writes started over under a new client id.
    pub zk_pipeline_start_overs: u64,
    pub zk_refused_as_moved: u64,
    pub watch_reconnects: u64,
    pub state_hashes: u64,
    pub members_added: u64,
    pub members_removed: u64,
    pub transfers: u64,
    /// Leaders' durable hints sent (followers commit by them in a quorum of two).
    pub durable_hints: u64,
}

impl std::ops::AddAssign for WholeCoverage {
    fn add_assign(&mut self, o: Self) {
        self.crashes += o.crashes;
        self.disk_failures += o.disk_failures;
        self.snapshots_written += o.snapshots_written;
        self.snapshots_installed += o.snapshots_installed;
        self.leaders += o.leaders;
        self.forwarded += o.forwarded;
        self.forwarded_by_callers += o.forwarded_by_callers;
        self.awaits_after_apply += o.awaits_after_apply;
        self.lease_expiries += o.lease_expiries;
        self.znodes_expired += o.znodes_expired;
        self.zk_session_expiries += o.zk_session_expiries;
        self.zk_pipelined_applied += o.zk_pipelined_applied;
        self.zk_pipelined_acknowledged += o.zk_pipelined_acknowledged;
        self.zk_pipeline_start_overs += o.zk_pipeline_start_overs;
        self.zk_refused_as_moved += o.zk_refused_as_moved;
        self.watch_reconnects += o.watch_reconnects;
        self.state_hashes += o.state_hashes;
        self.members_added += o.members_added;
        self.members_removed += o.members_removed;
        self.transfers += o.transfers;
        self.durable_hints += o.durable_hints;
    }
}

#[derive(Debug)]
pub struct WholeReport {
    pub seed: u64,
    pub nodes: usize,
    pub violations: Vec<Violation>,
    pub operations: usize,
    pub events: u64,
    pub coverage: WholeCoverage,
}

/// A client's answer as it travels back.
enum Reply {
    Final(Answer),
    NotLeader(Option<NodeId>),
    /// No answer here (no leader, a lost ReadIndex): ask again.
    Retry,
}

enum Event {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver(PeerMessage),
    Forward {
        from: NodeId,
        to: NodeId,
        commands: Vec<tally_proto::tally_v1::Command>,
    },
    AwaitForwarded(Box<caller_forward::Await>),
    RemovalNotice(Box<removal_notice::Notice>),
    /// A peer refused `node`'s connection: the member table says it was removed.
    Rejected {
        node: NodeId,
    },
    Request {
        client: usize,
        seq: u64,
        to: NodeId,
    },
    Response {
        client: usize,
        seq: u64,
        reply: Reply,
    },
    ClientStart {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        seq: u64,
        attempt: u32,
    },
    SnapshotWritten {
        node: NodeId,
        incarnation: u64,
        job: Box<SnapshotJob<SimFs>>,
    },
    Release {
        node: NodeId,
        incarnation: u64,
        retired: Box<Retired<SimFs>>,
    },
    SnapshotStatus {
        node: NodeId,
        incarnation: u64,
        peer: NodeId,
        ok: bool,
    },
    Reset {
        node: NodeId,
        peer: NodeId,
    },
    Restart {
        node: NodeId,
    },
    Fault,
    Heal,
    PipeStart {
        pipe: usize,
    },
    PipeRequest {
        pipe: usize,
        conn: u64,
        seq: u64,
        to: NodeId,
    },
    PipeTimeout {
        pipe: usize,
        conn: u64,
        seq: u64,
        attempt: u32,
    },
    PipeAbandon {
        pipe: usize,
        conn: u64,
    },
}

/// A client's request in flight.
struct Pending {
    seq: u64,
    request: Request,
    history_slot: Option<usize>,
    first_sent: u64,
    attempt: u32,
    /// When the latest attempt was sent.
    sent: u64,
}

struct ClientState {
    client: Client,
    pending: Option<Pending>,
    target: Option<NodeId>,
    seq: u64,
}

/// The core's configuration, as a server sets it (pre-vote, check-quorum), with the seed's
/// choice of batching, compaction lag and fast elections.
fn raft_config(rng: &mut Rng) -> Config {
    let mut raft = Config::new(1);
    raft.pre_vote = true;
    raft.check_quorum = true;
    raft.compaction_lag_entries = rng.pick(&[0, 5, 50]);
    raft.entries_per_msg_max = rng.pick(&[4, 64, 1024]);
    if rng.chance(0.5) {
        raft.fast_election_ticks = 3;
        raft.leader_silence_jitter_ticks = 1;
    }
    raft
}

/// The synthetic first write of the history: every key starts absent.
fn initial_history() -> Vec<Operation> {
    (0..KEYS)
        .map(|key| Operation {
            client: 0,
            key,
            kind: OpKind::Put { value: ABSENT },
            invoke: 0,
            complete: Some(0),
            outcome: Outcome::Put,
        })
        .collect()
}

pub struct WholeSim {
    opts: WholeOptions,
    rng: Rng,
    disk_rng: SimRng,
    plan: Plan,
    now: Rc<Cell<u64>>,
    base: Instant,
    queue: EventQueue<Event>,
    members: BTreeMap<NodeId, Member>,
    ids: Vec<NodeId>,
    blocked: links::Cuts,
    clients: Vec<ClientState>,
    watchers: Vec<Watch>,
    history: Vec<Operation>,
    checker: Checker,
    revisions: Revisions,
    observations: Observations,
    hashes: StateHashes,
    leases: Leases,
    zk_sessions: ZkSessions,
    zk_pipelines: ZkPipelines,
    pipes: Vec<zk_pipelines::PipeClient>,
    healed_at: Option<u64>,
    newest_leader_term: u64,
    events: u64,
    coverage: WholeCoverage,
}

impl WholeSim {
    pub fn new(opts: WholeOptions) -> Self {
        let mut rng = Rng::new(opts.seed ^ 0x57_40_1E);
        let mut plan = Plan::draw(&mut rng.fork());
        if !opts.zk_pipelines {
            plan.zk_pipelines = 0;
        }
        if opts.sessions_max.is_some() {
            (plan.kv_clients, plan.lease_clients, plan.zk_pipelines) = (0, 0, 3);
        }
        let size = opts.nodes.unwrap_or([3, 5][(opts.seed % 2) as usize]);
        let ids: Vec<NodeId> = (1..=size as u64).collect();
        let mut raft = raft_config(&mut rng);
        raft.injected_bug = opts.raft_bug;
        let mut sim = Self {
            disk_rng: SimRng::new(rng.next_u64()),
            plan,
            now: Rc::new(Cell::new(0)),
            base: Instant::now(),
            queue: EventQueue::default(),
            members: BTreeMap::new(),
            ids: ids.clone(),
            blocked: BTreeSet::new(),
            clients: Vec::new(),
            watchers: Vec::new(),
            history: initial_history(),
            checker: Checker::default(),
            revisions: Revisions::default(),
            observations: Observations::default(),
            hashes: StateHashes::default(),
            leases: Leases::default(),
            zk_sessions: ZkSessions::default(),
            zk_pipelines: ZkPipelines::default(),
            pipes: Vec::new(),
            healed_at: None,
            newest_leader_term: 0,
            events: 0,
            coverage: WholeCoverage::default(),
            rng,
            opts,
        };
        sim.start_founders(&raft, &ids);
        sim.start_clients();
        sim.start_pipes();
        if sim.plan.partitions || sim.plan.crashes || sim.plan.membership || sim.plan.transfers {
            let at = sim.plan.fault_every_us;
            sim.schedule(at, Event::Fault);
        }
        let heal_at = sim.opts.safety_us;
        sim.schedule(heal_at, Event::Heal);
        sim
    }

    fn start_founders(&mut self, raft: &Config, ids: &[NodeId]) {
        let election_timeout = Duration::from_micros(TICK_US * raft.election_tick as u64);
        for &id in ids {
            let mut cfg = raft.clone();
            cfg.id = id;
            cfg.seed = self.opts.seed.wrapping_mul(1_000_003).wrapping_add(id);
            let setup = MemberSetup {
                raft: cfg,
                voters: ids.to_vec(),
                snapshot_count: self.plan.snapshot_count,
                snapshot_log_ratio: self.plan.snapshot_log_ratio,
                election_timeout,
                bug: self.opts.bug,
                consensus: self.opts.consensus,
                paxos_bug: self.opts.paxos_bug,
                initial: InitialState::New,
                store: self.opts.sessions_max.map_or_else(StoreConfig::default, |sessions_max| StoreConfig {
                    sessions_max,
                    ..StoreConfig::default()
                }),
            };
            let tick_us = TICK_US + self.rng.range(0, TICK_US / 20);
            self.members.insert(id, Member::new(id, setup, tick_us));
            self.start_member(id);
        }
    }

    fn start_clients(&mut self) {
        for i in 0..self.plan.kv_clients {
            self.clients.push(ClientState { client: Client::kv(i + 1), pending: None, target: None, seq: 0 });
        }
        for _ in 0..self.plan.lease_clients {
            self.clients.push(ClientState { client: Client::lease(), pending: None, target: None, seq: 0 });
        }
        if self.plan.auth {
            self.clients.push(ClientState { client: Client::Admin { step: 0 }, pending: None, target: None, seq: 0 });
        }
        for client in 0..self.clients.len() {
            let at = self.rng.range(1, 200_000);
            self.schedule(at, Event::ClientStart { client });
        }
        for _ in 0..self.plan.watchers {
            self.watchers.push(Watch::new());
        }
    }

    fn now(&self) -> u64 {
        self.now.get()
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.queue.schedule(at, event);
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            println!("{:>9.3}ms {}", self.now() as f64 / 1000.0, what());
        }
    }

    fn lossy(&self) -> bool {
        self.healed_at.is_none()
    }

    fn net_delay(&mut self) -> u64 {
        self.plan.delay_base_us + self.rng.range(0, self.plan.delay_jitter_us + 1)
    }

    fn violation(&mut self, property: &'static str, detail: String) {
        let time_us = self.now();
        self.checker.violations.push(Violation { property, time_us, detail });
    }

    // ---- members ----

    fn start_member(&mut self, id: NodeId) {
        let (base, clock) = (self.base, self.now.clone());
        let member = self.members.get_mut(&id).expect("exists");
        match catch_unwind(AssertUnwindSafe(|| member.start(base, clock))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.violation("a member restarts from its disk", format!("member {id}: {e}")),
            Err(panic) => return self.died(id, panic),
        }
        let (incarnation, tick_us) = (member.incarnation, member.tick_us);
        self.trace(|| format!("start member {id} (incarnation {incarnation})"));
        self.call(id, |_| {});
        self.say_hello(id);
        for w in 0..self.watchers.len() {
            if self.watchers[w].member().is_none() {
                self.connect_watcher(w);
            }
        }
        let at = self.now() + self.rng.range(1, tick_us);
        self.schedule(at, Event::Tick { node: id, incarnation });
    }

    /// Calls into a member's node, then lets it handle its Readies and carries out what it
    /// did. A disk failure inside makes the process exit: the member crashes.
    fn call(&mut self, id: NodeId, f: impl FnOnce(&mut tally_node::Node<host::SimHost>)) {
        let Some(member) = self.members.get_mut(&id).filter(|m| m.is_up()) else { return };
        if self.healed_at.is_none() && self.plan.disk_failures > 0.0 && self.rng.chance(self.plan.disk_failures) {
            member.fs.crash_after(self.rng.range(0, 8));
        }
        let node = member.node();
        let result = catch_unwind(AssertUnwindSafe(|| {
            f(node);
            node.flush();
            node.handle_readies();
        }));
        self.drain(id, result.is_ok());
        if let Err(panic) = result {
            self.died(id, panic);
        }
    }

    /// The process of `id` exited (a disk failure): a crash, unless it was a real panic.
    fn died(&mut self, id: NodeId, panic: Box<dyn std::any::Any + Send>) {
        let Some(Fatal(reason)) = panic.downcast_ref::<Fatal>() else { resume_unwind(panic) };
        self.trace(|| format!("member {id} stops: {reason}"));
        self.coverage.disk_failures += 1;
        self.crash(id);
    }

    fn crash(&mut self, id: NodeId) {
        self.coverage.crashes += 1;
        let member = self.members.get_mut(&id).expect("exists");
        member.crash(&mut self.disk_rng);
        for peer in self.ids.clone() {
            if peer != id && self.members[&peer].is_up() {
                let at = self.now() + self.rng.range(100, 2_000);
                self.schedule(at, Event::Reset { node: peer, peer: id });
            }
        }
        for w in 0..self.watchers.len() {
            if self.watchers[w].member().is_some_and(|(m, _)| m == id) {
                self.watchers[w].disconnect();
                self.connect_watcher(w);
            }
        }
        let at = self.now() + self.rng.range(10_000, 600_000);
        self.schedule(at, Event::Restart { node: id });
    }

    /// Carries out what a member's node did: messages, forwards, snapshot jobs, events, answers.
    /// `completed`: the call returned (rather than ending the process partway).
    fn drain(&mut self, id: NodeId, completed: bool) {
        let member = self.members.get_mut(&id).expect("exists");
        let incarnation = member.incarnation;
        let Some(node) = member.node.as_mut() else { return };
        let out = std::mem::take(&mut node.host_mut().out);
        let answers = node.host().take_answers();
        let sm = node.state_machine();
        let (role, term) = (node.engine().role(), node.engine().term());
        let now = self.now();
        let engine = self.members[&id].node.as_ref().expect("up").engine();
        let violations = &mut self.checker.violations;
        let sent = &out.messages;
        self.observations.observe(id, incarnation, &out.observations, (sent, completed), engine, now, violations);
        for o in &out.observations {
            if let tally_node::observe::Observation::ZkSessionExpired { session } = o {
                self.zk_sessions.expired(*session, ZK_SESSION_TIMEOUT_MS, now, violations);
            }
        }
        if role == Role::Leader {
            self.checker.now_us = now;
            self.checker.observe_leader(term, id);
            if term > self.newest_leader_term {
                self.newest_leader_term = term;
                self.coverage.leaders += 1;
                self.trace(|| format!("member {id} leads in term {term}"));
            }
        }
        for m in out.messages {
            self.send(m, incarnation);
        }
        for (to, commands) in out.forwards {
            self.coverage.forwarded += commands.len() as u64;
            if !self.link_drops(id, to) {
                let at = now + self.net_delay();
                self.schedule(at, Event::Forward { from: id, to, commands });
            }
        }
        for to in out.told_removed {
            self.tell_removed(id, to);
        }
        if out.removed {
            self.remove_member(id);
        }
        for job in out.snapshots {
            let at = now + self.rng.range(1_000, 50_000);
            self.schedule(at, Event::SnapshotWritten { node: id, incarnation, job: Box::new(job) });
        }
        for retired in out.retired {
            let at = now + self.rng.range(100, 20_000);
            self.schedule(at, Event::Release { node: id, incarnation, retired: Box::new(retired) });
        }
        self.coverage.snapshots_installed += u64::from(out.restored);
        self.coverage.znodes_expired += out.znodes_expired;
        for w in &mut self.watchers {
            if w.member() == Some((id, incarnation)) {
                w.pump();
            }
        }
        let sm = sm.read().expect("sm lock");
        let violations = &mut self.checker.violations;
        self.revisions.observe(id, incarnation, &out.published, now, violations);
        self.zk_pipelines.observe(id, incarnation, &out.pipelined, now, violations);
        for r in out.revokes {
            self.leases.revoked(r.lease, r.by_expiry, now, violations);
        }
        if self.rng.chance(0.05) {
            self.coverage.state_hashes += 1;
            self.hashes.observe(id, &sm, now, violations);
        }
        let answers: Vec<(usize, u64, Reply)> = answers
            .into_iter()
            .map(|(client, seq, answer)| {
                let reply = match answer {
                    host::Answer::Propose(ProposeOutcome::Applied(r)) => Reply::Final(Answer::Applied(r)),
                    host::Answer::Propose(ProposeOutcome::NotLeader(hint)) => Reply::NotLeader(hint),
                    host::Answer::Read(ReadOutcome::Ready) => Reply::Final(Answer::Value(self.read_for(client, &sm))),
                    host::Answer::Read(_) => Reply::Retry,
                };
                (client as usize, seq, reply)
            })
            .collect();
        drop(sm);
        for (client, seq, reply) in answers {
            self.respond(client, seq, reply);
        }
    }

    /// A member that learned it was removed stops for good (the server's process exits).
    fn remove_member(&mut self, id: NodeId) {
        self.trace(|| format!("member {id} was removed: stops"));
        self.coverage.members_removed += 1;
        let member = self.members.get_mut(&id).expect("exists");
        member.removed = true;
        member.node = None;
        self.ids.retain(|&m| m != id);
        for w in 0..self.watchers.len() {
            if self.watchers[w].member().is_some_and(|(m, _)| m == id) {
                self.watchers[w].disconnect();
                self.connect_watcher(w);
            }
        }
    }

    /// What a linearizable read of `client`'s key returns from `sm` (its caller reads the
    /// state once the node says it may).
    fn read_for(&self, client: u64, sm: &tally_mvcc::StateMachine) -> u64 {
        match self.clients[client as usize].pending.as_ref().map(|p| &p.request) {
            Some(Request::Read { key, .. }) => read_value(sm, *key),
            _ => ABSENT,
        }
    }

    fn link_drops(&mut self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to)) || (self.lossy() && self.rng.chance(self.plan.drop))
    }

    fn send(&mut self, m: PeerMessage, incarnation: u64) {
        if matches!(&m, PeerMessage::Raft(r) if matches!(r.body, MessageBody::LeaderDurable { .. })) {
            self.coverage.durable_hints += 1;
        }
        let is_snapshot = m.snapshot().is_some();
        if self.link_drops(m.from(), m.to()) {
            if is_snapshot {
                let at = self.now() + self.net_delay();
                let (node, peer) = (m.from(), m.to());
                self.schedule(at, Event::SnapshotStatus { node, incarnation, peer, ok: false });
            }
            return;
        }
        if !is_snapshot && self.lossy() && self.rng.chance(self.plan.duplicate) {
            let at = self.now() + self.net_delay();
            self.schedule(at, Event::Deliver(m.clone()));
        }
        let at = self.now() + self.net_delay();
        self.schedule(at, Event::Deliver(m));
    }

    // ---- clients ----

    fn respond(&mut self, client: usize, seq: u64, reply: Reply) {
        if self.lossy() && self.rng.chance(self.plan.drop) {
            return;
        }
        let at = self.now() + self.net_delay();
        self.schedule(at, Event::Response { client, seq, reply });
    }

    fn pick_member(&mut self, client: usize) -> NodeId {
        match self.clients[client].target.take() {
            Some(id) => id,
            None => {
                let ids = self.ids.clone();
                self.rng.pick(&ids)
            }
        }
    }

    fn send_request(&mut self, client: usize) {
        let now = self.now.get();
        let Some(p) = self.clients[client].pending.as_mut() else { return };
        p.attempt += 1;
        p.sent = now;
        let (seq, attempt) = (p.seq, p.attempt);
        let to = self.pick_member(client);
        if !(self.lossy() && self.rng.chance(self.plan.drop)) {
            let at = self.now() + self.net_delay();
            self.schedule(at, Event::Request { client, seq, to });
        }
        self.schedule(self.now() + REQUEST_TIMEOUT_US, Event::ClientTimeout { client, seq, attempt });
    }

    fn start_client(&mut self, client: usize) {
        let stopped = self.healed_at.is_some_and(|h| self.now() >= h + CLIENTS_STOP_AFTER_HEAL_US);
        if stopped || self.clients[client].pending.is_some() {
            return;
        }
        let revision_hint = self.revisions.events().keys().next_back().copied().unwrap_or(0);
        let c = &mut self.clients[client];
        let next = c.client.next(&mut self.rng, revision_hint);
        c.seq += 1;
        let now = self.now.get();
        let history_slot = next.history.map(|(key, kind)| {
            let op = Operation {
                client: client as u64 + 1,
                key,
                kind,
                invoke: now,
                complete: None,
                outcome: Outcome::Unknown,
            };
            self.history.push(op);
            self.history.len() - 1
        });
        c.pending =
            Some(Pending { seq: c.seq, request: next.request, history_slot, first_sent: now, attempt: 0, sent: now });
        self.send_request(client);
    }

    fn deliver_request(&mut self, client: usize, seq: u64, to: NodeId) {
        let Some(p) = self.clients[client].pending.as_ref().filter(|p| p.seq == seq) else { return };
        if !self.members[&to].is_up() {
            return;
        }
        let request = p.request.clone();
        let client_id = CLIENT_ID_BASE + client as u64;
        self.trace(|| format!("member {to} gets client {client}'s #{seq} {request:?}"));
        match request {
            Request::Write(w) => {
                let mut cmd = w.command(client_id, seq, (self.now() / 1000) as i64);
                // As the member resolves a caller: its auth store's revision now.
                let sm = self.members.get_mut(&to).expect("exists").node().state_machine();
                cmd.auth_revision = sm.read().expect("sm lock").auth.revision();
                self.propose_at(to, cmd, client as u64, seq);
            }
            Request::Read { key, serializable: true } => {
                let sm = self.members.get_mut(&to).expect("exists").node().state_machine();
                let value = read_value(&sm.read().expect("sm lock"), key);
                self.respond(client, seq, Reply::Final(Answer::Value(value)));
            }
            Request::Read { serializable: false, .. } => self.call(to, |node| {
                let waiter = node.host().waiter(client as u64, seq);
                node.add_reads(vec![waiter]);
            }),
            Request::ZkPing { session } => {
                if self.leads_newest_term(to) {
                    self.zk_sessions.heard(session, self.now());
                }
                self.call(to, |node| node.zk_touch(vec![session]));
                self.respond(client, seq, Reply::Final(Answer::Pinged));
            }
            Request::KeepAlive { lease } => {
                let mut outcome = None;
                self.call(to, |node| outcome = Some(node.keep_alive(lease)));
                let reply = match outcome {
                    Some(LeaseOutcome::KeepAlive(ttl)) => Reply::Final(Answer::KeptAlive(ttl)),
                    Some(LeaseOutcome::NotLeader(hint)) => Reply::NotLeader(hint),
                    _ => Reply::Retry,
                };
                self.respond(client, seq, reply);
            }
        }
    }

    fn client_response(&mut self, client: usize, seq: u64, reply: Reply) {
        if let Some(pipe) = client.checked_sub(zk_pipelines::PIPE_CLIENT_BASE) {
            return self.pipe_response(pipe, seq, reply);
        }
        self.trace(|| {
            format!(
                "client {client} gets #{seq}: {}",
                match &reply {
                    Reply::Final(a) => format!("{a:?}"),
                    Reply::NotLeader(h) => format!("not leader, try {h:?}"),
                    Reply::Retry => "ask again".into(),
                }
            )
        });
        let Some(attempt) = self.clients[client].pending.as_ref().filter(|p| p.seq == seq).map(|p| p.attempt) else {
            return;
        };
        let answer = match reply {
            Reply::Final(answer) => answer,
            Reply::NotLeader(hint) => {
                self.clients[client].target = hint;
                let at = self.now() + self.rng.range(1_000, 20_000);
                // Retried from the timeout's event, with the same request id.
                return self.schedule(at, Event::ClientTimeout { client, seq, attempt });
            }
            Reply::Retry => {
                let at = self.now() + self.rng.range(5_000, 50_000);
                return self.schedule(at, Event::ClientTimeout { client, seq, attempt });
            }
        };
        let p = self.clients[client].pending.take().expect("checked");
        let now = self.now();
        match (&p.request, &answer) {
            (Request::Write(Write::LeaseGrant { .. }), Answer::Applied(tally_mvcc::CommandResponse::LeaseGrant(g))) => {
                self.leases.renewed(g.id, LEASE_TTL_S, p.first_sent)
            }
            (Request::KeepAlive { lease }, Answer::KeptAlive(ttl)) if *ttl > 0 => {
                self.leases.renewed(*lease, LEASE_TTL_S, p.first_sent)
            }
            _ => {}
        }
        let outcome = self.clients[client].client.done(&p.request, &answer);
        if let (Some(slot), Some(outcome)) = (p.history_slot, outcome) {
            if outcome != Outcome::Unknown {
                self.history[slot].complete = Some(now);
                self.history[slot].outcome = outcome;
            }
        }
        let think = match p.request {
            Request::KeepAlive { .. } => 600_000,
            _ => self.rng.range(0, 20_000),
        };
        self.schedule(now + think, Event::ClientStart { client });
    }

    fn connect_watcher(&mut self, w: usize) {
        let up: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.members[id].is_up()).collect();
        if up.is_empty() {
            return self.watchers[w].disconnect();
        }
        let id = self.rng.pick(&up);
        let member = self.members.get_mut(&id).expect("exists");
        let incarnation = member.incarnation;
        let hub = member.node().host().hub.clone();
        self.watchers[w].connect(id, incarnation, hub);
        self.coverage.watch_reconnects += 1;
    }

    // ---- faults ----

    fn fault(&mut self) {
        let mut kinds = Vec::new();
        if self.plan.partitions {
            kinds.push(0);
        }
        if self.plan.crashes {
            kinds.push(1);
        }
        if self.plan.membership {
            kinds.push(2);
        }
        if self.plan.transfers {
            kinds.push(3);
        }
        match self.rng.pick(&kinds) {
            0 => self.partition(),
            2 => self.change_membership(),
            3 => self.transfer(),
            _ => {
                let up: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.members[id].is_up()).collect();
                if up.len() > self.ids.len() / 2 {
                    let victim = match self.leader() {
                        Some(leader) if self.rng.chance(0.5) => leader,
                        _ => self.rng.pick(&up),
                    };
                    self.trace(|| format!("crash member {victim}"));
                    self.crash(victim);
                }
            }
        }
        if !self.watchers.is_empty() && self.rng.chance(0.3) {
            let w = self.rng.range(0, self.watchers.len() as u64) as usize;
            self.connect_watcher(w);
        }
        if self.plan.spurious_resets {
            let up: Vec<NodeId> = self.ids.iter().copied().filter(|id| self.members[id].is_up()).collect();
            if let (Some(leader), false) = (self.leader(), up.is_empty()) {
                let node = self.rng.pick(&up);
                if node != leader {
                    self.schedule(self.now(), Event::Reset { node, peer: leader });
                }
            }
        }
    }

    /// Asks the leader, through the node's membership API, to add a learner (a new member that
    /// starts empty), promote one, or remove a member, keeping at least three voters.
    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let conf = self.members[&leader].node.as_ref().expect("leads").engine().conf_state().clone();
        let (voters, learners): (Vec<NodeId>, Vec<NodeId>) =
            (conf.voters.iter().copied().collect(), conf.learners.iter().copied().collect());
        let request = match self.rng.range(0, 3) {
            0 if voters.len() + learners.len() < 6 => {
                self.coverage.members_added += 1;
                let url = format!("http://added{}:2380", self.coverage.members_added);
                let id = tally_node::cluster::member_id("sim", std::slice::from_ref(&url));
                self.add_member(id, leader);
                MembershipRequest::Add { peer_urls: vec![url], is_learner: true }
            }
            1 if !learners.is_empty() => MembershipRequest::Promote { id: self.rng.pick(&learners) },
            2 if voters.len() > 3 || !learners.is_empty() => {
                let candidates = if voters.len() > 3 { [voters, learners].concat() } else { learners };
                MembershipRequest::Remove { id: self.rng.pick(&candidates) }
            }
            _ => return,
        };
        self.trace(|| format!("leader {leader}: {request:?}"));
        self.call(leader, |n| {
            let waiter = n.host().waiter(u64::MAX, 0);
            n.membership(request, waiter);
        });
    }

    /// A member the leader is about to add: it starts with an empty disk, to learn everything.
    fn add_member(&mut self, id: NodeId, like: NodeId) {
        if self.members.contains_key(&id) {
            return;
        }
        let mut setup = self.members[&like].setup().clone();
        setup.raft.id = id;
        setup.raft.seed = self.opts.seed.wrapping_mul(1_000_003).wrapping_add(id);
        setup.initial = InitialState::Existing;
        let tick_us = TICK_US + self.rng.range(0, TICK_US / 20);
        self.members.insert(id, Member::new(id, setup, tick_us));
        self.ids.push(id);
        self.start_member(id);
    }

    /// The leader hands over to a random voter, or steps down as a stopping member does.
    fn transfer(&mut self) {
        let Some(leader) = self.leader() else { return };
        let voters: Vec<NodeId> =
            self.members[&leader].node.as_ref().expect("leads").engine().conf_state().voters.iter().copied().collect();
        let target = self.rng.pick(&voters);
        let step_down = self.rng.chance(0.3);
        self.coverage.transfers += 1;
        self.trace(|| {
            format!("leader {leader}: {}", if step_down { "step down".into() } else { format!("transfer to {target}") })
        });
        self.call(leader, |n| {
            if step_down {
                n.step_down();
            } else {
                let _ = n.transfer(target);
            }
        });
    }

    fn partition(&mut self) {
        self.blocked.clear();
        let ids = self.ids.clone();
        match self.rng.range(0, 3) {
            0 => {
                if let Some(leader) = self.leader() {
                    self.trace(|| format!("partition: isolate leader {leader}"));
                    links::isolate(&mut self.blocked, leader, &ids);
                }
            }
            1 => {
                let side = links::draw_side(&mut self.rng, &ids);
                self.trace(|| format!("partition: split {side:?} from the rest"));
                links::split(&mut self.blocked, &side, &ids);
            }
            _ => self.trace(|| "partition: heal".to_string()),
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.members
            .values()
            .filter_map(|m| m.node.as_ref().map(|n| (m.id, n.engine())))
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(id, _)| id)
    }

    fn heal(&mut self) {
        self.trace(|| "heal: liveness phase".to_string());
        self.healed_at = Some(self.now());
        self.blocked.clear();
        for id in self.ids.clone() {
            if !self.members[&id].is_up() && !self.members[&id].removed {
                self.start_member(id);
            }
        }
    }

    // ---- the loop ----

    /// Whether `node` is up in the incarnation an event was scheduled for: a timer or a
    /// background thread of an earlier incarnation died with its process.
    fn running(&self, node: NodeId, incarnation: u64) -> bool {
        self.members.get(&node).is_some_and(|m| m.is_up() && m.incarnation == incarnation)
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => {
                if !self.running(node, incarnation) {
                    return;
                }
                let tick_us = self.members[&node].tick_us;
                self.call(node, |n| n.tick());
                self.schedule(self.now() + tick_us, Event::Tick { node, incarnation });
            }
            Event::Deliver(m) => self.deliver(m),
            Event::Forward { from, to, commands } => {
                self.trace(|| format!("member {to} gets {} commands forwarded by {from}", commands.len()));
                if self.members.get(&to).is_some_and(|m| m.is_up()) && !self.refuses_removed(to, from) {
                    if self.leads_newest_term(to) {
                        for cmd in &commands {
                            if let Some(tally_proto::tally_v1::command::Op::ZkTouch(touch)) = &cmd.op {
                                touch.sessions.iter().for_each(|&s| self.zk_sessions.heard(s, self.now()));
                            }
                        }
                    }
                    self.call(to, |n| {
                        for cmd in commands {
                            n.forwarded(cmd);
                        }
                    });
                }
            }
            Event::AwaitForwarded(waiting) => self.await_forwarded(*waiting),
            Event::RemovalNotice(notice) => self.removal_notice(*notice),
            Event::Rejected { node } => self.call(node, |n| n.rejected("removed from the cluster")),
            Event::Request { client, seq, to } => self.deliver_request(client, seq, to),
            Event::Response { client, seq, reply } => self.client_response(client, seq, reply),
            Event::ClientStart { client } => self.start_client(client),
            Event::ClientTimeout { client, seq, attempt } => self.client_timeout(client, seq, attempt),
            Event::SnapshotWritten { node, incarnation, job } => {
                // The thread died with its process.
                if self.running(node, incarnation) {
                    self.coverage.snapshots_written += 1;
                    self.call(node, |n| {
                        let written = job.run();
                        n.snapshot_written(written);
                    });
                }
            }
            Event::Release { node, incarnation, retired } => {
                // The thread died with its process: recovery deletes the files.
                if self.running(node, incarnation) {
                    retired.release();
                }
            }
            Event::SnapshotStatus { node, incarnation, peer, ok } => {
                if self.running(node, incarnation) {
                    self.call(node, |n| n.snapshot_done(peer, ok));
                }
            }
            Event::Reset { node, peer } => self.call(node, |n| n.peer_lost(peer)),
            Event::Restart { node } => {
                if !self.members[&node].is_up() && !self.members[&node].removed {
                    self.start_member(node);
                }
            }
            Event::Fault => {
                if self.healed_at.is_none() {
                    self.fault();
                    let every = self.plan.fault_every_us;
                    let at = self.now() + self.rng.range(every / 2, every * 3 / 2);
                    self.schedule(at, Event::Fault);
                }
            }
            Event::Heal => self.heal(),
            Event::PipeStart { pipe } => self.pipe_start(pipe),
            Event::PipeRequest { pipe, conn, seq, to } => self.pipe_request(pipe, conn, seq, to),
            Event::PipeTimeout { pipe, conn, seq, attempt } => self.pipe_timeout(pipe, conn, seq, attempt),
            Event::PipeAbandon { pipe, conn } => self.pipe_abandon(pipe, conn),
        }
    }

    /// Each live member's role, term, leader, commit and applied index, for a violation's detail.
    fn members_state(&self) -> String {
        let state = |m: &Member| {
            m.node.as_ref().map_or("down".to_string(), |n| {
                let r = n.engine();
                format!(
                    "{:?} t{} leader {:?} commit {} applied {} last {}",
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.committed(),
                    r.applied(),
                    r.last_index()
                )
            })
        };
        self.ids.iter().map(|id| format!("{id}: {}", state(&self.members[id]))).collect::<Vec<_>>().join("; ")
    }

    /// A client's attempt went unanswered: it asks again, unless the cluster had settled,
    /// which must answer every request.
    fn client_timeout(&mut self, client: usize, seq: u64, attempt: u32) {
        let Some(p) = self.clients[client].pending.as_ref().filter(|p| p.seq == seq && p.attempt == attempt) else {
            return;
        };
        let settled = self.healed_at.is_some_and(|h| p.sent >= h + SETTLE_US);
        if settled && self.now() >= p.sent + REQUEST_TIMEOUT_US {
            let detail = format!(
                "client {client}'s {:?} sent at {:.3}s got no answer; members: {}",
                p.request,
                p.sent as f64 / 1e6,
                self.members_state()
            );
            return self.violation("a healthy cluster answers every request", detail);
        }
        self.send_request(client);
    }

    /// A peer message arrives (a snapshot's sender then hears how its transfer ended).
    fn deliver(&mut self, m: PeerMessage) {
        let (from, to) = (m.from(), m.to());
        let snapshot = m.snapshot().is_some();
        if !self.members.get(&to).is_some_and(|n| n.is_up()) {
            if snapshot {
                self.snapshot_status(from, to, false);
            }
            return;
        }
        if self.refuses_removed(to, from) {
            return;
        }
        self.call(to, |n| n.step(m));
        if snapshot {
            self.snapshot_status(from, to, true);
        }
    }

    /// The transport of `to` refuses a member it knows was removed, and tells it so.
    fn refuses_removed(&mut self, to: NodeId, from: NodeId) -> bool {
        let refused = self.members[&to].node.as_ref().is_some_and(|n| n.knows_removed(from));
        if refused {
            let at = self.now() + self.net_delay();
            self.schedule(at, Event::Rejected { node: from });
        }
        refused
    }

    fn snapshot_status(&mut self, from: NodeId, to: NodeId, ok: bool) {
        let Some(incarnation) = self.members.get(&from).map(|m| m.incarnation) else { return };
        let at = self.now() + self.net_delay();
        self.schedule(at, Event::SnapshotStatus { node: from, incarnation, peer: to, ok });
    }

    fn busy_clients(&self) -> usize {
        self.clients.iter().filter(|c| c.pending.is_some()).count()
    }

    pub fn run(mut self) -> WholeReport {
        while let Some((at, event)) = self.queue.pop() {
            self.now.set(at);
            self.checker.now_us = at;
            self.events += 1;
            self.step(event);
            if !self.checker.violations.is_empty() {
                break;
            }
            if let Some(healed) = self.healed_at {
                if self.busy_clients() == 0 && self.now() >= healed + CLIENTS_STOP_AFTER_HEAL_US {
                    break;
                }
                if self.now() > healed + LIVENESS_US_MAX {
                    let detail = format!(
                        "{}s after healing, {} clients still wait for an answer",
                        LIVENESS_US_MAX / 1_000_000,
                        self.busy_clients()
                    );
                    self.violation("liveness", detail);
                    break;
                }
            }
        }
        self.final_checks();
        WholeReport {
            seed: self.opts.seed,
            nodes: self.ids.len(),
            operations: self.history.len(),
            events: self.events,
            coverage: WholeCoverage {
                lease_expiries: self.leases.expiries,
                zk_session_expiries: self.zk_sessions.expiries,
                zk_pipelined_applied: self.zk_pipelines.writes_applied,
                zk_pipelined_acknowledged: self.zk_pipelines.acknowledged,
                zk_refused_as_moved: self.zk_pipelines.refused_as_moved,
                ..self.coverage
            },
            violations: self.checker.violations,
        }
    }

    fn final_checks(&mut self) {
        if !self.checker.violations.is_empty() {
            return;
        }
        let now = self.now();
        for w in &mut self.watchers {
            w.pump();
            w.check(self.revisions.events(), now, &mut self.checker.violations);
        }
        if let linearizability::CheckResult::NotLinearizable { key, explanation } =
            linearizability::check(&self.history)
        {
            self.violation("linearizability", format!("key k{key}: {explanation}"));
        }
    }
}

impl WholeSim {
    /// Whether `id` leads, in the newest term any running member knows: a leader that has
    /// not been deposed yet, whose successor (if any) is promoted after this moment.
    fn leads_newest_term(&self, id: NodeId) -> bool {
        let terms = self.members.values().filter_map(|m| m.node.as_ref()).map(|n| n.engine().term());
        let newest = terms.max().unwrap_or(0);
        self.members[&id]
            .node
            .as_ref()
            .is_some_and(|n| n.engine().role() == Role::Leader && n.engine().term() == newest)
    }
}

//! The event loop: one seeded, single-threaded run of a whole cluster in virtual time.
//! A safety phase with the seed's faults, then a liveness phase with every fault healed, in
//! which a leader must emerge and every client request must complete within a bound.

use std::collections::{BTreeMap, BTreeSet};

use tally_raft::{ConfChange, ConfChangeOp, Config, Index, InjectedBug, Message, MessageBody, NodeId, Persisted, Role};

use crate::checker::{Checker, Violation};
use crate::client::{Client, ClientAction, Request, REQUEST_TIMEOUT_US};
use crate::faults::{FaultPlan, Mix, MIXES};
use crate::kv::ClientId;
use crate::linearizability::{self, CheckResult, Operation};
use crate::links;
use crate::node::{ClientResponse, Outputs, SimNode};
use crate::queue::EventQueue;
use crate::rng::Rng;

/// Virtual length of a tick before skew; with the core's default election_tick of 10 the
/// election timeout is 100-200 ms.
const TICK_US: u64 = 10_000;
/// How long after healing the cluster must have a leader and have answered every client.
pub const LIVENESS_US_MAX: u64 = 10_000_000;

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub mix: Option<Mix>,
    pub nodes: Option<usize>,
    pub bug: Option<InjectedBug>,
    pub safety_us: u64,
    pub trace: bool,
}

impl SimOptions {
    pub fn new(seed: u64) -> Self {
        Self { seed, mix: None, nodes: None, bug: None, safety_us: 3_000_000, trace: false }
    }
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub mix: Mix,
    pub nodes: usize,
    pub violations: Vec<Violation>,
    pub operations: usize,
    pub linearizability: CheckResult,
    /// Virtual time from healing to a leader that committed in its term.
    pub elect_after_heal_us: Option<u64>,
    pub events: u64,
    pub coverage: Coverage,
}

/// How often the run exercised the paths that matter, so a sweep can show it reached them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Coverage {
    pub snapshots_sent: u64,
    pub timeout_now_sent: u64,
    pub follower_reads: u64,
    pub durable_hints: u64,
    pub conf_changes_proposed: u64,
    pub crashes: u64,
    pub leaders: u64,
}

impl std::ops::AddAssign for Coverage {
    fn add_assign(&mut self, o: Self) {
        self.snapshots_sent += o.snapshots_sent;
        self.timeout_now_sent += o.timeout_now_sent;
        self.follower_reads += o.follower_reads;
        self.durable_hints += o.durable_hints;
        self.conf_changes_proposed += o.conf_changes_proposed;
        self.crashes += o.crashes;
        self.leaders += o.leaders;
    }
}

enum Event {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver(Message),
    Request {
        to: NodeId,
        request: Request,
    },
    Response {
        client: ClientId,
        response: ClientResponse,
    },
    ClientStart {
        client: ClientId,
    },
    ClientTimeout {
        client: ClientId,
        attempt: u32,
    },
    Fault,
    Crash {
        node: NodeId,
        incarnation: u64,
    },
    /// The transport of `node` reports that its connection to `peer` closed or reset.
    Reset {
        node: NodeId,
        peer: NodeId,
    },
    SpuriousReset,
    /// The transport of `node` (if still the same incarnation) reports how sending a snapshot
    /// to `peer` ended.
    SnapshotStatus {
        node: NodeId,
        incarnation: u64,
        peer: NodeId,
        ok: bool,
    },
    Restart {
        node: NodeId,
    },
    Heal,
}

pub struct Simulation {
    opts: SimOptions,
    rng: Rng,
    plan: FaultPlan,
    now: u64,
    queue: EventQueue<Event>,
    nodes: BTreeMap<NodeId, SimNode>,
    node_ids: Vec<NodeId>,
    spare_ids: Vec<NodeId>,
    blocked: links::Cuts,
    clients: Vec<Client>,
    history: Vec<Operation>,
    checker: Checker,
    healed_at: Option<u64>,
    elected_at: Option<u64>,
    /// Highest term whose leader the fault injector has seen (to find new leaders).
    newest_leader_term: u64,
    events: u64,
    coverage: Coverage,
    base_config: Config,
    snapshot_every: u64,
}

impl Simulation {
    pub fn new(opts: SimOptions) -> Self {
        let mut rng = Rng::new(opts.seed);
        let mix = opts.mix.unwrap_or(MIXES[(opts.seed % MIXES.len() as u64) as usize]);
        let size = opts.nodes.unwrap_or([3, 5, 7][((opts.seed / MIXES.len() as u64) % 3) as usize]);
        let plan = FaultPlan::draw(mix, &mut rng.fork());
        let mut base_config = Config::new(1);
        base_config.entries_per_msg_max = rng.pick(&[1, 2, 8, 64, 1024]);
        if let Some(n) = plan.entries_per_msg_max {
            base_config.entries_per_msg_max = n;
        }
        base_config.inflight_msgs_max = rng.pick(&[1, 4, 64]);
        base_config.pre_vote = rng.chance(0.8);
        base_config.check_quorum = rng.chance(0.8);
        base_config.injected_bug = opts.bug;
        base_config.compaction_lag_entries = rng.pick(&[0, 0, 3, 50]);
        if plan.fast_election_ticks > 0 {
            // Fast failover relies on leader leases (see Config::validate).
            base_config.check_quorum = true;
            base_config.pre_vote = true;
            base_config.fast_election_ticks = plan.fast_election_ticks;
        }
        // Early suspicion of a silent leader (the server's setting is one heartbeat).
        let jitter = if plan.mix == Mix::Resets { 2 } else { rng.pick(&[0, 0, 1, 2]) };
        if jitter > 0 {
            base_config.check_quorum = true;
            base_config.pre_vote = true;
            base_config.leader_silence_jitter_ticks = jitter;
        }
        let snapshot_every = rng.pick(&[5, 20, 100, 1_000_000]);
        let node_ids: Vec<NodeId> = (1..=size as u64).collect();
        let spare_ids = (size as u64 + 1..=size as u64 + 3).collect();
        let client_count = rng.range(2, 6);
        let mut sim = Self {
            opts,
            rng,
            plan,
            now: 0,
            queue: EventQueue::default(),
            nodes: BTreeMap::new(),
            node_ids: node_ids.clone(),
            spare_ids,
            blocked: BTreeSet::new(),
            clients: (1..=client_count).map(Client::new).collect(),
            history: Vec::new(),
            checker: Checker::default(),
            healed_at: None,
            elected_at: None,
            newest_leader_term: 0,
            events: 0,
            coverage: Coverage::default(),
            base_config,
            snapshot_every,
        };
        for &id in &node_ids {
            sim.add_node(id, Persisted::bootstrap(node_ids.iter().copied()));
        }
        for client in 1..=client_count {
            let at = sim.rng.range(0, 300_000);
            sim.schedule(at, Event::ClientStart { client });
        }
        if sim.plan.partitions || sim.plan.crashes || sim.plan.membership || sim.plan.transfers {
            let at = sim.plan.fault_every_us;
            sim.schedule(at, Event::Fault);
        }
        if sim.plan.spurious_resets_per_sec > 0.0 {
            let at = sim.next_spurious_reset();
            sim.schedule(at, Event::SpuriousReset);
        }
        let heal_at = sim.opts.safety_us;
        sim.schedule(heal_at, Event::Heal);
        sim
    }

    fn add_node(&mut self, id: NodeId, persisted: Persisted) {
        let mut config = self.base_config.clone();
        config.id = id;
        config.seed = self.opts.seed.wrapping_mul(1_000_003).wrapping_add(id);
        let skew = 1.0 + (self.rng.unit() * 2.0 - 1.0) * self.plan.skew;
        let tick_us = (TICK_US as f64 * skew) as u64;
        let node = SimNode::new(config, persisted, tick_us, self.snapshot_every);
        self.nodes.insert(id, node);
        if !self.node_ids.contains(&id) {
            self.node_ids.push(id);
        }
        self.start_node(id);
    }

    fn start_node(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("exists");
        let out = node.start(&mut self.checker);
        let (incarnation, tick_us) = (node.incarnation, node.tick_us);
        self.trace(|| format!("start node {id} (incarnation {incarnation})"));
        self.dispatch(out);
        let at = self.now + self.rng.range(1, tick_us);
        self.schedule(at, Event::Tick { node: id, incarnation });
    }

    /// Exponential gaps: resets arrive as a Poisson process over all nodes.
    fn next_spurious_reset(&mut self) -> u64 {
        let rate = self.plan.spurious_resets_per_sec * self.node_ids.len() as f64;
        let gap = -(1.0 - self.rng.unit()).ln() / rate;
        self.now + (gap * 1_000_000.0) as u64 + 1
    }

    /// A crashed process's connections reset at once: every live peer's transport notices.
    fn announce_crash(&mut self, crashed: NodeId) {
        let peers: Vec<NodeId> = self.nodes.values().filter(|n| n.is_up() && n.id != crashed).map(|n| n.id).collect();
        for node in peers {
            let at = self.now + self.rng.range(100, 2_000);
            self.schedule(at, Event::Reset { node, peer: crashed });
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.queue.schedule(at, event);
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            println!("{:>9.3}ms {}", self.now as f64 / 1000.0, what());
        }
    }

    fn net_delay(&mut self) -> u64 {
        self.plan.delay_base_us + self.rng.range(0, self.plan.delay_jitter_us + 1)
    }

    fn lossy(&self) -> bool {
        self.healed_at.is_none()
    }

    fn send(&mut self, m: Message) {
        match m.body {
            MessageBody::Snapshot { .. } => self.coverage.snapshots_sent += 1,
            MessageBody::TimeoutNow => self.coverage.timeout_now_sent += 1,
            MessageBody::ReadIndex { .. } => self.coverage.follower_reads += 1,
            MessageBody::LeaderDurable { .. } => self.coverage.durable_hints += 1,
            _ => {}
        }
        if self.blocked.contains(&(m.from, m.to)) || (self.lossy() && self.rng.chance(self.plan.drop)) {
            self.report_snapshot(&m, false);
            return;
        }
        // A snapshot travels on a stream of its own, which never duplicates it.
        let is_snapshot = matches!(m.body, MessageBody::Snapshot { .. });
        if !is_snapshot && self.lossy() && self.rng.chance(self.plan.duplicate) {
            let at = self.now + self.net_delay();
            self.schedule(at, Event::Deliver(m.clone()));
        }
        let at = self.now + self.net_delay();
        self.schedule(at, Event::Deliver(m));
    }

    /// A snapshot's transfer ended: its sender's transport reports it, one network delay later.
    fn report_snapshot(&mut self, m: &Message, ok: bool) {
        if !matches!(m.body, MessageBody::Snapshot { .. }) {
            return;
        }
        let Some(incarnation) = self.nodes.get(&m.from).map(|n| n.incarnation) else { return };
        let at = self.now + self.net_delay();
        self.schedule(at, Event::SnapshotStatus { node: m.from, incarnation, peer: m.to, ok });
    }

    fn dispatch(&mut self, out: Outputs) {
        for m in out.messages {
            self.send(m);
        }
        for (client, response) in out.responses {
            if self.lossy() && self.rng.chance(self.plan.drop) {
                continue;
            }
            let at = self.now + self.net_delay();
            self.schedule(at, Event::Response { client, response });
        }
    }

    fn client_action(&mut self, action: ClientAction) {
        if let ClientAction::Send { to, request, attempt } = action {
            let client = match &request {
                Request::Write(cmd) => cmd.client,
                Request::Read { client, .. } => *client,
            };
            if !(self.lossy() && self.rng.chance(self.plan.drop)) {
                let at = self.now + self.net_delay();
                self.schedule(at, Event::Request { to, request });
            }
            self.schedule(self.now + REQUEST_TIMEOUT_US, Event::ClientTimeout { client, attempt });
        }
    }

    /// Handles a node's Ready; in crash mixes, a crash may strike while it is being persisted.
    fn handle_ready(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("exists");
        let crash = self.healed_at.is_none()
            && node.raft.as_mut().is_some_and(|r| r.has_ready())
            && self.rng.chance(self.plan.crash_midway);
        let midway = crash.then(|| self.rng.range(0, 4) as usize);
        let out = node.handle_ready(&mut self.checker, midway);
        self.dispatch(out);
        if crash {
            self.coverage.crashes += 1;
            self.announce_crash(id);
            self.trace(|| format!("crash node {id} while persisting a ready"));
            let at = self.now + self.rng.range(10_000, 500_000);
            self.schedule(at, Event::Restart { node: id });
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        while let Some((at, event)) = self.queue.pop() {
            self.now = at;
            self.checker.now_us = at;
            self.events += 1;
            self.step(event);
            self.check_leaders();
            self.check_commits();
            if !self.checker.violations.is_empty() {
                break;
            }
            if let Some(healed) = self.healed_at {
                if self.elected_at.is_some() && self.clients.iter().all(|c| !c.is_busy()) {
                    break;
                }
                if self.now > healed + LIVENESS_US_MAX {
                    let busy = self.clients.iter().filter(|c| c.is_busy()).count();
                    let detail = format!(
                        "{}s after healing: leader elected: {}, clients still waiting: {busy}",
                        LIVENESS_US_MAX / 1_000_000,
                        self.elected_at.is_some()
                    );
                    self.checker.violations.push(Violation { property: "liveness", time_us: self.now, detail });
                    break;
                }
            }
        }
        self.check_no_election_storm();
        let linearizability = linearizability::check(&self.history);
        if let CheckResult::NotLinearizable { key, explanation } = &linearizability {
            let detail = format!("key {key}: {explanation}");
            self.checker.violations.push(Violation { property: "linearizability", time_us: self.now, detail });
        }
        Report {
            seed: self.opts.seed,
            mix: self.plan.mix,
            nodes: self.nodes.len(),
            violations: self.checker.violations,
            operations: self.history.len(),
            linearizability,
            elect_after_heal_us: self.elected_at.zip(self.healed_at).map(|(e, h)| e - h),
            events: self.events,
            coverage: self.coverage,
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver(m) => self.on_deliver(m),
            Event::Request { to, request } => self.on_request(to, request),
            Event::Response { client, response } => self.on_response(client, response),
            Event::ClientStart { client } => self.on_client_start(client),
            Event::ClientTimeout { client, attempt } => self.on_client_timeout(client, attempt),
            Event::Fault => self.on_fault(),
            Event::Crash { node, incarnation } => self.on_crash(node, incarnation),
            Event::Reset { node, peer } => self.on_reset(node, peer),
            Event::SnapshotStatus { node, incarnation, peer, ok } => {
                self.on_snapshot_status(node, incarnation, peer, ok)
            }
            Event::SpuriousReset => self.on_spurious_reset(),
            Event::Restart { node } => {
                if !self.nodes[&node].is_up() {
                    self.start_node(node);
                }
            }
            Event::Heal => self.heal(),
        }
    }

    /// A node's clock ticks (if it is still the incarnation that scheduled the tick).
    fn on_tick(&mut self, node: NodeId, incarnation: u64) {
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        if !n.is_up() || n.incarnation != incarnation {
            return;
        }
        n.raft_mut().tick();
        let tick_us = n.tick_us;
        self.handle_ready(node);
        self.schedule(self.now + tick_us, Event::Tick { node, incarnation });
    }

    /// A message reaches its recipient, if it is up; a snapshot's sender learns how it went.
    fn on_deliver(&mut self, m: Message) {
        let to = m.to;
        if !self.nodes.get(&to).is_some_and(|n| n.is_up()) {
            self.report_snapshot(&m, false);
            return;
        }
        self.trace(|| format!("deliver {m:?}"));
        // The receiver acknowledges a snapshot once it holds all of it.
        let delivered_snapshot = matches!(m.body, MessageBody::Snapshot { .. }).then(|| m.clone());
        let n = self.nodes.get_mut(&to).expect("checked");
        n.raft_mut().step(m).expect("routed to its recipient");
        if let Some(m) = delivered_snapshot {
            self.report_snapshot(&m, true);
        }
        self.handle_ready(to);
    }

    /// A client's request reaches a node, if it is up.
    fn on_request(&mut self, to: NodeId, request: Request) {
        if !self.nodes.get(&to).is_some_and(|n| n.is_up()) {
            return;
        }
        self.trace(|| format!("node {to} gets {request:?}"));
        let n = self.nodes.get_mut(&to).expect("checked");
        let (client, immediate) = match request {
            Request::Write(cmd) => (cmd.client, n.write(cmd)),
            Request::Read { client, seq, key } => (client, n.read(client, seq, key)),
        };
        let mut out = Outputs::default();
        out.responses.extend(immediate.map(|r| (client, r)));
        self.dispatch(out);
        self.handle_ready(to);
    }

    /// A response reaches its client; an idle client starts again a little later (until healing).
    fn on_response(&mut self, client: ClientId, response: ClientResponse) {
        self.trace(|| format!("client {client} gets {response:?}"));
        let ids = self.node_ids.clone();
        let c = &mut self.clients[client as usize - 1];
        let action = c.on_response(response, &mut self.rng, &ids, self.now, &mut self.history);
        let idle = !c.is_busy();
        self.client_action(action);
        if idle && self.healed_at.is_none() {
            let at = self.now + self.rng.range(0, 20_000);
            self.schedule(at, Event::ClientStart { client });
        }
    }

    /// An idle client starts its next operation (not after healing).
    fn on_client_start(&mut self, client: ClientId) {
        let ids = self.node_ids.clone();
        let c = &mut self.clients[client as usize - 1];
        if c.is_busy() || self.healed_at.is_some() {
            return;
        }
        let action = c.start(&mut self.rng, &ids, self.now, &mut self.history);
        self.client_action(action);
    }

    /// A client's attempt timed out: it retries elsewhere (if still waiting on that attempt).
    fn on_client_timeout(&mut self, client: ClientId, attempt: u32) {
        let ids = self.node_ids.clone();
        let action = self.clients[client as usize - 1].on_timeout(attempt, &mut self.rng, &ids);
        self.client_action(action);
    }

    /// Until healing: a fault, and the next one scheduled.
    fn on_fault(&mut self) {
        if self.healed_at.is_none() {
            self.inject_fault();
            let every = self.plan.fault_every_us;
            let at = self.now + self.rng.range(every / 2, every * 3 / 2);
            self.schedule(at, Event::Fault);
        }
    }

    /// A scheduled crash of a new leader (if it is still that incarnation, and not after
    /// healing), and its restart.
    fn on_crash(&mut self, node: NodeId, incarnation: u64) {
        let n = self.nodes.get_mut(&node).expect("exists");
        if n.is_up() && n.incarnation == incarnation && self.healed_at.is_none() {
            n.crash();
            self.coverage.crashes += 1;
            self.announce_crash(node);
            self.trace(|| format!("crash new leader {node}"));
            let at = self.now + self.rng.range(10_000, 500_000);
            self.schedule(at, Event::Restart { node });
        }
    }

    /// `node`'s transport reports its connection to `peer` closed.
    fn on_reset(&mut self, node: NodeId, peer: NodeId) {
        if self.nodes.get(&node).is_some_and(|n| n.is_up()) {
            self.trace(|| format!("node {node}: connection to {peer} reset"));
            self.nodes.get_mut(&node).expect("exists").raft_mut().report_unreachable(peer);
            self.handle_ready(node);
        }
    }

    /// `node`'s transport reports how sending a snapshot to `peer` ended.
    fn on_snapshot_status(&mut self, node: NodeId, incarnation: u64, peer: NodeId, ok: bool) {
        if self.nodes.get(&node).is_some_and(|n| n.is_up() && n.incarnation == incarnation) {
            self.trace(|| format!("node {node}: snapshot to {peer} {}", if ok { "sent" } else { "failed" }));
            self.nodes.get_mut(&node).expect("exists").raft_mut().report_snapshot(peer, ok);
            self.handle_ready(node);
        }
    }

    /// Until healing: a random up node's connection to its leader resets, and the next such
    /// reset is scheduled.
    fn on_spurious_reset(&mut self) {
        if self.healed_at.is_none() {
            let up: Vec<NodeId> = self.nodes.values().filter(|n| n.is_up()).map(|n| n.id).collect();
            if !up.is_empty() {
                let node = self.rng.pick(&up);
                if let Some(peer) = self.nodes[&node].raft().leader() {
                    self.schedule(self.now, Event::Reset { node, peer });
                }
            }
            let at = self.next_spurious_reset();
            self.schedule(at, Event::SpuriousReset);
        }
    }

    fn heal(&mut self) {
        self.trace(|| "heal: liveness phase".to_string());
        self.healed_at = Some(self.now);
        self.blocked.clear();
        let down: Vec<NodeId> = self.nodes.iter().filter(|(_, n)| !n.is_up()).map(|(&id, _)| id).collect();
        for id in down {
            self.start_node(id);
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up() && n.raft().role() == Role::Leader)
            .max_by_key(|n| n.raft().term())
            .map(|n| n.id)
    }

    /// Election safety and leader completeness, after every event.
    fn check_leaders(&mut self) {
        let mut new_leaders = Vec::new();
        for node in self.nodes.values() {
            let Some(raft) = node.raft.as_ref() else {
                continue;
            };
            if raft.role() != Role::Leader {
                continue;
            }
            self.checker.observe_leader(raft.term(), node.id);
            self.checker.check_leader_complete(node.id, raft.term(), raft.first_index() - 1, |i| raft.log_term(i));
            if self.healed_at.is_some()
                && self.elected_at.is_none()
                && raft.log_term(raft.committed()) == Some(raft.term())
            {
                self.elected_at = Some(self.now);
            }
            if raft.term() > self.newest_leader_term {
                self.coverage.leaders += 1;
                self.newest_leader_term = raft.term();
                new_leaders.push((node.id, node.incarnation));
            }
        }
        for (node, incarnation) in new_leaders {
            if self.rng.chance(self.plan.kill_new_leader) {
                let at = self.now + self.rng.range(0, 30_000);
                self.schedule(at, Event::Crash { node, incarnation });
            }
        }
    }

    /// Records every commit index advance; in runs whose membership never changes, also checks
    /// that each newly committed entry is held by every voter that could still be elected.
    fn check_commits(&mut self) {
        let advanced: Vec<(NodeId, Index)> =
            self.nodes.values_mut().filter_map(|n| n.take_commit_advance().map(|c| (n.id, c))).collect();
        for (id, committed) in advanced {
            let raft = self.nodes[&id].raft();
            let Some(term) = raft.log_term(committed) else { continue };
            let (observer_term, conf) = (raft.term(), raft.conf_state().clone());
            self.checker.observe_commit(observer_term, committed, term);
            if !self.plan.membership {
                let logs = self.nodes.iter().map(|(&id, n)| (id, n.durable_log())).collect();
                self.checker.check_commit_safe(&conf, committed, term, &logs);
            }
        }
    }

    /// Liveness under spurious connection resets (resets mix: no other fault). Bound: one
    /// leader change per started virtual minute beyond the first election. Why it holds: a
    /// reset makes only the node that saw it drop the leader; the other voters still hold the
    /// leader's lease and ignore its pre-vote, and the next heartbeat restores it. A change
    /// needs a quorum of voters to see resets within the same heartbeat interval, which at 0.5
    /// resets per node per second happens far less than once a minute (measured: never in
    /// 4000 runs of 3 and 5 nodes).
    fn check_no_election_storm(&mut self) {
        if self.plan.mix != Mix::Resets {
            return;
        }
        let minutes = self.opts.safety_us.div_ceil(60_000_000);
        let changes = self.coverage.leaders.saturating_sub(1);
        if changes > minutes {
            let detail = format!("{changes} leader changes in {minutes} virtual minute(s) with only spurious resets");
            self.checker.violations.push(Violation { property: "no election storm", time_us: self.now, detail });
        }
    }

    fn inject_fault(&mut self) {
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
            1 => self.crash_one(),
            2 => self.change_membership(),
            _ => self.transfer(),
        }
    }

    fn partition(&mut self) {
        self.blocked.clear();
        let ids = self.node_ids.clone();
        match self.rng.range(0, 4) {
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
            2 => {
                // Asymmetric: one node cannot send to some others but still hears them.
                let from = self.rng.pick(&ids);
                for &to in &ids {
                    if to != from && self.rng.chance(0.6) {
                        self.blocked.insert((from, to));
                    }
                }
                self.trace(|| format!("partition: one-way cut from {from}"));
            }
            _ => self.trace(|| "partition: heal".to_string()),
        }
    }

    fn crash_one(&mut self) {
        let up: Vec<NodeId> = self.nodes.values().filter(|n| n.is_up()).map(|n| n.id).collect();
        if up.is_empty() {
            return;
        }
        let victim = match self.leader() {
            Some(leader) if self.rng.chance(0.5) => leader,
            _ => self.rng.pick(&up),
        };
        self.trace(|| format!("crash node {victim}"));
        self.coverage.crashes += 1;
        self.announce_crash(victim);
        self.nodes.get_mut(&victim).expect("exists").crash();
        let at = self.now + self.rng.range(10_000, 800_000);
        self.schedule(at, Event::Restart { node: victim });
    }

    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let conf = self.nodes[&leader].raft().conf_state().clone();
        let learners: Vec<NodeId> = conf.learners.iter().copied().collect();
        let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
        let change = match self.rng.range(0, 4) {
            0 if !learners.is_empty() => ConfChangeOp::AddVoter(self.rng.pick(&learners)),
            1 if !self.spare_ids.is_empty() => {
                let id = self.spare_ids.remove(0);
                self.add_node(id, Persisted::default());
                ConfChangeOp::AddLearner(id)
            }
            2 if voters.len() > 3 => ConfChangeOp::Remove(self.rng.pick(&voters)),
            3 if voters.len() > 3 => ConfChangeOp::AddLearner(self.rng.pick(&voters)),
            _ => return,
        };
        let result =
            self.nodes.get_mut(&leader).expect("leader").raft_mut().propose_conf_change(ConfChange::new(vec![change]));
        self.trace(|| format!("leader {leader} proposes {change:?}: {result:?}"));
        self.coverage.conf_changes_proposed += u64::from(result.is_ok());
        self.handle_ready(leader);
    }

    fn transfer(&mut self) {
        let Some(leader) = self.leader() else { return };
        let voters: Vec<NodeId> = self.nodes[&leader].raft().conf_state().voters.iter().copied().collect();
        let target = self.rng.pick(&voters);
        let result = self.nodes.get_mut(&leader).expect("leader").raft_mut().transfer_leader(target);
        self.trace(|| format!("leader {leader} transfers to {target}: {result:?}"));
        self.handle_ready(leader);
    }
}

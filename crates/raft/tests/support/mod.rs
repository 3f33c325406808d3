//! A synchronous in-memory cluster for scenario tests: every node's Ready is handled per the
//! contract (persist to an in-memory disk, send, apply), and the test decides which messages
//! are delivered.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tally_raft::*;

#[derive(Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

pub struct Node {
    pub raft: Raft,
    pub disk: Disk,
    /// The state machine: every applied non-empty normal command, in order.
    pub state: Vec<Bytes>,
    pub read_states: Vec<ReadState>,
}

/// Returns false to drop a message.
pub type MessageFilter = Box<dyn FnMut(&Message) -> bool>;

pub struct Network {
    pub nodes: BTreeMap<NodeId, Node>,
    pub config: Box<dyn Fn(NodeId) -> Config>,
    in_flight: VecDeque<Message>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Every message handed to the network, delivered or not.
    pub sent: Vec<Message>,
    /// Optional filter: return false to drop a message.
    pub filter: Option<MessageFilter>,
    /// Report every snapshot's transfer to its sender (`report_snapshot`) as a real transport
    /// does: a failure when it is dropped, success once it is delivered. Tests of the report
    /// itself turn this off and report by hand.
    pub report_snapshots: bool,
}

pub fn cmd(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn encode_state(state: &[Bytes]) -> Bytes {
    let mut buf = BytesMut::new();
    for cmd in state {
        buf.put_u32(cmd.len() as u32);
        buf.put_slice(cmd);
    }
    buf.freeze()
}

fn decode_state(mut data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while data.has_remaining() {
        let len = data.get_u32() as usize;
        out.push(Bytes::copy_from_slice(&data[..len]));
        data.advance(len);
    }
    out
}

/// (sender, recipient) of a snapshot message; `None` for any other message.
fn snapshot_route(m: &Message) -> Option<(NodeId, NodeId)> {
    matches!(m.body, MessageBody::Snapshot { .. }).then_some((m.from, m.to))
}

impl Network {
    pub fn new(n: u64) -> Self {
        Self::with_config(n, Config::new)
    }

    pub fn with_config(n: u64, config: impl Fn(NodeId) -> Config + 'static) -> Self {
        let mut net = Self {
            nodes: BTreeMap::new(),
            config: Box::new(config),
            in_flight: VecDeque::new(),
            blocked: BTreeSet::new(),
            sent: Vec::new(),
            filter: None,
            report_snapshots: true,
        };
        for id in 1..=n {
            let persisted = Persisted::bootstrap(1..=n);
            net.start(id, persisted);
        }
        net
    }

    /// Starts (or restarts) node `id` from `persisted`.
    pub fn start(&mut self, id: NodeId, persisted: Persisted) {
        let disk = Disk {
            hard_state: persisted.hard_state,
            snapshot: persisted.snapshot.clone(),
            entries: persisted.entries.clone(),
        };
        let state = decode_state(&persisted.snapshot.data);
        let raft = Raft::new((self.config)(id), persisted).expect("valid config");
        self.nodes.insert(id, Node { raft, disk, state, read_states: Vec::new() });
        // Apply what the disk says is committed (the bootstrap membership, at least).
        self.handle_ready(id);
    }

    /// A fresh node that will join an existing cluster (knows nothing yet).
    pub fn start_joining(&mut self, id: NodeId) {
        self.start(id, Persisted::default());
    }

    /// Crash: everything not durable is lost, then the node restarts from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let disk = self.nodes[&id].disk.clone();
        let lost: Vec<Message> = self.in_flight.iter().filter(|m| m.to == id && m.from != id).cloned().collect();
        self.in_flight.retain(|m| m.to != id && m.from != id);
        for m in lost {
            self.report_snapshot(snapshot_route(&m), false);
        }
        let persisted = Persisted { hard_state: disk.hard_state, snapshot: disk.snapshot, entries: disk.entries };
        self.start(id, persisted);
    }

    pub fn node(&self, id: NodeId) -> &Raft {
        &self.nodes[&id].raft
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Raft {
        &mut self.nodes.get_mut(&id).unwrap().raft
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys() {
            if other != id {
                self.blocked.insert((id, other));
                self.blocked.insert((other, id));
            }
        }
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Handles every pending Ready of node `id`.
    pub fn handle_ready(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        while node.raft.has_ready() {
            let ready = node.raft.ready();
            self.in_flight.extend(ready.messages.iter().cloned());
            self.sent.extend(ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                node.disk.snapshot = snapshot.clone();
                node.disk.entries.clear();
                node.state = decode_state(&snapshot.data);
            }
            if let Some(first) = ready.entries.first() {
                node.disk.entries.retain(|e| e.index < first.index);
                node.disk.entries.extend(ready.entries.iter().cloned());
            }
            if let Some(hs) = ready.hard_state {
                node.disk.hard_state = hs;
            }
            self.in_flight.extend(ready.persisted_messages.iter().cloned());
            self.sent.extend(ready.persisted_messages);
            for entry in ready.committed_entries {
                if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
                    node.state.push(entry.data);
                }
            }
            node.read_states.extend(ready.read_states);
            node.raft.advance();
        }
    }

    /// Delivers messages until the cluster is quiet. Returns how many were delivered.
    pub fn stabilize(&mut self) -> usize {
        let mut delivered = 0;
        loop {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.handle_ready(id);
            }
            let Some(m) = self.in_flight.pop_front() else {
                return delivered;
            };
            let route = snapshot_route(&m);
            let passes = !self.blocked.contains(&(m.from, m.to)) && self.nodes.contains_key(&m.to);
            if !passes || !self.filter.as_mut().is_none_or(|filter| filter(&m)) {
                self.report_snapshot(route, false);
                continue;
            }
            delivered += 1;
            assert!(delivered < 1_000_000, "cluster never quiesced");
            let to = m.to;
            self.node_mut(to).step(m).unwrap();
            self.report_snapshot(route, true);
        }
    }

    /// With reports on, tells a snapshot's sender how its transfer (`route`: from, to) ended.
    fn report_snapshot(&mut self, route: Option<(NodeId, NodeId)>, ok: bool) {
        let Some((from, to)) = route.filter(|_| self.report_snapshots) else { return };
        if let Some(node) = self.nodes.get_mut(&from) {
            node.raft.report_snapshot(to, ok);
        }
    }

    /// Ticks every node `n` times, stabilizing after each tick.
    pub fn tick_all(&mut self, n: u32) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.node_mut(id).tick();
            }
            self.stabilize();
        }
    }

    pub fn tick(&mut self, id: NodeId, n: u32) {
        for _ in 0..n {
            self.node_mut(id).tick();
            self.stabilize();
        }
    }

    pub fn elect(&mut self, id: NodeId) {
        self.node_mut(id).campaign();
        self.stabilize();
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} failed to win");
    }

    pub fn propose(&mut self, id: NodeId, data: &str) -> Result<Index, ProposeError> {
        let index = self.node_mut(id).propose(cmd(data))?;
        self.stabilize();
        Ok(index)
    }

    /// Takes a snapshot of node `id`'s state machine at its applied index and compacts.
    pub fn compact(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let index = node.raft.applied();
        let meta =
            SnapshotMeta { index, term: node.raft.log_term(index).unwrap(), conf: node.raft.conf_state().clone() };
        let snapshot = Snapshot { meta, data: encode_state(&node.state) };
        node.disk.snapshot = snapshot.clone();
        node.disk.entries.retain(|e| e.index > index);
        node.raft.compact(snapshot);
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.raft.role() == Role::Leader).map(|(&id, _)| id).collect()
    }

    pub fn state(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id].state.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    pub fn count_sent(&self, pred: impl Fn(&Message) -> bool) -> usize {
        self.sent.iter().filter(|m| pred(m)).count()
    }
}

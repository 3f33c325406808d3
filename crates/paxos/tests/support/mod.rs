//! An in-memory Multi-Paxos cluster for tests: every member's Ready is handled per the contract
//! (send, persist to an in-memory disk, send what vouches for it, apply); the test decides which
//! messages are delivered, in what order, and when members crash.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tally_consensus::*;
use tally_paxos::multi::*;

#[derive(Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

impl Disk {
    fn persisted(&self) -> Persisted {
        Persisted { hard_state: self.hard_state, snapshot: self.snapshot.clone(), entries: self.entries.clone() }
    }
}

pub struct Member {
    pub paxos: MultiPaxos,
    pub disk: Disk,
    /// The state machine: every applied non-empty command, with its slot.
    pub state: Vec<(Index, Bytes)>,
    pub read_states: Vec<ReadState>,
}

pub struct Cluster {
    pub members: BTreeMap<NodeId, Member>,
    pub config: Box<dyn Fn(NodeId) -> Config>,
    pub in_flight: VecDeque<Message>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    pub sent: Vec<Message>,
    /// Every slot any member applied, with its value: one value per slot, forever.
    pub chosen: BTreeMap<Index, Bytes>,
    /// Slots where a member applied a value other than the one applied before.
    pub violations: Vec<String>,
}

pub fn cmd(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn encode_state(state: &[(Index, Bytes)]) -> Bytes {
    let mut buf = BytesMut::new();
    for (index, cmd) in state {
        buf.put_u64(*index);
        buf.put_u32(cmd.len() as u32);
        buf.put_slice(cmd);
    }
    buf.freeze()
}

fn decode_state(mut data: &[u8]) -> Vec<(Index, Bytes)> {
    let mut out = Vec::new();
    while data.has_remaining() {
        let index = data.get_u64();
        let len = data.get_u32() as usize;
        out.push((index, Bytes::copy_from_slice(&data[..len])));
        data.advance(len);
    }
    out
}

impl Cluster {
    pub fn new(n: u64) -> Self {
        Self::with_config(n, Config::new)
    }

    pub fn with_config(n: u64, config: impl Fn(NodeId) -> Config + 'static) -> Self {
        let mut cluster = Self {
            members: BTreeMap::new(),
            config: Box::new(config),
            in_flight: VecDeque::new(),
            blocked: BTreeSet::new(),
            sent: Vec::new(),
            chosen: BTreeMap::new(),
            violations: Vec::new(),
        };
        for id in 1..=n {
            cluster.start(id, Persisted::bootstrap(1..=n));
        }
        cluster
    }

    pub fn start(&mut self, id: NodeId, persisted: Persisted) {
        let disk = Disk {
            hard_state: persisted.hard_state,
            snapshot: persisted.snapshot.clone(),
            entries: persisted.entries.clone(),
        };
        let state = decode_state(&persisted.snapshot.data);
        let paxos = MultiPaxos::new((self.config)(id), persisted).expect("valid config");
        self.members.insert(id, Member { paxos, disk, state, read_states: Vec::new() });
        self.handle_ready(id);
    }

    /// Crash: what is not durable is lost, and the member restarts from its disk.
    pub fn restart(&mut self, id: NodeId) {
        if std::env::var("PAXOS_TRACE").is_ok() {
            eprintln!("restart {id}");
        }
        let persisted = self.members[&id].disk.persisted();
        let (lost, kept) = std::mem::take(&mut self.in_flight).into_iter().partition(|m| m.to == id);
        self.in_flight = kept;
        for m in lost {
            self.drop_message(m);
        }
        self.start(id, persisted);
    }

    pub fn paxos(&self, id: NodeId) -> &MultiPaxos {
        &self.members[&id].paxos
    }

    pub fn paxos_mut(&mut self, id: NodeId) -> &mut MultiPaxos {
        &mut self.members.get_mut(&id).unwrap().paxos
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.members.keys() {
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

    /// Handles every pending Ready of member `id`. With `crash_before_persist`, the member
    /// crashes after sending its first Ready's `messages` and before persisting anything.
    pub fn handle_ready_or_crash(&mut self, id: NodeId, crash_before_persist: bool) {
        let member = self.members.get_mut(&id).unwrap();
        while member.paxos.has_ready() {
            let ready = member.paxos.ready();
            self.in_flight.extend(ready.messages.iter().cloned());
            self.sent.extend(ready.messages);
            if crash_before_persist {
                return self.restart(id);
            }
            if let Some(snapshot) = &ready.snapshot {
                member.disk.snapshot = snapshot.clone();
                member.disk.entries.clear();
                member.state = decode_state(&snapshot.data);
            }
            if let Some(first) = ready.entries.first() {
                member.disk.entries.retain(|e| e.index < first.index);
                member.disk.entries.extend(ready.entries.iter().cloned());
            }
            if let Some(hs) = ready.hard_state {
                member.disk.hard_state = hs;
            }
            self.in_flight.extend(ready.persisted_messages.iter().cloned());
            self.sent.extend(ready.persisted_messages);
            for entry in ready.committed_entries {
                let value = self.chosen.entry(entry.index).or_insert_with(|| entry.data.clone());
                if *value != entry.data {
                    let (slot, was, now) = (entry.index, value.clone(), entry.data.clone());
                    self.violations
                        .push(format!("member {id} applied {now:?} at slot {slot}, where {was:?} was applied"));
                }
                if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
                    member.state.push((entry.index, entry.data));
                }
            }
            member.read_states.extend(ready.read_states);
            member.paxos.advance();
        }
    }

    pub fn handle_ready(&mut self, id: NodeId) {
        self.handle_ready_or_crash(id, false);
    }

    fn handle_all(&mut self) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            self.handle_ready(id);
        }
    }

    /// Loses `m`, telling its sender if it was a snapshot, as a transport must.
    pub fn drop_message(&mut self, m: Message) {
        if matches!(m.body, MessageBody::Snapshot { .. }) {
            if let Some(member) = self.members.get_mut(&m.from) {
                member.paxos.report_snapshot(m.to, false);
            }
        }
    }

    /// Delivers `m` unless its route is cut; reports a snapshot's transfer to its sender.
    pub fn deliver(&mut self, m: Message) -> bool {
        let snapshot = matches!(m.body, MessageBody::Snapshot { .. }).then_some((m.from, m.to));
        let passes = !self.blocked.contains(&(m.from, m.to)) && self.members.contains_key(&m.to);
        if std::env::var("PAXOS_TRACE").is_ok() {
            let mut line = format!("{} {:?}", if passes { "deliver" } else { "blocked" }, m);
            line.truncate(300);
            eprintln!("{line}");
        }
        if passes {
            let to = m.to;
            self.paxos_mut(to).step(m).unwrap();
        }
        if let Some((from, to)) = snapshot {
            if let Some(member) = self.members.get_mut(&from) {
                member.paxos.report_snapshot(to, passes);
            }
        }
        passes
    }

    /// Delivers messages in order until the cluster is quiet.
    pub fn stabilize(&mut self) {
        let mut delivered = 0;
        loop {
            self.handle_all();
            let Some(m) = self.in_flight.pop_front() else { return };
            if self.deliver(m) {
                delivered += 1;
                assert!(delivered < 1_000_000, "cluster never quiesced");
            }
        }
    }

    pub fn tick_all(&mut self, n: u32) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.members.keys().copied().collect();
            for id in ids {
                self.paxos_mut(id).tick();
            }
            self.stabilize();
        }
    }

    /// Ticks member `id` alone `n` times, stabilizing after each.
    pub fn tick(&mut self, id: NodeId, n: u32) {
        for _ in 0..n {
            self.paxos_mut(id).tick();
            self.stabilize();
        }
    }

    pub fn elect(&mut self, id: NodeId) {
        self.paxos_mut(id).campaign();
        self.stabilize();
        assert_eq!(self.paxos(id).role(), Role::Leader, "member {id} failed to win");
    }

    pub fn propose(&mut self, id: NodeId, data: &str) -> Result<Index, ProposeError> {
        let index = self.paxos_mut(id).propose(cmd(data))?;
        self.stabilize();
        Ok(index)
    }

    /// Snapshots member `id`'s state machine at its applied index and compacts.
    pub fn compact(&mut self, id: NodeId) {
        let member = self.members.get_mut(&id).unwrap();
        let index = member.paxos.applied();
        let term = member.paxos.log_term(index).unwrap();
        let meta = SnapshotMeta { index, term, conf: member.paxos.conf_state().clone() };
        let snapshot = Snapshot { meta, data: encode_state(&member.state) };
        member.disk.snapshot = snapshot.clone();
        member.disk.entries.retain(|e| e.index > index);
        member.paxos.compact(snapshot);
    }

    pub fn assert_safe(&self) {
        assert!(self.violations.is_empty(), "{:?}", self.violations);
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.members.iter().filter(|(_, m)| m.paxos.role() == Role::Leader).map(|(&id, _)| id).collect()
    }

    pub fn state(&self, id: NodeId) -> Vec<String> {
        self.members[&id].state.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect()
    }
}

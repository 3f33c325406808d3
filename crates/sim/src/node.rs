//! One simulated node: the real core, driven per its Ready contract, over a disk that keeps
//! exactly what was made durable, and the key-value state machine.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use tally_raft::{
    Config, Entry, EntryKind, HardState, Index, Message, NodeId, Persisted, Raft, Role, Snapshot, SnapshotMeta,
};

use crate::checker::{chain_hash, Checker, DurableLog};
use crate::kv::{ClientId, Command, Key, KvStore, Value, WriteResult};

/// What survives a crash.
#[derive(Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
    /// Prefix hash of the log at the snapshot point, and after each entry.
    pub snapshot_hash: u64,
    pub hashes: Vec<u64>,
}

impl Disk {
    fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot.meta.index, |e| e.index)
    }

    fn persisted(&self) -> Persisted {
        Persisted { hard_state: self.hard_state, snapshot: self.snapshot.clone(), entries: self.entries.clone() }
    }
}

#[derive(Clone, Debug)]
pub enum ClientResponse {
    Write { seq: u64, result: WriteResult },
    Read { seq: u64, value: Option<Value> },
    NotLeader { seq: u64, hint: Option<NodeId> },
}

/// Effects of handling a node's Ready, for the event loop to schedule.
#[derive(Default)]
pub struct Outputs {
    pub messages: Vec<Message>,
    pub responses: Vec<(ClientId, ClientResponse)>,
}

pub struct SimNode {
    pub id: NodeId,
    pub raft: Option<Raft>,
    pub disk: Disk,
    pub kv: KvStore,
    pub tick_us: u64,
    pub incarnation: u64,
    /// Writes proposed here, answered when applied.
    waiting_writes: HashSet<(ClientId, u64)>,
    /// Reads waiting for their ReadState, by context.
    reads: BTreeMap<u64, (ClientId, u64, Key)>,
    /// Reads with a read index, waiting for it to be applied.
    reads_ready: Vec<(Index, ClientId, u64, Key)>,
    next_read_ctx: u64,
    snapshot_every: u64,
    config: Config,
    last_applied: Index,
    /// The highest commit index already reported to the checker.
    observed_commit: Index,
}

impl SimNode {
    pub fn new(config: Config, persisted: Persisted, tick_us: u64, snapshot_every: u64) -> Self {
        let disk = Disk {
            hard_state: persisted.hard_state,
            snapshot: persisted.snapshot,
            entries: persisted.entries,
            ..Disk::default()
        };
        let mut node = Self {
            id: config.id,
            raft: None,
            disk,
            kv: KvStore::default(),
            tick_us,
            incarnation: 0,
            waiting_writes: HashSet::new(),
            reads: BTreeMap::new(),
            reads_ready: Vec::new(),
            next_read_ctx: 0,
            snapshot_every,
            config,
            last_applied: 0,
            observed_commit: 0,
        };
        node.recompute_hashes();
        node
    }

    fn recompute_hashes(&mut self) {
        let mut h = self.disk.snapshot_hash;
        self.disk.hashes = self
            .disk
            .entries
            .iter()
            .map(|e| {
                h = chain_hash(h, e);
                h
            })
            .collect();
    }

    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    pub fn raft(&self) -> &Raft {
        self.raft.as_ref().expect("node is up")
    }

    pub fn raft_mut(&mut self) -> &mut Raft {
        self.raft.as_mut().expect("node is up")
    }

    /// (Re)starts from the disk: everything volatile starts empty.
    pub fn start(&mut self, checker: &mut Checker) -> Outputs {
        self.incarnation += 1;
        let mut config = self.config.clone();
        config.seed = config.seed.wrapping_mul(31).wrapping_add(self.incarnation);
        self.raft = Some(Raft::new(config, self.disk.persisted()).expect("valid persisted state"));
        self.kv = KvStore::decode(&self.disk.snapshot.data);
        self.last_applied = self.disk.snapshot.meta.index;
        self.observed_commit = 0;
        self.handle_ready(checker, None)
    }

    /// Crash: the core and every volatile structure are gone; the disk stays as synced.
    pub fn crash(&mut self) {
        self.raft = None;
        self.waiting_writes.clear();
        self.reads.clear();
        self.reads_ready.clear();
    }

    pub fn write(&mut self, cmd: Command) -> Option<ClientResponse> {
        let raft = self.raft.as_mut()?;
        match raft.propose(cmd.encode()) {
            Ok(_) => {
                self.waiting_writes.insert((cmd.client, cmd.seq));
                None
            }
            Err(_) => Some(ClientResponse::NotLeader { seq: cmd.seq, hint: raft.leader() }),
        }
    }

    pub fn read(&mut self, client: ClientId, seq: u64, key: Key) -> Option<ClientResponse> {
        let raft = self.raft.as_mut()?;
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx;
        match raft.read_index(Bytes::copy_from_slice(&ctx.to_be_bytes())) {
            Ok(()) => {
                self.reads.insert(ctx, (client, seq, key));
                None
            }
            Err(_) => Some(ClientResponse::NotLeader { seq, hint: raft.leader() }),
        }
    }

    /// Handles every pending Ready. With `crash_midway = Some(n)` the node crashes during the
    /// first Ready, after sending the first `n` of its leader messages (the process may die
    /// before, while or after writing them) and before anything of the Ready is durable.
    pub fn handle_ready(&mut self, checker: &mut Checker, crash_midway: Option<usize>) -> Outputs {
        let mut out = Outputs::default();
        while self.raft.as_mut().is_some_and(|r| r.has_ready()) {
            let raft = self.raft.as_mut().expect("up");
            let ready = raft.ready();
            let (role, term) = (raft.role(), raft.term());
            if let Some(sent) = crash_midway {
                out.messages.extend(ready.messages.into_iter().take(sent));
                self.crash();
                return out;
            }
            out.messages.extend(ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                self.disk.snapshot_hash = checker.prefix_hash(snapshot.meta.index, snapshot.meta.term);
                self.disk.snapshot = snapshot.clone();
                self.disk.entries.clear();
                self.disk.hashes.clear();
            }
            if let Some(first) = ready.entries.first() {
                let last = self.disk.last_index();
                if role == Role::Leader && first.index <= last {
                    checker.observe_leader_truncation(self.id, term, first.index, last);
                }
                let keep = self.disk.entries.iter().take_while(|e| e.index < first.index).count();
                self.disk.entries.truncate(keep);
                self.disk.hashes.truncate(keep);
                for entry in ready.entries {
                    let prev = self.disk.hashes.last().copied().unwrap_or(self.disk.snapshot_hash);
                    let hash = chain_hash(prev, &entry);
                    checker.observe_persisted(self.id, &entry, hash);
                    self.disk.hashes.push(hash);
                    self.disk.entries.push(entry);
                }
            }
            if let Some(hs) = ready.hard_state {
                let old = self.disk.hard_state;
                if hs.term < old.term || (hs.term == old.term && old.vote != 0 && hs.vote != old.vote) {
                    checker.violations.push(crate::checker::Violation {
                        property: "one vote per term",
                        time_us: checker.now_us,
                        detail: format!(
                            "node {} changed durable (term, vote) from ({}, {}) to ({}, {})",
                            self.id, old.term, old.vote, hs.term, hs.vote
                        ),
                    });
                }
                self.disk.hard_state = hs;
            }
            out.messages.extend(ready.persisted_messages);
            if let Some(snapshot) = ready.snapshot {
                self.kv = KvStore::decode(&snapshot.data);
                self.last_applied = snapshot.meta.index;
            }
            for entry in ready.committed_entries {
                self.apply(checker, &entry, &mut out);
            }
            for rs in ready.read_states {
                let ctx = u64::from_be_bytes(rs.ctx.as_ref().try_into().expect("8-byte ctx"));
                if let Some((client, seq, key)) = self.reads.remove(&ctx) {
                    self.reads_ready.push((rs.index, client, seq, key));
                }
            }
            let raft = self.raft.as_mut().expect("up");
            raft.advance();
            self.serve_reads(&mut out);
            self.maybe_snapshot();
        }
        out
    }

    fn apply(&mut self, checker: &mut Checker, entry: &Entry, out: &mut Outputs) {
        assert_eq!(entry.index, self.last_applied + 1, "node {} applies out of order", self.id);
        self.last_applied = entry.index;
        checker.observe_apply(self.id, entry);
        if entry.kind != EntryKind::Normal || entry.data.is_empty() {
            return;
        }
        let cmd = Command::decode(&entry.data).expect("only clients' commands are proposed");
        let applied = self.kv.apply(&cmd);
        checker.observe_request_applied(self.id, (cmd.client, cmd.seq), entry.index, applied.fresh);
        if self.waiting_writes.remove(&(cmd.client, cmd.seq)) {
            out.responses.push((cmd.client, ClientResponse::Write { seq: cmd.seq, result: applied.result }));
        }
    }

    fn serve_reads(&mut self, out: &mut Outputs) {
        let applied = self.last_applied;
        let kv = &self.kv;
        self.reads_ready.retain(|&(index, client, seq, key)| {
            if index > applied {
                return true;
            }
            out.responses.push((client, ClientResponse::Read { seq, value: kv.get(key) }));
            false
        });
    }

    fn maybe_snapshot(&mut self) {
        let raft = self.raft.as_mut().expect("up");
        let applied = raft.applied();
        if applied < self.disk.snapshot.meta.index + self.snapshot_every {
            return;
        }
        let term = raft.log_term(applied).expect("applied entries are in the log");
        let meta = SnapshotMeta { index: applied, term, conf: raft.conf_state().clone() };
        let snapshot = Snapshot { meta, data: self.kv.encode() };
        raft.compact(snapshot.clone());
        let keep_from = self.disk.entries.iter().take_while(|e| e.index <= applied).count();
        self.disk.snapshot_hash = self.disk.hashes[keep_from - 1];
        self.disk.entries.drain(..keep_from);
        self.disk.hashes.drain(..keep_from);
        self.disk.snapshot = snapshot;
    }

    /// The commit index if it moved since the last call.
    pub fn take_commit_advance(&mut self) -> Option<Index> {
        let committed = self.raft.as_ref()?.committed();
        (committed > self.observed_commit).then(|| {
            self.observed_commit = committed;
            committed
        })
    }

    pub fn durable_log(&self) -> DurableLog {
        let meta = &self.disk.snapshot.meta;
        let last = self.disk.entries.last();
        DurableLog {
            snapshot_index: meta.index,
            last_index: last.map_or(meta.index, |e| e.index),
            last_term: last.map_or(meta.term, |e| e.term),
            terms: self.disk.entries.iter().map(|e| e.term).collect(),
        }
    }
}

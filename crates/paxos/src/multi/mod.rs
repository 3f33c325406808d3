//! Multi-Paxos over a log, sans-IO, behind the same driver contract as `tally-raft`: the driver
//! feeds [`MultiPaxos::tick`], [`MultiPaxos::step`], [`MultiPaxos::propose`] and the reads,
//! and drains [`Ready`]s.
//!
//! - A distinguished proposer (the leader) runs phase 1 once, for every slot after its commit
//!   index, with one ballot (`proposer.rs`); each acceptor's promise carries every value it
//!   accepted there. The leader adopts, slot by slot, the value of the highest-numbered
//!   proposal among the promises, fills slots none of them holds with no-ops, and proposes
//!   them all again in its own ballot, then a no-op of its own.
//! - Then phase 2 runs per slot, batched: Accepts carry runs of slots and the commit index, so
//!   learners hear what is chosen (`replication.rs`); the acceptor side is `acceptor.rs`.
//! - A slot is chosen once a quorum holds the ballot's value there; the leader's own acceptor
//!   counts once its log is durable.
//! - A proposer whose ballot is refused backs off for a random time before trying a higher one,
//!   so dueling proposers settle (the livelock of classic Paxos).
//!
//! Durability contract: exactly Raft's [`Ready`]: promises and acceptances leave only after
//! the hard state (the promised ballot) and the entries (accepted values) are durable.

mod acceptor;
mod ballot;
mod config;
mod consensus;
mod log;
mod membership;
mod message;
mod progress;
mod proposer;
mod reads;
mod ready;
mod replication;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tally_consensus::{
    Compacted, ConfState, Entry, EntryKind, HardState, Index, NodeId, Persisted, ProposeError, ReadState, Role,
    Snapshot, SoftState, SplitMix64, StepError, Term, TransferError, VoteRefusal,
};

pub use ballot::Ballot;
pub use config::{Config, PaxosBug};
pub use message::{Message, MessageBody};
pub use progress::Progress;
pub use ready::Ready;

use log::SlotLog;
use proposer::Promise;
use reads::PendingRead;

/// Committed bytes handed out per `Ready`.
const APPLY_BYTES_MAX: u64 = 64 * 1024 * 1024;

pub struct MultiPaxos {
    config: Config,
    rng: SplitMix64,
    /// The highest ballot this acceptor promised; durable.
    promised: Ballot,
    /// The highest round seen in any message, so a new ballot outbids every one.
    round_seen: u64,
    role: Role,
    leader: Option<NodeId>,
    /// Our own ballot while we campaign or lead.
    ballot: Ballot,
    log: SlotLog,
    conf: ConfState,
    /// Every slot after the commit index up to here holds a value `promised`'s leader sent us
    /// (volatile: after a restart, or a new ballot, it starts over at the commit index).
    ballot_through: Index,
    /// Candidate: the promises received, by acceptor (our own included).
    promises: BTreeMap<NodeId, Promise>,
    /// Candidate: the acceptors that refused our ballot.
    refusals: BTreeSet<NodeId>,
    /// Prepares refused since the last Ready, for observers.
    refusals_sent: Vec<VoteRefusal>,
    /// Candidate: a quorum promised, and our own promise waits to be durable.
    won: bool,
    /// Leader: one entry per member, ourselves included.
    progress: BTreeMap<NodeId, Progress>,
    /// Leader: the slot of the no-op that opened our ballot; reads wait until it is chosen.
    ballot_start: Index,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    lead_transferee: Option<NodeId>,
    pending_conf_index: Index,
    snapshot: Snapshot,
    snapshot_to_install: Option<Snapshot>,
    read_round: u64,
    pending_reads: VecDeque<PendingRead>,
    reads_awaiting_commit: Vec<(Bytes, NodeId)>,
    read_states: Vec<ReadState>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    broadcast_pending: bool,
    last_hard_state: HardState,
    last_soft_state: SoftState,
    in_progress: Option<InProgress>,
}

struct InProgress {
    last_entry: Option<Index>,
    snapshot_index: Option<Index>,
    applying: Index,
    conf_changes: Vec<Entry>,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("node id 0 is reserved")]
    ZeroId,
    #[error("election_tick ({election}) must be greater than heartbeat_tick ({heartbeat}), which must be at least 1")]
    Ticks { election: u32, heartbeat: u32 },
    #[error("persisted entries do not follow the snapshot contiguously")]
    NonContiguousLog,
    #[error("persisted commit index {commit} is past the last slot {last}")]
    CommitPastLog { commit: u64, last: u64 },
}

impl MultiPaxos {
    /// Starts (or restarts) a member from what its disk holds.
    pub fn new(config: Config, persisted: Persisted) -> Result<Self, ConfigError> {
        if config.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if config.heartbeat_tick == 0 || config.election_tick <= config.heartbeat_tick {
            return Err(ConfigError::Ticks { election: config.election_tick, heartbeat: config.heartbeat_tick });
        }
        let Persisted { hard_state, snapshot, entries } = persisted;
        let meta = &snapshot.meta;
        if entries.iter().enumerate().any(|(i, e)| e.index != meta.index + 1 + i as u64) {
            return Err(ConfigError::NonContiguousLog);
        }
        let last = meta.index + entries.len() as u64;
        if hard_state.commit > last {
            return Err(ConfigError::CommitPastLog { commit: hard_state.commit, last });
        }
        let commit = hard_state.commit.max(meta.index);
        let log = SlotLog::restore(meta.index, meta.term, entries, commit);
        let promised = Ballot::from_hard_state(&hard_state);
        let mut paxos = Self {
            rng: SplitMix64::new(config.seed ^ config.id.rotate_left(32)),
            config,
            promised,
            round_seen: promised.round,
            role: Role::Follower,
            leader: None,
            ballot: Ballot::default(),
            conf: meta.conf.clone(),
            log,
            ballot_through: commit,
            promises: BTreeMap::new(),
            refusals: BTreeSet::new(),
            won: false,
            refusals_sent: Vec::new(),
            progress: BTreeMap::new(),
            ballot_start: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            lead_transferee: None,
            pending_conf_index: 0,
            snapshot,
            snapshot_to_install: None,
            read_round: 0,
            pending_reads: VecDeque::new(),
            reads_awaiting_commit: Vec::new(),
            read_states: Vec::new(),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            broadcast_pending: false,
            last_hard_state: hard_state,
            last_soft_state: SoftState { role: Role::Follower, leader: None },
            in_progress: None,
        };
        paxos.reset_election_timeout();
        Ok(paxos)
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }
    /// The promised ballot's round: the engine's term, as the driver and observers see it.
    pub fn term(&self) -> Term {
        self.promised.round
    }
    pub fn promised(&self) -> Ballot {
        self.promised
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }
    pub fn committed(&self) -> Index {
        self.log.committed
    }
    pub fn applied(&self) -> Index {
        self.log.applied
    }
    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }
    /// The round the value at `index` was accepted in, if the log holds it.
    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }
    pub fn hard_state(&self) -> HardState {
        self.promised.hard_state(self.log.committed)
    }
    /// The leader's view of each member (empty unless leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.lead_transferee
    }
    /// The newest snapshot the engine holds.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Plants one of the deliberate bugs tests must catch.
    pub fn inject_bug(&mut self, bug: PaxosBug) {
        self.config.bug = Some(bug);
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.assert_not_in_ready();
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        self.assert_not_in_ready();
        if m.to != self.id() {
            return Err(StepError::WrongRecipient { to: m.to, me: self.id() });
        }
        self.round_seen = self.round_seen.max(m.ballot.round);
        match m.body {
            MessageBody::Prepare { commit, force } => self.on_prepare(m.from, m.ballot, commit, force),
            MessageBody::Accept { entries, commit } => self.on_accept(m.from, m.ballot, entries, commit),
            MessageBody::Heartbeat { commit, round } => self.on_heartbeat(m.from, m.ballot, commit, round),
            MessageBody::Snapshot { snapshot } => self.on_snapshot(m.from, m.ballot, snapshot),
            MessageBody::Promise { commit, snapshot_index, entries } => {
                self.on_promise(m.from, m.ballot, Promise { commit, snapshot_index, entries })
            }
            MessageBody::Nack { promised } => self.on_nack(m.from, m.ballot, promised),
            MessageBody::Accepted { through, gap } => self.on_accepted(m.from, m.ballot, through, gap),
            MessageBody::HeartbeatResp { round, through } => self.on_heartbeat_resp(m.from, m.ballot, round, through),
            MessageBody::TimeoutNow => self.on_timeout_now(m.from, m.ballot),
            MessageBody::ReadIndex { ctx } => self.on_read_index(m.from, ctx),
            MessageBody::ReadIndexResp { ctx, index } => self.on_read_index_resp(ctx, index),
        }
        Ok(())
    }

    /// Proposes an application command; returns the slot it was given. It is chosen only if an
    /// entry with this index *and* the current round gets applied.
    pub fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError> {
        self.propose_entry(EntryKind::Normal, data)
    }

    fn propose_entry(&mut self, kind: EntryKind, data: Bytes) -> Result<Index, ProposeError> {
        self.assert_not_in_ready();
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.lead_transferee.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(self.append_entry(kind, data))
    }

    /// Leader: a new value in our ballot at the next slot.
    fn append_entry(&mut self, kind: EntryKind, data: Bytes) -> Index {
        let index = self.log.last_index() + 1;
        self.log.append(Entry { term: self.ballot.round, index, kind, data });
        self.broadcast_pending = true;
        index
    }

    /// Hands leadership to `target`: bring it up to date, then tell it to campaign now.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        self.assert_not_in_ready();
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader { leader: self.leader });
        }
        if target == self.id() || self.lead_transferee == Some(target) {
            return Ok(());
        }
        if !self.conf.voters.contains(&target) {
            return Err(TransferError::NotVoter(target));
        }
        self.lead_transferee = Some(target);
        self.election_elapsed = 0;
        self.maybe_send_timeout_now(target);
        Ok(())
    }

    /// Records a snapshot the driver took at `snapshot.meta.index` (at most the applied index)
    /// and drops the slots it covers, but the last `compaction_lag_entries`.
    pub fn compact(&mut self, snapshot: Snapshot) -> Compacted {
        self.assert_not_in_ready();
        let index = snapshot.meta.index;
        assert!(index <= self.log.applied, "snapshot at {index} is past applied {}", self.log.applied);
        if index <= self.snapshot.meta.index {
            return Compacted { snapshot, entries: Vec::new() };
        }
        let entries = self.log.compact(index.saturating_sub(self.config.compaction_lag_entries));
        Compacted { snapshot: std::mem::replace(&mut self.snapshot, snapshot), entries }
    }

    pub fn has_ready(&mut self) -> bool {
        self.broadcast_pending
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || self.snapshot_to_install.is_some()
            || self.log.has_unstable()
            || self.log.committed > self.log.applied
            || !self.read_states.is_empty()
            || self.hard_state() != self.last_hard_state
            || self.soft_state() != self.last_soft_state
    }

    fn soft_state(&self) -> SoftState {
        SoftState { role: self.role, leader: self.leader }
    }

    /// Takes the next batch of work; see [`Ready`] for the contract.
    pub fn ready(&mut self) -> Ready {
        self.assert_not_in_ready();
        if std::mem::take(&mut self.broadcast_pending) && self.role == Role::Leader {
            self.broadcast_accept();
        }
        let mut ready = Ready { vote_refusals: std::mem::take(&mut self.refusals_sent), ..Ready::default() };
        let soft = self.soft_state();
        if soft != self.last_soft_state {
            ready.soft_state = Some(soft);
            self.last_soft_state = soft;
        }
        let hard = self.hard_state();
        if hard != self.last_hard_state {
            ready.hard_state = Some(hard);
        }
        ready.snapshot = self.snapshot_to_install.take();
        ready.entries = self.log.take_unstable();
        ready.committed_entries = self.log.next_committed(APPLY_BYTES_MAX);
        ready.messages = std::mem::take(&mut self.messages);
        ready.persisted_messages = std::mem::take(&mut self.persisted_messages);
        if self.config.bug(PaxosBug::AnswerBeforePersist) {
            ready.messages.append(&mut ready.persisted_messages);
        }
        ready.read_states = std::mem::take(&mut self.read_states);
        self.in_progress = Some(InProgress {
            last_entry: ready.entries.last().map(|e| e.index),
            snapshot_index: ready.snapshot.as_ref().map(|s| s.meta.index),
            applying: ready.committed_entries.last().map_or(self.log.applied, |e| e.index),
            conf_changes: ready.committed_entries.iter().filter(|e| e.kind == EntryKind::ConfChange).cloned().collect(),
        });
        ready
    }

    /// Confirms that the last `Ready` was handled completely.
    pub fn advance(&mut self) {
        let done = self.in_progress.take().expect("advance without an outstanding ready");
        if let Some(index) = done.snapshot_index {
            self.log.persisted = self.log.persisted.max(index);
        }
        if let Some(index) = done.last_entry {
            self.log.persisted = index;
        }
        self.last_hard_state = self.hard_state();
        self.take_won_ballot();
        for entry in &done.conf_changes {
            self.apply_conf_change_entry(entry);
        }
        self.log.applied = self.log.applied.max(done.applying);
        self.maybe_leave_joint();
        if self.role == Role::Leader {
            let (id, persisted) = (self.id(), self.log.persisted);
            if let Some(pr) = self.progress.get_mut(&id) {
                pr.accepted(persisted);
            }
            if self.maybe_commit() {
                self.broadcast_pending = true;
            }
        }
    }

    fn assert_not_in_ready(&self) {
        assert!(self.in_progress.is_none(), "a Ready is outstanding: call advance first");
    }

    fn send(&mut self, to: NodeId, ballot: Ballot, body: MessageBody) {
        self.messages.push(Message { from: self.id(), to, ballot, body });
    }

    /// Sends once what we promised or accepted is durable.
    fn send_persisted(&mut self, to: NodeId, ballot: Ballot, body: MessageBody) {
        self.persisted_messages.push(Message { from: self.id(), to, ballot, body });
    }

    /// Draws the next election timeout: `[election_tick, 2 * election_tick)`, the spread that
    /// settles contested elections, or just past the minimum while a leader is known.
    fn reset_election_timeout(&mut self) {
        let jitter = self.config.leader_silence_jitter_ticks;
        let spread = if self.leader.is_some() && jitter > 0 { jitter } else { self.config.election_tick };
        self.randomized_election_timeout = self.config.election_tick + self.rng.range(0, u64::from(spread)) as u32;
    }
}

//! The consensus state machine. `step` settles a message's term first (step down, answer, or
//! drop it), then hands it to the function of the current role; `tick` is the only clock.

mod durable_hint;
mod election;
mod membership;
mod read_index;
mod replication;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::config::Config;
use crate::error::ConfigError;
use crate::log::RaftLog;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::ready::Ready;
use read_index::PendingRead;
use tally_consensus::SplitMix64;
use tally_consensus::{Compacted, ConfState, Entry, EntryKind, HardState, Index, NodeId, Persisted, Snapshot, Term};
use tally_consensus::{ProposeError, StepError, TransferError};
use tally_consensus::{ReadState, Role, SoftState};
use tally_consensus::{RefusalReason, VoteRefusal};

/// Committed entry bytes handed out per `Ready`.
const APPLY_BYTES_MAX: u64 = 64 * 1024 * 1024;

pub struct Raft {
    config: Config,
    rng: SplitMix64,
    term: Term,
    vote: NodeId,
    leader: Option<NodeId>,
    role: Role,
    log: RaftLog,
    conf: ConfState,
    /// Leader only: one entry per member, including ourselves.
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: answers received in this campaign.
    votes: BTreeMap<NodeId, bool>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    /// After the transport reported the leader's connection reset: how many more campaigns
    /// may follow each other after a short delay instead of a full election timeout.
    fast_campaigns_left: u32,
    lead_transferee: Option<NodeId>,
    /// Index of the latest configuration change in the log; no new one until it is applied.
    pending_conf_index: Index,
    /// The newest local snapshot, sent to followers that fell behind the compacted log.
    snapshot: Snapshot,
    /// A snapshot received from the leader, for the next `Ready`.
    snapshot_to_install: Option<Snapshot>,
    /// Heartbeat round sequence for ReadIndex; reads wait until a quorum acknowledged a round.
    read_round: u64,
    pending_reads: VecDeque<PendingRead>,
    /// Reads that arrived before this leader committed an entry of its term.
    reads_awaiting_commit: Vec<(Bytes, NodeId)>,
    read_states: Vec<ReadState>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    vote_refusals: Vec<VoteRefusal>,
    /// Leader: the highest durable index announced to followers in this term (`durable_hint.rs`).
    durable_announced: Index,
    /// Follower: how far the leader of this term said its log is durable.
    leader_durable: Index,
    /// Leader: proposals were appended since the last broadcast (sent together in `ready`).
    broadcast_pending: bool,
    last_hard_state: HardState,
    last_soft_state: SoftState,
    /// What the outstanding `Ready` handed out, for `advance`.
    in_progress: Option<InProgress>,
}

struct InProgress {
    last_entry: Option<(Index, Term)>,
    snapshot_index: Option<Index>,
    applying: Index,
    conf_changes: Vec<Entry>,
}

impl Raft {
    /// Starts (or restarts) a node from what its disk holds.
    pub fn new(config: Config, persisted: Persisted) -> Result<Self, ConfigError> {
        config.validate()?;
        let Persisted { hard_state, snapshot, entries } = persisted;
        let meta = &snapshot.meta;
        if entries.iter().enumerate().any(|(i, e)| e.index != meta.index + 1 + i as u64) {
            return Err(ConfigError::NonContiguousLog);
        }
        let last = meta.index + entries.len() as u64;
        if hard_state.commit > last {
            return Err(ConfigError::CommitPastLog { commit: hard_state.commit, last });
        }
        let log = RaftLog::restore(meta.index, meta.term, entries, hard_state.commit);
        let mut raft = Self {
            rng: SplitMix64::new(config.seed ^ config.id.rotate_left(32)),
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: Role::Follower,
            conf: meta.conf.clone(),
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            fast_campaigns_left: 0,
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
            vote_refusals: Vec::new(),
            durable_announced: 0,
            leader_durable: 0,
            broadcast_pending: false,
            last_hard_state: hard_state,
            last_soft_state: SoftState { role: Role::Follower, leader: None },
            in_progress: None,
        };
        raft.reset_election_timeout();
        Ok(raft)
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// The membership in force (as of the last applied configuration change).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }
    pub fn committed(&self) -> Index {
        self.log.committed
    }
    pub fn applied(&self) -> Index {
        self.log.applied
    }
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }
    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }
    /// Term of the entry at `index`, if it is in the (uncompacted) log.
    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index).ok().flatten()
    }
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.committed }
    }
    /// The leader's view of each member's replication state (empty unless leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.lead_transferee
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
        if m.term > self.term {
            if !self.settle_higher_term(&m) {
                return Ok(());
            }
        } else if m.term < self.term {
            self.answer_stale_term(&m);
            return Ok(());
        }
        match m.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.handle_vote_request(m),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::PreCandidate | Role::Candidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
        Ok(())
    }

    /// Proposes an application command; returns the index it was appended at. The command is
    /// committed only if an entry with this index *and* the current term gets applied.
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

    /// Leader: appends one entry of the current term to its own log.
    fn append_entry(&mut self, kind: EntryKind, data: Bytes) -> Index {
        let index = self.log.last_index() + 1;
        self.log.append(Entry { term: self.term, index, kind, data });
        self.broadcast_pending = true;
        index
    }

    /// Hands leadership to `target`: bring its log up to date, then tell it to campaign now.
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
        // The transfer must finish within an election timeout, or it is abandoned.
        self.election_elapsed = 0;
        if self.progress[&target].matched == self.log.last_index() {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.send_append(target, true);
        }
        Ok(())
    }

    /// Records a snapshot the driver took of its state machine at `snapshot.meta.index` (at most
    /// the applied index) and drops the log it covers, except the last
    /// `compaction_lag_entries` entries below it, and hands back what it no longer holds.
    pub fn compact(&mut self, snapshot: Snapshot) -> Compacted {
        self.assert_not_in_ready();
        let index = snapshot.meta.index;
        assert!(index <= self.log.applied, "snapshot at {index} is past applied {}", self.log.applied);
        if index <= self.snapshot.meta.index {
            return Compacted { snapshot, entries: Vec::new() };
        }
        assert_eq!(Some(snapshot.meta.term), self.log_term(index), "snapshot term differs from the log's");
        let entries = self.log.compact(index.saturating_sub(self.config.compaction_lag_entries));
        Compacted { snapshot: std::mem::replace(&mut self.snapshot, snapshot), entries }
    }

    /// The newest snapshot the core holds.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn has_ready(&mut self) -> bool {
        if self.broadcast_pending {
            return true;
        }
        !self.messages.is_empty()
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
            self.broadcast_append();
        }
        let mut ready = Ready::default();
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
        ready.read_states = std::mem::take(&mut self.read_states);
        ready.vote_refusals = std::mem::take(&mut self.vote_refusals);
        self.in_progress = Some(InProgress {
            last_entry: ready.entries.last().map(|e| (e.index, e.term)),
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
        if let Some((index, term)) = done.last_entry {
            debug_assert_eq!(self.log_term(index), Some(term));
            self.log.persisted = index;
            self.commit_durable_on_both();
        }
        self.last_hard_state = self.hard_state();
        for entry in &done.conf_changes {
            self.apply_conf_change_entry(entry);
        }
        self.log.applied = self.log.applied.max(done.applying);
        self.maybe_leave_joint();
        if self.role == Role::Leader {
            let persisted = self.log.persisted;
            let id = self.id();
            if let Some(pr) = self.progress.get_mut(&id) {
                pr.maybe_update(persisted);
            }
            if self.maybe_commit() {
                self.broadcast_pending = true;
            }
            self.announce_durable();
        }
    }

    fn assert_not_in_ready(&self) {
        assert!(self.in_progress.is_none(), "the core was called between ready() and advance()");
    }

    /// Queues a message. Only a leader's messages may leave before the pending Ready is durable.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_at_term(to, self.term, body);
    }

    /// A refusal of `to`'s (pre-)vote request, noting why for observers.
    fn refusal(&mut self, to: NodeId, pre: bool, reason: RefusalReason) -> MessageBody {
        self.vote_refusals.push(VoteRefusal { to, pre, reason });
        if pre {
            MessageBody::PreVoteResp { reject: true }
        } else {
            MessageBody::VoteResp { reject: true }
        }
    }

    fn send_at_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let m = Message { from: self.id(), to, term, body };
        if self.role == Role::Leader {
            self.messages.push(m);
        } else {
            self.persisted_messages.push(m);
        }
    }

    fn reset_election_timeout(&mut self) {
        if self.fast_campaigns_left > 0 {
            self.fast_campaigns_left -= 1;
            let fast = self.config.fast_election_ticks as u64;
            self.randomized_election_timeout = self.rng.range(1, fast + 1) as u32;
            return;
        }
        let base = self.config.election_tick as u64;
        let spread = match self.config.leader_silence_jitter_ticks {
            // Following a live leader: suspect it at the minimum timeout (see Config).
            jitter if jitter > 0 && self.role == Role::Follower && self.leader.is_some() => jitter as u64,
            _ => base,
        };
        self.randomized_election_timeout = self.rng.range(base, base + spread) as u32;
    }

    fn reset(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.vote = 0;
            self.durable_announced = 0;
            self.leader_durable = 0;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_election_timeout();
        self.votes.clear();
        self.progress.clear();
        self.lead_transferee = None;
        self.pending_reads.clear();
        self.reads_awaiting_commit.clear();
        self.broadcast_pending = false;
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if leader.is_some() {
            // A leader is alive after all: no more quick campaigns.
            self.fast_campaigns_left = 0;
        }
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.reset_election_timeout();
        }
    }
}

//! What a node shows of its inner workings to whoever watches it (the live view, `/ui`): the
//! changes of role, term, log, commit and membership, and every message it sends, as
//! [`Observation`]s handed to [`Host::observe`], plus a [`NodeView`] of its whole state on
//! demand. Built only while [`Host::observing`] says someone watches.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tally_consensus::{Consensus, Ready};
use tally_paxos::multi;
use tally_raft::{
    ConfState, Index, Message, MessageBody, NodeId, ProgressState, RefusalReason, Role, Term, VoteRefusal,
};

use crate::engine::PeerMessage;
use crate::{Host, Node};

/// Entries of the log's tail a [`NodeView`] carries.
pub const VIEW_LOG_ENTRIES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Role {
        role: Role,
        term: Term,
        leader: Option<NodeId>,
    },
    Term {
        term: Term,
        vote: Option<NodeId>,
    },
    /// A message this node sent.
    Sent {
        to: NodeId,
        term: Term,
        what: Sent,
    },
    /// Entries `from..=to` were written to the log, replacing any at or after `from`; `runs`
    /// gives their terms as `(first, last, term)`.
    Log {
        from: Index,
        to: Index,
        runs: Vec<(Index, Index, Term)>,
    },
    Commit {
        commit: Index,
        applied: Index,
    },
    /// `taken`: our own snapshot of the state machine; otherwise the leader's, installed.
    Snapshot {
        taken: bool,
        index: Index,
        term: Term,
    },
    Members {
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    },
    /// A peer's connection closed or reset (reported again only once we heard from it since);
    /// `campaign` if it was our leader's and we stood for election at once.
    PeerLost {
        peer: NodeId,
        campaign: bool,
    },
    /// As leader, we closed a ZooKeeper session whose client went silent for its timeout.
    ZkSessionExpired {
        session: i64,
    },
}

/// A sent message, without its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: usize,
        commit: Index,
    },
    AppendResp {
        index: Index,
        reject: bool,
    },
    Heartbeat {
        commit: Index,
    },
    HeartbeatResp,
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    Vote {
        last_index: Index,
        last_term: Term,
    },
    /// `reason`: why a refused vote was refused.
    PreVoteResp {
        granted: bool,
        reason: Option<RefusalReason>,
    },
    VoteResp {
        granted: bool,
        reason: Option<RefusalReason>,
    },
    Snapshot {
        index: Index,
        term: Term,
    },
    TimeoutNow,
    ReadIndex,
    ReadIndexResp,
    LeaderDurable {
        index: Index,
    },
    /// Multi-Paxos phase 1a, for every slot after the proposer's `commit`.
    Prepare {
        commit: Index,
    },
    /// Phase 1b, with the values accepted after the proposer's commit.
    Promise {
        entries: usize,
    },
    /// A refused ballot; `reason` when a Prepare was refused.
    Nack {
        reason: Option<RefusalReason>,
    },
    /// Phase 2a for `entries` slots from `first`.
    Accept {
        first: Index,
        entries: usize,
        commit: Index,
    },
    /// Phase 2b; `gap`: the acceptor misses slots before those sent.
    Accepted {
        through: Index,
        gap: bool,
    },
}

/// The leader's view of another member's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    pub id: NodeId,
    pub matched: Index,
    pub next: Index,
    pub state: ProgressState,
    pub active: bool,
}

/// A node's whole state, as the paper's figures draw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub first_index: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    /// `(index, term)` of the log's last entries, oldest first.
    pub log: Vec<(Index, Term)>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// On the leader, each other member's progress; otherwise empty.
    pub progress: Vec<PeerProgress>,
    /// How long ago each peer last sent us anything.
    pub heard: Vec<(NodeId, Duration)>,
}

/// What the last observations said, so the next report only what changed.
#[derive(Default)]
pub(crate) struct Observed {
    term: Term,
    vote: NodeId,
    commit: Index,
    applied: Index,
    conf: ConfState,
    /// When each peer last sent us a message.
    pub(crate) heard: HashMap<NodeId, Instant>,
    /// Peers reported lost and not heard from since: the transport reports each failed
    /// reconnection too, which says nothing new.
    pub(crate) lost: HashSet<NodeId>,
}

impl<H: Host> Node<H> {
    /// Reports a Ready's changes and messages, before they are carried out.
    pub(crate) fn observe_ready(&mut self, ready: &Ready<PeerMessage>) {
        if !self.host.observing() {
            return;
        }
        if let Some(soft) = ready.soft_state {
            let term = self.engine.term();
            self.host.observe(Observation::Role { role: soft.role, term, leader: soft.leader });
        }
        if let Some(hs) = ready.hard_state {
            if (hs.term, hs.vote) != (self.observed.term, self.observed.vote) {
                (self.observed.term, self.observed.vote) = (hs.term, hs.vote);
                let vote = Some(hs.vote).filter(|&v| v != 0);
                self.host.observe(Observation::Term { term: hs.term, vote });
            }
        }
        if let Some(snapshot) = &ready.snapshot {
            let (index, term) = (snapshot.meta.index, snapshot.meta.term);
            self.host.observe(Observation::Snapshot { taken: false, index, term });
        }
        if let (Some(first), Some(last)) = (ready.entries.first(), ready.entries.last()) {
            let runs = term_runs(ready.entries.iter().map(|e| (e.index, e.term)));
            self.host.observe(Observation::Log { from: first.index, to: last.index, runs });
        }
        let mut refusals = ready.vote_refusals.clone();
        for m in ready.messages.iter().chain(&ready.persisted_messages) {
            let (term, what) = match m {
                PeerMessage::Raft(m) => (m.term, sent(m, &mut refusals)),
                PeerMessage::Paxos(m) => (m.ballot.round, sent_paxos(m, &mut refusals)),
            };
            self.host.observe(Observation::Sent { to: m.to(), term, what });
        }
    }

    /// Reports the commit and apply marks and the membership after a Ready was carried out.
    pub(crate) fn observe_advance(&mut self) {
        if !self.host.observing() {
            return;
        }
        let (commit, applied) = (self.engine.committed(), self.engine.applied());
        if (commit, applied) != (self.observed.commit, self.observed.applied) {
            (self.observed.commit, self.observed.applied) = (commit, applied);
            self.host.observe(Observation::Commit { commit, applied });
        }
        if *self.engine.conf_state() != self.observed.conf {
            self.observed.conf = self.engine.conf_state().clone();
            let conf = &self.observed.conf;
            let (voters, learners) = (conf.voters.iter().copied().collect(), conf.learners.iter().copied().collect());
            self.host.observe(Observation::Members { voters, learners });
        }
    }

    pub(crate) fn observe(&mut self, observation: Observation) {
        if self.host.observing() {
            self.host.observe(observation);
        }
    }

    /// The node's whole state now.
    pub fn view(&self) -> NodeView {
        let raft = &self.engine;
        let (first, last) = (raft.first_index(), raft.last_index());
        let tail_start = last.saturating_sub(VIEW_LOG_ENTRIES as u64 - 1).max(first);
        let log = (tail_start..=last).filter_map(|i| raft.log_term(i).map(|t| (i, t))).collect();
        let me = raft.id();
        let progress = match raft.role() {
            Role::Leader => raft
                .replication()
                .iter()
                .filter(|(id, _)| **id != me)
                .map(|(&id, p)| PeerProgress {
                    id,
                    matched: p.matched,
                    next: p.next,
                    state: p.state,
                    active: p.recent_active,
                })
                .collect(),
            _ => Vec::new(),
        };
        let now = self.host.now();
        let mut heard: Vec<_> =
            self.observed.heard.iter().map(|(&id, &at)| (id, now.saturating_duration_since(at))).collect();
        heard.sort_unstable();
        let conf = raft.conf_state();
        let hard = raft.hard_state();
        NodeView {
            id: me,
            role: raft.role(),
            term: raft.term(),
            vote: Some(hard.vote).filter(|&v| v != 0),
            leader: raft.leader(),
            commit: raft.committed(),
            applied: raft.applied(),
            first_index: first,
            last_index: last,
            snapshot_index: self.snapshots.index(),
            log,
            voters: conf.voters.iter().copied().collect(),
            learners: conf.learners.iter().copied().collect(),
            progress,
            heard,
        }
    }
}

/// Consecutive `(index, term)`s grouped by term, as `(first, last, term)`.
fn term_runs(entries: impl Iterator<Item = (Index, Term)>) -> Vec<(Index, Index, Term)> {
    let mut runs: Vec<(Index, Index, Term)> = Vec::new();
    for (index, term) in entries {
        match runs.last_mut() {
            Some((_, last, t)) if *t == term && *last + 1 == index => *last = index,
            _ => runs.push((index, index, term)),
        }
    }
    runs
}

/// `m` without its payload; a refused vote takes its reason from `refusals`.
fn sent(m: &Message, refusals: &mut Vec<VoteRefusal>) -> Sent {
    let mut refusal = |pre: bool| {
        let at = refusals.iter().position(|r| r.to == m.to && r.pre == pre)?;
        Some(refusals.remove(at).reason)
    };
    match &m.body {
        MessageBody::Append { prev_index, prev_term, entries, commit } => {
            Sent::Append { prev_index: *prev_index, prev_term: *prev_term, entries: entries.len(), commit: *commit }
        }
        MessageBody::AppendResp { index, reject } => Sent::AppendResp { index: *index, reject: reject.is_some() },
        MessageBody::Heartbeat { commit, .. } => Sent::Heartbeat { commit: *commit },
        MessageBody::HeartbeatResp { .. } => Sent::HeartbeatResp,
        MessageBody::PreVote { last_index, last_term } => {
            Sent::PreVote { last_index: *last_index, last_term: *last_term }
        }
        MessageBody::Vote { last_index, last_term, .. } => {
            Sent::Vote { last_index: *last_index, last_term: *last_term }
        }
        MessageBody::PreVoteResp { reject } => {
            Sent::PreVoteResp { granted: !reject, reason: if *reject { refusal(true) } else { None } }
        }
        MessageBody::VoteResp { reject } => {
            Sent::VoteResp { granted: !reject, reason: if *reject { refusal(false) } else { None } }
        }
        MessageBody::Snapshot { snapshot } => Sent::Snapshot { index: snapshot.meta.index, term: snapshot.meta.term },
        MessageBody::TimeoutNow => Sent::TimeoutNow,
        MessageBody::ReadIndex { .. } => Sent::ReadIndex,
        MessageBody::ReadIndexResp { .. } => Sent::ReadIndexResp,
        MessageBody::LeaderDurable { index } => Sent::LeaderDurable { index: *index },
    }
}

/// A Multi-Paxos `m` without its payload.
fn sent_paxos(m: &multi::Message, refusals: &mut Vec<VoteRefusal>) -> Sent {
    use multi::MessageBody as B;
    match &m.body {
        B::Prepare { commit, .. } => Sent::Prepare { commit: *commit },
        B::Promise { entries, .. } => Sent::Promise { entries: entries.len() },
        B::Nack { .. } => {
            let at = refusals.iter().position(|r| r.to == m.to);
            Sent::Nack { reason: at.map(|at| refusals.remove(at).reason) }
        }
        B::Accept { entries, commit } => {
            Sent::Accept { first: entries.first().map_or(0, |e| e.index), entries: entries.len(), commit: *commit }
        }
        B::Accepted { through, gap } => Sent::Accepted { through: *through, gap: gap.is_some() },
        B::Heartbeat { commit, .. } => Sent::Heartbeat { commit: *commit },
        B::HeartbeatResp { .. } => Sent::HeartbeatResp,
        B::Snapshot { snapshot } => Sent::Snapshot { index: snapshot.meta.index, term: snapshot.meta.term },
        B::TimeoutNow => Sent::TimeoutNow,
        B::ReadIndex { .. } => Sent::ReadIndex,
        B::ReadIndexResp { .. } => Sent::ReadIndexResp,
    }
}

#[cfg(test)]
mod tests {
    use super::term_runs;

    #[test]
    fn runs_group_consecutive_entries_of_a_term() {
        let entries = [(5, 2), (6, 2), (7, 3), (8, 3), (9, 3), (10, 4)];
        assert_eq!(term_runs(entries.into_iter()), vec![(5, 6, 2), (7, 9, 3), (10, 10, 4)]);
        assert_eq!(term_runs(std::iter::empty()), vec![]);
    }
}

//! The acceptor: phase 1b (promise) and phase 2b (accept), and learning what is chosen.
//!
//! Besides the promised ballot it tracks `ballot_through`: the slots after its commit index
//! that hold values the promised ballot's leader sent. Only those may be marked chosen when the
//! leader says so; a slot still holding a value from an older round might not be the one
//! chosen. An Accept must start within or just after that run, or the acceptor asks for the
//! slots it misses (the catch-up of a lagging acceptor).

use tally_consensus::{Entry, Index, NodeId, RefusalReason, Role, Snapshot, VoteRefusal};

use super::{Ballot, MessageBody, MultiPaxos, PaxosBug};

impl MultiPaxos {
    /// Whether we still hear from the leader of our promised ballot: then we refuse other
    /// nodes' Prepares, so a member that was cut off cannot depose a working leader when it
    /// returns (what check-quorum's lease does for Raft).
    fn in_lease(&self) -> bool {
        match self.role {
            Role::Leader => true,
            Role::Follower => self.leader.is_some() && self.election_elapsed < self.config.election_tick,
            _ => false,
        }
    }

    pub(super) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, commit: Index, force: bool) {
        let lease = !force && self.leader != Some(from) && self.in_lease();
        // Two candidates of one round: the higher node keeps its claim, so they do not both
        // give up (each would otherwise promise the other and win with neither).
        let own_claim = self.role == Role::Candidate && ballot.round == self.ballot.round && ballot.node < self.id();
        if !ballot.admitted_by(self.promised) || lease || own_claim {
            let reason = if lease {
                RefusalReason::LeaderLease
            } else if own_claim {
                RefusalReason::BetterClaim
            } else if ballot.round == self.promised.round {
                RefusalReason::AlreadyVoted
            } else {
                RefusalReason::StaleTerm
            };
            self.refusals_sent.push(VoteRefusal { to: from, pre: false, reason });
            let promised = self.promised;
            self.send(from, ballot, MessageBody::Nack { promised });
            return;
        }
        // The election timer runs on: a proposer that cannot win (one too far behind to
        // recover the chosen slots) must not keep the others from standing.
        self.promise(ballot);
        let promise = MessageBody::Promise {
            commit: self.log.committed,
            snapshot_index: self.log.snapshot_index(),
            entries: self.log.after(commit),
        };
        self.send_persisted(from, ballot, promise);
    }

    pub(super) fn on_accept(&mut self, from: NodeId, ballot: Ballot, entries: Vec<Entry>, commit: Index) {
        let below_promise = !ballot.admitted_by(self.promised);
        if below_promise && !self.config.bug(PaxosBug::AcceptBelowPromise) {
            let promised = self.promised;
            self.send(from, ballot, MessageBody::Nack { promised });
            return;
        }
        if !well_formed(&entries, ballot) {
            return;
        }
        if !below_promise {
            self.promise(ballot);
            self.follow(from);
        }
        let first = entries.first().map_or(self.ballot_through + 1, |e| e.index);
        if first > self.ballot_through + 1 {
            let through = self.ballot_through;
            self.send_persisted(from, ballot, MessageBody::Accepted { through, gap: Some(through + 1) });
            return;
        }
        let fresh: Vec<Entry> = if below_promise {
            entries.into_iter().filter(|e| e.index > self.log.committed).collect()
        } else {
            entries.into_iter().filter(|e| e.index > self.ballot_through).collect()
        };
        if let Some(last) = fresh.last().map(|e| e.index) {
            self.log.write(fresh);
            self.ballot_through = self.ballot_through.max(last);
        }
        self.log.commit_to(commit.min(self.ballot_through));
        let through = self.ballot_through;
        self.send_persisted(from, ballot, MessageBody::Accepted { through, gap: None });
    }

    pub(super) fn on_heartbeat(&mut self, from: NodeId, ballot: Ballot, commit: Index, round: u64) {
        if !ballot.admitted_by(self.promised) {
            let promised = self.promised;
            self.send(from, ballot, MessageBody::Nack { promised });
            return;
        }
        let raised = ballot != self.promised;
        self.promise(ballot);
        self.follow(from);
        self.log.commit_to(commit.min(self.ballot_through));
        let body = MessageBody::HeartbeatResp { round, through: self.ballot_through };
        if raised {
            self.send_persisted(from, ballot, body);
        } else {
            self.send(from, ballot, body);
        }
    }

    pub(super) fn on_snapshot(&mut self, from: NodeId, ballot: Ballot, snapshot: Snapshot) {
        if !ballot.admitted_by(self.promised) {
            let promised = self.promised;
            self.send(from, ballot, MessageBody::Nack { promised });
            return;
        }
        self.promise(ballot);
        self.follow(from);
        let index = snapshot.meta.index;
        if index > self.log.committed {
            self.log.restore_snapshot(index, snapshot.meta.term);
            self.conf = snapshot.meta.conf.clone();
            self.ballot_through = index;
            self.snapshot = snapshot.clone();
            self.snapshot_to_install = Some(snapshot);
        }
        let through = self.ballot_through;
        self.send_persisted(from, ballot, MessageBody::Accepted { through, gap: None });
    }

    pub(super) fn on_timeout_now(&mut self, from: NodeId, ballot: Ballot) {
        if ballot == self.promised && self.leader == Some(from) && self.promotable() {
            self.start_campaign(true);
        }
    }

    /// Promises `ballot` (at least the one promised): a higher ballot replaces every value run
    /// we knew to be the leader's, and ends our own leadership or a lower campaign.
    pub(super) fn promise(&mut self, ballot: Ballot) {
        if ballot == self.promised {
            return;
        }
        debug_assert!(ballot.admitted_by(self.promised));
        self.promised = ballot;
        self.ballot_through = self.log.committed;
        let outbid = match self.role {
            Role::Leader => true,
            Role::Candidate | Role::PreCandidate => ballot.round >= self.ballot.round,
            Role::Follower => false,
        };
        if outbid || self.leader.is_some_and(|l| l != ballot.node) {
            self.become_follower(None);
        }
    }

    /// The sender leads our promised ballot.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower {
            self.become_follower(Some(leader));
        }
        let new_leader = self.leader != Some(leader);
        self.leader = Some(leader);
        self.election_elapsed = 0;
        if new_leader {
            self.reset_election_timeout();
        }
    }
}

/// An Accept's values are contiguous and all proposed in its ballot's round.
fn well_formed(entries: &[Entry], ballot: Ballot) -> bool {
    let first = entries.first().map_or(0, |e| e.index);
    entries.iter().enumerate().all(|(i, e)| e.index == first + i as Index && e.term == ballot.round)
}

//! The distinguished proposer: timeouts, phase 1 for every open slot at once, recovery of the
//! accepted values, and backing off when outbid.

use bytes::Bytes;
use tally_consensus::quorum;
use tally_consensus::{Entry, EntryKind, Index, NodeId, Role};

use super::{Ballot, MessageBody, MultiPaxos, PaxosBug, Progress};

/// An acceptor's promise: its commit and snapshot index, and every value it accepted after
/// our commit index (contiguous from there), each with the round it was accepted in.
#[derive(Debug)]
pub(super) struct Promise {
    pub commit: Index,
    pub snapshot_index: Index,
    pub entries: Vec<Entry>,
}

impl Promise {
    fn at(&self, index: Index) -> Option<&Entry> {
        let first = self.entries.first()?.index;
        self.entries.get(usize::try_from(index.checked_sub(first)?).ok()?)
    }
}

impl MultiPaxos {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.start_campaign(false);
        }
    }

    /// Starts phase 1 now (as if the election timeout had fired).
    pub fn campaign(&mut self) {
        self.assert_not_in_ready();
        if self.role != Role::Leader && self.promotable() {
            self.start_campaign(false);
        }
    }

    pub(super) fn promotable(&self) -> bool {
        self.conf.voters.contains(&self.id())
    }

    /// The transport saw `peer`'s connection close or reset: if it led us, campaign after a
    /// short random delay instead of a full election timeout. Returns whether it did.
    pub fn report_unreachable(&mut self, peer: NodeId) -> bool {
        self.assert_not_in_ready();
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.gap(pr.matched + 1);
        }
        let fast = self.config.fast_election_ticks;
        if fast == 0 || self.role != Role::Follower || self.leader != Some(peer) {
            return false;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.randomized_election_timeout = 1 + self.rng.range(0, u64::from(fast)) as u32;
        true
    }

    /// Phase 1a with a ballot above every round seen. Our own acceptor's promise is counted
    /// now but made durable only once a quorum promised: a member cut off from the others
    /// campaigns without raising its own promise, so it accepts the live leader's values as
    /// soon as it hears them again.
    pub(super) fn start_campaign(&mut self, force: bool) {
        self.role = Role::Candidate;
        self.leader = None;
        self.lead_transferee = None;
        self.progress.clear();
        self.ballot = Ballot::new(self.round_seen.max(self.promised.round) + 1, self.id());
        self.round_seen = self.ballot.round;
        self.election_elapsed = 0;
        self.reset_election_timeout();
        self.promises.clear();
        self.refusals.clear();
        self.won = false;
        let commit = self.log.committed;
        let own = Promise { commit, snapshot_index: self.log.snapshot_index(), entries: self.log.after(commit) };
        self.promises.insert(self.id(), own);
        let (me, ballot) = (self.id(), self.ballot);
        for voter in self.conf.all_voters() {
            if voter != me {
                self.send(voter, ballot, MessageBody::Prepare { commit, force });
            }
        }
        self.maybe_win();
    }

    pub(super) fn on_promise(&mut self, from: NodeId, ballot: Ballot, promise: Promise) {
        if self.role != Role::Candidate || ballot != self.ballot {
            return;
        }
        if promise.snapshot_index > self.log.committed {
            // The acceptor compacted chosen slots we do not hold, so we could not propose them
            // again: a member that holds them should lead. Its timeout will come.
            return self.back_off();
        }
        self.promises.insert(from, promise);
        self.maybe_win();
    }

    pub(super) fn on_nack(&mut self, from: NodeId, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if ballot != self.ballot {
            return;
        }
        match self.role {
            Role::Candidate => {
                self.refusals.insert(from);
                let hopeful: Vec<NodeId> =
                    self.conf.all_voters().into_iter().filter(|id| !self.refusals.contains(id)).collect();
                if !quorum::is_quorum(&self.conf, &hopeful) {
                    self.back_off();
                }
                if promised < self.ballot {
                    // Refused by a lease (or a better claim of our round), not outbid: the
                    // acceptor still heard the old leader a moment ago, and its lease runs out
                    // within about a heartbeat of ours. Stand again then, not a timeout later.
                    let soon = self.election_elapsed + 2 * self.config.heartbeat_tick;
                    self.randomized_election_timeout = self.randomized_election_timeout.min(soon);
                }
            }
            // An acceptor promised a higher ballot, or our round to another node, and will
            // refuse our values for good: run phase 1 again above it. Our followers still hold
            // our lease, which does not bar us.
            Role::Leader if !self.ballot.admitted_by(promised) => self.start_campaign(false),
            _ => {}
        }
    }

    /// Outbid or refused: wait a random time before trying a higher ballot, so that dueling
    /// proposers stop preempting each other.
    fn back_off(&mut self) {
        self.become_follower(None);
        self.election_elapsed = 0;
        self.reset_election_timeout();
    }

    pub(super) fn become_follower(&mut self, leader: Option<NodeId>) {
        if self.role == Role::Leader {
            self.abandon_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.won = false;
        self.progress.clear();
        self.promises.clear();
        self.lead_transferee = None;
    }

    fn maybe_win(&mut self) {
        if self.won {
            return;
        }
        let promised: Vec<NodeId> = self.promises.keys().copied().collect();
        if !quorum::is_quorum(&self.conf, &promised) {
            return;
        }
        if !self.ballot.admitted_by(self.promised) {
            // We promised a higher ballot since we asked; this one is lost.
            return self.back_off();
        }
        // Our own promise must be durable before any Accept of this ballot leaves: a member
        // that forgot it could promise the same round to another node, and two leaders of one
        // round would break what a log entry's round stands for. `advance` takes it from here.
        self.promised = self.ballot;
        self.won = true;
    }

    /// Called by `advance` once our own promise is durable.
    pub(super) fn take_won_ballot(&mut self) {
        if std::mem::take(&mut self.won) && self.role == Role::Candidate && self.promised == self.ballot {
            self.become_leader();
        }
    }

    /// Phase 1 done: adopt, for every slot after our commit index, the value of the
    /// highest-numbered proposal among the promises (a no-op where none holds one), propose
    /// them all again in our ballot, and open the ballot with a no-op of our own.
    fn become_leader(&mut self) {
        let start = self.log.committed + 1;
        let end = self.promises.values().filter_map(|p| p.entries.last()).map(|e| e.index).max().unwrap_or(0);
        let chosen = self.promises.values().map(|p| p.commit).max().unwrap_or(0);
        let own = self.promises.get(&self.id());
        let forget = self.config.bug(PaxosBug::ForgetHighestAccepted);
        let round = self.ballot.round;
        let recovered: Vec<Entry> = (start..=end)
            .map(|index| {
                let adopted = if forget {
                    own.and_then(|p| p.at(index)).or_else(|| self.promises.values().find_map(|p| p.at(index)))
                } else {
                    self.promises.values().filter_map(|p| p.at(index)).max_by_key(|e| e.term)
                };
                let (kind, data) = adopted.map_or((EntryKind::Normal, Bytes::new()), |e| (e.kind, e.data.clone()));
                Entry { term: round, index, kind, data }
            })
            .collect();
        self.promises.clear();
        self.log.write(recovered);
        // Every slot a promising acceptor knew chosen now holds its chosen value: the
        // highest-numbered proposal of any quorum carries it.
        self.log.commit_to(chosen);
        self.ballot_through = self.log.last_index();
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = start;
        self.progress =
            self.conf.members().into_iter().map(|id| (id, Progress::new(next, !self.conf.is_voter(id)))).collect();
        // A recovered slot may hold a membership change: none more until it is applied.
        self.pending_conf_index = self.log.last_index();
        self.ballot_start = self.append_entry(EntryKind::Normal, Bytes::new());
    }
}

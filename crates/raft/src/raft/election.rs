//! Leader election (Raft section 5.2) with pre-vote and check-quorum (thesis 9.6): timeouts,
//! campaigns, votes, and the term rules every message passes through first.

use crate::config::InjectedBug;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use tally_consensus::quorum::{self, VoteResult};
use tally_consensus::RefusalReason;
use tally_consensus::Role;
use tally_consensus::{EntryKind, NodeId};

use super::Raft;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CampaignKind {
    PreVote,
    Election,
    /// Started by TimeoutNow: skips pre-vote and overrides followers' leader leases.
    Transfer,
}

impl Raft {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.campaign_now();
        }
    }

    /// Starts an election now (as if the election timeout had fired).
    pub fn campaign(&mut self) {
        self.assert_not_in_ready();
        if self.role != Role::Leader {
            self.campaign_now();
        }
    }

    fn campaign_now(&mut self) {
        let kind = if self.config.pre_vote { CampaignKind::PreVote } else { CampaignKind::Election };
        self.start_campaign(kind);
    }

    /// The transport saw `peer`'s connection close or reset (not time out): if it is our
    /// leader, its process has probably died. Forget the leader, so we grant pre-votes, and
    /// campaign after a short random delay instead of a full election timeout. Safe whatever
    /// the truth: if the leader is alive, the other voters still hold its lease and ignore our
    /// pre-vote, and its next heartbeat makes us its follower again. Returns whether it did
    /// (the peer was our leader).
    pub fn report_unreachable(&mut self, peer: NodeId) -> bool {
        self.assert_not_in_ready();
        let fast = self.config.fast_election_ticks;
        if fast == 0 || self.role != Role::Follower || self.leader != Some(peer) {
            return false;
        }
        self.leader = None;
        self.election_elapsed = 0;
        // Retry quickly for a whole election timeout: a voter that saw no reset of its own
        // ignores our pre-votes until its lease runs out, and the next retry then wins. A
        // spurious reset costs a few ignored pre-votes until the next heartbeat.
        self.fast_campaigns_left = self.config.election_tick;
        self.reset_election_timeout();
        true
    }

    /// Only voters may become leader, and not while a snapshot is waiting to be installed.
    pub(super) fn promotable(&self) -> bool {
        self.conf.is_voter(self.id()) && self.snapshot_to_install.is_none()
    }

    /// Leases: a follower that heard from a leader within the minimum election timeout
    /// believes that leader is alive and refuses to help depose it.
    fn in_leader_lease(&self) -> bool {
        self.config.check_quorum && self.leader.is_some() && self.election_elapsed < self.config.election_tick
    }

    pub(super) fn start_campaign(&mut self, kind: CampaignKind) {
        if !self.promotable() {
            return;
        }
        let vote_term = match kind {
            CampaignKind::PreVote => {
                // Pre-candidates keep their term: a failed pre-vote changes nothing durable.
                let term = self.term;
                self.reset(term);
                self.role = Role::PreCandidate;
                term + 1
            }
            CampaignKind::Election | CampaignKind::Transfer => {
                let term = self.term + 1;
                self.reset(term);
                self.role = Role::Candidate;
                self.vote = self.id();
                term
            }
        };
        self.votes.insert(self.id(), true);
        if self.poll() == VoteResult::Won {
            return self.on_campaign_won();
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for id in self.conf.all_voters() {
            if id == self.id() {
                continue;
            }
            let body = match kind {
                CampaignKind::PreVote => MessageBody::PreVote { last_index, last_term },
                _ => MessageBody::Vote { last_index, last_term, transfer: kind == CampaignKind::Transfer },
            };
            self.send_at_term(id, vote_term, body);
        }
    }

    fn poll(&self) -> VoteResult {
        quorum::vote_result(&self.conf, &self.votes)
    }

    fn on_campaign_won(&mut self) {
        if self.role == Role::PreCandidate {
            self.start_campaign(CampaignKind::Election);
        } else {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        assert_ne!(self.role, Role::Follower, "a follower cannot become leader without an election");
        self.fast_campaigns_left = 0;
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = Some(self.id());
        let next = self.log.last_index() + 1;
        for id in self.conf.members() {
            let is_learner = !self.conf.is_voter(id);
            let mut pr = Progress::new(next, self.config.inflight_msgs_max, is_learner);
            pr.recent_active = true;
            if id == self.id() {
                pr.maybe_update(self.log.persisted);
                pr.become_replicate();
            }
            self.progress.insert(id, pr);
        }
        // Any configuration change still unapplied in our log must apply before another starts.
        self.pending_conf_index = self.log.last_index();
        // The no-op lets the leader commit entries of earlier terms (Raft section 5.4.2).
        self.append_entry(EntryKind::Normal, bytes::Bytes::new());
    }

    /// A message from a newer term: step down to it, unless the message is a vote request we
    /// must not let disturb a live leader. Returns whether to go on processing the message.
    pub(super) fn settle_higher_term(&mut self, m: &Message) -> bool {
        match m.body {
            MessageBody::PreVote { .. } if self.in_leader_lease() => {
                // Refused at our own term, which changes nobody's: the pre-candidate learns it
                // should not stand in the way of others (see handle_vote_request).
                let refusal = self.refusal(m.from, true, RefusalReason::LeaderLease);
                self.send(m.from, refusal);
                return false;
            }
            MessageBody::Vote { transfer: false, .. } if self.in_leader_lease() => return false,
            // A pre-vote does not change our term; a granted pre-vote answer comes at the term
            // we are about to campaign for.
            MessageBody::PreVote { .. } => {}
            MessageBody::PreVoteResp { reject: false } => {}
            ref body if body.is_from_leader() => self.become_follower(m.term, Some(m.from)),
            _ => self.become_follower(m.term, None),
        }
        true
    }

    /// A message from an older term. Most are dropped; a stale leader is told our term so it
    /// steps down (it could otherwise keep a quorum of pre-voters loyal and stall the cluster).
    pub(super) fn answer_stale_term(&mut self, m: &Message) {
        if (self.config.check_quorum || self.config.pre_vote) && m.body.is_from_leader() {
            self.send(m.from, MessageBody::AppendResp { index: 0, reject: None });
        } else if matches!(m.body, MessageBody::PreVote { .. }) {
            let refusal = self.refusal(m.from, true, RefusalReason::StaleTerm);
            self.send(m.from, refusal);
        }
    }

    pub(super) fn handle_vote_request(&mut self, m: Message) {
        let (pre, last_index, last_term) = match m.body {
            MessageBody::PreVote { last_index, last_term } => (true, last_index, last_term),
            MessageBody::Vote { last_index, last_term, .. } => (false, last_index, last_term),
            _ => unreachable!("only vote requests are routed here"),
        };
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.leader.is_none())
            || (pre && m.term > self.term)
            || self.config.bug(InjectedBug::VoteTwicePerTerm);
        let up_to_date =
            self.log.is_up_to_date(last_index, last_term) || self.config.bug(InjectedBug::SkipElectionRestriction);
        let contested = pre && self.role == Role::PreCandidate && self.config.leader_silence_jitter_ticks > 0;
        if contested && can_vote && up_to_date {
            // Survivors of a dead leader suspect it at about the same moment. Were each to
            // grant the other's pre-vote, both would stand and split the vote; instead only the
            // better claim (newer log, then higher id, as in Zab's leader election) gets our
            // pre-vote, and we step aside for it. We also step aside once a voter refused us (it
            // still held the leader's lease): we may never hear from the others, and standing
            // on would leave both of us waiting for a full timeout. Pre-votes are not part of
            // safety.
            let ours = (self.log.last_term(), self.log.last_index(), self.id());
            let refused = self.votes.values().any(|&granted| !granted);
            if !refused && (last_term, last_index, m.from) < ours {
                let refusal = self.refusal(m.from, true, RefusalReason::BetterClaim);
                return self.send_vote_response(m.from, self.term, refusal);
            }
            let term = self.term;
            self.become_follower(term, None);
        }
        if can_vote && up_to_date {
            // Granted answers carry the requested term so the candidate counts them.
            let body =
                if pre { MessageBody::PreVoteResp { reject: false } } else { MessageBody::VoteResp { reject: false } };
            if !pre {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
            self.send_vote_response(m.from, m.term, body);
        } else {
            let reason = match (can_vote, self.vote) {
                (true, _) => RefusalReason::StaleLog,
                (false, 0) => RefusalReason::LeaderLease,
                (false, _) => RefusalReason::AlreadyVoted,
            };
            let refusal = self.refusal(m.from, pre, reason);
            self.send_vote_response(m.from, self.term, refusal);
        }
    }

    fn send_vote_response(&mut self, to: NodeId, term: u64, body: MessageBody) {
        if self.config.bug(InjectedBug::VoteBeforePersist) {
            self.messages.push(Message { from: self.id(), to, term, body });
        } else {
            self.send_at_term(to, term, body);
        }
    }

    pub(super) fn step_candidate(&mut self, m: Message) {
        match m.body {
            ref body if body.is_from_leader() => {
                self.become_follower(m.term, Some(m.from));
                self.step_follower(m);
            }
            MessageBody::PreVoteResp { reject } if self.role == Role::PreCandidate => self.record_vote(m.from, reject),
            MessageBody::VoteResp { reject } if self.role == Role::Candidate => self.record_vote(m.from, reject),
            MessageBody::ReadIndex { ctx } => self.send(m.from, MessageBody::ReadIndexResp { ctx, index: None }),
            _ => {}
        }
    }

    fn record_vote(&mut self, from: NodeId, reject: bool) {
        self.votes.entry(from).or_insert(!reject);
        match self.poll() {
            VoteResult::Won => self.on_campaign_won(),
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, None);
            }
            VoteResult::Pending => {}
        }
    }

    pub(super) fn step_follower(&mut self, m: Message) {
        if m.body.is_from_leader() {
            let new_leader = self.leader.is_none();
            self.election_elapsed = 0;
            self.leader = Some(m.from);
            if new_leader {
                // A new leader, or the one we suspected after a connection reset: back to a
                // full election timeout.
                self.fast_campaigns_left = 0;
                self.reset_election_timeout();
            }
        }
        match m.body {
            MessageBody::Append { prev_index, prev_term, entries, commit } => {
                self.handle_append(m.from, prev_index, prev_term, entries, commit)
            }
            MessageBody::Heartbeat { commit, round } => self.handle_heartbeat(m.from, commit, round),
            MessageBody::LeaderDurable { index } => self.handle_leader_durable(index),
            MessageBody::Snapshot { snapshot } => self.handle_snapshot(m.from, snapshot),
            MessageBody::TimeoutNow => self.start_campaign(CampaignKind::Transfer),
            MessageBody::ReadIndex { ctx } => self.send(m.from, MessageBody::ReadIndexResp { ctx, index: None }),
            MessageBody::ReadIndexResp { ctx, index } => self.handle_read_index_response(ctx, index),
            _ => {}
        }
    }

    /// Leader's clock: heartbeats, check-quorum, and abandoning a stalled transfer.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_tick {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_active() {
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
            self.lead_transferee = None;
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a quorum was heard from since the last check; resets the marks for the next.
    fn quorum_active(&mut self) -> bool {
        let me = self.id();
        let active = quorum::committed_index(&self.conf, |id| {
            u64::from(id == me || self.progress.get(&id).is_some_and(|pr| pr.recent_active))
        }) == 1;
        for (&id, pr) in self.progress.iter_mut() {
            pr.recent_active = id == me;
        }
        active
    }
}

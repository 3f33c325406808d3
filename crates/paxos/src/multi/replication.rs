//! The leader's phase 2: Accepts carrying runs of slots to each member, what is chosen,
//! heartbeats, check-quorum, and snapshots for members whose slots are compacted away.

use tally_consensus::quorum;
use tally_consensus::{Entry, Index, NodeId, Role};

use super::{Ballot, MessageBody, MultiPaxos};

impl MultiPaxos {
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_tick {
            self.election_elapsed = 0;
            if !self.quorum_active() {
                return self.become_follower(None);
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
        let active: Vec<NodeId> =
            self.progress.iter().filter(|(&id, pr)| id == me || pr.recent_active).map(|(&id, _)| id).collect();
        for (&id, pr) in self.progress.iter_mut() {
            pr.recent_active = id == me;
        }
        quorum::is_quorum(&self.conf, &active)
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().filter(|&id| id != self.id()).collect();
        for id in peers {
            self.send_heartbeat(id);
        }
    }

    pub(super) fn send_heartbeat(&mut self, to: NodeId) {
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent_before_heartbeat = pr.next - 1;
        }
        let body = MessageBody::Heartbeat { commit: self.log.committed, round: self.read_round };
        self.send(to, self.ballot, body);
    }

    pub(super) fn broadcast_accept(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().filter(|&id| id != self.id()).collect();
        for id in peers {
            self.send_accept(id);
        }
    }

    /// Sends `to` the next run of slots it lacks, in our ballot (chosen slots too: proposing a
    /// chosen value again in a higher ballot is safe, and lets the acceptor take it as ours).
    pub(super) fn send_accept(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get(&to) else { return };
        if pr.is_paused(self.config.inflight_msgs_max) {
            return;
        }
        let (next, probing) = (pr.next, pr.probing);
        let last = self.log.last_index();
        if next > last && !probing && pr.commit_sent >= self.log.committed {
            return;
        }
        let (count, bytes) = (self.config.entries_per_msg_max, self.config.bytes_per_msg_max);
        let Some(run) = self.log.slice(next, last, count, bytes) else {
            return self.send_snapshot(to);
        };
        let round = self.ballot.round;
        let entries: Vec<Entry> = run.into_iter().map(|e| Entry { term: round, ..e }).collect();
        let sent_through = entries.last().map_or(next - 1, |e| e.index);
        let commit = self.log.committed;
        let pr = self.progress.get_mut(&to).expect("checked");
        pr.commit_sent = commit;
        if !entries.is_empty() || probing {
            pr.sent(sent_through);
        }
        self.send(to, self.ballot, MessageBody::Accept { entries, commit });
    }

    fn send_snapshot(&mut self, to: NodeId) {
        let snapshot = self.snapshot.clone();
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.pending_snapshot = true;
        }
        self.send(to, self.ballot, MessageBody::Snapshot { snapshot });
    }

    /// The transport finished sending a snapshot to `peer` (or gave up on it).
    pub fn report_snapshot(&mut self, peer: NodeId, ok: bool) {
        self.assert_not_in_ready();
        let Some(pr) = self.progress.get_mut(&peer) else { return };
        pr.pending_snapshot = false;
        if !ok {
            pr.gap(pr.matched + 1);
        }
    }

    pub(super) fn on_accepted(&mut self, from: NodeId, ballot: Ballot, through: Index, gap: Option<Index>) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        match gap {
            Some(from_slot) => pr.gap(from_slot),
            None => pr.accepted(through),
        }
        if self.maybe_commit() {
            self.broadcast_pending = true;
        }
        self.send_accept(from);
        self.maybe_send_timeout_now(from);
    }

    pub(super) fn on_heartbeat_resp(&mut self, from: NodeId, ballot: Ballot, round: u64, through: Index) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        if through < pr.matched {
            // It restarted and no longer knows which of its slots are ours: resend them.
            pr.matched = through;
            pr.gap(through + 1);
        } else if through < pr.sent_before_heartbeat {
            pr.gap(through + 1);
        } else if pr.probing {
            pr.probe_sent = false;
        }
        if pr.matched < self.log.last_index() {
            self.send_accept(from);
        }
        self.release_confirmed_reads();
    }

    /// Moves the commit index to the highest slot a quorum holds in our ballot. Every slot up
    /// to it is then chosen: each holds our value on a quorum, or was chosen before.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let chosen = quorum::committed_index(&self.conf, |id| progress.get(&id).map_or(0, |pr| pr.matched));
        if chosen <= self.log.committed {
            return false;
        }
        self.log.commit_to(chosen);
        self.serve_reads_awaiting_commit();
        true
    }

    pub(super) fn maybe_send_timeout_now(&mut self, target: NodeId) {
        if self.lead_transferee != Some(target) {
            return;
        }
        match self.progress.get(&target) {
            Some(pr) if pr.matched == self.log.last_index() => self.send(target, self.ballot, MessageBody::TimeoutNow),
            Some(_) => self.send_accept(target),
            None => {}
        }
    }
}

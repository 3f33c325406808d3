//! Log replication (Raft section 5.3): the leader's Appends, heartbeats and snapshots, the
//! follower's consistency check and repair, and commitment by quorum (section 5.4.2: only
//! entries of the leader's own term are committed by counting).

use crate::config::InjectedBug;
use crate::message::{ConflictHint, Message, MessageBody};
use tally_consensus::quorum;
use tally_consensus::ProgressState;
use tally_consensus::Role;
use tally_consensus::{Entry, Index, NodeId, Snapshot, Term};

use super::Raft;

impl Raft {
    pub(super) fn step_leader(&mut self, m: Message) {
        match m.body {
            MessageBody::AppendResp { index, reject } => self.handle_append_response(m.from, index, reject),
            MessageBody::HeartbeatResp { round } => self.handle_heartbeat_response(m.from, round),
            MessageBody::ReadIndex { ctx } => self.handle_read_index(ctx, m.from),
            // Another leader at our term would break election safety; the simulator checks
            // that this never happens, so here it is simply not ours to handle.
            _ => {}
        }
    }

    /// Sends each follower what it lacks, or an empty Append to carry the commit index to
    /// those that cannot commit by themselves.
    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().filter(|&id| id != self.id()).collect();
        for id in peers {
            let tell_commit = !self.commits_by_hint(id);
            self.send_append(id, tell_commit);
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().filter(|&id| id != self.id()).collect();
        for id in peers {
            self.send_heartbeat(id);
        }
    }

    /// A heartbeat carrying the current read round, which `to` acknowledges.
    pub(super) fn send_heartbeat(&mut self, to: NodeId) {
        // Never tell a follower to commit past what it is known to hold.
        let commit = self.progress[&to].matched.min(self.log.committed);
        self.send(to, MessageBody::Heartbeat { commit, round: self.read_round });
    }

    /// Sends `to` the entries it lacks (or a snapshot if they were compacted). With
    /// `send_if_empty` an Append without entries goes out to carry the commit index or probe.
    /// Returns whether a message was sent.
    pub(super) fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        let prev_index = next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries(
            next,
            self.log.last_index(),
            self.config.entries_per_msg_max,
            self.config.bytes_per_msg_max,
        );
        let (Ok(Some(prev_term)), Ok(entries)) = (prev_term, entries) else {
            return self.send_snapshot(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let pr = self.progress.get_mut(&to).expect("checked above");
        if let Some(last) = entries.last() {
            pr.sent_entries(last.index);
        } else if pr.state == ProgressState::Probe {
            pr.probe_sent = true;
        }
        let commit = self.log.committed;
        self.send(to, MessageBody::Append { prev_index, prev_term, entries, commit });
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let snapshot = self.snapshot.clone();
        assert!(snapshot.meta.index >= self.log.first_index() - 1, "compacted log without a snapshot");
        self.progress.get_mut(&to).expect("member").become_snapshot(snapshot.meta.index);
        self.send(to, MessageBody::Snapshot { snapshot });
        true
    }

    /// The driver reports how the transfer of the snapshot it was given for `peer` ended: `ok`
    /// when the peer received all of it, `false` when the transfer broke (connection lost, bad
    /// checksum, timeout) or never started. Until this report the leader sends `peer` nothing
    /// but heartbeats, however long the transfer takes; no timer resends it (as etcd's
    /// `ReportSnapshot`). Either way the leader then probes, once the next heartbeat response
    /// (or the peer's answer to the snapshot) arrives: after a success right behind the
    /// snapshot, after a failure where the peer's log is known to match, which sends a new
    /// snapshot if that part of the log is compacted. A report that matches no pending
    /// snapshot (stale, or we are no longer leader) changes nothing.
    pub fn report_snapshot(&mut self, peer: NodeId, ok: bool) {
        self.assert_not_in_ready();
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.progress.get_mut(&peer).filter(|pr| pr.state == ProgressState::Snapshot) {
            pr.snapshot_reported(ok);
        }
    }

    fn handle_append_response(&mut self, from: NodeId, index: Index, reject: Option<ConflictHint>) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if let Some(hint) = reject {
            let hint_next = match hint.term {
                Some(term) => self.log.next_after_term(term, index).unwrap_or(hint.first_index),
                None => hint.first_index,
            };
            let pr = self.progress.get_mut(&from).expect("member");
            if pr.maybe_decrease(index, hint_next) {
                self.send_append(from, true);
            }
            return;
        }
        if index > last_index {
            return; // Acknowledges entries we never had: a confused peer, not our problem.
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => pr.become_probe(),
            _ => {}
        }
        if self.maybe_commit() {
            self.broadcast_append();
        } else if was_paused {
            self.send_append(from, false);
        }
        // Fill the window while there is more to send.
        while self.send_append(from, false) {}
        if self.lead_transferee == Some(from) && self.progress[&from].matched == self.log.last_index() {
            self.send(from, MessageBody::TimeoutNow);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.on_heartbeat_response();
        pr.acked_round = pr.acked_round.max(round);
        if pr.matched < last_index {
            self.send_append(from, true);
        }
        self.release_confirmed_reads();
    }

    /// Advances the commit index to what a quorum holds, if that entry is of our term.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let index = quorum::committed_index(&self.conf, |id| self.progress.get(&id).map_or(0, |pr| pr.matched));
        if index <= self.log.committed {
            return false;
        }
        let counts =
            self.log_term(index) == Some(self.term) || self.config.bug(InjectedBug::CommitPreviousTermByCounting);
        if !counts {
            return false;
        }
        self.log.commit_to(index);
        self.on_commit_in_term();
        true
    }

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        if prev_index < self.log.committed {
            // Everything up to our commit index already matches the leader.
            let committed = self.log.committed;
            self.send(from, MessageBody::AppendResp { index: committed, reject: None });
            return;
        }
        if !self.log.matches(prev_index, prev_term) {
            let (term, first_index) = self.log.conflict_hint(prev_index);
            let reject = Some(ConflictHint { term, first_index });
            self.send(from, MessageBody::AppendResp { index: prev_index, reject });
            return;
        }
        let last_new = self.log.append_after_match(prev_index, entries);
        // Only what this message proved to match may be committed (Figure 2, rule 5).
        self.log.commit_to(commit.min(last_new));
        self.send(from, MessageBody::AppendResp { index: last_new, reject: None });
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: Index, round: u64) {
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageBody::HeartbeatResp { round });
    }

    pub(super) fn handle_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index <= self.log.committed {
            let committed = self.log.committed;
            self.send(from, MessageBody::AppendResp { index: committed, reject: None });
            return;
        }
        if self.log.matches(index, term) {
            // We already hold the entries; the snapshot only tells us they are committed.
            self.log.commit_to(index);
        } else {
            self.log.restore_snapshot(index, term);
            self.conf = snapshot.meta.conf.clone();
            self.snapshot = snapshot.clone();
            self.snapshot_to_install = Some(snapshot);
        }
        self.send(from, MessageBody::AppendResp { index, reject: None });
    }

    /// Called whenever the leader's commit index moves.
    pub(super) fn on_commit_in_term(&mut self) {
        if self.role == Role::Leader {
            self.serve_reads_awaiting_commit();
        }
    }
}

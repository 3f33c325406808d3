//! The leader's view of one follower: how far its log matches, what to send next, and how much
//! may be in flight. States (as in etcd's tracker):
//! - Probe: the match point is unknown; send one Append and wait for its answer.
//! - Replicate: the follower is in sync; stream Appends optimistically within a window.
//! - Snapshot: a snapshot is on its way; send nothing but heartbeats until the follower
//!   acknowledges it or the driver reports how its transfer ended (`Raft::report_snapshot`).

use std::collections::VecDeque;

use tally_consensus::{Index, ProgressState};

#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to match the leader's log. Invariant: `matched < next`.
    pub matched: Index,
    pub next: Index,
    pub state: ProgressState,
    /// Probe: an Append is outstanding; wait for its answer or a heartbeat response.
    pub probe_sent: bool,
    /// Snapshot: the index of the snapshot sent (it stays pending until the driver reports
    /// how its transfer ended, or the follower acknowledges it).
    pub pending_snapshot: Index,
    /// Last index of every Append in flight (Replicate only), oldest first.
    inflights: VecDeque<Index>,
    inflights_max: usize,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Highest heartbeat round this peer acknowledged (ReadIndex confirmation).
    pub acked_round: u64,
    /// Highest durable index of ours this peer was told (`durable_hint.rs`).
    pub durable_hinted: Index,
    pub is_learner: bool,
}

impl Progress {
    pub fn new(next: Index, inflights_max: usize, is_learner: bool) -> Self {
        assert!(next >= 1);
        Self {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            inflights: VecDeque::new(),
            inflights_max,
            recent_active: false,
            acked_round: 0,
            durable_hinted: 0,
            is_learner,
        }
    }

    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.len() >= self.inflights_max,
            ProgressState::Snapshot => true,
        }
    }

    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            // The snapshot may have been installed even though we did not hear back.
            self.next = (self.matched + 1).max(self.pending_snapshot + 1);
        } else {
            self.next = self.matched + 1;
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.inflights.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = snapshot_index;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// The transfer of the pending snapshot ended (`ok`: the follower received it). Probe
    /// next, but only after the follower's answer or a heartbeat response (as etcd does): right
    /// after the snapshot if it arrived, else from the known match point.
    pub fn snapshot_reported(&mut self, ok: bool) {
        assert_eq!(self.state, ProgressState::Snapshot, "a snapshot report without a pending snapshot");
        if !ok {
            self.pending_snapshot = 0;
        }
        self.become_probe();
        self.probe_sent = true;
    }

    /// Records that the follower's log matches up to `index`. Returns whether that was news.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        while self.inflights.front().is_some_and(|&last| last <= index) {
            self.inflights.pop_front();
        }
        updated
    }

    /// Handles a rejection of the Append whose previous index was `rejected`; `hint_next` is
    /// where the conflict hint says to retry. Returns false for a stale rejection.
    pub fn maybe_decrease(&mut self, rejected: Index, hint_next: Index) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
            }
            // Only the answer to the probe we sent counts.
            _ => {
                if self.next == 0 || self.next - 1 != rejected {
                    return false;
                }
            }
        }
        self.next = hint_next.min(rejected).max(self.matched + 1);
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.clear();
        true
    }

    /// Records an Append sent in Replicate state whose last entry is `last`.
    pub fn sent_entries(&mut self, last: Index) {
        match self.state {
            ProgressState::Replicate => {
                self.next = last + 1;
                self.inflights.push_back(last);
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {
                unreachable!("appends are never sent while a snapshot is pending")
            }
        }
    }

    /// A heartbeat answer proves the follower is alive: let one more message through.
    pub fn on_heartbeat_response(&mut self) {
        self.recent_active = true;
        self.probe_sent = false;
        if self.state == ProgressState::Replicate && self.inflights.len() >= self.inflights_max {
            self.inflights.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_window_pauses_and_frees() {
        let mut pr = Progress::new(1, 2, false);
        pr.become_replicate();
        pr.sent_entries(5);
        assert!(!pr.is_paused());
        pr.sent_entries(9);
        assert!(pr.is_paused(), "two appends in flight fill a window of two");
        assert!(pr.maybe_update(5));
        assert!(!pr.is_paused());
        assert_eq!(pr.next, 10);
    }

    #[test]
    fn snapshot_reports_resume_probing_after_the_next_answer() {
        let mut pr = Progress::new(4, 4, false);
        pr.matched = 3;
        pr.become_snapshot(50);
        pr.snapshot_reported(true);
        assert_eq!((pr.state, pr.next, pr.is_paused()), (ProgressState::Probe, 51, true));
        pr.on_heartbeat_response();
        assert!(!pr.is_paused());
        pr.become_snapshot(50);
        pr.snapshot_reported(false);
        assert_eq!((pr.state, pr.next, pr.is_paused()), (ProgressState::Probe, 4, true), "back to the match point");
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut pr = Progress::new(11, 4, false);
        pr.matched = 5;
        pr.become_replicate();
        assert!(!pr.maybe_decrease(4, 1), "rejection below the match index is stale");
        assert!(pr.maybe_decrease(8, 7));
        assert_eq!((pr.state, pr.next), (ProgressState::Probe, 7));
        assert!(!pr.maybe_decrease(8, 3), "a probe answer for another prev_index is stale");
        // Never below match + 1, whatever the hint says.
        assert!(pr.maybe_decrease(6, 1));
        assert_eq!(pr.next, 6);
    }
}

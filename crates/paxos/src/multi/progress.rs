//! The leader's view of one member: how far it holds this ballot's values, and what is in
//! flight to it.

use std::collections::VecDeque;

use tally_consensus::Index;

#[derive(Clone, Debug)]
pub struct Progress {
    /// Every slot up to here holds this ballot's value (or a chosen one) on the member.
    pub matched: Index,
    /// The next slot to send.
    pub next: Index,
    /// Until an answer shows where the member stands, one Accept at a time.
    pub probing: bool,
    pub probe_sent: bool,
    /// The last slot of each Accept in flight.
    pub in_flight: VecDeque<Index>,
    /// A snapshot is on its way; nothing else is sent until the transport reports it.
    pub pending_snapshot: bool,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// The newest heartbeat round it answered (reads).
    pub acked_round: u64,
    /// The commit index the last Accept told it.
    pub commit_sent: Index,
    /// The last slot sent before the latest heartbeat: an answer to that heartbeat that holds
    /// less means Accepts were lost on the way (the transport keeps order).
    pub sent_before_heartbeat: Index,
    pub is_learner: bool,
}

impl Progress {
    pub fn new(next: Index, is_learner: bool) -> Self {
        Self {
            matched: 0,
            next,
            probing: true,
            probe_sent: false,
            in_flight: VecDeque::new(),
            pending_snapshot: false,
            recent_active: true,
            acked_round: 0,
            sent_before_heartbeat: 0,
            commit_sent: 0,
            is_learner,
        }
    }

    pub fn is_paused(&self, inflight_max: usize) -> bool {
        self.pending_snapshot || (self.probing && self.probe_sent) || self.in_flight.len() >= inflight_max
    }

    pub fn sent(&mut self, last: Index) {
        if self.probing {
            self.probe_sent = true;
        } else {
            self.next = last + 1;
            self.in_flight.push_back(last);
        }
    }

    /// The member holds this ballot's values through `through`.
    pub fn accepted(&mut self, through: Index) {
        if through > self.matched {
            self.matched = through;
        }
        // A probe's answer is all the member holds of ours: go on right after it.
        self.next = if self.probing { through + 1 } else { self.next.max(through + 1) };
        self.probing = false;
        self.probe_sent = false;
        while self.in_flight.front().is_some_and(|&last| last <= through) {
            self.in_flight.pop_front();
        }
    }

    /// The member needs slots from `from` on: start over from there, one Accept at a time.
    pub fn gap(&mut self, from: Index) {
        self.next = from.max(self.matched + 1);
        self.probing = true;
        self.probe_sent = false;
        self.in_flight.clear();
    }
}

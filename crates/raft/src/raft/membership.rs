//! Membership changes through the log (Raft section 6, joint consensus): proposing, applying
//! when committed entries are applied, leaving the joint configuration automatically, and
//! stepping down when the leader is no longer a voter.

use crate::progress::Progress;
use tally_consensus::ConfChange;
use tally_consensus::ProposeError;
use tally_consensus::Role;
use tally_consensus::{Entry, EntryKind, Index};

use super::Raft;

impl Raft {
    /// Proposes a membership change. Refused while another change is not yet applied.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        self.assert_not_in_ready();
        if self.role == Role::Leader && self.pending_conf_index > self.log.applied {
            return Err(ProposeError::ConfChangePending);
        }
        if self.role == Role::Leader {
            change.apply(&self.conf)?;
        }
        let index = self.propose_entry(EntryKind::ConfChange, change.encode())?;
        self.pending_conf_index = index;
        Ok(index)
    }

    /// Applies a committed configuration change entry. Every node applies the same entries in
    /// the same order, so an entry that does not apply is skipped by all of them alike.
    pub(super) fn apply_conf_change_entry(&mut self, entry: &Entry) {
        let Ok(change) = ConfChange::decode(&entry.data) else {
            return;
        };
        let Ok(next) = change.apply(&self.conf) else {
            return;
        };
        self.conf = next;
        if self.role != Role::Leader {
            return;
        }
        self.sync_progress_with_conf();
        if !self.conf.is_voter(self.id()) {
            // Removed (or demoted) leader: C_new is committed, so hand over by stepping down.
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        if self.lead_transferee.is_some_and(|id| !self.conf.voters.contains(&id)) {
            self.lead_transferee = None;
        }
        if self.maybe_commit() {
            self.broadcast_pending = true;
        }
        self.release_confirmed_reads();
    }

    /// The leader leaves a joint configuration as soon as every earlier change is applied,
    /// whether it entered the joint config itself or inherited it from a previous leader.
    pub(super) fn maybe_leave_joint(&mut self) {
        if self.role == Role::Leader && self.conf.is_joint() && self.pending_conf_index <= self.log.applied {
            let leave = ConfChange::leave_joint().encode();
            self.pending_conf_index = self.append_entry(EntryKind::ConfChange, leave);
        }
    }

    fn sync_progress_with_conf(&mut self) {
        let members = self.conf.members();
        self.progress.retain(|id, _| members.contains(id));
        let next = self.log.last_index() + 1;
        for id in members {
            let is_learner = !self.conf.is_voter(id);
            let inflights_max = self.config.inflight_msgs_max;
            let pr = self.progress.entry(id).or_insert_with(|| {
                let mut pr = Progress::new(next, inflights_max, is_learner);
                pr.recent_active = true;
                pr
            });
            pr.is_learner = is_learner;
        }
        self.broadcast_pending = true;
    }
}

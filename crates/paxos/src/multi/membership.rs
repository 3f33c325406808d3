//! Membership changes through the log, by the same joint-consensus rules as Raft's (the
//! changes themselves are `tally_consensus::ConfChange`): a change takes effect when applied,
//! one at a time, and the leader leaves a joint configuration as soon as it is applied.
//! Phase 1 and phase 2 both need a majority of each half while joint.

use tally_consensus::{ConfChange, Entry, EntryKind, Index, ProposeError, Role};

use super::{MultiPaxos, Progress};

impl MultiPaxos {
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

    /// Applies a chosen change. Every member applies the same entries in the same order, so a
    /// change that does not apply is skipped by all of them alike.
    pub(super) fn apply_conf_change_entry(&mut self, entry: &Entry) {
        let Ok(change) = ConfChange::decode(&entry.data) else { return };
        let Ok(next) = change.apply(&self.conf) else { return };
        self.conf = next;
        if self.role != Role::Leader {
            return;
        }
        self.sync_progress_with_conf();
        if !self.conf.is_voter(self.id()) {
            // Removed or demoted: the new configuration is chosen, so hand over by stepping down.
            return self.become_follower(None);
        }
        if self.lead_transferee.is_some_and(|id| !self.conf.voters.contains(&id)) {
            self.lead_transferee = None;
        }
        if self.maybe_commit() {
            self.broadcast_pending = true;
        }
        self.release_confirmed_reads();
    }

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
            self.progress.entry(id).or_insert_with(|| Progress::new(next, is_learner)).is_learner = is_learner;
        }
        self.broadcast_pending = true;
    }
}

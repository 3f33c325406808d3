//! How a removed member learns it was removed once nobody replicates to it, as in
//! `tally server`: a member applying the removal sends the removed peer a last frame saying so
//! (`Transport::set_peers`), and a peer that knows a member was removed refuses its hello when
//! it connects again (after a restart). Both travel over TCP, so a partition delays them
//! rather than losing them; they die with either process. Found by seeds 2470 and 8478 of a
//! sweep: a member cut off while it was removed, following a leader that had left, heard from
//! nobody again.

use tally_raft::NodeId;

use super::{Event, WholeSim};

/// How often TCP sends a frame again while a partition holds it back.
const RETRANSMIT_US: u64 = 50_000;

/// Member `from` telling member `to` that it was removed.
pub(super) struct Notice {
    from: NodeId,
    from_incarnation: u64,
    to: NodeId,
    to_incarnation: u64,
}

impl WholeSim {
    /// `from` tells `to` it was removed, if both are up.
    pub(super) fn tell_removed(&mut self, from: NodeId, to: NodeId) {
        let incarnation = |id: &NodeId| self.members.get(id).filter(|m| m.is_up()).map(|m| m.incarnation);
        let (Some(from_incarnation), Some(to_incarnation)) = (incarnation(&from), incarnation(&to)) else { return };
        let notice = Notice { from, from_incarnation, to, to_incarnation };
        let at = self.now() + self.net_delay();
        self.schedule(at, Event::RemovalNotice(Box::new(notice)));
    }

    /// Member `id` (re)started and says hello to its peers: those that know it was removed
    /// refuse it.
    pub(super) fn say_hello(&mut self, id: NodeId) {
        let knowing: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(&m, member)| m != id && member.node.as_ref().is_some_and(|n| n.knows_removed(id)))
            .map(|(&m, _)| m)
            .collect();
        for m in knowing {
            self.tell_removed(m, id);
        }
    }

    pub(super) fn removal_notice(&mut self, notice: Notice) {
        if !self.running(notice.from, notice.from_incarnation) || !self.running(notice.to, notice.to_incarnation) {
            return;
        }
        if self.blocked.contains(&(notice.from, notice.to)) {
            let at = self.now() + RETRANSMIT_US;
            return self.schedule(at, Event::RemovalNotice(Box::new(notice)));
        }
        self.trace(|| format!("member {} tells member {} it was removed", notice.from, notice.to));
        self.call(notice.to, |node| node.rejected("removed from the cluster"));
    }
}

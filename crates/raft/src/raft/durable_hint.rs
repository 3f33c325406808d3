//! Followers that commit without waiting for the leader's word. An entry is committed once a
//! quorum holds it durably and it is of the leader's term (or precedes such an entry). Where
//! the leader and one follower are a quorum (every three-member cluster), that follower can
//! tell by itself: the leader says how far its own log is durable (`LeaderDurable`, sent as
//! soon as its fsync returns), and the follower knows its own. Its commit then waits for the
//! later of the two fsyncs, not for its acknowledgement to reach the leader and the leader's
//! commit index to come back: one round trip less for a write that a follower answers (a
//! ZooKeeper client's), and for a follower's watchers.
//!
//! Why it is safe:
//! - An entry of term T in the follower's log came from T's only leader, so by log matching
//!   the follower's log up to it is the leader's; the leader never rewrites its own log.
//! - The leader announces only while no configuration change in its log is unapplied, to
//!   voters that are a quorum with it in the configuration in force. An entry at or below the
//!   announced index precedes any later configuration change, so it is committed under this
//!   configuration, exactly as the leader itself would count it.
//! - A hint is good for the term it was sent in only: a new term's entries at the same index
//!   are another leader's.
//!
//! The leader's commit index may now trail what a follower committed and acknowledged to a
//! client. A linearizable read must see that write, so the leader's read index is at least the
//! highest index it announced (`read_index.rs`).

use crate::config::InjectedBug;
use crate::message::MessageBody;
use tally_consensus::quorum;
use tally_consensus::{Index, NodeId};

use super::Raft;

impl Raft {
    /// Leader: tells the followers it is a quorum with how far its log is now durable, once
    /// that covers an uncommitted entry of its term (only those can be committed by it).
    pub(super) fn announce_durable(&mut self) {
        let durable = self.log.persisted;
        let useful = durable > self.log.committed.max(self.durable_announced)
            && self.log_term(durable) == Some(self.term)
            && self.pending_conf_index <= self.log.applied;
        if !useful {
            return;
        }
        let me = self.id();
        let peers: Vec<NodeId> =
            self.progress.keys().copied().filter(|&id| id != me && quorum::is_quorum(&self.conf, &[me, id])).collect();
        if peers.is_empty() {
            return;
        }
        self.durable_announced = durable;
        for id in peers {
            self.progress.get_mut(&id).expect("member").durable_hinted = durable;
            self.send(id, MessageBody::LeaderDurable { index: durable });
        }
    }

    /// Leader: whether `peer` commits up to our commit index by itself, having been told we
    /// hold that far durably: once it holds the entries durably too. Until it does, it needs
    /// no commit index; if it never got them, the Appends that repair its log carry one (and
    /// a lost hint is made up for by the next heartbeat's).
    pub(super) fn commits_by_hint(&self, peer: NodeId) -> bool {
        self.progress.get(&peer).is_some_and(|pr| pr.durable_hinted >= self.log.committed)
    }

    /// The index a leader's read must wait for: its commit index, or beyond it what a follower
    /// may have committed by a hint.
    pub(super) fn read_point(&self) -> Index {
        if self.config.bug(InjectedBug::ReadIndexIgnoresFollowerCommits) {
            return self.log.committed;
        }
        self.log.committed.max(self.durable_announced)
    }

    /// Follower: the leader's log is durable up to `index`.
    pub(super) fn handle_leader_durable(&mut self, index: Index) {
        self.leader_durable = self.leader_durable.max(index);
        self.commit_durable_on_both();
    }

    /// Follower: commits what both it and the leader hold durably, if that ends in our term.
    pub(super) fn commit_durable_on_both(&mut self) {
        let both = self.leader_durable.min(self.log.persisted);
        if both > self.log.committed && self.log_term(both) == Some(self.term) {
            self.log.commit_to(both);
        }
    }
}

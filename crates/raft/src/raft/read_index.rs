//! ReadIndex (Raft thesis 6.4): linearizable reads without writing to the log. The leader
//! notes its commit index (or, if higher, the durable index it announced: followers may have
//! committed that far, see `durable_hint.rs`), confirms it is still leader with a heartbeat
//! round acknowledged by a quorum, and then the read may be served once that index is applied.
//! A follower asks the leader for the index and serves the read from its own state machine.
//!
//! At most one round is in flight: reads that arrive meanwhile share the next round, which
//! starts when the current one is confirmed. Under load one round then confirms a whole batch
//! of reads instead of every read paying for its own, and a round asks no more followers than
//! a quorum needs.
//!
//! A read needs no round when its asker and the leader alone are a quorum: a follower's read
//! in any three-member cluster, the leader's own in a one-member one. A round proves that a
//! quorum was still in the leader's term at some moment after the read arrived, so that no newer
//! leader can have committed a write the read must see. A follower's request left it after its
//! read arrived, the leader handles it while leading in its term, and the follower accepts the
//! answer only while still in that term (`step` drops messages of older terms): that pair is
//! such a quorum already. The follower's read then costs one round trip instead of two.

use bytes::Bytes;

use crate::config::InjectedBug;
use crate::message::MessageBody;
use tally_consensus::quorum;
use tally_consensus::ReadIndexError;
use tally_consensus::{Index, NodeId};
use tally_consensus::{ReadState, Role};

use super::Raft;

#[derive(Debug)]
pub(super) struct PendingRead {
    round: u64,
    index: Index,
    ctx: Bytes,
    /// Who asked: ourselves or a follower.
    from: NodeId,
}

impl Raft {
    /// Requests a read point for `ctx`; it arrives as a [`ReadState`] in a later `Ready`.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        self.assert_not_in_ready();
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.handle_read_index(ctx, self.id());
                Ok(())
            }
            (Role::Follower, Some(leader)) => {
                self.send(leader, MessageBody::ReadIndex { ctx });
                Ok(())
            }
            _ => Err(ReadIndexError::NoLeader),
        }
    }

    pub(super) fn handle_read_index(&mut self, ctx: Bytes, from: NodeId) {
        // Until an entry of our term commits, our commit index may lag the previous leader's.
        if self.log_term(self.log.committed) != Some(self.term) {
            self.reads_awaiting_commit.push((ctx, from));
            return;
        }
        let index = self.read_point();
        // We are still leading in our term after the read arrived, and so is the asker if it
        // accepts the answer: if the two of us are a quorum, no round is needed (see above).
        let skip_round = from != self.id() && self.config.bug(InjectedBug::FollowerReadsWithoutQuorum);
        if quorum::is_quorum(&self.conf, &[self.id(), from]) || skip_round {
            return self.answer_read(ctx, from, index);
        }
        // Only a heartbeat sent after the read arrived may confirm it: a read that finds a round
        // in flight (any read still waiting) joins the next one.
        let round_in_flight = !self.pending_reads.is_empty();
        self.pending_reads.push_back(PendingRead { round: self.read_round + 1, index, ctx, from });
        if !round_in_flight {
            self.start_read_round();
        }
    }

    /// Starts the heartbeat round the oldest waiting reads were assigned. It goes only to as
    /// many voters as make a quorum with us (one follower of three), preferring those that
    /// acknowledged the previous round: every follower asked costs it a wake-up. The others
    /// learn the round number from the next periodic heartbeat, so a round whose followers went
    /// silent is still confirmed by the rest, one heartbeat interval later, and the next round
    /// asks those.
    fn start_read_round(&mut self) {
        let (me, previous) = (self.id(), self.read_round);
        self.read_round += 1;
        let mut followers: Vec<NodeId> =
            self.progress.keys().copied().filter(|&id| id != me && self.conf.is_voter(id)).collect();
        followers.sort_by_key(|id| self.progress[id].acked_round != previous);
        let mut asked = vec![me];
        for id in followers {
            if quorum::is_quorum(&self.conf, &asked) {
                break;
            }
            self.send_heartbeat(id);
            asked.push(id);
        }
    }

    pub(super) fn serve_reads_awaiting_commit(&mut self) {
        if self.log_term(self.log.committed) != Some(self.term) {
            return;
        }
        for (ctx, from) in std::mem::take(&mut self.reads_awaiting_commit) {
            self.handle_read_index(ctx, from);
        }
    }

    /// Serves every read whose heartbeat round a quorum has acknowledged.
    pub(super) fn release_confirmed_reads(&mut self) {
        let (me, current) = (self.id(), self.read_round);
        let confirmed = quorum::committed_index(&self.conf, |id| {
            if id == me {
                current
            } else {
                self.progress.get(&id).map_or(0, |pr| pr.acked_round)
            }
        });
        while self.pending_reads.front().is_some_and(|read| read.round <= confirmed) {
            let read = self.pending_reads.pop_front().expect("checked");
            self.answer_read(read.ctx, read.from, read.index);
        }
        if self.pending_reads.front().is_some_and(|read| read.round > current) {
            self.start_read_round();
        }
    }

    fn answer_read(&mut self, ctx: Bytes, from: NodeId, index: Index) {
        if from == self.id() {
            self.read_states.push(ReadState { index, ctx });
        } else {
            self.send(from, MessageBody::ReadIndexResp { ctx, index: Some(index) });
        }
    }

    pub(super) fn handle_read_index_response(&mut self, ctx: Bytes, index: Option<Index>) {
        if let Some(index) = index {
            self.read_states.push(ReadState { index, ctx });
        }
    }
}

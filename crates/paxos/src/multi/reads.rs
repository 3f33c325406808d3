//! Linearizable reads (ReadIndex): the leader's commit index, once a heartbeat round shows a
//! quorum still promised our ballot, and once our ballot's own no-op is chosen (so the
//! commit index covers everything chosen before us).

use bytes::Bytes;
use tally_consensus::quorum;
use tally_consensus::{Index, NodeId, ReadIndexError, ReadState, Role};

use super::{MessageBody, MultiPaxos};

#[derive(Debug)]
pub(super) struct PendingRead {
    round: u64,
    index: Index,
    ctx: Bytes,
    from: NodeId,
}

impl MultiPaxos {
    /// Asks for a read point for `ctx`; it comes back among a later `Ready`'s `read_states`.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        self.assert_not_in_ready();
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.leader_read(ctx, self.id());
                Ok(())
            }
            (Role::Follower, Some(leader)) => {
                let ballot = self.promised;
                self.send(leader, ballot, MessageBody::ReadIndex { ctx });
                Ok(())
            }
            _ => Err(ReadIndexError::NoLeader),
        }
    }

    pub(super) fn on_read_index(&mut self, from: NodeId, ctx: Bytes) {
        if self.role == Role::Leader {
            self.leader_read(ctx, from);
        } else {
            let ballot = self.promised;
            self.send(from, ballot, MessageBody::ReadIndexResp { ctx, index: None });
        }
    }

    pub(super) fn on_read_index_resp(&mut self, ctx: Bytes, index: Option<Index>) {
        if let Some(index) = index {
            self.read_states.push(ReadState { index, ctx });
        }
    }

    fn leader_read(&mut self, ctx: Bytes, from: NodeId) {
        if self.log.committed < self.ballot_start {
            self.reads_awaiting_commit.push((ctx, from));
            return;
        }
        let index = self.log.committed;
        if quorum::is_quorum(&self.conf, &[self.id(), from]) {
            return self.answer_read(ctx, from, index);
        }
        let round_in_flight = !self.pending_reads.is_empty();
        self.pending_reads.push_back(PendingRead { round: self.read_round + 1, index, ctx, from });
        if !round_in_flight {
            self.start_read_round();
        }
    }

    fn start_read_round(&mut self) {
        self.read_round += 1;
        let me = self.id();
        let voters: Vec<NodeId> =
            self.progress.keys().copied().filter(|&id| id != me && self.conf.is_voter(id)).collect();
        for id in voters {
            self.send_heartbeat(id);
        }
    }

    pub(super) fn serve_reads_awaiting_commit(&mut self) {
        if self.log.committed < self.ballot_start {
            return;
        }
        for (ctx, from) in std::mem::take(&mut self.reads_awaiting_commit) {
            self.leader_read(ctx, from);
        }
    }

    pub(super) fn release_confirmed_reads(&mut self) {
        let (me, current) = (self.id(), self.read_round);
        let progress = &self.progress;
        let confirmed = quorum::committed_index(&self.conf, |id| {
            if id == me {
                current
            } else {
                progress.get(&id).map_or(0, |pr| pr.acked_round)
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
            self.send(from, self.ballot, MessageBody::ReadIndexResp { ctx, index: Some(index) });
        }
    }

    /// Leadership lost: the reads we held are answered by no one (their callers time out and
    /// retry, as with Raft).
    pub(super) fn abandon_reads(&mut self) {
        self.pending_reads.clear();
        self.reads_awaiting_commit.clear();
    }
}
